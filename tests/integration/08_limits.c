/*
 * 08_limits.c - the configured limits of limits.h, seen from a client.
 *
 * Each test sets one directive low and drives a client to it: packet size
 * (both directions), connections, messages in flight to a client, the
 * CONNECT deadline, subscriptions per client, topic levels and client id
 * length.  connect_timeout, max_subscriptions_per_client,
 * max_topic_levels and max_client_id_length have no mosquitto equivalent,
 * so those tests are ringmq-only.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "tclient.h"

TestSuite(limits, .timeout = 60);

/* A payload of @len bytes ('p' repeated), NUL-terminated, static. */
static const char *payload_of(size_t len)
{
	static char buf[4096];

	cr_assert(len < sizeof(buf));
	memset(buf, 'p', len);
	buf[len] = '\0';
	return buf;
}

/* A packet over max_packet_size closes the connection; MQTT 5 gets
 * DISCONNECT 0x95 Packet too large first (3.2.2.3.6, 4.13).  Packets up to
 * the limit pass. */
Test(limits, packet_over_max_packet_size_closes_connection)
{
	struct broker b;

	broker_start(&b, "max_packet_size 1000\n");
	for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
		struct tclient *c = tc_connect(&b, version, "big", true);

		tc_subscribe(c, "big/t", 0);
		/* 2 + 5 topic, 1 + 2 fixed header, MQTT 5: 1 property length. */
		tc_publish(c, "big/t", payload_of(1000 - 10 - (version == MQTT_V5)), 0, false);
		(void)tc_expect(c, MQTT_PUBLISH);
		(void)tc_publish_send(c, "big/t", payload_of(2000), 0, false);
		tc_expect_disconnect(c, MQTT_RC_PACKET_TOO_LARGE);
		tc_close(c);
	}
	broker_stop(&b);
}

/* [MQTT-3.1.2-25] MQTT 5: the server never sends a packet over the
 * client's Maximum Packet Size; such a message is discarded for that
 * client only, and later ones still arrive. */
Test(limits, v5_message_over_client_maximum_packet_size_not_sent_MQTT_3_1_2_25)
{
	struct broker b;
	struct tclient *small, *big, *pub;
	struct mqtt_packet p = tc_connect_packet(MQTT_V5, "small"), ack;

	broker_start(&b, NULL);
	p.connect.props.present |= MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE);
	p.connect.props.max_packet_size = 100;
	small = tc_connect_with(&b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0);
	big = tc_connect(&b, MQTT_V5, "large", true);
	tc_subscribe(small, "mps/t", 0);
	tc_subscribe(big, "mps/t", 0);
	pub = tc_connect(&b, MQTT_V5, "mps-pub", true);
	tc_publish(pub, "mps/t", payload_of(200), 1, false);
	tc_publish(pub, "mps/t", "fits", 1, false);
	tc_expect_publish(big, "mps/t", payload_of(200), 0);
	tc_expect_publish(big, "mps/t", "fits", 0);
	tc_expect_publish(small, "mps/t", "fits", 0);
	tc_disconnect(small);
	tc_disconnect(big);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* max_connections 3: a fourth connection is closed without being served;
 * when one of the three leaves, a new one is accepted again. */
Test(limits, max_connections_refuses_excess_connections)
{
	struct broker b;
	struct tclient *c[3], *extra;
	struct mqtt_packet p = tc_connect_packet(MQTT_V311, "fourth"), ack;
	int64_t deadline;
	bool accepted = false;

	broker_start(&b, "max_connections 3\n");
	for (int i = 0; i < 3; i++) {
		char id[16];

		snprintf(id, sizeof(id), "conn%d", i);
		c[i] = tc_connect(&b, MQTT_V311, id, true);
	}
	extra = tc_open(&b, MQTT_V311, "fourth");
	(void)tc_send(extra, &p);
	cr_assert(tc_closed(extra, TC_WAIT_MS), "a fourth connection was served with max_connections 3");
	tc_close(extra);

	tc_disconnect(c[0]);
	/* The slot frees when the broker has seen the close; retry until then
	 * (each try waits for the broker's answer, no sleeping). */
	deadline = harness_now_ms() + TC_WAIT_MS;
	while (!accepted && harness_now_ms() < deadline) {
		extra = tc_open(&b, MQTT_V311, "fourth");
		(void)tc_send(extra, &p);
		if (tc_recv(extra, TC_WAIT_MS, &ack) == 0 && ack.type == MQTT_CONNACK && ack.connack.reason == 0)
			accepted = true;
		else
			tc_close(extra);
	}
	cr_assert(accepted, "no connection accepted after one of three left");
	tc_disconnect(extra);
	tc_disconnect(c[1]);
	tc_disconnect(c[2]);
	broker_stop(&b);
}

/* max_inflight_messages 2: at most two unacknowledged QoS 1 messages are
 * out to a client at once; each PUBACK lets one more through, in order. */
Test(limits, max_inflight_messages_bounds_unacked_deliveries)
{
	enum { N = 5 };
	struct broker b;
	struct tclient *sub, *pub;
	uint16_t ids[N];

	harness_mosquitto_deviates("not a spec item: mosquitto 2.0.11 sends two queued messages per PUBACK, "
				   "so three are in flight with max_inflight_messages 2");
	broker_start(&b, "max_inflight_messages 2\n");
	sub = tc_connect(&b, MQTT_V311, "slow", true);
	tc_subscribe(sub, "inf/t", 1);
	pub = tc_connect(&b, MQTT_V311, "fast", true);
	for (int i = 0; i < N; i++) {
		char payload[16];

		snprintf(payload, sizeof(payload), "m%d", i);
		tc_publish(pub, "inf/t", payload, 1, false);
	}
	for (int i = 0; i < N; i++) {
		char payload[16];
		struct mqtt_packet p;

		snprintf(payload, sizeof(payload), "m%d", i);
		p = tc_expect_publish(sub, "inf/t", payload, 1);
		ids[i] = p.publish.packet_id;
		if (i >= 1) {
			/* Two in flight (i-1, i): nothing more until an ack. */
			tc_expect_nothing(sub, TC_QUIET_MS);
			tc_ack(sub, MQTT_PUBACK, ids[i - 1]);
		}
	}
	tc_ack(sub, MQTT_PUBACK, ids[N - 1]);
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_disconnect(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* connect_timeout 1: a connection that sends no CONNECT, or only part of
 * one, is closed after about a second. */
Test(limits, connect_timeout_closes_silent_and_partial_connections)
{
	static const uint8_t partial[] = {0x10, 0x10, 0x00, 0x04, 'M'};
	struct broker b;

	harness_ringmq_only("connect_timeout has no mosquitto equivalent");
	broker_start(&b, "connect_timeout 1\n");
	for (int i = 0; i < 2; i++) {
		struct tclient *c = tc_open(&b, MQTT_V311, i ? "partial" : "silent");
		int64_t start = harness_now_ms(), ms;

		if (i)
			(void)tc_send_raw(c, partial, sizeof(partial));
		cr_assert(tc_closed(c, 1000 + TC_WAIT_MS), "%s connection not closed", c->name);
		ms = harness_now_ms() - start;
		cr_assert_geq(ms, 900, "%s connection closed after %lld ms, connect_timeout is 1 s", c->name,
			      (long long)ms);
		tc_close(c);
	}
	broker_stop(&b);
}

/* max_subscriptions_per_client 4: the fifth filter is refused in SUBACK
 * (0x80 in 3.1.1, 0x97 Quota exceeded in MQTT 5); replacing an existing
 * filter is not a new subscription, and unsubscribing frees a place. */
Test(limits, max_subscriptions_per_client_refuses_the_fifth)
{
	struct broker b;

	harness_ringmq_only("max_subscriptions_per_client has no mosquitto equivalent");
	broker_start(&b, "max_subscriptions_per_client 4\n");
	for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
		struct tclient *c = tc_connect(&b, version, "collector", true);
		uint8_t refused = version == MQTT_V5 ? MQTT_RC_QUOTA_EXCEEDED : 0x80;

		tc_subscribe(c, "s/1", 1);
		tc_subscribe(c, "s/2", 1);
		tc_subscribe(c, "s/3", 1);
		tc_subscribe(c, "s/+", 1);
		cr_assert_eq(tc_subscribe_opts(c, "s/5", 1), refused, "v%u: fifth subscription", version);
		tc_subscribe(c, "s/1", 0);
		(void)tc_unsubscribe(c, "s/2");
		tc_subscribe(c, "s/5", 1);
		tc_disconnect(c);
	}
	broker_stop(&b);
}

/* max_topic_levels 8: a filter of nine levels is refused in SUBACK
 * (0x80 / 0x8F); a topic name of nine levels closes a 3.1.1 connection,
 * and an MQTT 5 one gets 0x90 Topic Name invalid (in PUBACK or DISCONNECT).
 * Eight levels work. */
Test(limits, max_topic_levels_refuses_deeper_topics_and_filters)
{
	static const char eight[] = "1/2/3/4/5/6/7/8", nine[] = "1/2/3/4/5/6/7/8/9";
	struct broker b;

	harness_ringmq_only("max_topic_levels has no mosquitto equivalent");
	broker_start(&b, "max_topic_levels 8\n");
	for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
		struct tclient *c = tc_connect(&b, version, "deep", true);
		struct mqtt_packet p;
		int r;

		tc_subscribe(c, eight, 0);
		cr_assert_eq(tc_subscribe_opts(c, nine, 0), version == MQTT_V5 ? MQTT_RC_TOPIC_FILTER_INVALID : 0x80,
			     "v%u: nine-level filter", version);
		/* QoS 0 to itself: no PUBACK to race the delivery. */
		tc_publish(c, eight, "ok", 0, false);
		(void)tc_expect_publish(c, eight, "ok", 0);
		(void)tc_publish_send(c, nine, "deep", 1, false);
		r = tc_recv(c, TC_WAIT_MS, &p);
		if (version == MQTT_V5 && r == 0 && p.type == MQTT_PUBACK) {
			cr_assert_eq(p.ack.reason, MQTT_RC_TOPIC_NAME_INVALID, "%s", tc_describe(&p));
		} else if (version == MQTT_V5) {
			cr_assert(r == 0 && p.type == MQTT_DISCONNECT &&
					  p.disconnect.reason == MQTT_RC_TOPIC_NAME_INVALID,
				  "nine-level topic: %s", r == 0 ? tc_describe(&p) : "no PUBACK or DISCONNECT");
			tc_expect_closed(c);
		} else {
			cr_assert_eq(r, -ECONNRESET, "3.1.1 connection not closed after a nine-level topic");
		}
		tc_close(c);
	}
	broker_stop(&b);
}

/* max_client_id_length 23: 23 bytes are accepted, 24 refused with CONNACK
 * 0x02 (3.1.1) / 0x85 Client Identifier not valid (5) [MQTT-3.1.3-5
 * allows longer ids, a server may refuse them]. */
Test(limits, max_client_id_length_refuses_longer_ids)
{
	static const char id23[] = "abcdefghijklmnopqrstuvw", id24[] = "abcdefghijklmnopqrstuvwx";
	struct broker b;

	harness_ringmq_only("max_client_id_length has no mosquitto equivalent");
	broker_start(&b, "max_client_id_length 23\n");
	for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
		struct mqtt_packet p = tc_connect_packet(version, id24);
		struct tclient *c = tc_connect(&b, version, id23, true);

		tc_disconnect(c);
		c = tc_open(&b, version, id24);
		(void)tc_send(c, &p);
		tc_expect_refused(c, version == MQTT_V5 ? MQTT_RC_CLIENT_ID_INVALID : MQTT_V3_ID_REJECTED, true);
		tc_close(c);
	}
	broker_stop(&b);
}

/* max_sessions 3: three persistent 3.1.1 sessions kept for offline clients
 * fill it; a CONNECT that would make a fourth is refused (3.1.1: CONNACK 3
 * Server unavailable, MQTT 5: 0x97 Quota exceeded) while the kept sessions'
 * clients get back in.  Once one session ends, a new client id is accepted. */
Test(limits, max_sessions_refuses_a_new_session_and_keeps_the_old)
{
	struct mqtt_packet p, ack;
	struct tclient *c;
	struct broker b;

	harness_ringmq_only("max_sessions has no mosquitto equivalent");
	broker_start(&b, "max_sessions 3\n");
	for (int i = 0; i < 3; i++) {
		char id[16];

		snprintf(id, sizeof(id), "kept-%d", i);
		tc_disconnect(tc_connect(&b, MQTT_V311, id, false));
	}
	p = tc_connect_packet(MQTT_V311, "newcomer");
	c = tc_connect_with(&b, &p, &ack);
	cr_assert_eq(ack.connack.reason, MQTT_V3_SERVER_UNAVAILABLE, "3.1.1: %s", tc_describe(&ack));
	tc_close(c);
	p = tc_connect_packet(MQTT_V5, "newcomer-5");
	c = tc_connect_with(&b, &p, &ack);
	cr_assert_eq(ack.connack.reason, MQTT_RC_QUOTA_EXCEEDED, "5: %s", tc_describe(&ack));
	tc_close(c);
	cr_assert(broker_log_wait(&b, "refused: max_sessions reached", 2000));
	c = tc_connect(&b, MQTT_V311, "kept-0", false); /* a kept session is not a new one */
	tc_disconnect(c);
	c = tc_connect(&b, MQTT_V311, "kept-1", true); /* Clean Session 1: ends with the connection */
	tc_disconnect(c);
	cr_assert(broker_log_wait(&b, "[client kept-1] disconnected", 2000));
	c = tc_connect(&b, MQTT_V311, "newcomer", true);
	tc_disconnect(c);
	broker_stop(&b);
}
