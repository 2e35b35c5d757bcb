/*
 * hist.h - a log-linear (HDR-style) histogram of nanosecond values.
 *
 * Values below HIST_SUB_COUNT are counted exactly; above, each power of
 * two is split into HIST_SUB_COUNT equal buckets, so any recorded value is
 * known to within 1 / HIST_SUB_COUNT (0.39 %) of itself, whatever its
 * magnitude.  Recording is an index computation and one increment: cheap
 * enough for every delivered message.  Percentiles report the highest
 * value equivalent to the bucket they fall in (as HdrHistogram does),
 * clamped to the exact maximum seen.
 *
 * Owner:    one thread (each load-generator worker has its own).
 * Lifetime: caller-allocated (hist_new/hist_free or embedded + hist_reset);
 *           merged into one by the main thread after the workers joined.
 * Shared:   never while recording.
 */
#ifndef RINGMQ_BENCH_HIST_H
#define RINGMQ_BENCH_HIST_H

#include <stdint.h>

/* 2^8 sub-buckets per power of two: 0.39 % resolution. */
#define HIST_SUB_BITS 8u
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS)
/* Values at or above 2^40 ns (18 minutes) land in the last bucket; the
 * exact maximum is still kept in `max`. */
#define HIST_VALUE_BITS 40u
#define HIST_BUCKETS (HIST_SUB_COUNT + (HIST_VALUE_BITS - HIST_SUB_BITS) * HIST_SUB_COUNT)

struct hist {
	uint64_t count;
	uint64_t sum;
	uint64_t min;
	uint64_t max;
	uint64_t counts[HIST_BUCKETS];
};

/** hist_new() - a zeroed histogram from the heap, or NULL. */
struct hist *hist_new(void);

/** hist_free() - frees @h; accepts NULL; returns NULL. */
struct hist *hist_free(struct hist *h);

/** hist_reset() - forget every recorded value. */
void hist_reset(struct hist *h);

/** hist_record() - count one value. */
void hist_record(struct hist *h, uint64_t v);

/** hist_merge() - add every count of @src to @dst. */
void hist_merge(struct hist *dst, const struct hist *src);

/**
 * hist_percentile() - the value at percentile @p (0..100) of the recorded
 * values: the highest value of the bucket holding the ceil(p% * count)-th
 * smallest value, clamped to [min, max].  0 when nothing was recorded.
 */
uint64_t hist_percentile(const struct hist *h, double p);

/** hist_mean() - the exact mean, 0 when empty. */
double hist_mean(const struct hist *h);

/** hist_bucket_of() - the bucket index of @v (exposed for the tests). */
uint32_t hist_bucket_of(uint64_t v);

/** hist_bucket_high() - the highest value bucket @idx holds. */
uint64_t hist_bucket_high(uint32_t idx);

#endif
