# patterngate-nest (nest/, the Nest module answering {"patterngate":"handlers"}):
# its node tests, against real Nest 10, 11 and 12 apps in nest/test-apps
# (npm packages installed by scripts/setup). Label `integration`.
find_program(PG_NODE_EXECUTABLE node)
if(NOT PG_NODE_EXECUTABLE)
  set(PG_NODE_EXECUTABLE node)
endif()
add_test(NAME nest_module
  COMMAND ${PG_NODE_EXECUTABLE} --test --test-reporter=spec handlers.test.mjs
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/nest/test)
set_tests_properties(nest_module PROPERTIES LABELS integration TIMEOUT 300)

# patterngate --check --live and scaffold against the same apps
# (nest/test/live.test.mjs). Both tests unpack patterngate-nest into the
# apps' node_modules: they take turns.
add_test(NAME nest_live
  COMMAND ${PG_NODE_EXECUTABLE} --test --test-reporter=spec live.test.mjs
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/nest/test)
set_tests_properties(nest_live PROPERTIES LABELS integration TIMEOUT 300
  ENVIRONMENT "PATTERNGATE=$<TARGET_FILE:patterngate>")
set_tests_properties(nest_module nest_live PROPERTIES RESOURCE_LOCK nest_test_apps)
