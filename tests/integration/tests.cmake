# Integration tests: one pg_integration_test(<name>) line per tests/integration/test_<name>.c.
pg_integration_test(nest_smoke)
pg_integration_test(codec_nest)
pg_integration_test(upstream_nest)
pg_integration_test(cli_call)
pg_integration_test(http)
pg_integration_test(stream)
pg_integration_test(tls)
pg_integration_test(admin)
