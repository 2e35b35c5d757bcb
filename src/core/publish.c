/*
 * publish.c - PUBLISH in both directions and the QoS flows.
 *
 * Inbound: validate what depends on configuration or state (topic limits,
 * aliases, QoS and retain availability, receive maximum), build one
 * immutable message, store it if retained, route it, then acknowledge.
 * QoS 2 keeps the packet id until PUBREL so a resent PUBLISH is
 * acknowledged again but not delivered twice [MQTT-4.3.3-?, method B of
 * 4.3.3: store the id, deliver on the first PUBLISH].
 *
 * Routing: the route index gives the set of shards with a matching
 * subscriber; every other shard gets one reference to the message on its
 * ring, this shard matches its own trie directly.  Local matching folds
 * overlapping subscriptions of one session into one delivery with the
 * highest QoS and every subscription identifier [MQTT-3.3.4-2/3].
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <urcu-qsbr.h>

#include "ringmq/acl.h"
#include "ringmq/conn.h"
#include "ringmq/log.h"
#include "ringmq/msg.h"
#include "ringmq/persist.h"
#include "ringmq/proto.h"
#include "ringmq/retain.h"
#include "ringmq/route.h"
#include "ringmq/sess.h"
#include "ringmq/shard.h"
#include "ringmq/share.h"
#include "ringmq/topic.h"
#include "ringmq/trie.h"

#define SUB_OPT_QOS 0x03
#define SUB_OPT_NO_LOCAL 0x04
#define SUB_OPT_RAP 0x08

struct match_ctx {
	struct shard *s;
	struct msg *m;
	struct sess *head;
	uint64_t gen;
};

static void match_one(void *ctx, const struct trie_entry *e)
{
	struct match_ctx *mc = ctx;
	struct sess *se = e->owner;

	if ((e->options & SUB_OPT_NO_LOCAL) && se->id_len == mc->m->origin.len &&
	    memcmp(se->client_id, mc->m->origin.ptr, se->id_len) == 0)
		return; /* [MQTT-3.8.3-3] no local */
	if (se->match_gen != mc->gen) {
		se->match_gen = mc->gen;
		se->match_qos = 0;
		se->match_retain = false;
		se->match_nsubids = 0;
		se->match_next = mc->head;
		mc->head = se;
	}
	if ((e->options & SUB_OPT_QOS) > se->match_qos)
		se->match_qos = e->options & SUB_OPT_QOS;
	if ((e->options & SUB_OPT_RAP) && mc->m->retain)
		se->match_retain = true; /* [MQTT-3.3.1-13] retain as published */
	if (e->sub_id && se->match_nsubids < sizeof(se->match_subids) / sizeof(se->match_subids[0]))
		se->match_subids[se->match_nsubids++] = e->sub_id;
}

void publish_local(struct shard *s, struct msg *m)
{
	struct match_ctx mc = {.s = s, .m = m, .gen = ++s->match_gen};

	trie_match(s->trie, m->topic.ptr, m->topic.len, match_one, &mc);
	s->enc.on = mc.head && mc.head->match_next; /* worth it from two subscribers */
	s->enc.m = NULL;
	while (mc.head) {
		struct sess *se = mc.head;
		mc.head = se->match_next;
		uint8_t qos = se->match_qos < m->qos ? se->match_qos : m->qos; /* [MQTT-3.8.4-6] */
		sess_deliver(s, se, m, qos, se->match_retain, se->match_subids, se->match_nsubids, 0);
	}
	s->enc.on = false;
}

void publish_route(struct shard *s, struct msg *m)
{
	struct route_mask mask = {0};
	bool local = false;

	if (s->b->nshards == 1) {
		/* One shard: the route index can only say "this shard", which the
		 * trie match finds out anyway. */
		publish_local(s, m);
		share_route(s, m);
		return;
	}
	route_match(s->b->route, m->topic.ptr, m->topic.len, &mask);
	for (unsigned w = 0; w < ROUTE_MASK_WORDS; w++) {
		uint64_t bits = mask.w[w];
		while (bits) {
			unsigned t = w * 64 + (unsigned)__builtin_ctzll(bits);
			bits &= bits - 1;
			if (t == s->id) {
				local = true;
				continue;
			}
			bool ack = persist_ack_carries(s, m);
			struct spsc_item it = {.op = SHARD_OP_PUBLISH | (ack ? SHARD_OP_F_ACK : 0), .ptr = msg_keep(m)};
			if (it.ptr && shard_send(s, t, &it) == 0) {
				if (ack)
					persist_ack_sent(s);
			} else {
				unsigned cause = it.ptr ? SHARD_DROP_BACKLOG_FULL : SHARD_DROP_NO_MEMORY;
				stat_add(&s->stats.drops[cause], 1);
				msg_unref(it.ptr);
				stat_add(&s->stats.dropped, 1);
			}
		}
	}
	if (local)
		publish_local(s, m);
	share_route(s, m);
}

void publish_send_ack(struct shard *s, struct conn *c, uint8_t type, uint16_t pid, uint8_t reason)
{
	struct mqtt_packet pkt = {.type = type};
	uint8_t *out;

	if (c->version != MQTT_V5 || reason == 0) {
		/* The 4-byte form every version shares [MQTT-3.4.2-1]: one per QoS 1/2
		 * message, so it skips the generic encoder. */
		out = conn_out(s, c, 4);
		if (!out)
			return; /* the connection is closing */
		out[0] = (uint8_t)(type << 4 | (type == MQTT_PUBREL ? 0x02 : 0));
		out[1] = 2;
		out[2] = (uint8_t)(pid >> 8);
		out[3] = (uint8_t)pid;
		conn_out_commit(s, c, 4);
		return;
	}
	pkt.ack.packet_id = pid;
	pkt.ack.reason = c->version == MQTT_V5 ? reason : 0;
	(void)conn_send_packet(s, c, &pkt); /* failure closes the connection */
}

static bool qos2_test(const struct sess *se, uint16_t pid)
{
	return se->qos2_in && (se->qos2_in[pid >> 6] >> (pid & 63) & 1);
}

static int qos2_set(struct sess *se, uint16_t pid, bool on)
{
	if (on)
		return sess_qos2_mark(se, pid);
	if (se->qos2_in)
		se->qos2_in[pid >> 6] &= ~(UINT64_C(1) << (pid & 63));
	return 0;
}

/* Resolve the topic of an inbound PUBLISH, applying Topic Alias (v5).
 * Returns 0, or the reason code to disconnect with. */
static uint8_t resolve_topic(struct conn *c, const struct mqtt_publish *p, uint32_t alias_max,
			     struct mqtt_str *ret_topic)
{
	uint16_t a;

	if (c->version != MQTT_V5 || !(p->props.present & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS))) {
		*ret_topic = p->topic;
		return p->topic.len ? 0 : MQTT_RC_PROTOCOL_ERROR;
	}
	a = p->props.topic_alias;
	if (a == 0 || a > alias_max)
		return MQTT_RC_TOPIC_ALIAS_INVALID; /* [MQTT-3.3.2-9/10] */
	if (!c->aliases) {
		c->aliases = calloc(alias_max, sizeof(*c->aliases));
		if (!c->aliases)
			return MQTT_RC_SERVER_BUSY;
		c->alias_count = (uint16_t)alias_max;
	}
	if (p->topic.len == 0) {
		if (!c->aliases[a - 1].len)
			return MQTT_RC_PROTOCOL_ERROR; /* alias never set */
		*ret_topic = c->aliases[a - 1];
		return 0;
	}
	uint8_t *copy = malloc(p->topic.len);
	if (!copy)
		return MQTT_RC_SERVER_BUSY;
	memcpy(copy, p->topic.ptr, p->topic.len);
	free((void *)c->aliases[a - 1].ptr);
	c->aliases[a - 1].ptr = copy;
	c->aliases[a - 1].len = p->topic.len;
	*ret_topic = p->topic;
	return 0;
}

/* Checks that need configuration.  Returns 0 or a reason to disconnect with. */
static uint8_t publish_check(struct shard *s, struct conn *c, const struct mqtt_publish *p,
			     const struct mqtt_str *topic)
{
	const struct config *cfg = s->b->cfg;
	int r;

	if (topic->len > cfg->max_topic_length)
		return MQTT_RC_TOPIC_NAME_INVALID;
	/* The codec refused wildcards and empty names; only the level count is
	 * left, and a name shorter than the limit cannot have more levels. */
	if (topic->len >= cfg->max_topic_levels) {
		r = topic_name_check(topic->ptr, topic->len, cfg->max_topic_levels);
		if (r < 0)
			return MQTT_RC_TOPIC_NAME_INVALID;
	}
	if (p->qos > cfg->max_qos)
		return MQTT_RC_QOS_NOT_SUPPORTED; /* [MQTT-3.2.2-11] */
	if (p->retain && !cfg->retain_available)
		return MQTT_RC_RETAIN_NOT_SUPPORTED; /* [MQTT-3.2.2-14] */
	if (p->qos == 2 && !qos2_test(c->sess, p->packet_id) && c->qos2_in_count >= cfg->max_receive_inflight &&
	    c->version == MQTT_V5)
		return MQTT_RC_RECEIVE_MAX_EXCEEDED; /* [MQTT-3.3.4-9] */
	return 0;
}

/* Refused PUBLISHes are logged once per connection: a client can send them
 * faster than a log can take them (the drop counters keep the rest). */
static bool first_refusal(struct conn *c)
{
	bool first = !c->refusal_logged;
	c->refusal_logged = true;
	return first;
}

/* Acknowledge a PUBLISH that made no records (refused, or a resent QoS 2):
 * with durability sync it still waits for the acknowledgements before it. */
static void ack_publish(struct shard *s, struct conn *c, const struct mqtt_publish *p, uint8_t reason)
{
	uint8_t type = p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC;

	if (p->qos == 0)
		return;
	if (persist_gating(s))
		persist_ack_queue(s, c, type, p->packet_id, reason, persist_mark(s));
	else
		publish_send_ack(s, c, type, p->packet_id, reason);
}

void publish_in(struct shard *s, struct conn *c, const struct mqtt_publish *p)
{
	const struct config *cfg = s->b->cfg;
	struct sess *se = c->sess;
	const struct acl *acl;
	struct mqtt_str topic;
	struct msg tm, *m;
	uint8_t reason;
	bool gate;

	RMQ_ASSERT(c->owner_shard == s->id);
	reason = resolve_topic(c, p, cfg->max_topic_alias, &topic);
	if (!reason)
		reason = publish_check(s, c, p, &topic);
	if (reason) {
		conn_close(s, c, reason, true, "invalid PUBLISH");
		return;
	}
	if (p->qos == 2 && qos2_test(se, p->packet_id)) {
		ack_publish(s, c, p, 0); /* a resend: acknowledge, do not deliver again */
		return;
	}
	if (p->qos > 0 && persist_gating(s) && persist_failing(s)) {
		if (first_refusal(c))
			log_warn(c->client_id, "PUBLISH refused: the store cannot commit (see the store's log lines)");
		if (c->version == MQTT_V5)
			ack_publish(s, c, p, MQTT_RC_QUOTA_EXCEEDED);
		else /* MQTT 3 has no failure acknowledgement: the client sends it again later */
			conn_close(s, c, MQTT_RC_QUOTA_EXCEEDED, false, "the store cannot commit: PUBLISH refused");
		return;
	}
	if (topic.ptr[0] == '$') {
		/* '$' topics belong to the server [MQTT-4.7.2-1]; clients may not publish there. */
		if (first_refusal(c))
			log_info(c->client_id, "PUBLISH to '%.*s' refused: '$' topics are reserved", (int)topic.len,
				 (const char *)topic.ptr);
		ack_publish(s, c, p, MQTT_RC_NOT_AUTHORIZED);
		return;
	}
	acl = rcu_dereference(s->b->acl);
	if (acl && !acl_check(acl, se->username, se->client_id, topic.ptr, topic.len, ACL_WRITE)) {
		if (first_refusal(c))
			log_info(c->client_id, "PUBLISH to '%.*s' denied by acl_file", (int)topic.len,
				 (const char *)topic.ptr);
		ack_publish(s, c, p, MQTT_RC_NOT_AUTHORIZED); /* 3.x: acknowledged and dropped, as in mosquitto */
		return;
	}
	if (cfg->message_size_limit && p->payload.len > cfg->message_size_limit) {
		stat_add(&s->stats.dropped, 1);
		stat_add(&s->stats.drops[SHARD_DROP_PACKET_SIZE], 1);
		if (first_refusal(c))
			log_info(c->client_id, "PUBLISH of %u bytes dropped: over message_size_limit", p->payload.len);
		ack_publish(s, c, p, MQTT_RC_PACKET_TOO_LARGE);
		return;
	}
	if (c->version == MQTT_V5 && (p->props.present & MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT)) &&
	    p->props.payload_format == 1 && mqtt_utf8_check(p->payload.ptr, p->payload.len) < 0) {
		/* MQTT 5 section 3.3.2.3.2: payload declared UTF-8 but is not: refuse with 0x99 */
		if (first_refusal(c))
			log_info(c->client_id, "PUBLISH refused: payload format 1 but not valid UTF-8");
		ack_publish(s, c, p, MQTT_RC_PAYLOAD_FORMAT_INVALID);
		return;
	}
	/* The message is described in place; it is copied only if someone keeps it. */
	m = &tm;
	if (!msg_transient(&tm, &topic, &p->payload, p->qos, p->retain, c->version == MQTT_V5 ? &p->props : NULL,
			   (const uint8_t *)se->client_id, se->id_len, s->now_ms))
		m = msg_new(&topic, &p->payload, p->qos, p->retain, &p->props, (const uint8_t *)se->client_id,
			    se->id_len, s->now_ms);
	gate = m && p->qos > 0 && persist_gating(s);
	if (gate) {
		/* The acknowledgement waits for every record this message makes.
		 * The ticket goes on the message before anything copies it (the
		 * retained store, another shard's ring: msg_keep()). */
		persist_ack_open(s);
		m->ack_origin = s->id;
		m->ack_ticket = s->ps.ctx.ticket;
	}
	if (!m || (p->retain && retain_set(s->b->retain, m) < 0)) {
		if (m == &tm)
			msg_transient_done(&tm);
		else
			msg_unref(m);
		log_error(c->client_id, "out of memory for a PUBLISH");
		if (gate)
			persist_ack_close(s, c, p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id,
					  MQTT_RC_QUOTA_EXCEEDED, false);
		else
			ack_publish(s, c, p, MQTT_RC_QUOTA_EXCEEDED);
		return;
	}
	if (p->retain)
		persist_retain(s, m);
	publish_route(s, m);
	if (m == &tm)
		msg_transient_done(&tm);
	else
		msg_unref(m);
	if (p->qos == 2) {
		if (qos2_set(se, p->packet_id, true) == 0) {
			c->qos2_in_count++;
			persist_q2in(s, se, p->packet_id, true); /* memory and store agree on the id */
		}
	}
	if (gate)
		persist_ack_close(s, c, p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id, 0, p->qos == 2);
	else
		ack_publish(s, c, p, 0);
}

void publish_ack_in(struct shard *s, struct conn *c, uint8_t type, const struct mqtt_ack *a)
{
	struct sess *se = c->sess;
	int r;

	switch (type) {
	case MQTT_PUBACK:
	case MQTT_PUBCOMP:
		r = sess_ack(s, se, type, a->packet_id);
		if (r < 0)
			log_debug(c->client_id, "%s for unknown packet id %u", mqtt_type_name(type), a->packet_id);
		break;
	case MQTT_PUBREC:
		if (c->version == MQTT_V5 && a->reason >= 0x80) {
			sess_ack_drop(s, se, a->packet_id); /* MQTT 5 section 4.3.3: a failure ends the flow */
			break;
		}
		r = sess_ack(s, se, type, a->packet_id);
		publish_send_ack(s, c, MQTT_PUBREL, a->packet_id, r == 0 ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND);
		break;
	case MQTT_PUBREL: {
		/* PUBCOMP frees the packet id for a new message: with durability
		 * sync it waits until the store has forgotten the id too. */
		size_t mark = persist_mark(s);
		uint8_t reason = MQTT_RC_PACKET_ID_NOT_FOUND;
		if (qos2_test(se, a->packet_id)) {
			(void)qos2_set(se, a->packet_id, false); /* clearing never allocates */
			if (c->qos2_in_count)
				c->qos2_in_count--;
			persist_q2in(s, se, a->packet_id, false);
			reason = 0;
		}
		if (persist_gating(s))
			persist_ack_queue(s, c, MQTT_PUBCOMP, a->packet_id, reason, mark);
		else
			publish_send_ack(s, c, MQTT_PUBCOMP, a->packet_id, reason);
		break;
	}
	default:
		RMQ_ASSERT(!"not an acknowledgement");
	}
}
