# config/patterngate.schema.json against the loader, through the built
# binary (label `docs`; tests/schema/README.md).
add_test(NAME docs_config_schema
  COMMAND node ${CMAKE_CURRENT_LIST_DIR}/check_schema.mjs
    --source ${PROJECT_SOURCE_DIR} --binary $<TARGET_FILE:patterngate>)
set_tests_properties(docs_config_schema PROPERTIES LABELS docs TIMEOUT 300)
