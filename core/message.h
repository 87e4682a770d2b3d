/*
 * message: the JSON packets of Nest's TCP transport (../shared/PROTOCOL.md),
 * built and read without decoding what they carry.
 *
 * Building: a request is {"pattern":P,"data":D,"id":"ID"} and an event is
 * {"pattern":P,"data":D}, each with "metadata":M when given. P, D and M are
 * spliced in as the byte-exact JSON texts given (the server normalizes
 * patterns itself, so sending them as configured is always right).
 *
 * Reading: a reply is classified and the byte span of its `response` or
 * `err` is handed out untouched, so values that jansson would reject or
 * rewrite (big integers, "\u0000", lone surrogates) survive.
 */
#ifndef PG_CORE_MESSAGE_H
#define PG_CORE_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/*
 * Appends a whole frame for a request. pattern, data and metadata must be
 * valid JSON texts (metadata.n == 0: none); id must be ASCII that needs no
 * escaping (see msg_format_id). 0, or -ENOMEM with `out` unchanged in length.
 */
int msg_encode_request(buf_t *out, span_t pattern, span_t data, span_t id, span_t metadata);

/* Appends a whole frame for an event; same rules, no id. */
int msg_encode_event(buf_t *out, span_t pattern, span_t data, span_t metadata);

/* Request ids are decimal numbers; out needs MSG_ID_MAX bytes. */
#define MSG_ID_MAX 21
span_t msg_format_id(uint64_t id, char out[MSG_ID_MAX]);
/* Parses an id made by msg_format_id; 0 when `id` is not one of ours. */
int msg_parse_id(span_t id, uint64_t *out);

typedef enum msg_reply_kind {
    MSG_REPLY_VALUE,       /* a value; more packets follow */
    MSG_REPLY_LAST_VALUE,  /* a value, and the reply is complete */
    MSG_REPLY_DONE,        /* complete, with no further value */
    MSG_REPLY_ERROR,       /* the handler failed; value = its `err` */
    MSG_REPLY_NO_HANDLER,  /* no handler for the pattern; value = `err` */
    MSG_REPLY_FOREIGN,     /* not a Nest reply packet: none of `response`,
                              `err`, `isDisposed`, and members other than
                              `id` and `status` (a custom serializer);
                              value = the first such member's key */
} msg_reply_kind_t;

typedef struct msg_reply {
    msg_reply_kind_t kind;
    span_t id;     /* the id string's raw content, without quotes */
    span_t value;  /* VALUE/LAST_VALUE: `response`; ERROR/NO_HANDLER: `err`;
                      DONE: empty; FOREIGN: see above. Points into the
                      message, or at a static "null" for a value JavaScript
                      left undefined. */
    size_t unexpected; /* members other than id, response, err, status,
                          isDisposed */
} msg_reply_t;

/*
 * Validates a decoded message as one JSON object and classifies it the way
 * Nest's ClientProxy does: a top-level "status":"error" is the no-handler
 * packet; a truthy `err` is an error; a `response` is a value (the last when
 * `isDisposed` is truthy); else a truthy `isDisposed` is completion; a packet
 * with none of `response`, `err`, `isDisposed` is a value JavaScript left
 * undefined, forwarded as null, when it has no other member than `id` and
 * `status`, and FOREIGN when it has (Nest's own client would yield the
 * whole packet as the value: docs/PROTOCOL.md says why the gateway does
 * not).
 * Repeated keys: the last wins, as in JSON.parse.
 * Returns 0, or -1 with a reason in why[0..whylen) (invalid JSON with its
 * byte offset, not an object, no string "id").
 */
int msg_read_reply(span_t message, msg_reply_t *out, char *why, size_t whylen);

#endif
