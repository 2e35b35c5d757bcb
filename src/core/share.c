/*
 * share.c - shared subscriptions: the process-wide registry and each
 * shard's local groups (see share.h for the ownership rules).
 *
 * The registry holds one entry per "group/filter" (a group name cannot
 * contain '/', so the key is unambiguous) in two liburcu lock-free hash
 * tables, by name and by id.  Its shard bitmap is written with atomic OR /
 * AND-NOT under the registry mutex and read with relaxed loads: a reader
 * that misses a bit just set picks another shard or none, which is the
 * same result as publishing a moment earlier.
 *
 * Matching walks the whole registry for each PUBLISH, so its cost grows
 * with the number of shared groups (typically a handful); a publish with
 * no shared group at all costs one atomic load.
 */
#include "ringmq/hash.h"
#include "ringmq/share.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <urcu-qsbr.h>
#include <urcu/rculfhash.h>

#include "ringmq/conn.h"
#include "ringmq/log.h"
#include "ringmq/msg.h"
#include "ringmq/route.h"
#include "ringmq/sess.h"
#include "ringmq/shard.h"
#include "ringmq/topic.h"

#define SUB_OPT_QOS 0x03
#define SUB_OPT_RAP 0x08
#define SHARE_KEY_BYTES_MAX 65535u

struct share_group {
	struct cds_lfht_node by_name;
	struct cds_lfht_node by_id;
	struct rcu_head rcu;
	struct share_group *next_dead; /* share_registry_free() only */
	uint32_t id;
	_Atomic uint32_t rr;
	_Atomic uint64_t mask[ROUTE_MASK_WORDS];
	uint32_t shards_with_members; /* writer-only, under the registry mutex */
	uint32_t filter_off; /* key = group '/' filter */
	uint32_t key_len;
	uint8_t key[];
};

struct share_registry {
	struct cds_lfht *by_name;
	struct cds_lfht *by_id;
	pthread_mutex_t lock;
	uint32_t next_id;
	_Atomic size_t count;
};

struct share_member {
	struct sess *se;
	uint8_t options;
	uint32_t sub_id;
};

struct share_lgroup {
	uint32_t id;
	uint32_t key_len;
	uint8_t *key;
	struct share_member *m;
	uint32_t n, cap, rr;
};

struct share_local {
	struct share_lgroup *g;
	uint32_t n, cap;
};

struct key {
	const uint8_t *p;
	size_t n;
};

static uint64_t hash_id(uint32_t id)
{
	uint64_t h = id * 0x9E3779B97F4A7C15ull;
	return h ^ (h >> 32);
}

static int match_name(struct cds_lfht_node *n, const void *key)
{
	const struct share_group *g = caa_container_of(n, struct share_group, by_name);
	const struct key *k = key;
	return g->key_len == k->n && memcmp(g->key, k->p, k->n) == 0;
}

static int match_id(struct cds_lfht_node *n, const void *key)
{
	return caa_container_of(n, struct share_group, by_id)->id == *(const uint32_t *)key;
}

struct share_registry *share_registry_new(void)
{
	struct share_registry *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->by_name = cds_lfht_new(64, 64, 0, CDS_LFHT_AUTO_RESIZE, NULL);
	r->by_id = cds_lfht_new(64, 64, 0, CDS_LFHT_AUTO_RESIZE, NULL);
	pthread_mutex_init(&r->lock, NULL);
	r->next_id = 1;
	if (!r->by_name || !r->by_id)
		return share_registry_free(r);
	return r;
}

struct share_registry *share_registry_free(struct share_registry *r)
{
	struct cds_lfht_iter it;
	struct share_group *g, *dead = NULL;
	bool online;

	if (!r)
		return NULL;
	/* Deleted nodes stay readable by their tables until those are
	 * destroyed: unlink everything, destroy both, then free. */
	if (r->by_name) {
		cds_lfht_for_each_entry(r->by_name, &it, g, by_name)
		{
			(void)cds_lfht_del(r->by_name, &g->by_name); /* no reader is left */
			(void)cds_lfht_del(r->by_id, &g->by_id);
			g->next_dead = dead;
			dead = g;
		}
	}
	/* cds_lfht_destroy() waits for a queued resize, and a resize waits for
	 * a grace period: an online caller would wait for itself (route.c). */
	online = rcu_read_ongoing();
	if (online)
		rcu_thread_offline();
	if (r->by_name)
		(void)cds_lfht_destroy(r->by_name, NULL);
	if (r->by_id)
		(void)cds_lfht_destroy(r->by_id, NULL);
	if (online)
		rcu_thread_online();
	while (dead) {
		g = dead;
		dead = g->next_dead;
		free(g);
	}
	pthread_mutex_destroy(&r->lock);
	free(r);
	return NULL;
}

size_t share_groups(struct share_registry *r)
{
	return atomic_load_explicit(&r->count, memory_order_relaxed);
}

static void group_free_rcu(struct rcu_head *h)
{
	free(caa_container_of(h, struct share_group, rcu));
}

/* The registry side of a shard gaining its first / losing its last member. */
static int registry_update(struct share_registry *r, const uint8_t *key, size_t klen, size_t filter_off,
			   unsigned shard, bool join, uint32_t *ret_id)
{
	struct key k = {key, klen};
	uint64_t h = hash_bytes(key, klen);
	struct cds_lfht_iter it;
	struct share_group *g;
	uint64_t bit = UINT64_C(1) << (shard % 64);
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	cds_lfht_lookup(r->by_name, h, match_name, &k, &it);
	g = cds_lfht_iter_get_node(&it) ? caa_container_of(cds_lfht_iter_get_node(&it), struct share_group, by_name)
					: NULL;
	if (!g && join) {
		g = calloc(1, sizeof(*g) + klen);
		if (!g) {
			ret = -ENOMEM;
			goto out;
		}
		memcpy(g->key, key, klen);
		g->key_len = (uint32_t)klen;
		g->filter_off = (uint32_t)filter_off;
		g->id = r->next_id++;
		cds_lfht_node_init(&g->by_name);
		cds_lfht_node_init(&g->by_id);
		cds_lfht_add(r->by_id, hash_id(g->id), &g->by_id);
		cds_lfht_add(r->by_name, h, &g->by_name);
		atomic_fetch_add(&r->count, 1);
	}
	if (!g) {
		ret = -ENOENT;
		goto out;
	}
	*ret_id = g->id;
	if (join) {
		if (!(atomic_fetch_or(&g->mask[shard / 64], bit) & bit))
			g->shards_with_members++;
	} else if (atomic_fetch_and(&g->mask[shard / 64], ~bit) & bit) {
		if (--g->shards_with_members == 0) {
			(void)cds_lfht_del(r->by_name, &g->by_name); /* we hold the only writer lock */
			(void)cds_lfht_del(r->by_id, &g->by_id);
			atomic_fetch_sub(&r->count, 1);
			call_rcu(&g->rcu, group_free_rcu);
		}
	}
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* ------------------------------------------------------------ local side */

struct share_local *share_local_new(void)
{
	return calloc(1, sizeof(struct share_local));
}

struct share_local *share_local_free(struct share_local *l)
{
	if (!l)
		return NULL;
	for (uint32_t i = 0; i < l->n; i++) {
		free(l->g[i].key);
		free(l->g[i].m);
	}
	free(l->g);
	free(l);
	return NULL;
}

static struct share_lgroup *local_find_key(struct share_local *l, const uint8_t *key, size_t klen)
{
	for (uint32_t i = 0; l && i < l->n; i++)
		if (l->g[i].key_len == klen && memcmp(l->g[i].key, key, klen) == 0)
			return &l->g[i];
	return NULL;
}

static struct share_lgroup *local_find_id(struct share_local *l, uint32_t id)
{
	for (uint32_t i = 0; l && i < l->n; i++)
		if (l->g[i].id == id)
			return &l->g[i];
	return NULL;
}

/* "group/filter" into @buf; returns its length (the filter starts at glen+1). */
static size_t make_key(uint8_t *buf, const uint8_t *group, size_t glen, const uint8_t *filter, size_t flen)
{
	memcpy(buf, group, glen);
	buf[glen] = '/';
	memcpy(buf + glen + 1, filter, flen);
	return glen + 1 + flen;
}

static struct share_lgroup *local_add(struct share_local *l, const uint8_t *key, size_t klen, uint32_t id)
{
	struct share_lgroup *g;

	if (l->n == l->cap) {
		uint32_t cap = l->cap ? l->cap * 2 : 4;
		struct share_lgroup *n = realloc(l->g, cap * sizeof(*n));
		if (!n)
			return NULL;
		l->g = n;
		l->cap = cap;
	}
	g = &l->g[l->n];
	memset(g, 0, sizeof(*g));
	g->key = malloc(klen);
	if (!g->key)
		return NULL;
	memcpy(g->key, key, klen);
	g->key_len = (uint32_t)klen;
	g->id = id;
	l->n++;
	return g;
}

int share_join(struct shard *s, const uint8_t *group, size_t glen, const uint8_t *filter, size_t flen,
	       struct sess *se, uint8_t options, uint32_t sub_id)
{
	struct share_local *l = s->shares;
	uint8_t *key = malloc(glen + 1 + flen);
	struct share_lgroup *g;
	size_t klen;
	uint32_t id = 0;
	int r = 0;

	RMQ_ASSERT(se->owner_shard == s->id);
	if (!key)
		return -ENOMEM;
	klen = make_key(key, group, glen, filter, flen);
	g = local_find_key(l, key, klen);
	if (!g) {
		r = registry_update(s->b->shares, key, klen, glen + 1, s->id, true, &id);
		if (r < 0)
			goto out;
		if (!(g = local_add(l, key, klen, id))) {
			/* undo: the registry must not name this shard without members */
			(void)registry_update(s->b->shares, key, klen, glen + 1, s->id, false, &id);
			r = -ENOMEM;
			goto out;
		}
	}
	for (uint32_t i = 0; i < g->n; i++) {
		if (g->m[i].se == se) {
			g->m[i].options = options; /* [MQTT-3.8.4-3] replace */
			g->m[i].sub_id = sub_id;
			goto out;
		}
	}
	if (g->n == g->cap) {
		uint32_t cap = g->cap ? g->cap * 2 : 4;
		struct share_member *m = realloc(g->m, cap * sizeof(*m));
		if (!m) {
			r = -ENOMEM;
			if (g->n == 0) { /* a group made just now: undo it */
				(void)registry_update(s->b->shares, key, klen, glen + 1, s->id, false, &id);
				free(g->key);
				*g = l->g[--l->n];
			}
			goto out;
		}
		g->m = m;
		g->cap = cap;
	}
	g->m[g->n++] = (struct share_member){.se = se, .options = options, .sub_id = sub_id};
	stat_add(&s->stats.shared_subs, 1);
out:
	free(key);
	return r;
}

int share_leave(struct shard *s, const uint8_t *group, size_t glen, const uint8_t *filter, size_t flen,
		struct sess *se)
{
	struct share_local *l = s->shares;
	uint8_t *key = malloc(glen + 1 + flen);
	struct share_lgroup *g;
	size_t klen;
	uint32_t id;
	int r = -ENOENT;

	if (!key)
		return -ENOMEM;
	klen = make_key(key, group, glen, filter, flen);
	g = local_find_key(l, key, klen);
	for (uint32_t i = 0; g && i < g->n; i++) {
		if (g->m[i].se != se)
			continue;
		g->m[i] = g->m[--g->n];
		stat_sub(&s->stats.shared_subs, 1);
		r = 0;
		if (g->n == 0) {
			(void)registry_update(s->b->shares, key, klen, glen + 1, s->id, false, &id); /* present */
			free(g->key);
			free(g->m);
			*g = l->g[--l->n];
		}
		break;
	}
	free(key);
	return r;
}

/* ------------------------------------------------------------- messages */


static uint64_t rng_next(struct shard *s)
{
	uint64_t x = s->rng ? s->rng : (0x9E3779B97F4A7C15ull ^ (uint64_t)(s->id + 1) * 0xBF58476D1CE4E5B9ull);
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	s->rng = x;
	return x;
}

/* A shard with members, starting the search at @start; -1 if none (or only @skip). */
static int pick_shard(const struct share_group *g, unsigned nshards, uint64_t start, int skip)
{
	for (unsigned k = 0; k < nshards; k++) {
		unsigned t = (unsigned)((start + k) % nshards);
		uint64_t w = atomic_load_explicit(&g->mask[t / 64], memory_order_relaxed);
		if ((w >> (t % 64) & 1) && (int)t != skip)
			return (int)t;
	}
	return -1;
}

static uint64_t pick_start(struct shard *s, struct share_group *g, const struct msg *m)
{
	switch (s->b->cfg->shared_subscription_strategy) {
	case SHARED_RANDOM:
		return rng_next(s);
	case SHARED_HASH_PUBLISHER:
		return hash_bytes(m->origin.ptr, m->origin.len);
	default:
		return atomic_fetch_add_explicit(&g->rr, 1, memory_order_relaxed);
	}
}

static void send_to(struct shard *s, int t, uint32_t id, unsigned hops, struct msg *m)
{
	struct spsc_item it = {.op = SHARD_OP_SHARED | (hops << 8), .arg = id};
	bool ack = persist_ack_carries(s, m);

	if ((unsigned)t == s->id) {
		share_deliver(s, id, hops, m);
		return;
	}
	it.ptr = msg_keep(m);
	if (ack)
		it.op |= SHARD_OP_F_ACK;
	if (it.ptr && shard_send(s, (unsigned)t, &it) == 0) {
		if (ack)
			persist_ack_sent(s);
	} else {
		atomic_fetch_add_explicit(&s->stats.drops[it.ptr ? SHARD_DROP_BACKLOG_FULL : SHARD_DROP_NO_MEMORY], 1,
					  memory_order_relaxed);
		msg_unref(it.ptr);
		stat_add(&s->stats.dropped, 1);
	}
}

void share_route(struct shard *s, struct msg *m)
{
	struct share_registry *r = s->b->shares;
	struct cds_lfht_iter it;
	struct share_group *g;

	if (atomic_load_explicit(&r->count, memory_order_relaxed) == 0)
		return;
	cds_lfht_for_each_entry(r->by_name, &it, g, by_name)
	{
		int t;
		if (!topic_match(g->key + g->filter_off, g->key_len - g->filter_off, m->topic.ptr, m->topic.len))
			continue;
		t = pick_shard(g, s->b->nshards, pick_start(s, g, m), -1);
		if (t >= 0)
			send_to(s, t, g->id, SHARE_HOPS_MAX, m);
	}
}

/* This shard has no member left for @id: pass the message to one that has. */
static void forward(struct shard *s, uint32_t id, unsigned hops_left, struct msg *m)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *n;
	int t = -1;

	if (hops_left > 0) {
		cds_lfht_lookup(s->b->shares->by_id, hash_id(id), match_id, &id, &it);
		n = cds_lfht_iter_get_node(&it);
		if (n)
			t = pick_shard(caa_container_of(n, struct share_group, by_id), s->b->nshards, rng_next(s),
				       (int)s->id);
	}
	if (t < 0) {
		stat_add(&s->stats.dropped, 1);
		stat_add(&s->stats.drops[SHARD_DROP_NO_MEMBER], 1);
		log_debug(NULL, "shared message on '%.*s' dropped: the group has no members left", (int)m->topic.len,
			  (const char *)m->topic.ptr);
		return;
	}
	send_to(s, t, id, hops_left - 1, m);
}

void share_deliver(struct shard *s, uint32_t id, unsigned hops_left, struct msg *m)
{
	struct share_lgroup *g = local_find_id(s->shares, id);
	struct share_member *mb = NULL;
	uint8_t qos;

	if (!g || g->n == 0) {
		forward(s, id, hops_left, m);
		return;
	}
	if (s->b->cfg->shared_subscription_strategy == SHARED_HASH_PUBLISHER) {
		/* Same publisher, same member, while membership is unchanged. */
		mb = &g->m[(hash_bytes(m->origin.ptr, m->origin.len) >> 16) % g->n];
	}
	/* Round robin over local members, preferring one that is online. */
	for (uint32_t k = 0; !mb && k < g->n; k++) {
		struct share_member *c = &g->m[(g->rr + k) % g->n];
		if (c->se->conn && c->se->conn->state == CONN_ACTIVE) {
			mb = c;
			g->rr = (g->rr + k + 1) % g->n;
			break;
		}
	}
	if (!mb) {
		mb = &g->m[g->rr % g->n]; /* nobody online: it waits in a session queue */
		g->rr = (g->rr + 1) % g->n;
	}
	qos = (mb->options & SUB_OPT_QOS) < m->qos ? (mb->options & SUB_OPT_QOS) : m->qos;
	sess_deliver(s, mb->se, m, qos, (mb->options & SUB_OPT_RAP) && m->retain, &mb->sub_id, mb->sub_id ? 1 : 0,
		     id);
}
