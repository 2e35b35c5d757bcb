/*
 * config.c - the broker's configuration: defaults, config file lines,
 * RINGMQ_* environment variables, command-line overrides and the final
 * cross-directive checks.
 *
 * Every directive is one row of directives[] below: its name, the setter
 * that parses it, and for the generic setters the struct config field
 * (offset and size), its bounds and flags.  A config line, an environment
 * variable and a command-line option all end in apply(), which splits the
 * arguments, checks their count and calls the row's setter, so the three
 * sources accept exactly the same values and fail with the same words.
 * mosquitto directives ringmq does not implement are listed by name in
 * unsupported[] and fail with "not supported" rather than being ignored: a
 * config that silently loses its password_file would be worse than one that
 * does not start.
 *
 * Order matters in two places.  Per-listener directives (bind_address,
 * protocol, max_connections) apply to the most recent listener line, or
 * before any listener to mosquitto's "default listener" (max_connections:
 * the global limit).  Environment variables are applied after the file in
 * table order, listener first, so RINGMQ_BIND_ADDRESS refers to the listener
 * RINGMQ_LISTENER added.  config_finish() then derives what depends on
 * several directives (the embedded listener, shards, packet sizes).
 *
 * Nothing here allocates: errors are written into the caller's buffer and
 * the struct holds fixed-size strings, so config_done() has nothing to do.
 */
#include "ringmq/config.h"
#include "ringmq/backoff.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringmq/limits.h"
#include "ringmq/log.h"

/* Longest part of a bad value quoted back in an error message. */
#define VALUE_SHOWN_MAX 64
/* Longest directive name, plus room for the RINGMQ_ prefix. */
#define ENV_NAME_BYTES 96
#define ENV_PREFIX "RINGMQ_"
#define EMBEDDED_ADDRESS "127.0.0.1"
#define EMBEDDED_PORT 1883u
#define BUILT_IN "built-in default"
#define WEBSOCKETS_PATH_DEFAULT "/mqtt"

_Static_assert(sizeof(enum durability) == sizeof(int), "enum setters store an int");
_Static_assert(sizeof(unsigned) == sizeof(uint32_t), "shards is stored as 32 bits");
_Static_assert(CONFIG_LINE_BYTES_MAX > sizeof(((struct config *)0)->persistence_location),
	       "a line must hold the longest path");

/* ------------------------------------------------------------------------ */
/* Directive table                                                           */
/* ------------------------------------------------------------------------ */

struct parse;
struct directive;
typedef int (*directive_set_fn)(struct config *c, const struct directive *d, struct parse *p);

enum directive_flags {
	D_REST = 1u << 0, /* one argument: the rest of the line, spaces included */
	D_TWO = 1u << 1, /* up to two arguments */
	D_POW2 = 1u << 2, /* integer must be a power of two */
	D_ZERO_MAX = 1u << 3, /* 0 means max ("unlimited" in mosquitto) */
	D_MARK = 1u << 4, /* set the bool at .mark when given */
};

struct directive {
	const char *name;
	directive_set_fn set;
	size_t offset; /* the struct config field of the generic setters */
	size_t size;
	long long min;
	long long max;
	unsigned flags;
	size_t mark;
	const char *const *words; /* set_enum: the accepted words, NULL-ended */
	const char *why; /* set_fixed: why only one value is accepted */
};

/* One parse of one directive: where it came from and its arguments. */
struct parse {
	const char *where; /* "FILE:LINE", "environment:RINGMQ_X" or an option */
	const char *file; /* recorded in listeners, with line */
	int line;
	const char *name; /* the directive as written */
	bool from_file; /* max_connections follows the last listener only in files */
	char *err;
	const char *argv[2];
	unsigned argc;
};

static int set_uint(struct config *c, const struct directive *d, struct parse *p);
static int set_bool(struct config *c, const struct directive *d, struct parse *p);
static int set_enum(struct config *c, const struct directive *d, struct parse *p);
static int set_path(struct config *c, const struct directive *d, struct parse *p);
static int set_fixed(struct config *c, const struct directive *d, struct parse *p);
static int set_listener(struct config *c, const struct directive *d, struct parse *p);
static int set_port(struct config *c, const struct directive *d, struct parse *p);
static int set_bind_address(struct config *c, const struct directive *d, struct parse *p);
static int set_protocol(struct config *c, const struct directive *d, struct parse *p);
static int set_max_connections(struct config *c, const struct directive *d, struct parse *p);
static int set_allow_anonymous(struct config *c, const struct directive *d, struct parse *p);
static int set_listener_tls(struct config *c, const struct directive *d, struct parse *p);
static int set_proxy_protocol(struct config *c, const struct directive *d, struct parse *p);
static int set_proxy_trusted(struct config *c, const struct directive *d, struct parse *p);
static int set_expiration(struct config *c, const struct directive *d, struct parse *p);
static int set_log_type(struct config *c, const struct directive *d, struct parse *p);
static int set_log_dest(struct config *c, const struct directive *d, struct parse *p);
static int set_http_listener(struct config *c, const struct directive *d, struct parse *p);
static int set_websockets(struct config *c, const struct directive *d, struct parse *p);
static int set_unsupported(struct config *c, const struct directive *d, struct parse *p);

static const char *const protocol_words[] = {"mqtt", "websockets", NULL};
static const char *const durability_words[] = {"sync", "batch", "none", NULL};
static const char *const log_level_words[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_format_words[] = {"text", "json", NULL};
static const char *const shared_words[] = {"round_robin", "random", "hash_publisher", NULL};

#define FIELD(f) .offset = offsetof(struct config, f), .size = sizeof(((struct config *)0)->f)
#define UINT(n, f, lo, hi, fl) {.name = n, .set = set_uint, FIELD(f), .min = (lo), .max = (hi), .flags = (fl)}
#define UINT_MARK(n, f, lo, hi, m)                                                                 \
	{.name = n, .set = set_uint, FIELD(f), .min = (lo), .max = (hi), .flags = D_MARK,                 \
	 .mark = offsetof(struct config, m)}
#define BOOL(n, f) {.name = n, .set = set_bool, FIELD(f)}
#define ENUM(n, f, w) {.name = n, .set = set_enum, FIELD(f), .words = (w)}
#define CUSTOM(n, fn, fl) {.name = n, .set = (fn), .flags = (fl)}
#define FIXED(n, value, reason) {.name = n, .set = set_fixed, .min = (value), .why = (reason)}

/* Listener directives come first: the environment is applied in this order.
 * Two-byte protocol fields (ports, Receive Maximum, Topic Alias Maximum,
 * Keep Alive) are bounded by UINT16_MAX. */
static const struct directive directives[] = {
	CUSTOM("listener", set_listener, D_TWO),
	CUSTOM("port", set_port, 0),
	CUSTOM("bind_address", set_bind_address, 0),
	CUSTOM("protocol", set_protocol, 0),
	CUSTOM("max_connections", set_max_connections, 0),
	CUSTOM("certfile", set_listener_tls, D_REST),
	CUSTOM("keyfile", set_listener_tls, D_REST),
	CUSTOM("cafile", set_listener_tls, D_REST),
	CUSTOM("ciphers", set_listener_tls, 0),
	CUSTOM("require_certificate", set_listener_tls, 0),
	CUSTOM("tls_version", set_listener_tls, 0),
	CUSTOM("capath", set_listener_tls, D_REST),
	CUSTOM("crlfile", set_listener_tls, D_REST),
	CUSTOM("ciphers_tls1.3", set_listener_tls, 0),
	CUSTOM("use_identity_as_username", set_listener_tls, 0),
	CUSTOM("use_subject_as_username", set_listener_tls, 0),
	CUSTOM("proxy_protocol", set_proxy_protocol, 0),
	CUSTOM("enable_proxy_protocol", set_proxy_protocol, 0),
	CUSTOM("proxy_protocol_trusted", set_proxy_trusted, D_REST),
	CUSTOM("websockets_path", set_websockets, 0),
	CUSTOM("websockets_origin", set_websockets, 0),
	CUSTOM("websockets_max_frame_size", set_websockets, 0),
	CUSTOM("websockets_trusted_proxy", set_websockets, 0),
	{.name = "password_file", .set = set_path, FIELD(password_file), .flags = D_REST},
	{.name = "acl_file", .set = set_path, FIELD(acl_file), .flags = D_REST},
	UINT("auth_backoff_max", auth_backoff_max_s, 0, 86400, 0),
	{.name = "allow_anonymous", .set = set_allow_anonymous, FIELD(allow_anonymous), .flags = D_MARK,
	 .mark = offsetof(struct config, allow_anonymous_set)},
	UINT("shards", shards, 0, SHARDS_MAX, 0),
	UINT("max_inflight_messages", max_inflight_messages, 0, INFLIGHT_MAX, D_ZERO_MAX),
	UINT("max_receive_inflight", max_receive_inflight, 1, UINT16_MAX, 0),
	UINT("max_queued_messages", max_queued_messages, 0, CONFIG_QUEUED_MESSAGES_MAX, D_ZERO_MAX),
	UINT("max_queued_bytes", max_queued_bytes, 0, CONFIG_BYTES_MAX, 0),
	UINT("max_queued_bytes_total", max_queued_bytes_total, 0, CONFIG_BYTES_MAX, 0),
	UINT("message_size_limit", message_size_limit, 0, PACKET_BYTES_MAX, 0),
	UINT_MARK("max_packet_size", max_packet_size, CONFIG_PACKET_BYTES_MIN, PACKET_BYTES_MAX,
		  max_packet_size_set),
	UINT_MARK("connect_packet_size_max", connect_packet_size_max, CONFIG_PACKET_BYTES_MIN, PACKET_BYTES_MAX,
		  connect_packet_size_max_set),
	UINT_MARK("max_output_bytes", max_output_bytes, CONFIG_PACKET_BYTES_MIN, CONFIG_BYTES_MAX,
		  max_output_bytes_set),
	CUSTOM("persistent_client_expiration", set_expiration, 0),
	UINT("max_keepalive", max_keepalive, 0, UINT16_MAX, 0),
	UINT("sys_interval", sys_interval_s, 0, UINT16_MAX, 0),
	BOOL("retain_available", retain_available),
	UINT("max_qos", max_qos, 0, 2, 0),
	UINT("maximum_qos", max_qos, 0, 2, 0),
	BOOL("queue_qos0_messages", queue_qos0_messages),
	BOOL("wildcard_subscription_available", wildcard_subscription_available),
	BOOL("subscription_identifier_available", subscription_identifier_available),
	BOOL("shared_subscription_available", shared_subscription_available),
	ENUM("shared_subscription_strategy", shared_subscription_strategy, shared_words),
	UINT("max_topic_alias_out", max_topic_alias_out, 0, UINT16_MAX, 0),
	{.name = "response_information", .set = set_path, FIELD(response_information), .flags = D_REST},
	{.name = "server_reference", .set = set_path, FIELD(server_reference), .flags = D_REST},
	BOOL("drain_server_moved", drain_server_moved),
	BOOL("persistence", persistence),
	BOOL("retained_persistence", persistence),
	{.name = "persistence_location", .set = set_path, FIELD(persistence_location), .flags = D_REST},
	ENUM("durability", durability, durability_words),
	UINT("persistence_map_size", persistence_map_size, STORE_MAP_BYTES_MIN, STORE_BYTES_MAX, 0),
	UINT("persistence_max_size", persistence_max_size, STORE_MAP_BYTES_MIN, STORE_BYTES_MAX, 0),
	UINT("commit_interval", commit_interval_ms, 1, STORE_COMMIT_INTERVAL_MS_MAX, 0),
	UINT("connect_timeout", connect_timeout_s, 1, CONFIG_CONNECT_TIMEOUT_S_MAX, 0),
	UINT("max_subscriptions_per_client", max_subscriptions_per_client, 1, CONFIG_SUBSCRIPTIONS_PER_CLIENT_MAX,
	     0),
	UINT("max_sessions", max_sessions, 0, CONFIG_SESSIONS_MAX, 0),
	UINT("max_topic_length", max_topic_length, 1, TOPIC_BYTES_MAX, 0),
	UINT("max_topic_levels", max_topic_levels, 1, TOPIC_LEVELS_MAX, 0),
	UINT("max_client_id_length", max_client_id_length, CONFIG_CLIENT_ID_BYTES_MIN, CLIENT_ID_BYTES_MAX, 0),
	UINT("max_topic_alias", max_topic_alias, 0, UINT16_MAX, 0),
	UINT("shard_ring_size", shard_ring_size, CONFIG_SHARD_RING_SLOTS_MIN, CONFIG_SHARD_RING_SLOTS_MAX, D_POW2),
	UINT("recv_buffers", recv_buffers, 1, CONFIG_RECV_BUFFERS_MAX, D_POW2),
	UINT("recv_buffer_size", recv_buffer_size, CONFIG_RECV_BUFFER_BYTES_MIN, CONFIG_RECV_BUFFER_BYTES_MAX, 0),
	ENUM("log_level", log_level, log_level_words),
	ENUM("log_format", log_format, log_format_words),
	CUSTOM("http_listener", set_http_listener, D_TWO),
	CUSTOM("log_type", set_log_type, 0),
	CUSTOM("log_dest", set_log_dest, D_TWO),
	FIXED("log_timestamp", true, "ringmq always timestamps log lines"),
	BOOL("per_listener_settings", per_listener_settings),
};

/* mosquitto directives (2.x, with bridges, TLS and plugins) that ringmq does
 * not implement yet.  Kept apart from directives[] because they share one
 * behaviour: refuse, by name. */
static const char *const unsupported[] = {
	"accept_protocol_versions", "address", "addresses", "allow_duplicate_messages",
	"allow_zero_length_clientid", "auth_plugin", "auth_plugin_deny_special_chars", "auto_id_prefix",
	"autosave_interval", "autosave_on_changes", "bind_interface", "bridge_alpn", "bridge_attempt_unsubscribe",
	"bridge_bind_address", "bridge_cafile", "bridge_capath", "bridge_certfile", "bridge_ciphers",
	"bridge_ciphers_tls1.3", "bridge_identity", "bridge_insecure", "bridge_keyfile", "bridge_max_packet_size",
	"bridge_max_topic_alias", "bridge_outgoing_retain", "bridge_protocol_version", "bridge_psk",
	"bridge_receive_maximum", "bridge_reload_type", "bridge_require_ocsp", "bridge_session_expiry_interval",
	"bridge_tcp_keepalive", "bridge_tcp_user_timeout", "bridge_tls_version",
	"check_retain_source", "cleansession", "clientid", "clientid_prefixes",
	"connection", "connection_messages", "dhparamfile", "disable_client_cert_date_checks",
	"enable_control_api", "global_max_clients", "global_max_connections", "global_plugin", "http_dir",
	"idle_timeout", "include_dir", "keepalive_interval", "local_cleansession", "local_clientid",
	"local_password", "local_username", "log_facility", "log_timestamp_format", "max_inflight_bytes",
	"max_topic_alias_broker", "memory_limit", "mount_point", "notification_topic", "notifications",
	"notifications_local_only", "password", "persistence_file", "pid_file", "plugin",
	"psk_file", "psk_hint", "quic_log_level", "remote_clientid", "remote_password", "remote_username",
	"restart_timeout", "retry_interval", "round_robin", "set_tcp_nodelay",
	"socket_domain", "start_type", "store_clean_interval", "threshold", "tls_engine", "tls_engine_kpass_sha1",
	"tls_keyform", "topic", "try_private", "upgrade_outgoing_qos", "use_username_as_clientid", "user", "username",
	"websockets_headers_size",
	"websockets_log_level",
};

/* Plugin options are a family: auth_opt_NAME / plugin_opt_NAME. */
static const char *const unsupported_prefixes[] = {"auth_opt_", "plugin_opt_"};

static const struct directive unsupported_directive = {.name = "(mosquitto)", .set = set_unsupported};

/* RINGMQ_* variables that are not directives but belong to other uses and
 * must not be rejected; NULL-ended. */
static const char *const env_reserved[] = {
	"RINGMQ_STORE_FAULT_FILE", /* the store's testing hook (docs/persistence.md) */
	NULL,
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const struct directive *lookup(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(directives); i++)
		if (strcmp(directives[i].name, name) == 0)
			return &directives[i];
	for (i = 0; i < ARRAY_SIZE(unsupported); i++)
		if (strcmp(unsupported[i], name) == 0)
			return &unsupported_directive;
	for (i = 0; i < ARRAY_SIZE(unsupported_prefixes); i++)
		if (strncmp(unsupported_prefixes[i], name, strlen(unsupported_prefixes[i])) == 0)
			return &unsupported_directive;
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Errors and small parsers                                                  */
/* ------------------------------------------------------------------------ */

/* Write a message into @err (CONFIG_ERROR_BYTES), cut if longer.  Returns
 * -EINVAL.  One vsnprintf() for every message: cutting is intended, and
 * GCC's -Wformat-truncation only warns about the fixed-format cases. */
__attribute__((format(printf, 2, 3))) static int errorf(char *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(err, CONFIG_ERROR_BYTES, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* "WHERE: DIRECTIVE: message".  Always returns -EINVAL. */
__attribute__((format(printf, 2, 3))) static int fail(const struct parse *p, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(p->err, CONFIG_ERROR_BYTES, "%s: %s: ", p->where, p->name);
	if (n < 0 || n >= CONFIG_ERROR_BYTES)
		return -EINVAL;
	va_start(ap, fmt);
	/* A message longer than the buffer is cut; it stays NUL-terminated. */
	(void)vsnprintf(p->err + n, CONFIG_ERROR_BYTES - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Quote at most VALUE_SHOWN_MAX bytes of a value: "'%.*s%s'". */
#define QUOTED "'%.*s%s'"
#define QUOTE(s) VALUE_SHOWN_MAX, (s), strlen(s) > VALUE_SHOWN_MAX ? "..." : ""

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static char *trim(char *s)
{
	size_t len;

	while (is_space(*s))
		s++;
	len = strlen(s);
	while (len > 0 && is_space(s[len - 1]))
		s[--len] = '\0';
	return s;
}

/* Decimal digits only (no sign, space or base prefix), no overflow. */
static bool parse_u64(const char *s, unsigned long long *ret_value)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*ret_value = v;
	return true;
}

static bool parse_bool(const char *s, bool *ret_value)
{
	if (strcmp(s, "true") == 0)
		*ret_value = true;
	else if (strcmp(s, "false") == 0)
		*ret_value = false;
	else
		return false;
	return true;
}

static bool is_pow2(unsigned long long v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

static void store_uint(struct config *c, const struct directive *d, unsigned long long v)
{
	unsigned char *field = (unsigned char *)c + d->offset;
	uint8_t v8 = (uint8_t)v;
	uint32_t v32 = (uint32_t)v;
	uint64_t v64 = v;

	RMQ_ASSERT(d->size == 1 || d->size == 4 || d->size == 8);
	if (d->size == 1)
		memcpy(field, &v8, 1);
	else if (d->size == 4)
		memcpy(field, &v32, 4);
	else
		memcpy(field, &v64, 8);
}

static void mark(struct config *c, const struct directive *d)
{
	if (d->flags & D_MARK)
		*(bool *)((unsigned char *)c + d->mark) = true;
}

/* "a, b or c" from a NULL-ended word list. */
static void join_words(const char *const *words, char *buf, size_t size)
{
	size_t n = 0;
	size_t i;

	buf[0] = '\0';
	for (i = 0; words[i] && n < size; i++) {
		const char *sep = i == 0 ? "" : words[i + 1] ? ", " : " or ";
		int r = snprintf(buf + n, size - n, "%s%s", sep, words[i]);

		if (r < 0)
			return;
		n += (size_t)r;
	}
}

/* ------------------------------------------------------------------------ */
/* Generic setters                                                           */
/* ------------------------------------------------------------------------ */

static int set_uint(struct config *c, const struct directive *d, struct parse *p)
{
	const char *s = p->argv[0];
	unsigned long long v;

	if (!parse_u64(s, &v) || v < (unsigned long long)d->min || v > (unsigned long long)d->max ||
	    ((d->flags & D_POW2) && !is_pow2(v)))
		return fail(p, "expected %s from %lld to %lld, got " QUOTED,
			    (d->flags & D_POW2) ? "a power of two" : "an integer", d->min, d->max, QUOTE(s));
	if (v == 0 && (d->flags & D_ZERO_MAX))
		v = (unsigned long long)d->max;
	store_uint(c, d, v);
	mark(c, d);
	return 0;
}

static int set_bool(struct config *c, const struct directive *d, struct parse *p)
{
	bool v;

	if (!parse_bool(p->argv[0], &v))
		return fail(p, "expected true or false, got " QUOTED, QUOTE(p->argv[0]));
	*(bool *)((unsigned char *)c + d->offset) = v;
	mark(c, d);
	return 0;
}

static int set_enum(struct config *c, const struct directive *d, struct parse *p)
{
	char expected[128];
	int i;

	for (i = 0; d->words[i]; i++) {
		if (strcmp(d->words[i], p->argv[0]) == 0) {
			memcpy((unsigned char *)c + d->offset, &i, sizeof(i));
			return 0;
		}
	}
	join_words(d->words, expected, sizeof(expected));
	return fail(p, "expected %s, got " QUOTED, expected, QUOTE(p->argv[0]));
}

static int set_path(struct config *c, const struct directive *d, struct parse *p)
{
	size_t len = strlen(p->argv[0]);

	if (len >= d->size)
		return fail(p, "path is longer than %zu bytes", d->size - 1);
	memcpy((unsigned char *)c + d->offset, p->argv[0], len + 1);
	return 0;
}

/* A mosquitto boolean of which ringmq implements one value (.min). */
static int set_fixed(struct config *c, const struct directive *d, struct parse *p)
{
	bool v;

	(void)c; /* nothing to store: the accepted value is ringmq's behaviour */
	if (!parse_bool(p->argv[0], &v))
		return fail(p, "expected true or false, got " QUOTED, QUOTE(p->argv[0]));
	if (v != (d->min != 0))
		return fail(p, "'%s' is not supported: %s (only %s is accepted)", p->argv[0], d->why,
			    d->min ? "true" : "false");
	return 0;
}

static int set_unsupported(struct config *c, const struct directive *d, struct parse *p)
{
	(void)c;
	(void)d;
	return fail(p, "not supported: ringmq does not implement this mosquitto directive yet "
		       "(see docs/configuration.md)");
}

/* ------------------------------------------------------------------------ */
/* Listeners                                                                 */
/* ------------------------------------------------------------------------ */

static void listener_init(struct config_listener *l, uint16_t port, const char *address)
{
	memset(l, 0, sizeof(*l));
	l->port = port;
	(void)snprintf(l->bind_address, sizeof(l->bind_address), "%s", address);
	l->protocol = LISTENER_MQTT;
	l->max_connections = -1;
	l->allow_anonymous = -1;
}

static void listener_locate(struct config_listener *l, const struct parse *p)
{
	/* A path longer than the field is cut; it only labels messages. */
	(void)snprintf(l->file, sizeof(l->file), "%s", p->file);
	l->line = p->line;
}

/* The listener per-listener directives apply to: the last listener line, or
 * before any, mosquitto's default listener (which then will exist). */
static struct config_listener *current_listener(struct config *c, const struct parse *p)
{
	if (c->listener_count > 0)
		return &c->listeners[c->listener_count - 1];
	c->default_listener_used = true;
	listener_locate(&c->default_listener, p);
	return &c->default_listener;
}

static int parse_port(struct parse *p, const char *s, uint16_t *ret_port)
{
	unsigned long long v;

	if (!parse_u64(s, &v) || v > UINT16_MAX)
		return fail(p, "expected a port from 0 to %u, got " QUOTED, UINT16_MAX, QUOTE(s));
	*ret_port = (uint16_t)v;
	return 0;
}

static int check_address(struct parse *p, const char *s)
{
	if (strlen(s) >= sizeof(((struct config_listener *)0)->bind_address))
		return fail(p, "address is longer than %zu bytes",
			    sizeof(((struct config_listener *)0)->bind_address) - 1);
	if (strchr(s, '/'))
		return fail(p, "unix socket paths are not supported, got " QUOTED, QUOTE(s));
	return 0;
}

static int set_listener(struct config *c, const struct directive *d, struct parse *p)
{
	struct config_listener *l;
	uint16_t port;
	int r;

	(void)d;
	r = parse_port(p, p->argv[0], &port);
	if (r < 0)
		return r;
	if (p->argc > 1) {
		r = check_address(p, p->argv[1]);
		if (r < 0)
			return r;
	}
	if (c->listener_count >= CONFIG_LISTENERS_MAX)
		return fail(p, "too many listeners (at most %d)", CONFIG_LISTENERS_MAX);
	l = &c->listeners[c->listener_count++];
	listener_init(l, port, p->argc > 1 ? p->argv[1] : "");
	listener_locate(l, p);
	return 0;
}

static int set_port(struct config *c, const struct directive *d, struct parse *p)
{
	uint16_t port;
	int r;

	(void)d;
	r = parse_port(p, p->argv[0], &port);
	if (r < 0)
		return r;
	c->default_listener.port = port;
	c->default_listener_used = true;
	listener_locate(&c->default_listener, p);
	return 0;
}

static int set_bind_address(struct config *c, const struct directive *d, struct parse *p)
{
	struct config_listener *l;
	int r;

	(void)d;
	r = check_address(p, p->argv[0]);
	if (r < 0)
		return r;
	l = current_listener(c, p);
	(void)snprintf(l->bind_address, sizeof(l->bind_address), "%s", p->argv[0]);
	return 0;
}

static int set_protocol(struct config *c, const struct directive *d, struct parse *p)
{
	char expected[64];
	int i;

	(void)d;
	for (i = 0; protocol_words[i]; i++) {
		if (strcmp(protocol_words[i], p->argv[0]) == 0) {
			current_listener(c, p)->protocol = (enum listener_protocol)i;
			return 0;
		}
	}
	join_words(protocol_words, expected, sizeof(expected));
	return fail(p, "expected %s, got " QUOTED, expected, QUOTE(p->argv[0]));
}

/* -1 (unlimited) or 0..CONNS_PER_SHARD_MAX.  In a file, after a listener
 * line, the limit is that listener's; otherwise it is the global one. */
/* TLS settings belong to the listener they follow (as in mosquitto). */
static int set_listener_tls(struct config *c, const struct directive *d, struct parse *p)
{
	struct config_listener *l;
	const char *v = p->argv[0];
	char *dst;
	size_t cap;
	bool b;

	if (c->listener_count == 0)
		return fail(p, "must follow a listener line (TLS settings are per listener)");
	l = &c->listeners[c->listener_count - 1];
	if (strcmp(d->name, "require_certificate") == 0 || strcmp(d->name, "use_identity_as_username") == 0 ||
	    strcmp(d->name, "use_subject_as_username") == 0) {
		if (!parse_bool(v, &b))
			return fail(p, "expected true or false, got " QUOTED, QUOTE(v));
		if (d->name[0] == 'r')
			l->require_certificate = b;
		else if (d->name[4] == 'i')
			l->use_identity_as_username = b;
		else
			l->use_subject_as_username = b;
		return 0;
	}
	if (strcmp(d->name, "tls_version") == 0) {
		if (strcmp(v, "tlsv1.2") != 0 && strcmp(v, "tlsv1.3") != 0)
			return fail(p, "expected tlsv1.2 or tlsv1.3 (the lowest accepted), got " QUOTED, QUOTE(v));
		l->tls_version = v[6] == '3' ? 13 : 12;
		return 0;
	}
	if (strcmp(d->name, "certfile") == 0) {
		dst = l->certfile;
		cap = sizeof(l->certfile);
	} else if (strcmp(d->name, "keyfile") == 0) {
		dst = l->keyfile;
		cap = sizeof(l->keyfile);
	} else if (strcmp(d->name, "cafile") == 0) {
		dst = l->cafile;
		cap = sizeof(l->cafile);
	} else if (strcmp(d->name, "capath") == 0) {
		dst = l->capath;
		cap = sizeof(l->capath);
	} else if (strcmp(d->name, "crlfile") == 0) {
		dst = l->crlfile;
		cap = sizeof(l->crlfile);
	} else if (strcmp(d->name, "ciphers_tls1.3") == 0) {
		dst = l->ciphers_tls13;
		cap = sizeof(l->ciphers_tls13);
	} else {
		dst = l->ciphers;
		cap = sizeof(l->ciphers);
	}
	if (strlen(v) >= cap)
		return fail(p, "longer than %zu bytes", cap - 1);
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

/* proxy_protocol off|v1|v2|any, or mosquitto's enable_proxy_protocol 1|2:
 * the listener it follows (or mosquitto's default listener) requires a
 * PROXY header of that version before anything else. */
static int set_proxy_protocol(struct config *c, const struct directive *d, struct parse *p)
{
	static const char *const words[] = {"off", "v1", "v2", "any", NULL};
	static const char *const mosquitto_words[] = {"0", "1", "2", NULL};
	const char *const *w = d->name[0] == 'e' ? mosquitto_words : words;
	char expected[64];

	for (unsigned i = 0; w[i]; i++) {
		if (strcmp(w[i], p->argv[0]) == 0) {
			current_listener(c, p)->proxy_protocol = (uint8_t)i; /* enum proxy_versions */
			return 0;
		}
	}
	join_words(w, expected, sizeof(expected));
	return fail(p, "expected %s, got " QUOTED, expected, QUOTE(p->argv[0]));
}

/* One ADDRESS[/PREFIX] of proxy_protocol_trusted into @n. */
static int parse_net(struct parse *p, const char *s, struct config_net *n)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t len = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long long prefix;
	unsigned max;

	memset(n, 0, sizeof(*n));
	if (len == 0 || len >= sizeof(addr))
		return fail(p, "expected ADDRESS[/PREFIX], got " QUOTED, QUOTE(s));
	memcpy(addr, s, len);
	addr[len] = '\0';
	if (inet_pton(AF_INET, addr, n->addr) == 1)
		n->family = AF_INET;
	else if (inet_pton(AF_INET6, addr, n->addr) == 1)
		n->family = AF_INET6;
	else
		return fail(p, "expected an IPv4 or IPv6 address (no host names), got " QUOTED, QUOTE(addr));
	max = n->family == AF_INET ? 32 : 128;
	prefix = max;
	if (slash && (!parse_u64(slash + 1, &prefix) || prefix > max))
		return fail(p, "expected a prefix length from 0 to %u, got " QUOTED, max, QUOTE(slash + 1));
	n->prefix = (uint8_t)prefix;
	for (unsigned bit = n->prefix; bit < max; bit++) /* host bits: ignored, zeroed */
		n->addr[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
	return 0;
}

/* proxy_protocol_trusted NET [NET...] (spaces or commas): only peers in
 * these networks may send a PROXY header; a repeated line replaces the list. */
static int set_proxy_trusted(struct config *c, const struct directive *d, struct parse *p)
{
	struct config_listener *l = current_listener(c, p);
	struct config_net nets[PROXY_TRUSTED_NETS_MAX];
	char word[CONFIG_LINE_BYTES_MAX];
	const char *s = p->argv[0];
	unsigned count = 0;
	int r;

	(void)d;
	while (*s) {
		size_t n = strcspn(s, " \t,");
		if (n > 0) {
			if (count == PROXY_TRUSTED_NETS_MAX)
				return fail(p, "more than %u networks (PROXY_TRUSTED_NETS_MAX)",
					    PROXY_TRUSTED_NETS_MAX);
			memcpy(word, s, n);
			word[n] = '\0';
			r = parse_net(p, word, &nets[count++]);
			if (r < 0)
				return r;
		}
		s += n;
		s += strspn(s, " \t,");
	}
	if (count == 0)
		return fail(p, "expected at least one ADDRESS[/PREFIX]");
	memcpy(l->proxy_trusted, nets, count * sizeof(nets[0]));
	l->proxy_trusted_count = (uint8_t)count;
	return 0;
}

/* With per_listener_settings true, allow_anonymous in a file after a
 * listener line is that listener's (as in mosquitto); otherwise global. */
static int set_allow_anonymous(struct config *c, const struct directive *d, struct parse *p)
{
	bool v;

	if (!(c->per_listener_settings && p->from_file && c->listener_count > 0))
		return set_bool(c, d, p);
	if (!parse_bool(p->argv[0], &v))
		return fail(p, "expected true or false, got " QUOTED, QUOTE(p->argv[0]));
	c->listeners[c->listener_count - 1].allow_anonymous = v;
	return 0;
}

static int set_max_connections(struct config *c, const struct directive *d, struct parse *p)
{
	const char *s = p->argv[0];
	unsigned long long v = 0;
	int limit;

	(void)d;
	if (strcmp(s, "-1") == 0)
		limit = -1;
	else if (parse_u64(s, &v) && v <= CONNS_PER_SHARD_MAX)
		limit = (int)v;
	else
		return fail(p, "expected an integer from -1 to %u, got " QUOTED, CONNS_PER_SHARD_MAX, QUOTE(s));
	if (p->from_file && c->listener_count > 0)
		c->listeners[c->listener_count - 1].max_connections = limit;
	else
		c->max_connections = limit;
	return 0;
}

/* websockets_* settings of the listener they follow (or of mosquitto's
 * default listener before any listener line).  websockets_origin and
 * websockets_trusted_proxy add one value per line.  config_finish()
 * refuses them on a listener that is not protocol websockets. */
static int set_websockets(struct config *c, const struct directive *d, struct parse *p)
{
	struct config_listener *l = current_listener(c, p);
	const char *v = p->argv[0], *host;
	unsigned long long n;
	unsigned char a[16];

	if (strcmp(d->name, "websockets_path") == 0) {
		if (v[0] != '/' || strpbrk(v, "?#"))
			return fail(p, "expected a path starting with / and without a query, got " QUOTED, QUOTE(v));
		if (strlen(v) >= sizeof(l->ws_path))
			return fail(p, "longer than %zu bytes", sizeof(l->ws_path) - 1);
		memcpy(l->ws_path, v, strlen(v) + 1);
	} else if (strcmp(d->name, "websockets_origin") == 0) {
		host = strstr(v, "://");
		if (strcmp(v, "null") != 0 && (!host || host == v || host[3] == '\0' || strchr(host + 3, '/')))
			return fail(p, "expected an origin such as https://example.com (scheme, host, optional port, "
				       "no path), got " QUOTED, QUOTE(v));
		if (strlen(v) >= WS_ORIGIN_BYTES_MAX)
			return fail(p, "longer than %u bytes", WS_ORIGIN_BYTES_MAX - 1);
		if (l->ws_origin_count == WS_ORIGINS_MAX)
			return fail(p, "more than %u origins on one listener (WS_ORIGINS_MAX)", WS_ORIGINS_MAX);
		memcpy(l->ws_origins[l->ws_origin_count++], v, strlen(v) + 1);
	} else if (strcmp(d->name, "websockets_trusted_proxy") == 0) {
		if (strlen(v) >= WS_ADDRESS_BYTES_MAX ||
		    (inet_pton(AF_INET, v, a) != 1 && inet_pton(AF_INET6, v, a) != 1))
			return fail(p, "expected an IPv4 or IPv6 address (no host names), got " QUOTED, QUOTE(v));
		if (l->ws_proxy_count == WS_TRUSTED_PROXIES_MAX)
			return fail(p, "more than %u proxies on one listener (WS_TRUSTED_PROXIES_MAX)",
				    WS_TRUSTED_PROXIES_MAX);
		memcpy(l->ws_proxies[l->ws_proxy_count++], v, strlen(v) + 1);
	} else {
		if (!parse_u64(v, &n) || (n != 0 && (n < WS_FRAME_BYTES_MIN || n > WS_FRAME_BYTES_MAX)))
			return fail(p, "expected 0 (max_packet_size) or bytes from %u to %u, got " QUOTED,
				    WS_FRAME_BYTES_MIN, WS_FRAME_BYTES_MAX, QUOTE(v));
		l->ws_frame_max = (uint32_t)n;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* mosquitto-shaped values                                                   */
/* ------------------------------------------------------------------------ */

/* Seconds, or mosquitto's NUMBER followed by h, d, w, m (30 days) or y
 * (365 days).  0 means never expire. */
static int set_expiration(struct config *c, const struct directive *d, struct parse *p)
{
	static const struct {
		char unit;
		unsigned long long seconds;
	} units[] = {{'h', 3600}, {'d', 86400}, {'w', 7 * 86400}, {'m', 30 * 86400}, {'y', 365 * 86400}};
	char number[32];
	const char *s = p->argv[0];
	size_t len = strlen(s);
	unsigned long long v, mult = 1;
	size_t i;

	(void)d;
	for (i = 0; len > 1 && i < ARRAY_SIZE(units); i++)
		if (s[len - 1] == units[i].unit)
			mult = units[i].seconds;
	if (mult != 1)
		len--;
	if (len >= sizeof(number))
		len = sizeof(number) - 1; /* too many digits either way: fails below */
	memcpy(number, s, len);
	number[len] = '\0';
	if (!parse_u64(number, &v) || v > UINT32_MAX / mult)
		return fail(p,
			    "expected seconds or a number followed by h, d, w, m or y, at most %u seconds, "
			    "got " QUOTED,
			    UINT32_MAX, QUOTE(s));
	c->persistent_client_expiration_s = (uint32_t)(v * mult);
	return 0;
}

/* mosquitto's log_type lines add up; ringmq has one level.  The first
 * log_type line drops the level to error, each one then raises it to the
 * level its type needs.  subscribe/unsubscribe/websockets/internal events
 * are logged at debug by ringmq, so naming them changes nothing. */
static int set_log_type(struct config *c, const struct directive *d, struct parse *p)
{
	static const struct {
		const char *type;
		int level; /* -1: no effect */
	} types[] = {
		{"none", LOG_ERROR}, {"error", LOG_ERROR}, {"warning", LOG_WARN}, {"notice", LOG_INFO},
		{"information", LOG_INFO}, {"debug", LOG_DEBUG}, {"all", LOG_DEBUG}, {"subscribe", -1},
		{"unsubscribe", -1}, {"websockets", -1}, {"internal", -1},
	};
	size_t i;

	(void)d;
	for (i = 0; i < ARRAY_SIZE(types); i++)
		if (strcmp(types[i].type, p->argv[0]) == 0)
			break;
	if (i == ARRAY_SIZE(types))
		return fail(p,
			    "expected none, error, warning, notice, information, debug, all, subscribe, "
			    "unsubscribe, websockets or internal, got " QUOTED,
			    QUOTE(p->argv[0]));
	if (!c->log_type_set || strcmp(types[i].type, "none") == 0)
		c->log_level = LOG_ERROR;
	c->log_type_set = true;
	if (types[i].level > c->log_level)
		c->log_level = types[i].level;
	return 0;
}

static int set_log_dest(struct config *c, const struct directive *d, struct parse *p)
{
	static const char *const others[] = {"stdout", "syslog", "topic", "file", "dlt", "none"};
	size_t i;

	(void)c;
	(void)d;
	for (i = 0; i < ARRAY_SIZE(others); i++)
		if (strcmp(others[i], p->argv[0]) == 0)
			return fail(p, "'%s' is not supported: ringmq logs to stderr only (log_dest stderr)",
				    p->argv[0]);
	if (strcmp(p->argv[0], "stderr") != 0)
		return fail(p, "expected stderr, got " QUOTED, QUOTE(p->argv[0]));
	if (p->argc > 1)
		return fail(p, "unexpected extra argument " QUOTED, QUOTE(p->argv[1]));
	return 0;
}

/* http_listener PORT [ADDRESS]: the HTTP listener for /metrics and the
 * probes (off unless given).  Its own port; the address defaults to all. */
static int set_http_listener(struct config *c, const struct directive *d, struct parse *p)
{
	uint16_t port;
	int r;

	(void)d;
	r = parse_port(p, p->argv[0], &port);
	if (r < 0)
		return r;
	if (p->argc > 1) {
		r = check_address(p, p->argv[1]);
		if (r < 0)
			return r;
	}
	c->http_port = port;
	(void)snprintf(c->http_bind_address, sizeof(c->http_bind_address), "%s", p->argc > 1 ? p->argv[1] : "");
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Applying one directive                                                    */
/* ------------------------------------------------------------------------ */

/* Split @rest (modified) into p->argv and check the count for @d. */
static int split_args(const struct directive *d, char *rest, struct parse *p)
{
	unsigned max = (d->flags & D_TWO) ? 2 : 1;
	char *s = rest;

	p->argc = 0;
	if (d->flags & D_REST) {
		if (*rest)
			p->argv[p->argc++] = rest;
	} else {
		while (*s) {
			char *word = s;

			while (*s && !is_space(*s))
				s++;
			if (*s)
				*s++ = '\0';
			while (is_space(*s))
				s++;
			if (p->argc == max)
				return fail(p, "unexpected extra argument " QUOTED "%s", QUOTE(word),
					    word[0] == '#' ? " (comments must be on their own line)" : "");
			p->argv[p->argc++] = word;
		}
	}
	if (p->argc == 0)
		return fail(p, "missing value");
	return 0;
}

/* @rest: the arguments, trimmed, modified in place. */
static int apply(struct config *c, const struct directive *d, char *rest, struct parse *p)
{
	int r;

	if (d->set == set_unsupported)
		return set_unsupported(c, d, p);
	r = split_args(d, rest, p);
	if (r < 0)
		return r;
	return d->set(c, d, p);
}

/* Apply @directive with @value from a non-file source labelled @where. */
static int apply_value(struct config *c, const char *directive, const char *value, const char *where, char *err)
{
	char buf[CONFIG_LINE_BYTES_MAX + 1];
	struct parse p = {.where = where, .file = where, .name = directive, .err = err};
	const struct directive *d = lookup(directive);
	size_t len = strnlen(value, sizeof(buf));

	if (!d)
		return fail(&p, "unknown directive");
	if (len >= sizeof(buf))
		return fail(&p, "value is longer than %d bytes", CONFIG_LINE_BYTES_MAX);
	memcpy(buf, value, len + 1);
	return apply(c, d, trim(buf), &p);
}

/* ------------------------------------------------------------------------ */
/* Public: defaults, lines, files                                            */
/* ------------------------------------------------------------------------ */

void config_init(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->max_connections = -1;
	c->max_packet_size = PACKET_BYTES_DEFAULT;
	c->connect_packet_size_max = PACKET_BYTES_PRE_CONNECT_DEFAULT;
	c->connect_timeout_s = CONNECT_TIMEOUT_S_DEFAULT;
	c->max_inflight_messages = INFLIGHT_DEFAULT;
	c->max_receive_inflight = RECEIVE_INFLIGHT_DEFAULT;
	c->max_queued_messages = QUEUED_MESSAGES_DEFAULT;
	c->max_queued_bytes = QUEUED_BYTES_DEFAULT;
	c->max_subscriptions_per_client = SUBSCRIPTIONS_PER_CLIENT_DEFAULT;
	c->max_sessions = SESSIONS_MAX_DEFAULT;
	c->max_topic_length = TOPIC_BYTES_DEFAULT;
	c->max_topic_levels = TOPIC_LEVELS_DEFAULT;
	c->max_client_id_length = CLIENT_ID_BYTES_DEFAULT;
	c->max_keepalive = KEEPALIVE_S_MAX_DEFAULT;
	c->max_topic_alias = TOPIC_ALIAS_DEFAULT;
	c->max_output_bytes = OUTPUT_BYTES_DEFAULT;
	c->persistent_client_expiration_s = SESSION_EXPIRY_S_DEFAULT;
	c->shard_ring_size = SHARD_RING_SLOTS_DEFAULT;
	c->recv_buffers = RECV_BUFFERS_DEFAULT;
	c->recv_buffer_size = RECV_BUFFER_BYTES_DEFAULT;
	c->auth_backoff_max_s = AUTH_BACKOFF_S_MAX_DEFAULT;
	c->max_queued_bytes_total = QUEUED_BYTES_TOTAL_DEFAULT;
	c->retain_available = true;
	c->wildcard_subscription_available = true;
	c->subscription_identifier_available = true;
	c->shared_subscription_available = true;
	c->max_topic_alias_out = TOPIC_ALIAS_OUT_DEFAULT;
	c->max_qos = 2;
	c->sys_interval_s = SYS_INTERVAL_S_DEFAULT;
	c->log_level = LOG_INFO;
	c->http_port = -1;
	c->persistence = true;
	(void)snprintf(c->persistence_location, sizeof(c->persistence_location), "%s", "./data");
	c->durability = DURABILITY_SYNC;
	c->persistence_map_size = STORE_MAP_BYTES_DEFAULT;
	c->persistence_max_size = STORE_MAX_BYTES_DEFAULT;
	c->commit_interval_ms = STORE_COMMIT_INTERVAL_MS_DEFAULT;
	listener_init(&c->default_listener, EMBEDDED_PORT, "");
	c->override_port = -1;
}

int config_parse_line(struct config *c, const char *text, const char *file, int line, char *err)
{
	char buf[CONFIG_LINE_BYTES_MAX + 1];
	char where[CONFIG_ERROR_BYTES];
	struct parse p = {.where = where, .file = file, .line = line, .from_file = true, .err = err};
	const struct directive *d;
	size_t len = strnlen(text, CONFIG_LINE_BYTES_MAX + 3);
	char *name, *s;

	RMQ_ASSERT(c != NULL);
	RMQ_ASSERT(text != NULL);
	RMQ_ASSERT(file != NULL);
	RMQ_ASSERT(err != NULL);
	if (line > 0)
		(void)snprintf(where, sizeof(where), "%s:%d", file, line);
	else
		(void)snprintf(where, sizeof(where), "%s", file);
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	if (len > CONFIG_LINE_BYTES_MAX) {
		return errorf(err, "%s: line is longer than %d bytes", where, CONFIG_LINE_BYTES_MAX);
	}
	memcpy(buf, text, len);
	buf[len] = '\0';
	name = trim(buf);
	if (*name == '\0' || *name == '#')
		return 0;
	for (s = name; *s && !is_space(*s); s++)
		;
	if (*s)
		*s++ = '\0';
	p.name = name;
	d = lookup(name);
	if (!d)
		return fail(&p, "unknown directive");
	return apply(c, d, trim(s), &p);
}

/* Read one line of at most CONFIG_LINE_BYTES_MAX bytes (newline dropped).
 * Returns its length, -1 at end of file, -2 when too long, -3 on a NUL
 * byte, -4 on a read error (errno set). */
static long read_line(FILE *f, char *buf, size_t size)
{
	size_t n = 0;
	int ch;

	while ((ch = getc(f)) != EOF && ch != '\n') {
		if (ch == '\0')
			return -3;
		if (n + 1 >= size)
			return -2;
		buf[n++] = (char)ch;
	}
	if (ferror(f))
		return -4;
	if (ch == EOF && n == 0)
		return -1;
	buf[n] = '\0';
	return (long)n;
}

int config_parse_file(struct config *c, const char *path, char *err)
{
	char buf[CONFIG_LINE_BYTES_MAX + 1];
	int line = 0;
	int r = 0;
	long n = 0;
	FILE *f;

	RMQ_ASSERT(c != NULL);
	RMQ_ASSERT(path != NULL);
	RMQ_ASSERT(err != NULL);
	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		(void)errorf(err, "%s: cannot open: %s", path, strerror(-r));
		return r;
	}
	(void)snprintf(c->config_file, sizeof(c->config_file), "%s", path);
	while (r == 0 && (n = read_line(f, buf, sizeof(buf))) != -1) {
		line++;
		if (n == -2)
			(void)errorf(err, "%s:%d: line is longer than %d bytes", path, line,
				     CONFIG_LINE_BYTES_MAX);
		else if (n == -3)
			(void)errorf(err, "%s:%d: line contains a NUL byte", path, line);
		if (n == -2 || n == -3)
			r = -EINVAL;
		else if (n == -4)
			r = errno > 0 ? -errno : -EIO;
		else
			r = config_parse_line(c, buf, path, line, err);
	}
	if (n == -4)
		(void)errorf(err, "%s: cannot read: %s", path, strerror(-r));
	/* Read-only stream: nothing to flush, nothing to report. */
	(void)fclose(f);
	return r;
}

int config_apply_option(struct config *c, const char *directive, const char *value, const char *origin,
			char *err)
{
	RMQ_ASSERT(c != NULL);
	RMQ_ASSERT(directive != NULL);
	RMQ_ASSERT(value != NULL);
	RMQ_ASSERT(origin != NULL);
	RMQ_ASSERT(err != NULL);
	return apply_value(c, directive, value, origin, err);
}

/* ------------------------------------------------------------------------ */
/* Environment                                                               */
/* ------------------------------------------------------------------------ */

/* RINGMQ_NAME=... -> "name" in @buf; false if NAME is not upper case. */
static bool env_directive(const char *entry, char *buf, size_t size)
{
	const char *s = entry + strlen(ENV_PREFIX);
	size_t n = 0;

	for (; *s && *s != '='; s++) {
		if (n + 1 >= size || !((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
		buf[n++] = (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a') : *s;
	}
	buf[n] = '\0';
	return n > 0;
}

static bool env_reserved_name(const char *entry)
{
	size_t i;

	for (i = 0; env_reserved[i]; i++) {
		size_t len = strlen(env_reserved[i]);

		if (strncmp(entry, env_reserved[i], len) == 0 && entry[len] == '=')
			return true;
	}
	return false;
}

/* Every RINGMQ_* variable must name a directive ringmq implements. */
static int env_check_names(char *const *envp, char *err)
{
	char name[ENV_NAME_BYTES];
	char where[ENV_NAME_BYTES + 16];
	size_t i;

	for (i = 0; envp[i]; i++) {
		const char *eq = strchr(envp[i], '=');
		int var_len = eq ? (int)(eq - envp[i]) : (int)strlen(envp[i]);
		struct parse p = {.where = where, .name = name, .err = err};
		const struct directive *d;

		if (strncmp(envp[i], ENV_PREFIX, strlen(ENV_PREFIX)) != 0 || env_reserved_name(envp[i]))
			continue;
		(void)snprintf(where, sizeof(where), "environment:%.*s", var_len, envp[i]);
		if (!env_directive(envp[i], name, sizeof(name))) {
			return errorf(
				err,
				"%s: not a directive (RINGMQ_ is followed by a directive name in upper case)",
				where);
		}
		d = lookup(name);
		if (!d)
			return fail(&p, "unknown directive");
		if (d == &unsupported_directive)
			return set_unsupported(NULL, d, &p);
	}
	return 0;
}

/* "shards" -> "RINGMQ_SHARDS". */
static void env_var_name(const char *directive, char *buf, size_t size)
{
	size_t n = strlen(ENV_PREFIX);
	size_t i;

	RMQ_ASSERT(n + strlen(directive) < size);
	memcpy(buf, ENV_PREFIX, n);
	for (i = 0; directive[i]; i++)
		buf[n++] = (directive[i] >= 'a' && directive[i] <= 'z') ? (char)(directive[i] - 'a' + 'A')
									: directive[i];
	buf[n] = '\0';
}

int config_apply_env(struct config *c, char *const *envp, char *err)
{
	char var[ENV_NAME_BYTES];
	char where[ENV_NAME_BYTES + 16];
	size_t i, j, len;
	int r;

	RMQ_ASSERT(c != NULL);
	RMQ_ASSERT(envp != NULL);
	RMQ_ASSERT(err != NULL);
	r = env_check_names(envp, err);
	if (r < 0)
		return r;
	for (i = 0; i < ARRAY_SIZE(directives); i++) {
		env_var_name(directives[i].name, var, sizeof(var));
		len = strlen(var);
		for (j = 0; envp[j]; j++) {
			if (strncmp(envp[j], var, len) != 0 || envp[j][len] != '=')
				continue;
			(void)snprintf(where, sizeof(where), "environment:%s", var);
			r = apply_value(c, directives[i].name, envp[j] + len + 1, where, err);
			if (r < 0)
				return r;
			break; /* the first definition wins, as with getenv() */
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Finishing: derived values and cross-directive checks                      */
/* ------------------------------------------------------------------------ */

static void listener_where(const struct config_listener *l, char *buf, size_t size)
{
	if (l->line > 0)
		(void)snprintf(buf, size, "%s:%d", l->file, l->line);
	else
		(void)snprintf(buf, size, "%s", l->file);
}

/* A TLS listener needs its certificate and key; client certificates need a CA. */
static int check_tls(const struct config *c, char *err)
{
	char where[320];

	for (unsigned i = 0; i < c->listener_count; i++) {
		const struct config_listener *l = &c->listeners[i];
		listener_where(l, where, sizeof(where));
		if (!l->certfile[0] != !l->keyfile[0])
			return errorf(err, "%s: listener: certfile and keyfile go together (TLS needs both)", where);
		if (!l->certfile[0] && (l->cafile[0] || l->capath[0] || l->crlfile[0] || l->require_certificate ||
					l->tls_version || l->ciphers[0] || l->ciphers_tls13[0] ||
					l->use_identity_as_username || l->use_subject_as_username))
			return errorf(err, "%s: listener: TLS settings without certfile and keyfile", where);
		if (l->require_certificate && !l->cafile[0] && !l->capath[0])
			return errorf(err, "%s: listener: require_certificate needs a cafile or capath to check them "
					   "against", where);
		if ((l->use_identity_as_username || l->use_subject_as_username) && !l->require_certificate)
			return errorf(err, "%s: listener: use_%s_as_username needs require_certificate true (the "
					   "username comes from the client certificate)", where,
				      l->use_identity_as_username ? "identity" : "subject");
		if (l->use_identity_as_username && l->use_subject_as_username)
			return errorf(err, "%s: listener: use_identity_as_username and use_subject_as_username "
					   "exclude each other", where);
		if (l->crlfile[0] && !l->require_certificate)
			return errorf(err, "%s: listener: crlfile needs require_certificate true (it revokes client "
					   "certificates)", where);
		if (l->proxy_trusted_count && !l->proxy_protocol)
			return errorf(err, "%s: listener: proxy_protocol_trusted without proxy_protocol", where);
	}
	return 0;
}

static bool is_loopback(const char *a)
{
	return strncmp(a, "127.", 4) == 0 || strcmp(a, "::1") == 0 || strcmp(a, "localhost") == 0;
}

/* Secure by default: a listener other hosts can reach needs a password file
 * or an explicit "allow_anonymous true"; an implicit anonymous default is
 * only ever granted to loopback. */
static int check_secure_default(const struct config *c, char *err)
{
	char where[320];

	if (c->password_file[0] || c->allow_anonymous_set)
		return 0;
	for (unsigned i = 0; i < c->listener_count; i++) {
		const struct config_listener *l = &c->listeners[i];
		if (is_loopback(l->bind_address) || l->allow_anonymous >= 0)
			continue;
		listener_where(l, where, sizeof(where));
		return errorf(err,
			      "%s: listener: %s:%u is reachable from other hosts but no password_file is set and "
			      "allow_anonymous is not given: add a password_file, or 'allow_anonymous true' to let "
			      "anyone in",
			      where, l->bind_address[0] ? l->bind_address : "*", l->port);
	}
	return 0;
}

/* --port / --bind change the only listener; with several, which one is
 * meant would be a guess. */
static int apply_overrides(struct config *c, char *err)
{
	struct config_listener *l = &c->listeners[0];

	if (c->override_port < 0 && c->override_bind_address[0] == '\0')
		return 0;
	if (c->listener_count != 1) {
		return errorf(
			err,
			"%s: the configuration has %u listeners; the option changes the only listener, so "
			"set ports and addresses in the configuration instead",
			c->override_port >= 0 ? "--port" : "--bind", c->listener_count);
	}
	if (c->override_port >= 0)
		l->port = (uint16_t)c->override_port;
	if (c->override_bind_address[0] != '\0')
		(void)snprintf(l->bind_address, sizeof(l->bind_address), "%s", c->override_bind_address);
	return 0;
}

/* Two listeners on the same port and address would fail at bind(2) with a
 * message that names neither line; port 0 (ephemeral) never collides. */
static int check_duplicate_listeners(const struct config *c, char *err)
{
	char first[320], second[320];
	unsigned i, j;

	for (j = 1; j < c->listener_count; j++) {
		const struct config_listener *b = &c->listeners[j];

		for (i = 0; i < j; i++) {
			const struct config_listener *a = &c->listeners[i];

			if (a->port == 0 || a->port != b->port || strcmp(a->bind_address, b->bind_address) != 0)
				continue;
			listener_where(a, first, sizeof(first));
			listener_where(b, second, sizeof(second));
			return errorf(err, "%s: listener: port %u on %s is already used by the listener at %s",
				      second, b->port, b->bind_address[0] ? b->bind_address : "all addresses",
				      first);
		}
	}
	return 0;
}

static int finish_listeners(struct config *c, char *err)
{
	char where[320];
	int r;

	if (c->default_listener_used) {
		if (c->listener_count >= CONFIG_LISTENERS_MAX) {
			listener_where(&c->default_listener, where, sizeof(where));
			return errorf(
				err, "%s: port: too many listeners (at most %d, counting the default listener)",
				where, CONFIG_LISTENERS_MAX);
		}
		c->listeners[c->listener_count++] = c->default_listener;
		c->default_listener_used = false;
	}
	if (c->listener_count == 0) {
		/* The embedded default: reachable only from this host, so
		 * anonymous access is safe to allow (as in mosquitto 2). */
		listener_init(&c->listeners[0], EMBEDDED_PORT, EMBEDDED_ADDRESS);
		(void)snprintf(c->listeners[0].file, sizeof(c->listeners[0].file), "%s", BUILT_IN);
		c->listener_count = 1;
		if (!c->allow_anonymous_set)
			c->allow_anonymous = true;
	}
	r = apply_overrides(c, err);
	if (r < 0)
		return r;
	r = check_duplicate_listeners(c, err);
	if (r < 0)
		return r;
	r = check_tls(c, err);
	if (r < 0)
		return r;
	return check_secure_default(c, err);
}

/* Packet and buffer sizes that bound each other.  A value given explicitly
 * is never changed: a conflict is an error.  A default is moved to fit. */
static int finish_sizes(struct config *c, char *err)
{
	const char *where = c->config_file[0] ? c->config_file : "configuration";
	uint64_t need;

	if (c->message_size_limit > c->max_packet_size && c->max_packet_size_set) {
		return errorf(err,
			      "%s: max_packet_size: %u is smaller than message_size_limit (%u); raise "
			      "max_packet_size or lower message_size_limit",
			      where, c->max_packet_size, c->message_size_limit);
	}
	need = (uint64_t)c->message_size_limit + c->max_topic_length + CONFIG_PUBLISH_HEADER_BYTES;
	if (c->message_size_limit > 0 && !c->max_packet_size_set && need > c->max_packet_size)
		c->max_packet_size = need < PACKET_BYTES_MAX ? (uint32_t)need : PACKET_BYTES_MAX;
	if (c->connect_packet_size_max > c->max_packet_size) {
		if (c->connect_packet_size_max_set) {
			return errorf(err,
				      "%s: connect_packet_size_max: %u is larger than max_packet_size (%u)",
				      where, c->connect_packet_size_max, c->max_packet_size);
		}
		c->connect_packet_size_max = c->max_packet_size;
	}
	if (c->max_output_bytes < c->max_packet_size) {
		if (c->max_output_bytes_set) {
			return errorf(err,
				      "%s: max_output_bytes: %llu is smaller than max_packet_size (%u), so the "
				      "largest packet could never be sent",
				      where, (unsigned long long)c->max_output_bytes, c->max_packet_size);
		}
		c->max_output_bytes = c->max_packet_size;
	}
	return 0;
}

/* Rules the parser enforces, checked again because callers may also fill
 * the struct directly (tests, main). */
static int check_powers_of_two(const struct config *c, char *err)
{
	const char *where = c->config_file[0] ? c->config_file : "configuration";

	if (!is_pow2(c->shard_ring_size)) {
		return errorf(err, "%s: shard_ring_size: %u is not a power of two", where, c->shard_ring_size);
	}
	if (!is_pow2(c->recv_buffers)) {
		return errorf(err, "%s: recv_buffers: %u is not a power of two", where, c->recv_buffers);
	}
	return 0;
}

/* websockets_* settings belong to WebSocket listeners; those get their
 * defaults: the path /mqtt, and frames as large as max_packet_size (so
 * runs after finish_sizes()). */
static int finish_websockets(struct config *c, char *err)
{
	char where[320];

	for (unsigned i = 0; i < c->listener_count; i++) {
		struct config_listener *l = &c->listeners[i];
		if (l->protocol != LISTENER_WEBSOCKETS) {
			if (!l->ws_path[0] && !l->ws_origin_count && !l->ws_proxy_count && !l->ws_frame_max)
				continue;
			listener_where(l, where, sizeof(where));
			return errorf(err, "%s: listener: websockets_* settings on a listener that is not "
					   "'protocol websockets'", where);
		}
		if (!l->ws_path[0])
			(void)snprintf(l->ws_path, sizeof(l->ws_path), "%s", WEBSOCKETS_PATH_DEFAULT);
		if (!l->ws_frame_max)
			l->ws_frame_max = c->max_packet_size;
	}
	return 0;
}

int config_finish(struct config *c, char *err)
{
	long cpus;
	int r;

	r = finish_listeners(c, err);
	if (r < 0)
		return r;
	r = finish_sizes(c, err);
	if (r < 0)
		return r;
	r = finish_websockets(c, err);
	if (r < 0)
		return r;
	r = check_powers_of_two(c, err);
	if (r < 0)
		return r;
	if (c->shards == 0) {
		cpus = sysconf(_SC_NPROCESSORS_ONLN);
		c->shards = cpus < SHARDS_MIN ? SHARDS_MIN : cpus > SHARDS_MAX ? SHARDS_MAX : (unsigned)cpus;
	}
	return 0;
}

int config_override_listener(struct config *c, const char *port, const char *bind_address, char *err)
{
	struct parse p = {.err = err};
	uint16_t v = 0;
	int r;

	if (port) {
		p.where = "--port";
		p.name = "port";
		r = parse_port(&p, port, &v);
		if (r < 0)
			return r;
	}
	if (bind_address) {
		p.where = "--bind";
		p.name = "bind_address";
		if (bind_address[0] == '\0')
			return fail(&p, "missing value");
		r = check_address(&p, bind_address);
		if (r < 0)
			return r;
		(void)snprintf(c->override_bind_address, sizeof(c->override_bind_address), "%s", bind_address);
	}
	if (port)
		c->override_port = v;
	return 0;
}

void config_done(struct config *c)
{
	/* Everything lives inside the struct; nothing to release. */
	(void)c;
}
