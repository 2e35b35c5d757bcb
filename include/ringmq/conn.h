/*
 * conn.h - one client connection on one shard.
 *
 * Owner:    the shard in `owner_shard`; every function asserts it runs
 *           there.  A connection that must move to its client id's home
 *           shard is not moved: its socket and bytes are handed off
 *           (shard.h, struct handoff) and a new conn is made there.
 * Lifetime: conn_new() on accept or handoff; conn_close() marks it closing
 *           and shuts the socket down; it is freed (conn_free) only when
 *           its in-flight SQE count is zero, at the end of a loop turn.
 *           All its memory (input and output buffers) is released there,
 *           in one place.
 * Shared:   never.
 *
 * io_uring user_data for a connection's operations is packed as
 *   bits 63..56 op (enum conn_op), bits 55..32 generation (24 bits),
 *   bits 31..0 slot.
 * A completion whose generation no longer matches the slot's conn belongs
 * to a freed connection and is ignored.
 */
#ifndef RINGMQ_CONN_H
#define RINGMQ_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include <liburing.h>

#include "ringmq/mqtt.h"

struct scram;
struct tls_conn;
struct ws_conn;
struct shard;
struct sess;

enum conn_op {
	OP_ACCEPT = 1, /* slot = listener index */
	OP_RECV_FIRST = 2, /* plain recv before CONNECT is accepted */
	OP_RECV = 3, /* multishot recv, provided buffers */
	OP_SEND = 4,
	OP_WAKE = 5, /* MSG_RING from another shard */
};

#define UD_PACK(op, gen, slot)                                                                     \
	(((uint64_t)(op) << 56) | (((uint64_t)(gen) & 0xFFFFFFu) << 32) | (uint64_t)(slot))
#define UD_OP(ud) ((unsigned)((ud) >> 56))
#define UD_GEN(ud) ((uint32_t)(((ud) >> 32) & 0xFFFFFFu))
#define UD_SLOT(ud) ((uint32_t)(ud))

enum conn_state {
	CONN_NEW = 0, /* waiting for CONNECT */
	CONN_AUTH = 1, /* CONNECT read, enhanced authentication (AUTH packets) in progress */
	CONN_ACTIVE = 2, /* CONNECT accepted */
	CONN_FLUSHING = 3, /* last packets queued; close once sent */
	CONN_CLOSING = 4, /* socket shut down; waiting for SQEs to drain */
};

struct conn_buf {
	uint8_t *data;
	uint32_t len;
	uint32_t cap;
	uint32_t off; /* bytes already sent (output) / consumed (input) */
};

struct conn {
	unsigned owner_shard;
	uint32_t slot;
	uint32_t gen;
	int fd;
	unsigned listener;
	uint8_t state;
	uint8_t version; /* enum mqtt_version, 0 before CONNECT */
	uint8_t sending; /* index of out[] in flight */
	bool send_busy;
	bool recv_armed;
	bool in_dirty;
	bool handed_off; /* socket given to another shard: do not close it */
	bool publish_will; /* on close: publish the session's will */
	bool final_packet; /* the closing DISCONNECT may pass max_output_bytes */
	bool refusal_logged; /* refused PUBLISHes: only the first is logged */
	bool proxy_pending; /* the listener's PROXY header is still to come (before TLS and MQTT) */
	uint16_t ops; /* SQEs in flight */
	struct conn *next_closing;
	struct conn *next_dirty;
	struct sess *sess;
	struct conn_buf in;
	struct conn_buf out[2];
	uint64_t accepted_ms;
	uint64_t last_rx_ms;
	uint64_t flush_deadline_ms;
	uint32_t keepalive_ms; /* 0 = no keepalive */
	uint32_t packet_max_out; /* client's Maximum Packet Size (v5), bytes */
	uint16_t receive_max_out; /* client's Receive Maximum (v5) */
	uint16_t qos2_in_count; /* QoS 2 PUBLISH awaiting PUBREL (v5 flow control) */
	uint16_t alias_count; /* topic aliases client -> server */
	struct mqtt_str *aliases; /* owned copies, index alias-1 */
	uint16_t alias_out_max; /* aliases we may assign towards the client (v5) */
	uint16_t alias_out_count;
	struct conn_alias *alias_out; /* open-addressing table, 2 x alias_out_max slots */
	char peer[64];
	const char *client_id; /* borrowed from sess, NULL before CONNECT */
	struct scram *scram; /* CONN_AUTH: the exchange in progress (owned) */
	struct tls_conn *tls; /* TLS listener: the session (owned; moves with a hand-off) */
	struct ws_conn *ws; /* WebSocket listener: its state (owned; moves with a hand-off) */
	char *auth_user; /* user name SCRAM authenticated, until the session takes it */
	bool scram_login; /* logged in with SCRAM: AUTH 0x19 may re-authenticate */
	uint32_t connect_len; /* CONN_AUTH: bytes of the CONNECT kept at in.data */
};

/* One server -> client topic alias (MQTT 5). */
struct conn_alias {
	uint8_t *topic; /* owned copy, NULL = empty slot */
	uint16_t len;
	uint16_t alias;
};

/**
 * conn_alias_out() - the alias for @topic towards this client: returns the
 * alias (> 0) and sets *ret_new when it is assigned now (the packet must
 * then carry the topic as well), or 0 when the topic gets no alias.
 * Call conn_alias_commit() once the packet carrying a new alias is queued.
 */
uint16_t conn_alias_out(struct conn *c, const struct mqtt_str *topic, bool *ret_new);
void conn_alias_commit(struct conn *c, const struct mqtt_str *topic, uint16_t alias);

/** conn_new() - a connection for socket @fd on shard @s; NULL when out of memory or slots. */
struct conn *conn_new(struct shard *s, int fd, unsigned listener);
/**
 * conn_proxy_expect() - @c arrived on a proxy_protocol listener: a peer
 * outside proxy_protocol_trusted is refused and @c closed (-EACCES);
 * otherwise the PROXY header is read before anything else, and its client
 * address replaces c->peer.  Call before the first conn_arm_recv().
 */
int conn_proxy_expect(struct shard *s, struct conn *c);
/** conn_lookup() - the conn for a completion's user_data, NULL if stale. */
struct conn *conn_lookup(struct shard *s, uint64_t ud);
/** conn_arm_recv() - (re)arm receiving: plain recv before CONNECT, multishot after. */
void conn_arm_recv(struct shard *s, struct conn *c);
/** conn_recv_done() - a receive completion for @c. */
void conn_recv_done(struct shard *s, struct conn *c, struct io_uring_cqe *cqe);
/** conn_send_done() - a send completion for @c. */
void conn_send_done(struct shard *s, struct conn *c, int res);
/** conn_flush_all() - submit sends for every connection with pending output. */
void conn_flush_all(struct shard *s);

/**
 * conn_out() - reserve @n bytes of output; returns where to write them or
 * NULL when the connection's output limit is reached (the connection is
 * then closed as a client that does not read).  Call conn_out_commit()
 * with the bytes actually written.
 */
uint8_t *conn_out(struct shard *s, struct conn *c, uint32_t n);
void conn_out_commit(struct shard *s, struct conn *c, uint32_t n);
/** conn_send_packet() - encode @pkt for the connection's version and queue it. */
int conn_send_packet(struct shard *s, struct conn *c, const struct mqtt_packet *pkt);

/**
 * conn_close() - close @c because of @reason (an MQTT 5 reason code; 0 =
 * normal).  When @notify and the client speaks MQTT 5, a DISCONNECT with
 * @reason is sent first.  Idempotent.  @why goes into the log line.
 */
void conn_close(struct shard *s, struct conn *c, uint8_t reason, bool notify, const char *why);
/** conn_close_after_flush() - close once queued output has been sent. */
void conn_close_after_flush(struct shard *s, struct conn *c);
/** conn_reap() - free connections whose SQEs have drained (end of loop turn). */
void conn_reap(struct shard *s);
/** conn_sweep() - keepalive, CONNECT timeout and flush deadlines. */
void conn_sweep(struct shard *s);

/**
 * conn_after_connect() - CONNECT (and any AUTH exchange) is done and the
 * connection active: handle the bytes that followed, then receive with
 * provided buffers.
 */
void conn_after_connect(struct shard *s, struct conn *c);

/**
 * conn_input() - bytes from the client, for a shard without io_uring
 * (shard_engine_begin(): the stateful fuzz target and tests drive the
 * protocol engine directly).  Returns false once the connection stopped
 * reading.
 */
bool conn_input(struct shard *s, struct conn *c, uint8_t *p, uint32_t n);

/** conn_frames() - cut and handle every whole frame in @buf; returns bytes consumed or < 0 if closed. */
int conn_frames(struct shard *s, struct conn *c, const uint8_t *buf, uint32_t len);

/**
 * conn_out_raw() - like conn_out(), but outside any WebSocket frame: for
 * the transport's own bytes (HTTP responses, control frames).  Mark them
 * with conn_out_commit(s, c, 0) after adding them to out[0].len, so they
 * are sent without counting as MQTT packets.
 */
uint8_t *conn_out_raw(struct shard *s, struct conn *c, uint32_t n);

/* ------------------------------------------- WebSocket listeners (conn_ws.c)
 * A WebSocket connection (c->ws set) unwraps what it receives before the
 * MQTT frame cutter sees it, and sends its MQTT output as binary frames:
 * conn_out() appends packets to an open frame, whose header is written
 * when the output is handed to the socket or to TLS (conn_ws_seal()). */

/* Bytes of one plain recv on a WebSocket listener before CONNACK. */
#define CONN_WS_RX_BYTES 4096u

/** conn_ws_rx() - where a plain recv before CONNACK writes (CONN_WS_RX_BYTES); NULL on ENOMEM. */
uint8_t *conn_ws_rx(struct conn *c);

/**
 * conn_ws_unwrap() - @p[0..@n) came from the client (after TLS): read the
 * opening handshake and answer it, or unwrap frames (answering pings).
 * Returns how many MQTT bytes are now at @p[0..).  A close frame or a bad
 * frame stops reading; conn_ws_after() then acts on it, once the MQTT
 * bytes before it were handled.
 */
uint32_t conn_ws_unwrap(struct shard *s, struct conn *c, uint8_t *p, uint32_t n);
/** conn_ws_after() - echo a client's close frame, or refuse a bad frame, and close. */
void conn_ws_after(struct shard *s, struct conn *c);

/**
 * conn_ws_detach() - take @c's WebSocket state for a CONNECT hand-off (c->ws
 * becomes NULL), with the output @c has not sent yet (the 101 answer, pongs),
 * which the state carries; NULL when @c has none.
 */
struct ws_conn *conn_ws_detach(struct conn *c);
/** conn_ws_attach() - give @w (may be NULL) to the hand-off's new conn @c and queue the output it carries. */
void conn_ws_attach(struct shard *s, struct conn *c, struct ws_conn *w);

/** conn_ws_frame_begin() - open a binary frame for MQTT output; false if frames cannot be sent (yet or any more). */
bool conn_ws_frame_begin(struct shard *s, struct conn *c);
/** conn_ws_seal() - write the header of the open binary frame (a no-op if none is open). */
void conn_ws_seal(struct conn *c);
/** conn_ws_close() - queue our close frame with @code, once, after the output queued so far. */
void conn_ws_close(struct shard *s, struct conn *c, uint16_t code);

#endif
