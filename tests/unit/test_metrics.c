/*
 * test_metrics.c - the /metrics page (metrics.c) from a snapshot built by
 * hand, so every value on the page is known.
 *
 * Checks exact sample lines (per-shard counters, drops by cause, scaled
 * seconds, broker-wide gauges, the build info label), and the page's
 * shape, line by line: every sample belongs to the family declared just
 * above it by HELP and TYPE, no family is declared twice, counters and
 * only counters end in _total, and every name starts with ringmq_.
 * `promtool check metrics` runs on a live page in the integration tests.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringmq/metrics.h"

static struct stats_snapshot *sample_snapshot(void)
{
	struct stats_snapshot *s = stats_snapshot_new(2);

	cr_assert_not_null(s);
	s->nshards = 2;
	s->now_ms = 50000;
	s->uptime_s = 42;
	s->start_unix_s = 1700000000;
	s->clients_connected = 3;
	s->clients_max = 7;
	s->retained = 11;
	s->heap_current = 4096;
	s->heap_max = 8192;
	s->started = true;
	for (unsigned i = 0; i < 2; i++) {
		struct stats_shard *x = &s->shard[i];
		x->conns = 2 + i;
		x->sessions = 2 + 3 * i; /* 7 in all: 4 offline with 3 connected */
		x->pkts_in = 100 * (i + 1);
		x->bytes_out = 1000 * (i + 1);
		x->msgs_in = 10 + i;
		x->drops[SHARD_DROP_QUEUE_FULL] = 3 * i;
		x->drops[SHARD_DROP_PACKET_SIZE] = 1;
		x->wait_ns = 1500000000ull;
		x->turns = 77;
		x->last_turn_ms = 50000 - 250 * i;
	}
	stats_snapshot_sum(s);
	return s;
}

static char *render(const struct stats_snapshot *s)
{
	struct prom_buf b;
	char *text;

	prom_init(&b);
	metrics_render(s, "9.9.9", &b);
	cr_assert_not(b.oom);
	cr_assert_not_null(b.data);
	text = strdup(b.data);
	prom_done(&b);
	return text;
}

static void has_line(const char *page, const char *line)
{
	char want[256];

	(void)snprintf(want, sizeof(want), "\n%s\n", line);
	cr_assert(strstr(page, want) != NULL, "missing line: %s", line);
}

Test(metrics, exact_samples_for_a_known_snapshot)
{
	struct stats_snapshot *s = sample_snapshot();
	char *page = render(s);

	has_line(page, "ringmq_build_info{version=\"9.9.9\"} 1");
	has_line(page, "ringmq_uptime_seconds 42");
	has_line(page, "ringmq_start_time_seconds 1700000000");
	has_line(page, "ringmq_shards 2");
	has_line(page, "ringmq_ready 1");
	has_line(page, "ringmq_clients_connected 3");
	has_line(page, "ringmq_clients_disconnected 4");
	has_line(page, "ringmq_clients_maximum 7");
	has_line(page, "ringmq_retained_messages 11");
	has_line(page, "ringmq_heap_bytes 4096");
	has_line(page, "ringmq_heap_max_bytes 8192");
	has_line(page, "ringmq_connections{shard=\"1\"} 3");
	has_line(page, "ringmq_packets_received_total{shard=\"0\"} 100");
	has_line(page, "ringmq_packets_received_total{shard=\"1\"} 200");
	has_line(page, "ringmq_bytes_sent_total{shard=\"1\"} 2000");
	has_line(page, "ringmq_messages_received_total{shard=\"1\"} 11");
	has_line(page, "ringmq_messages_dropped_total{shard=\"1\",cause=\"queue_full\"} 3");
	has_line(page, "ringmq_messages_dropped_total{shard=\"0\",cause=\"packet_size\"} 1");
	has_line(page, "ringmq_messages_dropped_total{shard=\"0\",cause=\"out_of_memory\"} 0");
	has_line(page, "ringmq_shard_wait_seconds_total{shard=\"0\"} 1.5");
	has_line(page, "ringmq_shard_loop_turns_total{shard=\"1\"} 77");
	has_line(page, "ringmq_shard_last_turn_age_seconds{shard=\"0\"} 0");
	has_line(page, "ringmq_shard_last_turn_age_seconds{shard=\"1\"} 0.25");
	free(page);
	free(s);
}

Test(metrics, not_ready_while_draining)
{
	struct stats_snapshot *s = sample_snapshot();
	char *page;

	s->draining = true;
	page = render(s);
	has_line(page, "ringmq_ready 0");
	free(page);
	free(s);
}

/* The name of the sample or family on @line into @buf. */
static void line_name(const char *line, char *buf, size_t cap)
{
	size_t n = strcspn(line, "{ ");

	cr_assert(n < cap);
	memcpy(buf, line, n);
	buf[n] = '\0';
}

Test(metrics, every_sample_follows_its_help_and_type_and_names_follow_the_conventions)
{
	struct stats_snapshot *s = sample_snapshot();
	char *page = render(s), *save = NULL, family[128] = "", type[16] = "", seen[8192] = " ";
	size_t seen_len = 1;
	unsigned families = 0, samples = 0;

	for (char *line = strtok_r(page, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[128], key[132];
		if (strncmp(line, "# HELP ", 7) == 0) {
			line_name(line + 7, family, sizeof(family));
			(void)snprintf(key, sizeof(key), " %s ", family);
			cr_assert(strstr(seen, key) == NULL, "family %s declared twice", family);
			seen_len += (size_t)snprintf(seen + seen_len, sizeof(seen) - seen_len, "%s ", family);
			cr_assert(seen_len < sizeof(seen));
			cr_assert(strlen(line) > 8 + strlen(family), "%s has an empty HELP", family);
			type[0] = '\0';
			families++;
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			line_name(line + 7, name, sizeof(name));
			cr_assert_str_eq(name, family, "TYPE of %s right after its HELP", name);
			(void)snprintf(type, sizeof(type), "%s", line + 8 + strlen(name));
			continue;
		}
		line_name(line, name, sizeof(name));
		cr_assert_str_eq(name, family, "sample %s outside its family (%s)", name, family);
		cr_assert(type[0], "sample %s before its TYPE", name);
		cr_assert_eq(strncmp(name, "ringmq_", 7), 0, "%s", name);
		bool total = strlen(name) > 6 && strcmp(name + strlen(name) - 6, "_total") == 0;
		cr_assert_eq(total, strcmp(type, "counter") == 0, "%s is a %s", name, type);
		samples++;
	}
	cr_assert_geq(families, 30);
	cr_assert_geq(samples, families);
	free(page);
	free(s);
}
