/*
 * 06_session.c - persistent sessions: queueing while offline, resuming,
 * discarding, redelivery of messages in flight and the queue bound.
 *
 * A session lives on its client id's home shard while the publisher is
 * usually on another, so a message may be in a cross-shard ring while the
 * subscriber reconnects.  The tests therefore never assume a message was
 * queued rather than sent to a connection that was about to go away: a
 * message that reached the old connection unacknowledged comes back with
 * DUP 1, so payloads are checked and DUP only where the test controls it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "tclient.h"

TestSuite(session, .timeout = 60);

/* Connect @id with Clean Session/Start 0 (MQTT 5: Session Expiry 300 s) and
 * check CONNACK's Session Present against @present. */
static struct tclient *resume(const struct broker *b, uint8_t version, const char *id, bool present)
{
	struct mqtt_packet p = tc_connect_packet(version, id), ack;
	struct tclient *c;

	p.connect.clean = false;
	if (version == MQTT_V5) {
		p.connect.props.present |= MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
		p.connect.props.session_expiry = 300;
	}
	c = tc_connect_with(b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0, "%s", tc_describe(&ack));
	cr_assert_eq(ack.connack.session_present, present, "%s: Session Present %d, expected %d [MQTT-3.2.2-2/3]",
		     id, ack.connack.session_present, present);
	return c;
}

/* [MQTT-3.1.2-4] the session (subscriptions, queued QoS 1/2 messages) is
 * kept across the disconnect, [MQTT-3.2.2-2] Session Present is 1 on
 * resume, and the queued messages arrive in order [MQTT-4.6.0-6]. */
static void offline_queue(uint8_t version)
{
	static const uint8_t qos[] = {1, 2, 1};
	static const char *const payloads[] = {"m0", "m1", "m2"};
	struct broker b;
	struct tclient *s, *pub;

	broker_start(&b, "persistent_client_expiration 1h\n");
	s = resume(&b, version, "offline", false);
	tc_subscribe(s, "off/t", 2);
	tc_disconnect(s);
	pub = tc_connect(&b, version, "off-pub", true);
	for (int i = 0; i < 3; i++)
		tc_publish(pub, "off/t", payloads[i], qos[i], false);
	s = resume(&b, version, "offline", true);
	tc_receive_many(s, "off/t", payloads, qos, 3);
	tc_expect_nothing(s, TC_QUIET_MS);
	tc_disconnect(s);
	tc_disconnect(pub);
	broker_stop(&b);
}

Test(session, messages_queued_while_offline_delivered_on_resume_311_MQTT_3_1_2_4)
{
	offline_queue(MQTT_V311);
}

Test(session, messages_queued_while_offline_delivered_on_resume_v5_MQTT_3_1_2_4)
{
	offline_queue(MQTT_V5);
}

/* [MQTT-3.1.2-6] Clean Session 1 discards the old session (Session Present
 * 0, no subscription) and its own session ends with the connection, so a
 * later Clean Session 0 connect finds none either. */
Test(session, clean_session_discards_state_MQTT_3_1_2_6)
{
	struct broker b;
	struct tclient *s, *pub;

	broker_start(&b, NULL);
	s = resume(&b, MQTT_V311, "cleaner", false);
	tc_subscribe(s, "clean/t", 1);
	tc_disconnect(s);
	s = tc_connect(&b, MQTT_V311, "cleaner", true); /* checks Session Present 0 too */
	pub = tc_connect(&b, MQTT_V311, "clean-pub", true);
	tc_publish(pub, "clean/t", "lost", 1, false);
	tc_expect_nothing(s, TC_QUIET_MS);
	tc_disconnect(s);
	s = resume(&b, MQTT_V311, "cleaner", false);
	tc_publish(pub, "clean/t", "lost", 1, false);
	tc_expect_nothing(s, TC_QUIET_MS);
	tc_disconnect(s);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* MQTT 5: without Session Expiry Interval (0) the session ends when the
 * connection closes, even with Clean Start 0 (3.1.2.11.2). */
Test(session, v5_session_expiry_0_ends_session_at_disconnect)
{
	struct broker b;
	struct tclient *s;
	struct mqtt_packet p = tc_connect_packet(MQTT_V5, "noexpiry"), ack;

	broker_start(&b, NULL);
	p.connect.clean = false;
	s = tc_connect_with(&b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0);
	tc_subscribe(s, "noexp/t", 1);
	tc_disconnect(s);
	s = tc_connect_with(&b, &p, &ack);
	cr_assert(!ack.connack.session_present, "session outlived a Session Expiry Interval of 0");
	tc_disconnect(s);
	broker_stop(&b);
}

/* [MQTT-4.4.0-1] On resume the server resends unacknowledged PUBLISH
 * packets with their original packet ids and [MQTT-3.3.1-1] DUP 1. */
static void resend_publish(uint8_t version)
{
	struct broker b;
	struct tclient *s, *pub;
	struct mqtt_packet p;
	uint16_t id;

	broker_start(&b, NULL);
	s = resume(&b, version, "unacked", false);
	tc_subscribe(s, "un/t", 1);
	pub = tc_connect(&b, version, "un-pub", true);
	tc_publish(pub, "un/t", "again", 1, false);
	p = tc_expect_publish(s, "un/t", "again", 1);
	id = p.publish.packet_id;
	tc_close(s); /* no PUBACK, no DISCONNECT */
	s = resume(&b, version, "unacked", true);
	p = tc_expect_publish(s, "un/t", "again", 1);
	cr_assert(p.publish.dup, "redelivery without DUP [MQTT-3.3.1-1]");
	cr_assert_eq(p.publish.packet_id, id, "redelivery with id %u, original %u [MQTT-4.4.0-1]",
		     p.publish.packet_id, id);
	tc_ack(s, MQTT_PUBACK, id);
	tc_expect_nothing(s, TC_QUIET_MS);
	tc_disconnect(s);
	tc_disconnect(pub);
	broker_stop(&b);
}

Test(session, unacked_publish_resent_with_dup_on_resume_311_MQTT_4_4_0_1)
{
	resend_publish(MQTT_V311);
}

Test(session, unacked_publish_resent_with_dup_on_resume_v5_MQTT_4_4_0_1)
{
	resend_publish(MQTT_V5);
}

/* [MQTT-4.4.0-1] A QoS 2 delivery that got PUBREC but no PUBCOMP resumes
 * with PUBREL, not with the PUBLISH again. */
Test(session, unacked_pubrel_resent_on_resume_MQTT_4_4_0_1)
{
	struct broker b;
	struct tclient *s, *pub;
	struct mqtt_packet p;
	uint16_t id;

	broker_start(&b, NULL);
	s = resume(&b, MQTT_V311, "halfway", false);
	tc_subscribe(s, "half/t", 2);
	pub = tc_connect(&b, MQTT_V311, "half-pub", true);
	tc_publish(pub, "half/t", "q2", 2, false);
	p = tc_expect_publish(s, "half/t", "q2", 2);
	id = p.publish.packet_id;
	tc_ack(s, MQTT_PUBREC, id);
	p = tc_expect(s, MQTT_PUBREL);
	cr_assert_eq(p.ack.packet_id, id);
	tc_close(s); /* no PUBCOMP */
	s = resume(&b, MQTT_V311, "halfway", true);
	p = tc_expect(s, MQTT_PUBREL);
	cr_assert_eq(p.ack.packet_id, id, "PUBREL resent with id %u, original %u", p.ack.packet_id, id);
	tc_ack(s, MQTT_PUBCOMP, id);
	tc_expect_nothing(s, TC_QUIET_MS);
	tc_disconnect(s);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* [MQTT-4.3.3-2 receiver side, MQTT-4.4.0-1] The server keeps the packet
 * id of a QoS 2 PUBLISH it acknowledged with PUBREC across a reconnect: the
 * resumed client's PUBREL gets PUBCOMP and the message is delivered once. */
Test(session, inbound_qos2_state_survives_reconnect_MQTT_4_3_3_2)
{
	struct broker b;
	struct tclient *s, *sub;
	struct mqtt_packet p;
	uint16_t id;

	broker_start(&b, NULL);
	sub = tc_connect(&b, MQTT_V311, "in2-sub", true);
	tc_subscribe(sub, "in2/t", 0);
	s = resume(&b, MQTT_V311, "in2-pub", false);
	id = tc_publish_send(s, "in2/t", "one", 2, false);
	p = tc_expect(s, MQTT_PUBREC);
	cr_assert_eq(p.ack.packet_id, id);
	tc_close(s); /* no PUBREL yet */
	s = resume(&b, MQTT_V311, "in2-pub", true);
	tc_ack(s, MQTT_PUBREL, id);
	p = tc_expect(s, MQTT_PUBCOMP);
	cr_assert_eq(p.ack.packet_id, id);
	tc_expect_publish(sub, "in2/t", "one", 0);
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_disconnect(s);
	tc_disconnect(sub);
	broker_stop(&b);
}

/* max_queued_messages bounds an offline session's queue: of 12 messages
 * the oldest are kept, the rest dropped (limits.h QUEUED_MESSAGES).  The
 * bound applies beyond the inflight window, so 5 to 5 + 2 arrive, in
 * order, and the session still works afterwards. */
/* A client id whose home shard is @id's: ringmq homes a client id at
 * FNV-1a(id) mod shards.  Messages of a publisher homed on the subscriber's
 * shard are queued before its PUBACK, so a later reconnect cannot overtake
 * them through another shard's ring (which the broker does not order). */
static void same_home_id(const char *id, const char *prefix, char *out, size_t cap)
{
	unsigned n = harness_shards();
	uint64_t want = 1469598103934665603ull;

	for (const char *p = id; *p; p++)
		want = (want ^ (uint8_t)*p) * 1099511628211ull;
	for (unsigned i = 0;; i++) {
		uint64_t h = 1469598103934665603ull;
		snprintf(out, cap, "%s-%u", prefix, i);
		for (const char *p = out; *p; p++)
			h = (h ^ (uint8_t)*p) * 1099511628211ull;
		if (h % n == want % n)
			return;
	}
}

Test(session, offline_queue_bounded_by_max_queued_messages)
{
	char pub_id[32];
	enum { SENT = 12, QUEUED = 5, INFLIGHT = 2 };
	struct broker b;
	struct tclient *s, *pub;
	struct mqtt_packet p;
	int got = 0;

	broker_start(&b, "max_queued_messages 5\nmax_inflight_messages 2\n");
	s = resume(&b, MQTT_V311, "bounded", false);
	tc_subscribe(s, "bound/t", 1);
	tc_disconnect(s);
	same_home_id("bounded", "bound-pub", pub_id, sizeof(pub_id));
	pub = tc_connect(&b, MQTT_V311, pub_id, true);
	for (int i = 0; i < SENT; i++) {
		char payload[16];

		snprintf(payload, sizeof(payload), "m%d", i);
		tc_publish(pub, "bound/t", payload, 1, false);
	}
	s = resume(&b, MQTT_V311, "bounded", true);
	while (tc_recv(s, got < QUEUED ? TC_WAIT_MS : TC_QUIET_MS, &p) == 0) {
		char payload[16];

		snprintf(payload, sizeof(payload), "m%d", got);
		cr_assert(p.type == MQTT_PUBLISH && tc_str_eq(p.publish.payload, payload),
			  "message %d: expected '%s', got %s", got, payload, tc_describe(&p));
		tc_ack(s, MQTT_PUBACK, p.publish.packet_id);
		got++;
	}
	cr_assert(got >= QUEUED && got <= QUEUED + INFLIGHT, "%d of %d messages kept, expected %d to %d", got, SENT,
		  QUEUED, QUEUED + INFLIGHT);
	tc_publish(pub, "bound/t", "after", 1, false);
	tc_receive_qos(s, "bound/t", "after", 1);
	tc_disconnect(s);
	tc_disconnect(pub);
	broker_stop(&b);
}
