/*
 * fuzz_config: config_load_string on arbitrary text, with a fixed
 * environment for `${NAME}` (see check.c). Must never crash or leak; a
 * failure is one line of text and no config; a success satisfies every
 * invariant of config.h, builds a router and renders its templates to JSON.
 */
#include "fuzz/check.h"
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    config_free(fuzz_load_and_check((const char *)data, size));
    return 0;
}
