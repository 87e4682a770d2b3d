#include "core/hostport.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define DNS_NAME_MAX 253
#define DNS_LABEL_MAX 63

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_label_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
           c == '-' || c == '_';
}

/* port text is text[0..length); returns NULL or a reason. */
static const char *parse_port(const char *text, size_t length, unsigned flags, uint16_t *port)
{
    if (length == 0)
        return "missing port";
    if (length > 5)
        return "port must be 1..65535";
    unsigned value = 0;
    for (size_t i = 0; i < length; i++) {
        if (!is_digit(text[i]))
            return "port must be 1..65535";
        value = value * 10 + (unsigned)(text[i] - '0');
    }
    if (value > 65535 || (value == 0 && !(flags & HOSTPORT_ALLOW_PORT_ZERO)))
        return "port must be 1..65535";
    *port = (uint16_t)value;
    return NULL;
}

static bool is_valid_label(const char *label, size_t length)
{
    if (length == 0 || length > DNS_LABEL_MAX)
        return false;
    if (label[0] == '-' || label[length - 1] == '-')
        return false;
    for (size_t i = 0; i < length; i++)
        if (!is_label_char(label[i]))
            return false;
    return true;
}

static bool is_valid_dns_name(const char *name, size_t length)
{
    if (length > 0 && name[length - 1] == '.')
        length--; /* a fully qualified name's final dot */
    if (length == 0 || length > DNS_NAME_MAX)
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= length; i++) {
        if (i == length || name[i] == '.') {
            if (!is_valid_label(name + start, i - start))
                return false;
            start = i + 1;
        }
    }
    return true;
}

/* Digits and dots only, with at least one digit: meant as an IPv4 literal. */
static bool looks_numeric(const char *host, size_t length)
{
    bool has_digit = false;
    for (size_t i = 0; i < length; i++) {
        if (!is_digit(host[i]) && host[i] != '.')
            return false;
        has_digit = has_digit || is_digit(host[i]);
    }
    return has_digit;
}

static const char *classify_plain_host(hostport *out, size_t length)
{
    unsigned char scratch[sizeof(struct in6_addr)];
    if (looks_numeric(out->host, length)) {
        out->kind = HOSTPORT_IPV4;
        return inet_pton(AF_INET, out->host, scratch) == 1 ? NULL : "bad IPv4 address";
    }
    out->kind = HOSTPORT_NAME;
    return is_valid_dns_name(out->host, length) ? NULL : "bad host name";
}

static const char *parse_bracketed(const char *text, unsigned flags, hostport *out)
{
    const char *close = strchr(text, ']');
    if (close == NULL)
        return "bad IPv6 address";
    size_t length = (size_t)(close - text - 1);
    if (length == 0 || length >= INET6_ADDRSTRLEN)
        return "bad IPv6 address";
    memcpy(out->host, text + 1, length);
    out->host[length] = '\0';
    unsigned char scratch[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET6, out->host, scratch) != 1)
        return "bad IPv6 address";
    out->kind = HOSTPORT_IPV6;
    if (close[1] != ':')
        return "missing port";
    return parse_port(close + 2, strlen(close + 2), flags, &out->port);
}

const char *hostport_parse(const char *text, unsigned flags, hostport *out)
{
    if (text[0] == '[')
        return parse_bracketed(text, flags, out);
    const char *colon = strrchr(text, ':');
    if (colon == NULL)
        return "missing port";
    size_t host_length = (size_t)(colon - text);
    if (memchr(text, ':', host_length) != NULL)
        return "an IPv6 address needs brackets";
    if (host_length == 0 || host_length > HOSTPORT_HOST_MAX)
        return "bad host name";
    memcpy(out->host, text, host_length);
    out->host[host_length] = '\0';
    const char *reason = classify_plain_host(out, host_length);
    if (reason != NULL)
        return reason;
    return parse_port(colon + 1, strlen(colon + 1), flags, &out->port);
}

int hostport_format(const hostport *address, char *buf, size_t size)
{
    if (address->kind == HOSTPORT_IPV6)
        return snprintf(buf, size, "[%s]:%u", address->host, (unsigned)address->port);
    return snprintf(buf, size, "%s:%u", address->host, (unsigned)address->port);
}

int hostport_equal(const hostport *a, const hostport *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}
