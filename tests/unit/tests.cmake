# One cmocka program per module: pg_unit_test(<module>) builds tests/unit/test_<module>.c.
pg_unit_test(buf)
pg_unit_test(utf8)
pg_unit_test(json_scan)
pg_unit_test(frame)
pg_unit_test(message)
