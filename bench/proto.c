/*
 * proto.c - the MQTT client side of a load-generator connection.
 *
 * Everything here runs on the connection's worker thread and only appends
 * to the connection's send buffer or reads its receive buffer; worker.c
 * does the I/O.  Packets go through the ringmq codec (mqtt_encode,
 * mqtt_frame_cut, mqtt_decode), so the harness exercises the same
 * encoder and decoder the broker uses, but with one exception on the hot
 * path: a publisher encodes its PUBLISH once (the template) and then
 * copies it per message, patching only the packet id and the stamp.
 *
 * Accounting on delivery: a subscriber tracks, per publisher it should
 * hear from, the next sequence number it expects.  seq == next is in
 * order; seq > next skips (counted as gaps: lost unless it arrives later);
 * seq < next is a duplicate or a late arrival (counted as dups: either
 * way the ordering promise was broken).  Shared-subscription members see
 * only part of each publisher's sequence, so for them a gap is normal and
 * loss is computed over the whole group at the end (report.c).
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringmq/mqtt.h"

/* Receive Maximum a subscriber announces (MQTT 5): as many unacked QoS 1/2
 * deliveries as the protocol allows, so the broker's own window decides. */
#define SUB_RECEIVE_MAX 65535u
/* Session expiry of persistent_subscribers (v5): outlives the run, not the day. */
#define PERSISTENT_SESSION_EXPIRY_S 3600u

int buf_reserve(struct buf *b, uint32_t n)
{
	uint64_t want = b->cap ? b->cap : 256;
	uint8_t *p;

	if ((uint64_t)b->len + n <= b->cap)
		return 0;
	while (want < (uint64_t)b->len + n)
		want *= 2;
	if (want > CONN_BUF_MAX)
		return -ENOBUFS;
	p = realloc(b->data, want);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = (uint32_t)want;
	return 0;
}

static uint8_t conn_version(const struct conn *c)
{
	return c->w->run->cfg.version;
}

/* Appends @pkt to the buffer being filled. */
static int put(struct conn *c, const struct mqtt_packet *pkt)
{
	struct buf *b = &c->out[c->out_cur];
	size_t n = mqtt_encoded_len(conn_version(c), pkt);
	int r;

	if (n == 0 || n > CONN_BUF_MAX)
		return -EINVAL;
	if ((r = buf_reserve(b, (uint32_t)n)) < 0)
		return r;
	r = mqtt_encode(conn_version(c), pkt, b->data + b->len, b->cap - b->len);
	if (r < 0)
		return r;
	b->len += (uint32_t)r;
	return 0;
}

static int put_ack(struct conn *c, uint8_t type, uint16_t packet_id)
{
	struct mqtt_packet pkt = {.type = type};

	pkt.ack.packet_id = packet_id;
	return put(c, &pkt);
}

/* Topic a publisher sends to, and the filter a subscriber asks for. */
static int pub_topic(const struct run *run, uint32_t id, char *dst, size_t cap)
{
	const struct scenario *cfg = &run->cfg;
	const char *pre = cfg->topic_prefix;

	switch (cfg->layout) {
	case LAYOUT_PAIRS: return snprintf(dst, cap, "%s/p/%u", pre, id);
	case LAYOUT_FANIN: return snprintf(dst, cap, "%s/in", pre);
	case LAYOUT_FANOUT: return snprintf(dst, cap, "%s/out", pre);
	case LAYOUT_WILDCARD: return snprintf(dst, cap, "%s/w/%u", pre, id);
	case LAYOUT_SHARED: return snprintf(dst, cap, "%s/s", pre);
	default: return -EINVAL;
	}
}

static int sub_filter(const struct run *run, uint32_t id, char *dst, size_t cap)
{
	const struct scenario *cfg = &run->cfg;

	switch (cfg->layout) {
	case LAYOUT_WILDCARD: return snprintf(dst, cap, "%s/w/+", cfg->topic_prefix);
	case LAYOUT_SHARED: return snprintf(dst, cap, "$share/%s/%s/s", cfg->share_group, cfg->topic_prefix);
	default: return pub_topic(run, id, dst, cap);
	}
}

int proto_pub_init(const struct run *run, struct pub *p)
{
	struct mqtt_packet pkt = {.type = MQTT_PUBLISH};
	char topic[TOPIC_BYTES_MAX];
	uint8_t *zeros = NULL;
	uint8_t reason;
	size_t n;
	int tl = pub_topic(run, p->id, topic, sizeof(topic));
	int r = -ENOMEM;

	if (tl < 0 || (size_t)tl >= sizeof(topic))
		return -EINVAL;
	pkt.publish.qos = run->cfg.qos;
	pkt.publish.packet_id = run->cfg.qos ? 1 : 0;
	pkt.publish.topic = (struct mqtt_str){(const uint8_t *)topic, (uint32_t)tl};
	zeros = calloc(1, run->cfg.payload);
	if (!zeros)
		goto fail;
	pkt.publish.payload = (struct mqtt_str){zeros, run->cfg.payload};
	n = mqtt_encoded_len(run->cfg.version, &pkt);
	r = -EINVAL;
	if (n == 0)
		goto fail;
	r = -ENOMEM;
	if (!(p->tmpl = malloc(n)))
		goto fail;
	r = mqtt_encode(run->cfg.version, &pkt, p->tmpl, n);
	if (r < 0)
		goto fail;
	p->tmpl_len = (uint32_t)r;
	/* Read the template back: the packet id follows the topic, the
	 * payload ends the packet. */
	r = mqtt_decode(run->cfg.version, p->tmpl, p->tmpl_len, &pkt, &reason);
	if (r != (int)p->tmpl_len || pkt.publish.payload.len != run->cfg.payload) {
		r = -EINVAL;
		goto fail;
	}
	p->pid_off = (uint32_t)(pkt.publish.topic.ptr - p->tmpl) + pkt.publish.topic.len;
	p->stamp_off = p->tmpl_len - run->cfg.payload;
	r = 0;
fail:
	free(zeros);
	return r;
}

int proto_connect(struct conn *c)
{
	struct mqtt_packet pkt = {.type = MQTT_CONNECT};
	char id[CLIENT_ID_BYTES_MAX];
	static const char roles[] = {
		[ROLE_PUB] = 'p', [ROLE_SUB] = 's', [ROLE_IDLE] = 'i', [ROLE_HANDSHAKE] = 'c'};
	int n;

	if (c->role == ROLE_HANDSHAKE)
		n = snprintf(id, sizeof(id), "rb%llu-c%u-%u", (unsigned long long)c->w->run->run_tag,
			     c->w->idx, c->id);
	else
		n = snprintf(id, sizeof(id), "rb%llu-%c%u", (unsigned long long)c->w->run->run_tag,
			     roles[c->role], c->id);
	pkt.connect.version = conn_version(c);
	pkt.connect.clean = !(c->role == ROLE_SUB && c->w->run->cfg.persistent_subs && pkt.connect.version != MQTT_V5);
	pkt.connect.keepalive = c->w->run->cfg.keepalive_s;
	pkt.connect.client_id = (struct mqtt_str){(const uint8_t *)id, (uint32_t)n};
	if (pkt.connect.version == MQTT_V5 && c->role == ROLE_SUB) {
		pkt.connect.props.present = MQTT_HAS(MQTT_PROP_RECEIVE_MAX);
		pkt.connect.props.receive_max = SUB_RECEIVE_MAX;
		if (c->w->run->cfg.persistent_subs) {
			pkt.connect.props.present |= MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
			pkt.connect.props.session_expiry = PERSISTENT_SESSION_EXPIRY_S;
		}
	}
	return put(c, &pkt);
}

int proto_subscribe(struct conn *c)
{
	struct mqtt_packet pkt = {.type = MQTT_SUBSCRIBE};
	char filter[TOPIC_BYTES_MAX];
	uint8_t list[TOPIC_BYTES_MAX + 3];
	struct mqtt_sub s = {0};
	int fl = sub_filter(c->w->run, c->id, filter, sizeof(filter));
	int n;

	if (fl < 0 || (size_t)fl >= sizeof(filter))
		return -EINVAL;
	s.filter = (struct mqtt_str){(const uint8_t *)filter, (uint32_t)fl};
	s.qos = (uint8_t)c->w->run->cfg.sub_qos;
	n = mqtt_sub_encode(conn_version(c), &s, false, list, sizeof(list));
	if (n < 0)
		return n;
	pkt.subscribe.packet_id = 1;
	pkt.subscribe.list = (struct mqtt_str){list, (uint32_t)n};
	pkt.subscribe.count = 1;
	return put(c, &pkt);
}

int proto_disconnect(struct conn *c)
{
	struct mqtt_packet pkt = {.type = MQTT_DISCONNECT};

	return put(c, &pkt);
}

int proto_pingreq(struct conn *c)
{
	struct mqtt_packet pkt = {.type = MQTT_PINGREQ};

	return put(c, &pkt);
}

uint32_t proto_pub_fill(struct pub *p, uint32_t n)
{
	struct conn *c = p->c;
	struct buf *b = &c->out[c->out_cur];
	uint8_t stamp[STAMP_BYTES];
	uint32_t magic = STAMP_MAGIC;
	uint64_t t = now_ns();
	uint32_t done = 0;

	if (buf_reserve(b, n * p->tmpl_len) < 0)
		return 0;
	memcpy(stamp, &t, 8);
	memcpy(stamp + 8, &p->id, 4);
	memcpy(stamp + 12, &magic, 4);
	for (; done < n; done++) {
		uint8_t *dst = b->data + b->len;

		memcpy(dst, p->tmpl, p->tmpl_len);
		if (p->slot_state) {
			uint32_t slot = (uint32_t)(p->seq & p->slot_mask);

			if (p->slot_state[slot] != 0)
				break; /* that packet id is still unacknowledged */
			p->slot_state[slot] = 1;
			p->unacked++;
			dst[p->pid_off] = (uint8_t)((slot + 1) >> 8);
			dst[p->pid_off + 1] = (uint8_t)(slot + 1);
		}
		memcpy(stamp + 16, &p->seq, 8);
		memcpy(dst + p->stamp_off, stamp, STAMP_BYTES);
		b->len += p->tmpl_len;
		p->seq++;
	}
	return done;
}

/* ------------------------------------------------------------------------
 * Input
 * ---------------------------------------------------------------------- */

static void track(struct sub *s, uint32_t pub_id, uint64_t seq, bool shared)
{
	uint64_t *next;

	if (pub_id < s->base || pub_id - s->base >= s->count) {
		s->foreign++;
		return;
	}
	next = &s->next[pub_id - s->base];
	if (seq == *next) {
		(*next)++;
	} else if (seq > *next) {
		if (!shared)
			s->gaps += seq - *next;
		*next = seq + 1;
	} else {
		s->dups++;
	}
}

static int on_publish(struct conn *c, const struct mqtt_publish *m)
{
	struct worker *w = c->w;
	const struct scenario *cfg = &w->run->cfg;
	struct sub *s = c->sub;
	uint64_t ts, seq;
	uint32_t pub_id, magic;

	if (m->qos > cfg->qos || m->qos > cfg->sub_qos) {
		worker_fail(w, "subscriber %u got QoS %u, above the publish / subscription QoS", s->id,
			    m->qos);
		return -EPROTO;
	}
	s->recv++;
	w->recv++;
	w->recv_bytes += m->payload.len;
	if (m->payload.len >= STAMP_BYTES) {
		memcpy(&ts, m->payload.ptr, 8);
		memcpy(&pub_id, m->payload.ptr + 8, 4);
		memcpy(&magic, m->payload.ptr + 12, 4);
		memcpy(&seq, m->payload.ptr + 16, 8);
	} else {
		magic = 0;
	}
	if (magic != STAMP_MAGIC || pub_id >= w->run->npubs) {
		s->foreign++;
	} else {
		if (w->phase == PHASE_MEASURE && w->now > ts) {
			hist_record(w->lat, w->now - ts);
			w->lat_sum += w->now - ts;
			w->lat_n++;
			if (w->now - ts > atomic_load_explicit(&w->st.lat_max, memory_order_relaxed))
				atomic_store_explicit(&w->st.lat_max, w->now - ts, memory_order_relaxed);
		}
		track(s, pub_id, seq, cfg->layout == LAYOUT_SHARED);
		credit_add(w, pub_id);
	}
	if (m->qos == 1)
		return put_ack(c, MQTT_PUBACK, m->packet_id);
	if (m->qos == 2)
		return put_ack(c, MQTT_PUBREC, m->packet_id);
	return 0;
}

/* PUBACK, PUBREC, PUBCOMP at a publisher: free the packet id. */
static int on_ack(struct conn *c, uint8_t type, const struct mqtt_ack *a)
{
	struct pub *p = c->pub;
	uint32_t slot = (uint32_t)a->packet_id - 1;
	uint8_t want = type == MQTT_PUBCOMP ? 2 : 1;
	uint8_t qos = c->w->run->cfg.qos;

	if (!p || !p->slot_state || slot > p->slot_mask || p->slot_state[slot] != want ||
	    (type == MQTT_PUBACK) != (qos == 1)) {
		worker_fail(c->w, "publisher %u: unexpected %s for packet id %u", c->id, mqtt_type_name(type),
			    a->packet_id);
		return -EPROTO;
	}
	if (a->reason >= 0x80) {
		worker_fail(c->w, "publisher %u: %s with reason 0x%02x", c->id, mqtt_type_name(type),
			    a->reason);
		return -EPROTO;
	}
	if (type == MQTT_PUBREC) {
		p->slot_state[slot] = 2;
		return put_ack(c, MQTT_PUBREL, a->packet_id);
	}
	p->slot_state[slot] = 0;
	p->unacked--;
	p->acked++;
	c->w->acked++;
	pub_wake(p);
	return 0;
}

static int on_connack(struct conn *c, const struct mqtt_connack *ca)
{
	if (c->state != CS_CONNACK || ca->reason != 0) {
		worker_fail(c->w, "client %u: CONNACK with reason 0x%02x", c->id, ca->reason);
		return -EPROTO;
	}
	/* The broker's Receive Maximum bounds our QoS 1/2 window [MQTT-3.3.4-7]. */
	if (c->pub && (ca->props.present & MQTT_HAS(MQTT_PROP_RECEIVE_MAX)) &&
	    ca->props.receive_max < c->pub->window)
		c->pub->window = ca->props.receive_max;
	if (c->role == ROLE_HANDSHAKE) {
		handshake_done(c);
		return 0;
	}
	if (c->role == ROLE_SUB) {
		c->state = CS_SUBACK;
		return proto_subscribe(c);
	}
	conn_ready(c);
	return 0;
}

static int on_suback(struct conn *c, const struct mqtt_suback *sa)
{
	if (c->state != CS_SUBACK || sa->count != 1) {
		worker_fail(c->w, "client %u: unexpected SUBACK", c->id);
		return -EPROTO;
	}
	if (sa->codes[0] >= 0x80) {
		worker_fail(c->w, "subscriber %u: SUBACK refused the subscription with 0x%02x%s", c->id,
			    sa->codes[0],
			    sa->codes[0] == MQTT_RC_SHARED_SUB_NOT_SUPPORTED
				    ? " (shared subscriptions not supported)"
			    : sa->codes[0] == MQTT_RC_WILDCARD_SUB_NOT_SUPPORTED
				    ? " (wildcards not supported)"
				    : "");
		return -EPROTO;
	}
	conn_ready(c);
	return 0;
}

static int dispatch(struct conn *c, const struct mqtt_packet *pkt)
{
	switch (pkt->type) {
	case MQTT_CONNACK: return on_connack(c, &pkt->connack);
	case MQTT_SUBACK: return on_suback(c, &pkt->suback);
	case MQTT_PUBLISH:
		if (c->sub && c->state == CS_READY)
			return on_publish(c, &pkt->publish);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBCOMP: return on_ack(c, pkt->type, &pkt->ack);
	case MQTT_PUBREL:
		if (c->sub)
			return put_ack(c, MQTT_PUBCOMP, pkt->ack.packet_id);
		break;
	case MQTT_PINGRESP: return 0;
	case MQTT_DISCONNECT:
		worker_fail(c->w, "client %u: the broker sent DISCONNECT with reason 0x%02x", c->id,
			    pkt->disconnect.reason);
		return -EPROTO;
	default: break;
	}
	worker_fail(c->w, "client %u: unexpected %s", c->id, mqtt_type_name(pkt->type));
	return -EPROTO;
}

/* The subscriber's hot path: PUBLISH without the full decode (which clears
 * a whole property struct and re-validates the topic per message).  Only
 * what the accounting needs is read; anything odd falls back to
 * mqtt_decode(), which then reports it precisely.  Returns 1 when done. */
static int fast_publish(struct conn *c, const uint8_t *p, const struct mqtt_frame *f, int *ret)
{
	const uint8_t *b = p + f->header_len;
	const uint8_t *end = b + f->body_len;
	struct mqtt_publish m = {.qos = (uint8_t)((f->flags >> 1) & 3)};
	uint32_t tl;

	if (f->type != MQTT_PUBLISH || !c->sub || c->state != CS_READY || m.qos == 3 || f->body_len < 2)
		return 0;
	tl = (uint32_t)b[0] << 8 | b[1];
	b += 2 + tl;
	if (tl == 0 || b + (m.qos ? 2 : 0) > end)
		return 0;
	if (m.qos) {
		m.packet_id = (uint16_t)(b[0] << 8 | b[1]);
		b += 2;
		if (m.packet_id == 0)
			return 0;
	}
	if (conn_version(c) == MQTT_V5) {
		/* Property Length: a one-byte varint of 0 is all the bench expects. */
		if (b >= end || *b != 0)
			return 0;
		b++;
	}
	m.payload = (struct mqtt_str){b, (uint32_t)(end - b)};
	*ret = on_publish(c, &m);
	return 1;
}

int proto_input(struct conn *c)
{
	struct buf *in = &c->in;
	uint32_t off = 0;
	int r = 0;

	while (off < in->len) {
		struct mqtt_frame f;
		struct mqtt_packet pkt;
		uint8_t reason = 0;
		int n = mqtt_frame_cut(in->data + off, in->len - off, CONN_BUF_MAX, &f, &reason);

		if (n == 0)
			break;
		if (n > 0 && fast_publish(c, in->data + off, &f, &r)) {
			if (r < 0)
				return r;
			off += (uint32_t)n;
			continue;
		}
		if (n > 0)
			n = mqtt_decode(conn_version(c), in->data + off, (size_t)n, &pkt, &reason);
		if (n < 0) {
			worker_fail(c->w, "client %u: malformed packet from the broker (%s, reason 0x%02x)",
				    c->id, mqtt_type_name(in->data[off] >> 4), reason);
			return n;
		}
		if ((r = dispatch(c, &pkt)) < 0)
			return r;
		off += (uint32_t)n;
	}
	if (off > 0) {
		memmove(in->data, in->data + off, in->len - off);
		in->len -= off;
	}
	return 0;
}
