/*
 * props.c - MQTT 5 properties (section 2.2.2): decode, encode, user
 * properties.
 *
 * One table, indexed by property identifier, gives each property's data
 * type and the packets it may appear in (the table of section 2.2.2.2, with
 * the Will Properties of CONNECT as pseudo packet PTYPE_WILL).  Decoding
 * checks, in this order: the identifier is known and valid for the packet
 * (else Malformed 0x81, section 2.2.2.2), the value is complete and of its
 * type (0x81), it does not repeat (Protocol Error 0x82; User Property may
 * repeat, and so may Subscription Identifier in PUBLISH, where the server
 * sends one per matching subscription [MQTT-3.3.4-3]), and its value is in
 * range (0x82, or 0x94 for a Topic Alias of 0 [MQTT-3.3.2-8]).
 *
 * Subscription Identifiers in PUBLISH: the decoder accepts up to
 * MQTT_SUBIDS_MAX, whatever the direction; that a client must send none
 * [MQTT-3.3.4-6] is for the server to check, since the codec does not know
 * which side it runs on.  More than MQTT_SUBIDS_MAX fail with 0x83.
 *
 * User properties are counted, not stored: a packet may carry any number,
 * and mqtt_props_user_copy() gathers them from `raw` when someone needs
 * them (forwarding a PUBLISH).  Encoding writes the present properties in
 * ascending identifier order, then the caller's user block verbatim.
 */
#include "codec_internal.h"

#include "ringmq/limits.h"

enum ptype_kind {
	T_NONE = 0,
	T_BYTE,
	T_U16,
	T_U32,
	T_VARINT,
	T_UTF8,
	T_BIN,
	T_PAIR,
};

#define P(t) (1u << (t))
#define P_WILL P(PTYPE_WILL)
#define P_ACKS (P(MQTT_PUBACK) | P(MQTT_PUBREC) | P(MQTT_PUBREL) | P(MQTT_PUBCOMP))
#define P_ALL                                                                                      \
	(P(MQTT_CONNECT) | P(MQTT_CONNACK) | P(MQTT_PUBLISH) | P_WILL | P_ACKS | P(MQTT_SUBSCRIBE) |  \
	 P(MQTT_SUBACK) | P(MQTT_UNSUBSCRIBE) | P(MQTT_UNSUBACK) | P(MQTT_DISCONNECT) | P(MQTT_AUTH))

#define PROP_ID_MAX MQTT_PROP_SHARED_SUB_AVAILABLE

static const struct {
	uint8_t kind;
	uint32_t packets;
} prop_table[PROP_ID_MAX + 1] = {
	[MQTT_PROP_PAYLOAD_FORMAT] = {T_BYTE, P(MQTT_PUBLISH) | P_WILL},
	[MQTT_PROP_MESSAGE_EXPIRY] = {T_U32, P(MQTT_PUBLISH) | P_WILL},
	[MQTT_PROP_CONTENT_TYPE] = {T_UTF8, P(MQTT_PUBLISH) | P_WILL},
	[MQTT_PROP_RESPONSE_TOPIC] = {T_UTF8, P(MQTT_PUBLISH) | P_WILL},
	[MQTT_PROP_CORRELATION_DATA] = {T_BIN, P(MQTT_PUBLISH) | P_WILL},
	[MQTT_PROP_SUBSCRIPTION_ID] = {T_VARINT, P(MQTT_PUBLISH) | P(MQTT_SUBSCRIBE)},
	[MQTT_PROP_SESSION_EXPIRY] = {T_U32, P(MQTT_CONNECT) | P(MQTT_CONNACK) | P(MQTT_DISCONNECT)},
	[MQTT_PROP_ASSIGNED_CLIENT_ID] = {T_UTF8, P(MQTT_CONNACK)},
	[MQTT_PROP_SERVER_KEEP_ALIVE] = {T_U16, P(MQTT_CONNACK)},
	[MQTT_PROP_AUTH_METHOD] = {T_UTF8, P(MQTT_CONNECT) | P(MQTT_CONNACK) | P(MQTT_AUTH)},
	[MQTT_PROP_AUTH_DATA] = {T_BIN, P(MQTT_CONNECT) | P(MQTT_CONNACK) | P(MQTT_AUTH)},
	[MQTT_PROP_REQUEST_PROBLEM_INFO] = {T_BYTE, P(MQTT_CONNECT)},
	[MQTT_PROP_WILL_DELAY] = {T_U32, P_WILL},
	[MQTT_PROP_REQUEST_RESPONSE_INFO] = {T_BYTE, P(MQTT_CONNECT)},
	[MQTT_PROP_RESPONSE_INFO] = {T_UTF8, P(MQTT_CONNACK)},
	[MQTT_PROP_SERVER_REFERENCE] = {T_UTF8, P(MQTT_CONNACK) | P(MQTT_DISCONNECT)},
	[MQTT_PROP_REASON_STRING] = {T_UTF8, P(MQTT_CONNACK) | P_ACKS | P(MQTT_SUBACK) | P(MQTT_UNSUBACK) |
						     P(MQTT_DISCONNECT) | P(MQTT_AUTH)},
	[MQTT_PROP_RECEIVE_MAX] = {T_U16, P(MQTT_CONNECT) | P(MQTT_CONNACK)},
	[MQTT_PROP_TOPIC_ALIAS_MAX] = {T_U16, P(MQTT_CONNECT) | P(MQTT_CONNACK)},
	[MQTT_PROP_TOPIC_ALIAS] = {T_U16, P(MQTT_PUBLISH)},
	[MQTT_PROP_MAX_QOS] = {T_BYTE, P(MQTT_CONNACK)},
	[MQTT_PROP_RETAIN_AVAILABLE] = {T_BYTE, P(MQTT_CONNACK)},
	[MQTT_PROP_USER] = {T_PAIR, P_ALL},
	[MQTT_PROP_MAX_PACKET_SIZE] = {T_U32, P(MQTT_CONNECT) | P(MQTT_CONNACK)},
	[MQTT_PROP_WILDCARD_SUB_AVAILABLE] = {T_BYTE, P(MQTT_CONNACK)},
	[MQTT_PROP_SUBID_AVAILABLE] = {T_BYTE, P(MQTT_CONNACK)},
	[MQTT_PROP_SHARED_SUB_AVAILABLE] = {T_BYTE, P(MQTT_CONNACK)},
};

_Static_assert(PROP_ID_MAX < 64, "mqtt_props.present has one bit per property id");
_Static_assert(PTYPE_WILL < 32, "prop_table packets mask");
_Static_assert(MQTT_SUBIDS_MAX == SUBSCRIPTION_IDS_MAX, "mqtt.h and limits.h disagree");

#define MALFORMED FAIL(EBADMSG, MQTT_RC_MALFORMED)
#define PROTOCOL FAIL(EPROTO, MQTT_RC_PROTOCOL_ERROR)

void mqtt_props_clear(struct mqtt_props *p)
{
	/* subids[] is meaningful only up to subid_count: not cleared, so an
	 * empty property block costs a few stores, not 300 bytes. */
	memset(p, 0, offsetof(struct mqtt_props, subids));
	p->user_count = 0;
	p->user.ptr = NULL;
	p->user.len = 0;
}

/* Where a property's decoded value goes; NULL for those stored by hand. */
static struct mqtt_str *str_slot(struct mqtt_props *p, uint8_t id)
{
	switch (id) {
	case MQTT_PROP_CONTENT_TYPE: return &p->content_type;
	case MQTT_PROP_RESPONSE_TOPIC: return &p->response_topic;
	case MQTT_PROP_CORRELATION_DATA: return &p->correlation_data;
	case MQTT_PROP_ASSIGNED_CLIENT_ID: return &p->assigned_client_id;
	case MQTT_PROP_AUTH_METHOD: return &p->auth_method;
	case MQTT_PROP_AUTH_DATA: return &p->auth_data;
	case MQTT_PROP_RESPONSE_INFO: return &p->response_info;
	case MQTT_PROP_SERVER_REFERENCE: return &p->server_reference;
	case MQTT_PROP_REASON_STRING: return &p->reason_string;
	default: return NULL;
	}
}

static uint8_t *byte_slot(struct mqtt_props *p, uint8_t id)
{
	switch (id) {
	case MQTT_PROP_PAYLOAD_FORMAT: return &p->payload_format;
	case MQTT_PROP_REQUEST_PROBLEM_INFO: return &p->request_problem_info;
	case MQTT_PROP_REQUEST_RESPONSE_INFO: return &p->request_response_info;
	case MQTT_PROP_MAX_QOS: return &p->max_qos;
	case MQTT_PROP_RETAIN_AVAILABLE: return &p->retain_available;
	case MQTT_PROP_WILDCARD_SUB_AVAILABLE: return &p->wildcard_available;
	case MQTT_PROP_SUBID_AVAILABLE: return &p->subid_available;
	case MQTT_PROP_SHARED_SUB_AVAILABLE: return &p->shared_available;
	default: return NULL;
	}
}

static uint16_t *u16_slot(struct mqtt_props *p, uint8_t id)
{
	switch (id) {
	case MQTT_PROP_SERVER_KEEP_ALIVE: return &p->server_keep_alive;
	case MQTT_PROP_RECEIVE_MAX: return &p->receive_max;
	case MQTT_PROP_TOPIC_ALIAS_MAX: return &p->topic_alias_max;
	case MQTT_PROP_TOPIC_ALIAS: return &p->topic_alias;
	default: return NULL;
	}
}

static uint32_t *u32_slot(struct mqtt_props *p, uint8_t id)
{
	switch (id) {
	case MQTT_PROP_MESSAGE_EXPIRY: return &p->message_expiry;
	case MQTT_PROP_SESSION_EXPIRY: return &p->session_expiry;
	case MQTT_PROP_WILL_DELAY: return &p->will_delay;
	case MQTT_PROP_MAX_PACKET_SIZE: return &p->max_packet_size;
	default: return NULL;
	}
}

/* Every Byte property defined so far takes 0 or 1 (sections 3.1.2.11.4,
 * 3.1.2.11.6, 3.2.2.3.4..12, 3.3.2.3.2); anything else is a Protocol Error. */
static int byte_prop(struct rd *r, struct mqtt_props *p, uint8_t id)
{
	uint8_t v;

	if (rd_u8(r, &v) < 0)
		return MALFORMED;
	if (v > 1)
		return PROTOCOL;
	*byte_slot(p, id) = v;
	return 0;
}

static int u16_prop(struct rd *r, struct mqtt_props *p, uint8_t id)
{
	uint16_t v;

	if (rd_u16(r, &v) < 0)
		return MALFORMED;
	if (v == 0 && id == MQTT_PROP_RECEIVE_MAX)
		return PROTOCOL; /* section 3.1.2.11.3 / 3.2.2.3.3 */
	if (v == 0 && id == MQTT_PROP_TOPIC_ALIAS)
		return FAIL(EPROTO, MQTT_RC_TOPIC_ALIAS_INVALID); /* [MQTT-3.3.2-8] */
	*u16_slot(p, id) = v;
	return 0;
}

static int u32_prop(struct rd *r, struct mqtt_props *p, uint8_t id)
{
	uint32_t v;

	if (rd_u32(r, &v) < 0)
		return MALFORMED;
	if (v == 0 && id == MQTT_PROP_MAX_PACKET_SIZE)
		return PROTOCOL; /* section 3.1.2.11.5 / 3.2.2.3.6 */
	*u32_slot(p, id) = v;
	return 0;
}

static int subid_prop(struct rd *r, struct mqtt_props *p)
{
	uint32_t v;

	if (rd_varint(r, &v) < 0)
		return MALFORMED; /* truncated, or more than four bytes */
	if (v == 0)
		return PROTOCOL; /* section 3.3.2.3.8 / 3.8.2.1.2 */
	if (p->subid_count >= MQTT_SUBIDS_MAX)
		return FAIL(EPROTO, MQTT_RC_IMPL_SPECIFIC);
	p->subids[p->subid_count++] = v;
	return 0;
}

static int str_prop(struct rd *r, struct mqtt_props *p, uint8_t id, uint8_t kind)
{
	struct mqtt_str s;

	if (rd_str(r, &s) < 0)
		return MALFORMED;
	if (id == MQTT_PROP_RESPONSE_TOPIC) {
		/* A topic name: UTF-8, no wildcards [MQTT-3.3.2-14], not empty. */
		int e = mqtt_utf8_name_check(s.ptr, s.len);

		if (e == -EILSEQ)
			return MALFORMED;
		if (e < 0 || s.len == 0)
			return PROTOCOL;
	} else if (kind == T_UTF8 && mqtt_utf8_check(s.ptr, s.len) < 0) {
		return MALFORMED; /* [MQTT-1.5.4-1] */
	}
	*str_slot(p, id) = s;
	return 0;
}

static int pair_prop(struct rd *r, struct mqtt_props *p)
{
	struct mqtt_str k, v;

	if (rd_str(r, &k) < 0 || rd_str(r, &v) < 0)
		return MALFORMED;
	if (mqtt_utf8_check(k.ptr, k.len) < 0 || mqtt_utf8_check(v.ptr, v.len) < 0)
		return MALFORMED; /* section 1.5.7 */
	p->user_count++;
	return 0;
}

static int one_prop(struct rd *r, unsigned ptype, struct mqtt_props *p)
{
	uint32_t id;
	uint8_t kind;

	if (rd_varint(r, &id) < 0 || id > PROP_ID_MAX)
		return MALFORMED;
	kind = prop_table[id].kind;
	if (kind == T_NONE || !(prop_table[id].packets & P(ptype)))
		return MALFORMED; /* section 2.2.2.2 */
	if ((p->present & MQTT_HAS(id)) && id != MQTT_PROP_USER &&
	    !(id == MQTT_PROP_SUBSCRIPTION_ID && ptype == MQTT_PUBLISH))
		return PROTOCOL; /* "a Protocol Error to include ... more than once" */
	p->present |= MQTT_HAS(id);
	switch (kind) {
	case T_BYTE: return byte_prop(r, p, (uint8_t)id);
	case T_U16: return u16_prop(r, p, (uint8_t)id);
	case T_U32: return u32_prop(r, p, (uint8_t)id);
	case T_VARINT: return subid_prop(r, p);
	case T_UTF8:
	case T_BIN: return str_prop(r, p, (uint8_t)id, kind);
	default: return pair_prop(r, p);
	}
}

int mqtt_props_decode(struct rd *r, unsigned ptype, struct mqtt_props *ret)
{
	struct rd pr;
	uint32_t len;
	int e;

	mqtt_props_clear(ret);
	if (rd_varint(r, &len) < 0 || rd_left(r) < len)
		return MALFORMED;
	ret->raw = r->p;
	ret->raw_len = len;
	pr.p = r->p;
	pr.end = r->p + len;
	r->p += len;
	while (pr.p < pr.end) {
		e = one_prop(&pr, ptype, ret);
		if (e)
			return e;
	}
	/* "It is a Protocol Error to include Authentication Data if there is
	 * no Authentication Method" (sections 3.1.2.11.10, 3.2.2.3.18, 3.15.2.2.3). */
	if ((ret->present & MQTT_HAS(MQTT_PROP_AUTH_DATA)) && !(ret->present & MQTT_HAS(MQTT_PROP_AUTH_METHOD)))
		return PROTOCOL;
	return 0;
}

/* ---------------------------------------------------------------- encode */

static uint32_t value_len(const struct mqtt_props *p, uint8_t id, uint8_t kind)
{
	switch (kind) {
	case T_BYTE: return 1;
	case T_U16: return 2;
	case T_U32: return 4;
	case T_VARINT: {
		uint32_t n = 0;

		if (p->subid_count > MQTT_SUBIDS_MAX)
			return UINT32_MAX;
		for (uint32_t i = 0; i < p->subid_count; i++) {
			if (p->subids[i] == 0 || p->subids[i] > VARINT_MAX)
				return UINT32_MAX;
			/* each one repeats the identifier byte; the caller
			 * counted one */
			n += mqtt_varint_len(p->subids[i]) + (i ? 1 : 0);
		}
		return n;
	}
	default: {
		const struct mqtt_str *s = str_slot((struct mqtt_props *)(uintptr_t)p, id);

		return s->len > UINT16_MAX ? UINT32_MAX : 2 + s->len;
	}
	}
}

uint32_t mqtt_props_len(const struct mqtt_props *p, unsigned ptype)
{
	uint64_t bits = p->present & ~MQTT_HAS(MQTT_PROP_USER);
	uint64_t n = 0;

	if (p->subid_count == 0)
		bits &= ~MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
	while (bits) {
		unsigned id = (unsigned)__builtin_ctzll(bits);
		uint32_t v;

		bits &= bits - 1;
		if (id > PROP_ID_MAX || prop_table[id].kind == T_NONE || !(prop_table[id].packets & P(ptype)))
			return UINT32_MAX;
		v = value_len(p, (uint8_t)id, prop_table[id].kind);
		if (v == UINT32_MAX)
			return UINT32_MAX;
		n += 1 + v;
	}
	if (p->user.len) {
		if (!(prop_table[MQTT_PROP_USER].packets & P(ptype)))
			return UINT32_MAX;
		n += p->user.len;
	}
	return n > VARINT_MAX ? UINT32_MAX : (uint32_t)n;
}

static uint8_t *put_value(uint8_t *d, const struct mqtt_props *p, uint8_t id, uint8_t kind)
{
	struct mqtt_props *mp = (struct mqtt_props *)(uintptr_t)p;

	switch (kind) {
	case T_BYTE: *d++ = *byte_slot(mp, id); return d;
	case T_U16: return put_u16(d, *u16_slot(mp, id));
	case T_U32: return put_u32(d, *u32_slot(mp, id));
	case T_VARINT:
		for (uint32_t i = 0; i < p->subid_count; i++) {
			if (i)
				*d++ = MQTT_PROP_SUBSCRIPTION_ID;
			d = put_varint(d, p->subids[i]);
		}
		return d;
	default: {
		const struct mqtt_str *s = str_slot(mp, id);

		return put_str(d, s->ptr, s->len);
	}
	}
}

uint8_t *mqtt_props_put(uint8_t *d, const struct mqtt_props *p, uint32_t len)
{
	uint64_t bits = p->present & ~MQTT_HAS(MQTT_PROP_USER);

	d = put_varint(d, len);
	if (p->subid_count == 0)
		bits &= ~MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
	while (bits) {
		unsigned id = (unsigned)__builtin_ctzll(bits);

		bits &= bits - 1;
		*d++ = (uint8_t)id;
		d = put_value(d, p, (uint8_t)id, prop_table[id].kind);
	}
	if (p->user.len) {
		memcpy(d, p->user.ptr, p->user.len);
		d += p->user.len;
	}
	return d;
}

/* ------------------------------------------------------- user properties */

/* Walk the raw block (validated when it was decoded, but every read is still
 * bounded) and measure the user properties, copying them when @dst. */
static uint32_t user_walk(const struct mqtt_props *p, uint8_t *dst)
{
	struct rd r;
	uint32_t n = 0;

	if (p->raw == NULL || p->user_count == 0)
		return 0;
	r.p = p->raw;
	r.end = p->raw + p->raw_len;
	while (r.p < r.end) {
		struct mqtt_str a, b;
		uint32_t id, v;
		uint8_t kind;

		if (rd_varint(&r, &id) < 0 || id > PROP_ID_MAX)
			break;
		kind = prop_table[id].kind;
		if (kind == T_PAIR) {
			if (rd_str(&r, &a) < 0 || rd_str(&r, &b) < 0)
				break;
			/* Re-encode the identifier as one byte: the raw one
			 * may have been a non-minimal varint. */
			if (dst) {
				uint8_t *q = dst + n;

				*q++ = MQTT_PROP_USER;
				q = put_str(q, a.ptr, a.len);
				put_str(q, b.ptr, b.len);
			}
			n += 5 + a.len + b.len;
			continue;
		}
		if ((kind == T_BYTE && rd_left(&r) < 1) || (kind == T_U16 && rd_left(&r) < 2) ||
		    (kind == T_U32 && rd_left(&r) < 4) || kind == T_NONE)
			break;
		if (kind == T_BYTE || kind == T_U16 || kind == T_U32)
			r.p += kind == T_BYTE ? 1 : kind == T_U16 ? 2 : 4;
		else if (kind == T_VARINT ? rd_varint(&r, &v) < 0 : rd_str(&r, &a) < 0)
			break;
	}
	return n;
}

uint32_t mqtt_props_user_len(const struct mqtt_props *p)
{
	return user_walk(p, NULL);
}

uint32_t mqtt_props_user_copy(const struct mqtt_props *p, uint8_t *dst)
{
	return user_walk(p, dst);
}
