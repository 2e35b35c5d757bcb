/*
 * log.c - stderr log lines and the assertion failure path.
 *
 * Each line is formatted into a stack buffer and written with a single
 * write(2), so lines from different shards never interleave.  The level is
 * a relaxed atomic: a change from the signal-driven runtime switch is seen
 * by every shard at its next log call.
 */
#include "ringmq/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = LOG_INFO;
static _Thread_local int log_shard = -1;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

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

static void log_vline(enum log_level level, const char *client, const char *fmt, va_list ap)
{
	char buf[2048];
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
