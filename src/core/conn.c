/*
 * conn.c - a client connection's I/O on its shard.
 *
 * Input: before CONNECT is accepted, plain recv into the connection's own
 * small buffer (grown only as far as the CONNECT header says, bounded by
 * connect_packet_size_max), so nothing is in flight when the socket is
 * handed to another shard.  After, one multishot recv per connection
 * picks buffers from the shard's provided-buffer ring; whole frames are
 * handled straight from that buffer, and only the tail of a frame split
 * across buffers is copied into the connection's input buffer.  On a
 * proxy_protocol listener the PROXY header is read first, the same way
 * (at most PROXY_HEADER_BYTES_MAX), and what follows it goes to TLS, the
 * WebSocket glue or the CONNECT path as if just received.
 *
 * Output: two buffers.  out[1] is in flight and never touched until its
 * send completes; new packets are appended to out[0].  At the end of each
 * loop turn every connection with output gets one send, so many packets
 * to one client leave in one syscall-free SQE.
 *
 * Closing is: mark, shut the socket down (which completes the pending
 * recv and send), wait for the in-flight SQE count to reach zero, free at
 * the end of the loop turn (conn_reap).  All memory is released there.
 */
#include "ringmq/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ringmq/auth.h"
#include "ringmq/limits.h"
#include "ringmq/log.h"
#include "ringmq/proto.h"
#include "ringmq/proxy.h"
#include "ringmq/sess.h"
#include "ringmq/shard.h"
#include "ringmq/tls.h"
#include "ringmq/ws.h"

#define OUT_BYTES_INITIAL 256u /* grows by doubling; most idle clients only ever get a CONNACK */
#define OUT_BYTES_KEEP 65536u /* larger idle output buffers are freed */
#define IN_BYTES_INITIAL 512u
#define FLUSH_DEADLINE_MS 2000u /* time a closing client gets to read its last packets */
#define TLS_PLAIN_CHUNK_BYTES 16384u /* one TLS record's worth of plaintext per read */
#define TLS_RECV_BYTES 4096u /* room for one plain recv of ciphertext before CONNACK */

static struct io_uring_sqe *sqe_get(struct shard *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
	if (!sqe) {
		(void)io_uring_submit(&s->ring); /* SQ full: push what is queued, then retry */
		shard_cq_check(s); /* completions pile up while a turn submits this much */
		sqe = io_uring_get_sqe(&s->ring);
	}
	RMQ_ASSERT(sqe != NULL);
	return sqe;
}

struct conn *conn_new(struct shard *s, int fd, unsigned listener)
{
	struct conn *c;
	uint32_t slot;

	if (s->free_count == 0) {
		uint32_t cap = s->conn_cap ? s->conn_cap * 2 : 1024;
		if (cap > CONNS_PER_SHARD_MAX)
			return NULL;
		struct conn **nc = realloc(s->conns, cap * sizeof(*nc));
		uint32_t *nf = realloc(s->free_slots, cap * sizeof(*nf));
		if (nc)
			s->conns = nc;
		if (nf)
			s->free_slots = nf;
		if (!nc || !nf)
			return NULL;
		for (uint32_t i = cap; i > s->conn_cap; i--) {
			s->conns[i - 1] = NULL;
			s->free_slots[s->free_count++] = i - 1;
		}
		s->conn_cap = cap;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	slot = s->free_slots[--s->free_count];
	c->owner_shard = s->id;
	c->slot = slot;
	c->gen = (uint32_t)(++s->id_counter & 0xFFFFFFu);
	c->fd = fd;
	c->listener = listener;
	c->accepted_ms = s->now_ms;
	c->last_rx_ms = s->now_ms;
	c->packet_max_out = PACKET_BYTES_MAX;
	c->receive_max_out = 65535;
	s->conns[slot] = c;
	s->conn_count++;
	stat_add(&s->stats.conns, 1);
	return c;
}

struct conn *conn_lookup(struct shard *s, uint64_t ud)
{
	uint32_t slot = UD_SLOT(ud);
	struct conn *c;

	if (slot >= s->conn_cap)
		return NULL;
	c = s->conns[slot];
	return c && c->gen == UD_GEN(ud) ? c : NULL;
}

static void conn_free(struct shard *s, struct conn *c)
{
	RMQ_ASSERT(c->ops == 0);
	RMQ_ASSERT(c->sess == NULL);
	if (!c->handed_off) {
		close(c->fd);
		atomic_fetch_sub_explicit(&s->b->conns_total, 1, memory_order_relaxed);
	}
	for (uint16_t i = 0; i < c->alias_count; i++)
		free((void *)c->aliases[i].ptr);
	free(c->aliases);
	for (uint32_t i = 0; c->alias_out && i < 2u * c->alias_out_max; i++)
		free(c->alias_out[i].topic);
	free(c->alias_out);
	free(c->in.data);
	free(c->out[0].data);
	free(c->out[1].data);
	scram_free(c->scram);
	tls_conn_free(c->tls);
	ws_conn_free(c->ws);
	free(c->auth_user);
	s->conns[c->slot] = NULL;
	s->free_slots[s->free_count++] = c->slot;
	s->conn_count--;
	stat_sub(&s->stats.conns, 1);
	free(c);
}

static void op_done(struct shard *s, struct conn *c)
{
	RMQ_ASSERT(c->ops > 0);
	c->ops--;
	if (c->ops == 0 && c->state == CONN_CLOSING) {
		c->next_closing = s->closing;
		s->closing = c;
	}
}

void conn_reap(struct shard *s)
{
	while (s->closing) {
		struct conn *c = s->closing;
		s->closing = c->next_closing;
		conn_free(s, c);
	}
}

/* Room for @need bytes of input; doubling, but never past @limit when @need
 * fits under it (0: no limit). */
static int in_reserve(struct conn *c, uint32_t need, uint32_t limit)
{
	uint32_t cap = c->in.cap ? c->in.cap : IN_BYTES_INITIAL;
	uint8_t *p;

	if (c->in.cap >= need)
		return 0;
	while (cap < need)
		cap *= 2;
	if (limit && need <= limit && cap > limit)
		cap = limit;
	p = realloc(c->in.data, cap);
	if (!p)
		return -ENOMEM;
	c->in.data = p;
	c->in.cap = cap;
	return 0;
}

void conn_arm_recv(struct shard *s, struct conn *c)
{
	struct io_uring_sqe *sqe;

	if (s->engine)
		return; /* bytes come through conn_input() */

	if (c->recv_armed || c->state > CONN_ACTIVE)
		return;
	/* Before CONNACK the buffer never outgrows connect_packet_size_max (plus
	 * the read slack): the frame cutter refuses anything bigger anyway. */
	if (c->state < CONN_ACTIVE && in_reserve(c, c->in.len + IN_BYTES_INITIAL / 2,
						 s->b->cfg->connect_packet_size_max + IN_BYTES_INITIAL) < 0) {
		conn_close(s, c, MQTT_RC_SERVER_BUSY, false, "out of memory");
		return;
	}
	if (c->proxy_pending) {
		/* The PROXY header comes before TLS and MQTT: plain bytes into
		 * c->in, never more than a header may be (proxy_recv_done) */
		RMQ_ASSERT(c->in.len < PROXY_HEADER_BYTES_MAX);
		if (in_reserve(c, PROXY_HEADER_BYTES_MAX, 0) < 0) {
			conn_close(s, c, MQTT_RC_SERVER_BUSY, false, "out of memory");
			return;
		}
		sqe = sqe_get(s);
		io_uring_prep_recv(sqe, c->fd, c->in.data + c->in.len, PROXY_HEADER_BYTES_MAX - c->in.len, 0);
		io_uring_sqe_set_data64(sqe, UD_PACK(OP_RECV_FIRST, c->gen, c->slot));
		c->recv_armed = true;
		c->ops++;
		return;
	}
	if (c->ws && !c->tls && c->state < CONN_ACTIVE && !conn_ws_rx(c)) {
		conn_close(s, c, MQTT_RC_SERVER_BUSY, false, "out of memory");
		return;
	}
	if (c->tls && c->state < CONN_ACTIVE) {
		/* TLS before CONNACK: ciphertext straight into the session's input */
		uint8_t *p;
		uint32_t room;
		if (tls_in_room(c->tls, TLS_RECV_BYTES, &p, &room) < 0) {
			conn_close(s, c, MQTT_RC_SERVER_BUSY, false, "TLS input over its bound");
			return;
		}
		sqe = sqe_get(s);
		io_uring_prep_recv(sqe, c->fd, p, room, 0);
		io_uring_sqe_set_data64(sqe, UD_PACK(OP_RECV_FIRST, c->gen, c->slot));
		c->recv_armed = true;
		c->ops++;
		return;
	}
	sqe = sqe_get(s);
	if (c->state < CONN_ACTIVE) {
		if (c->ws) /* raw bytes for the glue, which unwraps them into c->in */
			io_uring_prep_recv(sqe, c->fd, c->ws->rx, CONN_WS_RX_BYTES, 0);
		else
			io_uring_prep_recv(sqe, c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
		io_uring_sqe_set_data64(sqe, UD_PACK(OP_RECV_FIRST, c->gen, c->slot));
	} else {
		io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = s->bufs.bgid;
		io_uring_sqe_set_data64(sqe, UD_PACK(OP_RECV, c->gen, c->slot));
	}
	c->recv_armed = true;
	c->ops++;
}

static bool first_frames(struct shard *s, struct conn *c);
static bool stream_in(struct shard *s, struct conn *c, uint8_t *p, uint32_t n);

/* Before CONNECT is accepted: wait for a whole frame - the CONNECT, or in
 * CONN_AUTH the next AUTH after it - then hand it to connect.c / login.c.
 * A WebSocket connection's bytes are in c->ws->rx, still to be unwrapped. */
static void recv_first_done(struct shard *s, struct conn *c, int res)
{
	stat_add(&s->stats.bytes_in, (uint64_t)res);
	if (c->ws) {
		if (stream_in(s, c, c->ws->rx, (uint32_t)res))
			conn_arm_recv(s, c);
		return;
	}
	c->in.len += (uint32_t)res;
	if (first_frames(s, c))
		conn_arm_recv(s, c);
}

/* The pre-CONNACK bytes in c->in: wait for a whole frame (the CONNECT, or
 * in CONN_AUTH the next AUTH) and hand it over.  Returns true when more
 * bytes are needed (the caller re-arms receiving), false when the
 * connection is closing, handed off, or active (receiving is armed). */
static bool first_frames(struct shard *s, struct conn *c)
{
	const struct config *cfg = s->b->cfg;
	struct mqtt_frame f;
	uint8_t reason;
	uint32_t at;
	int r;

	at = c->state == CONN_AUTH ? c->in.off : 0;
	r = mqtt_frame_cut(c->in.data + at, c->in.len - at, cfg->connect_packet_size_max, &f, &reason);
	if (r < 0) {
		conn_close(s, c, reason, false,
			   r == -EMSGSIZE ? "packet before CONNACK exceeds connect_packet_size_max"
					  : "malformed packet before CONNACK");
		return false;
	}
	if (r == 0)
		return true; /* more to come; the buffer is bounded by connect_packet_size_max */
	stat_add(&s->stats.pkts_in, 1); /* the CONNECT or AUTH frame */
	if ((c->state == CONN_NEW ? connect_first(s, c) : login_continue(s, c)) != 0)
		return false;
	if (c->state == CONN_AUTH)
		return true; /* the exchange goes on */
	conn_after_connect(s, c);
	return false;
}

void conn_after_connect(struct shard *s, struct conn *c)
{
	int r;

	/* Accepted: bytes after the CONNECT (and AUTH) packets are ordinary frames. */
	if (c->in.off < c->in.len) {
		r = conn_frames(s, c, c->in.data + c->in.off, c->in.len - c->in.off);
		if (r < 0)
			return;
		c->in.off += (uint32_t)r;
	}
	if (c->ws)
		conn_ws_after(s, c); /* a close frame read behind the CONNECT (perhaps on another shard) */
	memmove(c->in.data, c->in.data + c->in.off, c->in.len - c->in.off);
	c->in.len -= c->in.off;
	c->in.off = 0;
	if (c->in.len == 0) {
		free(c->in.data); /* from now on bytes arrive in provided buffers */
		c->in = (struct conn_buf){0};
	}
	conn_arm_recv(s, c);
}

/* After CONNECT: bytes from a provided buffer. */
static void recv_data(struct shard *s, struct conn *c, const uint8_t *data, uint32_t n)
{
	int r;

	stat_add(&s->stats.bytes_in, n);
	if (c->in.len == 0) {
		r = conn_frames(s, c, data, n);
		if (r < 0 || (uint32_t)r == n)
			return;
		data += r;
		n -= (uint32_t)r;
	}
	if (in_reserve(c, c->in.len + n, 0) < 0) {
		conn_close(s, c, MQTT_RC_SERVER_BUSY, false, "out of memory");
		return;
	}
	memcpy(c->in.data + c->in.len, data, n);
	c->in.len += n;
	r = conn_frames(s, c, c->in.data, c->in.len);
	if (r < 0)
		return;
	memmove(c->in.data, c->in.data + r, c->in.len - (uint32_t)r);
	c->in.len -= (uint32_t)r;
}

bool conn_input(struct shard *s, struct conn *c, uint8_t *p, uint32_t n)
{
	RMQ_ASSERT(s->engine && !c->tls);
	if (c->state >= CONN_FLUSHING)
		return false;
	c->last_rx_ms = s->now_ms;
	stat_add(&s->stats.bytes_in, c->state < CONN_ACTIVE ? n : 0); /* recv_data() counts the rest */
	return stream_in(s, c, p, n);
}

/* Bytes from the transport (after TLS): a WebSocket connection's frames are
 * unwrapped in place first; then the MQTT bytes go to first_frames() before
 * CONNACK and to recv_data() after.  Returns false when the connection
 * stopped reading (closing or handed off). */
static bool stream_in(struct shard *s, struct conn *c, uint8_t *p, uint32_t n)
{
	if (c->ws)
		n = conn_ws_unwrap(s, c, p, n);
	if (n > 0 && c->state < CONN_ACTIVE) {
		if (in_reserve(c, c->in.len + n, 0) < 0) {
			conn_close(s, c, MQTT_RC_SERVER_BUSY, false, "out of memory");
			return false;
		}
		memcpy(c->in.data + c->in.len, p, n);
		c->in.len += n;
		(void)first_frames(s, c); /* false: closing, handed off or active, as the state tells */
	} else if (n > 0 && c->state == CONN_ACTIVE) {
		recv_data(s, c, p, n);
	}
	if (c->ws && c->state < CONN_FLUSHING)
		conn_ws_after(s, c);
	return c->state < CONN_FLUSHING;
}

/* TLS: decrypt what arrived and hand the plaintext to the same paths as a
 * plain connection.  Handshake records the decryption produced are queued
 * for sending. */
static void tls_plaintext(struct shard *s, struct conn *c)
{
	uint8_t plain[TLS_PLAIN_CHUNK_BYTES];
	char why[256] = "";
	int n;

	for (;;) {
		n = tls_read(c->tls, plain, sizeof(plain), why);
		if (c->tls->out.len > c->tls->out.off)
			conn_out_commit(s, c, 0); /* handshake records to send */
		if (n == 0)
			break;
		if (n < 0) {
			log_info(c->client_id, "TLS connection from %s closed: %s", c->peer, why);
			conn_close(s, c, MQTT_RC_UNSPECIFIED, false, why);
			return;
		}
		if (!stream_in(s, c, plain, (uint32_t)n))
			return; /* closing or handed off */
	}
	conn_arm_recv(s, c);
}

static void tls_recv_done(struct shard *s, struct conn *c, struct io_uring_cqe *cqe)
{
	bool more = cqe->flags & IORING_CQE_F_MORE;
	int res = cqe->res, r = 0;

	if (!more) {
		c->recv_armed = false;
		op_done(s, c);
	}
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		if (res > 0 && c->state < CONN_FLUSHING)
			r = tls_feed(c->tls, net_bufring_ptr(&s->bufs, bid), (size_t)res);
		net_bufring_put(&s->bufs, bid);
	} else if (res > 0) {
		c->tls->in.len += (uint32_t)res; /* the plain recv wrote straight into it */
	}
	if (c->state >= CONN_FLUSHING)
		return;
	if (res == 0 || (res < 0 && res != -ENOBUFS) || r < 0) {
		conn_close(s, c, MQTT_RC_UNSPECIFIED, false,
			   res == 0  ? "connection closed by client"
			   : r < 0 ? "TLS input over its bound"
				   : strerror(-res));
		return;
	}
	if (res > 0) {
		stat_add(&s->stats.bytes_in, (uint64_t)res);
		c->last_rx_ms = c->state < CONN_ACTIVE ? s->now_ms : c->last_rx_ms;
	}
	tls_plaintext(s, c);
}

/* ------------------------------------------------------------ PROXY header */

int conn_proxy_expect(struct shard *s, struct conn *c)
{
	const struct config_listener *l = &s->b->cfg->listeners[c->listener];
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (l->proxy_trusted_count &&
	    (getpeername(c->fd, (struct sockaddr *)&ss, &sl) != 0 ||
	     !proxy_trusted(l->proxy_trusted, l->proxy_trusted_count, (struct sockaddr *)&ss))) {
		log_info(NULL, "connection from %s refused: not in proxy_protocol_trusted", c->peer);
		conn_close(s, c, MQTT_RC_NOT_AUTHORIZED, false, "not in proxy_protocol_trusted");
		return -EACCES;
	}
	c->proxy_pending = true;
	return 0;
}

/* The PROXY header: once whole, c->peer becomes the client it names and
 * the bytes after it go on to the next layer (TLS, or the CONNECT path) as
 * if they had just been received.  Bounded by PROXY_HEADER_BYTES_MAX and,
 * like a CONNECT, by connect_timeout. */
static void proxy_recv_done(struct shard *s, struct conn *c, int res)
{
	const struct config_listener *l = &s->b->cfg->listeners[c->listener];
	char peer[sizeof(c->peer)], why_buf[160];
	struct proxy_header h;
	const char *why = "";
	uint32_t rest;
	int r;

	c->recv_armed = false;
	op_done(s, c);
	if (c->state >= CONN_FLUSHING)
		return;
	if (res <= 0) {
		conn_close(s, c, MQTT_RC_UNSPECIFIED, false,
			   res == 0 ? "connection closed before its PROXY header" : strerror(-res));
		return;
	}
	c->in.len += (uint32_t)res;
	r = proxy_parse(c->in.data, c->in.len, l->proxy_protocol, &h, &why);
	if (r == 0) {
		stat_add(&s->stats.bytes_in, (uint64_t)res);
		conn_arm_recv(s, c);
		return;
	}
	if (r < 0) {
		log_info(NULL, "connection from %s refused: PROXY protocol: %s", c->peer, why);
		snprintf(why_buf, sizeof(why_buf), "PROXY protocol: %s", why);
		conn_close(s, c, MQTT_RC_PROTOCOL_ERROR, false, why_buf);
		return;
	}
	if (proxy_format(&h, peer, sizeof(peer)) == 0) {
		log_debug(NULL, "connection from %s: PROXY v%u header, client %s", c->peer, h.version, peer);
		memcpy(c->peer, peer, sizeof(peer));
	} else {
		log_debug(NULL, "connection from %s: PROXY v%u header without a client address", c->peer, h.version);
	}
	c->proxy_pending = false;
	rest = c->in.len - (uint32_t)r;
	stat_add(&s->stats.bytes_in, (uint64_t)res - rest); /* the rest is counted where it goes */
	memmove(c->in.data, c->in.data + r, rest);
	c->in.len = 0;
	if (c->ws && !c->tls) { /* the rest starts the HTTP upgrade: where recv_first_done() looks */
		if (!conn_ws_rx(c)) {
			conn_close(s, c, MQTT_RC_SERVER_BUSY, false, "out of memory");
			return;
		}
		memcpy(c->ws->rx, c->in.data, rest);
	}
	if (c->tls) {
		if (rest && tls_feed(c->tls, c->in.data, rest) < 0) {
			conn_close(s, c, MQTT_RC_SERVER_BUSY, false, "TLS input over its bound");
			return;
		}
		stat_add(&s->stats.bytes_in, rest);
		tls_plaintext(s, c);
		return;
	}
	recv_first_done(s, c, (int)rest);
}

void conn_recv_done(struct shard *s, struct conn *c, struct io_uring_cqe *cqe)
{
	bool more = cqe->flags & IORING_CQE_F_MORE;
	int res = cqe->res;

	if (c->proxy_pending) {
		proxy_recv_done(s, c, res); /* a plain single-shot recv (conn_arm_recv) */
		return;
	}
	if (c->tls) {
		tls_recv_done(s, c, cqe);
		return;
	}

	if (!more) {
		c->recv_armed = false;
		op_done(s, c);
	}
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		if (res > 0 && c->state == CONN_ACTIVE)
			(void)stream_in(s, c, net_bufring_ptr(&s->bufs, bid), (uint32_t)res);
		net_bufring_put(&s->bufs, bid);
	} else if (res > 0 && c->state < CONN_ACTIVE) {
		c->last_rx_ms = s->now_ms;
		recv_first_done(s, c, res);
		return;
	}
	if (c->state >= CONN_FLUSHING)
		return;
	if (res == 0) {
		conn_close(s, c, MQTT_RC_UNSPECIFIED, false, "connection closed by client");
	} else if (res == -ENOBUFS) {
		/* The buffer ring ran dry: the buffers come back as frames are handled; re-arm. */
		if (!more)
			conn_arm_recv(s, c);
	} else if (res < 0) {
		conn_close(s, c, MQTT_RC_UNSPECIFIED, false, strerror(-res));
	} else if (!more) {
		conn_arm_recv(s, c);
	}
}

static void send_submit(struct shard *s, struct conn *c)
{
	struct conn_buf *o = &c->out[1];
	struct io_uring_sqe *sqe;

	if (s->engine) {
		/* No socket: the output is taken whole, as by a client that reads at once. */
		c->send_busy = true;
		c->ops++;
		conn_send_done(s, c, (int)(o->len - o->off));
		return;
	}
	sqe = sqe_get(s);
	io_uring_prep_send(sqe, c->fd, o->data + o->off, o->len - o->off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, UD_PACK(OP_SEND, c->gen, c->slot));
	c->send_busy = true;
	c->ops++;
}

/* Output waiting to be sent: plaintext in out[0], or TLS records. */
static bool out_pending(const struct conn *c)
{
	return c->out[0].len > 0 || (c->tls && c->tls->out.len > c->tls->out.off);
}

/* TLS: encrypt what out[0] holds, then send the records (out[1] is idle). */
static void tls_send(struct shard *s, struct conn *c)
{
	struct tls_conn *t = c->tls;
	char why[256];
	uint8_t *d;
	uint32_t cap;

	if (c->out[0].len > 0) {
		if (tls_write(t, c->out[0].data + c->out[0].off, c->out[0].len - c->out[0].off, why) < 0) {
			c->out[0].len = c->out[0].off = 0;
			conn_close(s, c, MQTT_RC_UNSPECIFIED, false, why);
			return;
		}
		c->out[0].len = c->out[0].off = 0;
	}
	if (t->out.len == t->out.off)
		return;
	d = c->out[1].data; /* swap the record buffer into the send slot */
	cap = c->out[1].cap;
	c->out[1] = (struct conn_buf){.data = t->out.data, .len = t->out.len, .cap = t->out.cap, .off = t->out.off};
	t->out = (struct tls_buf){.data = d, .cap = cap};
	send_submit(s, c);
}

static void out_swap_and_send(struct shard *s, struct conn *c)
{
	struct conn_buf t = c->out[1];

	if (c->ws) {
		conn_ws_seal(c); /* out[0].off may now skip unused header room */
		if (!out_pending(c))
			return; /* only an empty frame was open */
	}
	if (c->tls) {
		tls_send(s, c);
		return;
	}

	c->out[1] = c->out[0];
	c->out[0] = t;
	c->out[0].len = 0;
	c->out[0].off = 0;
	if (c->out[0].cap > OUT_BYTES_KEEP) {
		free(c->out[0].data);
		c->out[0].data = NULL;
		c->out[0].cap = 0;
	}
	send_submit(s, c);
}

static void finish_close(struct shard *s, struct conn *c)
{
	c->state = CONN_CLOSING;
	(void)shutdown(c->fd, SHUT_RDWR); /* completes pending recv/send; ENOTCONN is fine */
	if (c->ops == 0) {
		c->next_closing = s->closing;
		s->closing = c;
	}
}

void conn_send_done(struct shard *s, struct conn *c, int res)
{
	struct conn_buf *o = &c->out[1];

	op_done(s, c);
	c->send_busy = false;
	if (c->state == CONN_CLOSING)
		return;
	if (res < 0) {
		conn_close(s, c, MQTT_RC_UNSPECIFIED, false, strerror(-res));
		if (c->state == CONN_FLUSHING)
			finish_close(s, c);
		return;
	}
	stat_add(&s->stats.bytes_out, (uint64_t)res);
	o->off += (uint32_t)res;
	if (o->off < o->len) {
		send_submit(s, c); /* short send: the rest of the same buffer */
		return;
	}
	o->len = o->off = 0;
	if (out_pending(c)) {
		out_swap_and_send(s, c);
		return;
	}
	if (c->state == CONN_FLUSHING)
		finish_close(s, c);
}

void conn_flush_all(struct shard *s)
{
	while (s->dirty) {
		struct conn *c = s->dirty;
		s->dirty = c->next_dirty;
		c->in_dirty = false;
		if (c->state == CONN_CLOSING || c->send_busy || !out_pending(c))
			continue;
		out_swap_and_send(s, c);
	}
}

uint8_t *conn_out(struct shard *s, struct conn *c, uint32_t n)
{
	if (c->ws && !conn_ws_frame_begin(s, c))
		return NULL; /* MQTT bytes travel in binary frames only */
	return conn_out_raw(s, c, n);
}

uint8_t *conn_out_raw(struct shard *s, struct conn *c, uint32_t n)
{
	struct conn_buf *o = &c->out[0];
	uint64_t pending = (uint64_t)o->len + c->out[1].len - c->out[1].off;

	if (c->state == CONN_CLOSING)
		return NULL;
	if (pending + n > s->b->cfg->max_output_bytes && !c->final_packet) {
		stat_add(&s->stats.dropped, 1);
		stat_add(&s->stats.drops[SHARD_DROP_OUTPUT_LIMIT], 1);
		/* v5 is told why (the DISCONNECT may pass the limit: it is the last packet) */
		conn_close(s, c, MQTT_RC_QUOTA_EXCEEDED, true, "client does not read: output limit reached");
		return NULL;
	}
	if (o->len + n > o->cap) {
		uint32_t cap = o->cap ? o->cap : OUT_BYTES_INITIAL;
		while (cap < o->len + n)
			cap *= 2;
		uint8_t *p = realloc(o->data, cap);
		if (!p) {
			conn_close(s, c, MQTT_RC_SERVER_BUSY, false, "out of memory for output");
			return NULL;
		}
		o->data = p;
		o->cap = cap;
	}
	return o->data + o->len;
}

void conn_out_commit(struct shard *s, struct conn *c, uint32_t n)
{
	c->out[0].len += n;
	if (n) /* one packet per commit; 0 only marks TLS handshake records for sending */
		stat_add(&s->stats.pkts_out, 1);
	if (!c->in_dirty) {
		c->in_dirty = true;
		c->next_dirty = s->dirty;
		s->dirty = c;
	}
}

int conn_send_packet(struct shard *s, struct conn *c, const struct mqtt_packet *pkt)
{
	uint8_t version = c->version ? c->version : MQTT_V311;
	size_t n = mqtt_encoded_len(version, pkt);
	uint8_t *p;
	int r;

	if (n == 0)
		return -EINVAL;
	p = conn_out(s, c, (uint32_t)n);
	if (!p)
		return -ENOBUFS;
	r = mqtt_encode(version, pkt, p, n);
	RMQ_ASSERT(r == (int)n);
	conn_out_commit(s, c, (uint32_t)n);
	return 0;
}

void conn_close(struct shard *s, struct conn *c, uint8_t reason, bool notify, const char *why)
{
	RMQ_ASSERT(c->owner_shard == s->id);
	if (c->state >= CONN_FLUSHING)
		return;
	if (c->state == CONN_ACTIVE)
		log_info(c->client_id, "disconnected from %s: MQTT %s, %s (reason 0x%02x)", c->peer,
			 c->version == MQTT_V5 ? "5.0" : c->version == MQTT_V311 ? "3.1.1" : "3.1", why, reason);
	else
		log_debug(NULL, "connection from %s closed before CONNECT: %s", c->peer, why);
	if (c->sess) {
		struct sess *se = c->sess;
		c->sess = NULL;
		se->conn = NULL;
		sess_detach(s, se, c->publish_will);
	}
	if (notify && c->version == MQTT_V5 && c->state == CONN_ACTIVE) {
		struct mqtt_packet d = {.type = MQTT_DISCONNECT};
		const char *ref = s->b->cfg->server_reference;
		d.disconnect.reason = reason;
		if ((reason == MQTT_RC_USE_ANOTHER_SERVER || reason == MQTT_RC_SERVER_MOVED) && ref[0]) {
			d.disconnect.props.present = MQTT_HAS(MQTT_PROP_SERVER_REFERENCE);
			d.disconnect.props.server_reference.ptr = (const uint8_t *)ref;
			d.disconnect.props.server_reference.len = (uint32_t)strlen(ref);
		}
		c->final_packet = true;
		(void)conn_send_packet(s, c, &d); /* if it cannot be queued, the close goes on */
	}
	conn_close_after_flush(s, c);
}

void conn_close_after_flush(struct shard *s, struct conn *c)
{
	if (c->state >= CONN_FLUSHING)
		return;
	if (c->sess) {
		struct sess *se = c->sess;
		c->sess = NULL;
		se->conn = NULL;
		sess_detach(s, se, c->publish_will);
	}
	if (c->ws)
		conn_ws_close(s, c, WS_CLOSE_NORMAL); /* after any last packet; the client answers or not */
	if (!out_pending(c) && !c->send_busy) {
		finish_close(s, c);
		return;
	}
	c->state = CONN_FLUSHING;
	c->flush_deadline_ms = s->now_ms + FLUSH_DEADLINE_MS;
	(void)shutdown(c->fd, SHUT_RD); /* stop reading; pending output still leaves */
}

/* An idle connection keeps no buffers: most of a broker's connections are
 * idle, and their per-connection memory is what bounds how many fit. */
static void trim_idle(struct conn *c)
{
	if (!c->send_busy && c->out[0].len == 0) {
		for (int i = 0; i < 2; i++) {
			free(c->out[i].data);
			c->out[i] = (struct conn_buf){0};
		}
	}
	if (c->in.len == 0 && c->in.data) {
		free(c->in.data);
		c->in = (struct conn_buf){0};
	}
	if (c->ws)
		ws_conn_trim(c->ws); /* the handshake and pre-CONNACK buffers */
}

void conn_sweep(struct shard *s)
{
	const struct config *cfg = s->b->cfg;

	for (uint32_t i = 0; i < s->conn_cap; i++) {
		struct conn *c = s->conns[i];
		if (!c)
			continue;
		if (c->state < CONN_ACTIVE && s->now_ms - c->accepted_ms > (uint64_t)cfg->connect_timeout_s * 1000u) {
			conn_close(s, c, MQTT_RC_MAX_CONNECT_TIME, false, "no CONNECT within connect_timeout");
		} else if (c->state == CONN_ACTIVE && c->keepalive_ms &&
			   s->now_ms - c->last_rx_ms > (uint64_t)c->keepalive_ms * 3 / 2) {
			/* [MQTT-3.1.2-24] 1.5 x keep alive without a packet */
			c->publish_will = true;
			conn_close(s, c, MQTT_RC_KEEPALIVE_TIMEOUT, true, "keep alive timeout");
		} else if (c->state == CONN_FLUSHING && s->now_ms > c->flush_deadline_ms) {
			finish_close(s, c);
		} else if (c->state == CONN_ACTIVE) {
			trim_idle(c);
		}
	}
}

static uint32_t packet_limit(const struct shard *s, const struct conn *c)
{
	return c->state < CONN_ACTIVE ? s->b->cfg->connect_packet_size_max : s->b->cfg->max_packet_size;
}

int conn_frames(struct shard *s, struct conn *c, const uint8_t *buf, uint32_t len)
{
	uint32_t off = 0;
	struct mqtt_frame f;
	struct mqtt_packet pkt;
	uint8_t reason = 0;
	int r;

	while (off < len && c->state == CONN_ACTIVE) {
		if (len - off >= 4 && buf[off] == 0x40 && buf[off + 1] == 0x02 && (buf[off + 2] | buf[off + 3])) {
			/* PUBACK in its 4-byte form (any version): one per QoS 1
			 * message, so it skips the generic decoder. */
			struct mqtt_ack ack = {.packet_id = (uint16_t)(buf[off + 2] << 8 | buf[off + 3])};
			off += 4;
			stat_add(&s->stats.pkts_in, 1);
			c->last_rx_ms = s->now_ms;
			publish_ack_in(s, c, MQTT_PUBACK, &ack);
			continue;
		}
		r = mqtt_frame_cut(buf + off, len - off, packet_limit(s, c), &f, &reason);
		if (r == 0)
			break;
		if (r < 0) {
			/* [MQTT-3.2.2-? / 4.13] v5: DISCONNECT 0x95 or 0x81, then close */
			conn_close(s, c, reason, true,
				   r == -EMSGSIZE ? "packet exceeds max_packet_size" : "malformed packet header");
			return -1;
		}
		stat_add(&s->stats.pkts_in, 1);
		r = mqtt_decode(c->version, buf + off, (size_t)r, &pkt, &reason);
		if (r < 0) {
			log_debug(c->client_id, "bad %s packet: reason 0x%02x", mqtt_type_name(f.type), reason);
			conn_close(s, c, reason, true,
				   reason == MQTT_RC_MALFORMED ? "malformed packet" : "protocol error");
			return -1;
		}
		off += (uint32_t)r;
		/* [MQTT-3.1.2-24] keep alive counts whole packets, not bytes: a
		 * client dribbling one frame forever still times out */
		c->last_rx_ms = s->now_ms;
		stat_add(&s->stats.msgs_in, pkt.type == MQTT_PUBLISH);
		atomic_fetch_add_explicit(&s->stats.pub_bytes_in,
					  pkt.type == MQTT_PUBLISH ? pkt.publish.payload.len : 0, memory_order_relaxed);
		proto_dispatch(s, c, &pkt);
	}
	return c->state == CONN_ACTIVE ? (int)off : -1;
}

/* ------------------------------------------------- server -> client aliases */

static uint32_t alias_slot(const struct conn *c, const struct mqtt_str *t, bool *ret_found)
{
	uint32_t mask = 2u * c->alias_out_max - 1, h = 2166136261u; /* FNV-1a */

	for (uint32_t i = 0; i < t->len; i++)
		h = (h ^ t->ptr[i]) * 16777619u;
	for (uint32_t i = h & mask;; i = (i + 1) & mask) {
		const struct conn_alias *a = &c->alias_out[i];
		if (!a->topic || (a->len == t->len && memcmp(a->topic, t->ptr, t->len) == 0)) {
			*ret_found = a->topic != NULL;
			return i; /* the table is never more than half full, so this ends */
		}
	}
}

uint16_t conn_alias_out(struct conn *c, const struct mqtt_str *topic, bool *ret_new)
{
	bool found;
	uint32_t i;

	if (c->alias_out_max == 0 || topic->len == 0)
		return 0;
	if (!c->alias_out) {
		/* alias_out_max is a power of two (rounded down when set), so 2x is too */
		c->alias_out = calloc(2u * c->alias_out_max, sizeof(*c->alias_out));
		if (!c->alias_out)
			return 0;
	}
	i = alias_slot(c, topic, &found);
	if (found) {
		*ret_new = false;
		return c->alias_out[i].alias;
	}
	if (c->alias_out_count >= c->alias_out_max)
		return 0; /* all aliases taken: later topics go without one */
	*ret_new = true;
	return (uint16_t)(c->alias_out_count + 1);
}

void conn_alias_commit(struct conn *c, const struct mqtt_str *topic, uint16_t alias)
{
	bool found;
	uint32_t i = alias_slot(c, topic, &found);
	uint8_t *copy;

	if (found || !(copy = malloc(topic->len)))
		return; /* out of memory: the alias is simply not reused */
	memcpy(copy, topic->ptr, topic->len);
	c->alias_out[i] = (struct conn_alias){.topic = copy, .len = (uint16_t)topic->len, .alias = alias};
	c->alias_out_count++;
}
