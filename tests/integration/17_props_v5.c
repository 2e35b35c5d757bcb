/*
 * 17_props_v5.c - MQTT 5 application properties of PUBLISH end to end:
 * request/response, payload format, content type, user properties.
 *
 * Request/response: Response Topic and Correlation Data reach the
 * responder unaltered, so that a response published to that topic with
 * that data reaches the requester; a Response Topic with a wildcard is a
 * Protocol Error.  Payload Format Indicator 1 promises UTF-8: ringmq
 * checks it (a MAY) and refuses a payload that is not (PUBACK / PUBREC
 * 0x99, 3.3.2.3.2), which is then delivered to nobody; indicator 0 is
 * binary and passes as is.  Content Type and user properties (in order, repeated
 * names included) are forwarded, also with a retained message sent on a
 * later SUBSCRIBE.  10_v5 checks the same properties on one live message.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "tclient.h"

TestSuite(props, .timeout = 60);

static struct tclient *connect_v5(const struct broker *b, const char *id)
{
	return tc_connect(b, MQTT_V5, id, true);
}

/* Send @p (QoS 1 or 2) and return the PUBACK / PUBREC's reason code. */
static uint8_t send_for_reason(struct tclient *c, struct mqtt_packet *p)
{
	struct mqtt_packet a;

	(void)tc_send(c, p);
	a = tc_expect(c, p->publish.qos == 1 ? MQTT_PUBACK : MQTT_PUBREC);
	cr_assert_eq(a.ack.packet_id, p->publish.packet_id, "%s", tc_describe(&a));
	return a.ack.reason;
}

/* ---- Request / response (4.10) ---- */

/* [MQTT-3.3.2-15] [MQTT-3.3.2-16] Response Topic and Correlation Data
 * (binary, with a zero byte) reach the responder unaltered; its response
 * to that topic with that data reaches the requester. */
Test(props, request_response_round_trip_MQTT_3_3_2_15_16)
{
	static const uint8_t corr[] = {0x00, 0x7f, 0x80, 0xff, 'i', 'd'};
	struct broker b;
	struct tclient *req, *resp;
	struct mqtt_packet p;
	char reply_topic[64];
	uint8_t data[sizeof(corr)];

	broker_start(&b, NULL);
	req = connect_v5(&b, "rr-requester");
	resp = connect_v5(&b, "rr-responder");
	tc_subscribe(req, "rr/reply/requester", 1);
	tc_subscribe(resp, "rr/req", 1);

	p = tc_publish_packet(req, "rr/req", "what time is it", 1, false);
	p.publish.props.present = MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC) | MQTT_HAS(MQTT_PROP_CORRELATION_DATA);
	p.publish.props.response_topic = tc_str("rr/reply/requester");
	p.publish.props.correlation_data = (struct mqtt_str){corr, sizeof(corr)};
	cr_assert_lt(send_for_reason(req, &p), 0x80);

	p = tc_expect_publish(resp, "rr/req", "what time is it", 1);
	cr_assert(p.publish.props.present & MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC), "Response Topic lost [MQTT-3.3.2-15]");
	cr_assert(p.publish.props.present & MQTT_HAS(MQTT_PROP_CORRELATION_DATA),
		  "Correlation Data lost [MQTT-3.3.2-16]");
	cr_assert(p.publish.props.correlation_data.len == sizeof(corr) &&
			  memcmp(p.publish.props.correlation_data.ptr, corr, sizeof(corr)) == 0,
		  "Correlation Data altered [MQTT-3.3.2-16]");
	snprintf(reply_topic, sizeof(reply_topic), "%s", tc_dup(p.publish.props.response_topic));
	memcpy(data, p.publish.props.correlation_data.ptr, sizeof(data));
	tc_ack(resp, MQTT_PUBACK, p.publish.packet_id);

	p = tc_publish_packet(resp, reply_topic, "noon", 1, false);
	p.publish.props.present = MQTT_HAS(MQTT_PROP_CORRELATION_DATA);
	p.publish.props.correlation_data = (struct mqtt_str){data, sizeof(data)};
	cr_assert_lt(send_for_reason(resp, &p), 0x80);
	p = tc_expect_publish(req, "rr/reply/requester", "noon", 1);
	cr_assert(p.publish.props.correlation_data.len == sizeof(corr) &&
			  memcmp(p.publish.props.correlation_data.ptr, corr, sizeof(corr)) == 0,
		  "response's Correlation Data altered");
	tc_ack(req, MQTT_PUBACK, p.publish.packet_id);
	tc_disconnect(req);
	tc_disconnect(resp);
	broker_stop(&b);
}

/* [MQTT-3.3.2-14] a Response Topic must not contain wildcards: a PUBLISH
 * with one is a Protocol Error, DISCONNECT 0x82.  Built byte by byte. */
Test(props, response_topic_with_wildcard_disconnect_0x82_MQTT_3_3_2_14)
{
	struct broker b;
	struct tclient *c;
	struct tc_bytes w = {.len = 0};

	harness_mosquitto_deviates("[MQTT-3.3.2-14] mosquitto 2.0.11 forwards a Response Topic with wildcards");
	broker_start(&b, NULL);
	c = connect_v5(&b, "rtw");
	tc_put_str(&w, "rtw/t");
	tc_put_varint(&w, 1 + 2 + 6);
	tc_put_u8(&w, MQTT_PROP_RESPONSE_TOPIC);
	tc_put_str(&w, "rtw/+/");
	tc_put_raw(&w, "x", 1);
	(void)tc_send_frame(c, MQTT_PUBLISH << 4, &w);
	tc_expect_disconnect(c, MQTT_RC_PROTOCOL_ERROR);
	tc_close(c);
	broker_stop(&b);
}

/* ---- Payload Format Indicator ---- */

/* 3.3.2.3.2: a server MAY check that a payload under Payload Format
 * Indicator 1 is UTF-8; ringmq does, and refuses one that is not - PUBACK
 * 0x99 at QoS 1, PUBREC 0x99 at QoS 2 (which ends that flow), dropped at
 * QoS 0 - so it reaches no subscriber; the connection stays usable. */
Test(props, payload_format_1_with_invalid_utf8_refused_0x99)
{
	static const char bad[] = "caf\xc3"; /* a truncated two-byte sequence */
	struct broker b;
	struct tclient *sub, *pub;
	struct mqtt_packet p;

	harness_ringmq_only("checking the payload against Payload Format Indicator 1 is optional (MAY); "
			    "mosquitto 2.0.11 does not");
	broker_start(&b, NULL);
	sub = connect_v5(&b, "pfx-sub");
	tc_subscribe(sub, "pfx/t", 2);
	pub = connect_v5(&b, "pfx-pub");
	for (uint8_t qos = 0; qos <= 2; qos++) {
		p = tc_publish_packet(pub, "pfx/t", bad, qos, false);
		p.publish.props.present = MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT);
		p.publish.props.payload_format = 1;
		if (qos == 0)
			(void)tc_send(pub, &p);
		else
			cr_assert_eq(send_for_reason(pub, &p), MQTT_RC_PAYLOAD_FORMAT_INVALID,
				     "QoS %u: not-UTF-8 payload under Payload Format Indicator 1 accepted", qos);
	}
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_publish(pub, "pfx/t", "still connected", 1, false);
	tc_receive_qos(sub, "pfx/t", "still connected", 1);
	tc_disconnect(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* [MQTT-3.3.2-4] the Payload Format Indicator, 1 with a UTF-8 payload or 0
 * with any bytes, is forwarded unaltered, [MQTT-3.3.2-20] with the
 * Content Type. */
Test(props, payload_format_and_content_type_forwarded_MQTT_3_3_2_4)
{
	static const char binary[] = "caf\xc3";
	struct broker b;
	struct tclient *sub, *pub;
	struct mqtt_packet p;

	broker_start(&b, NULL);
	sub = connect_v5(&b, "pf-sub");
	tc_subscribe(sub, "pf/t", 1);
	pub = connect_v5(&b, "pf-pub");
	p = tc_publish_packet(pub, "pf/t", "caf\xc3\xa9", 1, false);
	p.publish.props.present = MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT) | MQTT_HAS(MQTT_PROP_CONTENT_TYPE);
	p.publish.props.payload_format = 1;
	p.publish.props.content_type = tc_str("text/plain; charset=utf-8");
	cr_assert_lt(send_for_reason(pub, &p), 0x80);
	p = tc_expect_publish(sub, "pf/t", "caf\xc3\xa9", 1);
	cr_assert(p.publish.props.present & MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT) && p.publish.props.payload_format == 1,
		  "Payload Format Indicator lost [MQTT-3.3.2-4]");
	cr_assert(tc_str_eq(p.publish.props.content_type, "text/plain; charset=utf-8"),
		  "Content Type '%s' [MQTT-3.3.2-20]", tc_dup(p.publish.props.content_type));
	tc_ack(sub, MQTT_PUBACK, p.publish.packet_id);

	p = tc_publish_packet(pub, "pf/t", binary, 1, false);
	p.publish.props.present = MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT) | MQTT_HAS(MQTT_PROP_CONTENT_TYPE);
	p.publish.props.payload_format = 0;
	p.publish.props.content_type = tc_str("application/octet-stream");
	cr_assert_lt(send_for_reason(pub, &p), 0x80, "binary payload (indicator 0) refused");
	p = tc_expect_publish(sub, "pf/t", binary, 1);
	cr_assert(p.publish.props.present & MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT) && p.publish.props.payload_format == 0,
		  "Payload Format Indicator 0 not forwarded [MQTT-3.3.2-4]");
	cr_assert(tc_str_eq(p.publish.props.content_type, "application/octet-stream"), "Content Type '%s'",
		  tc_dup(p.publish.props.content_type));
	tc_ack(sub, MQTT_PUBACK, p.publish.packet_id);
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_disconnect(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* ---- User properties ---- */

/* [MQTT-3.3.2-17] [MQTT-3.3.2-18] twelve user properties, names repeated,
 * empty and non-ASCII strings included, arrive unaltered and in order,
 * with the Content Type - live, and again with the retained copy sent on
 * a later SUBSCRIBE. */
Test(props, user_properties_in_order_live_and_retained_MQTT_3_3_2_18)
{
	static const char *const users[] = {
		"k", "1", "k", "2", "", "empty name", "empty value", "", "\xc3\xa9t\xc3\xa9", "summer",
		"a", "x", "b", "y", "a", "z", "k", "3", "long", "0123456789abcdefghijklmnopqrstuvwxyz",
		"z", "last but one", "0", "last"};
	struct broker b;
	struct tclient *live, *late, *pub;
	struct mqtt_packet p;
	uint8_t ublock[512], got[512];
	uint32_t ulen;

	broker_start(&b, NULL);
	live = connect_v5(&b, "up-live");
	tc_subscribe(live, "up/t", 1);
	pub = connect_v5(&b, "up-pub");
	p = tc_publish_packet(pub, "up/t", "body", 1, true);
	p.publish.props.present = MQTT_HAS(MQTT_PROP_CONTENT_TYPE);
	p.publish.props.content_type = tc_str("application/x-test");
	tc_user_props(&p.publish.props, users, 12, ublock, sizeof(ublock));
	ulen = p.publish.props.user.len;
	cr_assert_lt(send_for_reason(pub, &p), 0x80);

	late = NULL;
	for (int round = 0; round < 2; round++) {
		struct tclient *c = round == 0 ? live : late;
		const struct mqtt_props *pr;

		if (round == 1) {
			late = c = connect_v5(&b, "up-late");
			tc_subscribe(c, "up/#", 1);
		}
		p = tc_expect_publish(c, "up/t", "body", 1);
		pr = &p.publish.props;
		cr_assert_eq(pr->user_count, 12, "%s: %u user properties, sent 12 [MQTT-3.3.2-17]", c->name,
			     pr->user_count);
		cr_assert_eq(mqtt_props_user_len(pr), ulen, "%s: user properties of %u bytes, sent %u", c->name,
			     mqtt_props_user_len(pr), ulen);
		(void)mqtt_props_user_copy(pr, got);
		cr_assert(memcmp(got, ublock, ulen) == 0, "%s: user properties altered or reordered [MQTT-3.3.2-18]",
			  c->name);
		cr_assert(tc_str_eq(pr->content_type, "application/x-test"), "%s: Content Type '%s'", c->name,
			  tc_dup(pr->content_type));
		tc_ack(c, MQTT_PUBACK, p.publish.packet_id);
	}
	tc_disconnect(live);
	tc_disconnect(late);
	tc_disconnect(pub);
	broker_stop(&b);
}
