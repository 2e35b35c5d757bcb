/*
 * ws.h - WebSocket (RFC 6455) for MQTT listeners: the opening handshake,
 * client frames in, server frames out.
 *
 * Pure functions over caller-owned bytes: no I/O, no io_uring, no logging.
 * The connection glue (src/core/conn_ws.c) feeds them what a socket (or
 * TLS) delivered and sends what they produce.  MQTT over WebSocket carries
 * the MQTT byte stream in binary frames, and packets need not line up with
 * frames [MQTT-6.0.0-2]: ws_decode() therefore turns frames back into a
 * byte stream, unmasking in place, and the MQTT frame cutter never sees a
 * WebSocket frame.
 *
 * Owner:    struct ws_conn - the connection that holds it, on its shard;
 *           it moves with a CONNECT hand-off to the home shard (one owner
 *           at a time), like the TLS session.
 *           struct ws_request - the caller; its views point into the
 *           request bytes the caller owns.
 * Lifetime: ws_conn_new() on accept for a WebSocket listener ..
 *           ws_conn_free() with the connection.  The handshake and
 *           receive buffers inside it are freed as soon as they are not
 *           needed (ws_conn_trim()).
 * Shared:   never.
 */
#ifndef RINGMQ_WS_H
#define RINGMQ_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringmq/limits.h"

/* Opcodes (RFC 6455 5.2). */
#define WS_OP_CONT 0x0
#define WS_OP_TEXT 0x1
#define WS_OP_BINARY 0x2
#define WS_OP_CLOSE 0x8
#define WS_OP_PING 0x9
#define WS_OP_PONG 0xA

/* Close codes (RFC 6455 7.4.1). */
#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_PROTOCOL_ERROR 1002
#define WS_CLOSE_UNSUPPORTED_DATA 1003
#define WS_CLOSE_NO_STATUS 1005 /* never sent: a close frame without a code */
#define WS_CLOSE_INVALID_DATA 1007 /* text that is not UTF-8 (a close reason) */
#define WS_CLOSE_TOO_BIG 1009

/* A server frame header: FIN + opcode, then a 7-, 16- or 64-bit length. */
#define WS_FRAME_HEADER_SERVER_MAX 10u
/* A client frame header: the same plus the 4-byte masking key. */
#define WS_FRAME_HEADER_CLIENT_MAX 14u
/* Control frames carry at most this much payload (RFC 6455 5.5). */
#define WS_CONTROL_BYTES_MAX 125u
/* Sec-WebSocket-Accept: base64 of a SHA-1 digest. */
#define WS_ACCEPT_BYTES 28u
/* The longest response ws_response_accept()/ws_response_error() write. */
#define WS_RESPONSE_BYTES_MAX 512u

/* A view into the request bytes (not NUL-terminated). */
struct ws_str {
	const char *ptr;
	uint32_t len;
};

/* The parts of an opening handshake the broker uses. */
struct ws_request {
	struct ws_str path; /* request target without its query */
	struct ws_str host;
	struct ws_str key; /* Sec-WebSocket-Key, checked to be base64 of 16 bytes */
	struct ws_str origin; /* len 0: no Origin header */
	struct ws_str forwarded_for; /* X-Forwarded-For (the last one), len 0: none */
	const char *protocol; /* the subprotocol chosen: "mqtt" or "mqttv3.1" (static) */
};

/**
 * ws_handshake_parse() - parse a client's opening handshake from
 * @buf[0..@len).  Returns the request's length (> 0, the blank line
 * included) when it is complete and acceptable, with its parts in *@ret;
 * 0 when more bytes are needed; or a negative errno with the HTTP status
 * to answer in *@ret_status and why in words in *@ret_why (static text):
 *   -EBADMSG (400): not an HTTP/1.1 GET, a malformed line, a missing or
 *     bad Host, Upgrade: websocket, Connection: Upgrade or
 *     Sec-WebSocket-Key, or no `mqtt`/`mqttv3.1` in Sec-WebSocket-Protocol
 *   -EPROTONOSUPPORT (426): Sec-WebSocket-Version is not 13
 *   -EMSGSIZE (431): no blank line within WS_HANDSHAKE_BYTES_MAX bytes
 * Bytes that cannot start "GET " fail at once, so MQTT or TLS sent to a
 * plain WebSocket port is named at the first byte.  @buf is borrowed; the
 * views in *@ret point into it.
 */
int ws_handshake_parse(const char *buf, size_t len, struct ws_request *ret, int *ret_status, const char **ret_why);

/**
 * ws_handshake_check() - a listener's own rules for a parsed request: the
 * path must equal @path (the query is ignored), else 404; and when
 * @origin_count > 0, an Origin header, if the request has one, must equal
 * (ignoring case) one of @origins, else 403.  A request without Origin
 * (a client that is not a browser) passes: only browsers state an origin,
 * and any other client could state whatever it liked.  Returns 0 or the
 * HTTP status, with why in *@ret_why.
 */
int ws_handshake_check(const struct ws_request *r, const char *path, const char (*origins)[WS_ORIGIN_BYTES_MAX],
		       unsigned origin_count, const char **ret_why);

/**
 * ws_accept_key() - Sec-WebSocket-Accept for the client's @key: base64 of
 * SHA-1(key + the RFC 6455 GUID), WS_ACCEPT_BYTES characters and a NUL
 * into @out.  Returns 0, or -EINVAL when @key is longer than a key can be.
 */
int ws_accept_key(const char *key, size_t len, char out[WS_ACCEPT_BYTES + 1]);

/** ws_response_accept() - the 101 response for @r into @buf; its length, or -ENOBUFS. */
int ws_response_accept(const struct ws_request *r, char *buf, size_t cap);

/**
 * ws_response_error() - an HTTP error response with @status (400, 403,
 * 404, 426, 431 or 503) and @why as a text body; 426 carries
 * Sec-WebSocket-Version: 13.  Returns its length, or -ENOBUFS.
 */
int ws_response_error(int status, const char *why, char *buf, size_t cap);

/** ws_frame_header() - a server frame header (FIN, unmasked) for @opcode and @len payload bytes; its length. */
size_t ws_frame_header(uint8_t opcode, uint64_t len, uint8_t out[WS_FRAME_HEADER_SERVER_MAX]);

/* The state of unwrapping one client's frames; survives any split of the
 * input, down to one byte at a time. */
struct ws_decoder {
	uint64_t frame_max; /* largest payload accepted (websockets_max_frame_size) */
	uint64_t left; /* payload bytes of the current frame still to come */
	uint8_t hdr[WS_FRAME_HEADER_CLIENT_MAX];
	uint8_t hdr_len; /* header bytes gathered; the header is complete while in_frame */
	uint8_t opcode; /* of the current frame */
	uint8_t mask_at; /* payload bytes of the current frame seen, mod 4 */
	bool in_frame; /* header done, payload in progress */
	bool in_message; /* a fragmented binary message is open */
	bool closed; /* a close frame was read: nothing after it is looked at */
	uint8_t ctrl_len;
	uint8_t ctrl[WS_CONTROL_BYTES_MAX]; /* payload of the current (or last) control frame */
	uint16_t close_code; /* of the close frame read; WS_CLOSE_NO_STATUS when it had none */
};

/* What ws_decode() found, besides data. */
enum ws_event {
	WS_EV_NONE = 0, /* every input byte was consumed */
	WS_EV_PING = 1, /* a whole ping: answer with a pong carrying ctrl[0..ctrl_len) */
	WS_EV_CLOSE = 2, /* a whole close frame (code in close_code): echo it, then close */
};

/* The outcome of one ws_decode() call, written on success and on error. */
struct ws_decoded {
	size_t used; /* input bytes consumed */
	size_t out; /* data bytes written to the output */
	uint16_t close_code; /* on error: the close code to send */
	const char *why; /* on error: why, in words (static text) */
};

/** ws_decoder_init() - a decoder that accepts frames of at most @frame_max payload bytes. */
void ws_decoder_init(struct ws_decoder *d, uint64_t frame_max);

/**
 * ws_decode() - unwrap client frames from @in[0..@len): the unmasked
 * payload of binary data frames (and their continuations) is written to
 * @out, which may be @in itself: every byte written comes from an input
 * byte at or after it.  Stops right after a whole ping or close frame and
 * returns WS_EV_PING or WS_EV_CLOSE (call again with the rest); otherwise
 * consumes all input and returns WS_EV_NONE.  After a close frame all
 * further input is consumed and ignored.  Errors, with res->close_code
 * and res->why (data before the bad frame is still counted in res->out):
 *   -EPROTO: close 1002 (unmasked client frame, reserved bits, unknown
 *     opcode, fragmented or long control frame, continuation without a
 *     message or a new message inside one, bad close payload) or 1003 (a
 *     text frame: MQTT travels in binary frames only [MQTT-6.0.0-1])
 *   -EMSGSIZE: close 1009, a payload larger than d->frame_max
 */
int ws_decode(struct ws_decoder *d, const uint8_t *in, size_t len, uint8_t *out, struct ws_decoded *res);

/**
 * ws_forwarded_client() - the client address a proxy appended to
 * X-Forwarded-For (the last entry of @xff), checked to be a numeric IPv4
 * or IPv6 address, into @out (NUL-terminated, @cap bytes).  Returns 0 or
 * -EINVAL.
 */
int ws_forwarded_client(const struct ws_str *xff, char *out, size_t cap);

/**
 * ws_address_in() - whether the address of @peer ("ADDR:PORT" as
 * net_peer_name() writes it, or "[ADDR]:PORT") equals one of @list
 * (numeric addresses).  An IPv4-mapped IPv6 address equals its IPv4 form.
 */
bool ws_address_in(const char *peer, const char (*list)[WS_ADDRESS_BYTES_MAX], unsigned count);

/* A WebSocket connection's state beside its struct conn (see conn_ws.c). */
struct ws_conn {
	struct ws_decoder dec;
	char *http; /* the opening handshake read so far (WS_HANDSHAKE_BYTES_MAX), NULL when not reading one */
	uint32_t http_len;
	uint8_t *rx; /* before CONNECT on a plain listener: where a recv writes, NULL otherwise */
	uint32_t frame_at; /* output offset of the open binary frame's header room */
	bool open; /* the 101 response is queued: frames from now on */
	bool frame_open; /* output is being appended to a binary frame */
	bool close_sent; /* our close frame is queued: no more frames */
	bool stop; /* a close frame or a bad frame was read: close after the data before it */
	uint16_t stop_code; /* the close code to send for it */
	const char *stop_why; /* NULL: the client closed; else the protocol error */
	uint8_t *carry; /* during a hand-off: output not yet sent (the 101 answer, pongs) */
	uint32_t carry_len;
};

/** ws_conn_new() - state for a new connection; NULL on ENOMEM. */
struct ws_conn *ws_conn_new(uint64_t frame_max);
/** ws_conn_trim() - free the handshake and receive buffers (not needed once the connection is active). */
void ws_conn_trim(struct ws_conn *w);
/** ws_conn_free() - NULL-safe; returns NULL. */
struct ws_conn *ws_conn_free(struct ws_conn *w);

#endif
