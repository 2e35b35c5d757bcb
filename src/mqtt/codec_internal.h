/*
 * codec_internal.h - helpers shared by the codec's translation units.
 *
 * The reader is a pair of pointers (cursor, end) over the caller's bytes.
 * Every read checks the remaining length first, so a decoder never touches
 * a byte past `end`; the helpers are static inline so the hot path (PUBLISH)
 * makes no per-field function calls.  Nothing here allocates or logs.
 *
 * Owner:    n/a (stateless helpers over caller-owned bytes).
 * Lifetime: n/a.
 * Shared:   reentrant.
 */
#ifndef RINGMQ_CODEC_INTERNAL_H
#define RINGMQ_CODEC_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ringmq/mqtt.h"

/* The largest Remaining Length / Variable Byte Integer (section 1.5.5). */
#define VARINT_MAX 268435455u

/* Pseudo packet type for the Will Properties of CONNECT, so the property
 * table can say "valid in Will Properties" with one more bit. */
#define PTYPE_WILL 16u

/* Decode failure: errno value and the MQTT 5 reason code for the wire. */
#define FAIL(err, rc) (((int)(rc) << 8) | (int)(err))

struct rd {
	const uint8_t *p;
	const uint8_t *end;
};

static inline size_t rd_left(const struct rd *r)
{
	return (size_t)(r->end - r->p);
}

static inline int rd_u8(struct rd *r, uint8_t *v)
{
	if (r->p >= r->end)
		return -1;
	*v = *r->p++;
	return 0;
}

static inline int rd_u16(struct rd *r, uint16_t *v)
{
	if (rd_left(r) < 2)
		return -1;
	*v = (uint16_t)((uint16_t)r->p[0] << 8 | r->p[1]);
	r->p += 2;
	return 0;
}

static inline int rd_u32(struct rd *r, uint32_t *v)
{
	if (rd_left(r) < 4)
		return -1;
	*v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
	r->p += 4;
	return 0;
}

/* A two-byte length followed by that many bytes (UTF-8 string or binary
 * data, sections 1.5.4 and 1.5.6); no content check here. */
static inline int rd_str(struct rd *r, struct mqtt_str *s)
{
	uint16_t n;

	if (rd_u16(r, &n) < 0 || rd_left(r) < n)
		return -1;
	s->ptr = r->p;
	s->len = n;
	r->p += n;
	return 0;
}

/*
 * Variable Byte Integer (section 1.5.5): at most four bytes.  Returns 0 and
 * the value, -1 when the bytes run out, -2 when a fourth byte still has its
 * continuation bit (a fifth byte would be needed: malformed).  Non-minimal
 * encodings are accepted: only the sender is required to be minimal.
 * The one-byte case, by far the most common, is tested first.
 */
static inline int varint_get(const uint8_t *p, size_t n, uint32_t *v, uint32_t *used)
{
	uint32_t val = 0;

	if (n > 0 && p[0] < 0x80) {
		*v = p[0];
		*used = 1;
		return 0;
	}
	for (uint32_t i = 0; i < 4; i++) {
		if (i >= n)
			return -1;
		val |= (uint32_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*v = val;
			*used = i + 1;
			return 0;
		}
	}
	return -2;
}

static inline int rd_varint(struct rd *r, uint32_t *v)
{
	uint32_t used;
	int e = varint_get(r->p, rd_left(r), v, &used);

	if (e < 0)
		return e;
	r->p += used;
	return 0;
}

static inline uint8_t *put_u16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static inline uint8_t *put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

static inline uint8_t *put_varint(uint8_t *p, uint32_t v)
{
	do {
		uint8_t b = (uint8_t)(v & 0x7f);

		v >>= 7;
		*p++ = (uint8_t)(b | (v ? 0x80 : 0));
	} while (v);
	return p;
}

static inline uint8_t *put_str(uint8_t *p, const uint8_t *s, uint32_t n)
{
	p = put_u16(p, n);
	if (n)
		memcpy(p, s, n);
	return p + n;
}

/* utf8.c: mqtt_utf8_check() that also refuses '+' and '#' in the same pass,
 * for topic names [MQTT-3.3.2-2]: 0, -EILSEQ (bad UTF-8) or -EINVAL
 * (wildcard). */
int mqtt_utf8_name_check(const uint8_t *s, size_t len);

/* props.c */

/**
 * mqtt_props_decode() - parse the property block at @r (length varint and
 * properties) for packet type @ptype (or PTYPE_WILL) into @ret.  Returns 0,
 * or FAIL(errno, reason) on malformed or protocol-violating properties.
 */
int mqtt_props_decode(struct rd *r, unsigned ptype, struct mqtt_props *ret);

/** mqtt_props_clear() - an empty property set (no properties). */
void mqtt_props_clear(struct mqtt_props *p);

/**
 * mqtt_props_len() - bytes of the properties of @p for packet @ptype, not
 * counting the Property Length varint in front; UINT32_MAX if @p cannot be
 * encoded (a property not valid for @ptype, a Subscription Identifier of 0,
 * more than MQTT_SUBIDS_MAX of them, a total over the varint maximum).
 * Strings are mqtt_str with 32-bit lengths; one over 65,535 bytes is also
 * refused.
 */
uint32_t mqtt_props_len(const struct mqtt_props *p, unsigned ptype);

/** mqtt_props_put() - write the Property Length @len (from mqtt_props_len())
 * and the properties; returns the end of what was written. */
uint8_t *mqtt_props_put(uint8_t *dst, const struct mqtt_props *p, uint32_t len);

#endif
