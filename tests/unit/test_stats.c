/*
 * test_stats.c - the pure parts of stats.c: mosquitto's load-average step,
 * summing shards into a snapshot, the health and readiness predicates,
 * the drop-cause names and the heap figure.
 *
 * The load average is checked against its closed forms: one step from 0
 * after an interval with D events is D * 60 / dt * (1 - exp(-dt / W)); a
 * constant rate converges to that rate; no events decay the average by
 * exp(-dt / W) per step; and uneven intervals follow the recurrence
 * rate + exp(-dt / W) * (previous - rate), written out by hand.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ringmq/stats.h"

static bool close_to(double a, double b)
{
	return fabs(a - b) <= 1e-9 * (fabs(a) + fabs(b) + 1);
}

Test(stats, load_first_step_matches_the_closed_form)
{
	double v = stats_load_next(0, 54, 1.0, 60.0);
	double expect = 54.0 * 60.0 * (1 - exp(-1.0 / 60.0));

	cr_assert(close_to(v, expect), "got %.6f, expected %.6f", v, expect);
	cr_assert(v > 53.0 && v < 54.0, "54 events in 1 s: about 53.55 per minute on the 1 min window");
}

Test(stats, load_converges_to_a_constant_rate_per_minute)
{
	double v1 = 0, v5 = 0, v15 = 0;

	/* 10 events every 10 s = 60 per minute, for six hours (24 windows of 15 min). */
	for (int i = 0; i < 2160; i++) {
		v1 = stats_load_next(v1, 10, 10.0, 60.0);
		v5 = stats_load_next(v5, 10, 10.0, 300.0);
		v15 = stats_load_next(v15, 10, 10.0, 900.0);
	}
	cr_assert(close_to(v1, 60.0), "1 min average %.6f", v1);
	cr_assert(fabs(v5 - 60.0) < 1e-6, "5 min average %.6f", v5);
	cr_assert(fabs(v15 - 60.0) < 1e-6, "15 min average %.6f", v15);
}

Test(stats, load_decays_by_exp_of_minus_interval_over_window_without_events)
{
	double v = 100.0;

	v = stats_load_next(v, 0, 5.0, 300.0);
	cr_assert(close_to(v, 100.0 * exp(-5.0 / 300.0)));
	v = stats_load_next(v, 0, 5.0, 300.0);
	cr_assert(close_to(v, 100.0 * exp(-10.0 / 300.0)));
}

Test(stats, load_follows_the_recurrence_with_uneven_intervals)
{
	double v = 0, expect = 0;
	const uint64_t deltas[] = {7, 0, 120, 3, 3};
	const double dts[] = {1.0, 2.5, 10.0, 0.5, 60.0};

	for (int i = 0; i < 5; i++) {
		double rate = (double)deltas[i] * 60.0 / dts[i];
		expect = rate + exp(-dts[i] / 60.0) * (expect - rate);
		v = stats_load_next(v, deltas[i], dts[i], 60.0);
		cr_assert(close_to(v, expect), "step %d: %.9f vs %.9f", i, v, expect);
	}
}

Test(stats, snapshot_sum_adds_every_shard_once)
{
	struct stats_snapshot *s = stats_snapshot_new(4);

	cr_assert_not_null(s);
	s->nshards = 4;
	for (unsigned i = 0; i < 4; i++) {
		s->shard[i].pkts_in = 10 + i;
		s->shard[i].bytes_out = 1000u * (i + 1);
		s->shard[i].drops[SHARD_DROP_QUEUE_FULL] = i;
		s->shard[i].last_turn_ms = 500 + i;
	}
	stats_snapshot_sum(s);
	cr_assert_eq(s->total.pkts_in, 10 + 11 + 12 + 13);
	cr_assert_eq(s->total.bytes_out, 10000);
	cr_assert_eq(s->total.drops[SHARD_DROP_QUEUE_FULL], 6);
	cr_assert_eq(s->total.drops[SHARD_DROP_OUTPUT_LIMIT], 0);
	cr_assert_eq(s->total.last_turn_ms, 500, "the total's last turn is the oldest shard's");
	stats_snapshot_sum(s);
	cr_assert_eq(s->total.pkts_in, 46, "summing again does not add twice");
	free(s);
}

Test(stats, a_shard_that_has_not_turned_within_the_limit_is_stalled)
{
	struct stats_snapshot *s = stats_snapshot_new(3);

	s->nshards = 3;
	s->now_ms = 100000;
	for (unsigned i = 0; i < 3; i++)
		s->shard[i].last_turn_ms = 99950;
	cr_assert_eq(stats_stalled_shard(s, 5000), -1);
	s->shard[1].last_turn_ms = 100000 - 5000;
	cr_assert_eq(stats_stalled_shard(s, 5000), -1, "exactly at the limit is still turning");
	s->shard[1].last_turn_ms = 100000 - 5001;
	cr_assert_eq(stats_stalled_shard(s, 5000), 1);
	s->shard[1].last_turn_ms = 99999;
	s->shard[2].last_turn_ms = 0;
	cr_assert_eq(stats_stalled_shard(s, 5000), 2, "a shard that never turned is stalled");
	s->shard[2].last_turn_ms = 100001;
	cr_assert_eq(stats_stalled_shard(s, 5000), -1, "a turn after the snapshot's clock is fine");
	free(s);
}

Test(stats, readiness_needs_started_and_not_draining_or_stopping)
{
	struct stats_snapshot s = {0};

	cr_assert_str_eq(stats_not_ready(&s), "starting");
	s.started = true;
	cr_assert_null(stats_not_ready(&s));
	s.draining = true;
	cr_assert_str_eq(stats_not_ready(&s), "draining");
	s.stopping = true;
	cr_assert_str_eq(stats_not_ready(&s), "stopping");
}

Test(stats, every_drop_cause_has_a_distinct_snake_case_name)
{
	for (unsigned i = 0; i < SHARD_DROP_CAUSES; i++) {
		const char *n = stats_drop_name(i);
		cr_assert_not_null(n);
		cr_assert(strspn(n, "abcdefghijklmnopqrstuvwxyz_") == strlen(n), "%s", n);
		for (unsigned k = 0; k < i; k++)
			cr_assert_str_neq(n, stats_drop_name(k));
	}
	cr_assert_str_eq(stats_drop_name(SHARD_DROP_QUEUE_FULL), "queue_full");
}

Test(stats, an_unknown_drop_cause_is_a_programmer_error, .signal = SIGABRT)
{
	(void)stats_drop_name(SHARD_DROP_CAUSES);
}

Test(stats, the_heap_figure_grows_with_an_allocation)
{
	uint64_t before = stats_heap_bytes();
	char *p = malloc(8 << 20);

	cr_assert_not_null(p);
	memset(p, 1, 8 << 20); /* touched, so no allocator can defer it */
	cr_assert_geq(stats_heap_bytes(), before + (8 << 20) - 4096,
		      "heap %llu -> %llu after 8 MiB", (unsigned long long)before,
		      (unsigned long long)stats_heap_bytes());
	free(p);
}
