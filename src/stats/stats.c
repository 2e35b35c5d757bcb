/*
 * stats.c - summing the shards' counters into a snapshot, the heap figure,
 * health and readiness, the load-average step, and the hooks the shards
 * call where events happen (see stats.h for why the sums are exact).
 *
 * Everything here either runs on the shard that owns the counter it writes
 * (the hooks) or only reads atomics (the snapshot), so no lock is taken
 * and no shard ever waits for a reader.  The only read-modify-write shared
 * between threads is the maximum of connected clients and of the heap,
 * kept with a compare-and-swap loop that gives up as soon as the stored
 * maximum is already as high.
 */
#include "ringmq/store.h"
#include "ringmq/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <malloc.h>
#if defined(__SANITIZE_ADDRESS__)
#define STATS_HEAP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STATS_HEAP_ASAN 1
#endif
#endif
#ifdef STATS_HEAP_ASAN
/* AddressSanitizer replaces malloc; only its own statistics know the heap.
 * Declared here (sanitizer/allocator_interface.h is not installed with
 * every compiler); libasan exports it. */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif
#ifdef HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
/* Weak: jemalloc is linked into the ringmq binary only (meson.build), so a
 * unit test linking this library without it sees NULL and uses mallinfo2. */
#pragma weak mallctl
#endif

#include "ringmq/log.h"
#include "ringmq/msg.h"
#include "ringmq/retain.h"
#include "ringmq/sess.h"

#define NS_PER_S 1000000000ull
#define MS_PER_S 1000u
#define S_PER_MIN 60.0

static const char *const drop_names[SHARD_DROP_CAUSES] = {
	[SHARD_DROP_QUEUE_FULL] = "queue_full",	    [SHARD_DROP_OUTPUT_LIMIT] = "output_limit",
	[SHARD_DROP_PACKET_SIZE] = "packet_size",   [SHARD_DROP_BACKLOG_FULL] = "backlog_full",
	[SHARD_DROP_NO_MEMBER] = "no_member",	    [SHARD_DROP_NO_MEMORY] = "out_of_memory",
	[SHARD_DROP_MEMORY_LIMIT] = "memory_limit",
};

const char *stats_drop_name(unsigned cause)
{
	RMQ_ASSERT(cause < SHARD_DROP_CAUSES);
	return drop_names[cause];
}

static uint64_t load(_Atomic uint64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

/* Raise *@max to @v unless it is already at least @v. */
static void raise_max_u64(_Atomic uint64_t *max, uint64_t v)
{
	uint64_t cur = atomic_load_explicit(max, memory_order_relaxed);

	while (cur < v && !atomic_compare_exchange_weak_explicit(max, &cur, v, memory_order_relaxed,
								  memory_order_relaxed))
		;
}

static void raise_max_i64(_Atomic int64_t *max, int64_t v)
{
	int64_t cur = atomic_load_explicit(max, memory_order_relaxed);

	while (cur < v && !atomic_compare_exchange_weak_explicit(max, &cur, v, memory_order_relaxed,
								  memory_order_relaxed))
		;
}

/* ------------------------------------------------------------- snapshot */

struct stats_snapshot *stats_snapshot_new(unsigned nshards)
{
	return calloc(1, sizeof(struct stats_snapshot) + nshards * sizeof(struct stats_shard));
}

/* Items waiting in @s's inbound rings.  The rings live until broker_free(),
 * and head/tail are atomics, so any thread may read them. */
static uint64_t ring_depth(const struct broker *b, const struct shard *s)
{
	uint64_t n = 0;

	for (unsigned from = 0; s->in && from < b->nshards; from++) {
		struct spsc *r = atomic_load_explicit(&s->in[from], memory_order_acquire);
		if (r)
			n += (uint32_t)(atomic_load_explicit(&r->tail, memory_order_relaxed) -
					atomic_load_explicit(&r->head, memory_order_relaxed));
	}
	return n;
}

static void read_shard(const struct broker *b, struct shard *s, struct stats_shard *o)
{
	struct shard_stats *st = &s->stats;

	o->conns = load(&st->conns);
	o->sockets = load(&st->sockets);
	o->connects = load(&st->connects);
	o->sessions = load(&st->sessions);
	o->expired = load(&st->expired);
	o->pkts_in = load(&st->pkts_in);
	o->pkts_out = load(&st->pkts_out);
	o->msgs_in = load(&st->msgs_in);
	o->msgs_out = load(&st->msgs_out);
	o->bytes_in = load(&st->bytes_in);
	o->bytes_out = load(&st->bytes_out);
	o->pub_bytes_in = load(&st->pub_bytes_in);
	o->pub_bytes_out = load(&st->pub_bytes_out);
	o->dropped = load(&st->dropped);
	for (unsigned i = 0; i < SHARD_DROP_CAUSES; i++)
		o->drops[i] = load(&st->drops[i]);
	o->subs = load(&st->subs);
	o->shared_subs = load(&st->shared_subs);
	o->stored = load(&st->stored);
	o->stored_bytes = load(&st->stored_bytes);
	o->ring_depth = ring_depth(b, s);
	o->backlog = load(&st->backlog);
	o->wait_ns = load(&st->wait_ns);
	o->turns = load(&st->turns);
	o->cq_overflow = load(&st->cq_overflow);
	o->last_turn_ms = load(&st->last_turn_ms);
}

void stats_snapshot_sum(struct stats_snapshot *s)
{
	struct stats_shard *t = &s->total;

	memset(t, 0, sizeof(*t));
	t->last_turn_ms = UINT64_MAX;
	for (unsigned i = 0; i < s->nshards; i++) {
		const struct stats_shard *x = &s->shard[i];
		t->conns += x->conns;
		t->sockets += x->sockets;
		t->connects += x->connects;
		t->sessions += x->sessions;
		t->expired += x->expired;
		t->pkts_in += x->pkts_in;
		t->pkts_out += x->pkts_out;
		t->msgs_in += x->msgs_in;
		t->msgs_out += x->msgs_out;
		t->bytes_in += x->bytes_in;
		t->bytes_out += x->bytes_out;
		t->pub_bytes_in += x->pub_bytes_in;
		t->pub_bytes_out += x->pub_bytes_out;
		t->dropped += x->dropped;
		for (unsigned k = 0; k < SHARD_DROP_CAUSES; k++)
			t->drops[k] += x->drops[k];
		t->subs += x->subs;
		t->shared_subs += x->shared_subs;
		t->stored += x->stored;
		t->stored_bytes += x->stored_bytes;
		t->ring_depth += x->ring_depth;
		t->backlog += x->backlog;
		t->wait_ns += x->wait_ns;
		t->turns += x->turns;
		t->cq_overflow += x->cq_overflow;
		if (x->last_turn_ms < t->last_turn_ms)
			t->last_turn_ms = x->last_turn_ms;
	}
	if (s->nshards == 0)
		t->last_turn_ms = 0;
}

static int64_t unix_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * MS_PER_S + ts.tv_nsec / 1000000;
}

struct stats_snapshot *stats_snapshot_take(struct broker *b)
{
	struct stats_snapshot *s = stats_snapshot_new(b->nshards);
	int64_t clients;

	if (!s)
		return NULL;
	s->nshards = b->nshards;
	s->now_ms = shard_now_ms();
	s->uptime_s = (s->now_ms - b->start_ms) / MS_PER_S;
	s->start_unix_s = (unix_now_ms() - (int64_t)(s->now_ms - b->start_ms)) / (int64_t)MS_PER_S;
	for (unsigned i = 0; i < b->nshards; i++)
		read_shard(b, &b->shards[i], &s->shard[i]);
	stats_snapshot_sum(s);
	s->connections = (uint64_t)atomic_load_explicit(&b->conns_total, memory_order_relaxed);
	clients = atomic_load_explicit(&b->clients_now, memory_order_relaxed);
	s->clients_connected = clients > 0 ? (uint64_t)clients : 0;
	clients = atomic_load_explicit(&b->clients_max, memory_order_relaxed);
	s->clients_max = clients > 0 ? (uint64_t)clients : 0;
	s->retained = retain_count(b->retain);
	s->heap_current = stats_heap_bytes();
	raise_max_u64(&b->heap_max, s->heap_current);
	s->heap_max = load(&b->heap_max);
	s->started = atomic_load(&b->started) == b->nshards && atomic_load(&b->start_error) == 0 &&
		     atomic_load(&b->listening);
	s->draining = atomic_load_explicit(&b->draining, memory_order_relaxed);
	s->stopping = atomic_load_explicit(&b->stop, memory_order_relaxed);
	if (b->store) {
		struct store_stats *st = store_stats(b->store);
		s->store = true;
		s->store_failing = atomic_load_explicit(&st->failing, memory_order_relaxed);
		s->store_commits = load(&st->commits);
		s->store_ops = load(&st->ops);
		s->store_bytes = load(&st->bytes);
		s->store_errors = load(&st->errors);
		s->store_refused = load(&st->refused);
		s->store_corrupt = load(&st->corrupt);
		s->store_commit_us_last = load(&st->commit_us_last);
		s->store_commit_us_max = load(&st->commit_us_max);
		s->store_map_size = load(&st->map_size);
		s->store_map_used = load(&st->map_used);
	}
	return s;
}

/* ----------------------------------------------------------------- heap */

uint64_t stats_heap_bytes(void)
{
	struct mallinfo2 mi;

#ifdef STATS_HEAP_ASAN
	return __sanitizer_get_current_allocated_bytes();
#endif
#ifdef HAVE_JEMALLOC
	if (mallctl) {
		uint64_t epoch = 1;
		size_t allocated = 0, len = sizeof(epoch);

		/* jemalloc's statistics are cached; writing "epoch" refreshes them. */
		if (mallctl("epoch", &epoch, &len, &epoch, len) != 0)
			return 0;
		len = sizeof(allocated);
		if (mallctl("stats.allocated", &allocated, &len, NULL, 0) != 0)
			return 0;
		return allocated;
	}
#endif
	mi = mallinfo2();
	return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
}

/* ------------------------------------------------------ health, readiness */

int stats_stalled_shard(const struct stats_snapshot *s, uint64_t stall_ms)
{
	for (unsigned i = 0; i < s->nshards; i++) {
		uint64_t last = s->shard[i].last_turn_ms;
		if (last == 0 || (s->now_ms > last && s->now_ms - last > stall_ms))
			return (int)i;
	}
	return -1;
}

const char *stats_not_ready(const struct stats_snapshot *s)
{
	if (s->stopping)
		return "stopping";
	if (!s->started)
		return "starting";
	if (s->draining)
		return "draining";
	if (s->store_failing)
		return "store: commits failing";
	return NULL;
}

/* ---------------------------------------------------------------- loads */

double stats_load_next(double current, uint64_t delta, double interval_s, double window_s)
{
	double rate = (double)delta * S_PER_MIN / interval_s;
	double keep = exp(-interval_s / window_s);

	RMQ_ASSERT(interval_s > 0 && window_s > 0);
	return rate + keep * (current - rate);
}

/* ---------------------------------------------------------------- hooks */

void stats_client_up(struct shard *s)
{
	struct broker *b = s->b;
	int64_t now = atomic_fetch_add_explicit(&b->clients_now, 1, memory_order_relaxed) + 1;

	stat_add(&s->stats.connects, 1);
	raise_max_i64(&b->clients_max, now);
}

void stats_client_down(struct shard *s)
{
	atomic_fetch_sub_explicit(&s->b->clients_now, 1, memory_order_relaxed);
}

void stats_stored(struct shard *s, int64_t count, int64_t bytes)
{
	/* Two's complement: adding a negative amount as uint64_t subtracts it. */
	stat_add(&s->stats.stored, (uint64_t)count);
	stat_add(&s->stats.stored_bytes, (uint64_t)bytes);
}

void stats_sess_released(struct shard *s, const struct sess *se)
{
	uint64_t bytes = 0;

	for (uint32_t i = 0; i < se->inflight_span; i++) {
		/* a ring of inflight_cap slots, inflight_span of them from inflight_head, holes
		 * (m == NULL) among them (sess.h) */
		const struct deliv *d = &se->inflight[(se->inflight_head + i) & (se->inflight_cap - 1)];
		bytes += d->m ? d->m->payload.len : 0;
	}
	for (uint32_t i = 0; i < se->q_len; i++) {
		const struct deliv *d = &se->queue[(se->q_head + i) % se->q_cap];
		bytes += d->m ? d->m->payload.len : 0;
	}
	stats_stored(s, -(int64_t)(se->inflight_count + se->q_len), -(int64_t)bytes);
	stat_sub(&s->stats.sessions, 1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

void stats_turn(struct shard *s)
{
	atomic_store_explicit(&s->stats.last_turn_ms, s->now_ms, memory_order_relaxed);
	stat_add(&s->stats.turns, 1);
}

void stats_wait_begin(struct shard *s)
{
	s->stats.wait_start_ns = now_ns();
}

void stats_wait_end(struct shard *s)
{
	stat_add(&s->stats.wait_ns, now_ns() - s->stats.wait_start_ns);
}
