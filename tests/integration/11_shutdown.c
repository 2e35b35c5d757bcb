/*
 * 11_shutdown.c - SIGTERM shuts the broker down cleanly.
 *
 * Every connected client is told and disconnected: MQTT 5 clients get
 * DISCONNECT 0x8B Server shutting down before the close (ringmq's design;
 * the specification offers the code, 3.14.2.1), 3.x clients are closed.
 * The process exits with status 0 within BROKER_STOP_MS, also with many
 * clients spread over all shards and with messages in flight.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

#include "harness.h"
#include "tclient.h"

TestSuite(shutdown, .timeout = 60);

static void expect_exit_0(struct broker *b)
{
	int status = broker_wait_exit(b, BROKER_STOP_MS);

	cr_assert(status != -1, "broker still running %d ms after SIGTERM", BROKER_STOP_MS);
	cr_assert(WIFEXITED(status), "broker died of signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	cr_assert_eq(WEXITSTATUS(status), 0, "broker exited with status %d", WEXITSTATUS(status));
}

Test(shutdown, sigterm_sends_disconnect_0x8b_to_v5_and_exits_0)
{
	struct broker b;
	struct tclient *v5, *v311;

	broker_start(&b, NULL);
	v5 = tc_connect(&b, MQTT_V5, "sd-v5", true);
	v311 = tc_connect(&b, MQTT_V311, "sd-v311", true);
	tc_subscribe(v5, "sd/t", 1); /* a round trip: both sessions are set up */
	cr_assert_eq(kill(b.pid, SIGTERM), 0);
	tc_expect_disconnect(v5, MQTT_RC_SERVER_SHUTTING_DOWN);
	cr_assert(tc_closed(v311, TC_WAIT_MS), "3.1.1 client not closed at shutdown");
	expect_exit_0(&b);
	tc_close(v5);
	tc_close(v311);
}

/* Forty clients (ids hashing to every shard), half of them MQTT 5 with a
 * QoS 1 message in flight to them, all closed, and a clean exit. */
Test(shutdown, sigterm_with_many_clients_and_inflight_messages_exits_0)
{
	enum { N = 40 };
	struct broker b;
	struct tclient *c[N], *pub;

	broker_start(&b, NULL);
	for (int i = 0; i < N; i++) {
		char id[16];

		snprintf(id, sizeof(id), "many-%d", i);
		c[i] = tc_connect(&b, i % 2 ? MQTT_V5 : MQTT_V311, id, true);
		tc_subscribe(c[i], "all/t", 1);
	}
	pub = tc_connect(&b, MQTT_V5, "sd-pub", true);
	tc_publish(pub, "all/t", "unacked", 1, false);
	for (int i = 0; i < N; i++)
		(void)tc_expect_publish(c[i], "all/t", "unacked", 1); /* never acknowledged */
	cr_assert_eq(kill(b.pid, SIGTERM), 0);
	for (int i = 0; i < N; i++) {
		tc_expect_disconnect(c[i], MQTT_RC_SERVER_SHUTTING_DOWN);
		tc_close(c[i]);
	}
	tc_expect_disconnect(pub, MQTT_RC_SERVER_SHUTTING_DOWN);
	tc_close(pub);
	expect_exit_0(&b);
}

/* A half-open connection (TCP only, no CONNECT yet) does not hold up the
 * shutdown. */
Test(shutdown, sigterm_with_connection_before_connect_exits_0)
{
	struct broker b;
	struct tclient *idle, *ok;

	broker_start(&b, NULL);
	idle = tc_open(&b, MQTT_V311, "idle");
	ok = tc_connect(&b, MQTT_V311, "sd-ok", true);
	cr_assert_eq(kill(b.pid, SIGTERM), 0);
	cr_assert(tc_closed(idle, TC_WAIT_MS), "connection without CONNECT left open at shutdown");
	cr_assert(tc_closed(ok, TC_WAIT_MS));
	expect_exit_0(&b);
	tc_close(idle);
	tc_close(ok);
}
