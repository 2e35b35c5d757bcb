/*
 * sess.c - sessions on their home shard: the table, the delivery window,
 * queues, wills and expiry.
 *
 * Delivery to a session goes through one window: at most inflight_max
 * QoS 1/2 messages are unacknowledged; beyond that (and while offline)
 * messages wait in a FIFO bounded by max_queued_messages and
 * max_queued_bytes.  QoS 0 messages bypass the window when online and are
 * queued while offline only with queue_qos0_messages.  Order per session
 * is kept because a new message never overtakes the queue.
 *
 * The session table is a chained hash on the client id, doubled when its
 * load passes 1.
 */
#include "ringmq/hash.h"
#include "ringmq/sess.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <urcu-qsbr.h>

#include "ringmq/acl.h"
#include "ringmq/conn.h"
#include "ringmq/log.h"
#include "ringmq/persist.h"
#include "ringmq/proto.h"
#include "ringmq/retain.h"
#include "ringmq/route.h"
#include "ringmq/shard.h"
#include "ringmq/share.h"
#include "ringmq/stats.h"
#include "ringmq/topic.h"
#include "ringmq/trie.h"

#define SESS_EXPIRY_NEVER 0xFFFFFFFFu

struct sess_table {
	struct sess **buckets;
	uint32_t mask;
	uint32_t count;
};

static uint64_t id_hash(const uint8_t *p, uint32_t n)
{
	uint64_t h = hash_bytes(p, n);
	return h ^ (h >> 29); /* the table masks low bits: fold the high ones in */
}

struct sess_table *sess_table_new(void)
{
	struct sess_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->mask = 255;
	t->buckets = calloc(t->mask + 1, sizeof(*t->buckets));
	if (!t->buckets) {
		free(t);
		return NULL;
	}
	return t;
}

uint32_t sess_table_count(const struct sess_table *t)
{
	return t->count;
}

struct sess *sess_find(struct sess_table *t, const uint8_t *id, uint32_t len)
{
	struct sess *se = t->buckets[id_hash(id, len) & t->mask];
	for (; se; se = se->hnext)
		if (se->id_len == len && memcmp(se->client_id, id, len) == 0)
			return se;
	return NULL;
}

static void table_grow(struct sess_table *t)
{
	uint32_t mask = t->mask * 2 + 1;
	struct sess **nb = calloc(mask + 1, sizeof(*nb));
	if (!nb)
		return; /* longer chains, still correct */
	for (uint32_t i = 0; i <= t->mask; i++) {
		while (t->buckets[i]) {
			struct sess *se = t->buckets[i];
			t->buckets[i] = se->hnext;
			uint64_t h = id_hash((const uint8_t *)se->client_id, se->id_len) & mask;
			se->hnext = nb[h];
			nb[h] = se;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->mask = mask;
}

static void table_unlink(struct sess_table *t, struct sess *se)
{
	struct sess **pp = &t->buckets[id_hash((const uint8_t *)se->client_id, se->id_len) & t->mask];
	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == se) {
			*pp = se->hnext;
			t->count--;
			return;
		}
	}
	RMQ_ASSERT(!"session not in its table");
}

struct sess *sess_new(struct shard *s, const uint8_t *id, uint32_t len, uint8_t version)
{
	struct sess_table *t = s->sessions;
	struct sess *se = calloc(1, sizeof(*se));
	uint64_t h;

	if (!se)
		return NULL;
	se->client_id = malloc(len + 1);
	if (!se->client_id) {
		free(se);
		return NULL;
	}
	memcpy(se->client_id, id, len);
	se->client_id[len] = '\0';
	se->id_len = (uint16_t)len;
	se->owner_shard = s->id;
	se->version = version;
	se->next_pid = 1;
	se->inflight_max = s->b->cfg->max_inflight_messages;
	if (t->count >= t->mask)
		table_grow(t);
	h = id_hash(id, len) & t->mask;
	se->hnext = t->buckets[h];
	t->buckets[h] = se;
	t->count++;
	stat_add(&s->stats.sessions, 1);
	return se;
}

/* The @i-th slot of the inflight span, oldest first; m == NULL is a hole. */
static struct deliv *inf(const struct sess *se, uint32_t i)
{
	return &se->inflight[(se->inflight_head + i) & (se->inflight_cap - 1)];
}

static void deliv_done(struct deliv *d)
{
	d->m = msg_unref(d->m);
	free(d->subids);
	d->subids = NULL;
}

void sess_unsubscribe(struct shard *s, struct sess *se, const uint8_t *f, size_t len)
{
	const uint8_t *g, *sf;
	size_t glen, sflen;
	bool last = false;

	if (topic_share_split(f, len, &g, &glen, &sf, &sflen) == 1)
		(void)share_leave(s, g, glen, sf, sflen, se); /* present: it was joined with the subscription */
	else if (trie_del(s->trie, f, len, se, &last) == 0) {
		stat_sub(&s->stats.subs, 1);
		if (last)
			(void)route_del(s->b->route, f, len, s->id); /* present: added with the first subscriber */
	}
}

/* A message that reached this session through a shared group and was not
 * delivered goes to another member when the session ends (the session has
 * already left its groups): QoS 1 in flight, and anything still queued. */
static void deliv_end(struct shard *s, struct deliv *d, bool redeliver)
{
	if (redeliver && d->share_id && d->qos > 0 && d->m)
		share_deliver(s, d->share_id, SHARE_HOPS_MAX, d->m);
	deliv_done(d);
}

static void sess_free(struct shard *s, struct sess *se, bool redeliver)
{
	stats_sess_released(s, se); /* before its queue and inflight go */
	for (uint32_t i = 0; i < se->sub_count; i++) {
		sess_unsubscribe(s, se, se->subs[i].filter, se->subs[i].len);
		free(se->subs[i].filter);
	}
	free(se->subs);
	free(se->sub_index);
	for (uint32_t i = 0; i < se->inflight_span; i++)
		if (inf(se, i)->m) /* [MQTT-4.8.2-5] a started QoS 2 delivery stays with this member */
			deliv_end(s, inf(se, i), redeliver && inf(se, i)->qos == 1);
	free(se->inflight);
	free(se->pid_used);
	free(se->pid_slot);
	for (uint32_t i = 0; i < se->q_len; i++)
		deliv_end(s, &se->queue[(se->q_head + i) % se->q_cap], redeliver);
	free(se->queue);
	free(se->qos2_in);
	msg_unref(se->will);
	free(se->client_id);
	free(se->username);
	free(se);
}

struct sess_table *sess_table_free(struct shard *s, struct sess_table *t)
{
	if (!t)
		return NULL;
	for (uint32_t i = 0; i <= t->mask; i++) {
		while (t->buckets[i]) {
			struct sess *se = t->buckets[i];
			t->buckets[i] = se->hnext;
			sess_free(s, se, false); /* shutting down: no other member to give them to */
		}
	}
	free(t->buckets);
	free(t);
	return NULL;
}

void sess_publish_will(struct shard *s, struct sess *se)
{
	struct msg *w = se->will;
	const struct acl *acl;

	if (!w)
		return;
	se->will = NULL;
	se->will_at_ms = 0;
	if (se->stored)
		persist_sess_put(s, se); /* the will is gone for good */
	acl = rcu_dereference(s->b->acl);
	if (acl && !acl_check(acl, se->username, se->client_id, w->topic.ptr, w->topic.len, ACL_WRITE)) {
		log_info(se->client_id, "will on '%.*s' denied by acl_file", (int)w->topic.len,
			 (const char *)w->topic.ptr);
		msg_unref(w);
		return;
	}
	log_info(se->client_id, "publishing will on '%.*s'", (int)w->topic.len, (const char *)w->topic.ptr);
	if (w->retain && retain_set(s->b->retain, w) < 0) /* [MQTT-3.1.2-17] */
		log_error(se->client_id, "out of memory: will not retained");
	else if (w->retain)
		persist_retain(s, w);
	publish_route(s, w);
	msg_unref(w);
}

void sess_end(struct shard *s, struct sess *se)
{
	RMQ_ASSERT(se->owner_shard == s->id);
	RMQ_ASSERT(se->conn == NULL);
	sess_publish_will(s, se); /* a will still pending is sent when the session ends */
	persist_sess_del(s, se);
	table_unlink(s->sessions, se);
	sess_free(s, se, true);
}

void sess_detach(struct shard *s, struct sess *se, bool publish_will)
{
	RMQ_ASSERT(se->owner_shard == s->id);
	stats_client_down(s); /* the session's connection went away */
	se->offline_since_ms = s->now_ms;
	if (!publish_will) {
		se->will = msg_unref(se->will); /* normal DISCONNECT deletes the will [MQTT-3.1.2-10] */
	} else if (se->will && se->will_delay_s > 0 && se->expiry_s > 0) {
		/* [MQTT-3.1.3-9] the will waits for its delay or the session's end */
		se->will_at_ms = s->now_ms + (uint64_t)se->will_delay_s * 1000u;
	} else {
		sess_publish_will(s, se);
	}
	if (se->expiry_s == 0)
		sess_end(s, se);
	else
		persist_sess_put(s, se); /* offline from now; its expiry counts */
}

/* ------------------------------------------------------------ delivery */

/* Payload bytes held for sessions on all shards (each shard's own counter,
 * read with relaxed loads: a snapshot good to a few messages). */
static uint64_t held_total(const struct broker *b)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < b->nshards; i++)
		sum += atomic_load_explicit(&b->shards[i].stats.stored_bytes, memory_order_relaxed);
	return sum;
}

/* Append @d to the queue, no limits asked (the caller applied them). */
static int queue_append(struct shard *s, struct sess *se, const struct deliv *d)
{
	if (se->q_len == se->q_cap) {
		uint32_t cap = se->q_cap ? se->q_cap * 2 : 16;
		struct deliv *n = malloc(cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		for (uint32_t i = 0; i < se->q_len; i++)
			n[i] = se->queue[(se->q_head + i) % se->q_cap];
		free(se->queue);
		se->queue = n;
		se->q_head = 0;
		se->q_cap = cap;
	}
	se->queue[(se->q_head + se->q_len) % se->q_cap] = *d;
	se->q_len++;
	se->q_bytes += msg_size(d->m);
	stats_stored(s, 1, d->m->payload.len);
	return 0;
}

static int queue_push(struct shard *s, struct sess *se, struct deliv *d)
{
	const struct config *cfg = s->b->cfg;
	uint32_t size = msg_size(d->m);

	if (se->q_len >= cfg->max_queued_messages ||
	    (cfg->max_queued_bytes && se->q_bytes + size > cfg->max_queued_bytes))
		return -EDQUOT;
	if (cfg->max_queued_bytes_total && held_total(s->b) + d->m->payload.len > cfg->max_queued_bytes_total)
		return -ENOSPC;
	return queue_append(s, se, d);
}

static uint32_t window(const struct sess *se)
{
	uint32_t w = se->inflight_max ? se->inflight_max : 65535;
	if (se->conn && se->conn->receive_max_out < w)
		w = se->conn->receive_max_out; /* [MQTT-3.3.4-7] */
	return w;
}

#define PID_SET_FROM 64u /* windows larger than this keep a packet-id bit set */

/* Position of @pid in the span, or -1. */
static int64_t inflight_find(const struct sess *se, uint16_t pid)
{
	if (se->pid_slot) {
		if (!(se->pid_used[pid >> 6] >> (pid & 63) & 1))
			return -1;
		return (se->pid_slot[pid] - se->inflight_head) & (se->inflight_cap - 1);
	}
	for (uint32_t i = 0; i < se->inflight_span; i++)
		if (inf(se, i)->m && inf(se, i)->pid == pid)
			return i;
	return -1;
}

static void pid_mark(struct sess *se, uint16_t pid, bool used, uint32_t slot)
{
	if (!se->pid_used)
		return;
	if (used) {
		se->pid_used[pid >> 6] |= UINT64_C(1) << (pid & 63);
		se->pid_slot[pid] = slot;
	} else {
		se->pid_used[pid >> 6] &= ~(UINT64_C(1) << (pid & 63));
	}
}

static bool pid_in_use(const struct sess *se, uint16_t pid)
{
	if (se->pid_used)
		return se->pid_used[pid >> 6] >> (pid & 63) & 1;
	return inflight_find(se, pid) >= 0;
}

static uint16_t pid_next(struct sess *se)
{
	uint16_t pid;
	do {
		pid = se->next_pid++;
		if (se->next_pid == 0)
			se->next_pid = 1;
	} while (pid == 0 || pid_in_use(se, pid)); /* window < 65535, so this ends */
	return pid;
}

/* Fan-out of one QoS 0 message: the bytes are the same for every client of
 * one protocol version without subscription ids or topic aliases, so they
 * are encoded once (shard.h, enc) and copied.  Returns true if sent. */
static bool send_cached(struct shard *s, struct conn *c, const struct deliv *d)
{
	uint8_t *out;

	if (s->enc.m != d->m || s->enc.version != c->version || s->enc.retain != d->retain ||
	    s->enc.len > c->packet_max_out)
		return false;
	out = conn_out(s, c, s->enc.len);
	if (out) {
		memcpy(out, s->enc.buf, s->enc.len);
		conn_out_commit(s, c, s->enc.len);
		stat_add(&s->stats.msgs_out, 1);
		stat_add(&s->stats.pub_bytes_out, d->m->payload.len);
	}
	return true;
}

static void cache_store(struct shard *s, const struct conn *c, const struct deliv *d, const uint8_t *bytes,
			uint32_t n)
{
	if (n > s->enc.cap) {
		uint8_t *b = realloc(s->enc.buf, n);
		if (!b)
			return; /* no cache this time */
		s->enc.buf = b;
		s->enc.cap = n;
	}
	memcpy(s->enc.buf, bytes, n);
	s->enc.len = n;
	s->enc.m = d->m;
	s->enc.version = c->version;
	s->enc.retain = d->retain;
}

/* May this session read @m's topic?  Checked when the message goes out, on
 * every path (live, queued, resumed, retained, shared), so an acl_file
 * reload applies to what is still waiting too. */
static bool may_read(struct shard *s, const struct sess *se, const struct msg *m)
{
	const struct acl *acl = rcu_dereference(s->b->acl);
	return !acl || acl_check(acl, se->username, se->client_id, m->topic.ptr, m->topic.len, ACL_READ);
}

/* Send @d (QoS 0, or already in the inflight array) on the live connection. */
/* Returns 0, -EMSGSIZE (dropped: too large for this client), -EACCES (the
 * acl_file forbids it) or -ENOBUFS; the first two discard the message as
 * if delivered. */
static int send_publish(struct shard *s, struct sess *se, const struct deliv *d, bool dup)
{
	struct conn *c = se->conn;
	struct mqtt_packet pkt; /* not zeroed: the union is ~700 bytes; every field used is set below */
	struct mqtt_publish *p = &pkt.publish;
	bool alias_new = false;
	uint16_t alias = 0;
	bool cacheable = s->enc.on && d->qos == 0 && d->nsubids == 0 && c->alias_out_max == 0;
	size_t n;
	uint8_t *out;

	if (!may_read(s, se, d->m))
		return -EACCES;
	if (cacheable && send_cached(s, c, d))
		return 0;
	p->qos = d->qos;
	p->dup = dup;
	p->retain = d->retain;
	p->packet_id = d->pid;
	p->topic = d->m->topic;
	p->payload = d->m->payload;
	pkt.type = MQTT_PUBLISH;
	pkt.flags = 0;
	p->props.present = 0;
	p->props.subid_count = 0;
	p->props.user.len = 0;
	if (c->version == MQTT_V5) {
		msg_props(d->m, s->now_ms, &p->props);
		for (uint8_t i = 0; i < d->nsubids && i < MQTT_SUBIDS_MAX; i++)
			p->props.subids[p->props.subid_count++] = d->subids[i];
		if (d->nsubids)
			p->props.present |= MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID);
		alias = conn_alias_out(c, &p->topic, &alias_new);
		if (alias) {
			/* MQTT 5 section 3.3.2.3.4: a known alias goes with an empty topic */
			p->props.present |= MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
			p->props.topic_alias = alias;
			if (!alias_new)
				p->topic.len = 0;
		}
	}
	n = mqtt_encoded_len(c->version, &pkt);
	if (n == 0 || n > c->packet_max_out) {
		/* [MQTT-3.1.2-25] never send more than the client's Maximum Packet Size */
		stat_add(&s->stats.dropped, 1);
		stat_add(&s->stats.drops[SHARD_DROP_PACKET_SIZE], 1);
		log_debug(se->client_id, "dropped a %zu-byte PUBLISH over the client's maximum packet size", n);
		return -EMSGSIZE;
	}
	out = conn_out(s, c, (uint32_t)n);
	if (!out)
		return -ENOBUFS;
	RMQ_ASSERT(mqtt_encode(c->version, &pkt, out, n) == (int)n);
	if (cacheable)
		cache_store(s, c, d, out, (uint32_t)n);
	conn_out_commit(s, c, (uint32_t)n);
	if (alias_new)
		conn_alias_commit(c, &d->m->topic, alias);
	stat_add(&s->stats.msgs_out, 1);
	stat_add(&s->stats.pub_bytes_out, d->m->payload.len);
	return 0;
}

static void inflight_remove(struct sess *se, uint32_t i)
{
	struct deliv *d = inf(se, i);

	stats_stored(shard_self(), -1, -(int64_t)d->m->payload.len); /* the owner shard runs this */
	persist_deliv_del(shard_self(), se, d);
	pid_mark(se, d->pid, false, 0);
	deliv_done(d); /* d->m = NULL: a hole */
	se->inflight_count--;
	/* Holes at either end leave the span; holes inside wait for the head. */
	while (se->inflight_span && !inf(se, 0)->m) {
		se->inflight_head = (se->inflight_head + 1) & (se->inflight_cap - 1);
		se->inflight_span--;
	}
	while (se->inflight_span && !inf(se, se->inflight_span - 1)->m)
		se->inflight_span--;
}

/* Make room for one more slot: compact the holes away into a ring of at
 * least twice the live entries; past PID_SET_FROM slots keep the id maps. */
static int inflight_grow(struct sess *se)
{
	uint32_t cap = se->inflight_cap ? se->inflight_cap : 8, o = 0;
	struct deliv *n;

	while (cap < 2 * (se->inflight_count + 1))
		cap *= 2;
	if (cap > PID_SET_FROM && !se->pid_used) {
		se->pid_used = calloc(65536 / 64, sizeof(uint64_t));
		se->pid_slot = malloc(65536 * sizeof(uint32_t));
		if (!se->pid_used || !se->pid_slot) {
			free(se->pid_used);
			free(se->pid_slot);
			se->pid_used = NULL;
			se->pid_slot = NULL; /* lookups stay linear */
		}
	}
	n = malloc(cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	for (uint32_t i = 0; i < se->inflight_span; i++) {
		if (!inf(se, i)->m)
			continue;
		n[o] = *inf(se, i);
		pid_mark(se, n[o].pid, true, o);
		o++;
	}
	free(se->inflight);
	se->inflight = n;
	se->inflight_head = 0;
	se->inflight_span = o;
	se->inflight_cap = cap;
	return 0;
}

/* Put @d into the window and send it.  Caller checked there is room. */
static void inflight_start(struct shard *s, struct sess *se, struct deliv *d)
{
	int r;

	struct deliv *slot;

	if (se->inflight_span == se->inflight_cap && inflight_grow(se) < 0) {
		persist_deliv_del(s, se, d);
		deliv_done(d); /* counted as dropped by the caller's stats */
		return;
	}
	d->pid = pid_next(se);
	d->state = d->qos == 1 ? DELIV_WAIT_PUBACK : DELIV_WAIT_PUBREC;
	slot = inf(se, se->inflight_span);
	*slot = *d;
	if (slot->seq)
		persist_deliv_flow(s, se, slot); /* it waited in the queue: now it has a packet id */
	else
		persist_deliv_put(s, se, slot);
	pid_mark(se, d->pid, true, (se->inflight_head + se->inflight_span) & (se->inflight_cap - 1));
	se->inflight_span++;
	se->inflight_count++;
	stats_stored(s, 1, d->m->payload.len);
	r = send_publish(s, se, d, false);
	if (r == -EMSGSIZE || r == -EACCES)
		inflight_remove(se, se->inflight_span - 1); /* discarded as if delivered */
}

static bool window_open(const struct sess *se)
{
	return se->inflight_count < window(se);
}

void sess_pump(struct shard *s, struct sess *se)
{
	while (se->conn && se->conn->state == CONN_ACTIVE && se->q_len > 0) {
		struct deliv d = se->queue[se->q_head];
		if (d.qos > 0 && !window_open(se))
			return;
		se->q_head = (se->q_head + 1) % se->q_cap;
		se->q_len--;
		se->q_bytes -= msg_size(d.m);
		stats_stored(s, -1, -(int64_t)d.m->payload.len);
		if (se->q_dropped) {
			log_warn(se->client_id, "queue has room again: %llu messages were dropped",
				 (unsigned long long)se->q_dropped);
			se->q_dropped = 0;
		}
		if (msg_expired(d.m, s->now_ms)) {
			persist_deliv_del(s, se, &d);
			deliv_done(&d); /* [MQTT-3.3.2-5] never deliver an expired message */
			continue;
		}
		if (d.qos == 0) {
			(void)send_publish(s, se, &d, false); /* QoS 0: at most once */
			deliv_done(&d);
		} else {
			inflight_start(s, se, &d);
		}
	}
}

void sess_deliver(struct shard *s, struct sess *se, struct msg *m, uint8_t qos, bool retain,
		  const uint32_t *subids, uint8_t nsubids, uint32_t share_id)
{
	const struct config *cfg = s->b->cfg;
	bool online = se->conn && se->conn->state == CONN_ACTIVE;
	struct deliv d = {.qos = qos, .retain = retain, .share_id = share_id};
	int r;

	RMQ_ASSERT(se->owner_shard == s->id);
	if (msg_expired(m, s->now_ms))
		return;
	if (qos == 0 && online && se->q_len == 0) {
		/* At most once, now: the message is only borrowed (send_publish
		 * checks the ACL). */
		d.m = m;
		d.subids = (uint32_t *)(uintptr_t)subids; /* read-only use below */
		d.nsubids = nsubids;
		(void)send_publish(s, se, &d, false);
		return;
	}
	if ((qos == 0 && !online && !cfg->queue_qos0_messages) || !may_read(s, se, m))
		return; /* nothing is kept that could never be sent */
	d.m = msg_keep(m);
	if (!d.m) {
		stat_add(&s->stats.dropped, 1);
		stat_add(&s->stats.drops[SHARD_DROP_NO_MEMORY], 1);
		return;
	}
	if (nsubids) {
		d.subids = malloc(nsubids * sizeof(*d.subids));
		if (d.subids) {
			memcpy(d.subids, subids, nsubids * sizeof(*subids));
			d.nsubids = nsubids;
		}
	}
	if (online && se->q_len == 0 && window_open(se)) {
		inflight_start(s, se, &d);
		return;
	}
	r = queue_push(s, se, &d);
	if (r == 0)
		persist_deliv_put(s, se, &se->queue[(se->q_head + se->q_len - 1) % se->q_cap]);
	if (r == -ENOSPC) {
		stat_add(&s->stats.dropped, 1);
		stat_add(&s->stats.drops[SHARD_DROP_MEMORY_LIMIT], 1);
		if (!s->memory_limit_logged) {
			s->memory_limit_logged = true; /* once per shard: the counter tells the rest */
			log_warn(NULL, "max_queued_bytes_total (%llu) reached: messages for offline or slow "
				 "sessions are being dropped", (unsigned long long)cfg->max_queued_bytes_total);
		}
		deliv_done(&d);
	} else if (r < 0) {
		stat_add(&s->stats.dropped, 1);
		stat_add(&s->stats.drops[SHARD_DROP_QUEUE_FULL], 1);
		/* One line when dropping starts; the count follows when it stops. */
		if (se->q_dropped++ == 0)
			log_warn(se->client_id, "queue full (max_queued_messages %u / max_queued_bytes %llu): "
				 "dropping messages", cfg->max_queued_messages,
				 (unsigned long long)cfg->max_queued_bytes);
		deliv_done(&d);
	}
}

int sess_restore_deliv(struct shard *s, struct sess *se, struct deliv *d)
{
	struct deliv *slot;

	if (d->state == DELIV_QUEUED)
		return queue_append(s, se, d); /* stored before: limits applied then */
	if (pid_in_use(se, d->pid)) {
		persist_deliv_del(s, se, d); /* two records for one packet id: keep the first */
		deliv_done(d);
		return 0;
	}
	if (se->inflight_span == se->inflight_cap && inflight_grow(se) < 0)
		return -ENOMEM;
	slot = inf(se, se->inflight_span);
	*slot = *d;
	pid_mark(se, d->pid, true, (se->inflight_head + se->inflight_span) & (se->inflight_cap - 1));
	se->inflight_span++;
	se->inflight_count++;
	if (d->pid >= se->next_pid)
		se->next_pid = d->pid == 65535 ? 1 : (uint16_t)(d->pid + 1);
	stats_stored(s, 1, d->m->payload.len);
	return 0;
}

int sess_qos2_mark(struct sess *se, uint16_t pid)
{
	if (!se->qos2_in && !(se->qos2_in = calloc(65536 / 64, sizeof(uint64_t))))
		return -ENOMEM;
	se->qos2_in[pid >> 6] |= UINT64_C(1) << (pid & 63);
	return 0;
}

void sess_resume(struct shard *s, struct sess *se)
{
	RMQ_ASSERT(se->owner_shard == s->id);
	/* [MQTT-4.4.0-1] resend unacknowledged PUBLISH (with DUP) and PUBREL, in order */
	/* Entries never move (removal leaves holes), so walk ring slots from the
	 * head as it was; a removal may only shrink the span behind us. */
	uint32_t head = se->inflight_head, span = se->inflight_span;
	for (uint32_t k = 0; k < span && se->conn; k++) {
		struct deliv *d = &se->inflight[(head + k) & (se->inflight_cap - 1)];
		if (!d->m)
			continue;
		if (d->state == DELIV_WAIT_PUBCOMP) {
			struct mqtt_packet rel = {.type = MQTT_PUBREL};
			rel.ack.packet_id = d->pid;
			(void)conn_send_packet(s, se->conn, &rel); /* failure closes the connection */
			continue;
		}
		int r = send_publish(s, se, d, true);
		if (r == -EMSGSIZE || r == -EACCES)
			inflight_remove(se, (d - se->inflight - se->inflight_head) & (se->inflight_cap - 1));
	}
	sess_pump(s, se);
}

int sess_ack(struct shard *s, struct sess *se, uint8_t type, uint16_t pid)
{
	uint8_t want = type == MQTT_PUBACK ? DELIV_WAIT_PUBACK
		       : type == MQTT_PUBREC ? DELIV_WAIT_PUBREC
					     : DELIV_WAIT_PUBCOMP;

	int64_t i = pid_in_use(se, pid) ? inflight_find(se, pid) : -1;
	struct deliv *d;

	if (i < 0)
		return -ENOENT;
	d = inf(se, (uint32_t)i);
	if (d->state != want && !(type == MQTT_PUBREC && d->state == DELIV_WAIT_PUBCOMP))
		return -EPROTO;
	if (type == MQTT_PUBREC) {
		if (d->state != DELIV_WAIT_PUBCOMP) {
			d->state = DELIV_WAIT_PUBCOMP; /* the caller sends PUBREL */
			persist_deliv_flow(s, se, d);
		}
		return 0;
	}
	inflight_remove(se, (uint32_t)i);
	sess_pump(s, se);
	return 0;
}

/* Drop inflight entry @pid (a PUBREC with a failure reason ends the flow). */
void sess_ack_drop(struct shard *s, struct sess *se, uint16_t pid)
{
	int64_t i = inflight_find(se, pid);

	if (i >= 0) {
		inflight_remove(se, (uint32_t)i);
		sess_pump(s, se);
	}
}

/* ---------------------------------------------------------------- sweep */

void sess_sweep(struct shard *s)
{
	struct sess_table *t = s->sessions;

	for (uint32_t i = 0; i <= t->mask; i++) {
		struct sess *se = t->buckets[i];
		while (se) {
			struct sess *next = se->hnext;
			if (!se->conn) {
				if (se->will_at_ms && s->now_ms >= se->will_at_ms)
					sess_publish_will(s, se);
				if (se->expiry_s != SESS_EXPIRY_NEVER &&
				    s->now_ms - se->offline_since_ms >= (uint64_t)se->expiry_s * 1000u) {
					log_info(se->client_id, "session expired");
					stat_add(&s->stats.expired, 1);
					sess_end(s, se);
				}
			}
			se = next;
		}
	}
}
