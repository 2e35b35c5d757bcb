/*
 * utf8.c - MQTT UTF-8 validation (section 1.5.4).
 *
 * MQTT strings must be well-formed UTF-8 as RFC 3629 defines it: no
 * overlong forms, no UTF-16 surrogates (U+D800..U+DFFF), nothing above
 * U+10FFFF [MQTT-1.5.4-1], and additionally no U+0000 [MQTT-1.5.4-2].
 * The control characters and non-characters the specification says a
 * sender SHOULD NOT use are accepted: rejecting them is optional and
 * clients in the wild do send them.
 *
 * Design: topics and client ids are overwhelmingly ASCII, so the loop tests
 * eight bytes at a time for "any byte zero or >= 0x80" (one subtraction and
 * two logic operations) and drops to the byte-wise Unicode Table 3-7 state
 * checks only for a word that needs it.  The topic-name variant folds the
 * wildcard test [MQTT-3.3.2-2] into the same pass, so PUBLISH decoding reads
 * its topic once.
 */
#include "codec_internal.h"

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* Non-zero if some byte of @w is 0 or >= 0x80.  A borrow out of a zero byte
 * may flag its neighbour too; that only costs a trip to the slow path. */
static inline uint64_t word_special(uint64_t w)
{
	return ((w - ONES) | w) & HIGHS;
}

/* Non-zero if some byte of @w equals @b (b < 0x80), same caveat. */
static inline uint64_t word_has(uint64_t w, uint8_t b)
{
	uint64_t x = w ^ (ONES * b);

	return (x - ONES) & ~x & HIGHS;
}

/* Length of the well-formed sequence starting at @p (lead byte >= 0x80), or
 * 0 if it is ill-formed or truncated.  Ranges from Unicode Table 3-7. */
static size_t multibyte(const uint8_t *p, size_t left)
{
	uint8_t c = p[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong below U+0800 */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates U+D800..U+DFFF */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong below U+10000 */
		else if (c == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else {
		return 0; /* continuation byte, C0/C1 overlong, F5..FF */
	}
	if (left < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* @nul: U+0000 is allowed (plain RFC 3629, for other protocols' text). */
static inline int check(const uint8_t *s, size_t len, bool name, bool nul)
{
	const uint8_t *p = s, *end;

	if (len == 0)
		return 0; /* s may be NULL then */
	end = s + len;
	while (p < end) {
		while ((size_t)(end - p) >= 8) {
			uint64_t w;

			memcpy(&w, p, 8);
			if (word_special(w) || (name && (word_has(w, '+') | word_has(w, '#'))))
				break;
			p += 8;
		}
		if (p == end)
			break;
		/* Byte-wise up to the next word boundary relative to p. */
		for (const uint8_t *stop = p + 8 < end ? p + 8 : end; p < stop;) {
			uint8_t c = *p;

			if (c >= 0x80) {
				size_t n = multibyte(p, (size_t)(end - p));

				if (n == 0)
					return -EILSEQ;
				p += n;
				continue;
			}
			if (c == 0 && !nul)
				return -EILSEQ; /* [MQTT-1.5.4-2] */
			if (name && (c == '+' || c == '#'))
				return -EINVAL; /* [MQTT-3.3.2-2] */
			p++;
		}
	}
	return 0;
}

int mqtt_utf8_check(const uint8_t *s, size_t len)
{
	return check(s, len, false, false);
}

int mqtt_utf8_name_check(const uint8_t *s, size_t len)
{
	return check(s, len, true, false);
}

int utf8_wellformed(const uint8_t *s, size_t len)
{
	return check(s, len, false, true);
}
