/*
 * 05_will.c - the Will Message.
 *
 * A watcher subscribes to the will topic, then a client with a will ends
 * its connection in one of the ways the specification lists: socket
 * closed without DISCONNECT, keep alive expiry, a protocol error, and (MQTT
 * 5) DISCONNECT 0x04; each must publish the will [MQTT-3.1.2-8].  A normal
 * DISCONNECT must not [MQTT-3.1.2-10].  Wills are published by the client's
 * home shard; the watcher is usually elsewhere.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"
#include "tclient.h"

TestSuite(will, .timeout = 60);

/* Connect @id with a will on @topic (QoS 1, @retain), keep alive @keepalive. */
static struct tclient *connect_with_will(const struct broker *b, uint8_t version, const char *id,
					 const char *topic, bool retain, uint16_t keepalive)
{
	struct mqtt_packet p = tc_connect_packet(version, id), ack;
	struct tclient *c;

	p.connect.will = true;
	p.connect.will_qos = 1;
	p.connect.will_retain = retain;
	p.connect.will_topic = tc_str(topic);
	p.connect.will_payload = tc_str("gone");
	p.connect.keepalive = keepalive;
	c = tc_connect_with(b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0, "%s", tc_describe(&ack));
	return c;
}

static struct tclient *watcher(const struct broker *b, const char *topic)
{
	struct tclient *w = tc_connect(b, MQTT_V311, "watcher", true);

	tc_subscribe(w, topic, 1);
	return w;
}

/* [MQTT-3.1.2-8] the socket closes without DISCONNECT: the will is sent. */
Test(will, sent_when_socket_closes_without_disconnect_MQTT_3_1_2_8)
{
	struct broker b;

	broker_start(&b, NULL);
	for (uint8_t version = MQTT_V31; version <= MQTT_V5; version++) {
		struct tclient *w = watcher(&b, "will/abrupt");
		struct tclient *c = connect_with_will(&b, version, "abrupt", "will/abrupt", false, 60);

		tc_close(c);
		tc_receive_qos(w, "will/abrupt", "gone", 1);
		tc_expect_nothing(w, version == MQTT_V5 ? TC_QUIET_MS : 0);
		tc_disconnect(w);
	}
	broker_stop(&b);
}

/* [MQTT-3.1.2-8] keep alive expiry [MQTT-3.1.2-24] sends the will.  The
 * timing itself is 07_keepalive's business; the wait here also covers
 * mosquitto 2.0.11, which checks keep alives only every 5 s or so. */
Test(will, sent_on_keepalive_timeout_MQTT_3_1_2_24)
{
	struct broker b;
	struct tclient *w, *c;
	struct mqtt_packet p;
	int r;

	broker_start(&b, NULL);
	w = watcher(&b, "will/ka");
	c = connect_with_will(&b, MQTT_V311, "silent", "will/ka", false, 1);
	r = tc_recv(w, 1500 + TC_WAIT_MS, &p);
	cr_assert(r == 0 && p.type == MQTT_PUBLISH, "no will within %d ms of a 1 s keep alive", 1500 + TC_WAIT_MS);
	cr_assert(tc_str_eq(p.publish.topic, "will/ka") && tc_str_eq(p.publish.payload, "gone"), "%s",
		  tc_describe(&p));
	tc_ack(w, MQTT_PUBACK, p.publish.packet_id);
	cr_assert(tc_closed(c, TC_WAIT_MS), "keep alive expired but the connection is open");
	tc_close(c);
	tc_disconnect(w);
	broker_stop(&b);
}

/* [MQTT-3.1.2-8] a protocol error closing the connection sends the will
 * (here: a PUBLISH to a wildcard topic, [MQTT-3.3.2-2]). */
Test(will, sent_when_server_closes_on_protocol_error_MQTT_3_1_2_8)
{
	static const uint8_t bad_publish[] = {0x30, 0x06, 0x00, 0x03, 'a', '/', '#', 'x'};
	struct broker b;
	struct tclient *w, *c;

	broker_start(&b, NULL);
	w = watcher(&b, "will/err");
	c = connect_with_will(&b, MQTT_V311, "erring", "will/err", false, 60);
	(void)tc_send_raw(c, bad_publish, sizeof(bad_publish));
	cr_assert(tc_closed(c, TC_WAIT_MS));
	tc_receive_qos(w, "will/err", "gone", 1);
	tc_close(c);
	tc_disconnect(w);
	broker_stop(&b);
}

/* [MQTT-3.1.2-10] (3.1.1) / [MQTT-3.1.2-10 and 3.14.4-3] (5): after a normal
 * DISCONNECT the will is discarded.  The client's last packet before
 * DISCONNECT is a marker on the will topic: once the watcher has it, the
 * will would follow at once if it were (wrongly) sent. */
Test(will, not_sent_after_normal_disconnect_MQTT_3_1_2_10)
{
	struct broker b;

	broker_start(&b, NULL);
	for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
		struct tclient *w = watcher(&b, "will/normal");
		struct tclient *c = connect_with_will(&b, version, "polite", "will/normal", false, 60);

		tc_publish(c, "will/normal", "marker", 1, false);
		tc_disconnect(c);
		tc_receive_qos(w, "will/normal", "marker", 1);
		tc_expect_nothing(w, 2 * TC_QUIET_MS);
		tc_disconnect(w);
	}
	broker_stop(&b);
}

/* MQTT 5: DISCONNECT with reason 0x04 Disconnect with Will Message keeps
 * the will and it is published (3.14.2.1). */
Test(will, v5_disconnect_0x04_sends_will)
{
	struct broker b;
	struct tclient *w, *c;
	struct mqtt_packet d = {.type = MQTT_DISCONNECT};

	broker_start(&b, NULL);
	w = watcher(&b, "will/0x04");
	c = connect_with_will(&b, MQTT_V5, "withwill", "will/0x04", false, 60);
	d.disconnect.reason = MQTT_RC_DISCONNECT_WITH_WILL;
	(void)tc_send(c, &d);
	tc_receive_qos(w, "will/0x04", "gone", 1);
	tc_close(c);
	tc_disconnect(w);
	broker_stop(&b);
}

/* [MQTT-3.1.2-17] Will Retain 1: the will is published as a retained
 * message, so a later subscriber gets it with RETAIN 1. */
Test(will, will_retain_stores_retained_message_MQTT_3_1_2_17)
{
	struct broker b;
	struct tclient *w, *c, *late;
	struct mqtt_packet p;

	broker_start(&b, NULL);
	w = watcher(&b, "will/ret");
	c = connect_with_will(&b, MQTT_V311, "retwill", "will/ret", true, 60);
	tc_close(c);
	tc_receive_qos(w, "will/ret", "gone", 1);
	late = tc_connect(&b, MQTT_V311, "late", true);
	tc_subscribe(late, "will/ret", 1);
	p = tc_expect_publish(late, "will/ret", "gone", 1);
	cr_assert(p.publish.retain, "retained will delivered with RETAIN 0");
	tc_ack(late, MQTT_PUBACK, p.publish.packet_id);
	tc_disconnect(late);
	tc_disconnect(w);
	broker_stop(&b);
}
