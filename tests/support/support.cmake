# Test-support library for the integration tests (target defined in
# tests/CMakeLists.txt): child processes, NestJS services, sockets.
target_sources(pg_testsupport PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/proc.c
  ${CMAKE_CURRENT_LIST_DIR}/nest.c
  ${CMAKE_CURRENT_LIST_DIR}/net.c
  ${CMAKE_CURRENT_LIST_DIR}/uvtest.c)
find_package(Threads REQUIRED)
target_link_libraries(pg_testsupport PUBLIC Threads::Threads)
# HTTP client and the gateway as a child process (tests/support/http.h, gateway.h),
# and the fixture most integration tests share (gwfixture.h).
target_sources(pg_testsupport PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/http.c
  ${CMAKE_CURRENT_LIST_DIR}/gateway.c
  ${CMAKE_CURRENT_LIST_DIR}/gwtest.c
  ${CMAKE_CURRENT_LIST_DIR}/gwfixture.c)
# Test certificates made with the openssl tool (tests/support/certs.h).
target_sources(pg_testsupport PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/certs.c)
# Admin probes, descriptor counts, open-files limit (tests/support/probe.h).
target_sources(pg_testsupport PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/probe.c)
# dnsmasq as a real DNS server with a test-written hosts file (tests/support/dns.h).
target_sources(pg_testsupport PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/dns.c)
# JWTs minted by npm jose with openssl-made keys (tests/support/jose.h), and
# headless Chromium for the CORS tests (tests/support/browser.h).
target_sources(pg_testsupport PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/jose.c
  ${CMAKE_CURRENT_LIST_DIR}/browser.c)
