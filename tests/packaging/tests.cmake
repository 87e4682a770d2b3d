# Packaging tests (label `packaging`): the healthcheck subcommand against the
# built binary, offline checks of docker/, deploy/ and examples/ (no Docker
# engine, no cluster, no network: see docs/DEPLOY.md, "Checks"), and the
# build from source without tests, its install and its .deb (`install`).
set(PG_PACKAGING_DIR ${CMAKE_CURRENT_LIST_DIR})

add_executable(ptest_healthcheck ${PG_PACKAGING_DIR}/test_healthcheck.c)
target_link_libraries(ptest_healthcheck PRIVATE pg_testsupport)
add_dependencies(ptest_healthcheck patterngate)
add_test(NAME packaging_healthcheck COMMAND ptest_healthcheck)

foreach(check dockerfile compose kubernetes examples)
  add_test(NAME packaging_${check}
    COMMAND /usr/bin/python3 ${PG_PACKAGING_DIR}/check_${check}.py
      --source ${PROJECT_SOURCE_DIR} --binary $<TARGET_FILE:patterngate>)
endforeach()

set_tests_properties(packaging_healthcheck packaging_dockerfile packaging_compose
  packaging_kubernetes packaging_examples PROPERTIES LABELS packaging TIMEOUT 300)

# A fresh Release build of the source without the tests (a minute or more of
# compiling): its own temporary folder under this build dir, nothing shared,
# so it runs beside the others; COST makes ctest -j start it first.
add_test(NAME packaging_install
  COMMAND /usr/bin/python3 ${PG_PACKAGING_DIR}/check_install.py
    --source ${PROJECT_SOURCE_DIR} --work ${CMAKE_CURRENT_BINARY_DIR}
    --cmake ${CMAKE_COMMAND} --cpack ${CMAKE_CPACK_COMMAND})
set_tests_properties(packaging_install PROPERTIES LABELS packaging TIMEOUT 600 COST 1000)
