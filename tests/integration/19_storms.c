/*
 * 19_storms.c - reconnect and take-over storms.
 *
 * Hundreds of connections arrive and leave in waves, in every way a client
 * can leave (DISCONNECT, a plain close, a reset, half a CONNECT, nothing at
 * all), and many share a client id, so take-overs race each other across
 * shards: the id's home shard serializes them, whichever shard accepted
 * the socket.  Afterwards the broker's connection count ($SYS
 * broker/clients/connected, published every second here) must come back
 * to the connections the test still holds, the survivors of a take-over
 * storm must be exactly one per client id, a persistent session taken over
 * forty times must still deliver every QoS 1 message at least once
 * [MQTT-4.3.2-?, MQTT-4.4.0-1], and the witness (tclient.h) is served
 * throughout.  Leaks on these paths show under the ASan build as a
 * non-zero exit at SIGTERM, which broker_stop() fails on.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "harness.h"
#include "tclient.h"

TestSuite(storms, .timeout = 120);

/* How long the connection count may take to settle: a $SYS interval of
 * 1 s, the sweep, and a loaded machine. */
#define SETTLE_MS 15000

/* Close @c with a TCP reset instead of a FIN (SO_LINGER 0). */
static void reset_close(struct tclient *c)
{
	struct linger l = {.l_onoff = 1, .l_linger = 0};

	(void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)); /* a FIN instead is still a close */
	tc_close(c);
}

/* A subscriber to $SYS/broker/clients/connected. */
static struct tclient *count_watcher(const struct broker *b)
{
	struct tclient *w = tc_connect(b, MQTT_V311, "count-watcher", true);

	tc_subscribe(w, "$SYS/broker/clients/connected", 0);
	return w;
}

/* Waits until $SYS/broker/clients/connected says @want; fails after
 * SETTLE_MS with the last figure seen. */
static void wait_connected(struct tclient *watch, unsigned want)
{
	int64_t end = harness_now_ms() + SETTLE_MS;
	char want_s[16], last[32] = "nothing";

	snprintf(want_s, sizeof(want_s), "%u", want);
	for (;;) {
		struct mqtt_packet m;
		int64_t left = end - harness_now_ms();

		cr_assert(left > 0, "connection count did not return to %u within %d ms: last $SYS figure %s", want,
			  SETTLE_MS, last);
		if (tc_recv(watch, (int)left, &m) != 0)
			continue;
		cr_assert(m.type == MQTT_PUBLISH, "count watcher: %s", tc_describe(&m));
		snprintf(last, sizeof(last), "%s", tc_dup(m.publish.payload));
		if (strcmp(last, want_s) == 0)
			return;
	}
}

/* ------------------------------------------------------------------------
 * Reconnect storm
 * ---------------------------------------------------------------------- */

/* 600 connections in waves of 60, ids from a pool of 50 (so waves hold
 * take-overs), MQTT 3.1, 3.1.1 and 5, leaving in seven ways.  Afterwards
 * the connection count is back to the three the test holds (witness pair
 * and watcher), a new client connects, and the witness was served after
 * every wave. */
Test(storms, reconnect_storm_connection_count_returns_to_baseline)
{
	enum { TOTAL = 600, WAVE = 60, IDS = 50, BASELINE = 3 };
	struct broker b;
	struct tc_witness w;
	struct tclient *watch;

	harness_ringmq_only("$SYS clients/connected counts ringmq's connections");
	broker_start(&b, "sys_interval 1\n");
	tc_witness_start(&w, &b, "storm");
	watch = count_watcher(&b);
	wait_connected(watch, BASELINE);
	for (unsigned base = 0; base < TOTAL; base += WAVE) {
		struct tclient *c[WAVE];

		for (unsigned k = 0; k < WAVE; k++) {
			unsigned i = base + k, kind = i % 7;
			uint8_t version = kind == 6 ? MQTT_V31 : kind == 1 || kind == 5 ? MQTT_V5 : MQTT_V311;
			char id[32];
			struct mqtt_packet p;
			uint8_t buf[256];
			size_t len;

			snprintf(id, sizeof(id), "storm-%u", i % IDS);
			p = tc_connect_packet(version, id);
			p.connect.clean = kind != 2;
			if (kind == 5) {
				p.connect.will = true;
				p.connect.will_topic = tc_str("storm/will");
				p.connect.will_payload = tc_str("gone");
			}
			len = mqtt_encoded_len(version, &p);
			cr_assert(len > 0 && len <= sizeof(buf));
			cr_assert(mqtt_encode(version, &p, buf, len) == (int)len);
			c[k] = tc_open(&b, version, id);
			if (kind == 3)
				(void)tc_send_raw(c[k], buf, len / 2);
			else if (kind != 4)
				(void)tc_send_raw(c[k], buf, len);
			if (kind == 5) {
				/* SUBSCRIBE storm/# QoS 1, id 1, no properties: not waited for. */
				static const uint8_t sub[] = {0x82, 13, 0, 1, 0, 0, 7, 's', 't', 'o', 'r', 'm', '/',
							      '#', 1};

				(void)tc_publish_send(c[k], "storm/t", "hello", 1, false);
				(void)tc_send_raw(c[k], sub, sizeof(sub));
			}
		}
		for (unsigned k = 0; k < WAVE; k++) {
			unsigned kind = (base + k) % 7;

			if (kind == 0 || kind == 1 || kind == 6) {
				struct mqtt_packet a = tc_expect(c[k], MQTT_CONNACK);

				cr_assert_eq(a.connack.reason, 0, "%s: %s", c[k]->name, tc_describe(&a));
			}
			if (kind == 0 || kind == 6)
				tc_disconnect(c[k]);
			else if (kind == 2 || kind == 5)
				reset_close(c[k]);
			else
				tc_close(c[k]);
		}
		tc_witness_check(&w);
	}
	wait_connected(watch, BASELINE);
	tc_disconnect(tc_connect(&b, MQTT_V5, "after-the-storm", true));
	tc_witness_check(&w);
	tc_disconnect(watch);
	tc_witness_stop(&w);
	broker_stop(&b);
}

/* ------------------------------------------------------------------------
 * Take-over storm
 * ---------------------------------------------------------------------- */

struct contender {
	struct tclient *c;
	unsigned id;
	bool connack, closed;
	int disconnect; /* MQTT 5 DISCONNECT reason before the close, -1 if none */
};

/* Reads what @k has without waiting. */
static void contender_poll(struct contender *k)
{
	for (;;) {
		struct mqtt_packet p;
		int r = tc_recv(k->c, 0, &p);

		if (r == -ETIMEDOUT)
			return;
		if (r == -ECONNRESET) {
			k->closed = true;
			return;
		}
		cr_assert(r == 0, "%s: bad bytes", k->c->name);
		if (p.type == MQTT_CONNACK) {
			cr_assert(!k->connack && p.connack.reason == 0, "%s: %s", k->c->name, tc_describe(&p));
			k->connack = true;
		} else {
			cr_assert(p.type == MQTT_DISCONNECT && k->c->version == MQTT_V5 && k->disconnect == -1,
				  "%s: unexpected %s", k->c->name, tc_describe(&p));
			k->disconnect = p.disconnect.reason;
		}
	}
}

/* Thirty connections for each of ten client ids, all CONNECTs sent before
 * any answer is read, alternating MQTT 3.1.1 and 5 and Clean Session 0 and
 * 1.  Every connection gets CONNACK 0; all but one per id are then closed
 * (MQTT 5: DISCONNECT 0x8E Session taken over first [MQTT-3.1.4-3]), and
 * the one left per id works.  When they leave, the count is back to the
 * baseline. */
Test(storms, takeover_storm_leaves_one_connection_per_client_id_MQTT_3_1_4_3)
{
	enum { IDS = 10, ROUNDS = 30, N = IDS * ROUNDS, BASELINE = 3 };
	static struct contender k[N];
	static struct pollfd pfd[N];
	struct broker b;
	struct tc_witness w;
	struct tclient *watch;
	unsigned closed = 0, survivors[IDS] = {0};
	int64_t end;

	harness_ringmq_only("$SYS clients/connected counts ringmq's connections");
	broker_start(&b, "sys_interval 1\n");
	tc_witness_start(&w, &b, "takeover");
	watch = count_watcher(&b);
	for (unsigned i = 0; i < N; i++) {
		uint8_t version = (i / IDS) % 2 ? MQTT_V5 : MQTT_V311;
		char id[32];
		struct mqtt_packet p;

		snprintf(id, sizeof(id), "contested-%u", i % IDS);
		p = tc_connect_packet(version, id);
		p.connect.clean = (i / (2 * IDS)) % 2;
		if (version == MQTT_V5 && !p.connect.clean) {
			p.connect.props.present |= MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
			p.connect.props.session_expiry = 60;
		}
		k[i] = (struct contender){.c = tc_open(&b, version, id), .id = i % IDS, .disconnect = -1};
		(void)tc_send(k[i].c, &p);
	}
	for (end = harness_now_ms() + SETTLE_MS; closed < N - IDS;) {
		int64_t left = end - harness_now_ms();

		cr_assert(left > 0, "only %u of %u taken-over connections closed", closed, N - IDS);
		for (unsigned i = 0; i < N; i++)
			pfd[i] = (struct pollfd){.fd = k[i].closed ? -1 : k[i].c->fd, .events = POLLIN};
		if (poll(pfd, N, (int)left) <= 0)
			continue;
		for (unsigned i = 0; i < N; i++)
			if (pfd[i].revents) {
				contender_poll(&k[i]);
				closed += k[i].closed;
				if (k[i].closed)
					tc_close(k[i].c);
			}
	}
	tc_witness_check(&w);
	for (unsigned i = 0; i < N; i++) {
		if (k[i].closed) {
			cr_assert(k[i].connack, "contender %u: closed without CONNACK", i);
			if (i / IDS % 2)
				cr_assert_eq(k[i].disconnect, MQTT_RC_SESSION_TAKEN_OVER,
					     "contender %u: DISCONNECT %d", i, k[i].disconnect);
			continue;
		}
		survivors[k[i].id]++;
		if (!k[i].connack)
			(void)tc_expect(k[i].c, MQTT_CONNACK);
		{
			struct mqtt_packet ping = {.type = MQTT_PINGREQ};
			char topic[32];

			(void)tc_send(k[i].c, &ping);
			(void)tc_expect(k[i].c, MQTT_PINGRESP);
			snprintf(topic, sizeof(topic), "contested/%u", k[i].id);
			tc_subscribe(k[i].c, topic, 1);
			tc_publish(w.pub, topic, "to the survivor", 0, false);
			(void)tc_expect_publish(k[i].c, topic, "to the survivor", 0);
		}
	}
	for (unsigned id = 0; id < IDS; id++)
		cr_assert_eq(survivors[id], 1, "client id contested-%u has %u connections left", id, survivors[id]);
	for (unsigned i = 0; i < N; i++)
		if (!k[i].closed)
			tc_disconnect(k[i].c);
	wait_connected(watch, BASELINE);
	tc_disconnect(watch);
	tc_witness_stop(&w);
	broker_stop(&b);
}

/* The messages one session has seen, by number "mNNN". */
struct tally {
	bool seen[1000];
	unsigned sent, seen_count, deliveries;
};

/* Reads @cur until the take-over by @next closes it, acknowledging every
 * other PUBLISH (an acknowledgement may race the take-over: the message is
 * then resent); with @next NULL, until every message was seen,
 * acknowledging all. */
static void drain_session_connection(struct tclient *cur, const struct tclient *next, struct tally *t,
				     unsigned round)
{
	unsigned got = 0;

	for (int64_t end = harness_now_ms() + 3 * TC_WAIT_MS;;) {
		int64_t left = end - harness_now_ms();
		struct mqtt_packet p;
		unsigned idx;
		int rc;

		if (next == NULL && t->seen_count == t->sent)
			return;
		cr_assert(left > 0, "round %u: %s", round,
			  next ? "old connection not closed by the take-over" : "messages missing");
		rc = tc_recv(cur, (int)left, &p);
		if (rc == -ECONNRESET && next)
			return;
		cr_assert(rc == 0, "round %u: %s", round, rc == -ECONNRESET ? "closed" : "nothing");
		if (p.type == MQTT_DISCONNECT) {
			cr_assert_eq(p.disconnect.reason, MQTT_RC_SESSION_TAKEN_OVER);
			continue;
		}
		cr_assert(p.type == MQTT_PUBLISH && p.publish.payload.len == 4, "round %u: %s", round,
			  tc_describe(&p));
		idx = (unsigned)strtoul(tc_dup(p.publish.payload) + 1, NULL, 10);
		cr_assert(idx < t->sent, "round %u: unknown message %s", round, tc_describe(&p));
		t->deliveries++;
		t->seen_count += !t->seen[idx];
		t->seen[idx] = true;
		if (next == NULL || got++ % 2 == 0)
			tc_ack(cur, MQTT_PUBACK, p.publish.packet_id);
	}
}

/* A CONNECT resuming "hot-session" (Clean Session 0; MQTT 5 with a session
 * expiry), sent on a new connection without waiting for the answer. */
static struct tclient *resume_session(const struct broker *b, uint8_t version)
{
	struct mqtt_packet q = tc_connect_packet(version, "hot-session");
	struct tclient *c = tc_open(b, version, "hot-session");

	q.connect.clean = false;
	if (version == MQTT_V5) {
		q.connect.props.present |= MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
		q.connect.props.session_expiry = 300;
	}
	(void)tc_send(c, &q);
	return c;
}

/* A persistent session taken over forty times while a publisher sends it
 * QoS 1 messages: each take-over comes while the old connection holds
 * unacknowledged messages (half of what it receives is acknowledged), the
 * client versions alternate, and in the end every one of the 400
 * messages has reached some connection of the session at least once
 * (unacknowledged ones are resent on resume [MQTT-4.4.0-1]), every
 * CONNACK has Session Present 1 [MQTT-3.2.2-2], and the publisher got
 * all its PUBACKs. */
Test(storms, takeover_storm_keeps_persistent_session_messages_MQTT_4_4_0_1)
{
	enum { ROUNDS = 40, PER_ROUND = 10, TOTAL = ROUNDS * PER_ROUND };
	static struct tally t;
	struct broker b;
	struct tc_witness w;
	struct tclient *pub, *cur;
	struct mqtt_packet p, ack;

	broker_start(&b, "max_queued_messages 1000\n");
	tc_witness_start(&w, &b, "session");
	memset(&t, 0, sizeof(t));
	p = tc_connect_packet(MQTT_V311, "hot-session");
	tc_disconnect(tc_connect_with(&b, &p, &ack)); /* Clean Session 1: no session left from before */
	p.connect.clean = false;
	cur = tc_connect_with(&b, &p, &ack);
	cr_assert(ack.connack.reason == 0, "%s", tc_describe(&ack));
	tc_subscribe(cur, "hot/t", 1);
	pub = tc_connect(&b, MQTT_V311, "hot-pub", true);
	for (unsigned r = 0; r <= ROUNDS; r++) {
		struct tclient *next = NULL;

		for (unsigned i = 0; r < ROUNDS && i < PER_ROUND; i++) {
			char payload[16];

			snprintf(payload, sizeof(payload), "m%03u", t.sent++);
			(void)tc_publish_send(pub, "hot/t", payload, 1, false);
		}
		if (r < ROUNDS)
			next = resume_session(&b, r % 2 ? MQTT_V5 : MQTT_V311);
		drain_session_connection(cur, next, &t, r);
		tc_close(cur);
		if (next) {
			ack = tc_expect(next, MQTT_CONNACK);
			cr_assert(ack.connack.reason == 0 && ack.connack.session_present, "round %u: %s", r,
				  tc_describe(&ack));
			cur = next;
		}
		tc_witness_check(&w);
	}
	cr_log_info("%u messages, %u deliveries over %u connections", TOTAL, t.deliveries, ROUNDS + 1);
	for (unsigned acks = 0; acks < TOTAL; acks++)
		(void)tc_expect(pub, MQTT_PUBACK);
	tc_disconnect(pub);
	tc_witness_stop(&w);
	broker_stop(&b);
}
