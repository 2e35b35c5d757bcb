/*
 * config.h - the broker's configuration: defaults, the config file, the
 * command line and RINGMQ_* environment overrides.
 *
 * Precedence (lowest first): built-in defaults (the embedded default runs
 * one listener on 127.0.0.1:1883 with anonymous access), the config file
 * (-c FILE), RINGMQ_* environment variables, command-line options.
 * Directive names follow mosquitto's where the meaning is the same; see
 * docs/configuration.md for every directive.
 *
 * Owner:    main; filled before the shards start and read-only afterwards.
 * Lifetime: config_init() .. config_done().
 * Shared:   read by every thread after start-up, never written then.
 */
#ifndef RINGMQ_CONFIG_H
#define RINGMQ_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_LISTENERS_MAX 16
#define CONFIG_ERROR_BYTES 512

enum listener_protocol {
	LISTENER_MQTT = 0,
	LISTENER_WEBSOCKETS = 1,
};

struct config_listener {
	uint16_t port; /* 0 = pick an ephemeral port (tests) */
	char bind_address[256]; /* "" = all addresses (0.0.0.0 and ::) */
	enum listener_protocol protocol;
	int max_connections; /* -1 = unlimited */
	char file[256]; /* where it was declared, for error messages */
	int line;
};

enum durability {
	DURABILITY_SYNC = 0,
	DURABILITY_BATCH = 1,
	DURABILITY_NONE = 2,
};

struct config {
	/* Listeners.  No listener directive at all = the embedded default. */
	struct config_listener listeners[CONFIG_LISTENERS_MAX];
	unsigned listener_count;

	/* Threads. */
	unsigned shards; /* 0 = one per online CPU */

	/* Access. */
	bool allow_anonymous;
	bool allow_anonymous_set; /* given explicitly */

	/* Limits (see limits.h for what each bounds). */
	int max_connections; /* -1 = unlimited */
	uint32_t message_size_limit; /* 0 = protocol maximum; bounds PUBLISH payload */
	uint32_t max_packet_size; /* whole packet, bytes */
	uint32_t connect_packet_size_max;
	uint32_t connect_timeout_s;
	uint32_t max_inflight_messages;
	uint32_t max_receive_inflight;
	uint32_t max_queued_messages;
	uint64_t max_queued_bytes; /* 0 = no limit */
	uint32_t max_subscriptions_per_client;
	uint32_t max_topic_length;
	uint32_t max_topic_levels;
	uint32_t max_client_id_length;
	uint32_t max_keepalive; /* seconds */
	uint32_t max_topic_alias;
	uint64_t max_output_bytes;
	uint32_t persistent_client_expiration_s; /* 0 = never */
	uint32_t shard_ring_size;
	uint32_t recv_buffers;
	uint32_t recv_buffer_size;

	/* Features. */
	bool retain_available;
	uint8_t max_qos;
	bool queue_qos0_messages;

	/* Observability. */
	uint32_t sys_interval_s;
	int log_level; /* enum log_level */

	/* Persistence (the store). */
	bool persistence;
	char persistence_location[4096];
	enum durability durability;

	/* Where the config came from, for messages. */
	char config_file[4096];
};

/** config_init() - fill @c with the built-in defaults (no listener yet). */
void config_init(struct config *c);

/**
 * config_parse_file() - apply the directives of @path to @c.
 * On error returns -EINVAL (or -errno for an unreadable file) and writes
 * "FILE:LINE: directive: what is wrong" into @err (CONFIG_ERROR_BYTES).
 */
int config_parse_file(struct config *c, const char *path, char *err);

/**
 * config_parse_line() - apply one directive line (as in a file) to @c.
 * @file/@line are used in error messages.  Blank lines and '#' comments
 * are accepted and ignored.  Returns 0 or -EINVAL with @err filled.
 */
int config_parse_line(struct config *c, const char *text, const char *file, int line, char *err);

/**
 * config_apply_env() - apply RINGMQ_<DIRECTIVE> environment variables
 * (upper-case directive name, e.g. RINGMQ_MAX_CONNECTIONS=100,
 * RINGMQ_SHARDS=4, RINGMQ_LISTENER="1883 0.0.0.0").  @envp is the
 * environment (NULL-terminated).  Errors name the variable:
 * "environment:RINGMQ_X: directive: what is wrong".
 */
int config_apply_env(struct config *c, char *const *envp, char *err);

/**
 * config_finish() - fill derived values (the default listener when none
 * was configured, shards = online CPUs when 0) and check cross-directive
 * rules.  Returns 0 or -EINVAL with @err filled.
 */
int config_finish(struct config *c, char *err);

/** config_done() - release anything config_* allocated; NULL-safe. */
void config_done(struct config *c);

#endif
