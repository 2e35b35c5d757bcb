/*
 * route.h - the route index: topic filter -> the set of shards that have a
 * subscriber on it.  The one structure shared by all shards (STYLE 4).
 *
 * Writers: shard threads, when a filter gains its first or loses its last
 *          subscriber on that shard (trie_add/trie_del say so).  Writers
 *          are serialised by a mutex inside this module: subscribing is
 *          not the publish path.
 * Readers: every shard, on every PUBLISH, through route_match(), without
 *          locks: nodes are found in a liburcu lock-free hash table and
 *          shard sets are read with atomic loads.
 * Reclamation: liburcu QSBR.  Each reader thread is registered
 *          (rcu_register_thread) and reports a quiescent state once per
 *          loop turn; removed nodes are freed after a grace period
 *          (call_rcu).  A reader must not hold any pointer from the index
 *          across a quiescent state.
 *
 * Owner:    the process; created by main before shards start.
 * Lifetime: route_new() before the shards start, route_free() after they
 *           have all stopped.
 * Shared:   yes, as above.
 */
#ifndef RINGMQ_ROUTE_H
#define RINGMQ_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "ringmq/limits.h"

#define ROUTE_MASK_WORDS ((SHARDS_MAX + 63) / 64)

/* A set of shards, one bit per shard. */
struct route_mask {
	uint64_t w[ROUTE_MASK_WORDS];
};

struct route;

/** route_new() - an empty index; NULL on allocation failure. */
struct route *route_new(void);
/** route_free() - free everything; no reader may be running; NULL-safe. */
struct route *route_free(struct route *r);

/**
 * route_add() - mark @shard as having a subscriber on filter @f (a valid
 * filter, without any $share prefix).  Idempotent per (filter, shard).
 * Returns 0 or -ENOMEM.
 */
int route_add(struct route *r, const uint8_t *f, size_t len, unsigned shard);

/**
 * route_del() - clear @shard on filter @f.  Returns 0 or -ENOENT.
 */
int route_del(struct route *r, const uint8_t *f, size_t len, unsigned shard);

/**
 * route_match() - OR into @mask every shard that has a subscriber whose
 * filter matches topic @t.  Caller must be a registered QSBR reader that is
 * online.  Lock-free.
 */
void route_match(struct route *r, const uint8_t *t, size_t len, struct route_mask *mask);

/** route_filters() - number of filters in the index (for stats). */
size_t route_filters(struct route *r);

#endif
