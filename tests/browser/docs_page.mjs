// The admin API's /docs page as a browser renders it: Debian's headless
// Chromium, driven by playwright-core (as cors_probe.mjs: pinned by
// package-lock.json, /usr/bin/chromium, no browser download), opens the page
// while this script serves Swagger UI's assets from the pinned npm package
// swagger-ui-dist (node_modules/swagger-ui-dist) on 127.0.0.1: the gateway's
// docs_assets points there, so nothing leaves the machine. See README.md.
//
//   node tests/browser/docs_page.mjs
//     prints `READY {"assets": "http://127.0.0.1:PORT/"}` (put that in the
//     gateway's docs_assets), then answers each JSON request line on stdin
//     with one JSON line on stdout; ends at EOF.
//
// A request: {"url": "http://127.0.0.1:9901/docs", "screenshot": "/path/docs.png",
//   "timeout_ms": 30000}; url alone is required.
// An answer, once Swagger UI rendered the operations (or gave up):
//   {"ok": true, "title": "patterngate API", "status": 200,
//    "operations": [{"method": "GET", "path": "/users/{id}"}, ...],
//    "spec": {"url": "http://127.0.0.1:9901/openapi.json", "status": 200},
//    "assets": ["/swagger-ui.css", "/swagger-ui-bundle.js"],
//    "errors": [Swagger UI's error texts], "console": [...]}
//   or {"ok": false, "error": "...", "console": [...]}.
// `operations` is what the page's DOM shows: each operation block's method
// and path, in page order; `assets` the paths this script served for it;
// `spec` the document request the page made.
import { createReadStream, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join, normalize } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.error(`docs_page.mjs: cannot load playwright-core (${e.message}): run scripts/setup, which installs tests/browser's npm packages`);
  process.exit(2);
}

const HERE = dirname(fileURLToPath(import.meta.url));
const ASSETS = join(HERE, 'node_modules', 'swagger-ui-dist');
const CHROMIUM = process.env.PG_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-default-apps', '--disable-extensions',
  '--metrics-recording-only', '--no-default-browser-check',
];
const TYPES = { '.css': 'text/css', '.js': 'text/javascript', '.png': 'image/png', '.html': 'text/html', '.map': 'application/json' };

if (!existsSync(join(ASSETS, 'swagger-ui-bundle.js'))) {
  console.error(`docs_page.mjs: ${ASSETS} is missing: run scripts/setup, which installs tests/browser's npm packages`);
  process.exit(2);
}

// Serves the files of swagger-ui-dist; `served` records each path asked for.
function startAssetServer(served) {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = normalize(join(ASSETS, path));
    served.push(path);
    if (req.method !== 'GET' || !file.startsWith(ASSETS + '/') || !existsSync(file)) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found');
      return;
    }
    const type = TYPES[file.slice(file.lastIndexOf('.'))] || 'application/octet-stream';
    res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-store' });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

// Waits until Swagger UI shows operations, or an error, or nothing changes.
async function rendered(page, timeout) {
  await page.waitForFunction(
    () => document.querySelectorAll('.opblock').length > 0 || document.querySelector('.errors-wrapper, .loading-container .info') !== null ||
          /Failed to load API definition/.test(document.body.innerText),
    null, { timeout });
  // every block of the document is there once its count holds for a moment
  let last = -1;
  for (let i = 0; i < 50; i++) {
    const count = await page.locator('.opblock').count();
    if (count === last) break;
    last = count;
    await page.waitForTimeout(100);
  }
}

async function visit(browser, served, line) {
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    return { ok: false, error: `bad request line: ${e.message}`, console: [] };
  }
  if (typeof req.url !== 'string') return { ok: false, error: 'bad request line: no url', console: [] };
  const consoleLines = [];
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.on('console', (message) => consoleLines.push(message.text()));
  page.on('pageerror', (error) => consoleLines.push(`page error: ${error.message}`));
  const spec = {};
  page.on('response', (response) => {
    if (new URL(response.url()).pathname.endsWith('/openapi.json')) {
      spec.url = response.url();
      spec.status = response.status();
    }
  });
  served.length = 0;
  try {
    const response = await page.goto(req.url);
    await rendered(page, req.timeout_ms || 30000);
    const operations = await page.$$eval('.opblock', (blocks) => blocks.map((b) => ({
      method: (b.querySelector('.opblock-summary-method')?.textContent || '').trim(),
      path: b.querySelector('.opblock-summary-path')?.getAttribute('data-path') || '',
    })));
    const errors = await page.$$eval('.errors-wrapper .error-wrapper, .errors-wrapper .errors', (nodes) =>
      nodes.map((n) => n.textContent.trim()));
    if (req.screenshot) await page.screenshot({ path: req.screenshot, fullPage: true });
    return { ok: true, title: await page.title(), status: response ? response.status() : 0, operations, spec,
             assets: [...served], errors, console: consoleLines };
  } catch (e) {
    return { ok: false, error: String(e && e.message ? e.message : e), spec, assets: [...served], console: consoleLines };
  } finally {
    await page.context().close();
  }
}

async function main() {
  const served = [];
  const server = await startAssetServer(served);
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  process.stdout.write(`READY ${JSON.stringify({ assets: `http://127.0.0.1:${server.address().port}/` })}\n`);
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === '') continue;
    process.stdout.write(JSON.stringify(await visit(browser, served, line)) + '\n');
  }
  await browser.close();
  server.close();
}

main().catch((e) => {
  console.error(`docs_page.mjs: ${e.stack || e.message}`);
  process.exit(1);
});
