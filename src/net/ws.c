/*
 * ws.c - WebSocket (RFC 6455) handshake and framing over caller-owned
 * bytes (see ws.h).
 *
 * The handshake parser reads the request once it holds its blank line,
 * line by line, with the same small grammar as the broker's HTTP listener
 * plus header parsing: request line "GET SP target SP HTTP/1.x" (x >= 1),
 * then "name: value" lines.  Folded lines, control characters and
 * duplicates of single-valued headers are refused rather than guessed at.
 * Token lists (Connection, Upgrade, Sec-WebSocket-Protocol) may be split
 * over several header lines and are matched token by token.
 *
 * The frame decoder is a byte-exact state machine: header bytes are
 * gathered in the decoder (at most 14), payload bytes are unmasked as they
 * pass, so a frame of any size costs no buffer and the input may be split
 * anywhere.  Control frame payloads (at most 125 bytes) are kept in the
 * decoder for the caller to answer.  The data written never overtakes the
 * data read, which is what lets the caller unwrap in place.
 */
#include "ringmq/ws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/hash.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" /* RFC 6455 1.3 */
#define WS_KEY_BYTES 24u /* base64 of the 16-byte nonce */
#define WS_KEY_BYTES_MAX 64u /* what ws_accept_key() takes at most */
#define SHA1_BYTES 20u

_Static_assert(WS_RESPONSE_BYTES_MAX >= 256u, "room for a response with a short reason");

/* ------------------------------------------------------------------------ */
/* Handshake                                                                 */
/* ------------------------------------------------------------------------ */

static int lower(int ch)
{
	return ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch;
}

/* @a[0..@len) equals the NUL-terminated @b, ignoring ASCII case. */
static bool ieq(const char *a, size_t len, const char *b)
{
	if (len != strlen(b))
		return false;
	for (size_t i = 0; i < len; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return false;
	return true;
}

static bool is_ows(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Whether the comma-separated list @v[0..@len) holds @token (ignoring case
 * unless @exact: subprotocol names are compared exactly, because the
 * client checks that the one we answer is one it offered). */
static bool list_has(const char *v, size_t len, const char *token, bool exact)
{
	size_t i = 0, start, end;

	while (i < len) {
		while (i < len && (is_ows(v[i]) || v[i] == ','))
			i++;
		start = i;
		while (i < len && v[i] != ',')
			i++;
		end = i;
		while (end > start && is_ows(v[end - 1]))
			end--;
		if (end == start)
			continue;
		if (exact ? end - start == strlen(token) && memcmp(v + start, token, end - start) == 0
			  : ieq(v + start, end - start, token))
			return true;
	}
	return false;
}

/* The index just past the blank line ending the header block, or 0. */
static size_t head_end(const char *b, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (b[i] != '\n')
			continue;
		if (b[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && b[i + 1] == '\r' && b[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static bool is_base64(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '+' ||
	       ch == '/';
}

/* A Sec-WebSocket-Key is base64 of 16 bytes: 22 characters and "==". */
static bool key_valid(const struct ws_str *k)
{
	if (k->len != WS_KEY_BYTES || k->ptr[22] != '=' || k->ptr[23] != '=')
		return false;
	for (uint32_t i = 0; i < 22; i++)
		if (!is_base64(k->ptr[i]))
			return false;
	return true;
}

/* Headers seen while parsing. */
struct heads {
	bool upgrade, connection, version_seen, version_13, proto_mqtt, proto_v31;
	struct ws_str version;
};

static int reject(int status, const char *why, int err, int *ret_status, const char **ret_why)
{
	*ret_status = status;
	*ret_why = why;
	return err;
}

/* Fails early on bytes that cannot start "GET ", naming the usual mistakes. */
static const char *not_get(const char *buf, size_t len)
{
	static const char get[] = "GET ";
	size_t n = len < 4 ? len : 4;

	if (memcmp(buf, get, n) == 0)
		return NULL;
	if ((uint8_t)buf[0] == 0x10)
		return "MQTT sent to a WebSocket listener (it expects an HTTP upgrade request)";
	if ((uint8_t)buf[0] == 0x16)
		return "TLS sent to a plain WebSocket listener";
	return "not an HTTP GET request";
}

/* "GET SP target SP HTTP/1.x" in @line[0..@len): the path (query cut). */
static bool request_line(const char *line, size_t len, struct ws_str *ret_path)
{
	const char *target = line + 4, *sp, *q;
	size_t rest;

	if (len < 4 + 1 + 9)
		return false;
	sp = memchr(target, ' ', len - 4);
	if (!sp || sp == target || target[0] != '/')
		return false;
	rest = (size_t)(line + len - (sp + 1));
	if (rest != 8 || memcmp(sp + 1, "HTTP/1.", 7) != 0 || sp[8] < '1' || sp[8] > '9')
		return false;
	for (const char *p = target; p < sp; p++)
		if ((uint8_t)*p <= 0x20 || (uint8_t)*p == 0x7F)
			return false;
	q = memchr(target, '?', (size_t)(sp - target));
	ret_path->ptr = target;
	ret_path->len = (uint32_t)((q ? q : sp) - target);
	return true;
}

/* One "name: value" line.  Returns NULL or why it is refused. */
static const char *header_line(const char *line, size_t len, struct ws_request *r, struct heads *h)
{
	const char *colon = memchr(line, ':', len), *v;
	size_t nlen, vlen;
	struct ws_str *single = NULL;

	if (is_ows(line[0]))
		return "folded header line";
	if (!colon || colon == line)
		return "malformed header line";
	nlen = (size_t)(colon - line);
	for (size_t i = 0; i < nlen; i++)
		if ((uint8_t)line[i] <= 0x20 || (uint8_t)line[i] >= 0x7F)
			return "malformed header name";
	v = colon + 1;
	vlen = len - nlen - 1;
	for (size_t i = 0; i < vlen; i++)
		if (((uint8_t)v[i] < 0x20 && v[i] != '\t') || (uint8_t)v[i] == 0x7F)
			return "control character in a header";
	while (vlen && is_ows(*v)) {
		v++;
		vlen--;
	}
	while (vlen && is_ows(v[vlen - 1]))
		vlen--;
	if (ieq(line, nlen, "host"))
		single = &r->host;
	else if (ieq(line, nlen, "sec-websocket-key"))
		single = &r->key;
	else if (ieq(line, nlen, "sec-websocket-version"))
		single = &h->version;
	else if (ieq(line, nlen, "origin"))
		single = &r->origin;
	else if (ieq(line, nlen, "x-forwarded-for"))
		r->forwarded_for = (struct ws_str){.ptr = v, .len = (uint32_t)vlen}; /* the last one counts */
	else if (ieq(line, nlen, "upgrade"))
		h->upgrade |= list_has(v, vlen, "websocket", false);
	else if (ieq(line, nlen, "connection"))
		h->connection |= list_has(v, vlen, "upgrade", false);
	else if (ieq(line, nlen, "sec-websocket-protocol")) {
		h->proto_mqtt |= list_has(v, vlen, "mqtt", true);
		h->proto_v31 |= list_has(v, vlen, "mqttv3.1", true);
	}
	if (!single)
		return NULL;
	if (single->ptr)
		return "duplicate Host, Origin or Sec-WebSocket-* header";
	*single = (struct ws_str){.ptr = v, .len = (uint32_t)vlen};
	if (single == &h->version)
		h->version_seen = true;
	return NULL;
}

int ws_handshake_parse(const char *buf, size_t len, struct ws_request *ret, int *ret_status, const char **ret_why)
{
	struct ws_request r = {0};
	struct heads h = {0};
	const char *why;
	size_t end, at = 0;
	bool first = true;

	if (len == 0)
		return 0;
	why = not_get(buf, len);
	if (why)
		return reject(400, why, -EBADMSG, ret_status, ret_why);
	end = head_end(buf, len);
	if (end == 0 || end > WS_HANDSHAKE_BYTES_MAX) {
		if (len < WS_HANDSHAKE_BYTES_MAX)
			return 0;
		return reject(431, "request larger than WS_HANDSHAKE_BYTES_MAX", -EMSGSIZE, ret_status, ret_why);
	}
	while (at < end) {
		const char *line = buf + at, *nl = memchr(line, '\n', end - at);
		size_t llen = (size_t)(nl - line);

		at += llen + 1;
		if (llen && line[llen - 1] == '\r')
			llen--;
		if (llen == 0)
			break; /* the blank line */
		if (first) {
			first = false;
			if (!request_line(line, llen, &r.path))
				return reject(400, "malformed request line (expected GET /path HTTP/1.1)", -EBADMSG,
					      ret_status, ret_why);
			continue;
		}
		why = header_line(line, llen, &r, &h);
		if (why)
			return reject(400, why, -EBADMSG, ret_status, ret_why);
	}
	if (!r.host.ptr || r.host.len == 0)
		return reject(400, "no Host header", -EBADMSG, ret_status, ret_why);
	if (!h.upgrade)
		return reject(400, "no 'Upgrade: websocket' header", -EBADMSG, ret_status, ret_why);
	if (!h.connection)
		return reject(400, "no 'Connection: Upgrade' header", -EBADMSG, ret_status, ret_why);
	if (!r.key.ptr || !key_valid(&r.key))
		return reject(400, "missing or malformed Sec-WebSocket-Key", -EBADMSG, ret_status, ret_why);
	if (!h.version_seen || h.version.len != 2 || memcmp(h.version.ptr, "13", 2) != 0)
		return reject(426, "Sec-WebSocket-Version must be 13", -EPROTONOSUPPORT, ret_status, ret_why);
	if (!h.proto_mqtt && !h.proto_v31)
		return reject(400, "Sec-WebSocket-Protocol does not offer mqtt", -EBADMSG, ret_status, ret_why);
	r.protocol = h.proto_mqtt ? "mqtt" : "mqttv3.1";
	*ret = r;
	return (int)end;
}

int ws_handshake_check(const struct ws_request *r, const char *path, const char (*origins)[WS_ORIGIN_BYTES_MAX],
		       unsigned origin_count, const char **ret_why)
{
	if (r->path.len != strlen(path) || memcmp(r->path.ptr, path, r->path.len) != 0) {
		*ret_why = "path is not the listener's websockets_path";
		return 404;
	}
	if (origin_count == 0 || !r->origin.ptr)
		return 0;
	for (unsigned i = 0; i < origin_count; i++)
		if (ieq(r->origin.ptr, r->origin.len, origins[i]))
			return 0;
	*ret_why = "Origin is not in the listener's websockets_origin list";
	return 403;
}

int ws_accept_key(const char *key, size_t len, char out[WS_ACCEPT_BYTES + 1])
{
	uint8_t in[WS_KEY_BYTES_MAX + sizeof(WS_GUID)];
	uint8_t digest[SHA1_BYTES];
	word32 n = WS_ACCEPT_BYTES + 1;

	if (len > WS_KEY_BYTES_MAX)
		return -EINVAL;
	memcpy(in, key, len);
	memcpy(in + len, WS_GUID, sizeof(WS_GUID) - 1);
	if (wc_ShaHash(in, (word32)(len + sizeof(WS_GUID) - 1), digest) != 0)
		return -EINVAL;
	if (Base64_Encode_NoNl(digest, SHA1_BYTES, (byte *)out, &n) != 0 || n != WS_ACCEPT_BYTES)
		return -EINVAL;
	out[WS_ACCEPT_BYTES] = '\0';
	return 0;
}

/* snprintf() into @buf: the length, or -ENOBUFS when it did not fit. */
static int fitted(int n, size_t cap)
{
	return n < 0 || (size_t)n >= cap ? -ENOBUFS : n;
}

int ws_response_accept(const struct ws_request *r, char *buf, size_t cap)
{
	char accept[WS_ACCEPT_BYTES + 1];

	if (ws_accept_key(r->key.ptr, r->key.len, accept) < 0)
		return -EINVAL;
	return fitted(snprintf(buf, cap,
			       "HTTP/1.1 101 Switching Protocols\r\n"
			       "Upgrade: websocket\r\n"
			       "Connection: Upgrade\r\n"
			       "Sec-WebSocket-Accept: %s\r\n"
			       "Sec-WebSocket-Protocol: %s\r\n"
			       "\r\n",
			       accept, r->protocol),
		      cap);
}

static const char *status_text(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 426: return "Upgrade Required";
	case 431: return "Request Header Fields Too Large";
	default: return "Service Unavailable";
	}
}

int ws_response_error(int status, const char *why, char *buf, size_t cap)
{
	return fitted(snprintf(buf, cap,
			       "HTTP/1.1 %d %s\r\n"
			       "Connection: close\r\n"
			       "Content-Type: text/plain; charset=utf-8\r\n"
			       "Content-Length: %zu\r\n"
			       "%s"
			       "\r\n"
			       "%s\n",
			       status, status_text(status), strlen(why) + 1,
			       status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "", why),
		      cap);
}

/* ------------------------------------------------------------------------ */
/* Frames                                                                    */
/* ------------------------------------------------------------------------ */

size_t ws_frame_header(uint8_t opcode, uint64_t len, uint8_t out[WS_FRAME_HEADER_SERVER_MAX])
{
	out[0] = (uint8_t)(0x80u | opcode);
	if (len <= WS_CONTROL_BYTES_MAX) {
		out[1] = (uint8_t)len;
		return 2;
	}
	if (len <= UINT16_MAX) {
		out[1] = 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		return 4;
	}
	out[1] = 127;
	for (int i = 0; i < 8; i++)
		out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
	return 10;
}

void ws_decoder_init(struct ws_decoder *d, uint64_t frame_max)
{
	memset(d, 0, sizeof(*d));
	d->frame_max = frame_max;
}

static int fail(struct ws_decoded *res, uint16_t code, const char *why, int err)
{
	res->close_code = code;
	res->why = why;
	return err;
}

/* Header bytes the two first ones announce (length field and mask). */
static uint8_t header_need(const struct ws_decoder *d)
{
	uint8_t l7 = d->hdr[1] & 0x7F;

	return (uint8_t)(2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + 4);
}

/* Everything the first two header bytes can tell (RFC 6455 5.2, 5.4, 5.5). */
static int header_first(const struct ws_decoder *d, struct ws_decoded *res)
{
	uint8_t b0 = d->hdr[0], b1 = d->hdr[1], op = b0 & 0x0F;
	bool fin = b0 & 0x80;

	if (b0 & 0x70)
		return fail(res, WS_CLOSE_PROTOCOL_ERROR, "reserved bits set (no extension was negotiated)", -EPROTO);
	if ((op > WS_OP_BINARY && op < WS_OP_CLOSE) || op > WS_OP_PONG)
		return fail(res, WS_CLOSE_PROTOCOL_ERROR, "unknown opcode", -EPROTO);
	if (!(b1 & 0x80))
		return fail(res, WS_CLOSE_PROTOCOL_ERROR, "unmasked client frame", -EPROTO);
	if (op & 0x8) {
		if (!fin)
			return fail(res, WS_CLOSE_PROTOCOL_ERROR, "fragmented control frame", -EPROTO);
		if ((b1 & 0x7F) > WS_CONTROL_BYTES_MAX)
			return fail(res, WS_CLOSE_PROTOCOL_ERROR, "control frame longer than 125 bytes", -EPROTO);
		return 0;
	}
	if (d->in_message && op != WS_OP_CONT)
		return fail(res, WS_CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one", -EPROTO);
	if (op == WS_OP_TEXT) /* [MQTT-6.0.0-1] */
		return fail(res, WS_CLOSE_UNSUPPORTED_DATA, "text frame (MQTT travels in binary frames)", -EPROTO);
	if (op == WS_OP_CONT && !d->in_message)
		return fail(res, WS_CLOSE_PROTOCOL_ERROR, "continuation frame outside a fragmented message", -EPROTO);
	return 0;
}

/* The whole header is there: its length, against the limit. */
static int header_done(struct ws_decoder *d, struct ws_decoded *res)
{
	uint8_t l7 = d->hdr[1] & 0x7F;
	uint64_t len = l7;

	if (l7 == 126) {
		len = (uint64_t)d->hdr[2] << 8 | d->hdr[3];
	} else if (l7 == 127) {
		if (d->hdr[2] & 0x80)
			return fail(res, WS_CLOSE_PROTOCOL_ERROR, "64-bit length with its top bit set", -EPROTO);
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | d->hdr[2 + i];
	}
	if (len > d->frame_max)
		return fail(res, WS_CLOSE_TOO_BIG, "frame larger than websockets_max_frame_size", -EMSGSIZE);
	d->opcode = d->hdr[0] & 0x0F;
	d->left = len;
	d->mask_at = 0;
	d->in_frame = true;
	if (d->opcode & 0x8)
		d->ctrl_len = 0;
	else
		d->in_message = !(d->hdr[0] & 0x80);
	return 0;
}

static bool close_code_valid(unsigned code)
{
	return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/* A frame's last payload byte went by. */
static int frame_end(struct ws_decoder *d, struct ws_decoded *res)
{
	unsigned code;

	d->in_frame = false;
	d->hdr_len = 0;
	if (d->opcode == WS_OP_PING)
		return WS_EV_PING;
	if (d->opcode != WS_OP_CLOSE)
		return WS_EV_NONE; /* data (already written) or a pong (ignored) */
	if (d->ctrl_len == 1)
		return fail(res, WS_CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte payload", -EPROTO);
	code = d->ctrl_len ? (unsigned)d->ctrl[0] << 8 | d->ctrl[1] : WS_CLOSE_NO_STATUS;
	if (d->ctrl_len && !close_code_valid(code))
		return fail(res, WS_CLOSE_PROTOCOL_ERROR, "invalid close code", -EPROTO);
	d->close_code = (uint16_t)code;
	d->closed = true;
	return WS_EV_CLOSE;
}

/* Unmask @n payload bytes from @in into @out. */
static void unmask(struct ws_decoder *d, const uint8_t *in, uint8_t *out, size_t n)
{
	const uint8_t *mask = d->hdr + d->hdr_len - 4;
	unsigned at = d->mask_at;

	for (size_t k = 0; k < n; k++)
		out[k] = in[k] ^ mask[(at + k) & 3];
	d->mask_at = (uint8_t)((at + n) & 3);
}

int ws_decode(struct ws_decoder *d, const uint8_t *in, size_t len, uint8_t *out, struct ws_decoded *res)
{
	size_t i = 0, o = 0, n;
	int r = WS_EV_NONE;

	*res = (struct ws_decoded){0};
	if (d->closed) {
		res->used = len;
		return WS_EV_NONE;
	}
	while (i < len && r == WS_EV_NONE) {
		if (!d->in_frame) {
			d->hdr[d->hdr_len++] = in[i++];
			if (d->hdr_len < 2)
				continue;
			if (d->hdr_len == 2 && (r = header_first(d, res)) < 0)
				break;
			if (d->hdr_len < header_need(d))
				continue;
			r = header_done(d, res);
			if (r == 0 && d->left == 0)
				r = frame_end(d, res);
			continue;
		}
		n = len - i < d->left ? len - i : (size_t)d->left;
		if (d->opcode & 0x8) {
			unmask(d, in + i, d->ctrl + d->ctrl_len, n);
			d->ctrl_len = (uint8_t)(d->ctrl_len + n);
		} else {
			unmask(d, in + i, out + o, n);
			o += n;
		}
		d->left -= n;
		i += n;
		if (d->left == 0)
			r = frame_end(d, res);
	}
	res->used = i;
	res->out = o;
	return r;
}

/* ------------------------------------------------------------------------ */
/* Addresses                                                                 */
/* ------------------------------------------------------------------------ */

/* @s[0..@len) as an IPv6 address (IPv4 mapped), into @ret. */
static bool address_parse(const char *s, size_t len, struct in6_addr *ret)
{
	char buf[WS_ADDRESS_BYTES_MAX];
	struct in_addr a4;

	if (len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, &a4) == 1) {
		memset(ret, 0, sizeof(*ret));
		ret->s6_addr[10] = 0xFF;
		ret->s6_addr[11] = 0xFF;
		memcpy(&ret->s6_addr[12], &a4, 4);
		return true;
	}
	return inet_pton(AF_INET6, buf, ret) == 1;
}

int ws_forwarded_client(const struct ws_str *xff, char *out, size_t cap)
{
	const char *s = xff->ptr, *e = xff->ptr + xff->len, *comma;
	struct in6_addr a;

	comma = s;
	for (const char *p = s; p < e; p++)
		if (*p == ',')
			comma = p + 1;
	s = comma;
	while (s < e && is_ows(*s))
		s++;
	while (e > s && is_ows(e[-1]))
		e--;
	if (s == e || (size_t)(e - s) >= cap || !address_parse(s, (size_t)(e - s), &a))
		return -EINVAL;
	memcpy(out, s, (size_t)(e - s));
	out[e - s] = '\0';
	return 0;
}

bool ws_address_in(const char *peer, const char (*list)[WS_ADDRESS_BYTES_MAX], unsigned count)
{
	const char *s = peer, *e = strrchr(peer, ':');
	struct in6_addr a, b;

	if (!e)
		e = peer + strlen(peer);
	if (*s == '[' && e > s && e[-1] == ']') {
		s++;
		e--;
	}
	if (!address_parse(s, (size_t)(e - s), &a))
		return false;
	for (unsigned i = 0; i < count; i++)
		if (address_parse(list[i], strlen(list[i]), &b) && memcmp(&a, &b, sizeof(a)) == 0)
			return true;
	return false;
}

/* ------------------------------------------------------------------------ */
/* Connection state                                                          */
/* ------------------------------------------------------------------------ */

struct ws_conn *ws_conn_new(uint64_t frame_max)
{
	struct ws_conn *w = calloc(1, sizeof(*w));

	if (w)
		ws_decoder_init(&w->dec, frame_max);
	return w;
}

void ws_conn_trim(struct ws_conn *w)
{
	free(w->http);
	w->http = NULL;
	w->http_len = 0;
	free(w->rx);
	w->rx = NULL;
}

struct ws_conn *ws_conn_free(struct ws_conn *w)
{
	if (!w)
		return NULL;
	ws_conn_trim(w);
	free(w->carry);
	free(w);
	return NULL;
}
