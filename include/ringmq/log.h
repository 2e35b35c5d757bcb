/*
 * log.h - one line per event on stderr, and the always-on assertions.
 *
 * Line format (text): "2026-11-26T10:59:23.123Z LEVEL [shard N] [client ID] message".
 * The shard is the calling thread's (log_set_shard()), "[main]" for
 * non-shard threads.  With log_format json each line is one JSON object:
 *   {"time":"2026-11-26T10:59:23.123Z","level":"info","shard":0,
 *    "client":"sensor-1","msg":"connected from 127.0.0.1:50000: ..."}
 * where shard and client are null when there is none.  Library-level code
 * (codec, trie, route) never logs (STYLE 5).
 *
 * Owner:    the process; the level is a global read with relaxed atomics.
 * Lifetime: static.
 * Shared:   every thread logs; one write(2) per line keeps lines whole.
 */
#ifndef RINGMQ_LOG_H
#define RINGMQ_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level {
	LOG_ERROR = 0,
	LOG_WARN = 1,
	LOG_INFO = 2,
	LOG_DEBUG = 3,
};

enum log_format {
	LOG_FORMAT_TEXT = 0,
	LOG_FORMAT_JSON = 1,
};

void log_set_level(enum log_level level);
/** log_set_format() - text (the default) or one JSON object per line; any thread. */
void log_set_format(enum log_format format);
/**
 * log_json_string() - @s as a JSON string, quotes included, into @buf of
 * @cap bytes: ", \ and control characters escaped, invalid UTF-8 replaced
 * by U+FFFD, cut (still a closed string) when it does not fit.  Returns the
 * length written (< @cap).  @cap must be at least 8.
 */
size_t log_json_string(char *buf, size_t cap, const char *s);
enum log_level log_get_level(void);
/** log_set_shard() - tag this thread's log lines with shard @shard (-1: none). */
void log_set_shard(int shard);
int log_get_shard(void);

/** log_line() - write one line at @level; @client may be NULL. */
__attribute__((format(printf, 3, 4))) void log_line(enum log_level level, const char *client,
						     const char *fmt, ...);

#define log_error(c, ...) log_line(LOG_ERROR, c, __VA_ARGS__)
#define log_warn(c, ...) log_line(LOG_WARN, c, __VA_ARGS__)
#define log_info(c, ...) log_line(LOG_INFO, c, __VA_ARGS__)
#define log_debug(c, ...)                                                                          \
	do {                                                                                       \
		if (log_get_level() >= LOG_DEBUG)                                                  \
			log_line(LOG_DEBUG, c, __VA_ARGS__);                                       \
	} while (0)

__attribute__((noreturn)) void rmq_assert_fail(const char *file, int line, const char *cond);

/* Always on, independent of NDEBUG (STYLE 6).  Assert programmer errors,
 * never bad input. */
#define RMQ_ASSERT(cond)                                                                           \
	do {                                                                                       \
		if (__builtin_expect(!(cond), 0))                                                  \
			rmq_assert_fail(__FILE__, __LINE__, #cond);                                \
	} while (0)

/* O(n) checks (trie_sanity and the like): on in debug builds only. */
#ifdef RMQ_DEBUG
#define RMQ_DEBUG_ASSERT(cond) RMQ_ASSERT(cond)
#else
#define RMQ_DEBUG_ASSERT(cond) ((void)0)
#endif

#endif
