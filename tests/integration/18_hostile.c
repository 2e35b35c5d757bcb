/*
 * 18_hostile.c - hostile and broken clients, one at a time, each next to a
 * well-behaved one.
 *
 * Every test starts a witness (tclient.h: a QoS 1 publisher and subscriber
 * pair) before it attacks and checks it during and after the attack, so a
 * broker that survives an attack by stalling a shard or starving everyone
 * else still fails.  The attacks are the robustness list of
 * docs/robustness.md: connections that never send CONNECT, slowloris byte
 * dribbling before and after CONNECT, a pre-authentication length of
 * 268,435,455 bytes, a subscriber that never reads, subscription and
 * topic-depth bombs, huge property lists, packet-id exhaustion, acks for
 * unknown packet ids, packets only a server may send, request floods from
 * a client that never reads the answers, and a retained-message bomb.
 *
 * Tests wait for events (a close, a packet, a log line).  The only timed
 * waits are the dribbling itself, whose slowness is the attack, and the
 * deadlines the broker's timers are checked against.  Tests that set
 * ringmq's own directives, or check its own limits and timings, are
 * ringmq-only under the mosquitto oracle run.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tclient.h"

TestSuite(hostile, .timeout = 120);

/* Slack for the broker's 250 ms sweep and a loaded two-core machine. */
#define TIMER_SLACK_MS 2000

/* ------------------------------------------------------------------------
 * Dribbling: several clients, one byte each per tick
 * ---------------------------------------------------------------------- */

struct dribble {
	struct tclient *c;
	const uint8_t *buf;
	size_t len, sent;
	int64_t start_ms;
	int64_t closed_ms; /* -1 while open */
	int disconnect_reason; /* MQTT 5 DISCONNECT seen before the close, -1 if none */
};

/* Reads what @d's client has without waiting; records a DISCONNECT and the
 * close.  Any other packet fails the test: nothing is owed to a client
 * whose packet never completed. */
static void dribble_poll(struct dribble *d)
{
	for (;;) {
		struct mqtt_packet p;
		int r = tc_recv(d->c, 0, &p);

		if (r == -ETIMEDOUT)
			return;
		if (r == -ECONNRESET) {
			d->closed_ms = harness_now_ms();
			return;
		}
		cr_assert(r == 0, "%s: bad bytes from the broker", d->c->name);
		cr_assert(p.type == MQTT_DISCONNECT && d->c->version == MQTT_V5 && d->disconnect_reason == -1,
			  "%s: unexpected %s while dribbling", d->c->name, tc_describe(&p));
		d->disconnect_reason = p.disconnect.reason;
	}
}

/* Sends the next byte of each open dribble every @tick_ms until all are
 * closed or @limit_ms passed; a witness round trip every tick shows the
 * others are served meanwhile.  The tick is the attack's pace, not a wait
 * for an event: closes are seen through poll(2) as they happen. */
static void dribble_run(struct dribble *d, unsigned n, int tick_ms, int limit_ms, struct tc_witness *w)
{
	int64_t end = harness_now_ms() + limit_ms;

	for (;;) {
		struct pollfd pfd[16];
		int64_t tick_end = harness_now_ms() + tick_ms;
		unsigned open = 0;

		cr_assert(n <= 16);
		for (unsigned i = 0; i < n; i++) {
			if (d[i].closed_ms >= 0)
				continue;
			open++;
			cr_assert(d[i].sent < d[i].len, "%s: the whole packet went out before the broker closed",
				  d[i].c->name);
			if (tc_send_raw(d[i].c, d[i].buf + d[i].sent, 1) == 0)
				d[i].sent++;
			else
				dribble_poll(&d[i]); /* EPIPE/ECONNRESET: closed; read what is left */
		}
		if (open == 0 || harness_now_ms() > end)
			return;
		tc_witness_check(w);
		for (int64_t left; (left = tick_end - harness_now_ms()) > 0;) {
			for (unsigned i = 0; i < n; i++)
				pfd[i] = (struct pollfd){.fd = d[i].closed_ms < 0 ? d[i].c->fd : -1, .events = POLLIN};
			if (poll(pfd, n, (int)left) <= 0)
				break;
			for (unsigned i = 0; i < n; i++)
				if (pfd[i].revents)
					dribble_poll(&d[i]);
		}
	}
}

static void dribble_init(struct dribble *d, struct tclient *c, const uint8_t *buf, size_t len)
{
	*d = (struct dribble){.c = c, .buf = buf, .len = len, .start_ms = harness_now_ms(), .closed_ms = -1,
			      .disconnect_reason = -1};
}

/* An encoded packet of @c's version in a heap buffer. */
static uint8_t *encode(const struct tclient *c, const struct mqtt_packet *p, size_t *ret_len)
{
	size_t len = mqtt_encoded_len(c->version, p);
	uint8_t *buf = malloc(len);

	cr_assert(len > 0 && buf);
	cr_assert(mqtt_encode(c->version, p, buf, len) == (int)len);
	*ret_len = len;
	return buf;
}

static struct tclient *connect_keepalive(const struct broker *b, uint8_t version, const char *id,
					 uint16_t keepalive)
{
	struct mqtt_packet p = tc_connect_packet(version, id), ack;
	struct tclient *c;

	p.connect.keepalive = keepalive;
	c = tc_connect_with(b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0, "%s: %s", id, tc_describe(&ack));
	return c;
}

/* ------------------------------------------------------------------------
 * Before CONNECT
 * ---------------------------------------------------------------------- */

/* connect_timeout 1: forty connections that send nothing and one that
 * sends half a CONNECT header are all closed about a second after they
 * were accepted, none before; the witness connected first is not. */
Test(hostile, connections_without_connect_closed_after_connect_timeout)
{
	enum { N = 41 };
	static const uint8_t partial[] = {0x10, 0x10, 0x00, 0x04, 'M'};
	struct broker b;
	struct tc_witness w;
	struct tclient *c[N];
	int64_t start;

	harness_ringmq_only("connect_timeout is a ringmq directive");
	broker_start(&b, "connect_timeout 1\n");
	tc_witness_start(&w, &b, "silent");
	start = harness_now_ms();
	for (int i = 0; i < N; i++) {
		c[i] = tc_open(&b, MQTT_V311, i == N - 1 ? "half-header" : "silent");
		if (i == N - 1)
			(void)tc_send_raw(c[i], partial, sizeof(partial));
	}
	tc_witness_check(&w);
	for (int i = 0; i < N; i++) {
		int64_t ms;

		cr_assert(tc_closed(c[i], 1000 + TIMER_SLACK_MS + TC_WAIT_MS), "%s connection %d not closed",
			  c[i]->name, i);
		ms = harness_now_ms() - start;
		cr_assert_geq(ms, 900, "%s connection %d closed after %lld ms; connect_timeout is 1 s", c[i]->name, i,
			      (long long)ms);
		tc_close(c[i]);
	}
	tc_witness_stop(&w);
	broker_stop(&b);
}

/* Slowloris before CONNECT: a CONNECT sent one byte per 100 ms takes about
 * six seconds; connect_timeout 1 counts from the accept, not from the last
 * byte, so the broker closes the connection after about a second with the
 * CONNECT unfinished and no CONNACK sent. */
Test(hostile, slowloris_connect_dribble_closed_by_connect_timeout)
{
	static const char id[] = "slowloris-0123456789-0123456789-0123456789";
	struct broker b;
	struct tc_witness w;
	struct dribble d[2];
	uint8_t *buf[2];
	size_t len[2];

	harness_ringmq_only("connect_timeout is a ringmq directive");
	broker_start(&b, "connect_timeout 1\n");
	tc_witness_start(&w, &b, "slowconn");
	for (int i = 0; i < 2; i++) {
		uint8_t version = i ? MQTT_V5 : MQTT_V311;
		struct tclient *c = tc_open(&b, version, i ? "slow-connect-v5" : "slow-connect");
		struct mqtt_packet p = tc_connect_packet(version, id);

		buf[i] = encode(c, &p, &len[i]);
		dribble_init(&d[i], c, buf[i], len[i]);
	}
	dribble_run(d, 2, 100, 1000 + TIMER_SLACK_MS, &w);
	for (int i = 0; i < 2; i++) {
		int64_t ms = d[i].closed_ms - d[i].start_ms;

		cr_assert(d[i].closed_ms >= 0, "%s: still open after %zu of %zu bytes, connect_timeout is 1 s",
			  d[i].c->name, d[i].sent, d[i].len);
		cr_assert_geq(ms, 900, "%s: closed after %lld ms, connect_timeout is 1 s", d[i].c->name,
			      (long long)ms);
		cr_assert_eq(d[i].disconnect_reason, -1, "%s: DISCONNECT before CONNECT completed", d[i].c->name);
		tc_close(d[i].c);
		free(buf[i]);
	}
	tc_witness_stop(&w);
	broker_stop(&b);
}

/* Slowloris after CONNECT: with keep alive 1 s, a PUBLISH dribbled one
 * byte per 50 ms never completes, and keep alive counts whole packets
 * [MQTT-3.1.2-24], so the connection is closed 1.5 s after the CONNECT
 * (MQTT 5: DISCONNECT 0x8D Keep Alive timeout first), not kept alive by
 * the trickle. */
Test(hostile, slowloris_publish_dribble_closed_by_keepalive_MQTT_3_1_2_24)
{
	struct broker b;
	struct tc_witness w;
	struct dribble d[2];
	uint8_t *buf[2];
	char payload[400];

	harness_ringmq_only("keep alive counting whole packets is checked for ringmq only");
	broker_start(&b, NULL);
	tc_witness_start(&w, &b, "slowpub");
	memset(payload, 'd', sizeof(payload) - 1);
	payload[sizeof(payload) - 1] = '\0';
	for (int i = 0; i < 2; i++) {
		uint8_t version = i ? MQTT_V5 : MQTT_V311;
		struct tclient *c = connect_keepalive(&b, version, i ? "slow-pub-v5" : "slow-pub", 1);
		struct mqtt_packet p = tc_publish_packet(c, "slow/t", payload, 0, false);
		size_t len;

		buf[i] = encode(c, &p, &len);
		dribble_init(&d[i], c, buf[i], len);
	}
	dribble_run(d, 2, 50, 1500 + TIMER_SLACK_MS, &w);
	for (int i = 0; i < 2; i++) {
		int64_t ms = d[i].closed_ms - d[i].start_ms;

		cr_assert(d[i].closed_ms >= 0, "%s: still open after %lld ms of dribbling (%zu bytes), keep alive 1 s",
			  d[i].c->name, (long long)(harness_now_ms() - d[i].start_ms), d[i].sent);
		cr_assert_geq(ms, 1000, "%s: closed after %lld ms, before the keep alive", d[i].c->name,
			      (long long)ms);
		if (d[i].c->version == MQTT_V5)
			cr_assert_eq(d[i].disconnect_reason, MQTT_RC_KEEPALIVE_TIMEOUT,
				     "%s: DISCONNECT reason %d, expected 0x8D", d[i].c->name, d[i].disconnect_reason);
		tc_close(d[i].c);
		free(buf[i]);
	}
	tc_witness_stop(&w);
	broker_stop(&b);
}

/* Pre-authentication limits: a first packet whose header claims
 * 268,435,455 bytes is refused as soon as the length is read, long before
 * connect_timeout (the default 10 s), whatever follows it; a hundred such
 * connections do not grow the broker's memory by more than a small bound.
 * After CONNECT the same claim meets max_packet_size: DISCONNECT 0x95
 * (MQTT 5) or a close, at once. */
Test(hostile, pre_auth_huge_remaining_length_refused_at_once)
{
	enum { N = 100, RSS_GROWTH_KB_MAX = 16384 };
	static const uint8_t huge[] = {0x10, 0xFF, 0xFF, 0xFF, 0x7F};
	static const uint8_t publish_huge[] = {0x30, 0xFF, 0xFF, 0xFF, 0x7F, 0x00, 0x01, 't'};
	static uint8_t junk[16384];
	struct broker b;
	struct tc_witness w;
	long rss0, rss1;

	harness_ringmq_only("connect_packet_size_max is a ringmq directive");
	broker_start(&b, NULL);
	tc_witness_start(&w, &b, "preauth");
	memset(junk, 0xA5, sizeof(junk));
	rss0 = broker_rss_kb(&b);
	for (int i = 0; i < N; i++) {
		struct tclient *c = tc_open(&b, MQTT_V311, "huge-claim");
		int64_t start = harness_now_ms(), ms;

		(void)tc_send_raw(c, huge, sizeof(huge));
		if (i % 2)
			(void)tc_send_raw(c, junk, sizeof(junk)); /* EPIPE once refused: expected */
		cr_assert(tc_closed(c, TC_WAIT_MS), "connection %d claiming 268,435,455 bytes not closed", i);
		ms = harness_now_ms() - start;
		cr_assert_lt(ms, 5000, "connection %d closed after %lld ms: by connect_timeout, not by the length", i,
			     (long long)ms);
		tc_close(c);
	}
	tc_witness_check(&w);
	rss1 = broker_rss_kb(&b);
	cr_log_info("broker RSS %ld KiB before and %ld KiB after %d refused headers", rss0, rss1, N);
	cr_assert_lt(rss1 - rss0, RSS_GROWTH_KB_MAX, "broker RSS grew from %ld to %ld KiB over %d refused headers",
		     rss0, rss1, N);
	for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
		struct tclient *c = tc_connect(&b, version, "huge-publish", true);

		(void)tc_send_raw(c, publish_huge, sizeof(publish_huge));
		tc_expect_disconnect(c, MQTT_RC_PACKET_TOO_LARGE);
		tc_close(c);
	}
	tc_witness_stop(&w);
	broker_stop(&b);
}

/* ------------------------------------------------------------------------
 * A subscriber that never reads
 * ---------------------------------------------------------------------- */

/* A subscriber with a 4 KiB receive buffer that never reads while a
 * publisher floods QoS 0 at it: once max_output_bytes (64 KiB here) is
 * queued for it, the broker disconnects it and counts a drop ($SYS
 * publish/messages/dropped).  A reading subscriber of the same topic gets
 * every message throughout, and so does the witness. */
Test(hostile, subscriber_that_never_reads_disconnected_at_max_output_bytes)
{
	enum { BATCH = 4, FLOOD_BYTES_MAX = 256 << 20 };
	struct broker b;
	struct tc_witness w;
	struct tclient *slow, *fast, *pub, *sys;
	struct mqtt_packet p = tc_connect_packet(MQTT_V311, "never-reads"), ack;
	static char payload[8001];
	uint64_t flooded = 0, drained = 0;
	unsigned seq = 0;
	bool cut = false;

	harness_ringmq_only("max_output_bytes is a ringmq directive");
	broker_start(&b, "max_packet_size 16384\nmax_output_bytes 65536\nsys_interval 1\n");
	tc_witness_start(&w, &b, "noread");
	slow = tc_open_sized(&b, MQTT_V311, "never-reads", 4096, 0);
	(void)tc_send(slow, &p);
	ack = tc_expect(slow, MQTT_CONNACK);
	cr_assert_eq(ack.connack.reason, 0);
	tc_subscribe(slow, "flood/t", 0);
	fast = tc_connect(&b, MQTT_V311, "reads", true);
	tc_subscribe(fast, "flood/t", 0);
	pub = tc_connect(&b, MQTT_V311, "flooder", true);
	memset(payload, 'f', sizeof(payload) - 1);
	while (!cut && flooded < FLOOD_BYTES_MAX) {
		for (int i = 0; i < BATCH; i++) {
			snprintf(payload, 16, "%015u", seq + (unsigned)i);
			payload[15] = 'f';
			(void)tc_publish_send(pub, "flood/t", payload, 0, false);
			flooded += sizeof(payload);
		}
		for (int i = 0; i < BATCH; i++) {
			struct mqtt_packet m = tc_expect(fast, MQTT_PUBLISH);
			char want[16];

			snprintf(want, sizeof(want), "%015u", seq++);
			cr_assert(m.publish.payload.len == sizeof(payload) - 1 &&
					  memcmp(m.publish.payload.ptr, want, 15) == 0,
				  "reading subscriber: message %s missing or out of order", want);
		}
		cut = broker_log_contains(&b, "output limit reached");
		if (seq % (64 * BATCH) == 0)
			tc_witness_check(&w);
	}
	cr_assert(cut, "%llu bytes flooded at a subscriber that never reads and it is still connected",
		  (unsigned long long)flooded);
	tc_witness_check(&w);
	cr_assert(tc_drain_until_closed(slow, TC_WAIT_MS, &drained),
		  "the broker logged the output limit but the connection is still open after %llu bytes",
		  (unsigned long long)drained);
	cr_log_info("flooded %llu bytes; the non-reader was cut and then drained %llu bytes",
		    (unsigned long long)flooded, (unsigned long long)drained);
	tc_close(slow);
	/* Counted: the dropped figure in $SYS becomes non-zero (sys_interval 1). */
	sys = tc_connect(&b, MQTT_V311, "sys-reader", true);
	tc_subscribe(sys, "$SYS/broker/publish/messages/dropped", 0);
	for (int64_t end = harness_now_ms() + 3000 + TC_WAIT_MS;;) {
		struct mqtt_packet m;

		cr_assert(harness_now_ms() < end, "$SYS/broker/publish/messages/dropped never counted the disconnect");
		cr_assert(tc_recv(sys, TC_WAIT_MS, &m) == 0 && m.type == MQTT_PUBLISH, "no $SYS update");
		if (!tc_str_eq(m.publish.payload, "0"))
			break;
	}
	tc_disconnect(sys);
	tc_disconnect(fast);
	tc_disconnect(pub);
	tc_witness_stop(&w);
	broker_stop(&b);
}

/* ------------------------------------------------------------------------
 * Subscription and topic bombs
 * ---------------------------------------------------------------------- */

/* One SUBSCRIBE of @n filters "PREFIX/NNNNN" numbered from @first, QoS 0,
 * in one packet of any size; returns the SUBACK's codes (heap). */
static uint8_t *subscribe_bulk(struct tclient *c, const char *prefix, unsigned first, unsigned n)
{
	size_t cap = 16 + (size_t)n * (strlen(prefix) + 16), len = 0, flen;
	uint8_t *body = malloc(cap), *frame, *codes;
	struct mqtt_packet ack;
	uint16_t id = c->next_id++;

	cr_assert(body);
	body[len++] = (uint8_t)(id >> 8);
	body[len++] = (uint8_t)id;
	if (c->version == MQTT_V5)
		body[len++] = 0; /* no properties */
	for (unsigned i = 0; i < n; i++) {
		int l = snprintf((char *)body + len + 2, cap - len - 2, "%s/%05u", prefix, first + i);

		body[len] = (uint8_t)(l >> 8);
		body[len + 1] = (uint8_t)l;
		len += 2 + (size_t)l;
		body[len++] = 0;
	}
	frame = tc_frame_alloc(0x82, body, len, &flen);
	(void)tc_send_raw(c, frame, flen);
	free(frame);
	free(body);
	ack = tc_expect(c, MQTT_SUBACK);
	cr_assert_eq(ack.suback.packet_id, id, "%s: SUBACK for the wrong packet id [MQTT-3.8.4-2]", c->name);
	cr_assert_eq(ack.suback.count, n, "%s: SUBACK with %u codes for %u filters [MQTT-3.9.3-1]", c->name,
		     ack.suback.count, n);
	codes = malloc(n);
	cr_assert(codes);
	memcpy(codes, ack.suback.codes, n);
	return codes;
}

/* Subscription bomb: 3,000 filters in ten SUBSCRIBEs and then 5,000 in one
 * packet.  The first max_subscriptions_per_client (1,024 by default) are
 * granted, every later one is refused in SUBACK (0x80 / 0x97 Quota
 * exceeded); the client stays connected and its granted subscriptions
 * work, and the broker keeps serving the witness. */
Test(hostile, subscription_bomb_capped_by_max_subscriptions_per_client)
{
	enum { LIMIT = 1024, PER_PACKET = 300, PACKETS = 10, BIG = 5000 };
	struct broker b;
	struct tc_witness w;

	harness_ringmq_only("max_subscriptions_per_client is a ringmq directive");
	broker_start(&b, NULL);
	tc_witness_start(&w, &b, "subbomb");
	for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
		struct tclient *c = tc_connect(&b, version, "sub-bomber", true), *pub;
		uint8_t refused = version == MQTT_V5 ? MQTT_RC_QUOTA_EXCEEDED : 0x80;
		uint8_t *codes;
		unsigned granted = 0;

		for (unsigned k = 0; k < PACKETS; k++) {
			codes = subscribe_bulk(c, "bomb", k * PER_PACKET, PER_PACKET);
			for (unsigned i = 0; i < PER_PACKET; i++) {
				unsigned idx = k * PER_PACKET + i;

				cr_assert_eq(codes[i], idx < LIMIT ? 0 : refused, "v%u: filter %u got 0x%02x", version,
					     idx, codes[i]);
				granted += codes[i] == 0;
			}
			free(codes);
			tc_witness_check(&w);
		}
		cr_assert_eq(granted, LIMIT);
		codes = subscribe_bulk(c, "bigbomb", 0, BIG);
		for (unsigned i = 0; i < BIG; i++)
			cr_assert_eq(codes[i], refused, "v%u: filter %u of the 5,000 got 0x%02x", version, i,
				     codes[i]);
		free(codes);
		pub = tc_connect(&b, MQTT_V311, "bomb-pub", true);
		tc_publish(pub, "bomb/01000", "granted", 0, false);
		tc_publish(pub, "bomb/01024", "refused", 0, false);
		tc_publish(pub, "bomb/00007", "granted too", 0, false);
		(void)tc_expect_publish(c, "bomb/01000", "granted", 0);
		(void)tc_expect_publish(c, "bomb/00007", "granted too", 0);
		tc_disconnect(pub);
		tc_disconnect(c);
		tc_witness_check(&w);
	}
	tc_witness_stop(&w);
	broker_stop(&b);
}

/* One SUBSCRIBE (or UNSUBSCRIBE) of @n copies of @filter, QoS 0, as one
 * heap frame. */
static uint8_t *bulk_same_filter(const struct tclient *c, bool unsubscribe, const char *filter, unsigned n,
				 size_t *ret_len)
{
	size_t len = 0, fl = strlen(filter);
	uint8_t *body = malloc(4 + (size_t)n * (fl + 3)), *frame;

	cr_assert(body);
	body[len++] = 0x12;
	body[len++] = 0x34;
	if (c->version == MQTT_V5)
		body[len++] = 0;
	for (unsigned i = 0; i < n; i++) {
		body[len++] = (uint8_t)(fl >> 8);
		body[len++] = (uint8_t)fl;
		memcpy(body + len, filter, fl);
		len += fl;
		if (!unsubscribe)
			body[len++] = 0;
	}
	frame = tc_frame_alloc(unsubscribe ? 0xA2 : 0x82, body, len, ret_len);
	free(body);
	return frame;
}

/* Sends @frame on @c and waits for its (UN)SUBACK of @n codes, each
 * @want; returns the milliseconds it took.  The witness goes round while
 * the broker works. */
static int64_t timed_bulk(struct tclient *c, struct tc_witness *w, const uint8_t *frame, size_t len, bool unsub,
			  unsigned n, uint8_t want)
{
	int64_t start = harness_now_ms();
	struct mqtt_packet a;

	(void)tc_send_raw(c, frame, len);
	tc_witness_check(w);
	a = tc_expect(c, unsub ? MQTT_UNSUBACK : MQTT_SUBACK);
	cr_assert_eq(a.suback.count, n);
	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(a.suback.codes[i], want, "filter %u: 0x%02x", i, a.suback.codes[i]);
	return harness_now_ms() - start;
}

/* The subscription bomb at full size, timed: a 1 MB SUBSCRIBE of 80,000
 * copies of the last filter a client holds (each a replacement) and a 1 MB
 * UNSUBSCRIBE of 262,000 copies of a filter it does not hold (each "no
 * subscription existed"), first by a client holding one subscription,
 * then by one holding 1,024 (max_subscriptions_per_client).  Finding a
 * filter among the client's subscriptions must not cost in proportion to
 * how many it holds: the limit may be raised to 1,048,576, and a
 * per-filter scan would then make one packet cost 10^11 comparisons.  The
 * second client's packets may take at most RATIO_MAX times the first's
 * (plus SLACK_MS for noise).  The witness goes round throughout. */
Test(hostile, subscribe_cost_does_not_grow_with_subscriptions_held)
{
	enum { N_SUB = 80000, N_UNSUB = 262000, RATIO_MAX = 3, SLACK_MS = 100 };
	struct broker b;
	struct tc_witness w;
	int64_t ms[2][2];

	harness_ringmq_only("max_subscriptions_per_client is a ringmq directive");
	broker_start(&b, NULL);
	tc_witness_start(&w, &b, "megasub");
	for (int held = 0; held < 2; held++) {
		struct tclient *c = tc_connect(&b, MQTT_V5, held ? "holds-1024" : "holds-1", true);
		const char *last = held ? "held/01023" : "held/00000";
		uint8_t *frame;
		size_t len;

		for (unsigned k = 0; k < (held ? 4u : 0u); k++)
			free(subscribe_bulk(c, "held", k * 256, 256));
		if (!held)
			free(subscribe_bulk(c, "held", 0, 1));
		frame = bulk_same_filter(c, false, last, N_SUB, &len);
		ms[held][0] = timed_bulk(c, &w, frame, len, false, N_SUB, 0);
		free(frame);
		frame = bulk_same_filter(c, true, "z", N_UNSUB, &len);
		ms[held][1] = timed_bulk(c, &w, frame, len, true, N_UNSUB, MQTT_RC_NO_SUBSCRIPTION_EXISTED);
		free(frame);
		cr_log_info("holding %s: SUBSCRIBE of %u filters %lld ms, UNSUBSCRIBE of %u %lld ms",
			    held ? "1,024" : "1", N_SUB, (long long)ms[held][0], N_UNSUB, (long long)ms[held][1]);
		tc_disconnect(c);
	}
	for (int k = 0; k < 2; k++)
		cr_expect_leq(ms[1][k], RATIO_MAX * ms[0][k] + SLACK_MS,
			      "%s: %lld ms holding 1,024 subscriptions, %lld ms holding one: the cost per filter "
			      "grows with the subscriptions held", k ? "UNSUBSCRIBE" : "SUBSCRIBE",
			      (long long)ms[1][k], (long long)ms[0][k]);
	tc_witness_stop(&w);
	broker_stop(&b);
}

/* Log amplification: one SUBSCRIBE of 1,000 filters refused by
 * max_subscriptions_per_client must not write a log line per filter.  At
 * one line (about 110 bytes) per 4-byte filter, a client turns each
 * megabyte it sends into 30 MB of log.  At most LINES_MAX lines may name
 * the limit. */
Test(hostile, refused_subscriptions_do_not_flood_the_log)
{
	enum { N = 1000, LINES_MAX = 16 };
	struct broker b;
	struct tclient *c;
	struct mqtt_packet a;
	uint8_t *frame;
	size_t len;
	FILE *log;
	char line[1024];
	unsigned lines = 0;

	harness_ringmq_only("max_subscriptions_per_client is a ringmq directive");
	broker_start(&b, "max_subscriptions_per_client 1\n");
	c = tc_connect(&b, MQTT_V311, "log-flood", true);
	tc_subscribe(c, "held", 0);
	frame = bulk_same_filter(c, false, "z", N, &len);
	(void)tc_send_raw(c, frame, len);
	free(frame);
	a = tc_expect(c, MQTT_SUBACK);
	cr_assert_eq(a.suback.count, N);
	tc_disconnect(c);
	broker_stop(&b);
	log = fopen(b.log_path, "r");
	cr_assert(log);
	while (fgets(line, sizeof(line), log))
		lines += strstr(line, "max_subscriptions_per_client") != NULL;
	fclose(log);
	cr_expect_leq(lines, LINES_MAX, "one SUBSCRIBE of %u refused filters wrote %u log lines", N, lines);
}

/* A SUBSCRIBE of the one filter @filter; its SUBACK code. */
static uint8_t subscribe_raw(struct tclient *c, const char *filter)
{
	size_t flen = strlen(filter), len = 0, n;
	uint8_t *body = malloc(flen + 8), *frame;
	uint16_t id = c->next_id++;
	struct mqtt_packet ack;

	cr_assert(body && flen <= 65535);
	body[len++] = (uint8_t)(id >> 8);
	body[len++] = (uint8_t)id;
	if (c->version == MQTT_V5)
		body[len++] = 0;
	body[len++] = (uint8_t)(flen >> 8);
	body[len++] = (uint8_t)flen;
	memcpy(body + len, filter, flen);
	len += flen;
	body[len++] = 0;
	frame = tc_frame_alloc(0x82, body, len, &n);
	(void)tc_send_raw(c, frame, n);
	free(frame);
	free(body);
	ack = tc_expect(c, MQTT_SUBACK);
	cr_assert_eq(ack.suback.packet_id, id);
	cr_assert_eq(ack.suback.count, 1);
	return ack.suback.codes[0];
}

/* A string of @n copies of @unit followed by @tail (heap). */
static char *repeat(const char *unit, unsigned n, const char *tail)
{
	size_t ul = strlen(unit), tl = strlen(tail);
	char *s = malloc(ul * n + tl + 1);

	cr_assert(s);
	for (unsigned i = 0; i < n; i++)
		memcpy(s + i * ul, unit, ul);
	memcpy(s + ul * n, tail, tl + 1);
	return s;
}

/* A QoS 1 PUBLISH to @topic must be refused: 3.1.1 closes the connection,
 * MQTT 5 answers 0x90 Topic Name invalid in PUBACK or DISCONNECT. */
static void publish_refused(struct tclient *pub, const char *topic, const char *what)
{
	struct mqtt_packet p;
	int r;

	(void)tc_publish_send(pub, topic, "refused", 1, false);
	r = tc_recv(pub, TC_WAIT_MS, &p);
	if (pub->version < MQTT_V5) {
		cr_assert_eq(r, -ECONNRESET, "3.1.1 connection not closed after a %s", what);
	} else if (r == 0 && p.type == MQTT_PUBACK) {
		cr_assert_eq(p.ack.reason, MQTT_RC_TOPIC_NAME_INVALID, "%s: %s", what, tc_describe(&p));
	} else {
		cr_assert(r == 0 && p.type == MQTT_DISCONNECT, "%s: %s", what,
			  r == 0 ? tc_describe(&p) : "no PUBACK or DISCONNECT");
		cr_assert_eq(p.disconnect.reason, MQTT_RC_TOPIC_NAME_INVALID, "%s: %s", what, tc_describe(&p));
	}
}

/* Topic-depth bombs, with max_topic_levels at its maximum (1,024): a
 * 65,535-byte topic of '/' only (65,536 empty levels) closes a 3.1.1
 * connection and gets 0x90 Topic Name invalid in MQTT 5 (PUBACK or
 * DISCONNECT); a 65,535-byte filter of '/' and one of 32,768 "+" levels
 * ending in '#' are refused in SUBACK (0x80 / 0x8F) and the connection
 * goes on.  At the limit everything works: a filter of 1,024 '+' levels
 * and one of 1,023 levels and '#' both match a published topic of 1,024
 * levels, which the subscriber gets once (overlapping subscriptions of one
 * session fold into one delivery [MQTT-3.3.4-2]); 1,025 levels are refused
 * like the bomb. */
Test(hostile, topic_depth_bombs_refused_deepest_allowed_topics_work)
{
	struct broker b;
	struct tc_witness w;
	char *slashes = repeat("/", 65535, "");
	char *pluses = repeat("+/", 32767, "#");
	char *deep_filter = repeat("+/", 1023, "+");
	char *deep_hash = repeat("a/", 1023, "#");
	char *deep_topic = repeat("a/", 1023, "a");
	char *too_deep = repeat("a/", 1024, "a");

	harness_ringmq_only("max_topic_levels is a ringmq directive");
	broker_start(&b, "max_topic_levels 1024\n");
	tc_witness_start(&w, &b, "depth");
	for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
		uint8_t bad_filter = version == MQTT_V5 ? MQTT_RC_TOPIC_FILTER_INVALID : 0x80;
		struct tclient *c = tc_connect(&b, version, "deep", true), *pub;
		struct mqtt_packet p;

		cr_assert_eq(strlen(slashes), 65535);
		cr_assert_eq(strlen(pluses), 65535);
		cr_assert_eq(subscribe_raw(c, slashes), bad_filter, "v%u: 65,536-level filter", version);
		cr_assert_eq(subscribe_raw(c, pluses), bad_filter, "v%u: 32,768-level wildcard filter", version);
		cr_assert_eq(subscribe_raw(c, deep_filter), 0, "v%u: 1,024-level filter refused", version);
		cr_assert_eq(subscribe_raw(c, deep_hash), 0, "v%u: 1,024-level '#' filter refused", version);
		tc_witness_check(&w);
		pub = tc_connect(&b, version, "deep-pub", true);
		tc_publish(pub, deep_topic, "deepest", 1, false);
		p = tc_expect(c, MQTT_PUBLISH);
		cr_assert(tc_str_eq(p.publish.payload, "deepest") && p.publish.topic.len == strlen(deep_topic),
			  "v%u: %s", version, tc_describe(&p));
		tc_expect_nothing(c, TC_QUIET_MS); /* one session, overlapping filters: one delivery */
		publish_refused(pub, too_deep, "1,025-level topic");
		tc_close(pub);
		pub = tc_connect(&b, version, "slash-pub", true);
		publish_refused(pub, slashes, "65,536-level topic");
		tc_close(pub);
		tc_expect_nothing(c, TC_QUIET_MS);
		tc_disconnect(c);
		tc_witness_check(&w);
	}
	free(slashes);
	free(pluses);
	free(deep_filter);
	free(deep_hash);
	free(deep_topic);
	free(too_deep);
	tc_witness_stop(&w);
	broker_stop(&b);
}

/* ------------------------------------------------------------------------
 * Huge property lists
 * ---------------------------------------------------------------------- */

/* An MQTT 5 PUBLISH (QoS 1, packet id @id) to @topic with @n empty user
 * properties (5 bytes each) and a short payload, as one heap frame. */
static uint8_t *publish_with_users(const char *topic, uint16_t id, unsigned n, size_t *ret_len)
{
	size_t tl = strlen(topic), props = (size_t)n * 5, cap = tl + props + 64, len = 0;
	uint8_t *body = malloc(cap), *frame;
	uint32_t v = (uint32_t)props;

	cr_assert(body);
	body[len++] = (uint8_t)(tl >> 8);
	body[len++] = (uint8_t)tl;
	memcpy(body + len, topic, tl);
	len += tl;
	body[len++] = (uint8_t)(id >> 8);
	body[len++] = (uint8_t)id;
	do {
		uint8_t byte = v & 0x7f;

		v >>= 7;
		body[len++] = (uint8_t)(byte | (v ? 0x80 : 0));
	} while (v);
	for (unsigned i = 0; i < n; i++) {
		body[len++] = MQTT_PROP_USER;
		memset(body + len, 0, 4); /* empty name, empty value */
		len += 4;
	}
	memcpy(body + len, "props", 5);
	len += 5;
	frame = tc_frame_alloc(0x32, body, len, ret_len);
	free(body);
	return frame;
}

/* 10,000 Payload Format Indicators in one MQTT 5 PUBLISH (QoS 1, "props/t"):
 * a property that may appear once, so a protocol error at the second,
 * DISCONNECT 0x82. */
static void publish_duplicate_property(struct tclient *pub)
{
	enum { DUPS = 10000 };
	size_t len = 0, n;
	uint8_t *body = malloc(DUPS * 2 + 32), *frame;
	uint32_t v = DUPS * 2;

	cr_assert(body);
	body[len++] = 0;
	body[len++] = 7;
	memcpy(body + len, "props/t", 7);
	len += 7;
	body[len++] = 0;
	body[len++] = 99;
	do {
		uint8_t byte = v & 0x7f;

		v >>= 7;
		body[len++] = (uint8_t)(byte | (v ? 0x80 : 0));
	} while (v);
	for (unsigned i = 0; i < DUPS; i++) {
		body[len++] = MQTT_PROP_PAYLOAD_FORMAT;
		body[len++] = 0;
	}
	frame = tc_frame_alloc(0x32, body, len, &n);
	(void)tc_send_raw(pub, frame, n);
	free(frame);
	free(body);
	tc_expect_disconnect(pub, MQTT_RC_PROTOCOL_ERROR);
}

/* Huge property lists cost time linear in their size: MQTT 5 PUBLISHes
 * carrying 100,000 and 200,000 user properties (0.5 and 1 MB, within
 * max_packet_size 2 MiB) are each either forwarded with every property
 * [MQTT-3.3.2-18] or refused with a reason code, within a time bound far
 * below what a quadratic parser would need; then a PUBLISH with 10,000
 * copies of the Payload Format Indicator is a protocol error (0x82, a
 * property that may appear once [MQTT-2.2.2-?]); the witness is served
 * throughout. */
Test(hostile, huge_property_lists_handled_in_bounded_time)
{
	enum { ROUND_MS_MAX = 4000 };
	static const unsigned counts[] = {100000, 200000};
	struct broker b;
	struct tc_witness w;
	struct tclient *pub, *sub;

	harness_ringmq_only("a deliberately large max_packet_size and output limit");
	broker_start(&b, "max_packet_size 2097152\nmax_output_bytes 16777216\n");
	tc_witness_start(&w, &b, "props");
	sub = tc_connect(&b, MQTT_V5, "props-sub", true);
	tc_subscribe(sub, "props/t", 1);
	pub = tc_connect(&b, MQTT_V5, "props-pub", true);
	for (unsigned k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
		uint16_t id = pub->next_id++;
		size_t len;
		uint8_t *frame = publish_with_users("props/t", id, counts[k], &len);
		int64_t start = harness_now_ms(), ms;
		struct mqtt_packet a, m;

		(void)tc_send_raw(pub, frame, len);
		free(frame);
		a = tc_expect(pub, MQTT_PUBACK);
		cr_assert_eq(a.ack.packet_id, id);
		if (a.ack.reason < 0x80) {
			m = tc_expect(sub, MQTT_PUBLISH);
			cr_assert(tc_str_eq(m.publish.payload, "props"), "%s", tc_describe(&m));
			cr_assert_eq(m.publish.props.user_count, counts[k], "%u user properties forwarded of %u",
				     m.publish.props.user_count, counts[k]);
			tc_ack(sub, MQTT_PUBACK, m.publish.packet_id);
		} else {
			cr_log_info("%u user properties refused with 0x%02x", counts[k], a.ack.reason);
		}
		ms = harness_now_ms() - start;
		cr_log_info("%u user properties: %lld ms", counts[k], (long long)ms);
		cr_assert_lt(ms, ROUND_MS_MAX, "%u user properties took %lld ms", counts[k], (long long)ms);
		tc_witness_check(&w);
	}
	publish_duplicate_property(pub);
	tc_close(pub);
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_disconnect(sub);
	tc_witness_stop(&w);
	broker_stop(&b);
}

/* ------------------------------------------------------------------------
 * Packet identifiers
 * ---------------------------------------------------------------------- */

/* Packet-id exhaustion (the test below): every id in flight, a few
 * messages queued behind them.  A linear broker handles 65,535
 * acknowledgements in tens of milliseconds (in order: about 10 ms), a
 * quadratic one in over a second; 400 ms is the bound. */
enum { WINDOW_IDS = 65535, WINDOW_EXTRA = 5, WINDOW_BATCH = 512, WINDOW_ACKS_MS_MAX = 400 };

/* Publishes WINDOW_IDS + WINDOW_EXTRA numbered QoS 1 messages in batches;
 * @sub must get the first WINDOW_IDS, in order, each with a packet id
 * that is not 0 and not in flight already. */
static void fill_window(struct tclient *pub, struct tclient *sub, struct tc_witness *w)
{
	static uint8_t seen[WINDOW_IDS + 1];
	unsigned sent = 0, acked = 0, got = 0;
	int64_t t0 = harness_now_ms();

	memset(seen, 0, sizeof(seen));
	while (sent < WINDOW_IDS + WINDOW_EXTRA) {
		unsigned left = WINDOW_IDS + WINDOW_EXTRA - sent, n = left < WINDOW_BATCH ? left : WINDOW_BATCH;

		for (unsigned i = 0; i < n; i++) {
			char payload[16];

			snprintf(payload, sizeof(payload), "%u", sent++);
			(void)tc_publish_send(pub, "ids/t", payload, 1, false);
		}
		for (; acked < sent; acked++)
			(void)tc_expect(pub, MQTT_PUBACK);
		for (; got < sent && got < WINDOW_IDS; got++) {
			struct mqtt_packet m;
			char want[16];
			int r = tc_recv(sub, TC_WAIT_MS, &m);

			snprintf(want, sizeof(want), "%u", got);
			cr_assert(r == 0, "message %s of %u sent not delivered within %d ms (%s)", want, sent,
				  TC_WAIT_MS, r == -ETIMEDOUT ? "nothing came" : "connection closed");
			cr_assert(m.type == MQTT_PUBLISH && tc_str_eq(m.publish.payload, want),
				  "expected message %s, got %s", want, tc_describe(&m));
			cr_assert(m.publish.packet_id != 0, "packet id 0 [MQTT-2.3.1-1]");
			cr_assert(!seen[m.publish.packet_id], "packet id %u reused while in flight [MQTT-2.3.1-2]",
				  m.publish.packet_id);
			seen[m.publish.packet_id] = 1;
		}
		if (sent % (WINDOW_BATCH * 32) == 0)
			tc_witness_check(w);
	}
	cr_log_info("65,535 messages sent and delivered into the window in %lld ms",
		    (long long)(harness_now_ms() - t0));
}

/* All WINDOW_IDS PUBACKs in one write, in scrambled order, then a PINGREQ: its PINGRESP times
 * how long the broker takes over the acknowledgements, and the witness,
 * whose clients may share the shard, must not wait behind them.  The
 * queued messages come out in order between. */
static void ack_window_at_once(struct tclient *sub, struct tc_witness *w)
{
	uint8_t *acks = malloc(4u * WINDOW_IDS + 2);
	struct mqtt_packet m;
	int64_t start, ms;

	cr_assert(acks);
	for (unsigned k = 0; k < WINDOW_IDS; k++) {
		/* Every id once, in a scrambled order (k * 32771 mod 65535 is a
		 * permutation: 32771 is prime to 65535), since the client, not
		 * the broker, picks the order of its acknowledgements. */
		uint16_t id = (uint16_t)((uint32_t)k * 32771u % WINDOW_IDS + 1);

		memcpy(acks + 4 * k, (uint8_t[]){0x40, 2, (uint8_t)(id >> 8), (uint8_t)id}, 4);
	}
	memcpy(acks + 4u * WINDOW_IDS, "\xc0\x00", 2);
	start = harness_now_ms();
	(void)tc_send_raw(sub, acks, 4u * WINDOW_IDS + 2);
	free(acks);
	tc_witness_check(w);
	ms = harness_now_ms() - start;
	cr_log_info("witness round trip during 65,535 PUBACKs: %lld ms", (long long)ms);
	cr_expect_lt(ms, WINDOW_ACKS_MS_MAX, "the witness waited %lld ms behind one client's 65,535 PUBACKs",
		     (long long)ms);
	for (unsigned i = 1; i < WINDOW_EXTRA; i++) {
		char want[16];

		snprintf(want, sizeof(want), "%u", WINDOW_IDS + i);
		m = tc_expect_publish(sub, "ids/t", want, 1);
		tc_ack(sub, MQTT_PUBACK, m.publish.packet_id);
	}
	(void)tc_expect(sub, MQTT_PINGRESP);
	ms = harness_now_ms() - start;
	cr_log_info("65,535 PUBACKs handled in %lld ms", (long long)ms);
	cr_expect_lt(ms, WINDOW_ACKS_MS_MAX,
		     "65,535 PUBACKs took %lld ms: acknowledging a window of n costs more than O(n)", (long long)ms);
}

/* Packet-id exhaustion: max_inflight_messages 0 (unlimited, stored as
 * 65,535) and a QoS 1 subscriber that reads but never acknowledges.  The
 * broker sends 65,535 messages, each with a different packet id, none 0
 * [MQTT-2.3.1-1] [MQTT-2.3.1-2], then queues the rest rather than reuse an
 * id still in flight.  Acknowledging one id releases exactly one queued
 * message, which must take that id (the only free one); acknowledging all
 * releases the rest, in order [MQTT-4.6.0-2].  Acknowledging the whole
 * window in one write costs time linear in it (WINDOW_ACKS_MS_MAX), and
 * the witness is not kept waiting behind it. */
Test(hostile, packet_id_exhaustion_queues_and_never_reuses_inflight_ids_MQTT_2_3_1_2)
{
	struct broker b;
	struct tc_witness w;
	struct tclient *sub, *pub;
	struct mqtt_packet m;

	harness_ringmq_only("unlimited max_inflight_messages is stored as 65535 in ringmq");
	broker_start(&b, "max_inflight_messages 0\n");
	tc_witness_start(&w, &b, "ids");
	sub = tc_connect(&b, MQTT_V311, "never-acks", true);
	tc_subscribe(sub, "ids/t", 1);
	pub = tc_connect(&b, MQTT_V311, "ids-pub", true);
	fill_window(pub, sub, &w);
	tc_expect_nothing(sub, TC_QUIET_MS); /* every id in flight: the rest must wait */
	tc_witness_check(&w);
	tc_ack(sub, MQTT_PUBACK, 777);
	m = tc_expect_publish(sub, "ids/t", "65535", 1);
	cr_assert_eq(m.publish.packet_id, 777, "the only free id is 777, got %u", m.publish.packet_id);
	tc_expect_nothing(sub, TC_QUIET_MS);
	ack_window_at_once(sub, &w);
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_disconnect(sub);
	tc_disconnect(pub);
	tc_witness_stop(&w);
	broker_stop(&b);
}

/* Receive Maximum at its default (max_receive_inflight 1024): an MQTT 5
 * publisher leaving 1,024 QoS 2 PUBLISHes unreleased has them all
 * acknowledged with PUBREC; the 1,025th exceeds the Receive Maximum and
 * gets DISCONNECT 0x93 [MQTT-3.3.4-9]. */
Test(hostile, v5_qos2_flood_beyond_receive_maximum_disconnect_0x93_MQTT_3_3_4_9)
{
	enum { RECEIVE_MAX = 1024 };
	struct broker b;
	struct tc_witness w;
	struct tclient *pub;

	harness_ringmq_only("ringmq's default Receive Maximum is 1024");
	broker_start(&b, NULL);
	tc_witness_start(&w, &b, "rmax");
	pub = tc_connect(&b, MQTT_V5, "qos2-flood", true);
	for (unsigned i = 0; i < RECEIVE_MAX; i++)
		(void)tc_publish_send(pub, "rmax/t", "held", 2, false);
	for (unsigned i = 0; i < RECEIVE_MAX; i++) {
		struct mqtt_packet p = tc_expect(pub, MQTT_PUBREC);

		cr_assert(p.ack.packet_id == i + 1 && p.ack.reason < 0x80, "PUBREC %u: %s", i, tc_describe(&p));
	}
	tc_witness_check(&w);
	(void)tc_publish_send(pub, "rmax/t", "one too many", 2, false);
	tc_expect_disconnect(pub, MQTT_RC_RECEIVE_MAX_EXCEEDED);
	tc_close(pub);
	tc_witness_stop(&w);
	broker_stop(&b);
}

/* Acknowledgements for ids the broker never used: PUBACK and PUBCOMP are
 * ignored (nothing is sent and the connection stays: sections 4.3.2 and
 * 4.3.3 ask for no answer to them); PUBREL is answered with PUBCOMP and
 * PUBREC with PUBREL, in MQTT 5 with 0x92 Packet Identifier not found, as
 * the reason codes of sections 3.6.2.1 and 3.7.2.1 allow.  Then 10,000
 * PUBRELs in one write get 10,000 PUBCOMPs, in order. */
Test(hostile, acks_for_unknown_packet_ids_handled_per_spec)
{
	enum { FLOOD = 10000 };
	struct broker b;
	struct tc_witness w;

	harness_ringmq_only("the reason codes on unknown ids are checked for ringmq only");
	broker_start(&b, NULL);
	tc_witness_start(&w, &b, "unknown");
	for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
		uint8_t not_found = version == MQTT_V5 ? MQTT_RC_PACKET_ID_NOT_FOUND : 0;
		struct tclient *c = tc_connect(&b, version, "stray-acks", true);
		struct mqtt_packet p, ping = {.type = MQTT_PINGREQ};
		uint8_t *flood = malloc(FLOOD * 4);

		tc_ack(c, MQTT_PUBACK, 4242);
		tc_ack(c, MQTT_PUBCOMP, 4243);
		tc_expect_nothing(c, TC_QUIET_MS);
		tc_ack(c, MQTT_PUBREL, 4244);
		p = tc_expect(c, MQTT_PUBCOMP);
		cr_assert(p.ack.packet_id == 4244 && p.ack.reason == not_found, "v%u: %s", version, tc_describe(&p));
		tc_ack(c, MQTT_PUBREC, 4245);
		p = tc_expect(c, MQTT_PUBREL);
		cr_assert(p.ack.packet_id == 4245 && p.ack.reason == not_found, "v%u: %s", version, tc_describe(&p));
		cr_assert(flood);
		for (unsigned i = 0; i < FLOOD; i++) {
			uint16_t id = (uint16_t)(i + 1);

			flood[4 * i] = 0x62; /* PUBREL, flags 0010 */
			flood[4 * i + 1] = 2;
			flood[4 * i + 2] = (uint8_t)(id >> 8);
			flood[4 * i + 3] = (uint8_t)id;
		}
		(void)tc_send_raw(c, flood, FLOOD * 4);
		free(flood);
		for (unsigned i = 0; i < FLOOD; i++) {
			p = tc_expect(c, MQTT_PUBCOMP);
			cr_assert(p.ack.packet_id == i + 1 && p.ack.reason == not_found, "v%u: PUBCOMP %u: %s", version,
				  i, tc_describe(&p));
		}
		(void)tc_send(c, &ping);
		(void)tc_expect(c, MQTT_PINGRESP);
		tc_witness_check(&w);
		tc_disconnect(c);
	}
	tc_witness_stop(&w);
	broker_stop(&b);
}

/* ------------------------------------------------------------------------
 * Packets only a server sends, and reserved types
 * ---------------------------------------------------------------------- */

struct bad_packet {
	const char *name;
	uint8_t bytes[8];
	size_t len;
	uint8_t v5_reason; /* 0: not sent to MQTT 5 connections */
	bool v311;
};

/* A client sending CONNACK, SUBACK, UNSUBACK or PINGRESP commits a
 * protocol error: MQTT 5 gets DISCONNECT 0x82 and a close (section 4.13),
 * 3.1.1 a close [MQTT-4.8.0-1].  Reserved type 0 is malformed (MQTT 5:
 * 0x81, or 0x82), and AUTH does not exist before MQTT 5 (close).  Each
 * with a fresh client; the witness and a new client are served after. */
Test(hostile, server_only_and_reserved_packets_close_the_connection)
{
	static const struct bad_packet bad[] = {
		{"CONNACK 3.1.1", {0x20, 0x02, 0x00, 0x00}, 4, 0, true},
		{"CONNACK 5", {0x20, 0x03, 0x00, 0x00, 0x00}, 5, MQTT_RC_PROTOCOL_ERROR, false},
		{"SUBACK 3.1.1", {0x90, 0x03, 0x00, 0x01, 0x00}, 5, 0, true},
		{"SUBACK 5", {0x90, 0x04, 0x00, 0x01, 0x00, 0x00}, 6, MQTT_RC_PROTOCOL_ERROR, false},
		{"UNSUBACK 3.1.1", {0xB0, 0x02, 0x00, 0x01}, 4, 0, true},
		{"UNSUBACK 5", {0xB0, 0x04, 0x00, 0x01, 0x00, 0x00}, 6, MQTT_RC_PROTOCOL_ERROR, false},
		{"PINGRESP", {0xD0, 0x00}, 2, MQTT_RC_PROTOCOL_ERROR, true},
		{"reserved type 0", {0x00, 0x00}, 2, MQTT_RC_MALFORMED, true},
		{"AUTH in 3.1.1", {0xF0, 0x00}, 2, 0, true},
	};
	static const uint8_t type0_reasons[] = {MQTT_RC_MALFORMED, MQTT_RC_PROTOCOL_ERROR};
	struct broker b;
	struct tc_witness w;

	harness_mosquitto_deviates("[MQTT-4.8.0-1] mosquitto 2.0.11 keeps a 3.1.1 connection that sent SUBACK");
	broker_start(&b, NULL);
	tc_witness_start(&w, &b, "serveronly");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
			struct tclient *c;

			if ((version == MQTT_V5 && !bad[i].v5_reason) || (version == MQTT_V311 && !bad[i].v311))
				continue;
			c = tc_connect(&b, version, "impostor", true);
			(void)tc_send_raw(c, bad[i].bytes, bad[i].len);
			if (version == MQTT_V311)
				tc_expect_closed(c);
			else if (bad[i].v5_reason == MQTT_RC_MALFORMED)
				tc_expect_disconnect_any(c, type0_reasons, 2);
			else
				tc_expect_disconnect(c, bad[i].v5_reason);
			cr_log_info("%s on v%u: closed", bad[i].name, version);
			tc_close(c);
		}
		tc_witness_check(&w);
	}
	tc_disconnect(tc_connect(&b, MQTT_V5, "after-impostors", true));
	tc_witness_stop(&w);
	broker_stop(&b);
}

/* ------------------------------------------------------------------------
 * Requests from a client that never reads the answers
 * ---------------------------------------------------------------------- */

/* A client that floods PINGREQ and QoS 1 PUBLISH (each answered by the
 * broker) and never reads the answers: its output reaches
 * max_output_bytes (64 KiB here) and the broker disconnects it rather than
 * buffer answers without bound; the witness is served meanwhile. */
Test(hostile, request_flood_from_a_client_that_never_reads_is_disconnected)
{
	enum { FLOOD_BYTES_MAX = 64 << 20, BLOCK = 65536 };
	struct broker b;
	struct tc_witness w;

	harness_ringmq_only("max_output_bytes is a ringmq directive");
	broker_start(&b, "max_packet_size 16384\nmax_output_bytes 65536\n");
	tc_witness_start(&w, &b, "reqflood");
	for (int kind = 0; kind < 2; kind++) {
		struct tclient *c = tc_open_sized(&b, MQTT_V311, kind ? "puback-flood" : "ping-flood", 4096, 0);
		struct mqtt_packet p = tc_connect_packet(MQTT_V311, c->name);
		uint8_t *block = malloc(BLOCK);
		size_t unit, sent = 0;
		uint64_t drained = 0;
		int r = 0;

		(void)tc_send(c, &p);
		(void)tc_expect(c, MQTT_CONNACK);
		cr_assert(block);
		if (kind == 0) {
			unit = 2;
			for (size_t i = 0; i < BLOCK; i += unit)
				memcpy(block + i, "\xc0\x00", 2); /* PINGREQ */
		} else {
			/* PUBLISH QoS 1 "rf" (no subscriber), packet id 1, empty payload: 8 bytes. */
			unit = 8;
			for (size_t i = 0; i < BLOCK; i += unit)
				memcpy(block + i, "\x32\x06\x00\x02rf\x00\x01", 8);
		}
		while (sent < FLOOD_BYTES_MAX && (r = tc_send_raw(c, block, BLOCK)) == 0) {
			sent += BLOCK;
			if (sent % (16 * BLOCK) == 0)
				tc_witness_check(&w);
		}
		free(block);
		cr_assert(r < 0, "%s: %zu bytes of requests sent without reading, still connected", c->name, sent);
		cr_assert(tc_drain_until_closed(c, TC_WAIT_MS, &drained), "%s: not closed", c->name);
		cr_log_info("%s: cut after %zu bytes sent, %llu bytes of answers drained", c->name, sent,
			    (unsigned long long)drained);
		tc_close(c);
		tc_witness_check(&w);
	}
	cr_assert(broker_log_contains(&b, "output limit reached"));
	tc_witness_stop(&w);
	broker_stop(&b);
}

/* A retained-message bomb: 50,000 retained messages on distinct topics,
 * then ten clients subscribe to '#' at once.  Each gets every retained
 * message (QoS 0, within max_output_bytes) or is disconnected at the output
 * limit; the witness round trip right after the SUBSCRIBEs stays within
 * TC_WAIT_MS. */
Test(hostile, retained_bomb_wildcard_subscribers_do_not_starve_others)
{
	enum { RETAINED = 50000, SUBS = 10 };
	struct broker b;
	struct tc_witness w;
	struct tclient *pub, *sub[SUBS];
	unsigned complete = 0;
	int64_t start, ms;

	broker_start(&b, NULL);
	tc_witness_start(&w, &b, "retbomb");
	pub = tc_connect(&b, MQTT_V311, "ret-bomber", true);
	for (unsigned i = 0; i < RETAINED; i++) {
		char topic[32];

		snprintf(topic, sizeof(topic), "ret/%05u/x", i);
		(void)tc_publish_send(pub, topic, "retained payload", 0, true);
	}
	tc_publish(pub, "ret/last", "sync", 1, true); /* every earlier PUBLISH was handled */
	for (unsigned i = 0; i < SUBS; i++) {
		/* SUBSCRIBE '#' QoS 0, packet id 1, sent without waiting for SUBACK. */
		static const uint8_t subscribe_all[] = {0x82, 6, 0, 1, 0, 1, '#', 0};
		char id[32];

		snprintf(id, sizeof(id), "ret-sub-%u", i);
		sub[i] = tc_connect(&b, MQTT_V311, id, true);
		(void)tc_send_raw(sub[i], subscribe_all, sizeof(subscribe_all));
	}
	start = harness_now_ms();
	tc_witness_check(&w);
	ms = harness_now_ms() - start;
	cr_log_info("witness round trip during ten '#' subscriptions to 50,000 retained: %lld ms", (long long)ms);
	for (unsigned i = 0; i < SUBS; i++) {
		unsigned got = 0;
		struct mqtt_packet m = tc_expect(sub[i], MQTT_SUBACK);
		int r;

		while ((r = tc_recv(sub[i], TC_WAIT_MS, &m)) == 0 && m.type == MQTT_PUBLISH && ++got < RETAINED + 1)
			;
		cr_assert(got == RETAINED + 1 || r == -ECONNRESET, "subscriber %u: %u of %u retained messages", i, got,
			  RETAINED + 1);
		complete += got == RETAINED + 1;
		tc_close(sub[i]);
	}
	cr_log_info("%u of %u '#' subscribers got all %u retained messages", complete, SUBS, RETAINED + 1);
	tc_disconnect(pub);
	tc_witness_stop(&w);
	broker_stop(&b);
}
