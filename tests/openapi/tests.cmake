# The OpenAPI documents of `patterngate openapi` for every shipped config,
# through a real validator (@apidevtools/swagger-parser) and the rules it
# leaves out (label `docs`; tests/openapi/README.md).
add_test(NAME docs_openapi
  COMMAND node ${CMAKE_CURRENT_LIST_DIR}/validate.mjs
    --source ${PROJECT_SOURCE_DIR} --binary $<TARGET_FILE:patterngate>)
set_tests_properties(docs_openapi PROPERTIES LABELS docs TIMEOUT 300)
