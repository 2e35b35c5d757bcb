/*
 * decode.c - the frame cutter and the decoders of all fifteen packet types.
 *
 * mqtt_frame_cut() looks only at the fixed header (section 2.1): it answers
 * "whole frame", "need more" or "malformed / too large" without touching the
 * body, so the connection can stop reading a packet that will be refused as
 * soon as its Remaining Length is known.  mqtt_decode() then parses one
 * whole frame into views of the caller's buffer: nothing is copied or
 * allocated, and every read is bounded by the frame end (struct rd).
 *
 * Errors: each decoder returns 0 or FAIL(errno, reason).  -EBADMSG goes
 * with Malformed Packet (0x81), -EPROTO with Protocol Error (0x82) and the
 * more specific codes (0x84 unsupported version, 0x90
 * topic name invalid, 0x94 topic alias invalid).  The codes are MQTT 5's;
 * for 3.x connections they only choose between "close" and "close", but
 * they keep the tests and the logs exact.  Where the specification only
 * says the sender MUST NOT (packet identifier 0 [MQTT-2.2.1-3], reason
 * codes outside a packet's list, Session Present with a non-zero CONNACK
 * code) the receiver's answer is Protocol Error 0x82, the way section
 * 4.13 classes a violation that still parses.
 *
 * Leniency, deliberate and limited to what the specifications allow or
 * leave open: non-minimal Variable Byte Integers are accepted; MQTT 3.1
 * (which had no "reserved must be zero" rules) may set DUP on PUBREL,
 * SUBSCRIBE and UNSUBSCRIBE and any bits in CONNACK's first byte; a v5 AUTH
 * of one byte (reason, no property length) is read like DISCONNECT's.
 *
 * On failure *ret_pkt holds whatever was parsed so far and must not be
 * used, with one exception documented in mqtt.h: a CONNECT refused with
 * 0x84 has its protocol_name and version filled in.
 */
#include "codec_internal.h"

#include "ringmq/log.h"
#include "ringmq/topic.h"

#define MALFORMED FAIL(EBADMSG, MQTT_RC_MALFORMED)
#define PROTOCOL FAIL(EPROTO, MQTT_RC_PROTOCOL_ERROR)
#define TOPIC_INVALID FAIL(EPROTO, MQTT_RC_TOPIC_NAME_INVALID)

#define B(t) (1u << (t))
#define K_ACK (B(MQTT_PUBACK) | B(MQTT_PUBREC))
#define K_REL (B(MQTT_PUBREL) | B(MQTT_PUBCOMP))
#define K_CA B(MQTT_CONNACK)
#define K_SA B(MQTT_SUBACK)
#define K_UA B(MQTT_UNSUBACK)
#define K_DI B(MQTT_DISCONNECT)
#define K_AU B(MQTT_AUTH)

/* For each MQTT 5 reason code, the packets that may carry it (the tables of
 * sections 3.2.2.2, 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.9.3, 3.11.3,
 * 3.14.2.1 and 3.15.2.1). */
static const uint16_t reason_ok[256] = {
	[0x00] = K_CA | K_ACK | K_REL | K_SA | K_UA | K_DI | K_AU,
	[0x01] = K_SA,
	[0x02] = K_SA,
	[0x04] = K_DI,
	[0x10] = K_ACK,
	[0x11] = K_UA,
	[0x18] = K_AU,
	[0x19] = K_AU,
	[0x80] = K_CA | K_ACK | K_SA | K_UA | K_DI,
	[0x81] = K_CA | K_DI,
	[0x82] = K_CA | K_DI,
	[0x83] = K_CA | K_ACK | K_SA | K_UA | K_DI,
	[0x84] = K_CA,
	[0x85] = K_CA,
	[0x86] = K_CA,
	[0x87] = K_CA | K_ACK | K_SA | K_UA | K_DI,
	[0x88] = K_CA,
	[0x89] = K_CA | K_DI,
	[0x8A] = K_CA,
	[0x8B] = K_DI,
	[0x8C] = K_CA,
	[0x8D] = K_DI,
	[0x8E] = K_DI,
	[0x8F] = K_SA | K_UA | K_DI,
	[0x90] = K_CA | K_ACK | K_DI,
	[0x91] = K_ACK | K_SA | K_UA,
	[0x92] = K_REL,
	[0x93] = K_DI,
	[0x94] = K_DI,
	[0x95] = K_CA | K_DI,
	[0x96] = K_DI,
	[0x97] = K_CA | K_ACK | K_SA | K_DI,
	[0x98] = K_DI,
	[0x99] = K_CA | K_ACK | K_DI,
	[0x9A] = K_CA | K_DI,
	[0x9B] = K_CA | K_DI,
	[0x9C] = K_CA | K_DI,
	[0x9D] = K_CA | K_DI,
	[0x9E] = K_SA | K_DI,
	[0x9F] = K_CA | K_DI,
	[0xA0] = K_DI,
	[0xA1] = K_SA | K_DI,
	[0xA2] = K_SA | K_DI,
};

static inline bool reason_valid(uint8_t type, uint8_t rc)
{
	return reason_ok[rc] & B(type);
}

/* ------------------------------------------------------------ frame cut */

int mqtt_frame_cut(const uint8_t *buf, size_t len, uint32_t packet_bytes_max, struct mqtt_frame *ret_frame,
		   uint8_t *ret_reason)
{
	uint32_t rl, used;
	uint64_t total;
	int e;

	if (len == 0)
		return 0;
	if ((buf[0] >> 4) == 0)
		goto malformed; /* type 0 is reserved, forbidden (section 2.1.2) */
	e = varint_get(buf + 1, len - 1, &rl, &used);
	if (e == -1)
		return 0;
	if (e < 0)
		goto malformed; /* a fifth length byte (section 1.5.5) */
	total = (uint64_t)1 + used + rl;
	if (total > packet_bytes_max) {
		*ret_reason = MQTT_RC_PACKET_TOO_LARGE;
		return -EMSGSIZE;
	}
	if (len < total)
		return 0;
	ret_frame->type = buf[0] >> 4;
	ret_frame->flags = buf[0] & 0x0f;
	ret_frame->header_len = 1 + used;
	ret_frame->body_len = rl;
	return (int)total;
malformed:
	*ret_reason = MQTT_RC_MALFORMED;
	return -EBADMSG;
}

/* -------------------------------------------------------------- CONNECT */

/* Protocol name and level: "MQIsdp" 3 or "MQTT" 4/5 [MQTT-3.1.2-1/2]. */
static int protocol_check(const struct mqtt_str *name, uint8_t level)
{
	if (name->len == 4 && memcmp(name->ptr, "MQTT", 4) == 0)
		return level == MQTT_V311 || level == MQTT_V5 ? 0 : -1;
	if (name->len == 6 && memcmp(name->ptr, "MQIsdp", 6) == 0)
		return level == MQTT_V31 ? 0 : -1;
	return -1;
}

static int connect_header(struct rd *r, uint8_t fflags, struct mqtt_connect *c)
{
	uint8_t level, f;

	if (rd_str(r, &c->protocol_name) < 0 || rd_u8(r, &level) < 0)
		return MALFORMED;
	c->version = level;
	if (protocol_check(&c->protocol_name, level) < 0)
		return FAIL(EPROTO, MQTT_RC_UNSUPPORTED_VERSION);
	if (level >= MQTT_V311 && fflags != 0)
		return MALFORMED; /* reserved fixed header flags [MQTT-2.2.2-2] */
	if (rd_u8(r, &f) < 0 || rd_u16(r, &c->keepalive) < 0)
		return MALFORMED;
	if (level >= MQTT_V311 && (f & 0x01))
		return MALFORMED; /* [MQTT-3.1.2-3] */
	c->clean = f & 0x02;
	c->will = f & 0x04;
	c->will_qos = (f >> 3) & 3;
	c->will_retain = f & 0x20;
	c->has_password = f & 0x40;
	c->has_username = f & 0x80;
	if (c->will_qos == 3)
		return MALFORMED; /* 3.1.1 [MQTT-3.1.2-14], 5 [MQTT-3.1.2-12] */
	if (!c->will && (c->will_qos || c->will_retain))
		return MALFORMED; /* 3.1.1 [MQTT-3.1.2-13/15], 5 [MQTT-3.1.2-11/13] */
	if (level < MQTT_V5 && c->has_password && !c->has_username)
		return MALFORMED; /* 3.1.1 [MQTT-3.1.2-22]; allowed in 5 */
	if (level == MQTT_V5)
		return mqtt_props_decode(r, MQTT_CONNECT, &c->props);
	mqtt_props_clear(&c->props);
	return 0;
}

static int connect_will(struct rd *r, struct mqtt_connect *c)
{
	int e;

	if (c->version == MQTT_V5) {
		e = mqtt_props_decode(r, PTYPE_WILL, &c->will_props);
		if (e)
			return e;
	}
	if (rd_str(r, &c->will_topic) < 0 || rd_str(r, &c->will_payload) < 0)
		return MALFORMED;
	e = mqtt_utf8_name_check(c->will_topic.ptr, c->will_topic.len);
	if (e == -EILSEQ)
		return MALFORMED; /* [MQTT-3.1.3-10] */
	if (e < 0 || c->will_topic.len == 0)
		return TOPIC_INVALID; /* a topic name [MQTT-3.1.3-10], [MQTT-4.7.3-1] */
	return 0;
}

static int decode_connect(struct rd *r, uint8_t fflags, struct mqtt_connect *c)
{
	static const struct mqtt_str none;
	int e;

	e = connect_header(r, fflags, c);
	if (e)
		return e;
	if (rd_str(r, &c->client_id) < 0)
		return MALFORMED;
	if (mqtt_utf8_check(c->client_id.ptr, c->client_id.len) < 0)
		return MALFORMED; /* [MQTT-3.1.3-4] */
	c->will_topic = none;
	c->will_payload = none;
	c->username = none;
	c->password = none;
	mqtt_props_clear(&c->will_props);
	if (c->will) {
		e = connect_will(r, c);
		if (e)
			return e;
	}
	if (c->has_username) {
		if (rd_str(r, &c->username) < 0)
			return MALFORMED;
		if (mqtt_utf8_check(c->username.ptr, c->username.len) < 0)
			return MALFORMED; /* [MQTT-3.1.3-11] */
	}
	if (c->has_password && rd_str(r, &c->password) < 0)
		return MALFORMED;
	return rd_left(r) ? MALFORMED : 0;
}

/* -------------------------------------------------------------- CONNACK */

static int decode_connack(uint8_t version, struct rd *r, struct mqtt_connack *a)
{
	uint8_t f;
	int e;

	if (rd_u8(r, &f) < 0 || rd_u8(r, &a->reason) < 0)
		return MALFORMED;
	if (version == MQTT_V31) {
		a->session_present = false; /* "reserved, not used" in 3.1 */
	} else {
		if (f & 0xfe)
			return MALFORMED; /* [MQTT-3.2.2-1] */
		a->session_present = f & 1;
	}
	if (version < MQTT_V5) {
		if (a->reason > MQTT_V3_NOT_AUTHORIZED)
			return PROTOCOL; /* 6..255 reserved (3.1.1 section 3.2.2.3) */
		mqtt_props_clear(&a->props);
	} else {
		if (!reason_valid(MQTT_CONNACK, a->reason))
			return PROTOCOL;
		e = mqtt_props_decode(r, MQTT_CONNACK, &a->props);
		if (e)
			return e;
	}
	if (a->session_present && a->reason != 0)
		return PROTOCOL; /* 3.1.1 [MQTT-3.2.2-4], 5 [MQTT-3.2.2-6] */
	return rd_left(r) ? MALFORMED : 0;
}

/* -------------------------------------------------------------- PUBLISH */

static int decode_publish(uint8_t version, uint8_t flags, struct rd *r, struct mqtt_publish *p)
{
	int e;

	p->qos = (flags >> 1) & 3;
	p->dup = flags & 0x08;
	p->retain = flags & 0x01;
	if (p->qos == 3)
		return MALFORMED; /* [MQTT-3.3.1-4] */
	if (version == MQTT_V5 && p->dup && p->qos == 0)
		return MALFORMED; /* [MQTT-3.3.1-2]; tolerated from 3.x clients */
	if (rd_str(r, &p->topic) < 0)
		return MALFORMED;
	e = mqtt_utf8_name_check(p->topic.ptr, p->topic.len);
	if (e == -EILSEQ)
		return MALFORMED; /* [MQTT-3.3.2-1], [MQTT-1.5.4-1/2] */
	if (e < 0)
		return TOPIC_INVALID; /* wildcard [MQTT-3.3.2-2] */
	p->packet_id = 0;
	if (p->qos) {
		if (rd_u16(r, &p->packet_id) < 0)
			return MALFORMED;
		if (p->packet_id == 0)
			return PROTOCOL; /* [MQTT-2.2.1-3] (3.1.1: [MQTT-2.3.1-1]) */
	}
	if (version == MQTT_V5) {
		e = mqtt_props_decode(r, MQTT_PUBLISH, &p->props);
		if (e)
			return e;
		/* Empty topic only with a Topic Alias (section 3.3.2.3.4). */
		if (p->topic.len == 0 && !(p->props.present & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS)))
			return PROTOCOL;
	} else {
		mqtt_props_clear(&p->props);
		if (p->topic.len == 0)
			return TOPIC_INVALID; /* [MQTT-4.7.3-1] */
	}
	p->payload.ptr = r->p;
	p->payload.len = (uint32_t)rd_left(r);
	return 0;
}

/* ---------------------------------------- PUBACK PUBREC PUBREL PUBCOMP */

/* The MQTT 5 tail shared by the acks, DISCONNECT and AUTH: a reason code
 * and properties, both omissible from the end [MQTT-3.4.2-1 etc.]. */
static int reason_tail(uint8_t type, struct rd *r, uint8_t *reason, struct mqtt_props *props)
{
	int e;

	*reason = 0;
	mqtt_props_clear(props);
	if (rd_left(r) == 0)
		return 0;
	(void)rd_u8(r, reason); /* cannot fail: one byte is left */
	if (!reason_valid(type, *reason))
		return PROTOCOL;
	if (rd_left(r) == 0)
		return 0;
	e = mqtt_props_decode(r, type, props);
	if (e)
		return e;
	return rd_left(r) ? MALFORMED : 0;
}

static int decode_ack(uint8_t version, uint8_t type, struct rd *r, struct mqtt_ack *a)
{
	if (rd_u16(r, &a->packet_id) < 0)
		return MALFORMED;
	if (a->packet_id == 0)
		return PROTOCOL; /* [MQTT-2.2.1-3] */
	if (version == MQTT_V5)
		return reason_tail(type, r, &a->reason, &a->props);
	a->reason = 0;
	mqtt_props_clear(&a->props);
	return rd_left(r) ? MALFORMED : 0; /* Remaining Length is 2 in 3.x */
}

/* ---------------------------------------------- SUBSCRIBE UNSUBSCRIBE */

/* "$share/" prefix: a shared subscription (MQTT 5 section 4.8.2). */
static bool is_shared(const struct mqtt_str *f)
{
	return f->len >= 7 && memcmp(f->ptr, "$share/", 7) == 0;
}

/* Only UTF-8 makes a filter malformed.  Filter syntax ([MQTT-4.7.1-1..3],
 * [MQTT-4.7.3-1], $share rules [MQTT-4.8.2-1/2]) is refused per entry by the
 * server: SUBACK 0x80 (3.x) or 0x8F (5.0), the other entries unharmed. */
static int filter_check(const struct mqtt_str *f)
{
	if (mqtt_utf8_check(f->ptr, f->len) < 0)
		return MALFORMED; /* [MQTT-3.8.3-1], [MQTT-3.10.3-1] */
	return 0;
}

static int sub_options(uint8_t version, uint8_t o, const struct mqtt_str *f)
{
	if (version < MQTT_V5) {
		if (o & 0xfc)
			return MALFORMED; /* reserved bits [MQTT-3-8.3-4] */
		if ((o & 3) == 3)
			return MALFORMED; /* QoS 3 [MQTT-3-8.3-4] */
		return 0;
	}
	if (o & 0xc0)
		return MALFORMED; /* reserved bits [MQTT-3.8.3-5] */
	if ((o & 3) == 3)
		return PROTOCOL; /* Maximum QoS 3 (section 3.8.3.1) */
	if (((o >> 4) & 3) == 3)
		return PROTOCOL; /* Retain Handling 3 (section 3.8.3.1) */
	if ((o & 0x04) && is_shared(f))
		return PROTOCOL; /* No Local on a shared subscription [MQTT-3.8.3-4] */
	return 0;
}

static int decode_subscribe(uint8_t version, uint8_t type, struct rd *r, struct mqtt_subscribe *s)
{
	bool unsub = type == MQTT_UNSUBSCRIBE;
	int e;

	if (rd_u16(r, &s->packet_id) < 0)
		return MALFORMED;
	if (s->packet_id == 0)
		return PROTOCOL; /* [MQTT-2.2.1-3] (3.1.1: [MQTT-2.3.1-1]) */
	if (version == MQTT_V5) {
		e = mqtt_props_decode(r, type, &s->props);
		if (e)
			return e;
	} else {
		mqtt_props_clear(&s->props);
	}
	s->list.ptr = r->p;
	s->list.len = (uint32_t)rd_left(r);
	s->count = 0;
	while (rd_left(r)) {
		struct mqtt_str f;
		uint8_t o = 0;

		if (rd_str(r, &f) < 0 || (!unsub && rd_u8(r, &o) < 0))
			return MALFORMED;
		e = unsub ? 0 : sub_options(version, o, &f);
		if (!e)
			e = filter_check(&f);
		if (e)
			return e;
		s->count++;
	}
	/* At least one entry: 3.1.1 [MQTT-3.8.3-3] / [MQTT-3.10.3-2] call an
	 * empty one a protocol violation (close); 5 [MQTT-3.8.3-2] /
	 * [MQTT-3.10.3-2] a Protocol Error. */
	if (s->count == 0)
		return version == MQTT_V5 ? PROTOCOL : MALFORMED;
	return 0;
}

int mqtt_sub_next(const struct mqtt_subscribe *s, bool unsubscribe, uint32_t *pos, struct mqtt_sub *ret_sub)
{
	struct rd r;
	struct mqtt_sub e = {0};
	uint8_t o = 0;
	int bad;

	if (*pos >= s->list.len)
		return 0;
	r.p = s->list.ptr + *pos;
	r.end = s->list.ptr + s->list.len;
	/* The list was validated by the decoder; a short read means the caller
	 * passed something else. */
	bad = rd_str(&r, &e.filter);
	RMQ_ASSERT(bad == 0);
	if (!unsubscribe) {
		bad = rd_u8(&r, &o);
		RMQ_ASSERT(bad == 0);
		e.qos = o & 3;
		e.no_local = o & 0x04;
		e.retain_as_published = o & 0x08;
		e.retain_handling = (o >> 4) & 3;
	}
	*pos = (uint32_t)(r.p - s->list.ptr);
	*ret_sub = e;
	return 1;
}

/* ------------------------------------------------------ SUBACK UNSUBACK */

static int decode_suback(uint8_t version, uint8_t type, struct rd *r, struct mqtt_suback *a)
{
	int e;

	if (rd_u16(r, &a->packet_id) < 0)
		return MALFORMED;
	if (a->packet_id == 0)
		return PROTOCOL; /* [MQTT-2.2.1-3] */
	a->codes = NULL;
	a->count = 0;
	if (version < MQTT_V5) {
		mqtt_props_clear(&a->props);
		if (type == MQTT_UNSUBACK)
			return rd_left(r) ? MALFORMED : 0; /* 3.x: packet id only */
	} else {
		e = mqtt_props_decode(r, type, &a->props);
		if (e)
			return e;
	}
	a->codes = r->p;
	a->count = (uint32_t)rd_left(r);
	if (a->count == 0)
		return version == MQTT_V5 ? PROTOCOL : MALFORMED; /* one per filter */
	for (uint32_t i = 0; i < a->count; i++) {
		uint8_t c = a->codes[i];

		if (version == MQTT_V5 && !reason_valid(type, c))
			return PROTOCOL;
		if (version < MQTT_V5 && c > 2 && c != 0x80)
			return MALFORMED; /* [MQTT-3.9.3-2] */
	}
	return 0;
}

/* ------------------------------------------------------------- dispatch */

/* Required fixed-header flags [MQTT-2.2.2-1/2]; PUBLISH is checked apart. */
static const uint8_t flags_required[16] = {
	[MQTT_PUBREL] = 2,
	[MQTT_SUBSCRIBE] = 2,
	[MQTT_UNSUBSCRIBE] = 2,
};

static int flags_check(uint8_t version, uint8_t type, uint8_t flags)
{
	if (type == MQTT_PUBLISH || type == MQTT_CONNECT)
		return 0; /* checked by their decoders */
	if (version >= MQTT_V311)
		return flags == flags_required[type] ? 0 : -1;
	/* 3.1: QoS 1 on PUBREL/SUBSCRIBE/UNSUBSCRIBE, DUP allowed, others
	 * "not used". */
	if (flags_required[type])
		return (flags & 6) == 2 ? 0 : -1;
	return 0;
}

static int decode_body(uint8_t version, uint8_t type, uint8_t flags, struct rd *r, struct mqtt_packet *pkt)
{
	if (flags_check(version, type, flags) < 0)
		return MALFORMED;
	switch (type) {
	case MQTT_CONNECT: return decode_connect(r, flags, &pkt->connect);
	case MQTT_CONNACK: return decode_connack(version, r, &pkt->connack);
	case MQTT_PUBLISH: return decode_publish(version, flags, r, &pkt->publish);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP: return decode_ack(version, type, r, &pkt->ack);
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE: return decode_subscribe(version, type, r, &pkt->subscribe);
	case MQTT_SUBACK:
	case MQTT_UNSUBACK: return decode_suback(version, type, r, &pkt->suback);
	case MQTT_PINGREQ:
	case MQTT_PINGRESP: return rd_left(r) ? MALFORMED : 0;
	case MQTT_DISCONNECT:
		if (version < MQTT_V5) {
			pkt->disconnect.reason = 0;
			mqtt_props_clear(&pkt->disconnect.props);
			return rd_left(r) ? MALFORMED : 0;
		}
		return reason_tail(type, r, &pkt->disconnect.reason, &pkt->disconnect.props);
	case MQTT_AUTH:
		if (version < MQTT_V5)
			return MALFORMED; /* type 15 is reserved before 5 */
		return reason_tail(type, r, &pkt->disconnect.reason, &pkt->disconnect.props);
	default: return MALFORMED; /* type 0 */
	}
}

int mqtt_decode(uint8_t version, const uint8_t *buf, size_t len, struct mqtt_packet *ret_pkt, uint8_t *ret_reason)
{
	struct rd r;
	uint32_t rl, used;
	uint64_t total;
	uint8_t type;
	int e;

	if (len < 2 || varint_get(buf + 1, len - 1, &rl, &used) < 0)
		goto malformed; /* not a whole frame */
	total = (uint64_t)1 + used + rl;
	if (total > len)
		goto malformed;
	type = buf[0] >> 4;
	/* Before CONNECT the connection has no version (0): anything but
	 * CONNECT is a Protocol Error [MQTT-3.1.0-1], not a crash. */
	if (type != MQTT_CONNECT && (version < MQTT_V31 || version > MQTT_V5)) {
		*ret_reason = MQTT_RC_PROTOCOL_ERROR;
		return -EPROTO;
	}
	r.p = buf + 1 + used;
	r.end = buf + total;
	ret_pkt->type = type;
	ret_pkt->flags = buf[0] & 0x0f;
	e = decode_body(version, type, buf[0] & 0x0f, &r, ret_pkt);
	if (e) {
		*ret_reason = (uint8_t)(e >> 8);
		return -(e & 0xff);
	}
	return (int)total;
malformed:
	*ret_reason = MQTT_RC_MALFORMED;
	return -EBADMSG;
}

const char *mqtt_type_name(uint8_t type)
{
	static const char *const names[16] = {
		NULL, "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
		"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
	};

	return type < 16 && names[type] ? names[type] : "?";
}
