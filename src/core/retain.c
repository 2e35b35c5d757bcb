/*
 * retain.c - the in-memory retained-message store.
 *
 * A liburcu lock-free hash table keyed by topic (hash of the topic bytes).
 * cds_lfht_add_replace() makes set-or-replace one atomic step, so two
 * shards publishing retained messages to the same topic leave exactly one
 * winner.  A filter without wildcards is one lookup; a wildcard filter
 * walks the table (the LMDB store replaces this with a prefix scan over
 * the levels before the first wildcard).
 */
#include "ringmq/hash.h"
#include "ringmq/retain.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <urcu-qsbr.h>
#include <urcu/rculfhash.h>

#include "ringmq/msg.h"
#include "ringmq/topic.h"

struct retain {
	struct cds_lfht *ht;
	_Atomic uint64_t count;
};

struct rnode {
	struct cds_lfht_node node;
	struct rcu_head rcu;
	struct rnode *next_dead; /* retain_free() only */
	struct msg *m;
};

struct key {
	const uint8_t *p;
	size_t n;
};

static int node_match(struct cds_lfht_node *node, const void *key)
{
	const struct rnode *rn = caa_container_of(node, struct rnode, node);
	const struct key *k = key;
	return rn->m->topic.len == k->n && memcmp(rn->m->topic.ptr, k->p, k->n) == 0;
}

static void rnode_free_rcu(struct rcu_head *head)
{
	struct rnode *rn = caa_container_of(head, struct rnode, rcu);
	msg_unref(rn->m);
	free(rn);
}

struct retain *retain_new(void)
{
	struct retain *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->ht = cds_lfht_new(1024, 1024, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
	if (!r->ht) {
		free(r);
		return NULL;
	}
	return r;
}

struct retain *retain_free(struct retain *r)
{
	struct cds_lfht_iter it;
	struct rnode *rn, *dead = NULL;
	bool online;

	if (!r)
		return NULL;
	/* A deleted node stays readable by the table until it is destroyed
	 * (its bucket is cleaned lazily): unlink everything, destroy, then free. */
	cds_lfht_for_each_entry(r->ht, &it, rn, node)
	{
		if (cds_lfht_del(r->ht, &rn->node) == 0) {
			rn->next_dead = dead;
			dead = rn;
		}
	}
	/* cds_lfht_destroy() waits for a queued resize, and a resize waits for
	 * a grace period: an online caller would wait for itself (route.c). */
	online = rcu_read_ongoing();
	if (online)
		rcu_thread_offline();
	(void)cds_lfht_destroy(r->ht, NULL); /* no thread uses the table any more */
	if (online)
		rcu_thread_online();
	while (dead) {
		rn = dead;
		dead = rn->next_dead;
		msg_unref(rn->m);
		free(rn);
	}
	free(r);
	return NULL;
}

int retain_set(struct retain *r, struct msg *m)
{
	struct key k = {m->topic.ptr, m->topic.len};
	uint64_t h = hash_bytes(k.p, k.n);
	struct cds_lfht_node *old;
	struct cds_lfht_iter it;

	if (m->payload.len == 0) {
		cds_lfht_lookup(r->ht, h, node_match, &k, &it);
		old = cds_lfht_iter_get_node(&it);
		if (old && cds_lfht_del(r->ht, old) == 0) {
			atomic_fetch_sub(&r->count, 1);
			call_rcu(&caa_container_of(old, struct rnode, node)->rcu, rnode_free_rcu);
		}
		return 0;
	}
	struct rnode *rn = malloc(sizeof(*rn));
	if (!rn)
		return -12; /* -ENOMEM */
	cds_lfht_node_init(&rn->node);
	rn->m = msg_keep(m);
	if (!rn->m) {
		free(rn);
		return -12; /* -ENOMEM */
	}
	old = cds_lfht_add_replace(r->ht, h, node_match, &k, &rn->node);
	if (old)
		call_rcu(&caa_container_of(old, struct rnode, node)->rcu, rnode_free_rcu);
	else
		atomic_fetch_add(&r->count, 1);
	return 0;
}

void retain_clear(struct retain *r)
{
	struct cds_lfht_iter it;
	struct rnode *rn;

	cds_lfht_for_each_entry(r->ht, &it, rn, node)
	{
		if (cds_lfht_del(r->ht, &rn->node) == 0) {
			atomic_fetch_sub(&r->count, 1);
			call_rcu(&rn->rcu, rnode_free_rcu);
		}
	}
}

void retain_match(struct retain *r, const uint8_t *f, size_t len, retain_fn fn, void *ctx)
{
	struct cds_lfht_iter it;
	struct rnode *rn;

	if (!topic_has_wildcard(f, len)) {
		struct key k = {f, len};
		cds_lfht_lookup(r->ht, hash_bytes(f, len), node_match, &k, &it);
		struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
		if (n)
			fn(ctx, caa_container_of(n, struct rnode, node)->m);
		return;
	}
	cds_lfht_for_each_entry(r->ht, &it, rn, node)
	{
		if (topic_match(f, len, rn->m->topic.ptr, rn->m->topic.len))
			fn(ctx, rn->m);
	}
}

uint64_t retain_count(struct retain *r)
{
	return atomic_load_explicit(&r->count, memory_order_relaxed);
}
