/*
 * `patterngate call|emit [TLS options] [--timeout MS] HOST:PORT PATTERN
 * [DATA]`: one request through the upstream client on a private loop. Any
 * TLS option (--tls-ca, --tls-cert with --tls-key, --servername,
 * --insecure) makes the connection TLS; file paths are relative to the
 * current directory. Reply values go to
 * stdout as JSON lines as they arrive, byte-exact; a failure goes to stderr
 * as the same JSON error body the HTTP API gives, with exit code 1.
 * Options come before HOST:PORT ("--" ends them); --help prints the usage
 * to stdout.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_scan.h"
#include "core/json_write.h"
#include "core/utf8.h"
#include "core/upstream.h"
#include "gateway/cli.h"
#include "gateway/errors.h"

typedef struct call_state {
    upstream_t *up;
    int exit_code;
} call_state_t;

#define CALL_USAGE                                                                           \
    "usage: patterngate %s [--tls-ca F] [--tls-cert F --tls-key F] [--servername N] [--insecure]\n" \
    "       [--timeout MS] HOST:PORT PATTERN [DATA]\n"

static int usage(const char *cmd, const char *problem)
{
    fprintf(stderr, "patterngate %s: %s\n", cmd, problem);
    fprintf(stderr, CALL_USAGE, cmd);
    return 2;
}

static int help(const char *cmd, int is_emit)
{
    printf(CALL_USAGE, cmd);
    printf("\n%s\n\n", is_emit
           ? "Sends one event (Nest's EventPattern) to the service at HOST:PORT; exit 0 once\n"
             "it is written."
           : "Sends one request (Nest's MessagePattern) to the service at HOST:PORT and prints\n"
             "each reply value as one JSON line on stdout as it arrives; an error reply goes\n"
             "to stderr as JSON, exit 1.");
    fputs("  PATTERN          JSON when it is valid JSON (e.g. '{\"cmd\":\"sum\"}'), else a string\n"
          "  DATA             JSON; default null\n"
          "  --timeout MS     give up after MS milliseconds (default 5000)\n"
          "  --tls-ca F       connect with TLS, verifying the service with the CA file F\n"
          "                   (any TLS option turns TLS on; default CAs: the system's)\n"
          "  --tls-cert F, --tls-key F\n"
          "                   a client certificate and its key\n"
          "  --servername N   the name sent (SNI) and verified; default: HOST\n"
          "  --insecure       TLS without verifying the service's certificate\n"
          "  -h, --help       print this help and exit\n"
          "\n"
          "Exit codes: 0 success, 1 failure or error reply, 2 bad usage.\n", stdout);
    return 0;
}

static void on_value(void *ctx, span_t value)
{
    (void)ctx;
    fwrite(value.p, 1, value.n, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

static void on_done(void *ctx, up_outcome_t outcome, span_t err, const char *detail)
{
    call_state_t *st = ctx;
    st->exit_code = outcome == UP_OK ? 0 : 1;
    if (outcome != UP_OK) {
        buf_t body = BUF_INIT;
        gw_error_body(&body, gw_error_of_outcome(outcome), detail, err);
        fprintf(stderr, "%.*s\n", (int)body.len, body.data);
        buf_free(&body);
    }
    upstream_close(st->up);
}

/* PATTERN: JSON when it is valid JSON, else the text as a JSON string. */
static int pattern_json(const char *arg, buf_t *out)
{
    span_t v;
    size_t n = strlen(arg);
    if (jscan_document(arg, n, &v, NULL) == 0)
        return buf_append(out, arg, n);
    if (!utf8_valid(arg, n))
        return -1;
    return json_append_string(out, arg, n);
}

int cli_call(int argc, char **argv, int is_emit)
{
    const char *cmd = is_emit ? "emit" : "call";
    uint32_t timeout_ms = 5000;
    cli_tls_t tls = CLI_TLS_INIT;
    int i = 0;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        const char *opt = argv[i];
        char problem[160];
        int tls_option = cli_tls_option(argc, argv, &i, &tls);
        if (tls_option > 0)
            continue;
        if (tls_option < 0 || (strcmp(opt, "--timeout") == 0 && i + 1 >= argc)) {
            snprintf(problem, sizeof problem, "option %s needs a value", opt);
            return usage(cmd, problem);
        }
        if (strcmp(opt, "--") == 0) {
            i++;
            break;
        } else if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            return help(cmd, is_emit);
        } else if (strcmp(opt, "--timeout") == 0) {
            if (cli_parse_timeout(argv[++i], &timeout_ms))
                return usage(cmd, "--timeout takes milliseconds, 1 to 86400000");
        } else {
            snprintf(problem, sizeof problem, "unknown option '%.100s'", opt);
            return usage(cmd, problem);
        }
    }
    if (argc - i < 2 || argc - i > 3)
        return usage(cmd, "expected HOST:PORT PATTERN [DATA]");
    if (cli_tls_problem(&tls))
        return usage(cmd, cli_tls_problem(&tls));
    const char *address = argv[i], *data_arg = argc - i == 3 ? argv[i + 2] : "null";

    buf_t pattern = BUF_INIT;
    if (pattern_json(argv[i + 1], &pattern)) {
        buf_free(&pattern);
        return usage(cmd, "PATTERN is not valid UTF-8");
    }
    span_t data;
    jscan_error_t jerr;
    if (jscan_document(data_arg, strlen(data_arg), &data, &jerr)) {
        char where[96], problem[160];
        jscan_error_format(&jerr, where, sizeof where);
        snprintf(problem, sizeof problem, "DATA is not valid JSON: %s", where);
        buf_free(&pattern);
        return usage(cmd, problem);
    }

    uv_loop_t loop;
    uv_loop_init(&loop);
    call_state_t st = { upstream_new(&loop), 1 };
    up_service_opts_t opts;
    up_service_opts_defaults(&opts);
    opts.name = "cli";
    opts.endpoints = &address;
    opts.n_endpoints = 1;
    opts.connect = UP_CONNECT_LAZY;
    opts.timeout_ms = timeout_ms;
    opts.connect_timeout_ms = timeout_ms < 2000 ? timeout_ms : 2000;
    if (tls.on) {
        opts.tls = &tls.opts;
        opts.servername = tls.servername;
    }
    char err[300];
    up_service_t *svc = st.up ? up_service_add(st.up, &opts, err, sizeof err) : NULL;
    if (!svc) {
        if (st.up)
            upstream_close(st.up);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        buf_free(&pattern);
        return usage(cmd, st.up ? err : "out of memory");
    }
    up_callbacks_t cb = { on_value, on_done };
    span_t pat = span_of(pattern.data, pattern.len);
    if (is_emit)
        up_emit(svc, pat, data, span_of(NULL, 0), timeout_ms, &cb, &st);
    else
        up_send(svc, pat, data, span_of(NULL, 0), timeout_ms, &cb, &st);
    uv_run(&loop, UV_RUN_DEFAULT);
    int closed = uv_loop_close(&loop);
    buf_free(&pattern);
    if (closed)
        fprintf(stderr, "patterngate %s: the event loop did not close clean\n", cmd);
    return st.exit_code;
}
