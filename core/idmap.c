#include "core/idmap.h"

#include <errno.h>
#include <stdlib.h>

static size_t slot_of(const idmap_t *m, uint64_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & m->mask;
}

void idmap_init(idmap_t *m)
{
    m->slots = NULL;
    m->mask = 0;
    m->len = 0;
}

void idmap_free(idmap_t *m)
{
    free(m->slots);
    idmap_init(m);
}

static int grow(idmap_t *m)
{
    size_t cap = m->slots ? (m->mask + 1) * 2 : 64;
    idmap_slot_t *old = m->slots;
    size_t old_cap = m->slots ? m->mask + 1 : 0;
    idmap_slot_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -ENOMEM;
    m->slots = slots;
    m->mask = cap - 1;
    m->len = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].value)
            idmap_put(m, old[i].key, old[i].value);
    free(old);
    return 0;
}

int idmap_put(idmap_t *m, uint64_t key, void *value)
{
    if (!m->slots || (m->len + 1) * 2 > m->mask + 1) {
        int rc = grow(m);
        if (rc)
            return rc;
    }
    size_t i = slot_of(m, key);
    while (m->slots[i].value && m->slots[i].key != key)
        i = (i + 1) & m->mask;
    if (!m->slots[i].value)
        m->len++;
    m->slots[i].key = key;
    m->slots[i].value = value;
    return 0;
}

static size_t find(const idmap_t *m, uint64_t key)
{
    if (!m->slots)
        return SIZE_MAX;
    size_t i = slot_of(m, key);
    while (m->slots[i].value) {
        if (m->slots[i].key == key)
            return i;
        i = (i + 1) & m->mask;
    }
    return SIZE_MAX;
}

void *idmap_get(const idmap_t *m, uint64_t key)
{
    size_t i = find(m, key);
    return i == SIZE_MAX ? NULL : m->slots[i].value;
}

void *idmap_del(idmap_t *m, uint64_t key)
{
    size_t i = find(m, key);
    if (i == SIZE_MAX)
        return NULL;
    void *value = m->slots[i].value;
    m->slots[i].value = NULL;
    m->len--;
    /* Backward shift: pull later members of the probe run into the hole
     * when their home slot is not between the hole and them. */
    size_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & m->mask;
        if (!m->slots[j].value)
            break;
        size_t home = slot_of(m, m->slots[j].key);
        if (((j - home) & m->mask) >= ((j - hole) & m->mask)) {
            m->slots[hole] = m->slots[j];
            m->slots[j].value = NULL;
            hole = j;
        }
    }
    return value;
}
