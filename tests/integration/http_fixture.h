/* http_fixture: what the HTTP API tests share (test_http.c: what a request
 * becomes; test_http_clients.c: connections, limits, auth, lifecycle).
 *
 *   - a cmocka group per Nest version (12, 10), its service and one gateway
 *     on MAIN_CONFIG (fixture_t in *state);
 *   - a gateway and a Nest service a test starts for itself
 *     (start_gateway, start_own_nest), which own_teardown kills if the test
 *     failed before it could;
 *   - a scripted raw upstream in front of a gateway on RAW_CONFIG that
 *     records every packet it gets (raw_open...), to see the exact bytes;
 *   - request bodies of a given size.
 *
 * The requests and expectations themselves are tests/support/gwtest.h's.
 */
#ifndef PG_TESTS_INTEGRATION_HTTP_FIXTURE_H
#define PG_TESTS_INTEGRATION_HTTP_FIXTURE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "support/gateway.h"
#include "support/gwtest.h"
#include "support/http.h"
#include "support/nest.h"
#include "support/net.h"

typedef struct fixture {
    struct nest_group *nest;   /* the group's Nest service */
    struct gwproc *gw;         /* the gateway on MAIN_CONFIG */
    int port;
} fixture_t;

/* The group's config: NEST_ADDR names the service; routes for every
 * feature of the HTTP API. */
extern const char MAIN_CONFIG[];

/* Group setups (one Nest service and a gateway on MAIN_CONFIG) and
 * teardown; test_setup points failure messages at the group's gateway,
 * own_teardown kills what the test started for itself. */
int group_setup_v12(void **state);
int group_setup_v10(void **state);
int group_teardown(void **state);
int test_setup(void **state);
int own_teardown(void **state);
/* "v12" or "v10". */
const char *nest_version(void **state);

/* A gateway of the test's own on `config`, NEST_ADDR=address (NULL: a
 * closed port) plus base's options; fails the test if it does not start. */
struct gwproc *start_gateway(const char *config, const char *address, const struct gwproc_options *base);
/* SIGTERM; it must exit 0; freed. */
void stop_gateway(void);
/* The same without waiting for the exit (the test ended it itself). */
void own_gateway_free(void);
/* A Nest service of the given version for the test alone (port 0: any). */
struct nest_service *start_own_nest(const char *version, int port);
/* Stops and frees it. */
void own_nest_free(void);

/* A JSON string body of `size` bytes with multi-byte characters (caller
 * frees); the same in ASCII. */
char *big_body(size_t size);
char *ascii_body(size_t size);

/* A 400 whose message names `where`; frees r. */
void expect_error_names(struct http_response *r, const char *what, const char *code, const char *where);

/* ---- the scripted raw upstream ---- */

enum raw_mode {
    RAW_REPLY,    /* answers every request with `reply` as its only value */
    RAW_GARBAGE,  /* answers with bytes that are not a frame */
    RAW_BAD_JSON, /* answers with a frame that is not JSON */
    RAW_SILENT,   /* never answers */
    RAW_CLOSE,    /* closes the connection on the first request */
};

#define RAW_MAX_FRAMES 32

typedef struct raw_script {
    enum raw_mode mode;
    const char *reply;
    pthread_mutex_t mu;
    char *frames[RAW_MAX_FRAMES];  /* every frame received, in order */
    int nframes;
} raw_script_t;

typedef struct raw_env {
    raw_script_t script;
    struct testnet_upstream *up;
    struct gwproc *gw;
    int port;
} raw_env_t;

/* Services "raw" at NEST_ADDR; routes /raw, /raw-member, /raw-fast
 * (500 ms), /raw-emit, /raw-int/:id. */
extern const char RAW_CONFIG[];

/* A scripted upstream and a gateway on RAW_CONFIG in front of it (on the
 * heap: script threads use it until the upstream stops). */
raw_env_t *raw_open(enum raw_mode mode, const char *reply);
/* Stops the upstream (the gateway must be gone) and frees e. */
void raw_free(raw_env_t *e);
/* Stops the gateway, then raw_free. */
void raw_close(raw_env_t *e);
/* What own_teardown calls. */
void own_raw_free(void);
/* The newest packet holding `needle` (caller frees), or NULL. */
char *raw_frame_with(raw_script_t *s, const char *needle);
/* Sends body to path; the packet must carry exactly `data` and the reply
 * be exactly the upstream's. */
void raw_round_trip(raw_env_t *e, const char *path, const char *body, const char *data, const char *const *headers);

#endif
