/* Unit tests of config/hostport.c. */
#include "core/hostport.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

static hostport must_parse(const char *text, unsigned flags)
{
    hostport address;
    const char *reason = hostport_parse(text, flags, &address);
    if (reason != NULL)
        fail_msg("%s: unexpected error: %s", text, reason);
    char formatted[HOSTPORT_TEXT_SIZE];
    hostport_format(&address, formatted, sizeof formatted);
    assert_string_equal(formatted, text); /* round trip */
    return address;
}

static void assert_reason(const char *text, const char *expected)
{
    hostport address;
    const char *reason = hostport_parse(text, 0, &address);
    assert_non_null(reason);
    assert_string_equal(reason, expected);
}

static void test_ipv4(void **state)
{
    (void)state;
    hostport a = must_parse("127.0.0.1:8080", 0);
    assert_int_equal(a.kind, HOSTPORT_IPV4);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 8080);
    a = must_parse("0.0.0.0:65535", 0);
    assert_int_equal(a.port, 65535);
}

static void test_ipv6(void **state)
{
    (void)state;
    hostport a = must_parse("[::1]:3000", 0);
    assert_int_equal(a.kind, HOSTPORT_IPV6);
    assert_string_equal(a.host, "::1");
    a = must_parse("[2001:db8::7:1]:1", 0);
    assert_string_equal(a.host, "2001:db8::7:1");
    a = must_parse("[::ffff:10.0.0.1]:80", 0);
    assert_int_equal(a.kind, HOSTPORT_IPV6);
}

static void test_names(void **state)
{
    (void)state;
    hostport a = must_parse("localhost:3000", 0);
    assert_int_equal(a.kind, HOSTPORT_NAME);
    a = must_parse("users.default.svc.cluster.local.:3000", 0);
    assert_string_equal(a.host, "users.default.svc.cluster.local.");
    must_parse("a-b.c_d.example:1", 0);
    must_parse("1password.com:443", 0);
    char long_label[80];
    memset(long_label, 'a', 63);
    strcpy(long_label + 63, ".x:1");
    must_parse(long_label, 0);
}

static void test_port_zero_flag(void **state)
{
    (void)state;
    assert_reason("127.0.0.1:0", "port must be 1..65535");
    hostport a = must_parse("127.0.0.1:0", HOSTPORT_ALLOW_PORT_ZERO);
    assert_int_equal(a.port, 0);
}

static void test_errors(void **state)
{
    (void)state;
    assert_reason("localhost", "missing port");
    assert_reason("localhost:", "missing port");
    assert_reason("[::1]", "missing port");
    assert_reason("[::1]x80", "missing port");
    assert_reason(":80", "bad host name");
    assert_reason("host:65536", "port must be 1..65535");
    assert_reason("host:123456", "port must be 1..65535");
    assert_reason("host:+80", "port must be 1..65535");
    assert_reason("host:8o", "port must be 1..65535");
    assert_reason("256.0.0.1:80", "bad IPv4 address");
    assert_reason("1.2.3:80", "bad IPv4 address");
    assert_reason("123:80", "bad IPv4 address");
    assert_reason("::1:80", "an IPv6 address needs brackets");
    assert_reason("[::g]:80", "bad IPv6 address");
    assert_reason("[]:80", "bad IPv6 address");
    assert_reason("[::1:80", "bad IPv6 address");
    assert_reason("[fe80::1%eth0]:80", "bad IPv6 address");
    assert_reason("-host:80", "bad host name");
    assert_reason("host-.x:80", "bad host name");
    assert_reason("a..b:80", "bad host name");
    assert_reason(".:80", "bad host name");
    assert_reason("ho st:80", "bad host name");
    assert_reason("hóst:80", "bad host name");
    char long_label[80];
    memset(long_label, 'a', 64);
    strcpy(long_label + 64, ".x:1");
    assert_reason(long_label, "bad host name");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_port_zero_flag),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests_name("hostport", tests, NULL, NULL);
}
