/*
 * store.c - LMDB environment, the writer thread and group commit.
 *
 * The writer loop:
 *   1. take every batch waiting in the shards' rings (and batches kept
 *      from a failed commit, first, in their order);
 *   2. apply them all in one write transaction; MDB_MAP_FULL doubles the
 *      map and starts the transaction again, up to persistence_max_size;
 *      at that size the transaction is redone without the puts of new
 *      messages (those batches report -ENOSPC), so deletions and session
 *      changes still land and nothing stored is touched;
 *   3. commit (with sync unless durability is none);
 *   4. hand every batch back to its shard with the outcome and wake it.
 * A failed commit (I/O error, disk full) reports -EIO to the waiting
 * acknowledgements at once, keeps the batches, sets `failing` (shards
 * then refuse QoS 1/2 publishes that need the store) and retries every
 * STORE_RETRY_MS until a commit succeeds, so the changes of sessions and
 * deliveries are never silently lost.
 * Under durability batch the loop commits at most every
 * commit_interval_ms, gathering what arrives in between.
 *
 * Testing hook: when the file named by RINGMQ_STORE_FAULT_FILE exists,
 * every commit fails as with EIO (docs/persistence.md).
 */
#include "ringmq/store.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ringmq/config.h"
#include "ringmq/limits.h"
#include "ringmq/log.h"
#include "ringmq/spsc.h"

#define STORE_WAIT_MS 100
#define META_FORMAT "format"
#define META_CLOCK "clock"

struct store {
	MDB_env *env;
	MDB_dbi dbi[REC_DB_COUNT];
	struct store_opts o;
	int lock_fd;
	uint64_t map_size;
	uint64_t last_clock;
	struct io_uring ring; /* wake-ups from shards; MSG_RING to them */
	bool ring_ok;
	pthread_t thread;
	bool running;
	_Atomic bool stop;
	struct spsc **in; /* in[shard]: shard -> writer */
	struct spsc **out; /* out[shard]: writer -> shard */
	struct store_batch **held; /* held[shard]: handed back when out[] had no room */
	const int *ring_fds;
	uint64_t wake_ud;
	struct store_batch *retry; /* batches of a failed commit, oldest first */
	const char *fault_file;
	uint64_t fail_logged_ms; /* when the last "commit failed" line was written; 0 = none since success */
	uint64_t fails_unlogged;
	struct store_stats stats;
};

uint64_t store_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ------------------------------------------------------------- batches */

struct store_batch *store_batch_new(unsigned shard)
{
	struct store_batch *b = calloc(1, sizeof(*b));
	if (b)
		b->shard = shard;
	return b;
}

void store_batch_free(struct store_batch *b)
{
	if (!b)
		return;
	rec_buf_free(&b->ops);
	free(b->tokens);
	free(b);
}

bool store_batch_token(struct store_batch *b, struct store_token t)
{
	if (b->ntok == b->tok_cap) {
		uint32_t cap = b->tok_cap ? b->tok_cap * 2 : 16;
		struct store_token *n = realloc(b->tokens, cap * sizeof(*n));
		if (!n)
			return false;
		b->tokens = n;
		b->tok_cap = cap;
	}
	b->tokens[b->ntok++] = t;
	return true;
}

/* ---------------------------------------------------------------- open */

static struct spsc *ring_new(uint32_t slots)
{
	struct spsc *r = aligned_alloc(64, (sizeof(*r) + slots * sizeof(struct spsc_item) + 63) & ~(size_t)63);
	if (!r)
		return NULL;
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	r->mask = slots - 1;
	return r;
}

static int mkdir_p(const char *dir)
{
	char path[4096];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		char c = path[i];
		path[i] = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return -errno;
		path[i] = c;
	}
	return 0;
}

static int meta_get(struct store *st, MDB_txn *txn, const char *name, uint64_t *ret)
{
	MDB_val k = {strlen(name), (void *)name}, v;
	int r = mdb_get(txn, st->dbi[REC_DB_META], &k, &v);

	if (r != 0)
		return r == MDB_NOTFOUND ? 1 : -EIO;
	return rec_get_meta_u64(v.mv_data, v.mv_size, ret);
}

static int meta_put(struct store *st, MDB_txn *txn, const char *name, uint64_t value)
{
	struct rec_buf b = {0};
	MDB_val k = {strlen(name), (void *)name}, v;
	int r;

	rec_put_meta_u64(&b, value);
	if (b.oom)
		return ENOMEM;
	v.mv_size = b.len;
	v.mv_data = b.p;
	r = mdb_put(txn, st->dbi[REC_DB_META], &k, &v, 0);
	rec_buf_free(&b);
	return r;
}

/* Open the databases and check the format.  0, or an LMDB/errno code with @err set. */
static int open_dbs(struct store *st, char *err, size_t errlen)
{
	unsigned flags = st->o.read_only ? MDB_RDONLY : 0;
	uint64_t format = 0;
	MDB_txn *txn;
	int r = mdb_txn_begin(st->env, NULL, flags, &txn);

	if (r != 0) {
		snprintf(err, errlen, "%s: cannot begin a transaction: %s", st->o.dir, mdb_strerror(r));
		return r;
	}
	for (unsigned i = 0; i < REC_DB_COUNT; i++) {
		r = mdb_dbi_open(txn, rec_db_name(i), st->o.read_only ? 0 : MDB_CREATE, &st->dbi[i]);
		if (r != 0) {
			snprintf(err, errlen, "%s: database '%s': %s", st->o.dir, rec_db_name(i),
				 r == MDB_NOTFOUND ? "missing (not a ringmq store?)" : mdb_strerror(r));
			mdb_txn_abort(txn);
			return r;
		}
	}
	r = meta_get(st, txn, META_FORMAT, &format);
	if (r == REC_NEWER || (r == 0 && format > RECORD_FORMAT)) {
		snprintf(err, errlen, "%s: written by a newer ringmq (its record format is newer than %u, the one "
			 "this ringmq reads); refusing to touch it", st->o.dir, RECORD_FORMAT);
		mdb_txn_abort(txn);
		return EPROTO;
	}
	if (r < 0) {
		snprintf(err, errlen, "%s: the format record is unreadable (corrupt store?)", st->o.dir);
		mdb_txn_abort(txn);
		return EPROTO;
	}
	if (meta_get(st, txn, META_CLOCK, &st->last_clock) != 0)
		st->last_clock = 0;
	if (r == 1 && !st->o.read_only && (r = meta_put(st, txn, META_FORMAT, RECORD_FORMAT)) != 0) {
		snprintf(err, errlen, "%s: cannot write the format record: %s", st->o.dir, mdb_strerror(r));
		mdb_txn_abort(txn);
		return r;
	}
	r = mdb_txn_commit(txn); /* also for read-only: an abort would close the database handles */
	if (r != 0)
		snprintf(err, errlen, "%s: commit: %s", st->o.dir, mdb_strerror(r));
	return r;
}

struct store *store_open(const struct store_opts *o, char *err, size_t errlen)
{
	struct store *st = calloc(1, sizeof(*st));
	char path[4200];
	unsigned flags = MDB_NOTLS | (o->read_only ? MDB_RDONLY : 0);
	int r;

	if (!st) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	st->o = *o;
	st->lock_fd = -1;
	st->map_size = o->map_size;
	st->fault_file = getenv("RINGMQ_STORE_FAULT_FILE");
	if (o->durability == DURABILITY_NONE)
		flags |= MDB_NOSYNC;
	if (!o->read_only) {
		r = mkdir_p(o->dir);
		if (r < 0) {
			snprintf(err, errlen, "%s: cannot create the directory: %s", o->dir, strerror(-r));
			return store_close(st);
		}
		snprintf(path, sizeof(path), "%s/ringmq.lock", o->dir);
		st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (st->lock_fd < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return store_close(st);
		}
		if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0) {
			snprintf(err, errlen, "%s is in use by another process (lock %s held)", o->dir, path);
			return store_close(st);
		}
	}
	r = mdb_env_create(&st->env);
	if (r == 0)
		r = mdb_env_set_maxdbs(st->env, REC_DB_COUNT);
	if (r == 0 && !o->read_only)
		r = mdb_env_set_mapsize(st->env, st->map_size);
	if (r == 0)
		r = mdb_env_open(st->env, o->dir, flags, 0600);
	if (r != 0) {
		snprintf(err, errlen, "%s: cannot open the store: %s", o->dir, mdb_strerror(r));
		return store_close(st);
	}
	if (open_dbs(st, err, errlen) != 0)
		return store_close(st);
	if (!o->read_only) {
		MDB_envinfo info;
		(void)mdb_env_info(st->env, &info);
		if (info.me_mapsize > st->map_size)
			st->map_size = info.me_mapsize; /* a map grown before keeps its size */
		atomic_store(&st->stats.map_size, st->map_size);
		st->in = calloc(o->nshards, sizeof(*st->in));
		st->out = calloc(o->nshards, sizeof(*st->out));
		st->held = calloc(o->nshards, sizeof(*st->held));
		if (!st->in || !st->out || !st->held) {
			snprintf(err, errlen, "out of memory");
			return store_close(st);
		}
		for (unsigned i = 0; i < o->nshards; i++)
			if (!(st->in[i] = ring_new(STORE_RING_SLOTS)) || !(st->out[i] = ring_new(STORE_RING_SLOTS))) {
				snprintf(err, errlen, "out of memory");
				return store_close(st);
			}
		r = io_uring_queue_init(8, &st->ring, 0);
		if (r < 0) {
			snprintf(err, errlen, "store: io_uring_queue_init: %s", strerror(-r));
			return store_close(st);
		}
		st->ring_ok = true;
	}
	return st;
}

struct store *store_close(struct store *st)
{
	if (!st)
		return NULL;
	RMQ_ASSERT(!st->running);
	if (st->env)
		mdb_env_close(st->env);
	if (st->lock_fd >= 0)
		close(st->lock_fd); /* releases the flock */
	for (unsigned i = 0; st->in && i < st->o.nshards; i++) {
		struct spsc_item it;
		while (st->in[i] && spsc_pop(st->in[i], &it))
			store_batch_free(it.ptr);
		while (st->out[i] && spsc_pop(st->out[i], &it))
			store_batch_free(it.ptr);
		free(st->in[i]);
		free(st->out[i]);
		for (struct store_batch *b = st->held[i], *n; b; b = n) {
			n = b->next;
			store_batch_free(b);
		}
	}
	for (struct store_batch *b = st->retry, *n; b; b = n) {
		n = b->next;
		store_batch_free(b);
	}
	free(st->in);
	free(st->out);
	free(st->held);
	if (st->ring_ok)
		io_uring_queue_exit(&st->ring);
	free(st);
	return NULL;
}

int store_ring_fd(const struct store *st)
{
	return st->ring.ring_fd;
}

struct store_stats *store_stats(struct store *st)
{
	return &st->stats;
}

uint64_t store_last_clock(const struct store *st)
{
	return st->last_clock;
}

/* ------------------------------------------------------------ shard side */

int store_submit(struct store *st, unsigned shard, struct store_batch *b)
{
	struct spsc_item it = {.op = 1, .ptr = b};
	return spsc_push(st->in[shard], &it);
}

struct store_batch *store_done(struct store *st, unsigned shard)
{
	struct spsc_item it;
	return spsc_pop(st->out[shard], &it) ? it.ptr : NULL;
}

bool store_done_idle(struct store *st, unsigned shard)
{
	return spsc_empty_after(st->out[shard]);
}

/* ----------------------------------------------------------------- reads */

int store_scan(struct store *st, unsigned db, const uint8_t *prefix, size_t plen, store_scan_fn fn, void *ctx)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k = {plen, (void *)prefix}, v;
	int r = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);

	if (r != 0)
		return -EIO;
	r = mdb_cursor_open(txn, st->dbi[db], &cur);
	if (r != 0) {
		mdb_txn_abort(txn);
		return -EIO;
	}
	r = mdb_cursor_get(cur, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST);
	while (r == 0) {
		if (plen && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0))
			break;
		r = fn(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
		if (r != 0)
			break;
		r = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return r == MDB_NOTFOUND ? 0 : r;
}

int64_t store_count(struct store *st, unsigned db)
{
	MDB_txn *txn;
	MDB_stat ms;
	int r = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);

	if (r != 0)
		return -EIO;
	r = mdb_stat(txn, st->dbi[db], &ms);
	mdb_txn_abort(txn);
	return r == 0 ? (int64_t)ms.ms_entries : -EIO;
}

/* ---------------------------------------------------------------- writer */

/* Delete every key of @dbi starting with @prefix. */
static int del_range(MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix, size_t plen)
{
	MDB_cursor *cur;
	MDB_val k = {plen, (void *)prefix}, v;
	int r = mdb_cursor_open(txn, dbi, &cur);

	if (r != 0)
		return r;
	r = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (r == 0 && k.mv_size >= plen && memcmp(k.mv_data, prefix, plen) == 0) {
		r = mdb_cursor_del(cur, 0);
		if (r == 0)
			r = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
		if (r == EINVAL)
			r = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); /* the cursor ran off a page */
	}
	mdb_cursor_close(cur);
	return r == MDB_NOTFOUND || r == 0 ? 0 : r;
}

/* Apply one batch.  @skip_new: leave out puts of new messages (store full). */
static int apply(struct store *st, MDB_txn *txn, struct store_batch *b, bool skip_new, uint64_t *ret_ops)
{
	size_t off = 0;
	struct rec_op op;
	int n, r = 0;

	while (r == 0 && (n = rec_op_next(b->ops.p, b->ops.len, &off, &op)) == 1) {
		MDB_val k = {op.klen, (void *)op.key}, v = {op.vlen, (void *)op.val};
		*ret_ops += op.type != REC_OP_NOP;
		switch (op.type) {
		case REC_OP_PUT:
			if (skip_new && (op.db == REC_DB_DELIV || op.db == REC_DB_RETAIN)) {
				b->refused_new = true;
				break;
			}
			r = mdb_put(txn, st->dbi[op.db], &k, &v, 0);
			break;
		case REC_OP_DEL:
			r = mdb_del(txn, st->dbi[op.db], &k, NULL);
			if (r == MDB_NOTFOUND)
				r = 0;
			break;
		case REC_OP_DEL_SESSION:
			r = mdb_del(txn, st->dbi[REC_DB_SESS], &k, NULL);
			if (r == MDB_NOTFOUND)
				r = 0;
			for (unsigned db = REC_DB_SUB; r == 0 && db <= REC_DB_Q2IN; db++)
				r = del_range(txn, st->dbi[db], op.key, op.klen);
			break;
		default:
			break;
		}
	}
	if (r == 0 && n < 0) {
		log_error(NULL, "store: malformed change batch from shard %u skipped", b->shard);
		RMQ_ASSERT(!"malformed op stream");
	}
	return r;
}

/* The room past persistence_max_size kept for commits without new
 * messages: LMDB copies pages on write, so even a delete needs free pages,
 * and a store full of messages must still be able to let them go. */
static uint64_t reserve_max(const struct store *st)
{
	uint64_t r = st->o.map_max / STORE_DELETE_RESERVE_FRACTION;
	return st->o.map_max + (r > STORE_MAP_BYTES_MIN ? r : STORE_MAP_BYTES_MIN);
}

/* Grow the map (no transaction may be open) up to @max.  false at @max. */
static bool grow(struct store *st, uint64_t max)
{
	uint64_t size = st->map_size * 2;
	int r;

	if (st->map_size >= max)
		return false;
	if (size > max)
		size = max;
	r = mdb_env_set_mapsize(st->env, size);
	if (r != 0) {
		log_error(NULL, "store: cannot grow the map to %llu bytes: %s", (unsigned long long)size,
			  mdb_strerror(r));
		return false;
	}
	log_info(NULL, "store: map grown from %llu to %llu bytes", (unsigned long long)st->map_size,
		 (unsigned long long)size);
	st->map_size = size;
	atomic_store(&st->stats.map_size, size);
	return true;
}

/* One transaction over @list.  0, MDB_MAP_FULL, or another error. */
static int txn_run(struct store *st, struct store_batch *list, bool skip_new)
{
	MDB_txn *txn;
	uint64_t ops = 0, bytes = 0;
	int r = mdb_txn_begin(st->env, NULL, 0, &txn);

	if (r != 0)
		return r;
	for (struct store_batch *b = list; b; b = b->next)
		b->refused_new = false;
	for (struct store_batch *b = list; r == 0 && b; b = b->next) {
		r = apply(st, txn, b, skip_new, &ops);
		bytes += b->ops.len;
	}
	if (r == 0)
		r = meta_put(st, txn, META_CLOCK, store_wall_ms());
	if (r != 0) {
		mdb_txn_abort(txn);
		return r;
	}
	if (st->fault_file && access(st->fault_file, F_OK) == 0) {
		mdb_txn_abort(txn);
		return EIO; /* the testing hook: as if the disk failed */
	}
	r = mdb_txn_commit(txn);
	if (r == 0) {
		atomic_fetch_add(&st->stats.ops, ops);
		atomic_fetch_add(&st->stats.bytes, bytes);
	}
	return r;
}

static void used_update(struct store *st)
{
	MDB_envinfo info;
	MDB_stat ms;

	if (mdb_env_info(st->env, &info) == 0 && mdb_env_stat(st->env, &ms) == 0)
		atomic_store(&st->stats.map_used, (uint64_t)(info.me_last_pgno + 1) * ms.ms_psize);
}

/* Back to persistence_max_size (or what is in use, if more) after commits
 * that used the reserve, so new messages never take it (LMDB clamps a
 * smaller size up to the pages in use). */
static void shrink_to_max(struct store *st)
{
	MDB_envinfo info;

	if (st->map_size <= st->o.map_max || mdb_env_set_mapsize(st->env, st->o.map_max) != 0 ||
	    mdb_env_info(st->env, &info) != 0)
		return;
	st->map_size = info.me_mapsize;
	atomic_store(&st->stats.map_size, st->map_size);
}

/* Commit @list; returns 0, -ENOSPC (some batch's new messages were left
 * out: its refused_new is set) or -EIO. */
static int commit(struct store *st, struct store_batch *list)
{
	uint64_t t0 = mono_us(), dt, refused = 0;
	bool skip_new = false;
	int r;

	shrink_to_max(st);
	for (;;) {
		r = txn_run(st, list, skip_new);
		if (r == MDB_MAP_FULL && !skip_new) {
			if (grow(st, st->o.map_max))
				continue;
			skip_new = true; /* at the maximum: keep everything but new messages */
			continue;
		}
		if (r == MDB_MAP_FULL && grow(st, reserve_max(st)))
			continue; /* deletions and session changes may use the reserve */
		break;
	}
	dt = mono_us() - t0;
	atomic_store(&st->stats.commit_us_last, dt);
	if (dt > atomic_load(&st->stats.commit_us_max))
		atomic_store(&st->stats.commit_us_max, dt);
	if (r != 0) {
		uint64_t now_ms = mono_us() / 1000;
		atomic_fetch_add(&st->stats.errors, 1);
		st->fails_unlogged++;
		if (!st->fail_logged_ms || now_ms - st->fail_logged_ms >= STORE_FAIL_LOG_MS) {
			/* Retries come every STORE_RETRY_MS: one line per STORE_FAIL_LOG_MS says it all. */
			log_error(NULL, "store: commit failed: %s%s (%llu failures since the last such line)",
				  mdb_strerror(r),
				  r == MDB_MAP_FULL ? " (persistence_max_size reached and nothing can be freed)" : "",
				  (unsigned long long)st->fails_unlogged);
			st->fail_logged_ms = now_ms;
			st->fails_unlogged = 0;
		}
		return -EIO;
	}
	st->fail_logged_ms = 0;
	atomic_fetch_add(&st->stats.commits, 1);
	used_update(st);
	for (struct store_batch *b = list; b; b = b->next)
		refused += b->refused_new;
	if (refused) {
		atomic_fetch_add(&st->stats.refused, refused);
		log_warn(NULL, "store: full at persistence_max_size (%llu bytes): new QoS 1/2 messages refused",
			 (unsigned long long)st->o.map_max);
		return -ENOSPC;
	}
	return 0;
}

static void wake(struct store *st, unsigned shard)
{
	struct io_uring_sqe *sqe;

	if (atomic_load(&st->stop))
		return; /* the shards have stopped: their rings are gone */
	sqe = io_uring_get_sqe(&st->ring);
	if (!sqe) {
		(void)io_uring_submit(&st->ring);
		sqe = io_uring_get_sqe(&st->ring);
	}
	RMQ_ASSERT(sqe != NULL);
	io_uring_prep_msg_ring(sqe, st->ring_fds[shard], 0, st->wake_ud, 0);
	io_uring_sqe_set_data64(sqe, 0);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

/* Hand batches back; what does not fit waits in held[]. */
static void give_back(struct store *st, unsigned shard, struct store_batch *b)
{
	struct store_batch **tail = &st->held[shard];

	while (*tail)
		tail = &(*tail)->next;
	*tail = b;
	while (st->held[shard]) {
		struct spsc_item it = {.op = 1, .ptr = st->held[shard]};
		struct store_batch *next = st->held[shard]->next;
		int w;
		st->held[shard]->next = NULL;
		w = spsc_push(st->out[shard], &it);
		if (w < 0) {
			st->held[shard]->next = next;
			return;
		}
		if (w == 1)
			wake(st, shard);
		st->held[shard] = next;
	}
}

static bool held_any(const struct store *st)
{
	for (unsigned i = 0; i < st->o.nshards; i++)
		if (st->held[i])
			return true;
	return false;
}

/* Take everything waiting into one list, in shard order (each shard's
 * batches keep their order; batches of different shards are independent). */
static struct store_batch *gather(struct store *st)
{
	struct store_batch *head = NULL, **tail = &head;
	struct spsc_item it;

	for (unsigned i = 0; i < st->o.nshards; i++) {
		while (spsc_pop(st->in[i], &it)) {
			struct store_batch *b = it.ptr;
			b->next = NULL;
			*tail = b;
			tail = &b->next;
		}
	}
	return head;
}

static bool rings_idle(struct store *st)
{
	for (unsigned i = 0; i < st->o.nshards; i++)
		if (!spsc_empty_after(st->in[i]))
			return false;
	return true;
}

static void sleep_ms(struct store *st, uint64_t ms)
{
	struct __kernel_timespec ts = {.tv_sec = (long long)(ms / 1000), .tv_nsec = (long long)(ms % 1000) * 1000000};
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	(void)io_uring_submit_and_wait_timeout(&st->ring, &cqe, 1, &ts, NULL);
	io_uring_for_each_cqe(&st->ring, head, cqe)
		n++;
	io_uring_cq_advance(&st->ring, n);
}

/* One round: commit the retry list and everything new.  Returns true if work was done. */
static bool round_once(struct store *st)
{
	struct store_batch *fresh = gather(st), *list;
	bool retrying = st->retry != NULL;
	int r;

	if (!fresh && !st->retry)
		return false;
	if (st->retry) {
		struct store_batch *t = st->retry;
		while (t->next)
			t = t->next;
		t->next = fresh;
		list = st->retry;
		st->retry = NULL;
	} else {
		list = fresh;
	}
	r = commit(st, list);
	if (r == -EIO) {
		/* Keep every batch for the next try; answer the waiting
		 * acknowledgements now (failure) so publishers are not left hanging. */
		atomic_store(&st->stats.failing, true);
		for (struct store_batch *b = list; b; b = b->next) {
			if (b->ntok && b->status == 0) {
				struct store_batch *ans = store_batch_new(b->shard);
				if (ans) {
					ans->status = -EIO;
					ans->answer_only = true;
					ans->tokens = b->tokens;
					ans->ntok = b->ntok;
					ans->tok_cap = b->tok_cap;
					b->tokens = NULL;
					b->ntok = b->tok_cap = 0;
					give_back(st, b->shard, ans);
				}
			}
			b->status = -EIO; /* tokens answered */
		}
		st->retry = list;
		return true;
	}
	if (retrying)
		log_info(NULL, "store: commits succeed again");
	atomic_store(&st->stats.failing, false);
	for (struct store_batch *b = list; b; b = b->next)
		atomic_fetch_add(&st->stats.batches, 1);
	for (struct store_batch *b = list, *n; b; b = n) {
		n = b->next;
		b->next = NULL;
		if (b->status == -EIO)
			b->status = 0; /* its acknowledgements were answered (failed) when it failed; none left */
		else
			b->status = b->refused_new ? -ENOSPC : 0;
		give_back(st, b->shard, b);
	}
	return true;
}

static void *writer_main(void *arg)
{
	struct store *st = arg;
	uint64_t last = 0;
	unsigned stop_tries = 0;

	log_set_shard(-1);
	for (;;) {
		bool stopping = atomic_load(&st->stop);
		uint64_t now = mono_us() / 1000;

		if (st->o.durability != DURABILITY_SYNC && !stopping && now - last < st->o.commit_interval_ms) {
			uint64_t left = st->o.commit_interval_ms - (now - last);
			sleep_ms(st, left < STORE_WAIT_MS ? left : STORE_WAIT_MS); /* store_stop() is seen soon */
			continue;
		}
		if (st->retry && now - last < STORE_RETRY_MS) {
			sleep_ms(st, STORE_RETRY_MS - (now - last));
			continue;
		}
		if (held_any(st))
			for (unsigned i = 0; i < st->o.nshards; i++)
				if (st->held[i])
					give_back(st, i, NULL);
		if (round_once(st)) {
			last = mono_us() / 1000;
			if (st->retry && stopping && ++stop_tries >= STORE_STOP_TRIES)
				break; /* a disk that keeps failing must not hold the stop forever */
			(void)io_uring_submit(&st->ring);
			continue;
		}
		(void)io_uring_submit(&st->ring);
		if (stopping)
			break;
		if (rings_idle(st))
			sleep_ms(st, held_any(st) ? 1 : STORE_WAIT_MS);
	}
	if (st->retry)
		log_error(NULL, "store: stopping with changes that could not be committed");
	return NULL;
}

int store_start(struct store *st, const int *ring_fds, uint64_t wake_ud)
{
	int r;

	st->ring_fds = ring_fds;
	st->wake_ud = wake_ud;
	r = -pthread_create(&st->thread, NULL, writer_main, st);
	if (r == 0)
		st->running = true;
	return r;
}

void store_stop(struct store *st)
{
	if (!st || !st->running)
		return;
	atomic_store(&st->stop, true);
	pthread_join(st->thread, NULL);
	st->running = false;
}
