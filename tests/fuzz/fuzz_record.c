/*
 * fuzz_record.c - libFuzzer target for the store's record formats (record.c).
 *
 * The input is read three ways: as a value of every kind (each decoder, and
 * rec_check() for every database, which must agree with it), and as an
 * operation stream walked to its end.  A decoder must return REC_OK,
 * REC_CORRUPT or REC_NEWER, and at most one kind can accept the same bytes.
 * A value that decodes must re-encode to the bytes it was read from (but
 * for a delivery's retain byte, see deliv_agree()), the re-encoding must
 * decode to the same fields, and encoding that second decode must give the
 * same bytes again: decode and encode agree.  Decoded views must lie inside
 * the input.  Each op's key and value must lie inside the stream, each value
 * is decoded (in an exact-size copy) as a record of the op's database, and
 * the ops written back with rec_op_begin/rec_op_key_done/rec_op_end must
 * give the bytes they were read from.  The values are tried once more with
 * the last four bytes replaced by the right CRC-32C, so that mutations
 * (and replay.c's bit flips) reach the body parsers.  Any failure aborts.
 *
 * Built two ways: with `clang -fsanitize=fuzzer,address,undefined` and no
 * driver for real fuzzing (see tests/fuzz/meson.build), and with replay.c
 * as an ordinary test that replays the committed corpus in CI.  The corpus
 * (corpus/record/) holds valid records of every kind and op streams.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringmq/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_record: %s:%d: check failed: %s\n", __FILE__,         \
				__LINE__, #c);                                                     \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static bool str_same(struct mqtt_str a, struct mqtt_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void str_inside(struct mqtt_str s, const uint8_t *p, size_t n)
{
	CHECK(s.len == 0 || (s.ptr >= p && s.len <= n && s.ptr - p <= (ptrdiff_t)(n - s.len)));
}

static void msg_inside(const struct msg *m, const uint8_t *p, size_t n)
{
	str_inside(m->topic, p, n);
	str_inside(m->payload, p, n);
	str_inside(m->origin, p, n);
	str_inside(m->user, p, n);
	str_inside(m->content_type, p, n);
	str_inside(m->response_topic, p, n);
	str_inside(m->correlation_data, p, n);
}

static void msg_same(const struct msg *a, const struct msg *b)
{
	CHECK(a->qos == b->qos);
	CHECK(a->retain == b->retain);
	CHECK(a->has_payload_format == b->has_payload_format);
	CHECK(a->payload_format == b->payload_format);
	CHECK(a->has == b->has);
	CHECK(str_same(a->topic, b->topic));
	CHECK(str_same(a->payload, b->payload));
	CHECK(str_same(a->origin, b->origin));
	CHECK(str_same(a->user, b->user));
	CHECK(str_same(a->content_type, b->content_type));
	CHECK(str_same(a->response_topic, b->response_topic));
	CHECK(str_same(a->correlation_data, b->correlation_data));
}

/* The first encoding @a of a value decoded from @p/@n, and the encoding
 * @b of its re-decode: both are the input, byte for byte (a decoder that
 * dropped a field both ways would pass a field comparison). */
static void encodings_agree(struct rec_buf *a, struct rec_buf *b, const uint8_t *p, size_t n)
{
	CHECK(!a->oom && !b->oom);
	CHECK(a->len == n);
	CHECK(memcmp(a->p, p, n) == 0);
	CHECK(b->len == a->len);
	CHECK(memcmp(a->p, b->p, a->len) == 0);
	rec_buf_free(a);
	rec_buf_free(b);
}

/* ------------------------------------------------------------- values */

static int one_retain(const uint8_t *p, size_t n)
{
	struct rec_buf a = {0}, b = {0};
	struct msg m, m2;
	uint64_t e, e2;
	int r = rec_get_retain(p, n, &m, &e);

	if (r != REC_OK)
		return r;
	msg_inside(&m, p, n);
	rec_put_retain(&a, &m, e);
	CHECK(!a.oom);
	CHECK(rec_get_retain(a.p, a.len, &m2, &e2) == REC_OK);
	msg_same(&m, &m2);
	CHECK(e == e2);
	rec_put_retain(&b, &m2, e2);
	encodings_agree(&a, &b, p, n);
	return r;
}

static void sess_same(const struct rec_sess *x, const struct rec_sess *y)
{
	CHECK(str_same(x->client_id, y->client_id));
	CHECK(x->version == y->version);
	CHECK(x->expiry_s == y->expiry_s);
	CHECK(x->offline_wall_ms == y->offline_wall_ms);
	CHECK(x->has_username == y->has_username);
	if (x->has_username)
		CHECK(str_same(x->username, y->username));
	CHECK(x->has_will == y->has_will);
	if (!x->has_will)
		return;
	CHECK(x->will_delay_s == y->will_delay_s);
	CHECK(x->will_expiry_wall_ms == y->will_expiry_wall_ms);
	msg_same(x->will, y->will);
}

static int one_sess(const uint8_t *p, size_t n)
{
	struct rec_buf a = {0}, b = {0};
	struct msg w, w2;
	struct rec_sess s = {.will = &w}, s2 = {.will = &w2};
	int r = rec_get_sess(p, n, &s);

	if (r != REC_OK)
		return r;
	CHECK(s.will == &w);
	str_inside(s.client_id, p, n);
	if (s.has_username)
		str_inside(s.username, p, n);
	if (s.has_will)
		msg_inside(&w, p, n);
	rec_put_sess(&a, &s);
	CHECK(!a.oom);
	CHECK(rec_get_sess(a.p, a.len, &s2) == REC_OK);
	sess_same(&s, &s2);
	rec_put_sess(&b, &s2);
	encodings_agree(&a, &b, p, n);
	return r;
}

static int one_sub(const uint8_t *p, size_t n)
{
	struct rec_buf a = {0}, b = {0};
	struct rec_sub s, s2;
	int r = rec_get_sub(p, n, &s);

	if (r != REC_OK)
		return r;
	str_inside(s.filter, p, n);
	CHECK(s.filter.len > 0);
	CHECK((s.options & 3) != 3);
	rec_put_sub(&a, &s);
	CHECK(!a.oom);
	CHECK(rec_get_sub(a.p, a.len, &s2) == REC_OK);
	CHECK(str_same(s.filter, s2.filter));
	CHECK(s.options == s2.options);
	CHECK(s.sub_id == s2.sub_id);
	rec_put_sub(&b, &s2);
	encodings_agree(&a, &b, p, n);
	return r;
}

/* The retain byte of a delivery (format, kind, state, u16 pid, qos, retain). */
#define DELIV_RETAIN_AT 6

/*
 * encodings_agree() for a delivery.  The decoder reads its retain byte as
 * "not zero", so 2..255 decode as 1 and re-encode as 1: the one byte (and
 * so the checksum) that may differ from the input.  Compare with the input
 * as the encoder would have written it.
 */
static void deliv_agree(struct rec_buf *a, struct rec_buf *b, const uint8_t *p, size_t n)
{
	uint8_t *canon = malloc(n);
	uint32_t crc;

	CHECK(canon != NULL);
	memcpy(canon, p, n);
	if (canon[DELIV_RETAIN_AT] > 1) {
		canon[DELIV_RETAIN_AT] = 1;
		crc = rec_crc32c(0, canon, n - 4);
		for (unsigned i = 0; i < 4; i++)
			canon[n - 4 + i] = (uint8_t)(crc >> (8 * i));
	}
	encodings_agree(a, b, canon, n);
	free(canon);
}

static int one_deliv(const uint8_t *p, size_t n)
{
	struct rec_buf a = {0}, b = {0};
	struct msg m, m2;
	struct rec_deliv d = {.m = &m}, d2 = {.m = &m2};
	int r = rec_get_deliv(p, n, &d);

	if (r != REC_OK)
		return r;
	CHECK(d.m == &m);
	CHECK(d.nsubids <= MQTT_SUBIDS_MAX);
	CHECK(d.state <= 3);
	CHECK(d.state == 0 || d.pid != 0);
	msg_inside(&m, p, n);
	rec_put_deliv(&a, &d, &m);
	CHECK(!a.oom);
	CHECK(rec_get_deliv(a.p, a.len, &d2) == REC_OK);
	CHECK(d.state == d2.state);
	CHECK(d.pid == d2.pid);
	CHECK(d.qos == d2.qos);
	CHECK(d.retain == d2.retain);
	CHECK(d.share_id == d2.share_id);
	CHECK(d.nsubids == d2.nsubids);
	for (unsigned i = 0; i < d.nsubids; i++)
		CHECK(d.subids[i] == d2.subids[i]);
	CHECK(d.expiry_wall_ms == d2.expiry_wall_ms);
	msg_same(&m, &m2);
	rec_put_deliv(&b, &d2, &m2);
	deliv_agree(&a, &b, p, n);
	return r;
}

static int one_flow(const uint8_t *p, size_t n)
{
	struct rec_buf a = {0}, b = {0};
	struct rec_flow f, f2;
	int r = rec_get_flow(p, n, &f);

	if (r != REC_OK)
		return r;
	CHECK(f.state >= 1 && f.state <= 3 && f.pid != 0);
	rec_put_flow(&a, &f);
	CHECK(!a.oom);
	CHECK(rec_get_flow(a.p, a.len, &f2) == REC_OK);
	CHECK(f.state == f2.state && f.pid == f2.pid);
	rec_put_flow(&b, &f2);
	encodings_agree(&a, &b, p, n);
	return r;
}

static int one_q2in(const uint8_t *p, size_t n)
{
	struct rec_buf a = {0}, b = {0};
	int r = rec_get_q2in(p, n);

	if (r != REC_OK)
		return r;
	rec_put_q2in(&a);
	CHECK(!a.oom);
	CHECK(rec_get_q2in(a.p, a.len) == REC_OK);
	rec_put_q2in(&b);
	encodings_agree(&a, &b, p, n);
	return r;
}

static int one_meta(const uint8_t *p, size_t n)
{
	struct rec_buf a = {0}, b = {0};
	uint64_t v, v2;
	int r = rec_get_meta_u64(p, n, &v);

	if (r != REC_OK)
		return r;
	rec_put_meta_u64(&a, v);
	CHECK(!a.oom);
	CHECK(rec_get_meta_u64(a.p, a.len, &v2) == REC_OK);
	CHECK(v == v2);
	rec_put_meta_u64(&b, v2);
	encodings_agree(&a, &b, p, n);
	return r;
}

/* Decodes @p/@n as a value of database @db; checks rec_check() agrees. */
static int one_value(unsigned db, const uint8_t *p, size_t n)
{
	int r;

	switch (db) {
	case REC_DB_META: r = one_meta(p, n); break;
	case REC_DB_RETAIN: r = one_retain(p, n); break;
	case REC_DB_SESS: r = one_sess(p, n); break;
	case REC_DB_SUB: r = one_sub(p, n); break;
	case REC_DB_DELIV: r = one_deliv(p, n); break;
	case REC_DB_FLOW: r = one_flow(p, n); break;
	case REC_DB_Q2IN: r = one_q2in(p, n); break;
	default: CHECK(!"no such database"); return REC_CORRUPT;
	}
	CHECK(r == REC_OK || r == REC_CORRUPT || r == REC_NEWER);
	CHECK(r != REC_NEWER || (n > 0 && p[0] > RECORD_FORMAT));
	CHECK(r != REC_OK || (n >= 6 && p[0] == RECORD_FORMAT));
	CHECK(rec_check(db, p, n) == r);
	return r;
}

static void all_values(const uint8_t *p, size_t n)
{
	unsigned ok = 0;

	for (unsigned db = 0; db < REC_DB_COUNT; db++)
		if (one_value(db, p, n) == REC_OK)
			ok++;
	CHECK(ok <= 1);
	CHECK(rec_check(REC_DB_COUNT, p, n) == REC_CORRUPT);
}

/* ---------------------------------------------------------- op stream */

static void buf_append(struct rec_buf *b, const uint8_t *p, size_t n)
{
	rec_buf_reserve(b, n);
	CHECK(!b->oom);
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void all_ops(const uint8_t *data, size_t size)
{
	struct rec_buf again = {0};
	size_t off = 0;

	for (;;) {
		size_t before = off, at;
		struct rec_op op;
		uint8_t *val;
		int r = rec_op_next(data, size, &off, &op);

		CHECK(r == 1 || r == 0 || r == REC_CORRUPT);
		if (r != 1) {
			CHECK(off == before);
			CHECK(r != 0 || off == size);
			break;
		}
		CHECK(op.type >= REC_OP_PUT && op.type <= REC_OP_NOP);
		CHECK(op.db < REC_DB_COUNT);
		CHECK(op.klen >= 1 && op.klen <= RECORD_KEY_MAX);
		CHECK(op.key == data + before + REC_OP_HEADER);
		CHECK(op.val == op.key + op.klen);
		CHECK(off == before + REC_OP_HEADER + op.klen + op.vlen);
		CHECK(off > before && off <= size);
		val = malloc(op.vlen ? op.vlen : 1);
		CHECK(val != NULL);
		if (op.vlen)
			memcpy(val, op.val, op.vlen);
		(void)one_value(op.db, val, op.vlen); /* any result; one_value checks it is a valid one */
		free(val);
		at = rec_op_begin(&again, op.type, op.db);
		buf_append(&again, op.key, op.klen);
		rec_op_key_done(&again, at);
		buf_append(&again, op.val, op.vlen);
		rec_op_end(&again, at);
	}
	CHECK(!again.oom);
	CHECK(again.len == off);
	CHECK(off == 0 || memcmp(again.p, data, off) == 0);
	rec_buf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	all_values(data, size);
	all_ops(data, size);
	if (size >= 6) {
		/* Again with the checksum made right, so that mutations reach the
		 * body parsers instead of stopping at the CRC. */
		uint8_t *copy = malloc(size);
		uint32_t crc;

		CHECK(copy != NULL);
		memcpy(copy, data, size);
		crc = rec_crc32c(0, copy, size - 4);
		for (unsigned i = 0; i < 4; i++)
			copy[size - 4 + i] = (uint8_t)(crc >> (8 * i));
		all_values(copy, size);
		free(copy);
	}
	return 0;
}
