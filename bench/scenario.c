/*
 * scenario.c - run configuration: scenario files and command-line options.
 *
 * A scenario file is a list of key=value lines ('#' starts a comment);
 * every key is also an option (--key value or --key=value, '-' and '_'
 * alike), so a file is just a saved command line.  Options are applied in
 * order after the --scenario file, so the command line always wins.  One
 * table (`keys`) holds each key's type, bounds and help text: the parser,
 * the --help output and the docs cannot drift apart.
 *
 * Numbers take suffixes: counts and rates k / m (x1,000 / x1,000,000),
 * sizes B, K / KiB, M / MiB (x1024), times s / ms / us.  A boolean key on
 * the command line may stand alone (--tls is --tls true).
 */
#include "bench.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ringmq/mqtt.h"

/* Longest line of a scenario file. */
#define LINE_BYTES_MAX 512u

enum ktype {
	K_U32, /* count, k / m suffixes */
	K_SIZE, /* bytes, K / M suffixes */
	K_U16,
	K_QOS,
	K_SUB_QOS,
	K_SECONDS,
	K_RATE,
	K_STR,
	K_BOOL,
	K_LAYOUT,
	K_FLOW,
	K_VERSION,
	K_PID,
	K_PROGRESS,
	K_TLS_VERSION,
};

struct key {
	const char *name;
	enum ktype type;
	size_t off;
	uint64_t max;
	const char *help;
};

#define F(field) offsetof(struct scenario, field)

static const struct key keys[] = {
	{"name", K_STR, F(name), NAME_BYTES_MAX, "scenario name, for the reports"},
	{"label", K_STR, F(label), NAME_BYTES_MAX, "broker name, for the reports"},
	{"host", K_STR, F(host), NAME_BYTES_MAX, "broker IPv4 address (127.0.0.1)"},
	{"port", K_U16, F(port), 65535, "broker port (1883)"},
	{"version", K_VERSION, F(version), 5, "MQTT version: 3.1.1 or 5 (3.1.1)"},
	{"qos", K_QOS, F(qos), 2, "publish QoS 0, 1 or 2 (0)"},
	{"sub_qos", K_SUB_QOS, F(sub_qos), 2, "subscription QoS (same as qos)"},
	{"payload", K_SIZE, F(payload), PAYLOAD_MAX, "payload bytes, at least 24 (64)"},
	{"layout", K_LAYOUT, F(layout), 0, "pairs fanin fanout wildcard shared idle connect (pairs)"},
	{"publishers", K_U32, F(publishers), CONNS_MAX, "publishing clients (100)"},
	{"subscribers", K_U32, F(subscribers), CONNS_MAX,
	 "subscribing clients (pairs: = publishers; fanin/shared: 1; fanout/wildcard: 100)"},
	{"connections", K_U32, F(connections), CONNS_MAX,
	 "idle: connections held; connect: concurrent handshakes (64)"},
	{"threads", K_U32, F(threads), THREADS_MAX, "worker threads, one io_uring each (1)"},
	{"inflight", K_U32, F(inflight), INFLIGHT_MAX, "messages in flight per publisher (64)"},
	{"flow", K_FLOW, F(flow), 0,
	 "e2e: the window counts undelivered messages; ack: only unacked QoS 1/2 (e2e)"},
	{"rate", K_RATE, F(rate), 0, "messages/s over all publishers, 0 = max (0)"},
	{"ramp", K_RATE, F(ramp), 0, "connections/s during setup, 0 = unlimited (0)"},
	{"connect_concurrency", K_U32, F(connect_concurrency), CONNS_MAX,
	 "setup handshakes in progress at once (256)"},
	{"warmup", K_SECONDS, F(warmup_s), 0, "seconds of load before measuring (1)"},
	{"duration", K_SECONDS, F(duration_s), 0, "seconds measured (5)"},
	{"drain", K_SECONDS, F(drain_s), 0, "longest wait for in-flight messages at the end (5)"},
	{"setup_timeout", K_SECONDS, F(setup_timeout_s), 0, "longest connection setup (60)"},
	{"interval", K_SECONDS, F(interval_s), 0, "progress period (1)"},
	{"keepalive", K_U16, F(keepalive_s), 65535, "MQTT keep alive seconds, PINGREQ sent at half (60)"},
	{"recv_buffer", K_SIZE, F(recv_buffer), CONN_BUF_MAX, "subscriber receive buffer (64KiB)"},
	{"stall_ms", K_U32, F(stall_ms), 600000,
	 "e2e window written off after this long without a delivery (500)"},
	{"topic_prefix", K_STR, F(topic_prefix), NAME_BYTES_MAX, "first topic level (bench)"},
	{"share_group", K_STR, F(share_group), NAME_BYTES_MAX, "shared subscription group (g)"},
	{"broker_pid", K_PID, F(broker_pid), 0, "broker process: CPU and RSS are sampled"},
	{"json", K_BOOL, F(json), 0, "JSON lines on stdout (table on stderr)"},
	{"progress", K_PROGRESS, F(progress), 0, "live line on stderr: on, off, auto (auto: a tty)"},
	{"expect_exact", K_BOOL, F(expect_exact), 0, "QoS 0 loss or duplicates fail the run too"},
	{"persistent_subscribers", K_BOOL, F(persistent_subs), 0,
	 "subscribers have sessions that outlive the connection, so a broker with persistence stores "
	 "their QoS 1/2 messages (false)"},
	{"busy_poll", K_BOOL, F(busy_poll), 0,
	 "workers spin, never sleep; starves ksoftirqd on that CPU, so not for latency runs"},
	{"tls", K_BOOL, F(tls), 0,
	 "MQTT over TLS on every connection (wolfSSL); the broker's certificate is NOT verified "
	 "unless ca is given (false)"},
	{"tls_version", K_TLS_VERSION, F(tls_version), 0, "with tls: 1.2 or 1.3 only (1.3)"},
	{"ca", K_STR, F(ca), PATH_BYTES_MAX,
	 "with tls: PEM CA file the broker's chain must verify against (host name not checked)"},
};

void scenario_defaults(struct scenario *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->name, sizeof(cfg->name), "custom");
	snprintf(cfg->label, sizeof(cfg->label), "broker");
	snprintf(cfg->host, sizeof(cfg->host), "127.0.0.1");
	snprintf(cfg->topic_prefix, sizeof(cfg->topic_prefix), "bench");
	snprintf(cfg->share_group, sizeof(cfg->share_group), "g");
	cfg->port = 1883;
	cfg->version = MQTT_V311;
	cfg->sub_qos = -1;
	cfg->payload = PAYLOAD_DEFAULT;
	cfg->layout = LAYOUT_PAIRS;
	cfg->flow = FLOW_E2E;
	cfg->publishers = 100;
	cfg->connections = 64;
	cfg->threads = 1;
	cfg->inflight = INFLIGHT_DEFAULT;
	cfg->connect_concurrency = 256;
	cfg->recv_buffer = RECV_BUF_DEFAULT;
	cfg->stall_ms = 500;
	cfg->keepalive_s = 60;
	cfg->warmup_s = 1;
	cfg->duration_s = 5;
	cfg->drain_s = 5;
	cfg->setup_timeout_s = 60;
	cfg->interval_s = 1;
	cfg->progress = -1;
	cfg->tls_version = 13;
}

static const char *const layout_names[] = {
	[LAYOUT_PAIRS] = "pairs",       [LAYOUT_FANIN] = "fanin",   [LAYOUT_FANOUT] = "fanout",
	[LAYOUT_WILDCARD] = "wildcard", [LAYOUT_SHARED] = "shared", [LAYOUT_IDLE] = "idle",
	[LAYOUT_CONNECT] = "connect",
};

const char *scenario_layout_name(enum layout l)
{
	return (unsigned)l < sizeof(layout_names) / sizeof(layout_names[0]) ? layout_names[l] : "?";
}

/* A number with an optional suffix from @units (name, multiplier pairs,
 * NULL-terminated).  Rejects garbage, negatives, NaN and overflow. */
struct unit {
	const char *suffix;
	double mult;
};

static int parse_scaled(const char *s, const struct unit *units, double *ret)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno || !isfinite(v) || v < 0)
		return -EINVAL;
	if (*end == '\0') {
		*ret = v;
		return 0;
	}
	for (; units->suffix; units++)
		if (strcasecmp(end, units->suffix) == 0) {
			*ret = v * units->mult;
			return 0;
		}
	return -EINVAL;
}

static const struct unit count_units[] = {{"k", 1e3}, {"m", 1e6}, {NULL, 0}};
static const struct unit size_units[] = {{"b", 1},          {"k", 1024},      {"kib", 1024},
					 {"kb", 1024},      {"m", 1048576.0}, {"mib", 1048576.0},
					 {"mb", 1048576.0}, {NULL, 0}};
static const struct unit time_units[] = {{"s", 1}, {"ms", 1e-3}, {"us", 1e-6}, {NULL, 0}};

static int parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = {"1", "true", "yes", "on"};
	static const char *const no[] = {"0", "false", "no", "off"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_enum(const char *s, const char *const *names, size_t n, int *ret)
{
	for (size_t i = 0; i < n; i++)
		if (names[i] && strcasecmp(s, names[i]) == 0) {
			*ret = (int)i;
			return 0;
		}
	return -EINVAL;
}

static int parse_version(const char *s, uint8_t *ret)
{
	if (!strcmp(s, "3.1.1") || !strcmp(s, "311") || !strcmp(s, "4")) {
		*ret = MQTT_V311;
		return 0;
	}
	if (!strcmp(s, "5") || !strcmp(s, "5.0")) {
		*ret = MQTT_V5;
		return 0;
	}
	return -EINVAL;
}

/* Integer-valued keys: the scaled number must be whole and within max. */
static int set_integer(const struct key *k, void *field, const char *value)
{
	const struct unit *units = k->type == K_SIZE ? size_units : count_units;
	double v;

	if (parse_scaled(value, units, &v) < 0 || v != floor(v) || v > (double)k->max)
		return -EINVAL;
	if (k->type == K_U16)
		*(uint16_t *)field = (uint16_t)v;
	else if (k->type == K_QOS)
		*(uint8_t *)field = (uint8_t)v;
	else if (k->type == K_SUB_QOS)
		*(int *)field = (int)v;
	else
		*(uint32_t *)field = (uint32_t)v;
	return 0;
}

static int set_typed(const struct key *k, void *field, const char *value)
{
	static const char *const flows[] = {[FLOW_E2E] = "e2e", [FLOW_ACK] = "ack"};
	static const char *const progress[] = {"off", "on", "auto"};
	double d;
	int e;

	switch (k->type) {
	case K_SECONDS:
	case K_RATE:
		if (parse_scaled(value, k->type == K_SECONDS ? time_units : count_units, &d) < 0)
			return -EINVAL;
		*(double *)field = d;
		return 0;
	case K_STR:
		if (strlen(value) >= k->max)
			return -EINVAL;
		memcpy(field, value, strlen(value) + 1);
		return 0;
	case K_BOOL: return parse_bool(value, field);
	case K_VERSION: return parse_version(value, field);
	case K_TLS_VERSION:
		if (strcmp(value, "1.2") && strcmp(value, "1.3"))
			return -EINVAL;
		*(uint8_t *)field = value[2] == '2' ? 12 : 13;
		return 0;
	case K_PID:
		if (parse_scaled(value, count_units, &d) < 0 || d != floor(d) || d > INT_MAX)
			return -EINVAL;
		*(pid_t *)field = (pid_t)d;
		return 0;
	case K_LAYOUT:
	case K_FLOW:
	case K_PROGRESS:
		if (k->type == K_LAYOUT)
			e = parse_enum(value, layout_names, sizeof(layout_names) / sizeof(layout_names[0]),
				       field);
		else if (k->type == K_FLOW)
			e = parse_enum(value, flows, 2, field);
		else if ((e = parse_enum(value, progress, 3, field)) == 0 && *(int *)field == 2)
			*(int *)field = -1;
		return e;
	default: return set_integer(k, field, value);
	}
}

/* The table entry of @key ('-' and '_' alike), or NULL. */
static const struct key *find_key(const char *key)
{
	char norm[NAME_BYTES_MAX];
	size_t n = strlen(key);

	if (n >= sizeof(norm))
		return NULL;
	for (size_t i = 0; i <= n; i++)
		norm[i] = key[i] == '-' ? '_' : key[i];
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(keys[i].name, norm) == 0)
			return &keys[i];
	return NULL;
}

int scenario_set(struct scenario *cfg, const char *key, const char *value, char *err)
{
	const struct key *k = find_key(key);

	if (!k) {
		snprintf(err, ERR_BYTES_MAX, "unknown key '%.60s' (see --help)", key);
		return -EINVAL;
	}
	if (set_typed(k, (char *)cfg + k->off, value) == 0)
		return 0;
	snprintf(err, ERR_BYTES_MAX, "bad value '%.40s' for %s (%s)", value, k->name, k->help);
	return -EINVAL;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

int scenario_load(struct scenario *cfg, const char *path, char *err)
{
	char line[LINE_BYTES_MAX];
	char sub[ERR_BYTES_MAX];
	unsigned lineno = 0;
	FILE *f = fopen(path, "re");
	int r = 0;

	if (!f) {
		r = -errno;
		snprintf(err, ERR_BYTES_MAX, "%s: %s", path, strerror(errno));
		return r;
	}
	while (fgets(line, sizeof(line), f)) {
		char *hash = strchr(line, '#');
		char *s;
		char *eq;

		lineno++;
		if (hash)
			*hash = '\0';
		s = trim(line);
		if (*s == '\0')
			continue;
		eq = strchr(s, '=');
		if (!eq) {
			snprintf(err, ERR_BYTES_MAX, "%s:%u: expected key=value", path, lineno);
			r = -EINVAL;
			break;
		}
		*eq = '\0';
		if ((r = scenario_set(cfg, trim(s), trim(eq + 1), sub)) < 0) {
			snprintf(err, ERR_BYTES_MAX, "%s:%u: %.200s", path, lineno, sub);
			break;
		}
	}
	fclose(f);
	return r;
}

void scenario_usage(void)
{
	printf("Usage: ringmq-bench [--scenario FILE] [--KEY VALUE | --KEY=VALUE]...\n\n"
	       "An io_uring MQTT load generator.  A scenario file holds KEY=VALUE lines;\n"
	       "options given after it override its values.  Keys (defaults in brackets):\n\n");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		printf("  --%-20s %s\n", keys[i].name, keys[i].help);
	printf("\n  -p PORT is --port, -j is --json; a boolean key alone means true (--tls).\n"
	       "  TLS: every connection makes a full handshake (no resumption); without --ca the\n"
	       "  broker's certificate is not verified at all, with it the chain is, not the name.\n"
	       "  Exit status: 0 ok; 1 loss, duplicates or misordering at QoS >= 1 (or any with\n"
	       "  expect_exact), a protocol error or a failed connection; 2 bad usage.\n");
}

static int find_scenario(int argc, char **argv, struct scenario *cfg, char *err)
{
	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--scenario=", 11) == 0)
			return scenario_load(cfg, argv[i] + 11, err);
		if (strcmp(argv[i], "--scenario") == 0) {
			if (i + 1 >= argc) {
				snprintf(err, ERR_BYTES_MAX, "--scenario needs a file");
				return -EINVAL;
			}
			return scenario_load(cfg, argv[i + 1], err);
		}
	}
	return 0;
}

int scenario_parse_args(struct scenario *cfg, int argc, char **argv, char *err)
{
	char key[NAME_BYTES_MAX];
	int r = find_scenario(argc, argv, cfg, err);

	for (int i = 1; r == 0 && i < argc; i++) {
		const char *a = argv[i];
		const char *value;
		const char *eq;

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			scenario_usage();
			return 1;
		}
		if (!strcmp(a, "-j") || !strcmp(a, "--json")) {
			cfg->json = true;
			continue;
		}
		if (!strcmp(a, "-p"))
			a = "--port";
		if (strncmp(a, "--", 2) != 0) {
			snprintf(err, ERR_BYTES_MAX, "unexpected argument '%s'", a);
			return -EINVAL;
		}
		a += 2;
		eq = strchr(a, '=');
		if (eq) {
			snprintf(key, sizeof(key), "%.*s", (int)(eq - a) < 63 ? (int)(eq - a) : 63, a);
			value = eq + 1;
		} else if (find_key(a) && find_key(a)->type == K_BOOL && (i + 1 >= argc || argv[i + 1][0] == '-')) {
			snprintf(key, sizeof(key), "%s", a); /* a boolean on its own: --tls */
			value = "true";
		} else {
			if (i + 1 >= argc) {
				snprintf(err, ERR_BYTES_MAX, "--%s needs a value", a);
				return -EINVAL;
			}
			snprintf(key, sizeof(key), "%s", a);
			value = argv[++i];
		}
		if (strcmp(key, "scenario") != 0)
			r = scenario_set(cfg, key, value, err);
	}
	return r;
}

/* Subscriber counts each layout implies when none was given. */
static void default_counts(struct scenario *cfg)
{
	if (cfg->subscribers != 0)
		return;
	switch (cfg->layout) {
	case LAYOUT_PAIRS: cfg->subscribers = cfg->publishers; break;
	case LAYOUT_FANIN:
	case LAYOUT_SHARED: cfg->subscribers = 1; break;
	case LAYOUT_FANOUT:
	case LAYOUT_WILDCARD: cfg->subscribers = 100; break;
	default: break;
	}
}

int scenario_check(struct scenario *cfg, char *err)
{
	default_counts(cfg);
	if (cfg->sub_qos < 0)
		cfg->sub_qos = cfg->qos;
#define BAD(...) (snprintf(err, ERR_BYTES_MAX, __VA_ARGS__), -EINVAL)
	if (cfg->threads == 0)
		return BAD("threads must be at least 1");
	if (cfg->ca[0] && !cfg->tls)
		return BAD("ca is for TLS connections: add tls = true");
	if (cfg->layout == LAYOUT_IDLE || cfg->layout == LAYOUT_CONNECT) {
		if (cfg->connections == 0)
			return BAD("connections must be at least 1");
		return 0;
	}
	if (cfg->payload < STAMP_BYTES)
		return BAD("payload must be at least %u bytes (the latency stamp)", STAMP_BYTES);
	if (cfg->publishers == 0 || cfg->subscribers == 0)
		return BAD("publishers and subscribers must be at least 1");
	if (cfg->layout == LAYOUT_PAIRS && cfg->publishers != cfg->subscribers)
		return BAD("pairs needs as many subscribers as publishers");
	if ((uint64_t)cfg->publishers + cfg->subscribers > CONNS_MAX)
		return BAD("more than %u connections", CONNS_MAX);
	if (cfg->inflight == 0)
		return BAD("inflight must be at least 1");
	if (cfg->duration_s <= 0)
		return BAD("duration must be positive");
#undef BAD
	return 0;
}
