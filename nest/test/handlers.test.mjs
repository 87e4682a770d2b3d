// Tests of patterngate-nest against real Nest 10, 11 and 12 apps (run with
// `node --test handlers.test.mjs` in this folder, or `npm test` in nest/;
// scripts/setup installs ../test-apps/*/node_modules). The apps live outside
// this folder: `node --test` takes every script under a `test` folder for a
// test file.
//
// The package is packed with `npm pack` and unpacked into each app's
// node_modules/patterngate-nest, as `npm install patterngate-nest` would: the
// apps load it by name, through its "exports" (import or require), and it
// loads @nestjs/* from the app's node_modules. Each app (test-apps/app.cjs) runs as
// a real TCP microservice on a port the kernel picks; a raw-socket client of
// Nest's TCP transport (wire.mjs) asks the reserved pattern and checks the
// exact reply, then checks the list against what the app really answers.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { NestTcpClient } from './wire.mjs';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const packageDir = path.resolve(here, '..');
const appsDir = path.join(packageDir, 'test-apps');

const RESERVED = { patterngate: 'handlers' };
const NO_HANDLER = 'There is no matching message handler defined in the remote service.';
const START_DEADLINE_MS = 60000;

/** The Nest versions the apps pin (test-apps/<folder>/package.json). */
const VERSIONS = [
  { folder: 'v10', common: '10.4.22', core: '10.4.22', microservices: '10.4.22' },
  { folder: 'v11', common: '11.2.12', core: '11.2.12', microservices: '11.2.6' },
  { folder: 'v12', common: '12.5.1', core: '12.5.1', microservices: '12.1.1' },
];

/**
 * What the module must answer for test-apps/app.cjs, in order: the root module's
 * controllers (each method in the order of its class, own methods before
 * inherited ones), then the imported FeatureModule's.
 */
const EXPECTED = [
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
const UNANSWERED = [
  'twice.first',           // replaced by the second decorator on the same method
  'nats_only',             // bound to Transport.NATS: not registered on TCP
  'helper',                // a method without a decorator
];

/** The handler each listed request pattern reaches ({handled: method}). */
const HANDLED_BY = {
  'echo': 'echo', '{"cmd":"sum"}': 'sum', '{"cmd":"user","op":{"name":"get","version":2}}': 'nested',
  'multi.a': 'multi', '{"cmd":"multi","n":1}': 'multi', 'twice.second': 'twice',
  'tcp_only': 'tcpOnly', 'base.ping': 'ping', '{"cmd":"feature"}': 'feature',
};

function patternText(pattern) {
  return typeof pattern === 'string' ? pattern : JSON.stringify(pattern);
}

/**
 * Starts `node <entry> ...args` in test-apps/; resolves once it printed
 * `READY <tcp port> [<http port>]` with { tcpPort, httpPort, stop, log }.
 */
function startApp(entry, args = []) {
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

/** Runs `body(app, client)` against a started app, stopping it afterwards. */
async function withApp(entry, args, body) {
  const app = await startApp(entry, args);
  let client;
  try {
    client = await NestTcpClient.connect(app.tcpPort);
    await body(app, client);
  } catch (err) {
    err.message += `\n--- app log (${entry} ${args.join(' ')}) ---\n${app.log()}`;
    throw err;
  } finally {
    client?.close();
    const status = await app.stop();
    assert.deepEqual(status, { code: 0, signal: null }, `${entry} did not exit cleanly`);
  }
}

/** The reserved pattern's reply is exactly EXPECTED, and the app agrees. */
async function checkHandlers(client) {
  const reply = await client.request(RESERVED, null);
  assert.deepEqual(reply, { id: reply.id, response: EXPECTED, isDisposed: true });
  for (const { pattern, kind } of EXPECTED) {
    if (kind !== 'send') continue;
    const answer = await client.request(pattern, null);
    assert.deepEqual(answer, { id: answer.id, response: { handled: HANDLED_BY[patternText(pattern)] },
                               isDisposed: true }, `listed pattern ${patternText(pattern)}`);
  }
  for (const pattern of UNANSWERED) {
    const answer = await client.request(pattern, null);
    assert.deepEqual(answer, { id: answer.id, status: 'error', err: NO_HANDLER },
                     `unlisted pattern ${pattern}`);
  }
}

before(async () => {
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
});

test('the package ships its entry points and types only, and no Nest of its own', async () => {
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json'], { cwd: packageDir });
  const files = JSON.parse(stdout)[0].files.map(f => f.path).sort();
  assert.deepEqual(files, ['README.md', 'index.cjs', 'index.d.cts', 'index.d.mts', 'index.mjs',
                           'lib/build.cjs', 'package.json']);
  const manifest = JSON.parse(await readFile(path.join(packageDir, 'package.json'), 'utf8'));
  assert.equal(manifest.name, 'patterngate-nest');
  assert.equal(manifest.dependencies, undefined);
  assert.deepEqual(Object.keys(manifest.peerDependencies).sort(),
                   ['@nestjs/common', '@nestjs/core', '@nestjs/microservices']);
  assert.deepEqual(manifest.exports['.'], {
    import: { types: './index.d.mts', default: './index.mjs' },
    require: { types: './index.d.cts', default: './index.cjs' },
  });
});

for (const version of VERSIONS) {
  const { folder } = version;
  describe(`Nest ${folder}`, () => {
    test('the app has the pinned Nest packages', async () => {
      for (const name of ['common', 'core', 'microservices']) {
        const file = path.join(appsDir, folder, 'node_modules', '@nestjs', name, 'package.json');
        assert.equal(JSON.parse(await readFile(file, 'utf8')).version, version[name], name);
      }
    });

    test('import and require give the same module', async () => {
      // One PatterngateModule per Nest copy, however the package is reached.
      const script = `
        const required = require('patterngate-nest');
        import('patterngate-nest').then(imported => {
          if (typeof required.PatterngateModule !== 'function') throw new Error('no module');
          if (imported.PatterngateModule !== required.PatterngateModule) throw new Error('two modules');
          if (imported.PATTERNGATE_HANDLERS_PATTERN !== required.PATTERNGATE_HANDLERS_PATTERN)
            throw new Error('two patterns');
          console.log(JSON.stringify(required.PATTERNGATE_HANDLERS_PATTERN));
        });`;
      const { stdout } = await run(process.execPath, ['-e', script], { cwd: path.join(appsDir, folder) });
      assert.equal(stdout.trim(), JSON.stringify(RESERVED));
    });

    test('ES module app: the reserved pattern lists every handler', () =>
      withApp(`${folder}/esm.mjs`, [], (app, client) => checkHandlers(client)));

    test('CommonJS app: the reserved pattern lists every handler', () =>
      withApp(`${folder}/cjs.cjs`, [], (app, client) => checkHandlers(client)));

    for (const entry of ['esm.mjs', 'cjs.cjs']) {
      test(`hybrid HTTP + TCP app (${entry}): the same list, and HTTP still serves`, () =>
        withApp(`${folder}/${entry}`, ['--hybrid'], async (app, client) => {
          await checkHandlers(client);
          const response = await fetch(`http://127.0.0.1:${app.httpPort}/health`);
          assert.equal(response.status, 200);
          assert.equal(await response.text(), 'ok');
        }));
    }

    test('app without the module: the reserved pattern has no handler', () =>
      withApp(`${folder}/esm.mjs`, ['--without-module'], async (app, client) => {
        const reply = await client.request(RESERVED, null);
        assert.deepEqual(reply, { id: reply.id, status: 'error', err: NO_HANDLER });
        const echo = await client.request('echo', null);
        assert.deepEqual(echo, { id: echo.id, response: { handled: 'echo' }, isDisposed: true });
      }));
  });
}

test('TypeScript apps see the types through "import" and "require"', async () => {
  // test-apps/v12/types.mts and types.cts, checked with tsc (module nodenext).
  const cwd = path.join(appsDir, 'v12');
  const tsc = path.join(cwd, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd });
  } catch (err) {
    assert.fail(`tsc failed:\n${err.stdout}${err.stderr}`);
  }
});

after(async () => {
  // Leave no unpacked copy behind that a later `npm ci` would not expect.
  for (const { folder } of VERSIONS)
    await rm(path.join(appsDir, folder, 'node_modules', 'patterngate-nest'), { recursive: true, force: true });
});
