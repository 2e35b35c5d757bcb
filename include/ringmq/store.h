/*
 * store.h - the durable store: LMDB behind one writer thread.
 *
 * Shards never call LMDB while serving.  Each shard collects the changes
 * of one loop turn (record.h op stream) into a struct store_batch and
 * hands it to the store thread through its own SPSC ring; the thread
 * applies every batch that arrived meanwhile in one write transaction and
 * one commit (group commit), then hands each batch back to its shard with
 * the outcome.  A shard that made an acknowledgement wait for a batch
 * sends it when the batch comes back committed (durability sync).
 *
 * Reads happen only at start-up (store_scan, before the listeners accept),
 * from any thread: LMDB readers take no locks (MDB_NOTLS).
 *
 * Owner:    main opens and closes the store; the store thread owns the
 *           write transaction and the environment's map size; a batch is
 *           owned by whoever holds it (shard -> store thread -> shard).
 * Lifetime: store_open() before the shards start (they restore from it);
 *           store_start() once they run; store_stop() after they stopped
 *           (it commits what is left); store_close() last.
 * Shared:   the rings (one producer, one consumer each) and the atomics in
 *           struct store_stats.
 */
#ifndef RINGMQ_STORE_H
#define RINGMQ_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringmq/record.h"

struct store;

/* One acknowledgement that waits for a batch: the shard that owns the
 * PUBLISH (origin) and its ticket there. */
struct store_token {
	uint32_t origin;
	uint64_t ticket;
};

struct store_batch {
	struct store_batch *next; /* the holder's own lists */
	unsigned shard;
	int status; /* after the commit: 0, -ENOSPC (new data refused: store full) or -EIO */
	bool answer_only; /* from the writer: the tokens of a batch it keeps for retrying */
	bool refused_new; /* writer: its last commit left this batch's new messages out */
	struct rec_buf ops;
	struct store_token *tokens;
	uint32_t ntok, tok_cap;
};

struct store_opts {
	const char *dir;
	uint64_t map_size; /* initial LMDB map size, bytes */
	uint64_t map_max; /* the map grows up to this; then new data is refused */
	unsigned durability; /* enum durability (config.h) */
	uint32_t commit_interval_ms; /* batch: time between commits */
	unsigned nshards;
	bool read_only; /* inspection: no lock, no writer */
};

/* Figures for $SYS, /metrics and `ringmq store stats`; any thread reads. */
struct store_stats {
	_Atomic uint64_t commits;
	_Atomic uint64_t batches; /* batches committed */
	_Atomic uint64_t ops;
	_Atomic uint64_t bytes; /* op bytes applied */
	_Atomic uint64_t commit_us_last;
	_Atomic uint64_t commit_us_max;
	_Atomic uint64_t errors; /* failed commits */
	_Atomic uint64_t refused; /* batches whose new data was refused (store full) */
	_Atomic uint64_t map_size;
	_Atomic uint64_t map_used;
	_Atomic uint64_t corrupt; /* records skipped at start-up */
	_Atomic bool failing; /* the latest commit failed: QoS 1/2 publishes are refused */
};

/**
 * store_open() - open (create) the store in @o->dir: the directory (0700),
 * an exclusive lock on its lock file (another process using it is an
 * error), the LMDB environment (files 0600) and its databases, and the
 * format check.  NULL with a message in @err on failure.
 */
struct store *store_open(const struct store_opts *o, char *err, size_t errlen);

/**
 * store_start() - start the writer thread.  @ring_fds[i] is shard i's
 * io_uring fd, woken with IORING_OP_MSG_RING (@wake_ud as user_data) when
 * its completion ring goes from empty to not empty.  0 or -errno.
 */
int store_start(struct store *st, const int *ring_fds, uint64_t wake_ud);

/** store_stop() - commit what is queued, stop and join the writer. */
void store_stop(struct store *st);

/** store_close() - close the environment and free; NULL-safe; returns NULL. */
struct store *store_close(struct store *st);

/** store_ring_fd() - the writer's io_uring fd, for shards' wake-ups. */
int store_ring_fd(const struct store *st);

/**
 * store_submit() - shard @shard hands @b over.  Returns 1 when the writer
 * must be woken (MSG_RING to store_ring_fd()), 0 if not, -EAGAIN when the
 * ring is full (the shard keeps @b and tries again next turn).
 */
int store_submit(struct store *st, unsigned shard, struct store_batch *b);

/** store_done() - the next batch handed back to @shard, or NULL. */
struct store_batch *store_done(struct store *st, unsigned shard);

/** store_done_idle() - true if nothing waits for @shard (its check before sleeping). */
bool store_done_idle(struct store *st, unsigned shard);

/** store_stats() - the live figures. */
struct store_stats *store_stats(struct store *st);

/**
 * store_scan() - call @fn for every record of database @db whose key
 * starts with @prefix (@plen 0: all), in key order, in one read
 * transaction.  @fn returns 0 to go on, anything else to stop (returned).
 */
typedef int (*store_scan_fn)(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen);
int store_scan(struct store *st, unsigned db, const uint8_t *prefix, size_t plen, store_scan_fn fn, void *ctx);

/** store_count() - records in database @db (-errno on failure). */
int64_t store_count(struct store *st, unsigned db);

/** store_batch_new()/store_batch_free() - a batch (shard side). */
struct store_batch *store_batch_new(unsigned shard);
void store_batch_free(struct store_batch *b);
/** store_batch_token() - make the acknowledgement @t wait for @b; false when out of memory. */
bool store_batch_token(struct store_batch *b, struct store_token t);

/** store_wall_ms() - CLOCK_REALTIME in milliseconds (what records keep). */
uint64_t store_wall_ms(void);

/** store_last_clock() - the wall clock of the last commit before this start (0: none). */
uint64_t store_last_clock(const struct store *st);

/**
 * store_inspect() - `ringmq store stats|dump|check` on @dir (read-only,
 * safe while the broker runs).  Prints to stdout; returns the exit status.
 */
int store_inspect(const char *dir, const char *what);

#endif
