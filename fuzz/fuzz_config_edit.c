/*
 * fuzz_config_edit: a structure-aware variant of fuzz_config. The input is
 * not the config but a script of edits to a valid one, so that nearly every
 * run gets past the JSON parser into validation, substitution, route paths
 * and templates:
 *
 *   byte 0       which base config (configs.h)
 *   then ops     each op is a byte, then its operand bytes:
 *     SET        node, dictionary value      replace a node
 *     SET_TEXT   node, length, bytes         replace with a string of input bytes
 *     DELETE     node                        remove a node from its parent
 *     ADD        node, key, value            add a member (dictionary key)
 *     APPEND     node, node                  append a copy of a node to an array
 *     INTEGER    node, 4 bytes               replace with an integer
 *     SUFFIX     node, fragment              append a fragment to a string
 *     RENAME     node, key                   move a member to another key
 *
 * Nodes are numbered in a depth-first walk of the current tree. The tree is
 * then written with jansson and loaded with fuzz_load_and_check().
 */
#include "fuzz/check.h"
#include "fuzz/configs.h"
#include "fuzz/fuzz.h"

#include <jansson.h>
#include <string.h>

static const char *const bases[] = {
    FUZZ_CONFIG_ROUTES, FUZZ_CONFIG_INGRESS, FUZZ_CONFIG_SPEC, FUZZ_CONFIG_EGRESS, FUZZ_CONFIG_EDGE,
};

/* Every key of the schema, and a few that are not. */
static const char *const keys[] = {
    "listen", "admin_listen", "workers", "shutdown_grace_ms", "generic_api", "auth",
    "bearer_tokens", "log", "level", "access", "limits", "max_body_bytes", "max_connections",
    "max_inflight", "idle_timeout_ms", "services", "endpoints", "pool_size", "connect",
    "connect_timeout_ms", "timeout_ms", "retry_attempts", "retry_delay_ms", "max_message_bytes",
    "metadata", "tls", "ca", "cert", "key", "servername", "verify", "routes", "method", "path",
    "service", "pattern", "kind", "data", "reply", "status", "app", "x", "", "cmd", "...", "$$",
    "jwt", "issuer", "audiences", "jwks_file", "algorithms", "hs256_secret", "leeway_s",
    "forward_claims", "cors", "allow_origins", "allow_methods", "allow_headers",
    "expose_headers", "allow_credentials", "max_age_s", "rate_limit_keys", "require_claims",
    "rate_limit", "rps", "burst", "sub", "scope",
};

/* Values as JSON texts: the schema's words, edge numbers, templates,
 * substitutions, route paths. */
static const char *const values[] = {
    "null", "true", "false", "0", "1", "-1", "200", "299", "300", "1024", "1025", "2147483647",
    "2147483648", "9223372036854775807", "-9223372036854775808", "1.5", "1e3", "0.0", "\"\"",
    "\"auto\"", "\"GET\"", "\"POST\"", "\"PUT\"", "\"PATCH\"", "\"DELETE\"", "\"*\"", "\"HEAD\"",
    "\"get\"", "\"send\"", "\"emit\"", "\"auto\"", "\"array\"", "\"ndjson\"", "\"sse\"",
    "\"eager\"", "\"lazy\"", "\"debug\"", "\"warn\"", "\"error\"", "\"127.0.0.1:0\"",
    "\"127.0.0.1:65535\"", "\"127.0.0.1:65536\"", "\"[::1]:80\"", "\"[::1]\"", "\"host:3000\"",
    "\"localhost\"", "\":80\"", "\"a b:1\"", "\"/\"", "\"/users/:id\"", "\"/files/*rest\"",
    "\"/a/:x/*y\"", "\"/a/*x/b\"", "\"/a//b\"", "\"/a/:x/:x\"", "\"/%2F/%00\"", "\"/%zz\"",
    "\"/caf\\u00e9\"", "\"/a b\"", "\"/:1x\"", "\"/users/\"", "\"relative\"", "\"$body\"",
    "\"$body.a.b\"", "\"$body.\"", "\"$body.a:int\"", "\"$body:json\"", "\"$path.id\"",
    "\"$path.id:int\"", "\"$path.rest:json\"", "\"$path.nope\"", "\"$query.q:bool\"",
    "\"$query.q:number\"", "\"$query.:int\"", "\"$header.X-Tenant\"", "\"$header.bad name\"",
    "\"$header.x:integer\"", "\"$bodyx\"", "\"$foo\"", "\"${PG_PORT}\"", "\"${NOPE}\"",
    "\"${NOPE:-dflt}\"", "\"${EMPTY:-e}\"", "\"${EMPTY}\"", "\"$${x}\"", "\"${\"", "\"${1A}\"",
    "\"${A-x}\"", "\"${DOLLAR}\"", "\"${CTRL}\"", "\"${UTF}\"", "\"${BIG}\"", "\"${NEG}\"",
    "\"${PATH}\"", "\"${TPL}\"", "\"127.0.0.1:${PORT}\"", "\"${HOST}:${PORT}\"",
    "\"\\u0000\"", "\"\\ud800\"", "\"caf\\u00e9\"", "[]", "{}", "[\"app\"]", "[\"nope\"]",
    "[\"127.0.0.1:3000\"]", "[\"a\",\"a\"]", "{\"cmd\":\"x\"}", "{\"$body\":\"$body\"}",
    "[\"$path.id\",{\"a\":\"$query.a\"}]", "{\"ca\":\"ca.pem\"}", "{\"cert\":\"c.pem\"}",
    "{\"endpoints\":[\"127.0.0.1:1\"]}",
    /* the templates of "Route mapping for real REST APIs", good and bad */
    "\"$query\"", "\"$headers\"", "\"$path\"", "\"$jwt\"", "\"$jwt.sub\"",
    "\"$jwt.claims.org.id:int\"", "\"$client.ip\"", "\"$body.title?\"", "\"$query.l:int?\"",
    "\"$$x\"", "\"$$\"", "\"$qeury.id\"", "\"$Body\"", "\"$header\"", "\"$jwt.a.b\"",
    "\"$jwt.claims\"", "\"$query:int\"", "\"$query.n?:int\"", "\"$client\"", "\"$1\"",
    "{\"...\":\"$body\",\"id\":\"$path.id:int\"}", "{\"...\":[\"$query\",\"$body\"]}",
    "{\"...\":\"$path.id\"}", "{\"...\":[]}", "{\"...\":1}", "{\"a\":\"$query.a?\"}",
    "[{\"...\":\"$jwt\",\"x\":{\"...\":\"$headers\",\"y\":\"$header.y?\"}}]",
    "{\"...\":\"$query.f:json?\",\"t\":\"$body.t:bool?\"}",
    "{\"method\":\"GET\",\"path\":\"/x/:y\",\"service\":\"app\",\"pattern\":1,\"data\":\"$path.y\"}",
    "\"none\"", "\"bearer\"", "\"jwt\"", "\"RS256\"", "\"HS256\"", "\"EdDSA\"",
    "[\"RS256\",\"none\"]", "[\"HS256\"]", "[\"ES256\",\"ES256\"]",
    "\"0123456789abcdef0123456789abcdef\"", "\"jwks.json\"", "\"https://a.example\"",
    "\"HTTPS://A.example:443\"", "\"http://[::1]:80\"", "\"null\"", "\"https://a.example/\"",
    "[\"*\"]", "[\"*\",\"https://a.example\"]", "[\"https://a.example\",\"http://b:8080\"]",
    "[\"Content-Type\",\"x-api-key\"]", "[\"x y\"]", "86400", "86401", "0.5", "1e-7", "1e12",
    "\"$jwt.sub\"", "\"$jwt.claims.org.id\"", "\"$jwt\"", "\"$client.ip\"",
    "\"$header.x-api-key\"", "\"$query.k\"", "\"$path.y\"", "\"$path.nope\"",
    "{\"rps\":10,\"burst\":5,\"key\":\"$client.ip\"}", "{\"allow_origins\":[\"*\"]}",
    "{\"scope\":\"a\",\"n\":1,\"b\":true}",
    "{\"hs256_secret\":\"0123456789abcdef0123456789abcdef\"}",
    "{\"jwks_file\":\"k.json\",\"algorithms\":[\"EdDSA\"]}",
};

/* Fragments appended to strings. */
static const char *const fragments[] = {
    ":int", ":number", ":bool", ":json", ":nope", ".a", ".", "/", "/:p", "/*r", "//", "%2F",
    "%00", "%", "${PG_PORT}", "${", "}", "$${", ":", "0", "\xc3\xa9", "x", "?", ".claims", "$",
    "s", ".ip",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_NODES 512
#define MAX_OPS 24

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static unsigned next_byte(reader *r)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

typedef struct node {
    json_t *value;
    json_t *parent; /* NULL for the root */
    const char *key; /* in an object parent */
    size_t index;    /* in an array parent */
} node;

typedef struct tree {
    json_t *root;
    node nodes[MAX_NODES];
    size_t count;
} tree;

static void walk(tree *t, json_t *value, json_t *parent, const char *key, size_t index)
{
    if (t->count == MAX_NODES)
        return;
    t->nodes[t->count++] = (node){ value, parent, key, index };
    if (json_is_object(value)) {
        const char *k;
        json_t *v;
        json_object_foreach(value, k, v)
            walk(t, v, value, k, 0);
    } else if (json_is_array(value)) {
        for (size_t i = 0; i < json_array_size(value); i++)
            walk(t, json_array_get(value, i), value, NULL, i);
    }
}

/* Nodes in value, counting up to `limit`. */
static size_t count_nodes(const json_t *value, size_t limit)
{
    size_t n = 1;
    if (json_is_object(value)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)value, k, v) {
            if (n >= limit)
                break;
            n += count_nodes(v, limit - n);
        }
    } else if (json_is_array(value)) {
        for (size_t i = 0; i < json_array_size(value) && n < limit; i++)
            n += count_nodes(json_array_get(value, i), limit - n);
    }
    return n;
}

static void rewalk(tree *t)
{
    t->count = 0;
    walk(t, t->root, NULL, NULL, 0);
}

/* Replaces node n by `value` (a new reference, stolen). */
static void replace(tree *t, const node *n, json_t *value)
{
    if (!value)
        return;
    if (!n->parent) {
        json_decref(t->root);
        t->root = value;
    } else if (json_is_object(n->parent)) {
        json_object_set_new(n->parent, n->key, value);
    } else {
        json_array_set_new(n->parent, n->index, value);
    }
}

static json_t *dictionary_value(unsigned i)
{
    const char *text = values[i % COUNT(values)];
    return json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
}

static void apply(tree *t, reader *r)
{
    unsigned op = next_byte(r) % 8;
    const node *n = &t->nodes[next_byte(r) % t->count];
    switch (op) {
    case 0:
        replace(t, n, dictionary_value(next_byte(r)));
        break;
    case 1: {
        size_t len = next_byte(r) % 48;
        if (len > r->n)
            len = r->n;
        replace(t, n, json_stringn((const char *)r->p, len)); /* NULL unless UTF-8 */
        r->p += len;
        r->n -= len;
        break;
    }
    case 2:
        if (n->parent && json_is_object(n->parent))
            json_object_del(n->parent, n->key);
        else if (n->parent)
            json_array_remove(n->parent, n->index);
        break;
    case 3: {
        const char *key = keys[next_byte(r) % COUNT(keys)];
        json_t *v = dictionary_value(next_byte(r));
        if (json_is_object(n->value))
            json_object_set_new(n->value, key, v);
        else
            json_decref(v);
        break;
    }
    case 4: {
        const node *what = &t->nodes[next_byte(r) % t->count];
        /* Copies of ancestors would double the tree at each op: bound it. */
        if (json_is_array(n->value) && t->count < MAX_NODES &&
            count_nodes(what->value, MAX_NODES) < MAX_NODES - t->count)
            json_array_append_new(n->value, json_deep_copy(what->value));
        break;
    }
    case 5: {
        uint32_t v = next_byte(r);
        v = v << 8 | next_byte(r);
        v = v << 8 | next_byte(r);
        v = v << 8 | next_byte(r);
        replace(t, n, json_integer((json_int_t)(int32_t)v));
        break;
    }
    case 6: {
        const char *frag = fragments[next_byte(r) % COUNT(fragments)];
        if (json_is_string(n->value)) {
            size_t a = json_string_length(n->value), b = strlen(frag);
            char *s = malloc(a + b);
            FUZZ_CHECK(s != NULL, "oom");
            memcpy(s, json_string_value(n->value), a);
            memcpy(s + a, frag, b);
            replace(t, n, json_stringn(s, a + b));
            free(s);
        }
        break;
    }
    default: {
        const char *key = keys[next_byte(r) % COUNT(keys)];
        if (n->parent && json_is_object(n->parent) && strcmp(n->key, key) != 0) {
            char *old = strdup(n->key);
            FUZZ_CHECK(old != NULL, "oom");
            json_object_set(n->parent, key, n->value);
            json_object_del(n->parent, old);
            free(old);
        }
        break;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    reader r = { data + 1, size - 1 };
    tree *t = malloc(sizeof *t);
    FUZZ_CHECK(t != NULL, "oom");
    json_error_t error;
    t->root = json_loads(bases[data[0] % COUNT(bases)], 0, &error);
    FUZZ_CHECK(t->root != NULL, "base config %u: %s", data[0] % (unsigned)COUNT(bases), error.text);
    for (int ops = 0; r.n > 0 && ops < MAX_OPS; ops++) {
        rewalk(t);
        apply(t, &r);
    }
    char *text = json_dumps(t->root, JSON_COMPACT | JSON_ENCODE_ANY);
    FUZZ_CHECK(text != NULL, "json_dumps failed");
    config_free(fuzz_load_and_check(text, strlen(text)));
    free(text);
    json_decref(t->root);
    free(t);
    return 0;
}
