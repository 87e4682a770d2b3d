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
