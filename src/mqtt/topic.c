/*
 * topic.c - topic name and topic filter validation and matching (MQTT 3.1.1
 * and 5.0 section 4.7).
 *
 * Everything here is a pure function over a caller-owned (ptr, len) view:
 * nothing is allocated, nothing is kept, no NUL terminator is assumed and
 * strlen() is never called.  Each function makes one forward pass over its
 * input; level boundaries are found with memchr(), which the C library
 * vectorises, so a long level costs little more than its bytes.
 *
 * Levels: a string of n '/' bytes has n + 1 levels, and an empty level (as
 * in "/a", "a//b" or "a/") is a level like any other [MQTT-4.7.1-1 note].
 * Bytes are compared exactly: no case folding, no normalisation.
 *
 * topic_match() walks filter and topic level by level and needs no stack:
 * MQTT filters have at most one multi-level wildcard and it is last, so no
 * backtracking is ever needed.  The subscription indexes (trie.c, route.c)
 * implement the same rules over many filters at once, and their tests
 * compare them against this function.
 */
#include "ringmq/topic.h"

#include <errno.h>
#include <string.h>

/* A string has one level more than it has '/' bytes; comparing the slash
 * count against the bound avoids the "+ 1" overflowing at SIZE_MAX. */
static int levels_check(size_t slashes, uint32_t levels_max)
{
	return slashes >= (size_t)levels_max ? -E2BIG : 0;
}

int topic_name_check(const uint8_t *t, size_t len, uint32_t levels_max)
{
	size_t slashes = 0;
	bool wild = false;

	/* [MQTT-4.7.3-1]: a topic name is at least one byte long. */
	if (len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = t[i];

		slashes += c == '/';
		wild |= c == '+' || c == '#';
	}
	/* [MQTT-3.3.2-2]: no wildcard characters in a PUBLISH topic name. */
	if (wild)
		return -EINVAL;
	return levels_check(slashes, levels_max);
}

/* One level of a filter, [s, e): a wildcard character must be the whole
 * level, and '#' must also be the last level. */
static bool filter_level_ok(const uint8_t *s, const uint8_t *e, bool last)
{
	size_t n = (size_t)(e - s);

	for (const uint8_t *p = s; p < e; p++) {
		/* [MQTT-4.7.1-3]: '+' occupies an entire level ("sport+" is
		 * invalid).  [MQTT-4.7.1-2]: so does '#', and it is last
		 * ("sport/tennis#" and "sport/#/ranking" are invalid). */
		if (*p == '+' && n != 1)
			return false;
		if (*p == '#' && (n != 1 || !last))
			return false;
	}
	return true;
}

int topic_filter_check(const uint8_t *f, size_t len, uint32_t levels_max)
{
	const uint8_t *p = f;
	const uint8_t *end = f + len;
	size_t slashes = 0;

	/* [MQTT-4.7.3-1]: a topic filter is at least one byte long. */
	if (len == 0)
		return -EINVAL;
	for (;;) {
		const uint8_t *e = memchr(p, '/', (size_t)(end - p));
		bool last = e == NULL;

		if (last)
			e = end;
		if (!filter_level_ok(p, e, last))
			return -EINVAL;
		if (last)
			break;
		slashes++;
		p = e + 1;
	}
	return levels_check(slashes, levels_max);
}

/* End of the level starting at @p: the next '/' or @end. */
static inline const uint8_t *level_end(const uint8_t *p, const uint8_t *end)
{
	const uint8_t *e = memchr(p, '/', (size_t)(end - p));

	return e ? e : end;
}

bool topic_match(const uint8_t *f, size_t flen, const uint8_t *t, size_t tlen)
{
	const uint8_t *fp = f, *fend = f + flen;
	const uint8_t *tp = t, *tend = t + tlen;

	if (flen == 0 || tlen == 0)
		return false;
	/* [MQTT-4.7.2-1]: a filter starting with a wildcard does not match a
	 * topic name starting with '$' ("#" vs "$SYS/x"). */
	if (t[0] == '$' && (f[0] == '+' || f[0] == '#'))
		return false;
	for (;;) {
		const uint8_t *fe, *te;

		/* [MQTT-4.7.1-2]: '#' matches this level and any below it.
		 * Reaching it with the topic exhausted is handled below. */
		if (fp < fend && *fp == '#')
			return true;
		fe = level_end(fp, fend);
		te = level_end(tp, tend);
		/* [MQTT-4.7.1-3]: '+' matches exactly one level, which may be
		 * empty; anything else matches byte for byte. */
		if (!(fe - fp == 1 && *fp == '+') &&
		    ((fe - fp) != (te - tp) || memcmp(fp, tp, (size_t)(fe - fp)) != 0))
			return false;
		if (fe == fend)
			return te == tend;
		if (te == tend) {
			/* The topic has no more levels; the filter does.  Only a
			 * final "/#" still matches: "sport/#" matches "sport"
			 * [MQTT-4.7.1-2]. */
			return fend - fe == 2 && fe[1] == '#';
		}
		fp = fe + 1;
		tp = te + 1;
	}
}

bool topic_has_wildcard(const uint8_t *f, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (f[i] == '+' || f[i] == '#')
			return true;
	return false;
}

int topic_share_split(const uint8_t *f, size_t len, const uint8_t **ret_group, size_t *ret_group_len,
		      const uint8_t **ret_filter, size_t *ret_filter_len)
{
	static const uint8_t prefix[] = "$share/";
	const size_t plen = sizeof(prefix) - 1;
	const uint8_t *g, *end = f + len, *slash;

	/* "$share" alone, "$sharex/..." and anything else is an ordinary
	 * filter (which the caller validates as such). */
	if (len < plen || memcmp(f, prefix, plen) != 0)
		return 0;
	g = f + plen;
	slash = memchr(g, '/', (size_t)(end - g));
	/* [MQTT-4.8.2-2]: "$share/group" must be followed by "/" and a
	 * filter; [MQTT-4.8.2-1]: the group is at least one byte and has no
	 * '/', '+' or '#'. */
	if (slash == NULL || slash == g || slash + 1 == end)
		return -EINVAL;
	if (topic_has_wildcard(g, (size_t)(slash - g)))
		return -EINVAL;
	/* Callers that only ask "is it shared?" pass NULL outputs. */
	if (ret_group != NULL)
		*ret_group = g;
	if (ret_group_len != NULL)
		*ret_group_len = (size_t)(slash - g);
	if (ret_filter != NULL)
		*ret_filter = slash + 1;
	if (ret_filter_len != NULL)
		*ret_filter_len = (size_t)(end - slash - 1);
	return 1;
}
