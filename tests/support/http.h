/* http: a blocking HTTP/1.1 client for tests.
 *
 * Talks to 127.0.0.1:port over one TCP connection that can carry several
 * requests one after the other (keep-alive). Deliberately independent of
 * gateway/ and of libmicrohttpd: it is the tests' own oracle for HTTP.
 *
 *   - http_request(): send a request (any body size, Content-Length or
 *     chunked upload) and read the whole response: status, headers (every
 *     one kept, looked up case-insensitively), body framed by
 *     Content-Length, by chunked transfer coding (decoded), or by the
 *     end of the connection.
 *   - Streaming: http_send() + http_read_head(), then http_body_next() (or
 *     http_body_line()) returns the de-chunked body bytes as they arrive,
 *     each with the monotonic time (deadline_now_ms) it arrived at, so a
 *     test can check that the first NDJSON or SSE value came long before
 *     the last.
 *   - Misbehaving clients: http_send_raw() writes any bytes (invalid UTF-8,
 *     a Content-Length larger than the limit, a body in slow pieces);
 *     http_close() / http_abort() end the connection gracefully (FIN) or
 *     abruptly (RST) at any point, mid-request included.
 *
 * A request whose response starts arriving while its body is still being
 * sent (a server answering 413 early) stops sending: the rest of the body is
 * dropped and the response is read; resp->body_unsent says how much was not
 * sent. A write that fails because the server closed the connection is
 * likewise followed by an attempt to read the response it may have sent.
 *
 * Ownership:
 *
 *   test ──owns──▶ http_conn ──owns──▶ socket, receive buffer, body decoder
 *   test ──owns──▶ http_response ──owns──▶ status text, headers, body
 *
 * An http_conn is owned by the caller from http_connect() until
 * http_close()/http_abort(), which free it. An http_response is filled by
 * http_request()/http_read_response()/http_read_head() and released with
 * http_response_free() (it may be reused after that). Strings passed in
 * (paths, headers, bodies) are borrowed for the duration of the call only.
 *
 * Threads: one http_conn belongs to one thread at a time; different
 * connections may be used from different threads at once (nothing here is
 * global). Nothing here calls cmocka.
 *
 * Errors: int/ssize_t results are >= 0 on success and a negative errno on
 * failure: -ETIMEDOUT when the timeout expired, -ECONNREFUSED,
 * -ECONNRESET, -EPIPE as the socket reports them, -ENODATA when the server
 * closed the connection before a complete response, -EPROTO when what it
 * sent is not HTTP/1.x, -EMSGSIZE when the response head exceeds
 * HTTP_MAX_HEAD_BYTES. Timeouts are in milliseconds and bound the whole
 * call; a negative timeout waits forever. Writes never raise SIGPIPE.
 */
#ifndef PG_TESTS_SUPPORT_HTTP_H
#define PG_TESTS_SUPPORT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_MAX_HEAD_BYTES (1024 * 1024)

struct http_conn;

struct http_header {
  char *name;   /* as the server spelled it */
  char *value;  /* without the surrounding whitespace */
};

struct http_response {
  int status;                  /* 200, 404, ... (1xx interim responses are skipped) */
  char *reason;                /* "OK"; may be "" */
  int minor_version;           /* 1 for HTTP/1.1, 0 for HTTP/1.0 */
  struct http_header *headers; /* in the order received, repeats kept */
  size_t nheaders;
  char *body;                  /* the (de-chunked) body, NUL-terminated; "" when empty */
  size_t body_len;
  bool chunked;                /* the body came with Transfer-Encoding: chunked */
  bool conn_closed;            /* the connection cannot carry another request:
                                  "Connection: close", a read-to-close body, or
                                  the server closed it */
  size_t body_unsent;          /* request body bytes not sent (early response) */
  int64_t head_at_ms;          /* deadline_now_ms() when the head was complete */
  int64_t done_at_ms;          /* ... when the body was complete */
};

/* How a request is sent. Zero-initialise, then set what matters. */
struct http_request {
  const char *method;          /* "GET", "POST", ...; NULL: "GET" */
  const char *path;            /* origin form with its query: "/users/7?full=true" */
  /* Extra header lines "Name: value" (no CRLF), NULL-terminated; NULL for
   * none. Host, Content-Length and Transfer-Encoding are added unless
   * given here (giving one of the last two means the caller frames the
   * body itself: the body is then sent as is). */
  const char *const *headers;
  const void *body;            /* NULL: no body */
  size_t body_len;
  /* Send the body with Transfer-Encoding: chunked, in chunks of this many
   * bytes (0: no chunking). */
  size_t chunk_size;
  /* Also send Content-Length: 0 when there is no body (what curl does for
   * POST). Implied for POST, PUT and PATCH. */
  bool empty_length;
};

/* Connects to 127.0.0.1:port within timeout_ms. 0 and *out set, or a
 * negative errno. */
int http_connect(int port, int timeout_ms, struct http_conn **out);

/* The connection's socket (for poll, shutdown...). Still owned by c. */
int http_fd(const struct http_conn *c);

/* Closes gracefully (FIN) and frees c. NULL is ignored. */
void http_close(struct http_conn *c);

/* Closes abruptly with an RST (SO_LINGER 0), as a client that goes away,
 * and frees c. NULL is ignored. */
void http_abort(struct http_conn *c);

/* Sends one request: head, then body (see the early-response rule above).
 * 0 when it was sent, or cut short by an early response or by the server
 * closing the connection (read the response to learn which); otherwise a
 * negative errno. */
int http_send(struct http_conn *c, const struct http_request *req, int timeout_ms);

/* Writes raw bytes as they are. The next http_read_* call reads the
 * response to them, as the answer to `method` given by http_expect() (by
 * default the method of the last http_send, else GET). 0 or a negative
 * errno. */
int http_send_raw(struct http_conn *c, const void *buf, size_t len, int timeout_ms);

/* Tells which request method the next response answers (HEAD responses
 * have no body). */
void http_expect(struct http_conn *c, const char *method);

/* Reads the next whole response into resp (which the caller later frees
 * with http_response_free). 0 or a negative errno; on error resp holds
 * nothing to free. */
int http_read_response(struct http_conn *c, struct http_response *resp, int timeout_ms);

/* http_send then http_read_response. */
int http_request(struct http_conn *c, const struct http_request *req,
                 struct http_response *resp, int timeout_ms);

/* One request on a new connection, closed afterwards. */
int http_fetch(int port, const struct http_request *req, struct http_response *resp,
               int timeout_ms);

/* ---- streaming ---------------------------------------------------------- */

/* Reads only the head of the next response: resp gets status and headers
 * and an empty body. Then read the body with http_body_next/http_body_line
 * until they return 0 / -ENODATA. */
int http_read_head(struct http_conn *c, struct http_response *resp, int timeout_ms);

/* Returns the next body bytes (de-chunked) as soon as any are available, at
 * most cap of them, copied to buf; *at_ms (if not NULL) receives the time
 * they arrived. Returns their count, 0 at the end of the body, or a
 * negative errno (-ENODATA if the connection ended mid-body). */
ssize_t http_body_next(struct http_conn *c, void *buf, size_t cap, int64_t *at_ms,
                       int timeout_ms);

/* Returns the next body line (NDJSON, SSE): *line receives it without its
 * "\n" (nor a "\r" before it), heap, NUL-terminated, caller frees; *at_ms
 * (if not NULL) the time its "\n" arrived. Returns its length. A last line
 * without "\n" counts as a line. -ENODATA once the body has ended and every
 * line was returned. */
ssize_t http_body_line(struct http_conn *c, char **line, int64_t *at_ms, int timeout_ms);

/* ---- responses ---------------------------------------------------------- */

/* The first value of header `name` (case-insensitive), or NULL. */
const char *http_header(const struct http_response *resp, const char *name);

/* How many times header `name` occurs, and its i-th value (NULL past the
 * end). */
size_t http_header_count(const struct http_response *resp, const char *name);
const char *http_header_nth(const struct http_response *resp, const char *name, size_t i);

/* Writes a readable dump (status line, headers, at most max_body body bytes)
 * to a new heap string for failure messages; caller frees. */
char *http_response_dump(const struct http_response *resp, size_t max_body);

/* Frees what resp holds and zeroes it. */
void http_response_free(struct http_response *resp);

#endif
