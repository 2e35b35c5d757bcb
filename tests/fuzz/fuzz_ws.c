/*
 * fuzz_ws.c - libFuzzer target for the WebSocket handshake and frame
 * decoder (src/net/ws.c).
 *
 * The whole input is parsed as an opening handshake; an accepted one must
 * pass the listener checks without crashing and give a 101 response that
 * fits.  The input after its first byte is then unwrapped as client frames
 * (the first byte picks the frame size limit) four ways: whole into a
 * separate buffer, whole in place, in 1-byte and in 7-byte pieces, each
 * piece copied into a buffer of exactly its size so AddressSanitizer sees
 * any read past it.  All four must give the same data, the same events
 * (pings and closes, with their payloads) and the same error with the same
 * close code: the decoder's result may not depend on how the bytes were
 * split.  Output never outgrows input.  Any failure aborts.
 *
 * Built like the other targets: replay.c replays the committed corpus in
 * CI; clang -fsanitize=fuzzer builds it for real fuzzing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringmq/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_ws: %s:%d: check failed: %s\n", __FILE__, __LINE__, #c);  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define EVENTS_MAX 4096

/* What one way of decoding found. */
struct trace {
	uint8_t *out;
	size_t out_len;
	uint8_t events[EVENTS_MAX]; /* WS_EV_PING / WS_EV_CLOSE in order */
	uint8_t ctrl_sum[EVENTS_MAX]; /* a checksum of each event's control payload */
	size_t nev;
	int err;
	uint16_t code;
};

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = (uint8_t)n;

	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s * 31 + p[i]);
	return s;
}

static void run(const uint8_t *in, size_t size, size_t step, int in_place, uint64_t max, struct trace *t)
{
	struct ws_decoder d;
	size_t at = 0;

	memset(t, 0, sizeof(*t));
	t->out = malloc(size + 1);
	CHECK(t->out != NULL);
	ws_decoder_init(&d, max);
	while (at < size) {
		size_t n = step && size - at > step ? step : size - at;
		uint8_t *chunk = malloc(n), *o = in_place ? chunk : malloc(n);
		struct ws_decoded res;
		int r;

		CHECK(chunk != NULL && o != NULL);
		memcpy(chunk, in + at, n);
		r = ws_decode(&d, chunk, n, o, &res);
		CHECK(res.used <= n);
		CHECK(res.out <= res.used);
		memcpy(t->out + t->out_len, o, res.out);
		t->out_len += res.out;
		at += res.used;
		if (!in_place)
			free(o);
		free(chunk);
		if (r < 0) {
			CHECK(r == -EPROTO || r == -EMSGSIZE);
			CHECK(res.why != NULL);
			CHECK(res.close_code == WS_CLOSE_PROTOCOL_ERROR ||
			      res.close_code == WS_CLOSE_UNSUPPORTED_DATA || res.close_code == WS_CLOSE_TOO_BIG);
			CHECK((r == -EMSGSIZE) == (res.close_code == WS_CLOSE_TOO_BIG));
			t->err = r;
			t->code = res.close_code;
			return;
		}
		if (r == WS_EV_NONE) {
			CHECK(res.used == n);
			continue;
		}
		CHECK(r == WS_EV_PING || r == WS_EV_CLOSE);
		CHECK(d.ctrl_len <= WS_CONTROL_BYTES_MAX);
		CHECK(!d.in_frame);
		if (t->nev < EVENTS_MAX) {
			t->ctrl_sum[t->nev] = sum(d.ctrl, d.ctrl_len);
			t->events[t->nev++] = (uint8_t)r;
		}
	}
}

static void same(const struct trace *a, const struct trace *b)
{
	CHECK(a->out_len == b->out_len);
	CHECK(memcmp(a->out, b->out, a->out_len) == 0);
	CHECK(a->nev == b->nev);
	CHECK(memcmp(a->events, b->events, a->nev) == 0);
	CHECK(memcmp(a->ctrl_sum, b->ctrl_sum, a->nev) == 0);
	CHECK(a->err == b->err);
	CHECK(a->code == b->code);
}

static void handshake(const uint8_t *data, size_t size)
{
	static const char origins[2][WS_ORIGIN_BYTES_MAX] = {"https://a.example", "null"};
	static const char proxies[1][WS_ADDRESS_BYTES_MAX] = {"127.0.0.1"};
	char *copy = malloc(size + 1), resp[WS_RESPONSE_BYTES_MAX], addr[WS_ADDRESS_BYTES_MAX];
	struct ws_request r;
	const char *why = NULL;
	int status = 0, n;

	CHECK(copy != NULL);
	memcpy(copy, data, size);
	copy[size] = '\0';
	n = ws_handshake_parse(copy, size, &r, &status, &why);
	if (n < 0) {
		CHECK(why != NULL);
		CHECK(status == 400 || status == 426 || status == 431);
		CHECK(ws_response_error(status, why, resp, sizeof(resp)) > 0);
	} else if (n > 0) {
		CHECK((size_t)n <= size && n <= (int)WS_HANDSHAKE_BYTES_MAX);
		CHECK(r.key.len == 24);
		status = ws_handshake_check(&r, "/mqtt", origins, 2, &why);
		CHECK(status == 0 || status == 403 || status == 404);
		n = ws_response_accept(&r, resp, sizeof(resp));
		CHECK(n > 0 && (size_t)n < sizeof(resp));
		if (r.forwarded_for.len && ws_forwarded_client(&r.forwarded_for, addr, sizeof(addr)) == 0)
			(void)ws_address_in(addr, proxies, 1); /* a bare address: whatever it says, no crash */
	} else {
		CHECK(size < WS_HANDSHAKE_BYTES_MAX);
	}
	(void)ws_address_in(copy, proxies, 1);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trace whole, in_place, ones, sevens;
	uint64_t max;

	handshake(data, size);
	if (size == 0)
		return 0;
	max = (data[0] & 1) ? 64 : (data[0] & 2) ? UINT64_MAX : 70000;
	run(data + 1, size - 1, 0, 0, max, &whole);
	run(data + 1, size - 1, 0, 1, max, &in_place);
	run(data + 1, size - 1, 1, 0, max, &ones);
	run(data + 1, size - 1, 7, 1, max, &sevens);
	same(&whole, &in_place);
	same(&whole, &ones);
	same(&whole, &sevens);
	free(whole.out);
	free(in_place.out);
	free(ones.out);
	free(sevens.out);
	return 0;
}
