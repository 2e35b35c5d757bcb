/*
 * test_retain.c - the in-memory retained-message store (retain.c).
 *
 * Single-threaded: set, replace and delete by empty payload
 * [MQTT-3.3.1-10/11], retain_count(), and retain_match() for exact topics
 * and for wildcard filters, including '$' topics that a filter starting
 * with a wildcard must not match [MQTT-4.7.2-1].  Expected match sets are
 * written out by hand rather than computed with topic_match(), which the
 * store itself uses.
 *
 * References: the store holds one reference per retained message, so a
 * message outlives its publisher's reference while it is retained.  A
 * replaced or deleted message is released only after a QSBR grace period,
 * because a reader on another shard may still be using it: the tests check
 * the count is unchanged before the grace period and dropped after it.
 *
 * The test thread is a registered QSBR thread, as the shards are.  Before
 * rcu_barrier() it goes offline, since a grace period waits for every
 * online thread and the barrier would otherwise wait for itself.  The
 * threaded case has writers race set/replace/delete on shared topics and
 * then checks that retain_count() agrees with what a full walk finds.
 * Threads never call Criterion asserts: they count failures, and the main
 * thread checks the counts.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <urcu-qsbr.h>

#include "ringmq/msg.h"
#include "ringmq/retain.h"

#define S(x) (const uint8_t *)(x), strlen(x)

static struct retain *start(void)
{
	struct retain *r;

	rcu_register_thread();
	r = retain_new();
	cr_assert_not_null(r);
	return r;
}

/* Let every pending call_rcu() callback run. */
static void grace(void)
{
	rcu_thread_offline();
	rcu_barrier();
	rcu_thread_online();
}

static void finish(struct retain *r)
{
	grace();
	cr_expect_null(retain_free(r));
	grace(); /* nothing should be pending, but do not leave it to process exit */
	rcu_unregister_thread();
}

static struct msg *mk(const char *topic, const char *payload)
{
	struct mqtt_str t = {(const uint8_t *)topic, (uint32_t)strlen(topic)};
	struct mqtt_str p = {(const uint8_t *)payload, (uint32_t)strlen(payload)};
	struct msg *m = msg_new(&t, &p, 1, true, NULL, NULL, 0, 0);

	cr_assert_not_null(m);
	return m;
}

static uint32_t refs(struct msg *m)
{
	return atomic_load(&m->refs);
}

/* What retain_match() handed out, in call order. */
#define FOUND_MAX 32
struct found {
	struct msg *m[FOUND_MAX];
	unsigned n;
};

static void collect(void *ctx, struct msg *m)
{
	struct found *f = ctx;

	cr_assert_lt(f->n, FOUND_MAX);
	f->m[f->n++] = m;
}

static struct found match(struct retain *r, const char *filter)
{
	struct found f = {.n = 0};

	retain_match(r, S(filter), collect, &f);
	return f;
}

static bool has_topic(const struct found *f, const char *topic)
{
	for (unsigned i = 0; i < f->n; i++)
		if (f->m[i]->topic.len == strlen(topic) && memcmp(f->m[i]->topic.ptr, topic, strlen(topic)) == 0)
			return true;
	return false;
}

Test(retain, set_stores_one_message_per_topic)
{
	struct retain *r = start();
	struct msg *ab = mk("a/b", "1"), *ac = mk("a/c", "2"), *x = mk("x", "3");
	struct found f;

	cr_assert_eq(retain_count(r), 0);
	cr_assert_eq(retain_set(r, ab), 0);
	cr_assert_eq(retain_set(r, ac), 0);
	cr_assert_eq(retain_set(r, x), 0);
	cr_assert_eq(retain_count(r), 3);
	cr_assert_eq(refs(ab), 2, "the store takes its own reference");

	f = match(r, "a/b");
	cr_assert_eq(f.n, 1);
	cr_assert_eq(f.m[0], ab);
	f = match(r, "x");
	cr_assert_eq(f.n, 1);
	cr_assert_eq(f.m[0], x);
	cr_assert_eq(refs(ab), 2, "matching lends the message, it takes no reference");

	msg_unref(ab);
	msg_unref(ac);
	msg_unref(x);
	finish(r);
}

Test(retain, set_on_the_same_topic_replaces)
{
	struct retain *r = start();
	struct msg *m1 = mk("a/b", "old"), *m2 = mk("a/b", "new");
	struct found f;

	cr_assert_eq(retain_set(r, m1), 0);
	cr_assert_eq(retain_set(r, m2), 0);
	cr_assert_eq(retain_count(r), 1);
	f = match(r, "a/b");
	cr_assert_eq(f.n, 1);
	cr_assert_eq(f.m[0], m2);
	f = match(r, "#");
	cr_assert_eq(f.n, 1, "a replaced message must not linger in a walk");

	/* Setting the same message again is a replace by itself: still one. */
	cr_assert_eq(retain_set(r, m2), 0);
	cr_assert_eq(retain_count(r), 1);
	grace();
	cr_assert_eq(refs(m1), 1, "the replaced message's store reference is dropped");
	cr_assert_eq(refs(m2), 2, "exactly one store reference for the retained one");

	msg_unref(m1);
	msg_unref(m2);
	finish(r);
}

Test(retain, replaced_message_stays_referenced_until_a_grace_period_ends)
{
	struct retain *r = start();
	struct msg *m1 = mk("t", "1"), *m2 = mk("t", "2");

	cr_assert_eq(retain_set(r, m1), 0);
	cr_assert_eq(refs(m1), 2);
	cr_assert_eq(retain_set(r, m2), 0);
	/* This thread is online and has not passed a quiescent state: it could
	 * still be reading m1 through the table, so m1 must keep the store's
	 * reference. */
	cr_assert_eq(refs(m1), 2);
	grace();
	cr_assert_eq(refs(m1), 1);
	msg_unref(m1);
	msg_unref(m2);
	finish(r);
}

Test(retain, empty_payload_deletes_the_topic)
{
	struct retain *r = start();
	struct msg *m = mk("a/b", "v"), *other = mk("a/c", "w"), *del = mk("a/b", "");
	struct found f;

	cr_assert_eq(retain_set(r, m), 0);
	cr_assert_eq(retain_set(r, other), 0);
	cr_assert_eq(retain_count(r), 2);

	/* [MQTT-3.3.1-10] an empty retained payload removes the message, and
	 * [MQTT-3.3.1-11] is itself not stored. */
	cr_assert_eq(retain_set(r, del), 0);
	cr_assert_eq(retain_count(r), 1);
	f = match(r, "a/b");
	cr_assert_eq(f.n, 0);
	f = match(r, "a/+");
	cr_assert_eq(f.n, 1);
	cr_assert_eq(f.m[0], other);
	cr_assert_eq(refs(del), 1, "the deleting message is not retained");
	cr_assert_eq(refs(m), 2, "not released before a grace period");
	grace();
	cr_assert_eq(refs(m), 1);

	/* Deleting a topic with nothing retained is a no-op. */
	cr_assert_eq(retain_set(r, del), 0);
	cr_assert_eq(retain_count(r), 1);
	struct msg *none = mk("never/set", "");
	cr_assert_eq(retain_set(r, none), 0);
	cr_assert_eq(retain_count(r), 1);

	/* The topic can be retained again after a delete. */
	cr_assert_eq(retain_set(r, m), 0);
	cr_assert_eq(retain_count(r), 2);

	msg_unref(m);
	msg_unref(other);
	msg_unref(del);
	msg_unref(none);
	finish(r);
}

Test(retain, store_keeps_a_message_alive_after_the_publisher_drops_it)
{
	struct retain *r = start();
	struct msg *m = mk("keep/me", "payload");
	struct found f;

	cr_assert_eq(retain_set(r, m), 0);
	msg_unref(m); /* the publisher is done; only the store holds it now */
	grace();
	f = match(r, "keep/me");
	cr_assert_eq(f.n, 1);
	cr_assert_eq(refs(f.m[0]), 1);
	cr_assert_eq(f.m[0]->payload.len, 7);
	cr_assert(memcmp(f.m[0]->payload.ptr, "payload", 7) == 0);

	/* A subscriber keeps it past a delete by taking its own reference. */
	struct msg *kept = msg_ref(f.m[0]);
	struct msg *del = mk("keep/me", "");
	cr_assert_eq(retain_set(r, del), 0);
	grace();
	cr_assert_eq(refs(kept), 1);
	cr_assert(memcmp(kept->payload.ptr, "payload", 7) == 0);
	msg_unref(kept);
	msg_unref(del);
	finish(r);
}

Test(retain, exact_filter_matches_only_that_topic)
{
	static const char *const topics[] = {"a/b", "a/b/", "a/bc", "/a/b", "a", "a/b/c", "$SYS/a/b", "A/B"};
	struct retain *r = start();
	struct msg *ms[8];
	struct found f;

	for (int i = 0; i < 8; i++) {
		ms[i] = mk(topics[i], "x");
		cr_assert_eq(retain_set(r, ms[i]), 0);
	}
	cr_assert_eq(retain_count(r), 8);
	for (int i = 0; i < 8; i++) {
		f = match(r, topics[i]);
		cr_assert_eq(f.n, 1, "'%s' matched %u messages", topics[i], f.n);
		cr_assert_eq(f.m[0], ms[i], "'%s' matched another topic's message", topics[i]);
	}
	f = match(r, "a/b/c/d");
	cr_assert_eq(f.n, 0);
	f = match(r, "b");
	cr_assert_eq(f.n, 0);
	for (int i = 0; i < 8; i++)
		msg_unref(ms[i]);
	finish(r);
}

Test(retain, wildcard_filters_match_by_level_and_skip_dollar_topics)
{
	static const char *const topics[] = {
		"a", "a/b", "a/b/c", "a/c", "b/b", "/a", "$SYS/broker/uptime", "$share/x",
	};
	static const struct {
		const char *filter;
		const char *want[8];
	} cases[] = {
		/* [MQTT-4.7.2-1] '#' and '+' first never match a '$' topic. */
		{"#", {"a", "a/b", "a/b/c", "a/c", "b/b", "/a"}},
		/* [MQTT-4.7.1-2] "a/#" also matches the parent "a". */
		{"a/#", {"a", "a/b", "a/b/c", "a/c"}},
		{"a/+", {"a/b", "a/c"}},
		{"+/b", {"a/b", "b/b"}},
		{"+", {"a"}},
		{"+/+", {"a/b", "a/c", "b/b", "/a"}},
		{"/+", {"/a"}},
		{"+/+/+", {"a/b/c"}},
		{"a/+/c", {"a/b/c"}},
		{"+/broker/uptime", {NULL}},
		{"+/x", {NULL}},
		{"$SYS/#", {"$SYS/broker/uptime"}},
		{"$SYS/+/uptime", {"$SYS/broker/uptime"}},
		{"$share/+", {"$share/x"}},
		{"c/#", {NULL}},
	};
	struct retain *r = start();
	struct msg *ms[8];

	for (int i = 0; i < 8; i++) {
		ms[i] = mk(topics[i], "x");
		cr_assert_eq(retain_set(r, ms[i]), 0);
	}
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct found f = match(r, cases[c].filter);
		unsigned want = 0;

		for (; want < 8 && cases[c].want[want]; want++)
			cr_assert(has_topic(&f, cases[c].want[want]), "'%s' must match '%s'", cases[c].filter,
				  cases[c].want[want]);
		cr_assert_eq(f.n, want, "'%s' matched %u messages, want %u", cases[c].filter, f.n, want);
	}
	for (int i = 0; i < 8; i++)
		msg_unref(ms[i]);
	finish(r);
}

Test(retain, free_drops_every_store_reference)
{
	struct retain *r = start();
	struct msg *ms[100];
	char topic[32];

	for (int i = 0; i < 100; i++) {
		(void)snprintf(topic, sizeof(topic), "t/%d", i); /* always fits */
		ms[i] = mk(topic, "x");
		cr_assert_eq(retain_set(r, ms[i]), 0);
	}
	cr_assert_eq(retain_count(r), 100);
	grace();
	cr_assert_null(retain_free(r));
	grace();
	for (int i = 0; i < 100; i++) {
		cr_expect_eq(refs(ms[i]), 1, "t/%d still referenced after retain_free", i);
		msg_unref(ms[i]);
	}
	rcu_unregister_thread();
}

/* ------------------------------------------------------------ threads */

#define WRITERS 4
#define SHARED_TOPICS 8
#define WRITER_ROUNDS 20000
#define OWN_TOPICS 100

struct writer {
	pthread_t thread;
	struct retain *r;
	int id;
	unsigned errors;
};

static struct msg *mk_quiet(const char *topic, const char *payload)
{
	struct mqtt_str t = {(const uint8_t *)topic, (uint32_t)strlen(topic)};
	struct mqtt_str p = {(const uint8_t *)payload, (uint32_t)strlen(payload)};

	return msg_new(&t, &p, 0, true, NULL, NULL, 0, 0);
}

static void count_cb(void *ctx, struct msg *m)
{
	(void)m;
	(*(unsigned *)ctx)++;
}

static void writer_set(struct writer *w, const char *topic, const char *payload)
{
	struct msg *m = mk_quiet(topic, payload);

	if (!m || retain_set(w->r, m) != 0)
		w->errors++;
	msg_unref(m);
}

static void *writer_loop(void *arg)
{
	struct writer *w = arg;
	char topic[32];

	rcu_register_thread();
	for (int j = 0; j < WRITER_ROUNDS; j++) {
		(void)snprintf(topic, sizeof(topic), "s/%d", j % SHARED_TOPICS); /* always fits */
		/* Every third write deletes: sets, replaces and deletes race. */
		writer_set(w, topic, (j + w->id) % 3 == 0 ? "" : "v");
		if (j % 64 == 0) {
			unsigned seen = 0;
			retain_match(w->r, S("s/+"), count_cb, &seen);
			if (seen > SHARED_TOPICS)
				w->errors++; /* a topic seen twice in one walk */
			rcu_quiescent_state();
		}
	}
	for (int j = 0; j < OWN_TOPICS; j++) {
		(void)snprintf(topic, sizeof(topic), "own/%d/%d", w->id, j); /* always fits */
		writer_set(w, topic, "mine");
	}
	rcu_unregister_thread();
	return NULL;
}

Test(retain, racing_writers_leave_one_message_per_topic_and_a_true_count, .timeout = 60)
{
	struct retain *r = start();
	struct writer w[WRITERS];
	unsigned all = 0, shared = 0;

	rcu_thread_offline(); /* the writers' grace periods must not wait for this thread */
	for (int i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){.r = r, .id = i};
		cr_assert_eq(pthread_create(&w[i].thread, NULL, writer_loop, &w[i]), 0);
	}
	for (int i = 0; i < WRITERS; i++)
		cr_assert_eq(pthread_join(w[i].thread, NULL), 0);
	rcu_thread_online();

	for (int i = 0; i < WRITERS; i++)
		cr_expect_eq(w[i].errors, 0, "writer %d: %u errors", i, w[i].errors);
	retain_match(r, S("#"), count_cb, &all);
	retain_match(r, S("s/#"), count_cb, &shared);
	cr_assert_leq(shared, SHARED_TOPICS);
	cr_assert_eq(all, shared + WRITERS * OWN_TOPICS);
	cr_assert_eq(retain_count(r), all, "retain_count() %llu, a full walk finds %u",
		     (unsigned long long)retain_count(r), all);
	for (int t = 0; t < SHARED_TOPICS; t++) {
		char topic[16];
		unsigned n = 0;

		(void)snprintf(topic, sizeof(topic), "s/%d", t); /* always fits */
		retain_match(r, S(topic), count_cb, &n);
		cr_assert_leq(n, 1, "%s retained %u times", topic, n);
	}
	finish(r); /* under ASan, every replaced or deleted message must have been freed */
}
