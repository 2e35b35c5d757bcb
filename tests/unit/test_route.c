/*
 * test_route.c - the shared route index (route.c).
 *
 * Single-threaded: direct cases, idempotence, route_filters() counts, and
 * agreement with brute force (OR of the shard sets of every filter for
 * which topic_match() holds) over random filters, topics and shards.
 * Multi-threaded: reader threads registered with QSBR match in a loop and
 * announce a quiescent state each turn, like shard loops, while a writer
 * churns filters on other shards; filters that are never removed must be
 * found on every single match.  Threads never call Criterion asserts:
 * they count failures, and the main thread checks the counts.
 *
 * The test thread itself is a QSBR thread (route_add and route_del must
 * run on one), and goes offline before rcu_barrier() so that the pending
 * call_rcu() frees complete before route_free().
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <urcu-qsbr.h>

#include "ringmq/limits.h"
#include "ringmq/route.h"
#include "ringmq/topic.h"

#define S(x) (const uint8_t *)(x), strlen(x)

static struct route *start(void)
{
	struct route *r = route_new();

	cr_assert_not_null(r);
	rcu_register_thread();
	return r;
}

static void finish(struct route *r)
{
	rcu_thread_offline();
	rcu_barrier();
	rcu_thread_online();
	cr_expect_null(route_free(r));
	rcu_unregister_thread();
}

static struct route_mask match(struct route *r, const char *topic)
{
	struct route_mask m;

	memset(&m, 0, sizeof(m));
	route_match(r, S(topic), &m);
	return m;
}

static bool has(const struct route_mask *m, unsigned shard)
{
	return (m->w[shard / 64] >> (shard % 64)) & 1;
}

static bool mask_eq(const struct route_mask *a, const struct route_mask *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

static void set(struct route_mask *m, unsigned shard)
{
	m->w[shard / 64] |= 1ull << (shard % 64);
}

Test(route, add_match_and_delete)
{
	struct route *r = start();
	struct route_mask m;

	cr_assert_eq(route_add(r, S("a/+"), 3), 0);
	cr_assert_eq(route_add(r, S("a/#"), 70), 0);
	cr_assert_eq(route_add(r, S("#"), 255), 0);
	cr_assert_eq(route_add(r, S("$SYS/#"), 1), 0);
	cr_assert_eq(route_add(r, S("a/b"), 0), 0);
	m = match(r, "a/b");
	cr_expect(has(&m, 0) && has(&m, 3) && has(&m, 70) && has(&m, 255));
	cr_expect_not(has(&m, 1));
	/* [MQTT-4.7.1-2]: "a/#" matches "a"; "a/+" does not. */
	m = match(r, "a");
	cr_expect(has(&m, 70) && has(&m, 255));
	cr_expect_not(has(&m, 3));
	/* [MQTT-4.7.2-1]: "#" does not match "$SYS/x", "$SYS/#" does. */
	m = match(r, "$SYS/x");
	cr_expect(has(&m, 1));
	cr_expect_not(has(&m, 255));
	cr_expect_eq(route_filters(r), 5);
	cr_expect_eq(route_del(r, S("a/#"), 70), 0);
	cr_expect_eq(route_del(r, S("a/#"), 70), -ENOENT);
	cr_expect_eq(route_del(r, S("a/#"), 3), -ENOENT);
	cr_expect_eq(route_del(r, S("x/y"), 3), -ENOENT);
	cr_expect_eq(route_del(r, S("a"), 3), -ENOENT, "interior node");
	m = match(r, "a");
	cr_expect_not(has(&m, 70));
	cr_expect_eq(route_filters(r), 4);
	finish(r);
}

Test(route, add_is_idempotent_and_filters_counts_non_empty_masks)
{
	struct route *r = start();
	struct route_mask m, want;

	cr_expect_eq(route_filters(r), 0);
	cr_assert_eq(route_add(r, S("a/b/c"), 5), 0);
	cr_assert_eq(route_add(r, S("a/b/c"), 5), 0);
	cr_assert_eq(route_add(r, S("a/b/c"), 6), 0);
	cr_expect_eq(route_filters(r), 1, "one filter, two shards");
	cr_assert_eq(route_add(r, S("a/b"), 5), 0);
	cr_expect_eq(route_filters(r), 2);
	cr_assert_eq(route_del(r, S("a/b/c"), 5), 0);
	cr_expect_eq(route_filters(r), 2, "shard 6 still there");
	memset(&want, 0, sizeof(want));
	set(&want, 6);
	m = match(r, "a/b/c");
	cr_expect(mask_eq(&m, &want));
	cr_assert_eq(route_del(r, S("a/b/c"), 6), 0);
	cr_expect_eq(route_filters(r), 1);
	cr_assert_eq(route_del(r, S("a/b"), 5), 0);
	cr_expect_eq(route_filters(r), 0);
	memset(&want, 0, sizeof(want));
	m = match(r, "a/b");
	cr_expect(mask_eq(&m, &want));
	/* Matching ORs into the caller's mask, it does not clear it. */
	set(&m, 9);
	route_match(r, S("a/b"), &m);
	cr_expect(has(&m, 9));
	finish(r);
}

/* ------------------------------------------------------------------------
 * Brute force agreement
 * ---------------------------------------------------------------------- */

#define NF 400
static const unsigned shards[] = {0, 1, 63, 64, 127, 128, 200, 255};
#define NSH (sizeof(shards) / sizeof(shards[0]))

struct model {
	char f[NF][48];
	bool on[NF][NSH];
};

static void random_level_string(char *buf, bool filter, unsigned *seed)
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

static void random_topic(char *buf, unsigned *seed)
{
	do
		random_level_string(buf, false, seed);
	while (topic_name_check(S(buf), TOPIC_LEVELS_MAX) != 0);
}

static void model_init(struct model *m, unsigned *seed)
{
	for (size_t i = 0; i < NF; i++) {
		bool dup;

		do {
			random_level_string(m->f[i], true, seed);
			dup = topic_filter_check(S(m->f[i]), TOPIC_LEVELS_MAX) != 0;
			for (size_t j = 0; j < i && !dup; j++)
				dup = strcmp(m->f[i], m->f[j]) == 0;
		} while (dup);
	}
}

static struct route_mask brute(const struct model *m, const char *topic, size_t *ret_filters)
{
	struct route_mask want;
	size_t filters = 0;

	memset(&want, 0, sizeof(want));
	for (size_t i = 0; i < NF; i++) {
		bool any = false, mt = topic_match(S(m->f[i]), S(topic));

		for (size_t k = 0; k < NSH; k++) {
			any |= m->on[i][k];
			if (m->on[i][k] && mt)
				set(&want, shards[k]);
		}
		filters += any;
	}
	*ret_filters = filters;
	return want;
}

Test(route, match_agrees_with_brute_force_under_churn, .timeout = 60)
{
	static struct model m;
	struct route *r = start();
	unsigned seed = 2024;
	char topic[48];

	model_init(&m, &seed);
	for (int step = 0; step < 30000; step++) {
		size_t i = (size_t)rand_r(&seed) % NF, k = (size_t)rand_r(&seed) % NSH;
		size_t filters;

		if (!m.on[i][k]) {
			cr_assert_eq(route_add(r, S(m.f[i]), shards[k]), 0);
			m.on[i][k] = true;
		} else {
			cr_assert_eq(route_del(r, S(m.f[i]), shards[k]), 0);
			m.on[i][k] = false;
		}
		if (step % 10 == 0) {
			struct route_mask got, want;

			random_topic(topic, &seed);
			want = brute(&m, topic, &filters);
			got = match(r, topic);
			cr_assert(mask_eq(&got, &want), "topic \"%s\" step %d", topic, step);
			cr_assert_eq(route_filters(r), filters);
		}
		rcu_quiescent_state();
	}
	for (size_t i = 0; i < NF; i++)
		for (size_t k = 0; k < NSH; k++)
			if (m.on[i][k])
				cr_assert_eq(route_del(r, S(m.f[i]), shards[k]), 0);
	cr_expect_eq(route_filters(r), 0);
	for (int i = 0; i < 100; i++) {
		struct route_mask got, none;

		memset(&none, 0, sizeof(none));
		random_topic(topic, &seed);
		got = match(r, topic);
		cr_assert(mask_eq(&got, &none));
	}
	finish(r);
}

Test(route, filters_at_the_level_limit)
{
	struct route *r = start();
	size_t n = 2 * TOPIC_LEVELS_MAX - 1;
	uint8_t *plus = malloc(n), *lit = malloc(n);
	struct route_mask m;

	for (size_t i = 0; i < n; i++) {
		plus[i] = (i % 2) ? '/' : '+';
		lit[i] = (i % 2) ? '/' : 'a';
	}
	cr_assert_eq(route_add(r, plus, n, 1), 0);
	cr_assert_eq(route_add(r, lit, n, 2), 0);
	lit[n - 1] = '#';
	cr_assert_eq(route_add(r, lit, n, 3), 0);
	lit[n - 1] = 'a';
	memset(&m, 0, sizeof(m));
	route_match(r, lit, n, &m);
	cr_expect(has(&m, 1) && has(&m, 2) && has(&m, 3));
	memset(&m, 0, sizeof(m));
	route_match(r, lit, n - 2, &m);
	cr_expect(!has(&m, 1) && !has(&m, 2) && has(&m, 3));
	cr_assert_eq(route_del(r, plus, n, 1), 0);
	cr_expect_eq(route_filters(r), 2);
	free(plus);
	free(lit);
	finish(r);
}

/* Many literal nodes added, most deleted, no quiescent state: a shrink of
 * the table waits for a grace period, which an online route_free() caller
 * would never give it (it must not wait for the resize while online). */
Test(route, free_while_online_with_a_resize_pending, .timeout = 30)
{
	struct route *r = start();
	uint8_t f[16];

	for (int pass = 0; pass < 2; pass++) {
		/* Pass 0 grows the table, pass 1 deletes 90% to shrink it. */
		for (unsigned i = 0; i < 50000; i++) {
			size_t n = 0;

			f[n++] = 'x';
			f[n++] = '/';
			for (unsigned v = i; v > 0 || n == 2; v /= 10)
				f[n++] = (uint8_t)('0' + v % 10);
			if (pass == 0)
				cr_assert_eq(route_add(r, f, n, i % SHARDS_MAX), 0);
			else if (i % 10 != 0)
				cr_assert_eq(route_del(r, f, n, i % SHARDS_MAX), 0);
		}
	}
	cr_expect_eq(route_filters(r), 5000);
	cr_expect_null(route_free(r));
	rcu_unregister_thread();
}

Test(route, add_for_a_shard_out_of_range_aborts, .signal = SIGABRT)
{
	struct route *r = route_new();

	rcu_register_thread();
	route_add(r, S("a"), SHARDS_MAX);
}

/* ------------------------------------------------------------------------
 * Concurrency
 * ---------------------------------------------------------------------- */

#define READERS 4
#define NSTABLE 40
#define NTOPICS 64
#define WRITER_OPS 100000
#define READER_MATCHES_MIN 1000000ul

/* Stable filters use shards 0, 128 and 255 and are never removed; the
 * writer churns the same filter alphabet on other shards, so its nodes
 * are shared with the stable ones and pruning runs right next to them. */
static const unsigned stable_shards[] = {0, 128, 255};
static const unsigned churn_shards[] = {1, 2, 64, 130, 254};

struct shared {
	struct route *r;
	char stable[NSTABLE][48];
	char topics[NTOPICS][48];
	struct route_mask expect[NTOPICS]; /* stable bits per topic */
	struct route_mask stable_bits;
	struct model churn;
	atomic_bool done;
	atomic_int readers_started;
	atomic_ulong matches;
	atomic_ulong failures;
	atomic_ulong writer_errors;
};

static void *reader(void *arg)
{
	struct shared *s = arg;
	unsigned seed = (unsigned)(uintptr_t)pthread_self();

	rcu_register_thread();
	atomic_fetch_add(&s->readers_started, 1);
	while (!atomic_load(&s->done)) {
		for (int turn = 0; turn < 64; turn++) {
			size_t i = (size_t)rand_r(&seed) % NTOPICS;
			struct route_mask m;

			memset(&m, 0, sizeof(m));
			route_match(s->r, S(s->topics[i]), &m);
			for (size_t w = 0; w < ROUTE_MASK_WORDS; w++)
				if ((m.w[w] & s->stable_bits.w[w]) != s->expect[i].w[w])
					atomic_fetch_add(&s->failures, 1);
			atomic_fetch_add_explicit(&s->matches, 1, memory_order_relaxed);
		}
		/* One shard loop turn ends: no index pointer is held now. */
		rcu_quiescent_state();
	}
	rcu_unregister_thread();
	return NULL;
}

static void *writer(void *arg)
{
	struct shared *s = arg;
	struct model *m = &s->churn;
	unsigned seed = 4242;
	const size_t nsh = sizeof(churn_shards) / sizeof(churn_shards[0]);

	rcu_register_thread();
	/* Churn only while every reader is matching; keep going until the
	 * readers have done a fair number of matches against the churn. */
	while (atomic_load(&s->readers_started) < READERS)
		rcu_quiescent_state();
	for (int op = 0; op < WRITER_OPS || atomic_load(&s->matches) < READER_MATCHES_MIN; op++) {
		size_t i = (size_t)rand_r(&seed) % NF, k = (size_t)rand_r(&seed) % nsh;
		int ret;

		if (!m->on[i][k])
			ret = route_add(s->r, S(m->f[i]), churn_shards[k]);
		else
			ret = route_del(s->r, S(m->f[i]), churn_shards[k]);
		m->on[i][k] = !m->on[i][k];
		if (ret != 0)
			atomic_fetch_add(&s->writer_errors, 1);
		rcu_quiescent_state();
	}
	atomic_store(&s->done, true);
	rcu_unregister_thread();
	return NULL;
}

/* Variant @v of a filter matching @topic: the topic itself, one level
 * replaced by '+', or a prefix followed by '#'. */
static void derive(char *out, const char *topic, unsigned v)
{
	const char *lv[8];
	size_t ll[8], n = 0, o = 0, keep;
	const char *p = topic;

	for (;;) {
		const char *e = strchr(p, '/');

		lv[n] = p;
		ll[n++] = e ? (size_t)(e - p) : strlen(p);
		if (e == NULL)
			break;
		p = e + 1;
	}
	v %= (unsigned)(2 * n + 1);
	keep = v > n ? v - n - 1 : n;
	for (size_t i = 0; i < keep; i++) {
		bool plus = v >= 1 && v <= n && i == v - 1;

		if (i > 0)
			out[o++] = '/';
		memcpy(out + o, plus ? "+" : lv[i], plus ? 1 : ll[i]);
		o += plus ? 1 : ll[i];
	}
	if (v > n) {
		if (keep > 0)
			out[o++] = '/';
		out[o++] = '#';
	}
	out[o] = '\0';
}

/* Churn filters are derived from the readers' topics, so the writer keeps
 * creating and pruning exactly the nodes the readers walk through; half
 * the stable filters are churn filters too (same nodes, other shards). */
static void shared_init(struct shared *s, unsigned *seed)
{
	struct model *m = &s->churn;

	for (size_t t = 0; t < NTOPICS; t++)
		random_topic(s->topics[t], seed);
	for (size_t i = 0, v = 0; i < NF; v++) {
		bool dup = false;

		if (v < 16 * NTOPICS)
			derive(m->f[i], s->topics[v % NTOPICS], (unsigned)(v / NTOPICS));
		else
			random_level_string(m->f[i], true, seed);
		dup = topic_filter_check(S(m->f[i]), TOPIC_LEVELS_MAX) != 0;
		for (size_t j = 0; j < i && !dup; j++)
			dup = strcmp(m->f[i], m->f[j]) == 0;
		i += !dup;
	}
	for (size_t i = 0; i < NSTABLE; i++) {
		if (i < NSTABLE / 2)
			memcpy(s->stable[i], m->f[i * 7], sizeof(s->stable[i]));
		else
			do
				random_level_string(s->stable[i], true, seed);
			while (topic_filter_check(S(s->stable[i]), TOPIC_LEVELS_MAX) != 0);
	}
	for (size_t k = 0; k < 3; k++)
		set(&s->stable_bits, stable_shards[k]);
	for (size_t t = 0; t < NTOPICS; t++)
		for (size_t i = 0; i < NSTABLE; i++)
			if (topic_match(S(s->stable[i]), S(s->topics[t])))
				set(&s->expect[t], stable_shards[i % 3]);
}

Test(route, readers_always_find_stable_filters_while_a_writer_churns, .timeout = 120)
{
	static struct shared s;
	pthread_t rd[READERS], wr;
	unsigned seed = 77;
	size_t filters = 0, matched_topics = 0;

	s.r = start();
	shared_init(&s, &seed);
	for (size_t i = 0; i < NSTABLE; i++)
		cr_assert_eq(route_add(s.r, S(s.stable[i]), stable_shards[i % 3]), 0);
	for (size_t t = 0; t < NTOPICS; t++)
		matched_topics += !mask_eq(&s.expect[t], &(struct route_mask){0});
	cr_assert_gt(matched_topics, NTOPICS / 4, "the topics must exercise the stable filters");
	rcu_thread_offline();
	for (int i = 0; i < READERS; i++)
		cr_assert_eq(pthread_create(&rd[i], NULL, reader, &s), 0);
	cr_assert_eq(pthread_create(&wr, NULL, writer, &s), 0);
	pthread_join(wr, NULL);
	for (int i = 0; i < READERS; i++)
		pthread_join(rd[i], NULL);
	rcu_barrier();
	rcu_thread_online();
	cr_expect_eq(atomic_load(&s.failures), 0, "a stable filter was missed");
	cr_expect_eq(atomic_load(&s.writer_errors), 0);
	cr_expect_geq(atomic_load(&s.matches), READER_MATCHES_MIN);
	cr_log_info("%lu matches", (unsigned long)atomic_load(&s.matches));
	/* Distinct filters: stable ones plus live churn ones not among them. */
	for (size_t i = 0; i < NF; i++) {
		bool live = false, stable = false;

		for (size_t k = 0; k < sizeof(churn_shards) / sizeof(churn_shards[0]); k++)
			live |= s.churn.on[i][k];
		for (size_t j = 0; j < NSTABLE; j++)
			stable |= strcmp(s.stable[j], s.churn.f[i]) == 0;
		filters += live && !stable;
	}
	/* The stable filters are distinct from each other only by chance:
	 * count them as the index does, once per text. */
	for (size_t j = 0; j < NSTABLE; j++) {
		bool dup = false;

		for (size_t i = 0; i < j; i++)
			dup |= strcmp(s.stable[i], s.stable[j]) == 0;
		filters += !dup;
	}
	cr_expect_eq(route_filters(s.r), filters);
	finish(s.r);
}
