#include "gateway/ratelimit.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <uv.h>

#include "core/list.h"
#include "core/siphash.h"

#ifndef __SIZEOF_INT128__
#error "gateway/ratelimit.c needs unsigned __int128 (GCC or Clang on a 64-bit target)"
#endif
typedef unsigned __int128 u128;

/* One token is TOKEN credits; a rate of r tokens/s, taken to 1e-6, adds
 * r * 1e6 credits per nanosecond: an integer, so refills are exact. */
#define TOKEN ((u128)1000000000000000ull) /* 1e15 */
#define NS_PER_S 1000000000ull
#define RATE_PER_RPS 1e6

/* scope_len of a pair kept as its digest (a verbatim scope is shorter). */
#define ID_DIGEST 0xffff
#define DIGEST_BYTES 16

/* A bucket's name, as kept and compared: scope || key, or their digest. */
typedef struct rl_id {
    uint64_t hash;
    uint16_t scope_len; /* ID_DIGEST for a digest */
    uint8_t len;
    char bytes[RATELIMIT_ID_MAX];
} rl_id_t;

/* A bucket in the table, allocated to fit its name (the small fields last,
 * so that the name follows them without padding). */
typedef struct rl_entry {
    u128 credits;
    uint64_t stamp_ns; /* the time credits were last brought up to */
    uint64_t rate;     /* credits per nanosecond */
    struct rl_entry *next; /* index chain */
    list_node_t lru;
    uint64_t hash;
    uint32_t burst;
    uint16_t scope_len;
    uint8_t len;
    char bytes[];
} rl_entry_t;

/* What describe() needs of a bucket, copied out under the lock. */
typedef struct rl_snapshot {
    u128 credits;
    uint64_t rate;
    uint32_t burst;
} rl_snapshot_t;

struct ratelimit {
    uv_mutex_t mu;
    /* under mu: */
    rl_entry_t **index; /* chains by hash & mask */
    size_t mask;
    size_t max_keys;
    list_node_t lru; /* least recently taken first */
    /* written under mu, read by anyone: */
    _Atomic size_t count;
    _Atomic uint64_t evictions;
    /* fixed at creation: SipHash keys of the index and of long names */
    uint64_t key[4];
};

/* ---- bucket arithmetic (no lock of its own: the caller's) ---- */

static int rule_rate(const ratelimit_rule_t *rule, uint64_t *rate)
{
    if (!(rule->rps >= RATELIMIT_RPS_MIN && rule->rps <= RATELIMIT_RPS_MAX) || rule->burst == 0)
        return -EINVAL;
    *rate = (uint64_t)(rule->rps * RATE_PER_RPS + 0.5);
    return 0;
}

static void bucket_init(rl_entry_t *b, uint64_t rate, uint32_t burst, uint64_t now_ns)
{
    b->credits = (u128)burst * TOKEN;
    b->stamp_ns = now_ns;
    b->rate = rate;
    b->burst = burst;
}

/* Refills up to now at the bucket's rule, applies the caller's rule, and
 * takes a token if there is one. */
static bool bucket_take(rl_entry_t *b, uint64_t rate, uint32_t burst, uint64_t now_ns)
{
    if (now_ns > b->stamp_ns) {
        u128 room = (u128)b->burst * TOKEN - b->credits;
        u128 add = (u128)b->rate * (now_ns - b->stamp_ns);
        b->credits += add < room ? add : room;
        b->stamp_ns = now_ns;
    }
    if (rate != b->rate || burst != b->burst) {
        u128 cap = (u128)burst * TOKEN;
        b->rate = rate;
        b->burst = burst;
        if (b->credits > cap)
            b->credits = cap;
    }
    if (b->credits < TOKEN)
        return false;
    b->credits -= TOKEN;
    return true;
}

/* Whole seconds, rounded up, to gain `need` credits at per_s a second. */
static uint32_t seconds_for(u128 need, u128 per_s)
{
    u128 s = (need + per_s - 1) / per_s;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

static void describe(const rl_snapshot_t *b, bool allowed, ratelimit_result_t *out)
{
    u128 per_s = (u128)b->rate * NS_PER_S;
    out->allowed = allowed;
    out->limit = b->burst;
    out->remaining = (uint32_t)(b->credits / TOKEN);
    out->reset_s = seconds_for((u128)b->burst * TOKEN - b->credits, per_s);
    /* refused: less than a token is held, so this is at least 1 */
    out->retry_after_s = allowed ? 0 : seconds_for(TOKEN - b->credits, per_s);
}

/* ---- names and the index ---- */

static void make_id(const ratelimit_t *rl, span_t scope, span_t key, rl_id_t *id)
{
    if (scope.n <= RATELIMIT_ID_MAX && key.n <= RATELIMIT_ID_MAX - scope.n) {
        id->scope_len = (uint16_t)scope.n;
        id->len = (uint8_t)(scope.n + key.n);
        if (scope.n > 0)
            memcpy(id->bytes, scope.p, scope.n);
        if (key.n > 0)
            memcpy(id->bytes + scope.n, key.p, key.n);
    } else {
        unsigned char len[8];
        for (int i = 0; i < 8; i++)
            len[i] = (unsigned char)((uint64_t)scope.n >> (8 * i));
        siphash_t s;
        siphash_init(&s, rl->key[2], rl->key[3], DIGEST_BYTES);
        siphash_update(&s, len, sizeof len);
        siphash_update(&s, scope.p, scope.n);
        siphash_update(&s, key.p, key.n);
        siphash_final128(&s, (unsigned char *)id->bytes);
        id->scope_len = ID_DIGEST;
        id->len = DIGEST_BYTES;
    }
    unsigned char head[2] = { (unsigned char)id->scope_len, (unsigned char)(id->scope_len >> 8) };
    siphash_t h;
    siphash_init(&h, rl->key[0], rl->key[1], 8);
    siphash_update(&h, head, sizeof head);
    siphash_update(&h, id->bytes, id->len);
    id->hash = siphash_final64(&h);
}

static rl_entry_t *entry_new(const rl_id_t *id)
{
    rl_entry_t *e = malloc(offsetof(rl_entry_t, bytes) + id->len);
    if (!e)
        return NULL;
    e->next = NULL;
    list_init(&e->lru);
    e->hash = id->hash;
    e->scope_len = id->scope_len;
    e->len = id->len;
    memcpy(e->bytes, id->bytes, id->len);
    return e;
}

static size_t index_size(size_t max_keys)
{
    size_t n = 16;
    while (n < max_keys)
        n *= 2;
    return n;
}

static rl_entry_t *find(const ratelimit_t *rl, const rl_id_t *id)
{
    for (rl_entry_t *e = rl->index[id->hash & rl->mask]; e; e = e->next)
        if (e->hash == id->hash && e->scope_len == id->scope_len && e->len == id->len &&
            memcmp(e->bytes, id->bytes, id->len) == 0)
            return e;
    return NULL;
}

static void index_insert(rl_entry_t **index, size_t mask, rl_entry_t *e)
{
    rl_entry_t **head = &index[e->hash & mask];
    e->next = *head;
    *head = e;
}

static void index_remove(ratelimit_t *rl, rl_entry_t *e)
{
    rl_entry_t **p = &rl->index[e->hash & rl->mask];
    while (*p != e)
        p = &(*p)->next;
    *p = e->next;
}

/* The counters change under the lock only, so a load and a store will do;
 * they are atomic for the lock-free readers. */
static size_t key_count(const ratelimit_t *rl)
{
    return atomic_load_explicit((_Atomic size_t *)&rl->count, memory_order_relaxed);
}

static void set_key_count(ratelimit_t *rl, size_t n)
{
    atomic_store_explicit(&rl->count, n, memory_order_relaxed);
}

/* Removes the least recently taken bucket (there is one) and returns it,
 * to be freed once the lock is released. */
static rl_entry_t *evict_lru(ratelimit_t *rl)
{
    rl_entry_t *e = LIST_OWNER(list_first(&rl->lru), rl_entry_t, lru);
    list_remove(&e->lru);
    index_remove(rl, e);
    set_key_count(rl, key_count(rl) - 1);
    uint64_t ev = atomic_load_explicit(&rl->evictions, memory_order_relaxed);
    atomic_store_explicit(&rl->evictions, ev + 1, memory_order_relaxed);
    return e;
}

/* The locked part of a take on a bucket that is in the table: its
 * arithmetic, its move to the recent end, and a copy for describe(). */
static bool take_locked(ratelimit_t *rl, rl_entry_t *e, uint64_t rate, uint32_t burst, uint64_t now_ns,
                        rl_snapshot_t *snapshot)
{
    bool allowed = bucket_take(e, rate, burst, now_ns);
    list_remove(&e->lru);
    list_push_back(&rl->lru, &e->lru);
    *snapshot = (rl_snapshot_t){ e->credits, e->rate, e->burst };
    return allowed;
}

/* ---- public ---- */

ratelimit_t *ratelimit_new(size_t max_keys)
{
    if (max_keys > RATELIMIT_KEYS_MAX)
        return NULL;
    if (max_keys == 0)
        max_keys = 1;
    ratelimit_t *rl = calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    size_t size = index_size(max_keys);
    rl->index = calloc(size, sizeof *rl->index);
    if (!rl->index || getrandom(rl->key, sizeof rl->key, 0) != (ssize_t)sizeof rl->key || uv_mutex_init(&rl->mu) != 0)
        goto fail;
    rl->mask = size - 1;
    rl->max_keys = max_keys;
    list_init(&rl->lru);
    atomic_init(&rl->count, 0);
    atomic_init(&rl->evictions, 0);
    return rl;
fail:
    free(rl->index);
    free(rl);
    return NULL;
}

void ratelimit_free(ratelimit_t *rl)
{
    if (!rl)
        return;
    while (!list_empty(&rl->lru)) {
        rl_entry_t *e = LIST_OWNER(list_first(&rl->lru), rl_entry_t, lru);
        list_remove(&e->lru);
        free(e);
    }
    uv_mutex_destroy(&rl->mu);
    free(rl->index);
    free(rl);
}

static void free_chain(rl_entry_t *e)
{
    while (e) {
        rl_entry_t *next = e->next;
        free(e);
        e = next;
    }
}

/* Moves every bucket to a new index of `size` chains; returns the old one. */
static rl_entry_t **rehash(ratelimit_t *rl, rl_entry_t **index, size_t size)
{
    for (list_node_t *n = rl->lru.next; n != &rl->lru; n = n->next)
        index_insert(index, size - 1, LIST_OWNER(n, rl_entry_t, lru));
    rl_entry_t **old = rl->index;
    rl->index = index;
    rl->mask = size - 1;
    return old;
}

int ratelimit_set_max_keys(ratelimit_t *rl, size_t max_keys)
{
    if (max_keys > RATELIMIT_KEYS_MAX)
        return -EINVAL;
    if (max_keys == 0)
        max_keys = 1;
    size_t size = index_size(max_keys);
    uv_mutex_lock(&rl->mu);
    bool resize = size != rl->mask + 1;
    uv_mutex_unlock(&rl->mu);
    rl_entry_t **spare = NULL; /* the index to free after the lock */
    if (resize && !(spare = calloc(size, sizeof *spare)))
        return -ENOMEM;
    rl_entry_t *victims = NULL;
    uv_mutex_lock(&rl->mu);
    rl->max_keys = max_keys;
    while (key_count(rl) > max_keys) {
        rl_entry_t *e = evict_lru(rl);
        e->next = victims;
        victims = e;
    }
    if (spare && size != rl->mask + 1)
        spare = rehash(rl, spare, size);
    uv_mutex_unlock(&rl->mu);
    free(spare);
    free_chain(victims);
    return 0;
}

/* A take whose name was not in the table: allocates its bucket unlocked,
 * then looks again (another thread may have added it meanwhile). */
static int take_new(ratelimit_t *rl, const rl_id_t *id, uint64_t rate, uint32_t burst, uint64_t now_ns,
                    ratelimit_result_t *out)
{
    rl_snapshot_t snapshot;
    rl_entry_t *fresh = entry_new(id);
    if (!fresh) {
        rl_entry_t alone;
        bucket_init(&alone, rate, burst, now_ns);
        bool allowed = bucket_take(&alone, rate, burst, now_ns);
        describe(&(rl_snapshot_t){ alone.credits, alone.rate, alone.burst }, allowed, out);
        return -ENOMEM;
    }
    bucket_init(fresh, rate, burst, now_ns);
    rl_entry_t *victim = NULL;
    uv_mutex_lock(&rl->mu);
    rl_entry_t *e = find(rl, id);
    if (!e) {
        if (key_count(rl) >= rl->max_keys)
            victim = evict_lru(rl);
        index_insert(rl->index, rl->mask, fresh);
        set_key_count(rl, key_count(rl) + 1);
        e = fresh;
        fresh = NULL;
    }
    bool allowed = take_locked(rl, e, rate, burst, now_ns, &snapshot);
    uv_mutex_unlock(&rl->mu);
    free(fresh);
    free(victim);
    describe(&snapshot, allowed, out);
    return 0;
}

int ratelimit_take(ratelimit_t *rl, span_t scope, span_t key, const ratelimit_rule_t *rule, uint64_t now_ns,
                   ratelimit_result_t *out)
{
    uint64_t rate;
    if (rule_rate(rule, &rate) != 0) {
        *out = (ratelimit_result_t){ .allowed = true };
        return -EINVAL;
    }
    rl_id_t id;
    make_id(rl, scope, key, &id);
    rl_snapshot_t snapshot;
    bool allowed = false;
    uv_mutex_lock(&rl->mu);
    rl_entry_t *e = find(rl, &id);
    if (e)
        allowed = take_locked(rl, e, rate, rule->burst, now_ns, &snapshot);
    uv_mutex_unlock(&rl->mu);
    if (!e)
        return take_new(rl, &id, rate, rule->burst, now_ns, out);
    describe(&snapshot, allowed, out);
    return 0;
}

size_t ratelimit_key_count(const ratelimit_t *rl)
{
    return key_count(rl);
}

uint64_t ratelimit_evictions(const ratelimit_t *rl)
{
    return atomic_load_explicit((_Atomic uint64_t *)&rl->evictions, memory_order_relaxed);
}
