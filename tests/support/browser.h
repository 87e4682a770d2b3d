/* browser: a real browser's view of CORS, for integration tests.
 *
 * browser_start() runs `node tests/browser/cors_probe.mjs` (through
 * proc.h): Debian's headless Chromium (/usr/bin/chromium, or PG_CHROMIUM),
 * driven by the pinned playwright-core, with a fresh profile, has loaded a
 * page from its own little server on 127.0.0.1 (b->origin, e.g.
 * "http://127.0.0.1:41234"). Put that origin in the gateway's
 * cors.allow_origins (or leave it out to see it refused).
 *
 * browser_fetch() has the page's script fetch() a URL (another origin: the
 * gateway's port) and returns what the script observed, as JSON:
 *
 *   request  {"url": "http://127.0.0.1:8080/x", "method": "POST",
 *             "headers": {"X-Custom": "1"}, "body": "{}",
 *             "credentials": "omit" | "same-origin" | "include"}
 *             (only url is required; method GET, credentials same-origin)
 *   reply    {"ok": true, "status": 200, "body": "...",
 *             "headers": {every response header the script may read,
 *                         names in lower case},
 *             "console": [what the page's console got meanwhile]}
 *            or, when the browser blocked the request (CORS) or it failed:
 *            {"ok": false, "error": "TypeError: Failed to fetch",
 *             "console": ["Access to fetch at '...' from origin '...' has
 *                          been blocked by CORS policy: ..."]}
 *
 * Whether a preflight was sent is not visible to the page: look at the
 * server's side (the gateway's access log, or the test server's record).
 *
 * Ownership: the test owns the struct and, between a successful
 * browser_start() and browser_stop(), the node process (which proc.h's
 * registry kills at exit if a test fails halfway). browser_fetch() returns
 * a new json_t the caller json_decref()s. One browser serves any number of
 * fetches, one at a time. Call from the test's main thread.
 *
 * Node and npm packages: `node` from PATH or PG_NODE; tests/browser's
 * node_modules installed by scripts/setup (else -ENOENT, said on stderr,
 * never a skip).
 *
 * Errors: 0 or a negative errno, with the reason and node's stderr printed.
 */
#ifndef PG_TESTS_SUPPORT_BROWSER_H
#define PG_TESTS_SUPPORT_BROWSER_H

#include <jansson.h>

#include "support/proc.h"

/* Starting Chromium and loading the page; one fetch (slow on a loaded
 * machine: a blocked request's console line is waited for up to 5 s). */
#define BROWSER_START_TIMEOUT_MS 90000
#define BROWSER_FETCH_TIMEOUT_MS 60000

struct browser {
  struct proc *proc;  /* NULL when stopped */
  char origin[128];   /* browser_start: the page's origin */
  char assets[128];   /* browser_start_docs: the base URL of Swagger UI's assets */
};

int browser_start(struct browser *b);

/* ---- the admin API's /docs page (tests/browser/docs_page.mjs) ---------------
 *
 * browser_start_docs() runs docs_page.mjs instead: Chromium as above, and a
 * little server of Swagger UI's assets from the pinned npm package
 * swagger-ui-dist, at b->assets ("http://127.0.0.1:PORT/"): give that to
 * the gateway as docs_assets. browser_docs_page() opens URL (the gateway's
 * /docs) in a fresh page, waits until Swagger UI rendered it, saves a
 * full-page screenshot to `screenshot` (NULL: none) and returns what the
 * page shows, as JSON:
 *
 *   {"ok": true, "title": "patterngate API", "status": 200,
 *    "operations": [{"method": "GET", "path": "/users/{id}"}, ...],
 *    "spec": {"url": ".../openapi.json", "status": 200},
 *    "assets": [paths of the asset server asked for by the page],
 *    "errors": [Swagger UI's error texts], "console": [...]}
 *   or {"ok": false, "error": "...", ...}
 *
 * browser_fetch() asks cors_probe.mjs's questions; browser_stop() stops
 * either script. */
int browser_start_docs(struct browser *b);
int browser_docs_page(struct browser *b, const char *url, const char *screenshot, json_t **reply);

/* Runs one fetch in the page; *reply gets the answer (see above). */
int browser_fetch(struct browser *b, const char *request_json, json_t **reply);

/* The same with the request as JSON (not stolen). */
int browser_fetch_json(struct browser *b, const json_t *request, json_t **reply);

/* Closes the browser (EOF on its stdin, then SIGKILL after 10 s); safe on a
 * stopped one. */
void browser_stop(struct browser *b);

#endif
