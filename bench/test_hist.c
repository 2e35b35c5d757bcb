/*
 * test_hist.c - the latency histogram: bucket layout and percentiles of
 * known distributions.
 *
 * The histogram promises that every percentile it reports is within one
 * bucket (1/256 relative) above the exact order statistic and never
 * outside [min, max]; these tests compute the exact answer for uniform,
 * constant, bimodal and exponential-like inputs and hold it to that.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "hist.h"

/* The promised relative resolution, with a hair of float slack. */
#define TOLERANCE (1.0 / HIST_SUB_COUNT + 1e-9)

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The exact value of rank ceil(p% * n) in sorted @v. */
static uint64_t exact(const uint64_t *v, size_t n, double p)
{
	size_t rank = (size_t)ceil(p / 100.0 * (double)n);

	if (rank == 0)
		rank = 1;
	return v[rank - 1];
}

/* Reported @got for an exact @want: at or above it, within one bucket. */
static bool near(uint64_t got, uint64_t want)
{
	return got >= want && (double)(got - want) <= (double)want * TOLERANCE + 1;
}

static void check_against_exact(uint64_t *v, size_t n)
{
	static const double ps[] = {1, 10, 50, 90, 99, 99.9, 99.99};
	struct hist *h = hist_new();

	cr_assert_not_null(h);
	for (size_t i = 0; i < n; i++)
		hist_record(h, v[i]);
	qsort(v, n, sizeof(v[0]), cmp_u64);
	for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
		uint64_t want = exact(v, n, ps[i]);
		uint64_t got = hist_percentile(h, ps[i]);

		cr_assert(near(got, want), "p%g: %lu, the exact value is %lu", ps[i], (unsigned long)got,
			  (unsigned long)want);
	}
	cr_assert_eq(hist_percentile(h, 100), v[n - 1]);
	cr_assert_eq(hist_percentile(h, 0), v[0]);
	cr_assert_eq(h->count, n);
	hist_free(h);
}

Test(hist, small_values_are_exact)
{
	for (uint64_t v = 0; v < HIST_SUB_COUNT; v++) {
		cr_assert_eq(hist_bucket_of(v), v);
		cr_assert_eq(hist_bucket_high((uint32_t)v), v);
	}
}

Test(hist, every_value_lies_in_its_bucket_within_the_resolution)
{
	uint64_t v = 1;

	while (v < (UINT64_C(1) << HIST_VALUE_BITS)) {
		uint32_t b = hist_bucket_of(v);
		uint64_t high = hist_bucket_high(b);

		cr_assert(b < HIST_BUCKETS);
		cr_assert(high >= v, "value %lu above its bucket's high %lu", (unsigned long)v,
			  (unsigned long)high);
		cr_assert((double)(high - v) <= (double)v * TOLERANCE, "bucket of %lu too wide",
			  (unsigned long)v);
		if (b > 0)
			cr_assert(hist_bucket_high(b - 1) < v, "value %lu also fits bucket %u",
				  (unsigned long)v, b - 1);
		v += 1 + v / 1000;
	}
}

Test(hist, buckets_are_monotonic)
{
	for (uint32_t b = 1; b < HIST_BUCKETS; b++)
		cr_assert(hist_bucket_high(b) > hist_bucket_high(b - 1));
}

Test(hist, uniform_distribution_percentiles)
{
	size_t n = 1000000;
	uint64_t *v = malloc(n * sizeof(*v));

	for (size_t i = 0; i < n; i++)
		v[i] = i + 1; /* 1 .. 1,000,000 ns */
	check_against_exact(v, n);
	free(v);
}

Test(hist, constant_distribution_reports_the_constant)
{
	struct hist *h = hist_new();

	for (int i = 0; i < 1000; i++)
		hist_record(h, 123456);
	cr_assert_eq(hist_percentile(h, 50), 123456);
	cr_assert_eq(hist_percentile(h, 99.99), 123456);
	cr_assert_eq(h->max, 123456);
	cr_assert_eq(hist_mean(h), 123456.0);
	hist_free(h);
}

Test(hist, bimodal_distribution_splits_at_the_right_rank)
{
	struct hist *h = hist_new();

	/* 99 % at 10 us, 1 % at 5 ms: p99 is still 10 us, p99.9 is 5 ms. */
	for (int i = 0; i < 99000; i++)
		hist_record(h, 10000);
	for (int i = 0; i < 1000; i++)
		hist_record(h, 5000000);
	cr_assert(near(hist_percentile(h, 50), 10000));
	cr_assert(near(hist_percentile(h, 99), 10000));
	cr_assert_eq(hist_percentile(h, 99.1), 5000000); /* clamped to the max */
	cr_assert_eq(hist_percentile(h, 99.9), 5000000);
	hist_free(h);
}

Test(hist, exponential_like_distribution_percentiles)
{
	size_t n = 200000;
	uint64_t *v = malloc(n * sizeof(*v));
	uint64_t x = 88172645463325252ull;

	for (size_t i = 0; i < n; i++) {
		double u;

		x ^= x << 13; /* xorshift64: deterministic */
		x ^= x >> 7;
		x ^= x << 17;
		u = (double)(x >> 11) / 9007199254740992.0;
		v[i] = (uint64_t)(-log(1.0 - u) * 50000.0) + 1; /* mean 50 us */
	}
	check_against_exact(v, n);
	free(v);
}

Test(hist, merge_equals_recording_everything_in_one)
{
	struct hist *a = hist_new();
	struct hist *b = hist_new();
	struct hist *all = hist_new();

	for (uint64_t i = 1; i < 100000; i += 7) {
		hist_record(i % 2 ? a : b, i * 13);
		hist_record(all, i * 13);
	}
	hist_merge(a, b);
	cr_assert_eq(a->count, all->count);
	cr_assert_eq(a->min, all->min);
	cr_assert_eq(a->max, all->max);
	cr_assert_eq(a->sum, all->sum);
	for (double p = 0; p <= 100; p += 0.5)
		cr_assert_eq(hist_percentile(a, p), hist_percentile(all, p), "p%g", p);
	hist_free(a);
	hist_free(b);
	hist_free(all);
}

Test(hist, huge_values_clamp_to_the_last_bucket_but_keep_the_max)
{
	struct hist *h = hist_new();

	hist_record(h, UINT64_C(1) << 50);
	cr_assert_eq(hist_bucket_of(UINT64_C(1) << 50), HIST_BUCKETS - 1);
	cr_assert_eq(hist_percentile(h, 50), UINT64_C(1) << 50);
	cr_assert_eq(h->max, UINT64_C(1) << 50);
	hist_free(h);
}

Test(hist, empty_histogram_reports_zero)
{
	struct hist *h = hist_new();

	cr_assert_eq(hist_percentile(h, 99), 0);
	cr_assert_eq(hist_mean(h), 0.0);
	hist_free(h);
}
