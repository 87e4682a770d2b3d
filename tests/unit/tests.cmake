# One cmocka program per module: pg_unit_test(<module>) builds tests/unit/test_<module>.c.
pg_unit_test(buf)
pg_unit_test(utf8)
pg_unit_test(json_scan)
pg_unit_test(frame)
pg_unit_test(message)
pg_unit_test(idmap)
pg_unit_test(timers)
pg_unit_test(upstream)
target_link_libraries(test_upstream PRIVATE pg_testsupport)
# config layer
pg_unit_test(config)
pg_unit_test(route_path)
pg_unit_test(template)
pg_unit_test(hostport)
pg_unit_test(env_subst)
add_test(NAME cli_check COMMAND ${CMAKE_CURRENT_LIST_DIR}/cli/check.sh
  $<TARGET_FILE:patterngate> ${CMAKE_CURRENT_LIST_DIR}/cli ${PROJECT_SOURCE_DIR}/config/examples)
set_tests_properties(cli_check PROPERTIES LABELS unit TIMEOUT 120)
