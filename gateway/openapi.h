/*
 * openapi: the OpenAPI 3.1 document of a config (SPEC.md "Describing the
 * API"), for `patterngate openapi` and the admin API's GET /openapi.json,
 * and the HTML page of GET /docs that renders it with Swagger UI.
 *
 * The document is built from the structures the gateway runs on (the
 * routes' route_path and compiled data template, config/template.h's
 * template_each_slot()), never from the JSON text, so it cannot drift from
 * what the gateway does. Pure: no I/O, no state; built only when asked (the
 * admin API builds it per request from the generation it runs, so it
 * follows reloads). Not a hot path: it uses jansson.
 *
 * What it holds, in a fixed order (same config, same bytes):
 *   openapi "3.1.0"; info.title "patterngate", info.version PG_VERSION
 *     (the build that serves the document);
 *   servers: http://LISTEN (a wildcard host, 0.0.0.0 or ::, becomes the
 *     server variable {host}, default "localhost");
 *   paths, in route order (then the generic API): a route path in `{name}`
 *     form (`/users/:id` -> `/users/{id}`, a last segment `*rest` -> `{rest}`,
 *     literal segments percent-encoded as in a URL). Routes of the same
 *     shape share one path item, with the capture names of the first one;
 *     a `*rest` capture whose `{name}` form is another shape's gets a
 *     suffix ("rest2"). Methods in the order get, post, put, patch, delete;
 *     a `*` route is listed under each of the five. HEAD (answered for
 *     every GET route) and CORS preflights are not listed.
 *   Each operation: operationId from the method and path (`get_users_id`,
 *     made unique with "_2", ...); summary and description as the route
 *     gives them (description default: the pattern and service); tags as
 *     given, else the service's name; `x-patterngate`: route index, service,
 *     pattern, kind, reply.
 *   Parameters: every path capture (required; schema from the conversion
 *     of a slot that reads it: `:int` integer/int64, `:number` number,
 *     `:bool` boolean, `:json` content application/json; else string; a
 *     `*rest` capture says it may contain `/`); `$query.NAME` and
 *     `$header.NAME` slots (required unless every slot reading it ends in
 *     `?`; Authorization, Content-Type and Accept are never parameters);
 *     `$query` whole: one free-form object parameter; a rate_limit key
 *     `$query.NAME` / `$header.NAME`: an optional parameter.
 *   Request body: when the template reads the body, except for a GET or
 *     DELETE without a `data` key (the default template; such requests are
 *     meant to be bodyless and send {}). The route's request_schema, else
 *     a schema derived from what is read: `$body.a.b` members as nested
 *     properties (types from conversions, non-optional members required),
 *     a spread of the whole body {"type": "object"}, the whole body {}.
 *     Content types application/json and application/x-www-form-urlencoded.
 *   Responses: the route's status (emit: no content, X-Delivered; send:
 *     application/json, an array for `reply: array`, application/x-ndjson
 *     or text/event-stream for streams, with the route's response_schema
 *     as the schema of one value, else {}; `auto` adds 204 for no value),
 *     then the error statuses the route can answer (error_table and
 *     can_answer() in openapi.c, from SPEC.md's error table), each with
 *     components.schemas.Error: 400 when the template reads the request,
 *     401 when a token is needed, 403 with require_claims, 404 on the
 *     generic API (unknown service), 413 with a request body, 429 with a
 *     rate_limit, 501 and the service's own 4XX/5XX (upstream_error) for
 *     sends, 502, 503 and 504 always; never 404/405 per route, never 499.
 *   Security: components.securitySchemes bearerAuth (http bearer, with
 *     auth.bearer_tokens) and jwtAuth (http bearer, bearerFormat JWT, with
 *     auth.jwt); a top-level `security` of the configured mechanisms (any
 *     one sufficing); an operation whose route's auth differs has its own
 *     (`security: []` for auth "none").
 *   The generic API, for the services that have it on:
 *     POST /v1/send/{service} and POST /v1/emit/{service}.
 *
 * Ownership: the config is only read, and must outlive the call.
 */
#ifndef PG_GATEWAY_OPENAPI_H
#define PG_GATEWAY_OPENAPI_H

#include <jansson.h>

#include "config/config.h"
#include "core/buf.h"

/* The document as a new JSON object (json_decref() it), or NULL when out
 * of memory. */
json_t *openapi_document(const config *cfg);

/*
 * Appends the document's JSON text to *out: compact when indent is 0,
 * else indented by `indent` spaces (1..31), then a newline either way.
 * 0, or -ENOMEM (*out may then hold part of it).
 */
int openapi_write(const config *cfg, int indent, buf_t *out);

/*
 * Appends the HTML page of GET /docs to *out: Swagger UI, its assets
 * (swagger-ui.css, swagger-ui-bundle.js) loaded from
 * config_docs_assets(cfg), rendering "openapi.json" (a URL relative to the
 * page, so /docs reads /openapi.json, also behind a path prefix). Nothing
 * of Swagger UI is compiled in. 0, or -ENOMEM.
 */
int openapi_docs_page(const config *cfg, buf_t *out);

#endif
