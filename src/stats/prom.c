/*
 * prom.c - the Prometheus text exposition format (0.0.4) into a growable
 * buffer (see prom.h).
 *
 * Appends never fail loudly: running out of memory sets `oom` and later
 * appends do nothing, so a renderer writes its whole page without checking
 * each line and the caller decides once (the HTTP thread answers 500).
 * Numbers are written the way Go's strconv does for the values we have:
 * integers in decimal, other values with up to 17 significant digits,
 * and NaN / +Inf / -Inf spelled as the format requires.
 */
#include "ringmq/prom.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringmq/log.h"

#define PROM_BUF_INITIAL 4096u

void prom_init(struct prom_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void prom_done(struct prom_buf *b)
{
	free(b->data);
	prom_init(b);
}

static bool reserve(struct prom_buf *b, size_t more)
{
	size_t cap = b->cap ? b->cap : PROM_BUF_INITIAL;
	char *p;

	if (b->oom)
		return false;
	if (b->len + more + 1 <= b->cap)
		return true;
	while (cap < b->len + more + 1)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

static void put(struct prom_buf *b, const char *s, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

__attribute__((format(printf, 2, 3))) static void putf(struct prom_buf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	RMQ_ASSERT(n >= 0 && (size_t)n < sizeof(small)); /* callers format short pieces */
	put(b, small, (size_t)n);
}

bool prom_name_ok(const char *name)
{
	if (!name || !*name || (*name >= '0' && *name <= '9'))
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '_' || *p == ':'))
			return false;
	return true;
}

void prom_family(struct prom_buf *b, const char *name, const char *type, const char *help)
{
	RMQ_ASSERT(prom_name_ok(name));
	RMQ_ASSERT(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 || strcmp(type, "untyped") == 0);
	putf(b, "# HELP %s ", name);
	for (const char *p = help; *p; p++) {
		if (*p == '\\')
			put(b, "\\\\", 2);
		else if (*p == '\n')
			put(b, "\\n", 2);
		else
			put(b, p, 1);
	}
	putf(b, "\n# TYPE %s %s\n", name, type);
}

const char *prom_labels(char *buf, unsigned n, const char *const *kv)
{
	size_t len = 0;

	buf[len++] = '{';
	for (unsigned i = 0; i < n; i++) {
		size_t nl = strlen(kv[2 * i]);
		RMQ_ASSERT(prom_name_ok(kv[2 * i]));
		RMQ_ASSERT(len + nl + 4 < PROM_LABELS_BYTES);
		if (i > 0)
			buf[len++] = ',';
		memcpy(buf + len, kv[2 * i], nl);
		len += nl;
		buf[len++] = '=';
		buf[len++] = '"';
		for (const char *p = kv[2 * i + 1]; *p; p++) {
			bool esc = *p == '\\' || *p == '"' || *p == '\n';
			RMQ_ASSERT(len + 4 < PROM_LABELS_BYTES);
			if (esc)
				buf[len++] = '\\';
			buf[len++] = *p == '\n' ? 'n' : *p;
		}
		buf[len++] = '"';
	}
	RMQ_ASSERT(len + 2 <= PROM_LABELS_BYTES);
	buf[len++] = '}';
	buf[len] = '\0';
	return buf;
}

void prom_u64(struct prom_buf *b, const char *name, const char *labels, uint64_t v)
{
	RMQ_ASSERT(prom_name_ok(name));
	put(b, name, strlen(name));
	if (labels)
		put(b, labels, strlen(labels));
	putf(b, " %llu\n", (unsigned long long)v);
}

/* The shorter of %.15g and %.17g that reads back as @v exactly. */
static const char *shortest(double v, char *buf, size_t cap)
{
	(void)snprintf(buf, cap, "%.15g", v);
	if (strtod(buf, NULL) != v)
		(void)snprintf(buf, cap, "%.17g", v);
	return buf;
}

void prom_double(struct prom_buf *b, const char *name, const char *labels, double v)
{
	char num[32];

	RMQ_ASSERT(prom_name_ok(name));
	put(b, name, strlen(name));
	if (labels)
		put(b, labels, strlen(labels));
	if (isnan(v))
		put(b, " NaN\n", 5);
	else if (isinf(v))
		putf(b, " %cInf\n", v > 0 ? '+' : '-');
	else
		putf(b, " %s\n", shortest(v, num, sizeof(num)));
}
