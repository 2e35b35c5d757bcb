/*
 * test_prom.c - the Prometheus text exposition writer (prom.c).
 *
 * Checks the exact bytes of each kind of line (HELP with its escapes,
 * TYPE, samples with and without labels, label value escapes), number
 * formatting (integers, the shortest double that reads back exactly, NaN
 * and the infinities as the format spells them), name validation, and
 * that a page much larger than the first allocation stays whole.  Bad
 * names and types are programmer errors: the asserts must fire.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "ringmq/prom.h"

Test(prom, help_and_type_lines_escape_backslash_and_newline)
{
	struct prom_buf b;

	prom_init(&b);
	prom_family(&b, "ringmq_x_total", "counter", "a \\ b\nc");
	cr_assert_str_eq(b.data, "# HELP ringmq_x_total a \\\\ b\\nc\n# TYPE ringmq_x_total counter\n");
	prom_done(&b);
	cr_assert_null(b.data);
	cr_assert_eq(b.len, 0);
}

Test(prom, samples_without_and_with_labels)
{
	struct prom_buf b;
	char labels[PROM_LABELS_BYTES];
	const char *kv[4] = {"shard", "3", "cause", "queue_full"};

	prom_init(&b);
	prom_u64(&b, "ringmq_a", NULL, 0);
	prom_u64(&b, "ringmq_b", prom_labels(labels, 2, kv), UINT64_MAX);
	cr_assert_str_eq(b.data, "ringmq_a 0\nringmq_b{shard=\"3\",cause=\"queue_full\"} 18446744073709551615\n");
	prom_done(&b);
}

Test(prom, label_values_escape_backslash_quote_and_newline)
{
	char labels[PROM_LABELS_BYTES];
	const char *kv[2] = {"version", "a\\b\"c\nd"};

	cr_assert_str_eq(prom_labels(labels, 1, kv), "{version=\"a\\\\b\\\"c\\nd\"}");
}

Test(prom, doubles_are_shortest_exact_and_special_values_spelled_out)
{
	struct prom_buf b;

	prom_init(&b);
	prom_double(&b, "m", NULL, 0.5);
	prom_double(&b, "m", NULL, 0.1);
	prom_double(&b, "m", NULL, 12345.0);
	prom_double(&b, "m", NULL, 1.0 / 3.0);
	prom_double(&b, "m", NULL, NAN);
	prom_double(&b, "m", NULL, INFINITY);
	prom_double(&b, "m", NULL, -INFINITY);
	cr_assert_str_eq(b.data, "m 0.5\nm 0.1\nm 12345\nm 0.33333333333333331\nm NaN\nm +Inf\nm -Inf\n");
	prom_done(&b);
}

Test(prom, names_are_validated)
{
	cr_assert(prom_name_ok("ringmq_bytes_sent_total"));
	cr_assert(prom_name_ok("a:b_C9"));
	cr_assert(prom_name_ok("_x"));
	cr_assert_not(prom_name_ok(""));
	cr_assert_not(prom_name_ok("9lives"));
	cr_assert_not(prom_name_ok("has-dash"));
	cr_assert_not(prom_name_ok("has space"));
	cr_assert_not(prom_name_ok(NULL));
}

Test(prom, a_bad_metric_name_is_a_programmer_error, .signal = SIGABRT)
{
	struct prom_buf b;

	prom_init(&b);
	prom_u64(&b, "bad-name", NULL, 1);
}

Test(prom, an_unknown_type_is_a_programmer_error, .signal = SIGABRT)
{
	struct prom_buf b;

	prom_init(&b);
	prom_family(&b, "ringmq_x", "histogramm", "help");
}

Test(prom, a_large_page_grows_and_stays_whole)
{
	struct prom_buf b;
	char line[64];
	size_t expect = 0;

	prom_init(&b);
	for (unsigned i = 0; i < 10000; i++) {
		prom_u64(&b, "ringmq_many", NULL, i);
		expect += (size_t)snprintf(line, sizeof(line), "ringmq_many %u\n", i);
	}
	cr_assert_not(b.oom);
	cr_assert_eq(b.len, expect);
	cr_assert_eq(strlen(b.data), expect);
	cr_assert(strstr(b.data, "ringmq_many 9999\n") != NULL);
	cr_assert_eq(strncmp(b.data, "ringmq_many 0\nringmq_many 1\n", 28), 0);
	prom_done(&b);
}
