/*
 * trie.c - a shard's local subscription index: topic filter -> entries.
 *
 * One node per filter level.  A node keeps its '+' and '#' children in two
 * direct pointers and its literal children in an open-addressing table
 * (linear probing, load at most 1/2, backward-shift deletion so there are
 * no tombstones).  A slot holds the child's level hash next to the
 * pointer, so a probe that misses never touches the child's cache line.
 * The entries of the filter that ends at a node live in an array, one per
 * owner; once a node has more than OWN_INDEX_MIN entries an owner -> slot
 * index (same probing scheme) makes add and delete O(1), because a filter
 * with 100k subscribers is ordinary fan-out.
 *
 * Invariants (checked by trie_sanity()): every node but the root holds
 * entries or has children, so trie_del() prunes up to the first node that
 * is still needed; a '#' node has no children; a literal child is reachable
 * from its home slot without a gap; t->count is the sum of entry counts.
 *
 * Matching is iterative, with an explicit stack on the C stack: a frame is
 * (node, offset of the next topic level).  Popping a node at depth d pushes
 * at most two nodes at depth d + 1 (the literal child and the '+' child),
 * so the stack holds at most one pending frame per depth plus one; the
 * depth is bounded by the filter level limit that trie_add() asserts
 * (TOPIC_LEVELS_MAX), so TOPIC_LEVELS_MAX + 2 frames (16 KiB) always
 * suffice whatever the topic.  A '#' child matches whenever its parent is
 * reached, topic exhausted or not, and is reported without being pushed.
 * Each node is reached by exactly one path, so each matching filter is
 * reported once.  Matching allocates nothing and hashes each topic level
 * once per node that looks it up.
 *
 * Destruction and trie_sanity() walk the tree through parent pointers,
 * not recursion, for the same depth reason.
 */
#include "ringmq/trie.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ringmq/limits.h"
#include "ringmq/log.h"
#include "ringmq/topic.h"

/* Nodes with more entries than this get an owner index; it is dropped
 * again at OWN_INDEX_DROP so a node hovering at the limit does not rebuild
 * it on every change. */
#define OWN_INDEX_MIN 8u
#define OWN_INDEX_DROP 4u
#define KIDS_CAP_MIN 4u
#define ENTS_CAP_MIN 2u
#define MATCH_STACK (TOPIC_LEVELS_MAX + 2u)

struct node;

/* A literal child slot: n == NULL means empty. */
struct kid {
	uint64_t h;
	struct node *n;
};

struct node {
	struct node *parent;
	struct node *plus;  /* the '+' child */
	struct node *multi; /* the '#' child */
	struct kid *kids;   /* literal children, kid_cap slots (a power of two) */
	struct trie_entry *ents;
	uint32_t *own; /* owner index: ents position + 1 per slot, 0 = empty */
	uint64_t h;    /* topic_level_hash(level) */
	uint32_t kid_cap, kid_count;
	uint32_t ent_cap, ent_count;
	uint32_t own_cap;
	uint32_t depth;
	uint32_t len;
	uint8_t level[];
};

struct trie {
	struct node *root;
	size_t count; /* entries */
	size_t nodes; /* excluding the root */
};

struct frame {
	const struct node *n;
	size_t off; /* next topic level starts here; > len: topic exhausted */
};

/* ------------------------------------------------------------------------
 * Nodes and literal children
 * ---------------------------------------------------------------------- */

static struct node *node_new(struct node *parent, const uint8_t *level, size_t len, uint64_t h)
{
	struct node *n = calloc(1, sizeof(*n) + len);

	if (n == NULL)
		return NULL;
	n->parent = parent;
	n->h = h;
	n->depth = parent ? parent->depth + 1 : 0;
	n->len = (uint32_t)len;
	if (len > 0)
		memcpy(n->level, level, len);
	return n;
}

static void node_free(struct node *n)
{
	free(n->kids);
	free(n->ents);
	free(n->own);
	free(n);
}

static bool node_has_kids(const struct node *n)
{
	return n->plus != NULL || n->multi != NULL || n->kid_count > 0;
}

static struct node *kid_find(const struct node *n, const uint8_t *level, size_t len, uint64_t h)
{
	uint32_t mask = n->kid_cap - 1;

	if (n->kid_count == 0)
		return NULL;
	for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
		const struct kid *k = &n->kids[i];

		if (k->n == NULL)
			return NULL;
		if (k->h == h && k->n->len == len && memcmp(k->n->level, level, len) == 0)
			return k->n;
	}
}

/* Slot of child @c, which must be a literal child of @n. */
static uint32_t kid_slot(const struct node *n, const struct node *c)
{
	uint32_t mask = n->kid_cap - 1;
	uint32_t i = (uint32_t)c->h & mask;

	while (n->kids[i].n != c) {
		RMQ_ASSERT(n->kids[i].n != NULL);
		i = (i + 1) & mask;
	}
	return i;
}

static void kid_place(struct kid *kids, uint32_t cap, uint64_t h, struct node *c)
{
	uint32_t i = (uint32_t)h & (cap - 1);

	while (kids[i].n != NULL)
		i = (i + 1) & (cap - 1);
	kids[i] = (struct kid){.h = h, .n = c};
}

static int kids_resize(struct node *n, uint32_t cap)
{
	struct kid *kids = calloc(cap, sizeof(*kids));

	if (kids == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < n->kid_cap; i++)
		if (n->kids[i].n != NULL)
			kid_place(kids, cap, n->kids[i].h, n->kids[i].n);
	free(n->kids);
	n->kids = kids;
	n->kid_cap = cap;
	return 0;
}

static int kid_insert(struct node *n, struct node *c)
{
	if (2 * (n->kid_count + 1) > n->kid_cap) {
		int r = kids_resize(n, n->kid_cap ? 2 * n->kid_cap : KIDS_CAP_MIN);

		if (r < 0)
			return r;
	}
	kid_place(n->kids, n->kid_cap, c->h, c);
	n->kid_count++;
	return 0;
}

/* Backward-shift deletion: move later members of the probe run into the
 * hole when their home slot does not lie cyclically in (hole, j]. */
static void kid_remove(struct node *n, struct node *c)
{
	uint32_t mask = n->kid_cap - 1;
	uint32_t hole = kid_slot(n, c);

	for (uint32_t j = (hole + 1) & mask; n->kids[j].n != NULL; j = (j + 1) & mask) {
		uint32_t home = (uint32_t)n->kids[j].h & mask;

		if (((j - home) & mask) >= ((j - hole) & mask)) {
			n->kids[hole] = n->kids[j];
			hole = j;
		}
	}
	n->kids[hole] = (struct kid){0};
	n->kid_count--;
	if (n->kid_count == 0) {
		free(n->kids);
		n->kids = NULL;
		n->kid_cap = 0;
	} else if (n->kid_cap > KIDS_CAP_MIN && 8 * n->kid_count <= n->kid_cap) {
		/* Shrinking is an optimisation; on allocation failure the
		 * table simply stays large. */
		(void)kids_resize(n, n->kid_cap / 2);
	}
}

static bool level_is(const uint8_t *level, size_t len, uint8_t c)
{
	return len == 1 && level[0] == c;
}

/* The child of @n for filter level @level (wildcards included), or NULL. */
static struct node *child_get(const struct node *n, const uint8_t *level, size_t len, uint64_t h)
{
	if (level_is(level, len, '+'))
		return n->plus;
	if (level_is(level, len, '#'))
		return n->multi;
	return kid_find(n, level, len, h);
}

static int child_link(struct node *n, struct node *c)
{
	if (level_is(c->level, c->len, '+')) {
		n->plus = c;
		return 0;
	}
	if (level_is(c->level, c->len, '#')) {
		n->multi = c;
		return 0;
	}
	return kid_insert(n, c);
}

static void child_unlink(struct node *n, struct node *c)
{
	if (n->plus == c)
		n->plus = NULL;
	else if (n->multi == c)
		n->multi = NULL;
	else
		kid_remove(n, c);
}

/* Free @n and its ancestors while they hold nothing and lead nowhere. */
static void prune(struct trie *t, struct node *n)
{
	while (n != t->root && n->ent_count == 0 && !node_has_kids(n)) {
		struct node *p = n->parent;

		child_unlink(p, n);
		node_free(n);
		t->nodes--;
		n = p;
	}
}

/* ------------------------------------------------------------------------
 * Entries and the owner index
 * ---------------------------------------------------------------------- */

static inline uint32_t owner_hash(const void *owner)
{
	uint64_t x = (uint64_t)(uintptr_t)owner;

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (uint32_t)x;
}

/* Position of @owner's entry in @n->ents, or UINT32_MAX. */
static uint32_t ent_find(const struct node *n, const void *owner)
{
	if (n->own == NULL) {
		for (uint32_t i = 0; i < n->ent_count; i++)
			if (n->ents[i].owner == owner)
				return i;
		return UINT32_MAX;
	}
	for (uint32_t i = owner_hash(owner) & (n->own_cap - 1);; i = (i + 1) & (n->own_cap - 1)) {
		uint32_t v = n->own[i];

		if (v == 0)
			return UINT32_MAX;
		if (n->ents[v - 1].owner == owner)
			return v - 1;
	}
}

/* Slot of the index that points at position @pos, which must be there. */
static uint32_t own_slot(const struct node *n, uint32_t pos)
{
	uint32_t mask = n->own_cap - 1;
	uint32_t i = owner_hash(n->ents[pos].owner) & mask;

	while (n->own[i] != pos + 1) {
		RMQ_ASSERT(n->own[i] != 0);
		i = (i + 1) & mask;
	}
	return i;
}

static void own_place(uint32_t *own, uint32_t cap, const void *owner, uint32_t pos)
{
	uint32_t i = owner_hash(owner) & (cap - 1);

	while (own[i] != 0)
		i = (i + 1) & (cap - 1);
	own[i] = pos + 1;
}

/* Rebuild the owner index with @cap slots over the first @count entries. */
static int own_rebuild(struct node *n, uint32_t cap, uint32_t count)
{
	uint32_t *own = calloc(cap, sizeof(*own));

	if (own == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < count; i++)
		own_place(own, cap, n->ents[i].owner, i);
	free(n->own);
	n->own = own;
	n->own_cap = cap;
	return 0;
}

static void own_remove(struct node *n, uint32_t pos)
{
	uint32_t mask = n->own_cap - 1;
	uint32_t hole = own_slot(n, pos);

	for (uint32_t j = (hole + 1) & mask; n->own[j] != 0; j = (j + 1) & mask) {
		uint32_t home = owner_hash(n->ents[n->own[j] - 1].owner) & mask;

		if (((j - home) & mask) >= ((j - hole) & mask)) {
			n->own[hole] = n->own[j];
			hole = j;
		}
	}
	n->own[hole] = 0;
}

/* Make room for one more entry; on failure nothing observable changed. */
static int ent_reserve(struct node *n)
{
	uint32_t want = n->ent_count + 1;

	if (want > n->ent_cap) {
		uint32_t cap = n->ent_cap ? 2 * n->ent_cap : ENTS_CAP_MIN;
		struct trie_entry *ents = realloc(n->ents, cap * sizeof(*ents));

		if (ents == NULL)
			return -ENOMEM;
		n->ents = ents;
		n->ent_cap = cap;
	}
	if (want > OWN_INDEX_MIN && 2 * want > n->own_cap) {
		uint32_t cap = n->own_cap ? 2 * n->own_cap : 4 * OWN_INDEX_MIN;

		return own_rebuild(n, cap, n->ent_count);
	}
	return 0;
}

static int ent_add(struct node *n, const struct trie_entry *e, bool *ret_replaced)
{
	uint32_t pos = ent_find(n, e->owner);
	int r;

	if (pos != UINT32_MAX) {
		n->ents[pos] = *e;
		*ret_replaced = true;
		return 0;
	}
	r = ent_reserve(n);
	if (r < 0)
		return r;
	pos = n->ent_count++;
	n->ents[pos] = *e;
	if (n->own != NULL)
		own_place(n->own, n->own_cap, e->owner, pos);
	*ret_replaced = false;
	return 0;
}

static void ents_shrink(struct node *n)
{
	if (n->ent_count == 0) {
		free(n->ents);
		free(n->own);
		n->ents = NULL;
		n->own = NULL;
		n->ent_cap = n->own_cap = 0;
		return;
	}
	if (n->own != NULL && n->ent_count <= OWN_INDEX_DROP) {
		free(n->own);
		n->own = NULL;
		n->own_cap = 0;
	} else if (n->own != NULL && n->own_cap > 4 * OWN_INDEX_MIN && 8 * n->ent_count <= n->own_cap) {
		(void)own_rebuild(n, n->own_cap / 2, n->ent_count); /* failure: stays large */
	}
	if (n->ent_cap > ENTS_CAP_MIN && 4 * n->ent_count <= n->ent_cap) {
		struct trie_entry *ents = realloc(n->ents, (n->ent_cap / 2) * sizeof(*ents));

		if (ents != NULL) { /* failure: stays large */
			n->ents = ents;
			n->ent_cap /= 2;
		}
	}
}

/* Swap-remove the entry at @pos, keeping the owner index in step. */
static void ent_del(struct node *n, uint32_t pos)
{
	uint32_t last = n->ent_count - 1;

	if (n->own != NULL) {
		own_remove(n, pos);
		if (pos != last)
			n->own[own_slot(n, last)] = pos + 1;
	}
	n->ents[pos] = n->ents[last];
	n->ent_count--;
	ents_shrink(n);
}

/* ------------------------------------------------------------------------
 * Public interface
 * ---------------------------------------------------------------------- */

struct trie *trie_new(void)
{
	struct trie *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->root = node_new(NULL, NULL, 0, topic_level_hash(NULL, 0));
	if (t->root == NULL) {
		free(t);
		return NULL;
	}
	return t;
}

/* Detach and return one child of @n, or NULL.  Destruction only: the
 * literal table is consumed from its end, using kid_cap as the cursor. */
static struct node *child_take(struct node *n)
{
	struct node *c;

	if ((c = n->plus) != NULL || (c = n->multi) != NULL) {
		child_unlink(n, c);
		return c;
	}
	while (n->kid_cap > 0) {
		c = n->kids[--n->kid_cap].n;
		if (c != NULL)
			return c;
	}
	return NULL;
}

struct trie *trie_free(struct trie *t)
{
	struct node *n;

	if (t == NULL)
		return NULL;
	n = t->root;
	while (n != NULL) {
		struct node *c = child_take(n);

		if (c != NULL) {
			n = c;
		} else {
			struct node *p = n->parent;

			node_free(n);
			n = p;
		}
	}
	free(t);
	return NULL;
}

/* The node of filter @f, created with its path when @create. */
static struct node *path_walk(struct trie *t, const uint8_t *f, size_t len, bool create)
{
	const uint8_t *p = f, *end = f + len;
	struct node *n = t->root;

	for (;;) {
		const uint8_t *e = memchr(p, '/', (size_t)(end - p));
		size_t l = e ? (size_t)(e - p) : (size_t)(end - p);
		uint64_t h = topic_level_hash(p, l);
		struct node *c = child_get(n, p, l, h);

		if (c == NULL && !create)
			return NULL;
		if (c == NULL) {
			c = node_new(n, p, l, h);
			if (c == NULL || child_link(n, c) < 0) {
				free(c);
				prune(t, n);
				return NULL;
			}
			t->nodes++;
		}
		n = c;
		if (e == NULL)
			return n;
		p = e + 1;
	}
}

int trie_add(struct trie *t, const uint8_t *f, size_t len, const struct trie_entry *e, bool *ret_first,
	     bool *ret_replaced)
{
	struct node *n;
	bool first, replaced;
	int r;

	RMQ_ASSERT(t != NULL);
	RMQ_ASSERT(e != NULL);
	RMQ_ASSERT(e->owner != NULL);
	/* The caller validated the filter; the level bound is what keeps
	 * trie_match()'s stack bounded. */
	RMQ_ASSERT(topic_filter_check(f, len, TOPIC_LEVELS_MAX) == 0);
	n = path_walk(t, f, len, true);
	if (n == NULL)
		return -ENOMEM;
	first = n->ent_count == 0;
	r = ent_add(n, e, &replaced);
	if (r < 0) {
		prune(t, n);
		return r;
	}
	if (!replaced)
		t->count++;
	if (ret_first != NULL)
		*ret_first = first;
	if (ret_replaced != NULL)
		*ret_replaced = replaced;
	return 0;
}

int trie_del(struct trie *t, const uint8_t *f, size_t len, const void *owner, bool *ret_last)
{
	struct node *n;
	uint32_t pos;
	bool last;

	RMQ_ASSERT(t != NULL);
	RMQ_ASSERT(owner != NULL);
	RMQ_ASSERT(len > 0);
	n = path_walk(t, f, len, false);
	if (n == NULL)
		return -ENOENT;
	pos = ent_find(n, owner);
	if (pos == UINT32_MAX)
		return -ENOENT;
	ent_del(n, pos);
	t->count--;
	last = n->ent_count == 0;
	prune(t, n);
	if (ret_last != NULL)
		*ret_last = last;
	return 0;
}

static void report(const struct node *n, trie_match_fn fn, void *ctx)
{
	for (uint32_t i = 0; i < n->ent_count; i++)
		fn(ctx, &n->ents[i]);
}

void trie_match(const struct trie *t, const uint8_t *topic, size_t len, trie_match_fn fn, void *ctx)
{
	struct frame stack[MATCH_STACK];
	size_t sp = 0;
	bool dollar;

	RMQ_ASSERT(t != NULL);
	RMQ_ASSERT(fn != NULL);
	RMQ_DEBUG_ASSERT(topic_name_check(topic, len, UINT32_MAX) == 0);
	if (len == 0)
		return;
	dollar = topic[0] == '$';
	stack[sp++] = (struct frame){.n = t->root, .off = 0};
	while (sp > 0) {
		struct frame fr = stack[--sp];
		const struct node *n = fr.n;
		/* [MQTT-4.7.2-1]: no wildcard first level for '$' topics. */
		bool wild_ok = !(dollar && n == t->root);
		const uint8_t *p, *e;
		size_t l;

		/* [MQTT-4.7.1-2]: '#' matches the parent level and below. */
		if (n->multi != NULL && wild_ok)
			report(n->multi, fn, ctx);
		if (fr.off > len) {
			report(n, fn, ctx);
			continue;
		}
		p = topic + fr.off;
		e = memchr(p, '/', len - fr.off);
		l = e ? (size_t)(e - p) : len - fr.off;
		RMQ_ASSERT(sp + 2 <= MATCH_STACK);
		if (n->kid_count > 0) {
			const struct node *c = kid_find(n, p, l, topic_level_hash(p, l));

			if (c != NULL)
				stack[sp++] = (struct frame){.n = c, .off = fr.off + l + 1};
		}
		/* [MQTT-4.7.1-3]: '+' matches one level, possibly empty. */
		if (n->plus != NULL && wild_ok)
			stack[sp++] = (struct frame){.n = n->plus, .off = fr.off + l + 1};
	}
}

size_t trie_count(const struct trie *t)
{
	RMQ_ASSERT(t != NULL);
	return t->count;
}

/* ------------------------------------------------------------------------
 * Sanity
 * ---------------------------------------------------------------------- */

/* The child of @p after @c in walk order ('+', '#', then the literal
 * table), or the first one when @c is NULL. */
static const struct node *child_next(const struct node *p, const struct node *c)
{
	uint32_t i = 0;

	if (c == NULL && p->plus != NULL)
		return p->plus;
	if ((c == NULL || c == p->plus) && p->multi != NULL)
		return p->multi;
	if (c != NULL && c != p->plus && c != p->multi)
		i = kid_slot(p, c) + 1;
	for (; i < p->kid_cap; i++)
		if (p->kids[i].n != NULL)
			return p->kids[i].n;
	return NULL;
}

static void sanity_ents(const struct node *n)
{
	uint32_t used = 0;

	RMQ_ASSERT(n->ent_count <= n->ent_cap);
	RMQ_ASSERT((n->ents == NULL) == (n->ent_cap == 0));
	for (uint32_t i = 0; i < n->ent_count; i++) {
		RMQ_ASSERT(n->ents[i].owner != NULL);
		if (n->own != NULL)
			RMQ_ASSERT(ent_find(n, n->ents[i].owner) == i);
		else
			for (uint32_t j = 0; j < i; j++)
				RMQ_ASSERT(n->ents[j].owner != n->ents[i].owner);
	}
	if (n->own == NULL) {
		RMQ_ASSERT(n->ent_count <= OWN_INDEX_MIN);
		return;
	}
	RMQ_ASSERT((n->own_cap & (n->own_cap - 1)) == 0);
	RMQ_ASSERT(2 * n->ent_count <= n->own_cap);
	for (uint32_t i = 0; i < n->own_cap; i++) {
		RMQ_ASSERT(n->own[i] <= n->ent_count);
		used += n->own[i] != 0;
	}
	RMQ_ASSERT(used == n->ent_count);
}

static void sanity_kids(const struct node *n)
{
	uint32_t used = 0;

	RMQ_ASSERT((n->kid_cap & (n->kid_cap - 1)) == 0);
	RMQ_ASSERT((n->kids == NULL) == (n->kid_cap == 0));
	RMQ_ASSERT(2 * n->kid_count <= n->kid_cap);
	for (uint32_t i = 0; i < n->kid_cap; i++) {
		const struct node *c = n->kids[i].n;

		if (c == NULL)
			continue;
		used++;
		RMQ_ASSERT(c->parent == n);
		RMQ_ASSERT(n->kids[i].h == c->h);
		RMQ_ASSERT(!level_is(c->level, c->len, '+'));
		RMQ_ASSERT(!level_is(c->level, c->len, '#'));
		/* Reachable from its home slot: no gap in its probe run. */
		RMQ_ASSERT(kid_find(n, c->level, c->len, c->h) == c);
	}
	RMQ_ASSERT(used == n->kid_count);
	if (n->plus != NULL)
		RMQ_ASSERT(n->plus->parent == n && level_is(n->plus->level, n->plus->len, '+'));
	if (n->multi != NULL)
		RMQ_ASSERT(n->multi->parent == n && level_is(n->multi->level, n->multi->len, '#'));
}

static void sanity_node(const struct trie *t, const struct node *n)
{
	RMQ_ASSERT(n->h == topic_level_hash(n->level, n->len));
	RMQ_ASSERT(memchr(n->level, '/', n->len) == NULL);
	RMQ_ASSERT(n->depth <= TOPIC_LEVELS_MAX);
	if (n == t->root) {
		RMQ_ASSERT(n->parent == NULL && n->depth == 0);
	} else {
		RMQ_ASSERT(n->parent != NULL);
		RMQ_ASSERT(n->depth == n->parent->depth + 1);
		/* Pruned: nothing useless stays behind a trie_del(). */
		RMQ_ASSERT(n->ent_count > 0 || node_has_kids(n));
		if (topic_has_wildcard(n->level, n->len))
			RMQ_ASSERT(n->len == 1);
	}
	if (level_is(n->level, n->len, '#'))
		RMQ_ASSERT(!node_has_kids(n));
	sanity_kids(n);
	sanity_ents(n);
}

void trie_sanity(const struct trie *t)
{
	const struct node *n, *c;
	size_t count = 0, nodes = 0;

	RMQ_ASSERT(t != NULL);
	RMQ_ASSERT(t->root != NULL);
	n = t->root;
	sanity_node(t, n);
	count += n->ent_count;
	c = child_next(n, NULL);
	for (;;) {
		if (c != NULL) {
			n = c;
			sanity_node(t, n);
			count += n->ent_count;
			nodes++;
			c = child_next(n, NULL);
		} else if (n == t->root) {
			break;
		} else {
			c = child_next(n->parent, n);
			n = n->parent;
		}
	}
	RMQ_ASSERT(count == t->count);
	RMQ_ASSERT(nodes == t->nodes);
}
