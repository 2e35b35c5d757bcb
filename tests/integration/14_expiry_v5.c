/*
 * 14_expiry_v5.c - MQTT 5 Session Expiry Interval and Will Delay Interval.
 *
 * Session expiry: a session outlives its connection for the interval of
 * CONNECT, or of DISCONNECT when that carries one; it is there (Session
 * Present 1) before and gone (Session Present 0, subscriptions dropped)
 * after; 0xFFFFFFFF never expires; raising it from 0 on DISCONNECT is a
 * Protocol Error (3.14.2.2.2).  Will delay: the will is published when
 * the delay has passed or the session ends, whichever comes first; a
 * reconnect in time cancels it; DISCONNECT 0x04 keeps it, 0x00 drops it.
 * The will carries its properties.  ringmq checks expiries in a sweep
 * every 250 ms; the tests wait for the broker's "session expired" log
 * line (an event) or for the will itself, and bound the waits for things
 * that must not happen by the interval plus a margin.  Under the mosquitto
 * oracle the log line does not exist and a bounded wait replaces it.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "tclient.h"

TestSuite(expiry, .timeout = 60);

#define NEVER 0xFFFFFFFFu

/* CONNECT MQTT 5 with Session Expiry Interval @expiry (0: absent) and,
 * if @will_topic, a QoS 1 will with Will Delay Interval @will_delay. */
static struct tclient *connect_se(const struct broker *b, const char *id, bool clean, uint32_t expiry,
				  const char *will_topic, const char *will_payload, uint32_t will_delay,
				  bool *ret_present)
{
	struct mqtt_packet p = tc_connect_packet(MQTT_V5, id), ack;
	struct tclient *c;

	p.connect.clean = clean;
	if (expiry) {
		p.connect.props.present = MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
		p.connect.props.session_expiry = expiry;
	}
	if (will_topic) {
		p.connect.will = true;
		p.connect.will_qos = 1;
		p.connect.will_topic = tc_str(will_topic);
		p.connect.will_payload = tc_str(will_payload);
		if (will_delay) {
			p.connect.will_props.present = MQTT_HAS(MQTT_PROP_WILL_DELAY);
			p.connect.will_props.will_delay = will_delay;
		}
	}
	c = tc_connect_with(b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0, "%s: %s", id, tc_describe(&ack));
	if (ret_present)
		*ret_present = ack.connack.session_present;
	return c;
}

/* DISCONNECT with @reason and, unless @expiry is -1, a Session Expiry
 * Interval; then close and free @c. */
static void disconnect_with(struct tclient *c, uint8_t reason, int64_t expiry)
{
	struct mqtt_packet p = {.type = MQTT_DISCONNECT};

	p.disconnect.reason = reason;
	if (expiry >= 0) {
		p.disconnect.props.present = MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
		p.disconnect.props.session_expiry = (uint32_t)expiry;
	}
	(void)tc_send(c, &p);
	tc_close(c);
}

/* Wait until the broker has discarded @id's session: its log line under
 * ringmq, a bounded @mosquitto_ms under the oracle. */
static void wait_session_expired(const struct broker *b, const char *id, int mosquitto_ms)
{
	char needle[128];

	if (b->mosquitto) {
		(void)poll(NULL, 0, mosquitto_ms);
		return;
	}
	snprintf(needle, sizeof(needle), "[client %s] session expired", id);
	cr_assert(broker_log_wait(b, needle, TC_WAIT_MS), "session of %s did not expire within %d ms", id,
		  TC_WAIT_MS);
}

/* Whether a reconnect with Clean Start 0 finds @id's session; the client
 * then leaves with a DISCONNECT that keeps the session as it is. */
static bool session_present(const struct broker *b, const char *id, uint32_t expiry)
{
	bool present;
	struct tclient *c = connect_se(b, id, false, expiry, NULL, NULL, 0, &present);

	disconnect_with(c, 0, -1);
	return present;
}

static struct tclient *watcher(const struct broker *b, const char *id, const char *filter)
{
	struct tclient *w = connect_se(b, id, true, 0, NULL, NULL, 0, NULL);

	tc_subscribe(w, filter, 1);
	return w;
}

/* ---- Session expiry ---- */

/*
 * [MQTT-3.1.2-23] the session is kept after the connection closes while the
 * interval has not passed (Session Present 1 [MQTT-3.2.2-3], subscription
 * still delivering); [MQTT-4.1.0-2] it is discarded once the interval has
 * passed: Session Present 0 and the subscription is gone.
 */
Test(expiry, session_kept_before_expiry_discarded_after_MQTT_4_1_0_2)
{
	struct broker b;
	struct tclient *c, *pub;
	bool present;
	int64_t t0;

	broker_start(&b, NULL);
	pub = connect_se(&b, "se1-pub", true, 0, NULL, NULL, 0, NULL);
	c = connect_se(&b, "se1", true, 1, NULL, NULL, 0, NULL);
	tc_subscribe(c, "se1/t", 1);
	tc_disconnect(c);
	c = connect_se(&b, "se1", false, 1, NULL, NULL, 0, &present);
	cr_assert(present, "session gone right after the close, expiry 1 s [MQTT-3.1.2-23]");
	tc_publish(pub, "se1/t", "kept", 1, false);
	tc_receive_qos(c, "se1/t", "kept", 1);
	t0 = harness_now_ms();
	tc_disconnect(c);
	wait_session_expired(&b, "se1", 2500);
	cr_assert_geq(harness_now_ms() - t0, 900, "session of expiry 1 s ended after %lld ms",
		      (long long)(harness_now_ms() - t0));
	c = connect_se(&b, "se1", false, 1, NULL, NULL, 0, &present);
	cr_assert(!present, "session still present after its expiry [MQTT-4.1.0-2]");
	tc_publish(pub, "se1/t", "lost", 1, false);
	tc_expect_nothing(c, TC_QUIET_MS);
	tc_disconnect(c);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* 3.14.2.2.2: the Session Expiry Interval of DISCONNECT replaces the one of
 * CONNECT: 60 -> 0 ends the session at once, 60 -> 1 ends it a second
 * later. */
Test(expiry, disconnect_session_expiry_replaces_connect_value)
{
	struct broker b;
	struct tclient *c;
	int64_t t0;

	broker_start(&b, NULL);
	c = connect_se(&b, "se-zero", true, 60, NULL, NULL, 0, NULL);
	tc_subscribe(c, "sez/t", 1);
	disconnect_with(c, 0, 0);
	cr_assert(!session_present(&b, "se-zero", 0), "DISCONNECT with Session Expiry 0 left the session");

	c = connect_se(&b, "se-one", true, 60, NULL, NULL, 0, NULL);
	t0 = harness_now_ms();
	disconnect_with(c, 0, 1);
	wait_session_expired(&b, "se-one", 2500);
	cr_assert_geq(harness_now_ms() - t0, 900);
	cr_assert(!session_present(&b, "se-one", 0), "DISCONNECT with Session Expiry 1 kept the session");
	broker_stop(&b);
}

/* 3.14.2.2.2: after CONNECT without a Session Expiry Interval (0), a
 * DISCONNECT setting one is a Protocol Error: the server answers DISCONNECT
 * 0x82, and the session still ends with the connection. */
Test(expiry, nonzero_expiry_on_disconnect_after_zero_disconnect_0x82)
{
	struct broker b;
	struct tclient *c;
	struct mqtt_packet p = {.type = MQTT_DISCONNECT};

	broker_start(&b, NULL);
	c = connect_se(&b, "se-raise", true, 0, NULL, NULL, 0, NULL);
	p.disconnect.props.present = MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
	p.disconnect.props.session_expiry = 30;
	(void)tc_send(c, &p);
	tc_expect_disconnect(c, MQTT_RC_PROTOCOL_ERROR);
	tc_close(c);
	cr_assert(!session_present(&b, "se-raise", 0), "session kept although CONNECT said 0");
	broker_stop(&b);
}

/* 3.1.2.11.2: 0xFFFFFFFF never expires; a DISCONNECT may raise a non-zero
 * interval to it.  Checked once a 1 s session of the same broker has
 * expired (plus a sweep), i.e. the clock was running. */
Test(expiry, session_expiry_0xffffffff_never_expires)
{
	struct broker b;
	struct tclient *c;

	broker_start(&b, NULL);
	c = connect_se(&b, "se-never", true, NEVER, NULL, NULL, 0, NULL);
	tc_disconnect(c);
	c = connect_se(&b, "se-raised", true, 1, NULL, NULL, 0, NULL);
	disconnect_with(c, 0, NEVER);
	c = connect_se(&b, "se-control", true, 1, NULL, NULL, 0, NULL);
	tc_disconnect(c);
	wait_session_expired(&b, "se-control", 2500);
	(void)poll(NULL, 0, 600); /* bounded: two more sweeps on every shard */
	cr_assert(!session_present(&b, "se-control", 0), "the 1 s control session did not expire");
	cr_assert(session_present(&b, "se-never", NEVER), "session with expiry 0xFFFFFFFF expired");
	cr_assert(session_present(&b, "se-raised", NEVER), "session raised to 0xFFFFFFFF on DISCONNECT expired");
	broker_stop(&b);
}

/* ---- Will delay ---- */

/* [MQTT-3.1.2-8] with a Will Delay Interval of 1 s (session expiry 10 s)
 * the will is published once the delay has passed, not at the close. */
Test(expiry, will_published_after_will_delay_MQTT_3_1_2_8)
{
	struct broker b;
	struct tclient *w, *c;
	int64_t t0;

	broker_start(&b, NULL);
	w = watcher(&b, "wd1-watch", "wd1/t");
	c = connect_se(&b, "wd1", true, 10, "wd1/t", "late", 1, NULL);
	t0 = harness_now_ms();
	tc_close(c); /* no DISCONNECT: the will is due */
	tc_expect_nothing(w, 700);
	tc_receive_qos(w, "wd1/t", "late", 1);
	cr_assert_geq(harness_now_ms() - t0, 950, "will with delay 1 s published after %lld ms",
		      (long long)(harness_now_ms() - t0));
	tc_disconnect(w);
	broker_stop(&b);
}

/* [MQTT-3.1.3-9] a new connection to the session within the delay cancels
 * the will: nothing comes when the delay passes; the new connection's own
 * will is what is published when it breaks. */
Test(expiry, will_cancelled_by_reconnect_within_delay_MQTT_3_1_3_9)
{
	struct broker b;
	struct tclient *w, *c;
	bool present;

	broker_start(&b, NULL);
	w = watcher(&b, "wd2-watch", "wd2/t");
	c = connect_se(&b, "wd2", true, 10, "wd2/t", "first", 2, NULL);
	tc_close(c);
	c = connect_se(&b, "wd2", false, 10, "wd2/t", "second", 0, &present);
	cr_assert(present, "session lost");
	tc_expect_nothing(w, 2600); /* the first will's delay passes */
	tc_close(c);
	tc_receive_qos(w, "wd2/t", "second", 1);
	tc_expect_nothing(w, TC_QUIET_MS);
	tc_disconnect(w);
	broker_stop(&b);
}

/* [MQTT-3.1.2-8] "or the Session ends, whichever happens first": a will
 * delay of 30 s with a session expiry of 1 s publishes the will when the
 * session ends; with no session expiry the session ends at the close, and
 * so the will is published then. */
Test(expiry, will_published_at_session_end_before_delay_MQTT_3_1_2_8)
{
	struct broker b;
	struct tclient *w, *c;
	int64_t t0;

	harness_mosquitto_deviates("[MQTT-3.1.2-8] mosquitto 2.0.11 holds a delayed will past the end of a session "
				   "with expiry 0");
	broker_start(&b, NULL);
	w = watcher(&b, "wd3-watch", "wd3/#");
	c = connect_se(&b, "wd3-short", true, 1, "wd3/short", "session ended", 30, NULL);
	t0 = harness_now_ms();
	tc_close(c);
	tc_receive_qos(w, "wd3/short", "session ended", 1);
	cr_assert_geq(harness_now_ms() - t0, 900, "will sent %lld ms after the close, session expiry 1 s",
		      (long long)(harness_now_ms() - t0));
	c = connect_se(&b, "wd3-none", true, 0, "wd3/none", "no session", 30, NULL);
	tc_close(c);
	tc_receive_qos(w, "wd3/none", "no session", 1);
	tc_disconnect(w);
	broker_stop(&b);
}

/* [MQTT-3.14.4-3] DISCONNECT 0x00 discards the will, even a delayed one;
 * DISCONNECT 0x04 (Disconnect with Will Message) keeps it, and it is
 * published after its delay. */
Test(expiry, disconnect_0x04_keeps_delayed_will_0x00_discards_it_MQTT_3_14_4_3)
{
	struct broker b;
	struct tclient *w, *keep, *drop;
	int64_t t0;

	broker_start(&b, NULL);
	w = watcher(&b, "wd4-watch", "wd4/#");
	keep = connect_se(&b, "wd4-keep", true, 10, "wd4/keep", "kept", 1, NULL);
	drop = connect_se(&b, "wd4-drop", true, 10, "wd4/drop", "dropped", 1, NULL);
	t0 = harness_now_ms();
	disconnect_with(drop, MQTT_RC_SUCCESS, -1);
	disconnect_with(keep, MQTT_RC_DISCONNECT_WITH_WILL, -1);
	tc_receive_qos(w, "wd4/keep", "kept", 1);
	cr_assert_geq(harness_now_ms() - t0, 950, "delayed will after DISCONNECT 0x04 sent after %lld ms",
		      (long long)(harness_now_ms() - t0));
	tc_expect_nothing(w, 600); /* "dropped" would have been due with "kept" */
	tc_disconnect(w);
	broker_stop(&b);
}

/* [MQTT-3.1.3-10] the will is published with its properties: Payload
 * Format Indicator, Content Type, Response Topic, Correlation Data and
 * user properties in order; Message Expiry Interval counted down. */
Test(expiry, will_properties_forwarded_MQTT_3_1_3_10)
{
	static const char *const users[] = {"z", "1", "a", "2", "z", "3"};
	struct broker b;
	struct tclient *w, *c;
	struct mqtt_packet p = tc_connect_packet(MQTT_V5, "wp"), ack;
	struct mqtt_props *wp = &p.connect.will_props;
	const struct mqtt_props *pr;
	uint8_t ublock[64], got[64];
	uint32_t ulen;

	broker_start(&b, NULL);
	w = watcher(&b, "wp-watch", "wp/t");
	p.connect.will = true;
	p.connect.will_qos = 1;
	p.connect.will_topic = tc_str("wp/t");
	p.connect.will_payload = tc_str("gone");
	wp->present = MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT) | MQTT_HAS(MQTT_PROP_CONTENT_TYPE) |
		      MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC) | MQTT_HAS(MQTT_PROP_CORRELATION_DATA) |
		      MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY);
	wp->payload_format = 1;
	wp->content_type = tc_str("text/plain");
	wp->response_topic = tc_str("wp/reply");
	wp->correlation_data = tc_str("corr-7");
	wp->message_expiry = 300;
	tc_user_props(wp, users, 3, ublock, sizeof(ublock));
	ulen = wp->user.len;
	c = tc_connect_with(&b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0, "%s", tc_describe(&ack));
	tc_close(c);
	p = tc_expect_publish(w, "wp/t", "gone", 1);
	pr = &p.publish.props;
	cr_assert(pr->present & MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT) && pr->payload_format == 1,
		  "will Payload Format Indicator lost");
	cr_assert(tc_str_eq(pr->content_type, "text/plain"), "will Content Type '%s'", tc_dup(pr->content_type));
	cr_assert(tc_str_eq(pr->response_topic, "wp/reply"), "will Response Topic '%s'", tc_dup(pr->response_topic));
	cr_assert(tc_str_eq(pr->correlation_data, "corr-7"), "will Correlation Data '%s'",
		  tc_dup(pr->correlation_data));
	cr_assert(pr->present & MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY) && pr->message_expiry <= 300 &&
			  pr->message_expiry >= 290,
		  "will Message Expiry Interval %u of 300", pr->message_expiry);
	cr_assert_eq(pr->user_count, 3, "%u will user properties, sent 3", pr->user_count);
	cr_assert_eq(mqtt_props_user_len(pr), ulen);
	(void)mqtt_props_user_copy(pr, got);
	cr_assert(memcmp(got, ublock, ulen) == 0, "will user properties altered or reordered [MQTT-3.1.3-10]");
	tc_ack(w, MQTT_PUBACK, p.publish.packet_id);
	tc_disconnect(w);
	broker_stop(&b);
}
