/*
 * retain.h - retained messages in memory: the table new subscriptions are
 * served from.  The store (persist.h) keeps the same messages on disk;
 * the publisher's shard records each change there next to retain_set(),
 * and start-up loads the table from it.
 *
 * Writers: any shard, when a PUBLISH with RETAIN arrives (set, replace,
 *          or delete by empty payload [MQTT-3.3.1-6/7/10/11]).
 * Readers: any shard, when a subscription is made (retain_match).
 * Both go through a liburcu lock-free hash table keyed by topic; replaced
 * and deleted entries are reclaimed after a QSBR grace period, and the
 * message reference they held is dropped then.  Callers are registered,
 * online QSBR threads (the shards are).
 *
 * Owner:    the process; created before the shards start.
 * Lifetime: retain_new() .. retain_free() after all shards have stopped.
 * Shared:   yes, as above.
 */
#ifndef RINGMQ_RETAIN_H
#define RINGMQ_RETAIN_H

#include <stddef.h>
#include <stdint.h>

struct msg;
struct retain;

typedef void (*retain_fn)(void *ctx, struct msg *m);

struct retain *retain_new(void);
struct retain *retain_free(struct retain *r);

/**
 * retain_set() - store @m (takes a new reference) as the retained message of
 * its topic, or delete the topic's retained message when @m's payload is
 * empty.  Returns 0 or -ENOMEM.
 */
int retain_set(struct retain *r, struct msg *m);

/**
 * retain_match() - call @fn for each retained message whose topic matches
 * filter @f.  @fn receives a borrowed reference valid until the caller's
 * next quiescent state; it takes its own with msg_ref() to keep it.
 */
void retain_match(struct retain *r, const uint8_t *f, size_t len, retain_fn fn, void *ctx);

/** retain_clear() - delete every retained message (tests and the stateful fuzz target). */
void retain_clear(struct retain *r);

/** retain_count() - retained messages stored now. */
uint64_t retain_count(struct retain *r);

#endif
