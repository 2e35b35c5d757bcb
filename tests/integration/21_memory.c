/*
 * 21_memory.c - the broker-wide bound on messages held for sessions
 * (max_queued_bytes_total).
 *
 * Two persistent sessions go offline while a publisher sends more than the
 * global limit allows; each session's own queue limit is far above it.
 * What they get back on reconnect must fit the global limit, in order and
 * without gaps at the front; an online subscriber meanwhile gets every
 * message (messages sent at once are not held, so not limited); and the
 * drop is counted under its own cause in /metrics-backed $SYS figures
 * (here: the broker keeps serving and logs the limit once).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "tclient.h"

TestSuite(memory, .timeout = 60);

enum { SENT = 40, PAYLOAD = 100, LIMIT = 1000 };

static struct tclient *resume(const struct broker *b, const char *id, bool present)
{
	struct mqtt_packet p = tc_connect_packet(MQTT_V311, id), ack;
	struct tclient *c;

	p.connect.clean = false;
	c = tc_connect_with(b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0, "%s", tc_describe(&ack));
	cr_assert_eq(ack.connack.session_present, present, "%s", tc_describe(&ack));
	return c;
}

/* Receive what the session kept: m0, m1, ... with no gap, at most @max. */
static int drain_in_order(struct tclient *c, int max)
{
	struct mqtt_packet p;
	int got = 0;

	while (tc_recv(c, got == 0 ? TC_WAIT_MS : TC_QUIET_MS, &p) == 0) {
		char want[16];

		snprintf(want, sizeof(want), "m%02d", got);
		cr_assert(p.type == MQTT_PUBLISH && p.publish.payload.len == PAYLOAD &&
				  memcmp(p.publish.payload.ptr, want, 3) == 0,
			  "message %d: %s", got, tc_describe(&p));
		tc_ack(c, MQTT_PUBACK, p.publish.packet_id);
		got++;
	}
	cr_assert(got > 0 && got <= max, "%d messages kept, the limit allows at most %d", got, max);
	return got;
}

Test(memory, global_queued_bytes_limit_bounds_offline_sessions_not_live_delivery)
{
	struct broker b;
	struct tclient *a, *z, *live, *pub;
	char payload[PAYLOAD + 1];
	int got_a, got_z;

	harness_ringmq_only("max_queued_bytes_total is ringmq's");
	broker_start(&b, "max_queued_bytes_total 1000\nmax_queued_messages 1000\npersistent_client_expiration 1h\n");
	a = resume(&b, "mem-a", false);
	tc_subscribe(a, "mem/t", 1);
	tc_disconnect(a);
	z = resume(&b, "mem-z", false);
	tc_subscribe(z, "mem/t", 1);
	tc_disconnect(z);
	live = tc_connect(&b, MQTT_V311, "mem-live", true);
	tc_subscribe(live, "mem/t", 0);
	pub = tc_connect(&b, MQTT_V311, "mem-pub", true);
	for (int i = 0; i < SENT; i++) {
		memset(payload, 'x', PAYLOAD);
		snprintf(payload, sizeof(payload), "m%02d", i);
		payload[3] = 'x';
		payload[PAYLOAD] = '\0';
		tc_publish(pub, "mem/t", payload, 1, false);
	}
	for (int i = 0; i < SENT; i++) {
		struct mqtt_packet p;
		cr_assert_eq(tc_recv(live, TC_WAIT_MS, &p), 0, "the online subscriber missed message %d", i);
		cr_assert_eq(p.type, MQTT_PUBLISH);
	}
	a = resume(&b, "mem-a", true);
	got_a = drain_in_order(a, LIMIT / PAYLOAD);
	z = resume(&b, "mem-z", true);
	got_z = drain_in_order(z, LIMIT / PAYLOAD);
	cr_assert(got_a + got_z <= LIMIT / PAYLOAD, "%d + %d messages held together, over the 1000-byte limit", got_a,
		  got_z);
	cr_assert(broker_log_wait(&b, "max_queued_bytes_total (1000) reached", TC_WAIT_MS),
		  "no log line for the limit");
	tc_publish(pub, "mem/t", "after", 1, false); /* room again once delivered */
	tc_receive_qos(a, "mem/t", "after", 1);
	tc_disconnect(a);
	tc_disconnect(z);
	tc_disconnect(live);
	tc_disconnect(pub);
	broker_stop(&b);
}
