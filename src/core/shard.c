/*
 * shard.c - the shard loop, cross-shard rings, and the broker object.
 *
 * Each shard thread runs one loop:
 *   1. reap completions (accept, recv, send, wake-ups),
 *   2. drain the inbound rings from other shards (published messages,
 *      handed-off connections), with a per-turn budget,
 *   3. retry backlogged outbound items, run the sweep every 250 ms,
 *   4. queue one send per connection with output, free closed connections,
 *   5. report a QSBR quiescent state and sleep in io_uring_enter until a
 *      completion, a wake-up or a 100 ms tick.
 * Steps 1-4 touch only what this shard owns.  Listening sockets are opened
 * by the main thread before the shards start, so a bad address stops
 * start-up with a clear error before any thread runs.
 *
 * Wake-ups: a producer that finds the target ring empty posts an
 * IORING_OP_MSG_RING completion into the target's ring (spsc.h has the
 * argument why none is lost).  Its own completion is suppressed with
 * IOSQE_CQE_SKIP_SUCCESS.
 */
#include "ringmq/hash.h"
#include "ringmq/shard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <urcu-qsbr.h>

#include "ringmq/backoff.h"
#include "ringmq/conn.h"
#include "ringmq/limits.h"
#include "ringmq/log.h"
#include "ringmq/msg.h"
#include "ringmq/proto.h"
#include "ringmq/retain.h"
#include "ringmq/route.h"
#include "ringmq/sess.h"
#include "ringmq/share.h"
#include "ringmq/stats.h"
#include "ringmq/sys.h"
#include "ringmq/tls.h"
#include "ringmq/ws.h"
#include "ringmq/trie.h"

#define LOOP_TICK_MS 100
#define SWEEP_MS 250
#define RING_BUDGET 4096u /* items taken from all inbound rings per loop turn */
#define SHUTDOWN_GRACE_MS 2000u
#define BUFRING_GROUP 1

static _Thread_local struct shard *self;

struct shard *shard_self(void)
{
	return self;
}

uint64_t shard_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

unsigned shard_home(const struct broker *b, const uint8_t *id, uint32_t len)
{
	return (unsigned)(hash_bytes(id, len) % b->nshards);
}

/* ------------------------------------------------------------------ rings */

static struct spsc *ring_to(struct shard *s, unsigned to)
{
	struct shard *t = &s->b->shards[to];
	struct spsc *r = atomic_load_explicit(&t->in[s->id], memory_order_acquire);
	uint32_t slots = s->b->cfg->shard_ring_size;

	if (r)
		return r;
	r = aligned_alloc(64, (sizeof(*r) + slots * sizeof(struct spsc_item) + 63) & ~(size_t)63);
	if (!r)
		return NULL;
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	r->mask = slots - 1;
	atomic_store_explicit(&t->in[s->id], r, memory_order_release);
	return r;
}

void shard_cq_check(struct shard *s)
{
	if (IO_URING_READ_ONCE(*s->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW)
		stat_add(&s->stats.cq_overflow, 1);
}

void shard_wake_fd(struct shard *s, int fd)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
	if (!sqe) {
		(void)io_uring_submit(&s->ring); /* SQ full: flush, then take a slot */
		sqe = io_uring_get_sqe(&s->ring);
	}
	RMQ_ASSERT(sqe != NULL);
	io_uring_prep_msg_ring(sqe, fd, 0, UD_PACK(OP_WAKE, 0, 0), 0);
	io_uring_sqe_set_data64(sqe, UD_PACK(OP_WAKE, 0, 0));
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

static void wake(struct shard *s, unsigned to)
{
	shard_wake_fd(s, s->b->shards[to].ring_fd);
}

static int backlog_push(struct shard *s, unsigned to, const struct spsc_item *it)
{
	struct shard_backlog *bl = &s->backlog[to];
	uint32_t max = s->b->cfg->shard_ring_size * SHARD_BACKLOG_RINGS;

	if (bl->len == bl->cap) {
		uint32_t cap = bl->cap ? bl->cap * 2 : 64;
		struct spsc_item *n;
		if (bl->len >= max)
			return -ENOBUFS;
		n = malloc(cap * sizeof(*n));
		if (!n)
			return -ENOBUFS;
		for (uint32_t i = 0; i < bl->len; i++)
			n[i] = bl->items[(bl->head + i) % bl->cap];
		free(bl->items);
		bl->items = n;
		bl->head = 0;
		bl->cap = cap;
	}
	bl->items[(bl->head + bl->len) % bl->cap] = *it;
	bl->len++;
	stat_add(&s->stats.backlog, 1);
	s->backlog_any = true;
	return 0;
}

int shard_send(struct shard *s, unsigned to, const struct spsc_item *it)
{
	struct spsc *r;
	int w;

	RMQ_ASSERT(to != s->id && to < s->b->nshards);
	if (s->backlog[to].len > 0)
		return backlog_push(s, to, it); /* keep order behind what waits */
	r = ring_to(s, to);
	if (!r)
		return backlog_push(s, to, it);
	w = spsc_push(r, it);
	if (w < 0)
		return backlog_push(s, to, it);
	if (w == 1)
		wake(s, to);
	return 0;
}

static void backlog_flush(struct shard *s)
{
	bool any = false;

	for (unsigned to = 0; to < s->b->nshards; to++) {
		struct shard_backlog *bl = &s->backlog[to];
		struct spsc *r;
		bool woke = false;
		if (bl->len == 0 || !(r = ring_to(s, to)))
			continue;
		while (bl->len > 0) {
			int w = spsc_push(r, &bl->items[bl->head]);
			if (w < 0)
				break;
			if (w == 1 && !woke) {
				wake(s, to);
				woke = true;
			}
			bl->head = (bl->head + 1) % bl->cap;
			bl->len--;
			stat_sub(&s->stats.backlog, 1);
		}
		any |= bl->len > 0;
	}
	s->backlog_any = any;
}

static void inbound_item(struct shard *s, const struct spsc_item *it)
{
	switch (it->op & 0xFF) {
	case SHARD_OP_PUBLISH:
		if (it->op & SHARD_OP_F_ACK)
			persist_item_begin(s, it->ptr);
		publish_local(s, it->ptr);
		if (it->op & SHARD_OP_F_ACK)
			persist_item_end(s);
		msg_unref(it->ptr);
		break;
	case SHARD_OP_HANDOFF:
		connect_adopt(s, it->ptr);
		break;
	case SHARD_OP_SHARED:
		if (it->op & SHARD_OP_F_ACK)
			persist_item_begin(s, it->ptr);
		share_deliver(s, it->arg, (it->op >> 8) & 0xFF, it->ptr);
		if (it->op & SHARD_OP_F_ACK)
			persist_item_end(s);
		msg_unref(it->ptr);
		break;
	case SHARD_OP_ACK:
		persist_ack_in(s, (uint64_t)(uintptr_t)it->ptr, (int)it->arg);
		break;
	default:
		RMQ_ASSERT(!"unknown shard op");
	}
}

/* Returns true when items may remain (budget spent). */
static bool rings_drain(struct shard *s)
{
	uint32_t budget = RING_BUDGET;
	struct spsc_item it;

	for (unsigned from = 0; from < s->b->nshards; from++) {
		struct spsc *r = atomic_load_explicit(&s->in[from], memory_order_acquire);
		if (!r)
			continue;
		while (budget > 0 && spsc_pop(r, &it)) {
			inbound_item(s, &it);
			budget--;
		}
	}
	persist_drain(s);
	return budget == 0;
}

static bool rings_idle(struct shard *s)
{
	for (unsigned from = 0; from < s->b->nshards; from++) {
		struct spsc *r = atomic_load_explicit(&s->in[from], memory_order_acquire);
		if (r && !spsc_empty_after(r))
			return false;
	}
	return persist_idle(s);
}

/* ------------------------------------------------------------ completions */

static void arm_accept(struct shard *s, unsigned l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
	if (!sqe) {
		(void)io_uring_submit(&s->ring); /* SQ full: flush, then take a slot */
		sqe = io_uring_get_sqe(&s->ring);
	}
	RMQ_ASSERT(sqe != NULL);
	io_uring_prep_multishot_accept(sqe, s->listen_fds[l], NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, UD_PACK(OP_ACCEPT, 0, l));
	s->accept_armed[l] = true;
}

static void accept_done(struct shard *s, unsigned l, struct io_uring_cqe *cqe)
{
	const struct config *cfg = s->b->cfg;
	int fd = cqe->res;
	struct conn *c;
	int64_t now;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		s->accept_armed[l] = false;
	if (fd < 0) {
		if (fd != -ECANCELED)
			log_warn(NULL, "accept on listener %u: %s", l, strerror(-fd));
		return;
	}
	stat_add(&s->stats.sockets, 1);
	now = atomic_fetch_add_explicit(&s->b->conns_total, 1, memory_order_relaxed) + 1;
	if (s->stopping || (cfg->max_connections >= 0 && now > cfg->max_connections) ||
	    (cfg->listeners[l].max_connections >= 0 && now > cfg->listeners[l].max_connections)) {
		atomic_fetch_sub_explicit(&s->b->conns_total, 1, memory_order_relaxed);
		log_warn(NULL, "connection refused: max_connections (%d) reached", cfg->max_connections);
		close(fd);
		return;
	}
	c = conn_new(s, fd, l);
	if (!c) {
		atomic_fetch_sub_explicit(&s->b->conns_total, 1, memory_order_relaxed);
		log_error(NULL, "connection refused: out of memory or connection slots");
		close(fd);
		return;
	}
	net_accepted(fd);
	net_peer_name(fd, c->peer, sizeof(c->peer));
	if (cfg->listeners[l].proxy_protocol && conn_proxy_expect(s, c) < 0)
		return; /* refused and closed: not a trusted proxy */
	if (s->b->tls[l] && !(c->tls = tls_conn_new(s->b->tls[l]))) {
		conn_close(s, c, MQTT_RC_SERVER_BUSY, false, "out of memory for TLS");
		return;
	}
	if (cfg->listeners[l].protocol == LISTENER_WEBSOCKETS &&
	    !(c->ws = ws_conn_new(cfg->listeners[l].ws_frame_max))) {
		conn_close(s, c, MQTT_RC_SERVER_BUSY, false, "out of memory for WebSocket");
		return;
	}
	conn_arm_recv(s, c);
}

static void cqe_handle(struct shard *s, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	struct conn *c;

	switch (UD_OP(ud)) {
	case OP_ACCEPT:
		accept_done(s, UD_SLOT(ud), cqe);
		return;
	case OP_WAKE:
	case 0:
		return; /* the rings are drained every turn */
	case OP_RECV_FIRST:
	case OP_RECV:
		c = conn_lookup(s, ud);
		if (c)
			conn_recv_done(s, c, cqe);
		else if (cqe->flags & IORING_CQE_F_BUFFER)
			net_bufring_put(&s->bufs, (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
		return;
	case OP_SEND:
		c = conn_lookup(s, ud);
		if (c)
			conn_send_done(s, c, cqe->res);
		return;
	default:
		RMQ_ASSERT(!"unknown completion op");
	}
}

/* ------------------------------------------------------------------- loop */

static int shard_setup(struct shard *s)
{
	const struct config *cfg = s->b->cfg;
	struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN};
	int r;

	r = io_uring_queue_init_params(URING_ENTRIES_DEFAULT, &s->ring, &p);
	if (r == -EINVAL) {
		memset(&p, 0, sizeof(p)); /* kernels before 6.0 lack SINGLE_ISSUER */
		r = io_uring_queue_init_params(URING_ENTRIES_DEFAULT, &s->ring, &p);
	}
	if (r < 0) {
		log_error(NULL, "io_uring_queue_init: %s", strerror(-r));
		return r;
	}
	s->ring_fd = s->ring.ring_fd;
	r = net_bufring_new(&s->ring, BUFRING_GROUP, cfg->recv_buffers, cfg->recv_buffer_size, &s->bufs);
	if (r < 0) {
		log_error(NULL, "provided-buffer ring (%u x %u bytes): %s%s", cfg->recv_buffers,
			  cfg->recv_buffer_size, strerror(-r),
			  r == -EINVAL ? " (Linux 5.19 or newer is required)" : "");
		return r;
	}
	s->trie = trie_new();
	s->sessions = sess_table_new();
	s->shares = share_local_new();
	if (!s->trie || !s->sessions || !s->shares)
		return -ENOMEM;
	/* Sessions come back before anyone can connect: the listening sockets
	 * open once every shard is here (broker_start), and the loop arms the
	 * accepts when it sees them open. */
	return persist_shard_init(s);
}

static void shard_teardown(struct shard *s)
{
	for (unsigned l = 0; l < s->b->cfg->listener_count; l++)
		if (s->listen_fds[l] >= 0)
			close(s->listen_fds[l]);
	if (s->ring_fd > 0)
		io_uring_queue_exit(&s->ring); /* cancels and waits for everything in flight */
	for (uint32_t i = 0; i < s->conn_cap; i++) {
		struct conn *c = s->conns[i];
		if (!c)
			continue;
		if (c->sess) {
			c->sess->conn = NULL;
			c->sess = NULL;
		}
		c->ops = 0;
		c->state = CONN_CLOSING;
		c->next_closing = s->closing;
		s->closing = c;
	}
	conn_reap(s);
	s->sessions = sess_table_free(s, s->sessions);
	s->shares = share_local_free(s->shares);
	s->trie = trie_free(s->trie);
	for (unsigned to = 0; to < s->b->nshards; to++) {
		struct shard_backlog *bl = &s->backlog[to];
		for (; bl->len > 0; bl->len--, bl->head = (bl->head + 1) % bl->cap)
			if ((bl->items[bl->head].op & 0xFF) == SHARD_OP_PUBLISH ||
			    (bl->items[bl->head].op & 0xFF) == SHARD_OP_SHARED)
				msg_unref(bl->items[bl->head].ptr);
		free(bl->items);
		bl->items = NULL;
	}
	/* Registered buffers are released with the ring; only the memory remains. */
	net_bufring_free(&s->ring, &s->bufs);
	free(s->conns);
	free(s->free_slots);
	free(s->enc.buf);
}

static void shard_begin_shutdown(struct shard *s)
{
	s->stopping = true;
	for (uint32_t i = 0; i < s->conn_cap; i++) {
		struct conn *c = s->conns[i];
		if (c && c->state <= CONN_ACTIVE)
			conn_close(s, c, MQTT_RC_SERVER_SHUTTING_DOWN, true, "server shutting down");
	}
}

/* Send every client elsewhere (Kubernetes pre-stop, node maintenance). */
static void shard_drain(struct shard *s)
{
	uint8_t reason = s->b->cfg->drain_server_moved ? MQTT_RC_SERVER_MOVED : MQTT_RC_USE_ANOTHER_SERVER;

	for (uint32_t i = 0; i < s->conn_cap; i++) {
		struct conn *c = s->conns[i];
		if (c && c->state == CONN_ACTIVE)
			conn_close(s, c, reason, true, "draining: client sent to another server");
	}
}

static void shard_turn(struct shard *s, bool *ret_more)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	s->now_ms = shard_now_ms();
	stats_turn(s); /* the heartbeat /healthz reads */
	shard_cq_check(s);
	io_uring_for_each_cqe(&s->ring, head, cqe)
	{
		cqe_handle(s, cqe);
		n++;
	}
	io_uring_cq_advance(&s->ring, n);
	*ret_more = rings_drain(s);
	if (s->backlog_any)
		backlog_flush(s);
	for (unsigned l = 0; l < s->b->cfg->listener_count; l++)
		if (!s->accept_armed[l] && !s->stopping && atomic_load_explicit(&s->b->listening, memory_order_acquire))
			arm_accept(s, l);
	if (s->now_ms >= s->next_sweep_ms) {
		s->next_sweep_ms = s->now_ms + SWEEP_MS;
		conn_sweep(s);
		sess_sweep(s);
		persist_sweep(s);
	}
	if (s->id == 0 && s->b->cfg->sys_interval_s && s->now_ms >= s->next_sys_ms) {
		s->next_sys_ms = s->now_ms + s->b->cfg->sys_interval_s * 1000ull;
		sys_publish(s);
	}
	persist_turn_end(s);
	conn_flush_all(s);
	conn_reap(s);
}

static void *shard_main(void *arg)
{
	struct shard *s = arg;
	struct broker *b = s->b;
	uint64_t deadline = 0;
	int r;

	self = s;
	log_set_shard((int)s->id);
	rcu_register_thread();
	r = shard_setup(s);
	pthread_mutex_lock(&b->start_lock);
	if (r < 0)
		atomic_store(&b->start_error, r);
	atomic_fetch_add(&b->started, 1);
	pthread_cond_broadcast(&b->start_cond);
	pthread_mutex_unlock(&b->start_lock);
	while (r == 0) {
		struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = LOOP_TICK_MS * 1000000L};
		struct io_uring_cqe *cqe;
		bool more;

		shard_turn(s, &more);
		if (atomic_load_explicit(&b->stop, memory_order_relaxed) && !s->stopping) {
			shard_begin_shutdown(s);
			deadline = s->now_ms + SHUTDOWN_GRACE_MS;
			conn_flush_all(s);
		}
		if (atomic_load_explicit(&b->draining, memory_order_relaxed) && !s->draining) {
			s->draining = true;
			shard_drain(s);
		}
		if (s->stopping && (s->conn_count == 0 || s->now_ms > deadline))
			break;
		rcu_quiescent_state();
		if (more || s->closing || !rings_idle(s)) {
			(void)io_uring_submit(&s->ring); /* work waits: do not sleep */
			continue;
		}
		rcu_thread_offline();
		stats_wait_begin(s);
		r = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
		stats_wait_end(s);
		rcu_thread_online();
		if (r == -ETIME || r == -EINTR || r >= 0)
			r = 0;
		else
			log_error(NULL, "io_uring_submit_and_wait: %s", strerror(-r));
	}
	persist_shard_fini(s); /* the last changes go to the store, which commits them when it stops */
	if (s->ring_fd > 0)
		(void)io_uring_submit(&s->ring);
	shard_teardown(s);
	tls_thread_done(); /* wolfSSL's per-thread ECC cache from this shard's handshakes */
	rcu_unregister_thread();
	self = NULL;
	return NULL;
}

/* ------------------------------------------------------ engine (no ring) */

struct shard *shard_engine_begin(struct broker *b)
{
	struct shard *s = &b->shards[0];

	RMQ_ASSERT(b->nshards == 1 && !b->store);
	rcu_register_thread();
	self = s;
	s->engine = true;
	s->now_ms = shard_now_ms();
	s->trie = trie_new();
	s->sessions = sess_table_new();
	s->shares = share_local_new();
	if (!s->trie || !s->sessions || !s->shares) {
		shard_engine_end(s);
		return NULL;
	}
	atomic_store(&b->started, 1);
	return s;
}

void shard_engine_end(struct shard *s)
{
	for (uint32_t i = 0; i < s->conn_cap; i++)
		if (s->conns[i] && s->conns[i]->state <= CONN_ACTIVE)
			conn_close(s, s->conns[i], MQTT_RC_SERVER_SHUTTING_DOWN, false, "engine stops");
	conn_flush_all(s);
	conn_reap(s);
	s->sessions = sess_table_free(s, s->sessions);
	s->shares = share_local_free(s->shares);
	s->trie = trie_free(s->trie);
	free(s->conns);
	free(s->free_slots);
	free(s->enc.buf);
	s->conns = NULL;
	s->free_slots = NULL;
	s->conn_cap = s->free_count = 0;
	persist_shard_fini(s);
	self = NULL;
	rcu_unregister_thread();
}

/* ----------------------------------------------------------------- broker */

struct broker *broker_new(struct config *cfg)
{
	struct broker *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->cfg = cfg;
	b->nshards = cfg->shards;
	b->shards = calloc(b->nshards, sizeof(*b->shards));
	b->route = route_new();
	b->retain = retain_new();
	b->shares = share_registry_new();
	b->backoff = backoff_new();
	pthread_mutex_init(&b->start_lock, NULL);
	pthread_cond_init(&b->start_cond, NULL);
	if (!b->shards || !b->route || !b->retain || !b->shares || !b->backoff)
		return broker_free(b);
	for (unsigned i = 0; i < b->nshards; i++) {
		struct shard *s = &b->shards[i];
		s->id = i;
		s->b = b;
		s->ring_fd = -1;
		for (unsigned l = 0; l < CONFIG_LISTENERS_MAX; l++)
			s->listen_fds[l] = -1;
		s->in = calloc(b->nshards, sizeof(*s->in));
		s->backlog = calloc(b->nshards, sizeof(*s->backlog));
		if (!s->in || !s->backlog)
			return broker_free(b);
	}
	b->start_ms = shard_now_ms();
	return b;
}

static int open_listeners(struct broker *b)
{
	const struct config *cfg = b->cfg;
	char err[256];

	for (unsigned l = 0; l < cfg->listener_count; l++) {
		const struct config_listener *cl = &cfg->listeners[l];
		uint16_t port = cl->port;
		for (unsigned i = 0; i < b->nshards; i++) {
			int r = net_listen(cl->bind_address, port, &b->shards[i].listen_fds[l], &port, err);
			if (r < 0) {
				if (cl->file[0])
					log_error(NULL, "%s:%d: listener: %s", cl->file, cl->line, err);
				else
					log_error(NULL, "listener: %s", err);
				return r;
			}
		}
		b->ports[l] = port;
	}
	return 0;
}

int broker_start(struct broker *b)
{
	unsigned started = 0;
	int r = 0;

	for (unsigned i = 0; r == 0 && i < b->nshards; i++) {
		r = -pthread_create(&b->shards[i].thread, NULL, shard_main, &b->shards[i]);
		if (r == 0)
			started++;
	}
	pthread_mutex_lock(&b->start_lock);
	while (atomic_load(&b->started) < started)
		pthread_cond_wait(&b->start_cond, &b->start_lock);
	pthread_mutex_unlock(&b->start_lock);
	if (r == 0)
		r = atomic_load(&b->start_error);
	if (r == 0)
		r = open_listeners(b); /* every shard has restored its sessions */
	if (r == 0)
		atomic_store_explicit(&b->listening, true, memory_order_release);
	if (r < 0) {
		atomic_store(&b->stop, true);
		for (unsigned i = 0; i < started; i++)
			pthread_join(b->shards[i].thread, NULL);
		for (unsigned i = started; i < b->nshards; i++)
			for (unsigned l = 0; l < b->cfg->listener_count; l++)
				if (b->shards[i].listen_fds[l] >= 0)
					close(b->shards[i].listen_fds[l]);
		b->nshards = started; /* only these hold state to free */
		return r;
	}
	for (unsigned l = 0; l < b->cfg->listener_count; l++) {
		const struct config_listener *cl = &b->cfg->listeners[l];
		log_info(NULL, "listening on %s:%u (%s%s%s, %u shards)", cl->bind_address[0] ? cl->bind_address : "*",
			 b->ports[l], cl->proxy_protocol ? "proxy+" : "",
			 cl->protocol == LISTENER_MQTT ? "mqtt" : "websockets", cl->certfile[0] ? "+tls" : "",
			 b->nshards);
	}
	return 0;
}

void broker_stop(struct broker *b)
{
	atomic_store(&b->stop, true);
	for (unsigned i = 0; i < b->nshards; i++)
		pthread_join(b->shards[i].thread, NULL);
}

struct broker *broker_free(struct broker *b)
{
	struct spsc_item it;

	if (!b)
		return NULL;
	for (unsigned i = 0; b->shards && i < b->cfg->shards; i++) {
		struct shard *s = &b->shards[i];
		for (unsigned from = 0; s->in && from < b->cfg->shards; from++) {
			struct spsc *r = atomic_load(&s->in[from]);
			if (!r)
				continue;
			while (spsc_pop(r, &it)) {
				if ((it.op & 0xFF) == SHARD_OP_PUBLISH || (it.op & 0xFF) == SHARD_OP_SHARED) {
					msg_unref(it.ptr);
				} else if (it.op == SHARD_OP_HANDOFF) {
					close(((struct handoff *)it.ptr)->fd);
					tls_conn_free(((struct handoff *)it.ptr)->tls);
					ws_conn_free(((struct handoff *)it.ptr)->ws);
					free(it.ptr);
				}
			}
			free(r);
		}
		free(s->in);
		free(s->backlog);
	}
	free(b->shards);
	/* Deferred frees (call_rcu) of the route index and retained store run
	 * on liburcu's worker; wait for them before the tables go. */
	rcu_barrier();
	/* The tables' resize worker may still run: it waits for grace periods,
	 * so the deletions below must come from a registered, online thread
	 * (liburcu's rule for cds_lfht_del) or it can walk a bucket mid-change
	 * ("_cds_lfht_gc_bucket: !is_removed" at exit after 50,000 retained). */
	rcu_register_thread();
	b->retain = retain_free(b->retain);
	b->route = route_free(b->route);
	b->shares = share_registry_free(b->shares);
	rcu_unregister_thread();
	b->backoff = backoff_free(b->backoff);
	pthread_mutex_destroy(&b->start_lock);
	pthread_cond_destroy(&b->start_cond);
	free(b);
	return NULL;
}
