/*
 * 20_uring.c - io_uring edge cases, forced from outside the broker.
 *
 * The broker receives into a ring of provided buffers (recv_buffers of
 * recv_buffer_size bytes per shard, multishot recv) and sends each
 * connection's output with one send per loop turn.  What can go wrong
 * there is reachable from a socket: short sends and receives (a client
 * with tiny socket buffers), the buffer ring running dry (-ENOBUFS) when
 * bursts from many clients exceed it, many frames in one buffer, and
 * frames split across buffers at every offset (a 16 x 512-byte ring, and
 * writes of 1 byte, odd sizes and 100 KB frames).  Each test checks that
 * every byte arrives intact and in order (payloads carry their publisher,
 * sequence number and a pattern), every QoS 1 flow completes, and the
 * witness (tclient.h) is served.
 *
 * The completion queue has twice URING_ENTRIES_DEFAULT (8,192) entries and
 * no directive lowers it, so overflowing it takes more completions in one
 * loop turn than that: one PUBLISH fanned out to 9,000 subscribers on one
 * shard is 9,000 sends submitted together, whose completions arrive
 * together.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "harness.h"
#include "thttp.h"
#include "tclient.h"

TestSuite(uring, .timeout = 120);

/* The smallest ring the configuration allows a buffer size for, and few
 * buffers: 8 KiB per shard in all. */
#define TINY_RING "recv_buffers 16\nrecv_buffer_size 512\nmax_queued_messages 10000\n"

/* Fills @buf (@len bytes plus NUL) with the payload of message @seq of
 * publisher @pubno: "PP-SSSSSS-" and then a pattern that depends on both,
 * so a byte out of place anywhere is caught. */
static void payload_fill(char *buf, size_t len, unsigned pubno, unsigned seq)
{
	int n = snprintf(buf, len + 1, "%02u-%06u-", pubno, seq);

	cr_assert(n > 0 && (size_t)n <= len);
	for (size_t j = (size_t)n; j < len; j++)
		buf[j] = (char)('a' + (pubno * 31 + seq * 7 + j) % 26);
	buf[len] = '\0';
}

/* Encodes @p for @c's version at the end of @buf (grown as needed). */
static void append_packet(const struct tclient *c, const struct mqtt_packet *p, uint8_t **buf, size_t *len,
			  size_t *cap)
{
	size_t n = mqtt_encoded_len(c->version, p);

	cr_assert(n > 0);
	if (*len + n > *cap) {
		*cap = (*len + n) * 2;
		*buf = realloc(*buf, *cap);
		cr_assert(*buf);
	}
	cr_assert(mqtt_encode(c->version, p, *buf + *len, n) == (int)n);
	*len += n;
}

/* @count QoS 1 PUBLISHes to @topic of @plen-byte payloads, publisher
 * number @pubno, sequence numbers from @first, appended to @buf. */
static void append_publishes(struct tclient *c, const char *topic, unsigned pubno, unsigned first, unsigned count,
			     size_t plen, uint8_t **buf, size_t *len, size_t *cap)
{
	char *payload = malloc(plen + 1);

	cr_assert(payload);
	for (unsigned i = 0; i < count; i++) {
		struct mqtt_packet p;

		payload_fill(payload, plen, pubno, first + i);
		p = tc_publish_packet(c, topic, payload, 1, false);
		append_packet(c, &p, buf, len, cap);
	}
	free(payload);
}

/* Receives @count QoS 1 messages on @sub, acknowledging each: from
 * publisher @pubno, sequence numbers from @first, payloads of @plen bytes. */
static void receive_run(struct tclient *sub, const char *topic, unsigned pubno, unsigned first, unsigned count,
			size_t plen)
{
	char *want = malloc(plen + 1);

	cr_assert(want);
	for (unsigned i = 0; i < count; i++) {
		struct mqtt_packet m;

		payload_fill(want, plen, pubno, first + i);
		m = tc_expect(sub, MQTT_PUBLISH);
		cr_assert(tc_str_eq(m.publish.topic, topic) && m.publish.payload.len == plen &&
				  memcmp(m.publish.payload.ptr, want, plen) == 0,
			  "%s: message %u of publisher %u damaged or out of order: %.40s...", sub->name, first + i,
			  pubno, tc_dup(m.publish.payload));
		tc_ack(sub, MQTT_PUBACK, m.publish.packet_id);
	}
	free(want);
}

/* @count PUBACKs on @pub, for consecutive packet ids from @first_id. */
static void pubacks(struct tclient *pub, uint16_t first_id, unsigned count)
{
	for (unsigned i = 0; i < count; i++) {
		struct mqtt_packet a = tc_expect(pub, MQTT_PUBACK);

		cr_assert(a.ack.packet_id == (uint16_t)(first_id + i) && a.ack.reason < 0x80, "%s: %s, expected id %u",
			  pub->name, tc_describe(&a), (uint16_t)(first_id + i));
	}
}

/* Short sends and receives: a publisher with a 2 KiB send buffer and an
 * MQTT 5 subscriber with a 2 KiB receive buffer exchange a hundred 30 KB
 * QoS 1 messages, ten at a time, so the broker's receives and sends are
 * mostly partial. */
Test(uring, tiny_socket_buffers_force_short_sends_and_receives)
{
	enum { ROUNDS = 10, PER_ROUND = 10, PAYLOAD = 30000 };
	struct broker b;
	struct tc_witness w;
	struct tclient *pub, *sub;
	struct mqtt_packet p, ack;
	char *payload = malloc(PAYLOAD + 1);

	cr_assert(payload);
	broker_start(&b, NULL);
	tc_witness_start(&w, &b, "tinybuf");
	sub = tc_open_sized(&b, MQTT_V5, "tiny-rcvbuf", 2048, 2048);
	p = tc_connect_packet(MQTT_V5, "tiny-rcvbuf");
	(void)tc_send(sub, &p);
	ack = tc_expect(sub, MQTT_CONNACK);
	cr_assert_eq(ack.connack.reason, 0);
	tc_subscribe(sub, "tiny/t", 1);
	pub = tc_open_sized(&b, MQTT_V311, "tiny-sndbuf", 2048, 2048);
	p = tc_connect_packet(MQTT_V311, "tiny-sndbuf");
	(void)tc_send(pub, &p);
	ack = tc_expect(pub, MQTT_CONNACK);
	cr_assert_eq(ack.connack.reason, 0);
	for (unsigned r = 0; r < ROUNDS; r++) {
		uint16_t first_id = pub->next_id;

		for (unsigned i = 0; i < PER_ROUND; i++) {
			payload_fill(payload, PAYLOAD, 0, r * PER_ROUND + i);
			(void)tc_publish_send(pub, "tiny/t", payload, 1, false);
		}
		receive_run(sub, "tiny/t", 0, r * PER_ROUND, PER_ROUND, PAYLOAD);
		pubacks(pub, first_id, PER_ROUND);
		tc_witness_check(&w);
	}
	free(payload);
	tc_disconnect(sub);
	tc_disconnect(pub);
	tc_witness_stop(&w);
	broker_stop(&b);
}

struct burst {
	struct tclient *c;
	uint8_t *buf;
	size_t len, off, cap;
	unsigned acks;
};

/* On @revents of publisher @i: writes what its socket takes, and reads
 * its PUBACKs, which must come in packet id order.  Returns the PUBACKs. */
static unsigned burst_pump(struct burst *x, unsigned i, short revents)
{
	struct mqtt_packet a;
	unsigned acks = 0;

	if (revents & POLLOUT) {
		ssize_t n = send(x->c->fd, x->buf + x->off, x->len - x->off, MSG_NOSIGNAL);

		cr_assert(n > 0 || errno == EAGAIN, "publisher %u: send: %s", i, strerror(errno));
		if (n > 0)
			x->off += (size_t)n;
	}
	for (int r; (revents & POLLIN) && (r = tc_recv(x->c, 0, &a)) != -ETIMEDOUT;) {
		cr_assert(r == 0, "publisher %u: connection closed after %u PUBACKs", i, x->acks);
		cr_assert(a.type == MQTT_PUBACK && a.ack.packet_id == x->acks + 1 && a.ack.reason < 0x80,
			  "publisher %u: %s after %u PUBACKs", i, tc_describe(&a), x->acks);
		x->acks++;
		acks++;
	}
	return acks;
}

/* Reads what @sub has: messages of @pubs publishers, @per_pub each, of
 * @plen bytes, in order per publisher (@next: the next sequence number of
 * each), acknowledging each.  Returns the messages read. */
static unsigned burst_receive(struct tclient *sub, unsigned *next, unsigned pubs, unsigned per_pub, size_t plen)
{
	char *want = malloc(plen + 1);
	struct mqtt_packet m;
	unsigned got = 0;

	cr_assert(want);
	for (int r; (r = tc_recv(sub, 0, &m)) != -ETIMEDOUT; got++) {
		unsigned pn;

		cr_assert(r == 0, "subscriber: connection closed");
		cr_assert(m.type == MQTT_PUBLISH && m.publish.payload.len == plen, "subscriber: %s", tc_describe(&m));
		pn = (unsigned)strtoul(tc_dup(m.publish.payload), NULL, 10);
		cr_assert(pn < pubs && next[pn] < per_pub, "subscriber: %s", tc_describe(&m));
		payload_fill(want, plen, pn, next[pn]);
		cr_assert(memcmp(m.publish.payload.ptr, want, plen) == 0,
			  "publisher %u message %u damaged or out of order: %.20s", pn, next[pn],
			  tc_dup(m.publish.payload));
		next[pn]++;
		tc_ack(sub, MQTT_PUBACK, m.publish.packet_id);
	}
	free(want);
	return got;
}

/* The buffer ring running dry: with 16 buffers of 512 bytes per shard,
 * eight publishers blast 300 QoS 1 messages of 1 KB each (300 KB per
 * publisher, 2.4 MB in all, about three hundred times the ring) as fast as
 * their sockets take it, all at once, while one subscriber receives.  The
 * broker must wait for buffers (-ENOBUFS) rather than lose or reorder
 * bytes: every message arrives once, in order per publisher, and every
 * publisher gets all its PUBACKs. */
Test(uring, bursts_larger_than_the_buffer_ring)
{
	enum { PUBS = 8, PER_PUB = 300, PAYLOAD = 1000, DEADLINE_MS = 60000 };
	struct broker b;
	struct tc_witness w;
	struct burst bu[PUBS];
	struct tclient *sub;
	unsigned next[PUBS] = {0}, received = 0, acked = 0;
	int64_t end;

	harness_ringmq_only("recv_buffers and recv_buffer_size are ringmq directives");
	broker_start(&b, TINY_RING);
	tc_witness_start(&w, &b, "burst");
	sub = tc_connect(&b, MQTT_V311, "burst-sub", true);
	tc_subscribe(sub, "burst/t", 1);
	for (unsigned i = 0; i < PUBS; i++) {
		char id[32];

		snprintf(id, sizeof(id), "burst-pub-%u", i);
		bu[i] = (struct burst){.c = tc_connect(&b, MQTT_V311, id, true)};
		append_publishes(bu[i].c, "burst/t", i, 0, PER_PUB, PAYLOAD, &bu[i].buf, &bu[i].len, &bu[i].cap);
		cr_assert(fcntl(bu[i].c->fd, F_SETFL, O_NONBLOCK) == 0);
	}
	for (end = harness_now_ms() + DEADLINE_MS; received < PUBS * PER_PUB || acked < PUBS * PER_PUB;) {
		struct pollfd pfd[PUBS + 1];
		int64_t left = end - harness_now_ms();

		cr_assert(left > 0, "after %d ms: %u of %u messages received, %u PUBACKs", DEADLINE_MS, received,
			  PUBS * PER_PUB, acked);
		for (unsigned i = 0; i < PUBS; i++)
			pfd[i] = (struct pollfd){.fd = bu[i].c->fd,
						 .events = (short)(POLLIN | (bu[i].off < bu[i].len ? POLLOUT : 0))};
		pfd[PUBS] = (struct pollfd){.fd = sub->fd, .events = POLLIN};
		if (poll(pfd, PUBS + 1, (int)left) <= 0)
			continue;
		for (unsigned i = 0; i < PUBS; i++)
			acked += burst_pump(&bu[i], i, pfd[i].revents);
		if (pfd[PUBS].revents & POLLIN)
			received += burst_receive(sub, next, PUBS, PER_PUB, PAYLOAD);
	}
	tc_witness_check(&w);
	for (unsigned i = 0; i < PUBS; i++) {
		cr_assert(fcntl(bu[i].c->fd, F_SETFL, 0) == 0);
		tc_disconnect(bu[i].c);
		free(bu[i].buf);
	}
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_disconnect(sub);
	tc_witness_stop(&w);
	broker_stop(&b);
}

/* Frames packed and split, with the 16 x 512-byte ring: 500 small
 * PUBLISHes in one write (many frames per buffer), 200 written one byte
 * per send, 200 written in chunks of 7, 13, 511, 513 and 1,021 bytes in
 * turn (frames cut at every offset of a buffer), and five 100 KB PUBLISHes
 * in 1,021-byte chunks (one frame over two hundred buffers).  Everything
 * arrives intact and in order, and every PUBACK comes back. */
Test(uring, frames_packed_and_split_across_receive_buffers)
{
	static const size_t odd[] = {7, 13, 511, 513, 1021};
	static const struct {
		const char *name;
		unsigned count;
		size_t payload;
		size_t chunk; /* 0: one write; 1: a byte per send; 2: the odd sizes in turn */
	} phases[] = {
		{"500 frames in one write", 500, 24, 0},
		{"one byte per send", 200, 24, 1},
		{"odd-sized chunks", 200, 300, 2},
		{"100 KB frames in 1,021-byte chunks", 5, 100000, 1021},
	};
	struct broker b;
	struct tc_witness w;
	struct tclient *pub, *sub;
	unsigned seq = 0;

	harness_ringmq_only("recv_buffers and recv_buffer_size are ringmq directives");
	broker_start(&b, TINY_RING "max_packet_size 262144\n");
	tc_witness_start(&w, &b, "split");
	sub = tc_connect(&b, MQTT_V5, "split-sub", true);
	tc_subscribe(sub, "split/t", 1);
	pub = tc_connect(&b, MQTT_V5, "split-pub", true);
	for (size_t k = 0; k < sizeof(phases) / sizeof(phases[0]); k++) {
		uint8_t *buf = NULL;
		size_t len = 0, cap = 0, off = 0;
		uint16_t first_id = pub->next_id;

		append_publishes(pub, "split/t", 1, seq, phases[k].count, phases[k].payload, &buf, &len, &cap);
		if (phases[k].chunk == 2) {
			for (unsigned i = 0; off < len; i++) {
				size_t n = len - off < odd[i % 5] ? len - off : odd[i % 5];

				cr_assert(tc_send_raw(pub, buf + off, n) == 0);
				off += n;
			}
		} else {
			cr_assert(tc_send_chunked(pub, buf, len, phases[k].chunk ? phases[k].chunk : len) == 0,
				  "%s: send failed", phases[k].name);
		}
		free(buf);
		receive_run(sub, "split/t", 1, seq, phases[k].count, phases[k].payload);
		pubacks(pub, first_id, phases[k].count);
		seq += phases[k].count;
		cr_log_info("%s: ok", phases[k].name);
		tc_witness_check(&w);
	}
	tc_expect_nothing(sub, TC_QUIET_MS);
	tc_disconnect(sub);
	tc_disconnect(pub);
	tc_witness_stop(&w);
	broker_stop(&b);
}

/* Completion-queue overflow: 9,000 subscribers (all on one shard with
 * --shards 1; about 2,250 per shard with 4) and five QoS 0 PUBLISHes in one
 * write.  Each message is 9,000 sends in one loop turn, more completions
 * than the queue's 8,192 entries; the kernel keeps the overflow (NODROP)
 * and the broker must still see every completion.  Every subscriber gets
 * all five messages in order, and the witness is served.  With one shard
 * the broker's own count (ringmq_uring_cq_overflow_total, read from the
 * kernel's IORING_SQ_CQ_OVERFLOW flag) confirms the queue did overflow. */
Test(uring, fanout_beyond_the_completion_queue)
{
	enum { SUBS = 9000, BATCH = 500, MSGS = 5 };
	static struct tclient *sub[SUBS];
	static const uint8_t subscribe[] = {0x82, 9, 0, 1, 0, 4, 'c', 'q', '/', 't', 0};
	struct broker b;
	struct tc_witness w;
	struct tclient *pub;
	uint8_t burst[MSGS * 16];
	size_t blen = 0;

	broker_start(&b, harness_is_mosquitto() ? NULL : "http_listener 0 127.0.0.1\n");
	tc_witness_start(&w, &b, "cqoverflow");
	for (unsigned base = 0; base < SUBS; base += BATCH) {
		for (unsigned i = base; i < base + BATCH; i++) {
			char id[32];
			struct mqtt_packet p;

			snprintf(id, sizeof(id), "cq-%u", i);
			p = tc_connect_packet(MQTT_V311, id);
			sub[i] = tc_open(&b, MQTT_V311, id);
			(void)tc_send(sub[i], &p);
			(void)tc_send_raw(sub[i], subscribe, sizeof(subscribe));
		}
		for (unsigned i = base; i < base + BATCH; i++) {
			struct mqtt_packet a = tc_expect(sub[i], MQTT_CONNACK);

			cr_assert_eq(a.connack.reason, 0, "%s: %s", sub[i]->name, tc_describe(&a));
			a = tc_expect(sub[i], MQTT_SUBACK);
			cr_assert_eq(a.suback.codes[0], 0, "%s: %s", sub[i]->name, tc_describe(&a));
		}
	}
	tc_witness_check(&w);
	pub = tc_connect(&b, MQTT_V311, "cq-pub", true);
	for (unsigned k = 0; k < MSGS; k++) {
		/* PUBLISH QoS 0 "cq/t" payload "mK": 10 bytes each. */
		const uint8_t one[] = {0x30, 8, 0, 4, 'c', 'q', '/', 't', 'm', (uint8_t)('0' + k)};

		memcpy(burst + blen, one, sizeof(one));
		blen += sizeof(one);
	}
	(void)tc_send_raw(pub, burst, blen);
	tc_witness_check(&w);
	for (unsigned i = 0; i < SUBS; i++) {
		for (unsigned k = 0; k < MSGS; k++) {
			char want[4] = {'m', (char)('0' + k), 0};

			(void)tc_expect_publish(sub[i], "cq/t", want, 0);
		}
		tc_close(sub[i]);
	}
	if (!harness_is_mosquitto() && harness_shards() == 1) {
		char *page = NULL;

		cr_assert_eq(thttp_get(thttp_port(&b), "/metrics", &page), 200);
		cr_assert_gt(thttp_sum(page, "ringmq_uring_cq_overflow_total"), 0,
			     "9,000 sends in one turn did not overflow the completion queue");
		free(page);
	}
	tc_disconnect(pub);
	tc_witness_stop(&w);
	broker_stop(&b);
}
