/*
 * 12_flow_v5.c - MQTT 5 topic aliases, flow control, packet size and
 * message expiry.
 *
 * Topic aliases both ways: the server accepts every alias from 1 to the
 * Topic Alias Maximum it announced, lets a client re-map one, and forgets
 * them with the connection; towards a client that announced a Topic Alias
 * Maximum, ringmq assigns aliases itself (first PUBLISH of a topic: topic
 * and alias, later ones: empty topic and the same alias), never above the
 * client's maximum nor max_topic_alias_out.  Receive Maximum both ways:
 * a QoS 2 delivery holds its slot until PUBCOMP (or a failed PUBREC), and
 * a client with more unreleased QoS 2 PUBLISHes than the server's Receive
 * Maximum (max_receive_inflight) is disconnected with 0x93.  Maximum
 * Packet Size: a message too large for one client is discarded for it as
 * if delivered, so it does not hold a Receive Maximum slot.  Message
 * expiry: a message whose interval passed while queued (offline session,
 * or behind a full window, or retained) is never delivered, and one that
 * is delivered carries the remaining interval.  The time-based tests wait
 * a bounded time for something that must not happen.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "tclient.h"

TestSuite(flow, .timeout = 60);

/* Connect MQTT 5 with CONNECT properties @props (may be NULL); fails unless accepted. */
static struct tclient *connect_props(const struct broker *b, const char *id, bool clean,
				     const struct mqtt_props *props, struct mqtt_packet *ret_ack)
{
	struct mqtt_packet p = tc_connect_packet(MQTT_V5, id), ack;
	struct tclient *c;

	p.connect.clean = clean;
	if (props)
		p.connect.props = *props;
	c = tc_connect_with(b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0, "%s: %s", id, tc_describe(&ack));
	if (ret_ack)
		*ret_ack = ack;
	return c;
}

/* A PUBLISH with Topic Alias @alias; QoS 1 waits for a successful PUBACK. */
static void publish_alias(struct tclient *c, const char *topic, uint16_t alias, const char *payload, uint8_t qos)
{
	struct mqtt_packet p = tc_publish_packet(c, topic, payload, qos, false), a;

	p.publish.props.present = MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
	p.publish.props.topic_alias = alias;
	(void)tc_send(c, &p);
	if (qos == 1) {
		a = tc_expect(c, MQTT_PUBACK);
		cr_assert(a.ack.packet_id == p.publish.packet_id && a.ack.reason < 0x80,
			  "alias %u topic '%s': %s", alias, topic, tc_describe(&a));
	}
}

/* A QoS @qos PUBLISH with Message Expiry Interval @expiry (0: none), acknowledged. */
static void publish_expiring(struct tclient *c, const char *topic, const char *payload, uint8_t qos, bool retain,
			     uint32_t expiry)
{
	struct mqtt_packet p = tc_publish_packet(c, topic, payload, qos, retain), a;

	if (expiry) {
		p.publish.props.present = MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY);
		p.publish.props.message_expiry = expiry;
	}
	(void)tc_send(c, &p);
	if (qos == 1) {
		a = tc_expect(c, MQTT_PUBACK);
		cr_assert(a.ack.reason < 0x80, "%s", tc_describe(&a));
	}
}

static const char *payload_of(size_t n)
{
	static char buf[4096];

	cr_assert(n < sizeof(buf));
	memset(buf, 'x', n);
	buf[n] = '\0';
	return buf;
}

/* ---- Topic aliases, client to server ---- */

/* [MQTT-3.3.2-12] the server accepts every alias from 1 to the Topic Alias
 * Maximum it announced (default max_topic_alias 10); an alias set again
 * with a topic is re-mapped, an empty topic uses the current mapping. */
Test(flow, inbound_topic_alias_set_remapped_and_used_MQTT_3_3_2_12)
{
	static const struct {
		const char *topic;
		uint16_t alias;
		const char *payload, *resolved;
	} steps[] = {
		{"ta/a", 1, "one", "ta/a"},   {"ta/b", 1, "two", "ta/b"}, {"", 1, "three", "ta/b"},
		{"ta/c", 10, "four", "ta/c"}, {"", 10, "five", "ta/c"},   {"", 1, "six", "ta/b"},
	};
	struct broker b;
	struct tclient *sub, *pub;
	struct mqtt_packet ack;

	broker_start(&b, NULL);
	sub = connect_props(&b, "tain-sub", true, NULL, NULL);
	tc_subscribe(sub, "ta/#", 1);
	pub = connect_props(&b, "tain-pub", true, NULL, &ack);
	cr_assert(ack.connack.props.present & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX), "no Topic Alias Maximum");
	cr_assert_eq(ack.connack.props.topic_alias_max, 10, "Topic Alias Maximum %u, default 10",
		     ack.connack.props.topic_alias_max);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		publish_alias(pub, steps[i].topic, steps[i].alias, steps[i].payload, 1);
		tc_receive_qos(sub, steps[i].resolved, steps[i].payload, 1);
	}
	tc_disconnect(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* [MQTT-3.3.2-7] alias mappings do not survive the connection: on a new
 * connection an empty topic with an alias set before is a Protocol Error
 * (3.3.2.3.4): DISCONNECT 0x82. */
Test(flow, topic_alias_not_carried_to_next_connection_MQTT_3_3_2_7)
{
	struct broker b;
	struct tclient *pub;
	struct mqtt_packet p;

	broker_start(&b, NULL);
	pub = connect_props(&b, "tac", true, NULL, NULL);
	publish_alias(pub, "tac/t", 2, "set", 1);
	tc_disconnect(pub);
	pub = connect_props(&b, "tac", false, NULL, NULL);
	p = tc_publish_packet(pub, "", "use", 1, false);
	p.publish.props.present = MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
	p.publish.props.topic_alias = 2;
	(void)tc_send(pub, &p);
	tc_expect_disconnect(pub, MQTT_RC_PROTOCOL_ERROR);
	tc_close(pub);
	broker_stop(&b);
}

/* max_topic_alias 0: CONNACK says Topic Alias Maximum 0 (or leaves it out,
 * which means 0) [MQTT-3.2.2-18], and any alias is above it: DISCONNECT
 * 0x94 (3.3.2.3.4). */
Test(flow, topic_alias_maximum_0_refuses_every_alias_MQTT_3_2_2_18)
{
	struct broker b;
	struct tclient *pub;
	struct mqtt_packet p, ack;

	broker_start(&b, "max_topic_alias 0\n");
	pub = connect_props(&b, "taz", true, NULL, &ack);
	cr_assert(!(ack.connack.props.present & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX)) ||
			  ack.connack.props.topic_alias_max == 0,
		  "Topic Alias Maximum %u with max_topic_alias 0", ack.connack.props.topic_alias_max);
	p = tc_publish_packet(pub, "taz/t", "x", 0, false);
	p.publish.props.present = MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
	p.publish.props.topic_alias = 1;
	(void)tc_send(pub, &p);
	tc_expect_disconnect(pub, MQTT_RC_TOPIC_ALIAS_INVALID);
	tc_close(pub);
	broker_stop(&b);
}

/* ---- Topic aliases, server to client ---- */

/*
 * Receive @n PUBLISHes (QoS 0) whose resolved topics must be @topics[i]
 * with payload @payloads[i], resolving aliases as a client must; checks
 * the aliases stay within 1..@max [MQTT-3.3.2-11] and that ringmq sends a
 * known alias with an empty topic.  Returns how many PUBLISHes used an alias.
 */
static unsigned receive_aliased(struct tclient *c, uint16_t max, const char *const *topics,
				const char *const *payloads, unsigned n)
{
	char map[65][64];
	unsigned used = 0;

	memset(map, 0, sizeof(map));
	for (unsigned i = 0; i < n; i++) {
		struct mqtt_packet p = tc_expect(c, MQTT_PUBLISH);
		const char *topic = tc_dup(p.publish.topic);

		cr_assert(tc_str_eq(p.publish.payload, payloads[i]), "%s: expected payload '%s', got %s", c->name,
			  payloads[i], tc_describe(&p));
		if (p.publish.props.present & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS)) {
			uint16_t a = p.publish.props.topic_alias;

			cr_assert(a >= 1 && a <= max, "Topic Alias %u, client's maximum %u [MQTT-3.3.2-11]", a, max);
			cr_assert(a < 65);
			if (*topic) {
				cr_assert(strcmp(topic, topics[i]) == 0, "topic '%s' with alias %u, expected '%s'",
					  topic, a, topics[i]);
				/* ringmq assigns an alias once per topic, so a topic arriving
				 * again with a topic name must not move to another alias */
				cr_assert(map[a][0] == '\0', "alias %u re-mapped from '%s' to '%s'", a, map[a], topic);
				snprintf(map[a], sizeof(map[a]), "%s", topic);
			} else {
				cr_assert(map[a][0], "empty topic with alias %u that was never set (3.3.2.3.4)", a);
				cr_assert(strcmp(map[a], topics[i]) == 0, "alias %u means '%s', expected '%s'", a,
					  map[a], topics[i]);
			}
			used++;
		} else {
			cr_assert(strcmp(topic, topics[i]) == 0, "topic '%s', expected '%s'", topic, topics[i]);
			for (unsigned k = 1; k <= max && k < 65; k++)
				cr_assert(strcmp(map[k], topic) != 0, "'%s' sent in full although alias %u is set",
					  topic, k);
		}
	}
	return used;
}

/* [MQTT-3.3.2-11] [MQTT-3.1.2-26] a client with Topic Alias Maximum 3 gets
 * aliases only from 1 to 3: the first PUBLISH of an aliased topic carries
 * the topic and the alias, the later ones the alias and an empty topic;
 * topics beyond the aliases go in full.  A new connection starts without
 * mappings [MQTT-3.3.2-7]: its first PUBLISH carries the topic again. */
Test(flow, outbound_topic_aliases_within_client_maximum_MQTT_3_3_2_11)
{
	enum { T = 6 };
	static const char *const topics[2 * T] = {"to/0", "to/1", "to/2", "to/3", "to/4", "to/5",
						  "to/0", "to/1", "to/2", "to/3", "to/4", "to/5"};
	static const char *const payloads[2 * T] = {"a0", "a1", "a2", "a3", "a4", "a5",
						    "b0", "b1", "b2", "b3", "b4", "b5"};
	struct broker b;
	struct tclient *sub, *pub;
	struct mqtt_props props = {.present = MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX), .topic_alias_max = 3};
	unsigned used;

	harness_ringmq_only("assigning topic aliases towards clients is ringmq's choice (3.3.2.3.4: MAY)");
	broker_start(&b, NULL);
	sub = connect_props(&b, "taout-sub", true, &props, NULL);
	tc_subscribe(sub, "to/#", 0);
	pub = connect_props(&b, "taout-pub", true, NULL, NULL);
	for (unsigned i = 0; i < 2 * T; i++)
		tc_publish(pub, topics[i], payloads[i], 0, false);
	used = receive_aliased(sub, 3, topics, payloads, 2 * T);
	cr_assert_gt(used, 0, "no Topic Alias sent to a client that allowed 3");
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_disconnect(sub);

	sub = connect_props(&b, "taout-sub", true, &props, NULL);
	tc_subscribe(sub, "to/#", 0);
	tc_publish(pub, "to/0", "again", 0, false);
	(void)tc_expect_publish(sub, "to/0", "again", 0); /* the topic, not an alias alone */
	tc_disconnect(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* [MQTT-3.1.2-27] max_topic_alias_out 0 sends no aliases even to a client
 * that allows them; max_topic_alias_out 2 caps a client's 10 at 2. */
Test(flow, max_topic_alias_out_limits_server_aliases_MQTT_3_1_2_27)
{
	static const char *const topics[] = {"tl/0", "tl/1", "tl/2", "tl/3", "tl/0", "tl/1", "tl/2", "tl/3"};
	static const char *const payloads[] = {"0", "1", "2", "3", "4", "5", "6", "7"};
	static const char *const conf[] = {"max_topic_alias_out 0\n", "max_topic_alias_out 2\n"};
	struct mqtt_props props = {.present = MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX), .topic_alias_max = 10};

	harness_ringmq_only("max_topic_alias_out is a ringmq directive");
	for (unsigned k = 0; k < 2; k++) {
		struct broker b;
		struct tclient *sub, *pub;
		unsigned used;

		broker_start(&b, conf[k]);
		sub = connect_props(&b, "tl-sub", true, &props, NULL);
		tc_subscribe(sub, "tl/#", 0);
		pub = connect_props(&b, "tl-pub", true, NULL, NULL);
		for (unsigned i = 0; i < 8; i++)
			tc_publish(pub, topics[i], payloads[i], 0, false);
		used = receive_aliased(sub, k == 0 ? 0 : 2, topics, payloads, 8);
		if (k == 1)
			cr_assert_gt(used, 0, "no alias with max_topic_alias_out 2");
		tc_disconnect(sub);
		tc_disconnect(pub);
		broker_stop(&b);
	}
}

/* ---- Receive Maximum ---- */

/* [MQTT-3.3.4-9] a QoS 2 delivery counts against the client's Receive
 * Maximum until PUBCOMP, or until a PUBREC with a reason of 0x80 or more,
 * which also ends its flow (no PUBREL follows). */
Test(flow, receive_maximum_holds_qos2_slot_until_pubcomp_MQTT_3_3_4_9)
{
	struct broker b;
	struct tclient *sub, *pub;
	struct mqtt_props props = {.present = MQTT_HAS(MQTT_PROP_RECEIVE_MAX), .receive_max = 1};
	struct mqtt_packet p, rec = {.type = MQTT_PUBREC};
	uint16_t id;

	broker_start(&b, NULL);
	sub = connect_props(&b, "rm2-sub", true, &props, NULL);
	tc_subscribe(sub, "rm2/t", 2);
	pub = connect_props(&b, "rm2-pub", true, NULL, NULL);
	tc_publish(pub, "rm2/t", "one", 2, false);
	tc_publish(pub, "rm2/t", "two", 2, false);
	tc_publish(pub, "rm2/t", "three", 2, false);

	id = tc_expect_publish(sub, "rm2/t", "one", 2).publish.packet_id;
	tc_ack(sub, MQTT_PUBREC, id);
	p = tc_expect(sub, MQTT_PUBREL);
	cr_assert_eq(p.ack.packet_id, id);
	tc_expect_nothing(sub, TC_QUIET_MS); /* PUBREC does not free the slot */
	tc_ack(sub, MQTT_PUBCOMP, id);

	id = tc_expect_publish(sub, "rm2/t", "two", 2).publish.packet_id;
	tc_expect_nothing(sub, TC_QUIET_MS);
	rec.ack.packet_id = id;
	rec.ack.reason = MQTT_RC_UNSPECIFIED; /* refuse it: the flow ends here */
	(void)tc_send(sub, &rec);

	tc_receive_qos(sub, "rm2/t", "three", 2); /* no PUBREL for "two" first */
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_disconnect(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* A client that leaves more QoS 2 PUBLISHes unreleased than the Receive
 * Maximum the server announced (max_receive_inflight 2) exceeds it:
 * DISCONNECT 0x93 (3.2.2.3.3).  A PUBREL gives a slot back. */
Test(flow, client_exceeding_server_receive_maximum_disconnect_0x93)
{
	struct broker b;
	struct tclient *pub;
	struct mqtt_packet ack, p;
	uint16_t ids[4];

	harness_ringmq_only("max_receive_inflight is a ringmq directive");
	broker_start(&b, "max_receive_inflight 2\n");
	pub = connect_props(&b, "rmx", true, NULL, &ack);
	cr_assert(ack.connack.props.present & MQTT_HAS(MQTT_PROP_RECEIVE_MAX), "no Receive Maximum in CONNACK");
	cr_assert_eq(ack.connack.props.receive_max, 2, "Receive Maximum %u, configured 2",
		     ack.connack.props.receive_max);
	for (int i = 0; i < 2; i++) {
		ids[i] = tc_publish_send(pub, "rmx/t", "held", 2, false);
		p = tc_expect(pub, MQTT_PUBREC);
		cr_assert(p.ack.packet_id == ids[i] && p.ack.reason < 0x80, "%s", tc_describe(&p));
	}
	tc_ack(pub, MQTT_PUBREL, ids[0]);
	p = tc_expect(pub, MQTT_PUBCOMP);
	cr_assert_eq(p.ack.packet_id, ids[0]);
	ids[2] = tc_publish_send(pub, "rmx/t", "fits again", 2, false);
	p = tc_expect(pub, MQTT_PUBREC);
	cr_assert(p.ack.packet_id == ids[2] && p.ack.reason < 0x80, "%s", tc_describe(&p));
	ids[3] = tc_publish_send(pub, "rmx/t", "one too many", 2, false);
	(void)ids[3];
	tc_expect_disconnect(pub, MQTT_RC_RECEIVE_MAX_EXCEEDED);
	tc_close(pub);
	broker_stop(&b);
}

/* ---- Maximum Packet Size ---- */

/* [MQTT-3.1.2-24] a QoS 1 message larger than the client's Maximum Packet
 * Size is not sent to it, [MQTT-3.1.2-25] the server behaves as if it had
 * been delivered: with Receive Maximum 1 and nothing acknowledged, the
 * next message still arrives.  Another subscriber gets both. */
Test(flow, oversized_qos1_message_discarded_as_if_delivered_MQTT_3_1_2_25)
{
	struct broker b;
	struct tclient *small, *big, *pub;
	struct mqtt_props props = {.present = MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE) | MQTT_HAS(MQTT_PROP_RECEIVE_MAX),
				   .max_packet_size = 100,
				   .receive_max = 1};

	harness_mosquitto_deviates("[MQTT-3.1.2-25] mosquitto 2.0.11 keeps a discarded oversized QoS 1 message "
				   "in the client's Receive Maximum window");
	broker_start(&b, NULL);
	small = connect_props(&b, "mps1-small", true, &props, NULL);
	big = connect_props(&b, "mps1-big", true, NULL, NULL);
	tc_subscribe(small, "mps1/t", 1);
	tc_subscribe(big, "mps1/t", 1);
	pub = connect_props(&b, "mps1-pub", true, NULL, NULL);
	tc_publish(pub, "mps1/t", payload_of(200), 1, false);
	tc_publish(pub, "mps1/t", "fits", 1, false);
	tc_publish(pub, "mps1/t", "fits too", 1, false);
	tc_receive_qos(big, "mps1/t", payload_of(200), 1);
	tc_receive_qos(big, "mps1/t", "fits", 1);
	tc_receive_qos(big, "mps1/t", "fits too", 1);
	(void)tc_expect_publish(small, "mps1/t", "fits", 1); /* not acknowledged: the window is full */
	tc_expect_nothing(small, TC_QUIET_MS);
	tc_disconnect(small);
	tc_disconnect(big);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* ---- Message expiry ---- */

/*
 * [MQTT-3.3.2-5] a message that expires while queued for an offline
 * session is not delivered; [MQTT-3.3.2-6] one that has not carries the
 * received interval minus the waiting time; a message without an interval
 * carries none.  The same for retained messages sent on SUBSCRIBE.
 */
Test(flow, expired_messages_never_delivered_to_resumed_session_MQTT_3_3_2_5)
{
	struct broker b;
	struct tclient *sub, *pub;
	struct mqtt_props props = {.present = MQTT_HAS(MQTT_PROP_SESSION_EXPIRY), .session_expiry = 60};
	struct mqtt_packet p, ack;
	int64_t t0;

	broker_start(&b, NULL);
	sub = connect_props(&b, "mx-sub", true, &props, NULL);
	tc_subscribe(sub, "mx/t", 1);
	tc_disconnect(sub); /* the session stays for 60 s */
	pub = connect_props(&b, "mx-pub", true, NULL, NULL);
	t0 = harness_now_ms();
	publish_expiring(pub, "mx/t", "short", 1, false, 1);
	publish_expiring(pub, "mx/t", "long", 1, false, 60);
	publish_expiring(pub, "mx/t", "none", 1, false, 0);
	publish_expiring(pub, "mx/r1", "retained short", 1, true, 1);
	publish_expiring(pub, "mx/r2", "retained long", 1, true, 60);
	tc_expect_nothing(pub, 2200); /* bounded wait: "short" expires meanwhile */
	cr_assert_geq(harness_now_ms() - t0, 2000);

	sub = connect_props(&b, "mx-sub", false, &props, &ack);
	cr_assert(ack.connack.session_present, "session lost");
	p = tc_expect_publish(sub, "mx/t", "long", 1); /* "short" expired in the queue */
	cr_assert(p.publish.props.present & MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY), "Message Expiry Interval lost");
	cr_assert(p.publish.props.message_expiry <= 58 && p.publish.props.message_expiry >= 50,
		  "Message Expiry Interval %u after 2+ s of 60 [MQTT-3.3.2-6]", p.publish.props.message_expiry);
	tc_ack(sub, MQTT_PUBACK, p.publish.packet_id);
	p = tc_expect_publish(sub, "mx/t", "none", 1);
	cr_assert(!(p.publish.props.present & MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY)),
		  "Message Expiry Interval %u on a message published without one", p.publish.props.message_expiry);
	tc_ack(sub, MQTT_PUBACK, p.publish.packet_id);
	tc_expect_nothing(sub, TC_QUIET_MS);

	tc_subscribe(sub, "mx/+", 1);
	p = tc_expect_publish(sub, "mx/r2", "retained long", 1);
	cr_assert(p.publish.retain, "retained message without RETAIN");
	cr_assert(p.publish.props.message_expiry <= 58 && p.publish.props.message_expiry >= 50,
		  "retained Message Expiry Interval %u after 2+ s of 60", p.publish.props.message_expiry);
	tc_ack(sub, MQTT_PUBACK, p.publish.packet_id);
	tc_expect_nothing(sub, TC_QUIET_MS); /* "retained short" expired */
	tc_disconnect(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* [MQTT-3.3.2-5] also for a connected client: a message queued behind a
 * full Receive Maximum window that expires there is skipped. */
Test(flow, expired_message_queued_behind_window_not_delivered_MQTT_3_3_2_5)
{
	struct broker b;
	struct tclient *sub, *pub;
	struct mqtt_props props = {.present = MQTT_HAS(MQTT_PROP_RECEIVE_MAX), .receive_max = 1};
	uint16_t id;

	harness_mosquitto_deviates("mosquitto 2.0.11 does not send the message queued behind an expired one "
				   "when the window opens");
	broker_start(&b, NULL);
	sub = connect_props(&b, "mq-sub", true, &props, NULL);
	tc_subscribe(sub, "mq/t", 1);
	pub = connect_props(&b, "mq-pub", true, NULL, NULL);
	publish_expiring(pub, "mq/t", "first", 1, false, 0);
	publish_expiring(pub, "mq/t", "brief", 1, false, 1);
	publish_expiring(pub, "mq/t", "last", 1, false, 0);
	id = tc_expect_publish(sub, "mq/t", "first", 1).publish.packet_id;
	tc_expect_nothing(sub, 1600); /* the window is full; "brief" expires meanwhile */
	tc_ack(sub, MQTT_PUBACK, id);
	tc_receive_qos(sub, "mq/t", "last", 1);
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_disconnect(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}
