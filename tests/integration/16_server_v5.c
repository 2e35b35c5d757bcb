/*
 * 16_server_v5.c - what the MQTT 5 server announces and decides: CONNACK
 * capabilities, server-initiated DISCONNECT, authentication.
 *
 * CONNACK reflects the configuration: Maximum QoS (max_qos), Retain
 * Available (retain_available), Server Keep Alive (max_keepalive),
 * Assigned Client Identifier, and Response Information (only when the
 * client asked for it); a client then breaking those limits is refused or
 * disconnected with the reason code of section 3.2.2.3.  Server-initiated
 * DISCONNECT: SIGUSR1 drains the node, so every connected MQTT 5 client
 * gets DISCONNECT 0x9C Use another server (0x9D Server moved with
 * drain_server_moved) carrying the configured Server Reference, and new
 * connections get CONNACK with the same; no server DISCONNECT carries a
 * Session Expiry Interval [MQTT-3.14.2-2] (SIGTERM's 0x8B and take-over's
 * 0x8E are checked here for that; 11_shutdown and 09_takeover cover the
 * rest); a client that stops reading is cut off with 0x97.  Enhanced
 * authentication (SCRAM-SHA-512 against password_file) is auth_test.py's;
 * here: without a password file an Authentication Method gets CONNACK
 * 0x8C, and AUTH on a connection that gave no method is a Protocol Error
 * (there is no re-authentication).  With Request Problem Information 0
 * no Reason String or User Property comes on other packets.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "harness.h"
#include "tclient.h"

TestSuite(server, .timeout = 60);

/* A server DISCONNECT as received: its reason and the properties this file checks. */
struct server_disconnect {
	uint8_t reason;
	bool has_session_expiry;
	bool has_reference;
	char reference[256];
};

/* The next packet must be DISCONNECT, and then the connection must close. */
static struct server_disconnect expect_server_disconnect(struct tclient *c)
{
	struct server_disconnect d = {0};
	struct mqtt_packet p = tc_expect(c, MQTT_DISCONNECT);

	d.reason = p.disconnect.reason;
	d.has_session_expiry = (p.disconnect.props.present & MQTT_HAS(MQTT_PROP_SESSION_EXPIRY)) != 0;
	d.has_reference = (p.disconnect.props.present & MQTT_HAS(MQTT_PROP_SERVER_REFERENCE)) != 0;
	snprintf(d.reference, sizeof(d.reference), "%s", tc_dup(p.disconnect.props.server_reference));
	cr_assert(!d.has_session_expiry, "%s: server DISCONNECT 0x%02x with a Session Expiry Interval [MQTT-3.14.2-2]",
		  c->name, d.reason);
	cr_assert(tc_closed(c, TC_WAIT_MS), "%s: connection open after the server's DISCONNECT [MQTT-3.14.4-2]",
		  c->name);
	return d;
}

static struct tclient *connect_v5(const struct broker *b, const char *id, const struct mqtt_props *props,
				  struct mqtt_packet *ret_ack)
{
	struct mqtt_packet p = tc_connect_packet(MQTT_V5, id), ack;
	struct tclient *c;

	if (props)
		p.connect.props = *props;
	c = tc_connect_with(b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0, "%s: %s", id, tc_describe(&ack));
	if (ret_ack)
		*ret_ack = ack;
	return c;
}

static void expect_exit_0(struct broker *b)
{
	int status = broker_wait_exit(b, BROKER_STOP_MS);

	cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "broker did not exit cleanly (%d)",
		  status);
}

/* ---- Draining: server redirection (4.11) ---- */

/*
 * SIGUSR1 with `server_reference` and @moved: every connected MQTT 5
 * client (ids spread over the shards) gets DISCONNECT @reason with the
 * Server Reference and no Session Expiry [MQTT-3.14.2-2]; a 3.1.1 client
 * is closed; a new MQTT 5 CONNECT gets CONNACK @reason with the reference,
 * a new 3.1.1 one CONNACK 3 (server unavailable).
 */
static void drain_case(const char *directives, uint8_t reason, const char *reference)
{
	enum { N = 8 };
	struct broker b;
	struct tclient *c[N], *old;
	struct mqtt_packet p = tc_connect_packet(MQTT_V5, "drain-new"), ack;
	char id[32];

	broker_start(&b, directives);
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "drain-%d", i);
		c[i] = connect_v5(&b, id, NULL, NULL);
		tc_subscribe(c[i], "drain/t", 1);
	}
	old = tc_connect(&b, MQTT_V311, "drain-311", true);
	cr_assert_eq(kill(b.pid, SIGUSR1), 0);
	for (int i = 0; i < N; i++) {
		struct server_disconnect d = expect_server_disconnect(c[i]);

		cr_assert_eq(d.reason, reason, "%s: DISCONNECT 0x%02x, expected 0x%02x", c[i]->name, d.reason, reason);
		if (reference)
			cr_assert(d.has_reference && strcmp(d.reference, reference) == 0,
				  "%s: Server Reference '%s', expected '%s'", c[i]->name, d.reference, reference);
		else
			cr_assert(!d.has_reference, "Server Reference '%s' without server_reference", d.reference);
		tc_close(c[i]);
	}
	cr_assert(tc_closed(old, TC_WAIT_MS), "3.1.1 client not closed by the drain");
	tc_close(old);

	old = tc_connect_with(&b, &p, &ack);
	cr_assert_eq(ack.connack.reason, reason, "new CONNECT while draining: %s", tc_describe(&ack));
	cr_assert(!ack.connack.session_present, "[MQTT-3.2.2-6] Session Present with a refusal");
	if (reference)
		cr_assert(tc_str_eq(ack.connack.props.server_reference, reference), "CONNACK Server Reference '%s'",
			  tc_dup(ack.connack.props.server_reference));
	else
		cr_assert(!(ack.connack.props.present & MQTT_HAS(MQTT_PROP_SERVER_REFERENCE)));
	tc_expect_closed(old); /* [MQTT-3.2.2-7] */
	tc_close(old);
	p = tc_connect_packet(MQTT_V311, "drain-new-311");
	old = tc_open(&b, MQTT_V311, "drain-new-311");
	(void)tc_send(old, &p);
	tc_expect_refused(old, MQTT_V3_SERVER_UNAVAILABLE, true);
	tc_close(old);
	broker_stop(&b);
}

Test(server, sigusr1_drain_sends_0x9c_use_another_server_with_reference)
{
	harness_ringmq_only("draining on SIGUSR1 and server_reference are ringmq's");
	drain_case("server_reference other.example:1883\n", MQTT_RC_USE_ANOTHER_SERVER, "other.example:1883");
}

Test(server, sigusr1_drain_with_drain_server_moved_sends_0x9d)
{
	harness_ringmq_only("draining on SIGUSR1 and server_reference are ringmq's");
	drain_case("server_reference new.example:8883\ndrain_server_moved true\n", MQTT_RC_SERVER_MOVED,
		   "new.example:8883");
}

Test(server, sigusr1_drain_without_reference_sends_0x9c_alone)
{
	harness_ringmq_only("draining on SIGUSR1 is ringmq's");
	drain_case(NULL, MQTT_RC_USE_ANOTHER_SERVER, NULL);
}

/* [MQTT-3.14.2-2] no Session Expiry Interval on the server's DISCONNECT
 * 0x8E (take-over, [MQTT-3.1.4-3]) nor 0x8B (SIGTERM). */
Test(server, server_disconnects_carry_no_session_expiry_MQTT_3_14_2_2)
{
	struct broker b;
	struct tclient *first, *second;
	struct mqtt_props props = {.present = MQTT_HAS(MQTT_PROP_SESSION_EXPIRY), .session_expiry = 30};
	struct server_disconnect d;

	harness_mosquitto_deviates("4.13 SHOULD: mosquitto 2.0.11 closes a taken-over MQTT 5 connection without "
				   "DISCONNECT 0x8E [MQTT-3.1.4-3]");
	broker_start(&b, NULL);
	first = connect_v5(&b, "sx", &props, NULL);
	second = connect_v5(&b, "sx", &props, NULL);
	d = expect_server_disconnect(first);
	cr_assert_eq(d.reason, MQTT_RC_SESSION_TAKEN_OVER, "take-over: DISCONNECT 0x%02x", d.reason);
	tc_close(first);
	cr_assert_eq(kill(b.pid, SIGTERM), 0);
	d = expect_server_disconnect(second);
	cr_assert_eq(d.reason, MQTT_RC_SERVER_SHUTTING_DOWN, "SIGTERM: DISCONNECT 0x%02x", d.reason);
	tc_close(second);
	expect_exit_0(&b);
}

/*
 * A client that stops reading until ringmq's output limit for it
 * (max_output_bytes) is reached is disconnected with DISCONNECT 0x97
 * Quota exceeded (4.13: the server SHOULD send a DISCONNECT before
 * closing).  The subscriber reads nothing
 * until the broker logs the limit, then reads the whole stream: it must
 * end with DISCONNECT 0x97 and a close.  The stream is parsed in place
 * (tclient would move megabytes per packet).
 */
Test(server, client_not_reading_disconnected_with_0x97)
{
	enum { PAYLOAD = 4000, MSGS_MAX = 20000, BUF = 1 << 20 };
	struct broker b;
	struct tclient *sub, *pub;
	static char payload[PAYLOAD + 1];
	static uint8_t buf[BUF];
	size_t len = 0;
	int last_type = -1, last_reason = -1;
	bool limit = false;

	harness_ringmq_only("max_output_bytes is a ringmq directive");
	broker_start(&b, "max_packet_size 8192\nmax_output_bytes 16384\n");
	memset(payload, 'q', PAYLOAD);
	sub = connect_v5(&b, "slow-reader", NULL, NULL);
	tc_subscribe(sub, "slow/t", 0);
	pub = connect_v5(&b, "slow-pub", NULL, NULL);
	for (int i = 0; i < MSGS_MAX && !limit; i++) {
		tc_publish(pub, "slow/t", payload, 0, false);
		if (i % 200 == 199)
			limit = broker_log_contains(&b, "[client slow-reader] disconnected");
	}
	cr_assert(limit || broker_log_wait(&b, "[client slow-reader] disconnected", TC_WAIT_MS),
		  "a client that reads nothing was not disconnected at max_output_bytes");
	for (int64_t end = harness_now_ms() + 2 * TC_WAIT_MS;;) {
		struct pollfd pfd = {.fd = sub->fd, .events = POLLIN};
		size_t off = 0;
		ssize_t n;

		cr_assert(harness_now_ms() < end, "the broker did not close the slow reader");
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		n = recv(sub->fd, buf + len, BUF - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
		for (;;) {
			struct mqtt_frame f;
			struct mqtt_packet p;
			uint8_t reason;
			int r = mqtt_frame_cut(buf + off, len - off, BUF, &f, &reason);

			if (r <= 0)
				break;
			cr_assert(mqtt_decode(MQTT_V5, buf + off, (size_t)r, &p, &reason) > 0,
				  "bad packet from the broker");
			last_type = p.type;
			last_reason = p.type == MQTT_DISCONNECT ? p.disconnect.reason : -1;
			off += (size_t)r;
		}
		memmove(buf, buf + off, len - off);
		len -= off;
	}
	cr_assert_eq(len, 0, "the stream ended inside a packet");
	cr_assert(last_type == MQTT_DISCONNECT && last_reason == MQTT_RC_QUOTA_EXCEEDED,
		  "the slow reader's stream ended with %s (reason %d), not DISCONNECT 0x97",
		  last_type < 0 ? "nothing" : mqtt_type_name((uint8_t)last_type), last_reason);
	tc_close(sub);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* ---- CONNACK capabilities ---- */

/* max_qos 1: CONNACK Maximum QoS 1 [MQTT-3.2.2-9]; a SUBSCRIBE for QoS 2
 * is still accepted, granted 1 [MQTT-3.2.2-10]; a will of QoS 2 is refused
 * with CONNACK 0x9B [MQTT-3.2.2-12]; a PUBLISH of QoS 2 breaks
 * [MQTT-3.2.2-11]: DISCONNECT 0x9B (3.2.2.3.4). */
Test(server, max_qos_1_announced_and_enforced_MQTT_3_2_2_9)
{
	struct broker b;
	struct tclient *c;
	struct mqtt_packet p = tc_connect_packet(MQTT_V5, "mq1"), ack;

	broker_start(&b, "max_qos 1\n");
	c = tc_connect_with(&b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0, "%s", tc_describe(&ack));
	cr_assert(ack.connack.props.present & MQTT_HAS(MQTT_PROP_MAX_QOS), "no Maximum QoS with max_qos 1");
	cr_assert_eq(ack.connack.props.max_qos, 1);
	cr_assert_eq(tc_subscribe_opts(c, "mq1/t", 2), 1, "SUBSCRIBE QoS 2 not granted 1 [MQTT-3.2.2-10]");
	tc_publish(c, "mq1/t", "qos0", 0, false); /* to itself: no PUBACK to mix in */
	(void)tc_expect_publish(c, "mq1/t", "qos0", 0);
	(void)tc_publish_send(c, "mq1/t", "qos2", 2, false);
	tc_expect_disconnect(c, MQTT_RC_QOS_NOT_SUPPORTED);
	tc_close(c);

	p = tc_connect_packet(MQTT_V5, "mq1-will");
	p.connect.will = true;
	p.connect.will_qos = 2;
	p.connect.will_topic = tc_str("mq1/will");
	p.connect.will_payload = tc_str("w");
	c = tc_open(&b, MQTT_V5, "mq1-will");
	(void)tc_send(c, &p);
	tc_expect_refused(c, MQTT_RC_QOS_NOT_SUPPORTED, !b.mosquitto);
	tc_close(c);
	broker_stop(&b);
}

/* retain_available false: CONNACK Retain Available 0 (3.2.2.3.5); a
 * retained will is refused with CONNACK 0x9A [MQTT-3.2.2-13]; a retained
 * PUBLISH breaks [MQTT-3.2.2-14]: DISCONNECT 0x9A. */
Test(server, retain_unavailable_announced_and_enforced_MQTT_3_2_2_13)
{
	struct broker b;
	struct tclient *c;
	struct mqtt_packet p = tc_connect_packet(MQTT_V5, "ra0"), ack;

	broker_start(&b, "retain_available false\n");
	c = tc_connect_with(&b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0, "%s", tc_describe(&ack));
	cr_assert(ack.connack.props.present & MQTT_HAS(MQTT_PROP_RETAIN_AVAILABLE), "no Retain Available");
	cr_assert_eq(ack.connack.props.retain_available, 0);
	tc_subscribe(c, "ra0/t", 1);
	tc_publish(c, "ra0/t", "plain", 0, false);
	(void)tc_expect_publish(c, "ra0/t", "plain", 0);
	(void)tc_publish_send(c, "ra0/t", "retained", 1, true);
	tc_expect_disconnect(c, MQTT_RC_RETAIN_NOT_SUPPORTED);
	tc_close(c);

	p = tc_connect_packet(MQTT_V5, "ra0-will");
	p.connect.will = true;
	p.connect.will_qos = 1;
	p.connect.will_retain = true;
	p.connect.will_topic = tc_str("ra0/will");
	p.connect.will_payload = tc_str("w");
	c = tc_open(&b, MQTT_V5, "ra0-will");
	(void)tc_send(c, &p);
	tc_expect_refused(c, MQTT_RC_RETAIN_NOT_SUPPORTED, !b.mosquitto);
	tc_close(c);
	broker_stop(&b);
}

/* max_keepalive 20: a client asking 60 gets Server Keep Alive 20
 * [MQTT-3.2.2-21]; one asking 15 or 20 gets none and keeps its value
 * [MQTT-3.2.2-22]; one asking 0 (no keep alive) gets 20. */
Test(server, server_keep_alive_reflects_max_keepalive_MQTT_3_2_2_22)
{
	static const struct {
		uint16_t asked;
		bool expect;
	} cases[] = {{60, true}, {15, false}, {20, false}, {0, true}};
	struct broker b;

	broker_start(&b, "max_keepalive 20\n");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mqtt_packet p = tc_connect_packet(MQTT_V5, "ska"), ack;
		struct tclient *c;

		p.connect.keepalive = cases[i].asked;
		c = tc_connect_with(&b, &p, &ack);
		cr_assert_eq(ack.connack.reason, 0, "keep alive %u: %s", cases[i].asked, tc_describe(&ack));
		if (cases[i].expect) {
			cr_assert(ack.connack.props.present & MQTT_HAS(MQTT_PROP_SERVER_KEEP_ALIVE),
				  "keep alive %u: no Server Keep Alive with max_keepalive 20", cases[i].asked);
			cr_assert_eq(ack.connack.props.server_keep_alive, 20);
		} else {
			cr_assert(!(ack.connack.props.present & MQTT_HAS(MQTT_PROP_SERVER_KEEP_ALIVE)) ||
					  ack.connack.props.server_keep_alive == cases[i].asked,
				  "keep alive %u within the maximum changed to %u", cases[i].asked,
				  ack.connack.props.server_keep_alive);
		}
		tc_disconnect(c);
	}
	broker_stop(&b);
}

/* [MQTT-3.1.3-6] [MQTT-3.1.3-7] [MQTT-3.2.2-16] an empty client id gets an
 * Assigned Client Identifier, and the session is that id's: reconnecting
 * with it (Clean Start 0) finds the session and its subscription. */
Test(server, assigned_client_identifier_names_the_session_MQTT_3_1_3_7)
{
	struct broker b;
	struct tclient *c, *pub;
	struct mqtt_props props = {.present = MQTT_HAS(MQTT_PROP_SESSION_EXPIRY), .session_expiry = 60};
	struct mqtt_packet p = tc_connect_packet(MQTT_V5, ""), ack;
	char id[256];

	broker_start(&b, NULL);
	p.connect.props = props;
	c = tc_connect_with(&b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0, "%s", tc_describe(&ack));
	cr_assert(ack.connack.props.present & MQTT_HAS(MQTT_PROP_ASSIGNED_CLIENT_ID) &&
			  ack.connack.props.assigned_client_id.len > 0,
		  "no Assigned Client Identifier [MQTT-3.2.2-16]");
	snprintf(id, sizeof(id), "%s", tc_dup(ack.connack.props.assigned_client_id));
	tc_subscribe(c, "aci/t", 1);
	tc_disconnect(c);
	pub = connect_v5(&b, "aci-pub", NULL, NULL);
	tc_publish(pub, "aci/t", "queued", 1, false);
	p = tc_connect_packet(MQTT_V5, id);
	p.connect.clean = false;
	p.connect.props = props;
	c = tc_connect_with(&b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0, "%s", tc_describe(&ack));
	cr_assert(ack.connack.session_present, "no session under the assigned id '%s' [MQTT-3.1.3-7]", id);
	cr_assert(!(ack.connack.props.present & MQTT_HAS(MQTT_PROP_ASSIGNED_CLIENT_ID)),
		  "Assigned Client Identifier sent to a client that gave one");
	tc_receive_qos(c, "aci/t", "queued", 1);
	tc_disconnect(c);
	tc_disconnect(pub);
	broker_stop(&b);
}

/* [MQTT-3.1.2-28] response_information is returned as Response Information
 * only to a client that set Request Response Information 1; not with 0 or
 * without the property. */
Test(server, response_information_only_when_requested_MQTT_3_1_2_28)
{
	struct broker b;

	harness_ringmq_only("response_information is a ringmq directive");
	broker_start(&b, "response_information replies/node-a/\n");
	for (int asked = -1; asked <= 1; asked++) {
		struct mqtt_props props = {0};
		struct mqtt_packet ack;
		struct tclient *c;

		if (asked >= 0) {
			props.present = MQTT_HAS(MQTT_PROP_REQUEST_RESPONSE_INFO);
			props.request_response_info = (uint8_t)asked;
		}
		c = connect_v5(&b, "rri", &props, &ack);
		if (asked == 1) {
			cr_assert(ack.connack.props.present & MQTT_HAS(MQTT_PROP_RESPONSE_INFO),
				  "no Response Information");
			cr_assert(tc_str_eq(ack.connack.props.response_info, "replies/node-a/"),
				  "Response Information '%s'", tc_dup(ack.connack.props.response_info));
		} else {
			cr_assert(!(ack.connack.props.present & MQTT_HAS(MQTT_PROP_RESPONSE_INFO)),
				  "Response Information '%s' with Request Response Information %d [MQTT-3.1.2-28]",
				  tc_dup(ack.connack.props.response_info), asked);
		}
		tc_disconnect(c);
	}
	broker_stop(&b);
}

/* [MQTT-3.1.2-29] with Request Problem Information 0 the server sends no
 * Reason String or User Property on packets other than PUBLISH, CONNACK
 * and DISCONNECT: here a failed SUBACK (0x8F) and a refused PUBACK
 * (0x87, a '$' topic).  ringmq never sends either property at all. */
Test(server, request_problem_information_0_no_reason_string_MQTT_3_1_2_29)
{
	struct broker b;
	struct tclient *c;
	struct mqtt_props props = {.present = MQTT_HAS(MQTT_PROP_REQUEST_PROBLEM_INFO), .request_problem_info = 0};
	struct mqtt_packet p;
	uint64_t extra = MQTT_HAS(MQTT_PROP_REASON_STRING) | MQTT_HAS(MQTT_PROP_USER);
	uint8_t code;

	harness_mosquitto_deviates("SUBACK for an invalid filter: mosquitto 2.0.11 disconnects instead (03_subscribe)");
	broker_start(&b, NULL);
	c = connect_v5(&b, "rpi", &props, NULL);
	p = (struct mqtt_packet){.type = MQTT_SUBSCRIBE, .flags = 2};
	{
		struct mqtt_sub e = {.filter = tc_str("rpi/#/bad"), .qos = 1};
		uint8_t list[64];
		int n = mqtt_sub_encode(MQTT_V5, &e, false, list, sizeof(list));

		cr_assert(n > 0);
		p.subscribe.packet_id = 7;
		p.subscribe.list = (struct mqtt_str){list, (uint32_t)n};
		p.subscribe.count = 1;
		(void)tc_send(c, &p);
	}
	p = tc_expect(c, MQTT_SUBACK);
	code = p.suback.count ? p.suback.codes[0] : 0;
	cr_assert_eq(code, MQTT_RC_TOPIC_FILTER_INVALID, "%s", tc_describe(&p));
	cr_assert(!(p.suback.props.present & extra) && p.suback.props.user_count == 0,
		  "SUBACK with Reason String or User Property after Request Problem Information 0");
	(void)tc_publish_send(c, "$SYS/rpi", "x", 1, false);
	p = tc_expect(c, MQTT_PUBACK);
	cr_assert_geq(p.ack.reason, 0x80, "PUBLISH to a '$' topic accepted: %s", tc_describe(&p));
	cr_assert(!(p.ack.props.present & extra) && p.ack.props.user_count == 0,
		  "PUBACK with Reason String or User Property after Request Problem Information 0");
	tc_disconnect(c);
	broker_stop(&b);
}

/* ---- Enhanced authentication without a password file ---- */

/* [MQTT-4.12.0-1] an Authentication Method the server cannot serve -
 * SCRAM-SHA-512 when no password_file is configured - gets CONNACK 0x8C
 * and the connection is closed. */
Test(server, authentication_method_refused_0x8c_MQTT_4_12_0_1)
{
	struct broker b;
	struct tclient *c;
	struct mqtt_packet p = tc_connect_packet(MQTT_V5, "scram"), ack;

	broker_start(&b, NULL);
	p.connect.props.present = MQTT_HAS(MQTT_PROP_AUTH_METHOD) | MQTT_HAS(MQTT_PROP_AUTH_DATA);
	p.connect.props.auth_method = tc_str("SCRAM-SHA-512");
	p.connect.props.auth_data = tc_str("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
	c = tc_connect_with(&b, &p, &ack);
	cr_assert(ack.connack.reason == MQTT_RC_BAD_AUTH_METHOD ||
			  (b.mosquitto && ack.connack.reason == MQTT_RC_NOT_AUTHORIZED),
		  "%s", tc_describe(&ack));
	cr_assert(!ack.connack.session_present);
	tc_expect_closed(c);
	tc_close(c);
	broker_stop(&b);
}

/* [MQTT-3.2.2-19] [MQTT-3.2.2-20] the server must not add a Reason String
 * or User Property that would make CONNACK larger than the client's
 * Maximum Packet Size: a client allowing 16 bytes that is refused (here
 * SCRAM-SHA-512 without a password file) gets a CONNACK of at most 16. */
Test(server, connack_properties_within_client_maximum_packet_size_MQTT_3_2_2_19)
{
	struct broker b;
	struct tclient *c;
	struct mqtt_packet p = tc_connect_packet(MQTT_V5, "mps-connack"), ack;

	broker_start(&b, NULL);
	p.connect.props.present = MQTT_HAS(MQTT_PROP_AUTH_METHOD) | MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE);
	p.connect.props.auth_method = tc_str("SCRAM-SHA-512");
	p.connect.props.max_packet_size = 16;
	c = tc_connect_with(&b, &p, &ack);
	cr_assert_geq(ack.connack.reason, 0x80, "%s", tc_describe(&ack));
	cr_assert_leq(c->rx_frame, 16, "CONNACK of %zu bytes to a client whose Maximum Packet Size is 16 "
		      "[MQTT-3.2.2-19] (Reason String '%s')", c->rx_frame, tc_dup(ack.connack.props.reason_string));
	tc_expect_closed(c);
	tc_close(c);
	broker_stop(&b);
}

/* 4.12, 3.15: AUTH from a client that gave no Authentication Method in
 * CONNECT is a Protocol Error: DISCONNECT 0x82. */
Test(server, auth_packet_without_method_disconnect_0x82)
{
	struct broker b;
	struct tclient *c;
	struct mqtt_packet p = {.type = MQTT_AUTH};

	broker_start(&b, NULL);
	c = connect_v5(&b, "authpkt", NULL, NULL);
	p.disconnect.reason = MQTT_RC_CONTINUE_AUTH;
	p.disconnect.props.present = MQTT_HAS(MQTT_PROP_AUTH_METHOD);
	p.disconnect.props.auth_method = tc_str("SCRAM-SHA-512");
	(void)tc_send(c, &p);
	tc_expect_disconnect(c, MQTT_RC_PROTOCOL_ERROR);
	tc_close(c);
	broker_stop(&b);
}
