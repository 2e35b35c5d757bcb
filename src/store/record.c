/*
 * record.c - record formats of the store (see record.h).
 *
 * Writers never fail midway: a buffer that cannot grow sets `oom` and
 * later writes are dropped, so the caller checks once at the end.
 * Readers walk a cursor that turns every overrun into REC_CORRUPT.
 */
#include "ringmq/record.h"

#include <stdlib.h>
#include <string.h>

#include "ringmq/hash.h"

static const char *const db_names[REC_DB_COUNT] = {
	"meta", "retained", "sessions", "subscriptions", "deliveries", "flows", "qos2in",
};

const char *rec_db_name(unsigned db)
{
	return db < REC_DB_COUNT ? db_names[db] : "?";
}

/* ------------------------------------------------------------ CRC-32C */

/* Every record is checksummed when written and when read, so the CRC is on
 * the hot path of a persistent QoS 1 message: the SSE 4.2 instruction where
 * the CPU has it (checked once), else a table. */
static uint32_t crc_table[256];
static bool crc_hw;

/* Filled before main() (and so before any thread), never written again. */
__attribute__((constructor)) static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_table[i] = c;
	}
#if defined(__x86_64__)
	__builtin_cpu_init();
	crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

uint32_t rec_crc32c_portable(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	for (size_t i = 0; i < n; i++)
		crc = crc_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
	return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t crc, const uint8_t *p, size_t n)
{
	uint64_t c = ~crc;

	for (; n >= 8; p += 8, n -= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
	}
	for (; n; p++, n--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p);
	return ~(uint32_t)c;
}
#endif

uint32_t rec_crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
#if defined(__x86_64__)
	if (crc_hw)
		return crc_sse42(crc, p, n);
#endif
	return rec_crc32c_portable(crc, p, n);
}

/* ------------------------------------------------------------- buffers */

void rec_buf_reserve(struct rec_buf *b, size_t n)
{
	size_t cap = b->cap ? b->cap : 256;
	uint8_t *p;

	if (b->oom || b->len + n <= b->cap)
		return;
	while (cap < b->len + n)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return;
	}
	b->p = p;
	b->cap = cap;
}

void rec_buf_free(struct rec_buf *b)
{
	free(b->p);
	*b = (struct rec_buf){0};
}

static void put_bytes(struct rec_buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) /* the common case skips the call */
		rec_buf_reserve(b, n);
	if (b->oom)
		return;
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void put_u8(struct rec_buf *b, uint8_t v)
{
	put_bytes(b, &v, 1);
}

static void put_le(struct rec_buf *b, uint64_t v, unsigned n)
{
	uint8_t t[8];
	for (unsigned i = 0; i < n; i++)
		t[i] = (uint8_t)(v >> (8 * i));
	put_bytes(b, t, n);
}

static void put_str(struct rec_buf *b, const uint8_t *p, uint32_t n)
{
	put_le(b, n, 4);
	put_bytes(b, p, n);
}

/* Frame: format, kind ... body ... crc over all of it. */
static size_t frame_begin(struct rec_buf *b, uint8_t kind)
{
	size_t at = b->len;
	put_u8(b, RECORD_FORMAT);
	put_u8(b, kind);
	return at;
}

static void frame_end(struct rec_buf *b, size_t at)
{
	if (b->oom)
		return;
	put_le(b, rec_crc32c(0, b->p + at, b->len - at), 4);
}

/* --------------------------------------------------------------- keys */

/* @len is at most 65535 (MQTT strings); callers hold to that. */
static size_t key_part(uint8_t *dst, const uint8_t *s, size_t len, size_t max)
{
	size_t keep;

	if (len > 65535)
		len = 65535; /* never from the wire; keeps the length prefix honest */
	keep = len <= max ? len : max - 8;

	dst[0] = (uint8_t)(len >> 8);
	dst[1] = (uint8_t)len;
	memcpy(dst + 2, s, keep);
	if (keep < len) {
		uint64_t h = hash_bytes(s, len);
		for (unsigned i = 0; i < 8; i++)
			dst[2 + keep + i] = (uint8_t)(h >> (56 - 8 * i));
		keep += 8;
	}
	return 2 + keep;
}

size_t rec_key_id(uint8_t *dst, const uint8_t *id, size_t len)
{
	return key_part(dst, id, len, RECORD_ID_PART_MAX);
}

size_t rec_key_name(uint8_t *dst, const uint8_t *name, size_t len)
{
	return key_part(dst, name, len, RECORD_NAME_PART_MAX);
}

size_t rec_key_u64(uint8_t *dst, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		dst[i] = (uint8_t)(v >> (56 - 8 * i));
	return 8;
}

size_t rec_key_u16(uint8_t *dst, uint16_t v)
{
	dst[0] = (uint8_t)(v >> 8);
	dst[1] = (uint8_t)v;
	return 2;
}

/* ------------------------------------------------------------ encoders */

#define MF_RETAIN 0x01
#define MF_PAYLOAD_FORMAT 0x02
#define MF_CONTENT_TYPE 0x04
#define MF_RESPONSE_TOPIC 0x08
#define MF_CORRELATION 0x10
#define MF_ALL 0x1F

static void put_msg(struct rec_buf *b, const struct msg *m, uint64_t expiry_wall_ms)
{
	uint8_t f = (uint8_t)((m->retain ? MF_RETAIN : 0) | (m->has_payload_format ? MF_PAYLOAD_FORMAT : 0) |
			      (m->has & MSG_HAS_CONTENT_TYPE ? MF_CONTENT_TYPE : 0) |
			      (m->has & MSG_HAS_RESPONSE_TOPIC ? MF_RESPONSE_TOPIC : 0) |
			      (m->has & MSG_HAS_CORRELATION ? MF_CORRELATION : 0));

	put_u8(b, m->qos);
	put_u8(b, f);
	put_u8(b, m->payload_format);
	put_le(b, expiry_wall_ms, 8);
	put_str(b, m->topic.ptr, m->topic.len);
	put_str(b, m->payload.ptr, m->payload.len);
	put_str(b, m->origin.ptr, m->origin.len);
	put_str(b, m->user.ptr, m->user.len);
	put_str(b, m->content_type.ptr, m->content_type.len);
	put_str(b, m->response_topic.ptr, m->response_topic.len);
	put_str(b, m->correlation_data.ptr, m->correlation_data.len);
}

void rec_put_retain(struct rec_buf *b, const struct msg *m, uint64_t expiry_wall_ms)
{
	size_t at = frame_begin(b, REC_KIND_RETAIN);
	put_msg(b, m, expiry_wall_ms);
	frame_end(b, at);
}

void rec_put_sess(struct rec_buf *b, const struct rec_sess *rs)
{
	size_t at = frame_begin(b, REC_KIND_SESS);

	put_str(b, rs->client_id.ptr, rs->client_id.len);
	put_u8(b, rs->version);
	put_le(b, rs->expiry_s, 4);
	put_le(b, rs->offline_wall_ms, 8);
	put_u8(b, (uint8_t)((rs->has_username ? 1 : 0) | (rs->has_will ? 2 : 0)));
	if (rs->has_username)
		put_str(b, rs->username.ptr, rs->username.len);
	if (rs->has_will) {
		put_le(b, rs->will_delay_s, 4);
		put_msg(b, rs->will, rs->will_expiry_wall_ms);
	}
	frame_end(b, at);
}

void rec_put_sub(struct rec_buf *b, const struct rec_sub *sub)
{
	size_t at = frame_begin(b, REC_KIND_SUB);

	put_u8(b, sub->options);
	put_le(b, sub->sub_id, 4);
	put_str(b, sub->filter.ptr, sub->filter.len);
	frame_end(b, at);
}

void rec_put_deliv(struct rec_buf *b, const struct rec_deliv *d, const struct msg *m)
{
	size_t at = frame_begin(b, REC_KIND_DELIV);

	put_u8(b, d->state);
	put_le(b, d->pid, 2);
	put_u8(b, d->qos);
	put_u8(b, d->retain);
	put_le(b, d->share_id, 4);
	put_u8(b, d->nsubids);
	for (unsigned i = 0; i < d->nsubids; i++)
		put_le(b, d->subids[i], 4);
	put_msg(b, m, d->expiry_wall_ms);
	frame_end(b, at);
}

void rec_put_flow(struct rec_buf *b, const struct rec_flow *f)
{
	size_t at = frame_begin(b, REC_KIND_FLOW);
	put_u8(b, f->state);
	put_le(b, f->pid, 2);
	frame_end(b, at);
}

void rec_put_q2in(struct rec_buf *b)
{
	frame_end(b, frame_begin(b, REC_KIND_Q2IN));
}

void rec_put_meta_u64(struct rec_buf *b, uint64_t v)
{
	size_t at = frame_begin(b, REC_KIND_META);
	put_le(b, v, 8);
	frame_end(b, at);
}

/* ------------------------------------------------------------ decoders */

struct cur {
	const uint8_t *p;
	size_t n, off;
	bool bad;
};

static uint64_t get_le(struct cur *c, unsigned n)
{
	uint64_t v = 0;

	if (c->bad || c->n - c->off < n) {
		c->bad = true;
		return 0;
	}
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)c->p[c->off + i] << (8 * i);
	c->off += n;
	return v;
}

static struct mqtt_str get_str(struct cur *c)
{
	struct mqtt_str s = {0};
	uint64_t n = get_le(c, 4);

	if (c->bad || c->n - c->off < n) {
		c->bad = true;
		return s;
	}
	s.ptr = c->p + c->off;
	s.len = (uint32_t)n;
	c->off += n;
	return s;
}

/* Check the frame and position @c at the body.  Returns REC_OK or the error. */
static int frame_open(const uint8_t *p, size_t n, uint8_t kind, struct cur *c)
{
	uint32_t crc;

	if (n < 6)
		return REC_CORRUPT;
	if (p[0] > RECORD_FORMAT)
		return REC_NEWER;
	if (p[0] != RECORD_FORMAT || p[1] != kind)
		return REC_CORRUPT;
	crc = (uint32_t)p[n - 4] | (uint32_t)p[n - 3] << 8 | (uint32_t)p[n - 2] << 16 | (uint32_t)p[n - 1] << 24;
	if (rec_crc32c(0, p, n - 4) != crc)
		return REC_CORRUPT;
	*c = (struct cur){.p = p, .n = n - 4, .off = 2};
	return REC_OK;
}

static int frame_close(const struct cur *c)
{
	return c->bad || c->off != c->n ? REC_CORRUPT : REC_OK;
}

static void get_msg(struct cur *c, struct msg *m, uint64_t *ret_expiry)
{
	uint8_t f;

	memset(m, 0, sizeof(*m));
	m->qos = (uint8_t)get_le(c, 1);
	f = (uint8_t)get_le(c, 1);
	m->payload_format = (uint8_t)get_le(c, 1);
	*ret_expiry = get_le(c, 8);
	m->topic = get_str(c);
	m->payload = get_str(c);
	m->origin = get_str(c);
	m->user = get_str(c);
	m->content_type = get_str(c);
	m->response_topic = get_str(c);
	m->correlation_data = get_str(c);
	if (m->qos > 2 || (f & ~MF_ALL) || m->topic.len == 0 || m->topic.len > 65535 || m->origin.len > 65535 ||
	    m->payload_format > 1 || (!(f & MF_PAYLOAD_FORMAT) && m->payload_format) ||
	    (!(f & MF_CONTENT_TYPE) && m->content_type.len) || (!(f & MF_RESPONSE_TOPIC) && m->response_topic.len) ||
	    (!(f & MF_CORRELATION) && m->correlation_data.len))
		c->bad = true;
	m->retain = f & MF_RETAIN;
	m->has_payload_format = f & MF_PAYLOAD_FORMAT;
	m->has = (uint8_t)((f & MF_CONTENT_TYPE ? MSG_HAS_CONTENT_TYPE : 0) |
			   (f & MF_RESPONSE_TOPIC ? MSG_HAS_RESPONSE_TOPIC : 0) |
			   (f & MF_CORRELATION ? MSG_HAS_CORRELATION : 0));
}

int rec_get_retain(const uint8_t *p, size_t n, struct msg *ret_m, uint64_t *ret_expiry_wall_ms)
{
	struct cur c;
	struct msg m;
	uint64_t expiry;
	int r = frame_open(p, n, REC_KIND_RETAIN, &c);

	if (r != REC_OK)
		return r;
	get_msg(&c, &m, &expiry);
	r = frame_close(&c);
	if (r == REC_OK) {
		*ret_m = m;
		*ret_expiry_wall_ms = expiry;
	}
	return r;
}

int rec_get_sess(const uint8_t *p, size_t n, struct rec_sess *ret)
{
	struct cur c;
	struct rec_sess rs = {0};
	struct msg will;
	int r = frame_open(p, n, REC_KIND_SESS, &c);
	uint8_t f;

	if (r != REC_OK)
		return r;
	rs.client_id = get_str(&c);
	rs.version = (uint8_t)get_le(&c, 1);
	rs.expiry_s = (uint32_t)get_le(&c, 4);
	rs.offline_wall_ms = get_le(&c, 8);
	f = (uint8_t)get_le(&c, 1);
	if (f & ~3u || rs.client_id.len > 65535 || rs.version < 3 || rs.version > 5)
		return REC_CORRUPT;
	rs.has_username = f & 1;
	rs.has_will = f & 2;
	if (rs.has_username)
		rs.username = get_str(&c);
	if (rs.has_will) {
		rs.will_delay_s = (uint32_t)get_le(&c, 4);
		get_msg(&c, &will, &rs.will_expiry_wall_ms);
	}
	r = frame_close(&c);
	if (r != REC_OK)
		return r;
	rs.will = ret->will;
	if (rs.has_will)
		*rs.will = will;
	*ret = rs;
	return REC_OK;
}

int rec_get_sub(const uint8_t *p, size_t n, struct rec_sub *ret)
{
	struct rec_sub sub;
	struct cur c;
	int r = frame_open(p, n, REC_KIND_SUB, &c);

	if (r != REC_OK)
		return r;
	sub.options = (uint8_t)get_le(&c, 1);
	sub.sub_id = (uint32_t)get_le(&c, 4);
	sub.filter = get_str(&c);
	/* MQTT 5 section 3.8.3.1: QoS 3, Retain Handling 3 and bits 6-7 are never valid */
	if (sub.filter.len == 0 || sub.filter.len > 65535 || (sub.options & 0x03) == 3 ||
	    (sub.options & 0x30) == 0x30 || (sub.options & 0xC0) || sub.sub_id > 268435455u)
		return REC_CORRUPT;
	r = frame_close(&c);
	if (r == REC_OK)
		*ret = sub;
	return r;
}

int rec_get_deliv(const uint8_t *p, size_t n, struct rec_deliv *ret)
{
	struct rec_deliv d;
	struct msg m;
	uint8_t retain;
	struct cur c;
	int r = frame_open(p, n, REC_KIND_DELIV, &c);

	if (r != REC_OK)
		return r;
	d.state = (uint8_t)get_le(&c, 1);
	d.pid = (uint16_t)get_le(&c, 2);
	d.qos = (uint8_t)get_le(&c, 1);
	retain = (uint8_t)get_le(&c, 1);
	d.retain = retain;
	d.share_id = (uint32_t)get_le(&c, 4);
	d.nsubids = (uint8_t)get_le(&c, 1);
	/* States (sess.h): 0 queued (no packet id), 1 QoS 1 sent, 2 and 3 QoS 2 sent / released. */
	if (d.nsubids > MQTT_SUBIDS_MAX || d.state > 3 || d.qos < 1 || d.qos > 2 || retain > 1 ||
	    (d.state == 0) != (d.pid == 0) || (d.state == 1 && d.qos != 1) || (d.state >= 2 && d.qos != 2))
		return REC_CORRUPT;
	for (unsigned i = 0; i < d.nsubids; i++) {
		d.subids[i] = (uint32_t)get_le(&c, 4);
		if (d.subids[i] == 0 || d.subids[i] > 268435455u)
			c.bad = true;
	}
	get_msg(&c, &m, &d.expiry_wall_ms);
	r = frame_close(&c);
	if (r != REC_OK)
		return r;
	d.m = ret->m;
	*d.m = m;
	*ret = d;
	return REC_OK;
}

int rec_get_flow(const uint8_t *p, size_t n, struct rec_flow *ret)
{
	struct rec_flow f;
	struct cur c;
	int r = frame_open(p, n, REC_KIND_FLOW, &c);

	if (r != REC_OK)
		return r;
	f.state = (uint8_t)get_le(&c, 1);
	f.pid = (uint16_t)get_le(&c, 2);
	if (f.state < 1 || f.state > 3 || f.pid == 0)
		return REC_CORRUPT;
	r = frame_close(&c);
	if (r == REC_OK)
		*ret = f;
	return r;
}

int rec_get_q2in(const uint8_t *p, size_t n)
{
	struct cur c;
	int r = frame_open(p, n, REC_KIND_Q2IN, &c);

	return r != REC_OK ? r : frame_close(&c);
}

int rec_get_meta_u64(const uint8_t *p, size_t n, uint64_t *ret)
{
	uint64_t v;
	struct cur c;
	int r = frame_open(p, n, REC_KIND_META, &c);

	if (r != REC_OK)
		return r;
	v = get_le(&c, 8);
	r = frame_close(&c);
	if (r == REC_OK)
		*ret = v;
	return r;
}

int rec_check(unsigned db, const uint8_t *p, size_t n)
{
	struct msg m;
	struct rec_sess rs = {.will = &m};
	struct rec_sub sub;
	struct rec_deliv d = {.m = &m};
	struct rec_flow f;
	uint64_t v;

	switch (db) {
	case REC_DB_META:
		return rec_get_meta_u64(p, n, &v);
	case REC_DB_RETAIN:
		return rec_get_retain(p, n, &m, &v);
	case REC_DB_SESS:
		return rec_get_sess(p, n, &rs);
	case REC_DB_SUB:
		return rec_get_sub(p, n, &sub);
	case REC_DB_DELIV:
		return rec_get_deliv(p, n, &d);
	case REC_DB_FLOW:
		return rec_get_flow(p, n, &f);
	case REC_DB_Q2IN:
		return rec_get_q2in(p, n);
	default:
		return REC_CORRUPT;
	}
}

/* ------------------------------------------------------------- op stream */

size_t rec_op_begin(struct rec_buf *b, uint8_t type, uint8_t db)
{
	size_t at = b->len;
	uint8_t h[REC_OP_HEADER] = {type, db};
	put_bytes(b, h, sizeof(h));
	return at;
}

void rec_op_key_done(struct rec_buf *b, size_t at)
{
	size_t klen = b->len - at - REC_OP_HEADER;

	if (b->oom)
		return;
	b->p[at + 2] = (uint8_t)klen;
	b->p[at + 3] = (uint8_t)(klen >> 8);
}

void rec_op_end(struct rec_buf *b, size_t at)
{
	size_t klen, vlen;

	if (b->oom)
		return;
	klen = (size_t)b->p[at + 2] | (size_t)b->p[at + 3] << 8;
	vlen = b->len - at - REC_OP_HEADER - klen;
	for (unsigned i = 0; i < 4; i++)
		b->p[at + 4 + i] = (uint8_t)(vlen >> (8 * i));
}

int rec_op_next(const uint8_t *p, size_t n, size_t *off, struct rec_op *ret)
{
	size_t o = *off;
	struct rec_op op;

	if (o == n)
		return 0;
	if (o > n || n - o < REC_OP_HEADER)
		return REC_CORRUPT;
	op.type = p[o];
	op.db = p[o + 1];
	op.klen = (uint16_t)(p[o + 2] | p[o + 3] << 8);
	op.vlen = (uint32_t)p[o + 4] | (uint32_t)p[o + 5] << 8 | (uint32_t)p[o + 6] << 16 | (uint32_t)p[o + 7] << 24;
	o += REC_OP_HEADER;
	if (op.type < REC_OP_PUT || op.type > REC_OP_NOP || op.db >= REC_DB_COUNT || op.klen == 0 ||
	    op.klen > RECORD_KEY_MAX || n - o < op.klen || n - o - op.klen < op.vlen)
		return REC_CORRUPT;
	op.key = p + o;
	op.val = p + o + op.klen;
	*ret = op;
	*off = o + op.klen + op.vlen;
	return 1;
}
