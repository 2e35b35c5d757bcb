/*
 * fuzz_topic.c - libFuzzer target for topic.c and trie.c.
 *
 * Input: lines separated by '\n'.  Every line but the last is a topic
 * filter; the last is a topic name.  Each line goes through all the
 * validators (which must never crash or read outside their view), then
 * every valid filter is added to a fresh trie under its own owner and the
 * trie's matches for the (valid) topic are compared, owner by owner, with
 * topic_match() over the filter list: each matching line reported exactly
 * once, nothing else.  A valid name used as a filter must match itself.
 * A line split by topic_share_split() must yield views inside the line.
 *
 * Failures abort through RMQ_ASSERT, which libFuzzer reports as a crash.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ringmq/limits.h"
#include "ringmq/log.h"
#include "ringmq/topic.h"
#include "ringmq/trie.h"

#define LINES_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct line {
	const uint8_t *p;
	size_t len;
	bool filter_ok;
};

struct tally {
	unsigned char seen[LINES_MAX];
	const char *owners;
};

static void on_match(void *ctx, const struct trie_entry *e)
{
	struct tally *t = ctx;
	size_t i = (size_t)((const char *)e->owner - t->owners);

	RMQ_ASSERT(i < LINES_MAX);
	RMQ_ASSERT(e->sub_id == i);
	t->seen[i]++;
}

static void check_line(const struct line *l)
{
	const uint8_t *g, *f;
	size_t gl, fl;
	int r;

	r = topic_share_split(l->p, l->len, &g, &gl, &f, &fl);
	RMQ_ASSERT(r == 0 || r == 1 || r == -EINVAL);
	if (r == 1) {
		RMQ_ASSERT(gl > 0 && fl > 0);
		RMQ_ASSERT(g > l->p && g + gl < f && f + fl == l->p + l->len);
		RMQ_ASSERT(!topic_has_wildcard(g, gl) && memchr(g, '/', gl) == NULL);
	}
	(void)topic_has_wildcard(l->p, l->len);
	/* A valid name is a valid filter too, and matches itself. */
	if (topic_name_check(l->p, l->len, TOPIC_LEVELS_MAX) == 0) {
		RMQ_ASSERT(topic_filter_check(l->p, l->len, TOPIC_LEVELS_MAX) == 0);
		RMQ_ASSERT(topic_match(l->p, l->len, l->p, l->len));
	}
}

/* Compare the trie with topic_match() for topic @t over filters @ls. */
static void check_trie(const struct line *ls, size_t n, const struct line *t)
{
	static char owners[LINES_MAX];
	struct tally tally = {.owners = owners};
	struct trie *trie = trie_new();

	if (trie == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		struct trie_entry e = {.owner = (void *)&owners[i], .sub_id = (uint32_t)i};

		if (ls[i].filter_ok && trie_add(trie, ls[i].p, ls[i].len, &e, NULL, NULL) != 0)
			goto done; /* out of memory: nothing to compare */
	}
	trie_sanity(trie);
	trie_match(trie, t->p, t->len, on_match, &tally);
	for (size_t i = 0; i < n; i++) {
		bool want = ls[i].filter_ok && topic_match(ls[i].p, ls[i].len, t->p, t->len);

		RMQ_ASSERT(tally.seen[i] == (want ? 1 : 0));
	}
	for (size_t i = 0; i < n; i++)
		if (ls[i].filter_ok)
			RMQ_ASSERT(trie_del(trie, ls[i].p, ls[i].len, &owners[i], NULL) == 0);
	RMQ_ASSERT(trie_count(trie) == 0);
	trie_sanity(trie);
done:
	trie_free(trie);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct line ls[LINES_MAX + 1];
	size_t n = 0;
	const uint8_t *p = data, *end = data + size;

	if (size == 0)
		return 0;
	while (n < LINES_MAX + 1) {
		const uint8_t *e = memchr(p, '\n', (size_t)(end - p));

		ls[n].p = p;
		ls[n].len = e ? (size_t)(e - p) : (size_t)(end - p);
		ls[n].filter_ok = topic_filter_check(ls[n].p, ls[n].len, TOPIC_LEVELS_MAX) == 0;
		check_line(&ls[n]);
		n++;
		if (e == NULL)
			break;
		p = e + 1;
	}
	if (n < 2 || topic_name_check(ls[n - 1].p, ls[n - 1].len, TOPIC_LEVELS_MAX) != 0)
		return 0;
	check_trie(ls, n - 1, &ls[n - 1]);
	return 0;
}
