/* testnet: TCP helpers and scripted upstream for tests. See net.h. */
#include "support/net.h"
#include "support/deadline.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TESTNET_PEER_WRITE_TIMEOUT_MS 10000
#define TESTNET_MAX_LENGTH_DIGITS 15

/* Waits for `events` on fd until the deadline: 1 ready, -ETIMEDOUT, -errno. */
static int wait_fd(int fd, short events, int64_t deadline) {
  for (;;) {
    struct pollfd pfd = {.fd = fd, .events = events};
    int rc = poll(&pfd, 1, deadline_remaining_ms(deadline));
    if (rc > 0)
      return 1;
    if (rc == 0)
      return -ETIMEDOUT;
    if (errno != EINTR)
      return -errno;
  }
}

/* ---- plain sockets ---------------------------------------------------- */

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

static int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    return -errno;
  return -err;
}

int testnet_connect(int port, int timeout_ms) {
  return testnet_connect_ip("127.0.0.1", port, timeout_ms);
}

int testnet_connect_ip(const char *ip, int port, int timeout_ms) {
  struct sockaddr_in addr = loopback(port);
  if (inet_pton(AF_INET, ip, &addr.sin_addr) != 1)
    return -EINVAL;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -errno;
  int rc = 0;
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    rc = errno == EINPROGRESS ? wait_fd(fd, POLLOUT, deadline_after(timeout_ms)) : -errno;
    if (rc == 1)
      rc = socket_error(fd);
  }
  int one = 1;
  if (rc == 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0)
    rc = -errno;
  if (rc == 0)
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (rc != 0) {
    close(fd);
    return rc;
  }
  return fd;
}

int testnet_write_all(int fd, const void *buf, size_t len, int timeout_ms) {
  const char *at = buf;
  int64_t deadline = deadline_after(timeout_ms);
  while (len > 0) {
    ssize_t n = send(fd, at, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      at += n;
      len -= (size_t)n;
      continue;
    }
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return -errno;
    int rc = wait_fd(fd, POLLOUT, deadline);
    if (rc < 0)
      return rc;
  }
  return 0;
}

ssize_t testnet_read_some(int fd, void *buf, size_t cap, int timeout_ms) {
  int64_t deadline = deadline_after(timeout_ms);
  for (;;) {
    int rc = wait_fd(fd, POLLIN, deadline);
    if (rc < 0)
      return rc;
    ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
    if (n >= 0)
      return n;
    if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
      return -errno;
  }
}

int testnet_wait_closed(int fd, int timeout_ms) {
  int64_t deadline = deadline_after(timeout_ms);
  char sink[4096];
  for (;;) {
    ssize_t n = testnet_read_some(fd, sink, sizeof sink, deadline_remaining_ms(deadline));
    if (n == -ETIMEDOUT)
      return -ETIMEDOUT;
    if (n <= 0)
      return 0;
  }
}

int testnet_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  struct sockaddr_in addr = loopback(0);
  socklen_t len = sizeof addr;
  int rc = 0;
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
      getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
    rc = -errno;
  close(fd);
  return rc != 0 ? rc : ntohs(addr.sin_port);
}

/* ---- frames ------------------------------------------------------------ */

/* Bytes in the UTF-8 sequence that starts with `lead` (1 for a stray
 * continuation byte). */
static size_t utf8_seq_len(unsigned char lead) {
  if (lead >= 0xF0)
    return 4;
  if (lead >= 0xE0)
    return 3;
  if (lead >= 0xC0)
    return 2;
  return 1;
}

size_t testnet_utf16_len(const char *text, size_t len) {
  size_t units = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char b = (unsigned char)text[i];
    units += (size_t)((b & 0xC0) != 0x80) + (size_t)(b >= 0xF0);
  }
  return units;
}

char *testnet_frame(const char *json) {
  size_t len = strlen(json);
  char prefix[32];
  int n = snprintf(prefix, sizeof prefix, "%zu#", testnet_utf16_len(json, len));
  char *frame = malloc((size_t)n + len + 1);
  if (frame) {
    memcpy(frame, prefix, (size_t)n);
    memcpy(frame + n, json, len + 1);
  }
  return frame;
}

int testnet_send_frame(int fd, const char *json, int timeout_ms) {
  char *frame = testnet_frame(json);
  if (!frame)
    return -ENOMEM;
  int rc = testnet_write_all(fd, frame, strlen(frame), timeout_ms);
  free(frame);
  return rc;
}

/* ---- buffered reader -------------------------------------------------- */

void testnet_reader_init(struct testnet_reader *r, int fd) {
  memset(r, 0, sizeof *r);
  r->fd = fd;
}

void testnet_reader_free(struct testnet_reader *r) {
  free(r->buf);
  r->buf = NULL;
  r->len = r->cap = 0;
}

/* Receives more bytes: 0 (some arrived, or eof is now set), or -errno. */
static int reader_fill(struct testnet_reader *r, int64_t deadline) {
  if (r->eof)
    return 0;
  if (r->cap - r->len < 4096 + 1) {
    size_t cap = r->cap ? r->cap * 2 : 16384;
    char *grown = realloc(r->buf, cap);
    if (!grown)
      return -ENOMEM;
    r->buf = grown;
    r->cap = cap;
  }
  ssize_t n = testnet_read_some(r->fd, r->buf + r->len, r->cap - r->len - 1,
                                deadline_remaining_ms(deadline));
  if (n == -ECONNRESET || n == 0) {
    r->eof = true;
    return 0;
  }
  if (n < 0)
    return (int)n;
  r->len += (size_t)n;
  r->buf[r->len] = '\0';
  return 0;
}

/* Moves the first n buffered bytes into a new NUL-terminated string. */
static ssize_t reader_take(struct testnet_reader *r, size_t skip, size_t n, char **out) {
  char *s = malloc(n + 1);
  if (!s)
    return -ENOMEM;
  s[n] = '\0';
  if (skip + n > 0) {
    memcpy(s, r->buf + skip, n);
    memmove(r->buf, r->buf + skip + n, r->len - skip - n);
    r->len -= skip + n;
  }
  *out = s;
  return (ssize_t)n;
}

/* Parses `<digits>#` at the start of the buffer. Returns the prefix length
 * and sets *units; 0 if more bytes are needed; -EPROTO if malformed. */
static ssize_t parse_length_prefix(const struct testnet_reader *r, size_t *units) {
  size_t value = 0;
  for (size_t i = 0; i < r->len; i++) {
    char c = r->buf[i];
    if (c == '#')
      return i == 0 ? -EPROTO : (ssize_t)(i + 1);
    if (c < '0' || c > '9' || i >= TESTNET_MAX_LENGTH_DIGITS)
      return -EPROTO;
    value = value * 10 + (size_t)(c - '0');
    *units = value;
  }
  return 0;
}

/* Bytes of the buffer from `start` that hold exactly `units` UTF-16 units:
 * sets *bytes and returns 1, 0 if more bytes are needed, -EPROTO if the
 * count ends inside a surrogate pair. */
static int body_bytes(const struct testnet_reader *r, size_t start, size_t units,
                      size_t *bytes) {
  size_t at = start, counted = 0;
  while (counted < units) {
    if (at >= r->len)
      return 0;
    unsigned char lead = (unsigned char)r->buf[at];
    size_t seq = utf8_seq_len(lead);
    counted += seq == 4 ? 2 : 1;
    at += seq;
  }
  if (counted > units)
    return -EPROTO;
  if (at > r->len)
    return 0;
  *bytes = at - start;
  return 1;
}

ssize_t testnet_read_frame(struct testnet_reader *r, char **json, int timeout_ms) {
  int64_t deadline = deadline_after(timeout_ms);
  for (;;) {
    size_t units = 0, bytes = 0;
    ssize_t prefix = parse_length_prefix(r, &units);
    if (prefix < 0)
      return prefix;
    int have = prefix > 0 ? body_bytes(r, (size_t)prefix, units, &bytes) : 0;
    if (have < 0)
      return have;
    if (have > 0)
      return reader_take(r, (size_t)prefix, bytes, json);
    if (r->eof)
      return -ENODATA;
    int rc = reader_fill(r, deadline);
    if (rc < 0)
      return rc;
  }
}

ssize_t testnet_read_until(struct testnet_reader *r, const char *needle,
                           char **out, int timeout_ms) {
  int64_t deadline = deadline_after(timeout_ms);
  size_t needle_len = strlen(needle);
  for (;;) {
    char *hit = r->len ? memmem(r->buf, r->len, needle, needle_len) : NULL;
    if (hit)
      return reader_take(r, 0, (size_t)(hit - r->buf) + needle_len, out);
    if (r->eof)
      return -ENODATA;
    int rc = reader_fill(r, deadline);
    if (rc < 0)
      return rc;
  }
}

ssize_t testnet_read_to_eof(struct testnet_reader *r, char **out, int timeout_ms) {
  int64_t deadline = deadline_after(timeout_ms);
  while (!r->eof) {
    int rc = reader_fill(r, deadline);
    if (rc < 0)
      return rc;
  }
  return reader_take(r, 0, r->len, out);
}

/* ---- scripted upstream ------------------------------------------------ */

/* A peer as the upstream tracks it: the public part first. */
struct upstream_peer {
  struct testnet_peer peer;
  pthread_t thread;
  pthread_mutex_t lock; /* guards peer.fd against close vs. shutdown */
  struct upstream_peer *next;
};

struct testnet_upstream {
  int listen_fd;
  int stop_fd; /* eventfd, readable once stopping */
  int port;
  testnet_script_fn script;
  void *arg;
  atomic_bool stopping;
  pthread_t acceptor;
  pthread_mutex_t lock; /* guards peers and accepted */
  pthread_cond_t accepted_cond;
  struct upstream_peer *peers;
  int accepted;
};

static void peer_close_locked(struct upstream_peer *up, bool reset) {
  if (up->peer.fd < 0)
    return;
  if (reset) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(up->peer.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  close(up->peer.fd);
  up->peer.fd = -1;
}

void testnet_peer_close(struct testnet_peer *peer, bool reset) {
  struct upstream_peer *up = (struct upstream_peer *)peer;
  pthread_mutex_lock(&up->lock);
  peer_close_locked(up, reset);
  pthread_mutex_unlock(&up->lock);
}

static void *peer_main(void *data) {
  struct upstream_peer *up = data;
  up->peer.upstream->script(&up->peer, up->peer.upstream->arg);
  testnet_peer_close(&up->peer, false);
  return NULL;
}

static int start_peer(struct testnet_upstream *u, int fd) {
  struct upstream_peer *up = calloc(1, sizeof *up);
  if (!up)
    return -ENOMEM;
  up->peer.fd = fd;
  up->peer.upstream = u;
  testnet_reader_init(&up->peer.reader, fd);
  pthread_mutex_init(&up->lock, NULL);
  pthread_mutex_lock(&u->lock);
  up->peer.index = u->accepted;
  int rc = pthread_create(&up->thread, NULL, peer_main, up);
  if (rc == 0) {
    up->next = u->peers;
    u->peers = up;
    u->accepted++;
    pthread_cond_broadcast(&u->accepted_cond);
  }
  pthread_mutex_unlock(&u->lock);
  if (rc != 0) {
    pthread_mutex_destroy(&up->lock);
    free(up);
    return -rc;
  }
  return 0;
}

static void *acceptor_main(void *data) {
  struct testnet_upstream *u = data;
  while (!atomic_load(&u->stopping)) {
    struct pollfd pfds[2] = {{.fd = u->listen_fd, .events = POLLIN},
                             {.fd = u->stop_fd, .events = POLLIN}};
    if (poll(pfds, 2, -1) < 0 || pfds[1].revents)
      continue;
    int fd = accept4(u->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
      continue;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (start_peer(u, fd) != 0)
      close(fd);
  }
  return NULL;
}

static int listen_loopback(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  struct sockaddr_in addr = loopback(0);
  socklen_t len = sizeof addr;
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 128) != 0 ||
      getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
    int rc = -errno;
    close(fd);
    return rc;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

int testnet_upstream_start(testnet_script_fn script, void *arg,
                           struct testnet_upstream **out) {
  struct testnet_upstream *u = calloc(1, sizeof *u);
  if (!u)
    return -ENOMEM;
  u->script = script;
  u->arg = arg;
  atomic_init(&u->stopping, false);
  pthread_mutex_init(&u->lock, NULL);
  pthread_cond_init(&u->accepted_cond, NULL);
  u->stop_fd = eventfd(0, EFD_CLOEXEC);
  u->listen_fd = listen_loopback(&u->port);
  int rc = u->stop_fd < 0 ? -errno : u->listen_fd < 0 ? u->listen_fd : 0;
  if (rc == 0)
    rc = -pthread_create(&u->acceptor, NULL, acceptor_main, u);
  if (rc != 0) {
    if (u->stop_fd >= 0)
      close(u->stop_fd);
    if (u->listen_fd >= 0)
      close(u->listen_fd);
    pthread_cond_destroy(&u->accepted_cond);
    pthread_mutex_destroy(&u->lock);
    free(u);
    return rc;
  }
  *out = u;
  return 0;
}

int testnet_upstream_port(const struct testnet_upstream *up) {
  return up->port;
}

int testnet_upstream_accepted(struct testnet_upstream *up) {
  pthread_mutex_lock(&up->lock);
  int n = up->accepted;
  pthread_mutex_unlock(&up->lock);
  return n;
}

int testnet_upstream_wait_accepted(struct testnet_upstream *up, int n, int timeout_ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += timeout_ms / 1000;
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  int rc = 0;
  pthread_mutex_lock(&up->lock);
  while (up->accepted < n && rc == 0)
    rc = timeout_ms < 0 ? pthread_cond_wait(&up->accepted_cond, &up->lock)
                        : pthread_cond_timedwait(&up->accepted_cond, &up->lock, &until);
  int ok = up->accepted >= n;
  pthread_mutex_unlock(&up->lock);
  return ok ? 0 : -ETIMEDOUT;
}

void testnet_upstream_stop(struct testnet_upstream *u) {
  if (!u)
    return;
  atomic_store(&u->stopping, true);
  uint64_t one = 1;
  ssize_t ignored = write(u->stop_fd, &one, sizeof one);
  (void)ignored;
  pthread_join(u->acceptor, NULL);
  close(u->listen_fd);
  /* No new peers now: wake every script blocked on its socket. */
  for (struct upstream_peer *up = u->peers; up; up = up->next) {
    pthread_mutex_lock(&up->lock);
    if (up->peer.fd >= 0)
      shutdown(up->peer.fd, SHUT_RDWR);
    pthread_mutex_unlock(&up->lock);
  }
  while (u->peers) {
    struct upstream_peer *up = u->peers;
    u->peers = up->next;
    pthread_join(up->thread, NULL);
    testnet_reader_free(&up->peer.reader);
    pthread_mutex_destroy(&up->lock);
    free(up);
  }
  close(u->stop_fd);
  pthread_cond_destroy(&u->accepted_cond);
  pthread_mutex_destroy(&u->lock);
  free(u);
}

bool testnet_peer_stopping(const struct testnet_peer *peer) {
  return atomic_load(&peer->upstream->stopping);
}

int testnet_peer_sleep(struct testnet_peer *peer, int ms) {
  int64_t deadline = deadline_after(ms);
  int rc = wait_fd(peer->upstream->stop_fd, POLLIN, deadline);
  return rc == -ETIMEDOUT ? 0 : -ECANCELED;
}

int testnet_peer_wait_closed(struct testnet_peer *peer, int timeout_ms) {
  int64_t deadline = deadline_after(timeout_ms);
  struct testnet_reader *r = &peer->reader;
  while (!r->eof) {
    if (testnet_peer_stopping(peer))
      return -ECANCELED;
    struct pollfd pfds[2] = {{.fd = peer->fd, .events = POLLIN},
                             {.fd = peer->upstream->stop_fd, .events = POLLIN}};
    int rc = poll(pfds, 2, deadline_remaining_ms(deadline));
    if (rc == 0)
      return -ETIMEDOUT;
    if (rc < 0 && errno != EINTR)
      return -errno;
    if (rc > 0 && pfds[1].revents)
      return -ECANCELED;
    if (rc > 0 && pfds[0].revents && (rc = reader_fill(r, deadline)) < 0)
      return rc;
  }
  return 0;
}

int testnet_peer_write(struct testnet_peer *peer, const void *buf, size_t len) {
  return testnet_write_all(peer->fd, buf, len, TESTNET_PEER_WRITE_TIMEOUT_MS);
}

int testnet_peer_send_frame(struct testnet_peer *peer, const char *json) {
  return testnet_send_frame(peer->fd, json, TESTNET_PEER_WRITE_TIMEOUT_MS);
}
