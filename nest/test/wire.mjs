// A client of Nest's TCP transport for the tests, on a raw socket: each
// message is `<length>#<json>`, the length counting UTF-16 code units of the
// JSON text (String#length), not bytes (see PROTOCOL.md, "Framing").

import net from 'node:net';
import { StringDecoder } from 'node:string_decoder';

/** Frames one message the way Nest's JsonSocket does. */
export function frame(message) {
  const json = JSON.stringify(message);
  return `${json.length}#${json}`;
}

/**
 * Splits `text` into the complete messages it starts with. Returns
 * { messages, rest }: the parsed JSON values and the unconsumed tail.
 */
export function unframe(text) {
  const messages = [];
  let at = 0;
  for (;;) {
    const hash = text.indexOf('#', at);
    if (hash < 0) break;
    const digits = text.slice(at, hash);
    if (!/^\d+$/.test(digits)) throw new Error(`corrupt length ${JSON.stringify(digits)}`);
    const end = hash + 1 + Number(digits);
    if (end > text.length) break;
    messages.push(JSON.parse(text.slice(hash + 1, end)));
    at = end;
  }
  return { messages, rest: text.slice(at) };
}

/** One connection to a Nest TCP microservice. */
export class NestTcpClient {
  #socket;
  #pending = new Map();   // id -> { resolve, reject, timer }
  #nextId = 1;
  #closedError = null;

  constructor(socket) {
    this.#socket = socket;
    const decoder = new StringDecoder('utf8');
    let buffered = '';
    socket.on('data', chunk => {
      let parsed;
      try {
        parsed = unframe(buffered + decoder.write(chunk));
      } catch (err) {
        this.#failAll(err);
        socket.destroy();
        return;
      }
      buffered = parsed.rest;
      for (const message of parsed.messages) this.#settle(message);
    });
    socket.on('error', err => this.#failAll(err));
    socket.on('close', () => this.#failAll(new Error('connection closed')));
  }

  /** Connects to 127.0.0.1:`port`. */
  static connect(port, host = '127.0.0.1') {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host }, () => {
        socket.off('error', reject);
        resolve(new NestTcpClient(socket));
      });
      socket.once('error', reject);
    });
  }

  /**
   * Sends a request and resolves with the first packet replying to it (the
   * only one for a handler that returns a value). Rejects after `timeoutMs`.
   */
  request(pattern, data = null, timeoutMs = 30000) {
    if (this.#closedError) return Promise.reject(this.#closedError);
    const id = `t${this.#nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`no reply to ${JSON.stringify(pattern)} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      this.#socket.write(frame({ pattern, data, id }));
    });
  }

  close() {
    this.#socket.destroy();
  }

  #settle(message) {
    const waiter = this.#pending.get(message?.id);
    if (!waiter) return;
    this.#pending.delete(message.id);
    clearTimeout(waiter.timer);
    waiter.resolve(message);
  }

  #failAll(err) {
    this.#closedError ??= err;
    for (const { reject, timer } of this.#pending.values()) {
      clearTimeout(timer);
      reject(err);
    }
    this.#pending.clear();
  }
}
