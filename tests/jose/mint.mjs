// Mints JSON Web Tokens for the JWT tests with a real JOSE library (jose,
// pinned by package-lock.json) and keys made by the `openssl` command at
// test time. See README.md for the output; usage:
//
//   node tests/jose/mint.mjs suite --dir DIR [--issuer I] [--audience A] [--sub S] [--ttl N]
//   node tests/jose/mint.mjs sign  --dir DIR --alg RS256|ES256|EdDSA|HS256|RS256-rotated
//                                  [--kid K] [--claims JSON] [--ttl N | --no-exp] [--count N]
//
// `suite` makes the keys and JWKS files in DIR (which must exist) and
// prints one JSON object: the files, the HS256 secret, and a named set of
// tokens with what a verifier must say of each. `sign` signs one more
// token with the keys `suite` left in DIR and prints it alone on a line;
// with --count N, N distinct tokens (claim `jti` "1".."N"), one a line
// (bench/run's "a new token every request").
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

let jose;
try {
  jose = await import('jose');
} catch (e) {
  console.error(`mint.mjs: cannot load jose (${e.message}): run scripts/setup, which installs tests/jose's npm packages`);
  process.exit(2);
}

const KEYS = {
  // name: [file, JWS alg, kid, openssl genpkey arguments]
  rs256: ['rs256.pem', 'RS256', 'rs-1', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']],
  es256: ['es256.pem', 'ES256', 'es-1', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']],
  eddsa: ['eddsa.pem', 'EdDSA', 'ed-1', ['-algorithm', 'ED25519']],
  rs256_rotated: ['rs256-rotated.pem', 'RS256', 'rs-2', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']],
};

function usage(message) {
  console.error(`mint.mjs: ${message}\nusage: mint.mjs suite --dir DIR [--issuer I] [--audience A] [--sub S] [--ttl N]\n` +
    '       mint.mjs sign --dir DIR --alg RS256|ES256|EdDSA|HS256|RS256-rotated [--kid K] [--claims JSON] [--ttl N | --no-exp] [--count N]');
  process.exit(2);
}

function parseArgs(argv) {
  const [command, ...rest] = argv;
  if (!['suite', 'sign'].includes(command)) usage('expected suite or sign');
  const args = { command, ttl: 3600 };
  for (let i = 0; i < rest.length; i++) {
    const name = rest[i].replace(/^--/, '');
    if (name === 'no-exp') { args.noExp = true; continue; }
    if (!['dir', 'issuer', 'audience', 'sub', 'ttl', 'alg', 'kid', 'claims', 'count'].includes(name) || rest[i + 1] === undefined)
      usage(`bad argument ${rest[i]}`);
    args[name] = rest[++i];
  }
  if (!args.dir) usage('--dir is required');
  args.ttl = Number(args.ttl);
  args.count = args.count === undefined ? 0 : Number(args.count);
  if (!Number.isInteger(args.count) || args.count < 0) usage('--count takes a whole number');
  return args;
}

function openssl(...args) {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

// ---- keys ----------------------------------------------------------------------

function makeKeys(dir) {
  for (const [file, , , genArgs] of Object.values(KEYS)) {
    openssl('genpkey', ...genArgs, '-out', join(dir, file));
    openssl('pkey', '-in', join(dir, file), '-pubout', '-out', join(dir, file.replace('.pem', '.pub.pem')));
  }
  writeFileSync(join(dir, 'hs256.secret'), openssl('rand', '-hex', '32').trim());
}

async function loadKey(dir, name) {
  const [file, alg, kid] = KEYS[name];
  const privateKey = await jose.importPKCS8(readFileSync(join(dir, file), 'utf8'), alg, { extractable: true });
  const publicPem = readFileSync(join(dir, file.replace('.pem', '.pub.pem')), 'utf8');
  const publicKey = await jose.importSPKI(publicPem, alg, { extractable: true });
  return { name, alg, kid, privateKey, publicKey, publicPem };
}

async function loadKeys(dir) {
  const keys = {};
  for (const name of Object.keys(KEYS)) keys[name] = await loadKey(dir, name);
  keys.hs256 = { alg: 'HS256', secret: readFileSync(join(dir, 'hs256.secret'), 'utf8') };
  return keys;
}

async function jwk(key) {
  return { ...(await jose.exportJWK(key.publicKey)), kid: key.kid, alg: key.alg, use: 'sig' };
}

async function writeJwks(dir, keys) {
  const current = { keys: [await jwk(keys.rs256), await jwk(keys.es256), await jwk(keys.eddsa)] };
  const rotated = { keys: [await jwk(keys.rs256_rotated), await jwk(keys.es256), await jwk(keys.eddsa)] };
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify(current, null, 2) + '\n');
  writeFileSync(join(dir, 'jwks-rotated.json'), JSON.stringify(rotated, null, 2) + '\n');
}

// ---- tokens ----------------------------------------------------------------------

const b64 = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

async function sign(keys, keyName, claims, header = {}) {
  if (keyName === 'hs256') {
    return new jose.SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT', ...header })
      .sign(new TextEncoder().encode(keys.hs256.secret));
  }
  const key = keys[keyName];
  return new jose.SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header })
    .sign(key.privateKey);
}

// A token of `header` and `claims` whose signature is HMAC-SHA-256 keyed
// with `secret` (done by hand: jose itself refuses to use a public key as
// an HMAC secret).
function hmacToken(header, claims, secret) {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

// The same token with one bit of its signature flipped.
function flipSignatureBit(token) {
  const [h, p, s] = token.split('.');
  const sig = Buffer.from(s, 'base64url');
  sig[Math.floor(sig.length / 2)] ^= 1;
  return `${h}.${p}.${sig.toString('base64url')}`;
}

function baseClaims(args, now, extra = {}) {
  const claims = { iss: args.issuer, aud: args.audience, sub: args.sub, iat: now, nbf: now, exp: now + args.ttl, ...extra };
  for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
  return claims;
}

async function suite(args) {
  args.issuer ??= 'https://issuer.test/';
  args.audience ??= 'patterngate-test';
  args.sub ??= 'u42';
  makeKeys(args.dir);
  const keys = await loadKeys(args.dir);
  await writeJwks(args.dir, keys);
  const now = Math.floor(Date.now() / 1000);
  const good = baseClaims(args, now, { tenant: 'acme', scope: 'orders:read orders:write', roles: ['viewer', 'editor'] });
  const tokens = {};
  const expect = {};
  const add = (name, token, outcome) => { tokens[name] = token; expect[name] = outcome; };
  add('rs256', await sign(keys, 'rs256', good), 'ok');
  add('es256', await sign(keys, 'es256', good), 'ok');
  add('eddsa', await sign(keys, 'eddsa', good), 'ok');
  add('hs256', await sign(keys, 'hs256', good), 'ok');
  add('expired', await sign(keys, 'rs256', { ...good, iat: now - 7200, nbf: now - 7200, exp: now - 3600 }), 'expired');
  add('not_yet_valid', await sign(keys, 'es256', { ...good, nbf: now + 3600, exp: now + 7200 }), 'not_yet_valid');
  add('wrong_issuer', await sign(keys, 'rs256', { ...good, iss: 'https://wrong-issuer.test/' }), 'issuer');
  add('wrong_audience', await sign(keys, 'eddsa', { ...good, aud: 'someone-else' }), 'audience');
  add('no_exp', await sign(keys, 'rs256', baseClaims(args, now, { exp: undefined })), 'no_exp');
  add('bad_signature', flipSignatureBit(await sign(keys, 'rs256', good)), 'signature');
  add('hs256_wrong_secret', hmacToken({ alg: 'HS256', typ: 'JWT' }, good, 'not-the-configured-secret-0123456789'), 'signature');
  add('alg_none', new jose.UnsecuredJWT(good).encode(), 'algorithm');
  add('rs256_public_key_as_hs256_secret',
    hmacToken({ alg: 'HS256', typ: 'JWT', kid: keys.rs256.kid }, good, keys.rs256.publicPem), 'signature');
  add('unknown_kid', await sign(keys, 'rs256', good, { kid: 'not-in-the-jwks' }), 'unknown_key');
  add('rotated', await sign(keys, 'rs256_rotated', good), 'unknown_key');
  const out = {
    dir: args.dir,
    jwks_file: join(args.dir, 'jwks.json'),
    jwks_rotated_file: join(args.dir, 'jwks-rotated.json'),
    hs256_secret: keys.hs256.secret,
    issuer: args.issuer,
    audience: args.audience,
    sub: args.sub,
    now,
    claims: good,
    tokens,
    expect,
    expect_rotated: { rotated: 'ok', rs256: 'unknown_key', es256: 'ok', eddsa: 'ok' },
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

async function signOne(args) {
  const names = { RS256: 'rs256', ES256: 'es256', EdDSA: 'eddsa', HS256: 'hs256', 'RS256-rotated': 'rs256_rotated' };
  const keyName = names[args.alg];
  if (!keyName) usage(`unknown --alg ${args.alg}`);
  const keys = await loadKeys(args.dir);
  const now = Math.floor(Date.now() / 1000);
  let claims;
  try {
    claims = args.claims ? JSON.parse(args.claims) : {};
  } catch (e) {
    usage(`--claims is not JSON: ${e.message}`);
  }
  const full = { iat: now, exp: now + args.ttl, ...claims };
  if (args.noExp) delete full.exp;
  const header = args.kid ? { kid: args.kid } : {};
  if (args.count === 0) {
    process.stdout.write((await sign(keys, keyName, full, header)) + '\n');
    return;
  }
  const lines = [];
  for (let i = 1; i <= args.count; i++) lines.push(await sign(keys, keyName, { ...full, jti: String(i) }, header));
  process.stdout.write(lines.join('\n') + '\n');
}

const args = parseArgs(process.argv.slice(2));
try {
  await (args.command === 'suite' ? suite(args) : signOne(args));
} catch (e) {
  console.error(`mint.mjs: ${e.stderr ? String(e.stderr).trim() : e.message}`);
  process.exit(1);
}
