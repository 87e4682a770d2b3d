// What the tests of patterngate-nest share: the Nest apps of test-apps/
// (their versions, the handlers they declare, starting and stopping them)
// and installing the packed package into them. Used by handlers.test.mjs
// (the module's answer) and live.test.mjs (patterngate's --check --live and
// scaffold against the same apps).

import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
export const packageDir = path.resolve(here, '..');
export const appsDir = path.join(packageDir, 'test-apps');
const START_DEADLINE_MS = 60000;

/** The Nest versions the apps pin (test-apps/<folder>/package.json). */
export const VERSIONS = [
  { folder: 'v10', common: '10.4.22', core: '10.4.22', microservices: '10.4.22' },
  { folder: 'v11', common: '11.2.12', core: '11.2.12', microservices: '11.2.6' },
  { folder: 'v12', common: '12.5.1', core: '12.5.1', microservices: '12.1.1' },
];

export const RESERVED = { patterngate: 'handlers' };
export const NO_HANDLER = 'There is no matching message handler defined in the remote service.';


/**
 * What the module must answer for test-apps/app.cjs, in order: the root module's
 * controllers (each method in the order of its class, own methods before
 * inherited ones), then the imported FeatureModule's.
 */
export const EXPECTED = [
  { pattern: 'echo', kind: 'send' },
  { pattern: { cmd: 'sum' }, kind: 'send' },
  { pattern: { cmd: 'user', op: { name: 'get', version: 2 } }, kind: 'send' },
  { pattern: 'user_created', kind: 'emit' },
  { pattern: { evt: 'order', status: { code: 'placed' } }, kind: 'emit' },
  { pattern: 'multi.a', kind: 'send' },                 // one decorator, two patterns
  { pattern: { cmd: 'multi', n: 1 }, kind: 'send' },
  { pattern: 'twice.second', kind: 'send' },            // of two decorators, the last applied
  { pattern: 'tcp_only', kind: 'send' },                // bound to Transport.TCP
  { pattern: 'base.ping', kind: 'send' },               // inherited from BaseController
  { pattern: { cmd: 'feature' }, kind: 'send' },        // FeatureModule; its 'user_created'
];                                                      // listener is already listed

/** Request patterns the app does not answer (so neither does the list). */
export const UNANSWERED = [
  'twice.first',           // replaced by the second decorator on the same method
  'nats_only',             // bound to Transport.NATS: not registered on TCP
  'helper',                // a method without a decorator
];

/** The handler each listed request pattern reaches ({handled: method}). */
export const HANDLED_BY = {
  'echo': 'echo', '{"cmd":"sum"}': 'sum', '{"cmd":"user","op":{"name":"get","version":2}}': 'nested',
  'multi.a': 'multi', '{"cmd":"multi","n":1}': 'multi', 'twice.second': 'twice',
  'tcp_only': 'tcpOnly', 'base.ping': 'ping', '{"cmd":"feature"}': 'feature',
};

export function patternText(pattern) {
  return typeof pattern === 'string' ? pattern : JSON.stringify(pattern);
}

/**
 * Starts `node <entry> ...args` in test-apps/; resolves once it printed
 * `READY <tcp port> [<http port>]` with { tcpPort, httpPort, stop, log }.
 */
export function startApp(entry, args = []) {
  const child = spawn(process.execPath, [path.join(appsDir, entry), ...args],
                      { cwd: appsDir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', text => { stderr += text; });
  const exited = new Promise(resolve => child.once('exit', (code, signal) => resolve({ code, signal })));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
    const status = await exited;
    clearTimeout(timer);
    return status;
  };
  return new Promise((resolve, reject) => {
    let stdout = '';
    let settled = false;
    const fail = why => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stop().finally(() => reject(new Error(`${entry} ${args.join(' ')}: ${why}\n${stderr}`)));
    };
    const timer = setTimeout(() => fail(`not ready in ${START_DEADLINE_MS} ms`), START_DEADLINE_MS);
    exited.then(({ code, signal }) => fail(`exited (${code ?? signal}) before READY`));
    child.stdout.setEncoding('utf8').on('data', text => {
      stdout += text;
      const line = stdout.split('\n').slice(0, -1).find(l => l.startsWith('READY '));
      if (!line || settled) return;
      settled = true;
      clearTimeout(timer);
      const [tcpPort, httpPort] = line.split(' ').slice(1).map(Number);
      resolve({ tcpPort, httpPort, stop, log: () => stderr });
    });
  });
}

/** Packs the package and unpacks it into every app's node_modules, as
 * `npm install patterngate-nest` would. */
export async function installPackage() {
  for (const { folder } of VERSIONS) {
    if (!existsSync(path.join(appsDir, folder, 'node_modules', '@nestjs', 'core')))
      throw new Error(`no node_modules in nest/test-apps/${folder}: run scripts/setup`);
  }
  // Install the package as users get it: packed, then unpacked.
  const scratch = await mkdtemp(path.join(tmpdir(), 'patterngate-nest-'));
  try {
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', scratch],
                                 { cwd: packageDir });
    const tarball = path.join(scratch, JSON.parse(stdout)[0].filename);
    for (const { folder } of VERSIONS) {
      const target = path.join(appsDir, folder, 'node_modules', 'patterngate-nest');
      await rm(target, { recursive: true, force: true });
      await mkdir(target, { recursive: true });
      await run('tar', ['xzf', tarball, '--strip-components=1', '-C', target]);
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Leaves no unpacked copy behind that a later `npm ci` would not expect. */
export async function removePackage() {
  for (const { folder } of VERSIONS)
    await rm(path.join(appsDir, folder, 'node_modules', 'patterngate-nest'), { recursive: true, force: true });
}
