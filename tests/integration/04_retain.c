/*
 * 04_retain.c - retained messages.
 *
 * Set, replace, delete (empty payload), delivery to a new subscription
 * with RETAIN 1 and to existing subscriptions with RETAIN 0, wildcard
 * subscriptions collecting several retained messages, and the QoS of a
 * retained delivery.  Retained messages are stored once for the process
 * and served by whichever shard the subscriber lives on, so with several
 * shards the setter and the subscribers are on different shards.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "tclient.h"

TestSuite(retain, .timeout = 60);

/* [MQTT-3.3.1-5] the retained message is stored; [MQTT-3.3.1-6] a new
 * subscription gets it; [MQTT-3.3.1-8] with RETAIN 1. */
static void retained_on_subscribe(uint8_t version)
{
	struct broker b;
	struct tclient *pub, *sub;
	struct mqtt_packet p;

	broker_start(&b, NULL);
	pub = tc_connect(&b, version, "ret-pub", true);
	tc_publish(pub, "ret/t", "kept", 1, true);
	sub = tc_connect(&b, version, "ret-sub", true);
	tc_subscribe(sub, "ret/t", 1);
	p = tc_expect_publish(sub, "ret/t", "kept", 1);
	cr_assert(p.publish.retain, "retained message delivered with RETAIN 0 [MQTT-3.3.1-8]");
	tc_ack(sub, MQTT_PUBACK, p.publish.packet_id);
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_disconnect(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}

Test(retain, delivered_on_subscribe_with_retain_flag_311_MQTT_3_3_1_8)
{
	retained_on_subscribe(MQTT_V311);
}

Test(retain, delivered_on_subscribe_with_retain_flag_v5_MQTT_3_3_1_8)
{
	retained_on_subscribe(MQTT_V5);
}

/* [MQTT-3.3.1-5] a new retained message replaces the old one. */
Test(retain, new_retained_message_replaces_old_MQTT_3_3_1_5)
{
	struct broker b;
	struct tclient *pub, *sub;

	broker_start(&b, NULL);
	pub = tc_connect(&b, MQTT_V311, "rep-pub", true);
	tc_publish(pub, "rep/t", "v1", 1, true);
	tc_publish(pub, "rep/t", "v2", 1, true);
	sub = tc_connect(&b, MQTT_V311, "rep-sub", true);
	tc_subscribe(sub, "rep/t", 0);
	tc_expect_publish(sub, "rep/t", "v2", 0);
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_disconnect(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* [MQTT-3.3.1-10] a retained PUBLISH with an empty payload is delivered
 * normally to current subscribers and [MQTT-3.3.1-11] removes the retained
 * message, so a later subscriber gets nothing. */
Test(retain, empty_payload_deletes_retained_message_MQTT_3_3_1_10)
{
	struct broker b;
	struct tclient *pub, *live, *late;
	struct mqtt_packet p;

	broker_start(&b, NULL);
	pub = tc_connect(&b, MQTT_V311, "del-pub", true);
	tc_publish(pub, "del/t", "soon gone", 1, true);
	live = tc_connect(&b, MQTT_V311, "del-live", true);
	tc_subscribe(live, "del/t", 0);
	tc_expect_publish(live, "del/t", "soon gone", 0);
	tc_publish(pub, "del/t", "", 1, true);
	p = tc_expect_publish(live, "del/t", "", 0);
	cr_assert(!p.publish.retain, "live delivery with RETAIN 1 [MQTT-3.3.1-9]");
	late = tc_connect(&b, MQTT_V311, "del-late", true);
	tc_subscribe(late, "del/t", 0);
	tc_subscribe(late, "del/#", 0);
	tc_expect_nothing(late, TC_QUIET_MS);
	tc_disconnect(live);
	tc_disconnect(late);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* [MQTT-3.3.1-9] 3.1.1: a retained message delivered to an existing
 * subscription has RETAIN 0; MQTT 5 [MQTT-3.3.1-12] likewise unless the
 * subscription asked for Retain As Published (it did not here). */
Test(retain, live_delivery_has_retain_0_MQTT_3_3_1_9)
{
	struct broker b;

	broker_start(&b, NULL);
	for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
		struct tclient *sub = tc_connect(&b, version, "live-sub", true);
		struct tclient *pub = tc_connect(&b, version, "live-pub", true);
		char topic[32];
		struct mqtt_packet p;

		snprintf(topic, sizeof(topic), "live/%u", version);
		tc_subscribe(sub, topic, 1);
		tc_publish(pub, topic, "now", 1, true);
		p = tc_expect_publish(sub, topic, "now", 1);
		cr_assert(!p.publish.retain, "v%u: live delivery with RETAIN 1", version);
		tc_ack(sub, MQTT_PUBACK, p.publish.packet_id);
		tc_disconnect(sub);
		tc_disconnect(pub);
	}
	broker_stop(&b);
}

/* A wildcard subscription gets every matching retained message, each once
 * with RETAIN 1, and none that does not match. */
Test(retain, wildcard_subscription_gets_all_matching_retained)
{
	static const char *const topics[] = {"w/a", "w/b/c", "w", "x/a", "w/a/b/c/d"};
	static const bool match[] = {true, true, true, false, true};
	bool seen[5] = {false};
	struct broker b;
	struct tclient *pub, *sub;

	broker_start(&b, NULL);
	pub = tc_connect(&b, MQTT_V311, "wr-pub", true);
	for (int i = 0; i < 5; i++)
		tc_publish(pub, topics[i], topics[i], 1, true);
	sub = tc_connect(&b, MQTT_V311, "wr-sub", true);
	tc_subscribe(sub, "w/#", 0);
	for (int n = 0; n < 4; n++) {
		struct mqtt_packet p = tc_expect(sub, MQTT_PUBLISH);
		int k = -1;

		for (int i = 0; i < 5; i++)
			if (tc_str_eq(p.publish.topic, topics[i]))
				k = i;
		cr_assert(k >= 0 && match[k], "'w/#' got retained '%s'", tc_dup(p.publish.topic));
		cr_assert(!seen[k], "retained '%s' delivered twice", topics[k]);
		cr_assert(p.publish.retain && tc_str_eq(p.publish.payload, topics[k]), "%s", tc_describe(&p));
		seen[k] = true;
	}
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_disconnect(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* A retained message is delivered at the lower of its QoS and the
 * subscription's [MQTT-3.8.4-6]; a QoS 0 retained message replaces a
 * QoS 1 one [MQTT-3.3.1-7]. */
Test(retain, retained_qos_is_min_of_message_and_subscription)
{
	struct broker b;
	struct tclient *pub, *s0, *s2;
	struct mqtt_packet p;

	broker_start(&b, NULL);
	pub = tc_connect(&b, MQTT_V311, "rq-pub", true);
	tc_publish(pub, "rq/t", "q1", 1, true);
	s0 = tc_connect(&b, MQTT_V311, "rq-s0", true);
	s2 = tc_connect(&b, MQTT_V311, "rq-s2", true);
	tc_subscribe(s0, "rq/t", 0);
	tc_subscribe(s2, "rq/t", 2);
	tc_expect_publish(s0, "rq/t", "q1", 0);
	p = tc_expect_publish(s2, "rq/t", "q1", 1);
	tc_ack(s2, MQTT_PUBACK, p.publish.packet_id);
	tc_disconnect(s0);
	tc_disconnect(s2);

	tc_publish(pub, "rq/t", "q0", 0, true);
	tc_publish(pub, "rq/sync", "", 1, false); /* QoS 1 round trip: the QoS 0 publish was read */
	s2 = tc_connect(&b, MQTT_V311, "rq-s2b", true);
	tc_subscribe(s2, "rq/t", 2);
	tc_expect_publish(s2, "rq/t", "q0", 0);
	tc_disconnect(s2);
	tc_disconnect(pub);
	broker_stop(&b);
}
