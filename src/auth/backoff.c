/*
 * backoff.c - failed-login back-off per client address (see backoff.h).
 *
 * An address is "ip:port" as logged; the port is cut off so reconnecting
 * from a new source port does not escape.  Each slot holds the address
 * hash, the failure count and the time until which the address waits.
 */
#include "ringmq/hash.h"
#include "ringmq/backoff.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct slot {
	_Atomic uint64_t key;
	_Atomic uint64_t until_ms;
	_Atomic uint32_t fails;
};

struct backoff {
	struct slot s[AUTH_BACKOFF_SLOTS];
};

_Static_assert((AUTH_BACKOFF_SLOTS & (AUTH_BACKOFF_SLOTS - 1)) == 0, "slots must be a power of two");

static uint64_t addr_key(const char *addr)
{
	const char *colon = strrchr(addr, ':');
	size_t n = colon ? (size_t)(colon - addr) : strlen(addr);

	return hash_bytes(addr, n) | 1; /* 0 marks an empty slot */
}

static struct slot *slot_of(struct backoff *b, uint64_t key)
{
	return &b->s[(key >> 7) & (AUTH_BACKOFF_SLOTS - 1)];
}

struct backoff *backoff_new(void)
{
	return calloc(1, sizeof(struct backoff));
}

struct backoff *backoff_free(struct backoff *b)
{
	free(b);
	return NULL;
}

bool backoff_blocked(struct backoff *b, const char *addr, uint64_t now_ms)
{
	uint64_t key = addr_key(addr);
	struct slot *s = slot_of(b, key);

	return atomic_load_explicit(&s->key, memory_order_relaxed) == key &&
	       now_ms < atomic_load_explicit(&s->until_ms, memory_order_relaxed);
}

void backoff_failed(struct backoff *b, const char *addr, uint64_t now_ms, uint32_t max_s)
{
	uint64_t key = addr_key(addr), wait_ms;
	struct slot *s = slot_of(b, key);
	uint32_t fails;

	if (max_s == 0)
		return;
	if (atomic_exchange_explicit(&s->key, key, memory_order_relaxed) != key)
		atomic_store_explicit(&s->fails, 0, memory_order_relaxed); /* the slot changes hands */
	fails = atomic_fetch_add_explicit(&s->fails, 1, memory_order_relaxed) + 1;
	if (fails <= AUTH_BACKOFF_FREE_FAILURES)
		return;
	fails -= AUTH_BACKOFF_FREE_FAILURES;
	wait_ms = fails > 16 ? (uint64_t)max_s * 1000u : (uint64_t)1000u << (fails - 1);
	if (wait_ms > (uint64_t)max_s * 1000u)
		wait_ms = (uint64_t)max_s * 1000u;
	atomic_store_explicit(&s->until_ms, now_ms + wait_ms, memory_order_relaxed);
}

void backoff_ok(struct backoff *b, const char *addr)
{
	uint64_t key = addr_key(addr);
	struct slot *s = slot_of(b, key);

	if (atomic_load_explicit(&s->key, memory_order_relaxed) == key) {
		atomic_store_explicit(&s->fails, 0, memory_order_relaxed);
		atomic_store_explicit(&s->until_ms, 0, memory_order_relaxed);
	}
}
