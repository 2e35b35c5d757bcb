/*
 * conn_ws.c - WebSocket listeners: the glue between a connection's I/O
 * (conn.c) and the WebSocket codec (ws.h).
 *
 * Receiving.  Whatever the transport delivers (a plain recv before
 * CONNACK into c->ws->rx, a provided buffer after, or TLS plaintext) goes
 * through conn_ws_unwrap() before the MQTT frame cutter.  Until the
 * opening handshake is complete the bytes are gathered in c->ws->http
 * (bounded by WS_HANDSHAKE_BYTES_MAX, and in time by connect_timeout, as
 * for any connection without CONNACK); the request is answered with 101
 * or an HTTP error and, on error, the connection closes once the answer is
 * sent.  After that, frames are unwrapped in place: the MQTT bytes of
 * binary frames move to the front of the same buffer, pings are answered
 * at once, and a close frame or a bad frame stops the unwrapping, so that
 * conn_ws_after() acts on it only after the MQTT bytes before it were
 * handled (a DISCONNECT followed by a close frame is a normal disconnect).
 *
 * Sending.  MQTT output is appended to out[0] inside an open binary frame:
 * conn_ws_frame_begin() reserves WS_FRAME_HEADER_SERVER_MAX bytes of header
 * room, and conn_ws_seal() writes the header once the payload length is
 * known, when conn.c hands out[0] to the socket or to TLS.  A frame that
 * starts the buffer (the usual case: one frame per loop turn) is sent from
 * after its unused header room, so nothing moves; one further in (after a
 * control frame) has its payload moved down to meet its header.  Control
 * frames and HTTP responses are written outside frames (conn_out_raw()).
 *
 * Closing.  Every close of a connection whose handshake was answered
 * queues a close frame after its last packet (conn_close_after_flush()
 * calls conn_ws_close()): 1000 normally, the error's code for a bad frame,
 * the client's own code when echoing its close.  The TCP connection is
 * then shut down once the output has left, as for any connection.
 *
 * The state lives in struct ws_conn (ws.h) and moves with a CONNECT
 * hand-off (conn_ws_detach() / conn_ws_attach()), together with the output
 * the accepting shard had queued but not sent: the 101 answer when the
 * client sent its CONNECT without waiting for it, a pong for a ping read
 * together with the CONNECT.  A close frame read behind the CONNECT is
 * acted on by the home shard, once it handled the CONNECT.
 */
#include "ringmq/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringmq/limits.h"
#include "ringmq/log.h"
#include "ringmq/shard.h"
#include "ringmq/ws.h"

#define SHOWN_MAX 128 /* longest client-chosen text (path, origin) quoted in a log line */

_Static_assert(PROXY_HEADER_BYTES_MAX <= CONN_WS_RX_BYTES, "the bytes after a PROXY header fit the receive buffer");
_Static_assert(2 + WS_CONTROL_BYTES_MAX <= WS_RESPONSE_BYTES_MAX, "a control frame is a small raw write");

uint8_t *conn_ws_rx(struct conn *c)
{
	if (!c->ws->rx)
		c->ws->rx = malloc(CONN_WS_RX_BYTES);
	return c->ws->rx;
}

/* Queue @n raw bytes (outside any frame). */
static void raw_out(struct shard *s, struct conn *c, const void *bytes, uint32_t n)
{
	uint8_t *p = conn_out_raw(s, c, n);

	if (!p)
		return; /* over the output limit: the connection is being closed */
	memcpy(p, bytes, n);
	c->out[0].len += n;
	conn_out_commit(s, c, 0);
}

static void control_out(struct shard *s, struct conn *c, uint8_t opcode, const uint8_t *payload, uint32_t len)
{
	uint8_t frame[WS_FRAME_HEADER_SERVER_MAX + WS_CONTROL_BYTES_MAX];
	size_t h;

	RMQ_ASSERT(len <= WS_CONTROL_BYTES_MAX);
	conn_ws_seal(c);
	h = ws_frame_header(opcode, len, frame);
	memcpy(frame + h, payload, len);
	raw_out(s, c, frame, (uint32_t)(h + len));
}

/* ------------------------------------------------------------------------ */
/* The opening handshake                                                     */
/* ------------------------------------------------------------------------ */

static void refuse(struct shard *s, struct conn *c, int status, const char *why, const struct ws_request *r)
{
	const struct config_listener *l = &s->b->cfg->listeners[c->listener];
	char resp[WS_RESPONSE_BYTES_MAX];
	int n = ws_response_error(status, why, resp, sizeof(resp));

	if (status == 404)
		log_info(NULL, "WebSocket upgrade from %s refused: 404 %s: asked for %.*s, websockets_path is %s",
			 c->peer, why, (int)(r->path.len > SHOWN_MAX ? SHOWN_MAX : r->path.len), r->path.ptr,
			 l->ws_path);
	else if (status == 403)
		log_info(NULL, "WebSocket upgrade from %s refused: 403 %s: Origin %.*s", c->peer, why,
			 (int)(r->origin.len > SHOWN_MAX ? SHOWN_MAX : r->origin.len), r->origin.ptr);
	else
		log_info(NULL, "WebSocket upgrade from %s refused: %d %s", c->peer, status, why);
	if (n > 0)
		raw_out(s, c, resp, (uint32_t)n);
	conn_close(s, c, MQTT_RC_PROTOCOL_ERROR, false, why);
}

/* X-Forwarded-For is believed from websockets_trusted_proxy peers only;
 * then the client it names is the connection's peer in every log line
 * (and for the failed-login back-off). */
static void forwarded(struct conn *c, const struct config_listener *l, const struct ws_request *r)
{
	char addr[WS_ADDRESS_BYTES_MAX];

	if (r->forwarded_for.len == 0 || l->ws_proxy_count == 0)
		return;
	if (!ws_address_in(c->peer, l->ws_proxies, l->ws_proxy_count)) {
		log_debug(NULL, "X-Forwarded-For from %s ignored: not a websockets_trusted_proxy", c->peer);
		return;
	}
	if (ws_forwarded_client(&r->forwarded_for, addr, sizeof(addr)) < 0) {
		log_info(NULL, "X-Forwarded-For from trusted proxy %s ignored: its last entry is not an address",
			 c->peer);
		return;
	}
	log_debug(NULL, "connection from %s: X-Forwarded-For names the client %s", c->peer, addr);
	(void)snprintf(c->peer, sizeof(c->peer), "%s", addr);
}

/* Gather the request from @p[0..@n) and answer it.  Returns how many bytes
 * that followed the request are now at @p[0..): frames a client sent
 * without waiting for the answer (RFC 6455 4.1 asks it to wait). */
static uint32_t handshake(struct shard *s, struct conn *c, uint8_t *p, uint32_t n)
{
	const struct config_listener *l = &s->b->cfg->listeners[c->listener];
	struct ws_conn *w = c->ws;
	struct ws_request r;
	char resp[WS_RESPONSE_BYTES_MAX];
	const char *why = "";
	uint32_t take, rest_http, rest_p;
	int end, status = 0, len;

	if (!w->http && !(w->http = malloc(WS_HANDSHAKE_BYTES_MAX))) {
		conn_close(s, c, MQTT_RC_SERVER_BUSY, false, "out of memory");
		return 0;
	}
	take = n < WS_HANDSHAKE_BYTES_MAX - w->http_len ? n : WS_HANDSHAKE_BYTES_MAX - w->http_len;
	memcpy(w->http + w->http_len, p, take);
	w->http_len += take;
	end = ws_handshake_parse(w->http, w->http_len, &r, &status, &why);
	if (end == 0)
		return 0;
	if (end > 0)
		status = ws_handshake_check(&r, l->ws_path, l->ws_origins, l->ws_origin_count, &why);
	if (end < 0 || status != 0) {
		refuse(s, c, status, why, &r);
		return 0;
	}
	forwarded(c, l, &r);
	len = ws_response_accept(&r, resp, sizeof(resp));
	RMQ_ASSERT(len > 0); /* a checked key and a fixed protocol name always fit */
	raw_out(s, c, resp, (uint32_t)len);
	log_debug(NULL, "WebSocket connection from %s: subprotocol %s", c->peer, r.protocol);
	w->open = true;
	/* The request ended inside this read, so what followed it is shorter
	 * than what this read brought: it fits at the front of @p. */
	rest_http = w->http_len - (uint32_t)end;
	rest_p = n - take;
	RMQ_ASSERT(rest_http < take);
	memmove(p + rest_http, p + take, rest_p);
	memcpy(p, w->http + end, rest_http);
	free(w->http);
	w->http = NULL;
	w->http_len = 0;
	return rest_http + rest_p;
}

/* ------------------------------------------------------------------------ */
/* Frames in                                                                 */
/* ------------------------------------------------------------------------ */

uint32_t conn_ws_unwrap(struct shard *s, struct conn *c, uint8_t *p, uint32_t n)
{
	struct ws_conn *w = c->ws;
	struct ws_decoded res;
	uint32_t in = 0, out = 0;
	int ev;

	RMQ_ASSERT(c->owner_shard == s->id);
	if (n == 0)
		return 0;
	if (!w->open) {
		n = handshake(s, c, p, n);
		if (!w->open)
			return 0;
	}
	while (in < n && !w->stop && c->state < CONN_FLUSHING) {
		ev = ws_decode(&w->dec, p + in, n - in, p + out, &res);
		in += (uint32_t)res.used;
		out += (uint32_t)res.out;
		if (ev == WS_EV_PING) {
			control_out(s, c, WS_OP_PONG, w->dec.ctrl, w->dec.ctrl_len);
		} else if (ev == WS_EV_CLOSE && w->dec.ctrl_len > 2 &&
			   utf8_wellformed(w->dec.ctrl + 2, w->dec.ctrl_len - 2u) < 0) {
			/* RFC 6455 5.5.1 and 8.1: the reason is UTF-8; invalid data fails with 1007 */
			w->stop = true;
			w->stop_code = WS_CLOSE_INVALID_DATA;
			w->stop_why = "close reason is not valid UTF-8";
		} else if (ev != WS_EV_NONE) {
			w->stop = true;
			w->stop_code = ev < 0 ? res.close_code : w->dec.close_code;
			w->stop_why = ev < 0 ? res.why : NULL;
		}
	}
	return out;
}

void conn_ws_after(struct shard *s, struct conn *c)
{
	struct ws_conn *w = c->ws;
	char why[160];

	if (!w->stop || c->state >= CONN_FLUSHING)
		return;
	if (!w->stop_why) {
		/* The client's close: echo its code (RFC 6455 5.5.1), then close
		 * as if the socket had closed: without DISCONNECT, the will goes. */
		(void)snprintf(why, sizeof(why), "WebSocket closed by client (code %u)", w->stop_code);
		conn_ws_close(s, c, w->stop_code);
		conn_close(s, c, MQTT_RC_UNSPECIFIED, false, why);
		return;
	}
	(void)snprintf(why, sizeof(why), "WebSocket protocol error: %s (close %u)", w->stop_why, w->stop_code);
	if (c->state < CONN_ACTIVE)
		log_info(NULL, "connection from %s closed: %s", c->peer, why);
	conn_ws_close(s, c, w->stop_code);
	conn_close(s, c, w->stop_code == WS_CLOSE_TOO_BIG ? MQTT_RC_PACKET_TOO_LARGE : MQTT_RC_PROTOCOL_ERROR, false,
		   why);
}

/* ------------------------------------------------------------------------ */
/* Frames out                                                                */
/* ------------------------------------------------------------------------ */

bool conn_ws_frame_begin(struct shard *s, struct conn *c)
{
	struct ws_conn *w = c->ws;

	if (!w->open || w->close_sent)
		return false;
	if (w->frame_open)
		return true;
	if (!conn_out_raw(s, c, WS_FRAME_HEADER_SERVER_MAX))
		return false;
	w->frame_at = c->out[0].len;
	c->out[0].len += WS_FRAME_HEADER_SERVER_MAX;
	w->frame_open = true;
	return true;
}

void conn_ws_seal(struct conn *c)
{
	struct ws_conn *w = c->ws;
	struct conn_buf *o = &c->out[0];
	uint8_t hdr[WS_FRAME_HEADER_SERVER_MAX];
	uint32_t payload, h, gap;

	if (!w->frame_open)
		return;
	w->frame_open = false;
	RMQ_ASSERT(o->len >= w->frame_at + WS_FRAME_HEADER_SERVER_MAX);
	payload = o->len - w->frame_at - WS_FRAME_HEADER_SERVER_MAX;
	if (payload == 0) {
		o->len = w->frame_at; /* reserved, never written: no frame */
		return;
	}
	h = (uint32_t)ws_frame_header(WS_OP_BINARY, payload, hdr);
	gap = WS_FRAME_HEADER_SERVER_MAX - h;
	if (w->frame_at == o->off) {
		memcpy(o->data + o->off + gap, hdr, h); /* the first bytes to send: start after the gap */
		o->off += gap;
		return;
	}
	memcpy(o->data + w->frame_at, hdr, h);
	memmove(o->data + w->frame_at + h, o->data + w->frame_at + WS_FRAME_HEADER_SERVER_MAX, payload);
	o->len -= gap;
}

void conn_ws_close(struct shard *s, struct conn *c, uint16_t code)
{
	struct ws_conn *w = c->ws;
	const uint8_t b[2] = {(uint8_t)(code >> 8), (uint8_t)code};

	if (!w->open || w->close_sent)
		return;
	w->close_sent = true;
	c->final_packet = true; /* the last frame may pass max_output_bytes */
	control_out(s, c, WS_OP_CLOSE, b, code == WS_CLOSE_NO_STATUS ? 0 : 2);
}

/* ------------------------------------------------------------------------ */
/* Hand-off                                                                  */
/* ------------------------------------------------------------------------ */

struct ws_conn *conn_ws_detach(struct conn *c)
{
	struct ws_conn *w = c->ws;
	struct conn_buf *o = &c->out[0];

	if (!w)
		return NULL;
	conn_ws_seal(c);
	c->ws = NULL;
	if (o->len > o->off && (w->carry = malloc(o->len - o->off))) {
		memcpy(w->carry, o->data + o->off, o->len - o->off);
		w->carry_len = o->len - o->off;
	} /* out of memory: the answer is lost and the client times out */
	return w;
}

void conn_ws_attach(struct shard *s, struct conn *c, struct ws_conn *w)
{
	RMQ_ASSERT(c->owner_shard == s->id);
	c->ws = w;
	if (!w || !w->carry)
		return;
	raw_out(s, c, w->carry, w->carry_len);
	free(w->carry);
	w->carry = NULL;
	w->carry_len = 0;
}
