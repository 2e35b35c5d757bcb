/*
 * encode.c - encoders for all fifteen packet types, MQTT 3.1 to 5.
 *
 * Two passes over the packet struct: plan() computes the Remaining Length
 * (and the property block lengths, kept so they are not computed twice),
 * then the writer fills the caller's buffer front to back.  The buffer is
 * checked once against the planned size, so the writers do no bounds
 * checks; RMQ_ASSERT confirms the plan and the bytes written agree.
 *
 * The encoder is faithful rather than strict: it writes what it is given
 * when the wire can express it (an empty topic, packet identifier 0, QoS 3
 * in a PUBLISH) so a test client can produce bad packets on purpose, and
 * refuses with -EINVAL only what cannot be written: a string over 65,535
 * bytes, a Remaining Length over 268,435,455, a property that is not valid
 * for the packet, AUTH before MQTT 5, a protocol level other than 3..5.
 * Fixed-header flags come from the packet fields (PUBLISH) or are the
 * required constants; mqtt_packet.flags is ignored.
 *
 * MQTT 5 acks, DISCONNECT and AUTH use the short forms whenever they may:
 * no reason code and no properties when the reason is 0 and there are no
 * properties, no Property Length when only the reason is needed
 * [MQTT-3.4.2-1], sections 3.14.2.1 and 3.15.2.1.
 */
#include "codec_internal.h"

#include "ringmq/log.h"

struct plan {
	uint64_t body; /* Remaining Length */
	uint32_t plen; /* properties (not counting their length varint) */
	uint32_t wplen; /* will properties */
	bool reason; /* v5 ack / DISCONNECT / AUTH: write the reason code */
};

unsigned mqtt_varint_len(uint32_t v)
{
	return 1u + (v >= 128u) + (v >= 16384u) + (v >= 2097152u);
}

static bool str_bad(const struct mqtt_str *s)
{
	return s->len > UINT16_MAX;
}

/* Adds the property block of a v5 packet to the plan; 3.x has none. */
static int plan_props(uint8_t version, const struct mqtt_props *p, unsigned ptype, uint32_t *len,
		      uint64_t *body)
{
	uint32_t n;

	*len = 0;
	if (version < MQTT_V5)
		return 0;
	n = mqtt_props_len(p, ptype);
	if (n == UINT32_MAX)
		return -1;
	*len = n;
	*body += mqtt_varint_len(n) + n;
	return 0;
}

static const struct mqtt_str *proto_name(uint8_t version, const struct mqtt_connect *c)
{
	static const struct mqtt_str mqisdp = {(const uint8_t *)"MQIsdp", 6};
	static const struct mqtt_str mqtt = {(const uint8_t *)"MQTT", 4};

	if (c->protocol_name.len)
		return &c->protocol_name;
	return version == MQTT_V31 ? &mqisdp : &mqtt;
}

static int plan_connect(uint8_t version, const struct mqtt_connect *c, struct plan *pl)
{
	const struct mqtt_str *name = proto_name(version, c);

	if (str_bad(name) || str_bad(&c->client_id) || c->will_qos > 3)
		return -1;
	pl->body = 2 + name->len + 4 + 2 + c->client_id.len;
	if (plan_props(version, &c->props, MQTT_CONNECT, &pl->plen, &pl->body) < 0)
		return -1;
	if (c->will) {
		if (str_bad(&c->will_topic) || str_bad(&c->will_payload))
			return -1;
		if (plan_props(version, &c->will_props, PTYPE_WILL, &pl->wplen, &pl->body) < 0)
			return -1;
		pl->body += 4 + c->will_topic.len + c->will_payload.len;
	}
	if (c->has_username) {
		if (str_bad(&c->username))
			return -1;
		pl->body += 2 + c->username.len;
	}
	if (c->has_password) {
		if (str_bad(&c->password))
			return -1;
		pl->body += 2 + c->password.len;
	}
	return 0;
}

/* Acks, DISCONNECT, AUTH in MQTT 5: the reason code and the properties may
 * be left off from the end.  @fixed is what always precedes them. */
static int plan_reason(uint8_t type, uint8_t reason, const struct mqtt_props *p, uint32_t fixed,
		       struct plan *pl)
{
	pl->plen = mqtt_props_len(p, type);
	if (pl->plen == UINT32_MAX)
		return -1;
	pl->body = fixed;
	pl->reason = reason != 0 || pl->plen != 0;
	if (pl->reason)
		pl->body += 1;
	if (pl->plen)
		pl->body += mqtt_varint_len(pl->plen) + pl->plen;
	return 0;
}

static int plan_publish(uint8_t version, const struct mqtt_publish *p, struct plan *pl)
{
	if (str_bad(&p->topic) || p->qos > 3)
		return -1;
	pl->body = 2 + (uint64_t)p->topic.len + (p->qos ? 2 : 0) + p->payload.len;
	return plan_props(version, &p->props, MQTT_PUBLISH, &pl->plen, &pl->body);
}

static int plan(uint8_t version, const struct mqtt_packet *pkt, struct plan *pl)
{
	uint8_t t = pkt->type;

	*pl = (struct plan){0};
	if (version < MQTT_V31 || version > MQTT_V5)
		return -1;
	switch (t) {
	case MQTT_CONNECT: return plan_connect(version, &pkt->connect, pl);
	case MQTT_CONNACK:
		pl->body = 2;
		return plan_props(version, &pkt->connack.props, t, &pl->plen, &pl->body);
	case MQTT_PUBLISH: return plan_publish(version, &pkt->publish, pl);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		if (version < MQTT_V5)
			return pl->body = 2, 0;
		return plan_reason(t, pkt->ack.reason, &pkt->ack.props, 2, pl);
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE:
		pl->body = 2 + (uint64_t)pkt->subscribe.list.len;
		return plan_props(version, &pkt->subscribe.props, t, &pl->plen, &pl->body);
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
		if (t == MQTT_UNSUBACK && version < MQTT_V5)
			return pl->body = 2, 0;
		pl->body = 2 + (uint64_t)pkt->suback.count;
		return plan_props(version, &pkt->suback.props, t, &pl->plen, &pl->body);
	case MQTT_PINGREQ:
	case MQTT_PINGRESP: return 0;
	case MQTT_DISCONNECT:
		if (version < MQTT_V5)
			return 0;
		return plan_reason(t, pkt->disconnect.reason, &pkt->disconnect.props, 0, pl);
	case MQTT_AUTH:
		if (version < MQTT_V5)
			return -1;
		return plan_reason(t, pkt->disconnect.reason, &pkt->disconnect.props, 0, pl);
	default: return -1;
	}
}

size_t mqtt_encoded_len(uint8_t version, const struct mqtt_packet *pkt)
{
	struct plan pl;

	if (plan(version, pkt, &pl) < 0 || pl.body > VARINT_MAX)
		return 0;
	return 1 + mqtt_varint_len((uint32_t)pl.body) + (size_t)pl.body;
}

/* ---------------------------------------------------------------- write */

static uint8_t *put_props(uint8_t version, uint8_t *d, const struct mqtt_props *p, uint32_t len)
{
	return version == MQTT_V5 ? mqtt_props_put(d, p, len) : d;
}

static uint8_t *put_connect(uint8_t version, uint8_t *d, const struct mqtt_connect *c, const struct plan *pl)
{
	const struct mqtt_str *name = proto_name(version, c);

	d = put_str(d, name->ptr, name->len);
	*d++ = version;
	*d++ = (uint8_t)((c->clean ? 0x02 : 0) | (c->will ? 0x04 : 0) | (c->will_qos & 3) << 3 |
			 (c->will_retain ? 0x20 : 0) | (c->has_password ? 0x40 : 0) |
			 (c->has_username ? 0x80 : 0));
	d = put_u16(d, c->keepalive);
	d = put_props(version, d, &c->props, pl->plen);
	d = put_str(d, c->client_id.ptr, c->client_id.len);
	if (c->will) {
		d = put_props(version, d, &c->will_props, pl->wplen);
		d = put_str(d, c->will_topic.ptr, c->will_topic.len);
		d = put_str(d, c->will_payload.ptr, c->will_payload.len);
	}
	if (c->has_username)
		d = put_str(d, c->username.ptr, c->username.len);
	if (c->has_password)
		d = put_str(d, c->password.ptr, c->password.len);
	return d;
}

static uint8_t *put_publish(uint8_t version, uint8_t *d, const struct mqtt_publish *p, const struct plan *pl)
{
	d = put_str(d, p->topic.ptr, p->topic.len);
	if (p->qos)
		d = put_u16(d, p->packet_id);
	d = put_props(version, d, &p->props, pl->plen);
	if (p->payload.len)
		memcpy(d, p->payload.ptr, p->payload.len);
	return d + p->payload.len;
}

static uint8_t *put_reason(uint8_t *d, uint8_t reason, const struct mqtt_props *p, const struct plan *pl)
{
	if (pl->reason)
		*d++ = reason;
	if (pl->plen)
		d = mqtt_props_put(d, p, pl->plen);
	return d;
}

static uint8_t *put_body(uint8_t version, uint8_t *d, const struct mqtt_packet *pkt, const struct plan *pl)
{
	switch (pkt->type) {
	case MQTT_CONNECT: return put_connect(version, d, &pkt->connect, pl);
	case MQTT_CONNACK:
		*d++ = pkt->connack.session_present && version >= MQTT_V311 ? 1 : 0;
		*d++ = pkt->connack.reason;
		return put_props(version, d, &pkt->connack.props, pl->plen);
	case MQTT_PUBLISH: return put_publish(version, d, &pkt->publish, pl);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		d = put_u16(d, pkt->ack.packet_id);
		return version == MQTT_V5 ? put_reason(d, pkt->ack.reason, &pkt->ack.props, pl) : d;
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE:
		d = put_u16(d, pkt->subscribe.packet_id);
		d = put_props(version, d, &pkt->subscribe.props, pl->plen);
		if (pkt->subscribe.list.len)
			memcpy(d, pkt->subscribe.list.ptr, pkt->subscribe.list.len);
		return d + pkt->subscribe.list.len;
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
		d = put_u16(d, pkt->suback.packet_id);
		if (pkt->type == MQTT_UNSUBACK && version < MQTT_V5)
			return d;
		d = put_props(version, d, &pkt->suback.props, pl->plen);
		if (pkt->suback.count)
			memcpy(d, pkt->suback.codes, pkt->suback.count);
		return d + pkt->suback.count;
	case MQTT_DISCONNECT:
	case MQTT_AUTH:
		if (version < MQTT_V5)
			return d;
		return put_reason(d, pkt->disconnect.reason, &pkt->disconnect.props, pl);
	default: return d; /* PINGREQ, PINGRESP */
	}
}

static uint8_t header_byte(const struct mqtt_packet *pkt)
{
	uint8_t t = pkt->type, f = 0;

	if (t == MQTT_PUBLISH)
		f = (uint8_t)((pkt->publish.dup ? 0x08 : 0) | (pkt->publish.qos & 3) << 1 |
			      (pkt->publish.retain ? 0x01 : 0));
	else if (t == MQTT_PUBREL || t == MQTT_SUBSCRIBE || t == MQTT_UNSUBSCRIBE)
		f = 0x02; /* [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1] */
	return (uint8_t)(t << 4 | f);
}

int mqtt_encode(uint8_t version, const struct mqtt_packet *pkt, uint8_t *buf, size_t cap)
{
	struct plan pl;
	uint8_t *d;
	size_t total;

	if (plan(version, pkt, &pl) < 0 || pl.body > VARINT_MAX)
		return -EINVAL;
	total = 1 + mqtt_varint_len((uint32_t)pl.body) + (size_t)pl.body;
	if (total > cap)
		return -ENOBUFS;
	buf[0] = header_byte(pkt);
	d = put_varint(buf + 1, (uint32_t)pl.body);
	d = put_body(version, d, pkt, &pl);
	RMQ_ASSERT((size_t)(d - buf) == total);
	return (int)total;
}

int mqtt_sub_encode(uint8_t version, const struct mqtt_sub *sub, bool unsubscribe, uint8_t *buf, size_t cap)
{
	size_t n = 2 + (size_t)sub->filter.len + (unsubscribe ? 0 : 1);
	uint8_t *d;

	if (version < MQTT_V31 || version > MQTT_V5 || str_bad(&sub->filter) || sub->qos > 3 ||
	    sub->retain_handling > 3)
		return -EINVAL;
	if (n > cap)
		return -ENOBUFS;
	d = put_str(buf, sub->filter.ptr, sub->filter.len);
	if (!unsubscribe) {
		*d = sub->qos;
		if (version == MQTT_V5)
			*d |= (uint8_t)((sub->no_local ? 0x04 : 0) | (sub->retain_as_published ? 0x08 : 0) |
					sub->retain_handling << 4);
	}
	return (int)n;
}
