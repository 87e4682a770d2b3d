// The NestJS TCP test service shared by every Nest version under tests/nest.
//
// This file must not import Nest by bare specifier: it sits outside every
// node_modules. Each tests/nest/<version>/main.mjs imports its own copies of
// @nestjs/common, @nestjs/core, @nestjs/microservices and rxjs and hands
// them to runService(). Plain JavaScript, no build step: Node 20 has no
// decorator syntax, so Nest's decorators are applied by calling them.
//
// Command line (after `node tests/nest/<version>/main.mjs`):
//   --port N            port to listen on (0: let the kernel pick one; not
//                       on Nest 10, which takes 0 for its default 3000)
//   --host H            address to listen on (default 127.0.0.1)
//   --tls-key F --tls-cert F
//                       serve TLS with this key and certificate (PEM)
//   --tls-ca F          CA bundle (PEM) that client certificates must chain to
//   --request-cert      require a client certificate (mTLS); needs --tls-ca
//   --tls-max-version V the newest TLS version to accept: TLSv1.2 or TLSv1.3
//                       (Node's maxVersion); needs --tls-key
//   --name NAME         the identity {cmd:'whoami'} answers (default
//                       HOST:PORT, the port as bound)
//   --delay-ms N        how long {cmd:'whoami'} waits before it answers
//                       (default 0: at once); no other pattern waits
//   --quiet             no Nest logs at all
//
// Patterns (@MessagePattern unless marked as events):
//   {cmd:'sum'}            [numbers] -> their sum
//   {cmd:'echo'}, 'echo'   anything -> the same value (a JSON round trip)
//   {cmd:'delay'}          {ms, value} -> value, ms milliseconds later
//   {cmd:'stream'}         {count, interval_ms} -> 1..count, or
//                          {values:[...], interval_ms} -> those values, one
//                          every interval_ms, then complete (count 0: no
//                          value). The last value carries isDisposed, unless
//                          complete_after_ms is given: then completion comes
//                          that much later as its own {"isDisposed":true}.
//   {cmd:'stream_fail'}    {count, interval_ms, error} -> count values, then
//                          fails with RpcException(error)
//   {cmd:'rpc_object'}     throws RpcException(data), data an object
//   {cmd:'rpc_string'}     throws RpcException(data), data a string
//   {cmd:'throw'}          throws Error('boom') ("Internal server error")
//   {cmd:'nothing'}        returns undefined
//   {cmd:'metadata'}       the packet metadata (TcpContext#getMetadata, Nest
//                          12), null when absent or unsupported (Nest 10)
//   {cmd:'caller'}         {data, metadata, agree}: the payload and the packet
//                          metadata as this service received them, and
//                          whether the caller's identity in both agrees
//                          (metadata "jwt.sub" equals data.sub, a string)
//   'record', {cmd:'record'}  events: append data to an in-memory list
//   {cmd:'recorded'}       that list; {cmd:'recorded_clear'} empties it -> true
//   {cmd:'pid'}            process.pid
//   {cmd:'whoami'}         {name, served}: this replica's identity (--name)
//                          and how many whoami requests it has received,
//                          this one included; answered --delay-ms later
//   {cmd:'whoami_count'}   {name, served} without counting itself and at
//                          once: what a test asks each replica directly
//
// The lists of 'record' and the whoami count are per process: with several
// replicas of the service, each keeps its own.
//
// Once listening, the service prints exactly one line on stdout,
// `READY <port>`, and never writes to stdout again; Nest's logs go to
// stderr. SIGTERM or SIGINT closes the application and exits 0. Bad
// arguments exit 2, a failed start exits 1.

import { readFileSync } from 'node:fs';

const USAGE =
  'usage: main.mjs --port N [--host H] [--tls-key F --tls-cert F ' +
  '[--tls-ca F] [--request-cert] [--tls-max-version V]] [--name NAME] ' +
  '[--delay-ms N] [--quiet]';

class UsageError extends Error {}

/** Parses argv (without node and script) into an options object. */
export function parseArgs(argv) {
  const opts = { port: null, host: '127.0.0.1', tlsKey: null, tlsCert: null,
                 tlsCa: null, requestCert: false, tlsMaxVersion: null, name: null,
                 delayMs: '0', quiet: false };
  const valued = { '--port': 'port', '--host': 'host', '--tls-key': 'tlsKey',
                   '--tls-cert': 'tlsCert', '--tls-ca': 'tlsCa',
                   '--tls-max-version': 'tlsMaxVersion', '--name': 'name',
                   '--delay-ms': 'delayMs' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg in valued) {
      if (i + 1 >= argv.length) throw new UsageError(`${arg} needs a value`);
      opts[valued[arg]] = argv[++i];
    } else if (arg === '--request-cert') {
      opts.requestCert = true;
    } else if (arg === '--quiet') {
      opts.quiet = true;
    } else {
      throw new UsageError(`unknown argument ${JSON.stringify(arg)}`);
    }
  }
  if (opts.port === null || !/^\d+$/.test(opts.port) || Number(opts.port) > 65535)
    throw new UsageError('--port N (0..65535) is required');
  opts.port = Number(opts.port);
  if (!/^\d+$/.test(opts.delayMs) || Number(opts.delayMs) > 600000)
    throw new UsageError('--delay-ms takes 0..600000');
  opts.delayMs = Number(opts.delayMs);
  if ((opts.tlsKey === null) !== (opts.tlsCert === null))
    throw new UsageError('--tls-key and --tls-cert go together');
  if ((opts.tlsCa !== null || opts.requestCert) && opts.tlsKey === null)
    throw new UsageError('--tls-ca and --request-cert need --tls-key and --tls-cert');
  if (opts.requestCert && opts.tlsCa === null)
    throw new UsageError('--request-cert needs --tls-ca');
  if (opts.tlsMaxVersion !== null) {
    if (opts.tlsKey === null)
      throw new UsageError('--tls-max-version needs --tls-key and --tls-cert');
    if (!['TLSv1.2', 'TLSv1.3'].includes(opts.tlsMaxVersion))
      throw new UsageError('--tls-max-version takes TLSv1.2 or TLSv1.3');
  }
  return opts;
}

/** Nest's tlsOptions for ServerTCP, or undefined for plain TCP. */
function tlsOptionsFrom(opts) {
  if (opts.tlsKey === null) return undefined;
  const tls = { key: readFileSync(opts.tlsKey), cert: readFileSync(opts.tlsCert) };
  if (opts.tlsCa !== null) tls.ca = readFileSync(opts.tlsCa);
  if (opts.requestCert) {
    tls.requestCert = true;
    tls.rejectUnauthorized = true;
  }
  if (opts.tlsMaxVersion !== null) tls.maxVersion = opts.tlsMaxVersion;
  return tls;
}

/** A Nest LoggerService that writes everything to stderr, one line each. */
function stderrLogger(tag) {
  const write = level => (message, ...rest) => {
    const parts = [message, ...rest].map(part =>
      part instanceof Error ? part.stack : typeof part === 'string' ? part : safeJson(part));
    process.stderr.write(`[${tag}] ${level} ${parts.join(' ')}\n`);
  };
  return { log: write('LOG'), error: write('ERROR'), warn: write('WARN'),
           debug: write('DEBUG'), verbose: write('VERBOSE'), fatal: write('FATAL') };
}

function safeJson(value) {
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

function sleep(ms) {
  return new Promise(resolve => setTimeout(resolve, ms));
}

/** Applies a method decorator the way TypeScript would. */
function decorateMethod(proto, name, decorator) {
  const descriptor = Object.getOwnPropertyDescriptor(proto, name);
  const result = decorator(proto, name, descriptor);
  Object.defineProperty(proto, name, result || descriptor);
}

/**
 * Builds the controller class. `nest` holds the version's modules; `replica`
 * is { name, delayMs }, whoami's identity and delay (the name may be set
 * once the port is known). A handler receives the payload; `metadata` also
 * gets the context through @Ctx().
 */
function makeController(nest, replica) {
  const { common, microservices, rxjs } = nest;
  const { RpcException, MessagePattern, EventPattern } = microservices;
  const recorded = [];
  let served = 0;

  /** A stream of `values`, one every `intervalMs`, then complete. */
  const valuesStream = (values, intervalMs) => {
    if (values.length === 0) return rxjs.EMPTY;
    return rxjs.interval(Math.max(0, Number(intervalMs) || 0)).pipe(
      rxjs.take(values.length), rxjs.map(i => values[i]));
  };
  const streamValues = data => Array.isArray(data?.values)
    ? data.values
    : Array.from({ length: Math.max(0, Number(data?.count) || 0) }, (_, i) => i + 1);

  class TestController {
    sum(data) {
      return (Array.isArray(data) ? data : []).reduce((acc, n) => acc + Number(n), 0);
    }
    echo(data) { return data; }
    echoString(data) { return data; }
    async delay(data) {
      await sleep(Math.max(0, Number(data?.ms) || 0));
      return data?.value;
    }
    stream(data) {
      const values = valuesStream(streamValues(data), data?.interval_ms);
      if (data?.complete_after_ms === undefined) return values;
      // Complete later than the last value: the end then travels as its own
      // {"isDisposed":true} packet instead of riding on the last value.
      const ms = Math.max(0, Number(data.complete_after_ms) || 0);
      return rxjs.concat(values, rxjs.timer(ms).pipe(rxjs.ignoreElements()));
    }
    streamFail(data) {
      return rxjs.concat(valuesStream(streamValues(data), data?.interval_ms),
        rxjs.throwError(() => new RpcException(data?.error)));
    }
    rpcObject(data) { throw new RpcException(data); }
    rpcString(data) { throw new RpcException(data); }
    throwError() { throw new Error('boom'); }
    nothing() { return undefined; }
    metadata(data, context) {
      const get = context?.getMetadata;
      return typeof get === 'function' ? (get.call(context) ?? null) : null;
    }
    caller(data, context) {
      const get = context?.getMetadata;
      const metadata = typeof get === 'function' ? (get.call(context) ?? null) : null;
      const sub = metadata?.['jwt.sub'];
      return { data, metadata, agree: typeof sub === 'string' && sub === data?.sub };
    }
    record(data) { recorded.push(data); }
    recordCmd(data) { recorded.push(data); }
    recorded() { return recorded.slice(); }
    recordedClear() {
      recorded.length = 0;
      return true;
    }
    pid() { return process.pid; }
    async whoami() {
      const reply = { name: replica.name, served: ++served };
      if (replica.delayMs > 0) await sleep(replica.delayMs);
      return reply;
    }
    whoamiCount() { return { name: replica.name, served }; }
  }

  const messages = {
    sum: { cmd: 'sum' }, echo: { cmd: 'echo' }, echoString: 'echo',
    delay: { cmd: 'delay' }, stream: { cmd: 'stream' },
    streamFail: { cmd: 'stream_fail' }, rpcObject: { cmd: 'rpc_object' },
    rpcString: { cmd: 'rpc_string' }, throwError: { cmd: 'throw' },
    nothing: { cmd: 'nothing' }, metadata: { cmd: 'metadata' }, caller: { cmd: 'caller' },
    recorded: { cmd: 'recorded' }, recordedClear: { cmd: 'recorded_clear' },
    pid: { cmd: 'pid' }, whoami: { cmd: 'whoami' },
    whoamiCount: { cmd: 'whoami_count' },
  };
  const events = { record: 'record', recordCmd: { cmd: 'record' } };
  const proto = TestController.prototype;
  for (const [name, pattern] of Object.entries(messages))
    decorateMethod(proto, name, MessagePattern(pattern));
  for (const [name, pattern] of Object.entries(events))
    decorateMethod(proto, name, EventPattern(pattern));
  // Without parameter decorators Nest passes the payload only.
  microservices.Payload()(proto, 'metadata', 0);
  microservices.Ctx()(proto, 'metadata', 1);
  microservices.Payload()(proto, 'caller', 0);
  microservices.Ctx()(proto, 'caller', 1);
  return common.Controller()(TestController) || TestController;
}

function makeModule(nest, replica) {
  class TestModule {}
  const controllers = [makeController(nest, replica)];
  return nest.common.Module({ controllers })(TestModule) || TestModule;
}

/** Closes `app` once on SIGTERM/SIGINT and exits 0 (1 if closing fails). */
function exitOnSignals(app) {
  let closing = false;
  const onSignal = () => {
    if (closing) return;
    closing = true;
    // Nest 10 leaves accepted sockets open after close(); exit regardless.
    const timer = setTimeout(() => process.exit(1), 10000);
    timer.unref();
    app.close().then(() => process.exit(0), err => {
      process.stderr.write(`close failed: ${err?.stack ?? err}\n`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/**
 * Starts the service. `nest` is { version, common, core, microservices, rxjs }
 * from the caller's own node_modules; `argv` is the command line without
 * node and the script.
 */
export async function runService(nest, argv) {
  let opts;
  try {
    opts = parseArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${err.message}\n${USAGE}\n`);
    process.exit(2);
  }
  const tlsOptions = tlsOptionsFrom(opts);
  const serverOptions = { host: opts.host, port: opts.port };
  if (tlsOptions) serverOptions.tlsOptions = tlsOptions;
  // The same ServerTCP that `transport: Transport.TCP` creates, built here so
  // that the bound port can be read back when --port 0 was given.
  const server = new nest.microservices.ServerTCP(serverOptions);
  if (server.port !== opts.port) {
    // Nest 10 takes port 0 for "unset" and listens on its default 3000.
    process.stderr.write(`Nest ${nest.version} cannot listen on port ${opts.port} ` +
      `(it would use ${server.port}); give a free port\n`);
    process.exit(2);
  }
  const replica = { name: opts.name, delayMs: opts.delayMs };
  const app = await nest.core.NestFactory.createMicroservice(makeModule(nest, replica), {
    strategy: server,
    logger: opts.quiet ? false : stderrLogger(`nest ${nest.version}`),
  });
  exitOnSignals(app);
  await app.listen();
  const port = server.server.address().port;
  if (replica.name === null) replica.name = `${opts.host}:${port}`;
  process.stdout.write(`READY ${port}\n`);
}

/** Entry point for main.mjs: runs the service, exits 1 if it fails to start. */
export function main(nest) {
  runService(nest, process.argv.slice(2)).catch(err => {
    process.stderr.write(`nest ${nest.version} service failed to start: ${err?.stack ?? err}\n`);
    process.exit(1);
  });
}
