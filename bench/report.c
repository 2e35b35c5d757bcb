/*
 * report.c - turn the workers' counters into the figures of a run and
 * print them three ways: a live line for people, JSON lines for
 * machines (bench/compare reads them), and a final table.
 *
 * Throughput and latency cover the measure phase only; loss, duplicates
 * and ordering cover the whole run, because a message sent in the
 * warm-up may arrive while measuring and vice versa, and the drain phase
 * waits for every message still in flight before anything is counted as
 * lost.  Rates are per second of wall time; MB/s counts payload bytes
 * delivered (10^6 bytes), not protocol overhead.
 */
#include "report.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringmq/mqtt.h"

/* Longest /proc file read (status is ~1.5 KiB). */
#define PROC_BYTES_MAX 8192u

static ssize_t read_file(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return -1;
	n = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[n] = '\0';
	return (ssize_t)n;
}

void proc_sample(pid_t pid, struct proc_sample *ret)
{
	char path[64];
	char buf[PROC_BYTES_MAX];
	unsigned long long ut, st;
	const char *p;

	memset(ret, 0, sizeof(*ret));
	ret->t_ns = now_ns();
	snprintf(path, sizeof(path), pid ? "/proc/%d/stat" : "/proc/self/stat", (int)pid);
	if (read_file(path, buf, sizeof(buf)) < 0 || !(p = strrchr(buf, ')')))
		return;
	/* After "pid (comm)": state is field 3, utime 14, stime 15. */
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return;
	ret->cpu_ticks = ut + st;
	snprintf(path, sizeof(path), pid ? "/proc/%d/status" : "/proc/self/status", (int)pid);
	if (read_file(path, buf, sizeof(buf)) < 0 || !(p = strstr(buf, "VmRSS:")))
		return;
	ret->rss_kib = strtoull(p + 6, NULL, 10);
	ret->ok = true;
}

uint64_t sys_busy_ticks(void)
{
	char buf[PROC_BYTES_MAX];
	unsigned long long user, nice, sys;

	if (read_file("/proc/stat", buf, sizeof(buf)) < 0 ||
	    sscanf(buf, "cpu %llu %llu %llu", &user, &nice, &sys) != 3)
		return 0;
	return user + nice + sys;
}

/* CPU of every other process on the machine during the measure phase
 * (percent of one core): large values mean the figures are noisy. */
static double other_cpu_pct(const struct result *res)
{
	long hz = sysconf(_SC_CLK_TCK);
	double all;

	if (!res->sys_m1 || hz <= 0 || res->self_m1.t_ns <= res->self_m0.t_ns)
		return -1;
	all = (double)(res->sys_m1 - res->sys_m0) / (double)hz /
	      ((double)(res->self_m1.t_ns - res->self_m0.t_ns) / 1e9) * 100.0;
	all -= proc_cpu_pct(&res->self_m0, &res->self_m1);
	if (res->broker_m1.ok)
		all -= proc_cpu_pct(&res->broker_m0, &res->broker_m1);
	return all > 0 ? all : 0;
}

double proc_cpu_pct(const struct proc_sample *a, const struct proc_sample *b)
{
	long hz = sysconf(_SC_CLK_TCK);

	if (!a->ok || !b->ok || b->t_ns <= a->t_ns || hz <= 0)
		return -1;
	return (double)(b->cpu_ticks - a->cpu_ticks) / (double)hz / ((double)(b->t_ns - a->t_ns) / 1e9) *
	       100.0;
}

void totals_read(const struct run *run, struct totals *ret)
{
	memset(ret, 0, sizeof(*ret));
	for (uint32_t i = 0; i < run->nworkers; i++) {
		const struct wstats *s = &run->workers[i].st;

#define ADD(f, a) ret->f += atomic_load_explicit(&s->a, memory_order_relaxed)
		ADD(sent, sent);
		ADD(expect, expect);
		ADD(recv, recv);
		ADD(recv_bytes, recv_bytes);
		ADD(acked, acked);
		ADD(ready, ready);
		ADD(failed, failed);
		ADD(proto, proto_errors);
		ADD(hs, handshakes);
		ADD(hs_in, hs_inflight);
		ADD(open, open);
		ADD(lat_sum, lat_sum);
		ADD(lat_n, lat_n);
		ADD(stall_resets, stall_resets);
#undef ADD
	}
}

/* ------------------------------------------------------------------------
 * The verdict
 * ---------------------------------------------------------------------- */

static void count_loss(const struct run *run, struct result *res)
{
	uint64_t sent_all = 0;
	uint64_t unique_all = 0;

	for (uint32_t i = 0; i < run->npubs; i++) {
		sent_all += run->pubs[i].seq;
		res->unacked += run->cfg.qos ? run->pubs[i].seq - run->pubs[i].acked : 0;
	}
	for (uint32_t i = 0; i < run->nsubs; i++) {
		const struct sub *s = &run->subs[i];
		uint64_t expected = run->cfg.layout == LAYOUT_PAIRS ? run->pubs[s->base].seq : sent_all;
		uint64_t unique = s->recv - s->foreign - s->dups;

		res->dups += s->dups;
		res->gaps += s->gaps;
		res->foreign += s->foreign;
		unique_all += unique;
		if (run->cfg.layout == LAYOUT_SHARED)
			continue;
		if (expected > unique)
			res->lost += expected - unique;
		else
			res->dups += unique - expected;
	}
	if (run->cfg.layout == LAYOUT_SHARED) {
		if (sent_all > unique_all)
			res->lost = sent_all - unique_all;
		else
			res->dups += unique_all - sent_all;
	}
}

#define VERDICT(...) snprintf(res->verdict, sizeof(res->verdict), __VA_ARGS__)

static void decide(const struct run *run, struct result *res)
{
	const struct scenario *cfg = &run->cfg;
	bool reliable = cfg->qos > 0 && cfg->sub_qos > 0;
	const char *err = NULL;

	for (uint32_t i = 0; i < run->nworkers && !err; i++)
		if (run->workers[i].err[0])
			err = run->workers[i].err;
	res->ok = false;
	if (!res->setup_complete)
		VERDICT("setup incomplete: %llu of %u connections up%s%.160s",
			(unsigned long long)res->end.ready, run->nconns, err ? "; " : "", err ? err : "");
	else if (res->end.failed || res->end.proto)
		VERDICT("%llu failed connections, %llu protocol errors; first: %.160s",
			(unsigned long long)res->end.failed, (unsigned long long)res->end.proto,
			err ? err : "?");
	else if (res->foreign)
		VERDICT("%llu messages without our stamp or from unknown publishers",
			(unsigned long long)res->foreign);
	else if ((reliable || cfg->expect_exact) && (res->lost || res->dups))
		VERDICT("%llu lost, %llu duplicated or out of order (QoS %u)", (unsigned long long)res->lost,
			(unsigned long long)res->dups, cfg->qos);
	else if (res->unacked)
		VERDICT("%llu messages never acknowledged to the publisher",
			(unsigned long long)res->unacked);
	else if (res->interrupted)
		VERDICT("interrupted");
	else {
		res->ok = true;
		VERDICT("OK%s", res->lost || res->dups ? " (QoS 0: loss and duplicates allowed)" : "");
	}
}

int result_compute(struct run *run, struct result *res)
{
	res->lat = hist_new();
	res->hs_lat = hist_new();
	if (!res->lat || !res->hs_lat)
		return -1;
	for (uint32_t i = 0; i < run->nworkers; i++) {
		hist_merge(res->lat, run->workers[i].lat);
		hist_merge(res->hs_lat, run->workers[i].hs_lat);
		res->tls_hs += run->workers[i].tls_hs_n;
		if (!res->tls_suite[0])
			memcpy(res->tls_suite, run->workers[i].tls_suite, sizeof(res->tls_suite));
	}
	totals_read(run, &res->end);
	count_loss(run, res);
	decide(run, res);
	return 0;
}

void result_done(struct result *res)
{
	res->lat = hist_free(res->lat);
	res->hs_lat = hist_free(res->hs_lat);
}

/* ------------------------------------------------------------------------
 * Output
 * ---------------------------------------------------------------------- */

/* A JSON string of a configuration value: printable ASCII, quotes escaped. */
static void json_str(FILE *f, const char *key, const char *s)
{
	fprintf(f, "\"%s\":\"", key);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		fputc(isprint((unsigned char)*s) ? *s : '?', f);
	}
	fputs("\",", f);
}

static double per_s(uint64_t n, double s)
{
	return s > 0 ? (double)n / s : 0;
}

void report_progress(struct run *run, const char *phase, double t_s, struct totals *prev,
		     const struct totals *now, double dt_s, bool tty)
{
	uint64_t lat_n = now->lat_n - prev->lat_n;
	double lat_avg_us = lat_n ? (double)(now->lat_sum - prev->lat_sum) / (double)lat_n / 1e3 : 0;
	uint64_t lat_max = 0;

	for (uint32_t i = 0; i < run->nworkers; i++) {
		uint64_t m = atomic_exchange_explicit(&run->workers[i].st.lat_max, 0, memory_order_relaxed);

		lat_max = m > lat_max ? m : lat_max;
	}
	if (tty && run->cfg.layout == LAYOUT_CONNECT)
		fprintf(stderr, "\r%-7s %6.1fs  handshakes %8.0f/s  in progress %llu \033[K", phase, t_s,
			per_s(now->hs - prev->hs, dt_s), (unsigned long long)now->hs_in);
	else if (tty && run->cfg.layout == LAYOUT_IDLE)
		fprintf(stderr, "\r%-7s %6.1fs  connections %llu \033[K", phase, t_s,
			(unsigned long long)now->ready);
	else if (tty)
		fprintf(stderr,
			"\r%-7s %6.1fs  conns %llu  pub %9.0f/s  recv %9.0f/s  %7.2f MB/s  lat avg %8.1fus "
			"max %8.1fus \033[K",
			phase, t_s, (unsigned long long)now->ready, per_s(now->sent - prev->sent, dt_s),
			per_s(now->recv - prev->recv, dt_s),
			per_s(now->recv_bytes - prev->recv_bytes, dt_s) / 1e6, lat_avg_us,
			(double)lat_max / 1e3);
	if (run->cfg.json) {
		printf("{\"type\":\"progress\",\"phase\":\"%s\",\"t_s\":%.3f,\"connections\":%llu,"
		       "\"pub_per_s\":%.1f,\"recv_per_s\":%.1f,\"mb_per_s\":%.3f,\"handshakes_per_s\":%.1f,"
		       "\"lat_avg_us\":%.1f,\"lat_max_us\":%.1f}\n",
		       phase, t_s, (unsigned long long)now->ready, per_s(now->sent - prev->sent, dt_s),
		       per_s(now->recv - prev->recv, dt_s),
		       per_s(now->recv_bytes - prev->recv_bytes, dt_s) / 1e6, per_s(now->hs - prev->hs, dt_s),
		       lat_avg_us, (double)lat_max / 1e3);
		fflush(stdout);
	}
	*prev = *now;
}

static const double pcts[] = {50, 90, 99, 99.9, 99.99};
static const char *const pct_keys[] = {"p50", "p90", "p99", "p999", "p9999"};

static void json_hist(FILE *f, const char *prefix, const struct hist *h)
{
	for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
		fprintf(f, "\"%s_%s_us\":%.3f,", prefix, pct_keys[i],
			(double)hist_percentile(h, pcts[i]) / 1e3);
	fprintf(f, "\"%s_max_us\":%.3f,\"%s_mean_us\":%.3f,\"%s_samples\":%llu,", prefix,
		(double)(h->count ? h->max : 0) / 1e3, prefix, hist_mean(h) / 1e3, prefix,
		(unsigned long long)h->count);
}

static double rss_per_conn(const struct run *run, const struct result *res)
{
	if (!res->broker_base.ok || !res->broker_m1.ok || res->end.ready == 0 ||
	    res->broker_m1.rss_kib < res->broker_base.rss_kib)
		return -1;
	(void)run;
	return (double)(res->broker_m1.rss_kib - res->broker_base.rss_kib) * 1024.0 / (double)res->end.ready;
}

static void json_final(const struct run *run, const struct result *res)
{
	const struct scenario *cfg = &run->cfg;
	FILE *f = stdout;

	fputs("{\"type\":\"result\",", f);
	json_str(f, "scenario", cfg->name);
	json_str(f, "label", cfg->label);
	json_str(f, "layout", scenario_layout_name(cfg->layout));
	json_str(f, "verdict", res->verdict);
	fprintf(f,
		"\"ok\":%s,\"mqtt\":\"%s\",\"qos\":%u,\"sub_qos\":%d,\"payload\":%u,\"publishers\":%u,"
		"\"subscribers\":%u,\"connections\":%u,\"threads\":%u,\"inflight\":%u,\"rate\":%.1f,",
		res->ok ? "true" : "false", cfg->version == MQTT_V5 ? "5" : "3.1.1", cfg->qos, cfg->sub_qos,
		cfg->payload, run->npubs, run->nsubs, run->nconns, cfg->threads, cfg->inflight, cfg->rate);
	fprintf(f,
		"\"setup_s\":%.4f,\"setup_conn_per_s\":%.1f,\"measure_s\":%.4f,\"sent\":%llu,\"received\":%"
		"llu,"
		"\"pub_per_s\":%.1f,\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,\"handshakes_per_s\":%.1f,",
		res->setup_s, per_s(res->end.ready, res->setup_s), res->measure_s,
		(unsigned long long)res->end.sent, (unsigned long long)res->end.recv,
		per_s(res->m.sent, res->measure_s), per_s(res->m.recv, res->measure_s),
		per_s(res->m.recv_bytes, res->measure_s) / 1e6, per_s(res->m.hs, res->measure_s));
	json_hist(f, "lat", res->lat);
	json_hist(f, "hs", res->hs_lat);
	fprintf(f, "\"tls\":%s,\"tls_version\":\"%s\",\"tls_verified\":%s,\"tls_handshakes\":%llu,",
		cfg->tls ? "true" : "false", cfg->tls ? (cfg->tls_version == 12 ? "1.2" : "1.3") : "",
		cfg->tls && cfg->ca[0] ? "true" : "false", (unsigned long long)res->tls_hs);
	json_str(f, "tls_suite", res->tls_suite);
	fprintf(f,
		"\"expected\":%llu,\"lost\":%llu,\"dups\":%llu,\"gaps\":%llu,\"unacked\":%llu,\"failed\":%"
		"llu,"
		"\"proto_errors\":%llu,\"stall_resets\":%llu,",
		(unsigned long long)res->end.expect, (unsigned long long)res->lost,
		(unsigned long long)res->dups, (unsigned long long)res->gaps,
		(unsigned long long)res->unacked, (unsigned long long)res->end.failed,
		(unsigned long long)res->end.proto, (unsigned long long)res->end.stall_resets);
	fprintf(f,
		"\"broker_pid\":%d,\"broker_cpu_pct\":%.1f,\"broker_rss_kib\":%llu,\"broker_rss_base_kib\":%"
		"llu,"
		"\"rss_per_conn_bytes\":%.1f,\"bench_cpu_pct\":%.1f,\"other_cpu_pct\":%.1f}\n",
		(int)cfg->broker_pid, proc_cpu_pct(&res->broker_m0, &res->broker_m1),
		(unsigned long long)res->broker_m1.rss_kib, (unsigned long long)res->broker_base.rss_kib,
		rss_per_conn(run, res), proc_cpu_pct(&res->self_m0, &res->self_m1), other_cpu_pct(res));
	fflush(f);
}

static void table_hist(FILE *f, const char *what, const struct hist *h)
{
	fprintf(f, "  %-16s", what);
	for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
		fprintf(f, " %s %.1f", pct_keys[i], (double)hist_percentile(h, pcts[i]) / 1e3);
	fprintf(f, " max %.1f us (%llu samples)\n", (double)(h->count ? h->max : 0) / 1e3,
		(unsigned long long)h->count);
}

void report_final(const struct run *run, const struct result *res)
{
	const struct scenario *cfg = &run->cfg;
	FILE *f = cfg->json ? stderr : stdout;

	fprintf(f, "\nringmq-bench %s against %s at %s:%u\n", cfg->name, cfg->label, cfg->host, cfg->port);
	fprintf(f,
		"  %-16s %s, MQTT %s, QoS %u (subscribed %d), %u B payload, %u pub, %u sub, %u conns, %u "
		"threads,"
		" window %u (%s)%s\n",
		"load", scenario_layout_name(cfg->layout), cfg->version == MQTT_V5 ? "5" : "3.1.1", cfg->qos,
		cfg->sub_qos, cfg->payload, run->npubs, run->nsubs, run->nconns, cfg->threads, cfg->inflight,
		cfg->flow == FLOW_E2E ? "end to end" : "acks only",
		cfg->rate > 0 ? ", fixed rate" : ", max rate");
	if (cfg->tls)
		fprintf(f, "  %-16s %s, %llu handshakes, certificate %s\n", "tls",
			res->tls_suite[0] ? res->tls_suite : (cfg->tls_version == 12 ? "TLS 1.2" : "TLS 1.3"),
			(unsigned long long)res->tls_hs,
			cfg->ca[0] ? "chain verified (not the name)" : "not verified");
	if (cfg->layout != LAYOUT_CONNECT)
		fprintf(f, "  %-16s %llu connections in %.3f s (%.0f/s)\n", "setup",
			(unsigned long long)res->end.ready, res->setup_s, per_s(res->end.ready, res->setup_s));
	fprintf(f, "  %-16s %.3f s\n", "measured", res->measure_s);
	if (cfg->layout == LAYOUT_CONNECT) {
		fprintf(f, "  %-16s %.0f handshakes/s\n", "connect rate", per_s(res->m.hs, res->measure_s));
		table_hist(f, "handshake", res->hs_lat);
	} else if (cfg->layout != LAYOUT_IDLE) {
		fprintf(f, "  %-16s %.0f msg/s\n", "published", per_s(res->m.sent, res->measure_s));
		fprintf(f, "  %-16s %.0f msg/s, %.2f MB/s\n", "delivered", per_s(res->m.recv, res->measure_s),
			per_s(res->m.recv_bytes, res->measure_s) / 1e6);
		table_hist(f, "latency", res->lat);
	}
	if (res->broker_m1.ok)
		fprintf(f, "  %-16s CPU %.1f %%, RSS %llu KiB (%llu KiB before connecting)\n", "broker",
			proc_cpu_pct(&res->broker_m0, &res->broker_m1),
			(unsigned long long)res->broker_m1.rss_kib,
			(unsigned long long)res->broker_base.rss_kib);
	if (cfg->layout == LAYOUT_IDLE && rss_per_conn(run, res) >= 0)
		fprintf(f, "  %-16s %.0f bytes\n", "RSS per conn", rss_per_conn(run, res));
	fprintf(f, "  %-16s CPU %.1f %%\n", "load generator", proc_cpu_pct(&res->self_m0, &res->self_m1));
	fprintf(f, "  %-16s CPU %.1f %% (user + system time of everything else; high = noisy figures)\n",
		"other processes", other_cpu_pct(res));
	if (cfg->layout != LAYOUT_IDLE && cfg->layout != LAYOUT_CONNECT)
		fprintf(f,
			"  %-16s sent %llu, deliveries expected %llu, received %llu, lost %llu, dups %llu, "
			"gaps %llu,"
			" window resets %llu\n",
			"accounting", (unsigned long long)res->end.sent, (unsigned long long)res->end.expect,
			(unsigned long long)res->end.recv, (unsigned long long)res->lost,
			(unsigned long long)res->dups, (unsigned long long)res->gaps,
			(unsigned long long)res->end.stall_resets);
	fprintf(f, "  %-16s %s\n", "verdict", res->verdict);
	if (cfg->json)
		json_final(run, res);
}
