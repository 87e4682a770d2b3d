/*
 * recycle: whether the per-request free lists (upstream requests, HTTP
 * exchanges) may keep objects for reuse. Not under AddressSanitizer: an
 * object reused instead of freed would hide a use after free from it, so
 * sanitizer builds free at once and still check every lifetime.
 */
#ifndef PG_CORE_RECYCLE_H
#define PG_CORE_RECYCLE_H

#if defined(__SANITIZE_ADDRESS__)
#define PG_RECYCLE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PG_RECYCLE 0
#endif
#endif
#ifndef PG_RECYCLE
#define PG_RECYCLE 1
#endif

#endif
