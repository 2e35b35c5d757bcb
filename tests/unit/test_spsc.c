/*
 * test_spsc.c - the single-producer/single-consumer ring between shards (spsc.h).
 *
 * Single-threaded cases pin the contract: an empty ring pops nothing, items
 * come out in FIFO order with every field intact, a full ring answers
 * -EAGAIN and leaves the ring as it was, the 32-bit head and tail may wrap,
 * and spsc_push() reports a wake-up (1) exactly when the consumer had
 * drained every earlier item.
 *
 * The stress case runs the real sleep protocol between two threads.  The
 * consumer "sleeps" on a futex only after spsc_empty_after() says the ring
 * is empty; the producer signals only when spsc_push() returns 1.  The
 * signal is a sticky token, like the CQE that IORING_OP_MSG_RING posts: a
 * wake-up sent before the consumer reaches its wait is not lost.  Each wait
 * has a timeout that only bounds how long a bug takes to show.  When a wait
 * times out, the consumer decides exactly, without any timing threshold,
 * whether a wake-up was lost: the producer publishes how many pushes it has
 * finished (signal included), so if a finished push is still unconsumed
 * and no token is pending, the push that should have woken the consumer did
 * not.  Every PAUSE_EVERY items the producer waits until the consumer is
 * asleep with everything consumed, so the sleep path is exercised on every
 * run, not only when the scheduler happens to drain the ring.  Threads
 * never call Criterion asserts: they count failures, and the main thread
 * checks the counts after joining them.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ringmq/spsc.h"

static struct spsc *ring_new(uint32_t slots, uint32_t start)
{
	size_t size = sizeof(struct spsc) + (size_t)slots * sizeof(struct spsc_item);
	struct spsc *r;

	cr_assert((slots & (slots - 1)) == 0, "slots must be a power of two");
	size = (size + 63) & ~(size_t)63; /* aligned_alloc wants a multiple of the alignment */
	r = aligned_alloc(64, size);
	cr_assert_not_null(r);
	memset(r, 0, size);
	atomic_init(&r->head, start);
	atomic_init(&r->tail, start);
	r->mask = slots - 1;
	return r;
}

/* An item whose three fields all derive from @seq, so a torn or misplaced
 * slot copy shows up as a mismatch. */
static struct spsc_item item(uint32_t seq)
{
	return (struct spsc_item){
		.op = seq ^ 0xA5A5A5A5u,
		.arg = seq,
		.ptr = (void *)(uintptr_t)((uint64_t)seq * 2654435761u + 1),
	};
}

static bool item_is(const struct spsc_item *it, uint32_t seq)
{
	struct spsc_item want = item(seq);

	return it->op == want.op && it->arg == want.arg && it->ptr == want.ptr;
}

Test(spsc, pop_on_an_empty_ring_returns_false)
{
	struct spsc *r = ring_new(8, 0);
	struct spsc_item it = item(77);

	cr_assert(spsc_empty_after(r));
	cr_assert_not(spsc_pop(r, &it));
	cr_assert(item_is(&it, 77), "a failed pop must not write the output");
	free(r);
}

Test(spsc, items_come_out_in_fifo_order_with_every_field)
{
	struct spsc *r = ring_new(32, 0);
	struct spsc_item it;

	/* Interleave bursts of pushes and pops so the ring is never simply
	 * filled then emptied; the backlog stays under 32. */
	uint32_t next_push = 0, next_pop = 0;
	for (int round = 0; round < 100; round++) {
		for (int k = 0; k < 1 + round % 7; k++) {
			struct spsc_item in = item(next_push++);
			cr_assert_geq(spsc_push(r, &in), 0, "backlog %u", next_push - next_pop);
		}
		for (int k = 0; k < 1 + (round + 3) % 7 && next_pop < next_push; k++) {
			cr_assert(spsc_pop(r, &it));
			cr_assert(item_is(&it, next_pop), "item %u out of order (got arg %u)", next_pop, it.arg);
			next_pop++;
		}
	}
	while (next_pop < next_push) {
		cr_assert(spsc_pop(r, &it));
		cr_assert(item_is(&it, next_pop));
		next_pop++;
	}
	cr_assert_not(spsc_pop(r, &it));
	cr_assert(spsc_empty_after(r));
	free(r);
}

Test(spsc, full_ring_returns_eagain_and_writes_nothing)
{
	struct spsc *r = ring_new(8, 0);
	struct spsc_item in, it;

	for (uint32_t i = 0; i < 8; i++) {
		in = item(i);
		cr_assert_geq(spsc_push(r, &in), 0, "push %u of 8 must fit", i);
	}
	in = item(1000);
	cr_assert_eq(spsc_push(r, &in), -EAGAIN);
	cr_assert_eq(spsc_push(r, &in), -EAGAIN, "still full on retry");
	cr_assert_eq(atomic_load(&r->tail), 8u, "a refused push must not move tail");

	/* One pop makes room for exactly one more. */
	cr_assert(spsc_pop(r, &it));
	cr_assert(item_is(&it, 0));
	in = item(8);
	cr_assert_eq(spsc_push(r, &in), 0);
	in = item(1001);
	cr_assert_eq(spsc_push(r, &in), -EAGAIN);

	/* The refused items never appear: 1..8 come out, then nothing. */
	for (uint32_t i = 1; i <= 8; i++) {
		cr_assert(spsc_pop(r, &it));
		cr_assert(item_is(&it, i), "expected %u, got arg %u", i, it.arg);
	}
	cr_assert_not(spsc_pop(r, &it));
	free(r);
}

Test(spsc, push_reports_a_wake_exactly_when_the_consumer_had_drained_everything)
{
	struct spsc *r = ring_new(8, 0);
	struct spsc_item in = item(0), it;

	cr_assert_eq(spsc_push(r, &in), 1, "first item into an empty ring wakes");
	cr_assert_eq(spsc_push(r, &in), 0, "the consumer has not taken the first one yet");
	cr_assert_eq(spsc_push(r, &in), 0);

	/* A partial drain does not make the next push wake: the consumer is
	 * still busy and will see it before it sleeps. */
	cr_assert(spsc_pop(r, &it));
	cr_assert_not(spsc_empty_after(r));
	cr_assert_eq(spsc_push(r, &in), 0);

	/* Drain everything: now the consumer may sleep, so the next push wakes. */
	while (spsc_pop(r, &it))
		;
	cr_assert(spsc_empty_after(r));
	cr_assert_eq(spsc_push(r, &in), 1);
	cr_assert_eq(spsc_push(r, &in), 0);

	/* Filling to the brim and draining again: same rule. */
	while (spsc_push(r, &in) >= 0)
		;
	while (spsc_pop(r, &it))
		;
	cr_assert_eq(spsc_push(r, &in), 1);
	free(r);
}

Test(spsc, empty_after_sees_the_producers_latest_push)
{
	struct spsc *r = ring_new(4, 0);
	struct spsc_item in = item(5), it;

	cr_assert(spsc_empty_after(r));
	cr_assert_eq(spsc_push(r, &in), 1);
	cr_assert_not(spsc_empty_after(r), "the consumer must not sleep on a pending item");
	cr_assert(spsc_pop(r, &it));
	cr_assert(spsc_empty_after(r));
	free(r);
}

Test(spsc, head_and_tail_wrap_around_32_bits)
{
	/* Start four items short of the wrap: the arithmetic is modulo 2^32,
	 * so fullness, order and wake-ups must hold across it. */
	struct spsc *r = ring_new(8, UINT32_MAX - 3);
	struct spsc_item in, it;

	for (uint32_t i = 0; i < 8; i++) {
		in = item(i);
		cr_assert_eq(spsc_push(r, &in), i == 0 ? 1 : 0, "push %u", i);
	}
	cr_assert_lt(atomic_load(&r->tail), 8u, "tail must have wrapped");
	in = item(99);
	cr_assert_eq(spsc_push(r, &in), -EAGAIN);
	for (uint32_t i = 0; i < 8; i++) {
		cr_assert(spsc_pop(r, &it));
		cr_assert(item_is(&it, i), "expected %u, got arg %u", i, it.arg);
	}
	cr_assert_not(spsc_pop(r, &it));
	cr_assert(spsc_empty_after(r));
	in = item(100);
	cr_assert_eq(spsc_push(r, &in), 1);
	free(r);
}

/* ------------------------------------------------------------ two threads */

#define STRESS_ITEMS 10000000u
#define STRESS_SLOTS 256u
#define PAUSE_EVERY 65536u

struct stress {
	struct spsc *r;
	_Atomic uint32_t token; /* the sticky wake-up: 1 = sent, not yet taken */
	_Atomic uint64_t published; /* pushes finished, their signal included */
	_Atomic uint64_t asleep_at; /* consumed count + 1 while in the futex wait, else 0 */
	_Atomic bool stop; /* a wake-up was lost: both threads give up so the test reports at once */

	/* Written by one thread each, read by the main thread after join. */
	uint64_t order_errors;
	uint64_t lost_wakeups;
	uint64_t sleeps;
	uint64_t timeouts;
	uint64_t consumed;
	uint64_t wakes_sent;
	uint64_t full_retries;
	uint64_t missing_wakes; /* a push after a full drain that did not report 1 */
};

static long futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, 0);
}

/* Consumer side of a sleep, entered only after spsc_empty_after() said empty
 * with @consumed items taken.  Returns when a token was taken, or after a
 * timed-out wait in which a wake-up was provably lost. */
static void consumer_sleep(struct stress *st, uint64_t consumed)
{
	const struct timespec ts = {.tv_sec = 1}; /* bounds a hang; no verdict depends on it */

	st->sleeps++;
	for (;;) {
		if (atomic_exchange(&st->token, 0))
			return;
		atomic_store(&st->asleep_at, consumed + 1);
		long rc = futex(&st->token, FUTEX_WAIT_PRIVATE, 0, &ts);
		int err = rc < 0 ? errno : 0;
		atomic_store(&st->asleep_at, 0);
		if (err != ETIMEDOUT)
			continue; /* woken, raced with the token store (EAGAIN) or EINTR */
		st->timeouts++;
		/* Load the count first: a finished push's token store happens
		 * before its count store, so a token owed to us is visible now. */
		uint64_t done = atomic_load(&st->published);
		if (atomic_load(&st->token) == 0 && done > consumed) {
			st->lost_wakeups++;
			atomic_store(&st->stop, true);
			return;
		}
	}
}

static void *consumer(void *arg)
{
	struct stress *st = arg;
	struct spsc_item it;
	uint64_t next = 0;

	while (next < STRESS_ITEMS && !atomic_load_explicit(&st->stop, memory_order_relaxed)) {
		if (spsc_pop(st->r, &it)) {
			if (!item_is(&it, (uint32_t)next))
				st->order_errors++;
			next++;
			continue;
		}
		if (!spsc_empty_after(st->r))
			continue; /* the producer pushed after our pop: keep draining */
		consumer_sleep(st, next);
	}
	st->consumed = next;
	return NULL;
}

static void *producer(void *arg)
{
	struct stress *st = arg;

	for (uint32_t i = 0; i < STRESS_ITEMS; i++) {
		struct spsc_item it = item(i);
		bool paused = false;
		int rc;

		if (i && i % PAUSE_EVERY == 0) {
			/* Wait until the consumer has taken everything and sleeps. */
			while (atomic_load(&st->asleep_at) != (uint64_t)i + 1) {
				if (atomic_load(&st->stop))
					return NULL;
				sched_yield();
			}
			paused = true;
		}
		while ((rc = spsc_push(st->r, &it)) == -EAGAIN) {
			if (atomic_load(&st->stop))
				return NULL;
			st->full_retries++;
			sched_yield();
		}
		if (rc == 1) {
			st->wakes_sent++;
			atomic_store(&st->token, 1);
			(void)futex(&st->token, FUTEX_WAKE_PRIVATE, 1, NULL); /* no waiter is fine */
		} else if (paused) {
			st->missing_wakes++;
		}
		atomic_store(&st->published, (uint64_t)i + 1);
	}
	return NULL;
}

Test(spsc, two_threads_ten_million_items_in_order_without_lost_wakeups, .timeout = 60)
{
	struct stress st = {.r = ring_new(STRESS_SLOTS, 0)};
	pthread_t pt, ct;

	cr_assert_eq(pthread_create(&ct, NULL, consumer, &st), 0);
	cr_assert_eq(pthread_create(&pt, NULL, producer, &st), 0);
	cr_assert_eq(pthread_join(pt, NULL), 0);
	cr_assert_eq(pthread_join(ct, NULL), 0);

	cr_assert_eq(st.lost_wakeups, 0, "%llu lost wake-ups (an item stranded while the consumer slept)",
		     (unsigned long long)st.lost_wakeups);
	cr_expect_eq(st.consumed, STRESS_ITEMS);
	cr_expect_eq(st.order_errors, 0, "%llu items out of order or torn", (unsigned long long)st.order_errors);
	cr_expect_eq(st.missing_wakes, 0, "%llu pushes after a full drain did not report a wake-up",
		     (unsigned long long)st.missing_wakes);
	/* The pauses guarantee at least one sleep and one wake-up per pause. */
	cr_expect_geq(st.sleeps, STRESS_ITEMS / PAUSE_EVERY);
	cr_expect_geq(st.wakes_sent, STRESS_ITEMS / PAUSE_EVERY);
	cr_expect(spsc_empty_after(st.r));
	free(st.r);
}
