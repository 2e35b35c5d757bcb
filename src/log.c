/*
 * log.c - stderr log lines and the assertion failure path.
 *
 * Each line is formatted into a stack buffer and written with a single
 * write(2), so lines from different shards never interleave.  The level is
 * a relaxed atomic: a change from the signal-driven runtime switch is seen
 * by every shard at its next log call.  So is the format (text or JSON).
 *
 * JSON lines are built by hand: the message is formatted first, then
 * escaped into the line as a JSON string (log_json_string()).  Client ids
 * and topics are UTF-8 checked by the codec, but the escaper does not rely
 * on it: a byte that does not start valid UTF-8 becomes U+FFFD, so every
 * line is valid JSON whatever a message quotes.
 */
#include "ringmq/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_BYTES 2048
#define LOG_JSON_LINE_BYTES 8192 /* an escaped message may grow up to 6 times */

static _Atomic int log_level = LOG_INFO;
static _Atomic int log_format = LOG_FORMAT_TEXT;
static _Thread_local int log_shard = -1;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
static const char *const level_json[] = {"error", "warn", "info", "debug"};

void log_set_format(enum log_format format)
{
	atomic_store_explicit(&log_format, (int)format, memory_order_relaxed);
}

void log_set_level(enum log_level level)
{
	atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load_explicit(&log_level, memory_order_relaxed);
}

void log_set_shard(int shard)
{
	log_shard = shard;
}

int log_get_shard(void)
{
	return log_shard;
}

/* Length of the valid UTF-8 sequence at @p (1..4), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *p)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xBF;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	if (c == 0xE0)
		lo = 0xA0; /* overlong */
	else if (c == 0xED)
		hi = 0x9F; /* surrogates */
	else if (c == 0xF0)
		lo = 0x90; /* overlong */
	else if (c == 0xF4)
		hi = 0x8F; /* above U+10FFFF */
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return n;
}

size_t log_json_string(char *buf, size_t cap, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;

	buf[n++] = '"';
	while (*p) {
		char esc[8];
		size_t len = utf8_len(p), elen;
		const char *piece = esc;

		if (len == 0) {
			piece = "\\ufffd";
			elen = 6;
			len = 1;
		} else if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			elen = 2;
		} else if (*p < 0x20 || *p == 0x7F) {
			elen = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", *p);
		} else {
			piece = (const char *)p;
			elen = len;
		}
		if (n + elen + 2 > cap)
			break; /* cut: the string still closes */
		memcpy(buf + n, piece, elen);
		n += elen;
		p += len;
	}
	buf[n++] = '"';
	buf[n] = '\0';
	return n;
}

static void log_json_line(enum log_level level, const char *client, const char *fmt, va_list ap)
{
	char msg[LOG_LINE_BYTES], buf[LOG_JSON_LINE_BYTES];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r;

	(void)vsnprintf(msg, sizeof(msg), fmt, ap); /* a longer message is cut */
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, sizeof(buf), "{\"time\":\"%Y-%m-%dT%H:%M:%S", &tm);
	if (log_shard >= 0)
		r = snprintf(buf + n, sizeof(buf) - n, ".%03ldZ\",\"level\":\"%s\",\"shard\":%d,\"client\":",
			     ts.tv_nsec / 1000000, level_json[level], log_shard);
	else
		r = snprintf(buf + n, sizeof(buf) - n, ".%03ldZ\",\"level\":\"%s\",\"shard\":null,\"client\":",
			     ts.tv_nsec / 1000000, level_json[level]);
	if (r > 0 && (size_t)r < sizeof(buf) - n)
		n += (size_t)r;
	if (client)
		n += log_json_string(buf + n, sizeof(buf) - n - LOG_LINE_BYTES / 2, client);
	else
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "null");
	memcpy(buf + n, ",\"msg\":", 7);
	n += 7;
	n += log_json_string(buf + n, sizeof(buf) - n - 2, msg);
	buf[n++] = '}';
	buf[n++] = '\n';
	/* A failed or short write to stderr has nowhere to be reported. */
	(void)!write(STDERR_FILENO, buf, n);
}

static void log_vline(enum log_level level, const char *client, const char *fmt, va_list ap)
{
	char buf[LOG_LINE_BYTES];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	if (log_shard >= 0)
		r = snprintf(buf + n, sizeof(buf) - n, ".%03ldZ %s [shard %d]%s%s%s ", ts.tv_nsec / 1000000,
			     level_names[level], log_shard, client ? " [client " : "", client ? client : "",
			     client ? "]" : "");
	else
		r = snprintf(buf + n, sizeof(buf) - n, ".%03ldZ %s [main]%s%s%s ", ts.tv_nsec / 1000000,
			     level_names[level], client ? " [client " : "", client ? client : "",
			     client ? "]" : "");
	if (r > 0 && (size_t)r < sizeof(buf) - n)
		n += (size_t)r;
	r = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	if (r > 0)
		n += (size_t)r < sizeof(buf) - n - 1 ? (size_t)r : sizeof(buf) - n - 2;
	buf[n++] = '\n';
	/* A failed or short write to stderr has nowhere to be reported. */
	(void)!write(STDERR_FILENO, buf, n);
}

void log_line(enum log_level level, const char *client, const char *fmt, ...)
{
	va_list ap;

	if ((int)level > atomic_load_explicit(&log_level, memory_order_relaxed))
		return;
	va_start(ap, fmt);
	if (atomic_load_explicit(&log_format, memory_order_relaxed) == LOG_FORMAT_JSON)
		log_json_line(level, client, fmt, ap);
	else
		log_vline(level, client, fmt, ap);
	va_end(ap);
}

void rmq_assert_fail(const char *file, int line, const char *cond)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "ASSERTION FAILED %s:%d [shard %d]: %s\n", file, line,
			 log_shard, cond);
	if (n > 0)
		(void)!write(STDERR_FILENO, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
	abort();
}
