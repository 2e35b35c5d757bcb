/*
 * shard.h - a shard: one thread, one io_uring, its own connections,
 * sessions and local trie; and the broker object that holds them all.
 *
 * Owner:    struct shard - its own thread.  Nothing in it is touched by
 *           another thread except the inbound rings (spsc.h) and the
 *           atomics marked "any thread".
 *           struct broker - main; read-only for shards after start except
 *           the atomics marked.
 * Lifetime: broker_new() in main before any shard starts; shards are
 *           started by broker_start() and joined by broker_stop();
 *           broker_free() after that.
 * Shared:   the broker is read by all shards; route index and retained
 *           store inside it have their own sharing rules (route.h,
 *           retain.h).
 */
#ifndef RINGMQ_SHARD_H
#define RINGMQ_SHARD_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ringmq/config.h"
#include "ringmq/net.h"
#include "ringmq/persist.h"
#include "ringmq/spsc.h"
#include "ringmq/sys.h"

struct conn;
struct msg;
struct sess;
struct trie;
struct route;
struct retain;
struct broker;
struct share_local;
struct share_registry;
struct auth_db;
struct backoff;
struct tls_ctx;
struct tls_conn;
struct ws_conn;
struct acl;
struct store;

/* What crosses shards (spsc_item.op). */
enum shard_op {
	SHARD_OP_PUBLISH = 1, /* ptr: struct msg * (one reference moves with it) */
	SHARD_OP_HANDOFF = 2, /* ptr: struct handoff * (ownership moves) */
	SHARD_OP_SHARED = 3, /* ptr: struct msg * (one reference), arg: shared group id,
				bits 8..15 of op: forwards left */
	SHARD_OP_ACK = 4, /* ptr: a ticket of the target (persist.h), arg: status (int) */
};

/* On PUBLISH and SHARED items: the message carries an acknowledgement
 * ticket and the receiver owes its origin one part (persist.h). */
#define SHARD_OP_F_ACK (1u << 16)

/* A socket moving from its accepting shard to its client id's home shard,
 * with the bytes already read (the CONNECT packet and anything after it). */
struct handoff {
	int fd;
	struct tls_conn *tls; /* TLS session, moving with the socket; NULL for plain */
	struct ws_conn *ws; /* WebSocket state, moving with the socket; NULL for MQTT listeners */
	unsigned listener;
	uint64_t accepted_ms;
	uint32_t len;
	char peer[64];
	uint8_t bytes[];
};

/* Items waiting for room in a full ring to one target shard. */
struct shard_backlog {
	struct spsc_item *items;
	uint32_t head, len, cap;
};

/* Why a message was dropped (shard_stats.drops; every drop also counts in
 * `dropped`). */
enum shard_drop {
	SHARD_DROP_QUEUE_FULL = 0, /* a session's queue at max_queued_messages / max_queued_bytes */
	SHARD_DROP_OUTPUT_LIMIT = 1, /* a client that does not read: max_output_bytes */
	SHARD_DROP_PACKET_SIZE = 2, /* over message_size_limit or the client's Maximum Packet Size */
	SHARD_DROP_BACKLOG_FULL = 3, /* another shard's ring and backlog are full */
	SHARD_DROP_NO_MEMBER = 4, /* a shared group lost its members while the message travelled */
	SHARD_DROP_NO_MEMORY = 5, /* out of memory */
	SHARD_DROP_MEMORY_LIMIT = 6, /* the broker-wide max_queued_bytes_total */
	SHARD_DROP_CAUSES = 7,
};

/* Per-shard counters; written by the shard, read by stats with relaxed loads. */
struct shard_stats {
	_Atomic uint64_t conns;
	_Atomic uint64_t msgs_in;
	_Atomic uint64_t msgs_out;
	_Atomic uint64_t bytes_in;
	_Atomic uint64_t bytes_out;
	_Atomic uint64_t dropped;
	_Atomic uint64_t subs; /* subscriptions held by this shard's sessions */
	/* Observability (stats.h, docs/operations.md).  Each counter is
	 * written only by its shard, where the event happens. */
	_Atomic uint64_t pkts_in; /* MQTT packets received (whole frames), every type */
	_Atomic uint64_t pkts_out; /* MQTT packets queued for sending, every type */
	_Atomic uint64_t pub_bytes_in; /* PUBLISH payload bytes received */
	_Atomic uint64_t pub_bytes_out; /* PUBLISH payload bytes queued for sending */
	_Atomic uint64_t sockets; /* TCP connections accepted */
	_Atomic uint64_t connects; /* CONNECTs accepted (a session attached) */
	_Atomic uint64_t sessions; /* gauge: sessions whose home is this shard */
	_Atomic uint64_t expired; /* sessions ended by their expiry */
	_Atomic uint64_t shared_subs; /* gauge: shared subscriptions of this shard's sessions */
	_Atomic uint64_t stored; /* gauge: messages queued or in flight for sessions */
	_Atomic uint64_t stored_bytes; /* gauge: their payload bytes */
	_Atomic uint64_t drops[SHARD_DROP_CAUSES]; /* dropped messages by cause */
	_Atomic uint64_t backlog; /* gauge: items in the outbound backlogs */
	_Atomic uint64_t wait_ns; /* time asleep waiting for completions */
	_Atomic uint64_t turns; /* loop turns */
	_Atomic uint64_t cq_overflow; /* times the completion queue was found overflowed (the kernel kept the rest) */
	_Atomic uint64_t last_turn_ms; /* CLOCK_MONOTONIC of the latest loop turn (health) */
	uint64_t wait_start_ns; /* the shard's own: when its current wait began */
};

/*
 * stat_add() / stat_sub() - a shard's own counter: it has one writer (its
 * shard), so a relaxed load and store suffice and no locked instruction is
 * paid per event; other threads read whole values with relaxed loads.
 */
static inline void stat_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v, memory_order_relaxed);
}

static inline void stat_sub(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - v, memory_order_relaxed);
}

struct shard {
	unsigned id;
	struct broker *b;
	pthread_t thread;
	struct io_uring ring;
	int ring_fd; /* for IORING_OP_MSG_RING from other shards; any thread reads */
	struct net_bufring bufs;
	int listen_fds[CONFIG_LISTENERS_MAX];
	bool accept_armed[CONFIG_LISTENERS_MAX];

	/* Connections: slot table with generations (see conn.h for user_data). */
	struct conn **conns;
	uint32_t conn_cap, conn_count;
	uint32_t *free_slots;
	uint32_t free_count;
	struct conn *closing; /* freed at the end of the loop turn */
	struct conn *dirty; /* have output to flush at the end of the turn */

	/* Sessions whose home is this shard. */
	struct sess_table *sessions;
	struct trie *trie;
	struct share_local *shares;
	uint64_t rng; /* xorshift state for random choices */
	uint64_t match_gen;
	/* Encode-once cache, valid only inside one publish_local() fan-out: the
	 * QoS 0 PUBLISH bytes of one message for one (version, retain). */
	struct {
		bool on;
		bool retain;
		uint8_t version;
		const struct msg *m;
		uint8_t *buf;
		uint32_t len, cap;
	} enc;

	/* Inbound rings: in[from] is written by shard `from` (lazily created). */
	struct spsc *_Atomic *in;
	/* Outbound backlogs per target shard when its ring was full. */
	struct shard_backlog *backlog;
	bool backlog_any;

	uint64_t now_ms; /* CLOCK_MONOTONIC, refreshed each loop turn */
	uint64_t next_sweep_ms;
	uint64_t next_sys_ms; /* shard 0: next $SYS publication */
	uint64_t id_counter;
	bool stopping;
	bool draining;
	bool engine; /* no io_uring, no sockets: the protocol engine alone (shard_engine_begin) */
	bool memory_limit_logged; /* one line when the global limit starts dropping */
	struct persist_shard ps; /* the store's side (persist.h) */
	struct shard_stats stats;
};

struct broker {
	struct config *cfg;
	unsigned nshards;
	struct shard *shards;
	struct route *route;
	struct retain *retain;
	struct share_registry *shares;
	/* Password file, NULL = none.  Read-only; replaced as a whole by a
	 * SIGHUP reload (rcu_assign_pointer from main, old one freed after a
	 * grace period), so shards read it with rcu_dereference() and never
	 * keep it across a loop turn. */
	struct auth_db *auth;
	struct acl *acl; /* acl_file, NULL = none; same rules as auth */
	struct backoff *backoff; /* failed-login back-off, atomics only (backoff.h) */
	struct store *store; /* durable store (store.h), NULL without persistence; main owns */
	int *ring_fds; /* the shards' io_uring fds, for the store's wake-ups */
	struct tls_ctx *tls[CONFIG_LISTENERS_MAX]; /* TLS listeners' contexts (main owns), else NULL */
	uint16_t ports[CONFIG_LISTENERS_MAX]; /* bound ports, resolved by shard 0 */
	_Atomic bool stop; /* any thread */
	_Atomic bool draining; /* any thread: SIGUSR1 sends clients elsewhere */
	_Atomic int64_t conns_total; /* any thread: client connections now */
	_Atomic unsigned started; /* shards that finished start-up */
	_Atomic int start_error;
	/* any thread: the listening sockets are open (main opens them once every
	 * shard has started and restored its state; shards then arm accepts) */
	_Atomic bool listening;
	pthread_mutex_t start_lock;
	pthread_cond_t start_cond;
	uint64_t start_ms;
	/* Observability (stats.h). */
	_Atomic int64_t clients_now; /* any thread: sessions with a live connection */
	_Atomic int64_t clients_max; /* any thread: the highest clients_now seen */
	_Atomic uint64_t heap_max; /* any thread: the highest heap figure sampled */
	struct sys_state sys; /* shard 0 only: $SYS load averages (sys.h) */
};

/** broker_new() - allocate the broker for @cfg (not started). NULL on ENOMEM. */
struct broker *broker_new(struct config *cfg);
/**
 * broker_start() - start all shards, open listeners, return once every shard
 * listens (0) or one failed (negative errno, reason logged; shards that
 * started are stopped again).
 */
int broker_start(struct broker *b);
/** broker_stop() - ask every shard to shut down cleanly and join them. */
void broker_stop(struct broker *b);
/** broker_free() - free after broker_stop(); NULL-safe; returns NULL. */
struct broker *broker_free(struct broker *b);

/**
 * shard_engine_begin() - make shard 0 of @b (one shard, not started) the
 * calling thread's shard without io_uring, sockets or a loop: connections
 * made with conn_new(s, -1, 0) get their bytes through conn_input(), their
 * output is taken whole by conn_flush_all(), and the caller runs
 * conn_reap(), sess_sweep() and conn_sweep() itself.  For the stateful
 * fuzz target and tests.  Returns the shard, NULL on ENOMEM.
 */
struct shard *shard_engine_begin(struct broker *b);
/** shard_engine_end() - close every connection and free the shard's state (before broker_free). */
void shard_engine_end(struct shard *s);

/** shard_self() - the calling thread's shard, NULL outside shards. */
struct shard *shard_self(void);

/** shard_now_ms() - CLOCK_MONOTONIC in milliseconds. */
uint64_t shard_now_ms(void);

/**
 * shard_send() - queue @it for shard @to (never the caller's own shard),
 * waking it if needed; when the ring is full the item waits in a bounded
 * backlog.  Returns 0, or -ENOBUFS when the backlog is also full (the
 * caller drops and counts; the item was not taken).
 */
int shard_send(struct shard *s, unsigned to, const struct spsc_item *it);

/**
 * shard_cq_check() - count it when the kernel reports that completions
 * overflowed this shard's completion queue (IORING_SQ_CQ_OVERFLOW: kept
 * in the kernel, delivered when the queue has room again).
 */
void shard_cq_check(struct shard *s);

/** shard_wake_fd() - wake the io_uring behind @fd (MSG_RING, submitted with this turn). */
void shard_wake_fd(struct shard *s, int fd);

/** shard_home() - the home shard of a client id. */
unsigned shard_home(const struct broker *b, const uint8_t *id, uint32_t len);

#endif
