/*
 * test_mqtt.c - the MQTT codec: frame cutting, decoding, encoding, UTF-8,
 * properties, for MQTT 3.1, 3.1.1 and 5.
 *
 * Following picohttpparser's test.c: every valid packet is encoded, then
 * every strict prefix must be "incomplete", the whole must cut and decode
 * back to the same fields, and one-byte-at-a-time feeding must find the
 * same frames as one big read.  Malformed inputs are table-driven, each row
 * naming the normative statement it checks and the exact reason code.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "ringmq/limits.h"
#include "ringmq/mqtt.h"

#define S(lit) ((struct mqtt_str){(const uint8_t *)(lit), sizeof(lit) - 1})
#define BODY(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})
#define NOBODY NULL, 0
#define MQTT4 0, 4, 'M', 'Q', 'T', 'T', 4
#define MQTT5 0, 4, 'M', 'Q', 'T', 'T', 5
#define MQISDP 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3

/* Larger than any packet: frame_cut never refuses for size here. */
#define PACKET_MAX 268435460u
#define BIG (3u << 20)
static uint8_t big_a[BIG];
static uint8_t big_b[BIG];

/* Two user properties, encoded as on the wire. */
static const uint8_t user_block[] = {0x26, 0, 1, 'k', 0, 1, 'v', 0x26, 0, 2, 'k', '2', 0, 0};

/* Build fixed header + Remaining Length + body into @out. */
static size_t frame(uint8_t hdr, const uint8_t *body, size_t len, uint8_t *out)
{
	size_t n = 0;
	uint32_t v = (uint32_t)len;

	out[n++] = hdr;
	do {
		out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	if (len)
		memcpy(out + n, body, len);
	return n + len;
}

/* ------------------------------------------------------------- compare */

static void str_eq(struct mqtt_str a, struct mqtt_str b, const char *what)
{
	cr_assert_eq(a.len, b.len, "%s: length %u != %u", what, a.len, b.len);
	if (a.len)
		cr_assert(memcmp(a.ptr, b.ptr, a.len) == 0, "%s: bytes differ", what);
}

static void props_eq(uint8_t v, const struct mqtt_props *a, const struct mqtt_props *b)
{
	uint64_t want = a->present;

	if (v < MQTT_V5) {
		cr_assert_eq(b->present, 0);
		return;
	}
	if (a->user.len)
		want |= MQTT_HAS(MQTT_PROP_USER);
	cr_assert_eq(b->present, want, "present %llx != %llx", (unsigned long long)b->present,
		     (unsigned long long)want);
#define PB(id, f) if (want & MQTT_HAS(id)) cr_assert_eq(a->f, b->f, #f)
#define PS(id, f) if (want & MQTT_HAS(id)) str_eq(a->f, b->f, #f)
	PB(MQTT_PROP_PAYLOAD_FORMAT, payload_format);
	PB(MQTT_PROP_REQUEST_PROBLEM_INFO, request_problem_info);
	PB(MQTT_PROP_REQUEST_RESPONSE_INFO, request_response_info);
	PB(MQTT_PROP_MAX_QOS, max_qos);
	PB(MQTT_PROP_RETAIN_AVAILABLE, retain_available);
	PB(MQTT_PROP_WILDCARD_SUB_AVAILABLE, wildcard_available);
	PB(MQTT_PROP_SUBID_AVAILABLE, subid_available);
	PB(MQTT_PROP_SHARED_SUB_AVAILABLE, shared_available);
	PB(MQTT_PROP_SERVER_KEEP_ALIVE, server_keep_alive);
	PB(MQTT_PROP_RECEIVE_MAX, receive_max);
	PB(MQTT_PROP_TOPIC_ALIAS_MAX, topic_alias_max);
	PB(MQTT_PROP_TOPIC_ALIAS, topic_alias);
	PB(MQTT_PROP_MESSAGE_EXPIRY, message_expiry);
	PB(MQTT_PROP_SESSION_EXPIRY, session_expiry);
	PB(MQTT_PROP_WILL_DELAY, will_delay);
	PB(MQTT_PROP_MAX_PACKET_SIZE, max_packet_size);
	PS(MQTT_PROP_CONTENT_TYPE, content_type);
	PS(MQTT_PROP_RESPONSE_TOPIC, response_topic);
	PS(MQTT_PROP_CORRELATION_DATA, correlation_data);
	PS(MQTT_PROP_ASSIGNED_CLIENT_ID, assigned_client_id);
	PS(MQTT_PROP_AUTH_METHOD, auth_method);
	PS(MQTT_PROP_AUTH_DATA, auth_data);
	PS(MQTT_PROP_RESPONSE_INFO, response_info);
	PS(MQTT_PROP_SERVER_REFERENCE, server_reference);
	PS(MQTT_PROP_REASON_STRING, reason_string);
#undef PB
#undef PS
	if (want & MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID)) {
		cr_assert_eq(a->subid_count, b->subid_count);
		for (uint32_t i = 0; i < a->subid_count; i++)
			cr_assert_eq(a->subids[i], b->subids[i]);
	}
	cr_assert_eq(mqtt_props_user_len(b), a->user.len);
	if (a->user.len) {
		uint8_t tmp[256];

		cr_assert_eq(mqtt_props_user_copy(b, tmp), a->user.len);
		cr_assert(memcmp(tmp, a->user.ptr, a->user.len) == 0);
		cr_assert_gt(b->user_count, 0);
	}
}

static void connect_eq(uint8_t v, const struct mqtt_connect *a, const struct mqtt_connect *b)
{
	cr_assert_eq(b->version, v);
	if (a->protocol_name.len)
		str_eq(a->protocol_name, b->protocol_name, "protocol name");
	else
		str_eq(v == MQTT_V31 ? S("MQIsdp") : S("MQTT"), b->protocol_name, "protocol name");
	cr_assert_eq(a->clean, b->clean);
	cr_assert_eq(a->will, b->will);
	cr_assert_eq(a->will_retain, b->will_retain);
	cr_assert_eq(a->will_qos, b->will_qos);
	cr_assert_eq(a->has_username, b->has_username);
	cr_assert_eq(a->has_password, b->has_password);
	cr_assert_eq(a->keepalive, b->keepalive);
	str_eq(a->client_id, b->client_id, "client id");
	if (a->will) {
		str_eq(a->will_topic, b->will_topic, "will topic");
		str_eq(a->will_payload, b->will_payload, "will payload");
		props_eq(v, &a->will_props, &b->will_props);
	} else {
		cr_assert_eq(b->will_props.present, 0);
	}
	if (a->has_username)
		str_eq(a->username, b->username, "username");
	if (a->has_password)
		str_eq(a->password, b->password, "password");
	props_eq(v, &a->props, &b->props);
}

static void pkt_eq(uint8_t v, const struct mqtt_packet *a, const struct mqtt_packet *b)
{
	cr_assert_eq(a->type, b->type);
	switch (a->type) {
	case MQTT_CONNECT: connect_eq(v, &a->connect, &b->connect); break;
	case MQTT_CONNACK:
		cr_assert_eq(b->connack.session_present, v == MQTT_V31 ? false : a->connack.session_present);
		cr_assert_eq(a->connack.reason, b->connack.reason);
		props_eq(v, &a->connack.props, &b->connack.props);
		break;
	case MQTT_PUBLISH:
		cr_assert_eq(a->publish.qos, b->publish.qos);
		cr_assert_eq(a->publish.dup, b->publish.dup);
		cr_assert_eq(a->publish.retain, b->publish.retain);
		cr_assert_eq(b->publish.packet_id, a->publish.qos ? a->publish.packet_id : 0);
		str_eq(a->publish.topic, b->publish.topic, "topic");
		str_eq(a->publish.payload, b->publish.payload, "payload");
		props_eq(v, &a->publish.props, &b->publish.props);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		cr_assert_eq(a->ack.packet_id, b->ack.packet_id);
		cr_assert_eq(b->ack.reason, v == MQTT_V5 ? a->ack.reason : 0);
		props_eq(v, &a->ack.props, &b->ack.props);
		break;
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE:
		cr_assert_eq(a->subscribe.packet_id, b->subscribe.packet_id);
		str_eq(a->subscribe.list, b->subscribe.list, "list");
		cr_assert_eq(a->subscribe.count, b->subscribe.count);
		props_eq(v, &a->subscribe.props, &b->subscribe.props);
		break;
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
		cr_assert_eq(a->suback.packet_id, b->suback.packet_id);
		if (a->type == MQTT_UNSUBACK && v < MQTT_V5) {
			cr_assert_eq(b->suback.count, 0);
		} else {
			cr_assert_eq(a->suback.count, b->suback.count);
			cr_assert(memcmp(a->suback.codes, b->suback.codes, a->suback.count) == 0);
		}
		props_eq(v, &a->suback.props, &b->suback.props);
		break;
	case MQTT_DISCONNECT:
	case MQTT_AUTH:
		cr_assert_eq(b->disconnect.reason, v == MQTT_V5 ? a->disconnect.reason : 0);
		props_eq(v, &a->disconnect.props, &b->disconnect.props);
		break;
	default: break;
	}
}

/* ----------------------------------------------------------- round trip */

/* Every strict prefix is incomplete; the whole cuts to exactly @n. */
static void check_prefixes(const uint8_t *buf, size_t n)
{
	struct mqtt_frame f;
	uint8_t rc = 0xee;

	for (size_t i = 0; i < n; i++)
		cr_assert_eq(mqtt_frame_cut(buf, i, PACKET_MAX, &f, &rc), 0, "prefix %zu of %zu", i, n);
	cr_assert_eq(mqtt_frame_cut(buf, n, PACKET_MAX, &f, &rc), (int)n);
	cr_assert_eq(f.type, buf[0] >> 4);
	cr_assert_eq(f.flags, buf[0] & 15);
	cr_assert_eq(f.header_len + f.body_len, n);
	cr_assert_eq(f.header_len, 1 + mqtt_varint_len(f.body_len));
	cr_assert_eq(rc, 0xee, "reason written on success");
}

/* Encode @in for @v, check lengths, prefixes and -ENOBUFS, decode into
 * @out and compare.  Returns the encoded length; the bytes are in big_a. */
static size_t roundtrip(uint8_t v, const struct mqtt_packet *in, struct mqtt_packet *out)
{
	size_t n = mqtt_encoded_len(v, in);
	uint8_t rc = 0;
	int r;

	cr_assert_gt(n, 0, "%s v%u cannot be encoded", mqtt_type_name(in->type), v);
	cr_assert_leq(n, BIG);
	cr_assert_eq(mqtt_encode(v, in, big_a, n - 1), -ENOBUFS);
	cr_assert_eq(mqtt_encode(v, in, big_a, 0), -ENOBUFS);
	r = mqtt_encode(v, in, big_a, BIG);
	cr_assert_eq(r, (int)n, "encode %d, encoded_len %zu", r, n);
	if (n < 70000)
		check_prefixes(big_a, n);
	memset(out, 0x5a, sizeof(*out));
	r = mqtt_decode(v, big_a, n, out, &rc);
	cr_assert_eq(r, (int)n, "%s v%u: decode %d reason 0x%02x", mqtt_type_name(in->type), v, r, rc);
	pkt_eq(v, in, out);
	return n;
}

static size_t roundtrip_all(const struct mqtt_packet *in)
{
	struct mqtt_packet out;
	size_t n = 0;

	for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++)
		n = roundtrip(v, in, &out);
	return n;
}

/* ------------------------------------------------------ property sets */

static void props_user(struct mqtt_props *p)
{
	p->user.ptr = user_block;
	p->user.len = sizeof(user_block);
}

static void props_message(struct mqtt_props *p)
{
	p->present |= MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT) | MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY) |
		      MQTT_HAS(MQTT_PROP_CONTENT_TYPE) | MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC) |
		      MQTT_HAS(MQTT_PROP_CORRELATION_DATA);
	p->payload_format = 1;
	p->message_expiry = 3600;
	p->content_type = S("text/plain; charset=\xc3\xa9");
	p->response_topic = S("reply/to/me");
	p->correlation_data = S("\x00\x01\xff");
	props_user(p);
}

static void props_connect(struct mqtt_props *p)
{
	p->present = MQTT_HAS(MQTT_PROP_SESSION_EXPIRY) | MQTT_HAS(MQTT_PROP_AUTH_METHOD) |
		     MQTT_HAS(MQTT_PROP_AUTH_DATA) | MQTT_HAS(MQTT_PROP_REQUEST_PROBLEM_INFO) |
		     MQTT_HAS(MQTT_PROP_REQUEST_RESPONSE_INFO) | MQTT_HAS(MQTT_PROP_RECEIVE_MAX) |
		     MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX) | MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE);
	p->session_expiry = 0xffffffff;
	p->auth_method = S("SCRAM-SHA-1");
	p->auth_data = S("\x01\x02");
	p->request_problem_info = 0;
	p->request_response_info = 1;
	p->receive_max = 100;
	p->topic_alias_max = 10;
	p->max_packet_size = 65536;
	props_user(p);
}

static void props_connack(struct mqtt_props *p)
{
	p->present = MQTT_HAS(MQTT_PROP_SESSION_EXPIRY) | MQTT_HAS(MQTT_PROP_ASSIGNED_CLIENT_ID) |
		     MQTT_HAS(MQTT_PROP_SERVER_KEEP_ALIVE) | MQTT_HAS(MQTT_PROP_AUTH_METHOD) |
		     MQTT_HAS(MQTT_PROP_AUTH_DATA) | MQTT_HAS(MQTT_PROP_RESPONSE_INFO) |
		     MQTT_HAS(MQTT_PROP_SERVER_REFERENCE) | MQTT_HAS(MQTT_PROP_REASON_STRING) |
		     MQTT_HAS(MQTT_PROP_RECEIVE_MAX) | MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX) |
		     MQTT_HAS(MQTT_PROP_MAX_QOS) | MQTT_HAS(MQTT_PROP_RETAIN_AVAILABLE) |
		     MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE) | MQTT_HAS(MQTT_PROP_WILDCARD_SUB_AVAILABLE) |
		     MQTT_HAS(MQTT_PROP_SUBID_AVAILABLE) | MQTT_HAS(MQTT_PROP_SHARED_SUB_AVAILABLE);
	p->session_expiry = 60;
	p->assigned_client_id = S("auto-1234");
	p->server_keep_alive = 30;
	p->auth_method = S("m");
	p->auth_data = S("");
	p->response_info = S("resp/");
	p->server_reference = S("other:1883");
	p->reason_string = S("ok");
	p->receive_max = 65535;
	p->topic_alias_max = 0;
	p->max_qos = 1;
	p->retain_available = 0;
	p->max_packet_size = 268435460u;
	p->wildcard_available = 1;
	p->subid_available = 0;
	p->shared_available = 1;
	props_user(p);
}

static void props_reason(struct mqtt_props *p)
{
	p->present = MQTT_HAS(MQTT_PROP_REASON_STRING);
	p->reason_string = S("because");
	props_user(p);
}

/* ------------------------------------------------------- round trips */

Test(mqtt, connect_round_trips_in_every_version)
{
	struct mqtt_packet in = {.type = MQTT_CONNECT};
	struct mqtt_connect *c = &in.connect;

	c->clean = true;
	c->keepalive = 60;
	c->client_id = S("client-1");
	roundtrip_all(&in);

	c->client_id = S("");
	c->keepalive = 0;
	roundtrip_all(&in);

	c->clean = false;
	c->will = true;
	c->will_qos = 2;
	c->will_retain = true;
	c->will_topic = S("last/will/\xe2\x82\xac");
	c->will_payload = S("gone\x00\xff");
	c->has_username = true;
	c->username = S("user");
	c->has_password = true;
	c->password = S("\x00secret\xff");
	c->keepalive = 65535;
	roundtrip_all(&in);

	props_connect(&c->props);
	props_message(&c->will_props);
	c->will_props.present |= MQTT_HAS(MQTT_PROP_WILL_DELAY);
	c->will_props.will_delay = 7;
	roundtrip_all(&in);

	/* MQTT 5 allows a password without a user name [MQTT-3.1.2-22 is 3.1.1 only]. */
	c->has_username = false;
	struct mqtt_packet out;
	roundtrip(MQTT_V5, &in, &out);
}

Test(mqtt, connect_v31_uses_mqisdp_level_3)
{
	struct mqtt_packet in = {.type = MQTT_CONNECT}, out;
	uint8_t buf[64];
	int n;

	in.connect.clean = true;
	in.connect.client_id = S("c");
	n = mqtt_encode(MQTT_V31, &in, buf, sizeof(buf));
	cr_assert_gt(n, 10);
	cr_assert(memcmp(buf + 2, "\x00\x06MQIsdp\x03", 9) == 0);
	roundtrip(MQTT_V31, &in, &out);
	str_eq(out.connect.protocol_name, S("MQIsdp"), "name");
	cr_assert_eq(out.connect.version, MQTT_V31);
	n = mqtt_encode(MQTT_V311, &in, buf, sizeof(buf));
	cr_assert(memcmp(buf + 2, "\x00\x04MQTT\x04", 7) == 0);
}

Test(mqtt, connect_version_comes_from_the_packet)
{
	struct mqtt_packet in = {.type = MQTT_CONNECT}, out;
	uint8_t rc;
	int n;

	in.connect.client_id = S("c");
	n = mqtt_encode(MQTT_V5, &in, big_a, BIG);
	/* Decoded on a connection whose version is not known yet. */
	cr_assert_eq(mqtt_decode(MQTT_V311, big_a, (size_t)n, &out, &rc), n);
	cr_assert_eq(out.connect.version, MQTT_V5);
	n = mqtt_encode(MQTT_V31, &in, big_a, BIG);
	cr_assert_eq(mqtt_decode(MQTT_V5, big_a, (size_t)n, &out, &rc), n);
	cr_assert_eq(out.connect.version, MQTT_V31);
}

Test(mqtt, connect_unsupported_level_reports_0x84_and_the_level)
{
	static const uint8_t body[] = {0, 4, 'M', 'Q', 'T', 'T', 6, 2, 0, 60, 0, 1, 'a'};
	struct mqtt_packet out;
	uint8_t buf[32], rc = 0;
	size_t n = frame(0x10, body, sizeof(body), buf);

	/* [MQTT-3.1.2-2]: the caller answers CONNACK 0x84 / return code 1. */
	cr_assert_eq(mqtt_decode(MQTT_V5, buf, n, &out, &rc), -EPROTO);
	cr_assert_eq(rc, MQTT_RC_UNSUPPORTED_VERSION);
	cr_assert_eq(out.type, MQTT_CONNECT);
	cr_assert_eq(out.connect.version, 6);
	str_eq(out.connect.protocol_name, S("MQTT"), "name");
}

Test(mqtt, connack_round_trips_in_every_version)
{
	struct mqtt_packet in = {.type = MQTT_CONNACK}, out;

	roundtrip_all(&in);
	in.connack.session_present = true;
	roundtrip_all(&in);
	in.connack.session_present = false;
	in.connack.reason = MQTT_V3_NOT_AUTHORIZED;
	roundtrip(MQTT_V31, &in, &out);
	roundtrip(MQTT_V311, &in, &out);
	in.connack.reason = MQTT_RC_BANNED;
	roundtrip(MQTT_V5, &in, &out);
	in.connack.reason = 0;
	props_connack(&in.connack.props);
	roundtrip_all(&in);
}

Test(mqtt, connack_v31_ignores_the_reserved_first_byte)
{
	static const uint8_t pkt[] = {0x20, 2, 0xff, 0};
	struct mqtt_packet out;
	uint8_t rc;

	cr_assert_eq(mqtt_decode(MQTT_V31, pkt, sizeof(pkt), &out, &rc), 4);
	cr_assert_not(out.connack.session_present);
	/* The same byte is malformed from 3.1.1 on [MQTT-3.2.2-1]. */
	cr_assert_eq(mqtt_decode(MQTT_V311, pkt, sizeof(pkt), &out, &rc), -EBADMSG);
	cr_assert_eq(rc, MQTT_RC_MALFORMED);
}

Test(mqtt, publish_round_trips_for_every_qos_and_flag)
{
	struct mqtt_packet in = {.type = MQTT_PUBLISH}, out;
	struct mqtt_publish *p = &in.publish;

	p->topic = S("a/b/c");
	p->payload = S("hello");
	for (uint8_t q = 0; q <= 2; q++) {
		p->qos = q;
		p->packet_id = q ? 0xbeef : 0;
		for (int f = 0; f < 4; f++) {
			p->retain = f & 1;
			p->dup = (f & 2) && q; /* DUP with QoS 0 is malformed in 5 */
			roundtrip_all(&in);
		}
	}
	p->payload = S("");
	roundtrip_all(&in);
	/* 3.1.1 tolerates DUP on QoS 0 (only v5 calls it malformed). */
	p->qos = 0;
	p->dup = true;
	roundtrip(MQTT_V311, &in, &out);
	roundtrip(MQTT_V31, &in, &out);
}

Test(mqtt, publish_v5_properties_round_trip)
{
	struct mqtt_packet in = {.type = MQTT_PUBLISH}, out;
	struct mqtt_publish *p = &in.publish;

	p->qos = 1;
	p->packet_id = 1;
	p->topic = S("t");
	p->payload = S("x");
	props_message(&p->props);
	p->props.present |= MQTT_HAS(MQTT_PROP_TOPIC_ALIAS) | MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
	p->props.topic_alias = 65535;
	/* Server -> client: one identifier per matching subscription. */
	p->props.subid_count = 3;
	p->props.subids[0] = 1;
	p->props.subids[1] = 268435455;
	p->props.subids[2] = 128;
	roundtrip(MQTT_V5, &in, &out);
	cr_assert_eq(out.publish.props.user_count, 2);

	/* An empty topic is allowed with a Topic Alias (section 3.3.2.3.4). */
	p->topic = S("");
	roundtrip(MQTT_V5, &in, &out);
	/* The same properties are dropped for 3.x. */
	p->topic = S("t");
	roundtrip(MQTT_V311, &in, &out);
}

Test(mqtt, publish_payload_sizes_cross_every_varint_boundary)
{
	static const uint32_t sizes[] = {0, 1, 120, 121, 122, 123, 16376, 16377, 16378, 16379, 2097140, 2097145,
					 2097146, 2097147};
	struct mqtt_packet in = {.type = MQTT_PUBLISH}, out;

	memset(big_b, 'p', BIG);
	in.publish.topic = S("abc");
	in.publish.payload.ptr = big_b;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		in.publish.payload.len = sizes[i];
		size_t n = roundtrip(MQTT_V311, &in, &out);
		uint32_t body = sizes[i] + 5;

		cr_assert_eq(n, 1 + mqtt_varint_len(body) + body);
	}
}

Test(mqtt, acks_round_trip_in_every_version)
{
	static const uint8_t types[] = {MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP};
	struct mqtt_packet in, out;

	for (size_t i = 0; i < 4; i++) {
		in = (struct mqtt_packet){.type = types[i]};
		in.ack.packet_id = 0x1234;
		cr_assert_eq(roundtrip_all(&in), 4); /* v5 short form too */
		in.ack.reason = types[i] <= MQTT_PUBREC ? MQTT_RC_NO_MATCHING_SUBSCRIBERS
							 : MQTT_RC_PACKET_ID_NOT_FOUND;
		cr_assert_eq(roundtrip(MQTT_V5, &in, &out), 5);
		props_reason(&in.ack.props);
		roundtrip(MQTT_V5, &in, &out);
		in.ack.reason = 0;
		roundtrip(MQTT_V5, &in, &out);
		cr_assert_eq(roundtrip(MQTT_V311, &in, &out), 4);
		cr_assert_eq(roundtrip(MQTT_V31, &in, &out), 4);
	}
}

Test(mqtt, v5_ack_short_forms_decode_with_reason_0)
{
	/* [MQTT-3.4.2-1] and section 3.4.2.2: reason and property length may be
	 * omitted; both defaults are 0. */
	static const uint8_t two[] = {0x40, 2, 0, 7};
	static const uint8_t three[] = {0x50, 3, 0, 7, 0x10};
	static const uint8_t four[] = {0x62, 4, 0, 7, 0x92, 0};
	static const uint8_t full[] = {0x70, 8, 0, 7, 0, 4, 0x1f, 0, 1, 'x'};
	struct mqtt_packet out;
	uint8_t rc;

	cr_assert_eq(mqtt_decode(MQTT_V5, two, sizeof(two), &out, &rc), 4);
	cr_assert_eq(out.ack.reason, 0);
	cr_assert_eq(out.ack.packet_id, 7);
	cr_assert_eq(out.ack.props.present, 0);
	cr_assert_eq(mqtt_decode(MQTT_V5, three, sizeof(three), &out, &rc), 5);
	cr_assert_eq(out.ack.reason, 0x10);
	cr_assert_eq(mqtt_decode(MQTT_V5, four, sizeof(four), &out, &rc), 6);
	cr_assert_eq(out.ack.reason, 0x92);
	cr_assert_eq(out.ack.props.present, 0);
	cr_assert_eq(mqtt_decode(MQTT_V5, full, sizeof(full), &out, &rc), 10);
	str_eq(out.ack.props.reason_string, S("x"), "reason string");
}

Test(mqtt, v5_encoder_uses_the_short_forms)
{
	struct mqtt_packet in = {.type = MQTT_PUBACK};
	uint8_t buf[16];

	in.ack.packet_id = 9;
	cr_assert_eq(mqtt_encode(MQTT_V5, &in, buf, sizeof(buf)), 4);
	cr_assert(memcmp(buf, "\x40\x02\x00\x09", 4) == 0);
	in.ack.reason = 0x10;
	cr_assert_eq(mqtt_encode(MQTT_V5, &in, buf, sizeof(buf)), 5);
	cr_assert(memcmp(buf, "\x40\x03\x00\x09\x10", 5) == 0);
	in = (struct mqtt_packet){.type = MQTT_DISCONNECT};
	cr_assert_eq(mqtt_encode(MQTT_V5, &in, buf, sizeof(buf)), 2);
	cr_assert(memcmp(buf, "\xe0\x00", 2) == 0);
	in.disconnect.reason = MQTT_RC_DISCONNECT_WITH_WILL;
	cr_assert_eq(mqtt_encode(MQTT_V5, &in, buf, sizeof(buf)), 3);
	cr_assert(memcmp(buf, "\xe0\x01\x04", 3) == 0);
	in = (struct mqtt_packet){.type = MQTT_AUTH};
	cr_assert_eq(mqtt_encode(MQTT_V5, &in, buf, sizeof(buf)), 2);
	cr_assert(memcmp(buf, "\xf0\x00", 2) == 0);
	/* A property with reason 0 needs the reason byte too. */
	in = (struct mqtt_packet){.type = MQTT_PUBREL};
	in.ack.packet_id = 1;
	in.ack.props.present = MQTT_HAS(MQTT_PROP_REASON_STRING);
	in.ack.props.reason_string = S("r");
	cr_assert_eq(mqtt_encode(MQTT_V5, &in, buf, sizeof(buf)), 10);
	cr_assert(memcmp(buf, "\x62\x08\x00\x01\x00\x04\x1f\x00\x01r", 10) == 0);
}

Test(mqtt, subscribe_round_trips_in_every_version)
{
	struct mqtt_packet in = {.type = MQTT_SUBSCRIBE}, out;
	struct mqtt_sub s = {0}, got;
	uint8_t list[128];
	uint32_t pos;
	int n, m;

	for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++) {
		s.filter = S("a/+/#");
		s.qos = 2;
		s.no_local = v == MQTT_V5;
		s.retain_as_published = v == MQTT_V5;
		s.retain_handling = v == MQTT_V5 ? 2 : 0;
		n = mqtt_sub_encode(v, &s, false, list, sizeof(list));
		cr_assert_eq(n, 8);
		s.filter = S("$share/g/x");
		s.qos = 1;
		s.no_local = false; /* [MQTT-3.8.3-4] */
		m = mqtt_sub_encode(v, &s, false, list + n, sizeof(list) - (size_t)n);
		cr_assert_eq(m, 13);
		in = (struct mqtt_packet){.type = MQTT_SUBSCRIBE};
		in.subscribe.packet_id = 77;
		in.subscribe.list.ptr = list;
		in.subscribe.list.len = (uint32_t)(n + m);
		in.subscribe.count = 2;
		if (v == MQTT_V5) {
			in.subscribe.props.present = MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
			in.subscribe.props.subid_count = 1;
			in.subscribe.props.subids[0] = 268435455;
			props_user(&in.subscribe.props);
		}
		roundtrip(v, &in, &out);
		pos = 0;
		cr_assert_eq(mqtt_sub_next(&out.subscribe, false, &pos, &got), 1);
		str_eq(got.filter, S("a/+/#"), "filter");
		cr_assert_eq(got.qos, 2);
		cr_assert_eq(got.no_local, v == MQTT_V5);
		cr_assert_eq(got.retain_as_published, v == MQTT_V5);
		cr_assert_eq(got.retain_handling, v == MQTT_V5 ? 2 : 0);
		cr_assert_eq(mqtt_sub_next(&out.subscribe, false, &pos, &got), 1);
		str_eq(got.filter, S("$share/g/x"), "filter");
		cr_assert_eq(got.qos, 1);
		cr_assert_eq(mqtt_sub_next(&out.subscribe, false, &pos, &got), 0);
		cr_assert_eq(pos, (uint32_t)(n + m));
	}
}

Test(mqtt, unsubscribe_round_trips_in_every_version)
{
	struct mqtt_packet in, out;
	struct mqtt_sub s = {.filter = S("x/#")}, got;
	uint8_t list[64];
	uint32_t pos = 0;
	int n;

	for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++) {
		n = mqtt_sub_encode(v, &s, true, list, sizeof(list));
		cr_assert_eq(n, 5);
		cr_assert_eq(mqtt_sub_encode(v, &s, true, list + n, sizeof(list) - (size_t)n), 5);
		in = (struct mqtt_packet){.type = MQTT_UNSUBSCRIBE};
		in.subscribe.packet_id = 1;
		in.subscribe.list.ptr = list;
		in.subscribe.list.len = 10;
		in.subscribe.count = 2;
		if (v == MQTT_V5)
			props_user(&in.subscribe.props);
		roundtrip(v, &in, &out);
		pos = 0;
		cr_assert_eq(mqtt_sub_next(&out.subscribe, true, &pos, &got), 1);
		str_eq(got.filter, S("x/#"), "filter");
		cr_assert_eq(mqtt_sub_next(&out.subscribe, true, &pos, &got), 1);
		cr_assert_eq(mqtt_sub_next(&out.subscribe, true, &pos, &got), 0);
	}
}

Test(mqtt, suback_and_unsuback_round_trip_in_every_version)
{
	static const uint8_t v3codes[] = {0, 1, 2, 0x80};
	static const uint8_t v5codes[] = {0, 1, 2, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2};
	static const uint8_t uncodes[] = {0, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91};
	struct mqtt_packet in = {.type = MQTT_SUBACK}, out;

	in.suback.packet_id = 65535;
	in.suback.codes = v3codes;
	in.suback.count = sizeof(v3codes);
	roundtrip_all(&in);
	in.suback.codes = v5codes;
	in.suback.count = sizeof(v5codes);
	props_reason(&in.suback.props);
	roundtrip(MQTT_V5, &in, &out);

	in = (struct mqtt_packet){.type = MQTT_UNSUBACK};
	in.suback.packet_id = 3;
	cr_assert_eq(roundtrip(MQTT_V311, &in, &out), 4); /* 3.x: no codes */
	cr_assert_eq(roundtrip(MQTT_V31, &in, &out), 4);
	in.suback.codes = uncodes;
	in.suback.count = sizeof(uncodes);
	cr_assert_eq(roundtrip(MQTT_V311, &in, &out), 4); /* codes are not written */
	roundtrip(MQTT_V5, &in, &out);
	props_reason(&in.suback.props);
	roundtrip(MQTT_V5, &in, &out);
}

Test(mqtt, ping_and_disconnect_round_trip_in_every_version)
{
	struct mqtt_packet in = {.type = MQTT_PINGREQ}, out;

	cr_assert_eq(roundtrip_all(&in), 2);
	in.type = MQTT_PINGRESP;
	cr_assert_eq(roundtrip_all(&in), 2);
	in = (struct mqtt_packet){.type = MQTT_DISCONNECT};
	cr_assert_eq(roundtrip_all(&in), 2);
	in.disconnect.reason = MQTT_RC_SESSION_TAKEN_OVER;
	cr_assert_eq(roundtrip(MQTT_V5, &in, &out), 3);
	cr_assert_eq(roundtrip(MQTT_V311, &in, &out), 2); /* 3.x has no reason */
	in.disconnect.props.present = MQTT_HAS(MQTT_PROP_SESSION_EXPIRY) | MQTT_HAS(MQTT_PROP_SERVER_REFERENCE) |
				      MQTT_HAS(MQTT_PROP_REASON_STRING);
	in.disconnect.props.session_expiry = 10;
	in.disconnect.props.server_reference = S("s");
	in.disconnect.props.reason_string = S("r");
	props_user(&in.disconnect.props);
	roundtrip(MQTT_V5, &in, &out);
}

Test(mqtt, auth_round_trips_in_v5_and_is_refused_before)
{
	struct mqtt_packet in = {.type = MQTT_AUTH}, out;
	uint8_t buf[64];

	cr_assert_eq(roundtrip(MQTT_V5, &in, &out), 2);
	in.disconnect.reason = MQTT_RC_CONTINUE_AUTH;
	in.disconnect.props.present = MQTT_HAS(MQTT_PROP_AUTH_METHOD) | MQTT_HAS(MQTT_PROP_AUTH_DATA) |
				      MQTT_HAS(MQTT_PROP_REASON_STRING);
	in.disconnect.props.auth_method = S("SCRAM-SHA-256");
	in.disconnect.props.auth_data = S("\x00\x01\x02");
	in.disconnect.props.reason_string = S("more");
	props_user(&in.disconnect.props);
	roundtrip(MQTT_V5, &in, &out);
	cr_assert_eq(mqtt_encode(MQTT_V311, &in, buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(mqtt_encoded_len(MQTT_V31, &in), 0);
}

/* ------------------------------------------------------- frame cutting */

Test(mqtt, frame_cut_needs_more_bytes_for_partial_headers)
{
	static const uint8_t partial[] = {0x30, 0x80, 0x80};
	struct mqtt_frame f;
	uint8_t rc;

	cr_assert_eq(mqtt_frame_cut(partial, 0, 100, &f, &rc), 0);
	cr_assert_eq(mqtt_frame_cut(partial, 1, 100, &f, &rc), 0);
	cr_assert_eq(mqtt_frame_cut(partial, 2, 100, &f, &rc), 0);
	cr_assert_eq(mqtt_frame_cut(partial, 3, 100, &f, &rc), 0);
}

Test(mqtt, frame_cut_refuses_packet_type_0)
{
	static const uint8_t pkt[] = {0x00, 0x00};
	struct mqtt_frame f;
	uint8_t rc = 0;

	cr_assert_eq(mqtt_frame_cut(pkt, 2, 100, &f, &rc), -EBADMSG);
	cr_assert_eq(rc, MQTT_RC_MALFORMED);
	rc = 0;
	cr_assert_eq(mqtt_frame_cut(pkt, 1, 100, &f, &rc), -EBADMSG, "known from the first byte");
	cr_assert_eq(rc, MQTT_RC_MALFORMED);
}

Test(mqtt, frame_cut_refuses_a_fifth_length_byte)
{
	/* Section 1.5.5: at most four bytes. */
	static const uint8_t pkt[] = {0x30, 0xff, 0xff, 0xff, 0xff, 0x01};
	struct mqtt_frame f;
	uint8_t rc = 0;

	cr_assert_eq(mqtt_frame_cut(pkt, 4, PACKET_MAX, &f, &rc), 0);
	cr_assert_eq(mqtt_frame_cut(pkt, 5, PACKET_MAX, &f, &rc), -EBADMSG);
	cr_assert_eq(rc, MQTT_RC_MALFORMED);
	cr_assert_eq(mqtt_frame_cut(pkt, 6, PACKET_MAX, &f, &rc), -EBADMSG);
}

Test(mqtt, frame_cut_reports_too_large_from_the_header_alone)
{
	static const uint8_t pkt[] = {0x30, 0xff, 0x7f}; /* 16383 bytes follow */
	static const uint8_t max4[] = {0x30, 0xff, 0xff, 0xff, 0x7f};
	struct mqtt_frame f;
	uint8_t rc = 0;

	cr_assert_eq(mqtt_frame_cut(pkt, 3, 16385, &f, &rc), -EMSGSIZE);
	cr_assert_eq(rc, MQTT_RC_PACKET_TOO_LARGE);
	cr_assert_eq(mqtt_frame_cut(pkt, 3, 16386, &f, &rc), 0, "exactly at the limit waits for the body");
	cr_assert_eq(mqtt_frame_cut(max4, 5, PACKET_BYTES_DEFAULT, &f, &rc), -EMSGSIZE);
	cr_assert_eq(mqtt_frame_cut(max4, 5, 268435460u, &f, &rc), 0);
}

Test(mqtt, frame_cut_accepts_non_minimal_lengths)
{
	/* Section 1.5.5 asks the sender for the minimal encoding; receiving a
	 * longer one is not listed as malformed. */
	static const uint8_t ping[] = {0xc0, 0x80, 0x80, 0x00};
	struct mqtt_frame f;
	struct mqtt_packet out;
	uint8_t rc;

	cr_assert_eq(mqtt_frame_cut(ping, sizeof(ping), 100, &f, &rc), 4);
	cr_assert_eq(f.header_len, 4);
	cr_assert_eq(f.body_len, 0);
	cr_assert_eq(mqtt_decode(MQTT_V311, ping, sizeof(ping), &out, &rc), 4);
	cr_assert_eq(out.type, MQTT_PINGREQ);
}

/* Encodes a varied stream of packets into @buf; returns its length and the
 * frame lengths in @lens. */
static size_t stream(uint8_t *buf, size_t cap, size_t *lens, size_t *count)
{
	struct mqtt_packet p[6] = {
		{.type = MQTT_PINGREQ},
		{.type = MQTT_PUBLISH},
		{.type = MQTT_PUBACK},
		{.type = MQTT_DISCONNECT},
		{.type = MQTT_CONNACK},
		{.type = MQTT_PUBLISH},
	};
	size_t n = 0;

	p[1].publish.topic = S("t/1");
	p[1].publish.payload = S("first");
	p[2].ack.packet_id = 5;
	p[4].connack.reason = 0x87;
	p[5].publish.qos = 2;
	p[5].publish.packet_id = 2;
	p[5].publish.topic = S("t/2");
	p[5].publish.payload.ptr = big_b;
	p[5].publish.payload.len = 300; /* two-byte Remaining Length */
	for (size_t i = 0; i < 6; i++) {
		int r = mqtt_encode(MQTT_V5, &p[i], buf + n, cap - n);

		cr_assert_gt(r, 0);
		lens[i] = (size_t)r;
		n += (size_t)r;
	}
	*count = 6;
	return n;
}

Test(mqtt, many_frames_in_one_buffer_cut_and_decode_in_order)
{
	static const uint8_t types[] = {MQTT_PINGREQ,	 MQTT_PUBLISH, MQTT_PUBACK,
					MQTT_DISCONNECT, MQTT_CONNACK, MQTT_PUBLISH};
	uint8_t buf[1024], rc;
	size_t lens[8], count, off = 0, n = stream(buf, sizeof(buf), lens, &count);
	struct mqtt_frame f;
	struct mqtt_packet out;

	for (size_t i = 0; i < count; i++) {
		int r = mqtt_frame_cut(buf + off, n - off, PACKET_MAX, &f, &rc);

		cr_assert_eq(r, (int)lens[i]);
		cr_assert_eq(f.type, types[i]);
		/* The decoder reads only the first frame of a longer buffer. */
		cr_assert_eq(mqtt_decode(MQTT_V5, buf + off, n - off, &out, &rc), r);
		cr_assert_eq(out.type, types[i]);
		off += (size_t)r;
	}
	cr_assert_eq(off, n);
	cr_assert_eq(mqtt_frame_cut(buf + off, 0, PACKET_MAX, &f, &rc), 0);
}

Test(mqtt, byte_at_a_time_feeding_finds_the_same_frames)
{
	uint8_t buf[1024], acc[1024], rc;
	size_t lens[8], count, n = stream(buf, sizeof(buf), lens, &count);
	size_t have = 0, found = 0;
	struct mqtt_frame f;

	for (size_t i = 0; i < n; i++) {
		int r;

		acc[have++] = buf[i];
		r = mqtt_frame_cut(acc, have, PACKET_MAX, &f, &rc);
		cr_assert_geq(r, 0);
		if (r > 0) {
			cr_assert_eq((size_t)r, lens[found]);
			cr_assert_eq((size_t)r, have, "a frame is complete only at its last byte");
			cr_assert(memcmp(acc, buf + i + 1 - have, have) == 0);
			found++;
			have = 0;
		}
	}
	cr_assert_eq(found, count);
	cr_assert_eq(have, 0);
}

Test(mqtt, decode_refuses_a_buffer_shorter_than_its_frame)
{
	static const uint8_t pkt[] = {0x40, 2, 0, 1};
	struct mqtt_packet out;
	uint8_t rc = 0;

	cr_assert_eq(mqtt_decode(MQTT_V311, pkt, 3, &out, &rc), -EBADMSG);
	cr_assert_eq(rc, MQTT_RC_MALFORMED);
	cr_assert_eq(mqtt_decode(MQTT_V311, pkt, 1, &out, &rc), -EBADMSG);
	cr_assert_eq(mqtt_decode(MQTT_V311, pkt, 0, &out, &rc), -EBADMSG);
}

/* ------------------------------------------------------------- tables */

struct row {
	const char *what; /* the normative statement and the fault */
	uint8_t version;
	uint8_t hdr;
	const uint8_t *body;
	size_t len;
	int err; /* 0: must decode */
	uint8_t reason;
};

#define OK 0, 0
#define MAL EBADMSG, MQTT_RC_MALFORMED
#define PROTO EPROTO, MQTT_RC_PROTOCOL_ERROR
#define TNI EPROTO, MQTT_RC_TOPIC_NAME_INVALID
#define UPV EPROTO, MQTT_RC_UNSUPPORTED_VERSION

static const struct row connect_rows[] = {
	{"valid 3.1.1", 4, 0x10, BODY(MQTT4, 0x02, 0, 60, 0, 1, 'a'), OK},
	{"valid 3.1", 3, 0x10, BODY(MQISDP, 0x02, 0, 60, 0, 1, 'a'), OK},
	{"valid 5", 5, 0x10, BODY(MQTT5, 0x02, 0, 60, 0, 0, 1, 'a'), OK},
	{"[MQTT-3.1.2-3] reserved flag (3.1.1)", 4, 0x10, BODY(MQTT4, 0x03, 0, 60, 0, 1, 'a'), MAL},
	{"[MQTT-3.1.2-3] reserved flag (5)", 5, 0x10, BODY(MQTT5, 0x03, 0, 60, 0, 0, 1, 'a'), MAL},
	{"[MQTT-2.2.2-2] fixed header flags", 4, 0x11, BODY(MQTT4, 0x02, 0, 60, 0, 1, 'a'), MAL},
	{"[MQTT-2.1.3-1] fixed header flags (5)", 5, 0x18, BODY(MQTT5, 0x02, 0, 60, 0, 0, 1, 'a'), MAL},
	{"[MQTT-3.1.2-2] level 6", 4, 0x10, BODY(0, 4, 'M', 'Q', 'T', 'T', 6, 2, 0, 60, 0, 1, 'a'), UPV},
	{"[MQTT-3.1.2-2] level 0", 4, 0x10, BODY(0, 4, 'M', 'Q', 'T', 'T', 0, 2, 0, 60, 0, 1, 'a'), UPV},
	{"[MQTT-3.1.2-2] MQTT with level 3", 4, 0x10, BODY(0, 4, 'M', 'Q', 'T', 'T', 3, 2, 0, 60, 0, 1, 'a'),
	 UPV},
	{"[MQTT-3.1.2-1] MQIsdp with level 4", 4, 0x10,
	 BODY(0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 4, 2, 0, 60, 0, 1, 'a'), UPV},
	{"[MQTT-3.1.2-1] MQIsdp with level 5", 5, 0x10,
	 BODY(0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 5, 2, 0, 60, 0, 0, 1, 'a'), UPV},
	{"[MQTT-3.1.2-2] level 6 is refused before the rest is parsed", 5, 0x10,
	 BODY(0, 4, 'M', 'Q', 'T', 'T', 6, 0xff), UPV},
	{"3.1 did not reserve connect flag bit 0", 3, 0x10, BODY(MQISDP, 0x03, 0, 60, 0, 1, 'a'), OK},
	{"[MQTT-3.1.2-1] protocol name MQTX", 4, 0x10, BODY(0, 4, 'M', 'Q', 'T', 'X', 4, 2, 0, 60, 0, 1, 'a'),
	 UPV},
	{"[MQTT-3.1.2-1] protocol name mqtt", 4, 0x10, BODY(0, 4, 'm', 'q', 't', 't', 4, 2, 0, 60, 0, 1, 'a'),
	 UPV},
	{"protocol name overruns", 4, 0x10, BODY(0, 9, 'M', 'Q', 'T', 'T', 4), MAL},
	{"no level", 4, 0x10, BODY(0, 4, 'M', 'Q', 'T', 'T'), MAL},
	{"empty CONNECT", 4, 0x10, NOBODY, MAL},
	{"[MQTT-3.1.2-14] will QoS 3", 4, 0x10, BODY(MQTT4, 0x1e, 0, 60, 0, 1, 'a', 0, 1, 't', 0, 0), MAL},
	{"[MQTT-3.1.2-12] will QoS 3 (5)", 5, 0x10, BODY(MQTT5, 0x1e, 0, 60, 0, 0, 1, 'a', 0, 0, 1, 't', 0, 0),
	 MAL},
	{"[MQTT-3.1.2-13] will QoS without will flag", 4, 0x10, BODY(MQTT4, 0x0a, 0, 60, 0, 1, 'a'), MAL},
	{"[MQTT-3.1.2-15] will retain without will flag", 4, 0x10, BODY(MQTT4, 0x22, 0, 60, 0, 1, 'a'), MAL},
	{"[MQTT-3.1.2-11] will QoS without will flag (5)", 5, 0x10, BODY(MQTT5, 0x12, 0, 60, 0, 0, 1, 'a'),
	 MAL},
	{"[MQTT-3.1.2-13] will retain without will flag (5)", 5, 0x10, BODY(MQTT5, 0x22, 0, 60, 0, 0, 1, 'a'),
	 MAL},
	{"[MQTT-3.1.2-22] password without user name", 4, 0x10,
	 BODY(MQTT4, 0x42, 0, 60, 0, 1, 'a', 0, 2, 'p', 'w'), MAL},
	{"password without user name (3.1)", 3, 0x10, BODY(MQISDP, 0x42, 0, 60, 0, 1, 'a', 0, 2, 'p', 'w'),
	 MAL},
	{"password without user name is fine in 5", 5, 0x10,
	 BODY(MQTT5, 0x42, 0, 60, 0, 0, 1, 'a', 0, 2, 'p', 'w'), OK},
	{"[MQTT-3.1.3-4] client id not UTF-8", 4, 0x10, BODY(MQTT4, 0x02, 0, 60, 0, 2, 0xc0, 0x80), MAL},
	{"[MQTT-1.5.4-2] client id with U+0000", 4, 0x10, BODY(MQTT4, 0x02, 0, 60, 0, 1, 0), MAL},
	{"[MQTT-3.1.3-10] will topic with '#'", 4, 0x10,
	 BODY(MQTT4, 0x06, 0, 60, 0, 1, 'a', 0, 3, 'a', '/', '#', 0, 0), TNI},
	{"[MQTT-3.1.3-10] will topic with '+'", 5, 0x10,
	 BODY(MQTT5, 0x06, 0, 60, 0, 0, 1, 'a', 0, 0, 1, '+', 0, 0), TNI},
	{"[MQTT-4.7.3-1] empty will topic", 4, 0x10, BODY(MQTT4, 0x06, 0, 60, 0, 1, 'a', 0, 0, 0, 0), TNI},
	{"[MQTT-3.1.3-10] will topic not UTF-8", 4, 0x10, BODY(MQTT4, 0x06, 0, 60, 0, 1, 'a', 0, 1, 0xff, 0, 0),
	 MAL},
	{"will payload missing", 4, 0x10, BODY(MQTT4, 0x06, 0, 60, 0, 1, 'a', 0, 1, 't'), MAL},
	{"valid will", 4, 0x10, BODY(MQTT4, 0x36, 0, 60, 0, 1, 'a', 0, 1, 't', 0, 1, 0), OK},
	{"[MQTT-3.1.3-11] user name not UTF-8", 4, 0x10, BODY(MQTT4, 0x82, 0, 60, 0, 1, 'a', 0, 1, 0xff), MAL},
	{"user name missing", 4, 0x10, BODY(MQTT4, 0x82, 0, 60, 0, 1, 'a'), MAL},
	{"password missing", 4, 0x10, BODY(MQTT4, 0xc2, 0, 60, 0, 1, 'a', 0, 1, 'u'), MAL},
	{"password may be any bytes", 4, 0x10, BODY(MQTT4, 0xc2, 0, 60, 0, 1, 'a', 0, 1, 'u', 0, 2, 0, 0xff),
	 OK},
	{"trailing byte after the payload", 4, 0x10, BODY(MQTT4, 0x02, 0, 60, 0, 1, 'a', 0), MAL},
	{"client id overruns the packet", 4, 0x10, BODY(MQTT4, 0x02, 0, 60, 0, 5, 'a'), MAL},
	{"client id missing", 4, 0x10, BODY(MQTT4, 0x02, 0, 60), MAL},
	{"keep alive truncated", 4, 0x10, BODY(MQTT4, 0x02, 0), MAL},
	{"v5 property length missing", 5, 0x10, BODY(MQTT5, 0x02, 0, 60), MAL},
	{"[2.2.2.2] Topic Alias is not a CONNECT property", 5, 0x10,
	 BODY(MQTT5, 0x02, 0, 60, 3, 0x23, 0, 1, 0, 1, 'a'), MAL},
	{"[2.2.2.2] Will Delay is a will property only", 5, 0x10,
	 BODY(MQTT5, 0x02, 0, 60, 5, 0x18, 0, 0, 0, 1, 0, 1, 'a'), MAL},
	{"[3.1.2.11.2] Session Expiry twice", 5, 0x10,
	 BODY(MQTT5, 0x02, 0, 60, 10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2, 0, 1, 'a'), PROTO},
	{"[3.1.2.11.3] Receive Maximum 0", 5, 0x10, BODY(MQTT5, 0x02, 0, 60, 3, 0x21, 0, 0, 0, 1, 'a'), PROTO},
	{"[3.1.2.11.4] Maximum Packet Size 0", 5, 0x10,
	 BODY(MQTT5, 0x02, 0, 60, 5, 0x27, 0, 0, 0, 0, 0, 1, 'a'), PROTO},
	{"[3.1.2.11.7] Request Problem Information 2", 5, 0x10,
	 BODY(MQTT5, 0x02, 0, 60, 2, 0x17, 2, 0, 1, 'a'), PROTO},
	{"[3.1.2.11.6] Request Response Information 2", 5, 0x10,
	 BODY(MQTT5, 0x02, 0, 60, 2, 0x19, 2, 0, 1, 'a'), PROTO},
	{"[3.1.2.11.10] Authentication Data without Method", 5, 0x10,
	 BODY(MQTT5, 0x02, 0, 60, 4, 0x16, 0, 1, 'x', 0, 1, 'a'), PROTO},
	{"[3.1.2.11.9] Authentication Method twice", 5, 0x10,
	 BODY(MQTT5, 0x02, 0, 60, 8, 0x15, 0, 1, 'x', 0x15, 0, 1, 'y', 0, 1, 'a'), PROTO},
	{"property length overruns", 5, 0x10, BODY(MQTT5, 0x02, 0, 60, 9, 0x11, 0, 0), MAL},
	{"property value overruns its block", 5, 0x10, BODY(MQTT5, 0x02, 0, 60, 3, 0x11, 0, 0, 0, 1, 'a'),
	 MAL},
	{"property id 0", 5, 0x10, BODY(MQTT5, 0x02, 0, 60, 2, 0x00, 0, 0, 1, 'a'), MAL},
	{"property id 0x7f", 5, 0x10, BODY(MQTT5, 0x02, 0, 60, 2, 0x7f, 0, 0, 1, 'a'), MAL},
	{"property id 0x2b", 5, 0x10, BODY(MQTT5, 0x02, 0, 60, 2, 0x2b, 0, 0, 1, 'a'), MAL},
	{"property id as a 5-byte varint", 5, 0x10,
	 BODY(MQTT5, 0x02, 0, 60, 6, 0x91, 0x80, 0x80, 0x80, 0x80, 0, 0, 1, 'a'), MAL},
	{"[1.5.7] user property value not UTF-8", 5, 0x10,
	 BODY(MQTT5, 0x02, 0, 60, 7, 0x26, 0, 1, 'k', 0, 1, 0xff, 0, 1, 'a'), MAL},
	{"[1.5.7] user property twice is fine", 5, 0x10,
	 BODY(MQTT5, 0x02, 0, 60, 12, 0x26, 0, 1, 'k', 0, 0, 0x26, 0, 1, 'k', 0, 0, 0, 1, 'a'), OK},
	{"[2.2.2.2] Session Expiry is not a will property", 5, 0x10,
	 BODY(MQTT5, 0x06, 0, 60, 0, 0, 1, 'a', 5, 0x11, 0, 0, 0, 1, 0, 1, 't', 0, 0), MAL},
	{"[3.1.3.2.3] will Payload Format 2", 5, 0x10,
	 BODY(MQTT5, 0x06, 0, 60, 0, 0, 1, 'a', 2, 0x01, 2, 0, 1, 't', 0, 0), PROTO},
	{"will properties missing", 5, 0x10, BODY(MQTT5, 0x06, 0, 60, 0, 0, 1, 'a'), MAL},
	{"valid will properties", 5, 0x10,
	 BODY(MQTT5, 0x06, 0, 60, 0, 0, 1, 'a', 7, 0x18, 0, 0, 0, 9, 0x01, 1, 0, 1, 't', 0, 0), OK},
};

static const struct row publish_rows[] = {
	{"valid QoS 0", 4, 0x30, BODY(0, 1, 'a', 'x'), OK},
	{"valid QoS 1", 4, 0x32, BODY(0, 1, 'a', 0, 1), OK},
	{"valid QoS 2 retain dup", 4, 0x3d, BODY(0, 1, 'a', 0, 1), OK},
	{"[MQTT-3.3.1-4] QoS 3", 4, 0x36, BODY(0, 1, 'a', 0, 1), MAL},
	{"[MQTT-3.3.1-4] QoS 3 (5)", 5, 0x36, BODY(0, 1, 'a', 0, 1, 0), MAL},
	{"[MQTT-3.3.1-2] DUP with QoS 0 (5)", 5, 0x38, BODY(0, 1, 'a', 0), MAL},
	{"DUP with QoS 0 is tolerated from 3.1.1", 4, 0x38, BODY(0, 1, 'a'), OK},
	{"[MQTT-3.3.2-2] topic with '+'", 4, 0x30, BODY(0, 3, 'a', '/', '+'), TNI},
	{"[MQTT-3.3.2-2] topic with '#'", 5, 0x30, BODY(0, 3, 'a', '/', '#', 0), TNI},
	{"[MQTT-3.3.2-2] '+' after 8 ASCII bytes", 4, 0x30,
	 BODY(0, 10, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', '+'), TNI},
	{"[MQTT-4.7.3-1] empty topic (3.1.1)", 4, 0x30, BODY(0, 0), TNI},
	{"[3.3.2.3.4] empty topic without alias (5)", 5, 0x30, BODY(0, 0, 0), PROTO},
	{"[3.3.2.3.4] empty topic with alias (5)", 5, 0x30, BODY(0, 0, 3, 0x23, 0, 1), OK},
	{"[MQTT-3.3.2-8] Topic Alias 0", 5, 0x30, BODY(0, 1, 'a', 3, 0x23, 0, 0), EPROTO,
	 MQTT_RC_TOPIC_ALIAS_INVALID},
	{"[MQTT-2.2.1-3] packet id 0, QoS 1", 5, 0x32, BODY(0, 1, 'a', 0, 0, 0), PROTO},
	{"[MQTT-2.3.1-1] packet id 0, QoS 2 (3.1.1)", 4, 0x34, BODY(0, 1, 'a', 0, 0), PROTO},
	{"packet id truncated", 4, 0x32, BODY(0, 1, 'a', 0), MAL},
	{"topic overruns", 4, 0x30, BODY(0, 5, 'a'), MAL},
	{"topic length truncated", 4, 0x30, BODY(0), MAL},
	{"empty PUBLISH", 4, 0x30, NOBODY, MAL},
	{"[MQTT-1.5.4-1] surrogate in topic", 4, 0x30, BODY(0, 3, 0xed, 0xa0, 0x80), MAL},
	{"[MQTT-1.5.4-2] U+0000 in topic", 4, 0x30, BODY(0, 3, 'a', 0, 'b'), MAL},
	{"[MQTT-1.5.4-1] overlong '/' in topic", 4, 0x30, BODY(0, 2, 0xc0, 0xaf), MAL},
	{"truncated 4-byte sequence in topic", 4, 0x30, BODY(0, 7, 0xe2, 0x82, 0xac, '/', 0xf0, 0x9f, 0x98), MAL},
	{"valid multibyte topic", 4, 0x30, BODY(0, 8, 0xe2, 0x82, 0xac, '/', 0xf0, 0x9f, 0x98, 0x80), OK},
	{"v5 property length missing", 5, 0x30, BODY(0, 1, 'a'), MAL},
	{"[3.3.2.3.2] Payload Format 2", 5, 0x30, BODY(0, 1, 'a', 2, 0x01, 2), PROTO},
	{"[3.3.2.3.2] Payload Format twice", 5, 0x30, BODY(0, 1, 'a', 4, 0x01, 0, 0x01, 1), PROTO},
	{"[3.3.2.3.3] Message Expiry twice", 5, 0x30,
	 BODY(0, 1, 'a', 10, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 1), PROTO},
	{"[3.3.2.3.4] Topic Alias twice", 5, 0x30, BODY(0, 1, 'a', 6, 0x23, 0, 1, 0x23, 0, 1), PROTO},
	{"[3.3.2.3.8] Subscription Identifier 0", 5, 0x30, BODY(0, 1, 'a', 2, 0x0b, 0), PROTO},
	{"[1.5.5] Subscription Identifier of 5 bytes", 5, 0x30,
	 BODY(0, 1, 'a', 6, 0x0b, 0xff, 0xff, 0xff, 0xff, 0x01), MAL},
	{"[MQTT-3.3.4-3] two Subscription Identifiers", 5, 0x30, BODY(0, 1, 'a', 4, 0x0b, 1, 0x0b, 2), OK},
	{"[MQTT-3.3.2-14] Response Topic with '#'", 5, 0x30, BODY(0, 1, 'a', 6, 0x08, 0, 3, 'a', '/', '#'),
	 PROTO},
	{"[MQTT-3.3.2-13] Response Topic not UTF-8", 5, 0x30, BODY(0, 1, 'a', 4, 0x08, 0, 1, 0xff), MAL},
	{"[MQTT-3.3.2-19] Content Type not UTF-8", 5, 0x30, BODY(0, 1, 'a', 4, 0x03, 0, 1, 0xff), MAL},
	{"Correlation Data may be any bytes", 5, 0x30, BODY(0, 1, 'a', 5, 0x09, 0, 2, 0, 0xff), OK},
	{"[2.2.2.2] Session Expiry in PUBLISH", 5, 0x30, BODY(0, 1, 'a', 5, 0x11, 0, 0, 0, 1), MAL},
	{"[2.2.2.2] Reason String in PUBLISH", 5, 0x30, BODY(0, 1, 'a', 4, 0x1f, 0, 1, 'r'), MAL},
	{"[2.2.2.2] Will Delay in PUBLISH", 5, 0x30, BODY(0, 1, 'a', 5, 0x18, 0, 0, 0, 1), MAL},
	{"string property overruns its block", 5, 0x30, BODY(0, 1, 'a', 3, 0x03, 0, 5, 'x', 'y'), MAL},
};

static const struct row ack_rows[] = {
	{"[MQTT-2.2.2-2] PUBACK flags", 4, 0x42, BODY(0, 1), MAL},
	{"[MQTT-2.2.2-2] PUBREC flags", 4, 0x51, BODY(0, 1), MAL},
	{"[MQTT-3.6.1-1] PUBREL flags 0", 4, 0x60, BODY(0, 1), MAL},
	{"[MQTT-3.6.1-1] PUBREL flags 0 (5)", 5, 0x60, BODY(0, 1), MAL},
	{"[MQTT-2.2.2-2] PUBCOMP flags", 5, 0x78, BODY(0, 1), MAL},
	{"PUBREL with DUP is 3.1", 3, 0x6a, BODY(0, 1), OK},
	{"PUBREL without QoS 1 (3.1)", 3, 0x60, BODY(0, 1), MAL},
	{"PUBREL with DUP (3.1.1)", 4, 0x6a, BODY(0, 1), MAL},
	{"[MQTT-2.3.1-1] PUBACK packet id 0", 4, 0x40, BODY(0, 0), PROTO},
	{"[MQTT-2.2.1-3] PUBREC packet id 0", 5, 0x50, BODY(0, 0), PROTO},
	{"[MQTT-2.2.1-3] PUBREL packet id 0", 5, 0x62, BODY(0, 0), PROTO},
	{"[MQTT-2.2.1-3] PUBCOMP packet id 0", 4, 0x70, BODY(0, 0), PROTO},
	{"3.1.1 PUBACK of 3 bytes", 4, 0x40, BODY(0, 1, 0), MAL},
	{"PUBACK of 1 byte", 4, 0x40, BODY(0), MAL},
	{"PUBACK of 1 byte (5)", 5, 0x40, BODY(0), MAL},
	{"empty PUBCOMP", 5, 0x70, NOBODY, MAL},
	{"[3.4.2.1] PUBACK reason 0x92", 5, 0x40, BODY(0, 1, 0x92), PROTO},
	{"[3.5.2.1] PUBREC reason 0x04", 5, 0x50, BODY(0, 1, 0x04), PROTO},
	{"[3.6.2.1] PUBREL reason 0x10", 5, 0x62, BODY(0, 1, 0x10), PROTO},
	{"[3.7.2.1] PUBCOMP reason 0x80", 5, 0x70, BODY(0, 1, 0x80), PROTO},
	{"[3.4.2.1] PUBACK reason 0x99", 5, 0x40, BODY(0, 1, 0x99), OK},
	{"bytes after the properties", 5, 0x40, BODY(0, 1, 0x10, 0, 0xaa), MAL},
	{"[2.2.2.2] Topic Alias in PUBACK", 5, 0x40, BODY(0, 1, 0x10, 3, 0x23, 0, 1), MAL},
	{"[3.4.2.2.2] Reason String twice", 5, 0x40, BODY(0, 1, 0x10, 8, 0x1f, 0, 1, 'a', 0x1f, 0, 1, 'b'), PROTO},
	{"property length overruns", 5, 0x40, BODY(0, 1, 0x10, 4, 0x1f, 0), MAL},
};

static const struct row connack_rows[] = {
	{"valid", 4, 0x20, BODY(0, 0), OK},
	{"valid session present", 4, 0x20, BODY(1, 0), OK},
	{"[MQTT-3.2.2-1] reserved ack flags", 4, 0x20, BODY(2, 0), MAL},
	{"[MQTT-3.2.2-1] reserved ack flags (5)", 5, 0x20, BODY(0x80, 0, 0), MAL},
	{"[3.2.2.3] return code 6 is reserved", 4, 0x20, BODY(0, 6), PROTO},
	{"[MQTT-3.2.2-4] session present with refusal", 4, 0x20, BODY(1, 5), PROTO},
	{"[MQTT-3.2.2-6] session present with refusal (5)", 5, 0x20, BODY(1, 0x80, 0), PROTO},
	{"[MQTT-2.2.2-2] fixed header flags", 4, 0x21, BODY(0, 0), MAL},
	{"3 bytes (3.1.1)", 4, 0x20, BODY(0, 0, 0), MAL},
	{"1 byte", 4, 0x20, BODY(0), MAL},
	{"[3.2.2.2] reason 0x10 in CONNACK", 5, 0x20, BODY(0, 0x10, 0), PROTO},
	{"[3.2.2.2] reason 0x8B in CONNACK", 5, 0x20, BODY(0, 0x8b, 0), PROTO},
	{"[3.2.2.2] reason 0x9F", 5, 0x20, BODY(0, 0x9f, 0), OK},
	{"property length missing (5)", 5, 0x20, BODY(0, 0), MAL},
	{"[3.2.2.3.4] Maximum QoS 2", 5, 0x20, BODY(0, 0, 2, 0x24, 2), PROTO},
	{"[3.2.2.3.4] Maximum QoS twice", 5, 0x20, BODY(0, 0, 4, 0x24, 0, 0x24, 1), PROTO},
	{"[3.2.2.3.5] Retain Available 2", 5, 0x20, BODY(0, 0, 2, 0x25, 2), PROTO},
	{"[3.2.2.3.11] Wildcard Subscription Available 2", 5, 0x20, BODY(0, 0, 2, 0x28, 2), PROTO},
	{"[3.2.2.3.12] Subscription Identifiers Available 2", 5, 0x20, BODY(0, 0, 2, 0x29, 2), PROTO},
	{"[3.2.2.3.13] Shared Subscription Available 2", 5, 0x20, BODY(0, 0, 2, 0x2a, 2), PROTO},
	{"[3.2.2.3.3] Receive Maximum 0", 5, 0x20, BODY(0, 0, 3, 0x21, 0, 0), PROTO},
	{"[3.2.2.3.6] Maximum Packet Size 0", 5, 0x20, BODY(0, 0, 5, 0x27, 0, 0, 0, 0), PROTO},
	{"[2.2.2.2] Will Delay in CONNACK", 5, 0x20, BODY(0, 0, 5, 0x18, 0, 0, 0, 0), MAL},
	{"[2.2.2.2] Request Problem Information in CONNACK", 5, 0x20, BODY(0, 0, 2, 0x17, 1), MAL},
	{"[3.2.2.3.18] Authentication Data without Method", 5, 0x20, BODY(0, 0, 4, 0x16, 0, 1, 'x'), PROTO},
	{"trailing byte (5)", 5, 0x20, BODY(0, 0, 0, 0), MAL},
};

static const struct row subscribe_rows[] = {
	{"valid", 4, 0x82, BODY(0, 1, 0, 1, 'a', 1), OK},
	{"valid 3.1 with DUP", 3, 0x8a, BODY(0, 1, 0, 1, 'a', 1), OK},
	{"3.1 without QoS 1", 3, 0x80, BODY(0, 1, 0, 1, 'a', 1), MAL},
	{"[MQTT-3.8.1-1] flags 0", 4, 0x80, BODY(0, 1, 0, 1, 'a', 1), MAL},
	{"[MQTT-3.8.1-1] flags 3", 5, 0x83, BODY(0, 1, 0, 0, 1, 'a', 1), MAL},
	{"[MQTT-3.8.3-3] no entries (3.1.1)", 4, 0x82, BODY(0, 1), MAL},
	{"[MQTT-3.8.3-2] no entries (5)", 5, 0x82, BODY(0, 1, 0), PROTO},
	{"[MQTT-2.3.1-1] packet id 0", 4, 0x82, BODY(0, 0, 0, 1, 'a', 1), PROTO},
	{"[MQTT-2.2.1-3] packet id 0 (5)", 5, 0x82, BODY(0, 0, 0, 0, 1, 'a', 1), PROTO},
	{"[MQTT-3-8.3-4] reserved option bits (3.1.1)", 4, 0x82, BODY(0, 1, 0, 1, 'a', 0x04), MAL},
	{"[MQTT-3-8.3-4] QoS 3 (3.1.1)", 4, 0x82, BODY(0, 1, 0, 1, 'a', 0x03), MAL},
	{"[MQTT-3.8.3-5] reserved bit 6 (5)", 5, 0x82, BODY(0, 1, 0, 0, 1, 'a', 0x40), MAL},
	{"[MQTT-3.8.3-5] reserved bit 7 (5)", 5, 0x82, BODY(0, 1, 0, 0, 1, 'a', 0x80), MAL},
	{"[3.8.3.1] QoS 3 (5)", 5, 0x82, BODY(0, 1, 0, 0, 1, 'a', 0x03), PROTO},
	{"[3.8.3.1] Retain Handling 3 (5)", 5, 0x82, BODY(0, 1, 0, 0, 1, 'a', 0x30), PROTO},
	{"valid v5 options", 5, 0x82, BODY(0, 1, 0, 0, 1, 'a', 0x2e), OK},
	{"[MQTT-3.8.3-4] No Local on a shared subscription", 5, 0x82,
	 BODY(0, 1, 0, 0, 10, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'a', 0x04), PROTO},
	/* Filter syntax is refused per entry in SUBACK (0x80 / 0x8F) by the
	 * server, so the packet itself decodes. */
	{"[MQTT-4.8.2-1] shared subscription with empty group decodes", 5, 0x82,
	 BODY(0, 1, 0, 0, 9, '$', 's', 'h', 'a', 'r', 'e', '/', '/', 'a', 0x00), OK},
	{"[MQTT-4.8.2-2] shared subscription without filter decodes", 5, 0x82,
	 BODY(0, 1, 0, 0, 8, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', 0x00), OK},
	{"[MQTT-4.7.1-2] '#' not last decodes", 4, 0x82, BODY(0, 1, 0, 5, 'a', '/', '#', '/', 'b', 0), OK},
	{"[MQTT-4.7.1-3] '+' inside a level decodes", 4, 0x82, BODY(0, 1, 0, 2, 'a', '+', 0), OK},
	{"[MQTT-4.7.3-1] empty filter decodes", 4, 0x82, BODY(0, 1, 0, 0, 0), OK},
	{"[MQTT-3.8.3-1] filter not UTF-8", 4, 0x82, BODY(0, 1, 0, 2, 0xc3, 0x28, 0), MAL},
	{"[MQTT-1.5.4-2] filter with U+0000", 4, 0x82, BODY(0, 1, 0, 1, 0, 0), MAL},
	{"options byte missing", 4, 0x82, BODY(0, 1, 0, 1, 'a'), MAL},
	{"second entry truncated", 4, 0x82, BODY(0, 1, 0, 1, 'a', 0, 0, 1), MAL},
	{"filter overruns", 4, 0x82, BODY(0, 1, 0, 5, 'a'), MAL},
	{"[3.8.2.1.2] two Subscription Identifiers", 5, 0x82,
	 BODY(0, 1, 4, 0x0b, 1, 0x0b, 2, 0, 1, 'a', 0), PROTO},
	{"[3.8.2.1.2] Subscription Identifier 0", 5, 0x82, BODY(0, 1, 2, 0x0b, 0, 0, 1, 'a', 0), PROTO},
	{"[2.2.2.2] Topic Alias in SUBSCRIBE", 5, 0x82, BODY(0, 1, 3, 0x23, 0, 1, 0, 1, 'a', 0), MAL},
	{"v5 property length missing", 5, 0x82, BODY(0, 1), MAL},
};

static const struct row unsubscribe_rows[] = {
	{"valid", 4, 0xa2, BODY(0, 1, 0, 1, 'a'), OK},
	{"[MQTT-3.10.1-1] flags 0", 4, 0xa0, BODY(0, 1, 0, 1, 'a'), MAL},
	{"[MQTT-3.10.3-2] no entries (3.1.1)", 4, 0xa2, BODY(0, 1), MAL},
	{"[MQTT-3.10.3-2] no entries (5)", 5, 0xa2, BODY(0, 1, 0), PROTO},
	{"[MQTT-2.2.1-3] packet id 0", 5, 0xa2, BODY(0, 0, 0, 0, 1, 'a'), PROTO},
	{"[MQTT-4.7.1-2] '#' inside a level decodes (UNSUBACK says no subscription)", 4, 0xa2,
	 BODY(0, 1, 0, 2, 'a', '#'), OK},
	{"[MQTT-3.10.3-1] filter not UTF-8", 4, 0xa2, BODY(0, 1, 0, 1, 0x80), MAL},
	{"[2.2.2.2] Subscription Identifier in UNSUBSCRIBE", 5, 0xa2, BODY(0, 1, 2, 0x0b, 1, 0, 1, 'a'), MAL},
	{"filter overruns", 4, 0xa2, BODY(0, 1, 0, 2, 'a'), MAL},
};

static const struct row suback_rows[] = {
	{"valid", 4, 0x90, BODY(0, 1, 0, 1, 2, 0x80), OK},
	{"[MQTT-3.9.3-2] return code 3", 4, 0x90, BODY(0, 1, 3), MAL},
	{"[MQTT-3.9.3-2] return code 0x81", 4, 0x90, BODY(0, 1, 0x81), MAL},
	{"no codes (3.1.1)", 4, 0x90, BODY(0, 1), MAL},
	{"no codes (5)", 5, 0x90, BODY(0, 1, 0), PROTO},
	{"[3.9.3] reason 0x11 in SUBACK", 5, 0x90, BODY(0, 1, 0, 0x11), PROTO},
	{"[3.9.3] reason 0xA2", 5, 0x90, BODY(0, 1, 0, 0xa2), OK},
	{"[MQTT-2.2.1-3] packet id 0", 5, 0x90, BODY(0, 0, 0, 0), PROTO},
	{"[MQTT-2.2.2-2] flags", 4, 0x92, BODY(0, 1, 0), MAL},
	{"[2.2.2.2] Subscription Identifier in SUBACK", 5, 0x90, BODY(0, 1, 2, 0x0b, 1, 0), MAL},
	{"[3.11.2] 3.1.1 UNSUBACK holds only the packet id", 4, 0xb0, BODY(0, 1, 0), MAL},
	{"UNSUBACK short", 4, 0xb0, BODY(0), MAL},
	{"[3.11.3] UNSUBACK reason 0x01", 5, 0xb0, BODY(0, 1, 0, 0x01), PROTO},
	{"[3.11.3] UNSUBACK reason 0x11", 5, 0xb0, BODY(0, 1, 0, 0x11), OK},
	{"UNSUBACK property length missing (5)", 5, 0xb0, BODY(0, 1), MAL},
	{"UNSUBACK without codes (5)", 5, 0xb0, BODY(0, 1, 0), PROTO},
};

static const struct row misc_rows[] = {
	{"PINGREQ with a body", 4, 0xc0, BODY(0), MAL},
	{"[MQTT-2.2.2-2] PINGREQ flags", 4, 0xc1, NOBODY, MAL},
	{"PINGRESP with a body", 5, 0xd0, BODY(0), MAL},
	{"[MQTT-2.2.2-2] PINGRESP flags", 5, 0xd4, NOBODY, MAL},
	{"valid DISCONNECT (3.1.1)", 4, 0xe0, NOBODY, OK},
	{"DISCONNECT with a body (3.1.1)", 4, 0xe0, BODY(0), MAL},
	{"[MQTT-3.14.1-1] DISCONNECT flags", 4, 0xe1, NOBODY, MAL},
	{"[3.14.2.1] DISCONNECT reason 0x01", 5, 0xe0, BODY(0x01), PROTO},
	{"[3.14.2.1] DISCONNECT reason 0x8E", 5, 0xe0, BODY(0x8e), OK},
	{"[3.14.2.1] DISCONNECT reason and empty properties", 5, 0xe0, BODY(0x04, 0), OK},
	{"[2.2.2.2] Topic Alias in DISCONNECT", 5, 0xe0, BODY(0, 3, 0x23, 0, 1), MAL},
	{"[3.14.2.2.2] Session Expiry in DISCONNECT", 5, 0xe0, BODY(0, 5, 0x11, 0, 0, 0, 1), OK},
	{"bytes after DISCONNECT properties", 5, 0xe0, BODY(0, 0, 0), MAL},
	{"AUTH is reserved in 3.1.1", 4, 0xf0, NOBODY, MAL},
	{"AUTH is reserved in 3.1", 3, 0xf0, NOBODY, MAL},
	{"valid AUTH short form", 5, 0xf0, NOBODY, OK},
	{"[MQTT-3.15.1-1] AUTH flags", 5, 0xf1, NOBODY, MAL},
	{"[3.15.2.1] AUTH reason 0x01", 5, 0xf0, BODY(0x01), PROTO},
	{"[3.15.2.1] AUTH reason 0x18", 5, 0xf0, BODY(0x18, 5, 0x15, 0, 2, 'm', 'x'), OK},
	{"[3.15.2.2.3] AUTH Data without Method", 5, 0xf0, BODY(0x18, 4, 0x16, 0, 1, 'x'), PROTO},
	{"[2.2.2.2] Session Expiry in AUTH", 5, 0xf0, BODY(0x18, 5, 0x11, 0, 0, 0, 1), MAL},
};

static void run_rows(const struct row *rows, size_t n)
{
	static uint8_t buf[512];

	for (size_t i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		struct mqtt_packet out;
		struct mqtt_frame f;
		uint8_t rc = 0xee;
		size_t len = frame(r->hdr, r->body, r->len, buf);
		int got;

		/* Framing is independent of the body's contents. */
		cr_assert_eq(mqtt_frame_cut(buf, len, 1024, &f, &rc), (int)len, "%s: frame", r->what);
		got = mqtt_decode(r->version, buf, len, &out, &rc);
		if (r->err == 0) {
			cr_expect_eq(got, (int)len, "%s: want success, got %d reason 0x%02x", r->what, got, rc);
			continue;
		}
		cr_expect_eq(got, -r->err, "%s: want %d, got %d", r->what, -r->err, got);
		cr_expect_eq(rc, r->reason, "%s: want reason 0x%02x, got 0x%02x", r->what, r->reason, rc);
	}
}

#define RUN(rows) run_rows(rows, sizeof(rows) / sizeof(rows[0]))

Test(mqtt, connect_faults_return_their_exact_reason)
{
	RUN(connect_rows);
}

Test(mqtt, publish_faults_return_their_exact_reason)
{
	RUN(publish_rows);
}

Test(mqtt, ack_faults_return_their_exact_reason)
{
	RUN(ack_rows);
}

Test(mqtt, connack_faults_return_their_exact_reason)
{
	RUN(connack_rows);
}

Test(mqtt, subscribe_faults_return_their_exact_reason)
{
	RUN(subscribe_rows);
}

Test(mqtt, unsubscribe_faults_return_their_exact_reason)
{
	RUN(unsubscribe_rows);
}

Test(mqtt, suback_and_unsuback_faults_return_their_exact_reason)
{
	RUN(suback_rows);
}

Test(mqtt, ping_disconnect_auth_faults_return_their_exact_reason)
{
	RUN(misc_rows);
}

Test(mqtt, every_v5_packet_refuses_a_property_it_may_not_carry)
{
	/* Section 2.2.2.2: an identifier not valid for the packet is
	 * malformed.  Server Keep Alive (0x13) is CONNACK-only. */
	static const uint8_t hdrs[] = {0x30, 0x40, 0x50, 0x62, 0x70, 0x82, 0x90, 0xa2, 0xb0, 0xe0, 0xf0};
	static const uint8_t pre[][8] = {{0, 1, 'a'}, {0, 1, 0}, {0, 1, 0}, {0, 1, 0}, {0, 1, 0}, {0, 1},
					 {0, 1},      {0, 1},	 {0, 1},    {0},       {0}};
	static const uint8_t prelen[] = {3, 3, 3, 3, 3, 2, 2, 2, 2, 1, 1};
	uint8_t body[32], buf[64], rc;
	struct mqtt_packet out;

	for (size_t i = 0; i < sizeof(hdrs); i++) {
		size_t n = prelen[i];

		memcpy(body, pre[i], n);
		body[n++] = 3;
		body[n++] = 0x13;
		body[n++] = 0;
		body[n++] = 1;
		if (hdrs[i] == 0x82) {
			memcpy(body + n, "\x00\x01" "a" "\x00", 4);
			n += 4;
		} else if (hdrs[i] == 0xa2) {
			memcpy(body + n, "\x00\x01" "a", 3);
			n += 3;
		} else if (hdrs[i] == 0x90 || hdrs[i] == 0xb0) {
			body[n++] = 0;
		}
		n = frame(hdrs[i], body, n, buf);
		cr_expect_eq(mqtt_decode(MQTT_V5, buf, n, &out, &rc), -EBADMSG, "%s", mqtt_type_name(hdrs[i] >> 4));
		cr_expect_eq(rc, MQTT_RC_MALFORMED);
	}
}

Test(mqtt, publish_accepts_up_to_the_subscription_identifier_limit)
{
	uint8_t body[256], buf[300], rc = 0;
	struct mqtt_packet out;
	size_t n = 0, len;

	body[n++] = 0;
	body[n++] = 1;
	body[n++] = 't';
	body[n++] = 2 * (MQTT_SUBIDS_MAX + 1);
	for (uint32_t i = 0; i <= MQTT_SUBIDS_MAX; i++) {
		body[n++] = 0x0b;
		body[n++] = (uint8_t)(i + 1);
	}
	len = frame(0x30, body, n, buf);
	cr_assert_eq(mqtt_decode(MQTT_V5, buf, len, &out, &rc), -EPROTO);
	cr_assert_eq(rc, MQTT_RC_IMPL_SPECIFIC);
	body[3] -= 2;
	len = frame(0x30, body, n - 2, buf);
	cr_assert_eq(mqtt_decode(MQTT_V5, buf, len, &out, &rc), (int)len);
	cr_assert_eq(out.publish.props.subid_count, MQTT_SUBIDS_MAX);
	cr_assert_eq(out.publish.props.subids[MQTT_SUBIDS_MAX - 1], MQTT_SUBIDS_MAX);
}

/* ---------------------------------------------------------- properties */

Test(mqtt, user_properties_are_counted_and_gathered_in_order)
{
	/* Two user properties around other properties; the second key uses a
	 * non-minimal identifier, which the copy re-encodes as one byte. */
	static const uint8_t pkt[] = {0x30, 28,	  0, 1, 't', 23, 0x26, 0, 1, 'a', 0, 1, 'b', 0x01, 1,
				      0x02, 0,	  0, 0, 1,   0xa6, 0x00, 0, 1, 'c', 0, 2, 'd', 'e',  'P'};
	static const uint8_t want[] = {0x26, 0, 1, 'a', 0, 1, 'b', 0x26, 0, 1, 'c', 0, 2, 'd', 'e'};
	struct mqtt_packet out;
	uint8_t dst[64], rc;

	cr_assert_eq(mqtt_decode(MQTT_V5, pkt, sizeof(pkt), &out, &rc), (int)sizeof(pkt), "rc 0x%02x", rc);
	cr_assert_eq(out.publish.props.user_count, 2);
	cr_assert(out.publish.props.present & MQTT_HAS(MQTT_PROP_USER));
	cr_assert_eq(out.publish.props.payload_format, 1);
	cr_assert_eq(out.publish.props.message_expiry, 1);
	cr_assert_eq(out.publish.props.raw, pkt + 6);
	cr_assert_eq(out.publish.props.raw_len, 23);
	cr_assert_eq(mqtt_props_user_len(&out.publish.props), sizeof(want));
	cr_assert_eq(mqtt_props_user_copy(&out.publish.props, dst), sizeof(want));
	cr_assert(memcmp(dst, want, sizeof(want)) == 0);
	str_eq(out.publish.payload, S("P"), "payload");
}

Test(mqtt, no_properties_means_nothing_present)
{
	static const uint8_t pkt[] = {0x30, 5, 0, 1, 't', 0, 'x'};
	struct mqtt_packet out;
	uint8_t rc;

	memset(&out, 0xa5, sizeof(out));
	cr_assert_eq(mqtt_decode(MQTT_V5, pkt, sizeof(pkt), &out, &rc), 7);
	cr_assert_eq(out.publish.props.present, 0);
	cr_assert_eq(out.publish.props.user_count, 0);
	cr_assert_eq(out.publish.props.subid_count, 0);
	cr_assert_eq(out.publish.props.raw_len, 0);
	cr_assert_eq(mqtt_props_user_len(&out.publish.props), 0);
	memset(&out, 0xa5, sizeof(out));
	cr_assert_eq(mqtt_decode(MQTT_V311, pkt, sizeof(pkt), &out, &rc), 7);
	cr_assert_eq(out.publish.props.present, 0);
	str_eq(out.publish.payload, S("\x00x"), "3.1.1 payload includes the byte");
}

Test(mqtt, properties_are_encoded_in_a_fixed_order_with_user_last)
{
	struct mqtt_packet in = {.type = MQTT_PUBLISH};
	static const uint8_t want[] = {0x30, 27, 0, 1, 't', 22, 0x01, 1, 0x02, 0, 0, 0, 5, 0x0b, 7, 0x0b, 0x80,
				       0x01, 0x23, 0, 2,  0x26, 0,   1, 'k', 0, 1, 'v', 'x'};
	static const uint8_t ub[] = {0x26, 0, 1, 'k', 0, 1, 'v'};
	uint8_t buf[64];

	in.publish.topic = S("t");
	in.publish.payload = S("x");
	in.publish.props.present = MQTT_HAS(MQTT_PROP_TOPIC_ALIAS) | MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID) |
				   MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY) | MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT);
	in.publish.props.topic_alias = 2;
	in.publish.props.subid_count = 2;
	in.publish.props.subids[0] = 7;
	in.publish.props.subids[1] = 128;
	in.publish.props.message_expiry = 5;
	in.publish.props.payload_format = 1;
	in.publish.props.user.ptr = ub;
	in.publish.props.user.len = sizeof(ub);
	cr_assert_eq(mqtt_encode(MQTT_V5, &in, buf, sizeof(buf)), (int)sizeof(want));
	cr_assert(memcmp(buf, want, sizeof(want)) == 0);
	/* 3.x: no properties at all. */
	cr_assert_eq(mqtt_encode(MQTT_V311, &in, buf, sizeof(buf)), 6);
	cr_assert(memcmp(buf, "\x30\x04\x00\x01tx", 6) == 0);
}

Test(mqtt, encoder_refuses_what_the_wire_cannot_carry)
{
	static uint8_t buf[128];
	static const uint8_t longs[65536];
	struct mqtt_packet in = {.type = MQTT_CONNACK};

	/* A property not valid for the packet (section 2.2.2.2). */
	in.connack.props.present = MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
	cr_assert_eq(mqtt_encoded_len(MQTT_V5, &in), 0);
	cr_assert_eq(mqtt_encode(MQTT_V5, &in, buf, sizeof(buf)), -EINVAL);
	/* ...which 3.x never writes, so it does not matter there. */
	cr_assert_eq(mqtt_encode(MQTT_V311, &in, buf, sizeof(buf)), 4);

	in = (struct mqtt_packet){.type = MQTT_PUBLISH};
	in.publish.topic.ptr = longs;
	in.publish.topic.len = 65536;
	cr_assert_eq(mqtt_encoded_len(MQTT_V311, &in), 0);
	in.publish.topic = S("t");
	in.publish.payload.ptr = longs;
	in.publish.payload.len = 268435455u - 3 + 1; /* one over the maximum */
	cr_assert_eq(mqtt_encoded_len(MQTT_V311, &in), 0);
	cr_assert_eq(mqtt_encode(MQTT_V311, &in, buf, sizeof(buf)), -EINVAL);
	in.publish.payload.len = 268435455u - 3; /* exactly the maximum */
	cr_assert_eq(mqtt_encoded_len(MQTT_V311, &in), 5 + 268435455u);
	cr_assert_eq(mqtt_encode(MQTT_V311, &in, buf, sizeof(buf)), -ENOBUFS);

	in = (struct mqtt_packet){.type = MQTT_PUBLISH};
	in.publish.topic = S("t");
	in.publish.props.present = MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
	in.publish.props.subid_count = 1;
	in.publish.props.subids[0] = 0; /* [3.3.2.3.8] */
	cr_assert_eq(mqtt_encoded_len(MQTT_V5, &in), 0);
	in.publish.props.subids[0] = 268435456;
	cr_assert_eq(mqtt_encoded_len(MQTT_V5, &in), 0);

	in = (struct mqtt_packet){.type = 0};
	cr_assert_eq(mqtt_encode(MQTT_V5, &in, buf, sizeof(buf)), -EINVAL);
	in.type = MQTT_PINGREQ;
	cr_assert_eq(mqtt_encode(6, &in, buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(mqtt_encode(2, &in, buf, sizeof(buf)), -EINVAL);
}

Test(mqtt, encoder_writes_bad_but_representable_packets_for_tests)
{
	/* A test client must be able to send what the broker must refuse. */
	struct mqtt_packet in = {.type = MQTT_PUBLISH}, out;
	uint8_t buf[32], rc;
	int n;

	in.publish.qos = 1;
	in.publish.topic = S("a/#");
	n = mqtt_encode(MQTT_V311, &in, buf, sizeof(buf));
	cr_assert_eq(n, 9);
	cr_assert_eq(mqtt_decode(MQTT_V311, buf, (size_t)n, &out, &rc), -EPROTO);
	cr_assert_eq(rc, MQTT_RC_TOPIC_NAME_INVALID);
}

/* ---------------------------------------------------------------- UTF-8 */

struct utf8_row {
	const char *what;
	const char *s;
	size_t len;
	int want;
};

#define U(what, lit, want) {what, lit, sizeof(lit) - 1, want}

static const struct utf8_row utf8_rows[] = {
	U("empty", "", 0),
	U("ASCII", "hello/world", 0),
	U("long ASCII", "abcdefghijklmnopqrstuvwxyz0123456789", 0),
	U("2-byte U+00E9", "\xc3\xa9", 0),
	U("3-byte U+20AC", "\xe2\x82\xac", 0),
	U("4-byte U+1F600", "\xf0\x9f\x98\x80", 0),
	U("U+0080 lowest 2-byte", "\xc2\x80", 0),
	U("U+07FF", "\xdf\xbf", 0),
	U("U+0800 lowest 3-byte", "\xe0\xa0\x80", 0),
	U("U+D7FF below surrogates", "\xed\x9f\xbf", 0),
	U("U+E000 above surrogates", "\xee\x80\x80", 0),
	U("U+FFFF", "\xef\xbf\xbf", 0),
	U("U+10000 lowest 4-byte", "\xf0\x90\x80\x80", 0),
	U("U+10FFFF highest", "\xf4\x8f\xbf\xbf", 0),
	U("U+FEFF BOM is kept [MQTT-1.5.4-3]", "\xef\xbb\xbf" "a", 0),
	U("control U+0001 is allowed (SHOULD NOT only)", "\x01", 0),
	U("mixed after 8 ASCII", "abcdefgh\xc3\xa9xyz\xe2\x82\xac", 0),
	U("[MQTT-1.5.4-2] U+0000", "a\x00" "b", -EILSEQ),
	U("[MQTT-1.5.4-2] U+0000 after 8 ASCII", "abcdefghij\x00", -EILSEQ),
	U("[MQTT-1.5.4-1] overlong NUL C0 80", "\xc0\x80", -EILSEQ),
	U("[MQTT-1.5.4-1] overlong '/' C0 AF", "\xc0\xaf", -EILSEQ),
	U("[MQTT-1.5.4-1] overlong C1 BF", "\xc1\xbf", -EILSEQ),
	U("[MQTT-1.5.4-1] overlong 3-byte E0 9F BF", "\xe0\x9f\xbf", -EILSEQ),
	U("[MQTT-1.5.4-1] overlong 4-byte F0 8F BF BF", "\xf0\x8f\xbf\xbf", -EILSEQ),
	U("[MQTT-1.5.4-1] surrogate U+D800", "\xed\xa0\x80", -EILSEQ),
	U("[MQTT-1.5.4-1] surrogate U+DFFF", "\xed\xbf\xbf", -EILSEQ),
	U("[MQTT-1.5.4-1] U+110000", "\xf4\x90\x80\x80", -EILSEQ),
	U("[MQTT-1.5.4-1] F5 lead", "\xf5\x80\x80\x80", -EILSEQ),
	U("[MQTT-1.5.4-1] FF byte", "\xff", -EILSEQ),
	U("lone continuation byte", "\x80", -EILSEQ),
	U("truncated 2-byte", "\xc3", -EILSEQ),
	U("truncated 3-byte", "\xe2\x82", -EILSEQ),
	U("truncated 4-byte", "\xf0\x9f\x98", -EILSEQ),
	U("truncated 4-byte after 8 ASCII", "abcdefgh\xf0\x9f\x98", -EILSEQ),
	U("bad continuation", "\xe2\x28\xa1", -EILSEQ),
	U("bad third byte", "\xf0\x9f\x28\x80", -EILSEQ),
	U("5-byte form", "\xf8\x88\x80\x80\x80", -EILSEQ),
};

Test(mqtt, utf8_check_follows_the_mqtt_rules)
{
	for (size_t i = 0; i < sizeof(utf8_rows) / sizeof(utf8_rows[0]); i++) {
		const struct utf8_row *r = &utf8_rows[i];

		cr_expect_eq(mqtt_utf8_check((const uint8_t *)r->s, r->len), r->want, "%s", r->what);
	}
}

/* A plain reference decoder: the code point of one sequence and its length,
 * then the MQTT rules on the value. */
static int utf8_ref(const uint8_t *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		uint8_t c = s[i];
		size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
		static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
		uint32_t cp;

		if (n == 0 || i + n > len)
			return -EILSEQ;
		cp = n == 1 ? c : (uint32_t)(c & (0x7f >> n));
		for (size_t k = 1; k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return -EILSEQ;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min[n] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || cp == 0)
			return -EILSEQ;
		i += n;
	}
	return 0;
}

Test(mqtt, utf8_check_agrees_with_a_reference_decoder)
{
	uint8_t s[12];

	/* Every 1-, 2- and 3-byte string; 4-byte strings with interesting
	 * trailing bytes.  Each is also checked after 8 ASCII bytes, so the
	 * word-at-a-time path hands over at a word boundary. */
	memset(s, 'x', 8);
	for (uint32_t v = 0; v < (1u << 24); v++) {
		s[8] = (uint8_t)(v >> 16);
		s[9] = (uint8_t)(v >> 8);
		s[10] = (uint8_t)v;
		/* s[8] is 0 while v < 65536, so s + 9 walks every 2-byte string
		 * and s + 10 every 1-byte string on the way. */
		for (size_t n = 1; n <= 3; n++) {
			const uint8_t *p = s + 11 - n;

			if ((n == 1 && v >= 256) || (n == 2 && v >= 65536))
				continue;
			if (mqtt_utf8_check(p, n) != utf8_ref(p, n))
				cr_assert_fail("%zu bytes %06x: check %d", n, v, mqtt_utf8_check(p, n));
		}
		if (mqtt_utf8_check(s, 11) != utf8_ref(s, 11))
			cr_assert_fail("8 ASCII bytes then %06x", v);
	}
	static const uint8_t tails[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0xbf, 0xc0, 0xff};
	for (uint32_t lead = 0xf0; lead <= 0xff; lead++)
		for (uint32_t b1 = 0; b1 < 256; b1++)
			for (size_t t2 = 0; t2 < sizeof(tails); t2++)
				for (size_t t3 = 0; t3 < sizeof(tails); t3++) {
					uint8_t q[4] = {(uint8_t)lead, (uint8_t)b1, tails[t2], tails[t3]};

					cr_assert_eq(mqtt_utf8_check(q, 4), utf8_ref(q, 4), "%02x %02x %02x %02x",
						     q[0], q[1], q[2], q[3]);
				}
}

Test(mqtt, utf8_check_reads_exactly_len_bytes)
{
	/* The byte after the view is never looked at: a truncated sequence at
	 * the end of the view is refused even when the buffer continues. */
	static const uint8_t s[] = {'a', 0xc3, 0xa9};

	cr_assert_eq(mqtt_utf8_check(s, 2), -EILSEQ);
	cr_assert_eq(mqtt_utf8_check(s, 3), 0);
	cr_assert_eq(mqtt_utf8_check(s, 1), 0);
}

Test(mqtt, utf8_check_finds_faults_at_every_offset)
{
	uint8_t s[40];

	for (size_t at = 0; at < 32; at++) {
		memset(s, 'a', sizeof(s));
		s[at] = 0;
		cr_assert_eq(mqtt_utf8_check(s, 33), -EILSEQ, "NUL at %zu", at);
		s[at] = 0x80;
		cr_assert_eq(mqtt_utf8_check(s, 33), -EILSEQ, "0x80 at %zu", at);
		s[at] = 0xc3;
		s[at + 1] = 0xa9;
		cr_assert_eq(mqtt_utf8_check(s, 33), 0, "U+00E9 at %zu", at);
	}
}

/* ------------------------------------------------------------- misc API */

Test(mqtt, varint_len_matches_the_boundaries)
{
	cr_assert_eq(mqtt_varint_len(0), 1);
	cr_assert_eq(mqtt_varint_len(127), 1);
	cr_assert_eq(mqtt_varint_len(128), 2);
	cr_assert_eq(mqtt_varint_len(16383), 2);
	cr_assert_eq(mqtt_varint_len(16384), 3);
	cr_assert_eq(mqtt_varint_len(2097151), 3);
	cr_assert_eq(mqtt_varint_len(2097152), 4);
	cr_assert_eq(mqtt_varint_len(268435455), 4);
}

Test(mqtt, type_names_cover_every_type)
{
	cr_assert_str_eq(mqtt_type_name(MQTT_CONNECT), "CONNECT");
	cr_assert_str_eq(mqtt_type_name(MQTT_UNSUBACK), "UNSUBACK");
	cr_assert_str_eq(mqtt_type_name(MQTT_AUTH), "AUTH");
	cr_assert_str_eq(mqtt_type_name(0), "?");
	cr_assert_str_eq(mqtt_type_name(16), "?");
	cr_assert_str_eq(mqtt_type_name(255), "?");
}

Test(mqtt, sub_encode_checks_its_arguments)
{
	struct mqtt_sub s = {.filter = S("abc"), .qos = 1, .no_local = true, .retain_handling = 1};
	uint8_t buf[8];

	cr_assert_eq(mqtt_sub_encode(MQTT_V5, &s, false, buf, 5), -ENOBUFS);
	cr_assert_eq(mqtt_sub_encode(MQTT_V5, &s, false, buf, 6), 6);
	cr_assert_eq(buf[5], 0x15);
	cr_assert_eq(mqtt_sub_encode(MQTT_V311, &s, false, buf, 6), 6);
	cr_assert_eq(buf[5], 0x01, "3.x has QoS only");
	cr_assert_eq(mqtt_sub_encode(MQTT_V311, &s, true, buf, 5), 5);
	s.retain_handling = 4;
	cr_assert_eq(mqtt_sub_encode(MQTT_V5, &s, false, buf, sizeof(buf)), -EINVAL);
}

Test(mqtt, only_connect_decodes_before_the_version_is_known)
{
	/* [MQTT-3.1.0-1]: the first packet must be CONNECT; a connection that
	 * has none yet passes version 0. */
	static const uint8_t ping[] = {0xc0, 0};
	static const uint8_t conn[] = {0x10, 13, MQTT4, 0x02, 0, 60, 0, 1, 'a'};
	struct mqtt_packet out;
	uint8_t rc = 0;

	cr_assert_eq(mqtt_decode(0, ping, sizeof(ping), &out, &rc), -EPROTO);
	cr_assert_eq(rc, MQTT_RC_PROTOCOL_ERROR);
	cr_assert_eq(mqtt_decode(6, ping, sizeof(ping), &out, &rc), -EPROTO);
	cr_assert_eq(mqtt_decode(0, conn, sizeof(conn), &out, &rc), (int)sizeof(conn));
	cr_assert_eq(out.connect.version, MQTT_V311);
}

Test(mqtt, sub_next_asserts_on_a_list_it_did_not_validate, .signal = SIGABRT)
{
	static const uint8_t bad[] = {0, 9, 'a'};
	struct mqtt_subscribe s = {.list = {bad, sizeof(bad)}, .count = 1};
	struct mqtt_sub e;
	uint32_t pos = 0;

	(void)mqtt_sub_next(&s, false, &pos, &e);
}

Test(mqtt, utf8_wellformed_is_rfc3629_with_nul_allowed)
{
	static const uint8_t nul[] = {'a', 0, 'b'}, surrogate[] = {0xed, 0xa0, 0x80}, overlong[] = {0xc0, 0xaf},
			     high[] = {0xf4, 0x90, 0x80, 0x80}, cut[] = {0xe2, 0x82}, euro[] = {0xe2, 0x82, 0xac};

	cr_assert_eq(utf8_wellformed(nul, sizeof(nul)), 0, "U+0000 is well-formed UTF-8");
	cr_assert_eq(mqtt_utf8_check(nul, sizeof(nul)), -EILSEQ, "but not an MQTT string [MQTT-1.5.4-2]");
	cr_assert_eq(utf8_wellformed(euro, sizeof(euro)), 0);
	cr_assert_eq(utf8_wellformed(surrogate, sizeof(surrogate)), -EILSEQ);
	cr_assert_eq(utf8_wellformed(overlong, sizeof(overlong)), -EILSEQ);
	cr_assert_eq(utf8_wellformed(high, sizeof(high)), -EILSEQ);
	cr_assert_eq(utf8_wellformed(cut, sizeof(cut)), -EILSEQ);
	cr_assert_eq(utf8_wellformed(NULL, 0), 0);
}
