/*
 * fuzz_session.c - libFuzzer target for the protocol engine, stateful:
 * whole sessions of two clients through the real connection, session and
 * publish code of one shard, without io_uring or sockets
 * (shard_engine_begin(), conn_input()).
 *
 * The input is a script of steps; each starts with one byte:
 *   op & 7 == 0, 1   client A / B sends the next N bytes (N = the byte after
 *                    the op, at least 1), as one read; a client that has no
 *                    connection gets a new one first
 *   2, 3             client A / B goes away (the connection is closed as if
 *                    the peer had reset it)
 *   4, 5             client A / B connects again on a new connection (the
 *                    old one, if any, closed first): with the same client
 *                    id in its CONNECT this is a session take-over
 *   6                time passes: the next byte in seconds; keep alive,
 *                    CONNECT timeouts, session and message expiry, delayed
 *                    wills run
 *   7                flush: every connection's output is taken
 * After each step output is taken and closed connections are freed, as at
 * the end of a shard's loop turn.  Each input starts with no connection,
 * session, subscription or retained message (one broker serves every input,
 * emptied between them), so runs do not depend on each other.  The engine must never crash, leak (LSan
 * under -fsanitize=address) or trip an assertion; the seed corpus
 * (corpus/session/) holds realistic exchanges for 3.1.1 and 5.0: QoS 1/2
 * both ways, retained, wills, persistent sessions, take-over, shared
 * subscriptions, topic aliases.
 *
 * Built like fuzz_mqtt.c: with `clang -fsanitize=fuzzer,address,undefined`
 * for real fuzzing, and with replay.c as an ordinary test in CI.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringmq/config.h"
#include "ringmq/conn.h"
#include "ringmq/log.h"
#include "ringmq/retain.h"
#include "ringmq/sess.h"
#include "ringmq/shard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CLIENTS 2

struct client {
	bool on;
	uint32_t slot, gen;
};

static struct conn *client_conn(struct shard *s, const struct client *cl)
{
	return cl->on ? conn_lookup(s, UD_PACK(OP_SEND, cl->gen, cl->slot)) : NULL;
}

static struct conn *client_open(struct shard *s, struct client *cl)
{
	struct conn *c = conn_new(s, -1, 0);

	if (!c)
		return NULL;
	atomic_fetch_add(&s->b->conns_total, 1); /* as accept does; conn_free takes it back */
	cl->on = true;
	cl->slot = c->slot;
	cl->gen = c->gen;
	return c;
}

static void client_close(struct shard *s, struct client *cl)
{
	struct conn *c = client_conn(s, cl);

	if (c && c->state <= CONN_ACTIVE)
		conn_close(s, c, MQTT_RC_UNSPECIFIED, false, "connection reset (fuzz)");
	cl->on = false;
}

static void settle(struct shard *s)
{
	conn_flush_all(s);
	conn_reap(s);
}

static struct config cfg;

static void setup(void)
{
	char err[CONFIG_ERROR_BYTES];

	config_init(&cfg);
	cfg.shards = 1;
	cfg.persistence = false;
	if (config_parse_line(&cfg, "allow_anonymous true", "fuzz", 1, err) < 0 || config_finish(&cfg, err) < 0) {
		fprintf(stderr, "fuzz_session: config: %s\n", err);
		abort();
	}
	log_set_level(getenv("FUZZ_SESSION_LOG") ? LOG_DEBUG : LOG_ERROR);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct broker *b;
	struct client cl[CLIENTS] = {0};
	uint8_t buf[256];
	struct shard *s;
	size_t i = 0;

	if (!b) {
		setup();
		if (!(b = broker_new(&cfg)))
			abort();
	}
	s = shard_engine_begin(b);
	if (!s)
		abort();
	while (i < size) {
		uint8_t op = data[i++] & 7;
		struct conn *c;
		size_t n;

		switch (op) {
		case 0:
		case 1:
			n = i < size ? data[i++] : 0;
			if (n == 0)
				n = 1;
			if (n > size - i)
				n = size - i;
			if (n == 0)
				break;
			c = client_conn(s, &cl[op]);
			if (!c && !(c = client_open(s, &cl[op])))
				break;
			memcpy(buf, data + i, n); /* conn_input may unwrap in place */
			(void)conn_input(s, c, buf, (uint32_t)n);
			i += n;
			break;
		case 2:
		case 3:
			client_close(s, &cl[op - 2]);
			break;
		case 4:
		case 5:
			client_close(s, &cl[op - 4]);
			settle(s);
			(void)client_open(s, &cl[op - 4]);
			break;
		case 6:
			s->now_ms += 1000u * (i < size ? data[i++] : 1);
			conn_sweep(s);
			sess_sweep(s);
			break;
		default:
			break;
		}
		settle(s);
	}
	retain_clear(b->retain);
	shard_engine_end(s);
	return 0;
}
