/*
 * 07_keepalive.c - keep alive enforcement.
 *
 * A client that sends nothing for one and a half times its keep alive is
 * disconnected [MQTT-3.1.2-24]; PINGREQ (or any packet) resets the timer
 * and PINGREQ is answered with PINGRESP [MQTT-3.12.4-1].  Keep alive 1 s
 * keeps the tests short; the close is timed against the specification's
 * upper bound plus scheduling slack, and no earlier than the keep alive
 * itself (a client pinging every keep alive period must never be cut).
 */
#include <criterion/criterion.h>

#include "harness.h"
#include "tclient.h"

TestSuite(keepalive, .timeout = 60);

/* Slack over 1.5 x keep alive for timer granularity and a loaded machine. */
#define CLOSE_SLACK_MS 1500

static struct tclient *connect_keepalive(const struct broker *b, uint8_t version, const char *id,
					 uint16_t keepalive)
{
	struct mqtt_packet p = tc_connect_packet(version, id), ack;
	struct tclient *c;

	p.connect.keepalive = keepalive;
	c = tc_connect_with(b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0, "%s", tc_describe(&ack));
	return c;
}

/* Time from now until the broker closes @c; fails past @limit_ms. */
static int64_t time_to_close(struct tclient *c, int limit_ms)
{
	int64_t start = harness_now_ms();

	cr_assert(tc_closed(c, limit_ms), "%s: still open %d ms into a silence", c->name, limit_ms);
	return harness_now_ms() - start;
}

/* [MQTT-3.1.2-24] silence for 1.5 x keep alive closes the connection;
 * MQTT 5 may send DISCONNECT 0x8D Keep Alive timeout first. */
Test(keepalive, silent_client_closed_after_one_and_a_half_keepalive_MQTT_3_1_2_24)
{
	struct broker b;

	harness_mosquitto_deviates("[MQTT-3.1.2-24] mosquitto 2.0.11 closes a 1 s keep alive after about 5 s");
	broker_start(&b, NULL);
	for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
		struct tclient *c = connect_keepalive(&b, version, "silent", 1);
		int64_t ms = time_to_close(c, 1500 + CLOSE_SLACK_MS);

		cr_assert_geq(ms, 1000, "v%u: closed after %lld ms, before the keep alive of 1 s", version,
			      (long long)ms);
		cr_assert(c->disconnect_reason == -1 || c->disconnect_reason == MQTT_RC_KEEPALIVE_TIMEOUT,
			  "v%u: DISCONNECT 0x%02x on keep alive expiry", version, c->disconnect_reason);
		tc_close(c);
	}
	broker_stop(&b);
}

/* [MQTT-3.12.4-1] PINGREQ gets PINGRESP, and pings every half keep alive
 * keep the connection open for three times the keep alive. */
Test(keepalive, pingreq_answered_and_keeps_connection_open_MQTT_3_12_4_1)
{
	struct broker b;
	struct tclient *c;
	struct mqtt_packet ping = {.type = MQTT_PINGREQ};
	int64_t end;

	broker_start(&b, NULL);
	c = connect_keepalive(&b, MQTT_V311, "pinger", 1);
	end = harness_now_ms() + 3000;
	while (harness_now_ms() < end) {
		cr_assert_eq(tc_send(c, &ping), 0, "connection closed while pinging");
		(void)tc_expect(c, MQTT_PINGRESP);
		tc_expect_nothing(c, 500); /* the pacing: nothing else may arrive */
	}
	tc_disconnect(c);
	broker_stop(&b);
}

/* [MQTT-3.1.2-23] any control packet resets the timer, not only PINGREQ. */
Test(keepalive, publishing_keeps_connection_open_MQTT_3_1_2_23)
{
	struct broker b;
	struct tclient *c;
	int64_t end;

	broker_start(&b, NULL);
	c = connect_keepalive(&b, MQTT_V311, "talker", 1);
	end = harness_now_ms() + 3000;
	while (harness_now_ms() < end) {
		tc_publish(c, "talk/t", "x", 1, false);
		tc_expect_nothing(c, 500);
	}
	tc_disconnect(c);
	broker_stop(&b);
}

/* [MQTT-3.2.2-21/22] MQTT 5: the Server Keep Alive given in CONNACK is the
 * one enforced, whatever the client asked for. */
Test(keepalive, v5_server_keep_alive_is_enforced_MQTT_3_2_2_22)
{
	struct broker b;
	struct tclient *c;
	struct mqtt_packet p = tc_connect_packet(MQTT_V5, "overasked"), ack;
	int64_t ms;

	harness_mosquitto_deviates("[MQTT-3.1.2-24] mosquitto 2.0.11 closes a 1 s keep alive after about 5 s");
	broker_start(&b, "max_keepalive 1\n");
	p.connect.keepalive = 60;
	c = tc_connect_with(&b, &p, &ack);
	cr_assert_eq(ack.connack.props.server_keep_alive, 1, "Server Keep Alive %u, expected 1",
		     ack.connack.props.server_keep_alive);
	ms = time_to_close(c, 1500 + CLOSE_SLACK_MS);
	cr_assert_geq(ms, 1000, "closed after %lld ms", (long long)ms);
	tc_close(c);
	broker_stop(&b);
}

/* 3.1.2.10: keep alive 0 turns the mechanism off: the
 * connection outlives a silence far beyond what 1 s would allow. */
Test(keepalive, keepalive_zero_never_times_out)
{
	struct broker b;
	struct tclient *c;

	broker_start(&b, NULL);
	c = connect_keepalive(&b, MQTT_V311, "forever", 0);
	tc_expect_nothing(c, 2000);
	tc_publish(c, "forever/t", "still here", 1, false);
	tc_disconnect(c);
	broker_stop(&b);
}
