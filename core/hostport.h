/*
 * hostport: "host:port" addresses as written in the config (`listen`,
 * `admin_listen`, service `endpoints`) and on the command line.
 *
 * Accepted forms:
 *   192.0.2.7:3000        an IPv4 literal (dotted quad)
 *   [2001:db8::1]:3000    an IPv6 literal in brackets (no zone id)
 *   users.default.svc:3000, localhost:3000
 *                         a DNS name: labels of [A-Za-z0-9_-], 1..63 bytes,
 *                         not starting or ending with '-', at most 253 bytes
 *                         in all plus an optional final '.'
 * A host made only of digits and dots must be a valid IPv4 literal. The port
 * is decimal, 1..65535 (0 only with HOSTPORT_ALLOW_PORT_ZERO).
 *
 * The struct holds the host inline (no heap memory), without brackets, so it
 * can be copied freely and given to getaddrinfo() as is.
 */
#ifndef PG_CORE_HOSTPORT_H
#define PG_CORE_HOSTPORT_H

#include <stddef.h>
#include <stdint.h>

#define HOSTPORT_HOST_MAX 254                         /* longest host text */
#define HOSTPORT_TEXT_SIZE (HOSTPORT_HOST_MAX + 2 + 1 + 5 + 1) /* "[h]:port\0" */

enum {
    HOSTPORT_ALLOW_PORT_ZERO = 1 << 0, /* accept port 0 (bind to any free port) */
};

typedef enum hostport_kind {
    HOSTPORT_IPV4,
    HOSTPORT_IPV6,
    HOSTPORT_NAME, /* a DNS name, to be resolved */
} hostport_kind;

typedef struct hostport {
    hostport_kind kind;
    uint16_t port;
    char host[HOSTPORT_HOST_MAX + 1]; /* NUL-terminated, no brackets */
} hostport;

/*
 * Parses `text` (flags: HOSTPORT_* or 0). Returns NULL and fills *out on
 * success; on failure returns a short static reason ("missing port",
 * "port must be 1..65535", "bad IPv4 address", "bad IPv6 address",
 * "an IPv6 address needs brackets",
 * "bad host name") and leaves *out unspecified.
 */
const char *hostport_parse(const char *text, unsigned flags, hostport *out);

/* Writes "host:port" ("[v6]:port" for IPv6) into buf[size]; returns what
 * snprintf returns. HOSTPORT_TEXT_SIZE bytes are always enough. */
int hostport_format(const hostport *address, char *buf, size_t size);

/* Same host text and port. */
int hostport_equal(const hostport *a, const hostport *b);

#endif
