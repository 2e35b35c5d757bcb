/*
 * trie.h - a shard's local subscription index: topic filter -> entries.
 *
 * A plain single-threaded trie keyed by topic levels.  Each node holds the
 * entries (one per subscriber) of the filter that ends there.  Matching a
 * topic walks literal, '+' and '#' children; '$' topics are not matched by
 * a leading wildcard [MQTT-4.7.2-1].
 *
 * Owner:    one shard; every function runs on that shard's thread only.
 * Lifetime: trie_new() at shard start, trie_free() at shard exit; nodes are
 *           created by trie_add() and freed by trie_del() when they hold no
 *           entries and have no children.
 * Shared:   never.
 */
#ifndef RINGMQ_TRIE_H
#define RINGMQ_TRIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct trie;

/* One subscription.  `owner` identifies the subscriber (a session); there
 * is at most one entry per (filter, owner). */
struct trie_entry {
	void *owner;
	uint32_t sub_id; /* MQTT 5 subscription identifier, 0 = none */
	uint8_t options; /* SUBSCRIBE options byte: QoS | NL | RAP | RH */
};

typedef void (*trie_match_fn)(void *ctx, const struct trie_entry *e);

struct trie *trie_new(void);
/** trie_free() - free the trie and all nodes; accepts NULL; returns NULL. */
struct trie *trie_free(struct trie *t);

/**
 * trie_add() - add or replace the entry of @e->owner on filter @f.
 * *ret_first is set true when the filter had no entry before (the caller
 * then adds it to the route index), *ret_replaced true when an entry of the
 * same owner was overwritten [MQTT-3.8.4-3].
 * Returns 0 or -ENOMEM (the trie is unchanged then).
 */
int trie_add(struct trie *t, const uint8_t *f, size_t len, const struct trie_entry *e,
	     bool *ret_first, bool *ret_replaced);

/**
 * trie_del() - remove @owner's entry on filter @f.  *ret_last is set true
 * when the filter has no entries left.  Returns 0 or -ENOENT.
 */
int trie_del(struct trie *t, const uint8_t *f, size_t len, const void *owner, bool *ret_last);

/**
 * trie_match() - call @fn for every entry whose filter matches topic @t.
 * An owner with several matching filters is reported once per filter.
 * @fn must not modify the trie.
 */
void trie_match(const struct trie *t, const uint8_t *topic, size_t len, trie_match_fn fn, void *ctx);

/** trie_count() - number of entries (subscriptions) in the trie. */
size_t trie_count(const struct trie *t);

/** trie_sanity() - O(n) structural check; aborts via RMQ_ASSERT on damage. */
void trie_sanity(const struct trie *t);

#endif
