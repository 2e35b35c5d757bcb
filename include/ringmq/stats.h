/*
 * stats.h - the broker's figures in one place: a snapshot summed over the
 * shards (for $SYS and /metrics), the heap, health and readiness, the load
 * averages' arithmetic, and the hooks the shards call where events happen.
 *
 * Exactness: every counter lives in the shard where its event happens
 * (struct shard_stats in shard.h) and only that shard writes it, with
 * relaxed atomic adds.  A reader sums all shards with relaxed loads.  Each
 * event is counted once, in one shard, so a sum neither loses nor
 * double-counts an event; a snapshot is not one instant (the shards keep
 * running while it is read), but every figure in it is a value its counter
 * really had.  Gauges (sessions, subscriptions, stored messages) are kept
 * the same way, raised and lowered by their owning shard.  The figures
 * that span shards (clients connected and their maximum, the heap
 * maximum) are atomics in struct broker.
 *
 * Owner:    a struct stats_snapshot belongs to whoever took it (shard 0
 *           for $SYS, the HTTP thread for /metrics).
 * Lifetime: stats_snapshot_take() / stats_snapshot_new() .. free().
 * Shared:   never.  Taking a snapshot is safe from any thread while the
 *           broker object exists.
 */
#ifndef RINGMQ_STATS_H
#define RINGMQ_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "ringmq/shard.h"

struct sess;

/* One shard's figures (or their sum over the shards). */
struct stats_shard {
	uint64_t conns; /* TCP connections open (gauge) */
	uint64_t sockets; /* TCP connections accepted */
	uint64_t connects; /* CONNECTs accepted */
	uint64_t sessions; /* gauge */
	uint64_t expired; /* sessions ended by expiry */
	uint64_t pkts_in, pkts_out; /* MQTT packets of every type */
	uint64_t msgs_in, msgs_out; /* PUBLISH packets */
	uint64_t bytes_in, bytes_out; /* bytes on the sockets */
	uint64_t pub_bytes_in, pub_bytes_out; /* PUBLISH payload bytes */
	uint64_t dropped; /* messages dropped, every cause */
	uint64_t drops[SHARD_DROP_CAUSES];
	uint64_t subs, shared_subs; /* gauges */
	uint64_t stored, stored_bytes; /* gauges: messages queued or in flight for sessions */
	uint64_t ring_depth; /* gauge: items waiting in this shard's inbound rings */
	uint64_t backlog; /* gauge: items this shard holds back for full rings */
	uint64_t wait_ns; /* time the loop slept */
	uint64_t turns; /* loop turns */
	uint64_t cq_overflow; /* completion-queue overflows seen */
	uint64_t last_turn_ms; /* CLOCK_MONOTONIC of the latest turn (sum: the oldest) */
};

struct stats_snapshot {
	uint64_t now_ms; /* CLOCK_MONOTONIC when taken */
	uint64_t uptime_s;
	int64_t start_unix_s; /* wall-clock time the broker started */
	uint64_t connections; /* TCP connections open (broker-wide count) */
	uint64_t clients_connected; /* sessions with a live connection */
	uint64_t clients_max; /* the most clients_connected ever */
	uint64_t retained; /* retained messages */
	uint64_t heap_current, heap_max; /* bytes */
	bool started, draining, stopping;
	bool store; /* persistence on: the store_* figures below are valid */
	bool store_failing; /* the latest commit failed */
	uint64_t store_commits, store_ops, store_bytes, store_errors, store_refused, store_corrupt;
	uint64_t store_commit_us_last, store_commit_us_max, store_map_size, store_map_used;
	unsigned nshards;
	struct stats_shard total; /* the sum of shard[] */
	struct stats_shard shard[];
};

/** stats_snapshot_new() - a zeroed snapshot for @nshards shards; NULL on ENOMEM. */
struct stats_snapshot *stats_snapshot_new(unsigned nshards);

/**
 * stats_snapshot_take() - read every counter of @b into a new snapshot
 * (the caller frees it), sampling the heap (which raises b->heap_max).
 * Any thread, while @b exists.  NULL on ENOMEM.
 */
struct stats_snapshot *stats_snapshot_take(struct broker *b);

/** stats_snapshot_sum() - recompute @s->total from @s->shard[]. */
void stats_snapshot_sum(struct stats_snapshot *s);

/**
 * stats_heap_bytes() - bytes the allocator has handed out now: jemalloc's
 * "stats.allocated" (after refreshing "epoch") when built with jemalloc,
 * else glibc's mallinfo2() (in-use arena plus mmapped bytes).  0 when
 * neither can tell.
 */
uint64_t stats_heap_bytes(void);

/**
 * stats_stalled_shard() - the first shard of @s whose loop has not turned
 * for more than @stall_ms at s->now_ms, or -1 when every shard is turning.
 * A shard that never turned counts as stalled.
 */
int stats_stalled_shard(const struct stats_snapshot *s, uint64_t stall_ms);

/**
 * stats_not_ready() - why the broker should get no traffic now ("starting",
 * "draining", "stopping"), or NULL when it is ready: every shard listens,
 * and it is neither draining nor stopping.
 */
const char *stats_not_ready(const struct stats_snapshot *s);

/**
 * stats_load_next() - one step of mosquitto's load average: @delta events
 * in the last @interval_s seconds (> 0) give a rate per minute, and the
 * average moves from @current towards it by 1 - exp(-interval / window).
 */
double stats_load_next(double current, uint64_t delta, double interval_s, double window_s);

/** stats_drop_name() - the snake_case name of a drop cause ("queue_full", ...). */
const char *stats_drop_name(unsigned cause);

/* ---- Hooks for the shards (each one line where the event happens) ---- */

/** stats_client_up() - a CONNECT was accepted on @s: a session got a connection. */
void stats_client_up(struct shard *s);
/** stats_client_down() - a session on @s lost its connection. */
void stats_client_down(struct shard *s);
/** stats_stored() - messages held for sessions on @s changed by @count / @bytes. */
void stats_stored(struct shard *s, int64_t count, int64_t bytes);
/** stats_sess_released() - @se is being freed: its queue and inflight go. */
void stats_sess_released(struct shard *s, const struct sess *se);
/** stats_turn() - a loop turn begins on @s (s->now_ms is current). */
void stats_turn(struct shard *s);
/** stats_wait_begin() / stats_wait_end() - around the loop's sleep. */
void stats_wait_begin(struct shard *s);
void stats_wait_end(struct shard *s);

#endif
