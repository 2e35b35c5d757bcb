/*
 * fuzz_mqtt.c - libFuzzer target for the MQTT codec.
 *
 * The input is a byte stream as a socket would deliver it.  Frames are cut
 * from it one after the other; each frame is copied into a buffer of exactly
 * its size (so AddressSanitizer sees any read past the frame) and decoded as
 * MQTT 3.1, 3.1.1 and 5.  Every packet that decodes must re-encode (user
 * properties gathered with mqtt_props_user_copy()), the encoding must decode
 * again to the same type, and encoding that second decode must give the
 * same bytes: encode(decode(x)) is a fixed point.  Any failure aborts.
 *
 * Built two ways: with `clang -fsanitize=fuzzer,address,undefined` and no
 * driver for real fuzzing (tests/fuzz/README in the meson file), and with
 * replay.c as an ordinary test that replays the committed corpus in CI.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringmq/limits.h"
#include "ringmq/mqtt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_mqtt: %s:%d: check failed: %s\n", __FILE__,          \
				__LINE__, #c);                                                     \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* Gathers the decoded user properties of @p into a fresh block and points
 * p->user at it, so the encoder writes them back.  Returns the block. */
static uint8_t *user_gather(struct mqtt_props *p)
{
	uint32_t n = mqtt_props_user_len(p);
	uint8_t *blk;

	CHECK(n <= p->raw_len);
	CHECK((n == 0) == (p->user_count == 0));
	if (n == 0)
		return NULL;
	blk = malloc(n);
	CHECK(blk != NULL);
	CHECK(mqtt_props_user_copy(p, blk) == n);
	p->user.ptr = blk;
	p->user.len = n;
	return blk;
}

/* The property sets of @p, so user_gather() can visit each. */
static int props_of(struct mqtt_packet *p, struct mqtt_props **ret)
{
	switch (p->type) {
	case MQTT_CONNECT: ret[0] = &p->connect.props; ret[1] = &p->connect.will_props; return 2;
	case MQTT_CONNACK: ret[0] = &p->connack.props; return 1;
	case MQTT_PUBLISH: ret[0] = &p->publish.props; return 1;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP: ret[0] = &p->ack.props; return 1;
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE: ret[0] = &p->subscribe.props; return 1;
	case MQTT_SUBACK:
	case MQTT_UNSUBACK: ret[0] = &p->suback.props; return 1;
	case MQTT_DISCONNECT:
	case MQTT_AUTH: ret[0] = &p->disconnect.props; return 1;
	default: return 0;
	}
}

/* Encodes @p for @v into a fresh exact-size buffer; *ret_len its length. */
static uint8_t *encode(uint8_t v, struct mqtt_packet *p, uint8_t **users, size_t *ret_len)
{
	struct mqtt_props *ps[2];
	int np = props_of(p, ps);
	size_t len;
	uint8_t *buf;

	for (int i = 0; i < np; i++)
		users[i] = user_gather(ps[i]);
	len = mqtt_encoded_len(v, p);
	CHECK(len > 0);
	buf = malloc(len);
	CHECK(buf != NULL);
	if (len > 1)
		CHECK(mqtt_encode(v, p, buf, len - 1) == -ENOBUFS);
	CHECK(mqtt_encode(v, p, buf, len) == (int)len);
	*ret_len = len;
	return buf;
}

static void subs_walk(const struct mqtt_packet *p)
{
	bool unsub = p->type == MQTT_UNSUBSCRIBE;
	struct mqtt_sub s;
	uint32_t pos = 0, n = 0;

	if (p->type != MQTT_SUBSCRIBE && !unsub)
		return;
	while (mqtt_sub_next(&p->subscribe, unsub, &pos, &s) == 1) {
		CHECK(mqtt_utf8_check(s.filter.ptr, s.filter.len) == 0);
		CHECK(s.qos <= 2);
		n++;
	}
	CHECK(n == p->subscribe.count);
	CHECK(pos == p->subscribe.list.len);
}

static void one(uint8_t v, const uint8_t *frame, size_t len)
{
	struct mqtt_packet p, q;
	uint8_t *a, *b, *ua[2] = {0}, *ub[2] = {0}, rc = 0;
	size_t alen, blen;
	uint8_t ev;
	int r;

	r = mqtt_decode(v, frame, len, &p, &rc);
	if (r < 0) {
		CHECK(r == -EBADMSG || r == -EPROTO);
		CHECK(rc >= 0x80);
		return;
	}
	CHECK((size_t)r == len);
	subs_walk(&p);
	ev = p.type == MQTT_CONNECT ? p.connect.version : v;
	a = encode(ev, &p, ua, &alen);
	r = mqtt_decode(ev, a, alen, &q, &rc);
	if (r != (int)alen)
		fprintf(stderr, "fuzz_mqtt: %s v%u re-decode %d reason 0x%02x\n", mqtt_type_name(p.type), ev, r,
			rc);
	CHECK(r == (int)alen);
	CHECK(q.type == p.type);
	b = encode(ev, &q, ub, &blen);
	CHECK(blen == alen);
	CHECK(memcmp(a, b, alen) == 0);
	free(a);
	free(b);
	for (int i = 0; i < 2; i++) {
		free(ua[i]);
		free(ub[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	(void)mqtt_utf8_check(data, size);
	while (off < size) {
		struct mqtt_frame f;
		uint8_t rc = 0, *copy;
		int n = mqtt_frame_cut(data + off, size - off, PACKET_BYTES_MAX + 5, &f, &rc);

		if (n <= 0) {
			CHECK(n == 0 || (n == -EBADMSG && rc == 0x81) || (n == -EMSGSIZE && rc == 0x95));
			break;
		}
		CHECK((size_t)n == f.header_len + f.body_len);
		copy = malloc((size_t)n);
		CHECK(copy != NULL);
		memcpy(copy, data + off, (size_t)n);
		/* 0: a connection before CONNECT, which must refuse the rest. */
		one(0, copy, (size_t)n);
		for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++)
			one(v, copy, (size_t)n);
		free(copy);
		off += (size_t)n;
	}
	return 0;
}
