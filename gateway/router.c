#include "gateway/router.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/urlcode.h"

#define NO_NODE SIZE_MAX

/* Route indices (into cfg->routes), in config order. */
typedef struct route_list {
    size_t *items;
    size_t count;
} route_list;

/*
 * A trie node stands for a sequence of segment kinds and literals, e.g.
 * "/users/:". Children are addressed by index into router.nodes.
 */
typedef struct rnode {
    const char *literal;  /* the literal that leads here (borrowed), or NULL */
    size_t literal_len;
    size_t *literals;     /* literal children, sorted by literal_cmp() */
    size_t literal_count;
    size_t param;         /* the `:name` child, or NO_NODE */
    route_list routes;    /* routes whose path ends here */
    route_list rest;      /* routes whose path ends with `*name` here */
} rnode;

struct router {
    const config *cfg;
    rnode *nodes;         /* nodes[0] is the root */
    size_t node_count;
    size_t node_cap;
};

/* ---- building ------------------------------------------------------------ */

static int list_push(route_list *list, size_t value)
{
    size_t *items = realloc(list->items, (list->count + 1) * sizeof *items);
    if (!items)
        return -ENOMEM;
    items[list->count++] = value;
    list->items = items;
    return 0;
}

/* Appends an empty node; returns its index, or NO_NODE when out of memory. */
static size_t node_add(router_t *r, const char *literal, size_t literal_len)
{
    if (r->node_count == r->node_cap) {
        size_t cap = r->node_cap ? r->node_cap * 2 : 16;
        rnode *nodes = realloc(r->nodes, cap * sizeof *nodes);
        if (!nodes)
            return NO_NODE;
        r->nodes = nodes;
        r->node_cap = cap;
    }
    rnode *node = &r->nodes[r->node_count];
    memset(node, 0, sizeof *node);
    node->literal = literal;
    node->literal_len = literal_len;
    node->param = NO_NODE;
    return r->node_count++;
}

static int literal_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

/* The literal child of `parent` for seg, or NO_NODE. Binary search. */
static size_t find_literal(const router_t *r, const rnode *parent, const char *seg, size_t len)
{
    size_t lo = 0, hi = parent->literal_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const rnode *child = &r->nodes[parent->literals[mid]];
        int c = literal_cmp(seg, len, child->literal, child->literal_len);
        if (c == 0)
            return parent->literals[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NO_NODE;
}

/* Inserts a new literal child in sorted place; returns it or NO_NODE. */
static size_t add_literal(router_t *r, size_t parent, const char *seg, size_t len)
{
    size_t child = node_add(r, seg, len);
    if (child == NO_NODE)
        return NO_NODE;
    rnode *p = &r->nodes[parent];
    size_t *kids = realloc(p->literals, (p->literal_count + 1) * sizeof *kids);
    if (!kids)
        return NO_NODE; /* the orphan node is freed with the others */
    size_t at = 0;
    while (at < p->literal_count &&
           literal_cmp(r->nodes[kids[at]].literal, r->nodes[kids[at]].literal_len, seg, len) < 0)
        at++;
    memmove(kids + at + 1, kids + at, (p->literal_count - at) * sizeof *kids);
    kids[at] = child;
    p->literals = kids;
    p->literal_count++;
    return child;
}

/* The child of `node` for segment `seg`, created when missing. */
static size_t child_for(router_t *r, size_t node, const route_segment *seg)
{
    if (seg->kind == ROUTE_SEGMENT_LITERAL) {
        size_t child = find_literal(r, &r->nodes[node], seg->text, seg->length);
        return child != NO_NODE ? child : add_literal(r, node, seg->text, seg->length);
    }
    if (r->nodes[node].param == NO_NODE) {
        size_t child = node_add(r, NULL, 0);
        if (child != NO_NODE)
            r->nodes[node].param = child;
    }
    return r->nodes[node].param;
}

static int insert_route(router_t *r, size_t index)
{
    const route_path *path = &r->cfg->routes[index].path;
    size_t node = 0;
    for (size_t i = 0; i < path->count; i++) {
        const route_segment *seg = &path->segments[i];
        if (seg->kind == ROUTE_SEGMENT_REST)
            return list_push(&r->nodes[node].rest, index);
        node = child_for(r, node, seg);
        if (node == NO_NODE)
            return -ENOMEM;
    }
    return list_push(&r->nodes[node].routes, index);
}

router_t *router_new(const config *cfg)
{
    router_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->cfg = cfg;
    if (node_add(r, NULL, 0) == NO_NODE)
        goto fail;
    for (size_t i = 0; i < cfg->route_count; i++)
        if (insert_route(r, i))
            goto fail;
    return r;
fail:
    router_free(r);
    return NULL;
}

void router_free(router_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->node_count; i++) {
        free(r->nodes[i].literals);
        free(r->nodes[i].routes.items);
        free(r->nodes[i].rest.items);
    }
    free(r->nodes);
    free(r);
}

/* ---- the match struct ------------------------------------------------------ */

void router_match_init(router_match_t *m)
{
    memset(m, 0, sizeof *m);
    m->outcome = ROUTER_NOT_FOUND;
}

void router_match_free(router_match_t *m)
{
    buf_free(&m->path);
    free(m->segments);
    free(m->capture_store);
    router_match_init(m);
}

span_t router_match_segment(const router_match_t *m, size_t i)
{
    return span_of(m->path.data + m->segments[i].off, m->segments[i].len);
}

static int reserve_segments(router_match_t *m, size_t count)
{
    if (count <= m->segment_cap)
        return 0;
    router_segment *segs = realloc(m->segments, count * sizeof *segs);
    if (!segs)
        return -ENOMEM;
    m->segments = segs;
    m->segment_cap = count;
    return 0;
}

static int reserve_captures(router_match_t *m, size_t count)
{
    if (count <= m->capture_cap)
        return 0;
    span_t *caps = realloc(m->capture_store, count * sizeof *caps);
    if (!caps)
        return -ENOMEM;
    m->capture_store = caps;
    m->capture_cap = count;
    return 0;
}

static long bad_path(router_match_t *m, urlcode_status st, size_t offset)
{
    if (st == URLCODE_NUL)
        snprintf(m->error, sizeof m->error,
                 "the path holds %%00 at byte %zu (NUL is not allowed)", offset);
    else
        snprintf(m->error, sizeof m->error, "invalid percent-encoding in the path at byte %zu",
                 offset);
    return ROUTER_DECODE_BAD;
}

/* Decodes raw[0..n) (a segment starting at byte `at` of the path) to the end
 * of m->path, which has room for it. */
static long decode_segment(router_match_t *m, const char *raw, size_t n, size_t at, size_t i)
{
    size_t len = 0;
    urlcode_status st = urlcode_decode(raw, n, URLCODE_PATH, m->path.data + m->path.len, &len);
    if (st != URLCODE_OK) {
        size_t offset = 0;
        urlcode_check(raw, n, &offset);
        return bad_path(m, st, at + offset);
    }
    m->segments[i].off = m->path.len;
    m->segments[i].len = len;
    m->path.len += len;
    return 0;
}

long router_decode_path(const char *raw_path, router_match_t *m)
{
    size_t path_len = strlen(raw_path);
    buf_clear(&m->path);
    m->error[0] = '\0';
    if (path_len == 0 || raw_path[0] != '/') {
        snprintf(m->error, sizeof m->error, "the path does not start with '/'");
        return ROUTER_DECODE_BAD;
    }
    size_t n = path_len;
    if (n > 1 && raw_path[n - 1] == '/')
        n--; /* the trailing '/' */
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += raw_path[i] == '/';
    if (n == 1)
        count = 0; /* "/" is the root */
    if (reserve_segments(m, count ? count : 1) || buf_reserve(&m->path, n))
        return -ENOMEM;
    size_t start = 1;
    for (size_t i = 0; i < count; i++) {
        const char *slash = memchr(raw_path + start, '/', n - start);
        size_t end = slash ? (size_t)(slash - raw_path) : n;
        if (i > 0)
            m->path.data[m->path.len++] = '/'; /* joins rest captures */
        long rc = decode_segment(m, raw_path + start, end - start, start, i);
        if (rc)
            return rc;
        start = end + 1;
    }
    return (long)count;
}

/* ---- matching -------------------------------------------------------------- */

/* One match in progress. */
typedef struct walk {
    const router_t *r;
    router_match_t *m;
    int method;            /* config_method, or -1 for one no route names */
    size_t count;          /* request segments */
    unsigned allow;        /* methods of routes that matched the path */
    size_t on_path;        /* the first such route, or NO_NODE */
    size_t found;          /* route index, or NO_NODE */
} walk_t;

/* The config method a request method matches: HEAD is GET without the
 * body, so it matches what GET matches. */
static int method_of(const char *method)
{
    if (strcmp(method, "HEAD") == 0)
        return CONFIG_METHOD_GET;
    for (int i = CONFIG_METHOD_GET; i <= CONFIG_METHOD_DELETE; i++)
        if (strcmp(method, config_method_name((config_method)i)) == 0)
            return i;
    return -1;
}

/* Picks from routes that match the path: the exact method first, then `*`.
 * Returns true when one accepts the method. */
static bool pick(walk_t *w, const route_list *list)
{
    size_t any = NO_NODE;
    for (size_t i = 0; i < list->count; i++) {
        config_method method = w->r->cfg->routes[list->items[i]].method;
        if (method == CONFIG_METHOD_ANY) {
            if (any == NO_NODE)
                any = list->items[i];
        } else if ((int)method == w->method) {
            w->found = list->items[i];
            return true;
        } else {
            w->allow |= 1u << method;
            if (w->on_path == NO_NODE)
                w->on_path = list->items[i];
        }
    }
    if (any == NO_NODE)
        return false;
    w->found = any;
    return true;
}

/* Depth first, literal before `:name` before `*name`: true once found. */
static bool walk_node(walk_t *w, size_t node_index, size_t pos)
{
    const rnode *node = &w->r->nodes[node_index];
    if (pos == w->count)
        return pick(w, &node->routes);
    span_t seg = router_match_segment(w->m, pos);
    if (node->literal_count) {
        size_t child = find_literal(w->r, node, seg.p, seg.n);
        if (child != NO_NODE && walk_node(w, child, pos + 1))
            return true;
    }
    if (node->param != NO_NODE && seg.n > 0 && walk_node(w, node->param, pos + 1))
        return true;
    /* The rest: segments pos.. joined, which must not be empty. */
    if (node->rest.count && w->m->path.len > w->m->segments[pos].off)
        return pick(w, &node->rest);
    return false;
}

/* The Allow value: the methods in config order, HEAD right after GET. */
static void format_allow(router_match_t *m, unsigned allow)
{
    size_t used = 0;
    m->allow[0] = '\0';
    for (int i = CONFIG_METHOD_GET; i <= CONFIG_METHOD_DELETE; i++) {
        if (!(allow & 1u << i))
            continue;
        used += (size_t)snprintf(m->allow + used, sizeof m->allow - used, "%s%s%s",
                                 used ? ", " : "", config_method_name((config_method)i),
                                 i == CONFIG_METHOD_GET ? ", HEAD" : "");
    }
}

/* Fills the captures of the found route, in capture order. */
static int set_captures(walk_t *w)
{
    router_match_t *m = w->m;
    const route_path *path = &m->route->path;
    if (reserve_captures(m, path->capture_count))
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < path->count; i++) {
        route_segment_kind kind = path->segments[i].kind;
        if (kind == ROUTE_SEGMENT_PARAM)
            m->capture_store[k++] = router_match_segment(m, i);
        else if (kind == ROUTE_SEGMENT_REST)
            m->capture_store[k++] = span_of(m->path.data + m->segments[i].off,
                                            m->path.len - m->segments[i].off);
    }
    m->captures = m->capture_store;
    m->capture_count = k;
    return 0;
}

static void reset_result(router_match_t *m)
{
    m->outcome = ROUTER_NOT_FOUND;
    m->route = NULL;
    m->route_index = 0;
    m->captures = NULL;
    m->capture_count = 0;
    m->allow[0] = '\0';
    m->error[0] = '\0';
}

router_result_t router_match(const router_t *r, const char *method, const char *raw_path,
                             router_match_t *m)
{
    reset_result(m);
    long count = router_decode_path(raw_path, m);
    if (count == -ENOMEM)
        return m->outcome = ROUTER_NO_MEMORY;
    if (count < 0)
        return m->outcome = ROUTER_BAD_PATH;
    walk_t w = {r, m, method_of(method), (size_t)count, 0, NO_NODE, NO_NODE};
    if (walk_node(&w, 0, 0)) {
        m->route = &r->cfg->routes[w.found];
        m->route_index = w.found;
        if (set_captures(&w)) {
            reset_result(m);
            return m->outcome = ROUTER_NO_MEMORY;
        }
        return m->outcome = ROUTER_FOUND;
    }
    if (w.allow) {
        format_allow(m, w.allow);
        m->route = &r->cfg->routes[w.on_path];
        m->route_index = w.on_path;
        return m->outcome = ROUTER_METHOD_NOT_ALLOWED;
    }
    return m->outcome = ROUTER_NOT_FOUND;
}
