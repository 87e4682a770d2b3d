/* http: blocking HTTP/1.1 client for tests. See http.h. */
#include "support/http.h"
#include "support/deadline.h"
#include "support/net.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define HTTP_RECV_CHUNK 65536
#define HTTP_MAX_CHUNK_LINE 4096
#define HTTP_METHOD_MAX 16

/* How the body of the response being read is framed. */
enum body_mode {
  BODY_NONE,      /* no body (HEAD, 1xx, 204, 304) */
  BODY_LENGTH,    /* Content-Length: `remaining` bytes */
  BODY_CHUNKED,   /* chunked transfer coding, see enum chunk_state */
  BODY_TO_CLOSE,  /* everything until the server closes */
};

/* Where the chunked decoder is. */
enum chunk_state {
  CHUNK_SIZE,      /* expecting "<hex>[;ext]\r\n" */
  CHUNK_DATA,      /* `remaining` data bytes of the current chunk */
  CHUNK_DATA_END,  /* expecting the "\r\n" after the data */
  CHUNK_TRAILER,   /* trailer lines until an empty one */
};

struct http_conn {
  int fd;
  int port;
  char *rx;                 /* received bytes; unconsumed from rx_off to rx_len */
  size_t rx_off, rx_len, rx_cap;
  bool eof;                 /* the server closed its side */
  int64_t last_recv_ms;     /* when the latest bytes arrived */
  char method[HTTP_METHOD_MAX]; /* what the next response answers */
  size_t body_unsent;       /* of the last request sent */
  /* body decoder of the response being read */
  bool in_body;             /* a head was read, its body not finished */
  enum body_mode mode;
  enum chunk_state chunk;
  uint64_t remaining;
  /* pending bytes of http_body_line */
  char *line;
  size_t line_len, line_cap;
  int64_t line_at_ms;
};

/* ---- small helpers -------------------------------------------------------- */

static int grow(char **buf, size_t *cap, size_t need) {
  if (need <= *cap)
    return 0;
  size_t cap2 = *cap ? *cap : 256;
  while (cap2 < need)
    cap2 *= 2;
  char *p = realloc(*buf, cap2);
  if (!p)
    return -ENOMEM;
  *buf = p;
  *cap = cap2;
  return 0;
}

static char *dup_range(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

static int wait_fd(int fd, short events, int64_t deadline, short *revents) {
  for (;;) {
    struct pollfd pfd = {.fd = fd, .events = events};
    int rc = poll(&pfd, 1, deadline_remaining_ms(deadline));
    if (rc > 0) {
      *revents = pfd.revents;
      return 0;
    }
    if (rc == 0)
      return -ETIMEDOUT;
    if (errno != EINTR)
      return -errno;
  }
}

static size_t rx_avail(const struct http_conn *c) { return c->rx_len - c->rx_off; }
static const char *rx_data(const struct http_conn *c) { return c->rx + c->rx_off; }

static void rx_consume(struct http_conn *c, size_t n) {
  c->rx_off += n;
  if (c->rx_off == c->rx_len)
    c->rx_off = c->rx_len = 0;
}

/* Receives whatever is available now (after waiting up to the deadline for
 * something): 0 (bytes arrived, or eof is now set) or a negative errno. */
static int rx_fill(struct http_conn *c, int64_t deadline) {
  if (c->eof)
    return -ENODATA;
  if (c->rx_off > 0 && c->rx_off >= c->rx_len / 2) {
    memmove(c->rx, c->rx + c->rx_off, rx_avail(c));
    c->rx_len -= c->rx_off;
    c->rx_off = 0;
  }
  if (grow(&c->rx, &c->rx_cap, c->rx_len + HTTP_RECV_CHUNK) != 0)
    return -ENOMEM;
  for (;;) {
    short rev;
    int rc = wait_fd(c->fd, POLLIN, deadline, &rev);
    if (rc < 0)
      return rc;
    ssize_t n = recv(c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len, MSG_DONTWAIT);
    if (n > 0) {
      c->rx_len += (size_t)n;
      c->last_recv_ms = deadline_now_ms();
      return 0;
    }
    if (n == 0) {
      c->eof = true;
      return 0;
    }
    if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
      return -errno;
  }
}

/* Offset of the end of the head ("\r\n\r\n" included) in the unconsumed
 * bytes, or 0 when it has not arrived. */
static size_t head_end(const struct http_conn *c) {
  if (rx_avail(c) == 0)
    return 0;
  const char *p = memmem(rx_data(c), rx_avail(c), "\r\n\r\n", 4);
  return p ? (size_t)(p - rx_data(c)) + 4 : 0;
}

/* ---- connections ---------------------------------------------------------- */

int http_connect(int port, int timeout_ms, struct http_conn **out) {
  struct http_conn *c = calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  c->fd = testnet_connect(port, timeout_ms);
  if (c->fd < 0) {
    int rc = c->fd;
    free(c);
    return rc;
  }
  c->port = port;
  snprintf(c->method, sizeof c->method, "GET");
  *out = c;
  return 0;
}

int http_fd(const struct http_conn *c) { return c->fd; }

static void conn_free(struct http_conn *c) {
  close(c->fd);
  free(c->rx);
  free(c->line);
  free(c);
}

void http_close(struct http_conn *c) {
  if (c)
    conn_free(c);
}

void http_abort(struct http_conn *c) {
  if (!c)
    return;
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  conn_free(c);
}

void http_expect(struct http_conn *c, const char *method) {
  snprintf(c->method, sizeof c->method, "%s", method ? method : "GET");
}

/* ---- sending ---------------------------------------------------------------- */

/* Receives what the server sent while a request was being written and
 * consumes complete interim (1xx) responses. True when a final response
 * has begun (or the server closed): the rest of the request is not sent. */
static bool early_response(struct http_conn *c) {
  int rc = rx_fill(c, deadline_now_ms());
  if (rc < 0 && rc != -ETIMEDOUT)
    return true;
  for (;;) {
    if (rx_avail(c) == 0)
      return c->eof;
    if (rx_avail(c) >= 10 && memcmp(rx_data(c), "HTTP/1.", 7) == 0 && rx_data(c)[9] != '1')
      return true;
    if (rx_avail(c) < 10)
      return c->eof;
    size_t end = head_end(c);
    if (end == 0)
      return c->eof || memcmp(rx_data(c), "HTTP/1.", 7) != 0;
    rx_consume(c, end); /* "HTTP/1.1 100 Continue" */
  }
}

/* Writes all of buf unless a response begins meanwhile. 0 when written,
 * 1 when cut short (by a response, or by the server closing), or a
 * negative errno. */
static int send_watching(struct http_conn *c, const char *buf, size_t len, int64_t deadline) {
  while (len > 0) {
    ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      buf += n;
      len -= (size_t)n;
      continue;
    }
    if (errno == EPIPE || errno == ECONNRESET)
      return 1;
    if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
      return -errno;
    short rev;
    int rc = wait_fd(c->fd, POLLOUT | POLLIN, deadline, &rev);
    if (rc < 0)
      return rc;
    if ((rev & (POLLIN | POLLHUP | POLLERR)) && early_response(c))
      return 1;
  }
  return 0;
}

static bool has_header(const char *const *headers, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; headers && headers[i]; i++)
    if (strncasecmp(headers[i], name, n) == 0 && headers[i][n] == ':')
      return true;
  return false;
}

static bool method_has_body(const char *method) {
  return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
         strcmp(method, "PATCH") == 0;
}

/* Appends printf output to a growing string. 0 or -ENOMEM. */
__attribute__((format(printf, 4, 5)))
static int appendf(char **s, size_t *len, size_t *cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || grow(s, cap, *len + (size_t)n + 1) != 0)
    return -ENOMEM;
  va_start(ap, fmt);
  vsnprintf(*s + *len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  *len += (size_t)n;
  return 0;
}

/* The request head, heap string (caller frees), or NULL. */
static char *build_head(const struct http_conn *c, const struct http_request *req,
                        const char *method, size_t *out_len) {
  char *s = NULL;
  size_t len = 0, cap = 0;
  int rc = appendf(&s, &len, &cap, "%s %s HTTP/1.1\r\n", method, req->path ? req->path : "/");
  if (rc == 0 && !has_header(req->headers, "Host"))
    rc = appendf(&s, &len, &cap, "Host: 127.0.0.1:%d\r\n", c->port);
  for (size_t i = 0; rc == 0 && req->headers && req->headers[i]; i++)
    rc = appendf(&s, &len, &cap, "%s\r\n", req->headers[i]);
  bool framed = has_header(req->headers, "Content-Length") ||
                has_header(req->headers, "Transfer-Encoding");
  if (rc == 0 && !framed && req->chunk_size > 0) {
    rc = appendf(&s, &len, &cap, "Transfer-Encoding: chunked\r\n");
  } else if (rc == 0 && !framed &&
             (req->body || req->empty_length || method_has_body(method))) {
    rc = appendf(&s, &len, &cap, "Content-Length: %zu\r\n", req->body ? req->body_len : 0);
  }
  if (rc == 0)
    rc = appendf(&s, &len, &cap, "\r\n");
  if (rc != 0) {
    free(s);
    return NULL;
  }
  *out_len = len;
  return s;
}

/* Sends the body in chunks of req->chunk_size, then the last chunk. */
static int send_chunked(struct http_conn *c, const struct http_request *req, int64_t deadline) {
  const char *body = req->body;
  size_t left = req->body ? req->body_len : 0;
  while (left > 0) {
    size_t n = left < req->chunk_size ? left : req->chunk_size;
    char line[32];
    int len = snprintf(line, sizeof line, "%zx\r\n", n);
    int rc = send_watching(c, line, (size_t)len, deadline);
    if (rc == 0)
      rc = send_watching(c, body, n, deadline);
    if (rc == 0)
      rc = send_watching(c, "\r\n", 2, deadline);
    if (rc != 0) {
      c->body_unsent = left;
      return rc < 0 ? rc : 0;
    }
    body += n;
    left -= n;
  }
  int rc = send_watching(c, "0\r\n\r\n", 5, deadline);
  return rc < 0 ? rc : 0;
}

int http_send(struct http_conn *c, const struct http_request *req, int timeout_ms) {
  int64_t deadline = deadline_after(timeout_ms);
  const char *method = req->method ? req->method : "GET";
  http_expect(c, method);
  c->body_unsent = 0;
  size_t head_len;
  char *head = build_head(c, req, method, &head_len);
  if (!head)
    return -ENOMEM;
  int rc = send_watching(c, head, head_len, deadline);
  free(head);
  size_t body_len = req->body ? req->body_len : 0;
  if (rc != 0) {
    c->body_unsent = body_len;
    return rc < 0 ? rc : 0;
  }
  bool framed = has_header(req->headers, "Content-Length") ||
                has_header(req->headers, "Transfer-Encoding");
  if (req->chunk_size > 0 && !framed)
    return send_chunked(c, req, deadline);
  if (body_len == 0)
    return 0;
  const char *body = req->body;
  size_t sent = 0;
  while (sent < body_len) {
    /* in pieces, so that body_unsent is known when a response cuts in */
    size_t n = body_len - sent < HTTP_RECV_CHUNK ? body_len - sent : HTTP_RECV_CHUNK;
    rc = send_watching(c, body + sent, n, deadline);
    if (rc != 0) {
      c->body_unsent = body_len - sent;
      return rc < 0 ? rc : 0;
    }
    sent += n;
  }
  return 0;
}

int http_send_raw(struct http_conn *c, const void *buf, size_t len, int timeout_ms) {
  return testnet_write_all(c->fd, buf, len, timeout_ms);
}

/* ---- reading the head ------------------------------------------------------ */

static void trim(const char **s, const char **e) {
  while (*s < *e && (**s == ' ' || **s == '\t'))
    (*s)++;
  while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r'))
    (*e)--;
}

static int add_header(struct http_response *resp, const char *line, const char *end) {
  const char *colon = memchr(line, ':', (size_t)(end - line));
  if (!colon || colon == line)
    return -EPROTO;
  const char *vs = colon + 1, *ve = end;
  trim(&vs, &ve);
  struct http_header *h = realloc(resp->headers, (resp->nheaders + 1) * sizeof *h);
  if (!h)
    return -ENOMEM;
  resp->headers = h;
  h[resp->nheaders].name = dup_range(line, (size_t)(colon - line));
  h[resp->nheaders].value = dup_range(vs, (size_t)(ve - vs));
  resp->nheaders++;
  return h[resp->nheaders - 1].name && h[resp->nheaders - 1].value ? 0 : -ENOMEM;
}

/* Parses the status line of head[0..len). */
static int parse_status_line(struct http_response *resp, const char *line, const char *end) {
  if (end - line < 12 || memcmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[7]) ||
      line[8] != ' ')
    return -EPROTO;
  resp->minor_version = line[7] - '0';
  int status = 0;
  for (int i = 9; i < 12; i++) {
    if (!isdigit((unsigned char)line[i]))
      return -EPROTO;
    status = status * 10 + (line[i] - '0');
  }
  resp->status = status;
  const char *rs = line + 12, *re = end;
  trim(&rs, &re);
  resp->reason = dup_range(rs, (size_t)(re - rs));
  return resp->reason ? 0 : -ENOMEM;
}

static int parse_head(struct http_response *resp, const char *head, size_t len) {
  const char *end = head + len - 2; /* the final empty line's "\r\n" */
  const char *line = head;
  const char *eol = memmem(line, (size_t)(end - line), "\r\n", 2);
  int rc = parse_status_line(resp, line, eol);
  for (line = eol + 2; rc == 0 && line < end; line = eol + 2) {
    eol = memmem(line, (size_t)(end - line), "\r\n", 2);
    rc = add_header(resp, line, eol);
  }
  return rc;
}

static bool value_has_token(const char *value, const char *token) {
  size_t n = strlen(token);
  for (const char *p = value; p && *p;) {
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    if (strncasecmp(p, token, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' ' ||
                                          p[n] == ';' || p[n] == '\t'))
      return true;
    p = strchr(p, ',');
  }
  return false;
}

static bool any_value_has_token(const struct http_response *resp, const char *name,
                                const char *token) {
  for (size_t i = 0; i < http_header_count(resp, name); i++)
    if (value_has_token(http_header_nth(resp, name, i), token))
      return true;
  return false;
}

/* Chooses the body framing of the response just parsed. */
static int start_body(struct http_conn *c, struct http_response *resp) {
  c->in_body = true;
  c->remaining = 0;
  c->chunk = CHUNK_SIZE;
  const char *cl = http_header(resp, "Content-Length");
  if (strcmp(c->method, "HEAD") == 0 || resp->status == 204 || resp->status == 304) {
    c->mode = BODY_NONE;
  } else if (any_value_has_token(resp, "Transfer-Encoding", "chunked")) {
    c->mode = BODY_CHUNKED;
    resp->chunked = true;
  } else if (cl) {
    char *end;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    if (end == cl || *end != '\0' || errno != 0 || cl[0] == '-')
      return -EPROTO;
    c->mode = BODY_LENGTH;
    c->remaining = n;
  } else {
    c->mode = BODY_TO_CLOSE;
  }
  resp->conn_closed = c->mode == BODY_TO_CLOSE ||
                      any_value_has_token(resp, "Connection", "close") ||
                      (resp->minor_version == 0 &&
                       !any_value_has_token(resp, "Connection", "keep-alive"));
  return 0;
}

static int read_head_until(struct http_conn *c, struct http_response *resp, int64_t deadline);

int http_read_head(struct http_conn *c, struct http_response *resp, int timeout_ms) {
  return read_head_until(c, resp, deadline_after(timeout_ms));
}

/* Discards the rest of a body the caller did not read. */
static int drain_body(struct http_conn *c, int64_t deadline) {
  char sink[4096];
  for (;;) {
    ssize_t n = http_body_next(c, sink, sizeof sink, NULL, deadline_remaining_ms(deadline));
    if (n <= 0)
      return (int)n;
  }
}

static int read_head_until(struct http_conn *c, struct http_response *resp, int64_t deadline) {
  memset(resp, 0, sizeof *resp);
  if (c->in_body) {
    int rc = drain_body(c, deadline);
    if (rc < 0)
      return rc;
  }
  c->line_len = 0;
  for (;;) {
    size_t end = head_end(c);
    if (end == 0) {
      if (rx_avail(c) > HTTP_MAX_HEAD_BYTES)
        return -EMSGSIZE;
      if (c->eof)
        return -ENODATA;
      int rc = rx_fill(c, deadline);
      if (rc < 0)
        return rc;
      continue;
    }
    int rc = parse_head(resp, rx_data(c), end);
    rx_consume(c, end);
    if (rc == 0 && resp->status >= 100 && resp->status < 200 && resp->status != 101) {
      http_response_free(resp); /* interim: 100 Continue, 103 Early Hints */
      continue;
    }
    if (rc == 0)
      rc = start_body(c, resp);
    if (rc != 0) {
      http_response_free(resp);
      return rc;
    }
    resp->body = calloc(1, 1);
    resp->body_unsent = c->body_unsent;
    resp->head_at_ms = c->last_recv_ms;
    return resp->body ? 0 : -ENOMEM;
  }
}

/* ---- reading the body ------------------------------------------------------- */

/* Copies up to min(cap, limit) available bytes out of rx. */
static size_t take(struct http_conn *c, void *buf, size_t cap, uint64_t limit) {
  size_t n = rx_avail(c);
  if (n > cap)
    n = cap;
  if (n > limit)
    n = (size_t)limit;
  memcpy(buf, rx_data(c), n);
  rx_consume(c, n);
  return n;
}

/* One "\r\n"-terminated line of the chunked coding: its length (without the
 * CRLF) once complete, consumed by the caller; -EAGAIN when more bytes are
 * needed; -EPROTO when too long. */
static ssize_t chunk_line(const struct http_conn *c) {
  if (rx_avail(c) == 0)
    return -EAGAIN;
  const char *p = memmem(rx_data(c), rx_avail(c), "\r\n", 2);
  if (p)
    return p - rx_data(c);
  return rx_avail(c) > HTTP_MAX_CHUNK_LINE ? -EPROTO : -EAGAIN;
}

/* Advances the chunked decoder over framing bytes. 1: data bytes are next
 * (c->remaining of them), 0: the body ended, -EAGAIN: more bytes needed,
 * or a negative errno. */
static int chunk_advance(struct http_conn *c) {
  for (;;) {
    if (c->chunk == CHUNK_DATA) {
      if (c->remaining > 0)
        return 1;
      c->chunk = CHUNK_DATA_END;
      continue;
    }
    ssize_t n = chunk_line(c);
    if (n < 0)
      return (int)n;
    if (c->chunk == CHUNK_DATA_END) {
      if (n != 0)
        return -EPROTO;
      rx_consume(c, 2);
      c->chunk = CHUNK_SIZE;
    } else if (c->chunk == CHUNK_SIZE) {
      char *end;
      errno = 0;
      unsigned long long size = strtoull(rx_data(c), &end, 16);
      if (end == rx_data(c) || errno != 0 || (*end != ';' && *end != '\r' && *end != ' '))
        return -EPROTO;
      rx_consume(c, (size_t)n + 2);
      c->remaining = size;
      c->chunk = size > 0 ? CHUNK_DATA : CHUNK_TRAILER;
    } else { /* CHUNK_TRAILER */
      rx_consume(c, (size_t)n + 2);
      if (n == 0)
        return 0;
    }
  }
}

static ssize_t body_end(struct http_conn *c) {
  c->in_body = false;
  return 0;
}

ssize_t http_body_next(struct http_conn *c, void *buf, size_t cap, int64_t *at_ms,
                       int timeout_ms) {
  int64_t deadline = deadline_after(timeout_ms);
  if (cap == 0)
    return -EINVAL;
  for (;;) {
    if (!c->in_body || c->mode == BODY_NONE)
      return body_end(c);
    int state = 1;
    if (c->mode == BODY_LENGTH && c->remaining == 0)
      return body_end(c);
    if (c->mode == BODY_CHUNKED) {
      state = chunk_advance(c);
      if (state == 0)
        return body_end(c);
      if (state < 0 && state != -EAGAIN)
        return state;
    }
    if (state == 1 && rx_avail(c) > 0) {
      uint64_t limit = c->mode == BODY_TO_CLOSE ? UINT64_MAX : c->remaining;
      size_t n = take(c, buf, cap, limit);
      if (c->mode != BODY_TO_CLOSE)
        c->remaining -= n;
      if (at_ms)
        *at_ms = c->last_recv_ms;
      return (ssize_t)n;
    }
    if (c->eof)
      return c->mode == BODY_TO_CLOSE ? body_end(c) : -ENODATA;
    int rc = rx_fill(c, deadline);
    if (rc < 0)
      return rc;
  }
}

ssize_t http_body_line(struct http_conn *c, char **line, int64_t *at_ms, int timeout_ms) {
  int64_t deadline = deadline_after(timeout_ms);
  for (;;) {
    char *nl = c->line_len > 0 ? memchr(c->line, '\n', c->line_len) : NULL;
    size_t len = nl ? (size_t)(nl - c->line) : c->line_len;
    if (nl || (!c->in_body && c->line_len > 0)) {
      size_t keep = len;
      if (keep > 0 && c->line[keep - 1] == '\r')
        keep--;
      *line = dup_range(c->line, keep);
      if (!*line)
        return -ENOMEM;
      size_t used = nl ? len + 1 : len;
      memmove(c->line, c->line + used, c->line_len - used);
      c->line_len -= used;
      if (at_ms)
        *at_ms = c->line_at_ms;
      return (ssize_t)keep;
    }
    if (!c->in_body)
      return -ENODATA;
    if (grow(&c->line, &c->line_cap, c->line_len + 4096) != 0)
      return -ENOMEM;
    ssize_t n = http_body_next(c, c->line + c->line_len, c->line_cap - c->line_len,
                               &c->line_at_ms, deadline_remaining_ms(deadline));
    if (n < 0)
      return n;
    c->line_len += (size_t)n;
  }
}

int http_read_response(struct http_conn *c, struct http_response *resp, int timeout_ms) {
  int64_t deadline = deadline_after(timeout_ms);
  int rc = read_head_until(c, resp, deadline);
  if (rc < 0)
    return rc;
  size_t cap = 1;
  for (;;) {
    if (grow(&resp->body, &cap, resp->body_len + HTTP_RECV_CHUNK + 1) != 0) {
      rc = -ENOMEM;
      break;
    }
    ssize_t n = http_body_next(c, resp->body + resp->body_len, cap - resp->body_len - 1, NULL,
                               deadline_remaining_ms(deadline));
    if (n <= 0) {
      rc = (int)n;
      break;
    }
    resp->body_len += (size_t)n;
  }
  if (rc < 0) {
    http_response_free(resp);
    return rc;
  }
  resp->body[resp->body_len] = '\0';
  resp->done_at_ms = deadline_now_ms();
  if (c->eof)
    resp->conn_closed = true;
  return 0;
}

int http_request(struct http_conn *c, const struct http_request *req,
                 struct http_response *resp, int timeout_ms) {
  int64_t deadline = deadline_after(timeout_ms);
  int rc = http_send(c, req, timeout_ms);
  if (rc < 0)
    return rc;
  return http_read_response(c, resp, deadline_remaining_ms(deadline));
}

int http_fetch(int port, const struct http_request *req, struct http_response *resp,
               int timeout_ms) {
  int64_t deadline = deadline_after(timeout_ms);
  struct http_conn *c;
  int rc = http_connect(port, timeout_ms, &c);
  if (rc < 0)
    return rc;
  rc = http_request(c, req, resp, deadline_remaining_ms(deadline));
  http_close(c);
  return rc;
}

/* ---- responses -------------------------------------------------------------- */

const char *http_header_nth(const struct http_response *resp, const char *name, size_t i) {
  for (size_t k = 0; k < resp->nheaders; k++)
    if (strcasecmp(resp->headers[k].name, name) == 0 && i-- == 0)
      return resp->headers[k].value;
  return NULL;
}

const char *http_header(const struct http_response *resp, const char *name) {
  return http_header_nth(resp, name, 0);
}

size_t http_header_count(const struct http_response *resp, const char *name) {
  size_t n = 0;
  for (size_t k = 0; k < resp->nheaders; k++)
    n += strcasecmp(resp->headers[k].name, name) == 0;
  return n;
}

char *http_response_dump(const struct http_response *resp, size_t max_body) {
  char *s = NULL;
  size_t len = 0, cap = 0;
  int rc = appendf(&s, &len, &cap, "HTTP/1.%d %d %s\n", resp->minor_version, resp->status,
                   resp->reason ? resp->reason : "");
  for (size_t i = 0; rc == 0 && i < resp->nheaders; i++)
    rc = appendf(&s, &len, &cap, "%s: %s\n", resp->headers[i].name, resp->headers[i].value);
  size_t n = resp->body_len < max_body ? resp->body_len : max_body;
  if (rc == 0)
    rc = appendf(&s, &len, &cap, "\n%.*s", (int)n, resp->body ? resp->body : "");
  if (rc == 0 && n < resp->body_len)
    rc = appendf(&s, &len, &cap, "... (%zu bytes in all)", resp->body_len);
  if (rc != 0) {
    free(s);
    return NULL;
  }
  return s;
}

void http_response_free(struct http_response *resp) {
  for (size_t i = 0; i < resp->nheaders; i++) {
    free(resp->headers[i].name);
    free(resp->headers[i].value);
  }
  free(resp->headers);
  free(resp->reason);
  free(resp->body);
  memset(resp, 0, sizeof *resp);
}
