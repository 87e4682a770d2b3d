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
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { NestTcpClient } from './wire.mjs';
import {
  EXPECTED, HANDLED_BY, NO_HANDLER, RESERVED, UNANSWERED, VERSIONS, appsDir, installPackage, packageDir,
  patternText, removePackage, run, startApp,
} from './apps.mjs';

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

before(installPackage);

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

after(removePackage);
