# Every relative link of every Markdown file resolves inside the repository
# (label `docs`): first the checker's own cases, then the repository.
add_test(NAME docs_links
  COMMAND python3 ${CMAKE_CURRENT_LIST_DIR}/check_links.py --self-test ${PROJECT_SOURCE_DIR})
set_tests_properties(docs_links PROPERTIES LABELS docs TIMEOUT 120)
