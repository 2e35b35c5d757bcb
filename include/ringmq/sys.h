/*
 * sys.h - the $SYS/broker/... statistics topics (mosquitto's names).
 *
 * Shard 0 publishes them every sys_interval seconds as retained messages,
 * through the ordinary publish path, so a subscriber to $SYS/# sees them
 * like any other topic.  Figures are summed from every shard's counters
 * with relaxed atomic loads: each counter is exact, the set is a snapshot
 * taken over a few microseconds.
 *
 * Owner:    shard 0.
 * Lifetime: stateless.
 * Shared:   reads other shards' atomic counters only.
 */
#ifndef RINGMQ_SYS_H
#define RINGMQ_SYS_H

struct shard;

/** sys_publish() - publish the $SYS topics now (call on shard 0). */
void sys_publish(struct shard *s);

#endif
