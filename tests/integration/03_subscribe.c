/*
 * 03_subscribe.c - SUBSCRIBE/SUBACK, UNSUBSCRIBE/UNSUBACK and topic
 * matching end to end.
 *
 * The matching table below is the core of the file: seven filters, each
 * held by its own subscriber, and seven topics; every subscriber must get
 * exactly the topics its filter matches (section 4.7).  With several
 * shards the subscribers are spread over them, so this also checks that
 * routing between shards finds every match once.  Subscription identifiers,
 * No Local and Retain As Published (MQTT 5) are covered in 15_subopts_v5.c.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tclient.h"

TestSuite(subscribe, .timeout = 60);

/* [MQTT-3.8.4-4]/[MQTT-3.9.3-1] One SUBACK code per filter, in order, each
 * the granted QoS (the default max_qos is 2, so the requested one). */
Test(subscribe, suback_has_one_granted_qos_per_filter_in_order_MQTT_3_9_3_1)
{
	static const char *const filters[] = {"g/2", "g/0", "g/1", "g/+/0"};
	static const uint8_t qos[] = {2, 0, 1, 0};
	struct broker b;

	broker_start(&b, NULL);
	for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
		struct tclient *c = tc_connect(&b, version, "granted", true);
		uint8_t codes[4];

		tc_subscribe_many(c, filters, qos, 4, codes);
		for (int i = 0; i < 4; i++)
			cr_assert_eq(codes[i], qos[i], "v%u filter %s: code 0x%02x for QoS %u", version, filters[i],
				     codes[i], qos[i]);
		tc_disconnect(c);
	}
	broker_stop(&b);
}

/* An invalid filter [MQTT-4.7.1-1/2] is refused in its SUBACK slot: 0x80
 * in 3.1.1 (3.9.3), 0x8F Topic Filter invalid in MQTT 5, and the other
 * filters of the same packet are still granted [MQTT-3.8.4-4, each filter
 * handled as if in its own SUBSCRIBE].  This is ringmq's reading; the
 * specification also lets a server close the connection instead (3.1.1
 * [MQTT-4.8.0-1], MQTT 5 Malformed Packet), which is what mosquitto 2.0.11
 * does, so the oracle run skips this test. */
Test(subscribe, invalid_filter_refused_in_suback_0x80_or_0x8f)
{
	static const char *const bad[] = {"a/#/b", "a/b#", "a+/b", "#/"};
	struct broker b;

	harness_mosquitto_deviates("disconnects on an invalid SUBSCRIBE filter instead of SUBACK 0x80/0x8F");
	broker_start(&b, NULL);
	for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++)
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			const char *filters[2] = {bad[i], "ok/filter"};
			static const uint8_t qos[2] = {1, 1};
			uint8_t codes[2], want = version == MQTT_V5 ? MQTT_RC_TOPIC_FILTER_INVALID : 0x80;
			struct tclient *c;

			c = tc_connect(&b, version, "badfilter", true);
			tc_subscribe_many(c, filters, qos, 2, codes);
			cr_assert_eq(codes[0], want, "v%u filter '%s': SUBACK code 0x%02x", version, bad[i], codes[0]);
			cr_assert_eq(codes[1], 1, "v%u: the valid filter next to '%s' got 0x%02x", version, bad[i],
				     codes[1]);
			tc_disconnect(c);
		}
	broker_stop(&b);
}

/* [MQTT-3.10.4-1] After UNSUBSCRIBE the broker stops adding messages for
 * the filter; [MQTT-3.10.4-4] UNSUBACK echoes the packet id (checked in
 * tc_unsubscribe); MQTT 5 answers 0x00, or 0x11 when there was none. */
Test(subscribe, unsubscribe_stops_delivery_MQTT_3_10_4_1)
{
	struct broker b;

	broker_start(&b, NULL);
	for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
		struct tclient *sub = tc_connect(&b, version, "unsub-sub", true);
		struct tclient *pub = tc_connect(&b, version, "unsub-pub", true);
		uint8_t code;

		tc_subscribe(sub, "u/t", 1);
		tc_publish(pub, "u/t", "before", 1, false);
		tc_receive_qos(sub, "u/t", "before", 1);
		code = tc_unsubscribe(sub, "u/t");
		cr_assert_eq(code, 0, "v%u: UNSUBACK code 0x%02x", version, code);
		tc_publish(pub, "u/t", "after", 1, false);
		tc_expect_nothing(sub, TC_QUIET_MS);
		code = tc_unsubscribe(sub, "never/subscribed");
		cr_assert(code == 0 || code == MQTT_RC_NO_SUBSCRIPTION_EXISTED, "v%u: UNSUBACK code 0x%02x", version,
			  code);
		tc_disconnect(sub);
		tc_disconnect(pub);
	}
	broker_stop(&b);
}

/* Section 4.7: '+' matches one level, '#' any number including none (and
 * the parent level), empty levels are levels.  Column j of a row is '1'
 * when the filter matches topics[j]. */
static const char *const match_topics[] = {
	"sport/tennis/player1", "sport", "sport/tennis/player1/ranking", "/finance", "sport/", "a",
	"sport/tennis/player2",
};
enum { TOPICS = sizeof(match_topics) / sizeof(match_topics[0]) };
static const struct {
	const char *filter;
	const char *matches;
} match_table[] = {
	{"sport/+/player1", "1000000"},
	{"sport/#", "1110101"},
	{"+/+", "0001100"},
	{"#", "1111111"},
	{"+", "0100010"},
	{"/+", "0001000"},
	{"sport/tennis/+", "1000001"},
	{"sport/tennis/player1", "1000000"},
};
enum { FILTERS = sizeof(match_table) / sizeof(match_table[0]) };

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* [MQTT-4.7.1-1..3] wildcards end to end, [MQTT-4.7.3-1] topic levels. */
Test(subscribe, wildcards_match_end_to_end_MQTT_4_7_1_2)
{
	struct broker b;
	struct tclient *sub[FILTERS], *pub;

	broker_start(&b, NULL);
	for (int i = 0; i < FILTERS; i++) {
		char id[16];

		snprintf(id, sizeof(id), "match%d", i);
		sub[i] = tc_connect(&b, MQTT_V311, id, true);
		tc_subscribe(sub[i], match_table[i].filter, 0);
	}
	pub = tc_connect(&b, MQTT_V311, "match-pub", true);
	for (int j = 0; j < TOPICS; j++)
		tc_publish(pub, match_topics[j], match_topics[j], 1, false);
	for (int i = 0; i < FILTERS; i++) {
		/* Order between topics is not promised [MQTT-4.6.0-6 is per
		 * topic], so compare sorted lists. */
		const char *want[TOPICS], *got[TOPICS];
		int n = 0;

		for (int j = 0; j < TOPICS; j++)
			if (match_table[i].matches[j] == '1')
				want[n++] = match_topics[j];
		for (int k = 0; k < n; k++) {
			struct mqtt_packet p = tc_expect(sub[i], MQTT_PUBLISH);

			cr_assert(tc_str_eq(p.publish.topic, tc_dup(p.publish.payload)), "topic/payload mismatch");
			got[k] = strdup(tc_dup(p.publish.topic));
		}
		tc_expect_nothing(sub[i], i == 0 ? TC_QUIET_MS : 0);
		qsort(want, (size_t)n, sizeof(want[0]), cmp_str);
		qsort(got, (size_t)n, sizeof(got[0]), cmp_str);
		for (int k = 0; k < n; k++) {
			cr_assert_str_eq(got[k], want[k], "filter '%s' got topic '%s', expected '%s'",
					 match_table[i].filter, got[k], want[k]);
			free((void *)got[k]);
		}
		tc_disconnect(sub[i]);
	}
	tc_disconnect(pub);
	broker_stop(&b);
}

/* [MQTT-4.7.2-1] Filters starting with a wildcard do not match topics
 * starting with '$': '#' and '+/...' subscribers get none of the broker's
 * $SYS messages while a '$SYS/#' subscriber receives live ones. */
Test(subscribe, sys_topics_not_matched_by_leading_wildcards_MQTT_4_7_2_1)
{
	struct broker b;
	struct tclient *all, *plus, *sys;
	struct mqtt_packet p;
	int64_t deadline;

	broker_start(&b, "sys_interval 1\n");
	all = tc_connect(&b, MQTT_V311, "sys-all", true);
	plus = tc_connect(&b, MQTT_V311, "sys-plus", true);
	sys = tc_connect(&b, MQTT_V311, "sys-sys", true);
	tc_subscribe(all, "#", 0);
	tc_subscribe(plus, "+/broker/#", 0);
	tc_subscribe(sys, "$SYS/#", 0);
	/* Retained $SYS messages may come first; wait for a live one
	 * (RETAIN 0 [MQTT-3.3.1-9]), published while all three subscribed. */
	deadline = harness_now_ms() + TC_WAIT_MS;
	do {
		int r = tc_recv(sys, (int)(deadline - harness_now_ms()), &p);

		cr_assert(r == 0, "no live $SYS message within %d ms with sys_interval 1", TC_WAIT_MS);
		cr_assert(p.type == MQTT_PUBLISH, "%s", tc_describe(&p));
		cr_assert(tc_dup(p.publish.topic)[0] == '$', "'$SYS/#' matched '%s'", tc_dup(p.publish.topic));
	} while (p.publish.retain);
	tc_expect_nothing(all, TC_QUIET_MS);
	tc_expect_nothing(plus, 0);
	tc_disconnect(all);
	tc_disconnect(plus);
	tc_disconnect(sys);
	broker_stop(&b);
}

/* [MQTT-3.3.5-1] 3.1.1: a message matching several of one client's
 * subscriptions is delivered respecting the highest QoS among them.
 * Further copies are allowed by the specification (mosquitto sends one per
 * subscription); ringmq delivers exactly one. */
Test(subscribe, overlapping_subscriptions_deliver_max_qos_MQTT_3_3_5_1)
{
	static const char *const filters[] = {"ov/#", "ov/+/c", "ov/b/c"};
	static const uint8_t qos[] = {0, 2, 1};
	struct broker b;
	struct tclient *sub, *pub;
	struct mqtt_packet p;
	uint8_t codes[3];
	int copies = 0, best = -1;

	broker_start(&b, NULL);
	sub = tc_connect(&b, MQTT_V311, "ov-sub", true);
	pub = tc_connect(&b, MQTT_V311, "ov-pub", true);
	harness_mosquitto_deviates("[MQTT-3.3.5-1] mosquitto 2.0.11 sends one copy at the QoS of one "
				   "subscription (here 1), not the highest (2)");
	tc_subscribe_many(sub, filters, qos, 3, codes);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(codes[i], qos[i]);
	tc_publish(pub, "ov/b/c", "x", 2, false);
	while (tc_recv(sub, copies ? TC_QUIET_MS : TC_WAIT_MS, &p) == 0) {
		cr_assert(p.type == MQTT_PUBLISH, "%s", tc_describe(&p));
		copies++;
		best = p.publish.qos > best ? p.publish.qos : best;
		if (p.publish.qos == 1)
			tc_ack(sub, MQTT_PUBACK, p.publish.packet_id);
		if (p.publish.qos == 2)
			tc_ack(sub, MQTT_PUBREC, p.publish.packet_id);
		/* The PUBREL that follows is read (and answered) below. */
		if (p.publish.qos == 2) {
			uint16_t id = p.publish.packet_id;

			p = tc_expect(sub, MQTT_PUBREL);
			cr_assert_eq(p.ack.packet_id, id);
			tc_ack(sub, MQTT_PUBCOMP, id);
		}
	}
	cr_assert(copies >= 1, "no delivery");
	cr_assert_eq(best, 2, "no copy at the highest subscribed QoS 2 [MQTT-3.3.5-1]");
	cr_assert(copies == 1 || harness_is_mosquitto(), "ringmq delivered %d copies, expected one", copies);
	tc_disconnect(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* [MQTT-3.8.4-3] A SUBSCRIBE for an existing filter replaces the
 * subscription (new QoS, one delivery) and re-sends the retained messages. */
Test(subscribe, resubscribe_replaces_subscription_MQTT_3_8_4_3)
{
	struct broker b;
	struct tclient *sub, *pub;
	struct mqtt_packet p;

	broker_start(&b, NULL);
	sub = tc_connect(&b, MQTT_V311, "re-sub", true);
	pub = tc_connect(&b, MQTT_V311, "re-pub", true);
	tc_publish(pub, "re/t", "kept", 1, true);
	tc_subscribe(sub, "re/t", 1);
	p = tc_expect_publish(sub, "re/t", "kept", 1);
	cr_assert(p.publish.retain);
	tc_ack(sub, MQTT_PUBACK, p.publish.packet_id);

	tc_subscribe(sub, "re/t", 0);
	p = tc_expect_publish(sub, "re/t", "kept", 0);
	cr_assert(p.publish.retain, "retained message not re-sent on re-subscribe [MQTT-3.8.4-3]");

	tc_publish(pub, "re/t", "live", 1, false);
	tc_expect_publish(sub, "re/t", "live", 0);
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_disconnect(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* [MQTT-3.8.3-3] (3.1.1) / [MQTT-3.8.3-2] (5): a SUBSCRIBE without any
 * filter is a protocol violation and closes the connection. */
Test(subscribe, empty_subscribe_closes_MQTT_3_8_3_3)
{
	struct broker b;

	broker_start(&b, NULL);
	for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
		struct tclient *c = tc_connect(&b, version, "emptysub", true);
		struct tc_bytes w = {.len = 0};

		tc_put_u16(&w, 7);
		if (version == MQTT_V5)
			tc_put_varint(&w, 0);
		(void)tc_send_frame(c, MQTT_SUBSCRIBE << 4 | 2, &w);
		cr_assert(tc_closed(c, TC_WAIT_MS), "v%u: empty SUBSCRIBE accepted", version);
		tc_close(c);
	}
	broker_stop(&b);
}
