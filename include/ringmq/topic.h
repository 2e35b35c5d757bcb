/*
 * topic.h - topic names and topic filters: validation and matching.
 *
 * Pure functions over caller-owned bytes (part of the codec library).
 * Topic names and filters are not NUL-terminated: they are (ptr, len)
 * views, as they arrive on the wire.
 *
 * Owner:    the caller owns every buffer; nothing is kept.
 * Lifetime: n/a.
 * Shared:   reentrant and thread-safe.
 */
#ifndef RINGMQ_TOPIC_H
#define RINGMQ_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/**
 * topic_name_check() - 0 if @t is a valid topic name for PUBLISH: at least
 * one byte [MQTT-4.7.3-1], no '+' or '#' [MQTT-3.3.2-2], at most
 * @levels_max levels.  -EINVAL for a wildcard or empty name, -E2BIG for too
 * many levels.  UTF-8 is checked by the codec, not here.
 */
int topic_name_check(const uint8_t *t, size_t len, uint32_t levels_max);

/**
 * topic_filter_check() - 0 if @f is a valid topic filter: at least one
 * byte, '#' only as the whole last level [MQTT-4.7.1-2], '+' only as a
 * whole level [MQTT-4.7.1-3], at most @levels_max levels.  -EINVAL or
 * -E2BIG as above.  A shared subscription prefix is not special here.
 */
int topic_filter_check(const uint8_t *f, size_t len, uint32_t levels_max);

/**
 * topic_match() - true if topic name @t matches filter @f.  Both must be
 * valid.  A filter starting with a wildcard does not match a topic
 * starting with '$' [MQTT-4.7.2-1]; "a/#" matches "a" [MQTT-4.7.1-2].
 */
bool topic_match(const uint8_t *f, size_t flen, const uint8_t *t, size_t tlen);

/** topic_has_wildcard() - true if @f contains '+' or '#'. */
bool topic_has_wildcard(const uint8_t *f, size_t len);

/**
 * topic_share_split() - if @f is "$share/{group}/{filter}", return 1 and set
 * the views of group and filter; 0 if it is not a shared subscription;
 * -EINVAL if it starts with "$share/" but the group is empty, contains a
 * wildcard, or no filter follows [MQTT-4.8.2-1/2].  Any of the four
 * output pointers may be NULL; they are written only when 1 is returned.
 */
int topic_share_split(const uint8_t *f, size_t len, const uint8_t **ret_group,
		      size_t *ret_group_len, const uint8_t **ret_filter, size_t *ret_filter_len);

/**
 * topic_level_hash() - 64-bit hash of one topic level (@len bytes, no '/'),
 * shared by the subscription indexes (trie.c, route.c) so that a level is
 * hashed the same way wherever it is looked up.  Not keyed: it spreads
 * ordinary level names well but a client that crafts colliding levels can
 * lengthen probe chains (bounded by its subscription limit).  Inline
 * because it runs once per topic level on the publish path.
 */
static inline uint64_t topic_level_hash(const uint8_t *level, size_t len)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)len * 0xff51afd7ed558ccdull);
	uint64_t w;

	while (len >= 8) {
		memcpy(&w, level, 8);
		h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
		h ^= h >> 31;
		level += 8;
		len -= 8;
	}
	w = 0;
	for (size_t i = 0; i < len; i++)
		w |= (uint64_t)level[i] << (8 * i);
	h = (h ^ w) * 0x94d049bb133111ebull;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return h;
}

#endif
