/*
 * fuzz: what the fuzz targets share. Each fuzz_<name>.c defines
 * LLVMFuzzerTestOneInput and is linked either with libFuzzer (PG_FUZZ=ON,
 * clang) or with replay_main.c, which runs it over the committed corpus as
 * a regression test.
 *
 * A target reports a broken invariant with FUZZ_CHECK, which prints what
 * failed and aborts, so both libFuzzer and the replay runner see a crash.
 */
#ifndef PG_FUZZ_FUZZ_H
#define PG_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__,         \
                    __LINE__, #cond);                                          \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* 1 when span [p, p+n) lies inside [base, base+size). */
static inline int fuzz_within(const void *p, size_t n, const void *base, size_t size)
{
    uintptr_t q = (uintptr_t)p, b = (uintptr_t)base;
    if (n == 0)
        return 1;
    return q >= b && q - b <= size && n <= size - (q - b);
}

#endif
