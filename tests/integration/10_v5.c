/*
 * 10_v5.c - MQTT 5 properties and the errors they can cause.
 *
 * Forwarding: the broker passes a PUBLISH's application properties to
 * subscribers unchanged (user properties in order), counts Message Expiry
 * down, resolves topic aliases and honours the client's Receive Maximum.
 * Errors: duplicated properties are Protocol Errors (0x82), a property not
 * allowed in the packet makes it Malformed (0x81), bad topic aliases are
 * 0x94 or 0x82, an unknown authentication method is refused.  Bad packets
 * are built byte by byte because the encoder will not write them.
 * Reason strings are optional and not checked.  Subscription identifiers,
 * No Local and Retain As Published are covered in 15_subopts_v5.c.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"
#include "tclient.h"

TestSuite(v5, .timeout = 60);

/* A v5 PUBLISH QoS 0 to @topic whose property block is @props (@len bytes). */
static void send_publish_props(struct tclient *c, const char *topic, const uint8_t *props, size_t len)
{
	struct tc_bytes w = {.len = 0};

	tc_put_str(&w, topic);
	tc_put_varint(&w, (uint32_t)len);
	tc_put_raw(&w, props, len);
	tc_put_raw(&w, "payload", 7);
	(void)tc_send_frame(c, MQTT_PUBLISH << 4, &w);
}

/* [MQTT-3.3.2-4] Payload Format Indicator, [MQTT-3.3.2-15] Response Topic,
 * [MQTT-3.3.2-16] Correlation Data, [MQTT-3.3.2-17/18] user properties in
 * order, [MQTT-3.3.2-20] Content Type are forwarded unaltered;
 * [MQTT-3.3.2-6] Message Expiry Interval is forwarded, minus the waiting
 * time.  A 3.1.1 subscriber gets the same message without properties. */
Test(v5, publish_properties_forwarded_unaltered_MQTT_3_3_2_17)
{
	static const char *const users[] = {"a", "1", "b", "2", "a", "3", "empty", ""};
	static const uint8_t corr[] = {0x00, 0x01, 0xff, 'c'};
	struct broker b;
	struct tclient *sub, *old, *pub;
	struct mqtt_packet p;
	uint8_t ublock[128], got[128];
	uint32_t ulen;
	const struct mqtt_props *pr;

	broker_start(&b, NULL);
	sub = tc_connect(&b, MQTT_V5, "props-sub", true);
	old = tc_connect(&b, MQTT_V311, "props-311", true);
	pub = tc_connect(&b, MQTT_V5, "props-pub", true);
	tc_subscribe(sub, "props/t", 1);
	tc_subscribe(old, "props/t", 1);

	p = tc_publish_packet(pub, "props/t", "body", 1, false);
	p.publish.props.present = MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT) | MQTT_HAS(MQTT_PROP_CONTENT_TYPE) |
				  MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC) | MQTT_HAS(MQTT_PROP_CORRELATION_DATA) |
				  MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY);
	p.publish.props.payload_format = 1;
	p.publish.props.content_type = tc_str("text/plain; charset=utf-8");
	p.publish.props.response_topic = tc_str("props/reply");
	p.publish.props.correlation_data = (struct mqtt_str){corr, sizeof(corr)};
	p.publish.props.message_expiry = 3600;
	tc_user_props(&p.publish.props, users, 4, ublock, sizeof(ublock));
	ulen = p.publish.props.user.len;
	(void)tc_send(pub, &p);
	(void)tc_expect(pub, MQTT_PUBACK);

	p = tc_expect_publish(sub, "props/t", "body", 1);
	pr = &p.publish.props;
	cr_assert(pr->present & MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT) && pr->payload_format == 1,
		  "Payload Format Indicator lost [MQTT-3.3.2-4]");
	cr_assert(pr->present & MQTT_HAS(MQTT_PROP_CONTENT_TYPE), "Content Type lost [MQTT-3.3.2-20]");
	cr_assert(tc_str_eq(pr->content_type, "text/plain; charset=utf-8"), "Content Type '%s'",
		  tc_dup(pr->content_type));
	cr_assert(pr->present & MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC), "Response Topic lost [MQTT-3.3.2-15]");
	cr_assert(tc_str_eq(pr->response_topic, "props/reply"), "Response Topic '%s'", tc_dup(pr->response_topic));
	cr_assert(pr->present & MQTT_HAS(MQTT_PROP_CORRELATION_DATA), "Correlation Data lost [MQTT-3.3.2-16]");
	cr_assert(pr->correlation_data.len == sizeof(corr) && memcmp(pr->correlation_data.ptr, corr, sizeof(corr)) == 0,
		  "Correlation Data altered");
	cr_assert(pr->present & MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY), "Message Expiry Interval lost [MQTT-3.3.2-6]");
	cr_assert(pr->message_expiry > 3500 && pr->message_expiry <= 3600, "Message Expiry Interval %u",
		  pr->message_expiry);
	cr_assert_eq(pr->user_count, 4, "%u user properties, sent 4 [MQTT-3.3.2-17]", pr->user_count);
	cr_assert_eq(mqtt_props_user_len(pr), ulen, "user properties of %u bytes, sent %u", mqtt_props_user_len(pr),
		     ulen);
	(void)mqtt_props_user_copy(pr, got);
	cr_assert(memcmp(got, ublock, ulen) == 0, "user properties altered or reordered [MQTT-3.3.2-18]");
	tc_ack(sub, MQTT_PUBACK, p.publish.packet_id);

	p = tc_expect_publish(old, "props/t", "body", 1);
	tc_ack(old, MQTT_PUBACK, p.publish.packet_id);
	tc_disconnect(sub);
	tc_disconnect(old);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* A property given twice where the specification allows it once is a
 * Protocol Error (3.3.2.3.x "more than once"): DISCONNECT 0x82. */
Test(v5, duplicate_property_in_publish_disconnect_0x82)
{
	static const uint8_t twice[] = {MQTT_PROP_CONTENT_TYPE, 0, 1, 'a', MQTT_PROP_CONTENT_TYPE, 0, 1, 'b'};
	struct broker b;
	struct tclient *c;

	broker_start(&b, NULL);
	c = tc_connect(&b, MQTT_V5, "dupprop", true);
	send_publish_props(c, "dup/t", twice, sizeof(twice));
	tc_expect_disconnect(c, MQTT_RC_PROTOCOL_ERROR);
	tc_close(c);
	broker_stop(&b);
}

/* The same in CONNECT (3.1.2.11.2 Session Expiry Interval twice): the
 * connection is refused, with CONNACK 0x82 from ringmq (4.13: MAY). */
Test(v5, duplicate_property_in_connect_connack_0x82)
{
	struct broker b;
	struct tclient *c;
	struct tc_bytes w = {.len = 0};

	broker_start(&b, NULL);
	tc_put_str(&w, "MQTT");
	tc_put_u8(&w, MQTT_V5);
	tc_put_u8(&w, 0x02);
	tc_put_u16(&w, 60);
	tc_put_varint(&w, 10);
	tc_put_u8(&w, MQTT_PROP_SESSION_EXPIRY);
	tc_put_u32(&w, 10);
	tc_put_u8(&w, MQTT_PROP_SESSION_EXPIRY);
	tc_put_u32(&w, 20);
	tc_put_str(&w, "dupconn");
	c = tc_open(&b, MQTT_V5, "dupconn");
	(void)tc_send_frame(c, MQTT_CONNECT << 4, &w);
	tc_expect_refused(c, MQTT_RC_PROTOCOL_ERROR, !harness_is_mosquitto());
	tc_close(c);
	broker_stop(&b);
}

/* A property identifier not valid for the packet makes it Malformed
 * (2.2.2.2): Session Expiry Interval in PUBLISH gets DISCONNECT 0x81. */
Test(v5, property_not_allowed_in_publish_disconnect_0x81)
{
	static const uint8_t wrong[] = {MQTT_PROP_SESSION_EXPIRY, 0, 0, 0, 5};
	struct broker b;
	struct tclient *c;

	broker_start(&b, NULL);
	c = tc_connect(&b, MQTT_V5, "wrongprop", true);
	send_publish_props(c, "wrong/t", wrong, sizeof(wrong));
	tc_expect_disconnect(c, MQTT_RC_MALFORMED);
	tc_close(c);
	broker_stop(&b);
}

/* The same in CONNECT: Topic Alias (0x23) is a PUBLISH property. */
Test(v5, property_not_allowed_in_connect_refused_0x81)
{
	struct broker b;
	struct tclient *c;
	struct tc_bytes w = {.len = 0};

	broker_start(&b, NULL);
	tc_put_str(&w, "MQTT");
	tc_put_u8(&w, MQTT_V5);
	tc_put_u8(&w, 0x02);
	tc_put_u16(&w, 60);
	tc_put_varint(&w, 3);
	tc_put_u8(&w, MQTT_PROP_TOPIC_ALIAS);
	tc_put_u16(&w, 1);
	tc_put_str(&w, "wrongconn");
	c = tc_open(&b, MQTT_V5, "wrongconn");
	(void)tc_send_frame(c, MQTT_CONNECT << 4, &w);
	tc_expect_refused(c, MQTT_RC_MALFORMED, false);
	tc_close(c);
	broker_stop(&b);
}

/* [MQTT-3.3.1-4] QoS 3 in a PUBLISH closes the connection (MQTT 5: it is
 * Malformed, DISCONNECT 0x81). */
Test(v5, publish_with_qos_3_closes_MQTT_3_3_1_4)
{
	struct broker b;

	broker_start(&b, NULL);
	for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
		struct tclient *c = tc_connect(&b, version, "qos3", true);
		struct tc_bytes w = {.len = 0};

		tc_put_str(&w, "q3/t");
		tc_put_u16(&w, 1);
		if (version == MQTT_V5)
			tc_put_varint(&w, 0);
		tc_put_raw(&w, "x", 1);
		(void)tc_send_frame(c, MQTT_PUBLISH << 4 | 3 << 1, &w);
		tc_expect_disconnect(c, MQTT_RC_MALFORMED);
		tc_close(c);
	}
	broker_stop(&b);
}

/* [MQTT-3.3.2-12] A topic alias set with a topic name can replace the
 * name later; the subscriber, which allowed no aliases (Topic Alias
 * Maximum absent = 0), gets the full name every time [MQTT-3.3.2-... the
 * server MUST NOT send an alias above the client's maximum]. */
Test(v5, topic_alias_resolved_for_subscribers_MQTT_3_3_2_12)
{
	struct broker b;
	struct tclient *sub, *pub;
	struct mqtt_packet p;

	broker_start(&b, "max_topic_alias 10\n");
	sub = tc_connect(&b, MQTT_V5, "alias-sub", true);
	pub = tc_connect(&b, MQTT_V5, "alias-pub", true);
	tc_subscribe(sub, "alias/long/topic/name", 1);
	for (int i = 0; i < 3; i++) {
		p = tc_publish_packet(pub, i == 0 ? "alias/long/topic/name" : "", i == 0 ? "first" : "again", 1, false);
		p.publish.props.present = MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
		p.publish.props.topic_alias = 7;
		(void)tc_send(pub, &p);
		p = tc_expect(pub, MQTT_PUBACK);
		cr_assert_eq(p.ack.reason, 0, "%s", tc_describe(&p));
		p = tc_expect_publish(sub, "alias/long/topic/name", i == 0 ? "first" : "again", 1);
		cr_assert(!(p.publish.props.present & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS)),
			  "Topic Alias sent to a client that allowed none");
		tc_ack(sub, MQTT_PUBACK, p.publish.packet_id);
	}
	tc_disconnect(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* [MQTT-3.3.2-9] an alias above the announced Topic Alias Maximum gets
 * DISCONNECT 0x94 (3.14.2.1); [MQTT-3.3.2-8] alias 0 also gets 0x94 from
 * ringmq, but 0x94 is defined for "greater than the maximum" only, so 0x81
 * (mosquitto) or 0x82 fit section 4.13 as well; an empty topic with an
 * alias never set is a Protocol Error 0x82 (3.3.2.3.4). */
Test(v5, invalid_topic_alias_disconnects_MQTT_3_3_2_8)
{
	static const struct {
		const char *topic;
		uint16_t alias;
		uint8_t reasons[3];
		unsigned n;
	} cases[] = {
		{"a/t", 0, {MQTT_RC_TOPIC_ALIAS_INVALID, MQTT_RC_MALFORMED, MQTT_RC_PROTOCOL_ERROR}, 3},
		{"a/t", 11, {MQTT_RC_TOPIC_ALIAS_INVALID}, 1},
		{"", 3, {MQTT_RC_PROTOCOL_ERROR}, 1},
	};
	struct broker b;

	broker_start(&b, "max_topic_alias 10\n");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mqtt_packet p = tc_connect_packet(MQTT_V5, "badalias"), ack;
		struct tclient *c = tc_connect_with(&b, &p, &ack);

		cr_assert_eq(ack.connack.props.topic_alias_max, 10, "Topic Alias Maximum %u, configured 10",
			     ack.connack.props.topic_alias_max);
		p = tc_publish_packet(c, cases[i].topic, "x", 0, false);
		p.publish.props.present = MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
		p.publish.props.topic_alias = cases[i].alias;
		(void)tc_send(c, &p);
		tc_expect_disconnect_any(c, cases[i].reasons, cases[i].n);
		tc_close(c);
	}
	broker_stop(&b);
}

/* [MQTT-3.3.4-9] The server sends no more unacknowledged QoS 1/2
 * PUBLISHes than the client's Receive Maximum. */
Test(v5, receive_maximum_bounds_unacked_deliveries_MQTT_3_3_4_9)
{
	enum { N = 4 };
	struct broker b;
	struct tclient *sub, *pub;
	struct mqtt_packet p = tc_connect_packet(MQTT_V5, "recv2"), ack;
	uint16_t ids[N];

	harness_mosquitto_deviates("[MQTT-3.3.4-9] mosquitto 2.0.11 sends two queued messages per PUBACK, "
				   "three in flight with Receive Maximum 2");
	broker_start(&b, NULL);
	p.connect.props.present = MQTT_HAS(MQTT_PROP_RECEIVE_MAX);
	p.connect.props.receive_max = 2;
	sub = tc_connect_with(&b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0);
	tc_subscribe(sub, "rm/t", 1);
	pub = tc_connect(&b, MQTT_V5, "rm-pub", true);
	for (int i = 0; i < N; i++)
		tc_publish(pub, "rm/t", i % 2 ? "odd" : "even", 1, false);
	for (int i = 0; i < 2; i++)
		ids[i] = tc_expect_publish(sub, "rm/t", i % 2 ? "odd" : "even", 1).publish.packet_id;
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_ack(sub, MQTT_PUBACK, ids[0]);
	ids[2] = tc_expect_publish(sub, "rm/t", "even", 1).publish.packet_id;
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_ack(sub, MQTT_PUBACK, ids[1]);
	tc_ack(sub, MQTT_PUBACK, ids[2]);
	ids[3] = tc_expect_publish(sub, "rm/t", "odd", 1).publish.packet_id;
	tc_ack(sub, MQTT_PUBACK, ids[3]);
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_disconnect(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* [MQTT-4.12.0-1] An authentication method the server does not support
 * gets CONNACK 0x8C Bad authentication method (or 0x87) and a close. */
Test(v5, unknown_authentication_method_refused_MQTT_4_12_0_1)
{
	struct broker b;
	struct tclient *c;
	struct mqtt_packet p = tc_connect_packet(MQTT_V5, "authme"), ack;

	broker_start(&b, NULL);
	p.connect.props.present = MQTT_HAS(MQTT_PROP_AUTH_METHOD);
	p.connect.props.auth_method = tc_str("X-NO-SUCH-METHOD");
	c = tc_connect_with(&b, &p, &ack);
	cr_assert(ack.connack.reason == MQTT_RC_BAD_AUTH_METHOD || ack.connack.reason == MQTT_RC_NOT_AUTHORIZED,
		  "%s", tc_describe(&ack));
	tc_expect_closed(c);
	tc_close(c);
	broker_stop(&b);
}
