// A real browser's view of CORS: Debian's headless Chromium, driven by
// playwright-core (pinned by package-lock.json; it uses /usr/bin/chromium
// and downloads no browser), loads a page from one origin, served here, and
// the page's script fetch()es URLs of other origins (the gateway's port).
// What the script observed is printed: the status, body and the response
// headers it can read, or the error a blocked request gives, and what the
// browser logged on the page's console (its CORS error messages).
// See README.md. Usage:
//
//   node tests/browser/cors_probe.mjs [--page-host H] [--page-port N]
//        prints `READY {"origin": "http://H:PORT"}`, then answers each JSON
//        request line on stdin with one JSON line on stdout; ends at EOF.
//   node tests/browser/cors_probe.mjs --page-port N --fetch REQUEST_JSON
//        one request, one answer line, then exits.
//
// A request: {"url": "http://127.0.0.1:8080/x", "method": "POST",
//   "headers": {"X-Custom": "1"}, "body": "{}", "credentials":
//   "omit" | "same-origin" | "include"}; only url is required.
// An answer: {"ok": true, "status": 200, "body": "...", "headers": {name:
//   value, ... every header the script can read}, "console": [...]} or
//   {"ok": false, "error": "TypeError: Failed to fetch", "console":
//   ["Access to fetch at ... has been blocked by CORS policy: ..."]}.
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.error(`cors_probe.mjs: cannot load playwright-core (${e.message}): run scripts/setup, which installs tests/browser's npm packages`);
  process.exit(2);
}

// How Chromium must be started on these machines (no sandbox as root, no
// GPU, nothing that reaches out to Google's hosts). Playwright gives it a
// fresh temporary --user-data-dir of its own and removes it at close.
const CHROMIUM = process.env.PG_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-default-apps', '--disable-extensions',
  '--metrics-recording-only', '--no-default-browser-check',
];

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>patterngate CORS probe</title></head>
<body><p>patterngate CORS probe</p>
<script>
// What a page's own script sees of a cross-origin fetch.
window.probe = async function (req) {
  const init = { method: req.method || 'GET', mode: 'cors', credentials: req.credentials || 'same-origin',
                 headers: req.headers || {}, cache: 'no-store' };
  if (req.body !== undefined && req.body !== null) init.body = req.body;
  try {
    const response = await fetch(req.url, init);
    const headers = {};
    response.headers.forEach((value, name) => { headers[name] = value; });
    const body = await response.text();
    return { ok: true, status: response.status, body, headers };
  } catch (e) {
    return { ok: false, error: String(e && e.name ? e.name + ': ' + e.message : e) };
  }
};
</script></body></html>
`;

function parseArgs(argv) {
  const args = { host: '127.0.0.1', port: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (value === undefined) usage(`${name} needs a value`);
    if (name === '--page-host') args.host = value;
    else if (name === '--page-port') args.port = Number(value);
    else if (name === '--fetch') args.fetch = value;
    else usage(`unknown argument ${name}`);
  }
  return args;
}

function usage(message) {
  console.error(`cors_probe.mjs: ${message}\nusage: cors_probe.mjs [--page-host H] [--page-port N] [--fetch REQUEST_JSON]`);
  process.exit(2);
}

function startPageServer(host, port) {
  const server = createServer((req, res) => {
    if (req.url === '/favicon.ico') {
      res.writeHead(204);
      res.end();
    } else if (req.method === 'GET' && (req.url === '/' || req.url === '/index.html')) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(PAGE);
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

async function openPage(origin) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const page = await (await browser.newContext()).newPage();
  const consoleLines = [];
  page.on('console', (message) => consoleLines.push(message.text()));
  page.on('pageerror', (error) => consoleLines.push(`page error: ${error.message}`));
  await page.goto(`${origin}/`);
  return { browser, page, consoleLines };
}

// Runs one request in the page; the console lines logged meanwhile go with
// the answer (for a failed request, up to 5 s are given for the line that
// says why: Chromium may log it just after the fetch rejects).
async function probe(session, line) {
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    return { ok: false, error: `bad request line: ${e.message}`, console: [] };
  }
  if (typeof req.url !== 'string') return { ok: false, error: 'bad request line: no url', console: [] };
  session.consoleLines.length = 0;
  const answer = await session.page.evaluate((r) => window.probe(r), req);
  if (!answer.ok && session.consoleLines.length === 0) // the console line may trail the rejection
    await session.page.waitForEvent('console', { timeout: 5000 }).catch(() => {});
  return { ...answer, console: [...session.consoleLines] };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const server = await startPageServer(args.host, args.port);
  const host = args.host.includes(':') ? `[${args.host}]` : args.host;
  const origin = `http://${host}:${server.address().port}`;
  const session = await openPage(origin);
  const close = async () => {
    await session.browser.close();
    server.close();
  };
  if (args.fetch !== undefined) {
    process.stdout.write(JSON.stringify(await probe(session, args.fetch)) + '\n');
    await close();
    return;
  }
  process.stdout.write(`READY ${JSON.stringify({ origin })}\n`);
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === '') continue;
    process.stdout.write(JSON.stringify(await probe(session, line)) + '\n');
  }
  await close();
}

main().catch((e) => {
  console.error(`cors_probe.mjs: ${e.stack || e.message}`);
  process.exit(1);
});
