#include "gateway/request_walk.h"

#include "core/urlcode.h"

typedef struct walk_state {
    request_walk_t *w;
    render_pair_fn *pair;
    void *pair_context;
    int result;
} walk_state;

static enum MHD_Result visit_argument(void *cls, enum MHD_ValueKind kind, const char *key,
                                      size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    walk_state *s = cls;
    request_walk_t *w = s->w;
    buf_clear(&w->name);
    buf_clear(&w->value);
    urlcode_status a = urlcode_decode_buf(key, key_size, URLCODE_QUERY, &w->name);
    urlcode_status b = a == URLCODE_OK && value != NULL
                           ? urlcode_decode_buf(value, value_size, URLCODE_QUERY, &w->value)
                           : a;
    if (a != URLCODE_OK || b != URLCODE_OK) {
        s->result = a == URLCODE_NOMEM || b == URLCODE_NOMEM ? RENDER_LOOKUP_NOMEM
                                                             : RENDER_LOOKUP_BAD;
        return MHD_NO;
    }
    s->result = s->pair(s->pair_context, span_of(w->name.data ? w->name.data : "", w->name.len),
                        span_of(w->value.data ? w->value.data : "", w->value.len));
    return s->result == 0 ? MHD_YES : MHD_NO;
}

static enum MHD_Result visit_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    walk_state *s = cls;
    s->result = s->pair(s->pair_context, span_of(key, key_size),
                        span_of(value ? value : "", value ? value_size : 0));
    return s->result == 0 ? MHD_YES : MHD_NO;
}

int request_walk_query(void *context, render_pair_fn *pair, void *pair_context)
{
    walk_state s = {context, pair, pair_context, 0};
    MHD_get_connection_values_n(s.w->conn, MHD_GET_ARGUMENT_KIND, visit_argument, &s);
    return s.result;
}

int request_walk_headers(void *context, render_pair_fn *pair, void *pair_context)
{
    walk_state s = {context, pair, pair_context, 0};
    MHD_get_connection_values_n(s.w->conn, MHD_HEADER_KIND, visit_header, &s);
    return s.result;
}

void request_walk_free(request_walk_t *w)
{
    buf_free(&w->name);
    buf_free(&w->value);
}

const struct sockaddr *request_client_address(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    return info != NULL ? info->client_addr : NULL;
}
