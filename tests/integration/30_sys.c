/*
 * 30_sys.c - $SYS/broker/... and /metrics count exactly what happened.
 *
 * One scenario with known traffic: clients connect (one MQTT 5 session that
 * expires, one persistent 3.1.1 session that stays offline with a
 * subscription, a subscriber with an ordinary and a shared subscription, a
 * publisher, and the monitor), QoS 1, QoS 0, retained and shared messages
 * are published, some are dropped (a full offline queue, a payload over
 * message_size_limit).  The test knows every packet each client sent and
 * received; the bytes come from the kernel (TCP_INFO: bytes acked and
 * received on each client socket, read once the broker has closed or
 * answered everything), so the expected figures do not depend on how the
 * test counts encodings.  Every counter must then be exact:
 *
 *  - over $SYS: the monitor subscribes to $SYS/# and reads whole
 *    publications (each starts with $SYS/broker/version).  A publication
 *    counts what happened before its snapshot, which includes the $SYS
 *    messages of earlier publications delivered to the monitor: those are
 *    exactly what the monitor had received before the publication's first
 *    message.  The sweep that expires a session and the send completions
 *    that count bytes run asynchronously, so the test reads publications
 *    until one matches in every figure (at most SYS_ROUNDS_MAX); a broker
 *    that loses or double-counts an event never matches.
 *  - over /metrics: after the monitor unsubscribes, nothing more happens,
 *    and the page must show the same totals (summed over the shard label).
 *
 * Runs with --shards 1 and --shards 4 (meson registers both), so the sums
 * over shards are checked too.  Further tests check that every topic
 * mosquitto 2.0 publishes exists with mosquitto's payload format (also
 * under the mosquitto oracle run), and that sys_interval 0 disables $SYS.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "harness.h"
#include "tclient.h"
#include "thttp.h"

TestSuite(sys, .timeout = 120);

#define SYS_ROUNDS_MAX 10
#define SYS_TOPICS_MAX 512
#define SYS_VALUE_BYTES 64

/* ------------------------------------------------------------------------
 * What the clients saw
 * ---------------------------------------------------------------------- */

struct tally {
	uint64_t pkts_in, bytes_in; /* client -> broker */
	uint64_t pkts_out, bytes_out; /* broker -> client */
};

/* Bytes this socket sent that the broker acknowledged, and bytes it
 * received.  The kernel counts sequence numbers: the SYN is one "byte"
 * acknowledged, and a FIN received is one "byte" received; @fin says the
 * broker has closed its side. */
static void tcp_bytes(const struct tclient *c, bool fin, uint64_t *ret_acked, uint64_t *ret_received)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	cr_assert(getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0, "TCP_INFO: %s", strerror(errno));
	cr_assert(len >= offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received),
		  "the kernel's TCP_INFO lacks tcpi_bytes_acked/received (Linux 4.2 or newer is required)");
	cr_assert(ti.tcpi_bytes_acked >= 1 && ti.tcpi_bytes_received >= (fin ? 1 : 0));
	*ret_acked = ti.tcpi_bytes_acked - 1;
	*ret_received = ti.tcpi_bytes_received - (fin ? 1 : 0);
}

/* Add @c's socket bytes to @t (@fin: the broker has closed the connection). */
static void settle(struct tally *t, struct tclient *c, bool fin)
{
	uint64_t acked, received;

	tcp_bytes(c, fin, &acked, &received);
	t->bytes_in += acked;
	t->bytes_out += received;
}

/* DISCONNECT, and wait until the broker has closed the connection: by then
 * it has read everything and detached the session. */
static void leave(struct tally *t, struct tclient *c)
{
	struct mqtt_packet d = {.type = MQTT_DISCONNECT};

	cr_assert_eq(tc_send(c, &d), 0);
	t->pkts_in++;
	cr_assert(tc_closed(c, TC_WAIT_MS), "%s: broker did not close after DISCONNECT", c->name);
	settle(t, c, true);
	tc_close(c);
}

/* ------------------------------------------------------------------------
 * The scenario
 * ---------------------------------------------------------------------- */

#define Q1_COUNT 10
#define Q1_BYTES 100
#define Q0_COUNT 4
#define Q0_BYTES 50
#define RET_BYTES 7
#define SHARED_COUNT 3
#define SHARED_BYTES 20
#define BIG_BYTES 1500
#define QUEUE_LIMIT 5

#define SYS_CONFIG "sys_interval 1\nmax_queued_messages 5\nmessage_size_limit 1000\nhttp_listener 0 127.0.0.1\n"

/* What the scenario must leave in the counters (besides the tally). */
#define PUB_IN (Q1_COUNT + Q0_COUNT + 1 + SHARED_COUNT + 1)
#define PUB_BYTES_IN (Q1_COUNT * Q1_BYTES + Q0_COUNT * Q0_BYTES + RET_BYTES + SHARED_COUNT * SHARED_BYTES + BIG_BYTES)
/* The subscriber gets everything; the client that never acknowledges gets the QoS 1 messages. */
#define PUB_OUT (2 * Q1_COUNT + Q0_COUNT + 1 + SHARED_COUNT)
#define PUB_BYTES_OUT (2 * Q1_COUNT * Q1_BYTES + Q0_COUNT * Q0_BYTES + RET_BYTES + SHARED_COUNT * SHARED_BYTES)
#define DROPPED_QUEUE (Q1_COUNT - QUEUE_LIMIT)

static char *payload(size_t n, char fill)
{
	char *p = malloc(n + 1);

	cr_assert(p);
	memset(p, fill, n);
	p[n] = '\0';
	return p;
}

/* Connect (CONNECT in, CONNACK out). */
static struct tclient *join(struct tally *t, const struct broker *b, uint8_t version, const char *id, bool clean,
			    uint32_t expiry)
{
	struct mqtt_packet k = tc_connect_packet(version, id), ack;
	struct tclient *c;

	k.connect.clean = clean;
	if (expiry) {
		k.connect.props.present |= MQTT_HAS(MQTT_PROP_SESSION_EXPIRY);
		k.connect.props.session_expiry = expiry;
	}
	c = tc_connect_with(b, &k, &ack);
	cr_assert_eq(ack.connack.reason, 0, "%s refused", id);
	t->pkts_in++;
	t->pkts_out++;
	return c;
}

static void sub(struct tally *t, struct tclient *c, const char *filter, uint8_t qos)
{
	tc_subscribe(c, filter, qos);
	t->pkts_in++;
	t->pkts_out++;
}

/* Everything before the monitor subscribes.  Leaves the subscriber and the
 * monitor connected (returned), the others closed and tallied.  The client
 * that never acknowledges ends its session with its QoS 1 messages in
 * flight, which must leave the stored-message figures. */
static void scenario(const struct broker *b, struct tally *t, struct tclient **ret_sub, struct tclient **ret_mon)
{
	char *q1 = payload(Q1_BYTES, 'a'), *q0 = payload(Q0_BYTES, 'b'), *ret = payload(RET_BYTES, 'c');
	char *sh = payload(SHARED_BYTES, 'd'), *big = payload(BIG_BYTES, 'e');
	struct tclient *e, *d, *s, *m, *p, *n;

	e = join(t, b, MQTT_V5, "sys-expires", true, 1); /* expires 1 s after it leaves */
	leave(t, e);
	d = join(t, b, MQTT_V311, "sys-durable", false, 0); /* stays, offline, subscribed */
	sub(t, d, "sys/t/#", 1);
	leave(t, d);
	s = join(t, b, MQTT_V311, "sys-sub", true, 0);
	sub(t, s, "sys/t/#", 1);
	sub(t, s, "$share/g/sys/s", 0);
	m = join(t, b, MQTT_V311, "sys-monitor", true, 0);
	n = join(t, b, MQTT_V311, "sys-noack", true, 0);
	sub(t, n, "sys/t/q1", 1);
	p = join(t, b, MQTT_V311, "sys-pub", true, 0); /* four connected at once */
	for (int i = 0; i < Q1_COUNT; i++) {
		tc_publish(p, "sys/t/q1", q1, 1, false); /* PUBLISH in, PUBACK out */
		t->pkts_in++;
		t->pkts_out++;
	}
	for (int i = 0; i < Q1_COUNT; i++) {
		tc_receive_qos(s, "sys/t/q1", q1, 1); /* PUBLISH out, PUBACK in */
		(void)tc_expect_publish(n, "sys/t/q1", q1, 1); /* never acknowledged */
		t->pkts_in++;
		t->pkts_out += 2;
	}
	leave(t, n); /* clean session: it ends with Q1_COUNT messages in flight */
	for (int i = 0; i < Q0_COUNT; i++)
		tc_publish(p, "sys/t/q0", q0, 0, false);
	tc_publish(p, "sys/t/r", ret, 0, true);
	for (int i = 0; i < SHARED_COUNT; i++)
		tc_publish(p, "sys/s", sh, 0, false);
	tc_publish(p, "sys/t/big", big, 1, false); /* acknowledged, dropped: over message_size_limit */
	t->pkts_in += Q0_COUNT + 1 + SHARED_COUNT + 1;
	t->pkts_out += 1;
	for (int i = 0; i < Q0_COUNT; i++)
		(void)tc_expect_publish(s, "sys/t/q0", q0, 0);
	(void)tc_expect_publish(s, "sys/t/r", ret, 0);
	for (int i = 0; i < SHARED_COUNT; i++)
		(void)tc_expect_publish(s, "sys/s", sh, 0);
	t->pkts_out += Q0_COUNT + 1 + SHARED_COUNT;
	leave(t, p);
	/* A round trip: every acknowledgement the subscriber sent has been read. */
	struct mqtt_packet ping = {.type = MQTT_PINGREQ};
	cr_assert_eq(tc_send(s, &ping), 0);
	(void)tc_expect(s, MQTT_PINGRESP);
	t->pkts_in++;
	t->pkts_out++;
	*ret_sub = s;
	*ret_mon = m;
	free(q1);
	free(q0);
	free(ret);
	free(sh);
	free(big);
}

/* ------------------------------------------------------------------------
 * Reading $SYS publications
 * ---------------------------------------------------------------------- */

struct round {
	unsigned n;
	char topic[SYS_TOPICS_MAX][96];
	char value[SYS_TOPICS_MAX][SYS_VALUE_BYTES];
};

/* The monitor's view: packets and bytes received, and PUBLISH among them. */
struct monitor {
	struct tclient *c;
	uint64_t pkts, bytes, pubs, pub_bytes;
};

static const char *get(const struct round *r, const char *topic)
{
	for (unsigned i = 0; i < r->n; i++)
		if (strcmp(r->topic[i], topic) == 0)
			return r->value[i];
	return NULL;
}

/* Sum of $SYS/broker/ringmq/shard/N/@what over the shards. */
static uint64_t shard_sum(const struct round *r, unsigned nshards, const char *what)
{
	char topic[96];
	uint64_t sum = 0;

	for (unsigned i = 0; i < nshards; i++) {
		const char *v;
		(void)snprintf(topic, sizeof(topic), "$SYS/broker/ringmq/shard/%u/%s", i, what);
		v = get(r, topic);
		sum += v ? strtoull(v, NULL, 10) : UINT64_MAX / 4; /* a missing topic cannot match */
	}
	return sum;
}

/* Receive one packet on the monitor, keeping its counts.  Returns the
 * PUBLISH (NULL-typed packet when it was something else). */
static struct mqtt_packet mon_recv(struct monitor *m)
{
	struct mqtt_packet p;
	int r = tc_recv(m->c, TC_WAIT_MS, &p);

	cr_assert_eq(r, 0, "monitor: no $SYS publication within %d ms", TC_WAIT_MS);
	m->pkts++;
	m->bytes += m->c->rx_frame;
	if (p.type == MQTT_PUBLISH) {
		m->pubs++;
		m->pub_bytes += p.publish.payload.len;
	}
	return p;
}

static bool is_start(const struct mqtt_packet *p)
{
	return p->type == MQTT_PUBLISH && !p->publish.retain && tc_str_eq(p->publish.topic, "$SYS/broker/version");
}

/* Read one whole publication.  On entry the start of it has just been
 * received (in @first); on return the start of the next one has (in
 * @first again), and *@before holds the monitor's counts before @first. */
static void read_round(struct monitor *m, struct mqtt_packet *first, struct monitor *before, struct round *r)
{
	struct mqtt_packet p = *first;

	r->n = 0;
	for (;;) {
		cr_assert(r->n < SYS_TOPICS_MAX, "more $SYS topics than the test expects");
		(void)snprintf(r->topic[r->n], sizeof(r->topic[0]), "%s", tc_dup(p.publish.topic));
		(void)snprintf(r->value[r->n], sizeof(r->value[0]), "%s", tc_dup(p.publish.payload));
		r->n++;
		*before = *m;
		p = mon_recv(m);
		if (is_start(&p))
			break;
		cr_assert_eq(p.type, MQTT_PUBLISH, "monitor got a %s", mqtt_type_name(p.type));
	}
	*first = p;
}

/* UNSUBSCRIBE @filter, reading (and counting) the $SYS messages that were
 * on their way until the UNSUBACK. */
static void mon_unsubscribe(struct monitor *m, const char *filter)
{
	struct mqtt_packet u = {.type = MQTT_UNSUBSCRIBE, .flags = 2}, p;
	uint8_t list[128];
	size_t len = strlen(filter);

	cr_assert(len + 2 <= sizeof(list));
	list[0] = (uint8_t)(len >> 8);
	list[1] = (uint8_t)len;
	memcpy(list + 2, filter, len);
	u.subscribe.packet_id = 0x7777;
	u.subscribe.list.ptr = list;
	u.subscribe.list.len = (uint32_t)(len + 2);
	u.subscribe.count = 1;
	cr_assert_eq(tc_send(m->c, &u), 0);
	do
		p = mon_recv(m);
	while (p.type == MQTT_PUBLISH);
	cr_assert_eq(p.type, MQTT_UNSUBACK, "monitor got a %s", mqtt_type_name(p.type));
	cr_assert_eq(p.suback.packet_id, 0x7777);
}

/* ------------------------------------------------------------------------
 * Checking a publication
 * ---------------------------------------------------------------------- */

struct check {
	char why[4096];
	size_t len;
	bool ok;
};

static void expect_u64(struct check *k, const struct round *r, const char *topic, uint64_t want)
{
	const char *v = get(r, topic);
	char *end = NULL;
	uint64_t got = v ? strtoull(v, &end, 10) : 0;

	if (v && *v && end && *end == '\0' && got == want)
		return;
	k->ok = false;
	if (k->len < sizeof(k->why) - 1)
		k->len += (size_t)snprintf(k->why + k->len, sizeof(k->why) - k->len, "\n  %s = %s, expected %llu",
					   topic, v ? v : "(missing)", (unsigned long long)want);
	if (k->len >= sizeof(k->why))
		k->len = sizeof(k->why) - 1;
}

static void expect_sum(struct check *k, const struct round *r, unsigned nshards, const char *what, uint64_t want)
{
	uint64_t got = shard_sum(r, nshards, what);

	if (got == want)
		return;
	k->ok = false;
	if (k->len < sizeof(k->why) - 1)
		k->len += (size_t)snprintf(k->why + k->len, sizeof(k->why) - k->len,
					   "\n  sum of ringmq/shard/N/%s = %llu, expected %llu", what,
					   (unsigned long long)got, (unsigned long long)want);
	if (k->len >= sizeof(k->why))
		k->len = sizeof(k->why) - 1;
}

/* Every counter of publication @r against the scenario @t plus what the
 * monitor had sent (@mon_in) and received before it (@before). */
static void check_round(struct check *k, const struct round *r, const struct tally *t, const struct tally *mon_in,
			const struct monitor *before, unsigned nshards)
{
	uint64_t pub_out = PUB_OUT + before->pubs;

	k->ok = true;
	k->len = 0;
	expect_u64(k, r, "$SYS/broker/bytes/received", t->bytes_in + mon_in->bytes_in);
	expect_u64(k, r, "$SYS/broker/bytes/sent", t->bytes_out + before->bytes);
	expect_u64(k, r, "$SYS/broker/messages/received", t->pkts_in + mon_in->pkts_in);
	expect_u64(k, r, "$SYS/broker/messages/sent", t->pkts_out + before->pkts);
	expect_u64(k, r, "$SYS/broker/publish/messages/received", PUB_IN);
	expect_u64(k, r, "$SYS/broker/publish/bytes/received", PUB_BYTES_IN);
	expect_u64(k, r, "$SYS/broker/publish/messages/sent", pub_out);
	expect_u64(k, r, "$SYS/broker/publish/bytes/sent", PUB_BYTES_OUT + before->pub_bytes);
	expect_u64(k, r, "$SYS/broker/publish/messages/dropped", DROPPED_QUEUE + 1);
	expect_u64(k, r, "$SYS/broker/clients/connected", 2);
	expect_u64(k, r, "$SYS/broker/clients/active", 2);
	expect_u64(k, r, "$SYS/broker/clients/disconnected", 1);
	expect_u64(k, r, "$SYS/broker/clients/inactive", 1);
	expect_u64(k, r, "$SYS/broker/clients/total", 3);
	expect_u64(k, r, "$SYS/broker/clients/maximum", 4);
	expect_u64(k, r, "$SYS/broker/clients/expired", 1);
	expect_u64(k, r, "$SYS/broker/subscriptions/count", 3);
	expect_u64(k, r, "$SYS/broker/shared_subscriptions/count", 1);
	expect_u64(k, r, "$SYS/broker/retained messages/count", 1 + r->n);
	expect_u64(k, r, "$SYS/broker/store/messages/count", QUEUE_LIMIT);
	expect_u64(k, r, "$SYS/broker/messages/stored", QUEUE_LIMIT);
	expect_u64(k, r, "$SYS/broker/store/messages/bytes", QUEUE_LIMIT * Q1_BYTES);
	expect_u64(k, r, "$SYS/broker/ringmq/dropped/queue_full", DROPPED_QUEUE);
	expect_u64(k, r, "$SYS/broker/ringmq/dropped/packet_size", 1);
	expect_u64(k, r, "$SYS/broker/ringmq/dropped/output_limit", 0);
	expect_u64(k, r, "$SYS/broker/ringmq/dropped/backlog_full", 0);
	expect_u64(k, r, "$SYS/broker/ringmq/dropped/no_member", 0);
	expect_u64(k, r, "$SYS/broker/ringmq/dropped/out_of_memory", 0);
	expect_u64(k, r, "$SYS/broker/ringmq/shards", nshards);
	expect_u64(k, r, "$SYS/broker/ringmq/connections", 2);
	expect_sum(k, r, nshards, "messages/received", PUB_IN);
	expect_sum(k, r, nshards, "messages/sent", pub_out);
	expect_sum(k, r, nshards, "connections", 2);
	expect_sum(k, r, nshards, "sessions", 3);
	expect_sum(k, r, nshards, "dropped", DROPPED_QUEUE + 1);
	expect_sum(k, r, nshards, "backlog/depth", 0);
}

/* ------------------------------------------------------------------------
 * Checking /metrics
 * ---------------------------------------------------------------------- */

static void expect_metric(struct check *k, const char *page, const char *name, double want)
{
	double got = thttp_sum(page, name);

	if (got == want)
		return;
	k->ok = false;
	if (k->len < sizeof(k->why) - 1)
		k->len += (size_t)snprintf(k->why + k->len, sizeof(k->why) - k->len, "\n  %s = %.17g, expected %.17g",
					   name, got, want);
	if (k->len >= sizeof(k->why))
		k->len = sizeof(k->why) - 1;
}

static void check_page(struct check *k, const char *page, const struct tally *all, uint64_t pub_out,
		       uint64_t pub_bytes_out, unsigned sys_topics, unsigned nshards)
{
	k->ok = true;
	k->len = 0;
	expect_metric(k, page, "ringmq_bytes_received_total", (double)all->bytes_in);
	expect_metric(k, page, "ringmq_bytes_sent_total", (double)all->bytes_out);
	expect_metric(k, page, "ringmq_packets_received_total", (double)all->pkts_in);
	expect_metric(k, page, "ringmq_packets_sent_total", (double)all->pkts_out);
	expect_metric(k, page, "ringmq_messages_received_total", PUB_IN);
	expect_metric(k, page, "ringmq_payload_bytes_received_total", PUB_BYTES_IN);
	expect_metric(k, page, "ringmq_messages_sent_total", (double)pub_out);
	expect_metric(k, page, "ringmq_payload_bytes_sent_total", (double)pub_bytes_out);
	expect_metric(k, page, "ringmq_messages_dropped_total", DROPPED_QUEUE + 1);
	expect_metric(k, page, "ringmq_sockets_accepted_total", 6);
	expect_metric(k, page, "ringmq_connects_total", 6);
	expect_metric(k, page, "ringmq_connections", 2);
	expect_metric(k, page, "ringmq_sessions", 3);
	expect_metric(k, page, "ringmq_clients_connected", 2);
	expect_metric(k, page, "ringmq_clients_disconnected", 1);
	expect_metric(k, page, "ringmq_clients_maximum", 4);
	expect_metric(k, page, "ringmq_clients_expired_total", 1);
	expect_metric(k, page, "ringmq_subscriptions", 2);
	expect_metric(k, page, "ringmq_shared_subscriptions", 1);
	expect_metric(k, page, "ringmq_retained_messages", 1 + sys_topics);
	expect_metric(k, page, "ringmq_stored_messages", QUEUE_LIMIT);
	expect_metric(k, page, "ringmq_stored_message_bytes", QUEUE_LIMIT * Q1_BYTES);
	expect_metric(k, page, "ringmq_shards", nshards);
	expect_metric(k, page, "ringmq_shard_backlog_items", 0);
	expect_metric(k, page, "ringmq_ready", 1);
}

/* ------------------------------------------------------------------------
 * Tests
 * ---------------------------------------------------------------------- */

/* Subscribe the monitor and read publications until one matches; returns
 * how many topics a publication has. */
static unsigned sys_rounds_match(struct monitor *m, const struct tally *t, struct tally *mon_in, unsigned nshards)
{
	static struct round r;
	struct monitor before;
	struct mqtt_packet p;
	struct check k = {.ok = false};
	uint64_t received;

	sub(mon_in, m->c, "$SYS/#", 0);
	m->pkts = 2; /* CONNACK and SUBACK; the CONNACK's bytes are in m->bytes already */
	m->bytes += m->c->rx_frame;
	tcp_bytes(m->c, false, &mon_in->bytes_in, &received);
	do
		p = mon_recv(m);
	while (!is_start(&p)); /* retained copies first, then live publications */
	before = *m;
	before.pkts--;
	before.bytes -= m->c->rx_frame;
	before.pubs--;
	before.pub_bytes -= p.publish.payload.len;
	for (int i = 0; i < SYS_ROUNDS_MAX; i++) {
		struct monitor next;
		read_round(m, &p, &next, &r);
		check_round(&k, &r, t, mon_in, &before, nshards);
		if (k.ok)
			return r.n;
		before = next;
	}
	cr_assert_fail("no $SYS publication in %d matched what happened; the last one:%s", SYS_ROUNDS_MAX, k.why);
	return 0;
}

Test(sys, every_counter_is_exact_over_sys_and_metrics)
{
	struct broker b;
	struct tally t = {0}, mon_in = {0}, all;
	struct monitor m = {0};
	struct tclient *s;
	struct check k = {.ok = false};
	uint64_t received, acked;
	unsigned topics, nshards = harness_shards();
	int64_t deadline;
	uint16_t port;

	harness_ringmq_only("ringmq's counters (queued-packet semantics, store = queued + in flight)");
	broker_start(&b, SYS_CONFIG);
	port = thttp_port(&b);
	scenario(&b, &t, &s, &m.c);
	settle(&t, s, false); /* it stays connected, and nothing more reaches it */
	/* The monitor's CONNECT and CONNACK are in t; it starts afresh. */
	t.pkts_in--;
	t.pkts_out--;
	mon_in.pkts_in = 1;
	m.bytes = m.c->rx_frame;
	topics = sys_rounds_match(&m, &t, &mon_in, nshards);

	/* The monitor leaves $SYS; after UNSUBACK nothing more reaches it. */
	mon_unsubscribe(&m, "$SYS/#");
	mon_in.pkts_in++;
	tcp_bytes(m.c, false, &acked, &received);
	all = t;
	all.pkts_in += mon_in.pkts_in;
	all.bytes_in += acked;
	all.pkts_out += m.pkts;
	all.bytes_out += m.bytes;
	deadline = harness_now_ms() + TC_WAIT_MS;
	do {
		char *page = NULL;
		cr_assert_eq(thttp_get(port, "/metrics", &page), 200);
		check_page(&k, page, &all, PUB_OUT + m.pubs, PUB_BYTES_OUT + m.pub_bytes, topics, nshards);
		free(page);
	} while (!k.ok && harness_now_ms() < deadline);
	cr_assert(k.ok, "/metrics does not match what happened:%s", k.why);
	tc_disconnect(m.c);
	tc_disconnect(s);
	broker_stop(&b);
}

/* Every topic mosquitto 2.0 publishes, with its payload format. */
static const struct {
	const char *topic;
	const char *format; /* extended regex */
} mosquitto_topics[] = {
	{"$SYS/broker/version", "^[a-z]+ version [0-9]"},
	{"$SYS/broker/uptime", "^[0-9]+ seconds$"},
	{"$SYS/broker/bytes/received", "^[0-9]+$"},
	{"$SYS/broker/bytes/sent", "^[0-9]+$"},
	{"$SYS/broker/clients/active", "^[0-9]+$"},
	{"$SYS/broker/clients/connected", "^[0-9]+$"},
	{"$SYS/broker/clients/disconnected", "^[0-9]+$"},
	{"$SYS/broker/clients/expired", "^[0-9]+$"},
	{"$SYS/broker/clients/inactive", "^[0-9]+$"},
	{"$SYS/broker/clients/maximum", "^[0-9]+$"},
	{"$SYS/broker/clients/total", "^[0-9]+$"},
	{"$SYS/broker/heap/current", "^[0-9]+$"},
	{"$SYS/broker/heap/maximum", "^[0-9]+$"},
	{"$SYS/broker/messages/received", "^[0-9]+$"},
	{"$SYS/broker/messages/sent", "^[0-9]+$"},
	{"$SYS/broker/messages/stored", "^[0-9]+$"},
	{"$SYS/broker/publish/bytes/received", "^[0-9]+$"},
	{"$SYS/broker/publish/bytes/sent", "^[0-9]+$"},
	{"$SYS/broker/publish/messages/dropped", "^[0-9]+$"},
	{"$SYS/broker/publish/messages/received", "^[0-9]+$"},
	{"$SYS/broker/publish/messages/sent", "^[0-9]+$"},
	{"$SYS/broker/retained messages/count", "^[0-9]+$"},
	{"$SYS/broker/shared_subscriptions/count", "^[0-9]+$"},
	{"$SYS/broker/store/messages/bytes", "^[0-9]+$"},
	{"$SYS/broker/store/messages/count", "^[0-9]+$"},
	{"$SYS/broker/subscriptions/count", "^[0-9]+$"},
};

static const char *const drop_causes[] = {"queue_full", "output_limit", "packet_size",
					   "backlog_full", "no_member", "out_of_memory"};
#define SHARD_DROP_CAUSES_SEEN (sizeof(drop_causes) / sizeof(drop_causes[0]))

static const char *const load_kinds[] = {
	"messages/received", "messages/sent", "publish/dropped", "publish/received", "publish/sent",
	"bytes/received",    "bytes/sent",    "sockets",	     "connections",
};

static void expect_format(const struct round *r, const char *topic, const char *format)
{
	const char *v = get(r, topic);
	regex_t re;

	cr_assert(v, "no %s", topic);
	cr_assert_eq(regcomp(&re, format, REG_EXTENDED | REG_NOSUB), 0);
	cr_assert_eq(regexec(&re, v, 0, NULL, 0), 0, "%s = '%s' does not match %s", topic, v, format);
	regfree(&re);
}

struct needed {
	unsigned n;
	char topic[SYS_TOPICS_MAX][96];
};

__attribute__((format(printf, 2, 3))) static void need(struct needed *w, const char *fmt, ...)
{
	va_list ap;

	cr_assert(w->n < SYS_TOPICS_MAX);
	va_start(ap, fmt);
	(void)vsnprintf(w->topic[w->n++], sizeof(w->topic[0]), fmt, ap);
	va_end(ap);
}

/* The first topic of @w not in @r, NULL when all are. */
static const char *missing(const struct round *r, const struct needed *w)
{
	for (unsigned i = 0; i < w->n; i++)
		if (!get(r, w->topic[i]))
			return w->topic[i];
	return NULL;
}

/* Collect retained and live $SYS messages until every topic of @w is known. */
static void collect(struct tclient *c, struct round *r, const struct needed *w)
{
	int64_t deadline = harness_now_ms() + 3 * TC_WAIT_MS;

	r->n = 0;
	while (missing(r, w)) {
		struct mqtt_packet p;
		cr_assert(harness_now_ms() < deadline, "%s never arrived", missing(r, w));
		p = tc_expect(c, MQTT_PUBLISH);
		const char *topic = tc_dup(p.publish.topic);
		if (get(r, topic))
			continue;
		cr_assert(r->n < SYS_TOPICS_MAX);
		(void)snprintf(r->topic[r->n], sizeof(r->topic[0]), "%s", topic);
		(void)snprintf(r->value[r->n], sizeof(r->value[0]), "%s", tc_dup(p.publish.payload));
		r->n++;
	}
}

Test(sys, every_mosquitto_topic_is_published_in_mosquittos_format)
{
	static const char *const windows[] = {"1min", "5min", "15min"};
	static struct round r;
	static struct needed w;
	struct broker b;
	struct tclient *c;
	char topic[96];

	for (size_t i = 0; i < sizeof(mosquitto_topics) / sizeof(mosquitto_topics[0]); i++)
		need(&w, "%s", mosquitto_topics[i].topic);
	for (size_t i = 0; i < sizeof(load_kinds) / sizeof(load_kinds[0]); i++)
		for (int k = 0; k < 3; k++)
			need(&w, "$SYS/broker/load/%s/%s", load_kinds[i], windows[k]);
	if (!harness_is_mosquitto())
		need(&w, "$SYS/broker/timestamp"); /* mosquitto 2.0.11 does not publish it */
	broker_start(&b, "sys_interval 1\n");
	c = tc_connect(&b, MQTT_V311, "sys-formats", true);
	tc_subscribe(c, "$SYS/#", 0);
	collect(c, &r, &w);
	for (size_t i = 0; i < sizeof(mosquitto_topics) / sizeof(mosquitto_topics[0]); i++)
		expect_format(&r, mosquitto_topics[i].topic, mosquitto_topics[i].format);
	for (size_t i = 0; i < sizeof(load_kinds) / sizeof(load_kinds[0]); i++) {
		for (int k = 0; k < 3; k++) {
			(void)snprintf(topic, sizeof(topic), "$SYS/broker/load/%s/%s", load_kinds[i], windows[k]);
			expect_format(&r, topic, "^[0-9]+\\.[0-9]{2}$");
		}
	}
	if (!harness_is_mosquitto()) {
		expect_format(&r, "$SYS/broker/version", "^ringmq version [0-9]+\\.[0-9]+\\.[0-9]+");
		expect_format(&r, "$SYS/broker/timestamp",
			      "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\+0000$");
		cr_assert_geq(strtoull(get(&r, "$SYS/broker/heap/maximum"), NULL, 10),
			      strtoull(get(&r, "$SYS/broker/heap/current"), NULL, 10), "heap maximum below current");
	}
	tc_disconnect(c);
	broker_stop(&b);
}

Test(sys, ringmq_topics_cover_every_shard)
{
	static const char *const per_shard[] = {"connections", "sessions", "messages/received", "messages/sent",
						"dropped", "ring/depth", "backlog/depth", "utilisation"};
	static struct round r;
	static struct needed w;
	struct broker b;
	struct tclient *c;
	unsigned nshards = harness_shards();

	harness_ringmq_only("$SYS/broker/ringmq/ is ringmq's own tree");
	need(&w, "$SYS/broker/ringmq/shards");
	need(&w, "$SYS/broker/ringmq/connections");
	for (unsigned k = 0; k < SHARD_DROP_CAUSES_SEEN; k++)
		need(&w, "$SYS/broker/ringmq/dropped/%s", drop_causes[k]);
	for (unsigned i = 0; i < nshards; i++)
		for (size_t k = 0; k < sizeof(per_shard) / sizeof(per_shard[0]); k++)
			need(&w, "$SYS/broker/ringmq/shard/%u/%s", i, per_shard[k]);
	broker_start(&b, "sys_interval 1\n");
	c = tc_connect(&b, MQTT_V311, "sys-shards", true);
	tc_subscribe(c, "$SYS/broker/ringmq/#", 0);
	collect(c, &r, &w);
	cr_assert_eq(strtoul(get(&r, "$SYS/broker/ringmq/shards"), NULL, 10), nshards);
	for (unsigned i = 0; i < w.n; i++)
		expect_format(&r, w.topic[i], strstr(w.topic[i], "utilisation") ? "^[0-9]{1,3}\\.[0-9]$" : "^[0-9]+$");
	tc_disconnect(c);
	broker_stop(&b);
}

Test(sys, sys_interval_0_publishes_nothing)
{
	struct broker b;
	struct tclient *c;

	broker_start(&b, "sys_interval 0\n");
	c = tc_connect(&b, MQTT_V311, "sys-off", true);
	tc_subscribe(c, "$SYS/#", 0);
	tc_expect_nothing(c, 1500); /* longer than the 1 s a publication would take */
	tc_disconnect(c);
	broker_stop(&b);
}
