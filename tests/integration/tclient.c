/*
 * tclient.c - the integration tests' MQTT client (see tclient.h).
 *
 * Receiving: bytes accumulate in one growable buffer; mqtt_frame_cut()
 * finds the first whole frame and mqtt_decode() decodes it in place, so a
 * returned packet's views point into that buffer.  The frame is dropped
 * (memmove) only at the start of the next receive, which is what makes
 * the "valid until the next receive" rule in tclient.h hold.
 *
 * Sending is blocking with MSG_NOSIGNAL: test packets are small, and a
 * broker that closed the connection must show up as a return value the
 * test may ignore, not as SIGPIPE.
 */
#include "tclient.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The receive buffer starts at RX_BYTES_MIN and doubles up to RX_BYTES_MAX:
 * larger than any packet a test makes the broker send. */
#define RX_BYTES_MIN 65536u
#define RX_BYTES_MAX (64u << 20)
/* Whole packets the client accepts from the broker. */
#define RX_PACKET_BYTES_MAX 268435460u

struct mqtt_str tc_str(const char *s)
{
	struct mqtt_str v = {.ptr = (const uint8_t *)(s ? s : ""), .len = s ? (uint32_t)strlen(s) : 0};

	return v;
}

bool tc_str_eq(struct mqtt_str s, const char *c)
{
	size_t len = strlen(c);

	return s.len == len && (len == 0 || memcmp(s.ptr, c, len) == 0);
}

const char *tc_dup(struct mqtt_str s)
{
	/* A ring, so that one failure message may hold several copies. */
	static char ring[8][512];
	static unsigned next;
	char *dst = ring[next++ % 8];
	size_t n = s.len < 511 ? s.len : 511;

	if (n)
		memcpy(dst, s.ptr, n);
	dst[n] = '\0';
	return dst;
}

struct mqtt_packet tc_connect_packet(uint8_t version, const char *client_id)
{
	struct mqtt_packet p = {.type = MQTT_CONNECT};

	p.connect.version = version;
	p.connect.clean = true;
	p.connect.keepalive = 60;
	p.connect.protocol_name = tc_str(version == MQTT_V31 ? "MQIsdp" : "MQTT");
	p.connect.client_id = tc_str(client_id);
	return p;
}

void tc_user_props(struct mqtt_props *p, const char *const *kv, unsigned n, uint8_t *buf, size_t cap)
{
	size_t len = 0;

	for (unsigned i = 0; i < 2 * n; i++) {
		size_t l = strlen(kv[i]);

		if (i % 2 == 0) {
			cr_assert(len + 1 <= cap);
			buf[len++] = MQTT_PROP_USER;
		}
		cr_assert(len + 2 + l <= cap, "user property buffer too small");
		buf[len++] = (uint8_t)(l >> 8);
		buf[len++] = (uint8_t)l;
		memcpy(buf + len, kv[i], l);
		len += l;
	}
	p->present |= MQTT_HAS(MQTT_PROP_USER);
	p->user.ptr = buf;
	p->user.len = (uint32_t)len;
	p->user_count = n;
}

const char *tc_describe(const struct mqtt_packet *p)
{
	static char buf[512];
	const char *name = mqtt_type_name(p->type);

	switch (p->type) {
	case MQTT_CONNACK:
		snprintf(buf, sizeof(buf), "CONNACK sp=%d reason=0x%02x", p->connack.session_present,
			 p->connack.reason);
		break;
	case MQTT_PUBLISH:
		snprintf(buf, sizeof(buf), "PUBLISH qos=%u dup=%d retain=%d id=%u topic='%s' payload='%s'",
			 p->publish.qos, p->publish.dup, p->publish.retain, p->publish.packet_id,
			 tc_dup(p->publish.topic), tc_dup(p->publish.payload));
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		snprintf(buf, sizeof(buf), "%s id=%u reason=0x%02x", name, p->ack.packet_id, p->ack.reason);
		break;
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
		snprintf(buf, sizeof(buf), "%s id=%u count=%u first=0x%02x", name, p->suback.packet_id,
			 p->suback.count, p->suback.count ? p->suback.codes[0] : 0);
		break;
	case MQTT_DISCONNECT:
	case MQTT_AUTH:
		snprintf(buf, sizeof(buf), "%s reason=0x%02x", name, p->disconnect.reason);
		break;
	default:
		snprintf(buf, sizeof(buf), "%s", name);
	}
	return buf;
}

void tc_put_raw(struct tc_bytes *w, const void *p, size_t len)
{
	cr_assert(w->len + len <= sizeof(w->b), "raw packet too large for struct tc_bytes");
	memcpy(w->b + w->len, p, len);
	w->len += len;
}

void tc_put_u8(struct tc_bytes *w, uint8_t v)
{
	tc_put_raw(w, &v, 1);
}

void tc_put_u16(struct tc_bytes *w, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};

	tc_put_raw(w, b, 2);
}

void tc_put_u32(struct tc_bytes *w, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	tc_put_raw(w, b, 4);
}

void tc_put_varint(struct tc_bytes *w, uint32_t v)
{
	do {
		uint8_t byte = v & 0x7f;

		v >>= 7;
		tc_put_u8(w, (uint8_t)(byte | (v ? 0x80 : 0)));
	} while (v);
}

void tc_put_str(struct tc_bytes *w, const char *s)
{
	size_t l = strlen(s);

	tc_put_u16(w, (uint16_t)l);
	tc_put_raw(w, s, l);
}

/* ------------------------------------------------------------------------
 * Connection
 * ---------------------------------------------------------------------- */

struct tclient *tc_open(const struct broker *b, uint8_t version, const char *name)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(b->port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct tclient *c = calloc(1, sizeof(*c));
	int one = 1;

	cr_assert(c);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(c->fd >= 0, "socket: %s", strerror(errno));
	cr_assert(connect(c->fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect to port %u: %s", b->port,
		  strerror(errno));
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* latency only */
	c->version = version;
	c->next_id = 1;
	c->disconnect_reason = -1;
	snprintf(c->name, sizeof(c->name), "%s", name && *name ? name : "(no id)");
	c->rx_cap = RX_BYTES_MIN;
	c->rx = malloc(c->rx_cap);
	cr_assert(c->rx);
	return c;
}

void tc_close(struct tclient *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c->rx);
	free(c);
}

int tc_send_raw(struct tclient *c, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int tc_send(struct tclient *c, const struct mqtt_packet *p)
{
	size_t len = mqtt_encoded_len(c->version, p);
	uint8_t *buf;
	int n, r;

	cr_assert(len > 0, "%s: codec cannot encode %s", c->name, mqtt_type_name(p->type));
	buf = malloc(len);
	cr_assert(buf);
	n = mqtt_encode(c->version, p, buf, len);
	cr_assert(n > 0 && (size_t)n == len, "%s: mqtt_encode(%s) = %d, expected %zu", c->name,
		  mqtt_type_name(p->type), n, len);
	r = tc_send_raw(c, buf, len);
	free(buf);
	return r;
}

int tc_send_frame(struct tclient *c, uint8_t first_byte, const struct tc_bytes *body)
{
	struct tc_bytes w = {.len = 0};

	tc_put_u8(&w, first_byte);
	tc_put_varint(&w, (uint32_t)body->len);
	tc_put_raw(&w, body->b, body->len);
	return tc_send_raw(c, w.b, w.len);
}

/* Read what the socket has, waiting until @deadline.  0, -ETIMEDOUT or
 * -ECONNRESET (orderly close or reset). */
static int fill(struct tclient *c, int64_t deadline)
{
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
	int64_t left = deadline - harness_now_ms();
	ssize_t n;
	int r;

	if (c->rx_len == c->rx_cap) {
		cr_assert(c->rx_cap < RX_BYTES_MAX, "%s: packet larger than the test client's buffer", c->name);
		c->rx_cap *= 2;
		c->rx = realloc(c->rx, c->rx_cap);
		cr_assert(c->rx);
	}
	r = poll(&pfd, 1, left > 0 ? (int)left : 0);
	if (r < 0 && errno == EINTR)
		return 0;
	cr_assert(r >= 0, "poll: %s", strerror(errno));
	if (r == 0)
		return -ETIMEDOUT;
	n = recv(c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len, 0);
	if (n < 0 && errno == EINTR)
		return 0;
	if (n <= 0)
		return -ECONNRESET;
	c->rx_len += (size_t)n;
	return 0;
}

int tc_recv(struct tclient *c, int timeout_ms, struct mqtt_packet *ret)
{
	int64_t deadline = harness_now_ms() + timeout_ms;

	if (c->rx_frame) {
		memmove(c->rx, c->rx + c->rx_frame, c->rx_len - c->rx_frame);
		c->rx_len -= c->rx_frame;
		c->rx_frame = 0;
	}
	for (;;) {
		struct mqtt_frame f;
		uint8_t reason = 0;
		int n = mqtt_frame_cut(c->rx, c->rx_len, RX_PACKET_BYTES_MAX, &f, &reason);
		int r;

		if (n < 0) {
			cr_log_error("%s: broker sent a bad frame header (reason 0x%02x)", c->name, reason);
			return -EBADMSG;
		}
		if (n > 0) {
			memset(ret, 0, sizeof(*ret));
			r = mqtt_decode(c->version, c->rx, (size_t)n, ret, &reason);
			if (r < 0) {
				cr_log_error("%s: broker sent a malformed %s (reason 0x%02x)", c->name,
					     mqtt_type_name(f.type), reason);
				return -EBADMSG;
			}
			c->rx_frame = (size_t)n;
			return 0;
		}
		r = fill(c, deadline);
		if (r < 0)
			return r;
	}
}

static const char *recv_result(int r)
{
	return r == -ETIMEDOUT ? "nothing (timeout)" : r == -ECONNRESET ? "a closed connection" : "a bad packet";
}

struct mqtt_packet tc_expect(struct tclient *c, uint8_t type)
{
	struct mqtt_packet p;
	int r = tc_recv(c, TC_WAIT_MS, &p);

	cr_assert(r == 0, "%s: expected %s, got %s", c->name, mqtt_type_name(type), recv_result(r));
	cr_assert(p.type == type, "%s: expected %s, got %s", c->name, mqtt_type_name(type), tc_describe(&p));
	return p;
}

void tc_expect_nothing(struct tclient *c, int ms)
{
	struct mqtt_packet p;
	int r = tc_recv(c, ms, &p);

	cr_assert(r != 0, "%s: expected nothing, got %s", c->name, tc_describe(&p));
	cr_assert(r == -ETIMEDOUT, "%s: expected nothing, got %s", c->name, recv_result(r));
}

bool tc_closed(struct tclient *c, int timeout_ms)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	struct mqtt_packet p;
	int r;

	c->disconnect_reason = -1;
	for (;;) {
		int64_t left = deadline - harness_now_ms();

		r = tc_recv(c, left > 0 ? (int)left : 0, &p);
		if (r == -ECONNRESET)
			return true;
		if (r != 0) {
			cr_log_error("%s: expected the connection to close, got %s", c->name, recv_result(r));
			return false;
		}
		if (p.type != MQTT_DISCONNECT || c->version != MQTT_V5 || c->disconnect_reason != -1) {
			cr_log_error("%s: expected the connection to close, got %s", c->name, tc_describe(&p));
			return false;
		}
		c->disconnect_reason = p.disconnect.reason;
	}
}

void tc_expect_closed(struct tclient *c)
{
	cr_assert(tc_closed(c, TC_WAIT_MS), "%s: the broker did not close the connection", c->name);
	cr_assert(c->disconnect_reason == -1, "%s: DISCONNECT 0x%02x before the close, expected none", c->name,
		  c->disconnect_reason);
}

void tc_expect_disconnect_any(struct tclient *c, const uint8_t *reasons, unsigned n)
{
	bool match = false;

	cr_assert(tc_closed(c, TC_WAIT_MS), "%s: the broker did not close the connection", c->name);
	if (c->version < MQTT_V5)
		return;
	if (c->disconnect_reason == -1) {
		cr_assert(harness_is_mosquitto(), "%s: closed without DISCONNECT 0x%02x (ringmq sends it; "
			  "spec 4.13 SHOULD)", c->name, reasons[0]);
		cr_log_info("%s: mosquitto closed without DISCONNECT 0x%02x", c->name, reasons[0]);
		return;
	}
	for (unsigned i = 0; i < n; i++)
		match = match || c->disconnect_reason == reasons[i];
	cr_assert(match, "%s: DISCONNECT reason 0x%02x, expected 0x%02x%s", c->name, c->disconnect_reason,
		  reasons[0], n > 1 ? " or an alternative the specification allows" : "");
}

void tc_expect_disconnect(struct tclient *c, uint8_t reason)
{
	tc_expect_disconnect_any(c, &reason, 1);
}

void tc_expect_refused(struct tclient *c, uint8_t code, bool connack_required)
{
	struct mqtt_packet p;
	int r = tc_recv(c, TC_WAIT_MS, &p);

	if (r == 0) {
		cr_assert(p.type == MQTT_CONNACK, "%s: expected CONNACK 0x%02x or a close, got %s", c->name, code,
			  tc_describe(&p));
		cr_assert(p.connack.reason == code, "%s: expected CONNACK 0x%02x, got %s", c->name, code,
			  tc_describe(&p));
		cr_assert(!p.connack.session_present, "%s: session present with a refusal [MQTT-3.2.2-4]", c->name);
		tc_expect_closed(c);
		return;
	}
	cr_assert(r == -ECONNRESET, "%s: expected CONNACK 0x%02x or a close, got %s", c->name, code,
		  recv_result(r));
	cr_assert(!connack_required, "%s: closed without the CONNACK 0x%02x that must come first", c->name, code);
	if (harness_is_mosquitto())
		cr_log_info("%s: mosquitto closed without CONNACK 0x%02x", c->name, code);
}

struct tclient *tc_connect_with(const struct broker *b, const struct mqtt_packet *connect,
				struct mqtt_packet *ret_connack)
{
	struct tclient *c = tc_open(b, connect->connect.version, tc_dup(connect->connect.client_id));

	cr_assert(tc_send(c, connect) == 0, "%s: sending CONNECT failed", c->name);
	*ret_connack = tc_expect(c, MQTT_CONNACK);
	return c;
}

struct tclient *tc_connect(const struct broker *b, uint8_t version, const char *client_id, bool clean)
{
	struct mqtt_packet p = tc_connect_packet(version, client_id), ack;
	struct tclient *c;

	p.connect.clean = clean;
	c = tc_connect_with(b, &p, &ack);
	cr_assert(ack.connack.reason == 0, "%s: connection refused: %s", c->name, tc_describe(&ack));
	return c;
}

void tc_disconnect(struct tclient *c)
{
	struct mqtt_packet p = {.type = MQTT_DISCONNECT};

	(void)tc_send(c, &p); /* the connection ends here either way */
	tc_close(c);
}

/* ------------------------------------------------------------------------
 * Subscribe and publish
 * ---------------------------------------------------------------------- */

static uint16_t next_id(struct tclient *c)
{
	uint16_t id = c->next_id++;

	if (c->next_id == 0)
		c->next_id = 1;
	return id;
}

/* One SUBSCRIBE/UNSUBSCRIBE entry list, as the wire carries it. */
static size_t sub_entry(uint8_t *buf, const char *filter, int options)
{
	size_t l = strlen(filter);

	buf[0] = (uint8_t)(l >> 8);
	buf[1] = (uint8_t)l;
	memcpy(buf + 2, filter, l);
	if (options >= 0)
		buf[2 + l] = (uint8_t)options;
	return 2 + l + (options >= 0 ? 1 : 0);
}

void tc_subscribe_many(struct tclient *c, const char *const *filters, const uint8_t *options, unsigned n,
		       uint8_t *ret_codes)
{
	struct mqtt_packet p = {.type = MQTT_SUBSCRIBE, .flags = 2};
	uint8_t list[4096];
	size_t len = 0;

	for (unsigned i = 0; i < n; i++) {
		cr_assert(len + strlen(filters[i]) + 3 <= sizeof(list), "SUBSCRIBE too large for the test client");
		len += sub_entry(list + len, filters[i], options[i]);
	}
	p.subscribe.packet_id = next_id(c);
	p.subscribe.list.ptr = list;
	p.subscribe.list.len = (uint32_t)len;
	p.subscribe.count = n;
	(void)tc_send(c, &p); /* a failure shows as the missing SUBACK */
	struct mqtt_packet ack = tc_expect(c, MQTT_SUBACK);
	cr_assert(ack.suback.packet_id == p.subscribe.packet_id, "%s: SUBACK id %u for SUBSCRIBE id %u [MQTT-3.8.4-2]",
		  c->name, ack.suback.packet_id, p.subscribe.packet_id);
	cr_assert(ack.suback.count == n, "%s: SUBACK with %u codes for %u filters [MQTT-3.9.3-1]", c->name,
		  ack.suback.count, n);
	memcpy(ret_codes, ack.suback.codes, n);
}

uint8_t tc_subscribe_opts(struct tclient *c, const char *filter, uint8_t options)
{
	uint8_t code;

	tc_subscribe_many(c, &filter, &options, 1, &code);
	return code;
}

void tc_subscribe(struct tclient *c, const char *filter, uint8_t qos)
{
	uint8_t code = tc_subscribe_opts(c, filter, qos);

	cr_assert(code == qos, "%s: SUBSCRIBE '%s' QoS %u got SUBACK code 0x%02x", c->name, filter, qos, code);
}

uint8_t tc_unsubscribe(struct tclient *c, const char *filter)
{
	struct mqtt_packet p = {.type = MQTT_UNSUBSCRIBE, .flags = 2};
	uint8_t list[1024];

	cr_assert(strlen(filter) + 2 <= sizeof(list));
	p.subscribe.packet_id = next_id(c);
	p.subscribe.list.ptr = list;
	p.subscribe.list.len = (uint32_t)sub_entry(list, filter, -1);
	p.subscribe.count = 1;
	(void)tc_send(c, &p);
	struct mqtt_packet ack = tc_expect(c, MQTT_UNSUBACK);
	cr_assert(ack.suback.packet_id == p.subscribe.packet_id, "%s: UNSUBACK id %u for UNSUBSCRIBE id %u "
		  "[MQTT-3.10.4-4]", c->name, ack.suback.packet_id, p.subscribe.packet_id);
	if (c->version < MQTT_V5)
		return 0;
	cr_assert(ack.suback.count == 1, "%s: UNSUBACK with %u codes for one filter", c->name, ack.suback.count);
	return ack.suback.codes[0];
}

struct mqtt_packet tc_publish_packet(struct tclient *c, const char *topic, const char *payload, uint8_t qos,
				     bool retain)
{
	struct mqtt_packet p = {.type = MQTT_PUBLISH};

	p.flags = (uint8_t)(qos << 1 | (retain ? 1 : 0));
	p.publish.qos = qos;
	p.publish.retain = retain;
	p.publish.topic = tc_str(topic);
	p.publish.payload = tc_str(payload);
	if (qos > 0)
		p.publish.packet_id = next_id(c);
	return p;
}

uint16_t tc_publish_send(struct tclient *c, const char *topic, const char *payload, uint8_t qos, bool retain)
{
	struct mqtt_packet p = tc_publish_packet(c, topic, payload, qos, retain);

	(void)tc_send(c, &p); /* a failure shows as the missing acknowledgement */
	return p.publish.packet_id;
}

static void expect_ack(struct tclient *c, uint8_t type, uint16_t id)
{
	struct mqtt_packet a = tc_expect(c, type);

	cr_assert(a.ack.packet_id == id, "%s: %s id %u, expected %u", c->name, mqtt_type_name(type),
		  a.ack.packet_id, id);
	cr_assert(a.ack.reason < 0x80, "%s: %s", c->name, tc_describe(&a));
}

void tc_publish(struct tclient *c, const char *topic, const char *payload, uint8_t qos, bool retain)
{
	uint16_t id = tc_publish_send(c, topic, payload, qos, retain);

	if (qos == 1) {
		expect_ack(c, MQTT_PUBACK, id);
	} else if (qos == 2) {
		expect_ack(c, MQTT_PUBREC, id);
		tc_ack(c, MQTT_PUBREL, id);
		expect_ack(c, MQTT_PUBCOMP, id);
	}
}

struct mqtt_packet tc_expect_publish(struct tclient *c, const char *topic, const char *payload, uint8_t qos)
{
	struct mqtt_packet p = tc_expect(c, MQTT_PUBLISH);

	cr_assert(tc_str_eq(p.publish.topic, topic) && tc_str_eq(p.publish.payload, payload) && p.publish.qos == qos,
		  "%s: expected PUBLISH qos=%u topic='%s' payload='%s', got %s", c->name, qos, topic, payload,
		  tc_describe(&p));
	cr_assert(qos == 0 || p.publish.packet_id != 0, "%s: QoS %u PUBLISH with packet id 0 [MQTT-2.3.1-1]",
		  c->name, qos);
	return p;
}

void tc_ack(struct tclient *c, uint8_t type, uint16_t packet_id)
{
	struct mqtt_packet p = {.type = type, .flags = type == MQTT_PUBREL ? 2 : 0};

	p.ack.packet_id = packet_id;
	(void)tc_send(c, &p);
}

void tc_receive_qos(struct tclient *c, const char *topic, const char *payload, uint8_t qos)
{
	struct mqtt_packet p = tc_expect_publish(c, topic, payload, qos);
	uint16_t id = p.publish.packet_id;

	if (qos == 1) {
		tc_ack(c, MQTT_PUBACK, id);
	} else if (qos == 2) {
		tc_ack(c, MQTT_PUBREC, id);
		expect_ack(c, MQTT_PUBREL, id);
		tc_ack(c, MQTT_PUBCOMP, id);
	}
}

void tc_receive_many(struct tclient *c, const char *topic, const char *const *payloads, const uint8_t *qos,
		     unsigned n)
{
	unsigned got = 0, rel_pending = 0;

	while (got < n || rel_pending > 0) {
		struct mqtt_packet p;
		int r = tc_recv(c, TC_WAIT_MS, &p);

		cr_assert(r == 0, "%s: expected %s, got %s", c->name, got < n ? "PUBLISH" : "PUBREL", recv_result(r));
		if (p.type == MQTT_PUBREL && rel_pending > 0) {
			rel_pending--;
			tc_ack(c, MQTT_PUBCOMP, p.ack.packet_id);
			continue;
		}
		cr_assert(p.type == MQTT_PUBLISH && got < n, "%s: unexpected %s", c->name, tc_describe(&p));
		cr_assert(tc_str_eq(p.publish.topic, topic) && tc_str_eq(p.publish.payload, payloads[got]) &&
				  p.publish.qos == qos[got],
			  "%s: expected PUBLISH qos=%u topic='%s' payload='%s', got %s", c->name, qos[got], topic,
			  payloads[got], tc_describe(&p));
		if (p.publish.qos == 1)
			tc_ack(c, MQTT_PUBACK, p.publish.packet_id);
		if (p.publish.qos == 2) {
			tc_ack(c, MQTT_PUBREC, p.publish.packet_id);
			rel_pending++;
		}
		got++;
	}
}

/* ------------------------------------------------------------------------
 * Hostile clients and the witness
 * ---------------------------------------------------------------------- */

struct tclient *tc_open_sized(const struct broker *b, uint8_t version, const char *name, int rcvbuf, int sndbuf)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(b->port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct tclient *c = calloc(1, sizeof(*c));
	int one = 1;

	cr_assert(c);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(c->fd >= 0, "socket: %s", strerror(errno));
	/* Before connect(2): the window scale is fixed by the SYN. */
	if (rcvbuf > 0)
		cr_assert(setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) == 0, "SO_RCVBUF: %s",
			  strerror(errno));
	if (sndbuf > 0)
		cr_assert(setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) == 0, "SO_SNDBUF: %s",
			  strerror(errno));
	cr_assert(connect(c->fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect to port %u: %s", b->port,
		  strerror(errno));
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* latency only */
	c->version = version;
	c->next_id = 1;
	c->disconnect_reason = -1;
	snprintf(c->name, sizeof(c->name), "%s", name && *name ? name : "(no id)");
	c->rx_cap = RX_BYTES_MIN;
	c->rx = malloc(c->rx_cap);
	cr_assert(c->rx);
	return c;
}

int tc_send_chunked(struct tclient *c, const void *buf, size_t len, size_t chunk)
{
	const uint8_t *p = buf;

	cr_assert(chunk > 0);
	while (len > 0) {
		size_t n = len < chunk ? len : chunk;
		int r = tc_send_raw(c, p, n);

		if (r < 0)
			return r;
		p += n;
		len -= n;
	}
	return 0;
}

uint8_t *tc_frame_alloc(uint8_t first_byte, const void *body, size_t body_len, size_t *ret_len)
{
	uint8_t *buf = malloc(body_len + 5);
	size_t n = 0;
	uint32_t v = (uint32_t)body_len;

	cr_assert(buf);
	cr_assert(body_len <= 268435455u, "Remaining Length %zu beyond the protocol's maximum", body_len);
	buf[n++] = first_byte;
	do {
		uint8_t byte = v & 0x7f;

		v >>= 7;
		buf[n++] = (uint8_t)(byte | (v ? 0x80 : 0));
	} while (v);
	if (body_len)
		memcpy(buf + n, body, body_len);
	*ret_len = n + body_len;
	return buf;
}

bool tc_drain_until_closed(struct tclient *c, int timeout_ms, uint64_t *ret_bytes)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	uint64_t total = 0;
	uint8_t sink[65536];
	bool closed = false;

	for (;;) {
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		int64_t left = deadline - harness_now_ms();
		ssize_t n;
		int r;

		if (left <= 0)
			break;
		r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		cr_assert(r >= 0, "poll: %s", strerror(errno));
		if (r == 0)
			break;
		n = recv(c->fd, sink, sizeof(sink), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			closed = true;
			break;
		}
		total += (uint64_t)n;
	}
	c->rx_len = 0;
	c->rx_frame = 0;
	if (ret_bytes)
		*ret_bytes = total;
	return closed;
}

void tc_witness_start(struct tc_witness *w, const struct broker *b, const char *name)
{
	char id[64];
	struct mqtt_packet p, ack;

	memset(w, 0, sizeof(*w));
	snprintf(w->topic, sizeof(w->topic), "witness/%s", name);
	for (int i = 0; i < 2; i++) {
		snprintf(id, sizeof(id), "witness-%s-%s", i ? "pub" : "sub", name);
		p = tc_connect_packet(MQTT_V311, id);
		p.connect.keepalive = 0; /* never times out, however long the attack */
		if (i)
			w->pub = tc_connect_with(b, &p, &ack);
		else
			w->sub = tc_connect_with(b, &p, &ack);
		cr_assert(ack.connack.reason == 0, "witness %s refused: %s", id, tc_describe(&ack));
	}
	tc_subscribe(w->sub, w->topic, 1);
	tc_witness_check(w);
}

void tc_witness_check(struct tc_witness *w)
{
	char payload[32];

	snprintf(payload, sizeof(payload), "witness %u", w->seq++);
	tc_publish(w->pub, w->topic, payload, 1, false);
	tc_receive_qos(w->sub, w->topic, payload, 1);
}

void tc_witness_stop(struct tc_witness *w)
{
	tc_witness_check(w);
	tc_disconnect(w->pub);
	tc_disconnect(w->sub);
	w->pub = w->sub = NULL;
}
