// A tiny HTTP server that answers CORS itself, for the browser harness's
// self-test (tests/integration/test_browser_harness.c): it stands where the
// gateway will stand, with a policy given on the command line.
//
//   node tests/browser/cors_server.mjs [--port N] [--allow-origin O]...
//        [--allow-credentials] [--allow-headers a,b] [--expose-headers a,b]
//
// prints `READY <port>`, then serves until stdin closes or SIGTERM:
//   OPTIONS with Origin and Access-Control-Request-Method: 204 with the
//     CORS headers when the origin (or "*") and every requested header are
//     allowed, else 403 without them;
//   any other request: 200, {"method", "path", "headers"} of the request,
//     with X-Secret: s3 and X-Exposed: e1 set, and the CORS headers when
//     the origin is allowed (none otherwise);
//   GET /__seen (no CORS): the requests seen so far, [{method, path,
//     origin, acrm, acrh}], to tell whether a preflight happened.
import { createServer } from 'node:http';

const policy = { origins: [], credentials: false, headers: [], expose: [] };
let port = 0;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const name = argv[i];
  if (name === '--allow-credentials') policy.credentials = true;
  else if (name === '--port') port = Number(argv[++i]);
  else if (name === '--allow-origin') policy.origins.push(argv[++i]);
  else if (name === '--allow-headers') policy.headers = argv[++i].toLowerCase().split(',').filter(Boolean);
  else if (name === '--expose-headers') policy.expose = argv[++i].split(',').filter(Boolean);
  else {
    console.error(`cors_server.mjs: unknown argument ${name}`);
    process.exit(2);
  }
}

const seen = [];
const allowed = (origin) => origin !== undefined && (policy.origins.includes('*') || policy.origins.includes(origin));
const allowOrigin = (origin) => (policy.origins.includes('*') && !policy.credentials ? '*' : origin);

const server = createServer((req, res) => {
  const origin = req.headers.origin;
  if (req.url === '/__seen') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(seen));
    return;
  }
  seen.push({ method: req.method, path: req.url, origin: origin ?? null,
              acrm: req.headers['access-control-request-method'] ?? null,
              acrh: req.headers['access-control-request-headers'] ?? null });
  const acrm = req.headers['access-control-request-method'];
  if (req.method === 'OPTIONS' && origin !== undefined && acrm !== undefined) {
    const asked = (req.headers['access-control-request-headers'] || '').toLowerCase().split(',').map((h) => h.trim()).filter(Boolean);
    if (!allowed(origin) || !asked.every((h) => policy.headers.includes(h))) {
      res.writeHead(403, { 'Content-Type': 'application/json' });
      res.end('{"error":"forbidden"}');
      return;
    }
    const headers = { 'Access-Control-Allow-Origin': allowOrigin(origin), 'Access-Control-Allow-Methods': 'GET, POST, PUT, DELETE',
                      'Access-Control-Max-Age': '0', Vary: 'Origin' };
    if (policy.credentials) headers['Access-Control-Allow-Credentials'] = 'true';
    if (policy.headers.length) headers['Access-Control-Allow-Headers'] = policy.headers.join(', ');
    res.writeHead(204, headers);
    res.end();
    return;
  }
  let body = '';
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => {
    const headers = { 'Content-Type': 'application/json', 'X-Secret': 's3', 'X-Exposed': 'e1', Vary: 'Origin' };
    if (allowed(origin)) {
      headers['Access-Control-Allow-Origin'] = allowOrigin(origin);
      if (policy.credentials) headers['Access-Control-Allow-Credentials'] = 'true';
      if (policy.expose.length) headers['Access-Control-Expose-Headers'] = policy.expose.join(', ');
    }
    res.writeHead(200, headers);
    res.end(JSON.stringify({ method: req.method, path: req.url, headers: req.headers, body }));
  });
});

server.listen(port, '127.0.0.1', () => process.stdout.write(`READY ${server.address().port}\n`));
process.stdin.on('end', () => server.close(() => process.exit(0)));
process.stdin.resume();
process.on('SIGTERM', () => server.close(() => process.exit(0)));
