/*
 * fuzz_config.c - libFuzzer target for the configuration parser.
 *
 * The input is a configuration file's text.  Each line (split at '\n', cut
 * at a NUL byte the way a C string would be) goes through
 * config_parse_line(), except lines starting with "RINGMQ_", which are
 * gathered as environment entries and applied afterwards with
 * config_apply_env(); then config_finish() runs once, as in main.  The
 * parser must never crash or read past a line, each call must return 0 or
 * -EINVAL, and a failure must leave a non-empty, terminated message that
 * names its source.  When config_finish() accepts the whole, the result
 * must satisfy the cross-directive rules of docs/configuration.md (packet
 * and output sizes, powers of two, bounds of limits.h and config.h), and
 * every string field must be terminated inside its array.  Any failure
 * aborts.
 *
 * Built like fuzz_mqtt.c: with `clang -fsanitize=fuzzer,address,undefined`
 * for real fuzzing, and with replay.c as an ordinary test in CI.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringmq/config.h"
#include "ringmq/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_config: %s:%d: check failed: %s\n", __FILE__,        \
				__LINE__, #c);                                                     \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* Environment entries one input may carry (more are parsed as lines). */
#define ENV_MAX 16

#define TERMINATED(field) CHECK(memchr((field), '\0', sizeof(field)) != NULL)

static bool pow2(uint64_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

/* An error message: terminated inside its buffer, not empty, and naming
 * where it came from. */
static void check_error(const char *err, const char *source)
{
	size_t len = strnlen(err, CONFIG_ERROR_BYTES);

	CHECK(len < CONFIG_ERROR_BYTES);
	CHECK(len > 0);
	CHECK(strncmp(err, source, strlen(source)) == 0);
}

/* What config_finish() promises about an accepted configuration. */
static void check_config(const struct config *c)
{
	CHECK(c->listener_count >= 1 && c->listener_count <= CONFIG_LISTENERS_MAX);
	for (unsigned i = 0; i < c->listener_count; i++) {
		TERMINATED(c->listeners[i].bind_address);
		TERMINATED(c->listeners[i].file);
	}
	CHECK(c->shards >= SHARDS_MIN && c->shards <= SHARDS_MAX);
	CHECK(c->max_packet_size >= CONFIG_PACKET_BYTES_MIN && c->max_packet_size <= PACKET_BYTES_MAX);
	CHECK(c->connect_packet_size_max >= CONFIG_PACKET_BYTES_MIN);
	CHECK(c->connect_packet_size_max <= c->max_packet_size);
	CHECK(c->max_output_bytes >= c->max_packet_size && c->max_output_bytes <= CONFIG_BYTES_MAX);
	CHECK(c->message_size_limit <= c->max_packet_size);
	CHECK(c->connect_timeout_s >= 1 && c->connect_timeout_s <= CONFIG_CONNECT_TIMEOUT_S_MAX);
	CHECK(c->max_inflight_messages >= 1 && c->max_inflight_messages <= INFLIGHT_MAX);
	CHECK(c->max_receive_inflight >= 1 && c->max_receive_inflight <= 65535);
	CHECK(c->max_queued_messages >= 1 && c->max_queued_messages <= CONFIG_QUEUED_MESSAGES_MAX);
	CHECK(c->max_queued_bytes <= CONFIG_BYTES_MAX);
	CHECK(c->max_subscriptions_per_client >= 1);
	CHECK(c->max_subscriptions_per_client <= CONFIG_SUBSCRIPTIONS_PER_CLIENT_MAX);
	CHECK(c->max_topic_length >= 1 && c->max_topic_length <= TOPIC_BYTES_MAX);
	CHECK(c->max_topic_levels >= 1 && c->max_topic_levels <= TOPIC_LEVELS_MAX);
	CHECK(c->max_client_id_length >= CONFIG_CLIENT_ID_BYTES_MIN && c->max_client_id_length <= CLIENT_ID_BYTES_MAX);
	CHECK(c->max_keepalive <= 65535 && c->max_topic_alias <= 65535);
	CHECK(c->max_qos <= 2);
	CHECK(pow2(c->shard_ring_size) && c->shard_ring_size >= CONFIG_SHARD_RING_SLOTS_MIN &&
	      c->shard_ring_size <= CONFIG_SHARD_RING_SLOTS_MAX);
	CHECK(pow2(c->recv_buffers) && c->recv_buffers <= CONFIG_RECV_BUFFERS_MAX);
	CHECK(c->recv_buffer_size >= CONFIG_RECV_BUFFER_BYTES_MIN);
	CHECK(c->recv_buffer_size <= CONFIG_RECV_BUFFER_BYTES_MAX);
	TERMINATED(c->password_file);
	TERMINATED(c->response_information);
	TERMINATED(c->server_reference);
	TERMINATED(c->http_bind_address);
	TERMINATED(c->persistence_location);
	TERMINATED(c->config_file);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *c = malloc(sizeof(*c));
	char *err = malloc(CONFIG_ERROR_BYTES), *env[ENV_MAX + 1] = {0};
	unsigned nenv = 0;
	size_t off = 0;
	int lineno = 0, r;

	CHECK(c != NULL && err != NULL);
	config_init(c);
	while (off < size) {
		const uint8_t *eol = memchr(data + off, '\n', size - off);
		size_t len = eol ? (size_t)(eol - (data + off)) : size - off;
		char *line = malloc(len + 1); /* exactly the line: ASan sees any read past it */

		CHECK(line != NULL);
		memcpy(line, data + off, len);
		line[len] = '\0';
		off += len + (eol ? 1 : 0);
		lineno++;
		if (strncmp(line, "RINGMQ_", 7) == 0 && nenv < ENV_MAX) {
			env[nenv++] = line; /* freed after config_apply_env() */
			continue;
		}
		err[0] = '\0';
		r = config_parse_line(c, line, "fuzz.conf", lineno, err);
		CHECK(r == 0 || r == -EINVAL);
		if (r < 0)
			check_error(err, "fuzz.conf");
		free(line);
	}
	if (nenv > 0) {
		err[0] = '\0';
		r = config_apply_env(c, env, err);
		CHECK(r == 0 || r == -EINVAL);
		if (r < 0)
			check_error(err, "environment");
	}
	err[0] = '\0';
	r = config_finish(c, err);
	CHECK(r == 0 || r == -EINVAL);
	if (r == 0)
		check_config(c);
	else
		CHECK(strnlen(err, CONFIG_ERROR_BYTES) > 0 && strnlen(err, CONFIG_ERROR_BYTES) < CONFIG_ERROR_BYTES);
	config_done(c);
	for (unsigned i = 0; i < nenv; i++)
		free(env[i]);
	free(err);
	free(c);
	return 0;
}
