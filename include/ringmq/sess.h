/*
 * sess.h - an MQTT session: subscriptions, queued and inflight messages,
 * will, expiry.  Lives on the home shard of its client id.
 *
 * Owner:    the home shard (`owner_shard`); every exported function asserts
 *           shard_self() is that shard.
 * Lifetime: created by CONNECT (sess_attach) when no session exists or
 *           Clean Start is set; ended (sess_end) when a connection with
 *           session expiry 0 closes, when its expiry passes while offline,
 *           or when Clean Start replaces it.  Ending a session removes its
 *           subscriptions from the trie and the route index, drops its
 *           queue, and publishes a pending will.
 * Shared:   never; other shards reach it only through messages to its
 *           home shard.
 */
#ifndef RINGMQ_SESS_H
#define RINGMQ_SESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringmq/limits.h"
#include "ringmq/msg.h"

struct shard;
struct conn;

/* One subscription as the session remembers it (the trie holds the same). */
struct sess_sub {
	uint8_t *filter;
	uint16_t len;
	uint8_t options;
	uint32_t sub_id;
};

/* One message on its way to this session.  `m` holds a reference. */
struct deliv {
	struct msg *m;
	uint16_t pid;
	uint8_t qos;
	uint8_t state; /* enum deliv_state */
	bool retain;
	uint8_t nsubids;
	bool flowed; /* a flow record (state, packet id) exists besides the delivery record */
	uint32_t share_id; /* shared group it came through, 0 = none */
	uint32_t *subids; /* owned, nsubids entries */
	uint64_t seq; /* its record in the store (persist.h); 0 = not recorded */
	uint32_t op_at, op_batch; /* where its put waits in the shard's unsent batch (persist.c) */
};

enum deliv_state {
	DELIV_QUEUED = 0,
	DELIV_WAIT_PUBACK = 1, /* QoS 1 sent */
	DELIV_WAIT_PUBREC = 2, /* QoS 2 sent */
	DELIV_WAIT_PUBCOMP = 3, /* PUBREL sent */
};

struct sess {
	unsigned owner_shard;
	char *client_id; /* NUL-terminated copy */
	char *username; /* who last connected to it; NULL = anonymous (ACL checks) */
	uint16_t id_len;
	uint8_t version;
	bool stored; /* recorded in the store (persist.h): it has an expiry */
	uint64_t next_seq; /* the last delivery sequence number given out */
	struct conn *conn; /* NULL while offline */
	struct sess *hnext; /* session table chain */
	uint32_t expiry_s; /* 0xFFFFFFFF = never */
	uint64_t offline_since_ms;
	uint64_t match_gen; /* de-duplication of overlapping matches */
	uint8_t match_qos;
	bool match_retain;
	uint8_t match_nsubids;
	uint32_t match_subids[SUBSCRIPTION_IDS_MAX];
	struct sess *match_next;

	struct sess_sub *subs;
	uint32_t sub_count, sub_cap;
	/* Open-addressing index over subs (slot = index + 1, 0 = empty), built
	 * once a session holds more than SUB_INDEX_FROM filters, so SUBSCRIBE
	 * and UNSUBSCRIBE cost the same with 1 or 100,000 subscriptions held. */
	uint32_t *sub_index;
	uint32_t sub_index_mask;
	uint32_t sub_index_used; /* slots taken, deleted ones (tombstones) included */

	/* Inflight server -> client (QoS 1/2), at most inflight_max live
	 * entries: a ring of inflight_cap (a power of two) slots, oldest at
	 * inflight_head, inflight_span slots from there in send order.  An
	 * acknowledged entry becomes a hole (m == NULL) that the head skips, so
	 * entries never move and removal is O(1) in any order.  Once the ring
	 * passes 64 slots, a 65,536-bit set of packet ids in use and a map from
	 * packet id to slot (264 KiB, only for sessions with such windows)
	 * make id allocation and acknowledgement lookup O(1) as well. */
	struct deliv *inflight;
	uint32_t inflight_head, inflight_span, inflight_count, inflight_cap, inflight_max;
	uint64_t *pid_used;
	uint32_t *pid_slot;
	uint16_t next_pid;
	/* Waiting for room in the inflight window, FIFO ring. */
	struct deliv *queue;
	uint32_t q_head, q_len, q_cap;
	uint64_t q_bytes;
	uint64_t q_dropped; /* drops since the queue was last full (for the log) */

	/* QoS 2 packet ids received and not yet released (exactly once). */
	uint64_t *qos2_in; /* 65536-bit set, allocated on first use */

	/* Will. */
	struct msg *will;
	uint32_t will_delay_s;
	uint64_t will_at_ms; /* 0 = not scheduled */
};

struct sess_table;

struct sess_table *sess_table_new(void);
struct sess_table *sess_table_free(struct shard *s, struct sess_table *t);
struct sess *sess_find(struct sess_table *t, const uint8_t *id, uint32_t len);
uint32_t sess_table_count(const struct sess_table *t);

/**
 * sess_new() - a new empty session for @id, inserted in the shard's table.
 * NULL when out of memory.
 */
struct sess *sess_new(struct shard *s, const uint8_t *id, uint32_t len, uint8_t version);

/**
 * sess_end() - end the session: publish a pending will, remove its
 * subscriptions, drop queue and inflight, unlink and free it.
 */
void sess_end(struct shard *s, struct sess *se);

/** sess_detach() - the connection went away; keep or end per expiry, handle the will. */
void sess_detach(struct shard *s, struct sess *se, bool publish_will);

/**
 * sess_deliver() - one matching message for this session: send now if
 * online and inside the window, else queue (bounded; drops are counted).
 * @share_id: the shared group it came through (0: none); if the session
 * ends before the message is acknowledged, it goes to another member.
 */
void sess_deliver(struct shard *s, struct sess *se, struct msg *m, uint8_t qos, bool retain,
		  const uint32_t *subids, uint8_t nsubids, uint32_t share_id);

/** sess_resume() - on (re)connect: resend inflight with DUP, then drain the queue. */
void sess_resume(struct shard *s, struct sess *se);
/** sess_pump() - move queued messages into the inflight window while room. */
void sess_pump(struct shard *s, struct sess *se);

/** sess_ack() - PUBACK/PUBREC/PUBCOMP from the client for @pid. */
int sess_ack(struct shard *s, struct sess *se, uint8_t type, uint16_t pid);

/** sess_ack_drop() - end the flow of @pid early (PUBREC with a failure reason). */
void sess_ack_drop(struct shard *s, struct sess *se, uint16_t pid);

/** sess_sub_add()/sess_sub_del() - remember a subscription (returns 0, -ENOMEM, -EDQUOT). */
int sess_sub_add(struct sess *se, const uint8_t *f, uint16_t len, uint8_t options, uint32_t sub_id,
		 uint32_t max, bool *ret_existed);
int sess_sub_del(struct sess *se, const uint8_t *f, uint16_t len);

/** sess_unsubscribe() - remove filter @f of @se from the trie/route index or its shared group. */
void sess_unsubscribe(struct shard *s, struct sess *se, const uint8_t *f, size_t len);

/**
 * sess_restore_deliv() - put a delivery read from the store back (start-up):
 * in flight with its packet id, or queued.  Takes @d's references.
 * 0 or -ENOMEM.
 */
int sess_restore_deliv(struct shard *s, struct sess *se, struct deliv *d);

/** sess_qos2_mark() - a QoS 2 packet id received and not yet released. 0 or -ENOMEM. */
int sess_qos2_mark(struct sess *se, uint16_t pid);

/** sess_sweep() - expire offline sessions and fire due wills. */
void sess_sweep(struct shard *s);

/** sess_publish_will() - publish and drop the session's will now. */
void sess_publish_will(struct shard *s, struct sess *se);

#endif
