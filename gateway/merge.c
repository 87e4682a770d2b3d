#include "gateway/merge.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "core/json_scan.h"
#include "core/json_write.h"

/* Bytes held by the merge itself (p NULL: at `off` in merge.text, which may
 * move as it grows) or borrowed (p set). */
typedef struct text_ref {
    const char *p;
    size_t off;
    size_t n;
} text_ref;

typedef struct merge_entry {
    text_ref key;      /* unescaped */
    span_t key_token;  /* JSON members: the key as written; strings: {NULL, 0} */
    text_ref value;    /* JSON text, or the string's bytes */
    bool is_string;
    bool lead;         /* the first occurrence of its key */
    size_t group;      /* lead: where its group starts in the sorted order */
    size_t group_len;  /* lead: occurrences of the key */
} merge_entry;

static const char *ref_ptr(const merge_t *m, text_ref r)
{
    if (r.p != NULL)
        return r.p;
    return m->text.data != NULL ? m->text.data + r.off : ""; /* no NULL + 0 */
}

static merge_entry *entry_at(const merge_t *m, size_t i)
{
    return (merge_entry *)m->entries.data + i;
}

void merge_clear(merge_t *m)
{
    buf_clear(&m->entries);
    buf_clear(&m->text);
    m->count = 0;
}

void merge_free(merge_t *m)
{
    buf_free(&m->entries);
    buf_free(&m->text);
    buf_free(&m->order);
    m->count = 0;
}

static merge_entry *new_entry(merge_t *m)
{
    if (buf_reserve(&m->entries, sizeof(merge_entry)) != 0)
        return NULL;
    m->entries.len += sizeof(merge_entry);
    merge_entry *e = entry_at(m, m->count++);
    memset(e, 0, sizeof *e);
    return e;
}

/* Copies p[0..n) to the end of m->text. */
static int hold(merge_t *m, const char *p, size_t n, text_ref *r)
{
    r->p = NULL;
    r->off = m->text.len;
    r->n = n;
    return buf_append(&m->text, p, n);
}

int merge_add_object(merge_t *m, span_t object)
{
    jscan_members_t it;
    span_t key, value;
    jscan_members_init(&it, object.p, object.n, 0);
    while (jscan_members_next(&it, &key, &value) == 1) {
        merge_entry *e = new_entry(m);
        if (e == NULL)
            return -ENOMEM;
        e->key_token = key;
        e->value = (text_ref){value.p, 0, value.n};
        if (memchr(key.p, '\\', key.n) == NULL) {
            e->key = (text_ref){key.p + 1, 0, key.n - 2};
            continue;
        }
        e->key = (text_ref){NULL, m->text.len, 0};
        if (jscan_string_decode(key, &m->text) != 0)
            return -ENOMEM;
        e->key.n = m->text.len - e->key.off;
    }
    return 0;
}

int merge_add_string(merge_t *m, span_t name, span_t value, bool lowercase)
{
    merge_entry *e = new_entry(m);
    if (e == NULL)
        return -ENOMEM;
    e->is_string = true;
    if (hold(m, name.p, name.n, &e->key) != 0 || hold(m, value.p, value.n, &e->value) != 0)
        return -ENOMEM;
    if (lowercase && name.n > 0) {
        char *p = m->text.data + e->key.off;
        for (size_t i = 0; i < name.n; i++)
            if (p[i] >= 'A' && p[i] <= 'Z')
                p[i] = (char)(p[i] - 'A' + 'a');
    }
    return 0;
}

/* ---- sorting --------------------------------------------------------------- */

static int compare_keys(const merge_t *m, size_t a, size_t b)
{
    const merge_entry *x = entry_at(m, a), *y = entry_at(m, b);
    size_t n = x->key.n < y->key.n ? x->key.n : y->key.n;
    int order = n ? memcmp(ref_ptr(m, x->key), ref_ptr(m, y->key), n) : 0;
    if (order != 0)
        return order;
    return (x->key.n > y->key.n) - (x->key.n < y->key.n);
}

/* Merges the sorted runs from[lo..mid) and from[mid..hi) into to[lo..hi). */
static void merge_runs(const merge_t *m, const size_t *from, size_t *to, size_t lo, size_t mid,
                       size_t hi)
{
    size_t i = lo, j = mid, k = lo;
    while (i < mid && j < hi)
        to[k++] = compare_keys(m, from[j], from[i]) < 0 ? from[j++] : from[i++];
    while (i < mid)
        to[k++] = from[i++];
    while (j < hi)
        to[k++] = from[j++];
}

/* Entry indices sorted by key, equal keys in the order added (stable);
 * NULL when out of memory. */
static size_t *sorted_order(merge_t *m)
{
    size_t n = m->count;
    buf_clear(&m->order);
    if (buf_reserve(&m->order, 2 * n * sizeof(size_t) + 1) != 0)
        return NULL;
    size_t *a = (size_t *)m->order.data, *b = a + n;
    for (size_t i = 0; i < n; i++)
        a[i] = i;
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            merge_runs(m, a, b, lo, mid, hi);
        }
        size_t *swap = a;
        a = b;
        b = swap;
    }
    return a;
}

/* Marks the first occurrence of each key as its group's lead. */
static void mark_groups(merge_t *m, const size_t *order)
{
    for (size_t start = 0; start < m->count;) {
        size_t end = start + 1;
        while (end < m->count && compare_keys(m, order[start], order[end]) == 0)
            end++;
        merge_entry *lead = entry_at(m, order[start]);
        lead->lead = true;
        lead->group = start;
        lead->group_len = end - start;
        for (size_t i = start + 1; i < end; i++)
            entry_at(m, order[i])->lead = false;
        start = end;
    }
}

/* ---- writing --------------------------------------------------------------- */

static int write_value(const merge_t *m, const merge_entry *e, buf_t *out)
{
    const char *p = ref_ptr(m, e->value);
    if (e->is_string)
        return json_append_string(out, p, e->value.n);
    return buf_append(out, p, e->value.n);
}

/* The group's string values joined, as one JSON string. */
static int write_joined(merge_t *m, const merge_entry *lead, const size_t *order, buf_t *out)
{
    const merge_entry *first = entry_at(m, order[lead->group]);
    bool cookie = first->key.n == 6 && memcmp(ref_ptr(m, first->key), "cookie", 6) == 0;
    size_t start = m->text.len;
    for (size_t i = 0; i < lead->group_len; i++) {
        const merge_entry *e = entry_at(m, order[lead->group + i]);
        if (i > 0 && buf_append(&m->text, cookie ? "; " : ", ", 2) != 0)
            return -ENOMEM;
        text_ref v = e->value;
        if (v.p == NULL) /* copy from the same buffer: reserve first */
            if (buf_reserve(&m->text, v.n) != 0)
                return -ENOMEM;
        if (buf_append(&m->text, ref_ptr(m, v), v.n) != 0)
            return -ENOMEM;
    }
    int rc = json_append_string(out, ref_ptr(m, (text_ref){NULL, start, 0}), m->text.len - start);
    m->text.len = start;
    return rc;
}

static int write_member(merge_t *m, const merge_entry *lead, merge_rule rule,
                        const size_t *order, buf_t *out)
{
    int rc = lead->key_token.p != NULL
                 ? buf_append_span(out, lead->key_token)
                 : json_append_string(out, ref_ptr(m, lead->key), lead->key.n);
    if (rc == 0)
        rc = buf_append(out, ":", 1);
    if (rc != 0)
        return -ENOMEM;
    switch (rule) {
    case MERGE_FIRST:
        return write_value(m, lead, out);
    case MERGE_LAST:
        return write_value(m, entry_at(m, order[lead->group + lead->group_len - 1]), out);
    case MERGE_JOIN_HEADERS:
        return write_joined(m, lead, order, out);
    }
    return 0;
}

int merge_write(merge_t *m, merge_rule rule, merge_skip_fn *skip, void *context, bool *first,
                buf_t *out)
{
    size_t *order = sorted_order(m);
    if (order == NULL)
        return -ENOMEM;
    mark_groups(m, order);
    for (size_t i = 0; i < m->count; i++) {
        const merge_entry *e = entry_at(m, i);
        if (!e->lead)
            continue;
        if (skip != NULL && skip(context, (span_t){ref_ptr(m, e->key), e->key.n}))
            continue;
        if (!*first && buf_append(out, ",", 1) != 0)
            return -ENOMEM;
        *first = false;
        if (write_member(m, e, rule, order, out) != 0)
            return -ENOMEM;
    }
    return 0;
}
