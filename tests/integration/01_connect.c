/*
 * 01_connect.c - the CONNECT / CONNACK exchange, for MQTT 3.1, 3.1.1 and 5.
 *
 * Checks what the broker does with each kind of bad CONNECT (protocol
 * name, level, reserved flag, will and password flags, a packet before or
 * after CONNECT), the client identifier rules (empty id with and without a
 * session, the assigned identifier of MQTT 5), keep alive negotiation and
 * the properties an MQTT 5 CONNACK carries.  Malformed CONNECTs are built
 * byte by byte (connect_raw) so that the codec's encoder, which refuses
 * such packets, is not in the way.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "tclient.h"

TestSuite(connect, .timeout = 60);

/* CONNECT flag bits (3.1.2.3 / 3.1.2.2). */
#define F_RESERVED 0x01
#define F_CLEAN 0x02
#define F_WILL 0x04
#define F_WILL_QOS1 0x08
#define F_WILL_QOS2 0x10
#define F_WILL_RETAIN 0x20
#define F_PASSWORD 0x40
#define F_USERNAME 0x80

/*
 * A CONNECT with any protocol name, level and flags.  The payload holds the
 * client id, then the will topic and message, user name and password as the
 * flags announce them (so a flag may promise a field the test leaves out by
 * passing @fields_follow_flags false).
 */
static void send_connect_raw(struct tclient *c, const char *proto, uint8_t level, uint8_t flags,
			     const char *client_id, bool fields_follow_flags)
{
	struct tc_bytes w = {.len = 0};

	tc_put_str(&w, proto);
	tc_put_u8(&w, level);
	tc_put_u8(&w, flags);
	tc_put_u16(&w, 60);
	if (level == MQTT_V5)
		tc_put_varint(&w, 0); /* no properties */
	tc_put_str(&w, client_id);
	if (fields_follow_flags && (flags & F_WILL)) {
		if (level == MQTT_V5)
			tc_put_varint(&w, 0);
		tc_put_str(&w, "will/topic");
		tc_put_str(&w, "bye");
	}
	if (fields_follow_flags && (flags & F_USERNAME))
		tc_put_str(&w, "user");
	if (fields_follow_flags && (flags & F_PASSWORD))
		tc_put_str(&w, "secret");
	(void)tc_send_frame(c, MQTT_CONNECT << 4, &w);
}

/* A malformed CONNECT: 3.1.1 is closed without a CONNACK; MQTT 5 may get a
 * CONNACK with @v5_code first (4.13.1). */
static void expect_bad_connect(struct tclient *c, uint8_t level, uint8_t v5_code)
{
	if (level == MQTT_V5)
		tc_expect_refused(c, v5_code, false);
	else
		tc_expect_closed(c);
}

/* Smoke check that an accepted connection works: subscribe and get one's own
 * message back (QoS 0, so no PUBACK races the delivery). */
static void check_usable(struct tclient *c, const char *topic)
{
	tc_subscribe(c, topic, 0);
	tc_publish(c, topic, "ping", 0, false);
	(void)tc_expect_publish(c, topic, "ping", 0);
}

/* ---- Protocol name and level ---- */

/* [MQTT-3.1.2-1] 3.1.1: a wrong protocol name MAY disconnect; ringmq closes
 * (a refusing CONNACK first is tolerated, acceptance is not). */
Test(connect, wrong_protocol_name_closes_connection_MQTT_3_1_2_1)
{
	struct broker b;

	broker_start(&b, NULL);
	for (uint8_t level = MQTT_V311; level <= MQTT_V5; level++) {
		struct tclient *c = tc_open(&b, level, "badname");

		send_connect_raw(c, "MQTX", level, F_CLEAN, "badname", true);
		tc_expect_refused(c, level == MQTT_V5 ? MQTT_RC_UNSUPPORTED_VERSION : MQTT_V3_BAD_VERSION, false);
		tc_close(c);
	}
	broker_stop(&b);
}

/* [MQTT-3.1.2-2] 3.1.1: an unsupported protocol level MUST get CONNACK 0x01
 * and then a close. */
Test(connect, unsupported_level_gets_connack_1_MQTT_3_1_2_2)
{
	struct broker b;
	struct tclient *c;

	broker_start(&b, NULL);
	c = tc_open(&b, MQTT_V311, "level6");
	send_connect_raw(c, "MQTT", 6, F_CLEAN, "level6", true);
	tc_expect_refused(c, MQTT_V3_BAD_VERSION, true);
	tc_close(c);
	broker_stop(&b);
}

/* [MQTT-3.1.2-2] also below the lowest supported level (3). */
Test(connect, unsupported_level_below_3_gets_connack_1_and_close)
{
	struct broker b;
	struct tclient *c;

	broker_start(&b, NULL);
	c = tc_open(&b, MQTT_V311, "level2");
	send_connect_raw(c, "MQTT", 2, F_CLEAN, "level2", true);
	tc_expect_refused(c, MQTT_V3_BAD_VERSION, true);
	tc_close(c);
	broker_stop(&b);
}

/* MQTT 3.1 used protocol name "MQIsdp", level 3. */
Test(connect, mqtt31_mqisdp_accepted_and_usable)
{
	struct broker b;
	struct tclient *c;

	broker_start(&b, NULL);
	c = tc_connect(&b, MQTT_V31, "v31client", true);
	check_usable(c, "v31/t");
	tc_disconnect(c);
	broker_stop(&b);
}

/* ---- Flags ---- */

/* [MQTT-3.1.2-3] The reserved flag must be 0, else the server MUST
 * disconnect (v5: Malformed Packet; a CONNACK 0x81 first is allowed). */
Test(connect, reserved_flag_set_closes_MQTT_3_1_2_3)
{
	struct broker b;

	broker_start(&b, NULL);
	for (uint8_t level = MQTT_V311; level <= MQTT_V5; level++) {
		struct tclient *c = tc_open(&b, level, "reserved");

		send_connect_raw(c, "MQTT", level, F_CLEAN | F_RESERVED, "reserved", true);
		expect_bad_connect(c, level, MQTT_RC_MALFORMED);
		tc_close(c);
	}
	broker_stop(&b);
}

/* [MQTT-3.1.2-11] will QoS and will retain must be 0 without the will flag
 * [MQTT-3.1.2-13, MQTT-3.1.2-15]; will QoS 3 is invalid [MQTT-3.1.2-14]. */
Test(connect, invalid_will_flags_close_MQTT_3_1_2_13_14_15)
{
	static const struct {
		uint8_t flags;
		const char *what;
	} cases[] = {
		{F_CLEAN | F_WILL_QOS1, "will QoS 1 without will flag"},
		{F_CLEAN | F_WILL_RETAIN, "will retain without will flag"},
		{F_CLEAN | F_WILL | F_WILL_QOS1 | F_WILL_QOS2, "will QoS 3"},
	};
	struct broker b;

	broker_start(&b, NULL);
	for (uint8_t level = MQTT_V311; level <= MQTT_V5; level++)
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct tclient *c = tc_open(&b, level, cases[i].what);

			send_connect_raw(c, "MQTT", level, cases[i].flags, "willflags", true);
			expect_bad_connect(c, level, MQTT_RC_MALFORMED);
			tc_close(c);
		}
	broker_stop(&b);
}

/* [MQTT-3.1.2-22] 3.1.1: password flag without user name flag is a
 * protocol violation, so the connection is closed. */
Test(connect, password_without_username_311_closes_MQTT_3_1_2_22)
{
	struct broker b;
	struct tclient *c;

	broker_start(&b, NULL);
	c = tc_open(&b, MQTT_V311, "pwonly");
	send_connect_raw(c, "MQTT", MQTT_V311, F_CLEAN | F_PASSWORD, "pwonly", true);
	tc_expect_closed(c);
	tc_close(c);
	broker_stop(&b);
}

/* MQTT 5 (3.1.2.9) allows a password without a user name. */
Test(connect, password_without_username_v5_accepted)
{
	struct broker b;
	struct tclient *c;
	struct mqtt_packet p = tc_connect_packet(MQTT_V5, "pwonly5"), ack;

	broker_start(&b, NULL);
	p.connect.has_password = true;
	p.connect.password = tc_str("secret");
	c = tc_connect_with(&b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0, "%s", tc_describe(&ack));
	tc_disconnect(c);
	broker_stop(&b);
}

/* ---- Packet order ---- */

/* [MQTT-3.1.0-1] The first packet from the client MUST be CONNECT; anything
 * else closes the connection (and no DISCONNECT may precede a CONNACK,
 * [MQTT-3.14.0-1]). */
Test(connect, first_packet_not_connect_closes_MQTT_3_1_0_1)
{
	static const uint8_t pingreq[] = {0xc0, 0x00};
	static const uint8_t publish[] = {0x30, 0x05, 0x00, 0x01, 't', 'h', 'i'};
	static const uint8_t subscribe[] = {0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 't', 0x00};
	const struct {
		const uint8_t *bytes;
		size_t len;
	} cases[] = {{pingreq, sizeof(pingreq)}, {publish, sizeof(publish)}, {subscribe, sizeof(subscribe)}};
	struct broker b;

	broker_start(&b, NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tclient *c = tc_open(&b, MQTT_V311, "noconnect");

		(void)tc_send_raw(c, cases[i].bytes, cases[i].len);
		tc_expect_closed(c);
		tc_close(c);
	}
	broker_stop(&b);
}

/* [MQTT-3.1.0-2] A second CONNECT is a protocol violation: 3.1.1 closes,
 * MQTT 5 sends DISCONNECT 0x82 and closes. */
Test(connect, second_connect_is_protocol_error_MQTT_3_1_0_2)
{
	struct broker b;

	broker_start(&b, NULL);
	for (uint8_t level = MQTT_V311; level <= MQTT_V5; level++) {
		struct mqtt_packet p = tc_connect_packet(level, "twice");
		struct tclient *c = tc_connect(&b, level, "twice", true);

		(void)tc_send(c, &p);
		tc_expect_disconnect(c, MQTT_RC_PROTOCOL_ERROR);
		tc_close(c);
	}
	broker_stop(&b);
}

/* ---- Client identifiers ---- */

/* [MQTT-3.1.3-8] 3.1.1: an empty client id with Clean Session 0 MUST get
 * CONNACK 0x02 and a close [MQTT-3.1.3-9]. */
Test(connect, empty_client_id_without_clean_session_311_gets_connack_2_MQTT_3_1_3_8)
{
	struct broker b;
	struct tclient *c;
	struct mqtt_packet p = tc_connect_packet(MQTT_V311, "");

	broker_start(&b, NULL);
	p.connect.clean = false;
	c = tc_open(&b, MQTT_V311, "empty-id");
	(void)tc_send(c, &p);
	tc_expect_refused(c, MQTT_V3_ID_REJECTED, true);
	tc_close(c);
	broker_stop(&b);
}

/* [MQTT-3.1.3-6] 3.1.1: an empty client id with Clean Session 1 is
 * accepted and the server assigns one [MQTT-3.1.3-7]. */
Test(connect, empty_client_id_with_clean_session_311_accepted_MQTT_3_1_3_6)
{
	struct broker b;
	struct tclient *c;

	broker_start(&b, NULL);
	c = tc_connect(&b, MQTT_V311, "", true);
	check_usable(c, "anon/t");
	tc_disconnect(c);
	broker_stop(&b);
}

/* [MQTT-3.2.2-16] MQTT 5: an empty client id gets an Assigned Client
 * Identifier in CONNACK; two such clients get different ones. */
Test(connect, empty_client_id_v5_gets_assigned_client_identifier_MQTT_3_2_2_16)
{
	struct broker b;
	struct tclient *c[2];
	char ids[2][256];

	broker_start(&b, NULL);
	for (int i = 0; i < 2; i++) {
		struct mqtt_packet p = tc_connect_packet(MQTT_V5, ""), ack;

		c[i] = tc_connect_with(&b, &p, &ack);
		cr_assert_eq(ack.connack.reason, 0, "%s", tc_describe(&ack));
		cr_assert(ack.connack.props.present & MQTT_HAS(MQTT_PROP_ASSIGNED_CLIENT_ID),
			  "CONNACK without Assigned Client Identifier [MQTT-3.2.2-16]");
		cr_assert(ack.connack.props.assigned_client_id.len > 0, "empty Assigned Client Identifier");
		snprintf(ids[i], sizeof(ids[i]), "%s", tc_dup(ack.connack.props.assigned_client_id));
	}
	cr_assert_str_neq(ids[0], ids[1], "two clients were assigned the same id '%s'", ids[0]);
	check_usable(c[0], "assigned/t");
	tc_disconnect(c[0]);
	tc_disconnect(c[1]);
	broker_stop(&b);
}

/* ---- CONNACK contents ---- */

/* [MQTT-3.2.2-1] / [MQTT-3.2.2-2] Clean Session 1 gives Session Present 0,
 * for every version. */
Test(connect, clean_session_connack_session_present_0_MQTT_3_2_2_1)
{
	struct broker b;

	broker_start(&b, NULL);
	for (uint8_t level = MQTT_V31; level <= MQTT_V5; level++) {
		struct mqtt_packet p = tc_connect_packet(level, "sp0"), ack;
		struct tclient *c = tc_connect_with(&b, &p, &ack);

		cr_assert_eq(ack.connack.reason, 0, "level %u: %s", level, tc_describe(&ack));
		cr_assert(!ack.connack.session_present, "level %u: session present with clean start", level);
		tc_disconnect(c);
	}
	broker_stop(&b);
}

/* MQTT 5: the CONNACK announces the server's limits (3.2.2.3): Receive
 * Maximum (ringmq's RECEIVE_INFLIGHT_DEFAULT; 0 would be a Protocol Error),
 * Topic Alias Maximum, and the configured Maximum Packet Size. */
Test(connect, v5_connack_announces_server_limits)
{
	struct broker b;
	struct tclient *c;
	struct mqtt_packet p = tc_connect_packet(MQTT_V5, "props"), ack;
	const struct mqtt_props *pr;

	broker_start(&b, "max_packet_size 1000\n");
	c = tc_connect_with(&b, &p, &ack);
	pr = &ack.connack.props;
	cr_assert_eq(ack.connack.reason, 0, "%s", tc_describe(&ack));
	cr_assert(pr->present & MQTT_HAS(MQTT_PROP_RECEIVE_MAX), "no Receive Maximum in CONNACK");
	cr_assert_gt(pr->receive_max, 0, "Receive Maximum 0 is a protocol error");
	cr_assert(pr->present & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX), "no Topic Alias Maximum in CONNACK");
	cr_assert(pr->present & MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE), "no Maximum Packet Size in CONNACK");
	cr_assert_eq(pr->max_packet_size, 1000, "Maximum Packet Size %u, configured 1000", pr->max_packet_size);
	cr_assert(!(pr->present & MQTT_HAS(MQTT_PROP_MAX_QOS)) || pr->max_qos == 2,
		  "Maximum QoS %u with the default max_qos 2", pr->max_qos);
	tc_disconnect(c);
	broker_stop(&b);
}

/* [MQTT-3.2.2-21] MQTT 5: a keep alive above max_keepalive is answered with
 * Server Keep Alive, which the client must then use [MQTT-3.2.2-22]. */
Test(connect, v5_keepalive_above_maximum_gets_server_keep_alive_MQTT_3_2_2_21)
{
	struct broker b;
	struct tclient *c;
	struct mqtt_packet p = tc_connect_packet(MQTT_V5, "ka"), ack;

	broker_start(&b, "max_keepalive 10\n");
	p.connect.keepalive = 60;
	c = tc_connect_with(&b, &p, &ack);
	cr_assert_eq(ack.connack.reason, 0, "%s", tc_describe(&ack));
	cr_assert(ack.connack.props.present & MQTT_HAS(MQTT_PROP_SERVER_KEEP_ALIVE), "no Server Keep Alive");
	cr_assert_eq(ack.connack.props.server_keep_alive, 10);
	tc_disconnect(c);
	broker_stop(&b);
}

/* A keep alive within max_keepalive is accepted as asked (3.1.1 has no way
 * to change it; MQTT 5 may echo it but not change it). */
Test(connect, keepalive_within_maximum_accepted)
{
	struct broker b;

	broker_start(&b, "max_keepalive 10\n");
	for (uint8_t level = MQTT_V311; level <= MQTT_V5; level++) {
		struct mqtt_packet p = tc_connect_packet(level, "ka-ok"), ack;
		struct tclient *c;

		p.connect.keepalive = 5;
		c = tc_connect_with(&b, &p, &ack);
		cr_assert_eq(ack.connack.reason, 0, "level %u: %s", level, tc_describe(&ack));
		cr_assert(!(ack.connack.props.present & MQTT_HAS(MQTT_PROP_SERVER_KEEP_ALIVE)) ||
				  ack.connack.props.server_keep_alive == 5,
			  "Server Keep Alive %u for an acceptable 5", ack.connack.props.server_keep_alive);
		tc_disconnect(c);
	}
	broker_stop(&b);
}
