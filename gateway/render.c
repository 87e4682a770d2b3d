#include "gateway/render.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_scan.h"
#include "core/json_write.h"
#include "core/urlcode.h"
#include "core/utf8.h"
#include "gateway/convert.h"
#include "gateway/merge.h"

#define SHOWN_MAX 64       /* bytes of a value quoted in an error message */
#define RENDER_OMIT 1      /* (internal) an optional member's value is absent */
#define PRESENT_ON_STACK 32 /* members of an object whose presence fits the stack */
#define FORM_TYPE "application/x-www-form-urlencoded"

/* ---- error messages -------------------------------------------------------- */

/* A message being written into the caller's fixed buffer (truncated). */
typedef struct msg {
    char *p;
    size_t size;
    size_t len;
} msg_t;

static void msg_add(msg_t *m, const char *s, size_t n)
{
    if (m->size == 0)
        return;
    size_t room = m->size - 1 - m->len;
    if (n > room)
        n = room;
    memcpy(m->p + m->len, s, n);
    m->len += n;
    m->p[m->len] = '\0';
}

static void msg_cstr(msg_t *m, const char *s) { msg_add(m, s, strlen(s)); }

/*
 * Appends up to SHOWN_MAX bytes of s[0..n) (cut at a UTF-8 boundary), with
 * control characters escaped; as a JSON string when `quote` (quotes and
 * backslashes escaped too), else as is (JSON text from the body). "..."
 * follows when cut.
 */
static void msg_shown(msg_t *m, const char *s, size_t n, bool quote)
{
    size_t shown = n;
    if (shown > SHOWN_MAX) {
        shown = SHOWN_MAX;
        while (shown > 0 && ((unsigned char)s[shown] & 0xC0) == 0x80)
            shown--;
    }
    if (quote)
        msg_add(m, "\"", 1);
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            msg_cstr(m, esc);
        } else if (quote && (c == '"' || c == '\\')) {
            esc[0] = '\\';
            esc[1] = (char)c;
            msg_add(m, esc, 2);
        } else {
            msg_add(m, s + i, 1);
        }
    }
    if (quote)
        msg_add(m, "\"", 1);
    if (shown < n)
        msg_cstr(m, "...");
}

static void msg_members(msg_t *m, const template_slot *slot)
{
    msg_cstr(m, "\"");
    for (size_t i = 0; i < slot->member_count; i++) {
        if (i)
            msg_cstr(m, ".");
        msg_cstr(m, slot->members[i]);
    }
    msg_cstr(m, "\"");
}

/* "query parameter \"q\"", "body member \"a.b\"", "body", ... */
static void msg_who(msg_t *m, const template_slot *slot)
{
    switch (slot->source) {
    case TEMPLATE_SOURCE_BODY:
        msg_cstr(m, slot->whole ? "body" : "body member ");
        break;
    case TEMPLATE_SOURCE_JWT:
        msg_cstr(m, slot->whole ? "JWT claims" : "JWT claim ");
        break;
    case TEMPLATE_SOURCE_PATH:
        msg_cstr(m, slot->whole ? "path parameters" : "path parameter \"");
        break;
    case TEMPLATE_SOURCE_QUERY:
        msg_cstr(m, slot->whole ? "query" : "query parameter \"");
        break;
    case TEMPLATE_SOURCE_HEADER:
        msg_cstr(m, slot->whole ? "headers" : "header \"");
        break;
    case TEMPLATE_SOURCE_CLIENT_IP:
        msg_cstr(m, "client address");
        return;
    }
    if (slot->whole)
        return;
    if (slot->source == TEMPLATE_SOURCE_BODY || slot->source == TEMPLATE_SOURCE_JWT) {
        msg_members(m, slot);
        return;
    }
    msg_cstr(m, slot->name);
    msg_cstr(m, "\"");
}

/* ---- the renderer ---------------------------------------------------------- */

/* Objects made once per render from the request. */
typedef enum made_kind {
    MADE_QUERY,   /* $query */
    MADE_HEADERS, /* $headers */
    MADE_PATH,    /* $path */
    MADE_FORM,    /* a form body */
    MADE_COUNT,
} made_kind;

/* A copy of a spread's JSON that lives in a buffer reused meanwhile. */
typedef struct held {
    struct held *next;
    size_t n;
    char text[];
} held_t;

/* What only spreads, whole objects, forms, repeated headers and the
 * client's address need: set up on first use (rend_state()), so that a
 * plain template pays nothing for it. */
typedef struct render_state {
    buf_t work;            /* a repeated header joined; form fields decoded */
    merge_t gen;           /* making the objects below */
    merge_t spread;        /* the spreads of one object */
    buf_t made[MADE_COUNT];
    unsigned made_mask;    /* 1 << kind: made[kind] is ready */
    held_t *held;
    char ip[RENDER_IP_TEXT_SIZE]; /* $client.ip */
} render_state;

typedef struct renderer {
    const render_input_t *req;
    buf_t *scratch;        /* body strings unescaped for conversions */
    buf_t *out;
    msg_t error;
    buf_t local_scratch;   /* when the caller gives none */
    bool has_state;        /* `state` is set up */
    render_state state;
} renderer_t;

static render_state *rend_state(renderer_t *r)
{
    if (!r->has_state) {
        memset(&r->state, 0, sizeof r->state);
        r->has_state = true;
    }
    return &r->state;
}

typedef struct slot_value {
    bool absent;
    bool null;      /* JSON null: null whatever the conversion */
    bool is_json;   /* raw is JSON text (body, claims, made objects); else a
                       string's bytes */
    span_t raw;
    span_t text;    /* what a conversion reads */
} slot_value;

static void renderer_free(renderer_t *r)
{
    buf_free(&r->local_scratch);
    if (!r->has_state)
        return;
    render_state *st = &r->state;
    buf_free(&st->work);
    merge_free(&st->gen);
    merge_free(&st->spread);
    for (size_t i = 0; i < MADE_COUNT; i++)
        buf_free(&st->made[i]);
    while (st->held) {
        held_t *next = st->held->next;
        free(st->held);
        st->held = next;
    }
}

static msg_t *fail_reset(renderer_t *r)
{
    r->error.len = 0;
    if (r->error.size)
        r->error.p[0] = '\0';
    return &r->error;
}

/* Starts "<who><sep>" in the error buffer. */
static msg_t *fail_start(renderer_t *r, const template_slot *slot, const char *sep)
{
    msg_t *m = fail_reset(r);
    msg_who(m, slot);
    msg_cstr(m, sep);
    return m;
}

static int fail_nomem(renderer_t *r)
{
    msg_cstr(fail_reset(r), "out of memory");
    return -ENOMEM;
}

static int fail_text(renderer_t *r, const char *text)
{
    msg_cstr(fail_reset(r), text);
    return -1;
}

static int append(renderer_t *r, const char *p, size_t n)
{
    return buf_append(r->out, p, n) ? fail_nomem(r) : 0;
}

static bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* The body's JSON value without the whitespace around it; n == 0: empty. */
static span_t trim_body(span_t body)
{
    if (body.n == 0)
        return span_of("", 0); /* an absent body is {NULL, 0}: no arithmetic on NULL */
    size_t start = 0, end = body.n;
    while (start < end && is_json_space(body.p[start]))
        start++;
    while (end > start && is_json_space(body.p[end - 1]))
        end--;
    return span_of(body.p + start, end - start);
}

static bool equal_ignoring_case(span_t a, const char *b, size_t n)
{
    if (a.n != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char x = a.p[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

/* ---- form bodies ----------------------------------------------------------- */

bool render_body_is_form(span_t content_type)
{
    static const char form[] = FORM_TYPE;
    size_t k = sizeof form - 1, i = 0;
    while (i < content_type.n && (content_type.p[i] == ' ' || content_type.p[i] == '\t'))
        i++;
    if (content_type.n - i < k || !equal_ignoring_case(span_of(content_type.p + i, k), form, k))
        return false;
    i += k;
    while (i < content_type.n && (content_type.p[i] == ' ' || content_type.p[i] == '\t'))
        i++;
    return i == content_type.n || content_type.p[i] == ';';
}

bool render_body_read_as_form(span_t body, span_t content_type)
{
    if (!render_body_is_form(content_type))
        return false;
    span_t value = trim_body(body);
    return value.n == 0 || (value.p[0] != '{' && value.p[0] != '[');
}

/* Writes "form body: <what> at byte N". */
static int form_fail(msg_t *m, const char *what, size_t offset)
{
    char line[160];
    snprintf(line, sizeof line, "form body: %s at byte %zu", what, offset);
    m->len = 0;
    if (m->size)
        m->p[0] = '\0';
    msg_cstr(m, line);
    return -1;
}

/* Decodes raw (at `offset` in the body) onto *work. */
static int form_decode(span_t raw, size_t offset, buf_t *work, msg_t *m)
{
    urlcode_status st = urlcode_decode_buf(raw.p, raw.n, URLCODE_QUERY, work);
    if (st == URLCODE_OK)
        return 0;
    if (st == URLCODE_NOMEM)
        return -ENOMEM;
    size_t at = 0;
    urlcode_check(raw.p, raw.n, &at);
    return form_fail(m, urlcode_status_text(st), offset + at);
}

/*
 * Reads a form body: every field must decode and be UTF-8. Adds the fields
 * to `into` (NULL: only checks). 0, -1 with the message, or -ENOMEM.
 */
static int form_scan(span_t body, buf_t *work, merge_t *into, msg_t *m)
{
    urlcode_pairs it;
    span_t name, value;
    size_t offset;
    urlcode_pairs_init(&it, body.p, body.n);
    while (urlcode_pairs_next(&it, &name, &value, &offset)) {
        buf_clear(work);
        int rc = form_decode(name, (size_t)(name.p - it.s), work, m);
        size_t name_len = work->len;
        if (rc == 0)
            rc = form_decode(value, (size_t)(value.p - it.s), work, m);
        if (rc != 0)
            return rc;
        if (!utf8_valid(work->data ? work->data : "", work->len))
            return form_fail(m, "invalid UTF-8 in the field", offset);
        if (into != NULL &&
            merge_add_string(into, span_of(work->data ? work->data : "", name_len),
                             span_of(work->data ? work->data + name_len : "", work->len - name_len),
                             false) != 0)
            return -ENOMEM;
    }
    return 0;
}

/* ---- objects made from the request ----------------------------------------- */

/* Our pairs return this after writing a message, to keep it apart from the
 * walk's own RENDER_LOOKUP_BAD. */
#define PAIR_FAILED 2

/* What a walk over query parameters or headers returned, as 0 / -1 / -ENOMEM. */
static int walk_result(renderer_t *r, int rc, const char *bad)
{
    switch (rc) {
    case 0: return 0;
    case PAIR_FAILED: return -1;
    case RENDER_LOOKUP_NOMEM: return fail_nomem(r);
    case RENDER_LOOKUP_BAD: return fail_text(r, bad);
    default: return fail_text(r, "the request could not be read");
    }
}

static int add_query_pair(void *context, span_t name, span_t value)
{
    renderer_t *r = context;
    if (!utf8_valid(name.p ? name.p : "", name.n) || !utf8_valid(value.p ? value.p : "", value.n)) {
        msg_t *m = fail_reset(r);
        msg_cstr(m, "query parameter ");
        msg_shown(m, name.p, name.n, true);
        msg_cstr(m, " is not valid UTF-8");
        return PAIR_FAILED;
    }
    return merge_add_string(&rend_state(r)->gen, name, value, false) ? RENDER_LOOKUP_NOMEM : 0;
}

static int add_header_pair(void *context, span_t name, span_t value)
{
    renderer_t *r = context;
    return merge_add_string(&rend_state(r)->gen, name, value, true) ? RENDER_LOOKUP_NOMEM : 0;
}

/* The members gathered in the state's gen written as an object into *b. */
static int write_gen(renderer_t *r, merge_rule rule, buf_t *b)
{
    bool first = true;
    if (buf_append(b, "{", 1) || merge_write(&rend_state(r)->gen, rule, NULL, NULL, &first, b) ||
        buf_append(b, "}", 1))
        return fail_nomem(r);
    return 0;
}

static int make_from_walk(renderer_t *r, render_each_fn *walk, void *context, render_pair_fn *pair,
                          const char *bad, merge_rule rule, buf_t *b)
{
    merge_clear(&rend_state(r)->gen);
    int rc = walk_result(r, walk != NULL ? walk(context, pair, r) : 0, bad);
    return rc != 0 ? rc : write_gen(r, rule, b);
}

static int make_path(renderer_t *r, const template_slot *slot, buf_t *b)
{
    const render_input_t *req = r->req;
    if (buf_append(b, "{", 1))
        return fail_nomem(r);
    for (size_t i = 0; i < slot->member_count && i < req->capture_count; i++) {
        span_t v = req->captures[i];
        if (!utf8_valid(v.p ? v.p : "", v.n)) {
            msg_t *m = fail_reset(r);
            msg_cstr(m, "path parameter \"");
            msg_cstr(m, slot->members[i]);
            msg_cstr(m, "\" is not valid UTF-8");
            return -1;
        }
        if ((i && buf_append(b, ",", 1)) ||
            json_append_string(b, slot->members[i], strlen(slot->members[i])) ||
            buf_append(b, ":", 1) || json_append_string(b, v.p ? v.p : "", v.n))
            return fail_nomem(r);
    }
    return buf_append(b, "}", 1) ? fail_nomem(r) : 0;
}

static int make_form(renderer_t *r, buf_t *b)
{
    render_state *st = rend_state(r);
    merge_clear(&st->gen);
    int rc = form_scan(r->req->body, &st->work, &st->gen, &r->error);
    if (rc == -ENOMEM)
        return fail_nomem(r);
    return rc != 0 ? rc : write_gen(r, MERGE_LAST, b);
}

/* The object of `kind`, made on first use; *view stays valid until the end
 * of the render. `slot`: the $path slot (its capture names). */
static int made_object(renderer_t *r, made_kind kind, const template_slot *slot, span_t *view)
{
    render_state *st = rend_state(r);
    buf_t *b = &st->made[kind];
    const render_input_t *req = r->req;
    if (!(st->made_mask & (1u << kind))) {
        int rc = 0;
        buf_clear(b);
        if (kind == MADE_QUERY)
            rc = make_from_walk(r, req->query_all, req->query_all_context, add_query_pair,
                                "query string: invalid percent-encoding", MERGE_FIRST, b);
        else if (kind == MADE_HEADERS)
            rc = make_from_walk(r, req->header_all, req->header_all_context, add_header_pair,
                                "headers could not be read", MERGE_JOIN_HEADERS, b);
        else if (kind == MADE_PATH)
            rc = make_path(r, slot, b);
        else
            rc = make_form(r, b);
        if (rc != 0)
            return rc;
        st->made_mask |= 1u << kind;
    }
    *view = span_of(b->data, b->len);
    return 0;
}

/* The body as JSON text: as received, or the object made of a form. */
static int body_view(renderer_t *r, span_t *view)
{
    const render_input_t *req = r->req;
    if (!render_body_read_as_form(req->body, req->content_type) || req->body.n == 0) {
        *view = trim_body(req->body);
        return 0;
    }
    return made_object(r, MADE_FORM, NULL, view);
}

/* ---- the value of a slot --------------------------------------------------- */

/* The member named by slot->members inside `root` (JSON text), or absent. */
static void walk_members(span_t root, const template_slot *slot, slot_value *v)
{
    span_t cur = trim_body(root);
    v->is_json = true;
    v->absent = cur.n == 0;
    for (size_t i = 0; i < slot->member_count && !v->absent; i++) {
        if (jscan_type_of(cur) != JSCAN_OBJECT || !jscan_member(cur, slot->members[i], &cur))
            v->absent = true;
    }
    v->raw = cur;
}

/* A string value from a lookup callback (query or header). */
static int lookup_value(renderer_t *r, const template_slot *slot, render_lookup_fn *fn,
                        void *context, slot_value *v)
{
    render_lookup_result res =
        fn ? fn(context, slot->name, strlen(slot->name), &v->raw) : RENDER_LOOKUP_ABSENT;
    switch (res) {
    case RENDER_LOOKUP_FOUND: return 0;
    case RENDER_LOOKUP_ABSENT: v->absent = true; return 0;
    case RENDER_LOOKUP_NOMEM: return fail_nomem(r);
    case RENDER_LOOKUP_BAD: break;
    }
    fail_start(r, slot, ": invalid percent-encoding");
    return -1;
}

typedef struct header_search {
    renderer_t *r;
    const char *name;
    size_t length;
    size_t found;
} header_search;

static int join_header(void *context, span_t name, span_t value)
{
    header_search *s = context;
    buf_t *work = &rend_state(s->r)->work;
    if (!equal_ignoring_case(name, s->name, s->length))
        return 0;
    const char *separator = strcmp(s->name, "cookie") == 0 ? "; " : ", ";
    if ((s->found++ && buf_append(work, separator, 2)) || buf_append_span(work, value))
        return RENDER_LOOKUP_NOMEM;
    return 0;
}

/* $header.NAME over every header: repeated ones joined. */
static int header_value(renderer_t *r, const template_slot *slot, slot_value *v)
{
    const render_input_t *req = r->req;
    if (req->header_all == NULL)
        return lookup_value(r, slot, req->header, req->header_context, v);
    header_search s = {r, slot->name, strlen(slot->name), 0};
    buf_t *work = &rend_state(r)->work;
    buf_clear(work);
    int rc = walk_result(r, req->header_all(req->header_all_context, join_header, &s),
                         "headers could not be read");
    v->absent = s.found == 0;
    v->raw = span_of(work->data ? work->data : "", work->len);
    return rc;
}

static int made_value(renderer_t *r, made_kind kind, const template_slot *slot, slot_value *v)
{
    v->is_json = true;
    return made_object(r, kind, slot, &v->raw);
}

const char *render_client_ip_text(const struct sockaddr *sa, char *out)
{
    const char *text = NULL;
    if (sa != NULL && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
        text = inet_ntop(AF_INET, &in4->sin_addr, out, RENDER_IP_TEXT_SIZE);
    } else if (sa != NULL && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            text = inet_ntop(AF_INET, in6->sin6_addr.s6_addr + 12, out, RENDER_IP_TEXT_SIZE);
        else
            text = inet_ntop(AF_INET6, &in6->sin6_addr, out, RENDER_IP_TEXT_SIZE);
    }
    if (text == NULL)
        out[0] = '\0';
    return out;
}

/* The client's address as text; empty when unknown. */
static span_t client_ip(renderer_t *r)
{
    return span_cstr(render_client_ip_text(r->req->client_address, rend_state(r)->ip));
}

static int source_value(renderer_t *r, const template_slot *slot, slot_value *v)
{
    const render_input_t *req = r->req;
    span_t view;
    switch (slot->source) {
    case TEMPLATE_SOURCE_BODY:
        if (body_view(r, &view) != 0)
            return -1;
        walk_members(view, slot, v);
        return 0;
    case TEMPLATE_SOURCE_JWT:
        walk_members(req->claims, slot, v);
        return 0;
    case TEMPLATE_SOURCE_PATH:
        if (slot->whole)
            return made_value(r, MADE_PATH, slot, v);
        v->absent = slot->capture_index >= req->capture_count;
        if (!v->absent)
            v->raw = req->captures[slot->capture_index];
        return 0;
    case TEMPLATE_SOURCE_QUERY:
        if (slot->whole)
            return made_value(r, MADE_QUERY, slot, v);
        return lookup_value(r, slot, req->query, req->query_context, v);
    case TEMPLATE_SOURCE_HEADER:
        if (slot->whole)
            return made_value(r, MADE_HEADERS, slot, v);
        return header_value(r, slot, v);
    case TEMPLATE_SOURCE_CLIENT_IP:
        v->raw = client_ip(r);
        v->absent = v->raw.n == 0;
        return 0;
    }
    return 0;
}

/* Fills *v for the slot; 0, or -1 / -ENOMEM with the error written. */
static int slot_get(renderer_t *r, const template_slot *slot, slot_value *v)
{
    memset(v, 0, sizeof *v);
    int rc = source_value(r, slot, v);
    if (rc || v->absent)
        return rc;
    v->text = v->raw;
    if (v->is_json) {
        jscan_type_t type = jscan_type_of(v->raw);
        v->null = type == JSCAN_NULL;
        if (slot->conversion == TEMPLATE_CONVERT_NONE || type != JSCAN_STRING)
            return 0;
        /* a conversion reads a string's content */
        buf_clear(r->scratch);
        if (jscan_string_decode(v->raw, r->scratch))
            return fail_nomem(r);
        v->text = span_of(r->scratch->data ? r->scratch->data : "", r->scratch->len);
        return 0;
    }
    if (!utf8_valid(v->raw.p ? v->raw.p : "", v->raw.n)) {
        fail_start(r, slot, " is not valid UTF-8");
        return -1;
    }
    return 0;
}

/* ---- rendering ------------------------------------------------------------- */

static int render_items(renderer_t *r, const template *t, bool omit_absent);

static int fail_conversion(renderer_t *r, const template_slot *slot, const slot_value *v,
                           const char *expected)
{
    msg_t *m = fail_start(r, slot, ": expected ");
    msg_cstr(m, expected);
    if (slot->conversion == TEMPLATE_CONVERT_JSON)
        return -1;
    msg_cstr(m, ", got ");
    msg_shown(m, v->raw.p, v->raw.n, !v->is_json);
    return -1;
}

static int render_slot(renderer_t *r, const template_slot *slot, bool omit_absent)
{
    slot_value v;
    int rc = slot_get(r, slot, &v);
    if (rc)
        return rc;
    if (v.absent && omit_absent)
        return RENDER_OMIT;
    if (v.absent || v.null)
        return append(r, "null", 4);
    if (slot->conversion == TEMPLATE_CONVERT_NONE && !v.is_json)
        return json_append_string(r->out, v.raw.p, v.raw.n) ? fail_nomem(r) : 0;
    bool as_is = v.is_json && (slot->conversion == TEMPLATE_CONVERT_NONE ||
                               (slot->conversion == TEMPLATE_CONVERT_JSON &&
                                jscan_type_of(v.raw) != JSCAN_STRING));
    if (as_is)
        return append(r, v.raw.p, v.raw.n);
    char expected[128];
    rc = convert_text(slot->conversion, v.text, r->out, expected, sizeof expected);
    if (rc == -ENOMEM)
        return fail_nomem(r);
    return rc ? fail_conversion(r, slot, &v, expected) : 0;
}

/* A :json spread source read from a string: parsed, and copied where it
 * outlives the buffer it was read into. */
static int hold_json(renderer_t *r, const template_slot *slot, const slot_value *v, span_t *object)
{
    span_t value;
    jscan_error_t err = {0, NULL};
    if (jscan_document(v->text.p, v->text.n, &value, &err)) {
        char where[96];
        jscan_error_format(&err, where, sizeof where);
        msg_t *m = fail_start(r, slot, ": expected a JSON text: ");
        msg_cstr(m, where);
        return -1;
    }
    held_t *h = malloc(sizeof *h + value.n + 1);
    if (h == NULL)
        return fail_nomem(r);
    memcpy(h->text, value.p, value.n);
    h->n = value.n;
    h->next = rend_state(r)->held;
    r->state.held = h;
    *object = span_of(h->text, h->n);
    return 0;
}

/* Adds the members of one spread source to the state's spread merge. */
static int spread_add(renderer_t *r, const template_slot *slot)
{
    slot_value v;
    int rc = slot_get(r, slot, &v);
    if (rc || v.absent || v.null)
        return rc;
    span_t object = v.raw;
    if (slot->conversion == TEMPLATE_CONVERT_JSON && !(v.is_json && jscan_type_of(v.raw) != JSCAN_STRING)) {
        if ((rc = hold_json(r, slot, &v, &object)) != 0)
            return rc;
    }
    jscan_type_t type = jscan_type_of(object);
    if (type == JSCAN_NULL)
        return 0;
    if (type != JSCAN_OBJECT) {
        msg_t *m = fail_start(r, slot, ": expected an object to spread into ");
        msg_cstr(m, slot->at);
        msg_cstr(m, ", got ");
        msg_shown(m, object.p, object.n, false);
        return -1;
    }
    return merge_add_object(&rend_state(r)->spread, object) ? fail_nomem(r) : 0;
}

typedef struct written {
    const template_object *object;
    const bool *present;
} written_t;

/* Leaves a spread's key out when a written member with that key is present. */
static bool skip_written(void *context, span_t key)
{
    const written_t *w = context;
    const template_object *o = w->object;
    size_t lo = 0, hi = o->member_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const template_member *m = &o->members[o->by_key[mid]];
        size_t n = key.n < m->key_length ? key.n : m->key_length;
        int order = n ? memcmp(key.p, m->key, n) : 0;
        if (order == 0)
            order = (key.n > m->key_length) - (key.n < m->key_length);
        if (order == 0)
            return w->present[o->by_key[mid]];
        if (order < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return false;
}

/* Written members; present[i] says which were written. */
static int render_members(renderer_t *r, const template_object *o, bool *present, bool *first)
{
    for (size_t i = 0; i < o->member_count; i++) {
        const template_member *member = &o->members[i];
        size_t mark = r->out->len;
        int rc = *first ? 0 : append(r, ",", 1);
        if (rc == 0)
            rc = append(r, member->key_json, member->key_json_length);
        if (rc == 0)
            rc = render_items(r, &member->value, member->optional);
        present[i] = rc == 0;
        if (rc == RENDER_OMIT)
            r->out->len = mark;
        else if (rc != 0)
            return rc;
        else
            *first = false;
    }
    return 0;
}

static int render_spreads(renderer_t *r, const template_object *o, const bool *present,
                          bool *first)
{
    merge_t *spread = &rend_state(r)->spread;
    merge_clear(spread);
    for (size_t i = 0; i < o->spread_count; i++) {
        int rc = spread_add(r, &o->spreads[i]);
        if (rc != 0)
            return rc;
    }
    written_t w = {o, present};
    return merge_write(spread, MERGE_LAST, skip_written, &w, first, r->out) ? fail_nomem(r) : 0;
}

static int render_object(renderer_t *r, const template_object *o)
{
    bool on_stack[PRESENT_ON_STACK];
    bool *present = o->member_count <= PRESENT_ON_STACK ? on_stack
                                                        : malloc(o->member_count * sizeof *present);
    if (present == NULL)
        return fail_nomem(r);
    bool first = true;
    int rc = append(r, "{", 1);
    if (rc == 0)
        rc = render_members(r, o, present, &first);
    if (rc == 0 && o->spread_count > 0)
        rc = render_spreads(r, o, present, &first);
    if (rc == 0)
        rc = append(r, "}", 1);
    if (present != on_stack)
        free(present);
    return rc;
}

static int render_items(renderer_t *r, const template *t, bool omit_absent)
{
    for (size_t i = 0; i < t->count; i++) {
        const template_item *item = &t->items[i];
        int rc = 0;
        switch (item->kind) {
        case TEMPLATE_ITEM_LITERAL:
            rc = append(r, item->literal, item->literal_length);
            break;
        case TEMPLATE_ITEM_SLOT:
            rc = render_slot(r, &item->slot, omit_absent && t->count == 1);
            break;
        case TEMPLATE_ITEM_OBJECT:
            rc = render_object(r, item->object);
            break;
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

int render_template(const template *t, const render_input_t *in, buf_t *out, char *error,
                    size_t error_size)
{
    renderer_t r; /* not zeroed whole: the state is set up on first use */
    r.req = in;
    r.out = out;
    r.error = (msg_t){error, error_size, 0};
    r.local_scratch = (buf_t)BUF_INIT;
    r.has_state = false;
    r.scratch = in->scratch ? in->scratch : &r.local_scratch;
    size_t start = out->len;
    if (error_size)
        error[0] = '\0';
    int rc = render_items(&r, t, false);
    renderer_free(&r);
    if (rc)
        out->len = start;
    return rc;
}

bool render_whole_body(const template *t, span_t body, span_t *data)
{
    if (t->count != 1 || t->items[0].kind != TEMPLATE_ITEM_SLOT)
        return false;
    const template_slot *slot = &t->items[0].slot;
    if (slot->source != TEMPLATE_SOURCE_BODY || !slot->whole ||
        (slot->conversion != TEMPLATE_CONVERT_NONE && slot->conversion != TEMPLATE_CONVERT_JSON))
        return false;
    span_t value = trim_body(body);
    /* JSON conversion of a string re-reads its content as JSON: not a pass-through */
    if (slot->conversion == TEMPLATE_CONVERT_JSON && jscan_type_of(value) == JSCAN_STRING)
        return false;
    *data = value.n ? value : span_of("null", 4);
    return true;
}

bool render_sends_empty_object(const char *method, span_t body)
{
    if (method == NULL || trim_body(body).n != 0)
        return false;
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
           strcmp(method, "DELETE") == 0;
}

int render_route_data(const template *t, bool is_default, const render_input_t *in, buf_t *out,
                span_t *data, char *error, size_t error_size)
{
    if (is_default && render_sends_empty_object(in->method, in->body)) {
        *data = SPAN_LIT("{}");
        return 0;
    }
    int rc = t->uses_body ? render_check_body_as(in->body, in->content_type, error, error_size) : 0;
    if (rc != 0)
        return rc;
    if (!render_body_read_as_form(in->body, in->content_type) &&
        render_whole_body(t, in->body, data))
        return 0;
    size_t start = out->len;
    rc = render_template(t, in, out, error, error_size);
    if (rc == 0)
        *data = span_of(out->data + start, out->len - start);
    return rc;
}

/* ---- body and query helpers ------------------------------------------------ */

/* The offset of the first invalid UTF-8 sequence in p[0..n), or n. */
static size_t first_bad_utf8(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if ((unsigned char)p[i] < 0x80) {
            i++;
            continue;
        }
        int len = utf8_sequence((const unsigned char *)p + i, n - i);
        if (len <= 0)
            return i;
        i += (size_t)len;
    }
    return n;
}

/* The JSON check; `label` goes after "body is not valid [UTF-8 ]JSON". */
static int check_json(span_t body, const char *label, char *error, size_t error_size)
{
    if (trim_body(body).n == 0)
        return 0;
    span_t value;
    jscan_error_t err = {0, NULL};
    if (jscan_document(body.p, body.n, &value, &err) == 0)
        return 0;
    /* Say "UTF-8" when bad UTF-8 comes before (or is) what stopped the scan. */
    size_t bad = first_bad_utf8(body.p, body.n);
    if (bad <= err.offset && bad < body.n)
        snprintf(error, error_size, "body is not valid UTF-8 JSON%s: invalid UTF-8 at byte %zu",
                 label, bad);
    else
        snprintf(error, error_size, "body is not valid JSON%s: %s at byte %zu", label,
                 err.what ? err.what : "invalid JSON", err.offset);
    return -1;
}

int render_check_body(span_t body, char *error, size_t error_size)
{
    return check_json(body, "", error, error_size);
}

int render_check_body_as(span_t body, span_t content_type, char *error, size_t error_size)
{
    if (render_body_read_as_form(body, content_type)) {
        buf_t work = BUF_INIT;
        msg_t m = {error, error_size, 0};
        int rc = form_scan(body, &work, NULL, &m);
        buf_free(&work);
        if (rc == -ENOMEM)
            snprintf(error, error_size, "out of memory");
        return rc;
    }
    if (check_json(body, "", error, error_size) == 0)
        return 0; /* the usual case: no label to build */
    char label[SHOWN_MAX * 6 + 32];
    msg_t m = {label, sizeof label, 0};
    if (content_type.n == 0) {
        msg_cstr(&m, " (no Content-Type)");
    } else {
        msg_cstr(&m, " (Content-Type: ");
        msg_shown(&m, content_type.p, content_type.n, false);
        msg_cstr(&m, ")");
    }
    return check_json(body, label, error, error_size);
}

render_lookup_result render_query_lookup(void *context, const char *name, size_t name_len,
                                         span_t *value)
{
    render_query *q = context;
    buf_clear(&q->value);
    int rc = urlcode_query_get(q->raw, q->length, name, name_len, &q->value);
    if (rc == 1) {
        *value = span_of(q->value.data, q->value.len);
        return RENDER_LOOKUP_FOUND;
    }
    if (rc == 0)
        return RENDER_LOOKUP_ABSENT;
    return rc == URLCODE_NOMEM ? RENDER_LOOKUP_NOMEM : RENDER_LOOKUP_BAD;
}

int render_query_all(void *context, render_pair_fn *pair, void *pair_context)
{
    render_query *q = context;
    urlcode_pairs it;
    span_t name, value;
    size_t offset;
    urlcode_pairs_init(&it, q->raw, q->length);
    while (urlcode_pairs_next(&it, &name, &value, &offset)) {
        buf_clear(&q->name);
        buf_clear(&q->value);
        urlcode_status a = urlcode_decode_buf(name.p, name.n, URLCODE_QUERY, &q->name);
        urlcode_status b = a == URLCODE_OK
                               ? urlcode_decode_buf(value.p, value.n, URLCODE_QUERY, &q->value)
                               : a;
        if (a == URLCODE_NOMEM || b == URLCODE_NOMEM)
            return RENDER_LOOKUP_NOMEM;
        if (b != URLCODE_OK)
            return RENDER_LOOKUP_BAD;
        int rc = pair(pair_context, span_of(q->name.data ? q->name.data : "", q->name.len),
                      span_of(q->value.data ? q->value.data : "", q->value.len));
        if (rc != 0)
            return rc;
    }
    return 0;
}
