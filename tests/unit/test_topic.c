/*
 * test_topic.c - topic name / filter validation and matching (topic.c).
 *
 * Every example of MQTT 3.1.1 / 5.0 sections 4.7.1.2, 4.7.1.3, 4.7.2 and
 * 4.7.3 is a table row citing its statement id, followed by edge cases.
 * Each input is copied into a heap buffer of exactly its length, so that
 * AddressSanitizer catches any read past the (ptr, len) view: nothing in
 * topic.c may rely on a NUL terminator.  A small independent reference
 * matcher (split both strings into levels, compare level lists) checks
 * topic_match() on random pairs as well.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ringmq/limits.h"
#include "ringmq/topic.h"

#define S(x) (const uint8_t *)(x), strlen(x)

/* An exact-length heap copy of @s (without its NUL). */
static uint8_t *dup_exact(const char *s, size_t *ret_len)
{
	size_t n = strlen(s);
	uint8_t *p = malloc(n ? n : 1);

	cr_assert_not_null(p);
	memcpy(p, s, n);
	*ret_len = n;
	return p;
}

static bool match_str(const char *f, const char *t)
{
	size_t fl, tl;
	uint8_t *fb = dup_exact(f, &fl), *tb = dup_exact(t, &tl);
	bool m = topic_match(fb, fl, tb, tl);

	free(fb);
	free(tb);
	return m;
}

static int filter_str(const char *f, uint32_t levels_max)
{
	size_t l;
	uint8_t *b = dup_exact(f, &l);
	int r = topic_filter_check(b, l, levels_max);

	free(b);
	return r;
}

static int name_str(const char *t, uint32_t levels_max)
{
	size_t l;
	uint8_t *b = dup_exact(t, &l);
	int r = topic_name_check(b, l, levels_max);

	free(b);
	return r;
}

struct match_row {
	const char *filter;
	const char *topic;
	bool match;
	const char *ref;
};

static const struct match_row match_rows[] = {
	/* 4.7.1.2 Multi-level wildcard. */
	{"sport/tennis/player1/#", "sport/tennis/player1", true, "4.7.1.2 [MQTT-4.7.1-2]"},
	{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true, "4.7.1.2"},
	{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true, "4.7.1.2"},
	{"sport/#", "sport", true, "4.7.1.2 [MQTT-4.7.1-2] parent level"},
	{"#", "sport/tennis/player1", true, "4.7.1.2 '#' matches every message"},
	{"#", "sport", true, "4.7.1.2"},
	{"#", "/", true, "4.7.1.2"},
	{"#", "a//b/", true, "4.7.1.2"},
	{"sport/tennis/#", "sport/tennis", true, "4.7.1.2"},
	{"sport/tennis/#", "sport/tennis/x/y/z", true, "4.7.1.2"},
	{"sport/tennis/#", "sport/tenni", false, "4.7.1.2"},
	{"sport/tennis/#", "sport", false, "4.7.1.2"},
	{"sport/tennis/player1/#", "sport/tennis/player2", false, "4.7.1.2"},
	/* 4.7.1.3 Single level wildcard. */
	{"sport/tennis/+", "sport/tennis/player1", true, "4.7.1.3"},
	{"sport/tennis/+", "sport/tennis/player2", true, "4.7.1.3"},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false, "4.7.1.3"},
	{"sport/+", "sport", false, "4.7.1.3"},
	{"sport/+", "sport/", true, "4.7.1.3 [MQTT-4.7.1-3] empty level"},
	{"+", "sport", true, "4.7.1.3"},
	{"+/tennis/#", "sport/tennis/player1", true, "4.7.1.3"},
	{"+/tennis/#", "sport/tennis", true, "4.7.1.3"},
	{"sport/+/player1", "sport/tennis/player1", true, "4.7.1.3"},
	{"sport/+/player1", "sport//player1", true, "4.7.1.3 empty level"},
	{"sport/+/player1", "sport/tennis/player2", false, "4.7.1.3"},
	{"+/+", "/finance", true, "4.7.1.3 \"/finance\" matches \"+/+\""},
	{"/+", "/finance", true, "4.7.1.3 \"/finance\" matches \"/+\""},
	{"+", "/finance", false, "4.7.1.3 \"/finance\" does not match \"+\""},
	/* 4.7.2 Topics beginning with $. */
	{"#", "$SYS/x", false, "4.7.2 [MQTT-4.7.2-1]"},
	{"#", "$SYS", false, "4.7.2 [MQTT-4.7.2-1]"},
	{"+", "$SYS", false, "4.7.2 [MQTT-4.7.2-1]"},
	{"+/monitor/Clients", "$SYS/monitor/Clients", false, "4.7.2 [MQTT-4.7.2-1]"},
	{"+/#", "$SYS/monitor", false, "4.7.2 [MQTT-4.7.2-1]"},
	{"$SYS/#", "$SYS/monitor/Clients", true, "4.7.2"},
	{"$SYS/#", "$SYS", true, "4.7.2 [MQTT-4.7.1-2]"},
	{"$SYS/monitor/+", "$SYS/monitor/Clients", true, "4.7.2"},
	{"$SYS/+/Clients", "$SYS/monitor/Clients", true, "4.7.2 wildcard below the first level"},
	{"$SYS/#", "$SYSX/a", false, "4.7.2"},
	{"a/#", "a/$SYS", true, "4.7.2 only the first level is special"},
	{"+/x", "a$/x", true, "4.7.2 '$' only counts as the first byte"},
	/* 4.7.3 Topic semantic and usage. */
	{"ACCOUNTS", "Accounts", false, "4.7.3 case sensitive"},
	{"Accounts", "Accounts", true, "4.7.3"},
	{"Accounts payable", "Accounts payable", true, "4.7.3 space is a valid character"},
	{"/finance", "finance", false, "4.7.3 leading '/' makes a distinct topic"},
	{"finance", "/finance", false, "4.7.3"},
	{"finance/", "finance", false, "4.7.3 trailing '/' adds an empty level"},
	{"finance", "finance/", false, "4.7.3"},
	{"/", "/", true, "4.7.3 '/' is two empty levels"},
	{"+/+", "/", true, "4.7.3 [MQTT-4.7.1-3] two empty levels"},
	{"+", "/", false, "4.7.3"},
	{"/+", "/", true, "4.7.3"},
	{"+/", "/", true, "4.7.3"},
	{"/#", "/", true, "4.7.3 [MQTT-4.7.1-2]"},
	{"#", "/", true, "4.7.1.2"},
	/* Edge cases: empty levels are levels, no normalisation. */
	{"a//b", "a//b", true, "4.7.3 empty level"},
	{"a//b", "a/b", false, "4.7.3 no collapsing of '//'"},
	{"a/+/b", "a//b", true, "[MQTT-4.7.1-3] '+' matches an empty level"},
	{"a/+/+", "a//", true, "[MQTT-4.7.1-3]"},
	{"a/+", "a//", false, "[MQTT-4.7.1-3] exactly one level"},
	{"a/#", "a//", true, "[MQTT-4.7.1-2]"},
	{"a/+/#", "a", false, "[MQTT-4.7.1-2] '#' covers the parent only"},
	{"a/+/#", "a/", true, "[MQTT-4.7.1-2]"},
	{"a/b/#", "a/bc", false, "4.7.1.2"},
	{"a/b", "a/bc", false, "4.7.3 prefix is not a match"},
	{"a/bc", "a/b", false, "4.7.3"},
	{"a/b/", "a/b/", true, "4.7.3"},
	{"+/+/+", "a/b", false, "4.7.1.3 level count"},
	{"$SYS", "$SYS", true, "4.7.2"},
	{"$share/g/a", "$share/g/a", true, "4.8 no special meaning in matching"},
	{"\xc3\xa9/+", "\xc3\xa9/x", true, "4.7.3 UTF-8 is compared byte-wise"},
};

Test(topic, match_table_from_the_spec)
{
	for (size_t i = 0; i < sizeof(match_rows) / sizeof(match_rows[0]); i++) {
		const struct match_row *r = &match_rows[i];

		/* topic_match() requires valid inputs: check the table itself. */
		cr_assert_eq(filter_str(r->filter, TOPIC_LEVELS_MAX), 0, "row filter \"%s\"", r->filter);
		cr_assert_eq(name_str(r->topic, TOPIC_LEVELS_MAX), 0, "row topic \"%s\"", r->topic);
		cr_expect_eq(match_str(r->filter, r->topic), r->match, "filter \"%s\" topic \"%s\": expected %s (%s)",
			     r->filter, r->topic, r->match ? "match" : "no match", r->ref);
	}
}

struct check_row {
	const char *s;
	int res;
	const char *ref;
};

static const struct check_row filter_rows[] = {
	{"sport/tennis/player1/#", 0, "4.7.1.2"},
	{"sport/#", 0, "4.7.1.2"},
	{"#", 0, "4.7.1.2"},
	{"sport/tennis/#", 0, "4.7.1.2"},
	{"sport/tennis#", -EINVAL, "4.7.1.2 [MQTT-4.7.1-2]"},
	{"sport/tennis/#/ranking", -EINVAL, "4.7.1.2 [MQTT-4.7.1-2]"},
	{"+", 0, "4.7.1.3"},
	{"+/tennis/#", 0, "4.7.1.3"},
	{"sport+", -EINVAL, "4.7.1.3 [MQTT-4.7.1-3]"},
	{"sport/+/player1", 0, "4.7.1.3"},
	{"+/+", 0, "4.7.1.3"},
	{"/+", 0, "4.7.1.3"},
	{"", -EINVAL, "4.7.3 [MQTT-4.7.3-1]"},
	{"/", 0, "4.7.3"},
	{"//", 0, "4.7.3"},
	{"a/", 0, "4.7.3"},
	{"$SYS/#", 0, "4.7.2"},
	{"#/", -EINVAL, "[MQTT-4.7.1-2] '#' must be last"},
	{"#/a", -EINVAL, "[MQTT-4.7.1-2]"},
	{"##", -EINVAL, "[MQTT-4.7.1-2]"},
	{"a#", -EINVAL, "[MQTT-4.7.1-2]"},
	{"#a", -EINVAL, "[MQTT-4.7.1-2]"},
	{"a/#b", -EINVAL, "[MQTT-4.7.1-2]"},
	{"++", -EINVAL, "[MQTT-4.7.1-3]"},
	{"+a", -EINVAL, "[MQTT-4.7.1-3]"},
	{"a/+b/c", -EINVAL, "[MQTT-4.7.1-3]"},
	{"a/b+", -EINVAL, "[MQTT-4.7.1-3]"},
	{"+/#", 0, "[MQTT-4.7.1-3]"},
	{"+#", -EINVAL, "[MQTT-4.7.1-2]"},
	{"/#", 0, "4.7.1.2"},
	{"+/+/+/", 0, "4.7.1.3"},
	{"$share/g/a", 0, "4.8 the prefix is not special here"},
	{"Accounts payable", 0, "4.7.3"},
};

Test(topic, filter_validity_table)
{
	for (size_t i = 0; i < sizeof(filter_rows) / sizeof(filter_rows[0]); i++) {
		const struct check_row *r = &filter_rows[i];

		cr_expect_eq(filter_str(r->s, TOPIC_LEVELS_MAX), r->res, "filter \"%s\" (%s)", r->s, r->ref);
	}
}

static const struct check_row name_rows[] = {
	{"sport/tennis/player1", 0, "4.7.1.2"},
	{"", -EINVAL, "4.7.3 [MQTT-4.7.3-1]"},
	{"/", 0, "4.7.3"},
	{"/finance", 0, "4.7.3"},
	{"finance/", 0, "4.7.3"},
	{"a//b", 0, "4.7.3"},
	{"$SYS/monitor/Clients", 0, "4.7.2"},
	{"sport/+", -EINVAL, "[MQTT-4.7.1-1] [MQTT-3.3.2-2]"},
	{"sport/#", -EINVAL, "[MQTT-4.7.1-1] [MQTT-3.3.2-2]"},
	{"+", -EINVAL, "[MQTT-3.3.2-2]"},
	{"#", -EINVAL, "[MQTT-3.3.2-2]"},
	{"a+b", -EINVAL, "[MQTT-3.3.2-2] not even inside a level"},
	{"a#b", -EINVAL, "[MQTT-3.3.2-2]"},
	{"Accounts payable", 0, "4.7.3"},
	{"$share/g/a", 0, "4.8 a name may look like a shared filter"},
};

Test(topic, name_validity_table)
{
	for (size_t i = 0; i < sizeof(name_rows) / sizeof(name_rows[0]); i++) {
		const struct check_row *r = &name_rows[i];

		cr_expect_eq(name_str(r->s, TOPIC_LEVELS_MAX), r->res, "name \"%s\" (%s)", r->s, r->ref);
	}
}

Test(topic, levels_are_slashes_plus_one_and_bounded)
{
	cr_expect_eq(name_str("a", 1), 0);
	cr_expect_eq(name_str("a/b", 1), -E2BIG);
	cr_expect_eq(name_str("a/b", 2), 0);
	cr_expect_eq(name_str("/", 1), -E2BIG, "\"/\" has two levels");
	cr_expect_eq(name_str("/", 2), 0);
	cr_expect_eq(name_str("a/b/c/", 3), -E2BIG);
	cr_expect_eq(name_str("a/b/c/", 4), 0);
	cr_expect_eq(filter_str("+/+/#", 2), -E2BIG);
	cr_expect_eq(filter_str("+/+/#", 3), 0);
	cr_expect_eq(filter_str("//", 2), -E2BIG);
	cr_expect_eq(filter_str("//", 3), 0);
	cr_expect_eq(name_str("a", 0), -E2BIG);
	/* A wildcard is reported before the level count. */
	cr_expect_eq(name_str("a/+/c", 1), -EINVAL);
	cr_expect_eq(filter_str("a/b+/c", 1), -EINVAL);
}

Test(topic, long_topics_at_the_level_limit)
{
	size_t n = 2 * TOPIC_LEVELS_MAX - 1; /* "a/a/.../a": TOPIC_LEVELS_MAX levels */
	uint8_t *b = malloc(n + 2);

	cr_assert_not_null(b);
	for (size_t i = 0; i < n; i++)
		b[i] = (i % 2) ? '/' : 'a';
	cr_expect_eq(topic_name_check(b, n, TOPIC_LEVELS_MAX), 0);
	cr_expect_eq(topic_filter_check(b, n, TOPIC_LEVELS_MAX), 0);
	b[n] = '/';
	b[n + 1] = 'a';
	cr_expect_eq(topic_name_check(b, n + 2, TOPIC_LEVELS_MAX), -E2BIG);
	cr_expect_eq(topic_filter_check(b, n + 2, TOPIC_LEVELS_MAX), -E2BIG);
	cr_expect(topic_match(b, n + 2, b, n + 2));
	b[n + 1] = '#';
	cr_expect(topic_match(b, n + 2, b, n));
	free(b);
}

Test(topic, has_wildcard)
{
	cr_expect(topic_has_wildcard((const uint8_t *)"a/+", 3));
	cr_expect(topic_has_wildcard((const uint8_t *)"#", 1));
	cr_expect(topic_has_wildcard((const uint8_t *)"a#", 2));
	cr_expect_not(topic_has_wildcard((const uint8_t *)"a/b", 3));
	cr_expect_not(topic_has_wildcard((const uint8_t *)"", 0));
	/* Only @len bytes count. */
	cr_expect_not(topic_has_wildcard((const uint8_t *)"ab#", 2));
}

struct share_row {
	const char *s;
	int res;
	const char *group;
	const char *filter;
	const char *ref;
};

static const struct share_row share_rows[] = {
	{"$share/group/a/b", 1, "group", "a/b", "4.8.2"},
	{"$share/g/#", 1, "g", "#", "4.8.2"},
	{"$share/g/+/x", 1, "g", "+/x", "4.8.2"},
	{"$share/g//a", 1, "g", "/a", "4.8.2 the filter may start with '/'"},
	{"$share/g/$SYS/#", 1, "g", "$SYS/#", "4.8.2"},
	{"$share/group", -EINVAL, NULL, NULL, "[MQTT-4.8.2-2] a filter must follow"},
	{"$share/group/", -EINVAL, NULL, NULL, "[MQTT-4.8.2-2] the filter is empty"},
	{"$share//a", -EINVAL, NULL, NULL, "[MQTT-4.8.2-1] empty group"},
	{"$share/", -EINVAL, NULL, NULL, "[MQTT-4.8.2-1]"},
	{"$share/g+/a", -EINVAL, NULL, NULL, "[MQTT-4.8.2-2] no '+' in the group"},
	{"$share/+/a", -EINVAL, NULL, NULL, "[MQTT-4.8.2-2]"},
	{"$share/#/a", -EINVAL, NULL, NULL, "[MQTT-4.8.2-2] no '#' in the group"},
	{"$share/g#/a", -EINVAL, NULL, NULL, "[MQTT-4.8.2-2]"},
	{"$share", 0, NULL, NULL, "4.8.2 not shared without the '/'"},
	{"$sharex/g/a", 0, NULL, NULL, "4.8.2"},
	{"$Share/g/a", 0, NULL, NULL, "4.8.2 case sensitive"},
	{"share/g/a", 0, NULL, NULL, "4.8.2"},
	{"a/$share/g/a", 0, NULL, NULL, "4.8.2"},
	{"#", 0, NULL, NULL, "4.8.2"},
	{"", 0, NULL, NULL, "4.8.2"},
};

Test(topic, share_split_table)
{
	for (size_t i = 0; i < sizeof(share_rows) / sizeof(share_rows[0]); i++) {
		const struct share_row *r = &share_rows[i];
		const uint8_t *g = NULL, *f = NULL;
		size_t gl = 99, fl = 99, l;
		uint8_t *b = dup_exact(r->s, &l);
		int res = topic_share_split(b, l, &g, &gl, &f, &fl);

		cr_expect_eq(res, r->res, "\"%s\": %d (%s)", r->s, res, r->ref);
		if (r->res == 1 && res == 1) {
			cr_expect_eq(gl, strlen(r->group), "\"%s\" group", r->s);
			cr_expect_eq(memcmp(g, r->group, gl), 0, "\"%s\" group", r->s);
			cr_expect_eq(fl, strlen(r->filter), "\"%s\" filter", r->s);
			cr_expect_eq(memcmp(f, r->filter, fl), 0, "\"%s\" filter", r->s);
		} else {
			/* Output parameters are written only on success. */
			cr_expect(g == NULL && f == NULL && gl == 99 && fl == 99, "\"%s\" outputs touched", r->s);
		}
		free(b);
	}
}

Test(topic, share_split_outputs_may_be_null)
{
	cr_expect_eq(topic_share_split(S("$share/g/a"), NULL, NULL, NULL, NULL), 1);
	cr_expect_eq(topic_share_split(S("$share/g"), NULL, NULL, NULL, NULL), -EINVAL);
	cr_expect_eq(topic_share_split(S("a/b"), NULL, NULL, NULL, NULL), 0);
}

/* Independent reference: split into levels, then compare the lists. */
#define REF_LEVELS 16

static size_t split(const char *s, const char **lv, size_t *ll)
{
	size_t n = 0;
	const char *p = s;

	for (;;) {
		const char *e = strchr(p, '/');

		lv[n] = p;
		ll[n] = e ? (size_t)(e - p) : strlen(p);
		n++;
		if (e == NULL)
			return n;
		p = e + 1;
	}
}

static bool ref_match(const char *f, const char *t)
{
	const char *fl[REF_LEVELS], *tl[REF_LEVELS];
	size_t fn, tn, fll[REF_LEVELS], tll[REF_LEVELS];

	fn = split(f, fl, fll);
	tn = split(t, tl, tll);
	if (t[0] == '$' && (f[0] == '+' || f[0] == '#'))
		return false;
	for (size_t i = 0; i < fn; i++) {
		if (fll[i] == 1 && fl[i][0] == '#')
			return true;
		if (i >= tn)
			return false;
		if (fll[i] == 1 && fl[i][0] == '+')
			continue;
		if (fll[i] != tll[i] || memcmp(fl[i], tl[i], fll[i]) != 0)
			return false;
	}
	return fn == tn;
}

static void random_string(char *buf, bool filter, unsigned *seed)
{
	static const char *const lit[] = {"a", "b", "", "$x", "ab"};
	size_t n = 1 + (size_t)rand_r(seed) % 5, o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned k = (unsigned)rand_r(seed) % (filter ? 8 : 5);
		const char *l = k < 5 ? lit[k] : (k == 7 && i == n - 1) ? "#" : "+";

		if (i > 0)
			buf[o++] = '/';
		memcpy(buf + o, l, strlen(l));
		o += strlen(l);
	}
	buf[o] = '\0';
}

Test(topic, match_agrees_with_a_reference_matcher)
{
	unsigned seed = 12345;
	char f[64], t[64];

	for (int i = 0; i < 200000; i++) {
		random_string(f, true, &seed);
		random_string(t, false, &seed);
		if (filter_str(f, REF_LEVELS) != 0 || name_str(t, REF_LEVELS) != 0)
			continue;
		cr_assert_eq(match_str(f, t), ref_match(f, t), "filter \"%s\" topic \"%s\"", f, t);
	}
}
