/*
 * test_record.c - the store's record formats (record.c): framed values,
 * keys and the operation stream.
 *
 * Values: every kind is encoded and decoded again, and every decoded field
 * is compared with the original; decoded strings must be views into the
 * record.  The layout is pinned by building records by hand (hand_*
 * below, written from the description in record.h, never from record.c)
 * and comparing them with the encoders' bytes, so a change of format shows
 * up here and not on a user's disk.  The same hand builder makes records
 * whose checksum is right but whose fields are not (QoS 3, an empty topic,
 * an unknown flag bit, ...): the checksum only proves the bytes are the ones
 * written, so the decoder must still refuse what the broker could never
 * have written.
 *
 * Damage: every strict prefix of every sample record and every single-bit
 * flip of it must be reported as corrupt, except that a flip which raises
 * the format number reads as "written by a newer ringmq" (the format byte
 * is checked before the checksum, on purpose: the store refuses to start
 * rather than skip records it cannot read).
 *
 * Keys: a part is a big-endian length and the bytes, cut and followed by a
 * big-endian 64-bit FNV-1a hash of the whole name when too long.  The tests
 * check the bytes, the boundary at each limit, that long names differing
 * only after the cut stay distinct, and that one client's key range never
 * contains another client's keys (what REC_OP_DEL_SESSION relies on).
 *
 * Op stream: ops written with rec_op_begin/rec_op_key_done/rec_op_end read
 * back with rec_op_next; every truncation and every bad header is
 * REC_CORRUPT and leaves the offset where it was.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringmq/record.h"

/* A view of a string literal (which may contain NUL bytes). */
#define L(x) ((struct mqtt_str){(const uint8_t *)(x), sizeof(x) - 1})

#define SUB_ID_MAX 268435455u /* largest Subscription Identifier (MQTT 5, 3.8.2.1.2) */

/* Two user properties, encoded as on the wire: the store keeps the block
 * as opaque bytes. */
static const uint8_t user_block[] = {
	0x26, 0, 1, 'k', 0, 1, 'v', /* k = v */
	0x26, 0, 2, 'k', '2', 0, 0, /* k2 = "" */
};

static bool str_is(struct mqtt_str s, const void *want, size_t len)
{
	return s.len == len && (len == 0 || memcmp(s.ptr, want, len) == 0);
}

static bool str_eq(struct mqtt_str a, struct mqtt_str b)
{
	return str_is(a, b.ptr, b.len);
}

/* True when @s is empty or lies inside @p/@n. */
static bool inside(struct mqtt_str s, const uint8_t *p, size_t n)
{
	return s.len == 0 || (s.ptr >= p && s.ptr + s.len <= p + n);
}

static void buf_append(struct rec_buf *b, const void *p, size_t n)
{
	rec_buf_reserve(b, n);
	cr_assert_not(b->oom);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* A copy of @n bytes in a heap block of exactly that size, so a sanitizer
 * build catches a read one byte past the end. */
static uint8_t *exact(const uint8_t *p, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);

	cr_assert_not_null(c);
	if (n)
		memcpy(c, p, n);
	return c;
}

/* ------------------------------------------------------------ messages */

/* A message with every stored property, the payload holding a NUL byte. */
static void full_msg(struct msg *m)
{
	memset(m, 0, sizeof(*m));
	m->qos = 2;
	m->retain = true;
	m->has_payload_format = true;
	m->payload_format = 1;
	m->topic = L("home/kitchen/temp");
	m->payload = L("{\"c\":21.5}\0tail");
	m->origin = L("pub-1");
	m->user = (struct mqtt_str){user_block, sizeof(user_block)};
	m->content_type = L("application/json");
	m->response_topic = L("home/kitchen/reply");
	m->correlation_data = L("\x00\x01\xfe\xff");
	m->has = MSG_HAS_CONTENT_TYPE | MSG_HAS_RESPONSE_TOPIC | MSG_HAS_CORRELATION;
}

/* A message with nothing optional: QoS 0, a one-byte topic, empty payload. */
static void bare_msg(struct msg *m)
{
	memset(m, 0, sizeof(*m));
	m->topic = L("t");
}

static void msg_check(const struct msg *got, const struct msg *want)
{
	cr_assert_eq(got->qos, want->qos);
	cr_assert_eq(got->retain, want->retain);
	cr_assert_eq(got->has_payload_format, want->has_payload_format);
	cr_assert_eq(got->payload_format, want->payload_format);
	cr_assert_eq(got->has, want->has, "has 0x%x, want 0x%x", got->has, want->has);
	cr_assert(str_eq(got->topic, want->topic), "topic");
	cr_assert(str_eq(got->payload, want->payload), "payload");
	cr_assert(str_eq(got->origin, want->origin), "origin");
	cr_assert(str_eq(got->user, want->user), "user properties");
	cr_assert(str_eq(got->content_type, want->content_type), "content type");
	cr_assert(str_eq(got->response_topic, want->response_topic), "response topic");
	cr_assert(str_eq(got->correlation_data, want->correlation_data), "correlation data");
}

static void msg_inside(const struct msg *m, const struct rec_buf *b)
{
	cr_assert(inside(m->topic, b->p, b->len) && inside(m->payload, b->p, b->len) &&
			  inside(m->origin, b->p, b->len) && inside(m->user, b->p, b->len) &&
			  inside(m->content_type, b->p, b->len) && inside(m->response_topic, b->p, b->len) &&
			  inside(m->correlation_data, b->p, b->len),
		  "decoded views must point into the record");
}

/* ---------------------------------------------------- records by hand */

struct hand {
	uint8_t *p;
	size_t n, cap;
};

static void h_bytes(struct hand *h, const void *p, size_t n)
{
	cr_assert_leq(h->n + n, h->cap, "hand record too big");
	if (n)
		memcpy(h->p + h->n, p, n);
	h->n += n;
}

static void h_le(struct hand *h, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint8_t b = (uint8_t)(v >> (8 * i));
		h_bytes(h, &b, 1);
	}
}

static void h_str(struct hand *h, struct mqtt_str s)
{
	h_le(h, s.len, 4);
	h_bytes(h, s.ptr, s.len);
}

/* Starts a value: format, kind. */
static void h_begin(struct hand *h, uint8_t format, uint8_t kind)
{
	h->cap = 300000;
	h->n = 0;
	h->p = malloc(h->cap);
	cr_assert_not_null(h->p);
	h_le(h, format, 1);
	h_le(h, kind, 1);
}

/* Ends a value: the CRC-32C of everything so far, little endian. */
static void h_seal(struct hand *h)
{
	h_le(h, rec_crc32c(0, h->p, h->n), 4);
}

/* A message body: qos, flags, payload format, expiry, then the seven
 * strings.  @m supplies the strings; the other fields are explicit so
 * tests can write values no encoder would. */
static void h_msg(struct hand *h, uint8_t qos, uint8_t flags, uint8_t payload_format, uint64_t expiry,
		  const struct msg *m)
{
	static const struct mqtt_str none = {0};

	/* Optional fields are written only with their flag bit, as the encoder
	 * does; the record-level tests below break that on purpose. */
	h_le(h, qos, 1);
	h_le(h, flags, 1);
	h_le(h, flags & 0x02 ? payload_format : 0, 1);
	h_le(h, expiry, 8);
	h_str(h, m->topic);
	h_str(h, m->payload);
	h_str(h, m->origin);
	h_str(h, m->user);
	h_str(h, flags & 0x04 ? m->content_type : none);
	h_str(h, flags & 0x08 ? m->response_topic : none);
	h_str(h, flags & 0x10 ? m->correlation_data : none);
}

/* The flags byte of full_msg(): retain, payload format, content type,
 * response topic, correlation data. */
#define FULL_FLAGS 0x1F

static bool same_bytes(const struct hand *h, const struct rec_buf *b)
{
	return h->n == b->len && memcmp(h->p, b->p, h->n) == 0;
}

/* --------------------------------------------------------------- CRC-32C */

Test(record, crc32c_matches_the_check_value)
{
	const uint8_t *s = (const uint8_t *)"123456789";

	cr_assert_eq(rec_crc32c(0, s, 9), 0xE3069283u, "got 0x%08x", rec_crc32c(0, s, 9));
	cr_assert_eq(rec_crc32c(rec_crc32c(0, s, 4), s + 4, 5), 0xE3069283u, "continuing from a partial CRC");
	cr_assert_eq(rec_crc32c(0, s, 0), 0);
}

/* ------------------------------------------------------------ round trips */

Test(record, retained_message_round_trips_every_property)
{
	struct rec_buf b = {0};
	struct msg in, out;
	uint64_t exp = 0;

	full_msg(&in);
	rec_put_retain(&b, &in, 1700000000123ull);
	cr_assert_not(b.oom);
	memset(&out, 0xA5, sizeof(out));
	cr_assert_eq(rec_get_retain(b.p, b.len, &out, &exp), REC_OK);
	msg_check(&out, &in);
	msg_inside(&out, &b);
	cr_assert_eq(exp, 1700000000123ull);
	rec_buf_free(&b);
}

Test(record, retained_message_without_optional_properties_round_trips)
{
	struct rec_buf b = {0};
	struct msg in, out;
	uint64_t exp = 99;

	bare_msg(&in);
	rec_put_retain(&b, &in, 0);
	memset(&out, 0xA5, sizeof(out));
	cr_assert_eq(rec_get_retain(b.p, b.len, &out, &exp), REC_OK);
	msg_check(&out, &in);
	cr_assert_eq(exp, 0, "0 = never expires");
	rec_buf_free(&b);
}

Test(record, empty_optional_strings_keep_their_presence)
{
	struct rec_buf b = {0};
	struct msg in, out;
	uint64_t exp;

	/* An empty Content Type is present, not absent: the has bits say so. */
	bare_msg(&in);
	in.has = MSG_HAS_CONTENT_TYPE | MSG_HAS_CORRELATION;
	in.has_payload_format = true;
	in.payload_format = 0;
	in.qos = 1;
	rec_put_retain(&b, &in, UINT64_MAX);
	cr_assert_eq(rec_get_retain(b.p, b.len, &out, &exp), REC_OK);
	msg_check(&out, &in);
	cr_assert_eq(exp, UINT64_MAX);
	rec_buf_free(&b);
}

static void sess_check(const struct rec_sess *got, const struct rec_sess *want)
{
	cr_assert(str_eq(got->client_id, want->client_id), "client id");
	cr_assert_eq(got->version, want->version);
	cr_assert_eq(got->expiry_s, want->expiry_s);
	cr_assert_eq(got->offline_wall_ms, want->offline_wall_ms);
	cr_assert_eq(got->has_username, want->has_username);
	if (want->has_username)
		cr_assert(str_eq(got->username, want->username), "username");
	cr_assert_eq(got->has_will, want->has_will);
	if (!want->has_will)
		return;
	cr_assert_eq(got->will_delay_s, want->will_delay_s);
	cr_assert_eq(got->will_expiry_wall_ms, want->will_expiry_wall_ms);
	msg_check(got->will, want->will);
}

/* Encodes @in, decodes it and compares; the will view goes to a scratch message. */
static void sess_round_trip(const struct rec_sess *in)
{
	struct rec_buf b = {0};
	struct msg will;
	struct rec_sess out;

	memset(&out, 0xA5, sizeof(out));
	memset(&will, 0xA5, sizeof(will));
	out.will = &will;
	rec_put_sess(&b, in);
	cr_assert_not(b.oom);
	cr_assert_eq(rec_get_sess(b.p, b.len, &out), REC_OK);
	cr_assert_eq(out.will, &will, "the caller's will pointer is kept");
	sess_check(&out, in);
	cr_assert(inside(out.client_id, b.p, b.len));
	if (in->has_username)
		cr_assert(inside(out.username, b.p, b.len));
	if (in->has_will)
		msg_inside(&will, &b);
	rec_buf_free(&b);
}

Test(record, session_round_trips_with_and_without_username_and_will)
{
	struct msg will;
	struct rec_sess s = {
		.client_id = L("sensor-7"), .version = 4, .expiry_s = 3600, .offline_wall_ms = 1700000000000ull,
	};

	full_msg(&will);
	sess_round_trip(&s);

	s.has_username = true;
	s.username = L("alice");
	sess_round_trip(&s);

	s.version = 5;
	s.expiry_s = UINT32_MAX;
	s.offline_wall_ms = 0;
	s.has_will = true;
	s.will = &will;
	s.will_delay_s = 30;
	s.will_expiry_wall_ms = 1700000060000ull;
	sess_round_trip(&s);

	s.has_username = false;
	s.version = 3;
	bare_msg(&will);
	sess_round_trip(&s);

	s.client_id = L("");
	s.has_username = true;
	s.username = L("");
	sess_round_trip(&s);
}

Test(record, subscription_round_trips)
{
	static const uint8_t options[] = {0x00, 0x01, 0x02, 0x04 | 0x08 | 0x20 | 0x01, 0x10 | 0x02};
	static const uint32_t ids[] = {0, 1, SUB_ID_MAX};

	for (unsigned i = 0; i < sizeof(options); i++) {
		for (unsigned j = 0; j < 3; j++) {
			struct rec_sub in = {.filter = L("$share/g/a/+/#"), .options = options[i], .sub_id = ids[j]};
			struct rec_sub out;
			struct rec_buf b = {0};

			rec_put_sub(&b, &in);
			memset(&out, 0xA5, sizeof(out));
			cr_assert_eq(rec_get_sub(b.p, b.len, &out), REC_OK);
			cr_assert(str_eq(out.filter, in.filter));
			cr_assert(inside(out.filter, b.p, b.len));
			cr_assert_eq(out.options, in.options);
			cr_assert_eq(out.sub_id, in.sub_id);
			rec_buf_free(&b);
		}
	}
}

static void deliv_round_trip(const struct rec_deliv *in, const struct msg *m)
{
	struct rec_buf b = {0};
	struct msg mo;
	struct rec_deliv out;

	memset(&out, 0xA5, sizeof(out));
	out.m = &mo;
	rec_put_deliv(&b, in, m);
	cr_assert_not(b.oom);
	cr_assert_eq(rec_get_deliv(b.p, b.len, &out), REC_OK, "state %u nsubids %u", in->state, in->nsubids);
	cr_assert_eq(out.m, &mo);
	cr_assert_eq(out.state, in->state);
	cr_assert_eq(out.pid, in->pid);
	cr_assert_eq(out.qos, in->qos);
	cr_assert_eq(out.retain, in->retain);
	cr_assert_eq(out.share_id, in->share_id);
	cr_assert_eq(out.nsubids, in->nsubids);
	for (unsigned i = 0; i < in->nsubids; i++)
		cr_assert_eq(out.subids[i], in->subids[i], "subid %u", i);
	cr_assert_eq(out.expiry_wall_ms, in->expiry_wall_ms);
	msg_check(&mo, m);
	msg_inside(&mo, &b);
	rec_buf_free(&b);
}

Test(record, delivery_round_trips_with_0_1_and_32_subscription_ids)
{
	struct msg m;
	struct rec_deliv d = {.state = 0, .pid = 0, .qos = 1, .share_id = 0, .expiry_wall_ms = 0};

	full_msg(&m);
	deliv_round_trip(&d, &m);

	d.nsubids = 1;
	d.subids[0] = SUB_ID_MAX;
	d.retain = true;
	d.share_id = 0xDEADBEEF;
	d.expiry_wall_ms = 1700000000999ull;
	deliv_round_trip(&d, &m);

	d.nsubids = MQTT_SUBIDS_MAX;
	for (unsigned i = 0; i < MQTT_SUBIDS_MAX; i++)
		d.subids[i] = i * 1000003u + 1;
	bare_msg(&m);
	deliv_round_trip(&d, &m);
}

Test(record, delivery_round_trips_every_state)
{
	static const struct {
		uint8_t state, qos;
		uint16_t pid;
	} cases[] = {
		{0, 1, 0}, {0, 2, 0}, {1, 1, 0xFFFF}, {1, 1, 1}, {2, 2, 0xFFFF}, {3, 2, 0x1234},
	};
	struct msg m;

	full_msg(&m);
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rec_deliv d = {.state = cases[i].state, .qos = cases[i].qos, .pid = cases[i].pid};
		deliv_round_trip(&d, &m);
	}
}

Test(record, flow_round_trips_every_state)
{
	for (uint8_t state = 1; state <= 3; state++) {
		static const uint16_t pids[] = {1, 0x1234, 0xFFFF};

		for (unsigned i = 0; i < 3; i++) {
			struct rec_flow in = {.state = state, .pid = pids[i]}, out = {0};
			struct rec_buf b = {0};

			rec_put_flow(&b, &in);
			cr_assert_eq(rec_get_flow(b.p, b.len, &out), REC_OK);
			cr_assert_eq(out.state, in.state);
			cr_assert_eq(out.pid, in.pid);
			rec_buf_free(&b);
		}
	}
}

Test(record, qos2in_and_meta_round_trip)
{
	static const uint64_t values[] = {0, 1, 0x0102030405060708ull, UINT64_MAX};
	struct rec_buf b = {0};

	rec_put_q2in(&b);
	cr_assert_eq(b.len, 6, "format, kind and CRC only");
	cr_assert_eq(rec_get_q2in(b.p, b.len), REC_OK);
	rec_buf_free(&b);
	for (unsigned i = 0; i < 4; i++) {
		uint64_t v = ~values[i];

		rec_put_meta_u64(&b, values[i]);
		cr_assert_eq(rec_get_meta_u64(b.p, b.len, &v), REC_OK);
		cr_assert_eq(v, values[i]);
		rec_buf_free(&b);
	}
}

Test(record, records_appended_to_a_buffer_frame_only_themselves)
{
	struct rec_buf b = {0};
	struct rec_flow f = {.state = 2, .pid = 9}, fo;
	size_t at;
	uint64_t v;

	rec_put_meta_u64(&b, 42);
	at = b.len;
	rec_put_flow(&b, &f);
	cr_assert_eq(rec_get_meta_u64(b.p, at, &v), REC_OK);
	cr_assert_eq(v, 42);
	cr_assert_eq(rec_get_flow(b.p + at, b.len - at, &fo), REC_OK, "the CRC covers the record, not the buffer");
	cr_assert_eq(fo.pid, 9);
	cr_assert_eq(rec_check(REC_DB_META, b.p, b.len), REC_CORRUPT, "two records are not one");
	rec_buf_free(&b);
}

Test(record, a_buffer_out_of_memory_takes_no_writes)
{
	struct rec_buf b = {.oom = true};
	struct rec_flow f = {.state = 1, .pid = 1};
	struct msg m;
	size_t at;

	full_msg(&m);
	rec_put_flow(&b, &f);
	rec_put_retain(&b, &m, 0);
	rec_put_meta_u64(&b, 1);
	at = rec_op_begin(&b, REC_OP_PUT, REC_DB_META);
	rec_op_key_done(&b, at);
	rec_op_end(&b, at);
	cr_assert_eq(b.len, 0);
	cr_assert_null(b.p);
	cr_assert(b.oom, "oom stays set for the caller's one check");
	rec_buf_free(&b);
	cr_assert_not(b.oom);
}

/* ------------------------------------------------- the layout, pinned */

Test(record, encoders_write_the_documented_layout)
{
	struct rec_buf b = {0};
	struct hand h;
	struct msg m, will;

	/* flow: state, u16 pid */
	rec_put_flow(&b, &(struct rec_flow){.state = 2, .pid = 0x1234});
	h_begin(&h, RECORD_FORMAT, REC_KIND_FLOW);
	h_le(&h, 2, 1);
	h_le(&h, 0x1234, 2);
	h_seal(&h);
	cr_assert(same_bytes(&h, &b), "flow");
	cr_assert_eq(b.p[0], RECORD_FORMAT);
	cr_assert_eq(b.p[1], REC_KIND_FLOW);
	cr_assert_eq(b.p[3], 0x34, "little endian body");
	free(h.p);
	rec_buf_free(&b);

	/* meta: u64 */
	rec_put_meta_u64(&b, 0x0102030405060708ull);
	h_begin(&h, RECORD_FORMAT, REC_KIND_META);
	h_le(&h, 0x0102030405060708ull, 8);
	h_seal(&h);
	cr_assert(same_bytes(&h, &b), "meta");
	free(h.p);
	rec_buf_free(&b);

	/* q2in: empty body */
	rec_put_q2in(&b);
	h_begin(&h, RECORD_FORMAT, REC_KIND_Q2IN);
	h_seal(&h);
	cr_assert(same_bytes(&h, &b), "q2in");
	free(h.p);
	rec_buf_free(&b);

	/* sub: options, u32 sub id, filter */
	rec_put_sub(&b, &(struct rec_sub){.filter = L("a/#"), .options = 0x05, .sub_id = 0x0A0B0C});
	h_begin(&h, RECORD_FORMAT, REC_KIND_SUB);
	h_le(&h, 0x05, 1);
	h_le(&h, 0x0A0B0C, 4);
	h_str(&h, L("a/#"));
	h_seal(&h);
	cr_assert(same_bytes(&h, &b), "sub");
	free(h.p);
	rec_buf_free(&b);

	/* retain: the message body */
	full_msg(&m);
	rec_put_retain(&b, &m, 0x1122334455667788ull);
	h_begin(&h, RECORD_FORMAT, REC_KIND_RETAIN);
	h_msg(&h, 2, FULL_FLAGS, 1, 0x1122334455667788ull, &m);
	h_seal(&h);
	cr_assert(same_bytes(&h, &b), "retain");
	free(h.p);
	rec_buf_free(&b);

	/* sess: id, version, u32 expiry, u64 offline, flags, username, will */
	bare_msg(&will);
	will.qos = 1;
	rec_put_sess(&b, &(struct rec_sess){.client_id = L("c1"), .version = 5, .expiry_s = 60,
					   .offline_wall_ms = 7, .has_username = true, .username = L("u"),
					   .has_will = true, .will_delay_s = 9, .will = &will,
					   .will_expiry_wall_ms = 11});
	h_begin(&h, RECORD_FORMAT, REC_KIND_SESS);
	h_str(&h, L("c1"));
	h_le(&h, 5, 1);
	h_le(&h, 60, 4);
	h_le(&h, 7, 8);
	h_le(&h, 3, 1);
	h_str(&h, L("u"));
	h_le(&h, 9, 4);
	h_msg(&h, 1, 0, 0, 11, &will);
	h_seal(&h);
	cr_assert(same_bytes(&h, &b), "sess");
	free(h.p);
	rec_buf_free(&b);

	/* deliv: state, u16 pid, qos, retain, u32 share, n, n x u32, message */
	rec_put_deliv(&b, &(struct rec_deliv){.state = 1, .pid = 0x0102, .qos = 1, .retain = true,
					     .share_id = 3, .nsubids = 2, .subids = {4, 5}, .expiry_wall_ms = 6},
		      &will);
	h_begin(&h, RECORD_FORMAT, REC_KIND_DELIV);
	h_le(&h, 1, 1);
	h_le(&h, 0x0102, 2);
	h_le(&h, 1, 1);
	h_le(&h, 1, 1);
	h_le(&h, 3, 4);
	h_le(&h, 2, 1);
	h_le(&h, 4, 4);
	h_le(&h, 5, 4);
	h_msg(&h, 1, 0, 0, 6, &will);
	h_seal(&h);
	cr_assert(same_bytes(&h, &b), "deliv");
	free(h.p);
	rec_buf_free(&b);
}

/* ------------------------------------------------------------------ keys */

/* 64-bit FNV-1a, written out here so the key format does not depend on the
 * hash header staying what it is. */
static uint64_t fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + seed);
}

Test(record, key_parts_keep_short_names_whole_after_a_big_endian_length)
{
	uint8_t k[RECORD_KEY_MAX], name[RECORD_NAME_PART_MAX];

	cr_assert_eq(rec_key_id(k, (const uint8_t *)"abc", 3), 5);
	cr_assert_eq(memcmp(k, "\x00\x03" "abc", 5), 0);
	cr_assert_eq(rec_key_name(k, (const uint8_t *)"a/b", 3), 5);
	cr_assert_eq(memcmp(k, "\x00\x03" "a/b", 5), 0);
	cr_assert_eq(rec_key_id(k, (const uint8_t *)"", 0), 2);
	cr_assert_eq(memcmp(k, "\x00\x00", 2), 0);

	/* At the limit, the name is still kept whole. */
	fill(name, sizeof(name), 1);
	cr_assert_eq(rec_key_id(k, name, RECORD_ID_PART_MAX), 2 + RECORD_ID_PART_MAX);
	cr_assert_eq(k[0], RECORD_ID_PART_MAX >> 8);
	cr_assert_eq(k[1], RECORD_ID_PART_MAX & 0xFF);
	cr_assert_eq(memcmp(k + 2, name, RECORD_ID_PART_MAX), 0);
	cr_assert_eq(rec_key_name(k, name, RECORD_NAME_PART_MAX), 2 + RECORD_NAME_PART_MAX);
	cr_assert_eq(k[0], RECORD_NAME_PART_MAX >> 8);
	cr_assert_eq(k[1], RECORD_NAME_PART_MAX & 0xFF);
	cr_assert_eq(memcmp(k + 2, name, RECORD_NAME_PART_MAX), 0);
}

/* Checks the cut form of @name/@len under limit @max in @k/@klen. */
static void check_cut(const uint8_t *k, size_t klen, const uint8_t *name, size_t len, size_t max)
{
	uint64_t h = fnv1a(name, len);

	cr_assert_eq(klen, 2 + max, "a cut part is as long as the longest whole one");
	cr_assert_eq(k[0], (uint8_t)(len >> 8));
	cr_assert_eq(k[1], (uint8_t)len, "the length is the original one");
	cr_assert_eq(memcmp(k + 2, name, max - 8), 0);
	for (unsigned i = 0; i < 8; i++)
		cr_assert_eq(k[2 + max - 8 + i], (uint8_t)(h >> (56 - 8 * i)), "hash byte %u (big endian)", i);
}

Test(record, key_parts_cut_long_names_and_append_their_hash)
{
	static const size_t id_lens[] = {RECORD_ID_PART_MAX + 1, 300, 65535};
	static const size_t name_lens[] = {RECORD_NAME_PART_MAX + 1, 1000, 65535};
	uint8_t k[RECORD_KEY_MAX];
	uint8_t *name = malloc(65535);

	cr_assert_not_null(name);
	fill(name, 65535, 3);
	for (unsigned i = 0; i < 3; i++) {
		check_cut(k, rec_key_id(k, name, id_lens[i]), name, id_lens[i], RECORD_ID_PART_MAX);
		check_cut(k, rec_key_name(k, name, name_lens[i]), name, name_lens[i], RECORD_NAME_PART_MAX);
	}
	free(name);
}

Test(record, long_names_differing_only_after_the_cut_get_different_keys)
{
	uint8_t a[400], b[400], ka[RECORD_KEY_MAX], kb[RECORD_KEY_MAX];
	size_t na, nb;

	fill(a, sizeof(a), 5);
	memcpy(b, a, sizeof(a));
	b[399] ^= 1;
	na = rec_key_id(ka, a, sizeof(a));
	nb = rec_key_id(kb, b, sizeof(b));
	cr_assert_eq(na, nb);
	cr_assert_eq(memcmp(ka, kb, na - 8), 0, "only the hash differs");
	cr_assert_neq(memcmp(ka, kb, na), 0);
	na = rec_key_name(ka, a, sizeof(a));
	nb = rec_key_name(kb, b, sizeof(b));
	cr_assert_eq(na, nb);
	cr_assert_neq(memcmp(ka, kb, na), 0);

	/* Same bytes up to the cut, different lengths. */
	na = rec_key_id(ka, a, 300);
	nb = rec_key_id(kb, a, 301);
	cr_assert_neq(memcmp(ka, kb, na), 0);
}

struct id_keys {
	uint8_t part[RECORD_KEY_MAX];
	size_t plen;
	uint8_t keys[6][RECORD_KEY_MAX];
	size_t klen[6];
};

static bool starts_with(const uint8_t *k, size_t klen, const uint8_t *prefix, size_t plen)
{
	return klen >= plen && memcmp(k, prefix, plen) == 0;
}

/* The session key of @id and the keys of its other records (deliveries
 * and flows by sequence number, QoS 2 ids, a subscription). */
static void id_keys(struct id_keys *ik, const uint8_t *id, size_t len)
{
	static const uint64_t seqs[] = {0, 1, 0x6200000000000000ull, UINT64_MAX};
	uint8_t name[2 + RECORD_NAME_PART_MAX];
	size_t nlen = rec_key_name(name, (const uint8_t *)"b/c", 3);

	ik->plen = rec_key_id(ik->part, id, len);
	for (unsigned i = 0; i < 4; i++) {
		memcpy(ik->keys[i], ik->part, ik->plen);
		ik->klen[i] = ik->plen + rec_key_u64(ik->keys[i] + ik->plen, seqs[i]);
	}
	memcpy(ik->keys[4], ik->part, ik->plen);
	ik->klen[4] = ik->plen + rec_key_u16(ik->keys[4] + ik->plen, 0x6263);
	memcpy(ik->keys[5], ik->part, ik->plen);
	memcpy(ik->keys[5] + ik->plen, name, nlen);
	ik->klen[5] = ik->plen + nlen;
	for (unsigned i = 0; i < 6; i++)
		cr_assert_leq(ik->klen[i], RECORD_KEY_MAX);
}

/* Neither client's key range (keys starting with its part) holds a key of the other. */
static void ranges_apart(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	struct id_keys ka, kb;

	id_keys(&ka, a, alen);
	id_keys(&kb, b, blen);
	cr_assert_not(starts_with(kb.part, kb.plen, ka.part, ka.plen), "ids of %zu and %zu bytes", alen, blen);
	cr_assert_not(starts_with(ka.part, ka.plen, kb.part, kb.plen), "ids of %zu and %zu bytes", alen, blen);
	for (unsigned i = 0; i < 6; i++) {
		cr_assert_not(starts_with(kb.keys[i], kb.klen[i], ka.part, ka.plen), "key %u, %zu/%zu", i, alen, blen);
		cr_assert_not(starts_with(ka.keys[i], ka.klen[i], kb.part, kb.plen), "key %u, %zu/%zu", i, alen, blen);
	}
}

Test(record, a_client_id_prefix_of_another_has_its_own_key_range)
{
	uint8_t id[RECORD_ID_PART_MAX + 20];

	ranges_apart((const uint8_t *)"a", 1, (const uint8_t *)"ab", 2);
	ranges_apart((const uint8_t *)"", 0, (const uint8_t *)"a", 1);
	/* "b" + the first bytes of a sequence number spell "ab"'s part. */
	ranges_apart((const uint8_t *)"a", 1, (const uint8_t *)"a\x00", 2);
	fill(id, sizeof(id), 9);
	ranges_apart(id, RECORD_ID_PART_MAX - 1, id, RECORD_ID_PART_MAX);
	ranges_apart(id, RECORD_ID_PART_MAX, id, RECORD_ID_PART_MAX + 1);
	ranges_apart(id, RECORD_ID_PART_MAX + 1, id, RECORD_ID_PART_MAX + 2);
	ranges_apart(id, 3, id, RECORD_ID_PART_MAX + 20);
}

Test(record, numbers_in_keys_are_big_endian_so_keys_sort_by_number)
{
	uint8_t a[8], b[8];

	cr_assert_eq(rec_key_u64(a, 0x0102030405060708ull), 8);
	cr_assert_eq(memcmp(a, "\x01\x02\x03\x04\x05\x06\x07\x08", 8), 0);
	cr_assert_eq(rec_key_u16(a, 0x0102), 2);
	cr_assert_eq(memcmp(a, "\x01\x02", 2), 0);
	(void)rec_key_u64(a, 255);
	(void)rec_key_u64(b, 256);
	cr_assert_lt(memcmp(a, b, 8), 0);
	(void)rec_key_u16(a, 255);
	(void)rec_key_u16(b, 256);
	cr_assert_lt(memcmp(a, b, 2), 0);
}

Test(record, the_longest_keys_fit_lmdb)
{
	_Static_assert(2 + RECORD_ID_PART_MAX + 2 + RECORD_NAME_PART_MAX <= RECORD_KEY_MAX, "sub key");
	_Static_assert(2 + RECORD_ID_PART_MAX + 8 <= RECORD_KEY_MAX, "deliv key");
	uint8_t k[RECORD_KEY_MAX];
	uint8_t *s = malloc(65535);
	size_t n;

	cr_assert_not_null(s);
	fill(s, 65535, 0);
	n = rec_key_id(k, s, 65535);
	n += rec_key_name(k + n, s, 65535);
	cr_assert_leq(n, RECORD_KEY_MAX);
	free(s);
}

/* -------------------------------------------------- damaged records */

#define SAMPLES_MAX 16

struct sample {
	unsigned db;
	struct rec_buf b;
};

/* Valid records of every kind, each in its own buffer. */
static unsigned samples(struct sample *s)
{
	struct msg full, bare;
	struct rec_deliv d = {.state = 2, .pid = 77, .qos = 2, .nsubids = MQTT_SUBIDS_MAX, .share_id = 4};
	unsigned n = 0;

	full_msg(&full);
	bare_msg(&bare);
	for (unsigned i = 0; i < MQTT_SUBIDS_MAX; i++)
		d.subids[i] = i + 1;
	memset(s, 0, SAMPLES_MAX * sizeof(*s));

	s[n].db = REC_DB_META;
	rec_put_meta_u64(&s[n++].b, 0x0102030405060708ull);
	s[n].db = REC_DB_RETAIN;
	rec_put_retain(&s[n++].b, &full, 5);
	s[n].db = REC_DB_RETAIN;
	rec_put_retain(&s[n++].b, &bare, 0);
	s[n].db = REC_DB_SESS;
	rec_put_sess(&s[n++].b, &(struct rec_sess){.client_id = L("c"), .version = 4});
	s[n].db = REC_DB_SESS;
	rec_put_sess(&s[n++].b, &(struct rec_sess){.client_id = L("c2"), .version = 5, .has_username = true,
						     .username = L("u"), .has_will = true, .will = &full});
	s[n].db = REC_DB_SUB;
	rec_put_sub(&s[n++].b, &(struct rec_sub){.filter = L("a/+"), .options = 0x2E, .sub_id = 12});
	s[n].db = REC_DB_DELIV;
	rec_put_deliv(&s[n++].b, &d, &full);
	d.nsubids = 0;
	d.state = 0;
	d.pid = 0;
	s[n].db = REC_DB_DELIV;
	rec_put_deliv(&s[n++].b, &d, &bare);
	s[n].db = REC_DB_FLOW;
	rec_put_flow(&s[n++].b, &(struct rec_flow){.state = 3, .pid = 0x0203});
	s[n].db = REC_DB_Q2IN;
	rec_put_q2in(&s[n++].b);
	for (unsigned i = 0; i < n; i++)
		cr_assert_not(s[i].b.oom);
	return n;
}

static void samples_free(struct sample *s, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		rec_buf_free(&s[i].b);
}

/* Decodes @p/@n with the decoder of database @db itself (not rec_check). */
static int decode_as(unsigned db, const uint8_t *p, size_t n)
{
	struct msg m, will;
	struct rec_sess rs = {.will = &will};
	struct rec_sub sub;
	struct rec_deliv d = {.m = &m};
	struct rec_flow f;
	uint64_t v;

	switch (db) {
	case REC_DB_META: return rec_get_meta_u64(p, n, &v);
	case REC_DB_RETAIN: return rec_get_retain(p, n, &m, &v);
	case REC_DB_SESS: return rec_get_sess(p, n, &rs);
	case REC_DB_SUB: return rec_get_sub(p, n, &sub);
	case REC_DB_DELIV: return rec_get_deliv(p, n, &d);
	case REC_DB_FLOW: return rec_get_flow(p, n, &f);
	case REC_DB_Q2IN: return rec_get_q2in(p, n);
	default: cr_assert_fail("no database %u", db); return 0;
	}
}

/* Both the database's decoder and rec_check() give @want for @p/@n. */
static void expect(unsigned db, const uint8_t *p, size_t n, int want, const char *what, size_t at)
{
	uint8_t *c = exact(p, n);
	int r = decode_as(db, c, n);

	cr_assert_eq(r, want, "%s: %s %zu: decoder gave %d, want %d", rec_db_name(db), what, at, r, want);
	r = rec_check(db, c, n);
	cr_assert_eq(r, want, "%s: %s %zu: rec_check gave %d, want %d", rec_db_name(db), what, at, r, want);
	free(c);
}

Test(record, samples_are_valid)
{
	struct sample s[SAMPLES_MAX];
	unsigned n = samples(s);

	for (unsigned i = 0; i < n; i++)
		expect(s[i].db, s[i].b.p, s[i].b.len, REC_OK, "sample", i);
	samples_free(s, n);
}

Test(record, every_truncation_is_corrupt)
{
	struct sample s[SAMPLES_MAX];
	unsigned n = samples(s);

	for (unsigned i = 0; i < n; i++)
		for (size_t len = 0; len < s[i].b.len; len++)
			expect(s[i].db, s[i].b.p, len, REC_CORRUPT, "prefix", len);
	samples_free(s, n);
}

Test(record, every_bit_flip_is_detected)
{
	struct sample s[SAMPLES_MAX];
	unsigned n = samples(s);

	for (unsigned i = 0; i < n; i++) {
		uint8_t *p = s[i].b.p;

		for (size_t at = 0; at < s[i].b.len; at++) {
			for (unsigned bit = 0; bit < 8; bit++) {
				int want;

				p[at] ^= (uint8_t)(1u << bit);
				want = at == 0 && p[0] > RECORD_FORMAT ? REC_NEWER : REC_CORRUPT;
				expect(s[i].db, p, s[i].b.len, want, "flip of bit", at * 8 + bit);
				p[at] ^= (uint8_t)(1u << bit);
			}
		}
	}
	samples_free(s, n);
}

/* Rewrites the CRC at the end of @p/@n to match the bytes before it. */
static void reseal(uint8_t *p, size_t n)
{
	uint32_t crc = rec_crc32c(0, p, n - 4);

	for (unsigned i = 0; i < 4; i++)
		p[n - 4 + i] = (uint8_t)(crc >> (8 * i));
}

Test(record, a_record_of_another_kind_is_corrupt)
{
	struct sample s[SAMPLES_MAX];
	unsigned n = samples(s);

	for (unsigned i = 0; i < n; i++) {
		size_t len = s[i].b.len;
		uint8_t *p = exact(s[i].b.p, len);

		for (unsigned db = 0; db < REC_DB_COUNT; db++)
			if (db != s[i].db)
				expect(db, p, len, REC_CORRUPT, "sample as the wrong kind", i);
		/* Its own decoder, the kind byte changed and the checksum made right. */
		for (unsigned kind = 0; kind < 256; kind++) {
			if (kind == s[i].b.p[1])
				continue;
			p[1] = (uint8_t)kind;
			reseal(p, len);
			expect(s[i].db, p, len, REC_CORRUPT, "kind byte", kind);
		}
		free(p);
	}
	samples_free(s, n);
}

Test(record, a_newer_format_is_refused_and_an_older_one_is_corrupt)
{
	struct sample s[SAMPLES_MAX];
	unsigned n = samples(s);

	for (unsigned i = 0; i < n; i++) {
		size_t len = s[i].b.len;
		uint8_t *p = exact(s[i].b.p, len);

		for (unsigned format = 0; format < 256; format++) {
			if (format == RECORD_FORMAT)
				continue;
			p[0] = (uint8_t)format;
			reseal(p, len);
			expect(s[i].db, p, len, format > RECORD_FORMAT ? REC_NEWER : REC_CORRUPT, "format", format);
		}
		free(p);
	}
	samples_free(s, n);
}

Test(record, trailing_bytes_are_corrupt)
{
	struct sample s[SAMPLES_MAX];
	unsigned n = samples(s);

	for (unsigned i = 0; i < n; i++) {
		size_t len = s[i].b.len;
		uint8_t *p = malloc(len + 8);

		cr_assert_not_null(p);
		/* After the checksum: it no longer ends the record. */
		memcpy(p, s[i].b.p, len);
		memset(p + len, 0, 8);
		for (size_t extra = 1; extra <= 8; extra++)
			expect(s[i].db, p, len + extra, REC_CORRUPT, "bytes after the CRC", extra);
		/* Inside the body, the checksum made right: the body does not parse exactly. */
		for (size_t extra = 1; extra <= 8; extra++) {
			memcpy(p, s[i].b.p, len - 4);
			memset(p + len - 4, 0, extra);
			reseal(p, len + extra);
			expect(s[i].db, p, len + extra, REC_CORRUPT, "bytes after the body", extra);
		}
		free(p);
	}
	samples_free(s, n);
}

/* ------------------------------------ invalid fields, checksum right */

/* A retained record built by hand from @m with the given qos and flags. */
static int hand_retain(uint8_t qos, uint8_t flags, const struct msg *m)
{
	struct hand h;
	struct msg out;
	uint64_t exp;
	int r;

	h_begin(&h, RECORD_FORMAT, REC_KIND_RETAIN);
	h_msg(&h, qos, flags, 1, 0, m);
	h_seal(&h);
	r = rec_get_retain(h.p, h.n, &out, &exp);
	cr_assert_eq(rec_check(REC_DB_RETAIN, h.p, h.n), r);
	free(h.p);
	return r;
}

Test(record, retained_message_with_invalid_fields_is_corrupt)
{
	uint8_t *big = malloc(65536);
	struct msg m;

	cr_assert_not_null(big);
	memset(big, 'a', 65536);
	full_msg(&m);
	cr_assert_eq(hand_retain(2, FULL_FLAGS, &m), REC_OK, "the hand-built baseline");
	cr_assert_eq(hand_retain(0, 0, &m), REC_OK);
	cr_assert_eq(hand_retain(3, FULL_FLAGS, &m), REC_CORRUPT, "QoS 3");
	cr_assert_eq(hand_retain(0xFF, FULL_FLAGS, &m), REC_CORRUPT, "QoS 255");
	for (unsigned bit = 5; bit < 8; bit++)
		cr_assert_eq(hand_retain(1, (uint8_t)(1u << bit), &m), REC_CORRUPT, "unknown flag bit %u", bit);

	m.topic = L("");
	cr_assert_eq(hand_retain(1, 0, &m), REC_CORRUPT, "empty topic");
	m.topic = (struct mqtt_str){big, 65535};
	cr_assert_eq(hand_retain(1, 0, &m), REC_OK, "the longest topic");
	m.topic.len = 65536;
	cr_assert_eq(hand_retain(1, 0, &m), REC_CORRUPT, "a topic longer than MQTT allows");
	m.topic = L("t");
	m.origin = (struct mqtt_str){big, 65535};
	cr_assert_eq(hand_retain(1, 0, &m), REC_OK, "the longest client id");
	m.origin.len = 65536;
	cr_assert_eq(hand_retain(1, 0, &m), REC_CORRUPT, "a client id longer than MQTT allows");
	free(big);
}

Test(record, string_lengths_past_the_body_are_corrupt)
{
	static const uint32_t lens[] = {4, 5, 1000, UINT32_MAX};
	struct hand h;
	struct msg out;
	uint64_t exp;

	/* A topic whose length runs into (or past) the checksum. */
	for (unsigned i = 0; i < 4; i++) {
		h_begin(&h, RECORD_FORMAT, REC_KIND_RETAIN);
		h_le(&h, 1, 1);
		h_le(&h, 0, 1);
		h_le(&h, 0, 1);
		h_le(&h, 0, 8);
		h_le(&h, lens[i], 4);
		h_bytes(&h, "abc", 3);
		h_seal(&h);
		cr_assert_eq(rec_get_retain(h.p, h.n, &out, &exp), REC_CORRUPT, "topic length %u", lens[i]);
		free(h.p);
	}
}

/* A session built by hand: client id "c1", @flags, a username when bit 0
 * is set and a will made of @will (QoS @will_qos) when bit 1 is. */
static int hand_sess(uint8_t version, uint8_t flags, uint8_t will_qos, const struct msg *will)
{
	struct hand h;
	struct msg wo;
	struct rec_sess out = {.will = &wo};
	int r;

	h_begin(&h, RECORD_FORMAT, REC_KIND_SESS);
	h_str(&h, L("c1"));
	h_le(&h, version, 1);
	h_le(&h, 60, 4);
	h_le(&h, 0, 8);
	h_le(&h, flags, 1);
	if (flags & 1)
		h_str(&h, L("user"));
	if (flags & 2) {
		h_le(&h, 5, 4);
		h_msg(&h, will_qos, 0, 0, 0, will);
	}
	h_seal(&h);
	r = rec_get_sess(h.p, h.n, &out);
	cr_assert_eq(rec_check(REC_DB_SESS, h.p, h.n), r);
	free(h.p);
	return r;
}

Test(record, session_with_invalid_fields_is_corrupt)
{
	struct msg will;

	bare_msg(&will);
	for (uint8_t v = 3; v <= 5; v++)
		for (uint8_t f = 0; f <= 3; f++)
			cr_assert_eq(hand_sess(v, f, 1, &will), REC_OK, "the hand-built baseline, v%u flags %u", v, f);
	cr_assert_eq(hand_sess(2, 0, 0, &will), REC_CORRUPT, "protocol level 2");
	cr_assert_eq(hand_sess(6, 0, 0, &will), REC_CORRUPT, "protocol level 6");
	cr_assert_eq(hand_sess(0, 0, 0, &will), REC_CORRUPT, "protocol level 0");
	for (unsigned bit = 2; bit < 8; bit++)
		cr_assert_eq(hand_sess(5, (uint8_t)(1u << bit), 0, &will), REC_CORRUPT, "unknown flag bit %u", bit);
	cr_assert_eq(hand_sess(5, 0x07, 0, &will), REC_CORRUPT, "unknown bit beside known ones");
	cr_assert_eq(hand_sess(5, 2, 3, &will), REC_CORRUPT, "will of QoS 3");
	will.topic = L("");
	cr_assert_eq(hand_sess(5, 2, 0, &will), REC_CORRUPT, "will with an empty topic");
}

static int hand_sub(uint8_t options, uint32_t sub_id, struct mqtt_str filter)
{
	struct hand h;
	struct rec_sub out;
	int r;

	h_begin(&h, RECORD_FORMAT, REC_KIND_SUB);
	h_le(&h, options, 1);
	h_le(&h, sub_id, 4);
	h_str(&h, filter);
	h_seal(&h);
	r = rec_get_sub(h.p, h.n, &out);
	cr_assert_eq(rec_check(REC_DB_SUB, h.p, h.n), r);
	free(h.p);
	return r;
}

Test(record, subscription_with_invalid_fields_is_corrupt)
{
	for (uint8_t qos = 0; qos <= 2; qos++)
		cr_assert_eq(hand_sub(qos | 0x04 | 0x08 | 0x20, 1, L("a/#")), REC_OK, "the hand-built baseline");
	cr_assert_eq(hand_sub(0x01, SUB_ID_MAX, L("a")), REC_OK);
	cr_assert_eq(hand_sub(0x03, 1, L("a/#")), REC_CORRUPT, "QoS 3");
	cr_assert_eq(hand_sub(0x0F, 1, L("a/#")), REC_CORRUPT, "QoS 3 with other options");
	cr_assert_eq(hand_sub(0x01, SUB_ID_MAX + 1, L("a")), REC_CORRUPT, "subscription id too big");
	cr_assert_eq(hand_sub(0x01, UINT32_MAX, L("a")), REC_CORRUPT, "subscription id too big");
	cr_assert_eq(hand_sub(0x01, 1, L("")), REC_CORRUPT, "empty filter");
}

struct hdeliv {
	uint8_t state;
	uint16_t pid;
	uint8_t qos, retain, nsubids, msg_qos, msg_flags;
};

static int hand_deliv(struct hdeliv d)
{
	struct hand h;
	struct msg m, mo;
	struct rec_deliv out = {.m = &mo};
	int r;

	full_msg(&m);
	h_begin(&h, RECORD_FORMAT, REC_KIND_DELIV);
	h_le(&h, d.state, 1);
	h_le(&h, d.pid, 2);
	h_le(&h, d.qos, 1);
	h_le(&h, d.retain, 1);
	h_le(&h, 0, 4);
	h_le(&h, d.nsubids, 1);
	for (unsigned i = 0; i < d.nsubids; i++)
		h_le(&h, i + 1, 4);
	h_msg(&h, d.msg_qos, d.msg_flags, 1, 0, &m);
	h_seal(&h);
	r = rec_get_deliv(h.p, h.n, &out);
	cr_assert_eq(rec_check(REC_DB_DELIV, h.p, h.n), r);
	free(h.p);
	return r;
}

Test(record, delivery_with_invalid_fields_is_corrupt)
{
	cr_assert_eq(hand_deliv((struct hdeliv){0, 0, 1, 0, 0, 1, 0}), REC_OK, "the hand-built baseline: queued");
	cr_assert_eq(hand_deliv((struct hdeliv){1, 1, 1, 1, 1, 1, FULL_FLAGS}), REC_OK);
	cr_assert_eq(hand_deliv((struct hdeliv){2, 7, 2, 0, MQTT_SUBIDS_MAX, 2, 0}), REC_OK);
	cr_assert_eq(hand_deliv((struct hdeliv){3, 0xFFFF, 2, 0, 0, 2, 0}), REC_OK);

	for (unsigned st = 4; st < 256; st += st < 8 ? 1 : 61)
		cr_assert_eq(hand_deliv((struct hdeliv){(uint8_t)st, 1, 1, 0, 0, 1, 0}), REC_CORRUPT, "state %u", st);
	for (uint8_t st = 1; st <= 3; st++)
		cr_assert_eq(hand_deliv((struct hdeliv){st, 0, 2, 0, 0, 2, 0}), REC_CORRUPT, "packet id 0 in state %u",
			     st);
	cr_assert_eq(hand_deliv((struct hdeliv){1, 1, 1, 0, MQTT_SUBIDS_MAX + 1, 1, 0}), REC_CORRUPT,
		     "33 subscription ids");
	cr_assert_eq(hand_deliv((struct hdeliv){1, 1, 1, 0, 255, 1, 0}), REC_CORRUPT, "255 subscription ids");
	cr_assert_eq(hand_deliv((struct hdeliv){0, 0, 0, 0, 0, 1, 0}), REC_CORRUPT, "delivery at QoS 0");
	cr_assert_eq(hand_deliv((struct hdeliv){0, 0, 3, 0, 0, 1, 0}), REC_CORRUPT, "delivery at QoS 3");
	cr_assert_eq(hand_deliv((struct hdeliv){0, 0, 1, 0, 0, 3, 0}), REC_CORRUPT, "message of QoS 3");
	cr_assert_eq(hand_deliv((struct hdeliv){0, 0, 1, 0, 0, 1, 0x80}), REC_CORRUPT, "unknown message flag");
}

static int hand_flow(uint8_t state, uint16_t pid)
{
	struct hand h;
	struct rec_flow out;
	int r;

	h_begin(&h, RECORD_FORMAT, REC_KIND_FLOW);
	h_le(&h, state, 1);
	h_le(&h, pid, 2);
	h_seal(&h);
	r = rec_get_flow(h.p, h.n, &out);
	cr_assert_eq(rec_check(REC_DB_FLOW, h.p, h.n), r);
	free(h.p);
	return r;
}

Test(record, flow_with_invalid_fields_is_corrupt)
{
	for (uint8_t st = 1; st <= 3; st++)
		cr_assert_eq(hand_flow(st, 1), REC_OK, "the hand-built baseline, state %u", st);
	cr_assert_eq(hand_flow(0, 1), REC_CORRUPT, "state 0: a queued message has no flow");
	cr_assert_eq(hand_flow(4, 1), REC_CORRUPT, "state 4");
	cr_assert_eq(hand_flow(0xFF, 1), REC_CORRUPT, "state 255");
	cr_assert_eq(hand_flow(2, 0), REC_CORRUPT, "packet id 0");
}

Test(record, qos2in_and_meta_bodies_of_the_wrong_size_are_corrupt)
{
	struct hand h;
	uint64_t v;

	for (unsigned extra = 1; extra <= 9; extra++) {
		h_begin(&h, RECORD_FORMAT, REC_KIND_Q2IN);
		h_le(&h, 0, extra > 8 ? 8 : extra);
		h_seal(&h);
		cr_assert_eq(rec_get_q2in(h.p, h.n), REC_CORRUPT, "q2in with a body");
		free(h.p);
	}
	for (unsigned len = 0; len <= 16; len++) {
		h_begin(&h, RECORD_FORMAT, REC_KIND_META);
		for (unsigned i = 0; i < len; i++)
			h_le(&h, i, 1);
		h_seal(&h);
		cr_assert_eq(rec_get_meta_u64(h.p, h.n, &v), len == 8 ? REC_OK : REC_CORRUPT, "meta body of %u", len);
		free(h.p);
	}
}

/* ------------------------------------------------------------ rec_check */

Test(record, check_dispatches_on_the_database)
{
	static const char *const names[REC_DB_COUNT] = {
		"meta", "retained", "sessions", "subscriptions", "deliveries", "flows", "qos2in",
	};
	struct sample s[SAMPLES_MAX];
	unsigned n = samples(s);
	bool seen[REC_DB_COUNT] = {0};

	for (unsigned db = 0; db < REC_DB_COUNT; db++)
		cr_assert_str_eq(rec_db_name(db), names[db]);
	cr_assert_str_eq(rec_db_name(REC_DB_COUNT), "?");
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *p = s[i].b.p;
		size_t len = s[i].b.len;

		seen[s[i].db] = true;
		for (unsigned db = 0; db < REC_DB_COUNT; db++)
			cr_assert_eq(rec_check(db, p, len), db == s[i].db ? REC_OK : REC_CORRUPT, "sample %u in %s", i,
				     rec_db_name(db));
		cr_assert_eq(rec_check(REC_DB_COUNT, p, len), REC_CORRUPT);
		cr_assert_eq(rec_check(255, p, len), REC_CORRUPT);
		cr_assert_eq(rec_check(UINT32_MAX, p, len), REC_CORRUPT);
	}
	for (unsigned db = 0; db < REC_DB_COUNT; db++)
		cr_assert(seen[db], "no sample for %s", rec_db_name(db));
	samples_free(s, n);
}

/* ------------------------------------------------------- the op stream */

struct want_op {
	uint8_t type, db;
	uint8_t key[RECORD_KEY_MAX];
	size_t klen;
	struct rec_buf val;
};

/* Appends @w as one op. */
static void op_put(struct rec_buf *ops, const struct want_op *w)
{
	size_t at = rec_op_begin(ops, w->type, w->db);

	buf_append(ops, w->key, w->klen);
	rec_op_key_done(ops, at);
	if (w->val.len)
		buf_append(ops, w->val.p, w->val.len);
	rec_op_end(ops, at);
}

#define OPS 6

/* A stream of ops of every type, with and without values; @ends gets the
 * offset after each op. */
static void op_stream(struct rec_buf *ops, struct want_op *w, size_t *ends)
{
	struct msg m;
	struct rec_deliv d = {.state = 1, .pid = 3, .qos = 1};

	full_msg(&m);
	memset(w, 0, OPS * sizeof(*w));
	w[0] = (struct want_op){.type = REC_OP_PUT, .db = REC_DB_RETAIN};
	w[0].klen = rec_key_name(w[0].key, m.topic.ptr, m.topic.len);
	rec_put_retain(&w[0].val, &m, 0);

	w[1] = (struct want_op){.type = REC_OP_DEL, .db = REC_DB_SUB};
	w[1].klen = rec_key_id(w[1].key, (const uint8_t *)"c1", 2);
	w[1].klen += rec_key_name(w[1].key + w[1].klen, (const uint8_t *)"a/#", 3);

	w[2] = (struct want_op){.type = REC_OP_PUT, .db = REC_DB_DELIV};
	w[2].klen = rec_key_id(w[2].key, (const uint8_t *)"c1", 2);
	w[2].klen += rec_key_u64(w[2].key + w[2].klen, 17);
	rec_put_deliv(&w[2].val, &d, &m);

	w[3] = (struct want_op){.type = REC_OP_DEL_SESSION, .db = REC_DB_SESS};
	w[3].klen = rec_key_id(w[3].key, (const uint8_t *)"c1", 2);

	w[4] = (struct want_op){.type = REC_OP_PUT, .db = REC_DB_META};
	memset(w[4].key, 'k', RECORD_KEY_MAX);
	w[4].klen = RECORD_KEY_MAX;
	rec_put_meta_u64(&w[4].val, 1);

	/* A delivery put taken back before the batch left: key and value stay. */
	w[5] = (struct want_op){.type = REC_OP_NOP, .db = REC_DB_DELIV};
	w[5].klen = rec_key_id(w[5].key, (const uint8_t *)"c2", 2);
	w[5].klen += rec_key_u64(w[5].key + w[5].klen, 18);
	rec_put_deliv(&w[5].val, &d, &m);

	for (unsigned i = 0; i < OPS; i++) {
		op_put(ops, &w[i]);
		ends[i] = ops->len;
	}
	cr_assert_not(ops->oom);
}

static void op_stream_free(struct rec_buf *ops, struct want_op *w)
{
	for (unsigned i = 0; i < OPS; i++)
		rec_buf_free(&w[i].val);
	rec_buf_free(ops);
}

Test(record, op_stream_round_trips)
{
	struct rec_buf ops = {0};
	struct want_op w[OPS];
	size_t ends[OPS], off = 0;
	struct rec_op op;
	uint8_t *p;

	op_stream(&ops, w, ends);
	p = exact(ops.p, ops.len);
	for (unsigned i = 0; i < OPS; i++) {
		memset(&op, 0xA5, sizeof(op));
		cr_assert_eq(rec_op_next(p, ops.len, &off, &op), 1, "op %u", i);
		cr_assert_eq(off, ends[i]);
		cr_assert_eq(op.type, w[i].type);
		cr_assert_eq(op.db, w[i].db);
		cr_assert_eq(op.klen, w[i].klen);
		cr_assert_eq(memcmp(op.key, w[i].key, w[i].klen), 0);
		cr_assert_eq(op.key, p + (i ? ends[i - 1] : 0) + REC_OP_HEADER, "a view into the stream");
		cr_assert_eq(op.vlen, w[i].val.len);
		cr_assert_eq(op.val, op.key + op.klen);
		if (op.vlen) {
			cr_assert_eq(memcmp(op.val, w[i].val.p, op.vlen), 0);
			cr_assert_eq(rec_check(op.db, op.val, op.vlen), REC_OK);
		}
	}
	cr_assert_eq(rec_op_next(p, ops.len, &off, &op), 0, "the end");
	cr_assert_eq(rec_op_next(p, ops.len, &off, &op), 0, "still the end");
	cr_assert_eq(off, ops.len);
	off = 0;
	cr_assert_eq(rec_op_next(p, 0, &off, &op), 0, "an empty stream");
	free(p);
	op_stream_free(&ops, w);
}

Test(record, op_header_layout_is_pinned)
{
	struct rec_buf ops = {0};
	size_t at = rec_op_begin(&ops, REC_OP_PUT, REC_DB_FLOW);

	cr_assert_eq(at, 0);
	buf_append(&ops, "\x00\x02" "ab" "\x00\x05", 6);
	rec_op_key_done(&ops, at);
	buf_append(&ops, "vvv", 3);
	rec_op_end(&ops, at);
	/* u8 type, u8 db, u16 key length, u32 value length: little endian. */
	cr_assert_eq(ops.len, REC_OP_HEADER + 9);
	cr_assert_eq(memcmp(ops.p, "\x01\x05\x06\x00\x03\x00\x00\x00", REC_OP_HEADER), 0);
	rec_buf_free(&ops);
}

Test(record, every_truncated_op_stream_is_corrupt)
{
	struct rec_buf ops = {0};
	struct want_op w[OPS];
	size_t ends[OPS];

	op_stream(&ops, w, ends);
	for (size_t len = 0; len < ops.len; len++) {
		uint8_t *p = exact(ops.p, len);
		size_t off = 0, before;
		unsigned whole = 0;
		struct rec_op op;
		int r;

		while (whole < OPS && ends[whole] <= len)
			whole++;
		for (unsigned i = 0; i < whole; i++)
			cr_assert_eq(rec_op_next(p, len, &off, &op), 1, "cut at %zu: op %u", len, i);
		before = off;
		r = rec_op_next(p, len, &off, &op);
		if (len == (whole ? ends[whole - 1] : 0))
			cr_assert_eq(r, 0, "cut at %zu, between ops", len);
		else
			cr_assert_eq(r, REC_CORRUPT, "cut at %zu, inside op %u", len, whole);
		cr_assert_eq(off, before, "a failed read leaves the offset");
		free(p);
	}
	op_stream_free(&ops, w);
}

/* One op header by hand, @have bytes after it. */
static int hand_op(uint8_t type, uint8_t db, uint16_t klen, uint32_t vlen, size_t have)
{
	uint8_t *p = malloc(REC_OP_HEADER + have);
	struct rec_op op;
	size_t off = 0;
	int r;

	cr_assert_not_null(p);
	p[0] = type;
	p[1] = db;
	p[2] = (uint8_t)klen;
	p[3] = (uint8_t)(klen >> 8);
	for (unsigned i = 0; i < 4; i++)
		p[4 + i] = (uint8_t)(vlen >> (8 * i));
	memset(p + REC_OP_HEADER, 'x', have);
	r = rec_op_next(p, REC_OP_HEADER + have, &off, &op);
	cr_assert_eq(off, r == 1 ? REC_OP_HEADER + klen + (size_t)vlen : 0);
	free(p);
	return r;
}

Test(record, op_with_a_bad_type_database_or_length_is_corrupt)
{
	for (uint8_t t = REC_OP_PUT; t <= REC_OP_NOP; t++)
		for (uint8_t db = 0; db < REC_DB_COUNT; db++)
			cr_assert_eq(hand_op(t, db, 3, 2, 5), 1, "the hand-built baseline, type %u db %u", t, db);
	cr_assert_eq(hand_op(REC_OP_PUT, REC_DB_META, RECORD_KEY_MAX, 0, RECORD_KEY_MAX), 1, "the longest key");
	cr_assert_eq(hand_op(0, REC_DB_META, 3, 2, 5), REC_CORRUPT, "type 0");
	cr_assert_eq(hand_op(REC_OP_NOP + 1, REC_DB_META, 3, 2, 5), REC_CORRUPT, "type 5");
	cr_assert_eq(hand_op(0xFF, REC_DB_META, 3, 2, 5), REC_CORRUPT, "type 255");
	cr_assert_eq(hand_op(REC_OP_PUT, REC_DB_COUNT, 3, 2, 5), REC_CORRUPT, "database 7");
	cr_assert_eq(hand_op(REC_OP_PUT, 0xFF, 3, 2, 5), REC_CORRUPT, "database 255");
	cr_assert_eq(hand_op(REC_OP_PUT, REC_DB_META, RECORD_KEY_MAX + 1, 0, RECORD_KEY_MAX + 1), REC_CORRUPT,
		     "a key longer than LMDB takes");
	cr_assert_eq(hand_op(REC_OP_PUT, REC_DB_META, 0xFFFF, 0, 0xFFFF), REC_CORRUPT, "key length 65535");
	cr_assert_eq(hand_op(REC_OP_PUT, REC_DB_META, 6, 0, 5), REC_CORRUPT, "key past the end");
	cr_assert_eq(hand_op(REC_OP_PUT, REC_DB_META, 3, 3, 5), REC_CORRUPT, "value past the end");
	cr_assert_eq(hand_op(REC_OP_PUT, REC_DB_META, 3, UINT32_MAX, 5), REC_CORRUPT, "value length 2^32-1");
	cr_assert_eq(hand_op(REC_OP_PUT, REC_DB_META, 3, 2, 6), 1, "a stream may go on after an op");
}

Test(record, op_with_an_empty_key_is_refused)
{
	struct rec_buf ops = {0};
	struct rec_buf val = {0};
	struct rec_op op;
	size_t off = 0, at;

	cr_assert_eq(hand_op(REC_OP_DEL, REC_DB_SESS, 0, 0, 0), REC_CORRUPT);
	rec_put_meta_u64(&val, 3);
	at = rec_op_begin(&ops, REC_OP_PUT, REC_DB_META);
	rec_op_key_done(&ops, at);
	buf_append(&ops, val.p, val.len);
	rec_op_end(&ops, at);
	cr_assert_eq(rec_op_next(ops.p, ops.len, &off, &op), REC_CORRUPT, "an empty key would put or delete \"\"");
	cr_assert_eq(off, 0);
	rec_buf_free(&ops);
	rec_buf_free(&val);
}

/* A message body with every field given, consistent or not. */
static void h_msg_raw(struct hand *h, uint8_t flags, uint8_t payload_format, struct mqtt_str content_type)
{
	h_le(h, 1, 1);
	h_le(h, flags, 1);
	h_le(h, payload_format, 1);
	h_le(h, 0, 8);
	h_str(h, L("t"));
	h_str(h, L("p"));
	h_str(h, L("c"));
	h_str(h, L(""));
	h_str(h, content_type);
	h_str(h, L(""));
	h_str(h, L(""));
}

static int raw_retain(uint8_t flags, uint8_t payload_format, struct mqtt_str content_type)
{
	struct hand h;
	struct msg out;
	uint64_t exp = 77;
	int r;

	h_begin(&h, RECORD_FORMAT, REC_KIND_RETAIN);
	h_msg_raw(&h, flags, payload_format, content_type);
	h_seal(&h);
	r = rec_get_retain(h.p, h.n, &out, &exp);
	if (r != REC_OK)
		cr_assert_eq(exp, 77, "an output written although decoding failed");
	free(h.p);
	return r;
}

Test(record, optional_message_fields_agree_with_their_flags)
{
	cr_assert_eq(raw_retain(0x02, 1, L("")), REC_OK, "payload format 1 with its flag");
	cr_assert_eq(raw_retain(0x06, 0, L("text/plain")), REC_OK, "content type with its flag");
	cr_assert_eq(raw_retain(0x02, 7, L("")), REC_CORRUPT, "payload format 7 (MQTT allows 0 and 1)");
	cr_assert_eq(raw_retain(0x00, 1, L("")), REC_CORRUPT, "payload format without its flag");
	cr_assert_eq(raw_retain(0x00, 0, L("text/plain")), REC_CORRUPT, "content type without its flag");
}

static int raw_deliv(uint8_t state, uint16_t pid, uint8_t qos, uint8_t retain, uint32_t subid)
{
	struct hand h;
	struct msg mo;
	struct rec_deliv out = {.m = &mo, .state = 99};
	int r;

	h_begin(&h, RECORD_FORMAT, REC_KIND_DELIV);
	h_le(&h, state, 1);
	h_le(&h, pid, 2);
	h_le(&h, qos, 1);
	h_le(&h, retain, 1);
	h_le(&h, 0, 4);
	h_le(&h, subid ? 1 : 0, 1);
	if (subid)
		h_le(&h, subid, 4);
	h_msg_raw(&h, 0, 0, L(""));
	h_seal(&h);
	r = rec_get_deliv(h.p, h.n, &out);
	if (r != REC_OK)
		cr_assert_eq(out.state, 99, "an output written although decoding failed");
	free(h.p);
	return r;
}

Test(record, delivery_fields_agree_with_each_other)
{
	cr_assert_eq(raw_deliv(1, 5, 1, 1, 268435455), REC_OK, "the baseline");
	cr_assert_eq(raw_deliv(1, 5, 1, 2, 0), REC_CORRUPT, "retain byte 2");
	cr_assert_eq(raw_deliv(0, 5, 1, 0, 0), REC_CORRUPT, "a queued delivery with a packet id");
	cr_assert_eq(raw_deliv(1, 5, 2, 0, 0), REC_CORRUPT, "QoS 1 state for a QoS 2 delivery");
	cr_assert_eq(raw_deliv(2, 5, 1, 0, 0), REC_CORRUPT, "QoS 2 state for a QoS 1 delivery");
	cr_assert_eq(raw_deliv(3, 5, 1, 0, 0), REC_CORRUPT, "PUBREL state for a QoS 1 delivery");
	cr_assert_eq(raw_deliv(1, 5, 1, 0, 268435456), REC_CORRUPT, "subscription id past 268,435,455");
	cr_assert_eq(raw_deliv(1, 5, 1, 0, 0xFFFFFFFF), REC_CORRUPT, "subscription id 0xFFFFFFFF");
}

Test(record, subscription_options_never_valid_are_corrupt)
{
	static const uint8_t bad[] = {0xC1, 0x41, 0x81, 0x31, 0x03};
	static const uint8_t good[] = {0x00, 0x01, 0x02, 0x2E, 0x1D};

	for (unsigned i = 0; i < sizeof(good); i++) {
		struct rec_sub in = {.filter = L("a/#"), .options = good[i], .sub_id = 1}, out;
		struct rec_buf b = {0};

		rec_put_sub(&b, &in);
		cr_assert_eq(rec_get_sub(b.p, b.len, &out), REC_OK, "options 0x%02x", good[i]);
		rec_buf_free(&b);
	}
	for (unsigned i = 0; i < sizeof(bad); i++) {
		struct rec_sub in = {.filter = L("a/#"), .options = bad[i], .sub_id = 1}, out = {.options = 0x77};
		struct rec_buf b = {0};

		rec_put_sub(&b, &in);
		cr_assert_eq(rec_get_sub(b.p, b.len, &out), REC_CORRUPT, "options 0x%02x", bad[i]);
		cr_assert_eq(out.options, 0x77, "an output written although decoding failed");
		rec_buf_free(&b);
	}
}

Test(record, op_stream_offset_past_the_end_is_corrupt)
{
	uint8_t p[REC_OP_HEADER] = {0};
	struct rec_op op;
	size_t off = sizeof(p) + 1;

	cr_assert_eq(rec_op_next(p, sizeof(p), &off, &op), REC_CORRUPT);
}

Test(record, crc32c_instruction_and_table_agree)
{
	uint8_t buf[1031];
	uint32_t x = 12345;

	for (size_t i = 0; i < sizeof(buf); i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (uint8_t)(x >> 16);
	}
	cr_assert_eq(rec_crc32c_portable(0, (const uint8_t *)"123456789", 9), 0xE3069283u);
	for (size_t n = 0; n < sizeof(buf); n += 1 + n / 3)
		for (size_t at = 0; at < 8 && at + n <= sizeof(buf); at++)
			cr_assert_eq(rec_crc32c(7, buf + at, n), rec_crc32c_portable(7, buf + at, n),
				     "%zu bytes at %zu", n, at);
}
