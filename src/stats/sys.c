/*
 * sys.c - $SYS/broker/... topics, published by shard 0.
 *
 * Names and payload formats follow mosquitto 2.x so dashboards written for
 * it keep working: counts are decimal text, load averages "%.2f", uptime
 * "N seconds", version "ringmq version X".  ringmq's own figures (per
 * shard, drops by cause) live under $SYS/broker/ringmq/ so they cannot
 * collide with a topic mosquitto may add.  docs/operations.md lists them.
 *
 * Each topic is a retained QoS 0 message built with msg_new() and sent
 * through retain_set() and publish_route() like a client's PUBLISH, with an
 * empty origin client id.  All figures of one publication come from one
 * stats snapshot taken before the first message is built, so the messages
 * a publication delivers are counted in the next one, never in their own.
 * Every topic is published every interval (mosquitto skips unchanged
 * ones); a publication always starts with $SYS/broker/version.
 */
#include "ringmq/sys.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringmq/log.h"
#include "ringmq/msg.h"
#include "ringmq/proto.h"
#include "ringmq/retain.h"
#include "ringmq/shard.h"
#include "ringmq/stats.h"

#define SYS_PAYLOAD_BYTES 64
#define SYS_TOPIC_BYTES 96
#define MS_PER_S 1000.0
#define NS_PER_S 1e9

/* ------------------------------------------------------------ publishing */

static void put(struct shard *s, const char *topic, const char *payload)
{
	struct mqtt_str t = {(const uint8_t *)topic, (uint32_t)strlen(topic)};
	struct mqtt_str p = {(const uint8_t *)payload, (uint32_t)strlen(payload)};
	struct msg *m = msg_new(&t, &p, 0, true, NULL, (const uint8_t *)"", 0, s->now_ms);

	if (!m)
		return; /* out of memory: this figure waits for the next interval */
	if (retain_set(s->b->retain, m) < 0)
		log_warn(NULL, "out of memory: %s not retained", topic);
	publish_route(s, m);
	msg_unref(m);
}

__attribute__((format(printf, 3, 4))) static void putf(struct shard *s, const char *topic, const char *fmt, ...)
{
	char buf[SYS_PAYLOAD_BYTES];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(buf, sizeof(buf), fmt, ap); /* every figure fits; a cut one would still be text */
	va_end(ap);
	put(s, topic, buf);
}

static void put_u64(struct shard *s, const char *topic, uint64_t v)
{
	putf(s, topic, "%llu", (unsigned long long)v);
}

/* ------------------------------------------------------------- mosquitto */

static void publish_identity(struct shard *s, const struct stats_snapshot *snap)
{
	char buf[SYS_PAYLOAD_BYTES];
	time_t start = (time_t)snap->start_unix_s;
	struct tm tm;

	putf(s, "$SYS/broker/version", "ringmq version %s", RINGMQ_VERSION);
	/* mosquitto's build timestamp format; ringmq gives its start time, as
	 * a build time would make builds unreproducible. */
	gmtime_r(&start, &tm);
	if (strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S+0000", &tm) > 0)
		put(s, "$SYS/broker/timestamp", buf);
	putf(s, "$SYS/broker/uptime", "%llu seconds", (unsigned long long)snap->uptime_s);
}

static void publish_counts(struct shard *s, const struct stats_snapshot *snap)
{
	const struct stats_shard *t = &snap->total;
	uint64_t offline = t->sessions > snap->clients_connected ? t->sessions - snap->clients_connected : 0;

	put_u64(s, "$SYS/broker/clients/total", t->sessions);
	put_u64(s, "$SYS/broker/clients/connected", snap->clients_connected);
	put_u64(s, "$SYS/broker/clients/active", snap->clients_connected); /* mosquitto's older name */
	put_u64(s, "$SYS/broker/clients/disconnected", offline);
	put_u64(s, "$SYS/broker/clients/inactive", offline); /* mosquitto's older name */
	put_u64(s, "$SYS/broker/clients/maximum", snap->clients_max);
	put_u64(s, "$SYS/broker/clients/expired", t->expired);
	put_u64(s, "$SYS/broker/messages/received", t->pkts_in);
	put_u64(s, "$SYS/broker/messages/sent", t->pkts_out);
	put_u64(s, "$SYS/broker/messages/stored", t->stored); /* mosquitto's older name */
	put_u64(s, "$SYS/broker/store/messages/count", t->stored);
	put_u64(s, "$SYS/broker/store/messages/bytes", t->stored_bytes);
	put_u64(s, "$SYS/broker/publish/messages/received", t->msgs_in);
	put_u64(s, "$SYS/broker/publish/messages/sent", t->msgs_out);
	put_u64(s, "$SYS/broker/publish/messages/dropped", t->dropped);
	put_u64(s, "$SYS/broker/publish/bytes/received", t->pub_bytes_in);
	put_u64(s, "$SYS/broker/publish/bytes/sent", t->pub_bytes_out);
	put_u64(s, "$SYS/broker/bytes/received", t->bytes_in);
	put_u64(s, "$SYS/broker/bytes/sent", t->bytes_out);
	put_u64(s, "$SYS/broker/subscriptions/count", t->subs);
	put_u64(s, "$SYS/broker/shared_subscriptions/count", t->shared_subs);
	put_u64(s, "$SYS/broker/retained messages/count", snap->retained);
	put_u64(s, "$SYS/broker/heap/current", snap->heap_current);
	put_u64(s, "$SYS/broker/heap/maximum", snap->heap_max);
	if (snap->store) {
		/* ringmq's own: the durable store (docs/persistence.md) */
		put_u64(s, "$SYS/broker/store/commits", snap->store_commits);
		put_u64(s, "$SYS/broker/store/map/bytes", snap->store_map_size);
		put_u64(s, "$SYS/broker/store/map/used", snap->store_map_used);
		put_u64(s, "$SYS/broker/store/failing", snap->store_failing);
	}
}

static const char *const load_names[SYS_LOADS] = {
	[SYS_LOAD_MSGS_RECEIVED] = "messages/received", [SYS_LOAD_MSGS_SENT] = "messages/sent",
	[SYS_LOAD_PUB_DROPPED] = "publish/dropped",	[SYS_LOAD_PUB_RECEIVED] = "publish/received",
	[SYS_LOAD_PUB_SENT] = "publish/sent",		[SYS_LOAD_BYTES_RECEIVED] = "bytes/received",
	[SYS_LOAD_BYTES_SENT] = "bytes/sent",		[SYS_LOAD_SOCKETS] = "sockets",
	[SYS_LOAD_CONNECTIONS] = "connections",
};

static const struct {
	const char *name;
	double seconds;
} windows[SYS_LOAD_WINDOWS] = {{"1min", 60}, {"5min", 300}, {"15min", 900}};

static void load_counters(const struct stats_snapshot *snap, uint64_t *v)
{
	const struct stats_shard *t = &snap->total;

	v[SYS_LOAD_MSGS_RECEIVED] = t->pkts_in;
	v[SYS_LOAD_MSGS_SENT] = t->pkts_out;
	v[SYS_LOAD_PUB_DROPPED] = t->dropped;
	v[SYS_LOAD_PUB_RECEIVED] = t->msgs_in;
	v[SYS_LOAD_PUB_SENT] = t->msgs_out;
	v[SYS_LOAD_BYTES_RECEIVED] = t->bytes_in;
	v[SYS_LOAD_BYTES_SENT] = t->bytes_out;
	v[SYS_LOAD_SOCKETS] = t->sockets;
	v[SYS_LOAD_CONNECTIONS] = t->connects;
}

/* Advance the averages by @interval_s (skipped when 0) and publish them. */
static void publish_loads(struct shard *s, const struct stats_snapshot *snap, double interval_s)
{
	struct sys_state *st = &s->b->sys;
	char topic[SYS_TOPIC_BYTES];
	uint64_t now[SYS_LOADS];

	load_counters(snap, now);
	for (unsigned i = 0; i < SYS_LOADS; i++) {
		for (unsigned w = 0; w < SYS_LOAD_WINDOWS; w++) {
			if (interval_s > 0)
				st->load[i][w] = stats_load_next(st->load[i][w], now[i] - st->prev[i], interval_s,
								 windows[w].seconds);
			(void)snprintf(topic, sizeof(topic), "$SYS/broker/load/%s/%s", load_names[i], windows[w].name);
			putf(s, topic, "%.2f", st->load[i][w]);
		}
		st->prev[i] = now[i];
	}
}

/* ---------------------------------------------------------------- ringmq */

static void shard_put(struct shard *s, unsigned shard, const char *what, uint64_t v)
{
	char topic[SYS_TOPIC_BYTES];

	(void)snprintf(topic, sizeof(topic), "$SYS/broker/ringmq/shard/%u/%s", shard, what);
	put_u64(s, topic, v);
}

static void publish_ringmq(struct shard *s, const struct stats_snapshot *snap, double interval_s)
{
	struct sys_state *st = &s->b->sys;
	char topic[SYS_TOPIC_BYTES];

	put_u64(s, "$SYS/broker/ringmq/shards", snap->nshards);
	put_u64(s, "$SYS/broker/ringmq/connections", snap->connections);
	for (unsigned c = 0; c < SHARD_DROP_CAUSES; c++) {
		(void)snprintf(topic, sizeof(topic), "$SYS/broker/ringmq/dropped/%s", stats_drop_name(c));
		put_u64(s, topic, snap->total.drops[c]);
	}
	for (unsigned i = 0; i < snap->nshards && i < SHARDS_MAX; i++) {
		const struct stats_shard *x = &snap->shard[i];
		double busy = 0;

		shard_put(s, i, "connections", x->conns);
		shard_put(s, i, "sessions", x->sessions);
		shard_put(s, i, "messages/received", x->msgs_in);
		shard_put(s, i, "messages/sent", x->msgs_out);
		shard_put(s, i, "dropped", x->dropped);
		shard_put(s, i, "ring/depth", x->ring_depth);
		shard_put(s, i, "backlog/depth", x->backlog);
		if (interval_s > 0)
			busy = 100.0 * (1.0 - (double)(x->wait_ns - st->prev_wait_ns[i]) / (interval_s * NS_PER_S));
		st->prev_wait_ns[i] = x->wait_ns;
		(void)snprintf(topic, sizeof(topic), "$SYS/broker/ringmq/shard/%u/utilisation", i);
		putf(s, topic, "%.1f", busy < 0 ? 0 : busy > 100 ? 100 : busy);
	}
}

void sys_publish(struct shard *s)
{
	struct sys_state *st = &s->b->sys;
	struct stats_snapshot *snap;
	uint64_t since;
	double interval_s;

	RMQ_ASSERT(s->id == 0);
	snap = stats_snapshot_take(s->b);
	if (!snap)
		return; /* out of memory: the next interval tries again */
	since = st->last_ms ? st->last_ms : s->b->start_ms;
	interval_s = snap->now_ms > since ? (double)(snap->now_ms - since) / MS_PER_S : 0;
	publish_identity(s, snap);
	publish_counts(s, snap);
	publish_loads(s, snap, interval_s);
	publish_ringmq(s, snap, interval_s);
	st->last_ms = snap->now_ms;
	free(snap);
}
