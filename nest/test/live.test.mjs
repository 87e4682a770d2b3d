// patterngate's own questions to Nest apps that import patterngate-nest:
// `patterngate --check --live` and `patterngate scaffold`, against the real
// Nest 10, 11 and 12 apps of test-apps/ (run by ctest as nest_live, with
// PATTERNGATE set to the built binary).
//
// For each version: scaffold's config passes --check and --check --live,
// and a gateway started on it answers every discovered pattern through
// HTTP; a route to a pattern the app lacks, or of the wrong kind, fails
// --check --live with exit 2 naming the route; an app without the module
// is a warning; a service that is down is exit 1.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  EXPECTED, HANDLED_BY, VERSIONS, installPackage, patternText, removePackage, startApp,
} from './apps.mjs';

const PATTERNGATE = process.env.PATTERNGATE;
const READY_DEADLINE_MS = 30000;
let scratch;

/** Runs patterngate with `args`; resolves to { code, stdout, stderr }. */
function patterngate(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(PATTERNGATE, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.setEncoding('utf8').on('data', t => { stdout += t; });
    child.stderr.setEncoding('utf8').on('data', t => { stderr += t; });
    child.once('error', reject);
    child.once('close', code => resolve({ code, stdout, stderr }));
  });
}

/** A TCP port nothing listens on (the kernel's pick, released). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function writeConfig(name, config) {
  const file = path.join(scratch, name);
  await writeFile(file, JSON.stringify(config, null, 2));
  return file;
}

/** Starts the gateway on `file`; resolves once /readyz answers 200. */
async function startGateway(file, port) {
  const child = spawn(PATTERNGATE, ['-c', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.setEncoding('utf8').on('data', t => { log += t; });
  const exited = new Promise(resolve => child.once('exit', (code, signal) => resolve({ code, signal })));
  const deadline = Date.now() + READY_DEADLINE_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`patterngate exited (${child.exitCode}):\n${log}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`);
      if (r.status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`patterngate not ready in ${READY_DEADLINE_MS} ms:\n${log}`);
    }
    await new Promise(resolve => setTimeout(resolve, 50));
  }
  return {
    log: () => log,
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

before(async () => {
  assert.ok(PATTERNGATE, 'set PATTERNGATE to the patterngate binary');
  scratch = await mkdtemp(path.join(tmpdir(), 'patterngate-live-'));
  await installPackage();
});

after(async () => {
  await removePackage();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

for (const { folder } of VERSIONS) {
  // Nest 12 runs as CommonJS and as a hybrid app; the others as ES modules.
  const runs = folder === 'v12'
    ? [{ entry: `${folder}/cjs.cjs`, args: [] }, { entry: `${folder}/esm.mjs`, args: ['--hybrid'] }]
    : [{ entry: `${folder}/esm.mjs`, args: [] }];
  for (const { entry, args } of runs) {
    describe(`Nest ${folder} (${entry} ${args.join(' ')})`, () => {
      let app;
      let scaffolded;
      before(async () => { app = await startApp(entry, args); });
      after(async () => { await app?.stop(); });

      test('scaffold prints a route per handler, and --check accepts it', async () => {
        const r = await patterngate(['scaffold', `127.0.0.1:${app.tcpPort}`]);
        assert.equal(r.code, 0, r.stderr);
        scaffolded = JSON.parse(r.stdout);
        assert.deepEqual(scaffolded.services, { app: { endpoints: [`127.0.0.1:${app.tcpPort}`] } });
        assert.deepEqual(scaffolded.routes.map(route => ({ pattern: route.pattern, kind: route.kind ?? 'send' })),
                         EXPECTED);
        const paths = scaffolded.routes.map(route => route.path);
        assert.equal(new Set(paths).size, paths.length, 'paths are unique');
        assert.ok(paths.includes('/cmd/sum') && paths.includes('/base/ping'), paths.join(' '));
        const file = await writeConfig(`${folder}-scaffold.json`, scaffolded);
        const check = await patterngate(['--check', '-c', file]);
        assert.equal(check.code, 0, check.stderr);
        const live = await patterngate(['--check', '--live', '-c', file]);
        assert.equal(live.code, 0, live.stderr);
        assert.match(live.stdout, new RegExp(`live: service app: ${EXPECTED.length} handlers`));
        assert.equal(live.stderr, '');
      });

      test('the scaffolded gateway answers every discovered pattern', async () => {
        assert.ok(scaffolded, 'scaffold ran');
        const port = await freePort();
        const file = await writeConfig(`${folder}-serve.json`, { ...scaffolded, listen: `127.0.0.1:${port}` });
        const gateway = await startGateway(file, port);
        try {
          for (const route of scaffolded.routes) {
            const response = await fetch(`http://127.0.0.1:${port}${route.path}`, {
              method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}',
            });
            const body = await response.text();
            if (route.kind === 'emit') {
              assert.equal(response.status, 202, `${route.path}: ${body}`);
            } else {
              assert.equal(response.status, 200, `${route.path}: ${body}`);
              assert.deepEqual(JSON.parse(body), { handled: HANDLED_BY[patternText(route.pattern)] }, route.path);
            }
          }
        } catch (err) {
          err.message += `\n--- gateway log ---\n${gateway.log()}`;
          throw err;
        } finally {
          assert.deepEqual(await gateway.stop(), { code: 0, signal: null });
        }
      });

      test('--check --live names each route without a handler, exit 2', async () => {
        const port = app.tcpPort;
        const config = {
          services: { orders: { endpoints: [`127.0.0.1:${port}`] } },
          routes: [
            { method: 'POST', path: '/sum', service: 'orders', pattern: { cmd: 'sum' } },
            // the same pattern as JSON text: Nest's server matches it too
            { method: 'POST', path: '/sum-text', service: 'orders', pattern: '{"cmd":"sum"}' },
            { method: 'POST', path: '/nested', service: 'orders',
              pattern: { op: { version: 2, name: 'get' }, cmd: 'user' } },
            { method: 'POST', path: '/missing', service: 'orders', pattern: 'orders.missing' },
            { method: 'POST', path: '/replaced', service: 'orders', pattern: 'twice.first' },
            { method: 'POST', path: '/created', service: 'orders', pattern: 'user_created' },
            { method: 'POST', path: '/ping', service: 'orders', pattern: 'base.ping', kind: 'emit' },
          ],
        };
        const file = await writeConfig(`${folder}-wrong.json`, config);
        const r = await patterngate(['--check', '--live', '-c', file]);
        assert.equal(r.code, 2, r.stdout + r.stderr);
        const lines = r.stderr.trim().split('\n');
        assert.equal(lines.length, 4, r.stderr);
        assert.match(lines[0], /routes\[3\] \(POST \/missing\): service orders has no handler for the pattern "orders.missing"/);
        assert.match(lines[1], /routes\[4\] \(POST \/replaced\): service orders has no handler for the pattern "twice.first"/);
        assert.match(lines[2], /routes\[5\] \(POST \/created\): the pattern "user_created" is an @EventPattern handler of service orders, the route is kind send/);
        assert.match(lines[3], /routes\[6\] \(POST \/ping\): the pattern "base.ping" is an @MessagePattern handler of service orders, the route is kind emit/);
        assert.ok(lines.every(line => line.startsWith(`patterngate: ${file}: `)), r.stderr);
      });
    });
  }

  describe(`Nest ${folder} without the module`, () => {
    let app;
    before(async () => { app = await startApp(`${folder}/esm.mjs`, ['--without-module']); });
    after(async () => { await app?.stop(); });

    test('--check --live warns and passes; scaffold explains', async () => {
      const file = await writeConfig(`${folder}-plain.json`, {
        services: { plain: { endpoints: [`127.0.0.1:${app.tcpPort}`] } },
        routes: [{ method: 'POST', path: '/x', service: 'plain', pattern: 'orders.missing' }],
      });
      const r = await patterngate(['--check', '--live', '-c', file]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /live: warning: service plain has no patterngate-nest module: its routes are not checked/);
      const s = await patterngate(['scaffold', `127.0.0.1:${app.tcpPort}`]);
      assert.equal(s.code, 1);
      assert.equal(s.stdout, '');
      assert.match(s.stderr, /has no handler for \{"patterngate":"handlers"\}: import the patterngate-nest module/);
    });
  });
}

test('a service that is down: --check --live exits 1 naming it; scaffold exits 1', async () => {
  const port = await freePort();
  const file = await writeConfig('down.json', {
    services: { down: { endpoints: [`127.0.0.1:${port}`], connect_timeout_ms: 1000 } },
    routes: [{ method: 'POST', path: '/x', service: 'down', pattern: 'x' }],
  });
  const r = await patterngate(['--check', '--live', '-c', file]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /services\.down: could not ask for its handlers: .*connection refused/);
  const s = await patterngate(['scaffold', '--timeout', '2000', `127.0.0.1:${port}`]);
  assert.equal(s.code, 1);
  assert.match(s.stderr, /could not ask for its handlers/);
});
