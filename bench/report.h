/*
 * report.h - what a run measured, and how it is printed: the live
 * progress line, JSON lines and the final table; plus the /proc sampling
 * of the broker's CPU and memory.
 *
 * Owner:    the main thread.
 * Lifetime: struct result lives in main(); result_done() frees its
 *           histograms.
 * Shared:   never; totals_read() only loads the workers' relaxed atomics.
 */
#ifndef RINGMQ_BENCH_REPORT_H
#define RINGMQ_BENCH_REPORT_H

#include "bench.h"

/* A process's CPU time and resident memory at one moment. */
struct proc_sample {
	bool ok;
	uint64_t t_ns;
	uint64_t cpu_ticks; /* utime + stime, all threads */
	uint64_t rss_kib;
};

/** proc_sample() - read /proc/@pid/stat and /proc/@pid/status (pid 0: self). */
void proc_sample(pid_t pid, struct proc_sample *ret);

/** sys_busy_ticks() - user + nice + system ticks of all CPUs (/proc/stat). */
uint64_t sys_busy_ticks(void);

/** proc_cpu_pct() - CPU between two samples, percent of one core. */
double proc_cpu_pct(const struct proc_sample *a, const struct proc_sample *b);

/* The workers' counters summed. */
struct totals {
	uint64_t sent, expect, recv, recv_bytes, acked, ready, failed, proto, hs, hs_in, open, lat_sum, lat_n,
		stall_resets;
};

/** totals_read() - sum the workers' published counters now. */
void totals_read(const struct run *run, struct totals *ret);

struct result {
	double setup_s;
	double measure_s;
	struct totals m; /* deltas over the measure phase */
	struct totals end; /* at the end of the run */
	uint64_t lost, dups, gaps, foreign, unacked;
	struct hist *lat; /* end-to-end latency, measure phase */
	struct hist *hs_lat; /* connect scenario: TCP connect to CONNACK */
	struct proc_sample broker_base, broker_m0, broker_m1, self_m0, self_m1;
	uint64_t sys_m0, sys_m1; /* sys_busy_ticks() at the measure phase's edges */
	uint64_t tls_hs; /* cfg.tls: handshakes completed over the whole run */
	char tls_suite[TLS_SUITE_BYTES_MAX]; /* cfg.tls: what the first handshake negotiated */
	bool setup_complete;
	bool interrupted;
	bool ok;
	char verdict[ERR_BYTES_MAX];
};

/** result_compute() - after the workers joined: merge histograms, count
 * loss, duplicates and order, decide the verdict.  -ENOMEM on failure. */
int result_compute(struct run *run, struct result *res);

/** result_done() - free the histograms. */
void result_done(struct result *res);

/**
 * report_progress() - one progress update: a '\r' line on stderr when
 * @tty, a JSON line on stdout when cfg.json.  @prev is updated to @now.
 */
void report_progress(struct run *run, const char *phase, double t_s, struct totals *prev,
		     const struct totals *now, double dt_s, bool tty);

/** report_final() - the table (stdout, or stderr with --json) and the JSON result line. */
void report_final(const struct run *run, const struct result *res);

#endif
