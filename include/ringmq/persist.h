/*
 * persist.h - a shard's side of the durable store (store.h): change
 * records for the sessions and retained messages it touches,
 * acknowledgements that wait for a commit, and restore at start-up.
 *
 * Change records.  Every change to durable state is appended to the
 * shard's batch of the current loop turn (record.h op stream); the batch
 * goes to the store thread at the end of the turn (persist_turn_end), so a
 * burst of publishes costs one hand-over and, in the store, one commit.
 * Only sessions with an expiry (se->stored) and QoS 1/2 deliveries to them
 * are recorded; QoS 0 messages and clean sessions never touch the store.
 *
 * Acknowledgements (durability sync).  A QoS 1/2 PUBLISH is acknowledged
 * only when every record it caused is committed.  Those records are made
 * on several shards (the subscribers' home shards), so the PUBLISH gets a
 * ticket on its own shard with a count of parts: one per copy sent to
 * another shard (the item carries SHARD_OP_F_ACK and the message carries
 * the ticket), plus one for this shard's own records.  A shard that
 * handles a flagged item answers its part after the commit of the batch
 * holding the records it made for it, or at once if it made none
 * (SHARD_OP_ACK back to the origin).  Acknowledgements leave each shard in
 * the order their PUBLISHes arrived.
 *
 * Owner:    struct persist_shard - its shard.
 * Lifetime: set up by persist_shard_init() in the shard's start-up (which
 *           also restores the shard's sessions), torn down by
 *           persist_shard_fini() when the shard stops (its last batch is
 *           handed to the store first).
 * Shared:   never; batches move by ownership (store.h).
 */
#ifndef RINGMQ_PERSIST_H
#define RINGMQ_PERSIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct shard;
struct broker;
struct sess;
struct deliv;
struct conn;
struct msg;
struct store_batch;

/* One acknowledgement waiting for its parts. */
struct persist_ack {
	uint64_t ticket;
	uint32_t slot, gen; /* the connection (conn.h user_data fields) */
	uint16_t pid;
	uint16_t parts; /* not yet answered */
	uint8_t type; /* MQTT_PUBACK, MQTT_PUBREC or MQTT_PUBCOMP */
	uint8_t reason; /* the reason code when it succeeds */
	int8_t status; /* 0, or the first failure (-ENOSPC / -EIO) */
	uint64_t since_ms; /* when it began waiting (STORE_ACK_TIMEOUT_MS) */
	bool qos2; /* a QoS 2 PUBLISH: on failure its packet id is released */
};

struct persist_shard {
	struct store_batch *cur; /* this turn's changes */
	struct store_batch *pending; /* batches the store's ring had no room for, oldest first */
	uint32_t at_store; /* batches handed to the store and not back yet */
	uint32_t batch_no; /* number of the current batch (deliveries remember it: persist.c) */
	struct persist_ack *acks; /* FIFO ring by ticket */
	uint32_t ack_head, ack_len, ack_cap;
	uint64_t next_ticket;
	/* The PUBLISH being routed (origin) or the flagged item being handled. */
	struct {
		bool on;
		uint32_t origin;
		uint64_t ticket;
		uint32_t sent; /* flagged copies sent on */
		size_t mark; /* batch length when it began */
	} ctx;
};

/** persist_gating() - acknowledgements wait for commits (durability sync). */
bool persist_gating(const struct shard *s);
/** persist_failing() - the store's latest commit failed (publishes needing it are refused). */
bool persist_failing(const struct shard *s);

/* ---- change records (no-ops without a store or for a session not stored) ---- */

/** persist_sess_put() - record the session (if it has an expiry; else forget it). */
void persist_sess_put(struct shard *s, struct sess *se);
/** persist_sess_del() - forget the session and everything recorded for it. */
void persist_sess_del(struct shard *s, struct sess *se);
void persist_sub_put(struct shard *s, struct sess *se, const uint8_t *f, uint16_t len, uint8_t options,
		     uint32_t sub_id);
void persist_sub_del(struct shard *s, struct sess *se, const uint8_t *f, uint16_t len);
/** persist_deliv_put() - record a new delivery (gives @d its sequence number). */
void persist_deliv_put(struct shard *s, struct sess *se, struct deliv *d);
/** persist_deliv_flow() - @d (recorded) changed state or got its packet id. */
void persist_deliv_flow(struct shard *s, struct sess *se, struct deliv *d);
/** persist_deliv_del() - @d is finished (acknowledged, expired or discarded). */
void persist_deliv_del(struct shard *s, struct sess *se, const struct deliv *d);
void persist_q2in(struct shard *s, struct sess *se, uint16_t pid, bool on);
/** persist_retain() - the retained message of @m's topic is now @m (empty payload: none). */
void persist_retain(struct shard *s, const struct msg *m);

/* ---- acknowledgements ---- */

/** persist_ack_open() - a QoS 1/2 PUBLISH starts routing (only when gating). */
void persist_ack_open(struct shard *s);
/**
 * persist_ack_carries() - a copy of @m is about to go to another shard:
 * true if it must carry SHARD_OP_F_ACK, i.e. @m is the message whose
 * ticket is open here (counted when persist_ack_sent() confirms it left).
 */
bool persist_ack_carries(const struct shard *s, const struct msg *m);
void persist_ack_sent(struct shard *s);
/**
 * persist_ack_close() - routing done: the acknowledgement (@type with
 * @reason, for @pid on @c) goes once every part is committed.
 */
void persist_ack_close(struct shard *s, struct conn *c, uint8_t type, uint16_t pid, uint8_t reason, bool qos2);
/**
 * persist_ack_queue() - an acknowledgement that only has to keep its place
 * behind earlier ones, plus this shard's records of this packet if any
 * were made since @mark (persist_mark()).
 */
void persist_ack_queue(struct shard *s, struct conn *c, uint8_t type, uint16_t pid, uint8_t reason, size_t mark);
/** persist_mark() - where this shard's batch stands now. */
size_t persist_mark(const struct shard *s);

/** persist_item_begin()/persist_item_end() - around handling an item flagged SHARD_OP_F_ACK. */
void persist_item_begin(struct shard *s, const struct msg *m);
void persist_item_end(struct shard *s);
/** persist_ack_in() - SHARD_OP_ACK: one part of @ticket answered with @status. */
void persist_ack_in(struct shard *s, uint64_t ticket, int status);

/* ---- the loop ---- */

/** persist_turn_end() - hand this turn's batch to the store. */
void persist_turn_end(struct shard *s);
/** persist_drain() - batches the store handed back: answer their parts. */
void persist_drain(struct shard *s);
/** persist_sweep() - fail acknowledgements that waited past STORE_ACK_TIMEOUT_MS. */
void persist_sweep(struct shard *s);
/** persist_idle() - nothing from the store waits (checked before sleeping). */
bool persist_idle(struct shard *s);

/* ---- start-up and shutdown ---- */

/** persist_restore_retained() - load retained messages (main, before the shards). 0 or -errno. */
int persist_restore_retained(struct broker *b);
/** persist_shard_init() - set up and restore this shard's sessions.  0 or -errno. */
int persist_shard_init(struct shard *s);
void persist_shard_fini(struct shard *s);

#endif
