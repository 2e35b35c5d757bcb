/*
 * sys.h - the $SYS/broker/... statistics topics (mosquitto's names).
 *
 * Shard 0 publishes them every sys_interval seconds as retained messages,
 * through the ordinary publish path, so a subscriber to $SYS/# sees them
 * like any other topic.  Figures come from one stats snapshot (stats.h):
 * each counter is exact, the set is read over a few microseconds.  Every
 * publication starts with $SYS/broker/version, so a subscriber can tell
 * where one ends and the next begins; docs/operations.md lists every topic.
 *
 * The load averages are mosquitto's: for each counter, the rate per
 * minute over the last interval, smoothed with exp(-interval / window) for
 * windows of 1, 5 and 15 minutes (stats_load_next()).  Their state and the
 * previous counter values live in struct sys_state inside the broker.
 *
 * Owner:    shard 0 (struct sys_state: written by shard 0 only).
 * Lifetime: sys_state is part of struct broker (zeroed by broker_new()).
 * Shared:   never; sys_publish() reads other shards' atomic counters only.
 */
#ifndef RINGMQ_SYS_H
#define RINGMQ_SYS_H

#include <stdint.h>

#include "ringmq/limits.h"

struct shard;

/* The counters mosquitto keeps load averages of, in its topic order. */
enum sys_load {
	SYS_LOAD_MSGS_RECEIVED = 0, /* load/messages/received */
	SYS_LOAD_MSGS_SENT = 1, /* load/messages/sent */
	SYS_LOAD_PUB_DROPPED = 2, /* load/publish/dropped */
	SYS_LOAD_PUB_RECEIVED = 3, /* load/publish/received */
	SYS_LOAD_PUB_SENT = 4, /* load/publish/sent */
	SYS_LOAD_BYTES_RECEIVED = 5, /* load/bytes/received */
	SYS_LOAD_BYTES_SENT = 6, /* load/bytes/sent */
	SYS_LOAD_SOCKETS = 7, /* load/sockets */
	SYS_LOAD_CONNECTIONS = 8, /* load/connections */
	SYS_LOADS = 9,
};

/* Windows of the load averages, seconds: 1, 5 and 15 minutes. */
#define SYS_LOAD_WINDOWS 3

struct sys_state {
	uint64_t last_ms; /* CLOCK_MONOTONIC of the previous publication; 0 = none yet */
	uint64_t prev[SYS_LOADS]; /* counter values at the previous publication */
	double load[SYS_LOADS][SYS_LOAD_WINDOWS]; /* per minute */
	uint64_t prev_wait_ns[SHARDS_MAX]; /* per shard, for loop utilisation */
};

/** sys_publish() - publish the $SYS topics now (call on shard 0). */
void sys_publish(struct shard *s);

#endif
