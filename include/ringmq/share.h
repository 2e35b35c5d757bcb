/*
 * share.h - shared subscriptions ($share/{group}/{filter}) [MQTT-4.8.2].
 *
 * Two levels, like the ordinary route index and trie:
 *   - the registry (process-wide): one entry per (group, filter) with the
 *     set of shards that have at least one member.  Writers: shard threads
 *     when their first member joins or last member leaves, serialised by a
 *     mutex inside share.c.  Readers: every shard on every PUBLISH, without
 *     locks (liburcu lock-free hash tables; entries reclaimed after a QSBR
 *     grace period).  Entries are found by name and by a 32-bit id that is
 *     never reused, so an id can cross shards safely where a pointer could
 *     not outlive a grace period.
 *   - the local groups (per shard): the members on that shard, their
 *     subscription options, and the round-robin cursor.
 * For each message and each matching group, the publishing shard picks one
 * shard with members (round robin, random, or by a hash of the publisher's
 * client id), and that shard picks one of its members, preferring online
 * members with room in their window.  Exactly one member gets each message.
 *
 * Owner:    registry - the process (created before the shards start);
 *           struct share_local - its shard.
 * Lifetime: registry: share_registry_new() .. share_registry_free() after
 *           all shards stopped; entries live while a shard has members.
 *           Local groups live while they have members.
 * Shared:   registry as above; local groups never.
 */
#ifndef RINGMQ_SHARE_H
#define RINGMQ_SHARE_H

#include <stddef.h>
#include <stdint.h>

struct shard;
struct sess;
struct msg;
struct share_registry;
struct share_local;

/* Forwards of one message when a shard's members left meanwhile. */
#define SHARE_HOPS_MAX 2u

struct share_registry *share_registry_new(void);
struct share_registry *share_registry_free(struct share_registry *r);

/** share_local_new() - a shard's (empty) local groups; NULL on ENOMEM. */
struct share_local *share_local_new(void);
/** share_local_free() - free a shard's local groups at shard exit; NULL-safe. */
struct share_local *share_local_free(struct share_local *l);

/**
 * share_join() - @se joins (or updates its options in) the group @group on
 * @filter.  Returns 0 or -ENOMEM.
 */
int share_join(struct shard *s, const uint8_t *group, size_t glen, const uint8_t *filter, size_t flen,
	       struct sess *se, uint8_t options, uint32_t sub_id);

/** share_leave() - @se leaves; returns 0 or -ENOENT. */
int share_leave(struct shard *s, const uint8_t *group, size_t glen, const uint8_t *filter, size_t flen,
		struct sess *se);

/**
 * share_route() - for every group whose filter matches @m's topic, send @m
 * to one member (through the chosen shard's ring, or directly when it is
 * this shard).  The caller keeps its reference.
 */
void share_route(struct shard *s, struct msg *m);

/**
 * share_deliver() - @m arrived for group @id (SHARD_OP_SHARED); deliver to
 * one local member, or forward it to another shard with members when this
 * one has none left (at most @hops_left more times).
 */
void share_deliver(struct shard *s, uint32_t id, unsigned hops_left, struct msg *m);

/** share_groups() - number of (group, filter) entries in the registry. */
size_t share_groups(struct share_registry *r);

#endif
