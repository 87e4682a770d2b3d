# The README tutorial, run as written (ports 3000 and 8080, hence serial).
add_test(NAME tutorial
  COMMAND python3 ${CMAKE_CURRENT_LIST_DIR}/readme_doctest.py ${PROJECT_SOURCE_DIR}/README.md
          $<TARGET_FILE_DIR:patterngate>)
set_tests_properties(tutorial PROPERTIES LABELS integration TIMEOUT 400 RUN_SERIAL TRUE)
