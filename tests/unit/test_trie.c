/*
 * test_trie.c - the shard-local subscription trie (trie.c).
 *
 * Besides the direct cases (add, replace, delete, first/last flags), the
 * trie is checked against brute force: random filters and topics over a
 * small alphabet of levels (so that matches are frequent and '$', empty
 * levels, '+' and '#' all occur), with trie_match() required to report
 * exactly the (filter, owner) pairs for which topic_match() holds, each
 * once.  A churn test subscribes and unsubscribes at random, runs
 * trie_sanity() along the way and expects an empty trie at the end.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringmq/limits.h"
#include "ringmq/topic.h"
#include "ringmq/trie.h"

#define S(x) (const uint8_t *)(x), strlen(x)

/* Collects what trie_match() reports. */
struct hits {
	size_t n;
	struct trie_entry e[4096];
};

static void collect(void *ctx, const struct trie_entry *e)
{
	struct hits *h = ctx;

	cr_assert_lt(h->n, sizeof(h->e) / sizeof(h->e[0]));
	h->e[h->n++] = *e;
}

static size_t match_count(const struct trie *t, const char *topic, struct hits *h)
{
	h->n = 0;
	trie_match(t, S(topic), collect, h);
	return h->n;
}

static int add(struct trie *t, const char *f, void *owner, uint32_t sub_id, bool *first, bool *replaced)
{
	struct trie_entry e = {.owner = owner, .sub_id = sub_id, .options = 1};

	return trie_add(t, S(f), &e, first, replaced);
}

Test(trie, add_replace_delete_and_match)
{
	struct trie *t = trie_new();
	struct hits h;
	int o1, o2;
	bool first, replaced, last;

	cr_assert_not_null(t);
	cr_expect_eq(add(t, "a/b", &o1, 1, &first, &replaced), 0);
	cr_expect(first);
	cr_expect_not(replaced);
	cr_expect_eq(add(t, "a/b", &o2, 2, &first, &replaced), 0);
	cr_expect_not(first);
	cr_expect_not(replaced);
	/* [MQTT-3.8.4-3]: the same owner again replaces its entry. */
	cr_expect_eq(add(t, "a/b", &o1, 7, &first, &replaced), 0);
	cr_expect_not(first);
	cr_expect(replaced);
	cr_expect_eq(trie_count(t), 2);
	cr_expect_eq(match_count(t, "a/b", &h), 2);
	for (size_t i = 0; i < h.n; i++)
		cr_expect_eq(h.e[i].sub_id, h.e[i].owner == &o1 ? 7u : 2u);
	cr_expect_eq(match_count(t, "a", &h), 0);
	cr_expect_eq(match_count(t, "a/b/c", &h), 0);
	cr_expect_eq(trie_del(t, S("a/b"), &o1, &last), 0);
	cr_expect_not(last);
	cr_expect_eq(trie_del(t, S("a/b"), &o1, &last), -ENOENT);
	cr_expect_eq(trie_del(t, S("a/b"), &o2, &last), 0);
	cr_expect(last);
	cr_expect_eq(trie_count(t), 0);
	cr_expect_eq(match_count(t, "a/b", &h), 0);
	trie_sanity(t);
	cr_expect_null(trie_free(t));
}

Test(trie, delete_of_unknown_filter_or_owner_is_enoent)
{
	struct trie *t = trie_new();
	int o1, o2;

	cr_expect_eq(trie_del(t, S("x"), &o1, NULL), -ENOENT);
	cr_expect_eq(add(t, "a/+/c", &o1, 0, NULL, NULL), 0);
	cr_expect_eq(trie_del(t, S("a/+"), &o1, NULL), -ENOENT, "interior node, no entry");
	cr_expect_eq(trie_del(t, S("a/+/c/d"), &o1, NULL), -ENOENT);
	cr_expect_eq(trie_del(t, S("a/+/c"), &o2, NULL), -ENOENT);
	cr_expect_eq(trie_del(t, S("a/b/c"), &o1, NULL), -ENOENT, "a literal is not '+'");
	trie_sanity(t);
	cr_expect_eq(trie_del(t, S("a/+/c"), &o1, NULL), 0);
	trie_sanity(t);
	trie_free(t);
	cr_expect_null(trie_free(NULL));
}

Test(trie, wildcards_and_dollar_topics)
{
	struct trie *t = trie_new();
	struct hits h;
	int o;

	cr_assert_eq(add(t, "#", &o, 1, NULL, NULL), 0);
	cr_assert_eq(add(t, "+/monitor/Clients", &o, 2, NULL, NULL), 0);
	cr_assert_eq(add(t, "$SYS/#", &o, 3, NULL, NULL), 0);
	cr_assert_eq(add(t, "sport/#", &o, 4, NULL, NULL), 0);
	cr_assert_eq(add(t, "+/+", &o, 5, NULL, NULL), 0);
	cr_assert_eq(add(t, "/+", &o, 6, NULL, NULL), 0);
	cr_assert_eq(add(t, "+", &o, 7, NULL, NULL), 0);
	/* [MQTT-4.7.2-1] */
	cr_expect_eq(match_count(t, "$SYS/monitor/Clients", &h), 1);
	cr_expect_eq(h.e[0].sub_id, 3);
	/* [MQTT-4.7.1-2]: "sport/#" matches "sport"; "#" and "+" too. */
	cr_expect_eq(match_count(t, "sport", &h), 3);
	/* 4.7.1.3: "/finance" matches "+/+" and "/+", not "+"; and "#". */
	cr_expect_eq(match_count(t, "/finance", &h), 3);
	for (size_t i = 0; i < h.n; i++)
		cr_expect(h.e[i].sub_id == 1 || h.e[i].sub_id == 5 || h.e[i].sub_id == 6);
	trie_sanity(t);
	trie_free(t);
}

Test(trie, owner_is_reported_once_per_matching_filter)
{
	static const char *const filters[] = {"a/b", "a/+", "a/#", "+/b", "#", "+/+", "a/b/#", "a/c"};
	struct trie *t = trie_new();
	struct hits h;
	int o;
	unsigned seen = 0;

	for (uint32_t i = 0; i < 8; i++)
		cr_assert_eq(add(t, filters[i], &o, i, NULL, NULL), 0);
	cr_expect_eq(match_count(t, "a/b", &h), 7);
	for (size_t i = 0; i < h.n; i++) {
		cr_expect_eq(h.e[i].owner, &o);
		cr_expect_eq(seen & (1u << h.e[i].sub_id), 0, "filter %u reported twice", h.e[i].sub_id);
		seen |= 1u << h.e[i].sub_id;
	}
	cr_expect_eq(seen, 0x7f);
	trie_free(t);
}

/* ------------------------------------------------------------------------
 * Brute force agreement
 * ---------------------------------------------------------------------- */

#define NF 600
#define NOWN 3

struct model {
	char f[NF][48];
	bool has[NF][NOWN];
	int owners[NOWN];
};

static void random_filter(char *buf, bool filter, unsigned *seed)
{
	static const char *const lit[] = {"a", "b", "", "$s", "cc"};
	size_t n = 1 + (size_t)rand_r(seed) % 4, o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned k = (unsigned)rand_r(seed) % (filter ? 7 : 5);
		const char *l = k < 5 ? lit[k] : (k == 6 && i == n - 1) ? "#" : "+";

		if (i > 0)
			buf[o++] = '/';
		memcpy(buf + o, l, strlen(l));
		o += strlen(l);
	}
	buf[o] = '\0';
}

/* Every (filter, owner) pair the model holds for @topic, each exactly once
 * in @h: the entry's sub_id is the filter's index. */
static void check_topic(const struct model *m, const struct trie *t, const char *topic)
{
	static struct hits h;
	static unsigned char cnt[NF][NOWN];
	size_t want = 0;

	memset(cnt, 0, sizeof(cnt));
	match_count(t, topic, &h);
	for (size_t i = 0; i < h.n; i++) {
		size_t k = (size_t)((const int *)h.e[i].owner - m->owners);

		cr_assert_lt(h.e[i].sub_id, NF);
		cr_assert_lt(k, NOWN);
		cnt[h.e[i].sub_id][k]++;
	}
	for (size_t i = 0; i < NF; i++) {
		bool mt = topic_match(S(m->f[i]), S(topic));

		for (size_t k = 0; k < NOWN; k++) {
			unsigned exp = m->has[i][k] && mt;

			want += exp;
			cr_assert_eq(cnt[i][k], exp, "filter \"%s\" owner %zu topic \"%s\": %u reports, want %u",
				     m->f[i], k, topic, cnt[i][k], exp);
		}
	}
	cr_assert_eq(h.n, want);
}

/* Distinct valid filters, so that index i is the one filter with text f[i]. */
static void model_init(struct model *m, unsigned *seed)
{
	for (size_t i = 0; i < NF; i++) {
		bool dup;

		do {
			random_filter(m->f[i], true, seed);
			dup = topic_filter_check(S(m->f[i]), TOPIC_LEVELS_MAX) != 0;
			for (size_t j = 0; j < i && !dup; j++)
				dup = strcmp(m->f[i], m->f[j]) == 0;
		} while (dup);
	}
}

Test(trie, match_agrees_with_topic_match_on_random_filters, .timeout = 60)
{
	static struct model m;
	struct trie *t = trie_new();
	unsigned seed = 7;
	char topic[48];
	size_t distinct;

	model_init(&m, &seed);
	distinct = 0;
	for (size_t i = 0; i < NF; i++) {
		for (size_t k = 0; k < NOWN; k++) {
			struct trie_entry e = {.owner = &m.owners[k], .sub_id = (uint32_t)i};
			bool first;

			if (rand_r(&seed) % 2)
				continue;
			cr_assert_eq(trie_add(t, S(m.f[i]), &e, &first, NULL), 0);
			cr_expect_eq(first, !m.has[i][0] && !m.has[i][1] && !m.has[i][2]);
			m.has[i][k] = true;
			distinct++;
		}
	}
	cr_assert_eq(trie_count(t), distinct);
	trie_sanity(t);
	for (int i = 0; i < 3000; i++) {
		do
			random_filter(topic, false, &seed);
		while (topic_name_check(S(topic), TOPIC_LEVELS_MAX) != 0);
		check_topic(&m, t, topic);
	}
	trie_free(t);
}

Test(trie, churn_keeps_invariants_and_ends_empty, .timeout = 60)
{
	static struct model m;
	struct trie *t = trie_new();
	unsigned seed = 99;
	size_t count = 0;
	char topic[48];

	model_init(&m, &seed);
	for (int step = 0; step < 20000; step++) {
		size_t i = (size_t)rand_r(&seed) % NF, k = (size_t)rand_r(&seed) % NOWN;
		bool flag, replaced;

		if (!m.has[i][k] || rand_r(&seed) % 3 == 0) {
			struct trie_entry e = {.owner = &m.owners[k], .sub_id = (uint32_t)i};

			cr_assert_eq(trie_add(t, S(m.f[i]), &e, &flag, &replaced), 0);
			cr_assert_eq(replaced, m.has[i][k]);
			count += !m.has[i][k];
			m.has[i][k] = true;
		} else {
			cr_assert_eq(trie_del(t, S(m.f[i]), &m.owners[k], &flag), 0);
			m.has[i][k] = false;
			count--;
			cr_assert_eq(flag, !m.has[i][0] && !m.has[i][1] && !m.has[i][2]);
		}
		cr_assert_eq(trie_count(t), count);
		if (step % 1000 == 0) {
			trie_sanity(t);
			random_filter(topic, false, &seed);
			if (topic_name_check(S(topic), TOPIC_LEVELS_MAX) == 0)
				check_topic(&m, t, topic);
		}
	}
	trie_sanity(t);
	for (size_t i = 0; i < NF; i++)
		for (size_t k = 0; k < NOWN; k++)
			if (m.has[i][k])
				cr_assert_eq(trie_del(t, S(m.f[i]), &m.owners[k], NULL), 0);
	cr_expect_eq(trie_count(t), 0);
	trie_sanity(t);
	cr_expect_eq(match_count(t, "a", &(struct hits){0}), 0);
	trie_free(t);
}

/* ------------------------------------------------------------------------
 * Scale and depth
 * ---------------------------------------------------------------------- */

static void count_fn(void *ctx, const struct trie_entry *e)
{
	(void)e;
	(*(size_t *)ctx)++;
}

Test(trie, many_owners_on_one_filter_use_the_owner_index)
{
	enum { N = 20000 };
	static int owners[N];
	struct trie *t = trie_new();
	size_t n = 0;
	bool first, replaced, last;

	for (size_t i = 0; i < N; i++) {
		cr_assert_eq(add(t, "fan/out", &owners[i], 1, &first, &replaced), 0);
		cr_assert_eq(first, i == 0);
		cr_assert_not(replaced);
	}
	for (size_t i = 0; i < N; i += 7) {
		cr_assert_eq(add(t, "fan/out", &owners[i], 2, &first, &replaced), 0);
		cr_assert(replaced);
	}
	trie_sanity(t);
	trie_match(t, S("fan/out"), count_fn, &n);
	cr_expect_eq(n, N);
	for (size_t i = 0; i < N; i += 2)
		cr_assert_eq(trie_del(t, S("fan/out"), &owners[i], &last), 0);
	trie_sanity(t);
	cr_expect_eq(trie_count(t), N / 2);
	for (size_t i = 1; i < N; i += 2) {
		cr_assert_eq(trie_del(t, S("fan/out"), &owners[i], &last), 0);
		cr_assert_eq(last, i == N - 1);
		if (i % 4001 == 0)
			trie_sanity(t);
	}
	trie_sanity(t);
	trie_free(t);
}

Test(trie, many_children_grow_and_shrink_the_table)
{
	enum { N = 50000 };
	struct trie *t = trie_new();
	int o;
	char f[32];
	size_t n = 0;

	for (int i = 0; i < N; i++) {
		snprintf(f, sizeof(f), "dev/%d/state", i);
		cr_assert_eq(add(t, f, &o, 0, NULL, NULL), 0);
	}
	cr_assert_eq(add(t, "dev/+/state", &o, 0, NULL, NULL), 0);
	trie_sanity(t);
	trie_match(t, S("dev/4711/state"), count_fn, &n);
	cr_expect_eq(n, 2);
	n = 0;
	trie_match(t, S("dev/50001/state"), count_fn, &n);
	cr_expect_eq(n, 1);
	for (int i = 0; i < N; i++) {
		snprintf(f, sizeof(f), "dev/%d/state", i);
		cr_assert_eq(trie_del(t, S(f), &o, NULL), 0);
		if (i % 9973 == 0)
			trie_sanity(t);
	}
	trie_sanity(t);
	cr_expect_eq(trie_count(t), 1);
	/* Free with content still in place. */
	trie_free(t);
}

static uint8_t *levels(size_t n, char c, size_t *ret_len)
{
	uint8_t *b = malloc(2 * n);

	cr_assert_not_null(b);
	for (size_t i = 0; i < 2 * n - 1; i++)
		b[i] = (i % 2) ? '/' : (uint8_t)c;
	*ret_len = 2 * n - 1;
	return b;
}

Test(trie, filters_at_the_level_limit_match_without_recursion)
{
	struct trie *t = trie_new();
	size_t pl, al, n = 0;
	uint8_t *plus = levels(TOPIC_LEVELS_MAX, '+', &pl);
	uint8_t *lit = levels(TOPIC_LEVELS_MAX, 'a', &al);
	int o;
	bool last;

	cr_assert_eq(trie_add(t, plus, pl, &(struct trie_entry){.owner = &o}, NULL, NULL), 0);
	cr_assert_eq(trie_add(t, lit, al, &(struct trie_entry){.owner = &o}, NULL, NULL), 0);
	/* "a/a/.../#" with the '#' as the last of TOPIC_LEVELS_MAX levels. */
	lit[al - 1] = '#';
	cr_assert_eq(trie_add(t, lit, al, &(struct trie_entry){.owner = &o}, NULL, NULL), 0);
	lit[al - 1] = 'a';
	trie_sanity(t);
	trie_match(t, lit, al, count_fn, &n);
	cr_expect_eq(n, 3);
	/* A topic far deeper than any filter. */
	n = 0;
	trie_match(t, lit, al - 2, count_fn, &n);
	cr_expect_eq(n, 1, "only \"a/.../a/#\" matches one level less");
	cr_assert_eq(trie_del(t, plus, pl, &o, &last), 0);
	cr_expect(last);
	trie_sanity(t);
	free(plus);
	free(lit);
	trie_free(t);
}

/* ------------------------------------------------------------------------
 * Assertions fire (STYLE 6)
 * ---------------------------------------------------------------------- */

Test(trie, add_to_a_null_trie_aborts, .signal = SIGABRT)
{
	int o;

	add(NULL, "a", &o, 0, NULL, NULL);
}

Test(trie, add_of_an_invalid_filter_aborts, .signal = SIGABRT)
{
	struct trie *t = trie_new();
	int o;

	/* The caller must validate first: "a/#/b" is a programmer error. */
	add(t, "a/#/b", &o, 0, NULL, NULL);
}

Test(trie, add_with_a_null_owner_aborts, .signal = SIGABRT)
{
	struct trie *t = trie_new();

	add(t, "a", NULL, 0, NULL, NULL);
}
