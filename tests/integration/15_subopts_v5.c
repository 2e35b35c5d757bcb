/*
 * 15_subopts_v5.c - MQTT 5 subscription identifiers and subscription
 * options (No Local, Retain As Published, Retain Handling), and the
 * CONNACK switches that turn subscription features off.
 *
 * Subscription identifiers: a message matching several subscriptions of
 * one session arrives once (ringmq folds overlapping subscriptions) with
 * the identifier of every matching subscription that has one; replacing
 * a subscription replaces its identifier; retained messages sent on
 * SUBSCRIBE carry it; identifier 0 is a Protocol Error; with
 * subscription_identifier_available false the CONNACK says so and a
 * SUBSCRIBE with one gets DISCONNECT 0xA1.  No Local drops only the
 * subscriber's own messages, and only on that subscription.  Retain As
 * Published decides the RETAIN flag of live deliveries; Retain Handling
 * 0/1/2 decides which retained messages a SUBSCRIBE gets.  With
 * wildcard_subscription_available false, wildcard filters get SUBACK 0xA2.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"
#include "tclient.h"

TestSuite(subopts, .timeout = 60);

/* Subscription option bits (3.8.3.1). */
#define OPT_NO_LOCAL 0x04
#define OPT_RAP 0x08
#define OPT_RH(n) ((uint8_t)((n) << 4))

static struct tclient *connect_v5(const struct broker *b, const char *id)
{
	return tc_connect(b, MQTT_V5, id, true);
}

/* SUBSCRIBE one @filter with @options and, if non-zero, Subscription
 * Identifier @sub_id.  Returns the SUBACK reason code. */
static uint8_t subscribe_id(struct tclient *c, const char *filter, uint8_t options, uint32_t sub_id)
{
	struct mqtt_packet p = {.type = MQTT_SUBSCRIBE, .flags = 2}, ack;
	struct mqtt_sub e = {.filter = tc_str(filter),
			     .qos = options & 3,
			     .no_local = (options & OPT_NO_LOCAL) != 0,
			     .retain_as_published = (options & OPT_RAP) != 0,
			     .retain_handling = (options >> 4) & 3};
	uint8_t list[256];
	int n = mqtt_sub_encode(MQTT_V5, &e, false, list, sizeof(list));

	cr_assert(n > 0);
	p.subscribe.packet_id = c->next_id++;
	if (c->next_id == 0)
		c->next_id = 1;
	p.subscribe.list = (struct mqtt_str){list, (uint32_t)n};
	p.subscribe.count = 1;
	p.subscribe.props.present = sub_id ? MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID) : 0;
	p.subscribe.props.subid_count = sub_id ? 1 : 0;
	p.subscribe.props.subids[0] = sub_id;
	(void)tc_send(c, &p);
	ack = tc_expect(c, MQTT_SUBACK);
	cr_assert(ack.suback.packet_id == p.subscribe.packet_id && ack.suback.count == 1, "%s", tc_describe(&ack));
	return ack.suback.codes[0];
}

static void subscribe_ok(struct tclient *c, const char *filter, uint8_t options, uint32_t sub_id)
{
	uint8_t code = subscribe_id(c, filter, options, sub_id);

	cr_assert_eq(code, options & 3, "%s: SUBSCRIBE '%s' got 0x%02x", c->name, filter, code);
}

/* @p must carry exactly the Subscription Identifiers @want (any order). */
static void expect_subids(const struct mqtt_packet *p, const uint32_t *want, unsigned n)
{
	const struct mqtt_props *pr = &p->publish.props;

	if (n == 0) {
		cr_assert(!(pr->present & MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID)) || pr->subid_count == 0,
			  "%u Subscription Identifiers (first %u) on a message matching none with one", pr->subid_count,
			  pr->subid_count ? pr->subids[0] : 0);
		return;
	}
	cr_assert_eq(pr->subid_count, n, "%u Subscription Identifiers, expected %u [MQTT-3.3.4-4]", pr->subid_count, n);
	for (unsigned i = 0; i < n; i++) {
		bool found = false;

		for (unsigned k = 0; k < pr->subid_count; k++)
			found = found || pr->subids[k] == want[i];
		cr_assert(found, "Subscription Identifier %u missing [MQTT-3.3.4-3]", want[i]);
	}
}

/* ---- Subscription identifiers ---- */

/*
 * [MQTT-3.3.4-3] [MQTT-3.3.4-4] a message matching overlapping
 * subscriptions arrives once, with the identifiers of all matching
 * subscriptions that have one (here 7 and a multi-byte 300000); a
 * subscription without one adds none.  [MQTT-3.8.4-3] re-subscribing
 * replaces the identifier.  A retained message sent on SUBSCRIBE carries
 * that subscription's identifier (3.8.2.1.2).
 */
Test(subopts, subscription_identifiers_of_overlapping_subscriptions_MQTT_3_3_4_4)
{
	struct broker b;
	struct tclient *sub, *pub;
	struct mqtt_packet p;

	harness_ringmq_only("one PUBLISH for overlapping subscriptions is ringmq's choice; mosquitto 2.0 sends a "
			    "copy per subscription, which [MQTT-3.3.4-5] also allows");
	broker_start(&b, NULL);
	sub = connect_v5(&b, "si-sub");
	subscribe_ok(sub, "si/+", 1, 7);
	subscribe_ok(sub, "si/a", 1, 300000);
	subscribe_ok(sub, "si/#", 1, 0);
	pub = connect_v5(&b, "si-pub");

	tc_publish(pub, "si/a", "both", 1, false);
	p = tc_expect_publish(sub, "si/a", "both", 1);
	expect_subids(&p, (const uint32_t[]){7, 300000}, 2);
	tc_ack(sub, MQTT_PUBACK, p.publish.packet_id);
	tc_expect_nothing(sub, TC_QUIET_MS); /* one copy */

	tc_publish(pub, "si/b", "plus", 1, false);
	p = tc_expect_publish(sub, "si/b", "plus", 1);
	expect_subids(&p, (const uint32_t[]){7}, 1);
	tc_ack(sub, MQTT_PUBACK, p.publish.packet_id);

	tc_publish(pub, "si/c/d", "hash only", 1, false);
	p = tc_expect_publish(sub, "si/c/d", "hash only", 1);
	expect_subids(&p, NULL, 0);
	tc_ack(sub, MQTT_PUBACK, p.publish.packet_id);

	subscribe_ok(sub, "si/+", 1, 8);
	tc_publish(pub, "si/b", "replaced", 1, false);
	p = tc_expect_publish(sub, "si/b", "replaced", 1);
	expect_subids(&p, (const uint32_t[]){8}, 1);
	tc_ack(sub, MQTT_PUBACK, p.publish.packet_id);

	tc_publish(pub, "sir/t", "retained", 1, true);
	subscribe_ok(sub, "sir/t", 1, 42);
	p = tc_expect_publish(sub, "sir/t", "retained", 1);
	cr_assert(p.publish.retain);
	expect_subids(&p, (const uint32_t[]){42}, 1);
	tc_ack(sub, MQTT_PUBACK, p.publish.packet_id);
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_disconnect(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* [MQTT-3.3.4-6] a client's PUBLISH must not carry a Subscription
 * Identifier.  The server either treats it as a Protocol Error
 * (DISCONNECT 0x82) or ignores it; it never reaches a subscriber, who sees
 * only the identifiers of its own subscriptions. */
Test(subopts, subscription_identifier_from_publisher_not_forwarded_MQTT_3_3_4_6)
{
	struct broker b;
	struct tclient *sub, *pub;
	struct mqtt_packet p, a;
	int r;

	broker_start(&b, NULL);
	sub = connect_v5(&b, "sip-sub");
	subscribe_ok(sub, "sip/t", 1, 5);
	pub = connect_v5(&b, "sip-pub");
	p = tc_publish_packet(pub, "sip/t", "x", 1, false);
	p.publish.props.present = MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
	p.publish.props.subid_count = 1;
	p.publish.props.subids[0] = 99;
	(void)tc_send(pub, &p);
	r = tc_recv(pub, TC_WAIT_MS, &a);
	cr_assert(r == 0, "publisher: no answer to a PUBLISH with a Subscription Identifier");
	if (a.type == MQTT_DISCONNECT) {
		cr_assert_eq(a.disconnect.reason, MQTT_RC_PROTOCOL_ERROR, "%s", tc_describe(&a));
		tc_expect_nothing(sub, TC_QUIET_MS);
	} else {
		cr_assert(a.type == MQTT_PUBACK && a.ack.reason < 0x80, "%s", tc_describe(&a));
		p = tc_expect_publish(sub, "sip/t", "x", 1);
		expect_subids(&p, (const uint32_t[]){5}, 1);
		tc_ack(sub, MQTT_PUBACK, p.publish.packet_id);
		tc_disconnect(pub);
		pub = NULL;
	}
	tc_close(pub);
	tc_disconnect(sub);
	broker_stop(&b);
}

/* 3.8.2.1.2: a Subscription Identifier of 0 is a Protocol Error:
 * DISCONNECT 0x82.  Built byte by byte: the encoder will not write it. */
Test(subopts, subscription_identifier_0_disconnect_0x82)
{
	struct broker b;
	struct tclient *c;
	struct tc_bytes w = {.len = 0};

	harness_mosquitto_deviates("3.8.2.1.2: mosquitto 2.0.11 answers Subscription Identifier 0 with 0x81, "
				   "the specification calls it a Protocol Error (0x82)");
	broker_start(&b, NULL);
	c = connect_v5(&b, "si0");
	tc_put_u16(&w, 1); /* packet id */
	tc_put_varint(&w, 2); /* properties: Subscription Identifier 0 */
	tc_put_u8(&w, MQTT_PROP_SUBSCRIPTION_ID);
	tc_put_varint(&w, 0);
	tc_put_str(&w, "si0/t");
	tc_put_u8(&w, 1);
	(void)tc_send_frame(c, MQTT_SUBSCRIBE << 4 | 2, &w);
	tc_expect_disconnect(c, MQTT_RC_PROTOCOL_ERROR);
	tc_close(c);
	broker_stop(&b);
}

/* subscription_identifier_available false: CONNACK Subscription
 * Identifiers Available 0 (3.2.2.3.12); a SUBSCRIBE with one gets
 * DISCONNECT 0xA1; without one it works. */
Test(subopts, subscription_identifier_unavailable_disconnect_0xa1)
{
	struct broker b;
	struct tclient *c;
	struct mqtt_packet p = tc_connect_packet(MQTT_V5, "sioff"), ack;

	harness_ringmq_only("subscription_identifier_available is a ringmq directive");
	broker_start(&b, "subscription_identifier_available false\n");
	c = tc_connect_with(&b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0, "%s", tc_describe(&ack));
	cr_assert(ack.connack.props.present & MQTT_HAS(MQTT_PROP_SUBID_AVAILABLE),
		  "CONNACK without Subscription Identifiers Available");
	cr_assert_eq(ack.connack.props.subid_available, 0);
	subscribe_ok(c, "sioff/t", 1, 0);
	p = (struct mqtt_packet){.type = MQTT_SUBSCRIBE, .flags = 2};
	{
		struct mqtt_sub e = {.filter = tc_str("sioff/u"), .qos = 1};
		uint8_t list[64];
		int n = mqtt_sub_encode(MQTT_V5, &e, false, list, sizeof(list));

		p.subscribe.packet_id = 9;
		p.subscribe.list = (struct mqtt_str){list, (uint32_t)n};
		p.subscribe.count = 1;
		p.subscribe.props.present = MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
		p.subscribe.props.subid_count = 1;
		p.subscribe.props.subids[0] = 3;
		(void)tc_send(c, &p);
	}
	tc_expect_disconnect(c, MQTT_RC_SUBID_NOT_SUPPORTED);
	tc_close(c);
	broker_stop(&b);
}

/* ---- No Local ---- */

/* [MQTT-3.8.3-3] with No Local a client does not get its own messages on
 * that subscription; another client on the same filter gets them, and
 * other clients' messages still arrive; an overlapping subscription of
 * the same client without No Local still delivers its own (one copy).
 * The subscribers publish at QoS 0, so that no PUBACK mixes with what
 * they receive. */
Test(subopts, no_local_skips_own_messages_on_that_subscription_MQTT_3_8_3_3)
{
	struct broker b;
	struct tclient *a, *other, *pub;

	broker_start(&b, NULL);
	a = connect_v5(&b, "nl-a");
	other = connect_v5(&b, "nl-b");
	pub = connect_v5(&b, "nl-c");
	subscribe_ok(a, "nl/t", 1 | OPT_NO_LOCAL, 0);
	subscribe_ok(other, "nl/t", 1, 0);

	tc_publish(a, "nl/t", "from a", 0, false);
	(void)tc_expect_publish(other, "nl/t", "from a", 0);
	tc_publish(pub, "nl/t", "from c", 1, false);
	tc_receive_qos(other, "nl/t", "from c", 1);
	tc_receive_qos(a, "nl/t", "from c", 1); /* and not "from a" before it */

	subscribe_ok(a, "nl/#", 1, 0);
	tc_publish(a, "nl/t", "via hash", 0, false);
	(void)tc_expect_publish(a, "nl/t", "via hash", 0);
	(void)tc_expect_publish(other, "nl/t", "via hash", 0);
	tc_expect_nothing(a, TC_QUIET_MS);
	tc_disconnect(a);
	tc_disconnect(other);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* ---- Retain As Published ---- */

/* [MQTT-3.3.1-12] without Retain As Published a live delivery has RETAIN
 * 0; [MQTT-3.3.1-13] with it, RETAIN as the publisher set it.  Retained
 * messages sent on SUBSCRIBE have RETAIN 1 either way (3.3.1.3). */
Test(subopts, retain_as_published_keeps_retain_flag_MQTT_3_3_1_13)
{
	struct broker b;
	struct tclient *rap, *plain, *pub;
	struct mqtt_packet p;

	broker_start(&b, NULL);
	rap = connect_v5(&b, "rap-1");
	plain = connect_v5(&b, "rap-0");
	subscribe_ok(rap, "rap/t", 1 | OPT_RAP, 0);
	subscribe_ok(plain, "rap/t", 1, 0);
	pub = connect_v5(&b, "rap-pub");

	tc_publish(pub, "rap/t", "retained", 1, true);
	p = tc_expect_publish(rap, "rap/t", "retained", 1);
	cr_assert(p.publish.retain, "Retain As Published: RETAIN 0 on a retained message [MQTT-3.3.1-13]");
	tc_ack(rap, MQTT_PUBACK, p.publish.packet_id);
	p = tc_expect_publish(plain, "rap/t", "retained", 1);
	cr_assert(!p.publish.retain, "RETAIN 1 on a live delivery without Retain As Published [MQTT-3.3.1-12]");
	tc_ack(plain, MQTT_PUBACK, p.publish.packet_id);

	tc_publish(pub, "rap/t", "not retained", 1, false);
	p = tc_expect_publish(rap, "rap/t", "not retained", 1);
	cr_assert(!p.publish.retain, "RETAIN 1 on a message published without it");
	tc_ack(rap, MQTT_PUBACK, p.publish.packet_id);
	tc_receive_qos(plain, "rap/t", "not retained", 1);

	subscribe_ok(plain, "rap/#", 1, 0);
	p = tc_expect_publish(plain, "rap/t", "retained", 1);
	cr_assert(p.publish.retain, "retained message sent on SUBSCRIBE without RETAIN (3.3.1.3)");
	tc_ack(plain, MQTT_PUBACK, p.publish.packet_id);
	tc_disconnect(rap);
	tc_disconnect(plain);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* ---- Retain Handling ---- */

static void expect_retained(struct tclient *c, const char *topic, const char *payload)
{
	struct mqtt_packet p = tc_expect_publish(c, topic, payload, 1);

	cr_assert(p.publish.retain, "%s: retained message without RETAIN", c->name);
	tc_ack(c, MQTT_PUBACK, p.publish.packet_id);
}

/* [MQTT-3.3.1-11] Retain Handling 2 sends no retained message;
 * [MQTT-3.3.1-10] 1 sends them only for a new subscription;
 * [MQTT-3.3.1-9] 0 sends them on every SUBSCRIBE, also one replacing an
 * existing subscription [MQTT-3.8.4-4]. */
Test(subopts, retain_handling_0_1_2_MQTT_3_3_1_9_10_11)
{
	struct broker b;
	struct tclient *c, *pub;

	broker_start(&b, NULL);
	pub = connect_v5(&b, "rh-pub");
	tc_publish(pub, "rh/t", "kept", 1, true);
	c = connect_v5(&b, "rh-sub");

	subscribe_ok(c, "rh/t", 1 | OPT_RH(2), 0);
	tc_expect_nothing(c, TC_QUIET_MS); /* [MQTT-3.3.1-11] */
	subscribe_ok(c, "rh/t", 1 | OPT_RH(1), 0);
	tc_expect_nothing(c, TC_QUIET_MS); /* [MQTT-3.3.1-10] it existed */
	subscribe_ok(c, "rh/+", 1 | OPT_RH(1), 0);
	expect_retained(c, "rh/t", "kept"); /* [MQTT-3.3.1-10] a new one */
	subscribe_ok(c, "rh/+", 1 | OPT_RH(1), 0);
	tc_expect_nothing(c, TC_QUIET_MS);
	subscribe_ok(c, "rh/t", 1 | OPT_RH(0), 0);
	expect_retained(c, "rh/t", "kept"); /* [MQTT-3.3.1-9] [MQTT-3.8.4-4] */
	tc_expect_nothing(c, TC_QUIET_MS);
	tc_disconnect(c);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* ---- Wildcard subscriptions switched off ---- */

/* wildcard_subscription_available false: CONNACK Wildcard Subscription
 * Available 0 (3.2.2.3.11); each wildcard filter, shared or not, gets
 * SUBACK 0xA2 (0x80 for 3.1.1) while a plain one in the same SUBSCRIBE is
 * granted and works. */
Test(subopts, wildcard_subscription_unavailable_suback_0xa2)
{
	static const char *const filters[] = {"w/+", "w/#", "w/t", "$share/g/w/+"};
	static const uint8_t opts[] = {1, 1, 1, 1};
	struct broker b;
	struct tclient *c, *old;
	struct mqtt_packet p = tc_connect_packet(MQTT_V5, "woff"), ack;
	uint8_t codes[4];

	harness_ringmq_only("wildcard_subscription_available is a ringmq directive");
	broker_start(&b, "wildcard_subscription_available false\n");
	c = tc_connect_with(&b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0, "%s", tc_describe(&ack));
	cr_assert(ack.connack.props.present & MQTT_HAS(MQTT_PROP_WILDCARD_SUB_AVAILABLE),
		  "CONNACK without Wildcard Subscription Available");
	cr_assert_eq(ack.connack.props.wildcard_available, 0);
	tc_subscribe_many(c, filters, opts, 4, codes);
	cr_assert_eq(codes[0], MQTT_RC_WILDCARD_SUB_NOT_SUPPORTED, "'w/+': 0x%02x", codes[0]);
	cr_assert_eq(codes[1], MQTT_RC_WILDCARD_SUB_NOT_SUPPORTED, "'w/#': 0x%02x", codes[1]);
	cr_assert_eq(codes[2], 1, "'w/t': 0x%02x", codes[2]);
	cr_assert_eq(codes[3], MQTT_RC_WILDCARD_SUB_NOT_SUPPORTED, "'$share/g/w/+': 0x%02x", codes[3]);
	old = tc_connect(&b, MQTT_V311, "woff-311", true);
	cr_assert_eq(tc_subscribe_opts(old, "w/+", 1), 0x80, "3.1.1 wildcard filter not refused with 0x80");
	tc_publish(old, "w/t", "plain works", 1, false);
	tc_receive_qos(c, "w/t", "plain works", 1);
	tc_disconnect(old);
	tc_disconnect(c);
	broker_stop(&b);
}
