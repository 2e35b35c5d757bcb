/*
 * worker.c - one load-generator thread: its io_uring, its connections and
 * the publishing schedule.
 *
 * Each worker owns a ring and a fixed slice of the connections; nothing it
 * owns is touched by another thread while it runs.  A connection has at
 * most one recv and one send in flight: the send buffer is double
 * buffered (out[out_cur] fills while the other is on the wire), so a
 * publisher's next batch is built while the previous one is being sent.
 * A connection is closed by shutdown(2), which completes its pending recv;
 * the fd is closed and the slot freed when its last SQE has completed.
 *
 * user_data layout: bits 0..7 the operation (enum op), bits 8..15 the
 * connection's generation, bits 16..63 its slot in w->conns.  Handshake
 * slots are reused for the next connection only when they are free, so
 * the generation is a check, not a filter.
 *
 * Flow control.  A publisher sends while (a) at QoS 1/2 fewer than
 * `window` messages are unacknowledged and (b) with flow=e2e fewer than
 * `window` messages (times the deliveries each makes) are undelivered.
 * (b) needs the subscribers' counts, which may live on another worker:
 * subscribers accumulate deliveries per publisher and flush them once per
 * loop turn (credit_add / flush_credits) with one atomic add per
 * publisher.  A publisher that found its window full sets `blocked`, then
 * re-reads its credit; a flusher adds credit, then reads `blocked` (both
 * seq_cst), so one of the two always sees the other.  The flusher wakes a
 * remote owner with IORING_OP_MSG_RING, once per wake_req cycle.  When
 * the broker drops QoS 0 messages the credit never comes: after stall_ms
 * without any delivery the window is written off (stall_resets counts it).
 *
 * TLS (cfg.tls): ctls.c runs wolfSSL over each connection's buffers; here
 * only the places where bytes cross the socket (connect done, recv posted,
 * recv done, send kicked) and the slot's release branch on conn.tls, once
 * per completion or batch, so a plain run does no per-message work for it.  Ciphertext
 * is sent from out[!out_cur] like plaintext is; see ctls.h.
 *
 * Rate mode schedules the k-th message of the worker at t0 + k / rate and
 * gives it to publisher k mod n; a publisher whose window is full owes the
 * message and catches up when it opens, as a real client would.
 */
#include "bench.h"
#include "ctls.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ringmq/log.h"

enum op { OP_CONNECT = 1, OP_SEND, OP_RECV, OP_WAKE, OP_MSG };

#define UD(op, c) ((uint64_t)(op) | (uint64_t)(c)->gen << 8 | (uint64_t)(c)->slot << 16)
/* How long a DISCONNECTed connection waits for the broker to close it
 * (then it closes itself), and how long the stop phase may take. */
#define BYE_TIMEOUT_NS 1000000000u
#define STOP_TIMEOUT_NS 3000000000u
/* Keep-alive and timeout scan period. */
#define SLOW_TICK_NS 100000000u

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void worker_fail(struct worker *w, const char *fmt, ...)
{
	va_list ap;

	if (w->err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(w->err, sizeof(w->err), fmt, ap);
	va_end(ap);
}

static struct io_uring_sqe *get_sqe(struct worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);

	if (!sqe) {
		(void)io_uring_submit(&w->ring); /* a failure shows up as the NULL below */
		sqe = io_uring_get_sqe(&w->ring);
	}
	RMQ_ASSERT(sqe != NULL);
	return sqe;
}

static bool loading(const struct worker *w)
{
	return w->phase == PHASE_WARMUP || w->phase == PHASE_MEASURE;
}

/* ------------------------------------------------------------------------
 * Connection lifecycle
 * ---------------------------------------------------------------------- */

static void hs_start(struct conn *c);

static void conn_free_slot(struct conn *c)
{
	struct worker *w = c->w;

	close(c->fd);
	c->fd = -1;
	w->open_n--;
	c->state = CS_FREE;
	c->in.len = 0;
	c->out[0].len = c->out[1].len = 0;
	c->out_sent = 0;
	if (c->tls)
		ctls_reset(c->tls);
	if (c->role == ROLE_HANDSHAKE) {
		w->hs_in--;
		if (loading(w))
			hs_start(c);
	}
}

static void conn_close(struct conn *c)
{
	if (c->fd < 0 || c->state == CS_CLOSING)
		return;
	/* Completes the pending recv (and send) so the slot can drain. */
	(void)shutdown(c->fd, SHUT_RDWR); /* ENOTCONN after a failed connect is fine */
	c->state = CS_CLOSING;
	if (c->pending == 0)
		conn_free_slot(c);
}

/* A connection broke.  Setup failures and breaks while running count as
 * failures; breaks after STOP are the broker going away first. */
static void conn_fail(struct conn *c, bool proto, const char *what, int err)
{
	struct worker *w = c->w;

	if (c->state == CS_CLOSING)
		return;
	if (w->phase < PHASE_STOP || c->state != CS_BYE) {
		if (proto)
			w->proto_n++;
		else
			w->failed_n++;
		if (!proto)
			worker_fail(w, "client %u: %s%s%s", c->id, what, err ? ": " : "",
				    err ? strerror(-err) : "");
		if (c->state < CS_READY && c->role != ROLE_HANDSHAKE && w->connecting > 0)
			w->connecting--;
	}
	c->failed = true;
	conn_close(c);
}

/* Where the next recv writes: the plaintext buffer, or on a TLS
 * connection the ciphertext input.  false after the connection failed. */
static bool recv_room(struct conn *c, uint32_t want, uint8_t **ret_p, uint32_t *ret_len)
{
	if (c->tls) {
		if (ctls_recv_room(c->tls, want, ret_p, ret_len) == 0)
			return true;
		conn_fail(c, true, "TLS records beyond the receive buffer limit", -ENOBUFS);
		return false;
	}
	if (c->in.cap == 0 && buf_reserve(&c->in, want) < 0) {
		conn_fail(c, false, "out of memory", -ENOMEM);
		return false;
	}
	if (c->in.len == c->in.cap && buf_reserve(&c->in, c->in.cap) < 0) {
		conn_fail(c, true, "a packet larger than the receive buffer limit", -ENOBUFS);
		return false;
	}
	*ret_p = c->in.data + c->in.len;
	*ret_len = c->in.cap - c->in.len;
	return true;
}

static void post_recv(struct conn *c)
{
	struct io_uring_sqe *sqe;
	uint32_t want = c->role == ROLE_SUB   ? c->w->run->cfg.recv_buffer
			: c->role == ROLE_PUB ? RECV_BUF_ACKS
					      : RECV_BUF_SMALL;
	uint8_t *p;
	uint32_t len;

	if (c->recv_busy || c->fd < 0 || c->state == CS_CLOSING || !recv_room(c, want, &p, &len))
		return;
	sqe = get_sqe(c->w);
	io_uring_prep_recv(sqe, c->fd, p, len, 0);
	io_uring_sqe_set_data64(sqe, UD(OP_RECV, c));
	c->recv_busy = true;
	c->pending++;
}

static void submit_send(struct conn *c)
{
	struct buf *b = &c->out[!c->out_cur];
	struct io_uring_sqe *sqe = get_sqe(c->w);

	io_uring_prep_send(sqe, c->fd, b->data + c->out_sent, b->len - c->out_sent, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, UD(OP_SEND, c));
	c->send_busy = true;
	c->pending++;
	c->last_tx_ns = c->w->now;
}

/* TLS: encrypt what proto.c queued and send the ciphertext (ctls.h). */
static void tls_kick(struct conn *c)
{
	char why[CTLS_WHY_BYTES];
	int r;

	if (c->send_busy || c->fd < 0 || c->state == CS_CLOSING)
		return;
	r = ctls_flush(c, why);
	if (r < 0) {
		conn_fail(c, false, why, 0);
		return;
	}
	if (r == 0)
		return;
	c->out_sent = 0;
	submit_send(c);
}

void conn_kick(struct conn *c)
{
	if (c->tls) {
		tls_kick(c);
		return;
	}
	if (c->send_busy || c->fd < 0 || c->state == CS_CLOSING || c->out[c->out_cur].len == 0)
		return;
	c->out_cur ^= 1;
	c->out_sent = 0;
	submit_send(c);
}

static void conn_open(struct conn *c)
{
	struct worker *w = c->w;
	struct io_uring_sqe *sqe;
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		w->failed_n++;
		worker_fail(w, "socket: %s%s", strerror(errno), errno == EMFILE ? " (raise ulimit -n)" : "");
		if (w->connecting > 0 && c->role != ROLE_HANDSHAKE)
			w->connecting--;
		c->failed = true;
		return;
	}
	/* Small frames must not wait for Nagle; batches are one send anyway. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* best effort */
	c->fd = fd;
	c->gen++;
	c->state = CS_TCP;
	c->failed = false;
	c->t_start_ns = w->now;
	w->open_n++;
	sqe = get_sqe(w);
	io_uring_prep_connect(sqe, fd, (const struct sockaddr *)&w->run->addr, sizeof(w->run->addr));
	io_uring_sqe_set_data64(sqe, UD(OP_CONNECT, c));
	c->pending++;
}

static void on_connect(struct conn *c, int res)
{
	char why[CTLS_WHY_BYTES];
	int r;

	if (c->state == CS_CLOSING) {
		if (c->pending == 0)
			conn_free_slot(c);
		return;
	}
	if (res < 0) {
		conn_fail(c, false, "connect", res);
		return;
	}
	/* TLS: the ClientHello goes first; CONNECT waits in out[] for the handshake. */
	if (c->tls && ctls_start(c, why) < 0) {
		conn_fail(c, false, why, 0);
		return;
	}
	if ((r = proto_connect(c)) < 0) {
		conn_fail(c, false, "encoding CONNECT", r);
		return;
	}
	c->state = CS_CONNACK;
	conn_kick(c);
	post_recv(c);
}

static void on_recv(struct conn *c, int res)
{
	char why[CTLS_WHY_BYTES];

	c->recv_busy = false;
	if (c->state == CS_CLOSING) {
		if (c->pending == 0)
			conn_free_slot(c);
		return;
	}
	/* TLS: decrypt into c->in; close_notify reads as the broker closing. */
	if (res > 0 && c->tls && (res = ctls_input(c, (uint32_t)res, why)) < 0) {
		conn_fail(c, false, why, 0);
		return;
	}
	if (res <= 0) {
		if (c->state == CS_BYE)
			conn_close(c); /* the broker closed after our DISCONNECT, as it should */
		else
			conn_fail(c, false, res == 0 ? "the broker closed the connection" : "recv", res);
		return;
	}
	if (!c->tls)
		c->in.len += (uint32_t)res;
	c->w->now = now_ns();
	if (proto_input(c) < 0) {
		conn_fail(c, true, "protocol error", 0);
		return;
	}
	conn_kick(c);
	post_recv(c);
}

static void on_send(struct conn *c, int res)
{
	struct buf *b = &c->out[!c->out_cur];

	c->send_busy = false;
	if (c->state == CS_CLOSING) {
		if (c->pending == 0)
			conn_free_slot(c);
		return;
	}
	if (res < 0) {
		conn_fail(c, false, "send", res);
		return;
	}
	c->out_sent += (uint32_t)res;
	if (c->out_sent < b->len) {
		submit_send(c);
		return;
	}
	b->len = 0;
	conn_kick(c);
	if (c->pub)
		pub_wake(c->pub);
}

void conn_ready(struct conn *c)
{
	struct worker *w = c->w;

	c->state = CS_READY;
	w->ready_n++;
	if (w->connecting > 0)
		w->connecting--;
	if (c->pub && loading(w))
		pub_wake(c->pub);
}

/* ------------------------------------------------------------------------
 * Handshake loops (layout connect)
 * ---------------------------------------------------------------------- */

static void hs_start(struct conn *c)
{
	struct worker *w = c->w;

	c->id = (uint32_t)w->hs_seq++;
	w->hs_in++;
	conn_open(c);
	if (c->fd < 0)
		w->hs_in--;
}

void handshake_done(struct conn *c)
{
	struct worker *w = c->w;
	int r;

	if (w->phase == PHASE_MEASURE)
		hist_record(w->hs_lat, w->now - c->t_start_ns);
	w->hs_n++;
	if ((r = proto_disconnect(c)) < 0) {
		conn_fail(c, false, "encoding DISCONNECT", r);
		return;
	}
	c->state = CS_BYE;
	c->t_bye_ns = w->now;
	conn_kick(c);
}

/* ------------------------------------------------------------------------
 * Publishing
 * ---------------------------------------------------------------------- */

void pub_wake(struct pub *p)
{
	struct worker *w = p->c->w;

	if (p->queued)
		return;
	p->queued = true;
	w->ready[w->nready++] = p;
}

void credit_add(struct worker *w, uint32_t pub_id)
{
	if (w->credit[pub_id]++ == 0)
		w->dirty[w->ndirty++] = pub_id;
}

static void wake_worker(struct worker *w, struct worker *target)
{
	struct io_uring_sqe *sqe;
	int fd = atomic_load_explicit(&target->ring_fd, memory_order_acquire);

	if (fd < 0 || atomic_exchange(&target->wake_req, true))
		return;
	sqe = get_sqe(w);
	io_uring_prep_msg_ring(sqe, fd, 0, OP_WAKE, 0);
	io_uring_sqe_set_data64(sqe, OP_MSG);
}

static void flush_credits(struct worker *w)
{
	for (uint32_t i = 0; i < w->ndirty; i++) {
		struct pub *p = &w->run->pubs[w->dirty[i]];

		atomic_fetch_add(&p->credit, w->credit[w->dirty[i]]);
		w->credit[w->dirty[i]] = 0;
		if (!atomic_load(&p->blocked) || !loading(w))
			continue;
		if (p->c->w == w)
			pub_wake(p);
		else
			wake_worker(w, p->c->w);
	}
	w->ndirty = 0;
}

/* Messages the end-to-end window allows @p to send now. */
static uint32_t e2e_room(const struct pub *p)
{
	uint64_t credit = atomic_load(&p->credit) + p->forgiven;
	uint64_t due = p->seq * p->expected;
	uint64_t out = due > credit ? due - credit : 0;
	uint64_t limit = (uint64_t)p->window * p->expected;

	if (out >= limit)
		return 0;
	return (uint32_t)((limit - out + p->expected - 1) / p->expected);
}

static void block(struct worker *w, struct pub *p)
{
	if (p->on_blocked_list)
		return;
	p->on_blocked_list = true;
	p->credit_seen = atomic_load(&p->credit);
	p->stall_since_ns = w->now;
	w->blocked[w->nblocked++] = p;
}

/* How many messages @p may append now: window, rate and buffer bounds. */
static uint32_t pub_room(struct worker *w, struct pub *p)
{
	const struct scenario *cfg = &w->run->cfg;
	uint32_t n = OUT_BATCH_MAX;
	uint32_t used = p->c->out[p->c->out_cur].len / p->tmpl_len;

	if (used >= OUT_BATCH_MAX)
		return 0; /* the send completion wakes us */
	n -= used;
	if (cfg->qos > 0)
		n = p->unacked < p->window ? (p->window - p->unacked < n ? p->window - p->unacked : n) : 0;
	if (cfg->rate > 0 && p->owed < n)
		n = (uint32_t)p->owed;
	if (n == 0 || cfg->flow != FLOW_E2E)
		return n;
	if (e2e_room(p) == 0) {
		atomic_store(&p->blocked, true);
		if (e2e_room(p) == 0) {
			block(w, p);
			return 0;
		}
	}
	if (atomic_load_explicit(&p->blocked, memory_order_relaxed))
		atomic_store(&p->blocked, false);
	return e2e_room(p) < n ? e2e_room(p) : n;
}

static void pub_pump(struct worker *w, struct pub *p)
{
	uint32_t n;
	uint32_t k;

	p->queued = false;
	if (!loading(w) || p->c->state != CS_READY)
		return;
	n = pub_room(w, p);
	if (n == 0)
		return;
	k = proto_pub_fill(p, n);
	w->sent += k;
	w->expect += (uint64_t)k * p->expected;
	if (p->owed)
		p->owed -= k < p->owed ? k : p->owed;
	conn_kick(p->c);
}

static void pump_ready(struct worker *w)
{
	uint32_t n = w->nready;

	for (uint32_t i = 0; i < n; i++)
		pub_pump(w, w->ready[i]);
	if (w->nready > n)
		memmove(w->ready, w->ready + n, (w->nready - n) * sizeof(w->ready[0]));
	w->nready -= n;
}

static void rate_tick(struct worker *w)
{
	double per_ns;
	uint64_t due;

	if (w->run->cfg.rate <= 0 || !loading(w) || w->npubs == 0)
		return;
	per_ns = w->run->cfg.rate * w->npubs / w->run->npubs / 1e9;
	due = (uint64_t)((double)(w->now - w->rate_t0) * per_ns) + 1;
	for (; w->rate_issued < due; w->rate_issued++) {
		struct pub *p = w->pubs[w->rate_issued % w->npubs];

		p->owed++;
		pub_wake(p);
	}
	w->rate_next_ns = w->rate_t0 + (uint64_t)((double)w->rate_issued / per_ns);
}

/* Publishers waiting for e2e credit: wake on progress, forgive stalls. */
static void check_blocked(struct worker *w)
{
	for (uint32_t i = 0; i < w->nblocked;) {
		struct pub *p = w->blocked[i];
		uint64_t c = atomic_load(&p->credit);

		if (!atomic_load(&p->blocked) || !loading(w)) {
			p->on_blocked_list = false;
			w->blocked[i] = w->blocked[--w->nblocked];
			continue;
		}
		if (c != p->credit_seen) {
			p->credit_seen = c;
			p->stall_since_ns = w->now;
			pub_wake(p);
		} else if (w->now - p->stall_since_ns >= (uint64_t)w->run->cfg.stall_ms * 1000000u) {
			p->forgiven = p->seq * p->expected - c;
			p->stall_since_ns = w->now;
			atomic_fetch_add_explicit(&w->st.stall_resets, 1, memory_order_relaxed);
			pub_wake(p);
		}
		i++;
	}
}

/* ------------------------------------------------------------------------
 * Phases and housekeeping
 * ---------------------------------------------------------------------- */

static uint32_t connect_limit(const struct worker *w)
{
	uint32_t n = w->run->cfg.connect_concurrency / w->run->nworkers;

	return n ? n : 1;
}

static void setup_connects(struct worker *w)
{
	const struct scenario *cfg = &w->run->cfg;

	if (cfg->layout == LAYOUT_CONNECT)
		return;
	while (w->next_connect < w->nconns && w->connecting < connect_limit(w)) {
		if (cfg->ramp > 0) {
			uint64_t due = w->ramp_t0 + (uint64_t)((double)w->next_connect * 1e9 *
							       w->run->nworkers / cfg->ramp);

			if (w->now < due) {
				w->ramp_next_ns = due;
				return;
			}
		}
		w->connecting++;
		conn_open(&w->conns[w->next_connect++]);
	}
	w->ramp_next_ns = 0;
}

static void start_load(struct worker *w)
{
	w->load_started = true;
	w->rate_t0 = w->now;
	w->rate_issued = 0;
	if (w->run->cfg.layout == LAYOUT_CONNECT) {
		for (uint32_t i = 0; i < w->nconns; i++)
			hs_start(&w->conns[i]);
		return;
	}
	for (uint32_t i = 0; i < w->npubs; i++)
		pub_wake(w->pubs[i]);
}

/* DISCONNECT whatever is up, close whatever is still setting up. */
static void stop_all(struct worker *w)
{
	w->stop_deadline_ns = w->now + STOP_TIMEOUT_NS;
	for (uint32_t i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[i];

		if (c->fd < 0 || c->state == CS_CLOSING || c->state == CS_BYE)
			continue;
		if (c->state != CS_READY || proto_disconnect(c) < 0) {
			conn_close(c);
			continue;
		}
		c->state = CS_BYE;
		c->t_bye_ns = w->now;
		conn_kick(c);
	}
}

static void phase_check(struct worker *w)
{
	int ph = atomic_load_explicit(&w->run->phase, memory_order_acquire);

	if (ph == w->phase)
		return;
	if (w->phase < 0)
		w->ramp_t0 = w->now;
	w->phase = ph;
	if (ph >= PHASE_WARMUP && ph <= PHASE_MEASURE && !w->load_started)
		start_load(w);
	if (ph == PHASE_STOP)
		stop_all(w);
}

/* Keep-alive pings, DISCONNECT timeouts, the stop deadline. */
static void slow_scan(struct worker *w)
{
	uint64_t ka = (uint64_t)w->run->cfg.keepalive_s * 1000000000u / 2;
	bool late = w->phase == PHASE_STOP && w->now >= w->stop_deadline_ns;

	for (uint32_t i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[i];

		if (c->fd < 0 || c->state == CS_CLOSING)
			continue;
		if (late || (c->state == CS_BYE && w->now - c->t_bye_ns > BYE_TIMEOUT_NS)) {
			conn_close(c);
			continue;
		}
		if (ka && c->state == CS_READY && !c->send_busy && w->now - c->last_tx_ns > ka &&
		    proto_pingreq(c) == 0)
			conn_kick(c);
	}
}

static void housekeeping(struct worker *w)
{
	if (w->phase == PHASE_SETUP)
		setup_connects(w);
	if (w->nblocked)
		check_blocked(w);
	if (w->now >= w->next_slow_ns) {
		slow_scan(w);
		w->next_slow_ns = w->now + SLOW_TICK_NS;
	}
}

static uint64_t next_deadline(const struct worker *w)
{
	uint64_t d = w->now + TICK_NS_MAX;

	if (w->next_slow_ns < d)
		d = w->next_slow_ns;
	if (w->ramp_next_ns && w->ramp_next_ns < d)
		d = w->ramp_next_ns;
	if (w->run->cfg.rate > 0 && loading(w) && w->rate_next_ns < d)
		d = w->rate_next_ns;
	if (d < w->now + RATE_TICK_NS_MIN && w->nready == 0)
		d = w->now + RATE_TICK_NS_MIN;
	return d;
}

/* ------------------------------------------------------------------------
 * The loop
 * ---------------------------------------------------------------------- */

static void handle_cqe(struct worker *w, const struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;
	struct conn *c;

	switch (ud & 0xff) {
	case OP_WAKE:
		atomic_store(&w->wake_req, false);
		for (uint32_t i = 0; i < w->nblocked; i++)
			pub_wake(w->blocked[i]);
		return;
	case OP_MSG: return; /* our wake-up reached the other ring (or it was gone) */
	default: break;
	}
	RMQ_ASSERT((ud >> 16) < w->nconns);
	c = &w->conns[ud >> 16];
	RMQ_ASSERT((uint8_t)(ud >> 8) == c->gen);
	RMQ_ASSERT(c->pending > 0);
	c->pending--;
	switch (ud & 0xff) {
	case OP_CONNECT: on_connect(c, cqe->res); break;
	case OP_RECV: on_recv(c, cqe->res); break;
	case OP_SEND: on_send(c, cqe->res); break;
	default: RMQ_ASSERT(!"unknown op");
	}
}

static void wait_and_reap(struct worker *w)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts;
	uint64_t d = next_deadline(w);
	unsigned head;
	unsigned n = 0;
	int r;

	d = d > w->now ? d - w->now : 0;
	if (w->nready || w->run->cfg.busy_poll)
		d = 0;
	ts.tv_sec = (long long)(d / 1000000000u);
	ts.tv_nsec = (long long)(d % 1000000000u);
	r = io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
	if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY)
		worker_fail(w, "io_uring_enter: %s", strerror(-r));
	w->now = now_ns();
	io_uring_for_each_cqe(&w->ring, head, cqe)
	{
		handle_cqe(w, cqe);
		n++;
	}
	io_uring_cq_advance(&w->ring, n);
}

static void publish_stats(struct worker *w)
{
	struct wstats *s = &w->st;

	atomic_store_explicit(&s->sent, w->sent, memory_order_relaxed);
	atomic_store_explicit(&s->expect, w->expect, memory_order_relaxed);
	atomic_store_explicit(&s->recv, w->recv, memory_order_relaxed);
	atomic_store_explicit(&s->recv_bytes, w->recv_bytes, memory_order_relaxed);
	atomic_store_explicit(&s->acked, w->acked, memory_order_relaxed);
	atomic_store_explicit(&s->ready, w->ready_n, memory_order_relaxed);
	atomic_store_explicit(&s->failed, w->failed_n, memory_order_relaxed);
	atomic_store_explicit(&s->proto_errors, w->proto_n, memory_order_relaxed);
	atomic_store_explicit(&s->handshakes, w->hs_n, memory_order_relaxed);
	atomic_store_explicit(&s->hs_inflight, w->hs_in, memory_order_relaxed);
	atomic_store_explicit(&s->open, w->open_n, memory_order_relaxed);
	atomic_store_explicit(&s->lat_sum, w->lat_sum, memory_order_relaxed);
	atomic_store_explicit(&s->lat_n, w->lat_n, memory_order_relaxed);
}

static int ring_init(struct worker *w)
{
	struct io_uring_params p;
	int r;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	p.cq_entries = RING_CQ_ENTRIES;
	r = io_uring_queue_init_params(RING_ENTRIES, &w->ring, &p);
	if (r == -EINVAL) {
		/* Kernels before 6.1 lack DEFER_TASKRUN; the plain ring works. */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = RING_CQ_ENTRIES;
		r = io_uring_queue_init_params(RING_ENTRIES, &w->ring, &p);
	}
	return r;
}

void *worker_main(void *arg)
{
	struct worker *w = arg;
	int r = ring_init(w);

	if (r < 0) {
		worker_fail(w, "io_uring_queue_init: %s", strerror(-r));
		atomic_store_explicit(&w->ring_fd, -2, memory_order_release);
		return NULL;
	}
	w->ring_ok = true;
	atomic_store_explicit(&w->ring_fd, w->ring.ring_fd, memory_order_release);
	w->phase = -1;
	w->now = now_ns();
	for (;;) {
		phase_check(w);
		if (w->phase == PHASE_STOP &&
		    (w->open_n == 0 || w->now > w->stop_deadline_ns + STOP_TIMEOUT_NS))
			break; /* a connect the kernel never completes is cancelled by the ring's exit */
		housekeeping(w);
		rate_tick(w);
		flush_credits(w);
		pump_ready(w);
		publish_stats(w);
		wait_and_reap(w);
	}
	/* Wake-ups other workers sent us may still be queued: drain them. */
	(void)io_uring_submit(&w->ring); /* nothing useful to do on failure */
	publish_stats(w);
	if (w->tls_ctx)
		ctls_thread_done();
	return NULL;
}
