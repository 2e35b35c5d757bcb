/*
 * test_acl.c - acl_file parsing and checks without a broker: access words,
 * deny precedence, the anonymous section, %c/%u patterns (and values that
 * would widen them), '$' topics, and which subscriptions may be made.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ringmq/acl.h"

static struct acl *load(const char *text, int *ret, char *err)
{
	char path[] = "/tmp/rmq-acl-XXXXXX";
	struct acl *a = NULL;
	int fd = mkstemp(path);

	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	*ret = acl_load(path, &a, err);
	unlink(path);
	return a;
}

#define T(s) (const uint8_t *)(s), strlen(s)

static const char *const rules = "topic read pub/#\n"
				 "user alice\n"
				 "topic a/#\n"
				 "topic deny a/secret/#\n"
				 "topic write in/+\n"
				 "pattern readwrite c/%c/#\n"
				 "pattern read u/%u\n";

Test(acl, grants_denies_and_sections)
{
	char err[512];
	int r;
	struct acl *a = load(rules, &r, err);

	cr_assert_eq(r, 0, "%s", err);
	cr_assert(acl_check(a, "alice", "x", T("a/b"), ACL_WRITE), "no access word = readwrite");
	cr_assert_not(acl_check(a, "alice", "x", T("a/secret/b"), ACL_READ), "deny wins");
	cr_assert(acl_check(a, "alice", "x", T("in/q"), ACL_WRITE));
	cr_assert_not(acl_check(a, "alice", "x", T("in/q"), ACL_READ), "write only");
	cr_assert_not(acl_check(a, "alice", "x", T("pub/x"), ACL_READ), "the anonymous section is not alice's");
	cr_assert(acl_check(a, NULL, "x", T("pub/x"), ACL_READ));
	cr_assert_not(acl_check(a, NULL, "x", T("pub/x"), ACL_WRITE));
	cr_assert_not(acl_check(a, "bob", "x", T("a/b"), ACL_READ), "no rule, no access");
	acl_free(a);
}

Test(acl, patterns_substitute_only_safe_values)
{
	char err[512];
	int r;
	struct acl *a = load(rules, &r, err);

	cr_assert(acl_check(a, "bob", "dev1", T("c/dev1/t"), ACL_WRITE));
	cr_assert_not(acl_check(a, "bob", "dev1", T("c/dev2/t"), ACL_WRITE));
	cr_assert(acl_check(a, "bob", "x", T("u/bob"), ACL_READ));
	cr_assert_not(acl_check(a, NULL, "x", T("u/"), ACL_READ), "anonymous has no %%u");
	cr_assert_not(acl_check(a, "bob", "+", T("c/z/t"), ACL_WRITE), "a wildcard client id widens nothing");
	cr_assert_not(acl_check(a, "bob", "#", T("c/z/t"), ACL_WRITE));
	cr_assert_not(acl_check(a, "bob", "a/b", T("c/a/b/t"), ACL_WRITE), "a '/' client id adds no level");
	acl_free(a);
}

Test(acl, subscriptions_need_an_overlapping_read_rule)
{
	char err[512];
	int r;
	struct acl *a = load("user u\ntopic read a/+/c\ntopic read $SYS/broker/#\n", &r, err);

	cr_assert_eq(r, 0, "%s", err);
	cr_assert(acl_may_subscribe(a, "u", "x", T("#")));
	cr_assert(acl_may_subscribe(a, "u", "x", T("a/b/c")));
	cr_assert(acl_may_subscribe(a, "u", "x", T("+/+/+")));
	cr_assert_not(acl_may_subscribe(a, "u", "x", T("a/b")));
	cr_assert_not(acl_may_subscribe(a, "u", "x", T("a/b/d")));
	cr_assert(acl_may_subscribe(a, "u", "x", T("$SYS/#")));
	cr_assert_not(acl_may_subscribe(a, "u", "x", T("+/broker/x")), "[MQTT-4.7.2-1] '+' does not reach $SYS");
	cr_assert_not(acl_check(a, "u", "x", T("$SYS/other"), ACL_READ));
	acl_free(a);
}

Test(acl, broken_files_name_their_line)
{
	static const struct {
		const char *text, *msg;
	} cases[] = {
		{"", ":0: no rules"},
		{"user alice\n", ":1: no rules"},
		{"topic sometimes a\n", ":1: access must be"},
		{"topic read a/#/b\n", ":1: not a valid topic filter"},
		{"user\n", ":1: user: expected a user name"},
		{"subscribe a\n", ":1: expected 'user', 'topic' or 'pattern'"},
	};
	char err[512];
	int r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_null(load(cases[i].text, &r, err));
		cr_assert_eq(r, -EINVAL, "case %zu", i);
		cr_assert(strstr(err, cases[i].msg), "case %zu: %s", i, err);
	}
}
