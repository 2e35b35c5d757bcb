/*
 * tclient.h - a small MQTT client for the integration tests, built on the
 * ringmq codec (mqtt_encode / mqtt_frame_cut / mqtt_decode).
 *
 * It does exactly what the test says and nothing more: no automatic
 * acknowledgements, no keep-alive pings, no retries, so a test sees every
 * packet the broker sends and checks acks itself.  Packets are built as
 * struct mqtt_packet (any version, flags, properties, will) or sent as raw
 * bytes for malformed cases.
 *
 * Helpers whose names start with tc_expect or that return nothing fail the
 * test (cr_assert) with a message naming the client and what arrived
 * instead.  The others return a result for the test to check.
 *
 * Owner:    the test process.
 * Lifetime: tc_open()/tc_connect*() .. tc_close()/tc_disconnect(), which
 *           free the client.  A packet returned by tc_recv()/tc_expect*()
 *           holds views into the client's receive buffer and is valid
 *           until the next call that receives on the same client.
 * Shared:   never.
 */
#ifndef RINGMQ_TEST_TCLIENT_H
#define RINGMQ_TEST_TCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"
#include "ringmq/mqtt.h"

/* How long to wait for a packet that must arrive.  Generous, because two
 * cores run several brokers and test processes at once; a passing test
 * never waits this long. */
#define TC_WAIT_MS 5000
/* The window in which a packet that must not arrive is looked for. */
#define TC_QUIET_MS 300

struct tclient {
	int fd;
	uint8_t version; /* enum mqtt_version, used to encode and decode */
	uint16_t next_id; /* next packet identifier to use, never 0 */
	char name[64]; /* client id, for failure messages */
	uint8_t *rx;
	size_t rx_len; /* bytes in rx */
	size_t rx_cap;
	size_t rx_frame; /* bytes of the frame last returned, dropped on the next receive */
	int disconnect_reason; /* set by tc_closed(): reason of a DISCONNECT seen, -1 if none */
};

/* ---- Building packets ---- */

/** tc_str() - a view of a C string (no terminator); NULL gives an empty view. */
struct mqtt_str tc_str(const char *s);
/** tc_str_eq() - whether @s holds exactly the C string @c. */
bool tc_str_eq(struct mqtt_str s, const char *c);
/** tc_dup() - a NUL-terminated copy of @s in a per-process ring of buffers. */
const char *tc_dup(struct mqtt_str s);

/**
 * tc_connect_packet() - a CONNECT for @version with @client_id, Clean
 * Session/Start 1, keep alive 60, protocol name "MQTT" ("MQIsdp" for 3.1).
 * Tests change fields before sending it.
 */
struct mqtt_packet tc_connect_packet(uint8_t version, const char *client_id);

/**
 * tc_user_props() - encode @n user properties (@kv holds name, value,
 * name, value, ...) into @buf as the codec's `user` block; returns the view
 * to put in mqtt_props.user (and sets the MQTT_HAS bit in @p).
 */
void tc_user_props(struct mqtt_props *p, const char *const *kv, unsigned n, uint8_t *buf, size_t cap);

/** tc_describe() - a one-line description of @p for failure messages. */
const char *tc_describe(const struct mqtt_packet *p);

/*
 * Raw packets for malformed cases: append to a byte buffer, then send it
 * with a fixed header (tc_send_frame) or as is (tc_send_raw).
 */
struct tc_bytes {
	uint8_t b[4096];
	size_t len;
};

void tc_put_u8(struct tc_bytes *w, uint8_t v);
void tc_put_u16(struct tc_bytes *w, uint16_t v);
void tc_put_u32(struct tc_bytes *w, uint32_t v);
void tc_put_varint(struct tc_bytes *w, uint32_t v);
/** tc_put_str() - a two-byte length and the bytes of @s. */
void tc_put_str(struct tc_bytes *w, const char *s);
void tc_put_raw(struct tc_bytes *w, const void *p, size_t len);

/* ---- Connection ---- */

/** tc_open() - a TCP connection to @b, no MQTT yet; fails the test if refused. */
struct tclient *tc_open(const struct broker *b, uint8_t version, const char *name);

/** tc_close() - close the socket without DISCONNECT and free @c (NULL-safe). */
void tc_close(struct tclient *c);

/**
 * tc_send_raw() / tc_send() - write bytes / an encoded packet.  Returns 0 or
 * a negative errno (-EPIPE, -ECONNRESET once the broker closed: tests of
 * protocol errors expect that and ignore it).  tc_send() fails the test
 * only if the codec cannot encode @p.
 */
int tc_send_raw(struct tclient *c, const void *buf, size_t len);
int tc_send(struct tclient *c, const struct mqtt_packet *p);

/** tc_send_frame() - send @body behind a fixed header of @first_byte and its length. */
int tc_send_frame(struct tclient *c, uint8_t first_byte, const struct tc_bytes *body);

/**
 * tc_recv() - the next packet within @timeout_ms.
 * Returns 0 with @ret filled, -ETIMEDOUT, -ECONNRESET when the broker
 * closed the connection, or -EBADMSG when it sent bytes the codec rejects.
 */
int tc_recv(struct tclient *c, int timeout_ms, struct mqtt_packet *ret);

/** tc_expect() - the next packet (TC_WAIT_MS); fails unless it is of @type. */
struct mqtt_packet tc_expect(struct tclient *c, uint8_t type);

/** tc_expect_nothing() - fails if any packet (or a close) arrives within @ms. */
void tc_expect_nothing(struct tclient *c, int ms);

/**
 * tc_closed() - true when the broker closes the connection within
 * @timeout_ms with nothing sent before the close, except that an MQTT 5
 * connection may first get one DISCONNECT, whose reason is stored in
 * c->disconnect_reason.  False on timeout or on any other packet.
 */
bool tc_closed(struct tclient *c, int timeout_ms);

/** tc_expect_closed() - the broker must close within TC_WAIT_MS, sending nothing first. */
void tc_expect_closed(struct tclient *c);

/**
 * tc_expect_disconnect() - the broker must close the connection within
 * TC_WAIT_MS.  For MQTT 5 a DISCONNECT sent first must carry @reason, and
 * ringmq must send it (the specification says SHOULD, section 4.13; the
 * mosquitto oracle is let off).  For 3.x nothing may come before the close.
 */
void tc_expect_disconnect(struct tclient *c, uint8_t reason);

/**
 * tc_expect_disconnect_any() - tc_expect_disconnect() where the
 * specification leaves the reason open: any of @reasons (@n of them) will
 * do.  Put ringmq's own choice first; it is named in the failure message.
 */
void tc_expect_disconnect_any(struct tclient *c, const uint8_t *reasons, unsigned n);

/**
 * tc_expect_refused() - after a CONNECT the broker must refuse: close the
 * connection, after a CONNACK carrying @code if one is sent.  With
 * @connack_required the CONNACK must be there (the specification or
 * ringmq's design says so; the mosquitto oracle gets no exemption).
 */
void tc_expect_refused(struct tclient *c, uint8_t code, bool connack_required);

/**
 * tc_connect_with() - open, send @connect, and return the client with the
 * broker's answer in @ret_connack (views valid until the next receive).
 * Fails the test unless the answer is a CONNACK.
 */
struct tclient *tc_connect_with(const struct broker *b, const struct mqtt_packet *connect,
				struct mqtt_packet *ret_connack);

/** tc_connect() - connect and fail the test unless CONNACK says accepted. */
struct tclient *tc_connect(const struct broker *b, uint8_t version, const char *client_id, bool clean);

/** tc_disconnect() - send DISCONNECT (reason 0), close and free @c. */
void tc_disconnect(struct tclient *c);

/* ---- Subscribe and publish ---- */

/**
 * tc_subscribe_many() - one SUBSCRIBE with @n filters and options bytes;
 * waits for the SUBACK, checks its packet id and count, and copies its
 * reason codes to @ret_codes.
 */
void tc_subscribe_many(struct tclient *c, const char *const *filters, const uint8_t *options, unsigned n,
		       uint8_t *ret_codes);

/**
 * tc_subscribe_opts() - SUBSCRIBE to one @filter with the options byte
 * @options (QoS in the low bits; MQTT 5 flags above), wait for the SUBACK
 * (checking its packet id) and return its one reason code.
 */
uint8_t tc_subscribe_opts(struct tclient *c, const char *filter, uint8_t options);

/** tc_subscribe() - subscribe and fail the test unless @qos is granted. */
void tc_subscribe(struct tclient *c, const char *filter, uint8_t qos);

/** tc_unsubscribe() - UNSUBSCRIBE one filter; the UNSUBACK code (3.x: 0). */
uint8_t tc_unsubscribe(struct tclient *c, const char *filter);

/**
 * tc_publish_packet() - a PUBLISH with a fresh packet id for QoS > 0.
 * tc_publish_send() sends one and returns its packet id, nothing else.
 */
struct mqtt_packet tc_publish_packet(struct tclient *c, const char *topic, const char *payload, uint8_t qos,
				     bool retain);
uint16_t tc_publish_send(struct tclient *c, const char *topic, const char *payload, uint8_t qos, bool retain);

/**
 * tc_publish() - publish and complete the QoS flow as sender: QoS 1 waits
 * for PUBACK, QoS 2 for PUBREC, sends PUBREL and waits for PUBCOMP.  Fails
 * the test on any other packet or a non-success reason code.
 */
void tc_publish(struct tclient *c, const char *topic, const char *payload, uint8_t qos, bool retain);

/**
 * tc_expect_publish() - the next packet must be a PUBLISH of @topic with
 * @payload at @qos; returned for further checks (flags, properties).  The
 * receiver's acknowledgement is left to the test.
 */
struct mqtt_packet tc_expect_publish(struct tclient *c, const char *topic, const char *payload, uint8_t qos);

/** tc_ack() - send PUBACK/PUBREC/PUBREL/PUBCOMP @type for @packet_id, reason 0. */
void tc_ack(struct tclient *c, uint8_t type, uint16_t packet_id);

/**
 * tc_receive_qos() - tc_expect_publish() and then complete the receiver's
 * side of the flow (PUBACK, or PUBREC/PUBREL/PUBCOMP).
 */
void tc_receive_qos(struct tclient *c, const char *topic, const char *payload, uint8_t qos);

/**
 * tc_receive_many() - receive @n PUBLISHes of @topic with @payloads at
 * @qos, in this order, completing the receiver's side of each flow; the
 * broker may send the next PUBLISH before the PUBREL of a QoS 2 one.
 */
void tc_receive_many(struct tclient *c, const char *topic, const char *const *payloads, const uint8_t *qos,
		     unsigned n);

/* ---- Hostile clients and the well-behaved witness (18_hostile and later) ---- */

/**
 * tc_open_sized() - tc_open() with SO_RCVBUF @rcvbuf and SO_SNDBUF @sndbuf
 * set before connect(2), so the TCP window is small from the first
 * segment (0 leaves a size as the kernel chooses).  Tiny buffers force the
 * broker into short sends and short receives.
 */
struct tclient *tc_open_sized(const struct broker *b, uint8_t version, const char *name, int rcvbuf, int sndbuf);

/**
 * tc_send_chunked() - write @len bytes in pieces of @chunk bytes, one
 * send(2) each (TCP_NODELAY is on, so each piece tends to leave as its own
 * segment and reach the broker as its own receive).  Returns as
 * tc_send_raw().
 */
int tc_send_chunked(struct tclient *c, const void *buf, size_t len, size_t chunk);

/**
 * tc_frame_alloc() - a whole packet in a fresh heap buffer: @first_byte,
 * the Remaining Length of @body_len and @body.  For packets larger than
 * struct tc_bytes holds (65,535-byte topics, thousands of properties).
 * *@ret_len is the packet's length; the caller frees the buffer.
 */
uint8_t *tc_frame_alloc(uint8_t first_byte, const void *body, size_t body_len, size_t *ret_len);

/**
 * tc_drain_until_closed() - read and discard everything until the broker
 * closes the connection (end of file or reset) within @timeout_ms.  For a
 * client that deliberately did not read: what it missed is not decoded.
 * Returns true on a close, false on timeout; *@ret_bytes (may be NULL)
 * gets the bytes discarded.
 */
bool tc_drain_until_closed(struct tclient *c, int timeout_ms, uint64_t *ret_bytes);

/*
 * The witness: a well-behaved publisher and subscriber (MQTT 3.1.1, keep
 * alive 0, QoS 1) on the broker under attack.  Every hostile test calls
 * tc_witness_check() while and after it attacks: the round trip must
 * complete within TC_WAIT_MS, so a broker that crashed, stalled a shard or
 * starved other clients fails the test there.
 */
struct tc_witness {
	struct tclient *pub, *sub;
	unsigned seq;
	char topic[64];
};

/** tc_witness_start() - connect the pair, subscribe, one round trip. */
void tc_witness_start(struct tc_witness *w, const struct broker *b, const char *name);

/** tc_witness_check() - one QoS 1 message from pub to sub, in order, acknowledged. */
void tc_witness_check(struct tc_witness *w);

/** tc_witness_stop() - a last round trip, then DISCONNECT both. */
void tc_witness_stop(struct tc_witness *w);

#endif
