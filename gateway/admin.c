#include "gateway/admin.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/json_write.h"
#include "gateway/errors.h"
#include "gateway/gateway.h"
#include "gateway/metrics.h"

int admin_is_path(const char *url)
{
    return strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0 || strcmp(url, "/status") == 0 ||
           strcmp(url, "/metrics") == 0;
}

int admin_is_probe(const char *url)
{
    return strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0;
}

static void put_cstr(buf_t *b, const char *s) { json_append_string(b, s, strlen(s)); }

static void put_u64(buf_t *b, uint64_t v) { buf_append_u64(b, v); }

/* ms since the epoch as "2026-11-22T04:12:23.081Z", or null for 0. */
static void put_time(buf_t *b, uint64_t ms)
{
    if (ms == 0) {
        buf_append_cstr(b, "null");
        return;
    }
    time_t s = (time_t)(ms / 1000);
    struct tm utc;
    gmtime_r(&s, &utc);
    char text[40];
    size_t n = strftime(text, sizeof text, "\"%Y-%m-%dT%H:%M:%S", &utc);
    snprintf(text + n, sizeof text - n, ".%03uZ\"", (unsigned)(ms % 1000));
    buf_append_cstr(b, text);
}

static void readyz(gateway_t *gw, admin_reply_t *r)
{
    if (gw->stopping) {
        r->status = 503;
        buf_append_cstr(&r->body, "{\"status\":\"draining\"}");
        return;
    }
    buf_append_cstr(&r->body, "{\"status\":\"not_ready\",\"services\":[");
    int missing = 0;
    for (size_t i = 0; i < gw->cfg->service_count; i++) {
        const config_service *s = &gw->cfg->services[i];
        if (s->connect != CONFIG_CONNECT_EAGER || up_service_conns_in_state(gw->gen->services[i], UP_CONN_CONNECTED) > 0)
            continue;
        if (missing++)
            buf_append(&r->body, ",", 1);
        put_cstr(&r->body, s->name);
    }
    buf_append_cstr(&r->body, "]}");
    r->status = missing ? 503 : 200;
    if (!missing) {
        buf_clear(&r->body);
        buf_append_cstr(&r->body, "{\"status\":\"ready\"}");
    }
}

static void status_connection(buf_t *b, const up_conn_info_t *c)
{
    buf_append_cstr(b, "{\"state\":");
    put_cstr(b, up_conn_state_name(c->state));
    buf_append_cstr(b, ",\"inflight\":");
    put_u64(b, c->inflight);
    buf_append_cstr(b, ",\"requests\":");
    put_u64(b, c->requests);
    buf_append_cstr(b, ",\"errors\":");
    put_u64(b, c->errors);
    buf_append_cstr(b, ",\"reconnects\":");
    put_u64(b, c->reconnects);
    buf_append_cstr(b, ",\"last_error\":");
    if (c->last_error[0])
        put_cstr(b, c->last_error);
    else
        buf_append_cstr(b, "null");
    buf_append_cstr(b, ",\"last_error_at\":");
    put_time(b, c->last_error_at);
    buf_append_cstr(b, ",\"connected_since\":");
    put_time(b, c->connected_since);
    if (c->tls_version) {
        buf_append_cstr(b, ",\"tls_version\":");
        put_cstr(b, c->tls_version);
    }
    buf_append_cstr(b, "}");
}

static void status_service(buf_t *b, const config_service *cs, const up_service_t *svc)
{
    const up_service_stats_t *st = up_service_stats(svc);
    buf_append_cstr(b, "{\"connect\":");
    put_cstr(b, cs->connect == CONFIG_CONNECT_EAGER ? "eager" : "lazy");
    buf_append_cstr(b, ",\"inflight\":");
    put_u64(b, st->inflight);
    buf_append_cstr(b, ",\"late_replies\":");
    put_u64(b, st->late_replies);
    buf_append_cstr(b, ",\"endpoints\":[");
    for (size_t e = 0; e < up_service_endpoint_count(svc); e++) {
        if (e)
            buf_append_cstr(b, ",");
        buf_append_cstr(b, "{\"address\":");
        put_cstr(b, up_service_endpoint_address(svc, e));
        buf_append_cstr(b, up_service_uses_tls(svc) ? ",\"tls\":true" : ",\"tls\":false");
        buf_append_cstr(b, ",\"ejected_until\":");
        put_time(b, up_service_endpoint_ejected_until(svc, e));
        buf_append_cstr(b, ",\"connections\":[");
        for (unsigned k = 0; k < cs->pool_size; k++) {
            up_conn_info_t info;
            up_service_conn_info(svc, e, k, &info);
            if (k)
                buf_append_cstr(b, ",");
            status_connection(b, &info);
        }
        buf_append_cstr(b, "]}");
    }
    buf_append_cstr(b, "]}");
}

static void status(gateway_t *gw, admin_reply_t *r)
{
    buf_t *b = &r->body;
    const config *cfg = gw->cfg;
    char addr[HOSTPORT_TEXT_SIZE], uptime[32];
    buf_append_cstr(b, "{\"version\":");
    put_cstr(b, PG_VERSION);
    snprintf(uptime, sizeof uptime, "%.3f", (double)(uv_hrtime() - gw->started_ns) / 1e9);
    buf_append_cstr(b, ",\"uptime_seconds\":");
    buf_append_cstr(b, uptime);
    buf_append_cstr(b, ",\"inflight\":");
    put_u64(b, upstream_inflight(gw->up));
    buf_append_cstr(b, ",\"draining\":");
    buf_append_cstr(b, gw->stopping ? "true" : "false");
    buf_append_cstr(b, ",\"config\":");
    if (cfg->file)
        put_cstr(b, cfg->file);
    else
        buf_append_cstr(b, "null");
    buf_append_cstr(b, ",\"config_loaded_at\":");
    put_time(b, gw->config_loaded_at_ms);
    hostport_format(&cfg->listen, addr, sizeof addr);
    buf_append_cstr(b, ",\"listen\":");
    put_cstr(b, addr);
    buf_append_cstr(b, ",\"admin_listen\":");
    if (cfg->has_admin_listen) {
        hostport_format(&cfg->admin_listen, addr, sizeof addr);
        put_cstr(b, addr);
    } else {
        buf_append_cstr(b, "null");
    }
    buf_append_cstr(b, ",\"workers\":");
    put_u64(b, gw->n_workers);
    buf_append_cstr(b, ",\"worker\":");
    put_u64(b, gw->worker);
    buf_append_cstr(b, ",\"http_connections\":");
    put_u64(b, httpd_connection_count(gw->httpd));
    buf_append_cstr(b, ",\"routes\":");
    put_u64(b, cfg->route_count);
    buf_append_cstr(b, ",\"services\":{");
    for (size_t i = 0; i < cfg->service_count; i++) {
        if (i)
            buf_append_cstr(b, ",");
        put_cstr(b, cfg->services[i].name);
        buf_append_cstr(b, ":");
        status_service(b, &cfg->services[i], gw->gen->services[i]);
    }
    buf_append_cstr(b, "}}");
    r->status = 200;
}

void admin_answer(gateway_t *gw, const char *method, const char *url, admin_reply_t *r)
{
    *r = (admin_reply_t){ 200, BUF_INIT, "application/json", NULL };
    if (!admin_is_path(url)) {
        r->status = (unsigned)gw_error_status(GW_ERR_NOT_FOUND);
        gw_error_body(&r->body, GW_ERR_NOT_FOUND, "the admin listener serves /healthz, /readyz, /status and /metrics",
                      span_of(NULL, 0));
        return;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        r->status = (unsigned)gw_error_status(GW_ERR_METHOD_NOT_ALLOWED);
        r->allow = "GET, HEAD";
        gw_error_body(&r->body, GW_ERR_METHOD_NOT_ALLOWED, "admin endpoints answer GET", span_of(NULL, 0));
        return;
    }
    int failed = 0;
    if (strcmp(url, "/healthz") == 0) {
        failed = buf_append_cstr(&r->body, "{\"status\":\"ok\"}");
    } else if (strcmp(url, "/readyz") == 0) {
        readyz(gw, r);
    } else if (strcmp(url, "/status") == 0) {
        status(gw, r);
    } else {
        r->content_type = "text/plain; version=0.0.4; charset=utf-8";
        failed = metrics_render(&r->body, gw->all_metrics, gw->n_workers, gw->cfg);
    }
    if (failed) {
        buf_free(&r->body);
        r->status = (unsigned)gw_error_status(GW_ERR_OVERLOADED);
        r->content_type = "application/json";
        gw_error_body(&r->body, GW_ERR_OVERLOADED, "out of memory", span_of(NULL, 0));
    }
}

enum MHD_Result admin_on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    gateway_t *gw = cls;
    if (*con_cls == NULL) { /* first call: headers only; answered at the end */
        *con_cls = (void *)1;
        return MHD_YES;
    }
    if (*upload_data_size) { /* admin requests have no body: drop it */
        *upload_data_size = 0;
        return MHD_YES;
    }
    uint64_t started = uv_hrtime();
    admin_reply_t r;
    admin_answer(gw, method, url, &r);
    size_t len = r.body.len;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, r.body.data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        buf_free(&r.body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type);
    if (r.allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r.allow);
    enum MHD_Result rc = MHD_queue_response(connection, r.status, resp);
    MHD_destroy_response(resp);
    metrics_http(gw->metrics, METRICS_ROUTE_ADMIN, method, r.status, uv_hrtime() - started);
    gateway_access_log(gw, &(access_entry_t){ .method = method, .path = url, .route = "admin",
                                              .status = r.status, .duration_ns = uv_hrtime() - started,
                                              .bytes = len });
    return rc;
}
