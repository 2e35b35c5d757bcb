/*
 * floor.c - ringmq-floor: the floor reference forwarder.
 *
 * The least a broker can do and still pass the load generator's checks:
 * one thread, one io_uring, CONNACK to any CONNECT, SUBACK (granted QoS
 * 0) to any SUBSCRIBE, exact topic matching only (filters are taken as
 * literal topics: no wildcards, no $share), and each QoS 0 PUBLISH frame
 * copied byte for byte into the send buffer of every subscriber of its
 * topic.  A QoS 1 PUBLISH is acknowledged at once and forwarded as QoS 0
 * (header rewritten, packet id dropped); QoS 2 gets PUBREC / PUBCOMP the
 * same way.  No sessions, no retained messages, no keep-alive, no
 * validation beyond frame cutting.  Running a scenario against it under
 * the same CPU pinning as a broker gives the ceiling this kernel and
 * loopback allow; bench/compare reports brokers as a fraction of it.
 *
 * Output batching: forwards only append; every connection that got bytes
 * during a batch of completions is sent to once at the end of the batch,
 * so a subscriber receives one send per batch, not one per message.  A
 * subscriber whose unsent output passes OUT_BYTES_MAX loses QoS 0
 * messages (counted and printed at exit), as a real broker would.
 *
 * Usage: ringmq-floor [-p PORT] [--bind ADDR]; port 0 picks a free port.
 * It prints "listening on ADDR:PORT" on stderr when ready and exits on
 * SIGTERM or SIGINT.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ringmq/mqtt.h"

#define RING_ENTRIES 4096u
#define RING_CQ_ENTRIES 65536u
#define LISTEN_BACKLOG 4096
/* Receive buffer per connection: starts small (idle and handshake-only
 * connections stay small), doubles whenever a recv fills it, up to
 * IN_BYTES_FULL; beyond that only for a frame that does not fit. */
#define IN_BYTES_INITIAL 4096u
#define IN_BYTES_FULL 65536u
#define PACKET_BYTES_MAX (64u << 20)
/* Unsent bytes one subscriber may have before QoS 0 forwards are dropped. */
#define OUT_BYTES_MAX (16u << 20)
/* Topics in the table: a power of two, at most half full. */
#define TOPICS_INITIAL 1024u
/* How often the loop looks at the stop flag, in ns. */
#define STOP_POLL_NS 100000000

enum op { OP_ACCEPT = 1, OP_RECV, OP_SEND };

/* user_data: bits 0..7 op, 8..63 the conn's slot. */
#define UD(op, slot) ((uint64_t)(op) | (uint64_t)(slot) << 8)

struct buf {
	uint8_t *data;
	uint32_t len;
	uint32_t cap;
};

struct topic {
	char *name;
	uint32_t len;
	uint32_t nsubs;
	uint32_t cap;
	struct conn **subs;
};

struct conn {
	int fd;
	uint32_t slot;
	uint8_t version;
	uint8_t pending;
	bool closing;
	bool send_busy;
	bool dirty;
	uint8_t out_cur;
	struct buf in;
	struct buf out[2];
	uint32_t out_sent;
	struct topic **topics; /* subscribed to */
	uint32_t ntopics;
	uint32_t topics_cap;
};

static struct {
	struct io_uring ring;
	int listen_fd;
	struct conn **conns;
	uint32_t nconns;
	uint32_t conns_cap;
	uint32_t *free_slots;
	uint32_t nfree;
	struct conn **dirty;
	uint32_t ndirty;
	uint32_t dirty_cap;
	struct topic **topics; /* the hash table: NULL or a topic */
	uint32_t topics_cap;
	uint32_t topics_used;
	uint64_t forwarded;
	uint64_t dropped;
	bool accept_armed;
} F;

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q) {
		fprintf(stderr, "ringmq-floor: out of memory\n");
		exit(1);
	}
	return q;
}

static void buf_reserve(struct buf *b, uint32_t n)
{
	uint32_t want = b->cap ? b->cap : 4096;

	if (b->len + n <= b->cap)
		return;
	while (want < b->len + n)
		want *= 2;
	b->data = xrealloc(b->data, want);
	b->cap = want;
}

static struct io_uring_sqe *get_sqe(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&F.ring);

	if (!sqe) {
		(void)io_uring_submit(&F.ring); /* a failure shows up as the NULL below */
		sqe = io_uring_get_sqe(&F.ring);
	}
	if (!sqe) {
		fprintf(stderr, "ringmq-floor: submission queue full\n");
		exit(1);
	}
	return sqe;
}

/* ------------------------------------------------------------------------
 * Topics: open addressing over stable topic records, FNV-1a, never shrinks
 * ---------------------------------------------------------------------- */

static uint32_t hash(const uint8_t *s, uint32_t len)
{
	uint32_t h = 2166136261u;

	for (uint32_t i = 0; i < len; i++)
		h = (h ^ s[i]) * 16777619u;
	return h;
}

/* The table slot holding @name, or the empty slot where it would go. */
static uint32_t topic_slot(const uint8_t *name, uint32_t len)
{
	uint32_t mask = F.topics_cap - 1;
	uint32_t i = hash(name, len) & mask;

	while (F.topics[i] && (F.topics[i]->len != len || memcmp(F.topics[i]->name, name, len) != 0))
		i = (i + 1) & mask;
	return i;
}

static void topics_grow(void)
{
	struct topic **old = F.topics;
	uint32_t old_cap = F.topics_cap;

	F.topics_cap = old_cap ? old_cap * 2 : TOPICS_INITIAL;
	F.topics = xrealloc(NULL, F.topics_cap * sizeof(F.topics[0]));
	memset(F.topics, 0, F.topics_cap * sizeof(F.topics[0]));
	for (uint32_t i = 0; i < old_cap; i++)
		if (old[i])
			F.topics[topic_slot((const uint8_t *)old[i]->name, old[i]->len)] = old[i];
	free(old);
}

static void subscribe(struct conn *c, const uint8_t *name, uint32_t len)
{
	struct topic *t;
	uint32_t slot;

	if (F.topics_used * 2 >= F.topics_cap)
		topics_grow();
	slot = topic_slot(name, len);
	if (!(t = F.topics[slot])) {
		t = xrealloc(NULL, sizeof(*t));
		memset(t, 0, sizeof(*t));
		t->name = xrealloc(NULL, len ? len : 1);
		memcpy(t->name, name, len);
		t->len = len;
		F.topics[slot] = t;
		F.topics_used++;
	}
	for (uint32_t i = 0; i < t->nsubs; i++)
		if (t->subs[i] == c)
			return;
	if (t->nsubs == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 4;
		t->subs = xrealloc(t->subs, t->cap * sizeof(t->subs[0]));
	}
	t->subs[t->nsubs++] = c;
	if (c->ntopics == c->topics_cap) {
		c->topics_cap = c->topics_cap ? c->topics_cap * 2 : 2;
		c->topics = xrealloc(c->topics, c->topics_cap * sizeof(c->topics[0]));
	}
	c->topics[c->ntopics++] = t;
}

static void unsubscribe_all(struct conn *c)
{
	for (uint32_t k = 0; k < c->ntopics; k++) {
		struct topic *t = c->topics[k];

		for (uint32_t i = 0; i < t->nsubs; i++)
			if (t->subs[i] == c) {
				t->subs[i] = t->subs[--t->nsubs];
				break;
			}
	}
	c->ntopics = 0;
}

/* ------------------------------------------------------------------------
 * Connections
 * ---------------------------------------------------------------------- */

static struct conn **dead;
static uint32_t ndead;
static uint32_t dead_cap;

static void post_recv(struct conn *c);

static void submit_send(struct conn *c)
{
	struct buf *b = &c->out[!c->out_cur];
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_send(sqe, c->fd, b->data + c->out_sent, b->len - c->out_sent, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, UD(OP_SEND, c->slot));
	c->send_busy = true;
	c->pending++;
}

static void kick(struct conn *c)
{
	if (c->send_busy || c->closing || c->out[c->out_cur].len == 0)
		return;
	c->out_cur ^= 1;
	c->out_sent = 0;
	submit_send(c);
}

static void mark_dirty(struct conn *c)
{
	if (c->dirty)
		return;
	if (F.ndirty == F.dirty_cap) {
		F.dirty_cap = F.dirty_cap ? F.dirty_cap * 2 : 256;
		F.dirty = xrealloc(F.dirty, F.dirty_cap * sizeof(F.dirty[0]));
	}
	c->dirty = true;
	F.dirty[F.ndirty++] = c;
}

static void out_append(struct conn *c, const void *p, uint32_t n)
{
	struct buf *b = &c->out[c->out_cur];

	buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
	mark_dirty(c);
}

static void bury(struct conn *c)
{
	if (ndead == dead_cap) {
		dead_cap = dead_cap ? dead_cap * 2 : 64;
		dead = xrealloc(dead, dead_cap * sizeof(dead[0]));
	}
	dead[ndead++] = c;
}

static void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	unsubscribe_all(c);
	(void)shutdown(c->fd, SHUT_RDWR); /* completes the pending recv; errors change nothing */
	if (c->pending == 0)
		bury(c);
}

/* Connections are freed only after the batch's output was flushed, so the
 * dirty list never points at freed memory. */
static void free_dead(void)
{
	for (uint32_t i = 0; i < ndead; i++) {
		struct conn *c = dead[i];

		close(c->fd);
		F.conns[c->slot] = NULL;
		F.free_slots[F.nfree++] = c->slot;
		free(c->in.data);
		free(c->out[0].data);
		free(c->out[1].data);
		free(c->topics);
		free(c);
	}
	ndead = 0;
}

static void op_done(struct conn *c)
{
	c->pending--;
	if (c->closing && c->pending == 0)
		bury(c);
}

static void conn_new(int fd)
{
	struct conn *c = xrealloc(NULL, sizeof(*c));
	int one = 1;

	memset(c, 0, sizeof(*c));
	c->fd = fd;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* best effort */
	if (F.nfree) {
		c->slot = F.free_slots[--F.nfree];
	} else {
		if (F.nconns == F.conns_cap) {
			F.conns_cap = F.conns_cap ? F.conns_cap * 2 : 1024;
			F.conns = xrealloc(F.conns, F.conns_cap * sizeof(F.conns[0]));
			F.free_slots = xrealloc(F.free_slots, F.conns_cap * sizeof(F.free_slots[0]));
		}
		c->slot = F.nconns++;
	}
	F.conns[c->slot] = c;
	buf_reserve(&c->in, IN_BYTES_INITIAL);
	post_recv(c);
}

static void post_recv(struct conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->closing)
		return;
	if (c->in.len == c->in.cap) {
		if (c->in.cap >= PACKET_BYTES_MAX) {
			conn_close(c);
			return;
		}
		buf_reserve(&c->in, c->in.cap);
	}
	sqe = get_sqe();
	io_uring_prep_recv(sqe, c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
	io_uring_sqe_set_data64(sqe, UD(OP_RECV, c->slot));
	c->pending++;
}

/* ------------------------------------------------------------------------
 * Packets
 * ---------------------------------------------------------------------- */

static void put_ack(struct conn *c, uint8_t first, const uint8_t *pid)
{
	uint8_t a[4] = {first, 2, pid[0], pid[1]};

	out_append(c, a, sizeof(a));
}

static void on_connect(struct conn *c, const uint8_t *p, uint32_t n)
{
	static const uint8_t connack_v3[] = {0x20, 0x02, 0x00, 0x00};
	static const uint8_t connack_v5[] = {0x20, 0x03, 0x00, 0x00, 0x00};
	struct mqtt_packet pkt;
	uint8_t reason;

	if (mqtt_decode(MQTT_V311, p, n, &pkt, &reason) < 0) {
		conn_close(c);
		return;
	}
	c->version = pkt.connect.version;
	if (c->version == MQTT_V5)
		out_append(c, connack_v5, sizeof(connack_v5));
	else
		out_append(c, connack_v3, sizeof(connack_v3));
}

static void on_subscribe(struct conn *c, const uint8_t *p, uint32_t n)
{
	static const uint8_t zeros[64];
	struct mqtt_packet pkt;
	struct mqtt_sub s;
	uint8_t out[128];
	uint32_t pos = 0;
	uint32_t count;
	uint8_t reason;
	int r;

	if (mqtt_decode(c->version, p, n, &pkt, &reason) < 0 || pkt.subscribe.count > sizeof(zeros)) {
		conn_close(c);
		return;
	}
	count = pkt.subscribe.count;
	while (mqtt_sub_next(&pkt.subscribe, false, &pos, &s) == 1)
		subscribe(c, s.filter.ptr, s.filter.len);
	/* SUBACK reuses the packet id; the union's other fields are rewritten. */
	pkt.type = MQTT_SUBACK;
	memset(&pkt.suback.props, 0, sizeof(pkt.suback.props));
	pkt.suback.codes = zeros; /* granted QoS 0: every forward is QoS 0 */
	pkt.suback.count = count;
	r = mqtt_encode(c->version, &pkt, out, sizeof(out));
	if (r < 0) {
		conn_close(c);
		return;
	}
	out_append(c, out, (uint32_t)r);
}

static void fan_out(struct topic *t, const uint8_t *hdr, uint32_t hlen, const uint8_t *a, uint32_t alen,
		    const uint8_t *b, uint32_t blen)
{
	for (uint32_t i = 0; i < t->nsubs; i++) {
		struct conn *s = t->subs[i];
		struct buf *o = &s->out[s->out_cur];

		if (o->len + hlen + alen + blen > OUT_BYTES_MAX) {
			F.dropped++;
			continue;
		}
		buf_reserve(o, hlen + alen + blen);
		memcpy(o->data + o->len, hdr, hlen);
		if (alen) /* a frame wholly in one buffer has no second part: NULL, 0 */
			memcpy(o->data + o->len + hlen, a, alen);
		if (blen)
			memcpy(o->data + o->len + hlen + alen, b, blen);
		o->len += hlen + alen + blen;
		mark_dirty(s);
		F.forwarded++;
	}
}

/* QoS 0: the frame as it came.  QoS 1/2: acknowledged here, forwarded as
 * QoS 0 with the packet id cut out of the variable header. */
static void on_publish(struct conn *c, const uint8_t *p, const struct mqtt_frame *f)
{
	const uint8_t *body = p + f->header_len;
	uint8_t qos = (f->flags >> 1) & 3;
	uint32_t tl;
	uint8_t hdr[5];
	uint32_t hlen = 1;
	uint32_t rl;
	struct topic *t;

	if (f->body_len < 2 || (tl = (uint32_t)body[0] << 8 | body[1]) + 2 + (qos ? 2 : 0) > f->body_len) {
		conn_close(c);
		return;
	}
	if (qos)
		put_ack(c, qos == 1 ? 0x40 : 0x50, body + 2 + tl);
	if (!F.topics_cap || !(t = F.topics[topic_slot(body + 2, tl)]) || t->nsubs == 0)
		return;
	if (qos == 0) {
		fan_out(t, p, f->header_len + f->body_len, NULL, 0, NULL, 0);
		return;
	}
	hdr[0] = (uint8_t)(0x30 | (f->flags & 0x01));
	for (rl = f->body_len - 2; rl >= 128; rl >>= 7)
		hdr[hlen++] = (uint8_t)(0x80 | (rl & 0x7f));
	hdr[hlen++] = (uint8_t)rl;
	fan_out(t, hdr, hlen, body, 2 + tl, body + 4 + tl, f->body_len - 4 - tl);
}

static void on_frame(struct conn *c, const uint8_t *p, const struct mqtt_frame *f)
{
	static const uint8_t pingresp[] = {0xd0, 0x00};
	uint32_t n = f->header_len + f->body_len;

	switch (f->type) {
	case MQTT_PUBLISH: on_publish(c, p, f); break;
	case MQTT_CONNECT: on_connect(c, p, n); break;
	case MQTT_SUBSCRIBE: on_subscribe(c, p, n); break;
	case MQTT_UNSUBSCRIBE: /* acknowledged; the subscription stays until the connection closes */
		if (f->body_len >= 2)
			put_ack(c, 0xb0, p + f->header_len);
		break;
	case MQTT_PUBREL:
		if (f->body_len >= 2)
			put_ack(c, 0x70, p + f->header_len);
		break;
	case MQTT_PINGREQ: out_append(c, pingresp, sizeof(pingresp)); break;
	case MQTT_DISCONNECT: conn_close(c); break;
	default: break; /* acks of our QoS 0 forwards cannot come; anything else is ignored */
	}
}

static void on_recv(struct conn *c, int res)
{
	uint32_t off = 0;

	if (c->closing)
		return;
	if (res <= 0) {
		conn_close(c);
		return;
	}
	c->in.len += (uint32_t)res;
	if (c->in.len == c->in.cap && c->in.cap < IN_BYTES_FULL)
		buf_reserve(&c->in, c->in.cap); /* a busy sender: read more per recv */
	while (off < c->in.len && !c->closing) {
		struct mqtt_frame f;
		uint8_t reason;
		int n = mqtt_frame_cut(c->in.data + off, c->in.len - off, PACKET_BYTES_MAX, &f, &reason);

		if (n == 0)
			break;
		if (n < 0) {
			conn_close(c);
			return;
		}
		on_frame(c, c->in.data + off, &f);
		off += (uint32_t)n;
	}
	memmove(c->in.data, c->in.data + off, c->in.len - off);
	c->in.len -= off;
	post_recv(c);
}

static void on_send(struct conn *c, int res)
{
	struct buf *b = &c->out[!c->out_cur];

	c->send_busy = false;
	if (c->closing)
		return;
	if (res < 0) {
		conn_close(c);
		return;
	}
	c->out_sent += (uint32_t)res;
	if (c->out_sent < b->len) {
		submit_send(c);
		return;
	}
	b->len = 0;
	kick(c);
}

/* ------------------------------------------------------------------------
 * The loop
 * ---------------------------------------------------------------------- */

static void arm_accept(void)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_multishot_accept(sqe, F.listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, UD(OP_ACCEPT, 0));
	F.accept_armed = true;
}

static void on_cqe(const struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;
	struct conn *c;

	if ((ud & 0xff) == OP_ACCEPT) {
		if (cqe->res >= 0)
			conn_new(cqe->res);
		else if (cqe->res != -EMFILE && cqe->res != -ENFILE)
			fprintf(stderr, "ringmq-floor: accept: %s\n", strerror(-cqe->res));
		if (!(cqe->flags & IORING_CQE_F_MORE))
			F.accept_armed = false;
		return;
	}
	c = F.conns[ud >> 8];
	if ((ud & 0xff) == OP_RECV)
		on_recv(c, cqe->res);
	else
		on_send(c, cqe->res);
	op_done(c);
}

static void flush(void)
{
	for (uint32_t i = 0; i < F.ndirty; i++) {
		F.dirty[i]->dirty = false;
		kick(F.dirty[i]);
	}
	F.ndirty = 0;
	free_dead();
}

static int listen_on(const char *addr, uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	socklen_t alen = sizeof(a);
	int one = 1;

	if (inet_pton(AF_INET, addr, &a.sin_addr) != 1) {
		fprintf(stderr, "ringmq-floor: bad address %s\n", addr);
		return -1;
	}
	F.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (F.listen_fd < 0 || setsockopt(F.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(F.listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(F.listen_fd, LISTEN_BACKLOG) < 0 ||
	    getsockname(F.listen_fd, (struct sockaddr *)&a, &alen) < 0) {
		fprintf(stderr, "ringmq-floor: listen on %s:%u: %s\n", addr, port, strerror(errno));
		return -1;
	}
	fprintf(stderr, "ringmq-floor: listening on %s:%u\n", addr, ntohs(a.sin_port));
	return 0;
}

static int ring_init(void)
{
	struct io_uring_params p;
	int r;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	p.cq_entries = RING_CQ_ENTRIES;
	r = io_uring_queue_init_params(RING_ENTRIES, &F.ring, &p);
	if (r == -EINVAL) {
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = RING_CQ_ENTRIES;
		r = io_uring_queue_init_params(RING_ENTRIES, &F.ring, &p);
	}
	if (r < 0)
		fprintf(stderr, "ringmq-floor: io_uring_queue_init: %s\n", strerror(-r));
	return r;
}

static int parse_args(int argc, char **argv, const char **addr, uint16_t *port)
{
	for (int i = 1; i < argc; i++) {
		char *end;
		unsigned long v;

		if (!strcmp(argv[i], "--bind") && i + 1 < argc) {
			*addr = argv[++i];
		} else if ((!strcmp(argv[i], "-p") || !strcmp(argv[i], "--port")) && i + 1 < argc) {
			v = strtoul(argv[++i], &end, 10);
			if (*end || v > 65535)
				return -1;
			*port = (uint16_t)v;
		} else {
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1";
	uint16_t port = 1883;
	struct sigaction sa = {.sa_handler = on_signal};

	if (parse_args(argc, argv, &addr, &port) < 0) {
		fprintf(stderr,
			"Usage: ringmq-floor [-p PORT] [--bind IPV4]\n"
			"The floor reference forwarder (see bench/floor.c and docs/benchmarks.md).\n");
		return 2;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (ring_init() < 0 || listen_on(addr, port) < 0)
		return 1;
	while (!stopping) {
		struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = STOP_POLL_NS};
		struct io_uring_cqe *cqe;
		unsigned head;
		unsigned n = 0;

		if (!F.accept_armed)
			arm_accept();
		(void)io_uring_submit_and_wait_timeout(&F.ring, &cqe, 1, &ts,
						       NULL); /* -ETIME, -EINTR: loop */
		io_uring_for_each_cqe(&F.ring, head, cqe)
		{
			on_cqe(cqe);
			n++;
		}
		io_uring_cq_advance(&F.ring, n);
		flush();
	}
	fprintf(stderr, "ringmq-floor: stopped: %llu messages forwarded, %llu dropped (slow subscribers)\n",
		(unsigned long long)F.forwarded, (unsigned long long)F.dropped);
	return 0;
}
