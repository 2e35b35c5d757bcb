/*
 * 09_takeover.c - a client id connecting while already connected.
 *
 * [MQTT-3.1.4-2] (3.1.1) / [MQTT-3.1.4-3] (5): the broker closes the
 * existing connection (MQTT 5: after DISCONNECT 0x8E Session taken over)
 * and the new one carries on with the session.  ringmq hashes the client id
 * to a home shard, but the two connections may be accepted by any shards,
 * so the many-ids test makes old and new connection land on different
 * shards for some ids whatever the kernel's SO_REUSEPORT spreading does.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "harness.h"
#include "tclient.h"

TestSuite(takeover, .timeout = 60);

static struct tclient *connect_session(const struct broker *b, uint8_t version, const char *id, bool present)
{
	struct mqtt_packet p = tc_connect_packet(version, id), ack;
	struct tclient *c;

	p.connect.clean = false;
	if (version == MQTT_V5) {
		p.connect.props.present |= MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
		p.connect.props.session_expiry = 300;
	}
	c = tc_connect_with(b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0, "%s: %s", id, tc_describe(&ack));
	cr_assert_eq(ack.connack.session_present, present, "%s: Session Present %d, expected %d", id,
		     ack.connack.session_present, present);
	return c;
}

/* Old connection closed (MQTT 5: DISCONNECT 0x8E first), new connection
 * gets Session Present 1 and the subscription keeps delivering. */
static void takeover(uint8_t version)
{
	struct broker b;
	struct tclient *old, *neu, *pub;

	broker_start(&b, NULL);
	old = connect_session(&b, version, "dup-id", false);
	tc_subscribe(old, "tk/t", 1);
	neu = connect_session(&b, version, "dup-id", true);
	tc_expect_disconnect(old, MQTT_RC_SESSION_TAKEN_OVER);
	tc_close(old);
	pub = tc_connect(&b, version, "tk-pub", true);
	tc_publish(pub, "tk/t", "to the new one", 1, false);
	tc_receive_qos(neu, "tk/t", "to the new one", 1);
	tc_disconnect(neu);
	tc_disconnect(pub);
	broker_stop(&b);
}

Test(takeover, existing_connection_closed_new_one_keeps_session_311_MQTT_3_1_4_2)
{
	takeover(MQTT_V311);
}

Test(takeover, existing_connection_gets_disconnect_0x8e_v5_MQTT_3_1_4_3)
{
	takeover(MQTT_V5);
}

/* A clean takeover (Clean Session 1) still closes the old connection but
 * starts a fresh session: Session Present 0 and no old subscription. */
Test(takeover, clean_takeover_closes_old_and_discards_session_MQTT_3_1_2_6)
{
	struct broker b;
	struct tclient *old, *neu, *pub;

	broker_start(&b, NULL);
	old = connect_session(&b, MQTT_V311, "fresh-id", false);
	tc_subscribe(old, "fresh/t", 1);
	neu = tc_connect(&b, MQTT_V311, "fresh-id", true);
	tc_expect_closed(old);
	tc_close(old);
	pub = tc_connect(&b, MQTT_V311, "fresh-pub", true);
	tc_publish(pub, "fresh/t", "nobody", 1, false);
	tc_expect_nothing(neu, TC_QUIET_MS);
	tc_disconnect(neu);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* Twenty ids, each taken over once, alternating 3.1.1 and 5; with four
 * shards the ids hash to every home shard and the connections are spread
 * by the kernel, so old and new meet across shards. */
Test(takeover, twenty_ids_taken_over_across_shards)
{
	enum { IDS = 20 };
	struct broker b;
	struct tclient *old[IDS], *neu[IDS], *pub;

	broker_start(&b, NULL);
	for (int i = 0; i < IDS; i++) {
		char id[16], topic[16];

		snprintf(id, sizeof(id), "many-%d", i);
		snprintf(topic, sizeof(topic), "many/%d", i);
		old[i] = connect_session(&b, i % 2 ? MQTT_V5 : MQTT_V311, id, false);
		tc_subscribe(old[i], topic, 1);
	}
	for (int i = 0; i < IDS; i++) {
		char id[16];

		snprintf(id, sizeof(id), "many-%d", i);
		neu[i] = connect_session(&b, i % 2 ? MQTT_V5 : MQTT_V311, id, true);
	}
	for (int i = 0; i < IDS; i++) {
		tc_expect_disconnect(old[i], MQTT_RC_SESSION_TAKEN_OVER);
		tc_close(old[i]);
	}
	pub = tc_connect(&b, MQTT_V311, "many-pub", true);
	for (int i = 0; i < IDS; i++) {
		char topic[16];

		snprintf(topic, sizeof(topic), "many/%d", i);
		tc_publish(pub, topic, "yours", 1, false);
		tc_receive_qos(neu[i], topic, "yours", 1);
		tc_disconnect(neu[i]);
	}
	tc_disconnect(pub);
	broker_stop(&b);
}

/* Takeover in a loop on one id: each new connection closes the previous
 * one, and exactly the last is left serving. */
Test(takeover, repeated_takeover_of_one_id_leaves_the_last)
{
	enum { ROUNDS = 10 };
	struct broker b;
	struct tclient *cur, *next, *pub;

	broker_start(&b, NULL);
	cur = connect_session(&b, MQTT_V5, "hot-id", false);
	tc_subscribe(cur, "hot/t", 1);
	for (int i = 0; i < ROUNDS; i++) {
		next = connect_session(&b, MQTT_V5, "hot-id", true);
		tc_expect_disconnect(cur, MQTT_RC_SESSION_TAKEN_OVER);
		tc_close(cur);
		cur = next;
	}
	pub = tc_connect(&b, MQTT_V5, "hot-pub", true);
	tc_publish(pub, "hot/t", "last", 1, false);
	tc_receive_qos(cur, "hot/t", "last", 1);
	tc_expect_nothing(cur, TC_QUIET_MS);
	tc_disconnect(cur);
	tc_disconnect(pub);
	broker_stop(&b);
}
