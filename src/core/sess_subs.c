/*
 * sess_subs.c - a session's own list of subscriptions (sess.h): what it
 * subscribed to with which options, for SUBSCRIBE replacing a filter,
 * UNSUBSCRIBE, the store and the session's end.  The trie and the route
 * index hold the same subscriptions for matching; this list is the
 * session's record of them.
 */
#include "ringmq/hash.h"
#include "ringmq/sess.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SUB_INDEX_FROM 16u

#define SUB_TOMB UINT32_MAX /* a deleted slot: lookups go on past it */

/* The slot holding filter @f, or -1. */
static int64_t sub_slot_find(const struct sess *se, const uint8_t *f, uint16_t len)
{
	uint32_t i = (uint32_t)hash_bytes(f, len) & se->sub_index_mask;

	for (;; i = (i + 1) & se->sub_index_mask) {
		uint32_t v = se->sub_index[i];
		if (v == 0)
			return -1; /* at most half taken: this ends */
		if (v != SUB_TOMB && se->subs[v - 1].len == len && memcmp(se->subs[v - 1].filter, f, len) == 0)
			return i;
	}
}

/* A free slot (empty or deleted) for a filter not in the index. */
static uint32_t sub_slot_free(const struct sess *se, const uint8_t *f, uint16_t len)
{
	uint32_t i = (uint32_t)hash_bytes(f, len) & se->sub_index_mask;

	while (se->sub_index[i] != 0 && se->sub_index[i] != SUB_TOMB)
		i = (i + 1) & se->sub_index_mask;
	return i;
}

/* (Re)build the index for the current subs; false when out of memory (the
 * linear search then serves, just slower). */
static bool sub_index_build(struct sess *se)
{
	uint32_t size = 64;

	while (size < 4 * se->sub_count + 4)
		size *= 2;
	free(se->sub_index);
	se->sub_index = calloc(size, sizeof(uint32_t));
	if (!se->sub_index)
		return false;
	se->sub_index_mask = size - 1;
	se->sub_index_used = se->sub_count;
	for (uint32_t i = 0; i < se->sub_count; i++)
		se->sub_index[sub_slot_free(se, se->subs[i].filter, se->subs[i].len)] = i + 1;
	return true;
}

/* Index of filter @f in subs, or -1. */
static int64_t sub_find(const struct sess *se, const uint8_t *f, uint16_t len)
{
	if (se->sub_index) {
		int64_t slot = sub_slot_find(se, f, len);
		return slot >= 0 ? (int64_t)se->sub_index[slot] - 1 : -1;
	}
	for (uint32_t i = 0; i < se->sub_count; i++)
		if (se->subs[i].len == len && memcmp(se->subs[i].filter, f, len) == 0)
			return i;
	return -1;
}

int sess_sub_add(struct sess *se, const uint8_t *f, uint16_t len, uint8_t options, uint32_t sub_id,
		 uint32_t max, bool *ret_existed)
{
	int64_t at = sub_find(se, f, len);

	if (at >= 0) {
		se->subs[at].options = options;
		se->subs[at].sub_id = sub_id;
		*ret_existed = true;
		return 0;
	}
	if (se->sub_count >= max)
		return -EDQUOT;
	if (se->sub_count == se->sub_cap) {
		uint32_t cap = se->sub_cap ? se->sub_cap * 2 : 4;
		struct sess_sub *n = realloc(se->subs, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		se->subs = n;
		se->sub_cap = cap;
	}
	struct sess_sub *ss = &se->subs[se->sub_count];
	ss->filter = malloc(len ? len : 1);
	if (!ss->filter)
		return -ENOMEM;
	memcpy(ss->filter, f, len);
	ss->len = len;
	ss->options = options;
	ss->sub_id = sub_id;
	se->sub_count++;
	*ret_existed = false;
	if (se->sub_index && 2 * (se->sub_index_used + 1) <= se->sub_index_mask + 1) {
		uint32_t slot = sub_slot_free(se, f, len);
		se->sub_index_used += se->sub_index[slot] == 0;
		se->sub_index[slot] = se->sub_count;
	} else if (se->sub_count > SUB_INDEX_FROM) {
		(void)sub_index_build(se); /* grows the index; on failure lookups go linear */
	}
	return 0;
}

int sess_sub_del(struct sess *se, const uint8_t *f, uint16_t len)
{
	int64_t at = sub_find(se, f, len);
	uint32_t last;

	if (at < 0)
		return -ENOENT;
	last = se->sub_count - 1;
	if (se->sub_index) {
		se->sub_index[sub_slot_find(se, f, len)] = SUB_TOMB;
		if ((uint32_t)at != last) /* the last entry moves into the hole */
			se->sub_index[sub_slot_find(se, se->subs[last].filter, se->subs[last].len)] = (uint32_t)at + 1;
	}
	free(se->subs[at].filter);
	se->subs[at] = se->subs[last];
	se->sub_count--;
	return 0;
}
