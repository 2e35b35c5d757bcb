/*
 * route.c - the route index: topic filter -> set of shards, shared by all
 * shards, readers lock-free (liburcu QSBR).
 *
 * Shape.  A tree of filter levels like trie.c, with a shard bitmap per
 * node instead of entries.  Every node has a direct pointer to its '+' and
 * '#' children; literal children live in one process-wide rculfhash table
 * keyed by (parent node address, level bytes), so a node needs no child
 * table of its own and a lookup is one lock-free hash probe.  The root is
 * never in the table and never freed.  Every node but the root is also on
 * a writer-only list (`all`), so route_free() can find the '+' and '#'
 * nodes, which are not in the table.
 *
 * Writers (route_add, route_del) hold r->lock for the whole operation, so
 * the tree shape and the writer-side fields (all, nlit's value) only ever
 * change under it.  Pruning: a node whose mask becomes empty and that has
 * no children is unlinked, then freed by call_rcu() after a grace period;
 * its parent is considered next.  The caller only calls route_add() when a
 * filter gains its first subscriber on a shard and route_del() when it
 * loses its last, so one bit per shard is enough: no per-shard counts.
 *
 * Readers (route_match) take no lock.  They walk the topic's levels with
 * an explicit stack of (node, next level offset) frames, exactly like
 * trie_match(): at most TOPIC_LEVELS_MAX + 2 frames, because route_add()
 * asserts that filters have at most TOPIC_LEVELS_MAX levels and popping a
 * node at depth d pushes at most two nodes at depth d + 1.  Nothing is
 * allocated and each node is visited at most once, so the work is bounded
 * by the number of matching tree paths.
 *
 * Memory ordering.
 *  1. Publication: a node is fully initialised (parent, level, mask, no
 *     children) before it becomes reachable, either by cds_lfht_add(),
 *     which publishes with rcu_assign_pointer() semantics, or by
 *     rcu_assign_pointer() into the parent's plus/multi field.  Readers get
 *     node pointers only from cds_lfht_lookup() (which acts as
 *     rcu_dereference()) or rcu_dereference(), so they see the initialised
 *     contents.  parent, len and level never change afterwards.
 *  2. Masks are arrays of 64-bit words changed with relaxed atomic
 *     read-modify-writes by the (serialised) writer and read with relaxed
 *     atomic loads.  No other memory is published through a mask bit, so
 *     no acquire/release pairing is needed; atomicity rules out torn words,
 *     and coherence guarantees that a route_match() which happens after a
 *     route_add() returned (by whatever synchronisation tells the reader
 *     so) sees the bit.  A match racing with an add or delete may or may
 *     not see that change, which is the same outcome as running just
 *     before or just after it.
 *  3. nlit, the literal child count, is a hint read relaxed so readers
 *     skip the hash probe below leaves.  A stale zero can only hide a
 *     child being added concurrently (as in 2).  A child present for the
 *     whole match keeps nlit >= 1 for that whole time, so it is found.
 *  4. Reclamation: a node is unlinked (cds_lfht_del() or a NULL store into
 *     the parent's plus/multi) before call_rcu() frees it.  A reader that
 *     reached it earlier holds it only until its next quiescent state, and
 *     the grace period waits for that.  An unlinked node has an empty mask
 *     and no children, so a reader still holding it adds nothing.  Only
 *     such nodes are pruned, so every node on the path of a filter that
 *     stays in the index stays reachable: a filter that is never removed
 *     is always found.
 *  5. Key reuse: a freed node's address may come back as a new node, and
 *     addresses are part of the key.  A node is pruned only after all its
 *     children were unlinked, and rculfhash lookups never return a node
 *     whose removal completed, so no stale child can be found under a new
 *     parent that reuses an old parent's address.
 *
 * Threads: route_match(), route_add() and route_del() run on registered,
 * online QSBR threads (the shards; rculfhash and call_rcu() require it).
 * Those threads must go offline (rcu_thread_offline) before blocking, or
 * grace periods, and with them call_rcu() frees and the table's resizes,
 * stall.  route_new() and route_free() run with no reader or writer
 * active; route_free() may be called online, offline or unregistered.
 */
#include "ringmq/route.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <urcu-qsbr.h>
#include <urcu/rculfhash.h>

#include "ringmq/limits.h"
#include "ringmq/log.h"
#include "ringmq/topic.h"

#define MATCH_STACK (TOPIC_LEVELS_MAX + 2u)
/* Initial and minimum bucket count: a broker with any subscriptions has
 * hundreds of filter levels, so starting tiny only costs resizes. */
#define HT_BUCKETS_MIN 1024ul

struct rnode {
	struct cds_lfht_node ht; /* in r->ht when a literal child */
	struct rcu_head rcu;
	struct rnode *parent;
	struct rnode *plus;  /* '+' child, RCU-published */
	struct rnode *multi; /* '#' child, RCU-published */
	struct rnode *all_prev, *all_next; /* writer-only list of nodes */
	unsigned long nlit;  /* literal children; atomic, see 3. above */
	uint64_t mask[ROUTE_MASK_WORDS]; /* atomic words, see 2. above */
	uint32_t depth;
	uint32_t len;
	uint8_t level[];
};

struct route {
	pthread_mutex_t lock; /* serialises writers */
	struct cds_lfht *ht;
	struct rnode *root;
	struct rnode *all; /* every node but the root, under lock */
	size_t filters;    /* nodes with a non-empty mask; atomic */
	size_t nodes;      /* under lock */
};

struct key {
	const struct rnode *parent;
	const uint8_t *level;
	size_t len;
};

struct frame {
	const struct rnode *n;
	size_t off; /* next topic level starts here; > len: topic exhausted */
};

/* ------------------------------------------------------------------------
 * Keys and nodes
 * ---------------------------------------------------------------------- */

static inline unsigned long key_hash(const struct rnode *parent, uint64_t level_hash)
{
	uint64_t x = (uint64_t)(uintptr_t)parent;

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (unsigned long)(x ^ level_hash);
}

static int key_match(struct cds_lfht_node *node, const void *key)
{
	const struct rnode *n = caa_container_of(node, struct rnode, ht);
	const struct key *k = key;

	return n->parent == k->parent && n->len == k->len && memcmp(n->level, k->level, k->len) == 0;
}

static bool level_is(const uint8_t *level, size_t len, uint8_t c)
{
	return len == 1 && level[0] == c;
}

static bool mask_empty(const struct rnode *n)
{
	for (size_t i = 0; i < ROUTE_MASK_WORDS; i++)
		if (__atomic_load_n(&n->mask[i], __ATOMIC_RELAXED) != 0)
			return false;
	return true;
}

/* Writer side: the lock is held, so plain reads of plus/multi/nlit see the
 * writer's own latest stores. */
static bool has_children(const struct rnode *n)
{
	return n->plus != NULL || n->multi != NULL || n->nlit > 0;
}

static void node_free_rcu(struct rcu_head *head)
{
	free(caa_container_of(head, struct rnode, rcu));
}

/* Literal child of @n for @level, or NULL.  Reader or writer side. */
static struct rnode *lit_find(struct route *r, const struct rnode *n, const uint8_t *level, size_t len)
{
	struct key k = {.parent = n, .level = level, .len = len};
	struct cds_lfht_iter it;
	struct cds_lfht_node *hn;

	cds_lfht_lookup(r->ht, key_hash(n, topic_level_hash(level, len)), key_match, &k, &it);
	hn = cds_lfht_iter_get_node(&it);
	return hn ? caa_container_of(hn, struct rnode, ht) : NULL;
}

/* Writer side: the child of @n for filter level @level, or NULL. */
static struct rnode *child_get(struct route *r, struct rnode *n, const uint8_t *level, size_t len)
{
	if (level_is(level, len, '+'))
		return n->plus;
	if (level_is(level, len, '#'))
		return n->multi;
	if (n->nlit == 0)
		return NULL;
	return lit_find(r, n, level, len);
}

/* Create and publish a child of @n for @level (see 1. above). */
static struct rnode *child_make(struct route *r, struct rnode *n, const uint8_t *level, size_t len)
{
	struct rnode *c = calloc(1, sizeof(*c) + len);

	if (c == NULL)
		return NULL;
	cds_lfht_node_init(&c->ht);
	c->parent = n;
	c->depth = n->depth + 1;
	RMQ_ASSERT(c->depth <= TOPIC_LEVELS_MAX);
	c->len = (uint32_t)len;
	memcpy(c->level, level, len);
	c->all_next = r->all;
	if (r->all != NULL)
		r->all->all_prev = c;
	r->all = c;
	r->nodes++;
	if (level_is(level, len, '+')) {
		rcu_assign_pointer(n->plus, c);
	} else if (level_is(level, len, '#')) {
		rcu_assign_pointer(n->multi, c);
	} else {
		__atomic_store_n(&n->nlit, n->nlit + 1, __ATOMIC_RELAXED);
		cds_lfht_add(r->ht, key_hash(n, topic_level_hash(level, len)), &c->ht);
	}
	return c;
}

/* Unlink @c from the tree and the node list; the caller frees it. */
static void child_unlink(struct route *r, struct rnode *c)
{
	struct rnode *n = c->parent;

	if (n->plus == c) {
		rcu_assign_pointer(n->plus, NULL);
	} else if (n->multi == c) {
		rcu_assign_pointer(n->multi, NULL);
	} else {
		int ret = cds_lfht_del(r->ht, &c->ht);

		RMQ_ASSERT(ret == 0);
		__atomic_store_n(&n->nlit, n->nlit - 1, __ATOMIC_RELAXED);
	}
	if (c->all_prev != NULL)
		c->all_prev->all_next = c->all_next;
	else
		r->all = c->all_next;
	if (c->all_next != NULL)
		c->all_next->all_prev = c->all_prev;
	r->nodes--;
}

/* Unlink and defer-free @n and its ancestors while they are useless. */
static void prune(struct route *r, struct rnode *n)
{
	while (n != r->root && mask_empty(n) && !has_children(n)) {
		struct rnode *p = n->parent;

		child_unlink(r, n);
		call_rcu(&n->rcu, node_free_rcu);
		n = p;
	}
}

/* The node of filter @f, created with its path when @create.  Lock held. */
static struct rnode *path_walk(struct route *r, const uint8_t *f, size_t len, bool create)
{
	const uint8_t *p = f, *end = f + len;
	struct rnode *n = r->root;

	for (;;) {
		const uint8_t *e = memchr(p, '/', (size_t)(end - p));
		size_t l = e ? (size_t)(e - p) : (size_t)(end - p);
		struct rnode *c = child_get(r, n, p, l);

		if (c == NULL && !create)
			return NULL;
		if (c == NULL) {
			c = child_make(r, n, p, l);
			if (c == NULL) {
				prune(r, n);
				return NULL;
			}
		}
		n = c;
		if (e == NULL)
			return n;
		p = e + 1;
	}
}

/* ------------------------------------------------------------------------
 * Public interface
 * ---------------------------------------------------------------------- */

struct route *route_new(void)
{
	struct route *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->root = calloc(1, sizeof(*r->root));
	if (r->root == NULL)
		goto fail;
	/* cds_lfht_new() needs no registered thread. */
	r->ht = cds_lfht_new(HT_BUCKETS_MIN, HT_BUCKETS_MIN, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
	if (r->ht == NULL)
		goto fail;
	if (pthread_mutex_init(&r->lock, NULL) != 0)
		goto fail;
	return r;
fail:
	if (r->ht != NULL)
		(void)cds_lfht_destroy(r->ht, NULL); /* empty: cannot fail */
	free(r->root);
	free(r);
	return NULL;
}

struct route *route_free(struct route *r)
{
	struct rnode *n, *next;
	bool online;
	int ret;

	if (r == NULL)
		return NULL;
	/* No reader or writer runs, so nobody can hold a node: unhash the
	 * literal nodes (cds_lfht_destroy() wants an empty table), destroy
	 * the table, whose resize worker may still be walking it, and only
	 * then free the nodes, without a grace period.  Nodes pruned earlier
	 * are owned by their pending call_rcu(); rcu_barrier() waits for them
	 * (callers at exit do so before this, from an offline thread). */
	for (n = r->all; n != NULL; n = n->all_next) {
		if (n->parent->plus == n || n->parent->multi == n)
			continue;
		ret = cds_lfht_del(r->ht, &n->ht);
		RMQ_ASSERT(ret == 0);
	}
	/* cds_lfht_destroy() waits for a queued resize, and a resize waits
	 * for a grace period: an online caller would wait for itself. */
	online = rcu_read_ongoing();
	if (online)
		rcu_thread_offline();
	ret = cds_lfht_destroy(r->ht, NULL);
	if (online)
		rcu_thread_online();
	RMQ_ASSERT(ret == 0);
	for (n = r->all; n != NULL; n = next) {
		next = n->all_next;
		free(n);
	}
	pthread_mutex_destroy(&r->lock);
	free(r->root);
	free(r);
	return NULL;
}

int route_add(struct route *r, const uint8_t *f, size_t len, unsigned shard)
{
	uint64_t bit = 1ull << (shard % 64);
	struct rnode *n;

	RMQ_ASSERT(r != NULL);
	RMQ_ASSERT(shard < SHARDS_MAX);
	/* Valid and bounded: the level bound is what bounds route_match()'s
	 * stack. */
	RMQ_ASSERT(topic_filter_check(f, len, TOPIC_LEVELS_MAX) == 0);
	pthread_mutex_lock(&r->lock);
	n = path_walk(r, f, len, true);
	if (n == NULL) {
		pthread_mutex_unlock(&r->lock);
		return -ENOMEM;
	}
	if (mask_empty(n))
		__atomic_fetch_add(&r->filters, 1, __ATOMIC_RELAXED);
	/* Idempotent: setting a set bit changes nothing. */
	__atomic_fetch_or(&n->mask[shard / 64], bit, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

int route_del(struct route *r, const uint8_t *f, size_t len, unsigned shard)
{
	uint64_t bit = 1ull << (shard % 64);
	struct rnode *n;

	RMQ_ASSERT(r != NULL);
	RMQ_ASSERT(shard < SHARDS_MAX);
	RMQ_ASSERT(len > 0);
	pthread_mutex_lock(&r->lock);
	n = path_walk(r, f, len, false);
	if (n == NULL || (__atomic_load_n(&n->mask[shard / 64], __ATOMIC_RELAXED) & bit) == 0) {
		pthread_mutex_unlock(&r->lock);
		return -ENOENT;
	}
	__atomic_fetch_and(&n->mask[shard / 64], ~bit, __ATOMIC_RELAXED);
	if (mask_empty(n))
		__atomic_fetch_sub(&r->filters, 1, __ATOMIC_RELAXED);
	prune(r, n);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

static inline void mask_or(struct route_mask *m, const struct rnode *n)
{
	for (size_t i = 0; i < ROUTE_MASK_WORDS; i++)
		m->w[i] |= __atomic_load_n(&n->mask[i], __ATOMIC_RELAXED);
}

void route_match(struct route *r, const uint8_t *t, size_t len, struct route_mask *mask)
{
	struct frame stack[MATCH_STACK];
	size_t sp = 0;
	bool dollar;

	RMQ_ASSERT(r != NULL);
	RMQ_ASSERT(mask != NULL);
	RMQ_DEBUG_ASSERT(rcu_read_ongoing());
	if (len == 0)
		return;
	dollar = t[0] == '$';
	stack[sp++] = (struct frame){.n = r->root, .off = 0};
	while (sp > 0) {
		struct frame fr = stack[--sp];
		const struct rnode *n = fr.n, *c;
		/* [MQTT-4.7.2-1]: no wildcard first level for '$' topics. */
		bool wild_ok = !(dollar && n == r->root);
		const uint8_t *p, *e;
		size_t l;

		/* [MQTT-4.7.1-2]: '#' matches the parent level and below. */
		c = rcu_dereference(n->multi);
		if (c != NULL && wild_ok)
			mask_or(mask, c);
		if (fr.off > len) {
			mask_or(mask, n);
			continue;
		}
		p = t + fr.off;
		e = memchr(p, '/', len - fr.off);
		l = e ? (size_t)(e - p) : len - fr.off;
		RMQ_ASSERT(sp + 2 <= MATCH_STACK);
		if (__atomic_load_n(&n->nlit, __ATOMIC_RELAXED) > 0) {
			c = lit_find(r, n, p, l);
			if (c != NULL)
				stack[sp++] = (struct frame){.n = c, .off = fr.off + l + 1};
		}
		/* [MQTT-4.7.1-3]: '+' matches one level, possibly empty. */
		c = rcu_dereference(n->plus);
		if (c != NULL && wild_ok)
			stack[sp++] = (struct frame){.n = c, .off = fr.off + l + 1};
	}
}

size_t route_filters(struct route *r)
{
	RMQ_ASSERT(r != NULL);
	return __atomic_load_n(&r->filters, __ATOMIC_RELAXED);
}
