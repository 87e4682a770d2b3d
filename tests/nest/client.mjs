// A command-line client built on Nest's own ClientTCP, for checking the test
// services (and the gateway's upstreams) by hand:
//
//   node tests/nest/client.mjs <v12|v10> --port N [--host H] [--tls-ca F
//        [--tls-cert F --tls-key F]] [--metadata JSON]
//        (send PATTERN DATA | emit PATTERN DATA)
//
// PATTERN and DATA are JSON text, or a bare word taken as a string. `send`
// prints one line per value, `NEXT <json>`, then `COMPLETE`, or
// `ERROR <json>` if the service reported an error (exit 3). `emit` prints
// `EMITTED`. --metadata (Nest 12 clients only) attaches packet metadata.

import { readFileSync } from 'node:fs';

const USAGE = 'usage: client.mjs <v12|v10> --port N [--host H] [--tls-ca F ' +
  '[--tls-cert F --tls-key F]] [--metadata JSON] (send|emit) PATTERN DATA';

function die(message, code = 2) {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

function jsonOrWord(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The version's @nestjs/microservices and rxjs, ESM (12) or CommonJS (10). */
async function load(version) {
  const base = new URL(`./${version}/node_modules/`, import.meta.url);
  const get = async path => {
    const mod = await import(new URL(path, base).href);
    return mod.default && typeof mod.default === 'object' ? mod.default : mod;
  };
  await import(new URL('reflect-metadata/Reflect.js', base).href);
  return {
    microservices: await get('@nestjs/microservices/index.js'),
    rxjs: await get('rxjs/dist/cjs/index.js'),
  };
}

function parse(argv) {
  const opts = { version: argv[0], host: '127.0.0.1', port: null, tlsCa: null,
                 tlsCert: null, tlsKey: null, metadata: null, rest: [] };
  if (!/^v\d+$/.test(opts.version ?? '')) die(USAGE);
  const valued = { '--port': 'port', '--host': 'host', '--tls-ca': 'tlsCa',
                   '--tls-cert': 'tlsCert', '--tls-key': 'tlsKey', '--metadata': 'metadata' };
  for (let i = 1; i < argv.length; i++) {
    if (argv[i] in valued && i + 1 < argv.length) opts[valued[argv[i]]] = argv[++i];
    else opts.rest.push(argv[i]);
  }
  if (opts.port === null || opts.rest.length !== 3 || !['send', 'emit'].includes(opts.rest[0]))
    die(USAGE);
  return opts;
}

function clientOptions(opts) {
  const options = { host: opts.host, port: Number(opts.port) };
  if (opts.tlsCa !== null) {
    options.tlsOptions = { ca: readFileSync(opts.tlsCa), servername: 'localhost' };
    if (opts.tlsCert !== null) {
      options.tlsOptions.cert = readFileSync(opts.tlsCert);
      options.tlsOptions.key = readFileSync(opts.tlsKey);
    }
  }
  return options;
}

async function run() {
  const opts = parse(process.argv.slice(2));
  const { microservices, rxjs } = await load(opts.version);
  const client = new microservices.ClientTCP(clientOptions(opts));
  if (opts.metadata !== null) {
    if (typeof client.setOnDispatchHook !== 'function')
      die(`Nest ${opts.version} clients cannot attach metadata`);
    const metadata = JSON.parse(opts.metadata);
    client.setOnDispatchHook(packet => { packet.metadata = metadata; });
  }
  const [verb, patternText, dataText] = opts.rest;
  const pattern = jsonOrWord(patternText);
  const data = jsonOrWord(dataText);
  let code = 0;
  try {
    if (verb === 'emit') {
      await rxjs.lastValueFrom(client.emit(pattern, data), { defaultValue: undefined });
      process.stdout.write('EMITTED\n');
    } else {
      await new Promise(resolve => client.send(pattern, data).subscribe({
        next: value => process.stdout.write(`NEXT ${JSON.stringify(value)}\n`),
        error: err => {
          process.stdout.write(`ERROR ${JSON.stringify(err)}\n`);
          code = 3;
          resolve();
        },
        complete: () => {
          process.stdout.write('COMPLETE\n');
          resolve();
        },
      }));
    }
  } finally {
    await client.close();
  }
  process.exit(code);
}

run().catch(err => die(`client failed: ${err?.stack ?? err}`, 1));
