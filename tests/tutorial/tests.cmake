# The README tutorial, run as written, on free ports and in a temporary
# folder (readme_doctest.py rewrites 3000, 8080 and /tmp), so it may run
# beside anything else.
add_test(NAME tutorial
  COMMAND python3 ${CMAKE_CURRENT_LIST_DIR}/readme_doctest.py ${PROJECT_SOURCE_DIR}/README.md
          $<TARGET_FILE_DIR:patterngate>)
set_tests_properties(tutorial PROPERTIES LABELS integration TIMEOUT 400)
