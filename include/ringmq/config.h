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

#include "ringmq/limits.h"

#define CONFIG_LISTENERS_MAX 16
#define CONFIG_ERROR_BYTES 512

/* Longest config line (and RINGMQ_* value) accepted, bytes, newline not
 * counted.  Longer lines are an error, never truncated: the longest
 * legitimate line is persistence_location with a PATH_MAX path. */
#define CONFIG_LINE_BYTES_MAX 8192
/* Smallest max_packet_size / connect_packet_size_max (mosquitto's floor). */
#define CONFIG_PACKET_BYTES_MIN 20u
/* max_queued_messages 0 ("unlimited" in mosquitto) means this many: large
 * enough never to matter for a sane client, yet a bound (STYLE 7). */
#define CONFIG_QUEUED_MESSAGES_MAX (1u << 20)
/* Bounds of ringmq's own sizing directives that limits.h gives only a
 * default for.  Client ids: a server must accept 1..23 bytes
 * [MQTT-3.1.3-5], so the limit may not go below 23.  Provided receive
 * buffers: io_uring buffer rings hold at most 32768 entries.  Ring slots and
 * subscriptions: generous bounds so a typo cannot ask for gigabytes. */
#define CONFIG_CLIENT_ID_BYTES_MIN 23u
#define CONFIG_SUBSCRIPTIONS_PER_CLIENT_MAX (1u << 20)
#define CONFIG_SESSIONS_MAX (1u << 31)
#define CONFIG_SHARD_RING_SLOTS_MIN 64u
#define CONFIG_SHARD_RING_SLOTS_MAX (1u << 20)
#define CONFIG_RECV_BUFFERS_MAX 32768u
#define CONFIG_RECV_BUFFER_BYTES_MIN 512u
#define CONFIG_RECV_BUFFER_BYTES_MAX (1u << 20)
#define CONFIG_CONNECT_TIMEOUT_S_MAX 3600u
/* Upper bound of the 64-bit byte directives (max_queued_bytes,
 * max_output_bytes): 1 TiB, far above any real limit, low enough that sums
 * of byte counts cannot overflow. */
#define CONFIG_BYTES_MAX (1ull << 40)
/* Room for the fixed header, topic length, packet id and properties of a
 * PUBLISH, added to message_size_limit + max_topic_length when
 * config_finish() raises max_packet_size to fit message_size_limit. */
#define CONFIG_PUBLISH_HEADER_BYTES 1024u

/* One network of proxy_protocol_trusted: ADDRESS[/PREFIX]. */
struct config_net {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network byte order, bits past the prefix zero */
	uint8_t prefix; /* bits: 0..32 (IPv4), 0..128 (IPv6) */
};

enum listener_protocol {
	LISTENER_MQTT = 0,
	LISTENER_WEBSOCKETS = 1,
};

struct config_listener {
	uint16_t port; /* 0 = pick an ephemeral port (tests) */
	char bind_address[256]; /* "" = all addresses (0.0.0.0 and ::) */
	enum listener_protocol protocol;
	int max_connections; /* -1 = unlimited */
	int allow_anonymous; /* -1 = the global allow_anonymous (per_listener_settings) */
	/* TLS: a listener with a certfile is a TLS listener. */
	char certfile[1024];
	char keyfile[1024];
	char cafile[1024];
	char ciphers[512]; /* TLS 1.2 suites; "" = AEAD suites with forward secrecy only */
	char ciphers_tls13[512]; /* ciphers_tls1.3: TLS 1.3 suites; "" = all three AEAD suites */
	char capath[1024]; /* directory of CA certificates, with or instead of cafile */
	char crlfile[1024]; /* PEM CRL: client certificates it lists are refused */
	bool require_certificate;
	bool use_identity_as_username; /* the client certificate's CN is the username */
	bool use_subject_as_username; /* its whole subject (RFC 2253) is the username */
	uint8_t tls_version; /* minimum: 0 (= 12), 12 (1.2 and 1.3) or 13 (1.3 only) */
	/* PROXY protocol: a header of these versions (enum proxy_versions, a
	 * bitmask; 0 = none) must come first, from a trusted network. */
	uint8_t proxy_protocol;
	uint8_t proxy_trusted_count; /* 0 = any peer may send the header */
	struct config_net proxy_trusted[PROXY_TRUSTED_NETS_MAX];
	/* WebSocket (protocol websockets; with certfile/keyfile: wss). */
	char ws_path[WS_PATH_BYTES_MAX]; /* websockets_path; "" until config_finish() sets "/mqtt" */
	uint8_t ws_origin_count; /* 0 = any Origin */
	uint8_t ws_proxy_count; /* 0 = X-Forwarded-For is never believed */
	uint32_t ws_frame_max; /* websockets_max_frame_size; 0 until config_finish() = max_packet_size */
	char ws_origins[WS_ORIGINS_MAX][WS_ORIGIN_BYTES_MAX]; /* websockets_origin */
	char ws_proxies[WS_TRUSTED_PROXIES_MAX][WS_ADDRESS_BYTES_MAX]; /* websockets_trusted_proxy, numeric */
	char file[256]; /* where it was declared, for error messages */
	int line;
};

enum shared_strategy {
	SHARED_ROUND_ROBIN = 0,
	SHARED_RANDOM = 1,
	SHARED_HASH_PUBLISHER = 2,
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
	char password_file[4096]; /* "" = none */
	char acl_file[4096]; /* "" = none: every client may read and write everything but $ topics */
	bool allow_anonymous;
	bool per_listener_settings; /* allow_anonymous after a listener applies to it */
	uint32_t auth_backoff_max_s; /* longest failed-login back-off, 0 = off */
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
	uint64_t max_queued_bytes_total; /* whole broker, 0 = no limit */
	uint32_t max_subscriptions_per_client;
	uint32_t max_sessions; /* sessions broker-wide, connected or not; 0 = no limit */
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
	bool wildcard_subscription_available;
	bool subscription_identifier_available;
	bool shared_subscription_available;
	int shared_subscription_strategy; /* enum shared_strategy */
	uint32_t max_topic_alias_out; /* aliases the server assigns towards a client */
	char response_information[256]; /* MQTT 5 Response Information, "" = none */
	char server_reference[256]; /* sent with 0x9C/0x9D when draining, "" = none */
	bool drain_server_moved; /* draining says 0x9D (moved) instead of 0x9C */

	/* Observability. */
	uint32_t sys_interval_s;
	int log_level; /* enum log_level */
	int log_format; /* enum log_format (log.h): 0 text, 1 json */
	int http_port; /* http_listener PORT: -1 = off, 0 = an ephemeral port (tests) */
	char http_bind_address[256]; /* http_listener ... ADDRESS; "" = all addresses */

	/* Persistence (the store). */
	bool persistence;
	char persistence_location[4096];
	enum durability durability;
	uint64_t persistence_map_size; /* initial LMDB map size, bytes */
	uint64_t persistence_max_size; /* the map grows up to this, bytes */
	uint32_t commit_interval_ms; /* durability batch: time between commits */

	/* Where the config came from, for messages. */
	char config_file[4096];

	/* Parser state, written by config_*() only (added after the original
	 * contract; other modules read none of it). */

	/* mosquitto's "default listener": port, and bind_address / protocol
	 * given before any listener line.  config_finish() appends it to
	 * listeners[] when default_listener_used. */
	struct config_listener default_listener;
	bool default_listener_used;
	/* --port / --bind (config_override_listener()); -1 / "" = not given. */
	int override_port;
	char override_bind_address[256];
	/* Given explicitly, so config_finish() derives the others around them
	 * instead of overriding them. */
	bool max_packet_size_set;
	bool connect_packet_size_max_set;
	bool max_output_bytes_set;
	/* A log_type line was seen: the first one resets the level to error,
	 * later ones raise it (mosquitto's log_type lines add up). */
	bool log_type_set;
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
 * config_finish() - fill derived values and check cross-directive rules,
 * once, after every source was applied.  In order: appends mosquitto's
 * default listener (port, or bind_address/protocol before any listener);
 * with no listener at all adds the embedded default 127.0.0.1:1883 and sets
 * allow_anonymous = true unless it was given; applies
 * config_override_listener(); raises a default max_packet_size to fit
 * message_size_limit and moves default connect_packet_size_max /
 * max_output_bytes to fit max_packet_size (explicit values that conflict
 * are errors); rejects two listeners on the same port and address (the
 * message names both lines); sets shards to the online CPUs (at most
 * SHARDS_MAX) when 0.  Returns 0 or -EINVAL with @err filled.
 */
int config_finish(struct config *c, char *err);

/**
 * config_apply_option() - apply one directive given as name and value from
 * a source other than a file or the environment, e.g. the command line:
 * --shards 4 is config_apply_option(c, "shards", "4", "--shards", err) and
 * -v is config_apply_option(c, "log_level", "debug", "-v", err).  @value
 * is parsed like the rest of a config line.  Errors read
 * "ORIGIN: directive: what is wrong".  Returns 0 or -EINVAL.
 */
int config_apply_option(struct config *c, const char *directive, const char *value, const char *origin,
			char *err);

/**
 * config_override_listener() - the command line's --port P / --bind ADDR.
 * Either may be NULL (not given).  The values are checked here; they are
 * applied by config_finish() to the only listener (the embedded default
 * when nothing configured one).  With several listeners config_finish()
 * fails, because which one to change would be a guess.  Does not change
 * allow_anonymous.  Returns 0 or -EINVAL with "--port: ..." / "--bind: ..."
 * in @err.
 */
int config_override_listener(struct config *c, const char *port, const char *bind_address, char *err);

/** config_done() - release anything config_* allocated; NULL-safe. */
void config_done(struct config *c);

#endif
