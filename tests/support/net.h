/* testnet: blocking TCP helpers for tests, and a scripted raw upstream.
 *
 * Clients: connect to 127.0.0.1:port, write everything, read with
 * timeouts, and read Nest TCP frames (`<len>#<json>`, len counting UTF-16
 * units) through a small buffered reader. These helpers are deliberately
 * independent of core/: they are the tests' own oracle for the wire format.
 *
 * Scripted upstream: a TCP listener on 127.0.0.1 (an ephemeral port) whose
 * background thread accepts connections and runs a test-provided script on
 * each one, in a thread of its own, to play a misbehaving service: read
 * requests, answer with garbage, split frames, reply with unknown ids, stay
 * silent, reset the connection...
 *
 * Ownership:
 *
 *   test ──owns──▶ testnet_upstream ──owns──▶ listener, acceptor thread,
 *                                             testnet_peer (one per connection)
 *                                                └─▶ its socket and reader
 *
 * A testnet_peer lives from its accept until testnet_upstream_stop(); its
 * socket is closed when the script returns (or by testnet_peer_close).
 * Scripts run on other threads: they must not call cmocka's assertions
 * (cmocka is not thread-safe); record outcomes in their `arg` and check them
 * from the test's thread after testnet_upstream_stop() (which joins them).
 *
 * Errors: int/ssize_t results are >= 0 on success and a negative errno on
 * failure: -ETIMEDOUT when the timeout expired, -ECONNRESET/-EPIPE etc. as
 * the socket reports them. Timeouts are in milliseconds; negative = forever.
 * Sockets are created close-on-exec, and writes never raise SIGPIPE.
 */
#ifndef PG_TESTS_SUPPORT_NET_H
#define PG_TESTS_SUPPORT_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* ---- plain sockets ---------------------------------------------------- */

/* Connects to 127.0.0.1:port within timeout_ms. Returns a blocking,
 * TCP_NODELAY socket that the caller closes, or a negative errno
 * (-ECONNREFUSED, -ETIMEDOUT...). */
int testnet_connect(int port, int timeout_ms);

/* The same to another IPv4 address ("127.0.0.2": a replica on its own
 * loopback address). -EINVAL when ip does not parse. */
int testnet_connect_ip(const char *ip, int port, int timeout_ms);

/* Writes all len bytes within timeout_ms. 0 or a negative errno. */
int testnet_write_all(int fd, const void *buf, size_t len, int timeout_ms);

/* Waits up to timeout_ms for data and reads at most cap bytes once.
 * Returns the count, 0 at end-of-stream, or a negative errno. */
ssize_t testnet_read_some(int fd, void *buf, size_t cap, int timeout_ms);

/* Waits until the peer closes the connection (end-of-stream or reset),
 * discarding any data. 0 when closed, -ETIMEDOUT otherwise. */
int testnet_wait_closed(int fd, int timeout_ms);

/* A TCP port of 127.0.0.1 that was free a moment ago (bound to port 0 and
 * closed), or a negative errno. Another process may take it meanwhile. */
int testnet_free_port(void);

/* ---- Nest TCP frames ---------------------------------------------------- */

/* Length of UTF-8 text in UTF-16 code units, as JavaScript's String.length
 * counts it (a 4-byte sequence counts 2). */
size_t testnet_utf16_len(const char *text, size_t len);

/* Formats `<utf16 length>#json` into a new heap string (caller frees);
 * NULL when out of memory. */
char *testnet_frame(const char *json);

/* Writes the frame of json (see testnet_frame). 0 or a negative errno. */
int testnet_send_frame(int fd, const char *json, int timeout_ms);

/* Buffered reading from one socket. Initialise with testnet_reader_init,
 * release with testnet_reader_free (which does not close fd). */
struct testnet_reader {
  int fd;     /* borrowed */
  char *buf;  /* bytes received and not yet consumed */
  size_t len;
  size_t cap;
  bool eof;   /* the peer closed its side */
};

void testnet_reader_init(struct testnet_reader *r, int fd);
void testnet_reader_free(struct testnet_reader *r);

/* Reads one whole frame within timeout_ms. On success *json receives its
 * JSON text (heap, NUL-terminated, caller frees) and the byte length is
 * returned. -ENODATA if the stream ended (cleanly, between frames or not),
 * -EPROTO if the length prefix is not `<digits>#`. */
ssize_t testnet_read_frame(struct testnet_reader *r, char **json, int timeout_ms);

/* Reads until the received bytes contain `needle`, then consumes them up
 * to and including it. *out receives those bytes (heap, NUL-terminated,
 * caller frees); returns their length. -ENODATA if the stream ended first. */
ssize_t testnet_read_until(struct testnet_reader *r, const char *needle,
                           char **out, int timeout_ms);

/* Reads until the peer closes. *out receives everything not consumed yet
 * (heap, NUL-terminated, caller frees); returns its length. -ETIMEDOUT if
 * the peer did not close in time (the bytes stay buffered). */
ssize_t testnet_read_to_eof(struct testnet_reader *r, char **out, int timeout_ms);

/* ---- scripted upstream ------------------------------------------------ */

struct testnet_upstream;

/* One accepted connection, as a script sees it. */
struct testnet_peer {
  int fd;                        /* the connection; -1 once closed */
  int index;                     /* 0 for the first accepted, then 1, 2... */
  struct testnet_reader reader;  /* buffered reads over fd */
  struct testnet_upstream *upstream;
};

/* Runs on its own thread for each accepted connection. When it returns,
 * the connection is closed (gracefully) unless the script closed it. */
typedef void (*testnet_script_fn)(struct testnet_peer *peer, void *arg);

/* Starts listening on 127.0.0.1 (ephemeral port) and accepting. `arg` is
 * passed to every script run and must outlive testnet_upstream_stop().
 * 0 and *out set, or a negative errno. */
int testnet_upstream_start(testnet_script_fn script, void *arg,
                           struct testnet_upstream **out);

int testnet_upstream_port(const struct testnet_upstream *up);

/* Connections accepted so far. */
int testnet_upstream_accepted(struct testnet_upstream *up);

/* Waits until at least n connections were accepted. 0 or -ETIMEDOUT. */
int testnet_upstream_wait_accepted(struct testnet_upstream *up, int n, int timeout_ms);

/* Stops accepting, shuts down every open connection (scripts blocked in a
 * read see end-of-stream, testnet_peer_sleep/wait_closed return early),
 * joins every thread and frees everything. NULL is ignored. */
void testnet_upstream_stop(struct testnet_upstream *up);

/* True once testnet_upstream_stop() has begun: scripts should return. */
bool testnet_peer_stopping(const struct testnet_peer *peer);

/* Sleeps ms milliseconds, or less if the upstream is being stopped. Returns
 * 0 after the full sleep, -ECANCELED when cut short. */
int testnet_peer_sleep(struct testnet_peer *peer, int ms);

/* Stays silent until the client closes the connection (returns 0), the
 * upstream is stopped (-ECANCELED) or timeout_ms passes (-ETIMEDOUT).
 * Incoming data is buffered in peer->reader, not lost. */
int testnet_peer_wait_closed(struct testnet_peer *peer, int timeout_ms);

/* Writes raw bytes / a frame to the client (see testnet_write_all). */
int testnet_peer_write(struct testnet_peer *peer, const void *buf, size_t len);
int testnet_peer_send_frame(struct testnet_peer *peer, const char *json);

/* Closes the connection now: gracefully (FIN), or with `reset` by an RST
 * (SO_LINGER 0). Note that Linux sends an RST anyway when a socket is
 * closed with received bytes still unread (peer->reader's buffer does not
 * count: those were read). */
void testnet_peer_close(struct testnet_peer *peer, bool reset);

#endif
