/*
 * main.c - ringmq-bench: parse the scenario, run its phases, report.
 *
 * The main thread does no I/O with the broker.  It starts the workers,
 * then walks the shared `phase` through setup (connect and subscribe
 * everything), warm-up, measure, drain and stop, sleeping between checks
 * and printing progress.  Counters are snapshotted at the edges of the
 * measure phase; the workers record latency only inside it.  The drain
 * phase ends when every delivery the sent messages should make has
 * arrived and every QoS 1/2 message is acknowledged, or after `drain`
 * seconds: whatever is missing then is lost.
 */
#include "report.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* How often the main thread looks at the counters. */
#define POLL_NS 10000000u
/* File descriptors kept spare beyond one per connection. */
#define FDS_SPARE 64u

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

struct ticker {
	uint64_t t0;
	uint64_t last;
	uint64_t interval_ns;
	bool tty;
	struct totals prev;
};

typedef bool (*phase_done_fn)(const struct run *run, const struct totals *t);

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};

	(void)nanosleep(&ts, NULL); /* an early wake-up (signal) only shortens the poll */
}

/* Waits until @done says so, a connection failed, or @deadline; prints
 * progress.  Returns true when @done did. */
static bool wait_phase(struct run *run, struct ticker *tk, const char *phase, uint64_t deadline,
		       phase_done_fn done)
{
	struct totals t;

	for (;;) {
		uint64_t now = now_ns();

		totals_read(run, &t);
		if (now - tk->last >= tk->interval_ns) {
			report_progress(run, phase, (double)(now - tk->t0) / 1e9, &tk->prev, &t,
					(double)(now - tk->last) / 1e9, tk->tty);
			tk->last = now;
		}
		if (done && done(run, &t))
			return true;
		if (now >= deadline || interrupted || t.failed || t.proto)
			return false;
		sleep_ns(deadline - now < POLL_NS ? deadline - now : POLL_NS);
	}
}

static bool setup_done(const struct run *run, const struct totals *t)
{
	return run->cfg.layout == LAYOUT_CONNECT || t->ready >= run->nconns;
}

static bool drained(const struct run *run, const struct totals *t)
{
	return t->recv >= t->expect && (run->cfg.qos == 0 || t->acked >= t->sent) && t->hs_in == 0;
}

static void totals_sub(struct totals *d, const struct totals *a, const struct totals *b)
{
	const uint64_t *pa = (const uint64_t *)a;
	const uint64_t *pb = (const uint64_t *)b;
	uint64_t *pd = (uint64_t *)d;

	_Static_assert(sizeof(struct totals) % sizeof(uint64_t) == 0, "totals is all uint64_t");
	for (size_t i = 0; i < sizeof(*d) / sizeof(uint64_t); i++)
		pd[i] = pa[i] - pb[i];
}

static void set_phase(struct run *run, enum phase ph)
{
	atomic_store_explicit(&run->phase, ph, memory_order_release);
}

static uint64_t secs(double s)
{
	return (uint64_t)(s * 1e9);
}

/* The load phases: warm-up, measure, drain.  Fills res->m and the samples. */
static void run_load(struct run *run, struct result *res, struct ticker *tk)
{
	const struct scenario *cfg = &run->cfg;
	struct totals m0, m1;

	if (cfg->warmup_s > 0) {
		set_phase(run, PHASE_WARMUP);
		(void)wait_phase(run, tk, "warmup", now_ns() + secs(cfg->warmup_s), NULL);
	}
	totals_read(run, &m0);
	proc_sample(cfg->broker_pid, &res->broker_m0);
	proc_sample(0, &res->self_m0);
	res->sys_m0 = sys_busy_ticks();
	set_phase(run, PHASE_MEASURE);
	(void)wait_phase(run, tk, "measure", now_ns() + secs(cfg->duration_s), NULL);
	totals_read(run, &m1);
	proc_sample(cfg->broker_pid, &res->broker_m1);
	proc_sample(0, &res->self_m1);
	res->sys_m1 = sys_busy_ticks();
	res->measure_s = (double)(res->self_m1.t_ns - res->self_m0.t_ns) / 1e9;
	totals_sub(&res->m, &m1, &m0);
	set_phase(run, PHASE_DRAIN);
	(void)wait_phase(run, tk, "drain", now_ns() + secs(cfg->drain_s), drained);
}

static int start_workers(struct run *run, char *err)
{
	for (uint32_t i = 0; i < run->nworkers; i++) {
		int r = pthread_create(&run->workers[i].thread, NULL, worker_main, &run->workers[i]);

		if (r) {
			snprintf(err, ERR_BYTES_MAX, "pthread_create: %s", strerror(r));
			run->nworkers = i;
			return -r;
		}
	}
	/* Each worker makes its own ring (SINGLE_ISSUER); wait for all of them
	 * so that cross-worker wake-ups have a target. */
	for (uint32_t i = 0; i < run->nworkers; i++) {
		int fd;

		while ((fd = atomic_load_explicit(&run->workers[i].ring_fd, memory_order_acquire)) == -1)
			sleep_ns(POLL_NS / 10);
		if (fd < 0) {
			snprintf(err, ERR_BYTES_MAX, "worker %u: %.200s", i, run->workers[i].err);
			return -EIO;
		}
	}
	return 0;
}

static void raise_nofile(uint32_t conns)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)conns + FDS_SPARE;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	(void)setrlimit(RLIMIT_NOFILE, &rl); /* a shortfall shows as EMFILE, with a hint */
	if (rl.rlim_cur < want)
		fprintf(stderr,
			"ringmq-bench: warning: %u connections need %llu fds, the hard limit is %llu\n",
			conns, (unsigned long long)want, (unsigned long long)rl.rlim_max);
}

static int execute(struct run *run, struct result *res, char *err)
{
	const struct scenario *cfg = &run->cfg;
	struct ticker tk = {.interval_ns = secs(cfg->interval_s > 0 ? cfg->interval_s : 1)};
	uint64_t t0;
	int r;

	tk.tty = cfg->progress == 1 || (cfg->progress == -1 && isatty(STDERR_FILENO));
	proc_sample(cfg->broker_pid, &res->broker_base);
	if ((r = start_workers(run, err)) < 0) {
		set_phase(run, PHASE_STOP);
		return r;
	}
	t0 = tk.t0 = tk.last = now_ns();
	res->setup_complete = wait_phase(run, &tk, "setup", t0 + secs(cfg->setup_timeout_s), setup_done);
	res->setup_s = (double)(now_ns() - t0) / 1e9;
	if (res->setup_complete && !interrupted)
		run_load(run, res, &tk);
	res->interrupted = interrupted;
	set_phase(run, PHASE_STOP);
	if (tk.tty)
		fputc('\n', stderr);
	return 0;
}

int main(int argc, char **argv)
{
	static struct run run;
	struct result res = {0};
	char err[ERR_BYTES_MAX] = "";
	int r;

	scenario_defaults(&run.cfg);
	r = scenario_parse_args(&run.cfg, argc, argv, err);
	if (r == 1)
		return 0;
	if (r < 0 || scenario_check(&run.cfg, err) < 0 || run_build(&run, err) < 0) {
		fprintf(stderr, "ringmq-bench: %s\n", err);
		run_free(&run);
		return 2;
	}
	raise_nofile(run.nconns);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	r = execute(&run, &res, err);
	for (uint32_t i = 0; i < run.nworkers; i++)
		pthread_join(run.workers[i].thread, NULL);
	if (r < 0) {
		fprintf(stderr, "ringmq-bench: %s\n", err);
		run_free(&run);
		return 2;
	}
	if (result_compute(&run, &res) < 0) {
		fprintf(stderr, "ringmq-bench: out of memory\n");
		run_free(&run);
		return 2;
	}
	report_final(&run, &res);
	result_done(&res);
	run_free(&run);
	return res.ok ? 0 : 1;
}
