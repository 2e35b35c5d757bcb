/*
 * test_config.c - the configuration module: every directive, every kind of
 * bad input with its exact message, files, RINGMQ_* variables, command-line
 * overrides and config_finish()'s derived values and cross checks.
 *
 * Error messages are compared whole: they are the interface an operator
 * sees, and "FILE:LINE: directive: what is wrong" is a promise.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ringmq/config.h"
#include "ringmq/limits.h"
#include "ringmq/log.h"
#include "ringmq/proxy.h"

#define FILE_NAME "test.conf"
#define LINE 7
#define AT "test.conf:7: "

static int parse(struct config *c, const char *line, char *err)
{
	return config_parse_line(c, line, FILE_NAME, LINE, err);
}

static void parse_ok(struct config *c, const char *line)
{
	char err[CONFIG_ERROR_BYTES] = "";
	int r = parse(c, line, err);

	cr_assert_eq(r, 0, "'%s' failed: %s", line, err);
}

static void expect_error(const char *line, const char *message)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(parse(&c, line, err), -EINVAL, "'%s' was accepted", line);
	cr_assert_str_eq(err, message, "'%s'", line);
}

/* Write @text to a new temporary file; its path goes to @path. */
static void write_temp(char *path, size_t size, const char *text, size_t len)
{
	int fd;
	FILE *f;

	snprintf(path, size, "%s/ringmq-config-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	f = fdopen(fd, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(text, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

/* ------------------------------------------------------------------------ */
/* Defaults                                                                  */
/* ------------------------------------------------------------------------ */

Test(config, init_takes_defaults_from_limits)
{
	struct config c;

	config_init(&c);
	cr_assert_eq(c.listener_count, 0);
	cr_assert_eq(c.shards, 0);
	cr_assert_not(c.allow_anonymous);
	cr_assert_not(c.allow_anonymous_set);
	cr_assert_eq(c.max_connections, -1);
	cr_assert_eq(c.message_size_limit, 0);
	cr_assert_eq(c.max_packet_size, PACKET_BYTES_DEFAULT);
	cr_assert_eq(c.connect_packet_size_max, PACKET_BYTES_PRE_CONNECT_DEFAULT);
	cr_assert_eq(c.connect_timeout_s, CONNECT_TIMEOUT_S_DEFAULT);
	cr_assert_eq(c.max_inflight_messages, INFLIGHT_DEFAULT);
	cr_assert_eq(c.max_receive_inflight, RECEIVE_INFLIGHT_DEFAULT);
	cr_assert_eq(c.max_queued_messages, QUEUED_MESSAGES_DEFAULT);
	cr_assert_eq(c.max_queued_bytes, QUEUED_BYTES_DEFAULT);
	cr_assert_eq(c.max_subscriptions_per_client, SUBSCRIPTIONS_PER_CLIENT_DEFAULT);
	cr_assert_eq(c.max_topic_length, TOPIC_BYTES_DEFAULT);
	cr_assert_eq(c.max_topic_levels, TOPIC_LEVELS_DEFAULT);
	cr_assert_eq(c.max_client_id_length, CLIENT_ID_BYTES_DEFAULT);
	cr_assert_eq(c.max_keepalive, KEEPALIVE_S_MAX_DEFAULT);
	cr_assert_eq(c.max_topic_alias, TOPIC_ALIAS_DEFAULT);
	cr_assert_eq(c.max_output_bytes, OUTPUT_BYTES_DEFAULT);
	cr_assert_eq(c.persistent_client_expiration_s, SESSION_EXPIRY_S_DEFAULT);
	cr_assert_eq(c.shard_ring_size, SHARD_RING_SLOTS_DEFAULT);
	cr_assert_eq(c.recv_buffers, RECV_BUFFERS_DEFAULT);
	cr_assert_eq(c.recv_buffer_size, RECV_BUFFER_BYTES_DEFAULT);
	cr_assert(c.retain_available);
	cr_assert_eq(c.max_qos, 2);
	cr_assert_not(c.queue_qos0_messages);
	cr_assert_eq(c.sys_interval_s, SYS_INTERVAL_S_DEFAULT);
	cr_assert_eq(c.log_level, LOG_INFO);
	cr_assert(c.persistence);
	cr_assert_str_eq(c.persistence_location, "./data");
	cr_assert_eq(c.durability, DURABILITY_SYNC);
	cr_assert_eq(c.override_port, -1);
}

/* ------------------------------------------------------------------------ */
/* Each directive                                                            */
/* ------------------------------------------------------------------------ */

struct int_case {
	const char *line;
	size_t offset;
	size_t size;
	unsigned long long expected;
};

#define INT_CASE(l, f, v) {l, offsetof(struct config, f), sizeof(((struct config *)0)->f), v}

static unsigned long long read_field(const struct config *c, size_t offset, size_t size)
{
	const unsigned char *p = (const unsigned char *)c + offset;
	uint8_t v8;
	uint32_t v32;
	uint64_t v64;

	if (size == 1) {
		memcpy(&v8, p, 1);
		return v8;
	}
	if (size == 4) {
		memcpy(&v32, p, 4);
		return v32;
	}
	memcpy(&v64, p, 8);
	return v64;
}

Test(config, every_integer_directive_sets_its_field)
{
	static const struct int_case cases[] = {
		INT_CASE("shards 4", shards, 4),
		INT_CASE("shards 0", shards, 0),
		INT_CASE("shards 256", shards, 256),
		INT_CASE("max_inflight_messages 10", max_inflight_messages, 10),
		INT_CASE("max_receive_inflight 100", max_receive_inflight, 100),
		INT_CASE("max_queued_messages 5000", max_queued_messages, 5000),
		INT_CASE("max_queued_bytes 1099511627776", max_queued_bytes, 1099511627776ull),
		INT_CASE("message_size_limit 1000", message_size_limit, 1000),
		INT_CASE("max_packet_size 268435455", max_packet_size, 268435455),
		INT_CASE("connect_packet_size_max 4096", connect_packet_size_max, 4096),
		INT_CASE("max_output_bytes 16777216", max_output_bytes, 16777216),
		INT_CASE("max_keepalive 0", max_keepalive, 0),
		INT_CASE("max_keepalive 65535", max_keepalive, 65535),
		INT_CASE("sys_interval 0", sys_interval_s, 0),
		INT_CASE("max_qos 1", max_qos, 1),
		INT_CASE("maximum_qos 0", max_qos, 0),
		INT_CASE("connect_timeout 30", connect_timeout_s, 30),
		INT_CASE("max_subscriptions_per_client 7", max_subscriptions_per_client, 7),
		INT_CASE("max_topic_length 512", max_topic_length, 512),
		INT_CASE("max_topic_levels 1024", max_topic_levels, 1024),
		INT_CASE("max_client_id_length 23", max_client_id_length, 23),
		INT_CASE("max_topic_alias 0", max_topic_alias, 0),
		INT_CASE("shard_ring_size 64", shard_ring_size, 64),
		INT_CASE("shard_ring_size 1048576", shard_ring_size, 1048576),
		INT_CASE("recv_buffers 1", recv_buffers, 1),
		INT_CASE("recv_buffers 32768", recv_buffers, 32768),
		INT_CASE("recv_buffer_size 65536", recv_buffer_size, 65536),
		INT_CASE("persistent_client_expiration 3600", persistent_client_expiration_s, 3600),
		INT_CASE("shards 007", shards, 7),
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config c;

		config_init(&c);
		parse_ok(&c, cases[i].line);
		cr_assert_eq(read_field(&c, cases[i].offset, cases[i].size), cases[i].expected, "'%s'",
			     cases[i].line);
	}
}

Test(config, zero_means_unlimited_for_inflight_and_queued_messages)
{
	struct config c;

	config_init(&c);
	parse_ok(&c, "max_inflight_messages 0");
	parse_ok(&c, "max_queued_messages 0");
	cr_assert_eq(c.max_inflight_messages, INFLIGHT_MAX);
	cr_assert_eq(c.max_queued_messages, CONFIG_QUEUED_MESSAGES_MAX);
}

Test(config, booleans_set_their_fields)
{
	struct config c;

	config_init(&c);
	parse_ok(&c, "retain_available false");
	parse_ok(&c, "queue_qos0_messages true");
	parse_ok(&c, "persistence false");
	cr_assert_not(c.retain_available);
	cr_assert(c.queue_qos0_messages);
	cr_assert_not(c.persistence);
	parse_ok(&c, "retained_persistence true");
	cr_assert(c.persistence);
}

Test(config, allow_anonymous_records_that_it_was_given)
{
	struct config c;

	config_init(&c);
	parse_ok(&c, "allow_anonymous false");
	cr_assert_not(c.allow_anonymous);
	cr_assert(c.allow_anonymous_set);
	parse_ok(&c, "allow_anonymous true");
	cr_assert(c.allow_anonymous);
}

Test(config, durability_and_log_level_take_their_words)
{
	struct config c;

	config_init(&c);
	parse_ok(&c, "durability batch");
	cr_assert_eq(c.durability, DURABILITY_BATCH);
	parse_ok(&c, "durability none");
	cr_assert_eq(c.durability, DURABILITY_NONE);
	parse_ok(&c, "durability sync");
	cr_assert_eq(c.durability, DURABILITY_SYNC);
	parse_ok(&c, "log_level debug");
	cr_assert_eq(c.log_level, LOG_DEBUG);
	parse_ok(&c, "log_level warn");
	cr_assert_eq(c.log_level, LOG_WARN);
	parse_ok(&c, "log_level error");
	cr_assert_eq(c.log_level, LOG_ERROR);
	parse_ok(&c, "log_level info");
	cr_assert_eq(c.log_level, LOG_INFO);
}

Test(config, persistence_location_takes_the_rest_of_the_line)
{
	struct config c;

	config_init(&c);
	parse_ok(&c, "persistence_location   /var/lib/ring mq/data/  ");
	cr_assert_str_eq(c.persistence_location, "/var/lib/ring mq/data/");
}

Test(config, persistent_client_expiration_takes_mosquitto_units)
{
	static const struct {
		const char *value;
		uint32_t seconds;
	} cases[] = {
		{"1h", 3600}, {"2d", 172800}, {"1w", 604800}, {"1m", 2592000}, {"1y", 31536000},
		{"90", 90},   {"0", 0},       {"136y", 136u * 31536000u},
	};
	char line[128];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config c;

		config_init(&c);
		snprintf(line, sizeof(line), "persistent_client_expiration %s", cases[i].value);
		parse_ok(&c, line);
		cr_assert_eq(c.persistent_client_expiration_s, cases[i].seconds, "'%s'", line);
	}
}

Test(config, listener_starts_a_block_with_port_and_address)
{
	struct config c;

	config_init(&c);
	parse_ok(&c, "listener 1883");
	parse_ok(&c, "listener 8080 ::1");
	cr_assert_eq(c.listener_count, 2);
	cr_assert_eq(c.listeners[0].port, 1883);
	cr_assert_str_eq(c.listeners[0].bind_address, "");
	cr_assert_eq(c.listeners[0].protocol, LISTENER_MQTT);
	cr_assert_eq(c.listeners[0].max_connections, -1);
	cr_assert_str_eq(c.listeners[0].file, FILE_NAME);
	cr_assert_eq(c.listeners[0].line, LINE);
	cr_assert_eq(c.listeners[1].port, 8080);
	cr_assert_str_eq(c.listeners[1].bind_address, "::1");
}

Test(config, per_listener_directives_apply_to_the_last_listener)
{
	struct config c;

	config_init(&c);
	parse_ok(&c, "max_connections 100");
	parse_ok(&c, "listener 1883");
	parse_ok(&c, "listener 9001");
	parse_ok(&c, "bind_address 10.0.0.1");
	parse_ok(&c, "protocol websockets");
	parse_ok(&c, "max_connections 5");
	cr_assert_eq(c.max_connections, 100);
	cr_assert_eq(c.listeners[0].max_connections, -1);
	cr_assert_str_eq(c.listeners[0].bind_address, "");
	cr_assert_eq(c.listeners[0].protocol, LISTENER_MQTT);
	cr_assert_eq(c.listeners[1].max_connections, 5);
	cr_assert_str_eq(c.listeners[1].bind_address, "10.0.0.1");
	cr_assert_eq(c.listeners[1].protocol, LISTENER_WEBSOCKETS);
	cr_assert_not(c.default_listener_used);
}

Test(config, max_connections_before_any_listener_is_global)
{
	struct config c;

	config_init(&c);
	parse_ok(&c, "max_connections -1");
	cr_assert_eq(c.max_connections, -1);
	parse_ok(&c, "max_connections 1048576");
	cr_assert_eq(c.max_connections, 1048576);
	cr_assert_not(c.default_listener_used);
}

Test(config, port_and_early_bind_address_configure_the_default_listener)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "password_file /etc/ringmq/passwd");
	parse_ok(&c, "bind_address 192.168.1.2");
	parse_ok(&c, "listener 8883");
	parse_ok(&c, "port 1884");
	cr_assert(c.default_listener_used);
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	cr_assert_eq(c.listener_count, 2);
	cr_assert_eq(c.listeners[0].port, 8883);
	cr_assert_eq(c.listeners[1].port, 1884);
	cr_assert_str_eq(c.listeners[1].bind_address, "192.168.1.2");
	cr_assert_not(c.allow_anonymous, "a configured listener is not anonymous by default");
}

Test(config, log_type_lines_add_up_to_one_level)
{
	struct config c;

	config_init(&c);
	parse_ok(&c, "log_type error");
	cr_assert_eq(c.log_level, LOG_ERROR);
	parse_ok(&c, "log_type warning");
	cr_assert_eq(c.log_level, LOG_WARN);
	parse_ok(&c, "log_type subscribe");
	cr_assert_eq(c.log_level, LOG_WARN);
	parse_ok(&c, "log_type information");
	cr_assert_eq(c.log_level, LOG_INFO);
	parse_ok(&c, "log_type all");
	cr_assert_eq(c.log_level, LOG_DEBUG);
	parse_ok(&c, "log_type none");
	cr_assert_eq(c.log_level, LOG_ERROR);
	parse_ok(&c, "log_level info");
	cr_assert_eq(c.log_level, LOG_INFO);
}

Test(config, first_log_type_line_drops_the_default_level)
{
	struct config c;

	config_init(&c);
	parse_ok(&c, "log_type notice");
	cr_assert_eq(c.log_level, LOG_INFO);
	config_init(&c);
	parse_ok(&c, "log_type websockets");
	cr_assert_eq(c.log_level, LOG_ERROR);
}

Test(config, mosquitto_fixed_values_are_accepted)
{
	struct config c;

	config_init(&c);
	parse_ok(&c, "log_dest stderr");
	parse_ok(&c, "log_timestamp true");
	parse_ok(&c, "per_listener_settings false");
}

/* ------------------------------------------------------------------------ */
/* Bad values: exact messages                                                */
/* ------------------------------------------------------------------------ */

Test(config, bad_numbers_name_file_line_directive_and_value)
{
	static const struct {
		const char *line;
		const char *message;
	} cases[] = {
		{"max_connections lots", AT "max_connections: expected an integer from -1 to 1048576, got 'lots'"},
		{"max_connections -2", AT "max_connections: expected an integer from -1 to 1048576, got '-2'"},
		{"max_connections 1048577",
		 AT "max_connections: expected an integer from -1 to 1048576, got '1048577'"},
		{"shards 257", AT "shards: expected an integer from 0 to 256, got '257'"},
		{"shards -1", AT "shards: expected an integer from 0 to 256, got '-1'"},
		{"shards +4", AT "shards: expected an integer from 0 to 256, got '+4'"},
		{"shards 4x", AT "shards: expected an integer from 0 to 256, got '4x'"},
		{"shards 0x10", AT "shards: expected an integer from 0 to 256, got '0x10'"},
		{"shards 99999999999999999999999",
		 AT "shards: expected an integer from 0 to 256, got '99999999999999999999999'"},
		{"max_inflight_messages 65536",
		 AT "max_inflight_messages: expected an integer from 0 to 65535, got '65536'"},
		{"max_receive_inflight 0", AT "max_receive_inflight: expected an integer from 1 to 65535, got '0'"},
		{"max_queued_messages 1048577",
		 AT "max_queued_messages: expected an integer from 0 to 1048576, got '1048577'"},
		{"max_queued_bytes 1099511627777",
		 AT "max_queued_bytes: expected an integer from 0 to 1099511627776, got '1099511627777'"},
		{"message_size_limit 268435456",
		 AT "message_size_limit: expected an integer from 0 to 268435455, got '268435456'"},
		{"max_packet_size 19", AT "max_packet_size: expected an integer from 20 to 268435455, got '19'"},
		{"connect_packet_size_max 10",
		 AT "connect_packet_size_max: expected an integer from 20 to 268435455, got '10'"},
		{"max_output_bytes 1", AT "max_output_bytes: expected an integer from 20 to 1099511627776, got '1'"},
		{"max_keepalive 65536", AT "max_keepalive: expected an integer from 0 to 65535, got '65536'"},
		{"sys_interval 70000", AT "sys_interval: expected an integer from 0 to 65535, got '70000'"},
		{"max_qos 3", AT "max_qos: expected an integer from 0 to 2, got '3'"},
		{"connect_timeout 0", AT "connect_timeout: expected an integer from 1 to 3600, got '0'"},
		{"max_subscriptions_per_client 0",
		 AT "max_subscriptions_per_client: expected an integer from 1 to 1048576, got '0'"},
		{"max_topic_length 65536", AT "max_topic_length: expected an integer from 1 to 65535, got '65536'"},
		{"max_topic_levels 0", AT "max_topic_levels: expected an integer from 1 to 1024, got '0'"},
		/* [MQTT-3.1.3-5]: servers must accept client ids of 1 to 23 bytes. */
		{"max_client_id_length 22", AT "max_client_id_length: expected an integer from 23 to 65535, got '22'"},
		{"max_topic_alias 65536", AT "max_topic_alias: expected an integer from 0 to 65535, got '65536'"},
		{"shard_ring_size 1000", AT "shard_ring_size: expected a power of two from 64 to 1048576, got '1000'"},
		{"shard_ring_size 32", AT "shard_ring_size: expected a power of two from 64 to 1048576, got '32'"},
		{"recv_buffers 65536", AT "recv_buffers: expected a power of two from 1 to 32768, got '65536'"},
		{"recv_buffers 0", AT "recv_buffers: expected a power of two from 1 to 32768, got '0'"},
		{"recv_buffer_size 100", AT "recv_buffer_size: expected an integer from 512 to 1048576, got '100'"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_error(cases[i].line, cases[i].message);
}

Test(config, bad_words_name_file_line_directive_and_value)
{
	static const struct {
		const char *line;
		const char *message;
	} cases[] = {
		{"retain_available yes", AT "retain_available: expected true or false, got 'yes'"},
		{"retain_available 1", AT "retain_available: expected true or false, got '1'"},
		{"queue_qos0_messages TRUE", AT "queue_qos0_messages: expected true or false, got 'TRUE'"},
		{"persistence on", AT "persistence: expected true or false, got 'on'"},
		{"allow_anonymous maybe", AT "allow_anonymous: expected true or false, got 'maybe'"},
		{"durability fast", AT "durability: expected sync, batch or none, got 'fast'"},
		{"log_level verbose", AT "log_level: expected error, warn, info or debug, got 'verbose'"},
		{"protocol quic", AT "protocol: expected mqtt or websockets, got 'quic'"},
		{"listener 65536", AT "listener: expected a port from 0 to 65535, got '65536'"},
		{"listener abc", AT "listener: expected a port from 0 to 65535, got 'abc'"},
		{"listener 0 /run/ringmq.sock",
		 AT "listener: unix socket paths are not supported, got '/run/ringmq.sock'"},
		{"port -1", AT "port: expected a port from 0 to 65535, got '-1'"},
		{"persistent_client_expiration 2x",
		 AT "persistent_client_expiration: expected seconds or a number followed by h, d, w, m or y, at most "
		    "4294967295 seconds, got '2x'"},
		{"persistent_client_expiration h",
		 AT "persistent_client_expiration: expected seconds or a number followed by h, d, w, m or y, at most "
		    "4294967295 seconds, got 'h'"},
		{"persistent_client_expiration 137y",
		 AT "persistent_client_expiration: expected seconds or a number followed by h, d, w, m or y, at most "
		    "4294967295 seconds, got '137y'"},
		{"log_type chatty",
		 AT "log_type: expected none, error, warning, notice, information, debug, all, subscribe, unsubscribe, "
		    "websockets or internal, got 'chatty'"},
		{"log_dest syslog",
		 AT "log_dest: 'syslog' is not supported: ringmq logs to stderr only (log_dest stderr)"},
		{"log_dest file /var/log/ringmq.log",
		 AT "log_dest: 'file' is not supported: ringmq logs to stderr only (log_dest stderr)"},
		{"log_dest stdout",
		 AT "log_dest: 'stdout' is not supported: ringmq logs to stderr only (log_dest stderr)"},
		{"log_dest tty", AT "log_dest: expected stderr, got 'tty'"},
		{"log_dest stderr now", AT "log_dest: unexpected extra argument 'now'"},
		{"log_timestamp false",
		 AT "log_timestamp: 'false' is not supported: ringmq always timestamps log lines (only true is "
		    "accepted)"},
		{"per_listener_settings 0", AT "per_listener_settings: expected true or false, got '0'"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_error(cases[i].line, cases[i].message);
}

Test(config, long_bad_values_are_quoted_cut_short)
{
	char line[256];

	memcpy(line, "shards ", 7);
	memset(line + 7, '9', 100);
	line[107] = '\0';
	expect_error(line, AT "shards: expected an integer from 0 to 256, got "
			      "'9999999999999999999999999999999999999999999999999999999999999999...'");
}

Test(config, bad_value_leaves_the_field_unchanged)
{
	char err[CONFIG_ERROR_BYTES];
	struct config c;

	config_init(&c);
	parse_ok(&c, "shards 8");
	cr_assert_eq(parse(&c, "shards 999", err), -EINVAL);
	cr_assert_eq(c.shards, 8);
}

Test(config, unknown_directive_is_an_error)
{
	expect_error("frobnicate 1", AT "frobnicate: unknown directive");
	expect_error("Shards 4", AT "Shards: unknown directive");
}

Test(config, unimplemented_mosquitto_directives_say_not_supported)
{
	static const char *const lines[] = {
		"psk_file /etc/mosquitto/psk", "dhparamfile /etc/dh.pem", "include_dir /etc/conf.d",
		"psk_hint ringmq", "connection bridge-01", "user mosquitto", "autosave_interval 1800",
	};
	char message[CONFIG_ERROR_BYTES];
	char name[64];
	size_t i;

	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(lines[i], " "), lines[i]);
		snprintf(message, sizeof(message),
			 AT "%s: not supported: ringmq does not implement this mosquitto directive yet "
			    "(see docs/configuration.md)",
			 name);
		expect_error(lines[i], message);
	}
	expect_error("plugin_opt_host db.local", AT "plugin_opt_host: not supported: ringmq does not implement this "
						    "mosquitto directive yet (see docs/configuration.md)");
	expect_error("auth_opt_x", AT "auth_opt_x: not supported: ringmq does not implement this mosquitto "
				      "directive yet (see docs/configuration.md)");
}

Test(config, missing_argument_is_an_error)
{
	expect_error("shards", AT "shards: missing value");
	expect_error("listener   ", AT "listener: missing value");
	expect_error("persistence_location", AT "persistence_location: missing value");
	expect_error("log_dest", AT "log_dest: missing value");
}

Test(config, extra_argument_is_an_error)
{
	expect_error("shards 4 5", AT "shards: unexpected extra argument '5'");
	expect_error("listener 1883 0.0.0.0 mqtt", AT "listener: unexpected extra argument 'mqtt'");
	expect_error("allow_anonymous true false", AT "allow_anonymous: unexpected extra argument 'false'");
}

Test(config, trailing_comment_is_an_extra_argument_with_a_hint)
{
	expect_error("shards 4 # four threads",
		     AT "shards: unexpected extra argument '#' (comments must be on their own line)");
}

/* ------------------------------------------------------------------------ */
/* Lines                                                                     */
/* ------------------------------------------------------------------------ */

Test(config, comments_blank_lines_and_whitespace_are_ignored)
{
	struct config c;

	config_init(&c);
	parse_ok(&c, "");
	parse_ok(&c, "   \t  ");
	parse_ok(&c, "# shards 999");
	parse_ok(&c, "   # indented comment");
	parse_ok(&c, "\n");
	parse_ok(&c, " \t shards \t 3 \t ");
	cr_assert_eq(c.shards, 3);
}

Test(config, crlf_line_endings_are_tolerated)
{
	struct config c;

	config_init(&c);
	parse_ok(&c, "shards 5\r\n");
	cr_assert_eq(c.shards, 5);
	parse_ok(&c, "persistence_location /srv/data\r\n");
	cr_assert_str_eq(c.persistence_location, "/srv/data");
	parse_ok(&c, "listener 1883 127.0.0.1\r");
	cr_assert_str_eq(c.listeners[0].bind_address, "127.0.0.1");
	parse_ok(&c, "\r\n");
}

Test(config, very_long_line_is_rejected)
{
	static char line[CONFIG_LINE_BYTES_MAX + 2];
	char err[CONFIG_ERROR_BYTES];
	struct config c;

	memset(line, 'x', CONFIG_LINE_BYTES_MAX + 1);
	line[CONFIG_LINE_BYTES_MAX + 1] = '\0';
	config_init(&c);
	cr_assert_eq(parse(&c, line, err), -EINVAL);
	cr_assert_str_eq(err, AT "line is longer than 8192 bytes");
}

Test(config, line_of_exactly_the_maximum_is_parsed)
{
	static char line[CONFIG_LINE_BYTES_MAX + 2];
	char err[CONFIG_ERROR_BYTES];
	struct config c;

	memset(line, ' ', CONFIG_LINE_BYTES_MAX);
	memcpy(line, "shards 2", 8);
	line[CONFIG_LINE_BYTES_MAX] = '\n';
	line[CONFIG_LINE_BYTES_MAX + 1] = '\0';
	config_init(&c);
	cr_assert_eq(parse(&c, line, err), 0, "%s", err);
	cr_assert_eq(c.shards, 2);
}

Test(config, line_zero_leaves_the_line_number_out)
{
	char err[CONFIG_ERROR_BYTES];
	struct config c;

	config_init(&c);
	cr_assert_eq(config_parse_line(&c, "shards x", "inline", 0, err), -EINVAL);
	cr_assert_str_eq(err, "inline: shards: expected an integer from 0 to 256, got 'x'");
}

Test(config, path_longer_than_the_field_is_rejected)
{
	char line[4200];
	char err[CONFIG_ERROR_BYTES];
	struct config c;

	memcpy(line, "persistence_location /", 22);
	memset(line + 22, 'd', 4096);
	line[22 + 4096] = '\0';
	config_init(&c);
	cr_assert_eq(parse(&c, line, err), -EINVAL);
	cr_assert_str_eq(err, AT "persistence_location: path is longer than 4095 bytes");
}

Test(config, too_many_listeners_is_an_error)
{
	char err[CONFIG_ERROR_BYTES];
	char line[64];
	struct config c;
	int i;

	config_init(&c);
	for (i = 0; i < CONFIG_LISTENERS_MAX; i++) {
		snprintf(line, sizeof(line), "listener %d", 2000 + i);
		parse_ok(&c, line);
	}
	cr_assert_eq(parse(&c, "listener 3000", err), -EINVAL);
	cr_assert_str_eq(err, AT "listener: too many listeners (at most 16)");
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */
/* ------------------------------------------------------------------------ */

Test(config, parse_file_applies_every_line)
{
	static const char text[] = "# ringmq test config\n"
				   "\n"
				   "shards 2\r\n"
				   "listener 1883 0.0.0.0\n"
				   "max_connections 10\n"
				   "  allow_anonymous true\n"
				   "persistence_location /tmp/x"; /* no final newline */
	char path[256];
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	write_temp(path, sizeof(path), text, sizeof(text) - 1);
	config_init(&c);
	cr_assert_eq(config_parse_file(&c, path, err), 0, "%s", err);
	cr_assert_eq(c.shards, 2);
	cr_assert_eq(c.listener_count, 1);
	cr_assert_eq(c.listeners[0].max_connections, 10);
	cr_assert_eq(c.listeners[0].line, 4);
	cr_assert_str_eq(c.listeners[0].file, path);
	cr_assert(c.allow_anonymous);
	cr_assert_str_eq(c.persistence_location, "/tmp/x");
	cr_assert_str_eq(c.config_file, path);
	unlink(path);
}

Test(config, parse_file_error_names_file_and_line)
{
	static const char text[] = "shards 2\n# comment\n\nmax_connections lots\nshards 3\n";
	char path[256];
	char expected[CONFIG_ERROR_BYTES];
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	write_temp(path, sizeof(path), text, sizeof(text) - 1);
	config_init(&c);
	cr_assert_eq(config_parse_file(&c, path, err), -EINVAL);
	snprintf(expected, sizeof(expected),
		 "%s:4: max_connections: expected an integer from -1 to 1048576, got 'lots'", path);
	cr_assert_str_eq(err, expected);
	cr_assert_eq(c.shards, 2, "parsing stops at the first error");
	unlink(path);
}

Test(config, parse_file_rejects_a_very_long_line)
{
	static char text[CONFIG_LINE_BYTES_MAX + 100];
	size_t len = sizeof(text);
	char path[256];
	char expected[CONFIG_ERROR_BYTES];
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	memcpy(text, "shards 1\n", 9);
	memset(text + 9, 'a', len - 10);
	text[len - 1] = '\n';
	write_temp(path, sizeof(path), text, len);
	config_init(&c);
	cr_assert_eq(config_parse_file(&c, path, err), -EINVAL);
	snprintf(expected, sizeof(expected), "%s:2: line is longer than 8192 bytes", path);
	cr_assert_str_eq(err, expected);
	unlink(path);
}

Test(config, parse_file_rejects_a_nul_byte)
{
	static const char text[] = "shards 1\nshards 2\0 3\n";
	char path[256];
	char expected[CONFIG_ERROR_BYTES];
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	write_temp(path, sizeof(path), text, sizeof(text) - 1);
	config_init(&c);
	cr_assert_eq(config_parse_file(&c, path, err), -EINVAL);
	snprintf(expected, sizeof(expected), "%s:2: line contains a NUL byte", path);
	cr_assert_str_eq(err, expected);
	unlink(path);
}

Test(config, unreadable_file_reports_strerror)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(config_parse_file(&c, "/nonexistent/ringmq.conf", err), -ENOENT);
	cr_assert_str_eq(err, "/nonexistent/ringmq.conf: cannot open: No such file or directory");
}

Test(config, directory_as_config_file_reports_strerror)
{
	char path[256];
	char expected[CONFIG_ERROR_BYTES];
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	snprintf(path, sizeof(path), "%s/ringmq-config-dir-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	cr_assert_not_null(mkdtemp(path));
	config_init(&c);
	cr_assert_eq(config_parse_file(&c, path, err), -EISDIR);
	snprintf(expected, sizeof(expected), "%s: cannot read: Is a directory", path);
	cr_assert_str_eq(err, expected);
	rmdir(path);
}

/* ------------------------------------------------------------------------ */
/* Environment                                                               */
/* ------------------------------------------------------------------------ */

Test(config, environment_overrides_directives)
{
	char *const envp[] = {
		"HOME=/root",
		"RINGMQ_SHARDS=4",
		"RINGMQ_MAX_CONNECTIONS=10",
		"RINGMQ_PERSISTENCE_LOCATION=/var/lib/ringmq",
		"RINGMQ_ALLOW_ANONYMOUS= true ",
		"RINGMQ_DURABILITY=batch",
		NULL,
	};
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "shards 2");
	cr_assert_eq(config_apply_env(&c, envp, err), 0, "%s", err);
	cr_assert_eq(c.shards, 4);
	cr_assert_eq(c.max_connections, 10);
	cr_assert_str_eq(c.persistence_location, "/var/lib/ringmq");
	cr_assert(c.allow_anonymous);
	cr_assert_eq(c.durability, DURABILITY_BATCH);
}

Test(config, environment_listener_comes_before_its_bind_address)
{
	/* Deliberately out of order: the table order applies, not envp's. */
	char *const envp[] = {"RINGMQ_PROTOCOL=websockets", "RINGMQ_LISTENER=1883 0.0.0.0", NULL};
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(config_apply_env(&c, envp, err), 0, "%s", err);
	cr_assert_eq(c.listener_count, 1);
	cr_assert_eq(c.listeners[0].port, 1883);
	cr_assert_str_eq(c.listeners[0].bind_address, "0.0.0.0");
	cr_assert_eq(c.listeners[0].protocol, LISTENER_WEBSOCKETS);
	cr_assert_str_eq(c.listeners[0].file, "environment:RINGMQ_LISTENER");
	cr_assert_eq(c.listeners[0].line, 0);
}

Test(config, environment_max_connections_is_always_global)
{
	char *const envp[] = {"RINGMQ_MAX_CONNECTIONS=7", NULL};
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "listener 1883");
	cr_assert_eq(config_apply_env(&c, envp, err), 0, "%s", err);
	cr_assert_eq(c.max_connections, 7);
	cr_assert_eq(c.listeners[0].max_connections, -1);
}

Test(config, environment_first_definition_wins)
{
	char *const envp[] = {"RINGMQ_SHARDS=3", "RINGMQ_SHARDS=9", NULL};
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(config_apply_env(&c, envp, err), 0, "%s", err);
	cr_assert_eq(c.shards, 3);
}

Test(config, environment_errors_name_the_variable)
{
	char *const envp[] = {"RINGMQ_SHARDS=many", NULL};
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(config_apply_env(&c, envp, err), -EINVAL);
	cr_assert_str_eq(err, "environment:RINGMQ_SHARDS: shards: expected an integer from 0 to 256, got 'many'");
}

Test(config, environment_empty_value_is_missing)
{
	char *const envp[] = {"RINGMQ_SHARDS=", NULL};
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(config_apply_env(&c, envp, err), -EINVAL);
	cr_assert_str_eq(err, "environment:RINGMQ_SHARDS: shards: missing value");
}

Test(config, environment_unknown_variable_is_an_error)
{
	char *const envp[] = {"RINGMQ_SHARDS=2", "RINGMQ_THREADS=4", NULL};
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(config_apply_env(&c, envp, err), -EINVAL);
	cr_assert_str_eq(err, "environment:RINGMQ_THREADS: threads: unknown directive");
	cr_assert_eq(c.shards, 0, "nothing is applied when a name is wrong");
}

Test(config, environment_lower_case_variable_is_an_error)
{
	char *const envp[] = {"RINGMQ_Shards=2", NULL};
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(config_apply_env(&c, envp, err), -EINVAL);
	cr_assert_str_eq(err, "environment:RINGMQ_Shards: not a directive (RINGMQ_ is followed by a directive "
			      "name in upper case)");
}

Test(config, environment_unsupported_directive_is_an_error)
{
	char *const envp[] = {"RINGMQ_PSK_FILE=/etc/psk", NULL};
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(config_apply_env(&c, envp, err), -EINVAL);
	cr_assert_str_eq(err, "environment:RINGMQ_PSK_FILE: psk_file: not supported: ringmq does not "
			      "implement this mosquitto directive yet (see docs/configuration.md)");
}

Test(config, password_file_takes_a_path)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(config_parse_line(&c, "password_file /etc/ringmq/passwd file", "f", 1, err), 0, "%s", err);
	cr_assert_str_eq(c.password_file, "/etc/ringmq/passwd file");
}

Test(config, environment_without_ringmq_variables_changes_nothing)
{
	char *const envp[] = {"PATH=/bin", "RINGMQX=1", "ringmq_shards=4", NULL};
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(config_apply_env(&c, envp, err), 0, "%s", err);
	cr_assert_eq(c.shards, 0);
}

/* ------------------------------------------------------------------------ */
/* Command line                                                              */
/* ------------------------------------------------------------------------ */

Test(config, apply_option_uses_the_directive_parsers)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(config_apply_option(&c, "shards", "6", "--shards", err), 0, "%s", err);
	cr_assert_eq(c.shards, 6);
	cr_assert_eq(config_apply_option(&c, "log_level", "debug", "-v", err), 0, "%s", err);
	cr_assert_eq(c.log_level, LOG_DEBUG);
	cr_assert_eq(config_apply_option(&c, "shards", "lots", "--shards", err), -EINVAL);
	cr_assert_str_eq(err, "--shards: shards: expected an integer from 0 to 256, got 'lots'");
	cr_assert_eq(config_apply_option(&c, "nope", "1", "--nope", err), -EINVAL);
	cr_assert_str_eq(err, "--nope: nope: unknown directive");
}

Test(config, port_and_bind_override_the_embedded_listener)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(config_override_listener(&c, "0", "::1", err), 0, "%s", err);
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	cr_assert_eq(c.listener_count, 1);
	cr_assert_eq(c.listeners[0].port, 0);
	cr_assert_str_eq(c.listeners[0].bind_address, "::1");
	cr_assert(c.allow_anonymous);
}

Test(config, port_override_changes_the_only_configured_listener)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "listener 1883 10.1.1.1");
	parse_ok(&c, "allow_anonymous false");
	cr_assert_eq(config_override_listener(&c, "2883", NULL, err), 0, "%s", err);
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	cr_assert_eq(c.listeners[0].port, 2883);
	cr_assert_str_eq(c.listeners[0].bind_address, "10.1.1.1");
}

Test(config, port_override_with_several_listeners_is_an_error)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "listener 1883");
	parse_ok(&c, "listener 8883");
	cr_assert_eq(config_override_listener(&c, "2883", NULL, err), 0, "%s", err);
	cr_assert_eq(config_finish(&c, err), -EINVAL);
	cr_assert_str_eq(err, "--port: the configuration has 2 listeners; the option changes the only listener, "
			      "so set ports and addresses in the configuration instead");
}

Test(config, bad_override_values_are_errors)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(config_override_listener(&c, "http", NULL, err), -EINVAL);
	cr_assert_str_eq(err, "--port: port: expected a port from 0 to 65535, got 'http'");
	cr_assert_eq(config_override_listener(&c, NULL, "", err), -EINVAL);
	cr_assert_str_eq(err, "--bind: bind_address: missing value");
	cr_assert_eq(config_override_listener(&c, "1", "/tmp/s", err), -EINVAL);
	cr_assert_str_eq(err, "--bind: bind_address: unix socket paths are not supported, got '/tmp/s'");
	cr_assert_eq(c.override_port, -1, "nothing is recorded on error");
}

/* ------------------------------------------------------------------------ */
/* Finish                                                                    */
/* ------------------------------------------------------------------------ */

Test(config, finish_without_listeners_adds_the_embedded_anonymous_listener)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "shards 3");
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	cr_assert_eq(c.listener_count, 1);
	cr_assert_eq(c.listeners[0].port, 1883);
	cr_assert_str_eq(c.listeners[0].bind_address, "127.0.0.1");
	cr_assert_eq(c.listeners[0].protocol, LISTENER_MQTT);
	cr_assert_str_eq(c.listeners[0].file, "built-in default");
	cr_assert(c.allow_anonymous);
	cr_assert(c.persistence);
	cr_assert_str_eq(c.persistence_location, "./data");
	cr_assert_eq(c.shards, 3);
}

Test(config, finish_keeps_an_explicit_allow_anonymous_false)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "allow_anonymous false");
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	cr_assert_eq(c.listener_count, 1);
	cr_assert_not(c.allow_anonymous);
}

Test(config, tls_settings_belong_to_their_listener)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(config_parse_line(&c, "certfile /x.pem", "f", 1, err), -EINVAL);
	cr_assert_str_eq(err, "f:1: certfile: must follow a listener line (TLS settings are per listener)");
	parse_ok(&c, "listener 8883 127.0.0.1");
	parse_ok(&c, "certfile /etc/ringmq/server.crt");
	parse_ok(&c, "keyfile /etc/ringmq/server.key");
	parse_ok(&c, "cafile /etc/ringmq/ca.crt");
	parse_ok(&c, "require_certificate true");
	parse_ok(&c, "tls_version tlsv1.3");
	cr_assert_eq(config_parse_line(&c, "tls_version tlsv1.1", "f", 2, err), -EINVAL);
	cr_assert_str_eq(c.listeners[0].certfile, "/etc/ringmq/server.crt");
	cr_assert(c.listeners[0].require_certificate);
	cr_assert_eq(c.listeners[0].tls_version, 13);
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	config_init(&c);
	parse_ok(&c, "listener 8883 127.0.0.1");
	parse_ok(&c, "certfile /etc/ringmq/server.crt");
	cr_assert_eq(config_finish(&c, err), -EINVAL);
	cr_assert(strstr(err, "certfile and keyfile go together"), "%s", err);
}

/* A TLS listener's lines, then config_finish(): 0 or the error in @err. */
static int tls_listener(const char *const *lines, size_t n, char *err)
{
	struct config c;

	config_init(&c);
	parse_ok(&c, "listener 8883 127.0.0.1");
	parse_ok(&c, "certfile /etc/ringmq/server.crt");
	parse_ok(&c, "keyfile /etc/ringmq/server.key");
	for (size_t i = 0; i < n; i++)
		parse_ok(&c, lines[i]);
	return config_finish(&c, err);
}

Test(config, tls_capath_crlfile_ciphers13_and_certificate_usernames)
{
	static const char *const good[] = {"capath /etc/ssl/certs", "crlfile /etc/ringmq/crl.pem",
					   "require_certificate true", "use_identity_as_username true",
					   "ciphers_tls1.3 TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"};
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "listener 8883 127.0.0.1");
	parse_ok(&c, "certfile /etc/ringmq/server.crt");
	parse_ok(&c, "keyfile /etc/ringmq/server.key");
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		parse_ok(&c, good[i]);
	parse_ok(&c, "use_subject_as_username false");
	cr_assert_eq(config_finish(&c, err), 0, "require_certificate with capath only is enough: %s", err);
	cr_assert_str_eq(c.listeners[0].capath, "/etc/ssl/certs");
	cr_assert_str_eq(c.listeners[0].crlfile, "/etc/ringmq/crl.pem");
	cr_assert_str_eq(c.listeners[0].ciphers_tls13, "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
	cr_assert(c.listeners[0].use_identity_as_username);
	cr_assert_not(c.listeners[0].use_subject_as_username);
	expect_error("use_identity_as_username yes", AT "use_identity_as_username: must follow a listener line (TLS "
						       "settings are per listener)");
	config_init(&c);
	parse_ok(&c, "listener 8883 127.0.0.1");
	cr_assert_eq(parse(&c, "use_subject_as_username maybe", err), -EINVAL);
	cr_assert_str_eq(err, AT "use_subject_as_username: expected true or false, got 'maybe'");
}

Test(config, tls_certificate_usernames_and_crls_need_required_certificates)
{
	static const char *const identity[] = {"cafile /ca.pem", "use_identity_as_username true"};
	static const char *const subject[] = {"cafile /ca.pem", "use_subject_as_username true"};
	static const char *const both[] = {"cafile /ca.pem", "require_certificate true",
					   "use_identity_as_username true", "use_subject_as_username true"};
	static const char *const crl[] = {"cafile /ca.pem", "crlfile /crl.pem"};
	static const char *const no_ca[] = {"require_certificate true"};
	char err[CONFIG_ERROR_BYTES] = "";

	cr_assert_eq(tls_listener(identity, 2, err), -EINVAL);
	cr_assert_str_eq(err, AT "listener: use_identity_as_username needs require_certificate true (the username "
				 "comes from the client certificate)");
	cr_assert_eq(tls_listener(subject, 2, err), -EINVAL);
	cr_assert(strstr(err, AT "listener: use_subject_as_username needs require_certificate true"), "%s", err);
	cr_assert_eq(tls_listener(both, 4, err), -EINVAL);
	cr_assert(strstr(err, "exclude each other"), "%s", err);
	cr_assert_eq(tls_listener(crl, 2, err), -EINVAL);
	cr_assert_str_eq(err, AT "listener: crlfile needs require_certificate true (it revokes client certificates)");
	cr_assert_eq(tls_listener(no_ca, 1, err), -EINVAL);
	cr_assert(strstr(err, "require_certificate needs a cafile or capath"), "%s", err);
}

Test(config, tls_only_settings_without_a_certificate_are_an_error)
{
	static const char *const lines[] = {"capath /etc/ssl/certs", "crlfile /crl.pem",
					    "ciphers_tls1.3 TLS_AES_128_GCM_SHA256"};
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		config_init(&c);
		parse_ok(&c, "listener 1883 127.0.0.1");
		parse_ok(&c, lines[i]);
		cr_assert_eq(config_finish(&c, err), -EINVAL, "%s", lines[i]);
		cr_assert_str_eq(err, AT "listener: TLS settings without certfile and keyfile");
	}
}

Test(config, proxy_protocol_per_listener_with_mosquitto_spelling)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "listener 1883 127.0.0.1");
	parse_ok(&c, "proxy_protocol v1");
	parse_ok(&c, "listener 1884 127.0.0.1");
	parse_ok(&c, "enable_proxy_protocol 2");
	parse_ok(&c, "listener 1885 127.0.0.1");
	parse_ok(&c, "proxy_protocol any");
	parse_ok(&c, "listener 1886 127.0.0.1");
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	cr_assert_eq(c.listeners[0].proxy_protocol, PROXY_V1);
	cr_assert_eq(c.listeners[1].proxy_protocol, PROXY_V2);
	cr_assert_eq(c.listeners[2].proxy_protocol, PROXY_ANY);
	cr_assert_eq(c.listeners[3].proxy_protocol, PROXY_OFF, "off by default");
	expect_error("proxy_protocol v3", AT "proxy_protocol: expected off, v1, v2 or any, got 'v3'");
	expect_error("enable_proxy_protocol v2", AT "enable_proxy_protocol: expected 0, 1 or 2, got 'v2'");
	config_init(&c);
	parse_ok(&c, "proxy_protocol v2"); /* before any listener: mosquitto's default listener */
	parse_ok(&c, "port 1883");
	parse_ok(&c, "allow_anonymous true");
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	cr_assert_eq(c.listeners[0].proxy_protocol, PROXY_V2);
}

Test(config, proxy_protocol_trusted_networks)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;
	const struct config_listener *l;

	config_init(&c);
	parse_ok(&c, "listener 1883 127.0.0.1");
	parse_ok(&c, "proxy_protocol v2");
	parse_ok(&c, "proxy_protocol_trusted 10.0.0.0/8, 192.168.1.77 fd00::/8 10.1.2.3/16");
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	l = &c.listeners[0];
	cr_assert_eq(l->proxy_trusted_count, 4);
	cr_assert_eq(l->proxy_trusted[0].family, AF_INET);
	cr_assert_eq(l->proxy_trusted[0].prefix, 8);
	cr_assert_eq(l->proxy_trusted[1].prefix, 32, "an address alone is a /32");
	cr_assert_eq(l->proxy_trusted[2].family, AF_INET6);
	cr_assert_eq(l->proxy_trusted[3].addr[2], 0, "host bits are cleared");
	cr_assert_eq(l->proxy_trusted[3].addr[3], 0);

	expect_error("proxy_protocol_trusted lb.local",
		     AT "proxy_protocol_trusted: expected an IPv4 or IPv6 address (no host names), got 'lb.local'");
	expect_error("proxy_protocol_trusted 10.0.0.0/33",
		     AT "proxy_protocol_trusted: expected a prefix length from 0 to 32, got '33'");
	expect_error("proxy_protocol_trusted fd00::/129",
		     AT "proxy_protocol_trusted: expected a prefix length from 0 to 128, got '129'");
	expect_error("proxy_protocol_trusted 10.0.0.0/x",
		     AT "proxy_protocol_trusted: expected a prefix length from 0 to 32, got 'x'");
	expect_error("proxy_protocol_trusted ,", AT "proxy_protocol_trusted: expected at least one ADDRESS[/PREFIX]");
	expect_error("proxy_protocol_trusted 1.0.0.1 1.0.0.2 1.0.0.3 1.0.0.4 1.0.0.5 1.0.0.6 1.0.0.7 1.0.0.8 "
		     "1.0.0.9 1.0.0.10 1.0.0.11 1.0.0.12 1.0.0.13 1.0.0.14 1.0.0.15 1.0.0.16 1.0.0.17",
		     AT "proxy_protocol_trusted: more than 16 networks (PROXY_TRUSTED_NETS_MAX)");

	config_init(&c);
	parse_ok(&c, "listener 1883 127.0.0.1");
	parse_ok(&c, "proxy_protocol_trusted 10.0.0.0/8");
	cr_assert_eq(config_finish(&c, err), -EINVAL);
	cr_assert_str_eq(err, AT "listener: proxy_protocol_trusted without proxy_protocol");
}

Test(config, per_listener_settings_makes_allow_anonymous_per_listener)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(config_parse_line(&c, "per_listener_settings true", "f", 1, err), 0, "%s", err);
	cr_assert_eq(config_parse_line(&c, "listener 1883 0.0.0.0", "f", 2, err), 0, "%s", err);
	cr_assert_eq(config_parse_line(&c, "allow_anonymous false", "f", 3, err), 0, "%s", err);
	cr_assert_eq(config_parse_line(&c, "listener 1884 127.0.0.1", "f", 4, err), 0, "%s", err);
	cr_assert_eq(config_parse_line(&c, "allow_anonymous true", "f", 5, err), 0, "%s", err);
	cr_assert_eq(config_finish(&c, err), 0, "an explicit per-listener choice satisfies the secure default: %s",
		     err);
	cr_assert_eq(c.listeners[0].allow_anonymous, 0);
	cr_assert_eq(c.listeners[1].allow_anonymous, 1);
	cr_assert_not(c.allow_anonymous_set, "the global setting is untouched");
	config_init(&c);
	cr_assert_eq(config_parse_line(&c, "listener 1883 127.0.0.1", "f", 1, err), 0, "%s", err);
	cr_assert_eq(config_parse_line(&c, "allow_anonymous true", "f", 2, err), 0, "%s", err);
	cr_assert_eq(c.listeners[0].allow_anonymous, -1, "without per_listener_settings it is global");
	cr_assert(c.allow_anonymous);
}

Test(config, open_listener_without_authentication_refuses_to_start)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(config_parse_line(&c, "listener 1883", "/etc/r.conf", 3, err), 0, "%s", err);
	cr_assert_eq(config_finish(&c, err), -EINVAL);
	cr_assert_str_eq(err, "/etc/r.conf:3: listener: *:1883 is reachable from other hosts but no password_file is "
			      "set and allow_anonymous is not given: add a password_file, or 'allow_anonymous true' "
			      "to let anyone in");
	config_init(&c);
	parse_ok(&c, "listener 1883 10.0.0.1");
	cr_assert_eq(config_finish(&c, err), -EINVAL, "a routable address is not loopback");
	config_init(&c);
	cr_assert_eq(config_override_listener(&c, NULL, "0.0.0.0", err), 0, "%s", err);
	cr_assert_eq(config_finish(&c, err), -EINVAL, "--bind 0.0.0.0 does not inherit the embedded anonymous default");
}

Test(config, loopback_listener_or_explicit_choice_starts)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "listener 1883 ::1");
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	config_init(&c);
	parse_ok(&c, "listener 1883");
	parse_ok(&c, "password_file /etc/ringmq/passwd");
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
}

Test(config, finish_with_a_listener_is_not_anonymous)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "listener 1883");
	parse_ok(&c, "password_file /etc/ringmq/passwd");
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	cr_assert_eq(c.listener_count, 1);
	cr_assert_str_eq(c.listeners[0].bind_address, "");
	cr_assert_not(c.allow_anonymous);
}

Test(config, finish_fills_shards_from_online_cpus)
{
	char err[CONFIG_ERROR_BYTES] = "";
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned expected = cpus < 1 ? 1 : cpus > SHARDS_MAX ? SHARDS_MAX : (unsigned)cpus;
	struct config c;

	config_init(&c);
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	cr_assert_eq(c.shards, expected);
}

Test(config, duplicate_listener_error_names_both_lines)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(config_parse_line(&c, "listener 1883 0.0.0.0", "a.conf", 3, err), 0, "%s", err);
	cr_assert_eq(config_parse_line(&c, "listener 8883", "a.conf", 5, err), 0, "%s", err);
	cr_assert_eq(config_parse_line(&c, "listener 1883 0.0.0.0", "a.conf", 9, err), 0, "%s", err);
	cr_assert_eq(config_finish(&c, err), -EINVAL);
	cr_assert_str_eq(err, "a.conf:9: listener: port 1883 on 0.0.0.0 is already used by the listener at a.conf:3");
}

Test(config, duplicate_of_the_default_listener_names_the_port_line)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(config_parse_line(&c, "listener 1884", "b.conf", 1, err), 0, "%s", err);
	cr_assert_eq(config_parse_line(&c, "port 1884", "b.conf", 2, err), 0, "%s", err);
	cr_assert_eq(config_finish(&c, err), -EINVAL);
	cr_assert_str_eq(err, "b.conf:2: listener: port 1884 on all addresses is already used by the listener at "
			      "b.conf:1");
}

Test(config, ephemeral_and_distinct_listeners_do_not_collide)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "allow_anonymous false");
	parse_ok(&c, "listener 0");
	parse_ok(&c, "listener 0");
	parse_ok(&c, "listener 1883 127.0.0.1");
	parse_ok(&c, "listener 1883 ::1");
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	cr_assert_eq(c.listener_count, 4);
}

Test(config, default_listener_beyond_the_maximum_is_an_error)
{
	char err[CONFIG_ERROR_BYTES] = "";
	char line[64];
	struct config c;
	int i;

	config_init(&c);
	for (i = 0; i < CONFIG_LISTENERS_MAX; i++) {
		snprintf(line, sizeof(line), "listener %d", 2000 + i);
		parse_ok(&c, line);
	}
	parse_ok(&c, "port 1883");
	cr_assert_eq(config_finish(&c, err), -EINVAL);
	cr_assert_str_eq(err, AT "port: too many listeners (at most 16, counting the default listener)");
}

Test(config, message_size_limit_raises_a_default_max_packet_size)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "message_size_limit 10485760");
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	cr_assert_eq(c.max_packet_size, 10485760u + TOPIC_BYTES_DEFAULT + CONFIG_PUBLISH_HEADER_BYTES);
	cr_assert_geq(c.max_output_bytes, c.max_packet_size);
}

Test(config, message_size_limit_raise_stops_at_the_protocol_maximum)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "message_size_limit 268435455");
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	cr_assert_eq(c.max_packet_size, PACKET_BYTES_MAX);
}

Test(config, small_message_size_limit_keeps_max_packet_size)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "message_size_limit 1000");
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	cr_assert_eq(c.max_packet_size, PACKET_BYTES_DEFAULT);
}

Test(config, message_size_limit_above_an_explicit_max_packet_size_is_an_error)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "max_packet_size 1000");
	parse_ok(&c, "message_size_limit 5000");
	cr_assert_eq(config_finish(&c, err), -EINVAL);
	cr_assert_str_eq(err, "configuration: max_packet_size: 1000 is smaller than message_size_limit (5000); "
			      "raise max_packet_size or lower message_size_limit");
}

Test(config, connect_packet_size_max_follows_a_smaller_max_packet_size)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "max_packet_size 4096");
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	cr_assert_eq(c.connect_packet_size_max, 4096);
}

Test(config, explicit_connect_packet_size_max_above_max_packet_size_is_an_error)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "max_packet_size 4096");
	parse_ok(&c, "connect_packet_size_max 8192");
	cr_assert_eq(config_finish(&c, err), -EINVAL);
	cr_assert_str_eq(err, "configuration: connect_packet_size_max: 8192 is larger than max_packet_size (4096)");
}

Test(config, explicit_max_output_bytes_below_max_packet_size_is_an_error)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "max_output_bytes 65536");
	cr_assert_eq(config_finish(&c, err), -EINVAL);
	cr_assert_str_eq(err, "configuration: max_output_bytes: 65536 is smaller than max_packet_size (1048576), "
			      "so the largest packet could never be sent");
}

Test(config, finish_errors_name_the_config_file)
{
	static const char text[] = "max_packet_size 100\nmessage_size_limit 200\n";
	char path[256];
	char expected[CONFIG_ERROR_BYTES];
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	write_temp(path, sizeof(path), text, sizeof(text) - 1);
	config_init(&c);
	cr_assert_eq(config_parse_file(&c, path, err), 0, "%s", err);
	cr_assert_eq(config_finish(&c, err), -EINVAL);
	snprintf(expected, sizeof(expected),
		 "%s: max_packet_size: 100 is smaller than message_size_limit (200); raise max_packet_size or "
		 "lower message_size_limit",
		 path);
	cr_assert_str_eq(err, expected);
	unlink(path);
}

Test(config, finish_rechecks_powers_of_two_set_directly)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	c.shard_ring_size = 1000;
	cr_assert_eq(config_finish(&c, err), -EINVAL);
	cr_assert_str_eq(err, "configuration: shard_ring_size: 1000 is not a power of two");
}

Test(config, done_accepts_null_and_a_finished_config)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_done(NULL);
	config_init(&c);
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	config_done(&c);
}

Test(config, precedence_is_file_then_environment_then_command_line)
{
	char *const envp[] = {"RINGMQ_SHARDS=4", "RINGMQ_SYS_INTERVAL=30", NULL};
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "shards 2");
	parse_ok(&c, "sys_interval 20");
	parse_ok(&c, "max_qos 1");
	cr_assert_eq(config_apply_env(&c, envp, err), 0, "%s", err);
	cr_assert_eq(config_apply_option(&c, "shards", "8", "--shards", err), 0, "%s", err);
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	cr_assert_eq(c.shards, 8);
	cr_assert_eq(c.sys_interval_s, 30);
	cr_assert_eq(c.max_qos, 1);
}

/* The example in docs/configuration.md; keep the two in step. */
Test(config, documented_example_parses)
{
	static const char text[] =
		"# /etc/ringmq.conf — a public MQTT listener, a local WebSocket one.\n"
		"\n"
		"# Threads: one per CPU.\n"
		"shards 0\n"
		"\n"
		"# Plain MQTT on every interface, at most 50000 clients on it.\n"
		"listener 1883\n"
		"max_connections 50000\n"
		"\n"
		"# WebSockets for the local reverse proxy.\n"
		"listener 9001 127.0.0.1\n"
		"protocol websockets\n"
		"\n"
		"# Anonymous clients are refused (the default once a listener is configured).\n"
		"allow_anonymous false\n"
		"\n"
		"# Limits.\n"
		"message_size_limit 262144\n"
		"max_inflight_messages 32\n"
		"max_queued_messages 10000\n"
		"max_queued_bytes 67108864\n"
		"persistent_client_expiration 7d\n"
		"\n"
		"# Storage.\n"
		"persistence true\n"
		"persistence_location /var/lib/ringmq\n"
		"durability batch\n"
		"\n"
		"# Logging (mosquitto's log_type lines also work).\n"
		"log_level info\n"
		"log_dest stderr\n";
	char path[256];
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	write_temp(path, sizeof(path), text, sizeof(text) - 1);
	config_init(&c);
	cr_assert_eq(config_parse_file(&c, path, err), 0, "%s", err);
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	cr_assert_eq(c.listener_count, 2);
	cr_assert_eq(c.listeners[0].max_connections, 50000);
	cr_assert_eq(c.listeners[1].protocol, LISTENER_WEBSOCKETS);
	cr_assert_eq(c.persistent_client_expiration_s, 7u * 86400u);
	cr_assert_eq(c.durability, DURABILITY_BATCH);
	cr_assert_eq(c.max_packet_size, PACKET_BYTES_DEFAULT, "262144 + topic + header fits in 1 MiB");
	unlink(path);
}

/* Passing no error buffer is a programmer error, not bad input. */
Test(config, parse_line_without_an_error_buffer_aborts, .signal = SIGABRT)
{
	struct config c;

	config_init(&c);
	(void)config_parse_line(&c, "shards 1", FILE_NAME, LINE, NULL);
}

/* ---- Monitoring: http_listener and log_format ---- */

Test(config, http_listener_is_off_by_default_and_takes_a_port_and_address)
{
	struct config c;

	config_init(&c);
	cr_assert_eq(c.http_port, -1, "the HTTP listener is off unless configured");
	cr_assert_str_eq(c.http_bind_address, "");
	parse_ok(&c, "http_listener 9100");
	cr_assert_eq(c.http_port, 9100);
	cr_assert_str_eq(c.http_bind_address, "", "no address: every address");
	parse_ok(&c, "http_listener 0 127.0.0.1");
	cr_assert_eq(c.http_port, 0, "0 picks a free port");
	cr_assert_str_eq(c.http_bind_address, "127.0.0.1");
}

Test(config, http_listener_bad_values_are_errors)
{
	expect_error("http_listener 65536",
		     AT "http_listener: expected a port from 0 to 65535, got '65536'");
	expect_error("http_listener", AT "http_listener: missing value");
	expect_error("http_listener 9100 127.0.0.1 x", AT "http_listener: unexpected extra argument 'x'");
	expect_error("http_listener 9100 /run/ringmq.sock",
		     AT "http_listener: unix socket paths are not supported, got '/run/ringmq.sock'");
}

Test(config, log_format_takes_text_or_json)
{
	struct config c;

	config_init(&c);
	cr_assert_eq(c.log_format, LOG_FORMAT_TEXT);
	parse_ok(&c, "log_format json");
	cr_assert_eq(c.log_format, LOG_FORMAT_JSON);
	parse_ok(&c, "log_format text");
	cr_assert_eq(c.log_format, LOG_FORMAT_TEXT);
	expect_error("log_format xml", AT "log_format: expected text or json, got 'xml'");
}

Test(config, environment_sets_the_http_listener)
{
	char *env[] = {"RINGMQ_HTTP_LISTENER=9100 0.0.0.0", "RINGMQ_LOG_FORMAT=json", NULL};
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(config_apply_env(&c, env, err), 0, "%s", err);
	cr_assert_eq(c.http_port, 9100);
	cr_assert_str_eq(c.http_bind_address, "0.0.0.0");
	cr_assert_eq(c.log_format, LOG_FORMAT_JSON);
}

/* ---- WebSocket listeners ---- */

Test(config, websockets_settings_and_their_defaults)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	parse_ok(&c, "allow_anonymous true");
	parse_ok(&c, "listener 8080");
	parse_ok(&c, "protocol websockets");
	parse_ok(&c, "listener 8081");
	parse_ok(&c, "protocol websockets");
	parse_ok(&c, "websockets_path /ws/mqtt");
	parse_ok(&c, "websockets_origin https://app.example");
	parse_ok(&c, "websockets_origin http://localhost:3000");
	parse_ok(&c, "websockets_trusted_proxy 127.0.0.1");
	parse_ok(&c, "websockets_trusted_proxy ::1");
	parse_ok(&c, "websockets_max_frame_size 4096");
	cr_assert_eq(config_finish(&c, err), 0, "%s", err);
	cr_assert_str_eq(c.listeners[0].ws_path, "/mqtt", "the default path");
	cr_assert_eq(c.listeners[0].ws_frame_max, c.max_packet_size, "the default frame size");
	cr_assert_eq(c.listeners[0].ws_origin_count, 0);
	cr_assert_str_eq(c.listeners[1].ws_path, "/ws/mqtt");
	cr_assert_eq(c.listeners[1].ws_origin_count, 2);
	cr_assert_str_eq(c.listeners[1].ws_origins[1], "http://localhost:3000");
	cr_assert_eq(c.listeners[1].ws_proxy_count, 2);
	cr_assert_str_eq(c.listeners[1].ws_proxies[1], "::1");
	cr_assert_eq(c.listeners[1].ws_frame_max, 4096);
}

Test(config, websockets_bad_values_are_errors)
{
	struct config c;
	char err[CONFIG_ERROR_BYTES] = "";

	expect_error("websockets_path mqtt",
		     AT "websockets_path: expected a path starting with / and without a query, got 'mqtt'");
	expect_error("websockets_path /mqtt?x=1",
		     AT "websockets_path: expected a path starting with / and without a query, got '/mqtt?x=1'");
	expect_error("websockets_origin example.com",
		     AT "websockets_origin: expected an origin such as https://example.com (scheme, host, optional "
			"port, no path), got 'example.com'");
	expect_error("websockets_origin https://example.com/",
		     AT "websockets_origin: expected an origin such as https://example.com (scheme, host, optional "
			"port, no path), got 'https://example.com/'");
	expect_error("websockets_origin a b", AT "websockets_origin: unexpected extra argument 'b'");
	expect_error("websockets_trusted_proxy proxy.local",
		     AT "websockets_trusted_proxy: expected an IPv4 or IPv6 address (no host names), "
			"got 'proxy.local'");
	expect_error("websockets_max_frame_size 100",
		     AT "websockets_max_frame_size: expected 0 (max_packet_size) or bytes from 128 to 1073741824, "
			"got '100'");
	config_init(&c);
	parse_ok(&c, "listener 8080");
	for (unsigned i = 0; i < WS_ORIGINS_MAX; i++)
		parse_ok(&c, "websockets_origin null");
	cr_assert_eq(parse(&c, "websockets_origin null", err), -EINVAL);
	cr_assert_str_eq(err, AT "websockets_origin: more than 8 origins on one listener (WS_ORIGINS_MAX)");
}

Test(config, websockets_settings_on_an_mqtt_listener_name_the_listener)
{
	char err[CONFIG_ERROR_BYTES] = "";
	struct config c;

	config_init(&c);
	cr_assert_eq(config_parse_line(&c, "allow_anonymous true", FILE_NAME, 1, err), 0, "%s", err);
	cr_assert_eq(config_parse_line(&c, "listener 1883", FILE_NAME, 2, err), 0, "%s", err);
	cr_assert_eq(config_parse_line(&c, "websockets_origin https://a.example", FILE_NAME, 3, err), 0, "%s", err);
	cr_assert_eq(config_finish(&c, err), -EINVAL);
	cr_assert_str_eq(err, "test.conf:2: listener: websockets_* settings on a listener that is not "
			      "'protocol websockets'");
}
