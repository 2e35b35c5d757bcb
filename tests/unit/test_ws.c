/*
 * test_ws.c - WebSocket handshake and framing (src/net/ws.c).
 *
 * As for the MQTT codec: every strict prefix of a valid request is
 * "incomplete", each malformed request gets its exact HTTP status, frames
 * decode the same whether fed whole, split at any byte or one byte at a
 * time, and each bad frame gets its exact close code.  Client frames are
 * built here, masked, with 7-, 16- and 64-bit lengths.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringmq/ws.h"

#define REQ_HEAD "GET /mqtt?x=1 HTTP/1.1\r\nHost: broker.example:8080\r\n"
#define REQ_WS                                                                                     \
	"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"                               \
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
#define REQ_PROTO "Sec-WebSocket-Protocol: mqtt\r\n"
#define REQ_ORIGIN "Origin: https://app.example\r\n"
#define VALID REQ_HEAD REQ_WS REQ_PROTO REQ_ORIGIN "\r\n"

static const uint8_t mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* ------------------------------------------------------------ handshake */

static int parse(const char *s, struct ws_request *r, int *status, const char **why)
{
	return ws_handshake_parse(s, strlen(s), r, status, why);
}

Test(ws, valid_request_parses_into_its_parts)
{
	struct ws_request r;
	int status = 0;
	const char *why = NULL;
	int n = parse(VALID "trailing frame bytes", &r, &status, &why);

	cr_assert_eq(n, (int)strlen(VALID), "the request ends at its blank line: %d", n);
	cr_assert_eq(r.path.len, 5);
	cr_assert(memcmp(r.path.ptr, "/mqtt", 5) == 0, "the query is not part of the path");
	cr_assert_eq(r.host.len, strlen("broker.example:8080"));
	cr_assert_eq(r.key.len, 24);
	cr_assert_eq(r.origin.len, strlen("https://app.example"));
	cr_assert_eq(r.forwarded_for.len, 0);
	cr_assert_str_eq(r.protocol, "mqtt");
}

Test(ws, every_prefix_of_a_valid_request_is_incomplete)
{
	const char *v = VALID;
	struct ws_request r;
	int status = 0;
	const char *why = NULL;

	for (size_t i = 0; i < strlen(v); i++)
		cr_assert_eq(ws_handshake_parse(v, i, &r, &status, &why), 0, "prefix of %zu bytes", i);
}

Test(ws, bare_newlines_and_header_case_are_accepted)
{
	struct ws_request r;
	int status = 0;
	const char *why = NULL;
	const char *req = "GET /mqtt HTTP/1.1\nhost: h\nUPGRADE: WebSocket\nconnection: upgrade\n"
			  "sec-websocket-key: AQIDBAUGBwgJCgsMDQ4PEA==\nsec-websocket-version: 13\n"
			  "Sec-WebSocket-Protocol: mqttv3.1\n\n";

	cr_assert_eq(parse(req, &r, &status, &why), (int)strlen(req), "%s", why ? why : "");
	cr_assert_str_eq(r.protocol, "mqttv3.1");
}

Test(ws, mqtt_is_preferred_and_lists_may_span_lines)
{
	struct ws_request r;
	int status = 0;
	const char *why = NULL;
	const char *req = REQ_HEAD REQ_WS "Sec-WebSocket-Protocol: mqttv3.1\r\nSec-WebSocket-Protocol: chat, mqtt\r\n"
					  "X-Forwarded-For: 10.0.0.1\r\n"
					  "X-Forwarded-For: 192.0.2.1, 198.51.100.7\r\n\r\n";

	cr_assert_gt(parse(req, &r, &status, &why), 0, "%s", why ? why : "");
	cr_assert_str_eq(r.protocol, "mqtt");
	cr_assert_eq(r.forwarded_for.len, strlen("192.0.2.1, 198.51.100.7"), "the last X-Forwarded-For counts");
}

struct bad_case {
	const char *req;
	int err;
	int status;
	const char *why_part;
};

Test(ws, malformed_requests_get_their_status)
{
	static const struct bad_case cases[] = {
		{"POST /mqtt HTTP/1.1\r\n", -EBADMSG, 400, "not an HTTP GET"},
		{"\x10\x0c\x00\x04MQTT", -EBADMSG, 400, "MQTT sent"},
		{"\x16\x03\x01", -EBADMSG, 400, "TLS sent"},
		{"GET /mqtt HTTP/1.0\r\n" "Host: h\r\n" REQ_WS REQ_PROTO "\r\n", -EBADMSG, 400, "request line"},
		{"GET mqtt HTTP/1.1\r\n" "Host: h\r\n" REQ_WS REQ_PROTO "\r\n", -EBADMSG, 400, "request line"},
		{"GET /mqtt  HTTP/1.1\r\n" "Host: h\r\n" REQ_WS REQ_PROTO "\r\n", -EBADMSG, 400, "request line"},
		{"GET /mqtt HTTP/1.1\r\n" REQ_WS REQ_PROTO "\r\n", -EBADMSG, 400, "Host"},
		{REQ_HEAD "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			  "Sec-WebSocket-Version: 13\r\n" REQ_PROTO "\r\n",
		 -EBADMSG, 400, "Upgrade: websocket"},
		{REQ_HEAD "Upgrade: websocket\r\nConnection: keep-alive\r\n"
			  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			  "Sec-WebSocket-Version: 13\r\n" REQ_PROTO "\r\n",
		 -EBADMSG, 400, "Connection: Upgrade"},
		{REQ_HEAD "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: c2hvcnQ=\r\n"
			  "Sec-WebSocket-Version: 13\r\n" REQ_PROTO "\r\n",
		 -EBADMSG, 400, "Sec-WebSocket-Key"},
		{REQ_HEAD "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" REQ_PROTO "\r\n",
		 -EBADMSG, 400, "Sec-WebSocket-Key"},
		{REQ_HEAD "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			  "Sec-WebSocket-Version: 8\r\n" REQ_PROTO "\r\n",
		 -EPROTONOSUPPORT, 426, "13"},
		{REQ_HEAD "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			  REQ_PROTO "\r\n",
		 -EPROTONOSUPPORT, 426, "13"},
		{REQ_HEAD REQ_WS "\r\n", -EBADMSG, 400, "mqtt"},
		{REQ_HEAD REQ_WS "Sec-WebSocket-Protocol: MQTT, mqtt5\r\n\r\n", -EBADMSG, 400, "mqtt"},
		{REQ_HEAD REQ_WS REQ_PROTO "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n\r\n", -EBADMSG, 400,
		 "duplicate"},
		{REQ_HEAD REQ_WS REQ_PROTO "X-Long: a\r\n  folded\r\n\r\n", -EBADMSG, 400, "folded"},
		{REQ_HEAD REQ_WS REQ_PROTO "X-Bad: a\x01" "b\r\n\r\n", -EBADMSG, 400, "control character"},
		{REQ_HEAD REQ_WS REQ_PROTO "no colon here\r\n\r\n", -EBADMSG, 400, "malformed header"},
		{REQ_HEAD REQ_WS REQ_PROTO "Bad Name: x\r\n\r\n", -EBADMSG, 400, "malformed header name"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ws_request r;
		int status = 0;
		const char *why = NULL;
		int n = parse(cases[i].req, &r, &status, &why);

		cr_assert_eq(n, cases[i].err, "case %zu: %d", i, n);
		cr_assert_eq(status, cases[i].status, "case %zu: status %d", i, status);
		cr_assert(why && strstr(why, cases[i].why_part), "case %zu: why '%s'", i, why ? why : "(null)");
	}
}

Test(ws, oversize_requests_get_431)
{
	static char big[WS_HANDSHAKE_BYTES_MAX + 100];
	struct ws_request r;
	int status = 0;
	const char *why = NULL;
	size_t n = strlen(REQ_HEAD);

	memcpy(big, REQ_HEAD, n);
	while (n < sizeof(big) - 20)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "X-Pad: %06zu\r\n", n);
	cr_assert_eq(ws_handshake_parse(big, WS_HANDSHAKE_BYTES_MAX - 1, &r, &status, &why), 0);
	cr_assert_eq(ws_handshake_parse(big, WS_HANDSHAKE_BYTES_MAX, &r, &status, &why), -EMSGSIZE);
	cr_assert_eq(status, 431);
	/* A blank line only past the bound counts as oversize too. */
	memcpy(big + WS_HANDSHAKE_BYTES_MAX + 2, "\r\n\r\n", 4);
	cr_assert_eq(ws_handshake_parse(big, WS_HANDSHAKE_BYTES_MAX + 6, &r, &status, &why), -EMSGSIZE);
}

Test(ws, path_and_origin_rules)
{
	static const char origins[2][WS_ORIGIN_BYTES_MAX] = {"https://app.example", "http://localhost:3000"};
	struct ws_request r;
	int status = 0;
	const char *why = NULL;

	cr_assert_gt(parse(VALID, &r, &status, &why), 0);
	cr_assert_eq(ws_handshake_check(&r, "/mqtt", NULL, 0, &why), 0, "the query is ignored");
	cr_assert_eq(ws_handshake_check(&r, "/", NULL, 0, &why), 404);
	cr_assert_eq(ws_handshake_check(&r, "/mqtt/", NULL, 0, &why), 404);
	cr_assert_eq(ws_handshake_check(&r, "/mqtt", origins, 2, &why), 0);
	r.origin = (struct ws_str){"HTTPS://APP.EXAMPLE", 19};
	cr_assert_eq(ws_handshake_check(&r, "/mqtt", origins, 2, &why), 0, "origins compare without case");
	r.origin = (struct ws_str){"https://evil.example", 20};
	cr_assert_eq(ws_handshake_check(&r, "/mqtt", origins, 2, &why), 403);
	cr_assert(strstr(why, "websockets_origin"));
	cr_assert_eq(ws_handshake_check(&r, "/mqtt", origins, 0, &why), 0, "no list: any origin");
	r.origin = (struct ws_str){0};
	cr_assert_eq(ws_handshake_check(&r, "/mqtt", origins, 2, &why), 0, "no Origin: not a browser");
}

Test(ws, accept_key_of_the_rfc_6455_example)
{
	char out[WS_ACCEPT_BYTES + 1];

	cr_assert_eq(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 0);
	cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

Test(ws, responses)
{
	struct ws_request r;
	int status = 0;
	const char *why = NULL;
	char buf[WS_RESPONSE_BYTES_MAX];
	const char *body;
	int n;

	cr_assert_gt(parse(VALID, &r, &status, &why), 0);
	n = ws_response_accept(&r, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	cr_assert_eq((size_t)n, strlen(buf));
	cr_assert(strncmp(buf, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0);
	cr_assert(strstr(buf, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
	cr_assert(strstr(buf, "\r\nSec-WebSocket-Protocol: mqtt\r\n"));
	cr_assert(strcmp(buf + n - 4, "\r\n\r\n") == 0);
	cr_assert_eq(ws_response_accept(&r, buf, 40), -ENOBUFS);

	n = ws_response_error(426, "Sec-WebSocket-Version must be 13", buf, sizeof(buf));
	cr_assert_gt(n, 0);
	cr_assert(strncmp(buf, "HTTP/1.1 426 Upgrade Required\r\n", 31) == 0);
	cr_assert(strstr(buf, "\r\nSec-WebSocket-Version: 13\r\n"));
	body = strstr(buf, "\r\n\r\n") + 4;
	cr_assert(strstr(buf, "Content-Length: 33\r\n"), "%s", buf);
	cr_assert_eq(strlen(body), 33);
	n = ws_response_error(403, "no", buf, sizeof(buf));
	cr_assert(strncmp(buf, "HTTP/1.1 403 Forbidden\r\n", 24) == 0);
	cr_assert_null(strstr(buf, "Sec-WebSocket-Version"));
}

/* --------------------------------------------------------------- frames */

/* A masked client frame: @b0 (FIN, RSV, opcode) and @len payload bytes. */
static size_t cframe(uint8_t b0, const uint8_t *payload, size_t len, uint8_t *out)
{
	size_t n = 0;

	out[n++] = b0;
	if (len <= 125) {
		out[n++] = (uint8_t)(0x80 | len);
	} else if (len <= 0xFFFF) {
		out[n++] = 0x80 | 126;
		out[n++] = (uint8_t)(len >> 8);
		out[n++] = (uint8_t)len;
	} else {
		out[n++] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			out[n++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	}
	memcpy(out + n, mask_key, 4);
	n += 4;
	for (size_t i = 0; i < len; i++)
		out[n + i] = payload[i] ^ mask_key[i & 3];
	return n + len;
}

/* Feeds @in in pieces of @step bytes (0: whole), collecting data; returns
 * the first event or error, with the data in @out and its length. */
static int feed(struct ws_decoder *d, const uint8_t *in, size_t len, size_t step, uint8_t *out, size_t *ret_out,
		struct ws_decoded *last)
{
	size_t at = 0, o = 0;
	int r = WS_EV_NONE;

	while (at < len) {
		size_t n = step && len - at > step ? step : len - at;
		uint8_t *copy = malloc(n); /* exact size: ASan sees any read past it */
		struct ws_decoded res;

		cr_assert_not_null(copy);
		memcpy(copy, in + at, n);
		r = ws_decode(d, copy, n, out + o, &res);
		free(copy);
		o += res.out;
		at += res.used;
		*last = res;
		if (r != WS_EV_NONE)
			break;
		cr_assert_eq(res.used, n, "all input consumed without an event");
	}
	*ret_out = o;
	return r;
}

Test(ws, binary_frames_of_every_length_form_decode_at_any_split)
{
	static uint8_t payload[70000], wire[70100], out[70000];
	static const size_t sizes[] = {0, 1, 125, 126, 300, 65535, 65536, 70000};

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7 + 3);
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t n = cframe(0x82, payload, sizes[s], wire);
		static const size_t steps[] = {0, 1, 2, 3, 5, 13, 4096};
		for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
			struct ws_decoder d;
			struct ws_decoded res;
			size_t got;

			if (steps[k] == 1 && sizes[s] > 300)
				continue; /* one byte at a time is covered by the smaller sizes */
			ws_decoder_init(&d, sizeof(payload));
			cr_assert_eq(feed(&d, wire, n, steps[k], out, &got, &res), WS_EV_NONE);
			cr_assert_eq(got, sizes[s], "size %zu step %zu", sizes[s], steps[k]);
			cr_assert(memcmp(out, payload, got) == 0, "size %zu step %zu", sizes[s], steps[k]);
			cr_assert_not(d.in_frame);
		}
	}
}

Test(ws, decoding_in_place)
{
	uint8_t wire[400];
	const uint8_t a[] = "first packet bytes", b[] = "second";
	size_t n = cframe(0x82, a, sizeof(a), wire);
	struct ws_decoder d;
	struct ws_decoded res;

	n += cframe(0x82, b, sizeof(b), wire + n);
	ws_decoder_init(&d, 1000);
	cr_assert_eq(ws_decode(&d, wire, n, wire, &res), WS_EV_NONE);
	cr_assert_eq(res.used, n);
	cr_assert_eq(res.out, sizeof(a) + sizeof(b));
	cr_assert(memcmp(wire, a, sizeof(a)) == 0);
	cr_assert(memcmp(wire + sizeof(a), b, sizeof(b)) == 0);
}

Test(ws, fragments_join_and_a_ping_may_come_between)
{
	uint8_t wire[300], out[100];
	const uint8_t p1[] = {1, 2, 3}, p2[] = {4, 5}, p3[] = {6}, ping[] = "hi";
	size_t n = 0, got = 0;
	struct ws_decoder d;
	struct ws_decoded res;

	n += cframe(0x02, p1, sizeof(p1), wire + n); /* binary, not FIN */
	n += cframe(0x00, p2, sizeof(p2), wire + n); /* continuation, not FIN */
	n += cframe(0x89, ping, 2, wire + n); /* ping inside the message */
	n += cframe(0x80, p3, sizeof(p3), wire + n); /* continuation, FIN */
	ws_decoder_init(&d, 100);
	cr_assert_eq(ws_decode(&d, wire, n, out, &res), WS_EV_PING);
	cr_assert_eq(res.out, 5);
	cr_assert_eq(d.ctrl_len, 2);
	cr_assert(memcmp(d.ctrl, "hi", 2) == 0);
	got = res.out;
	cr_assert_eq(ws_decode(&d, wire + res.used, n - res.used, out + got, &res), WS_EV_NONE);
	got += res.out;
	cr_assert_eq(got, 6);
	cr_assert(memcmp(out, (const uint8_t[]){1, 2, 3, 4, 5, 6}, 6) == 0);
	cr_assert_not(d.in_message);
}

Test(ws, pong_is_ignored_and_empty_frames_are_fine)
{
	uint8_t wire[100], out[10];
	size_t n = 0;
	struct ws_decoder d;
	struct ws_decoded res;

	n += cframe(0x8A, (const uint8_t *)"x", 1, wire + n);
	n += cframe(0x82, NULL, 0, wire + n);
	n += cframe(0x89, NULL, 0, wire + n);
	ws_decoder_init(&d, 100);
	cr_assert_eq(ws_decode(&d, wire, n, out, &res), WS_EV_PING);
	cr_assert_eq(res.used, n);
	cr_assert_eq(res.out, 0);
	cr_assert_eq(d.ctrl_len, 0);
}

Test(ws, close_frames)
{
	uint8_t wire[200], out[10];
	struct ws_decoder d;
	struct ws_decoded res;
	size_t n;

	n = cframe(0x88, (const uint8_t[]){0x03, 0xE8, 'b', 'y', 'e'}, 5, wire);
	n += cframe(0x82, (const uint8_t *)"late", 4, wire + n);
	ws_decoder_init(&d, 100);
	cr_assert_eq(ws_decode(&d, wire, n, out, &res), WS_EV_CLOSE);
	cr_assert_eq(d.close_code, 1000);
	cr_assert_eq(ws_decode(&d, wire + res.used, n - res.used, out, &res), WS_EV_NONE);
	cr_assert_eq(res.out, 0, "nothing after a close frame is data");

	n = cframe(0x88, NULL, 0, wire);
	ws_decoder_init(&d, 100);
	cr_assert_eq(ws_decode(&d, wire, n, out, &res), WS_EV_CLOSE);
	cr_assert_eq(d.close_code, WS_CLOSE_NO_STATUS);

	static const uint8_t bad[][2] = {{0x03, 0xE7}, {0x03, 0xED}, {0x03, 0xEE}, {0x03, 0xF7}, {0x13, 0x88}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = cframe(0x88, bad[i], 2, wire);
		ws_decoder_init(&d, 100);
		cr_assert_eq(ws_decode(&d, wire, n, out, &res), -EPROTO, "code %u", bad[i][0] << 8 | bad[i][1]);
		cr_assert_eq(res.close_code, WS_CLOSE_PROTOCOL_ERROR);
	}
	n = cframe(0x88, (const uint8_t[]){0x03}, 1, wire);
	ws_decoder_init(&d, 100);
	cr_assert_eq(ws_decode(&d, wire, n, out, &res), -EPROTO);
	cr_assert_eq(res.close_code, WS_CLOSE_PROTOCOL_ERROR);
}

struct bad_frame {
	uint8_t b0;
	size_t len;
	bool unmasked;
	bool in_message; /* a fragmented message is open first */
	int err;
	uint16_t code;
	const char *why_part;
};

Test(ws, bad_frames_get_their_close_code)
{
	static const struct bad_frame cases[] = {
		{0x82, 3, true, false, -EPROTO, 1002, "unmasked"},
		{0xC2, 3, false, false, -EPROTO, 1002, "reserved"},
		{0xA2, 3, false, false, -EPROTO, 1002, "reserved"},
		{0x92, 3, false, false, -EPROTO, 1002, "reserved"},
		{0x83, 3, false, false, -EPROTO, 1002, "opcode"},
		{0x8B, 3, false, false, -EPROTO, 1002, "opcode"},
		{0x81, 3, false, false, -EPROTO, 1003, "text"},
		{0x80, 3, false, false, -EPROTO, 1002, "continuation"},
		{0x82, 3, false, true, -EPROTO, 1002, "inside"},
		{0x81, 3, false, true, -EPROTO, 1002, "inside"},
		{0x09, 3, false, false, -EPROTO, 1002, "fragmented control"},
		{0x89, 126, false, false, -EPROTO, 1002, "125"},
		{0x82, 1001, false, false, -EMSGSIZE, 1009, "websockets_max_frame_size"},
		{0x82, 70000, false, false, -EMSGSIZE, 1009, "websockets_max_frame_size"},
	};
	static uint8_t wire[71000], payload[70000], out[71000];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ws_decoder d;
		struct ws_decoded res;
		size_t n = 0, bad_at;
		int r;

		if (cases[i].in_message)
			n += cframe(0x02, (const uint8_t *)"ab", 2, wire);
		bad_at = n;
		n += cframe(cases[i].b0, payload, cases[i].len, wire + n);
		if (cases[i].unmasked)
			wire[bad_at + 1] &= 0x7F;
		ws_decoder_init(&d, 1000);
		r = ws_decode(&d, wire, n, out, &res);
		cr_assert_eq(r, cases[i].err, "case %zu: %d", i, r);
		cr_assert_eq(res.close_code, cases[i].code, "case %zu: code %u", i, res.close_code);
		cr_assert(res.why && strstr(res.why, cases[i].why_part), "case %zu: %s", i, res.why ? res.why : "");
		cr_assert_eq(res.out, cases[i].in_message ? 2u : 0u, "case %zu: data before the bad frame", i);
	}
}

Test(ws, a_64_bit_length_with_the_top_bit_is_refused)
{
	uint8_t wire[14] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
	struct ws_decoder d;
	struct ws_decoded res;
	uint8_t out[4];

	ws_decoder_init(&d, UINT64_MAX);
	cr_assert_eq(ws_decode(&d, wire, sizeof(wire), out, &res), -EPROTO);
	cr_assert_eq(res.close_code, 1002);
}

Test(ws, truncated_input_waits_for_more)
{
	uint8_t wire[300], out[300];
	uint8_t payload[200];
	struct ws_decoder d;
	struct ws_decoded res;
	size_t n;

	memset(payload, 0x5A, sizeof(payload));
	n = cframe(0x82, payload, sizeof(payload), wire);
	for (size_t cut = 0; cut < n; cut++) {
		ws_decoder_init(&d, 1000);
		cr_assert_eq(ws_decode(&d, wire, cut, out, &res), WS_EV_NONE);
		cr_assert_eq(res.used, cut);
		cr_assert_eq(res.out, cut > 8 ? cut - 8 : 0, "header of 8 bytes, then payload as it comes");
		cr_assert_eq(d.in_frame, cut >= 8);
	}
}

Test(ws, server_frame_headers)
{
	uint8_t h[WS_FRAME_HEADER_SERVER_MAX];

	cr_assert_eq(ws_frame_header(WS_OP_BINARY, 0, h), 2);
	cr_assert(h[0] == 0x82 && h[1] == 0);
	cr_assert_eq(ws_frame_header(WS_OP_PONG, 125, h), 2);
	cr_assert(h[0] == 0x8A && h[1] == 125);
	cr_assert_eq(ws_frame_header(WS_OP_BINARY, 126, h), 4);
	cr_assert(h[1] == 126 && h[2] == 0 && h[3] == 126);
	cr_assert_eq(ws_frame_header(WS_OP_BINARY, 65535, h), 4);
	cr_assert(h[2] == 0xFF && h[3] == 0xFF);
	cr_assert_eq(ws_frame_header(WS_OP_BINARY, 65536, h), 10);
	cr_assert(h[1] == 127 && h[7] == 1 && h[8] == 0 && h[9] == 0);
}

/* ------------------------------------------------------------ addresses */

Test(ws, trusted_proxy_addresses)
{
	static const char list[3][WS_ADDRESS_BYTES_MAX] = {"127.0.0.1", "::1", "2001:db8::7"};

	cr_assert(ws_address_in("127.0.0.1:40000", list, 3));
	cr_assert(ws_address_in("::ffff:127.0.0.1:40000", list, 3), "IPv4-mapped is IPv4");
	cr_assert(ws_address_in("::1:443", list, 3));
	cr_assert(ws_address_in("[2001:db8:0::7]:80", list, 3));
	cr_assert_not(ws_address_in("127.0.0.2:40000", list, 3));
	cr_assert_not(ws_address_in("127.0.0.1:40000", list, 0));
	cr_assert_not(ws_address_in("?:0", list, 3));
}

Test(ws, forwarded_client_is_the_last_entry)
{
	char out[WS_ADDRESS_BYTES_MAX];
	struct ws_str x;

	x = (struct ws_str){"203.0.113.7", 11};
	cr_assert_eq(ws_forwarded_client(&x, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "203.0.113.7");
	x = (struct ws_str){"198.51.100.1,  2001:db8::1 ", 27};
	cr_assert_eq(ws_forwarded_client(&x, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "2001:db8::1");
	x = (struct ws_str){"unknown", 7};
	cr_assert_eq(ws_forwarded_client(&x, out, sizeof(out)), -EINVAL);
	x = (struct ws_str){"1.2.3.4, ", 9};
	cr_assert_eq(ws_forwarded_client(&x, out, sizeof(out)), -EINVAL);
	x = (struct ws_str){"1.2.3.4:80", 10};
	cr_assert_eq(ws_forwarded_client(&x, out, sizeof(out)), -EINVAL);
}
