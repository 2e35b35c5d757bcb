/*
 * spsc.h - bounded single-producer/single-consumer ring between two shards.
 *
 * One ring per ordered pair of shards (from, to).  The producer writes a
 * slot then publishes `tail` with release; the consumer reads `tail` with
 * acquire, copies the slot, then publishes `head` with release.
 *
 * Wake-up: the consumer may be asleep in io_uring_wait.  spsc_push()
 * reports whether the ring was empty as seen after the push (a seq_cst
 * fence between storing tail and loading head); the consumer, after storing
 * head, fences and re-reads tail before it sleeps (spsc_empty_after()).
 * By the usual Dekker argument one of the two sees the other's store, so
 * either the producer sends a wake-up or the consumer keeps draining:
 * no item is stranded.  Spurious wake-ups are harmless.
 *
 * Owner:    the producer shard writes tail and slots; the consumer shard
 *           writes head.
 * Lifetime: created by the producer on its first push to that consumer
 *           (published through an atomic pointer), freed at process exit
 *           after all shards have stopped.
 * Shared:   exactly two threads, as above.
 */
#ifndef RINGMQ_SPSC_H
#define RINGMQ_SPSC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* One item crossing shards. */
struct spsc_item {
	uint32_t op; /* enum shard_op */
	uint32_t arg;
	void *ptr;
};

struct spsc {
	_Alignas(64) _Atomic uint32_t head; /* written by the consumer */
	_Alignas(64) _Atomic uint32_t tail; /* written by the producer */
	_Alignas(64) uint32_t mask;
	struct spsc_item slots[];
};

/**
 * spsc_push() - append @it.  Returns 1 if the consumer must be woken (the
 * ring held nothing but this item, as far as the producer can tell), 0 if
 * not, -EAGAIN when full (nothing written).
 */
static inline int spsc_push(struct spsc *r, const struct spsc_item *it)
{
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);

	if (tail - head > r->mask)
		return -11; /* -EAGAIN, without pulling errno.h into every user */
	r->slots[tail & r->mask] = *it;
	atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
	atomic_thread_fence(memory_order_seq_cst);
	head = atomic_load_explicit(&r->head, memory_order_relaxed);
	return head == tail ? 1 : 0;
}

/** spsc_pop() - take the oldest item into @ret.  Returns true if there was one. */
static inline bool spsc_pop(struct spsc *r, struct spsc_item *ret)
{
	uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);

	if (head == tail)
		return false;
	*ret = r->slots[head & r->mask];
	atomic_store_explicit(&r->head, head + 1, memory_order_release);
	return true;
}

/** spsc_empty_after() - consumer's check before sleeping (see above). */
static inline bool spsc_empty_after(struct spsc *r)
{
	atomic_thread_fence(memory_order_seq_cst);
	return atomic_load_explicit(&r->head, memory_order_relaxed) ==
	       atomic_load_explicit(&r->tail, memory_order_acquire);
}

#endif
