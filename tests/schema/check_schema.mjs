// Checks config/patterngate.schema.json against the config loader, through
// the built binary (`patterngate --check -c FILE`) and the loader's sources.
// Usage: node check_schema.mjs --source DIR --binary PATH   (see README.md)
//
//  1. the schema is valid draft 2020-12 (Ajv, strict mode), and its defaults
//     and examples validate against their own subschemas;
//  2. keys, both ways: every key list of the loader (`*_keys[]` in
//     config/*.c) equals the schema's properties at that place (PENDING
//     aside), and valid/every_key.json, which --check accepts, uses every
//     key of the schema;
//  3. every config of the repository that --check accepts (every *.json
//     file, and the config heredoc of README.md's tutorial) is accepted by
//     the schema; those that must load (examples, docker, deploy, ...) do;
//  4. the schema and --check agree on invalid/*.json (both reject, at the
//     same JSON path, the loader with the message in invalid/expected.json),
//     on valid/*.json (both accept) and on the strings of strings.json
//     (host:port, route paths, ${...} references).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

let Ajv2020;
try {
  Ajv2020 = (await import('ajv/dist/2020.js')).default.default;
} catch (e) {
  console.error(`check_schema.mjs: cannot load ajv (${e.message}): run scripts/setup, which installs tests/schema's npm packages`);
  process.exit(1);
}
const HERE = fileURLToPath(new URL('.', import.meta.url));

// Keys in the schema that the loader does not take yet (being added
// elsewhere). The test fails once the loader takes one: then remove it here
// and add it to valid/every_key.json.
const PENDING = new Set([]);

// The loader's key lists (static const char *const NAME_keys[] in
// config/*.c) and where their keys are in the schema (a list used at
// several places names them all). A new list needs a line here.
const KEY_LISTS = {
  top_keys: '',
  auth_keys: 'auth',
  jwt_keys: 'auth.jwt',
  log_keys: 'log',
  dns_keys: 'dns',
  limits_keys: 'limits',
  service_keys: 'services.*',
  tls_keys: 'services.*.tls',
  route_keys: 'routes[]',
  cors_keys: ['cors', 'routes[].cors'],
  rate_limit_rule_keys: 'routes[].rate_limit',
};
const placesOf = (place) => (Array.isArray(place) ? place : [place]);
// Keys the loader takes apart from its lists (config.c, drop_schema_reference).
const OUTSIDE_LISTS = { '': ['$schema'] };

// Configs that must load as they are (with ENV below); others count only
// when --check accepts them.
const MUST_LOAD = [
  /^config\/examples\/[^/]+\.json$/,
  /^docker\/config\.json$/,
  /^examples\/[^/]+\/config\.json$/,
  /^deploy\/.+\/config\.json$/,
  /^bench\/[^/]+\.json$/,
  /^tests\/unit\/cli\/valid\.json$/,
  /^README\.md#tutorial/,
];
const NOT_CONFIGS = /(^|\/)(package|package-lock)\.json$|^tests\/schema\/|^config\/patterngate\.schema\.json$/;

// The environment of every --check run (nothing else is inherited but PATH
// and the sanitizers' options).
const ENV = {
  GATEWAY_TOKEN: 't0ken',
  ORDERS_ADDRESS: 'orders.default.svc:3000',
  PG_BENCH_TLS_CA: 'ca.pem',
  HOST: '127.0.0.1',
  TOKEN: 't0ken',
  PG_SCHEMA_TEST_ADMIN: '127.0.0.1:9901',
  PG_SCHEMA_TEST_TOKEN: 't0ken',
  PG_SCHEMA_TEST_EMPTY: '',
};

// ---- command line, reporting ------------------------------------------------

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!['--source', '--binary'].includes(argv[i]) || argv[i + 1] === undefined)
      throw new Error('usage: check_schema.mjs --source DIR --binary PATH');
    args[argv[i].slice(2)] = argv[i + 1];
  }
  if (!args.source || !args.binary) throw new Error('usage: check_schema.mjs --source DIR --binary PATH');
  return args;
}

let passed = 0;
const failures = [];
function check(ok, what, detail = '') {
  if (ok) passed++;
  else failures.push(detail ? `${what}\n    ${detail}` : what);
}

// ---- the binary -------------------------------------------------------------

const tmp = mkdtempSync(join(tmpdir(), 'pg-schema-'));
let tmpCount = 0;

function runEnv() {
  const env = { PATH: process.env.PATH, ...ENV };
  for (const name of ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS'])
    if (process.env[name] !== undefined) env[name] = process.env[name];
  return env;
}

// --check -c file: {ok, message} (message: the loader's first problem,
// without "patterngate: FILE:LINE:COLUMN: ").
function loaderCheck(binary, file) {
  const r = spawnSync(binary, ['--check', '-c', file], { env: runEnv(), encoding: 'utf8', timeout: 60000 });
  const prefix = `patterngate: ${file}:`;
  const first = (r.stderr || '').trim().split('\n')[0];
  if (r.status === 0) return { ok: true, message: r.stdout.trim() };
  if (r.status === 2) {
    if (!first.startsWith(prefix)) return { ok: false, message: first };
    return { ok: false, message: first.slice(prefix.length).replace(/^(\d+:\d+: )?/, '') };
  }
  const stderr = (r.stderr || '').trim();
  throw new Error(`patterngate --check -c ${file}: exit ${r.status} ${r.signal || ''}\n${stderr}`);
}

function loaderCheckText(binary, text) {
  const file = join(tmp, `config-${++tmpCount}.json`);
  writeFileSync(file, text);
  return loaderCheck(binary, file);
}

// ---- the schema -------------------------------------------------------------

function loadSchema(source) {
  const schema = JSON.parse(readFileSync(join(source, 'config/patterngate.schema.json'), 'utf8'));
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  const validate = ajv.compile(schema);
  return { schema, ajv, validate };
}

// Every subschema reachable through properties / additionalProperties /
// items, named as in test_config.c: "limits.max_body_bytes",
// "services.*.tls", "routes[]".
function walk(node, path, visit, pointer = '') {
  visit(path, node, pointer);
  for (const [key, child] of Object.entries(node.properties || {}))
    walk(child, path ? `${path}.${key}` : key, visit, `${pointer}/properties/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`);
  if (node.additionalProperties && typeof node.additionalProperties === 'object')
    walk(node.additionalProperties, `${path}.*`, visit, `${pointer}/additionalProperties`);
  if (node.items && typeof node.items === 'object') walk(node.items, `${path}[]`, visit, `${pointer}/items`);
}

function schemaErrors(validate, doc) {
  return validate(doc) ? [] : validate.errors;
}

function showErrors(errors) {
  return errors.slice(0, 4).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
}

// JSON pointers the schema's errors point at (a missing, unknown or
// badly named member counts as its own place).
function errorPlaces(errors) {
  const places = new Set();
  for (const e of errors) {
    places.add(e.instancePath);
    for (const name of [e.params?.missingProperty, e.params?.additionalProperty, e.params?.propertyName])
      if (name !== undefined) places.add(`${e.instancePath}/${name.replace(/~/g, '~0').replace(/\//g, '~1')}`);
  }
  return places;
}

// The loader's JSON path ("services.s.endpoints[0]", 'log["$schema"]') of
// an error message, as a JSON pointer; null when the message has none.
function loaderPointer(message) {
  const m = /^((?:[A-Za-z0-9_-]+|\["(?:[^"\\]|\\.)*"\]|\[\d+\])(?:\.[A-Za-z0-9_-]+|\["(?:[^"\\]|\\.)*"\]|\[\d+\])*): /.exec(message);
  if (!m) return '';
  const parts = [];
  for (const t of m[1].matchAll(/\.?([A-Za-z0-9_-]+)|\[("(?:[^"\\]|\\.)*")\]|\[(\d+)\]/g))
    parts.push(t[1] ?? (t[2] !== undefined ? JSON.parse(t[2]) : t[3]));
  return parts.map((p) => '/' + p.replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

// ---- 1. the schema itself ---------------------------------------------------

function checkSchemaItself({ schema, ajv }) {
  let count = 0;
  walk(schema, '', (path, node, pointer) => {
    const values = [];
    if ('default' in node) values.push(['default', node.default]);
    for (const example of node.examples || []) values.push(['example', example]);
    if (values.length === 0) return;
    const validate = ajv.getSchema(`${schema.$id}#${pointer}`);
    for (const [kind, value] of values) {
      count++;
      check(validate(value), `schema: the ${kind} of ${path} is not valid against its own schema`,
        JSON.stringify(value) + ' ' + showErrors(validate.errors || []));
    }
  });
  check(count >= 25, `schema: only ${count} defaults and examples found`);
  walk(schema, '', (path, node) => {
    if (path === '' || node.type !== 'object' || node.additionalProperties === undefined) return;
    check('description' in node, `schema: ${path} has no description`);
  });
  walk(schema, '', (path, node) => {
    if (path !== '' && !path.endsWith('.*') && !path.endsWith('[]'))
      check(typeof node.description === 'string' && node.description.length > 0, `schema: key ${path} has no description`);
  });
}

// ---- 2. keys, both ways -----------------------------------------------------

// The service settings' names, from core/settings.h's X-macro table
// (X(type, name, default, kind) lines), which the loader's service_keys
// expands.
function settingNames(source) {
  const text = readFileSync(join(source, 'core/settings.h'), 'utf8');
  const table = /#define UP_SERVICE_SETTINGS\(X\)([\s\S]*?)\n\n/.exec(text);
  return table ? [...table[1].matchAll(/X\(\s*\w+\s*,\s*(\w+)\s*,/g)].map((m) => m[1]) : [];
}

function loaderKeyLists(source) {
  const lists = {};
  for (const name of readdirSync(join(source, 'config')).filter((n) => n.endsWith('.c'))) {
    const text = readFileSync(join(source, 'config', name), 'utf8');
    for (const m of text.matchAll(/static\s+const\s+char\s*\*\s*const\s+(\w+_keys)\s*\[\s*\]\s*=\s*\{([^}]*)\}/g)) {
      lists[m[1]] = [...m[2].matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((s) => JSON.parse(`"${s[1]}"`));
      if (/UP_SERVICE_SETTINGS\(/.test(m[2])) lists[m[1]].push(...settingNames(source));
    }
  }
  return lists;
}

function schemaObjects(schema) {
  const objects = {};
  walk(schema, '', (path, node) => {
    if (node.type === 'object' && node.properties) objects[path] = node;
  });
  return objects;
}

function checkKeysBothWays(source, binary, { schema }) {
  const lists = loaderKeyLists(source);
  const objects = schemaObjects(schema);
  check(Object.keys(lists).length >= Object.keys(KEY_LISTS).length,
    `keys: found ${Object.keys(lists).length} key lists in config/*.c`, Object.keys(lists).join(', '));
  for (const name of Object.keys(lists))
    check(name in KEY_LISTS, `keys: the loader has a key list ${name}: map it to its place in the schema in KEY_LISTS (check_schema.mjs)`);
  for (const [name, places] of Object.entries(KEY_LISTS)) {
    check(name in lists, `keys: no key list ${name} in config/*.c (renamed? update KEY_LISTS)`);
    for (const place of placesOf(places))
      check(place in objects, `keys: the schema has no object at "${place}" for ${name}`);
  }
  const mapped = new Set(Object.values(KEY_LISTS).flatMap(placesOf));
  for (const [place, node] of Object.entries(objects)) {
    check(mapped.has(place), `keys: the schema's object at "${place}" matches no key list of the loader`);
    check(node.additionalProperties === false, `keys: the schema's object at "${place}" must reject unknown keys (additionalProperties: false), as the loader does`);
  }
  for (const [name, place] of Object.entries(KEY_LISTS).flatMap(([n, p]) => placesOf(p).map((one) => [n, one]))) {
    if (!(name in lists) || !(place in objects)) continue;
    const loader = new Set([...lists[name], ...(OUTSIDE_LISTS[place] || [])]);
    const inSchema = new Set(Object.keys(objects[place].properties));
    const full = (key) => (place ? `${place}.${key}` : key);
    for (const key of loader)
      check(inSchema.has(key), `keys: the loader takes ${full(key)} (${name}) but the schema does not know it`);
    for (const key of inSchema) {
      if (PENDING.has(full(key)))
        check(!loader.has(key), `keys: the loader now takes ${full(key)}: remove it from PENDING in check_schema.mjs and add it to valid/every_key.json`);
      else
        check(loader.has(key), `keys: the schema has ${full(key)} but the loader does not take it (not in ${name})`);
    }
  }
  // Black-box: every_key.json uses every (non-pending) key of the schema and loads.
  const everyFile = join(HERE, 'valid/every_key.json');
  const every = JSON.parse(readFileSync(everyFile, 'utf8'));
  const used = new Set();
  (function collect(value, path) {
    if (Array.isArray(value)) value.forEach((v) => collect(v, `${path}[]`));
    else if (value && typeof value === 'object' && !['pattern', 'data'].includes(path.split('.').pop()))
      for (const [k, v] of Object.entries(value)) {
        const inner = path === '' ? k : path === 'services' ? 'services.*' : `${path}.${k}`;
        used.add(inner);
        collect(v, inner);
      }
  })(every, '');
  walk(schema, '', (path) => {
    if (path === '' || path.endsWith('.*') || path.endsWith('[]') || PENDING.has(path)) return;
    check(used.has(path), `keys: valid/every_key.json does not use ${path}`);
  });
  const loaded = loaderCheck(binary, everyFile);
  check(loaded.ok, 'keys: --check rejects valid/every_key.json', loaded.message);
  // Black-box: pending keys are still unknown to the loader.
  for (const path of PENDING) {
    const doc = { services: { s: { endpoints: ['127.0.0.1:1'] } } };
    const parts = path.split('.');
    let at = doc;
    for (const part of parts.slice(0, -1)) at = part === '*' ? Object.values(at)[0] : (at[part] ??= {});
    at[parts[parts.length - 1]] = defaultAt(schema, path);
    const r = loaderCheckText(binary, JSON.stringify(doc));
    check(!r.ok && r.message.endsWith('unknown key'),
      `keys: the loader now takes ${path}: remove it from PENDING in check_schema.mjs and add it to valid/every_key.json`, r.message);
  }
}

function defaultAt(schema, wanted) {
  let found;
  walk(schema, '', (path, node) => {
    if (path === wanted) found = node.default;
  });
  return found;
}

// ---- 3. the repository's configs ------------------------------------------

function repoFiles(source, pattern) {
  const r = spawnSync('git', ['-C', source, 'ls-files', '--cached', '--others', '--exclude-standard', '-z', '--', pattern], { encoding: 'utf8' });
  if (r.status === 0) return [...new Set(r.stdout.split('\0').filter((f) => f && existsSync(join(source, f))))].sort();
  // Not a git checkout: walk the tree.
  const suffix = pattern.replace(/^\*/, '');
  const found = [];
  (function visit(dir) {
    for (const name of readdirSync(join(source, dir))) {
      const rel = dir ? `${dir}/${name}` : name;
      if (['.git', 'node_modules', 'build'].includes(name)) continue;
      if (statSync(join(source, rel)).isDirectory()) visit(rel);
      else if (name.endsWith(suffix)) found.push(rel);
    }
  })('');
  return found.sort();
}

// The config heredoc(s) of README.md's tutorial: `cat > F <<'EOF'` ... EOF.
function tutorialConfigs(source) {
  const readme = readFileSync(join(source, 'README.md'), 'utf8');
  const m = /<!-- tutorial:begin -->([\s\S]*?)<!-- tutorial:end -->/.exec(readme);
  if (!m) return [];
  const configs = [];
  for (const h of m[1].matchAll(/cat > \S+\.json <<'?(\w+)'?\n([\s\S]*?)\n\1\n/g))
    configs.push({ name: `README.md#tutorial-${configs.length + 1}`, text: h[2] + '\n' });
  return configs;
}

function checkRepositoryConfigs(source, binary, { validate }) {
  const configs = repoFiles(source, '*.json')
    .filter((f) => !NOT_CONFIGS.test(f))
    .map((f) => ({ name: f, file: join(source, f), text: readFileSync(join(source, f), 'utf8') }));
  const tutorial = tutorialConfigs(source);
  check(tutorial.length >= 1, 'configs: no config heredoc found in README.md\'s tutorial');
  configs.push(...tutorial);
  let mustLoad = 0, accepted = 0;
  for (const c of configs) {
    const must = MUST_LOAD.some((re) => re.test(c.name));
    const loaded = c.file ? loaderCheck(binary, c.file) : loaderCheckText(binary, c.text);
    if (must) {
      mustLoad++;
      check(loaded.ok, `configs: --check rejects ${c.name}`, loaded.message);
    }
    if (!loaded.ok) {
      console.log(`  (${c.name}: not a valid config for --check: ${loaded.message})`);
      continue;
    }
    accepted++;
    let doc;
    try {
      doc = JSON.parse(c.text);
    } catch (e) {
      check(false, `configs: --check accepts ${c.name}, which JSON.parse rejects`, e.message);
      continue;
    }
    const errors = schemaErrors(validate, doc);
    check(errors.length === 0, `configs: the schema rejects ${c.name}, which --check accepts`, showErrors(errors));
  }
  check(mustLoad >= 15, `configs: only ${mustLoad} configs that must load were found`);
  console.log(`configs: ${accepted} of ${configs.length} repository configs accepted by --check, all checked against the schema`);
}

// ---- 4. agreement -------------------------------------------------------------

function checkInvalid(binary, { validate }) {
  const dir = join(HERE, 'invalid');
  const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
  const files = readdirSync(dir).filter((n) => n.endsWith('.json') && n !== 'expected.json').sort();
  check(files.length >= 20, `invalid: only ${files.length} broken configs`);
  for (const name of files) {
    const file = join(dir, name);
    const loaded = loaderCheck(binary, file);
    check(!loaded.ok, `invalid/${name}: --check accepts it`);
    check(name in expected, `invalid/${name}: no expected message in invalid/expected.json`, `--check says: ${loaded.message}`);
    check(loaded.ok || loaded.message === expected[name], `invalid/${name}: --check fails for another reason`,
      `expected: ${expected[name]}\n    got:      ${loaded.message}`);
    const errors = schemaErrors(validate, JSON.parse(readFileSync(file, 'utf8')));
    check(errors.length > 0, `invalid/${name}: the schema accepts it (--check: ${loaded.message})`);
    if (errors.length === 0 || loaded.ok) continue;
    const pointer = loaderPointer(loaded.message);
    check(errorPlaces(errors).has(pointer), `invalid/${name}: the schema rejects it elsewhere than at ${pointer || '/'}`,
      `--check: ${loaded.message}\n    schema: ${showErrors(errors)}`);
  }
  for (const name of Object.keys(expected))
    check(files.includes(name), `invalid/expected.json names ${name}, which is not there`);
}

function checkValid(binary, { validate }) {
  const dir = join(HERE, 'valid');
  const files = readdirSync(dir).filter((n) => n.endsWith('.json')).sort();
  check(files.length >= 5, `valid: only ${files.length} configs`);
  for (const name of files) {
    const file = join(dir, name);
    const loaded = loaderCheck(binary, file);
    check(loaded.ok, `valid/${name}: --check rejects it`, loaded.message);
    const errors = schemaErrors(validate, JSON.parse(readFileSync(file, 'utf8')));
    check(errors.length === 0, `valid/${name}: the schema rejects it`, showErrors(errors));
  }
}

// Each string of strings.json put where its kind goes, in a config of its own.
const STRING_PLACES = {
  hostport: (s) => ({ listen: s }),
  route_path: (s) => ({ services: { s: { endpoints: ['127.0.0.1:1'] } }, routes: [{ method: 'GET', path: s, service: 's', pattern: 1 }] }),
  env_text: (s) => ({ services: { s: { endpoints: ['127.0.0.1:1'], tls: { servername: s } } } }),
};

function checkStrings(binary, { validate }) {
  const table = JSON.parse(readFileSync(join(HERE, 'strings.json'), 'utf8'));
  for (const [kind, place] of Object.entries(STRING_PLACES)) {
    check(kind in table, `strings.json has no "${kind}"`);
    for (const [verdict, strings] of Object.entries(table[kind] || {})) {
      const want = verdict === 'accepted';
      for (const s of strings) {
        const doc = place(s);
        const loaded = loaderCheckText(binary, JSON.stringify(doc));
        const errors = schemaErrors(validate, doc);
        check(loaded.ok === want, `strings: --check ${loaded.ok ? 'accepts' : 'rejects'} ${kind} ${JSON.stringify(s)}`, loaded.message);
        check((errors.length === 0) === want, `strings: the schema ${errors.length ? 'rejects' : 'accepts'} ${kind} ${JSON.stringify(s)}`, showErrors(errors));
      }
    }
  }
}

// ---- main -----------------------------------------------------------------------

function main() {
  const { source, binary } = parseArgs(process.argv.slice(2));
  const compiled = loadSchema(source);
  try {
    checkSchemaItself(compiled);
    checkKeysBothWays(source, binary, compiled);
    checkRepositoryConfigs(source, binary, compiled);
    checkInvalid(binary, compiled);
    checkValid(binary, compiled);
    checkStrings(binary, compiled);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  for (const f of failures) console.log(`FAIL: ${f}`);
  console.log(`${passed} passed, ${failures.length} failed`);
  process.exitCode = failures.length === 0 ? 0 : 1;
}

main();
