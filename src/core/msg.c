/*
 * msg.c - building, sharing and freeing application messages.
 *
 * A message is one allocation: the header, then topic, payload, the
 * forwarded property strings and the origin client id, packed.  It is
 * never written after msg_new() returns, so any thread may read it while
 * it holds a reference.  The reference count uses relaxed increments and an
 * acq_rel decrement: the thread that drops the last reference must see
 * every other thread's reads as finished before it frees.
 */
#include "ringmq/msg.h"

#include "ringmq/log.h"

#include <stdlib.h>
#include <string.h>

static uint8_t *put(uint8_t *dst, struct mqtt_str *view, const uint8_t *src, uint32_t len)
{
	if (len)
		memcpy(dst, src, len);
	view->ptr = dst;
	view->len = len;
	return dst + len;
}

struct msg *msg_new(const struct mqtt_str *topic, const struct mqtt_str *payload, uint8_t qos,
		    bool retain, const struct mqtt_props *props, const uint8_t *origin,
		    uint32_t origin_len, uint64_t now_ms)
{
	uint64_t has = props ? props->present : 0;
	uint32_t user_len = props && props->user_count ? mqtt_props_user_len(props) : 0;
	size_t total = sizeof(struct msg) + topic->len + payload->len + origin_len + user_len;
	struct msg *m;
	uint8_t *p;

	if (has & MQTT_HAS(MQTT_PROP_CONTENT_TYPE))
		total += props->content_type.len;
	if (has & MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC))
		total += props->response_topic.len;
	if (has & MQTT_HAS(MQTT_PROP_CORRELATION_DATA))
		total += props->correlation_data.len;
	m = malloc(total);
	if (!m)
		return NULL;
	memset(m, 0, sizeof(*m));
	atomic_init(&m->refs, 1);
	m->qos = qos;
	m->retain = retain;
	p = put(m->data, &m->topic, topic->ptr, topic->len);
	p = put(p, &m->payload, payload->ptr, payload->len);
	p = put(p, &m->origin, origin, origin_len);
	if (user_len) {
		mqtt_props_user_copy(props, p);
		m->user.ptr = p;
		m->user.len = user_len;
		p += user_len;
	}
	if (has & MQTT_HAS(MQTT_PROP_CONTENT_TYPE)) {
		p = put(p, &m->content_type, props->content_type.ptr, props->content_type.len);
		m->has |= MSG_HAS_CONTENT_TYPE;
	}
	if (has & MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC)) {
		p = put(p, &m->response_topic, props->response_topic.ptr, props->response_topic.len);
		m->has |= MSG_HAS_RESPONSE_TOPIC;
	}
	if (has & MQTT_HAS(MQTT_PROP_CORRELATION_DATA)) {
		p = put(p, &m->correlation_data, props->correlation_data.ptr, props->correlation_data.len);
		m->has |= MSG_HAS_CORRELATION;
	}
	if (has & MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT)) {
		m->has_payload_format = true;
		m->payload_format = props->payload_format;
	}
	/* An interval of 0 is read as "no expiry": a message that may not
	 * live at all would be dropped before any subscriber could get it. */
	if ((has & MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY)) && props->message_expiry)
		m->expiry_at_ms = now_ms + (uint64_t)props->message_expiry * 1000u;
	(void)p;
	return m;
}

bool msg_transient(struct msg *tm, const struct mqtt_str *topic, const struct mqtt_str *payload, uint8_t qos,
		   bool retain, const struct mqtt_props *props, const uint8_t *origin, uint32_t origin_len,
		   uint64_t now_ms)
{
	uint64_t has = props ? props->present : 0;

	if (props && props->user_count)
		return false;
	memset(tm, 0, sizeof(*tm));
	tm->qos = qos;
	tm->retain = retain;
	tm->topic = *topic;
	tm->payload = *payload;
	tm->origin.ptr = origin;
	tm->origin.len = origin_len;
	if (has & MQTT_HAS(MQTT_PROP_CONTENT_TYPE)) {
		tm->content_type = props->content_type;
		tm->has |= MSG_HAS_CONTENT_TYPE;
	}
	if (has & MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC)) {
		tm->response_topic = props->response_topic;
		tm->has |= MSG_HAS_RESPONSE_TOPIC;
	}
	if (has & MQTT_HAS(MQTT_PROP_CORRELATION_DATA)) {
		tm->correlation_data = props->correlation_data;
		tm->has |= MSG_HAS_CORRELATION;
	}
	if (has & MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT)) {
		tm->has_payload_format = true;
		tm->payload_format = props->payload_format;
	}
	if ((has & MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY)) && props->message_expiry) /* 0: see msg_new */
		tm->expiry_at_ms = now_ms + (uint64_t)props->message_expiry * 1000u;
	return true;
}

/* The heap copy of any message: same fields, one allocation. */
static struct msg *msg_clone(const struct msg *tm)
{
	size_t total = sizeof(struct msg) + tm->topic.len + tm->payload.len + tm->origin.len + tm->user.len +
		       tm->content_type.len + tm->response_topic.len + tm->correlation_data.len;
	struct msg *m = malloc(total);
	uint8_t *p;

	if (!m)
		return NULL;
	*m = *tm;
	m->clone = NULL;
	atomic_init(&m->refs, 1);
	p = put(m->data, &m->topic, tm->topic.ptr, tm->topic.len);
	p = put(p, &m->payload, tm->payload.ptr, tm->payload.len);
	p = put(p, &m->origin, tm->origin.ptr, tm->origin.len);
	p = put(p, &m->user, tm->user.ptr, tm->user.len);
	p = put(p, &m->content_type, tm->content_type.ptr, tm->content_type.len);
	p = put(p, &m->response_topic, tm->response_topic.ptr, tm->response_topic.len);
	(void)put(p, &m->correlation_data, tm->correlation_data.ptr, tm->correlation_data.len);
	return m;
}

struct msg *msg_copy(const struct msg *view, uint64_t expiry_at_ms)
{
	struct msg *m = msg_clone(view);

	if (m) {
		m->expiry_at_ms = expiry_at_ms;
		m->ack_origin = 0;
		m->ack_ticket = 0;
	}
	return m;
}

struct msg *msg_keep(struct msg *m)
{
	if (atomic_load_explicit(&m->refs, memory_order_relaxed) != 0)
		return msg_ref(m);
	if (!m->clone && !(m->clone = msg_clone(m)))
		return NULL;
	return msg_ref(m->clone);
}

void msg_transient_done(struct msg *tm)
{
	tm->clone = msg_unref(tm->clone);
}

struct msg *msg_unref(struct msg *m)
{
	uint32_t old;

	if (!m)
		return NULL;
	old = atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel);
	RMQ_ASSERT(old != 0); /* a transient message is never unreferenced */
	if (old == 1)
		free(m);
	return NULL;
}

void msg_props(const struct msg *m, uint64_t now_ms, struct mqtt_props *p)
{
	/* The encoder reads only fields whose bit is present, plus subid_count
	 * and user; clearing the whole struct (~300 bytes) per delivery showed
	 * in profiles. */
	p->present = 0;
	p->subid_count = 0;
	p->user_count = 0;
	p->user.ptr = NULL;
	p->user.len = 0;
	if (m->has_payload_format) {
		p->present |= MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT);
		p->payload_format = m->payload_format;
	}
	if (m->expiry_at_ms) {
		uint64_t left = m->expiry_at_ms > now_ms ? m->expiry_at_ms - now_ms : 0;
		p->present |= MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY);
		/* Rounded up, and at least 1: an inflight message resent after its
		 * expiry must still be delivered [MQTT-3.3.2-5], and 0 would read
		 * as "already expired". */
		p->message_expiry = left ? (uint32_t)((left + 999) / 1000) : 1;
	}
	if (m->has & MSG_HAS_CONTENT_TYPE) {
		p->present |= MQTT_HAS(MQTT_PROP_CONTENT_TYPE);
		p->content_type = m->content_type;
	}
	if (m->has & MSG_HAS_RESPONSE_TOPIC) {
		p->present |= MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC);
		p->response_topic = m->response_topic;
	}
	if (m->has & MSG_HAS_CORRELATION) {
		p->present |= MQTT_HAS(MQTT_PROP_CORRELATION_DATA);
		p->correlation_data = m->correlation_data;
	}
	if (m->user.len) {
		p->present |= MQTT_HAS(MQTT_PROP_USER);
		p->user = m->user;
	}
}

uint32_t msg_size(const struct msg *m)
{
	return (uint32_t)sizeof(*m) + m->topic.len + m->payload.len + m->user.len;
}
