/*
 * sys.c - $SYS/broker/... topics, published by shard 0.
 *
 * Names and payload formats follow mosquitto 2.x so dashboards written for
 * it keep working (uptime is "N seconds", counts are decimal text).  Each
 * topic is a retained message built with msg_new() and sent through
 * retain_set() and publish_route() like a client's PUBLISH, with an empty
 * origin client id.
 */
#include "ringmq/sys.h"

#include <stdio.h>
#include <string.h>

#include "ringmq/log.h"
#include "ringmq/msg.h"
#include "ringmq/proto.h"
#include "ringmq/retain.h"
#include "ringmq/shard.h"

#define SYS_PAYLOAD_BYTES 64

struct totals {
	uint64_t msgs_in, msgs_out, bytes_in, bytes_out, dropped, subs;
};

static void sum(const struct broker *b, struct totals *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < b->nshards; i++) {
		const struct shard_stats *st = &b->shards[i].stats;
		t->msgs_in += atomic_load_explicit(&st->msgs_in, memory_order_relaxed);
		t->msgs_out += atomic_load_explicit(&st->msgs_out, memory_order_relaxed);
		t->bytes_in += atomic_load_explicit(&st->bytes_in, memory_order_relaxed);
		t->bytes_out += atomic_load_explicit(&st->bytes_out, memory_order_relaxed);
		t->dropped += atomic_load_explicit(&st->dropped, memory_order_relaxed);
		t->subs += atomic_load_explicit(&st->subs, memory_order_relaxed);
	}
}

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

static void put_u64(struct shard *s, const char *topic, uint64_t v)
{
	char buf[SYS_PAYLOAD_BYTES];
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	put(s, topic, buf);
}

void sys_publish(struct shard *s)
{
	struct broker *b = s->b;
	char buf[SYS_PAYLOAD_BYTES];
	struct totals t;

	RMQ_ASSERT(s->id == 0);
	sum(b, &t);
	snprintf(buf, sizeof(buf), "ringmq version %s", RINGMQ_VERSION);
	put(s, "$SYS/broker/version", buf);
	snprintf(buf, sizeof(buf), "%llu seconds", (unsigned long long)((s->now_ms - b->start_ms) / 1000u));
	put(s, "$SYS/broker/uptime", buf);
	put_u64(s, "$SYS/broker/clients/connected", (uint64_t)atomic_load(&b->conns_total));
	put_u64(s, "$SYS/broker/publish/messages/received", t.msgs_in);
	put_u64(s, "$SYS/broker/publish/messages/sent", t.msgs_out);
	put_u64(s, "$SYS/broker/publish/messages/dropped", t.dropped);
	put_u64(s, "$SYS/broker/bytes/received", t.bytes_in);
	put_u64(s, "$SYS/broker/bytes/sent", t.bytes_out);
	put_u64(s, "$SYS/broker/subscriptions/count", t.subs);
	put_u64(s, "$SYS/broker/retained messages/count", retain_count(b->retain));
}
