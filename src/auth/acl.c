/*
 * acl.c - mosquitto-syntax ACL files: loading and checking.
 *
 * Rules are kept in file order in one array; each names its owner (a user,
 * anonymous, or every client for "pattern").  A check walks the rules that
 * apply to the client: any matching deny refuses, otherwise any matching
 * grant allows.  Patterns substitute %c and %u into a stack buffer before
 * matching; a client whose id or user name contains '+', '#' or '/' never
 * matches a pattern that substitutes it, so a client cannot widen its own
 * rule by choosing its id.
 */
#include "ringmq/acl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringmq/limits.h"
#include "ringmq/topic.h"

#define ACL_LINE_BYTES_MAX 2048u
#define ACL_FILTER_BYTES_MAX 1024u
#define ACL_USER_BYTES_MAX 256u
#define ACL_DENY 4

enum owner_kind {
	OWNER_ANON = 0,
	OWNER_USER = 1,
	OWNER_PATTERN = 2,
};

struct acl_rule {
	uint8_t kind; /* enum owner_kind */
	uint8_t access; /* ACL_READ | ACL_WRITE, or ACL_DENY */
	char user[ACL_USER_BYTES_MAX + 1];
	char filter[ACL_FILTER_BYTES_MAX + 1];
	uint16_t flen;
};

struct acl {
	struct acl_rule *v;
	size_t n, cap;
};

static int fail(char *err, const char *path, unsigned line, const char *what)
{
	snprintf(err, 512, "%s:%u: %s", path, line, what);
	return -EINVAL;
}

static int parse_access(const char *w, uint8_t *ret)
{
	if (strcmp(w, "read") == 0)
		*ret = ACL_READ;
	else if (strcmp(w, "write") == 0)
		*ret = ACL_WRITE;
	else if (strcmp(w, "readwrite") == 0)
		*ret = ACL_READ | ACL_WRITE;
	else if (strcmp(w, "deny") == 0)
		*ret = ACL_DENY;
	else
		return -EINVAL;
	return 0;
}

static int add_rule(struct acl *a, const struct acl_rule *r)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		struct acl_rule *v = realloc(a->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = *r;
	return 0;
}

/* "topic|pattern [ACCESS] FILTER" with @rest after the keyword. */
static int parse_rule(struct acl *a, char *rest, uint8_t kind, const char *user, const char *path, unsigned ln,
		      char *err)
{
	struct acl_rule r = {.kind = kind, .access = ACL_READ | ACL_WRITE};
	char *w1 = strtok(rest, " \t"), *w2 = strtok(NULL, ""), *f = w1;

	if (!w1)
		return fail(err, path, ln, "missing topic");
	if (w2 && parse_access(w1, &r.access) == 0)
		f = w2 + strspn(w2, " \t");
	else if (w2)
		return fail(err, path, ln, "access must be read, write, readwrite or deny");
	if (strlen(f) > ACL_FILTER_BYTES_MAX)
		return fail(err, path, ln, "topic too long");
	r.flen = (uint16_t)strlen(f);
	memcpy(r.filter, f, r.flen + 1u);
	if (kind != OWNER_PATTERN && topic_filter_check((const uint8_t *)f, r.flen, TOPIC_LEVELS_MAX) < 0)
		return fail(err, path, ln, "not a valid topic filter");
	snprintf(r.user, sizeof(r.user), "%s", user ? user : "");
	return add_rule(a, &r) < 0 ? fail(err, path, ln, "out of memory") : 0;
}

static int parse_line(struct acl *a, char *line, char *user, bool *in_user, const char *path, unsigned ln,
		      char *err)
{
	char *p = line + strspn(line, " \t"), *kw;
	size_t len = strlen(p);

	while (len && (p[len - 1] == '\n' || p[len - 1] == '\r' || p[len - 1] == ' ' || p[len - 1] == '\t'))
		p[--len] = '\0';
	if (len == 0 || p[0] == '#')
		return 0;
	kw = strtok(p, " \t");
	p = strtok(NULL, "");
	p = p ? p + strspn(p, " \t") : NULL;
	if (strcmp(kw, "user") == 0) {
		if (!p || !*p || strlen(p) > ACL_USER_BYTES_MAX)
			return fail(err, path, ln, "user: expected a user name");
		snprintf(user, ACL_USER_BYTES_MAX + 1, "%s", p);
		*in_user = true;
		return 0;
	}
	if (strcmp(kw, "topic") == 0)
		return p ? parse_rule(a, p, *in_user ? OWNER_USER : OWNER_ANON, *in_user ? user : NULL, path, ln, err)
			 : fail(err, path, ln, "topic: missing topic");
	if (strcmp(kw, "pattern") == 0)
		return p ? parse_rule(a, p, OWNER_PATTERN, NULL, path, ln, err)
			 : fail(err, path, ln, "pattern: missing topic");
	return fail(err, path, ln, "expected 'user', 'topic' or 'pattern'");
}

int acl_load(const char *path, struct acl **ret, char *err)
{
	struct acl *a = calloc(1, sizeof(*a));
	char line[ACL_LINE_BYTES_MAX], user[ACL_USER_BYTES_MAX + 1] = "";
	bool in_user = false;
	unsigned ln = 0;
	int r = 0;
	FILE *f;

	if (!a)
		return -ENOMEM;
	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		snprintf(err, 512, "%s: cannot open acl_file: %s", path, strerror(errno));
		acl_free(a);
		return r;
	}
	while (r == 0 && fgets(line, sizeof(line), f)) {
		ln++;
		r = !strchr(line, '\n') && !feof(f) ? fail(err, path, ln, "line too long")
						    : parse_line(a, line, user, &in_user, path, ln, err);
	}
	fclose(f);
	if (r == 0 && a->n == 0)
		r = fail(err, path, ln, "no rules: refusing to run with an empty acl_file");
	if (r < 0) {
		acl_free(a);
		return r;
	}
	*ret = a;
	return 0;
}

struct acl *acl_free(struct acl *a)
{
	if (a) {
		free(a->v);
		free(a);
	}
	return NULL;
}

size_t acl_rules(const struct acl *a)
{
	return a->n;
}

/* --------------------------------------------------------------- checks */

static bool applies(const struct acl_rule *r, const char *user)
{
	switch (r->kind) {
	case OWNER_ANON: return user == NULL;
	case OWNER_USER: return user && strcmp(r->user, user) == 0;
	default: return true;
	}
}

/* A substituted value must stay inside one level and add no wildcard. */
static bool safe_value(const char *v)
{
	return v && *v && !strpbrk(v, "+#/");
}

/* The rule's filter, with %c / %u expanded for patterns.  False if the
 * rule cannot apply (unsafe value, too long, not a valid filter). */
static bool rule_filter(const struct acl_rule *r, const char *user, const char *cid, char *buf,
			const uint8_t **ret, size_t *ret_len)
{
	size_t o = 0;

	if (r->kind != OWNER_PATTERN) {
		*ret = (const uint8_t *)r->filter;
		*ret_len = r->flen;
		return true;
	}
	for (const char *p = r->filter; *p; p++) {
		const char *v = NULL;
		if (p[0] == '%' && (p[1] == 'c' || p[1] == 'u')) {
			v = p[1] == 'c' ? cid : user;
			if (!safe_value(v))
				return false;
			p++;
		}
		size_t n = v ? strlen(v) : 1;
		if (o + n > ACL_FILTER_BYTES_MAX)
			return false;
		memcpy(buf + o, v ? v : p, n);
		o += n;
	}
	*ret = (const uint8_t *)buf;
	*ret_len = o;
	return topic_filter_check(*ret, o, TOPIC_LEVELS_MAX) == 0;
}

bool acl_check(const struct acl *a, const char *user, const char *client_id, const uint8_t *topic, size_t len,
	       enum acl_access access)
{
	char buf[ACL_FILTER_BYTES_MAX + 1];
	bool granted = false;

	for (size_t i = 0; i < a->n; i++) {
		const struct acl_rule *r = &a->v[i];
		const uint8_t *f;
		size_t flen;

		if (!applies(r, user) || !rule_filter(r, user, client_id, buf, &f, &flen) ||
		    !topic_match(f, flen, topic, len))
			continue;
		if (r->access == ACL_DENY)
			return false; /* a matching deny wins */
		granted |= (r->access & access) != 0;
	}
	return granted;
}

/* Next level of a filter: [*p, *ret_end); false when none is left. */
static bool next_level(const uint8_t **p, const uint8_t *end, const uint8_t **ret_end)
{
	const uint8_t *e;

	if (!*p)
		return false;
	e = memchr(*p, '/', (size_t)(end - *p));
	*ret_end = e ? e : end;
	return true;
}

/* Can some topic match both filters? */
static bool intersect(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	const uint8_t *pa = a, *pb = b, *ea = NULL, *eb = NULL, *enda = a + alen, *endb = b + blen;
	bool first = true;

	for (;;) {
		bool ha = next_level(&pa, enda, &ea), hb = next_level(&pb, endb, &eb);
		if (!ha || !hb) /* one ran out: only "x/#" matches its parent "x" */
			return (!ha && !hb) || (ha && ea - pa == 1 && *pa == '#') || (hb && eb - pb == 1 && *pb == '#');
		bool wa = ea - pa == 1 && (*pa == '+' || *pa == '#'), wb = eb - pb == 1 && (*pb == '+' || *pb == '#');
		if (first && ((wa && eb > pb && *pb == '$') || (wb && ea > pa && *pa == '$')))
			return false; /* [MQTT-4.7.2-1] */
		if ((wa && *pa == '#') || (wb && *pb == '#'))
			return true;
		if (!wa && !wb && (ea - pa != eb - pb || memcmp(pa, pb, (size_t)(ea - pa)) != 0))
			return false;
		pa = ea < enda ? ea + 1 : NULL;
		pb = eb < endb ? eb + 1 : NULL;
		first = false;
	}
}

bool acl_may_subscribe(const struct acl *a, const char *user, const char *client_id, const uint8_t *f,
		       size_t len)
{
	char buf[ACL_FILTER_BYTES_MAX + 1];

	for (size_t i = 0; i < a->n; i++) {
		const struct acl_rule *r = &a->v[i];
		const uint8_t *rf;
		size_t rlen;

		if (applies(r, user) && r->access != ACL_DENY && (r->access & ACL_READ) &&
		    rule_filter(r, user, client_id, buf, &rf, &rlen) && intersect(rf, rlen, f, len))
			return true;
	}
	return false;
}
