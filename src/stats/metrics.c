/*
 * metrics.c - the /metrics page from a stats snapshot (see metrics.h).
 *
 * Two tables drive the page: broker-wide figures (one unlabelled sample
 * each) and per-shard figures (one sample per shard, read from struct
 * stats_shard by offset).  A metric is added by adding a row; the names
 * follow Prometheus' conventions, which `promtool check metrics` enforces
 * in the integration tests: base units in the name (_bytes, _seconds),
 * counters end in _total, gauges never do.  Load averages are not exported:
 * Prometheus derives rates itself (rate() over the _total counters).
 */
#include "ringmq/metrics.h"

#include <stddef.h>
#include <stdio.h>


#define NS_PER_S 1e9
#define MS_PER_S 1e3

/* ------------------------------------------------------------ per shard */

struct shard_family {
	const char *name;
	const char *type;
	const char *help;
	size_t offset; /* a uint64_t in struct stats_shard */
	double scale; /* 0: an integer; else the value times scale */
};

#define AT(f) offsetof(struct stats_shard, f)

static const struct shard_family shard_families[] = {
	{"ringmq_connections", "gauge", "TCP connections open.", AT(conns), 0},
	{"ringmq_sockets_accepted_total", "counter", "TCP connections accepted.", AT(sockets), 0},
	{"ringmq_connects_total", "counter", "CONNECT packets accepted (a session got a connection).",
	 AT(connects), 0},
	{"ringmq_sessions", "gauge", "Sessions, connected or not, whose home is the shard.", AT(sessions), 0},
	{"ringmq_clients_expired_total", "counter", "Sessions ended because their expiry interval passed.",
	 AT(expired), 0},
	{"ringmq_packets_received_total", "counter", "MQTT packets received, every type.", AT(pkts_in), 0},
	{"ringmq_packets_sent_total", "counter", "MQTT packets queued for sending, every type.", AT(pkts_out), 0},
	{"ringmq_messages_received_total", "counter", "PUBLISH packets received.", AT(msgs_in), 0},
	{"ringmq_messages_sent_total", "counter", "PUBLISH packets queued for sending.", AT(msgs_out), 0},
	{"ringmq_bytes_received_total", "counter", "Bytes received on client sockets.", AT(bytes_in), 0},
	{"ringmq_bytes_sent_total", "counter", "Bytes sent on client sockets.", AT(bytes_out), 0},
	{"ringmq_payload_bytes_received_total", "counter", "PUBLISH payload bytes received.", AT(pub_bytes_in), 0},
	{"ringmq_payload_bytes_sent_total", "counter", "PUBLISH payload bytes queued for sending.",
	 AT(pub_bytes_out), 0},
	{"ringmq_subscriptions", "gauge", "Subscriptions (not shared) of the shard's sessions.", AT(subs), 0},
	{"ringmq_shared_subscriptions", "gauge", "Shared subscriptions of the shard's sessions.", AT(shared_subs),
	 0},
	{"ringmq_stored_messages", "gauge", "Messages queued or in flight for sessions.", AT(stored), 0},
	{"ringmq_stored_message_bytes", "gauge", "Payload bytes of the messages queued or in flight.",
	 AT(stored_bytes), 0},
	{"ringmq_shard_ring_items", "gauge", "Items waiting in the shard's inbound rings.", AT(ring_depth), 0},
	{"ringmq_shard_backlog_items", "gauge", "Items the shard holds back for other shards' full rings.",
	 AT(backlog), 0},
	{"ringmq_shard_wait_seconds_total", "counter", "Time the shard's loop slept waiting for work.",
	 AT(wait_ns), 1 / NS_PER_S},
	{"ringmq_shard_loop_turns_total", "counter", "Turns of the shard's loop.", AT(turns), 0},
	{"ringmq_uring_cq_overflow_total", "counter",
	 "Times the shard found its io_uring completion queue overflowed (the kernel kept the completions).",
	 AT(cq_overflow), 0},
};

static void shard_label(char *buf, unsigned shard)
{
	char id[16];
	const char *kv[2] = {"shard", id};

	(void)snprintf(id, sizeof(id), "%u", shard);
	(void)prom_labels(buf, 1, kv);
}

static void render_shard_families(const struct stats_snapshot *s, struct prom_buf *out)
{
	char labels[PROM_LABELS_BYTES];

	for (size_t f = 0; f < sizeof(shard_families) / sizeof(shard_families[0]); f++) {
		const struct shard_family *sf = &shard_families[f];
		prom_family(out, sf->name, sf->type, sf->help);
		for (unsigned i = 0; i < s->nshards; i++) {
			const uint64_t *v = (const uint64_t *)((const char *)&s->shard[i] + sf->offset);
			shard_label(labels, i);
			if (sf->scale != 0)
				prom_double(out, sf->name, labels, (double)*v * sf->scale);
			else
				prom_u64(out, sf->name, labels, *v);
		}
	}
}

static void render_drops(const struct stats_snapshot *s, struct prom_buf *out)
{
	static const char name[] = "ringmq_messages_dropped_total";
	char labels[PROM_LABELS_BYTES], id[16];

	prom_family(out, name, "counter", "Messages dropped, by cause (docs/operations.md lists the causes).");
	for (unsigned i = 0; i < s->nshards; i++) {
		(void)snprintf(id, sizeof(id), "%u", i);
		for (unsigned c = 0; c < SHARD_DROP_CAUSES; c++) {
			const char *kv[4] = {"shard", id, "cause", stats_drop_name(c)};
			prom_u64(out, name, prom_labels(labels, 2, kv), s->shard[i].drops[c]);
		}
	}
}

static void render_turn_age(const struct stats_snapshot *s, struct prom_buf *out)
{
	static const char name[] = "ringmq_shard_last_turn_age_seconds";
	char labels[PROM_LABELS_BYTES];

	prom_family(out, name, "gauge",
		    "Time since the shard's loop last turned; /healthz fails above a few seconds.");
	for (unsigned i = 0; i < s->nshards; i++) {
		uint64_t last = s->shard[i].last_turn_ms;
		uint64_t age = last && s->now_ms > last ? s->now_ms - last : 0;
		shard_label(labels, i);
		prom_double(out, name, labels, (double)age / MS_PER_S);
	}
}

/* ---------------------------------------------------------- broker-wide */

static void gauge(struct prom_buf *out, const char *name, const char *help, uint64_t v)
{
	prom_family(out, name, "gauge", help);
	prom_u64(out, name, NULL, v);
}

static void render_broker(const struct stats_snapshot *s, const char *version, struct prom_buf *out)
{
	char labels[PROM_LABELS_BYTES];
	const char *kv[2] = {"version", version};
	uint64_t offline = s->total.sessions > s->clients_connected ? s->total.sessions - s->clients_connected : 0;

	prom_family(out, "ringmq_build_info", "gauge", "The broker's version, as a label; the value is 1.");
	prom_u64(out, "ringmq_build_info", prom_labels(labels, 1, kv), 1);
	gauge(out, "ringmq_start_time_seconds", "When the broker started, seconds since the Unix epoch.",
	      (uint64_t)(s->start_unix_s > 0 ? s->start_unix_s : 0));
	gauge(out, "ringmq_uptime_seconds", "Seconds since the broker started.", s->uptime_s);
	gauge(out, "ringmq_shards", "Shard threads.", s->nshards);
	gauge(out, "ringmq_ready", "1 when /readyz answers 200 (listening, not draining, not stopping).",
	      stats_not_ready(s) == NULL);
	gauge(out, "ringmq_clients_connected", "Clients connected (sessions with a live connection).",
	      s->clients_connected);
	gauge(out, "ringmq_clients_disconnected", "Sessions kept while their client is not connected.", offline);
	gauge(out, "ringmq_clients_maximum", "The most clients connected at once since the start.",
	      s->clients_max);
	gauge(out, "ringmq_retained_messages", "Retained messages stored.", s->retained);
	gauge(out, "ringmq_heap_bytes", "Heap bytes allocated (jemalloc stats.allocated, or mallinfo2).",
	      s->heap_current);
	gauge(out, "ringmq_heap_max_bytes", "The most heap bytes seen allocated at a sample.", s->heap_max);
}

static void counter(struct prom_buf *out, const char *name, const char *help, uint64_t v)
{
	prom_family(out, name, "counter", help);
	prom_u64(out, name, NULL, v);
}

static void render_store(const struct stats_snapshot *s, struct prom_buf *out)
{
	if (!s->store)
		return;
	counter(out, "ringmq_store_commits_total", "Store commits (each one transaction, one sync).", s->store_commits);
	counter(out, "ringmq_store_ops_total", "Changes applied by store commits (puts and deletes).", s->store_ops);
	counter(out, "ringmq_store_bytes_total", "Bytes of changes applied by store commits.", s->store_bytes);
	counter(out, "ringmq_store_errors_total", "Store commits that failed (and were retried).", s->store_errors);
	counter(out, "ringmq_store_refused_total",
		"Store commits that left out new messages because persistence_max_size was reached.",
		s->store_refused);
	gauge(out, "ringmq_store_corrupt_records", "Corrupt records skipped when the store was loaded.",
	      s->store_corrupt);
	gauge(out, "ringmq_store_failing", "1 while store commits fail (QoS 1/2 publishes are refused).",
	      s->store_failing);
	prom_family(out, "ringmq_store_commit_seconds", "gauge", "Duration of the latest store commit.");
	prom_double(out, "ringmq_store_commit_seconds", NULL, (double)s->store_commit_us_last / 1e6);
	prom_family(out, "ringmq_store_commit_max_seconds", "gauge", "The longest store commit since the start.");
	prom_double(out, "ringmq_store_commit_max_seconds", NULL, (double)s->store_commit_us_max / 1e6);
	gauge(out, "ringmq_store_map_bytes", "The store's LMDB map size now (grows up to persistence_max_size).",
	      s->store_map_size);
	gauge(out, "ringmq_store_used_bytes", "Bytes of the map in use (pages up to the highest written).",
	      s->store_map_used);
}

void metrics_render(const struct stats_snapshot *s, const char *version, struct prom_buf *out)
{
	render_broker(s, version, out);
	render_store(s, out);
	render_shard_families(s, out);
	render_drops(s, out);
	render_turn_age(s, out);
}
