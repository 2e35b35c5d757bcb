/*
 * test_store.c - the durable store (store.c, inspect.c) on its own: the
 * writer thread, group commit, the map limits and the fault hook, with
 * two fake shards and no broker.
 *
 * A fake shard is a small io_uring: its fd goes to store_start(), so the
 * writer's IORING_OP_MSG_RING wake-ups land there, and it wakes the writer
 * the same way when store_submit() says so.  A test waits for its batch to
 * come back (store_done) under a generous bound that fails the test when
 * passed; nothing here asserts how fast the store is.
 *
 * Batches are built with record.h's op-stream writers and encoders.  The
 * checks read the databases back with store_scan()/store_count() only once
 * the writer handed every batch back, so it is idle (a map resize must
 * not meet a reader of this process).
 *
 * Read-only opens (store_opts.read_only, store_inspect) run in a child
 * process: LMDB must not have one environment open twice in a process, and
 * `ringmq store check` beside a running broker is another process anyway.
 *
 * Every test works in its own temporary directory and removes it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <liburing.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ringmq/config.h"
#include "ringmq/limits.h"
#include "ringmq/record.h"
#include "ringmq/store.h"

#define SHARDS 2u
#define WAKE_UD 0x57414B45ull /* user_data of the writer's wake-ups */
#define SENT_UD 0x53454E44ull /* user_data of our own MSG_RING to the writer */
#define WAIT_MS 30000u /* fails a test that waits longer; never a speed requirement */
#define MIB (1ull << 20)
#define PAYLOAD_MAX 1024u

static char dir[64];
static struct io_uring rings[SHARDS];
static int ring_fds[SHARDS];
static unsigned wakes[SHARDS];
static bool rings_ok;
static struct store *st; /* the store a test has open as the writer */

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/ringmq-store-XXXXXX");
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	for (unsigned i = 0; i < SHARDS; i++) {
		int r = io_uring_queue_init(8, &rings[i], 0);
		cr_assert_eq(r, 0, "io_uring_queue_init: %s", strerror(-r));
		ring_fds[i] = rings[i].ring_fd;
	}
	rings_ok = true;
}

static void teardown(void)
{
	if (st) {
		store_stop(st);
		st = store_close(st);
	}
	for (unsigned i = 0; rings_ok && i < SHARDS; i++)
		io_uring_queue_exit(&rings[i]);
	rings_ok = false;
	if (dir[0])
		(void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS); /* best effort: a failed test may leave files */
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 110);

/* ------------------------------------------------------------- the store */

static struct store_opts opts(void)
{
	return (struct store_opts){
		.dir = dir,
		.map_size = 4 * MIB,
		.map_max = 64 * MIB,
		.durability = DURABILITY_SYNC,
		.commit_interval_ms = 10,
		.nshards = SHARDS,
	};
}

static struct store *open_ok(const struct store_opts *o)
{
	char err[512] = "";
	struct store *s = store_open(o, err, sizeof(err));

	cr_assert_not_null(s, "store_open(%s): %s", o->dir, err);
	return s;
}

static void start(void)
{
	cr_assert_eq(store_start(st, ring_fds, WAKE_UD), 0);
}

static void stop_close(void)
{
	store_stop(st);
	st = store_close(st);
	cr_assert_null(st);
}

/* Take the completions of shard @shard's ring: the writer's wake-ups, and
 * the results of our own MSG_RING (which must have worked). */
static void drain(unsigned shard)
{
	struct io_uring_cqe *cqe;

	while (io_uring_peek_cqe(&rings[shard], &cqe) == 0) {
		uint64_t ud = io_uring_cqe_get_data64(cqe);
		if (ud == WAKE_UD)
			wakes[shard]++;
		else if (ud == SENT_UD)
			cr_assert_eq(cqe->res, 0, "IORING_OP_MSG_RING to the writer failed: %s", strerror(-cqe->res));
		io_uring_cqe_seen(&rings[shard], cqe);
	}
}

/* Sleep on the shard's ring for at most @ms (a wake-up ends it early). */
static void wait_ring(unsigned shard, unsigned ms)
{
	struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = (long long)ms * 1000000};
	struct io_uring_cqe *cqe;
	int r = io_uring_wait_cqe_timeout(&rings[shard], &cqe, &ts);

	cr_assert(r == 0 || r == -ETIME || r == -EINTR, "io_uring_wait_cqe_timeout: %s", strerror(-r));
	drain(shard);
}

/* Hand @b to the writer as shard @shard does, waking it when told to. */
static void submit(unsigned shard, struct store_batch *b)
{
	int r = store_submit(st, shard, b);

	cr_assert_geq(r, 0, "store_submit: %d", r);
	if (r == 1) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&rings[shard]);
		cr_assert_not_null(sqe);
		io_uring_prep_msg_ring(sqe, store_ring_fd(st), 0, 0, 0);
		io_uring_sqe_set_data64(sqe, SENT_UD);
		cr_assert_eq(io_uring_submit(&rings[shard]), 1);
	}
}

/* The next batch back for @shard.  @failing_ok: commits may fail meanwhile
 * (else a failing store ends the wait at once, with its figures). */
static struct store_batch *wait_done(unsigned shard, bool failing_ok)
{
	uint64_t end = mono_ms() + WAIT_MS;

	for (;;) {
		struct store_batch *b = store_done(st, shard);
		if (b)
			return b;
		cr_assert(failing_ok || !atomic_load(&store_stats(st)->failing),
			  "shard %u: commits fail (errors %llu, map %llu bytes, used %llu)", shard,
			  (unsigned long long)atomic_load(&store_stats(st)->errors),
			  (unsigned long long)atomic_load(&store_stats(st)->map_size),
			  (unsigned long long)atomic_load(&store_stats(st)->map_used));
		cr_assert_lt(mono_ms(), end, "shard %u: no batch back within %u ms", shard, WAIT_MS);
		wait_ring(shard, 20);
	}
}

/* Submit @b alone, wait for it and free it; returns its status. */
static int commit_one(unsigned shard, struct store_batch *b)
{
	struct store_batch *got;
	int status;

	submit(shard, b);
	got = wait_done(shard, false);
	cr_assert_eq(got, b, "the batch itself comes back");
	cr_assert_not(got->answer_only);
	cr_assert_eq(got->shard, shard);
	status = got->status;
	store_batch_free(got);
	return status;
}

static struct store_batch *batch(unsigned shard)
{
	struct store_batch *b = store_batch_new(shard);

	cr_assert_not_null(b);
	return b;
}

static void token(struct store_batch *b, uint32_t origin, uint64_t ticket)
{
	cr_assert(store_batch_token(b, (struct store_token){.origin = origin, .ticket = ticket}));
}

/* ------------------------------------------------------------------ keys */

struct key {
	uint8_t p[RECORD_KEY_MAX];
	size_t n;
};

static struct mqtt_str str(const char *s)
{
	return (struct mqtt_str){(const uint8_t *)s, (uint32_t)strlen(s)};
}

static struct key k_id(const char *id)
{
	struct key k;

	k.n = rec_key_id(k.p, (const uint8_t *)id, strlen(id));
	return k;
}

static struct key k_seq(const char *id, uint64_t seq)
{
	struct key k = k_id(id);

	k.n += rec_key_u64(k.p + k.n, seq);
	return k;
}

static struct key k_sub(const char *id, const char *filter)
{
	struct key k = k_id(id);

	k.n += rec_key_name(k.p + k.n, (const uint8_t *)filter, strlen(filter));
	return k;
}

static struct key k_pid(const char *id, uint16_t pid)
{
	struct key k = k_id(id);

	k.n += rec_key_u16(k.p + k.n, pid);
	return k;
}

static struct key k_topic(const char *topic)
{
	struct key k;

	k.n = rec_key_name(k.p, (const uint8_t *)topic, strlen(topic));
	return k;
}

static struct key k_raw(const char *s)
{
	struct key k;

	k.n = strlen(s);
	memcpy(k.p, s, k.n);
	return k;
}

/* ------------------------------------------------------------------- ops */

/* rec_op_begin + the key; the caller appends the value and calls op_end. */
static size_t op_begin(struct store_batch *b, uint8_t type, uint8_t db, const struct key *k)
{
	size_t at = rec_op_begin(&b->ops, type, db);

	rec_buf_reserve(&b->ops, k->n);
	cr_assert_not(b->ops.oom);
	memcpy(b->ops.p + b->ops.len, k->p, k->n);
	b->ops.len += k->n;
	rec_op_key_done(&b->ops, at);
	return at;
}

static void op_end(struct store_batch *b, size_t at)
{
	rec_op_end(&b->ops, at);
	cr_assert_not(b->ops.oom);
}

static void put_sess(struct store_batch *b, const char *id)
{
	struct key k = k_id(id);
	struct rec_sess rs = {.client_id = str(id), .version = 5, .expiry_s = 3600};
	size_t at = op_begin(b, REC_OP_PUT, REC_DB_SESS, &k);

	rec_put_sess(&b->ops, &rs);
	op_end(b, at);
}

static void put_sub(struct store_batch *b, const char *id, const char *filter)
{
	struct key k = k_sub(id, filter);
	struct rec_sub sub = {.filter = str(filter), .options = 1};
	size_t at = op_begin(b, REC_OP_PUT, REC_DB_SUB, &k);

	rec_put_sub(&b->ops, &sub);
	op_end(b, at);
}

/* A queued QoS 1 delivery with @len payload bytes; returns the op's offset. */
static size_t put_deliv(struct store_batch *b, const char *id, uint64_t seq, size_t len)
{
	static const uint8_t payload[PAYLOAD_MAX] = {'p'};
	struct key k = k_seq(id, seq);
	struct msg m = {.qos = 1, .topic = str("t/x"), .payload = {payload, (uint32_t)len}};
	struct rec_deliv d = {.qos = 1};
	size_t at = op_begin(b, REC_OP_PUT, REC_DB_DELIV, &k);

	cr_assert_leq(len, PAYLOAD_MAX);
	rec_put_deliv(&b->ops, &d, &m);
	op_end(b, at);
	return at;
}

static void put_retain(struct store_batch *b, const char *topic)
{
	struct key k = k_topic(topic);
	struct msg m = {.qos = 1, .retain = true, .topic = str(topic), .payload = str("r")};
	size_t at = op_begin(b, REC_OP_PUT, REC_DB_RETAIN, &k);

	rec_put_retain(&b->ops, &m, 0);
	op_end(b, at);
}

static void put_flow(struct store_batch *b, const char *id, uint64_t seq)
{
	struct key k = k_seq(id, seq);
	struct rec_flow f = {.state = 1, .pid = 7};
	size_t at = op_begin(b, REC_OP_PUT, REC_DB_FLOW, &k);

	rec_put_flow(&b->ops, &f);
	op_end(b, at);
}

static void put_q2in(struct store_batch *b, const char *id, uint16_t pid)
{
	struct key k = k_pid(id, pid);
	size_t at = op_begin(b, REC_OP_PUT, REC_DB_Q2IN, &k);

	rec_put_q2in(&b->ops);
	op_end(b, at);
}

static void put_raw(struct store_batch *b, uint8_t db, const struct key *k, const uint8_t *val, size_t n)
{
	size_t at = op_begin(b, REC_OP_PUT, db, k);

	rec_buf_reserve(&b->ops, n);
	cr_assert_not(b->ops.oom);
	memcpy(b->ops.p + b->ops.len, val, n);
	b->ops.len += n;
	op_end(b, at);
}

static void del(struct store_batch *b, uint8_t db, const struct key *k)
{
	op_end(b, op_begin(b, REC_OP_DEL, db, k));
}

static void del_session(struct store_batch *b, const char *id)
{
	struct key k = k_id(id);

	op_end(b, op_begin(b, REC_OP_DEL_SESSION, REC_DB_SESS, &k));
}

/* Every record a session can have: the session, two subscriptions,
 * @ndeliv deliveries, three flows and two QoS 2 packet ids. */
static void put_client(struct store_batch *b, const char *id, unsigned ndeliv)
{
	put_sess(b, id);
	put_sub(b, id, "a/#");
	put_sub(b, id, "b/+");
	for (unsigned i = 0; i < ndeliv; i++)
		put_deliv(b, id, i, 64);
	for (unsigned i = 0; i < 3; i++)
		put_flow(b, id, i);
	put_q2in(b, id, 1);
	put_q2in(b, id, 0xFFFF);
}

/* ----------------------------------------------------------------- reads */

struct scan {
	unsigned db;
	const struct key *exact;
	size_t n, found, bad;
};

static int scan_fn(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct scan *s = ctx;

	s->n++;
	if (rec_check(s->db, val, vlen) != REC_OK)
		s->bad++;
	if (s->exact && klen == s->exact->n && memcmp(key, s->exact->p, klen) == 0)
		s->found++;
	return 0;
}

/* Records of @db under @prefix (NULL: all); each must be a valid record. */
static size_t count(struct store *s, unsigned db, const struct key *prefix)
{
	struct scan sc = {.db = db};
	int r = store_scan(s, db, prefix ? prefix->p : NULL, prefix ? prefix->n : 0, scan_fn, &sc);

	cr_assert_eq(r, 0, "store_scan(%s): %d", rec_db_name(db), r);
	cr_assert_eq(sc.bad, 0, "%zu corrupt records in %s", sc.bad, rec_db_name(db));
	return sc.n;
}

static bool has(struct store *s, unsigned db, const struct key *k)
{
	struct scan sc = {.db = db, .exact = k};

	cr_assert_eq(store_scan(s, db, k->p, k->n, scan_fn, &sc), 0);
	return sc.found == 1;
}

/* The records of client @id in every per-session database (its session
 * record counts as one). */
static size_t client_records(const char *id)
{
	struct key k = k_id(id);
	size_t n = has(st, REC_DB_SESS, &k);

	for (unsigned db = REC_DB_SUB; db <= REC_DB_Q2IN; db++)
		n += count(st, db, &k);
	return n;
}

static uint64_t stat_of(_Atomic uint64_t *v)
{
	return atomic_load(v);
}

/* --------------------------------------------------------- child process */

/* Runs @fn(@arg) in a child process; returns its exit status. */
static int in_child(int (*fn)(const void *), const void *arg)
{
	pid_t pid;
	int ws = 0;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(fn(arg));
	cr_assert_eq(waitpid(pid, &ws, 0), pid);
	cr_assert(WIFEXITED(ws), "the child did not exit (status 0x%x)", ws);
	return WEXITSTATUS(ws);
}

static int inspect_child(const void *what)
{
	return store_inspect(dir, what);
}

/* What a read-only reader must see: @want sessions, "ro-1" among them. */
static int read_only_child(const void *want)
{
	struct store_opts o = {.dir = dir, .nshards = 1, .read_only = true};
	struct key k = k_id("ro-1");
	struct scan sc = {.db = REC_DB_SESS, .exact = &k};
	char err[512];
	struct store *ro = store_open(&o, err, sizeof(err));
	int rc = 0;

	if (!ro) {
		fprintf(stderr, "read-only open: %s\n", err);
		return 10;
	}
	if (store_count(ro, REC_DB_SESS) != *(const int64_t *)want)
		rc = 11;
	else if (store_scan(ro, REC_DB_SESS, NULL, 0, scan_fn, &sc) != 0 || sc.found != 1 || sc.bad)
		rc = 12;
	store_close(ro);
	return rc;
}

static bool read_file(const char *path, uint8_t **ret_p, size_t *ret_n)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p = NULL;
	size_t n = 0, cap = 0;

	if (!f)
		return false;
	for (;;) {
		if (n == cap) {
			uint8_t *q = realloc(p, cap = cap ? cap * 2 : 65536);
			cr_assert_not_null(q);
			p = q;
		}
		size_t got = fread(p + n, 1, cap - n, f);
		if (got == 0)
			break;
		n += got;
	}
	fclose(f);
	*ret_p = p;
	*ret_n = n;
	return true;
}

/* ================================================================ tests */

static void mode_is(const char *path, mode_t type, mode_t mode)
{
	struct stat sb;

	cr_assert_eq(stat(path, &sb), 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(sb.st_mode & S_IFMT, type, "%s: file type", path);
	cr_assert_eq(sb.st_mode & 07777, mode, "%s: mode %o, want %o", path, sb.st_mode & 07777, mode);
}

static int format_fn(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	uint64_t *v = ctx;

	if (klen == 6 && memcmp(key, "format", 6) == 0 && rec_get_meta_u64(val, vlen, v) != REC_OK)
		*v = UINT64_MAX;
	return 0;
}

/* The value of the meta "format" record (0: none, UINT64_MAX: unreadable). */
static uint64_t format_of(struct store *s)
{
	uint64_t v = 0;

	cr_assert_eq(store_scan(s, REC_DB_META, (const uint8_t *)"format", 6, format_fn, &v), 0);
	return v;
}

Test(store, open_creates_a_private_directory_files_and_the_format_record)
{
	struct store_opts o = opts();
	char sub[128], path[256];
	static const char *const files[] = {"data.mdb", "lock.mdb", "ringmq.lock"};
	uint64_t before, after;
	struct store_batch *b;

	umask(0); /* the modes must come from the store, not from the umask */
	snprintf(sub, sizeof(sub), "%s/a/b", dir);
	o.dir = sub;
	st = open_ok(&o);
	snprintf(path, sizeof(path), "%s/a", dir);
	mode_is(path, S_IFDIR, 0700);
	mode_is(sub, S_IFDIR, 0700);
	for (unsigned i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", sub, files[i]);
		mode_is(path, S_IFREG, 0600);
	}
	cr_assert_eq(format_of(st), RECORD_FORMAT, "the format record of a new store");
	cr_assert_eq(store_last_clock(st), 0, "a new store has no last commit");
	for (unsigned db = 0; db < REC_DB_COUNT; db++)
		cr_assert_eq(store_count(st, db), db == REC_DB_META ? 1 : 0, "%s", rec_db_name(db));

	start();
	b = batch(0);
	put_sess(b, "c1");
	before = store_wall_ms();
	cr_assert_eq(commit_one(0, b), 0);
	after = store_wall_ms();
	stop_close();

	st = open_ok(&o);
	cr_assert_neq(store_last_clock(st), 0, "the clock of the last commit is kept");
	cr_assert_geq(store_last_clock(st), before);
	cr_assert_leq(store_last_clock(st), after);
	cr_assert_eq(format_of(st), RECORD_FORMAT);
	cr_assert_eq(client_records("c1"), 1, "the session survives a reopen");
	start();
	b = batch(1);
	put_sess(b, "c2");
	cr_assert_eq(commit_one(1, b), 0, "the reopened store commits");
	cr_assert_eq(store_count(st, REC_DB_SESS), 2);
	stop_close();
}

Test(store, puts_and_deletes_land_and_nops_are_skipped)
{
	struct store_opts o = opts();
	struct key s1 = k_id("c1"), s2 = k_id("c2"), sa = k_sub("c1", "a/#"), sb = k_sub("c1", "b/+");
	struct key d1 = k_seq("c1", 1), d2 = k_seq("c1", 2), d3 = k_seq("c1", 3), nop = k_seq("c2", 7);
	struct key f1 = k_seq("c1", 1), q5 = k_pid("c1", 5), r1 = k_topic("r/1"), r2 = k_topic("r/2");
	struct store_batch *b;
	size_t at;

	st = open_ok(&o);
	start();
	b = batch(0);
	put_sess(b, "c1");
	put_sub(b, "c1", "a/#");
	put_sub(b, "c1", "b/+");
	put_deliv(b, "c1", 1, 10);
	put_deliv(b, "c1", 2, 10);
	at = put_deliv(b, "c2", 7, 10);
	b->ops.p[at] = REC_OP_NOP; /* taken back before the batch left: its bytes stay */
	put_flow(b, "c1", 1);
	put_q2in(b, "c1", 5);
	put_retain(b, "r/1");
	put_retain(b, "r/2");
	cr_assert_eq(commit_one(0, b), 0);
	cr_assert_eq(stat_of(&store_stats(st)->ops), 9, "nine ops applied, the NOP not counted");
	cr_assert(has(st, REC_DB_SESS, &s1));
	cr_assert_eq(store_count(st, REC_DB_SESS), 1);
	cr_assert(has(st, REC_DB_SUB, &sa) && has(st, REC_DB_SUB, &sb));
	cr_assert_eq(count(st, REC_DB_SUB, NULL), 2);
	cr_assert(has(st, REC_DB_DELIV, &d1) && has(st, REC_DB_DELIV, &d2));
	cr_assert_not(has(st, REC_DB_DELIV, &nop), "a NOP op is skipped");
	cr_assert_eq(count(st, REC_DB_DELIV, NULL), 2);
	cr_assert(has(st, REC_DB_FLOW, &f1));
	cr_assert(has(st, REC_DB_Q2IN, &q5));
	cr_assert(has(st, REC_DB_RETAIN, &r1) && has(st, REC_DB_RETAIN, &r2));
	cr_assert_eq(count(st, REC_DB_RETAIN, NULL), 2);

	b = batch(0);
	del(b, REC_DB_SUB, &sa);
	del(b, REC_DB_DELIV, &d1);
	del(b, REC_DB_RETAIN, &r1);
	del(b, REC_DB_FLOW, &f1);
	del(b, REC_DB_SESS, &s2); /* not there: not an error */
	put_deliv(b, "c1", 3, 10);
	del(b, REC_DB_DELIV, &d3); /* put then deleted in one batch: gone */
	del(b, REC_DB_DELIV, &d2);
	put_deliv(b, "c1", 2, 20); /* deleted then put again: there */
	at = op_begin(b, REC_OP_DEL, REC_DB_Q2IN, &q5);
	op_end(b, at);
	b->ops.p[at] = REC_OP_NOP; /* a delete taken back */
	at = op_begin(b, REC_OP_DEL_SESSION, REC_DB_SESS, &s1);
	op_end(b, at);
	b->ops.p[at] = REC_OP_NOP; /* a whole session's deletion taken back */
	cr_assert_eq(commit_one(0, b), 0);
	cr_assert(has(st, REC_DB_SESS, &s1), "the NOP'd session deletion did nothing");
	cr_assert_not(has(st, REC_DB_SUB, &sa));
	cr_assert(has(st, REC_DB_SUB, &sb));
	cr_assert_not(has(st, REC_DB_DELIV, &d1));
	cr_assert(has(st, REC_DB_DELIV, &d2));
	cr_assert_not(has(st, REC_DB_DELIV, &d3));
	cr_assert_eq(count(st, REC_DB_DELIV, NULL), 1);
	cr_assert_eq(count(st, REC_DB_FLOW, NULL), 0);
	cr_assert(has(st, REC_DB_Q2IN, &q5), "the NOP'd delete did nothing");
	cr_assert_not(has(st, REC_DB_RETAIN, &r1));
	cr_assert(has(st, REC_DB_RETAIN, &r2));
	stop_close();
}

#define CLIENT_DELIVS 400u
#define CLIENT_RECORDS (1u + 2u + CLIENT_DELIVS + 3u + 2u)

Test(store, delete_session_removes_one_clients_records_and_no_others)
{
	/* Key order: "a" < "b" < "aa" < "ab" (the length comes first), and "a"
	 * is a prefix of "aa" and "ab" as a string. */
	static const char *const ids[] = {"a", "aa", "ab", "b"};
	struct store_opts o = opts();
	struct key rk = k_topic("a");
	struct store_batch *b;

	st = open_ok(&o);
	start();
	b = batch(0);
	for (unsigned i = 0; i < 4; i++)
		put_client(b, ids[i], CLIENT_DELIVS); /* deliveries over many pages */
	put_retain(b, "a"); /* a retained topic spelled like a client id */
	cr_assert_eq(commit_one(0, b), 0);
	for (unsigned i = 0; i < 4; i++)
		cr_assert_eq(client_records(ids[i]), CLIENT_RECORDS, "client %s", ids[i]);

	b = batch(0);
	del_session(b, "a");
	cr_assert_eq(commit_one(0, b), 0);
	cr_assert_eq(client_records("a"), 0, "every record of \"a\" is gone");
	for (unsigned i = 1; i < 4; i++)
		cr_assert_eq(client_records(ids[i]), CLIENT_RECORDS, "client %s stays", ids[i]);
	cr_assert(has(st, REC_DB_RETAIN, &rk), "retained messages are no session's");

	b = batch(1);
	del_session(b, "ab"); /* the last keys of every database */
	cr_assert_eq(commit_one(1, b), 0);
	cr_assert_eq(client_records("ab"), 0);
	cr_assert_eq(client_records("aa"), CLIENT_RECORDS);
	cr_assert_eq(client_records("b"), CLIENT_RECORDS);

	b = batch(0);
	del_session(b, "b");
	del_session(b, "aa"); /* empties every per-session database */
	del_session(b, "zz"); /* no such client */
	cr_assert_eq(commit_one(0, b), 0);
	for (unsigned db = REC_DB_SESS; db <= REC_DB_Q2IN; db++)
		cr_assert_eq(store_count(st, db), 0, "%s", rec_db_name(db));
	cr_assert_eq(store_count(st, REC_DB_RETAIN), 1);
	stop_close();
}

/* Tokens of batch @i of shard @s: none, one, or more than the first allocation holds. */
static unsigned ntok(unsigned s, unsigned i)
{
	return i == 2 ? 40u + s : i;
}

Test(store, batches_of_two_shards_commit_together_and_come_back_with_their_tokens)
{
	static const unsigned nb[SHARDS] = {3, 2};
	struct store_opts o = opts();
	struct key gone = k_seq("s0-0", 1);
	struct store_batch *sent[SHARDS][3];
	uint64_t end;

	st = open_ok(&o);
	/* All queued before the writer starts: its first round takes them all. */
	for (unsigned s = 0; s < SHARDS; s++) {
		for (unsigned i = 0; i < nb[s]; i++) {
			struct store_batch *b = batch(s);
			char id[16];
			int r;

			snprintf(id, sizeof(id), "s%u-%u", s, i);
			put_sess(b, id);
			put_deliv(b, id, 1, 10);
			if (s == 0 && i == 1)
				del(b, REC_DB_DELIV, &gone); /* put by the batch before: order kept */
			for (unsigned t = 0; t < ntok(s, i); t++)
				token(b, s ^ (t & 1), 1000u * s + 100u * i + t);
			sent[s][i] = b;
			r = store_submit(st, s, b);
			cr_assert_eq(r, i == 0 ? 1 : 0, "shard %u batch %u: store_submit %d", s, i, r);
		}
	}
	start();
	for (unsigned s = 0; s < SHARDS; s++) {
		for (unsigned i = 0; i < nb[s]; i++) {
			struct store_batch *b = wait_done(s, false);

			cr_assert_eq(b, sent[s][i], "shard %u: batch %u back in order", s, i);
			cr_assert_eq(b->status, 0);
			cr_assert_not(b->answer_only);
			cr_assert_eq(b->ntok, ntok(s, i), "the tokens come back with the batch");
			for (unsigned t = 0; t < ntok(s, i); t++) {
				cr_assert_eq(b->tokens[t].origin, s ^ (t & 1));
				cr_assert_eq(b->tokens[t].ticket, 1000u * s + 100u * i + t);
			}
			store_batch_free(b);
		}
		cr_assert(store_done_idle(st, s));
	}
	cr_assert_eq(stat_of(&store_stats(st)->commits), 1, "one commit for the five batches");
	cr_assert_eq(store_count(st, REC_DB_SESS), 5);
	cr_assert_eq(store_count(st, REC_DB_DELIV), 4);
	cr_assert_not(has(st, REC_DB_DELIV, &gone));
	end = mono_ms() + WAIT_MS;
	for (unsigned s = 0; s < SHARDS; s++) {
		drain(s);
		while (wakes[s] == 0) {
			cr_assert_lt(mono_ms(), end, "shard %u: no IORING_OP_MSG_RING wake-up arrived", s);
			wait_ring(s, 20);
		}
	}
	stop_close();
}

Test(store, submit_says_when_the_ring_is_full)
{
	struct store_opts o = opts();
	struct store_batch *extra;
	char id[16];

	st = open_ok(&o);
	for (unsigned i = 0; i < STORE_RING_SLOTS; i++) {
		struct store_batch *b = batch(1);

		snprintf(id, sizeof(id), "c%u", i);
		put_sess(b, id);
		cr_assert_geq(store_submit(st, 1, b), 0, "batch %u", i);
	}
	extra = batch(1);
	put_sess(extra, "extra");
	cr_assert_eq(store_submit(st, 1, extra), -EAGAIN, "a full ring");
	start();
	for (unsigned i = 0; i < STORE_RING_SLOTS; i++) {
		struct store_batch *b = wait_done(1, false);

		cr_assert_eq(b->status, 0);
		store_batch_free(b);
	}
	cr_assert_eq(commit_one(1, extra), 0, "the shard kept the batch and tries again");
	cr_assert_eq(store_count(st, REC_DB_SESS), STORE_RING_SLOTS + 1);
	stop_close();
}

Test(store, a_second_open_of_a_directory_in_use_fails)
{
	struct store_opts o = opts();
	struct store_batch *b;
	char err[512] = "";

	st = open_ok(&o);
	cr_assert_null(store_open(&o, err, sizeof(err)), "two writers on one directory");
	cr_assert_not_null(strstr(err, "in use by another process"), "message: %s", err);
	cr_assert_not_null(strstr(err, "ringmq.lock"), "the message names the lock file: %s", err);
	start();
	b = batch(0);
	put_sess(b, "first");
	cr_assert_eq(commit_one(0, b), 0, "the first one is unharmed");
	stop_close();
	st = open_ok(&o);
	cr_assert_eq(store_count(st, REC_DB_SESS), 1);
	stop_close();
}

/* The store in dir says it is of a newer format: writers and readers
 * alike must refuse it, and its data file must stay as it was. */
static void refused_as_newer(void)
{
	struct store_opts o = opts(), ro = opts();
	char path[128], err[512] = "";
	uint8_t *before, *after;
	size_t nbefore, nafter;

	ro.read_only = true;
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	cr_assert(read_file(path, &before, &nbefore));
	cr_assert_null(store_open(&o, err, sizeof(err)), "a store of a newer format was opened");
	cr_assert_not_null(strstr(err, "newer"), "message: %s", err);
	err[0] = '\0';
	cr_assert_null(store_open(&ro, err, sizeof(err)), "opened read-only");
	cr_assert_not_null(strstr(err, "newer"), "message: %s", err);
	cr_assert_eq(in_child(inspect_child, "check"), 1, "`store check` fails");
	cr_assert(read_file(path, &after, &nafter));
	cr_assert_eq(nafter, nbefore, "the data file changed size");
	cr_assert_eq(memcmp(after, before, nbefore), 0, "the data file was written");
	free(before);
	free(after);
}

Test(store, a_newer_record_frame_in_the_format_record_is_refused)
{
	struct store_opts o = opts();
	struct key k = k_raw("format");
	struct rec_buf v = {0};
	struct store_batch *b;
	uint32_t crc;

	st = open_ok(&o);
	start();
	b = batch(0);
	put_client(b, "c", 2);
	cr_assert_eq(commit_one(0, b), 0);
	rec_put_meta_u64(&v, RECORD_FORMAT);
	cr_assert_not(v.oom);
	v.p[0] = RECORD_FORMAT + 1; /* the frame of a newer ringmq, checksum made right */
	crc = rec_crc32c(0, v.p, v.len - 4);
	for (unsigned i = 0; i < 4; i++)
		v.p[v.len - 4 + i] = (uint8_t)(crc >> (8 * i));
	b = batch(0);
	put_raw(b, REC_DB_META, &k, v.p, v.len);
	cr_assert_eq(commit_one(0, b), 0);
	rec_buf_free(&v);
	stop_close();
	refused_as_newer();
}

Test(store, a_newer_format_number_written_by_lmdb_is_refused)
{
	struct store_opts o = opts();
	struct rec_buf v = {0};
	struct store_batch *b;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {6, "format"}, val;

	st = open_ok(&o);
	start();
	b = batch(0);
	put_client(b, "c", 2);
	cr_assert_eq(commit_one(0, b), 0);
	stop_close();

	rec_put_meta_u64(&v, RECORD_FORMAT + 1); /* a sound record saying "format 2" */
	cr_assert_not(v.oom);
	val = (MDB_val){v.len, v.p};
	cr_assert_eq(mdb_env_create(&env), 0);
	cr_assert_eq(mdb_env_set_maxdbs(env, REC_DB_COUNT), 0);
	cr_assert_eq(mdb_env_open(env, dir, 0, 0600), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	cr_assert_eq(mdb_dbi_open(txn, rec_db_name(REC_DB_META), 0, &dbi), 0);
	cr_assert_eq(mdb_put(txn, dbi, &k, &val, 0), 0);
	cr_assert_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	rec_buf_free(&v);
	refused_as_newer();
}

Test(store, a_read_only_open_beside_the_writer_sees_committed_data)
{
	struct store_opts o = opts(), ro = opts();
	char missing[128], err[512] = "";
	struct store_batch *b;
	struct stat sb;
	int64_t want = 1;

	st = open_ok(&o);
	start();
	b = batch(0);
	put_sess(b, "ro-1");
	cr_assert_eq(commit_one(0, b), 0);
	cr_assert_eq(in_child(read_only_child, &want), 0, "the reader takes no lock and sees the commit");
	b = batch(1);
	put_sess(b, "ro-2");
	cr_assert_eq(commit_one(1, b), 0, "the writer goes on after the reader");
	want = 2;
	cr_assert_eq(in_child(read_only_child, &want), 0, "and the reader sees the next commit");
	stop_close();

	snprintf(missing, sizeof(missing), "%s/missing", dir);
	ro.dir = missing;
	ro.read_only = true;
	cr_assert_null(store_open(&ro, err, sizeof(err)), "read-only open of a missing store");
	cr_assert_neq(err[0], '\0', "with a message");
	cr_assert_eq(stat(missing, &sb), -1, "a reader creates nothing");
}

Test(store, inspect_check_finds_a_record_with_a_bad_checksum)
{
	struct store_opts o = opts();
	struct key k = k_sub("i", "bad/crc");
	struct rec_sub sub = {.filter = str("bad/crc"), .options = 1};
	struct rec_buf v = {0};
	struct store_batch *b;
	char missing[128];

	st = open_ok(&o);
	start();
	b = batch(0);
	put_client(b, "i", 3);
	put_retain(b, "r");
	cr_assert_eq(commit_one(0, b), 0);
	cr_assert_eq(in_child(inspect_child, "check"), 0, "a good store");
	cr_assert_eq(in_child(inspect_child, "stats"), 0);
	cr_assert_eq(in_child(inspect_child, "dump"), 0);
	cr_assert_eq(in_child(inspect_child, "frobnicate"), 2, "an unknown command");

	rec_put_sub(&v, &sub);
	cr_assert_not(v.oom);
	v.p[v.len - 1] ^= 0x01; /* the checksum no longer matches */
	b = batch(0);
	put_raw(b, REC_DB_SUB, &k, v.p, v.len);
	cr_assert_eq(commit_one(0, b), 0);
	rec_buf_free(&v);
	cr_assert_eq(in_child(inspect_child, "check"), 1, "one corrupt record");
	cr_assert_eq(in_child(inspect_child, "dump"), 1);
	stop_close();
	cr_assert_eq(in_child(inspect_child, "check"), 1, "also with the writer gone");

	snprintf(missing, sizeof(missing), "%s/missing", dir);
	cr_assert_eq(store_inspect(missing, "check"), 1, "no store there");
}

/* ---------------------------------------------------------- map limits */

#define FILL_BATCH 100u
#define FILL_LEN 1000u

/* One batch of @n new deliveries for @id (sequence numbers from *@seq); its status. */
static int fill(unsigned shard, const char *id, uint64_t *seq, unsigned n)
{
	struct store_batch *b = batch(shard);

	for (unsigned i = 0; i < n; i++)
		put_deliv(b, id, (*seq)++, FILL_LEN);
	return commit_one(shard, b);
}

/* Fill with batches of new deliveries for @id until one is refused; returns
 * the deliveries stored.  *@seq ends past the refused ones. */
static uint64_t fill_until_refused(const char *id, uint64_t *seq)
{
	uint64_t stored = 0;

	for (unsigned i = 0;; i++) {
		int r;

		cr_assert_lt(i, 400, "new messages were never refused (map %llu bytes)",
			     (unsigned long long)atomic_load(&store_stats(st)->map_size));
		r = fill(0, id, seq, FILL_BATCH);
		if (r == -ENOSPC)
			return stored;
		cr_assert_eq(r, 0, "batch %u: status %d", i, r);
		stored += FILL_BATCH;
	}
}

Test(store, the_map_grows_to_its_maximum_then_only_new_messages_are_refused)
{
	struct store_opts o = opts();
	struct store_stats *ss;
	struct key sk = k_id("late"), rk = k_topic("late/r");
	struct store_batch *b, *b2;
	uint64_t seq = 0, stored = 0, before, reserve, size;

	o.map_size = MIB;
	o.map_max = 4 * MIB;
	reserve = o.map_max / STORE_DELETE_RESERVE_FRACTION;
	if (reserve < STORE_MAP_BYTES_MIN)
		reserve = STORE_MAP_BYTES_MIN;
	st = open_ok(&o);
	ss = store_stats(st);
	cr_assert_eq(stat_of(&ss->map_size), MIB);
	start();

	/* Past the first map size: it grows and everything commits. */
	while (stored * FILL_LEN < 3 * MIB / 2) {
		cr_assert_eq(fill(0, "a", &seq, FILL_BATCH), 0);
		stored += FILL_BATCH;
	}
	cr_assert_gt(stat_of(&ss->map_size), MIB, "the map grew");
	cr_assert_eq(store_count(st, REC_DB_DELIV), (int64_t)stored);
	cr_assert_eq(stat_of(&ss->refused), 0);

	/* On to the maximum: the batch that does not fit is refused whole. */
	stored += fill_until_refused("a", &seq);
	cr_assert_eq(store_count(st, REC_DB_DELIV), (int64_t)stored, "nothing of the refused batch is stored");
	cr_assert_eq(stat_of(&ss->refused), 1);
	cr_assert_geq(stat_of(&ss->map_size), o.map_max);
	cr_assert_leq(stat_of(&ss->map_size), o.map_max + reserve);
	cr_assert_not(atomic_load(&ss->failing), "a full store is not a failing one");

	/* New messages and a session change in one batch: the session lands. */
	b = batch(0);
	put_sess(b, "late");
	for (unsigned i = 0; i < 2 * FILL_BATCH; i++)
		put_deliv(b, "late", i, FILL_LEN);
	put_retain(b, "late/r");
	cr_assert_eq(commit_one(0, b), -ENOSPC);
	cr_assert_eq(stat_of(&ss->refused), 2);
	cr_assert(has(st, REC_DB_SESS, &sk), "the session change of a refused batch lands");
	cr_assert_eq(count(st, REC_DB_DELIV, &sk), 0, "its new messages do not");
	cr_assert_not(has(st, REC_DB_RETAIN, &rk));

	/* Batches without new messages commit, also beside refused ones. */
	b = batch(0);
	for (unsigned i = 0; i < 2 * FILL_BATCH; i++)
		put_deliv(b, "late", i, FILL_LEN);
	b2 = batch(1);
	put_client(b2, "sess-only", 0);
	submit(0, b);
	submit(1, b2);
	cr_assert_eq(wait_done(0, false), b);
	cr_assert_eq(b->status, -ENOSPC);
	store_batch_free(b);
	cr_assert_eq(wait_done(1, false), b2);
	cr_assert_eq(b2->status, 0, "session puts at the maximum");
	store_batch_free(b2);
	cr_assert_eq(client_records("sess-only"), 1 + 2 + 3 + 2);
	cr_assert_eq(count(st, REC_DB_DELIV, &sk), 0);
	b = batch(1);
	for (uint64_t i = 0; i < 20; i++) {
		struct key dk = k_seq("a", i);
		del(b, REC_DB_DELIV, &dk);
	}
	cr_assert_eq(commit_one(1, b), 0, "deletions at the maximum");
	cr_assert_eq(store_count(st, REC_DB_DELIV), (int64_t)stored - 20);
	b = batch(1);
	del_session(b, "a");
	cr_assert_eq(commit_one(1, b), 0, "a session with most of the messages ends");
	cr_assert_eq(store_count(st, REC_DB_DELIV), 0);

	/* Space came back: new messages are taken again. */
	before = stat_of(&ss->refused);
	seq = 0;
	for (unsigned i = 0; i < 10; i++)
		cr_assert_eq(fill(0, "b", &seq, FILL_BATCH), 0, "batch %u after the deletions", i);
	cr_assert_eq(store_count(st, REC_DB_DELIV), 10 * FILL_BATCH);
	cr_assert_eq(stat_of(&ss->refused), before);
	size = stat_of(&ss->map_size);
	cr_assert_leq(size, o.map_max + reserve);
	stop_close();

	/* A reopened store keeps what it holds, whatever map size it is given. */
	st = open_ok(&o);
	cr_assert_gt(stat_of(&store_stats(st)->map_size), MIB, "the map of a grown store (was %llu)",
		     (unsigned long long)size);
	cr_assert_eq(count(st, REC_DB_DELIV, NULL), 10 * FILL_BATCH);
	stop_close();
}

/* One delete-only batch: every @step-th delivery of @id in [@from, @to),
 * spread over many pages, so LMDB copies many of them (it needs free
 * pages to delete). */
static struct store_batch *spread_delete(const char *id, uint64_t from, uint64_t to, uint64_t step)
{
	struct store_batch *b = batch(1);

	for (uint64_t i = from; i < to; i += step) {
		struct key k = k_seq(id, i);
		del(b, REC_DB_DELIV, &k);
	}
	return b;
}

/* Wait for @b back on shard 1, or for commits to fail (NULL). */
static struct store_batch *done_or_failing(struct store_batch *b)
{
	uint64_t end = mono_ms() + WAIT_MS;

	submit(1, b);
	for (;;) {
		struct store_batch *got = store_done(st, 1);
		if (got)
			return got;
		if (atomic_load(&store_stats(st)->failing))
			return NULL;
		cr_assert_lt(mono_ms(), end, "no batch back within %u ms", WAIT_MS);
		wait_ring(1, 20);
	}
}

static struct store_opts full_opts(void)
{
	struct store_opts o = opts();

	o.map_size = MIB;
	o.map_max = 4 * MIB;
	return o;
}

Test(store, deletions_that_need_the_reserve_commit_and_refuse_nothing)
{
	struct store_opts o = full_opts();
	struct store_stats *ss;
	struct store_batch *b, *got;
	uint64_t seq = 0, stored, refused;

	st = open_ok(&o);
	ss = store_stats(st);
	start();
	stored = fill_until_refused("a", &seq);
	refused = stat_of(&ss->refused);
	b = spread_delete("a", 0, stored, 12);
	got = done_or_failing(b);
	cr_assert_not_null(got, "a delete-only batch at the maximum did not commit");
	cr_assert_eq(got, b);
	cr_assert_eq(got->status, 0);
	store_batch_free(got);
	cr_assert_gt(stat_of(&ss->map_size), o.map_max, "the test's premise: this deletion needed the reserve");
	cr_assert_eq(stat_of(&ss->refused), refused, "refused counts batches whose new data was refused; "
		     "this one had none (refused %llu -> %llu)", (unsigned long long)refused,
		     (unsigned long long)stat_of(&ss->refused));
	stop_close();
}

Test(store, new_messages_never_take_the_reserve_kept_for_deletions)
{
	struct store_opts o = full_opts();
	struct store_stats *ss;
	struct store_batch *b, *got;
	uint64_t seq = 0, stored, used_deleted, used_refilled;

	st = open_ok(&o);
	ss = store_stats(st);
	start();
	stored = fill_until_refused("a", &seq);

	/* A deletion at the maximum that needs the reserve (so it grows into it;
	 * two of them fit in it)... */
	b = spread_delete("a", 0, stored / 2, 12);
	got = done_or_failing(b);
	cr_assert_not_null(got, "the first deletion at the maximum did not commit");
	cr_assert_eq(got->status, 0);
	store_batch_free(got);
	used_deleted = stat_of(&ss->map_used);
	cr_assert_gt(stat_of(&ss->map_size), o.map_max, "the test's premise: the deletion needed the reserve");

	/* ...then new messages until refused again: they may use the room the
	 * deletion freed, not the reserve.  Then another deletion of the same
	 * size must still commit. */
	(void)fill_until_refused("a", &seq);
	used_refilled = stat_of(&ss->map_used);
	b = spread_delete("a", 6, stored / 2, 12);
	got = done_or_failing(b);
	cr_assert_not_null(got,
			   "a deletion at the maximum failed (errors %llu): new messages had filled the reserve "
			   "(bytes used %llu after the first deletion, %llu after the new messages; maximum %llu, "
			   "map %llu)",
			   (unsigned long long)stat_of(&ss->errors), (unsigned long long)used_deleted,
			   (unsigned long long)used_refilled, (unsigned long long)o.map_max,
			   (unsigned long long)stat_of(&ss->map_size));
	cr_assert_eq(got->status, 0);
	store_batch_free(got);
	cr_assert_not(atomic_load(&ss->failing));
	cr_assert_leq(used_refilled, used_deleted > o.map_max ? used_deleted : o.map_max,
		      "new messages took room past the maximum");
	stop_close();
}

/* ------------------------------------------------------------ the fault hook */

Test(store, a_failing_disk_answers_the_acknowledgements_and_keeps_the_changes)
{
	struct store_opts o = opts();
	struct store_stats *ss;
	struct store_batch *b1, *b2, *got;
	struct key f = k_id("f"), g = k_id("g"), fd = k_seq("f", 1);
	char fault[128];
	FILE *fp;

	snprintf(fault, sizeof(fault), "%s/fault", dir);
	fp = fopen(fault, "w");
	cr_assert_not_null(fp);
	fclose(fp);
	cr_assert_eq(setenv("RINGMQ_STORE_FAULT_FILE", fault, 1), 0);
	st = open_ok(&o);
	ss = store_stats(st);
	start();

	b1 = batch(0);
	put_sess(b1, "f");
	put_deliv(b1, "f", 1, 10);
	token(b1, 0, 11);
	token(b1, 1, 12);
	submit(0, b1);
	got = wait_done(0, true);
	cr_assert_neq(got, b1, "the batch is kept for the retry");
	cr_assert(got->answer_only);
	cr_assert_eq(got->status, -EIO);
	cr_assert_eq(got->ntok, 2, "the waiting acknowledgements are answered at once");
	cr_assert_eq(got->tokens[0].origin, 0);
	cr_assert_eq(got->tokens[0].ticket, 11);
	cr_assert_eq(got->tokens[1].origin, 1);
	cr_assert_eq(got->tokens[1].ticket, 12);
	cr_assert(atomic_load(&ss->failing));
	cr_assert_geq(stat_of(&ss->errors), 1);
	store_batch_free(got);

	/* A batch arriving while commits fail joins the kept ones. */
	b2 = batch(0);
	put_sess(b2, "g");
	token(b2, 0, 13);
	submit(0, b2);
	got = wait_done(0, true);
	cr_assert(got->answer_only);
	cr_assert_eq(got->status, -EIO);
	cr_assert_eq(got->ntok, 1);
	cr_assert_eq(got->tokens[0].ticket, 13);
	store_batch_free(got);
	cr_assert(atomic_load(&ss->failing));
	cr_assert_eq(store_count(st, REC_DB_SESS), 0, "nothing committed yet");

	cr_assert_eq(unlink(fault), 0);
	got = wait_done(0, true);
	cr_assert_eq(got, b1, "the kept batch comes back once committed");
	cr_assert_eq(got->status, 0);
	cr_assert_not(got->answer_only);
	cr_assert_eq(got->ntok, 0, "its tokens were answered before");
	store_batch_free(got);
	got = wait_done(0, true);
	cr_assert_eq(got, b2);
	cr_assert_eq(got->status, 0);
	store_batch_free(got);
	cr_assert_not(atomic_load(&ss->failing));
	cr_assert(has(st, REC_DB_SESS, &f) && has(st, REC_DB_SESS, &g), "the kept changes are stored");
	cr_assert(has(st, REC_DB_DELIV, &fd));
	stop_close();
}

/* ------------------------------------------------------------------ stop */

Test(store, stop_commits_what_is_still_queued)
{
	struct store_opts o = opts();
	struct store_batch *b, *q[SHARDS];

	o.durability = DURABILITY_BATCH;
	o.commit_interval_ms = 500; /* the queued batches wait for the next commit */
	st = open_ok(&o);
	start();
	b = batch(0);
	put_sess(b, "s0");
	cr_assert_eq(commit_one(0, b), 0);
	for (unsigned s = 0; s < SHARDS; s++) {
		char id[16];

		snprintf(id, sizeof(id), "q%u", s);
		q[s] = batch(s);
		put_sess(q[s], id);
		put_deliv(q[s], id, 1, 10);
		token(q[s], s, 77);
		submit(s, q[s]);
	}
	store_stop(st);
	for (unsigned s = 0; s < SHARDS; s++) {
		b = store_done(st, s);
		cr_assert_eq(b, q[s], "shard %u: the queued batch came back", s);
		cr_assert_eq(b->status, 0);
		cr_assert_eq(b->ntok, 1);
		store_batch_free(b);
	}
	cr_assert_eq(store_count(st, REC_DB_SESS), 3);
	cr_assert_eq(store_count(st, REC_DB_DELIV), 2);
	st = store_close(st);
	st = open_ok(&o);
	cr_assert_eq(store_count(st, REC_DB_SESS), 3, "and they are on disk");
	stop_close();
}

/* Wait until the writer committed @n ops in all. */
static void wait_ops(uint64_t n)
{
	uint64_t end = mono_ms() + WAIT_MS;

	while (stat_of(&store_stats(st)->ops) < n) {
		cr_assert_lt(mono_ms(), end, "%llu ops committed, waiting for %llu",
			     (unsigned long long)stat_of(&store_stats(st)->ops), (unsigned long long)n);
		wait_ring(0, 20);
	}
}

Test(store, batches_wait_for_a_shard_that_takes_none_back)
{
	struct store_opts o = opts();
	struct store_batch *sent[STORE_RING_SLOTS + 20];
	unsigned n = 0;

	st = open_ok(&o);
	for (; n < STORE_RING_SLOTS; n++) {
		char id[16];

		snprintf(id, sizeof(id), "h%u", n);
		sent[n] = batch(0);
		put_sess(sent[n], id);
		cr_assert_geq(store_submit(st, 0, sent[n]), 0);
	}
	start();
	wait_ops(STORE_RING_SLOTS); /* the shard's way back is full now */
	for (; n < STORE_RING_SLOTS + 20; n++) {
		char id[16];

		snprintf(id, sizeof(id), "h%u", n);
		sent[n] = batch(0);
		put_sess(sent[n], id);
		token(sent[n], 0, n);
		submit(0, sent[n]);
	}
	wait_ops(STORE_RING_SLOTS + 20); /* these wait beside the full ring */
	cr_assert_eq(store_count(st, REC_DB_SESS), STORE_RING_SLOTS + 20);
	for (unsigned i = 0; i < n; i++) {
		struct store_batch *b = wait_done(0, false);

		cr_assert_eq(b, sent[i], "batch %u back in order", i);
		cr_assert_eq(b->status, 0);
		store_batch_free(b);
	}
	stop_close();
}

Test(store, stop_gives_up_on_a_disk_that_keeps_failing)
{
	struct store_opts o = opts();
	struct store_batch *b, *got;
	char fault[128];
	FILE *fp;

	snprintf(fault, sizeof(fault), "%s/fault", dir);
	fp = fopen(fault, "w");
	cr_assert_not_null(fp);
	fclose(fp);
	cr_assert_eq(setenv("RINGMQ_STORE_FAULT_FILE", fault, 1), 0);
	st = open_ok(&o);
	start();
	b = batch(0);
	put_sess(b, "lost");
	token(b, 0, 5);
	submit(0, b);
	got = wait_done(0, true);
	cr_assert(got->answer_only);
	cr_assert_eq(got->status, -EIO);
	store_batch_free(got);
	store_stop(st); /* returns after its last tries */
	cr_assert(atomic_load(&store_stats(st)->failing));
	cr_assert_null(store_done(st, 0), "the kept batch was not committed");
	cr_assert_eq(store_count(st, REC_DB_SESS), 0);
	st = store_close(st); /* frees the kept batch */
	cr_assert_eq(unlink(fault), 0);
}

Test(store, stop_and_close_accept_null)
{
	store_stop(NULL);
	cr_assert_null(store_close(NULL));
}
