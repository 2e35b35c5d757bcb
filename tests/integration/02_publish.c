/*
 * 02_publish.c - PUBLISH end to end and the QoS 1 / QoS 2 handshakes.
 *
 * Every QoS is checked in both directions (client -> broker and broker ->
 * client) for 3.1.1 and 5, with each acknowledgement checked explicitly:
 * the test client never acks on its own.  Also: QoS downgrade to the
 * subscription's QoS, exactly-once delivery when a QoS 2 publisher resends
 * before PUBREL, packet identifiers of messages in flight, wildcards in a
 * topic name, and mixing protocol versions.  Publisher and subscriber are
 * separate connections with different client ids, so with several shards
 * they usually live on different shards.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "tclient.h"

TestSuite(publish, .timeout = 60);

/* Subscriber at @qos, publisher at @qos; both handshakes checked step by
 * step [MQTT-4.3.1-1], [MQTT-4.3.2-1/2], [MQTT-4.3.3-1/2]. */
static void round_trip(uint8_t version, uint8_t qos)
{
	struct broker b;
	struct tclient *sub, *pub;
	struct mqtt_packet p;
	uint16_t id;

	broker_start(&b, NULL);
	sub = tc_connect(&b, version, "rt-sub", true);
	pub = tc_connect(&b, version, "rt-pub", true);
	tc_subscribe(sub, "rt/topic", qos);

	/* Client -> broker. */
	id = tc_publish_send(pub, "rt/topic", "hello", qos, false);
	if (qos == 1) {
		p = tc_expect(pub, MQTT_PUBACK);
		cr_assert_eq(p.ack.packet_id, id, "PUBACK for another packet id [MQTT-2.3.1-6]");
	} else if (qos == 2) {
		p = tc_expect(pub, MQTT_PUBREC);
		cr_assert_eq(p.ack.packet_id, id, "PUBREC for another packet id [MQTT-2.3.1-6]");
		tc_ack(pub, MQTT_PUBREL, id);
		p = tc_expect(pub, MQTT_PUBCOMP);
		cr_assert_eq(p.ack.packet_id, id, "PUBCOMP for another packet id");
	}

	/* Broker -> client. */
	p = tc_expect_publish(sub, "rt/topic", "hello", qos);
	cr_assert(!p.publish.dup, "first delivery with DUP set [MQTT-3.3.1-2]");
	cr_assert(!p.publish.retain, "live delivery with RETAIN set [MQTT-3.3.1-9]");
	id = p.publish.packet_id;
	if (qos == 1) {
		tc_ack(sub, MQTT_PUBACK, id);
	} else if (qos == 2) {
		tc_ack(sub, MQTT_PUBREC, id);
		p = tc_expect(sub, MQTT_PUBREL);
		cr_assert_eq(p.ack.packet_id, id, "PUBREL for another packet id [MQTT-4.3.3-4]");
		tc_ack(sub, MQTT_PUBCOMP, id);
	}
	/* Acknowledged: nothing is sent again. */
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_expect_nothing(pub, 0);
	tc_disconnect(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}

Test(publish, qos0_end_to_end_311)
{
	round_trip(MQTT_V311, 0);
}

Test(publish, qos1_puback_both_directions_311_MQTT_4_3_2_2)
{
	round_trip(MQTT_V311, 1);
}

Test(publish, qos2_pubrec_pubrel_pubcomp_both_directions_311_MQTT_4_3_3_2)
{
	round_trip(MQTT_V311, 2);
}

Test(publish, qos0_end_to_end_v5)
{
	round_trip(MQTT_V5, 0);
}

Test(publish, qos1_puback_both_directions_v5_MQTT_4_3_2_2)
{
	round_trip(MQTT_V5, 1);
}

Test(publish, qos2_pubrec_pubrel_pubcomp_both_directions_v5_MQTT_4_3_3_2)
{
	round_trip(MQTT_V5, 2);
}

/* [MQTT-3.8.4-6] (3.1.1; MQTT-3.8.4-8 in 5) the delivered QoS is the
 * minimum of the published QoS and the granted QoS: never upgraded. */
Test(publish, delivered_qos_is_min_of_publish_and_subscription_MQTT_3_8_4_6)
{
	struct broker b;
	struct tclient *pub, *sub[3];

	broker_start(&b, NULL);
	pub = tc_connect(&b, MQTT_V311, "dg-pub", true);
	for (uint8_t q = 0; q < 3; q++) {
		char id[16];

		snprintf(id, sizeof(id), "dg-sub%u", q);
		sub[q] = tc_connect(&b, MQTT_V311, id, true);
		tc_subscribe(sub[q], "dg/t", q);
	}
	for (uint8_t pq = 0; pq < 3; pq++) {
		char payload[16];

		snprintf(payload, sizeof(payload), "pub-qos%u", pq);
		tc_publish(pub, "dg/t", payload, pq, false);
		for (uint8_t sq = 0; sq < 3; sq++)
			tc_receive_qos(sub[sq], "dg/t", payload, pq < sq ? pq : sq);
	}
	for (uint8_t q = 0; q < 3; q++) {
		tc_expect_nothing(sub[q], q == 0 ? TC_QUIET_MS : 0);
		tc_disconnect(sub[q]);
	}
	tc_disconnect(pub);
	broker_stop(&b);
}

/* [MQTT-4.3.3-2] QoS 2 is exactly once: a publisher that resends the
 * PUBLISH with DUP before sending PUBREL gets PUBREC again, and the
 * subscriber still gets one copy (4.3.3 method A or B alike). */
static void qos2_resend(uint8_t version)
{
	struct broker b;
	struct tclient *sub, *pub;
	struct mqtt_packet p, again;

	broker_start(&b, NULL);
	sub = tc_connect(&b, version, "x2-sub", true);
	pub = tc_connect(&b, version, "x2-pub", true);
	tc_subscribe(sub, "x2/t", 2);

	p = tc_publish_packet(pub, "x2/t", "once", 2, false);
	(void)tc_send(pub, &p);
	again = tc_expect(pub, MQTT_PUBREC);
	cr_assert_eq(again.ack.packet_id, p.publish.packet_id);
	p.publish.dup = true;
	(void)tc_send(pub, &p);
	again = tc_expect(pub, MQTT_PUBREC);
	cr_assert_eq(again.ack.packet_id, p.publish.packet_id, "no PUBREC for the resent PUBLISH");
	tc_ack(pub, MQTT_PUBREL, p.publish.packet_id);
	again = tc_expect(pub, MQTT_PUBCOMP);
	cr_assert_eq(again.ack.packet_id, p.publish.packet_id);

	tc_receive_qos(sub, "x2/t", "once", 2);
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_disconnect(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}

Test(publish, qos2_resent_before_pubrel_delivered_exactly_once_311_MQTT_4_3_3_2)
{
	qos2_resend(MQTT_V311);
}

Test(publish, qos2_resent_before_pubrel_delivered_exactly_once_v5_MQTT_4_3_3_2)
{
	qos2_resend(MQTT_V5);
}

/* [MQTT-3.3.2-2] A topic name must not contain wildcards: the connection is
 * closed.  MQTT 5 names no single reason code for it: 0x90 Topic Name
 * invalid (ringmq), 0x82 Protocol Error (mosquitto) and 0x81 Malformed
 * Packet all fit section 4.13. */
Test(publish, wildcard_in_topic_name_closes_connection_MQTT_3_3_2_2)
{
	static const char *const topics[] = {"a/+", "a/#", "+"};
	static const uint8_t reasons[] = {MQTT_RC_TOPIC_NAME_INVALID, MQTT_RC_PROTOCOL_ERROR, MQTT_RC_MALFORMED};
	struct broker b;

	broker_start(&b, NULL);
	for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++)
		for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
			struct tclient *c = tc_connect(&b, version, "wild-pub", true);
			struct tc_bytes w = {.len = 0};

			tc_put_str(&w, topics[i]);
			if (version == MQTT_V5)
				tc_put_varint(&w, 0);
			tc_put_raw(&w, "x", 1);
			(void)tc_send_frame(c, MQTT_PUBLISH << 4, &w);
			tc_expect_disconnect_any(c, reasons, 3);
			tc_close(c);
		}
	broker_stop(&b);
}

/* [MQTT-2.3.1-1] QoS > 0 PUBLISH packets carry a non-zero packet id, and
 * [MQTT-2.3.1-2] ids of unacknowledged packets are unique; [MQTT-4.6.0-6]
 * one topic's messages arrive in order. */
Test(publish, packet_ids_nonzero_and_unique_in_flight_MQTT_2_3_1_2)
{
	enum { N = 10 };
	struct broker b;
	struct tclient *sub, *pub;
	uint16_t ids[N];

	broker_start(&b, NULL);
	sub = tc_connect(&b, MQTT_V311, "id-sub", true);
	pub = tc_connect(&b, MQTT_V311, "id-pub", true);
	tc_subscribe(sub, "id/t", 1);
	for (int i = 0; i < N; i++) {
		char payload[16];

		snprintf(payload, sizeof(payload), "m%d", i);
		tc_publish(pub, "id/t", payload, 1, false);
	}
	for (int i = 0; i < N; i++) {
		char payload[16];
		struct mqtt_packet p;

		snprintf(payload, sizeof(payload), "m%d", i);
		p = tc_expect_publish(sub, "id/t", payload, 1);
		ids[i] = p.publish.packet_id;
		for (int j = 0; j < i; j++)
			cr_assert_neq(ids[j], ids[i], "packet id %u used twice while in flight", ids[i]);
	}
	for (int i = 0; i < N; i++)
		tc_ack(sub, MQTT_PUBACK, ids[i]);
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_disconnect(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* MQTT 5 (3.4.2.1): with no matching subscriber, PUBACK carries 0x00 or
 * 0x10 No matching subscribers (the server MAY use it); PUBREC likewise. */
Test(publish, v5_no_subscribers_puback_reason_0_or_0x10)
{
	struct broker b;
	struct tclient *pub;
	struct mqtt_packet p;
	uint16_t id;

	broker_start(&b, NULL);
	pub = tc_connect(&b, MQTT_V5, "nosub-pub", true);
	id = tc_publish_send(pub, "nobody/listens", "x", 1, false);
	p = tc_expect(pub, MQTT_PUBACK);
	cr_assert_eq(p.ack.packet_id, id);
	cr_assert(p.ack.reason == 0 || p.ack.reason == MQTT_RC_NO_MATCHING_SUBSCRIBERS, "%s", tc_describe(&p));
	id = tc_publish_send(pub, "nobody/listens", "x", 2, false);
	p = tc_expect(pub, MQTT_PUBREC);
	cr_assert_eq(p.ack.packet_id, id);
	cr_assert(p.ack.reason == 0 || p.ack.reason == MQTT_RC_NO_MATCHING_SUBSCRIBERS, "%s", tc_describe(&p));
	tc_ack(pub, MQTT_PUBREL, id);
	p = tc_expect(pub, MQTT_PUBCOMP);
	cr_assert_eq(p.ack.packet_id, id);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* Messages cross protocol versions: 3.1 -> 5, 5 -> 3.1.1, 3.1.1 -> 3.1. */
Test(publish, messages_cross_protocol_versions)
{
	static const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};
	struct broker b;
	struct tclient *c[3];

	broker_start(&b, NULL);
	for (int i = 0; i < 3; i++) {
		char id[16];

		snprintf(id, sizeof(id), "xv%d", i);
		c[i] = tc_connect(&b, versions[i], id, true);
		tc_subscribe(c[i], id, 1);
	}
	for (int i = 0; i < 3; i++) {
		char to[16];

		snprintf(to, sizeof(to), "xv%d", (i + 1) % 3);
		tc_publish(c[i], to, "cross", 1, false);
		tc_receive_qos(c[(i + 1) % 3], to, "cross", 1);
	}
	for (int i = 0; i < 3; i++)
		tc_disconnect(c[i]);
	broker_stop(&b);
}

/* A zero-length payload is a valid message (3.3.3) and arrives as such. */
Test(publish, empty_payload_delivered)
{
	struct broker b;
	struct tclient *sub, *pub;

	broker_start(&b, NULL);
	sub = tc_connect(&b, MQTT_V311, "empty-sub", true);
	pub = tc_connect(&b, MQTT_V311, "empty-pub", true);
	tc_subscribe(sub, "empty/t", 1);
	tc_publish(pub, "empty/t", "", 1, false);
	tc_receive_qos(sub, "empty/t", "", 1);
	tc_disconnect(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}
