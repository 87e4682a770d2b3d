# Chaos and smoke programs against the built binary (tests/chaos/).
#
# chaos_soak: about two minutes of load while the Nest service is killed and
# restarted; label `chaos`. Release build only (PG_SANITIZE off): under ASan
# it would measure ASan's slowdown and memory, not the gateway's.
if(NOT PG_SANITIZE)
  add_executable(chaos_soak chaos/test_soak.c)
  target_link_libraries(chaos_soak PRIVATE pg_testsupport)
  add_dependencies(chaos_soak patterngate)
  add_test(NAME chaos_soak COMMAND chaos_soak)
  set_tests_properties(chaos_soak PROPERTIES LABELS chaos TIMEOUT 300)
endif()

# smoke_gateway: a few seconds of everything at once; scripts/valgrind-smoke
# runs the same program with the gateway under valgrind. Label `smoke`.
add_executable(smoke_gateway chaos/smoke.c)
target_link_libraries(smoke_gateway PRIVATE pg_testsupport)
add_dependencies(smoke_gateway patterngate)
add_test(NAME smoke_gateway COMMAND smoke_gateway)
set_tests_properties(smoke_gateway PROPERTIES LABELS smoke TIMEOUT 300)
