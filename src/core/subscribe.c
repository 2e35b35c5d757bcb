/*
 * subscribe.c - SUBSCRIBE and UNSUBSCRIBE.
 *
 * A subscription is remembered three times, each owned by the session's
 * home shard except the last: in the session (to remove it when the
 * session ends), in the shard's trie (to match), and - when it is the
 * filter's first subscriber on this shard - in the shared route index.
 * Retained messages are sent after SUBACK, through the same delivery path
 * as live messages (window, queue limits), with RETAIN set [MQTT-3.3.1-8].
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <urcu-qsbr.h>

#include "ringmq/acl.h"
#include "ringmq/conn.h"
#include "ringmq/log.h"
#include "ringmq/persist.h"
#include "ringmq/msg.h"
#include "ringmq/proto.h"
#include "ringmq/retain.h"
#include "ringmq/route.h"
#include "ringmq/sess.h"
#include "ringmq/shard.h"
#include "ringmq/share.h"
#include "ringmq/topic.h"
#include "ringmq/trie.h"


/* Retained messages found for one SUBSCRIBE, sent after its SUBACK. */
struct retained_item {
	struct msg *m;
	uint8_t qos;
	uint32_t sub_id;
};

struct retained {
	struct retained_item *v;
	uint32_t n, cap;
	uint8_t qos; /* granted QoS of the filter being matched */
	const char *why; /* why the filter being handled was refused, for the log */
	uint32_t sub_id;
	bool oom;
};

static void retained_collect(void *ctx, struct msg *m)
{
	struct retained *r = ctx;
	if (r->n == r->cap) {
		uint32_t cap = r->cap ? r->cap * 2 : 16;
		struct retained_item *v = realloc(r->v, cap * sizeof(*v));
		if (!v) {
			r->oom = true; /* fewer retained messages; the caller logs it */
			return;
		}
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n].m = msg_ref(m); /* stored messages are heap messages */
	r->v[r->n].qos = m->qos < r->qos ? m->qos : r->qos;
	r->v[r->n].sub_id = r->sub_id;
	r->n++;
}

/* Validation that depends on configuration.  Returns 0 or the failure code. */
static uint8_t filter_check(const struct config *cfg, bool v5, const struct mqtt_sub *e, bool shared,
			    const uint8_t *f, size_t flen)
{
	if (e->filter.len > cfg->max_topic_length || topic_filter_check(f, flen, cfg->max_topic_levels) < 0)
		return v5 ? MQTT_RC_TOPIC_FILTER_INVALID : 0x80;
	if (shared && !cfg->shared_subscription_available)
		return v5 ? MQTT_RC_SHARED_SUB_NOT_SUPPORTED : 0x80; /* 0x9E, MQTT 5 section 3.2.2.3.13 */
	if (!cfg->wildcard_subscription_available && topic_has_wildcard(f, flen))
		return v5 ? MQTT_RC_WILDCARD_SUB_NOT_SUPPORTED : 0x80; /* 0xA2 */
	return 0;
}

/*
 * Attach filter @filter (full form, "$share/..." included; @group/@f are its
 * parts) with @options to @se: the session's list, then the trie and route
 * index or the shared group.  Returns 0, -EDQUOT (max_subscriptions_per_client)
 * or -ENOMEM; on failure nothing is left behind.  Recording it in the store
 * is the caller's (a restored subscription is there already).
 */
static int sub_attach(struct shard *s, struct sess *se, const uint8_t *filter, uint16_t len, bool shared,
		      const uint8_t *group, size_t glen, const uint8_t *f, size_t flen, uint8_t options,
		      uint32_t sub_id, bool *ret_existed)
{
	struct trie_entry te = {.owner = se, .sub_id = sub_id, .options = options};
	bool first = false, replaced = false;
	int r = sess_sub_add(se, filter, len, options, sub_id, s->b->cfg->max_subscriptions_per_client, ret_existed);

	if (r < 0)
		return r;
	if (shared) {
		r = share_join(s, group, glen, f, flen, se, options, sub_id);
	} else {
		r = trie_add(s->trie, f, flen, &te, &first, &replaced);
		if (r == 0 && first && (r = route_add(s->b->route, f, flen, s->id)) < 0) {
			bool last;
			(void)trie_del(s->trie, f, flen, se, &last); /* undo: trie and route index agree */
		}
		if (r == 0 && !replaced)
			stat_add(&s->stats.subs, 1);
	}
	if (r < 0) {
		(void)sess_sub_del(se, filter, len); /* undo; it was just added */
		return -ENOMEM;
	}
	return 0;
}

int subscribe_restore(struct shard *s, struct sess *se, const uint8_t *filter, uint16_t len, uint8_t options,
		      uint32_t sub_id)
{
	const uint8_t *group = NULL, *f = filter;
	size_t glen = 0, flen = len;
	bool existed;
	int shared = topic_share_split(filter, len, &group, &glen, &f, &flen);

	if (shared < 0 || topic_filter_check(f, flen, TOPIC_LEVELS_MAX) < 0)
		return -EINVAL;
	return sub_attach(s, se, filter, len, shared == 1, group, glen, f, flen, options, sub_id, &existed);
}

/* Subscribe one filter.  Returns the SUBACK reason / granted QoS. */
static uint8_t subscribe_one(struct shard *s, struct conn *c, const struct mqtt_sub *e, uint32_t sub_id,
			     struct retained *ret)
{
	const struct config *cfg = s->b->cfg;
	struct sess *se = c->sess;
	bool v5 = c->version == MQTT_V5, existed = false;
	uint8_t qos = e->qos < cfg->max_qos ? e->qos : cfg->max_qos;
	uint8_t options;
	const uint8_t *group = NULL, *f = e->filter.ptr;
	size_t glen = 0, flen = e->filter.len;
	const struct acl *acl;
	uint8_t fail;
	int shared, r;

	shared = topic_share_split(e->filter.ptr, e->filter.len, &group, &glen, &f, &flen);
	if (shared < 0)
		return v5 ? MQTT_RC_TOPIC_FILTER_INVALID : 0x80; /* [MQTT-4.8.2-1/2] */
	fail = filter_check(cfg, v5, e, shared == 1, f, flen);
	if (fail)
		return fail;
	acl = rcu_dereference(s->b->acl);
	if (acl && !acl_may_subscribe(acl, se->username, se->client_id, f, flen)) {
		ret->why = "denied by acl_file";
		return v5 ? MQTT_RC_NOT_AUTHORIZED : 0x80;
	}
	options = (uint8_t)(qos | (e->no_local ? 0x04 : 0) | (e->retain_as_published ? 0x08 : 0) |
			    (e->retain_handling << 4));
	r = sub_attach(s, se, e->filter.ptr, (uint16_t)e->filter.len, shared == 1, group, glen, f, flen, options,
		       sub_id, &existed);
	if (r == -EDQUOT) {
		ret->why = "max_subscriptions_per_client reached";
		return v5 ? MQTT_RC_QUOTA_EXCEEDED : 0x80;
	}
	if (r < 0)
		return v5 ? MQTT_RC_UNSPECIFIED : 0x80;
	persist_sub_put(s, se, e->filter.ptr, (uint16_t)e->filter.len, options, sub_id);
	/* [MQTT-3.3.1-9/10/11] retain handling 0: always, 1: only if new, 2: never.
	 * MQTT 5 section 4.8.2: no retained messages on a shared subscription. */
	if (shared == 0 && (e->retain_handling == 0 || (e->retain_handling == 1 && !existed))) {
		ret->qos = qos;
		ret->sub_id = sub_id;
		retain_match(s->b->retain, f, flen, retained_collect, ret);
	}
	return qos;
}

/* Protocol errors in a SUBSCRIBE that end the connection (v5). Returns 0 or a reason. */
static uint8_t subscribe_protocol_check(const struct config *cfg, const struct mqtt_subscribe *sub)
{
	struct mqtt_sub e;
	uint32_t pos = 0;

	if ((sub->props.present & MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID)) && !cfg->subscription_identifier_available)
		return MQTT_RC_SUBID_NOT_SUPPORTED; /* 0xA1, MQTT 5 section 3.2.2.3.12 */
	while (mqtt_sub_next(sub, false, &pos, &e) == 1)
		if (e.no_local && topic_share_split(e.filter.ptr, e.filter.len, NULL, NULL, NULL, NULL) == 1)
			return MQTT_RC_PROTOCOL_ERROR; /* [MQTT-3.8.3-4] no local on a shared subscription */
	return 0;
}

void subscribe_in(struct shard *s, struct conn *c, const struct mqtt_subscribe *sub)
{
	struct mqtt_str first = {0};
	const char *first_why = NULL;
	uint32_t refused = 0;
	struct mqtt_packet ack = {.type = MQTT_SUBACK};
	struct retained ret = {0};
	uint8_t codes_small[64];
	uint8_t *codes = codes_small;
	uint32_t pos = 0, n = 0, sub_id = 0;
	struct mqtt_sub e;

	RMQ_ASSERT(c->owner_shard == s->id);
	if (sub->count > sizeof(codes_small)) {
		codes = malloc(sub->count);
		if (!codes) {
			conn_close(s, c, MQTT_RC_SERVER_BUSY, true, "out of memory for SUBACK");
			return;
		}
	}
	if (c->version == MQTT_V5) {
		uint8_t reason = subscribe_protocol_check(s->b->cfg, sub);
		if (reason) {
			if (codes != codes_small)
				free(codes);
			conn_close(s, c, reason, true, "invalid SUBSCRIBE");
			return;
		}
		if (sub->props.present & MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID))
			sub_id = sub->props.subids[0];
	}
	while (mqtt_sub_next(sub, false, &pos, &e) == 1 && n < sub->count) {
		ret.why = "invalid or unavailable filter";
		codes[n] = subscribe_one(s, c, &e, sub_id, &ret);
		if (codes[n] >= 0x80 && refused++ == 0) {
			first = e.filter;
			first_why = ret.why;
		}
		n++;
	}
	if (refused) /* one line per packet, however many filters it refuses */
		log_info(c->client_id, "SUBSCRIBE: %u of %u filters refused; first '%.*s': %s", refused, n,
			 (int)(first.len > 128 ? 128 : first.len), (const char *)first.ptr, first_why);
	ack.suback.packet_id = sub->packet_id;
	ack.suback.codes = codes;
	ack.suback.count = n;
	(void)conn_send_packet(s, c, &ack); /* [MQTT-3.8.4-1]; failure closes the connection */
	if (codes != codes_small)
		free(codes);
	if (ret.oom)
		log_warn(c->client_id, "out of memory: not every retained message was sent");
	for (uint32_t i = 0; i < ret.n; i++) {
		if (c->sess)
			sess_deliver(s, c->sess, ret.v[i].m, ret.v[i].qos, true, &ret.v[i].sub_id,
				     ret.v[i].sub_id ? 1 : 0, 0);
		msg_unref(ret.v[i].m);
	}
	free(ret.v);
}

void unsubscribe_in(struct shard *s, struct conn *c, const struct mqtt_subscribe *sub)
{
	struct mqtt_packet ack = {.type = MQTT_UNSUBACK};
	struct sess *se = c->sess;
	uint8_t codes_small[64];
	uint8_t *codes = codes_small;
	uint32_t pos = 0, n = 0;
	struct mqtt_sub e;

	RMQ_ASSERT(c->owner_shard == s->id);
	if (sub->count > sizeof(codes_small)) {
		codes = malloc(sub->count);
		if (!codes) {
			conn_close(s, c, MQTT_RC_SERVER_BUSY, true, "out of memory for UNSUBACK");
			return;
		}
	}
	while (mqtt_sub_next(sub, true, &pos, &e) == 1 && n < sub->count) {
		uint8_t code = MQTT_RC_NO_SUBSCRIPTION_EXISTED;
		if (sess_sub_del(se, e.filter.ptr, (uint16_t)e.filter.len) == 0) {
			code = MQTT_RC_SUCCESS;
			sess_unsubscribe(s, se, e.filter.ptr, e.filter.len);
			persist_sub_del(s, se, e.filter.ptr, (uint16_t)e.filter.len);
		}
		codes[n++] = code;
	}
	ack.suback.packet_id = sub->packet_id;
	ack.suback.codes = codes;
	ack.suback.count = c->version == MQTT_V5 ? n : 0; /* 3.x UNSUBACK has no payload */
	(void)conn_send_packet(s, c, &ack); /* [MQTT-3.10.4-4]; failure closes the connection */
	if (codes != codes_small)
		free(codes);
}
