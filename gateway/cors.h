/*
 * cors: decides what the gateway does with a request under a CORS policy
 * (SPEC.md "Edge policy for the ingress direction"; the Fetch standard's
 * CORS protocol). A pure module: no I/O, no allocation per request, no
 * global state.
 *
 * The caller compiles a config_cors once (cors_policy_init: the header
 * values that never change), then for each request that has a policy (the
 * route's own cors, else the top level's; see config_route_cors()) fills a
 * cors_request_t and calls cors_decide(). The outcome says what to do:
 *
 *   CORS_NOT_CORS          no Origin header: not a CORS request. Handle it
 *                          as usual and add `headers` to the response
 *                          (Vary: Origin when the answer depends on the
 *                          origin, so that a cache keeps variants apart).
 *   CORS_PREFLIGHT_OK      an OPTIONS request with Origin and
 *                          Access-Control-Request-Method that the policy
 *                          allows: answer 204, no body, with `headers`
 *                          only (no auth, no rate limit, nothing upstream).
 *   CORS_PREFLIGHT_REFUSED such a preflight that the policy does not allow
 *                          (origin, method or a header): answer 403
 *                          `forbidden` without any CORS header; `refusal`
 *                          says why.
 *   CORS_ALLOWED           any other request with an allowed Origin
 *                          (OPTIONS without Access-Control-Request-Method
 *                          included): handle it as usual and add `headers`
 *                          to whatever the answer is, errors (401, 403,
 *                          404, 405, 429, 5xx...) included, so that the
 *                          page's script can read them.
 *   CORS_NOT_ALLOWED       a request with an Origin the policy does not
 *                          allow: handle it as usual (the browser keeps the
 *                          answer from the page) and add `headers` (Vary
 *                          only).
 *
 * Headers given (in this order, each when it applies):
 *   preflight OK: Access-Control-Allow-Origin (the request's Origin; "*"
 *     for allow_origins ["*"]), Access-Control-Allow-Credentials: true,
 *     Access-Control-Allow-Methods (allow_methods, else the methods of the
 *     path's routes: GET brings HEAD; a `*` route: the method asked for),
 *     Access-Control-Allow-Headers (allow_headers, when not empty),
 *     Access-Control-Max-Age. No Vary: answers to OPTIONS are not cacheable
 *     (RFC 9110 section 9.3.7) and the browser's preflight cache is keyed by
 *     origin already.
 *   allowed: Access-Control-Allow-Origin, Vary: Origin (unless "*"),
 *     Access-Control-Allow-Credentials: true, Access-Control-Expose-Headers
 *     (expose_headers, when not empty).
 *   not CORS / not allowed: Vary: Origin (unless "*").
 * With allow_credentials the origin is always echoed, never "*" (the
 * loader refuses "*" with credentials). A response that already has a Vary
 * header gets "Origin" added to it rather than a second header line.
 *
 * Matching:
 *   - Origin is compared byte for byte with the configured origins, which
 *     the loader keeps in the form browsers send (lower case, no default
 *     port). "null" (sandboxed pages, local files) matches only "*".
 *   - Access-Control-Request-Method must be an HTTP token and is compared
 *     case-sensitively (Fetch upper-cases only DELETE, GET, HEAD, OPTIONS,
 *     POST and PUT; "patch" stays "patch").
 *   - Access-Control-Request-Headers is a comma-separated list of names
 *     (optional whitespace around each, empty elements skipped); each must
 *     be a token and in allow_headers, compared without regard to ASCII
 *     case. The header is absent or empty when the request only has
 *     CORS-safelisted headers. Those are (Fetch): Accept, Accept-Language,
 *     Content-Language, and Content-Type whose value is
 *     application/x-www-form-urlencoded, multipart/form-data or text/plain,
 *     and Range with one simple byte range, each value at most 128 bytes.
 *     A browser that lists one of these names does so because its value is
 *     not safelisted (Content-Type: application/json): then, like any other
 *     name (Authorization, X-Api-Key...), it must be in allow_headers.
 *
 * Ownership: a cors_policy_t borrows its config_cors (which must outlive
 * it) and owns the header texts it built (cors_policy_free). A
 * cors_result_t holds no heap memory; the spans of its headers point into
 * the policy, into the request's spans (the echoed Origin and method) or to
 * constant text: they are valid while the policy and the request's buffers
 * live (a result may be copied). When the request's Origin and
 * Access-Control-Request-Method spans are whole C strings (as
 * libmicrohttpd's header values are), every value's bytes are followed by
 * a NUL, so value.p may be used as a C string (proxy.c does).
 * One policy may be read by several threads at once.
 */
#ifndef PG_GATEWAY_CORS_H
#define PG_GATEWAY_CORS_H

#include <stddef.h>

#include "config/config.h"
#include "core/buf.h"

/* Methods of the routes of a path, as bits. */
#define CORS_METHOD_GET 0x01u
#define CORS_METHOD_HEAD 0x02u
#define CORS_METHOD_POST 0x04u
#define CORS_METHOD_PUT 0x08u
#define CORS_METHOD_PATCH 0x10u
#define CORS_METHOD_DELETE 0x20u
#define CORS_METHOD_ANY 0x40u /* a `*` route: any method */

/* The bits of a route's method: GET brings HEAD (SPEC.md: HEAD is
 * answered for every GET route); "*" is CORS_METHOD_ANY. */
unsigned cors_method_bits(config_method method);

/* The bits of a list of method names such as the router's Allow value
 * ("GET, DELETE"): names separated by commas and optional spaces, compared
 * exactly; "*" gives CORS_METHOD_ANY, GET brings HEAD, other names are
 * ignored. */
unsigned cors_methods_from_list(span_t list);

typedef struct cors_policy {
    const config_cors *cfg;   /* borrowed */
    char *allow_methods;      /* "GET, POST", or NULL: from the path */
    char *allow_headers;      /* "content-type, x-api-key", or NULL: none */
    char *expose_headers;     /* "X-Request-Id", or NULL: none */
    char max_age[24];         /* decimal seconds */
} cors_policy_t;

/* Compiles cfg into *p. Returns 0, or -ENOMEM (then *p holds nothing to
 * free, and cors_policy_free on it is fine). */
int cors_policy_init(cors_policy_t *p, const config_cors *cfg);

/* Releases what *p owns and zeroes it; a zeroed policy is fine. */
void cors_policy_free(cors_policy_t *p);

/* What cors_decide() looks at. An absent header is {NULL, 0}; a header
 * present with an empty value is {"", 0}. */
typedef struct cors_request {
    span_t method;          /* the request's method, e.g. "OPTIONS" */
    span_t origin;          /* Origin */
    span_t request_method;  /* Access-Control-Request-Method */
    span_t request_headers; /* Access-Control-Request-Headers */
    unsigned path_methods;  /* CORS_METHOD_* bits of the routes of the
                               request's path (the default allow_methods) */
} cors_request_t;

typedef enum cors_outcome {
    CORS_NOT_CORS,
    CORS_PREFLIGHT_OK,
    CORS_PREFLIGHT_REFUSED,
    CORS_ALLOWED,
    CORS_NOT_ALLOWED,
} cors_outcome_t;

typedef struct cors_header {
    const char *name;       /* e.g. "Access-Control-Allow-Origin" (static) */
    span_t value;           /* see the ownership note above */
} cors_header_t;

#define CORS_HEADERS_MAX 5

typedef struct cors_result {
    cors_outcome_t outcome;
    size_t count;                             /* headers[0..count) */
    cors_header_t headers[CORS_HEADERS_MAX];
    /* PREFLIGHT_REFUSED: why, a fixed text for the 403's message and the
     * log: "origin not allowed", "method not allowed", "header not
     * allowed", "bad Access-Control-Request-Method", "bad
     * Access-Control-Request-Headers". NULL otherwise. */
    const char *refusal;
    /* PREFLIGHT_REFUSED for a header: the name refused (in the request). */
    span_t refused_header;
} cors_result_t;

/* Decides for req under policy p and fills *out (see above). Never fails. */
void cors_decide(const cors_policy_t *p, const cors_request_t *req, cors_result_t *out);

/* A short stable label of an outcome, for logs and metrics: "none",
 * "preflight", "preflight_refused", "allowed", "origin_refused". */
const char *cors_outcome_label(cors_outcome_t outcome);

#endif
