/*
 * metrics.h - the /metrics page: a stats snapshot in the Prometheus text
 * format, with ringmq_-prefixed, unit-suffixed names.
 *
 * Counters that happen in a shard are exported per shard (label
 * shard="N") and never also as an unlabelled total, so sum() over the
 * label is the broker's figure and nothing is counted twice.  Broker-wide
 * figures (clients, retained messages, heap) carry no label.
 * docs/operations.md lists every metric.
 *
 * Owner:    the caller (the HTTP thread, or a test).
 * Lifetime: stateless.
 * Shared:   never.
 */
#ifndef RINGMQ_METRICS_H
#define RINGMQ_METRICS_H

#include "ringmq/prom.h"
#include "ringmq/stats.h"

/**
 * metrics_render() - append the whole page for @s to @out (HELP and TYPE
 * lines, then samples, family by family).  @version is the broker's
 * version string for ringmq_build_info.  Pure: reads @s only.
 */
void metrics_render(const struct stats_snapshot *s, const char *version, struct prom_buf *out);

#endif
