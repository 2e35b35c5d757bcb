/*
 * mqtt.h - the MQTT 3.1 / 3.1.1 / 5.0 codec.
 *
 * Pure functions over caller-owned bytes (picohttpparser style): no I/O,
 * no logging, no allocation.  Decoders return views (pointer + length)
 * into the caller's buffer, so a decoded packet is valid only as long as
 * that buffer is.  Encoders write into a caller-supplied buffer.
 *
 * Owner:    whoever owns the byte buffer; the codec keeps no state.
 * Lifetime: views in decoded structs live as long as the decoded bytes.
 * Shared:   the functions are reentrant and thread-safe.
 *
 * Result convention for decoders (STYLE 5):
 *   > 0  complete, the value is the number of bytes consumed
 *     0  incomplete, more bytes are needed (frame cutter only)
 *   < 0  malformed (-EBADMSG) or a protocol error (-EPROTO) or too large
 *        (-EMSGSIZE); *ret_reason then holds the exact MQTT 5 reason code
 *        to put on the wire (0x81 malformed, 0x82 protocol error, 0x95
 *        packet too large, 0x84 unsupported protocol version, ...).
 */
#ifndef RINGMQ_MQTT_H
#define RINGMQ_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Protocol levels as they appear in CONNECT. */
enum mqtt_version {
	MQTT_V31 = 3,
	MQTT_V311 = 4,
	MQTT_V5 = 5,
};

enum mqtt_type {
	MQTT_CONNECT = 1,
	MQTT_CONNACK = 2,
	MQTT_PUBLISH = 3,
	MQTT_PUBACK = 4,
	MQTT_PUBREC = 5,
	MQTT_PUBREL = 6,
	MQTT_PUBCOMP = 7,
	MQTT_SUBSCRIBE = 8,
	MQTT_SUBACK = 9,
	MQTT_UNSUBSCRIBE = 10,
	MQTT_UNSUBACK = 11,
	MQTT_PINGREQ = 12,
	MQTT_PINGRESP = 13,
	MQTT_DISCONNECT = 14,
	MQTT_AUTH = 15,
};

/* MQTT 5 reason codes (section 2.4) used by the server. */
enum mqtt_reason {
	MQTT_RC_SUCCESS = 0x00,
	MQTT_RC_GRANTED_QOS1 = 0x01,
	MQTT_RC_GRANTED_QOS2 = 0x02,
	MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
	MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
	MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
	MQTT_RC_CONTINUE_AUTH = 0x18,
	MQTT_RC_REAUTHENTICATE = 0x19,
	MQTT_RC_UNSPECIFIED = 0x80,
	MQTT_RC_MALFORMED = 0x81,
	MQTT_RC_PROTOCOL_ERROR = 0x82,
	MQTT_RC_IMPL_SPECIFIC = 0x83,
	MQTT_RC_UNSUPPORTED_VERSION = 0x84,
	MQTT_RC_CLIENT_ID_INVALID = 0x85,
	MQTT_RC_BAD_USER_OR_PASSWORD = 0x86,
	MQTT_RC_NOT_AUTHORIZED = 0x87,
	MQTT_RC_SERVER_UNAVAILABLE = 0x88,
	MQTT_RC_SERVER_BUSY = 0x89,
	MQTT_RC_BANNED = 0x8A,
	MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
	MQTT_RC_BAD_AUTH_METHOD = 0x8C,
	MQTT_RC_KEEPALIVE_TIMEOUT = 0x8D,
	MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
	MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
	MQTT_RC_TOPIC_NAME_INVALID = 0x90,
	MQTT_RC_PACKET_ID_IN_USE = 0x91,
	MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
	MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
	MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
	MQTT_RC_PACKET_TOO_LARGE = 0x95,
	MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
	MQTT_RC_QUOTA_EXCEEDED = 0x97,
	MQTT_RC_ADMIN_ACTION = 0x98,
	MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
	MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
	MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
	MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
	MQTT_RC_SERVER_MOVED = 0x9D,
	MQTT_RC_SHARED_SUB_NOT_SUPPORTED = 0x9E,
	MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
	MQTT_RC_MAX_CONNECT_TIME = 0xA0,
	MQTT_RC_SUBID_NOT_SUPPORTED = 0xA1,
	MQTT_RC_WILDCARD_SUB_NOT_SUPPORTED = 0xA2,
};

/* MQTT 3.1 / 3.1.1 CONNACK return codes. */
enum mqtt_connack_v3 {
	MQTT_V3_ACCEPTED = 0,
	MQTT_V3_BAD_VERSION = 1,
	MQTT_V3_ID_REJECTED = 2,
	MQTT_V3_SERVER_UNAVAILABLE = 3,
	MQTT_V3_BAD_USER_OR_PASSWORD = 4,
	MQTT_V3_NOT_AUTHORIZED = 5,
};

/* MQTT 5 property identifiers (section 2.2.2.2). */
enum mqtt_prop_id {
	MQTT_PROP_PAYLOAD_FORMAT = 0x01,
	MQTT_PROP_MESSAGE_EXPIRY = 0x02,
	MQTT_PROP_CONTENT_TYPE = 0x03,
	MQTT_PROP_RESPONSE_TOPIC = 0x08,
	MQTT_PROP_CORRELATION_DATA = 0x09,
	MQTT_PROP_SUBSCRIPTION_ID = 0x0B,
	MQTT_PROP_SESSION_EXPIRY = 0x11,
	MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,
	MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,
	MQTT_PROP_AUTH_METHOD = 0x15,
	MQTT_PROP_AUTH_DATA = 0x16,
	MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,
	MQTT_PROP_WILL_DELAY = 0x18,
	MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,
	MQTT_PROP_RESPONSE_INFO = 0x1A,
	MQTT_PROP_SERVER_REFERENCE = 0x1C,
	MQTT_PROP_REASON_STRING = 0x1F,
	MQTT_PROP_RECEIVE_MAX = 0x21,
	MQTT_PROP_TOPIC_ALIAS_MAX = 0x22,
	MQTT_PROP_TOPIC_ALIAS = 0x23,
	MQTT_PROP_MAX_QOS = 0x24,
	MQTT_PROP_RETAIN_AVAILABLE = 0x25,
	MQTT_PROP_USER = 0x26,
	MQTT_PROP_MAX_PACKET_SIZE = 0x27,
	MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
	MQTT_PROP_SUBID_AVAILABLE = 0x29,
	MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

/* Bits of mqtt_props.present: MQTT_HAS(id) for each property id. */
#define MQTT_HAS(id) (UINT64_C(1) << (id))

/* Subscription identifiers one PUBLISH may carry (server -> client, one per
 * matching subscription). */
#define MQTT_SUBIDS_MAX 32

/* A view of a UTF-8 string or binary data inside a caller's buffer. */
struct mqtt_str {
	const uint8_t *ptr;
	uint32_t len;
};

/*
 * Decoded or to-be-encoded MQTT 5 properties.  Only fields whose bit is set
 * in `present` are meaningful.  User properties are not decoded one by one:
 * decoding records their count and `user` points to nothing useful;
 * mqtt_props_user_copy() gathers them (in order, encoded as on the wire:
 * 0x26, string, string, ...) into a contiguous block.  For encoding, set
 * `user` to such a block; it is emitted verbatim.
 */
struct mqtt_props {
	uint64_t present;
	const uint8_t *raw; /* decoded: the whole property block */
	uint32_t raw_len;
	uint8_t payload_format;
	uint8_t request_problem_info;
	uint8_t request_response_info;
	uint8_t max_qos;
	uint8_t retain_available;
	uint8_t wildcard_available;
	uint8_t subid_available;
	uint8_t shared_available;
	uint16_t server_keep_alive;
	uint16_t receive_max;
	uint16_t topic_alias_max;
	uint16_t topic_alias;
	uint32_t message_expiry;
	uint32_t session_expiry;
	uint32_t will_delay;
	uint32_t max_packet_size;
	struct mqtt_str content_type;
	struct mqtt_str response_topic;
	struct mqtt_str correlation_data;
	struct mqtt_str assigned_client_id;
	struct mqtt_str auth_method;
	struct mqtt_str auth_data;
	struct mqtt_str response_info;
	struct mqtt_str server_reference;
	struct mqtt_str reason_string;
	uint32_t subid_count;
	uint32_t subids[MQTT_SUBIDS_MAX];
	uint32_t user_count; /* decoded: number of user properties */
	struct mqtt_str user; /* encoded user-property entries, see above */
};

struct mqtt_connect {
	uint8_t version; /* enum mqtt_version */
	bool clean; /* Clean Session (3.x) / Clean Start (5) */
	bool will;
	bool will_retain;
	uint8_t will_qos;
	bool has_username;
	bool has_password;
	uint16_t keepalive;
	struct mqtt_str protocol_name; /* "MQTT" or "MQIsdp" */
	struct mqtt_str client_id;
	struct mqtt_str will_topic;
	struct mqtt_str will_payload;
	struct mqtt_str username;
	struct mqtt_str password;
	struct mqtt_props props;
	struct mqtt_props will_props;
};

struct mqtt_connack {
	bool session_present;
	uint8_t reason; /* 3.x return code or MQTT 5 reason code */
	struct mqtt_props props;
};

struct mqtt_publish {
	uint8_t qos;
	bool dup;
	bool retain;
	uint16_t packet_id; /* 0 for QoS 0 */
	struct mqtt_str topic;
	struct mqtt_props props;
	struct mqtt_str payload;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP.  For MQTT 5, `reason` defaults to 0 when
 * the packet is the short form; encoders emit the short form when reason is
 * 0 and there are no properties [MQTT-3.4.2-1 etc.]. */
struct mqtt_ack {
	uint16_t packet_id;
	uint8_t reason;
	struct mqtt_props props;
};

/* SUBSCRIBE and UNSUBSCRIBE keep their topic list as a view; walk it with
 * mqtt_sub_next().  The decoder has already validated every entry. */
struct mqtt_subscribe {
	uint16_t packet_id;
	struct mqtt_props props;
	struct mqtt_str list;
	uint32_t count;
};

/* One SUBSCRIBE entry.  For UNSUBSCRIBE only `filter` is set. */
struct mqtt_sub {
	struct mqtt_str filter;
	uint8_t qos;
	bool no_local;
	bool retain_as_published;
	uint8_t retain_handling;
};

/* SUBACK and UNSUBACK: one reason code per topic (UNSUBACK of 3.x has
 * none; count is 0 then). */
struct mqtt_suback {
	uint16_t packet_id;
	struct mqtt_props props;
	const uint8_t *codes;
	uint32_t count;
};

/* DISCONNECT and AUTH (MQTT 5; 3.x DISCONNECT has neither field). */
struct mqtt_disconnect {
	uint8_t reason;
	struct mqtt_props props;
};

struct mqtt_packet {
	uint8_t type; /* enum mqtt_type */
	uint8_t flags; /* low nibble of the fixed header */
	union {
		struct mqtt_connect connect;
		struct mqtt_connack connack;
		struct mqtt_publish publish;
		struct mqtt_ack ack;
		struct mqtt_subscribe subscribe; /* and UNSUBSCRIBE */
		struct mqtt_suback suback; /* and UNSUBACK */
		struct mqtt_disconnect disconnect; /* and AUTH */
	};
};

/* A cut frame: where the body starts and how long it is. */
struct mqtt_frame {
	uint8_t type;
	uint8_t flags;
	uint32_t header_len; /* fixed header: 1 + 1..4 bytes */
	uint32_t body_len; /* Remaining Length */
};

/**
 * mqtt_frame_cut() - find the first whole frame in @buf.
 * @packet_bytes_max: largest whole packet accepted (header included).
 *
 * Returns the frame's total length (> 0) and fills @ret_frame; 0 when more
 * bytes are needed; -EBADMSG (reason 0x81) for a Remaining Length longer
 * than four bytes or a packet type of 0; -EMSGSIZE (reason 0x95) as soon
 * as the header shows the packet would exceed @packet_bytes_max, without
 * waiting for the body [MQTT-3.1.2-24 on the server side].
 */
int mqtt_frame_cut(const uint8_t *buf, size_t len, uint32_t packet_bytes_max,
		   struct mqtt_frame *ret_frame, uint8_t *ret_reason);

/**
 * mqtt_decode() - decode one whole frame (as cut by mqtt_frame_cut()).
 * @version: the connection's protocol level; ignored for CONNECT, whose
 *           version comes from the packet itself.  Any other packet with a
 *           version outside 3..5 (0 before CONNECT) fails with -EPROTO /
 *           0x82 [MQTT-3.1.0-1].
 *
 * Validates everything the specification makes the receiver check that
 * can be checked without session state: fixed-header flags, lengths,
 * UTF-8 well-formedness and U+0000 [MQTT-1.5.4-1/2], topic names and
 * filters (wildcards, levels), QoS 3, DUP on QoS 0 (v5), packet id 0 where
 * one is required, property ids valid for the packet type, duplicated
 * properties, property value ranges, empty SUBSCRIBE/UNSUBSCRIBE, reserved
 * bits.  CONNECT is decoded for any protocol level; an unknown protocol
 * name or level yields -EPROTO with reason 0x84 (the caller answers with
 * CONNACK 1 / 0x84 as the version warrants).
 *
 * Returns the frame length on success, or a negative errno with the reason
 * code in *ret_reason.  @ret_pkt views point into @buf.  On failure
 * *ret_pkt is unspecified, except that a CONNECT refused with -EPROTO /
 * 0x84 has connect.protocol_name and connect.version set, so the caller
 * can pick the CONNACK form.  @buf may hold more than one frame; only the
 * first is decoded.  Reason codes beyond 0x81/0x82 that the decoder uses:
 * 0x84 (CONNECT protocol), 0x8F (SUBSCRIBE/UNSUBSCRIBE filter syntax),
 * 0x90 (topic name with a wildcard, or empty: PUBLISH, Will Topic), 0x94
 * (Topic Alias 0), 0x83 (more than MQTT_SUBIDS_MAX Subscription
 * Identifiers).  A packet identifier of 0 is a Protocol Error (0x82).
 */
int mqtt_decode(uint8_t version, const uint8_t *buf, size_t len,
		struct mqtt_packet *ret_pkt, uint8_t *ret_reason);

/**
 * mqtt_sub_next() - iterate the entries of a decoded SUBSCRIBE (or, with
 * @unsubscribe true, UNSUBSCRIBE).  @pos starts at 0.
 * Returns 1 and fills @ret_sub while entries remain, 0 at the end.
 */
int mqtt_sub_next(const struct mqtt_subscribe *s, bool unsubscribe, uint32_t *pos,
		  struct mqtt_sub *ret_sub);

/**
 * mqtt_sub_encode() - append one SUBSCRIBE (or, with @unsubscribe true,
 * UNSUBSCRIBE) entry for protocol @version to @buf, in the wire form that
 * mqtt_subscribe.list holds: filter, then (SUBSCRIBE only) the options byte
 * (MQTT 5: QoS, No Local, Retain As Published, Retain Handling; 3.x: QoS).
 * Returns the bytes written, -ENOBUFS when @cap is too small, or -EINVAL
 * for a filter over 65,535 bytes or QoS / Retain Handling over 3.
 */
int mqtt_sub_encode(uint8_t version, const struct mqtt_sub *sub, bool unsubscribe, uint8_t *buf,
		    size_t cap);

/**
 * mqtt_props_user_len() / mqtt_props_user_copy() - the decoded user
 * properties gathered into one block of encoded entries, in packet order.
 * copy returns the bytes written (== mqtt_props_user_len()); @dst must hold
 * that many.
 */
uint32_t mqtt_props_user_len(const struct mqtt_props *p);
uint32_t mqtt_props_user_copy(const struct mqtt_props *p, uint8_t *dst);

/**
 * mqtt_encoded_len() - bytes mqtt_encode() will write for @pkt, or 0 if
 * the packet cannot be encoded (Remaining Length over the maximum).
 */
size_t mqtt_encoded_len(uint8_t version, const struct mqtt_packet *pkt);

/**
 * mqtt_encode() - encode @pkt for protocol @version into @buf.
 * Properties are written only for MQTT 5.  Returns the number of bytes
 * written, or -ENOBUFS when @cap is too small (nothing meaningful is
 * written then), or -EINVAL for a packet that cannot be encoded.
 */
int mqtt_encode(uint8_t version, const struct mqtt_packet *pkt, uint8_t *buf, size_t cap);

/**
 * mqtt_utf8_check() - 0 if @s is a well-formed MQTT UTF-8 string (no
 * surrogates, no overlongs, no U+0000) [MQTT-1.5.4-1/2], else -EILSEQ.
 */
int mqtt_utf8_check(const uint8_t *s, size_t len);

/**
 * utf8_wellformed() - 0 if @s is well-formed UTF-8 as RFC 3629 defines it
 * (U+0000 allowed: not an MQTT string; e.g. a WebSocket close reason),
 * else -EILSEQ.
 */
int utf8_wellformed(const uint8_t *s, size_t len);

/** mqtt_varint_len() - bytes needed to encode @v as a Variable Byte Integer. */
unsigned mqtt_varint_len(uint32_t v);

/** mqtt_type_name() - "CONNECT", "PUBLISH", ... for logs; "?" if unknown. */
const char *mqtt_type_name(uint8_t type);

#endif
