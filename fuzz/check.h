/*
 * check: helpers shared by the config and route fuzz targets: a fixed,
 * deterministic environment for `${NAME}` substitution, the invariants of a
 * loaded config, and rendering a template with a check of its output.
 */
#ifndef PG_FUZZ_CHECK_H
#define PG_FUZZ_CHECK_H

#include "config/config.h"
#include "gateway/render.h"

/* The environment every fuzz load sees (config_load_options.getenv_fn). */
const char *fuzz_getenv(void *context, const char *name);

/* Options for config_load_string: fuzz_getenv, a fixed base_dir. */
config_load_options fuzz_load_options(void);

/* Loads text like config_load_string and checks the result's contract:
 * on failure a one-line message and no config; on success every invariant
 * that config.h promises, routes that do not conflict, a router that
 * builds, and templates that render to valid JSON. Returns the config (to
 * config_free) or NULL. */
config *fuzz_load_and_check(const char *text, size_t length);

/* Renders route r's data for `in` and checks the contract of
 * render_route_data and render_template: a route without `data` sends {}
 * for a bodyless GET, HEAD or DELETE; a body the template reads passes
 * render_check_body_as or fails the render; on success the output is one
 * valid UTF-8 JSON document, the same from both functions (whether or not
 * render_route_data forwards the body itself); on failure a one-line
 * message and the output unchanged. Returns render_template's result (0
 * for the {} default, -1 for a refused body). */
int fuzz_render_and_check(const config_route *r, const render_input_t *in);

/* render_each_fn over a NULL-terminated name/value table (context), or
 * over a fixed set of headers (repeated, mixed case, not UTF-8) when the
 * context is NULL. */
int fuzz_header_walk(void *context, render_pair_fn *pair, void *pair_context);

#endif
