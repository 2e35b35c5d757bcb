/*
 * msg.h - an application message: immutable once built, reference-counted.
 *
 * One PUBLISH becomes one struct msg, shared by every subscriber on every
 * shard, by the retained store and by session queues.  Everything variable
 * (topic, payload, forwarded MQTT 5 properties, the publisher's client id)
 * lives in one allocation after the header.
 *
 * Owner:    nobody in particular: whoever holds a reference.
 * Lifetime: msg_new() returns it with one reference; msg_ref()/msg_unref()
 *           manage references; the last msg_unref() frees it, on whichever
 *           thread that happens (jemalloc handles frees of memory from
 *           another thread's arena; see docs/architecture.md for why this
 *           replaces batching releases back to the creating shard).
 * Shared:   yes, read-only after msg_new(); only `refs` changes, atomically.
 */
#ifndef RINGMQ_MSG_H
#define RINGMQ_MSG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ringmq/mqtt.h"

struct msg {
	_Atomic uint32_t refs; /* 0 = transient (see msg_transient) */
	uint8_t qos; /* QoS it was published with */
	bool retain; /* RETAIN flag as published */
	bool has_payload_format;
	uint8_t payload_format;
	uint64_t expiry_at_ms; /* CLOCK_MONOTONIC ms, 0 = never expires */
	struct mqtt_str topic;
	struct mqtt_str payload;
	struct mqtt_str content_type; /* len 0 = absent (below: has_* bits) */
	struct mqtt_str response_topic;
	struct mqtt_str correlation_data;
	struct mqtt_str user; /* encoded user-property entries */
	struct mqtt_str origin; /* publisher's client id (no-local) */
	uint8_t has; /* MSG_HAS_* for the optional strings */
	struct msg *clone; /* transient only: the heap copy made by msg_keep() */
	/* The acknowledgement waiting for this message's records (persist.h):
	 * the publisher's shard and its ticket there.  Read only by shards that
	 * receive the message on an item flagged SHARD_OP_F_ACK. */
	uint32_t ack_origin;
	uint64_t ack_ticket;
	uint8_t data[];
};

#define MSG_HAS_CONTENT_TYPE 0x01
#define MSG_HAS_RESPONSE_TOPIC 0x02
#define MSG_HAS_CORRELATION 0x04

/**
 * msg_new() - build a message from a decoded PUBLISH (or will) @p.
 * @props: the MQTT 5 properties to forward (NULL for 3.x).
 * @origin/@origin_len: the publisher's client id.
 * @now_ms: CLOCK_MONOTONIC now, for the expiry deadline.
 * Copies everything it keeps.  Returns NULL on allocation failure.
 */
struct msg *msg_new(const struct mqtt_str *topic, const struct mqtt_str *payload, uint8_t qos,
		    bool retain, const struct mqtt_props *props, const uint8_t *origin,
		    uint32_t origin_len, uint64_t now_ms);

/**
 * msg_transient() - describe a PUBLISH in place, without copying or
 * allocating: @tm's views point into the caller's buffers (the receive
 * buffer, the session's client id), which must outlive every use of @tm.
 * Most QoS 0 messages are delivered at once to online subscribers on the
 * same shard and never need more; whoever must keep the message calls
 * msg_keep(), which makes one heap copy on first use.  Returns false (and
 * the caller uses msg_new()) when @props carries user properties, which
 * are not contiguous in the packet.  End with msg_transient_done().
 */
bool msg_transient(struct msg *tm, const struct mqtt_str *topic, const struct mqtt_str *payload, uint8_t qos,
		   bool retain, const struct mqtt_props *props, const uint8_t *origin, uint32_t origin_len,
		   uint64_t now_ms);

/**
 * msg_copy() - a heap message with the contents of @view (any message,
 * its strings anywhere, user properties included) and the expiry deadline
 * @expiry_at_ms (CLOCK_MONOTONIC, 0 = never).  NULL when out of memory.
 */
struct msg *msg_copy(const struct msg *view, uint64_t expiry_at_ms);

/** msg_transient_done() - release the heap copy msg_keep() may have made. */
void msg_transient_done(struct msg *tm);

/** msg_ref() - one more reference to a heap message (never a transient one). */
static inline struct msg *msg_ref(struct msg *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	return m;
}

/**
 * msg_keep() - a reference that outlives the current packet: msg_ref() for
 * a heap message; for a transient one, a reference to its heap copy (made
 * on the first call).  NULL when that copy cannot be allocated.
 */
struct msg *msg_keep(struct msg *m);

/** msg_unref() - drop one reference; frees on the last.  NULL-safe; returns NULL. */
struct msg *msg_unref(struct msg *m);

/** msg_expired() - true if the message's expiry has passed at @now_ms. */
static inline bool msg_expired(const struct msg *m, uint64_t now_ms)
{
	return m->expiry_at_ms != 0 && now_ms >= m->expiry_at_ms;
}

/**
 * msg_props() - fill @p with the message's forwarded MQTT 5 properties, the
 * Message Expiry Interval set to the time remaining at @now_ms
 * [MQTT-3.3.2-6].  Views point into @m.
 */
void msg_props(const struct msg *m, uint64_t now_ms, struct mqtt_props *p);

/** msg_size() - bytes the message accounts for in queue limits. */
uint32_t msg_size(const struct msg *m);

#endif
