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

/* Renders t for `in` into a fresh buffer and checks the contract of
 * render_template: on success the output is one valid JSON document, on
 * failure a one-line message and the output unchanged. Returns its result. */
int fuzz_render_and_check(const template *t, const render_input_t *in);

#endif
