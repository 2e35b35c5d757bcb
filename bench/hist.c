/*
 * hist.c - the log-linear latency histogram (see hist.h).
 *
 * Bucket layout: values 0..255 have a bucket each.  A value v >= 256 whose
 * highest set bit is b (8 <= b < 40) falls in group g = b - 8, which
 * covers [2^b, 2^(b+1)) in 256 buckets of width 2^g; its bucket is
 * 256 + g * 256 + ((v >> g) - 256).  The top bit and the next eight are
 * therefore kept, everything below is dropped: relative error < 1/256.
 */
#include "hist.h"

#include <stdlib.h>
#include <string.h>

struct hist *hist_new(void)
{
	struct hist *h = malloc(sizeof(*h));

	if (h)
		hist_reset(h);
	return h;
}

struct hist *hist_free(struct hist *h)
{
	free(h);
	return NULL;
}

void hist_reset(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

uint32_t hist_bucket_of(uint64_t v)
{
	unsigned top;
	unsigned g;

	if (v < HIST_SUB_COUNT)
		return (uint32_t)v;
	top = 63u - (unsigned)__builtin_clzll(v);
	if (top >= HIST_VALUE_BITS)
		return HIST_BUCKETS - 1;
	g = top - HIST_SUB_BITS;
	return HIST_SUB_COUNT + g * HIST_SUB_COUNT + (uint32_t)((v >> g) - HIST_SUB_COUNT);
}

uint64_t hist_bucket_high(uint32_t idx)
{
	uint32_t g;
	uint32_t sub;

	if (idx < HIST_SUB_COUNT)
		return idx;
	g = (idx - HIST_SUB_COUNT) / HIST_SUB_COUNT;
	sub = (idx - HIST_SUB_COUNT) % HIST_SUB_COUNT;
	return ((uint64_t)(HIST_SUB_COUNT + sub) << g) + (UINT64_C(1) << g) - 1;
}

void hist_record(struct hist *h, uint64_t v)
{
	h->counts[hist_bucket_of(v)]++;
	h->count++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	if (src->count == 0)
		return;
	for (uint32_t i = 0; i < HIST_BUCKETS; i++)
		dst->counts[i] += src->counts[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
	uint64_t rank;
	uint64_t seen = 0;
	uint64_t v;

	if (h->count == 0)
		return 0;
	if (p <= 0)
		return h->min;
	if (p >= 100)
		return h->max;
	/* The rank of the value wanted, 1-based: ceil(p% of count). */
	rank = (uint64_t)((p / 100.0) * (double)h->count);
	if ((double)rank < (p / 100.0) * (double)h->count)
		rank++;
	if (rank == 0)
		rank = 1;
	for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			v = hist_bucket_high(i);
			if (v > h->max)
				v = h->max;
			if (v < h->min)
				v = h->min;
			return v;
		}
	}
	return h->max;
}

double hist_mean(const struct hist *h)
{
	return h->count ? (double)h->sum / (double)h->count : 0.0;
}
