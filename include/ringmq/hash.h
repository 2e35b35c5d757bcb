/*
 * hash.h - the one byte-string hash ringmq uses for its tables (sessions,
 * retained topics, shared groups, home shards, back-off slots).
 *
 * 64-bit FNV-1a: keys are short (client ids, topics), and the value of
 * shard_home() is part of the protocol between shards, so every table
 * agrees on one function.  Not keyed: tables that an attacker can fill
 * bound their own size (per-client subscription limits, fixed slots).
 *
 * Owner/Lifetime/Shared: a pure function.
 */
#ifndef RINGMQ_HASH_H
#define RINGMQ_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t hash_bytes(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

#endif
