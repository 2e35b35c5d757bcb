/*
 * test_msg.c - application messages (msg.c): building, forwarding, sharing.
 *
 * msg_new() must copy everything it keeps: the tests build a message from
 * caller buffers (or from a PUBLISH decoded by the real codec), then wipe
 * those buffers and check that the message still reads the same.  The MQTT 5
 * properties a broker forwards (payload format, content type, response
 * topic, correlation data, user properties in their order) come back from
 * msg_props() exactly, and nothing else does; they also encode into a
 * PUBLISH that decodes to the original values.  The Message Expiry Interval
 * is forwarded as the time remaining, rounded up to whole seconds
 * [MQTT-3.3.2-6].
 *
 * Transient messages (msg_transient) describe a PUBLISH in place: their
 * views point into the caller's buffers, and msg_keep() makes one heap copy,
 * shared by every later msg_keep(), that survives the buffers and
 * msg_transient_done().  Dropping a reference to a transient is a
 * programmer error that aborts.
 *
 * References: msg_ref()/msg_unref() counts are checked directly; that the
 * last msg_unref() frees, and frees only once, is what the sanitizer build
 * (ASan leak and use-after-free checks) verifies for every test here,
 * including the threaded ones.  Threads never call Criterion asserts: they
 * count failures, and the main thread checks the counts.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "ringmq/mqtt.h"
#include "ringmq/msg.h"

/* A view of a string literal (which may contain NUL bytes). */
#define L(x) ((struct mqtt_str){(const uint8_t *)(x), sizeof(x) - 1})

/* The properties a broker forwards, User Property aside. */
#define FORWARDED                                                                                                  \
	(MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT) | MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY) | MQTT_HAS(MQTT_PROP_CONTENT_TYPE) | \
	 MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC) | MQTT_HAS(MQTT_PROP_CORRELATION_DATA))

/* Three user properties, encoded as on the wire, in a deliberate order: a
 * repeated key and an empty value must survive as they are. */
static const uint8_t user_block[] = {
	0x26, 0, 1, 'k', 0, 1, 'v', /* k = v */
	0x26, 0, 2, 'k', '2', 0, 0, /* k2 = "" */
	0x26, 0, 1, 'k', 0, 5, 'a', 'g', 'a', 'i', 'n', /* k = again */
};

static bool str_is(struct mqtt_str s, const void *want, size_t len)
{
	return s.len == len && (len == 0 || memcmp(s.ptr, want, len) == 0);
}

/* True when @s lies inside @m's own allocation: the variable part after the
 * header, as long as all the views together. */
static bool inside(const struct msg *m, struct mqtt_str s)
{
	size_t n = (size_t)m->topic.len + m->payload.len + m->origin.len + m->user.len + m->content_type.len +
		   m->response_topic.len + m->correlation_data.len;

	return s.len == 0 || (s.ptr >= m->data && s.ptr + s.len <= m->data + n);
}

/* Encode @in as an MQTT 5 PUBLISH into @buf and decode it again into @out,
 * whose views then point into @buf. */
static size_t reencode(const struct mqtt_packet *in, uint8_t *buf, size_t cap, struct mqtt_packet *out)
{
	uint8_t reason = 0;
	int n = mqtt_encode(MQTT_V5, in, buf, cap);

	cr_assert_gt(n, 0, "encode failed: %d", n);
	cr_assert_eq(mqtt_decode(MQTT_V5, buf, (size_t)n, out, &reason), n, "decode failed, reason 0x%02x", reason);
	return (size_t)n;
}

/* A decoded client PUBLISH carrying every forwarded property, plus a Topic
 * Alias, which is per-connection and must not be forwarded. */
static void decoded_publish(uint8_t *buf, size_t cap, struct mqtt_packet *out)
{
	struct mqtt_packet in = {.type = MQTT_PUBLISH};
	struct mqtt_props *p = &in.publish.props;

	in.publish.qos = 1;
	in.publish.packet_id = 42;
	in.publish.topic = L("home/kitchen/temp");
	in.publish.payload = L("{\"c\":21.5}");
	p->present = FORWARDED | MQTT_HAS(MQTT_PROP_TOPIC_ALIAS);
	p->payload_format = 1;
	p->message_expiry = 60;
	p->content_type = L("application/json");
	p->response_topic = L("home/kitchen/reply");
	p->correlation_data = L("\x00\x01\xfe\xff");
	p->topic_alias = 3;
	p->user.ptr = user_block;
	p->user.len = sizeof(user_block);
	reencode(&in, buf, cap, out);
	cr_assert_eq(out->publish.props.user_count, 3);
}

Test(msg, copies_topic_payload_and_origin)
{
	char topic[] = "sensors/1/temp", payload[] = "21.5", origin[] = "client-a";
	struct mqtt_str t = {(const uint8_t *)topic, sizeof(topic) - 1};
	struct mqtt_str pl = {(const uint8_t *)payload, sizeof(payload) - 1};
	struct msg *m = msg_new(&t, &pl, 1, true, NULL, (const uint8_t *)origin, sizeof(origin) - 1, 1000);

	cr_assert_not_null(m);
	cr_assert_eq(atomic_load(&m->refs), 1);
	cr_assert_eq(m->qos, 1);
	cr_assert(m->retain);
	cr_assert(inside(m, m->topic) && inside(m, m->payload) && inside(m, m->origin),
		  "views must point into the message, not the caller's buffers");
	memset(topic, 'X', sizeof(topic));
	memset(payload, 'Y', sizeof(payload));
	memset(origin, 'Z', sizeof(origin));
	cr_assert(str_is(m->topic, "sensors/1/temp", 14));
	cr_assert(str_is(m->payload, "21.5", 4));
	cr_assert(str_is(m->origin, "client-a", 8));
	cr_assert_eq(m->expiry_at_ms, 0);
	cr_assert_eq(m->has, 0);
	cr_assert_not(m->has_payload_format);
	cr_assert_eq(m->user.len, 0);
	cr_assert_null(msg_unref(m));
}

Test(msg, empty_payload_and_empty_origin_are_allowed)
{
	struct mqtt_str t = L("a"), pl = {NULL, 0};
	struct msg *m = msg_new(&t, &pl, 0, false, NULL, NULL, 0, 1);

	cr_assert_not_null(m);
	cr_assert_eq(m->payload.len, 0);
	cr_assert_eq(m->origin.len, 0);
	cr_assert(str_is(m->topic, "a", 1));
	cr_assert_not(m->retain);
	cr_assert_eq(msg_size(m), sizeof(struct msg) + 1);
	msg_unref(m);
}

Test(msg, v3_message_forwards_no_properties)
{
	struct mqtt_str t = L("a/b"), pl = L("x");
	struct msg *m = msg_new(&t, &pl, 2, false, NULL, (const uint8_t *)"c", 1, 5000);
	struct mqtt_props p;

	cr_assert_not_null(m);
	/* msg_props() sets only what the encoder reads; start from garbage to
	 * prove it does set all of that. */
	memset(&p, 0xA5, sizeof(p));
	msg_props(m, 6000, &p);
	cr_assert_eq(p.present, 0);
	cr_assert_eq(p.subid_count, 0);
	cr_assert_eq(p.user_count, 0);
	cr_assert_eq(p.user.len, 0);
	cr_assert_null(p.user.ptr);
	cr_assert_not(msg_expired(m, UINT64_MAX), "no Message Expiry Interval: never expires");
	msg_unref(m);
}

Test(msg, forwards_v5_properties_from_a_decoded_publish)
{
	uint8_t buf[512];
	struct mqtt_packet pkt;
	struct mqtt_props p;
	struct msg *m;
	const uint64_t want = FORWARDED | MQTT_HAS(MQTT_PROP_USER);

	decoded_publish(buf, sizeof(buf), &pkt);
	m = msg_new(&pkt.publish.topic, &pkt.publish.payload, pkt.publish.qos, pkt.publish.retain,
		    &pkt.publish.props, (const uint8_t *)"pub-1", 5, 10000);
	cr_assert_not_null(m);
	/* The packet buffer is the connection's receive buffer: it is reused
	 * as soon as the PUBLISH is handled. */
	memset(buf, 0, sizeof(buf));

	memset(&p, 0xA5, sizeof(p));
	msg_props(m, 10000, &p);
	cr_assert_eq(p.present, want, "present 0x%llx, want 0x%llx (no Topic Alias)", (unsigned long long)p.present,
		     (unsigned long long)want);
	cr_assert_eq(p.payload_format, 1);
	cr_assert_eq(p.message_expiry, 60);
	cr_assert(str_is(p.content_type, "application/json", 16));
	cr_assert(str_is(p.response_topic, "home/kitchen/reply", 18));
	cr_assert(str_is(p.correlation_data, "\x00\x01\xfe\xff", 4));
	cr_assert(str_is(p.user, user_block, sizeof(user_block)), "user properties, in order, as encoded entries");
	cr_assert_eq(p.subid_count, 0);
	cr_assert(inside(m, p.content_type) && inside(m, p.response_topic) && inside(m, p.correlation_data) &&
		  inside(m, p.user));
	cr_assert(str_is(m->topic, "home/kitchen/temp", 17));
	cr_assert(str_is(m->payload, "{\"c\":21.5}", 10));
	cr_assert(str_is(m->origin, "pub-1", 5));
	msg_unref(m);
}

Test(msg, forwarded_properties_encode_into_an_equal_publish)
{
	uint8_t in_buf[512], out_buf[512], user[64];
	struct mqtt_packet pkt, fwd = {.type = MQTT_PUBLISH}, got;
	struct msg *m;

	decoded_publish(in_buf, sizeof(in_buf), &pkt);
	m = msg_new(&pkt.publish.topic, &pkt.publish.payload, 1, false, &pkt.publish.props, NULL, 0, 10000);
	cr_assert_not_null(m);
	memset(in_buf, 0, sizeof(in_buf));

	fwd.publish.qos = 1;
	fwd.publish.packet_id = 9;
	fwd.publish.topic = m->topic;
	fwd.publish.payload = m->payload;
	msg_props(m, 10000, &fwd.publish.props);
	reencode(&fwd, out_buf, sizeof(out_buf), &got);

	const struct mqtt_props *g = &got.publish.props;
	cr_assert_eq(g->present & ~MQTT_HAS(MQTT_PROP_USER), FORWARDED);
	cr_assert_eq(g->payload_format, 1);
	cr_assert_eq(g->message_expiry, 60);
	cr_assert(str_is(g->content_type, "application/json", 16));
	cr_assert(str_is(g->response_topic, "home/kitchen/reply", 18));
	cr_assert(str_is(g->correlation_data, "\x00\x01\xfe\xff", 4));
	cr_assert_eq(g->user_count, 3);
	cr_assert_eq(mqtt_props_user_len(g), sizeof(user_block));
	cr_assert_eq(mqtt_props_user_copy(g, user), sizeof(user_block));
	cr_assert(memcmp(user, user_block, sizeof(user_block)) == 0, "user properties reordered or altered");
	cr_assert(str_is(got.publish.topic, "home/kitchen/temp", 17));
	cr_assert(str_is(got.publish.payload, "{\"c\":21.5}", 10));
	msg_unref(m);
}

Test(msg, remaining_expiry_rounds_up_to_whole_seconds)
{
	/* [MQTT-3.3.2-6]: the forwarded interval is the received one minus the
	 * time the message has waited in the server. */
	struct mqtt_props in = {.present = MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY), .message_expiry = 10};
	struct mqtt_str t = L("t"), pl = L("p");
	struct msg *m = msg_new(&t, &pl, 0, false, &in, NULL, 0, 5000);
	struct mqtt_props p;
	static const struct {
		uint64_t now_ms;
		uint32_t left_s;
	} cases[] = {
		{5000, 10}, {5001, 10}, {6000, 9}, {7500, 8}, {13999, 2}, {14000, 1}, {14999, 1},
	};

	cr_assert_not_null(m);
	cr_assert_eq(m->expiry_at_ms, 15000);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		msg_props(m, cases[i].now_ms, &p);
		cr_assert(p.present & MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY));
		cr_assert_eq(p.message_expiry, cases[i].left_s, "at %llu ms: %u s left, want %u",
			     (unsigned long long)cases[i].now_ms, p.message_expiry, cases[i].left_s);
		cr_assert_not(msg_expired(m, cases[i].now_ms));
	}
	cr_assert(msg_expired(m, 15000), "expired exactly at the deadline");
	cr_assert(msg_expired(m, 15001));
	cr_assert(msg_expired(m, UINT64_MAX));
	msg_unref(m);
}

Test(msg, largest_expiry_interval_does_not_overflow)
{
	struct mqtt_props in = {.present = MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY), .message_expiry = UINT32_MAX};
	struct mqtt_str t = L("t"), pl = L("p");
	uint64_t now = UINT64_C(1) << 40;
	struct msg *m = msg_new(&t, &pl, 0, false, &in, NULL, 0, now);
	struct mqtt_props p;

	cr_assert_not_null(m);
	cr_assert_eq(m->expiry_at_ms, now + (uint64_t)UINT32_MAX * 1000);
	msg_props(m, now, &p);
	cr_assert_eq(p.message_expiry, UINT32_MAX);
	cr_assert_not(msg_expired(m, now + (uint64_t)UINT32_MAX * 1000 - 1));
	msg_unref(m);
}

Test(msg, size_counts_the_header_topic_payload_and_user_properties)
{
	uint8_t buf[512];
	struct mqtt_packet pkt;
	struct msg *m;

	decoded_publish(buf, sizeof(buf), &pkt);
	m = msg_new(&pkt.publish.topic, &pkt.publish.payload, 1, false, &pkt.publish.props, NULL, 0, 0);
	cr_assert_not_null(m);
	cr_assert_eq(msg_size(m), sizeof(struct msg) + 17 + 10 + sizeof(user_block));
	msg_unref(m);
}

Test(msg, ref_and_unref_count_references)
{
	struct mqtt_str t = L("t"), pl = L("p");
	struct msg *m = msg_new(&t, &pl, 0, false, NULL, NULL, 0, 0);

	cr_assert_not_null(m);
	cr_assert_eq(msg_ref(m), m);
	cr_assert_eq(msg_ref(m), m);
	cr_assert_eq(atomic_load(&m->refs), 3);
	cr_assert_null(msg_unref(m));
	cr_assert_null(msg_unref(m));
	cr_assert_eq(atomic_load(&m->refs), 1, "still alive with one reference");
	cr_assert(str_is(m->payload, "p", 1));
	cr_assert_null(msg_unref(m)); /* the last: frees (ASan reports a leak otherwise) */
	cr_assert_null(msg_unref(NULL));
}

/* ------------------------------------------------------------ transient */

/* A PUBLISH's properties without user properties, in a buffer the test may
 * wipe (the receive buffer of a real connection). */
struct wire {
	char topic[16], payload[8], origin[8], ctype[8], rtopic[8], corr[4];
	struct mqtt_props props;
};

static void wire_init(struct wire *w)
{
	memset(w, 0, sizeof(*w));
	memcpy(w->topic, "dev/7/state", 11);
	memcpy(w->payload, "on", 2);
	memcpy(w->origin, "dev-7", 5);
	memcpy(w->ctype, "text", 4);
	memcpy(w->rtopic, "r/7", 3);
	memcpy(w->corr, "\x00\x07", 2);
	w->props.present = FORWARDED;
	w->props.payload_format = 1;
	w->props.message_expiry = 30;
	w->props.content_type = (struct mqtt_str){(const uint8_t *)w->ctype, 4};
	w->props.response_topic = (struct mqtt_str){(const uint8_t *)w->rtopic, 3};
	w->props.correlation_data = (struct mqtt_str){(const uint8_t *)w->corr, 2};
}

static bool transient_of(struct msg *tm, struct wire *w)
{
	struct mqtt_str t = {(const uint8_t *)w->topic, 11}, p = {(const uint8_t *)w->payload, 2};

	return msg_transient(tm, &t, &p, 1, true, &w->props, (const uint8_t *)w->origin, 5, 2000);
}

/* Every field a subscriber sees, as built by wire_init() at 2000 ms. */
static void check_wire_message(const struct msg *m)
{
	struct mqtt_props p;

	cr_assert(str_is(m->topic, "dev/7/state", 11));
	cr_assert(str_is(m->payload, "on", 2));
	cr_assert(str_is(m->origin, "dev-7", 5));
	cr_assert_eq(m->qos, 1);
	cr_assert(m->retain);
	cr_assert_eq(m->expiry_at_ms, 32000);
	msg_props(m, 2000, &p);
	cr_assert_eq(p.present, FORWARDED);
	cr_assert_eq(p.payload_format, 1);
	cr_assert_eq(p.message_expiry, 30);
	cr_assert(str_is(p.content_type, "text", 4));
	cr_assert(str_is(p.response_topic, "r/7", 3));
	cr_assert(str_is(p.correlation_data, "\x00\x07", 2));
}

Test(msg, transient_describes_the_publish_in_place)
{
	struct wire w;
	struct msg tm;

	wire_init(&w);
	cr_assert(transient_of(&tm, &w));
	cr_assert_eq(atomic_load(&tm.refs), 0, "a transient is not reference-counted");
	cr_assert_eq(tm.topic.ptr, (const uint8_t *)w.topic, "no copy: views point into the caller's buffers");
	cr_assert_eq(tm.payload.ptr, (const uint8_t *)w.payload);
	cr_assert_eq(tm.content_type.ptr, (const uint8_t *)w.ctype);
	cr_assert_null(tm.clone);
	check_wire_message(&tm);
	msg_transient_done(&tm); /* nothing was kept: nothing to free */
	cr_assert_null(tm.clone);
}

Test(msg, transient_refuses_user_properties)
{
	uint8_t buf[512];
	struct mqtt_packet pkt;
	struct msg tm;

	/* User properties are not contiguous in the packet, so they cannot be
	 * viewed in place: the caller must use msg_new(). */
	decoded_publish(buf, sizeof(buf), &pkt);
	cr_assert_not(msg_transient(&tm, &pkt.publish.topic, &pkt.publish.payload, 1, false, &pkt.publish.props,
				    NULL, 0, 0));
}

Test(msg, keep_copies_a_transient_once_and_the_copy_outlives_it)
{
	struct wire w;
	struct msg tm, *k1, *k2;

	wire_init(&w);
	cr_assert(transient_of(&tm, &w));
	k1 = msg_keep(&tm);
	cr_assert_not_null(k1);
	cr_assert_neq(k1, &tm);
	k2 = msg_keep(&tm);
	cr_assert_eq(k2, k1, "later keeps share the first copy");
	cr_assert_eq(atomic_load(&k1->refs), 3, "two keeps plus the transient's own hold on its copy");
	cr_assert(inside(k1, k1->topic) && inside(k1, k1->payload) && inside(k1, k1->origin) &&
		  inside(k1, k1->content_type) && inside(k1, k1->response_topic) && inside(k1, k1->correlation_data));

	/* The packet is gone: the receive buffer is reused, the transient ends. */
	memset(&w, 0x5A, sizeof(w));
	msg_transient_done(&tm);
	cr_assert_eq(atomic_load(&k1->refs), 2);
	check_wire_message(k1);
	cr_assert_eq(msg_keep(k1), k1, "keeping a heap message is msg_ref()");
	cr_assert_eq(atomic_load(&k1->refs), 3);
	msg_unref(k1);
	msg_unref(k1);
	msg_unref(k2);
}

Test(msg, unref_of_a_transient_aborts, .signal = SIGABRT)
{
	struct wire w;
	struct msg tm;

	wire_init(&w);
	cr_assert(transient_of(&tm, &w));
	(void)msg_unref(&tm);
}

/* ------------------------------------------------------------ threads */

#define THREADS 4
#define ROUNDS 200000

struct sharer {
	pthread_t thread;
	struct msg *m; /* one reference, owned by the thread, dropped at its end */
	_Atomic unsigned *go;
	unsigned bad_reads;
};

static void *share_loop(void *arg)
{
	struct sharer *sh = arg;

	while (!atomic_load(sh->go))
		; /* start together so the increments and decrements interleave */
	for (int i = 0; i < ROUNDS; i++) {
		struct msg *m = msg_ref(sh->m);
		if (!str_is(m->topic, "shared/topic", 12) || !str_is(m->payload, "body", 4))
			sh->bad_reads++;
		msg_unref(m);
	}
	msg_unref(sh->m);
	return NULL;
}

static void run_sharers(struct msg *m, bool drop_first)
{
	struct sharer sh[THREADS];
	_Atomic unsigned go = 0;

	for (int i = 0; i < THREADS; i++) {
		sh[i] = (struct sharer){.m = msg_ref(m), .go = &go};
		cr_assert_eq(pthread_create(&sh[i].thread, NULL, share_loop, &sh[i]), 0);
	}
	if (drop_first)
		msg_unref(m); /* the last thread to finish frees it */
	atomic_store(&go, 1);
	for (int i = 0; i < THREADS; i++) {
		cr_assert_eq(pthread_join(sh[i].thread, NULL), 0);
		cr_expect_eq(sh[i].bad_reads, 0, "thread %d read a changed message", i);
	}
}

Test(msg, concurrent_ref_and_unref_keep_the_count_exact)
{
	struct mqtt_str t = L("shared/topic"), pl = L("body");
	struct msg *m = msg_new(&t, &pl, 1, false, NULL, NULL, 0, 0);

	cr_assert_not_null(m);
	run_sharers(m, false);
	cr_assert_eq(atomic_load(&m->refs), 1, "%u references left, want the creator's only",
		     (unsigned)atomic_load(&m->refs));
	msg_unref(m);
}

Test(msg, last_reference_may_be_dropped_on_any_thread)
{
	struct mqtt_str t = L("shared/topic"), pl = L("body");
	struct msg *m = msg_new(&t, &pl, 1, false, NULL, NULL, 0, 0);

	cr_assert_not_null(m);
	/* The creator lets go first; whichever worker drops the last reference
	 * frees the message.  The sanitizer build checks it is freed exactly
	 * once and never read afterwards. */
	run_sharers(m, true);
}
