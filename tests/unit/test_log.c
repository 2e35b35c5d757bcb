/*
 * test_log.c - log lines (log.c): the JSON format and its string escaper.
 *
 * log_json_string() must give a valid JSON string for any bytes: quotes,
 * backslashes and control characters escaped, valid UTF-8 kept as is,
 * anything else (stray continuation bytes, overlong forms, surrogates,
 * code points above U+10FFFF, a sequence cut by the end) replaced by
 * U+FFFD, and a string that does not fit cut but still closed.  A whole
 * JSON line is captured by pointing stderr at a file for the test.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringmq/log.h"

static const char *json(const char *s)
{
	static char buf[256];

	(void)log_json_string(buf, sizeof(buf), s);
	return buf;
}

Test(log, json_escapes_quotes_backslashes_and_control_characters)
{
	cr_assert_str_eq(json("plain"), "\"plain\"");
	cr_assert_str_eq(json("a\"b\\c"), "\"a\\\"b\\\\c\"");
	cr_assert_str_eq(json("tab\tnl\ncr\r\x01\x7f"), "\"tab\\u0009nl\\u000acr\\u000d\\u0001\\u007f\"");
	cr_assert_str_eq(json(""), "\"\"");
}

Test(log, json_keeps_valid_utf8_and_replaces_invalid_bytes)
{
	cr_assert_str_eq(json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
			 "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
	cr_assert_str_eq(json("\x80"), "\"\\ufffd\"", "stray continuation byte");
	cr_assert_str_eq(json("\xc0\xaf"), "\"\\ufffd\\ufffd\"", "overlong form");
	cr_assert_str_eq(json("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"", "surrogate");
	cr_assert_str_eq(json("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"", "above U+10FFFF");
	cr_assert_str_eq(json("a\xe2\x82"), "\"a\\ufffd\\ufffd\"", "cut by the end");
}

Test(log, json_string_too_long_is_cut_and_closed)
{
	char buf[16];
	size_t n = log_json_string(buf, sizeof(buf), "abcdefghijklmnopqrstuvwxyz");

	cr_assert_lt(n, sizeof(buf));
	cr_assert_eq(strlen(buf), n);
	cr_assert_eq(buf[0], '"');
	cr_assert_eq(buf[n - 1], '"');
	n = log_json_string(buf, sizeof(buf), "\"\"\"\"\"\"\"\"\"\"");
	cr_assert_eq(buf[n - 1], '"');
	cr_assert_neq(buf[n - 2], '\\', "never cut inside an escape");
}

/* Run @fn with stderr sent to a temporary file; returns what it wrote. */
static char *capture_stderr(void (*fn)(void))
{
	char path[] = "/tmp/ringmq-test-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	static char text[8192];
	ssize_t n;

	cr_assert(fd >= 0 && saved >= 0);
	unlink(path);
	dup2(fd, STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, text, sizeof(text) - 1, 0);
	close(fd);
	cr_assert_geq(n, 0);
	text[n] = '\0';
	return text;
}

static void two_json_lines(void)
{
	log_set_format(LOG_FORMAT_JSON);
	log_set_shard(3);
	log_info("sensor-\"1\"", "connected from %s: MQTT %s", "127.0.0.1:5000", "5.0");
	log_set_shard(-1);
	log_warn(NULL, "line\nbreak");
	log_set_format(LOG_FORMAT_TEXT);
}

Test(log, json_lines_carry_time_level_shard_client_and_message)
{
	char *text = capture_stderr(two_json_lines);
	char *second = strchr(text, '\n');

	cr_assert_not_null(second, "two lines: %s", text);
	*second++ = '\0';
	cr_assert_eq(strncmp(text, "{\"time\":\"", 9), 0, "%s", text);
	cr_assert(strstr(text, "Z\",\"level\":\"info\",\"shard\":3,\"client\":\"sensor-\\\"1\\\"\","
			       "\"msg\":\"connected from 127.0.0.1:5000: MQTT 5.0\"}") != NULL,
		  "%s", text);
	cr_assert(strstr(second, "\"level\":\"warn\",\"shard\":null,\"client\":null,\"msg\":\"line\\u000abreak\"}\n") !=
		  NULL, "%s", second);
	/* 2026-11-26T10:59:23.123Z */
	cr_assert_eq(text[9 + 10], 'T');
	cr_assert_eq(text[9 + 23], 'Z');
}

static void one_text_line(void)
{
	log_set_shard(0);
	log_error("c1", "boom %d", 7);
}

Test(log, text_stays_the_default)
{
	char *text = capture_stderr(one_text_line);

	cr_assert(strstr(text, "Z ERROR [shard 0] [client c1] boom 7\n") != NULL, "%s", text);
}
