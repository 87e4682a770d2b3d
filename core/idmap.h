/*
 * idmap: request id -> pointer, an open-addressing hash table with linear
 * probing and backward-shift deletion (no tombstones, so a long-lived map
 * with constant churn does not degrade). Keys are the worker's request
 * counter values; values are borrowed pointers the map never frees.
 */
#ifndef PG_CORE_IDMAP_H
#define PG_CORE_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct idmap_slot {
    uint64_t key;
    void *value; /* NULL: the slot is free */
} idmap_slot_t;

typedef struct idmap {
    idmap_slot_t *slots;
    size_t mask; /* capacity - 1; capacity is a power of two */
    size_t len;
} idmap_t;

void idmap_init(idmap_t *m);
void idmap_free(idmap_t *m);
/* Inserts or replaces; value must not be NULL. 0, or -ENOMEM. */
int idmap_put(idmap_t *m, uint64_t key, void *value);
/* The value, or NULL. */
void *idmap_get(const idmap_t *m, uint64_t key);
/* Removes and returns the value, or NULL when absent. */
void *idmap_del(idmap_t *m, uint64_t key);
static inline size_t idmap_len(const idmap_t *m) { return m->len; }

#endif
