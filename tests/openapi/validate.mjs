// Validates the OpenAPI documents that `patterngate openapi` prints for every
// shipped config (tests/openapi/README.md): config/examples/*.json, the
// embedded default (no -c), tests/schema/valid/*.json that load, and
// tests/openapi/features.json (every template form and route key).
//
// Each document must pass @apidevtools/swagger-parser's validate() (the
// OpenAPI 3.1 schema, every $ref resolved; pinned by package-lock.json),
// and the rules that validator leaves out for OpenAPI 3 (it checks only the
// schema there):
//   - every {name} of a path is a path parameter (required) of each of its
//     operations, and every path parameter is in the path;
//   - no operation lists the same parameter (in, name) twice;
//   - operationIds are unique;
//   - no two paths are equivalent (the same but for template names);
//   - every schema compiles as JSON Schema 2020-12 (Ajv, pinned);
//   - every operation has a 2XX response;
// and it must hold exactly the config's routes: each route's path in
// {name} form under each of its methods (* = get, post, put, patch,
// delete), plus the generic API's two paths when it is on for a service.
//
//   node tests/openapi/validate.mjs --source DIR --binary PATH
// prints one line per document and `N passed, M failed`; exit 1 on failure.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

let SwaggerParser, Ajv2020;
try {
  SwaggerParser = (await import('@apidevtools/swagger-parser')).default;
  Ajv2020 = (await import('ajv/dist/2020.js')).default;
} catch (e) {
  console.error(`validate.mjs: cannot load the validator (${e.message}): run scripts/setup, which installs tests/openapi's npm packages`);
  process.exit(2);
}

// The environment `--check` gets in tests/schema/check_schema.mjs, for the
// configs that use ${...}; nothing else of the caller's environment.
const ENV = {
  PATH: process.env.PATH,
  GATEWAY_TOKEN: 't0ken',
  ORDERS_ADDRESS: 'orders.default.svc:3000',
  HOST: '127.0.0.1',
  TOKEN: 't0ken',
  PG_SCHEMA_TEST_ADMIN: '127.0.0.1:9901',
  PG_SCHEMA_TEST_TOKEN: 't0ken',
  PG_SCHEMA_TEST_EMPTY: '',
};
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--source') args.source = argv[i + 1];
    else if (argv[i] === '--binary') args.binary = argv[i + 1];
    else usage(`unknown argument ${argv[i]}`);
  }
  if (!args.source || !args.binary) usage('--source and --binary are required');
  return args;
}

function usage(message) {
  console.error(`validate.mjs: ${message}\nusage: validate.mjs --source DIR --binary PATH`);
  process.exit(2);
}

// `patterngate openapi [-c FILE]`: the document, or null when the config
// does not load (exit 2), with stderr.
function documentOf(binary, file) {
  const run = spawnSync(binary, file ? ['openapi', '-c', file] : ['openapi'], { env: ENV, encoding: 'utf8' });
  if (run.status === 2) return { doc: null, why: run.stderr.trim() };
  if (run.status !== 0) throw new Error(`exit ${run.status}: ${run.stderr}`);
  return { doc: JSON.parse(run.stdout) };
}

// A route path, or a path of the document, as the list of its segments:
// literals decoded, captures and {name} templates as null. "/users/:id/"
// and "/users/{id}" give ["users", null].
function routeShape(path) {
  const segments = path.split('/').filter((s, i, all) => !(s === '' && (i === 0 || i === all.length - 1)));
  return JSON.stringify(segments.map((s) => (s.startsWith(':') || s.startsWith('*') ? null : decodeURIComponent(s))));
}

function docShape(path) {
  const segments = path === '/' ? [] : path.slice(1).split('/');
  return JSON.stringify(segments.map((s) => (/^\{[^}]*\}$/.test(s) ? null : decodeURIComponent(s))));
}

// ${NAME} / ${NAME:-default} in every string of the config, from ENV (as
// the loader does; $${ is a literal ${).
function substitute(value) {
  if (typeof value === 'string')
    return value.replace(/\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (all, name, fallback) =>
      all === '$${' ? '${' : ENV[name] || (fallback ?? ''));
  if (Array.isArray(value)) return value.map(substitute);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v)]));
  return value;
}

// Every operation of the config's routes, as "method shape".
function expectedOperations(config, doc) {
  const expected = new Set();
  for (const route of config.routes || [])
    for (const m of route.method === '*' ? METHODS : [route.method.toLowerCase()])
      expected.add(`${m} ${routeShape(route.path)}`);
  const generic = config.generic_api ?? true;
  const someService = Object.keys(config.services || {}).length > 0;
  if (someService && (generic === true || (Array.isArray(generic) && generic.length > 0))) {
    expected.add(`post ${routeShape('/v1/send/:service')}`);
    expected.add(`post ${routeShape('/v1/emit/:service')}`);
  }
  return expected;
}

function operationsOf(doc) {
  const found = [];
  for (const [path, item] of Object.entries(doc.paths || {}))
    for (const m of METHODS)
      if (item[m]) found.push({ path, method: m, op: item[m] });
  return found;
}

// The checks swagger-parser leaves out for OpenAPI 3; returns problems.
function semanticProblems(doc) {
  const problems = [];
  const ids = new Map();
  const shapes = new Map();
  for (const path of Object.keys(doc.paths || {})) {
    const shape = path.replace(/\{[^}]*\}/g, '{}');
    if (shapes.has(shape)) problems.push(`paths ${shapes.get(shape)} and ${path} are equivalent`);
    shapes.set(shape, path);
  }
  for (const { path, method, op } of operationsOf(doc)) {
    const where = `${method} ${path}`;
    const names = [...path.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]);
    const params = op.parameters || [];
    const seen = new Set();
    for (const p of params) {
      const key = `${p.in} ${p.in === 'header' ? p.name.toLowerCase() : p.name}`;
      if (seen.has(key)) problems.push(`${where}: parameter ${key} twice`);
      seen.add(key);
      if (p.in === 'path' && !names.includes(p.name)) problems.push(`${where}: path parameter ${p.name} is not in the path`);
      if (p.in === 'path' && p.required !== true) problems.push(`${where}: path parameter ${p.name} is not required`);
    }
    for (const name of names)
      if (!params.some((p) => p.in === 'path' && p.name === name)) problems.push(`${where}: {${name}} has no parameter`);
    if (ids.has(op.operationId)) problems.push(`${where}: operationId ${op.operationId} also at ${ids.get(op.operationId)}`);
    ids.set(op.operationId, where);
    if (!Object.keys(op.responses || {}).some((s) => /^2(\d\d|XX)$/.test(s))) problems.push(`${where}: no 2XX response`);
  }
  return problems;
}

// Every `schema` in the document compiles as JSON Schema 2020-12 (with the
// document's components, for $refs).
function schemaProblems(doc) {
  const problems = [];
  const ajv = new Ajv2020({ strict: false, validateFormats: false });
  ajv.addSchema({ $id: 'urn:patterngate:openapi', components: doc.components || {} });
  const visit = (node, where) => {
    if (node === null || typeof node !== 'object') return;
    for (const [key, value] of Object.entries(node)) {
      if (key === 'schema' && value && typeof value === 'object' && !Array.isArray(value)) {
        const text = JSON.stringify(value).replaceAll('"#/components/', '"urn:patterngate:openapi#/components/');
        try {
          ajv.compile(JSON.parse(text));
        } catch (e) {
          problems.push(`${where}.schema does not compile: ${e.message}`);
        }
      } else {
        visit(value, `${where}.${key}`);
      }
    }
  };
  visit(doc.paths, 'paths');
  for (const [name, schema] of Object.entries(doc.components?.schemas || {})) {
    try {
      ajv.compile(schema);
    } catch (e) {
      problems.push(`components.schemas.${name} does not compile: ${e.message}`);
    }
  }
  return problems;
}

function routeProblems(config, doc) {
  const problems = [];
  const expected = expectedOperations(config, doc);
  const found = new Set(operationsOf(doc).map(({ path, method }) => `${method} ${docShape(path)}`));
  for (const e of expected) if (!found.has(e)) problems.push(`missing operation ${e}`);
  for (const f of found) if (!expected.has(f)) problems.push(`operation ${f} is no route`);
  return problems;
}

async function check(binary, label, file, mustLoad) {
  const { doc, why } = documentOf(binary, file);
  if (!doc) {
    if (mustLoad) return [`does not load: ${why}`];
    console.log(`skip ${label}: does not load here (${why.split('\n')[0]})`);
    return null;
  }
  const problems = [];
  try {
    await SwaggerParser.validate(structuredClone(doc));
  } catch (e) {
    problems.push(`swagger-parser: ${e.message}`);
  }
  problems.push(...semanticProblems(doc), ...schemaProblems(doc));
  const config = file ? substitute(JSON.parse(readFileSync(file, 'utf8'))) : { services: { default: {} }, generic_api: true };
  problems.push(...routeProblems(config, doc));
  const count = operationsOf(doc).length;
  if (problems.length === 0) console.log(`ok ${label}: ${count} operations`);
  return problems;
}

async function main() {
  const { source, binary } = parseArgs(process.argv.slice(2));
  const jsonIn = (dir) => readdirSync(join(source, dir)).filter((n) => n.endsWith('.json')).sort()
    .map((n) => join(source, dir, n));
  const targets = [
    ...jsonIn('config/examples').map((f) => [f, true]),
    [null, true],
    [join(source, 'tests/openapi/features.json'), true],
    ...jsonIn('tests/schema/valid').map((f) => [f, false]),
  ];
  let passed = 0, failed = 0;
  for (const [file, mustLoad] of targets) {
    const label = file ? file.slice(source.length).replace(/^\//, '') : '<default>';
    const problems = await check(binary, label, file, mustLoad);
    if (problems === null) continue;
    if (problems.length === 0) {
      passed++;
      continue;
    }
    failed++;
    for (const p of problems) console.log(`FAIL: ${label}: ${p}`);
  }
  console.log(`${passed} passed, ${failed} failed`);
  if (failed > 0 || passed < 5) process.exit(1);
}

main().catch((e) => {
  console.error(`validate.mjs: ${e.stack || e.message}`);
  process.exit(1);
});
