/*
 * 33_logs.c - the broker's log lines.
 *
 * - Text (the default): connect and disconnect lines carry the client id,
 *   the peer address, the protocol version and the reason.
 * - log_format json: every line is one JSON object with time, level,
 *   shard, client and msg, in that order, and the same events.
 * - SIGUSR2 switches debug logging on and back off at run time: a debug
 *   event (a PUBACK for a packet id nobody used) is logged only while on.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tclient.h"

TestSuite(logs, .timeout = 60);

static char *read_log(const struct broker *b)
{
	FILE *f = fopen(b->log_path, "r");
	char *text = malloc(1 << 20);
	size_t n;

	cr_assert(f && text, "%s: %s", b->log_path, strerror(errno));
	n = fread(text, 1, (1 << 20) - 1, f);
	fclose(f);
	text[n] = '\0';
	return text;
}

/* The first line of @text holding @a and @b (NUL-terminated copy), or NULL. */
static const char *line_with(const char *text, const char *a, const char *b)
{
	static char line[4096];

	for (const char *p = text; *p;) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		if (len < sizeof(line)) {
			memcpy(line, p, len);
			line[len] = '\0';
			if (strstr(line, a) && strstr(line, b))
				return line;
		}
		if (!eol)
			break;
		p = eol + 1;
	}
	return NULL;
}

/* A v5 client that leaves normally and a 3.1.1 client that just closes. */
static void two_sessions(const struct broker *b)
{
	struct tclient *v5 = tc_connect(b, MQTT_V5, "log-v5", true);
	struct tclient *v3 = tc_connect(b, MQTT_V311, "log-v311", true);

	tc_disconnect(v5);
	tc_close(v3);
	cr_assert(broker_log_wait(b, "log-v311", TC_WAIT_MS));
}

Test(logs, text_connect_and_disconnect_lines_carry_address_version_and_reason)
{
	struct broker b;
	const char *l;
	char *text;

	harness_ringmq_only("ringmq's log format");
	broker_start(&b, NULL);
	two_sessions(&b);
	cr_assert(broker_log_wait(&b, "connection closed by client", TC_WAIT_MS));
	cr_assert(broker_log_wait(&b, "client sent DISCONNECT", TC_WAIT_MS));
	text = read_log(&b);
	l = line_with(text, "[client log-v5] connected from 127.0.0.1:", "MQTT 5.0");
	cr_assert(l, "no connect line for log-v5:\n%s", text);
	cr_assert(strstr(l, " INFO [shard "), "%s", l);
	l = line_with(text, "[client log-v5] disconnected from 127.0.0.1:",
		      "MQTT 5.0, client sent DISCONNECT (reason 0x00)");
	cr_assert(l, "no disconnect line for log-v5:\n%s", text);
	l = line_with(text, "[client log-v311] disconnected from 127.0.0.1:",
		      "MQTT 3.1.1, connection closed by client");
	cr_assert(l, "no disconnect line for log-v311:\n%s", text);
	free(text);
	broker_stop(&b);
}

/* A line is {"time":"...Z","level":"...","shard":N|null,"client":"..."|null,"msg":"..."} */
static void expect_json_line(const char *line)
{
	static const char *const keys[] = {"{\"time\":\"", "\",\"level\":\"", "\",\"shard\":", ",\"client\":",
					   ",\"msg\":\""};
	const char *p = line;
	size_t len = strlen(line);

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *at = strstr(p, keys[i]);
		cr_assert(at, "no %s in order in: %s", keys[i], line);
		p = at + strlen(keys[i]);
	}
	cr_assert(len >= 2 && strcmp(line + len - 2, "\"}") == 0, "not closed: %s", line);
	/* Inside the message, every quote is escaped. */
	for (const char *q = p; q < line + len - 2; q++)
		cr_assert(*q != '"' || q[-1] == '\\', "unescaped quote in: %s", line);
}

Test(logs, json_format_is_one_object_per_line)
{
	struct broker b;
	const char *l;
	char *text, *save = NULL;
	unsigned lines = 0;

	harness_ringmq_only("ringmq's log format");
	broker_start(&b, "log_format json\n");
	two_sessions(&b);
	cr_assert(broker_log_wait(&b, "connection closed by client", TC_WAIT_MS));
	text = read_log(&b);
	l = line_with(text, "\"client\":\"log-v5\",\"msg\":\"connected from 127.0.0.1:", "MQTT 5.0");
	cr_assert(l, "no JSON connect line:\n%s", text);
	cr_assert(strstr(l, "\"level\":\"info\",\"shard\":"), "%s", l);
	cr_assert(line_with(text, "\"client\":\"log-v5\",\"msg\":\"disconnected from 127.0.0.1:",
			    "MQTT 5.0, client sent DISCONNECT (reason 0x00)"),
		  "no JSON disconnect line:\n%s", text);
	cr_assert(line_with(text, "\"shard\":null,\"client\":null,\"msg\":\"listening on 127.0.0.1:", "mqtt"),
		  "main-thread lines have null shard and client:\n%s", text);
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		expect_json_line(line);
		lines++;
	}
	cr_assert_geq(lines, 6);
	free(text);
	broker_stop(&b);
}

static unsigned count(const char *text, const char *needle)
{
	unsigned n = 0;

	for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

Test(logs, sigusr2_toggles_debug_logging)
{
	struct broker b;
	struct tclient *c;
	char *text;

	harness_ringmq_only("ringmq's signals");
	broker_start(&b, NULL);
	c = tc_connect(&b, MQTT_V311, "log-debug", true);
	tc_ack(c, MQTT_PUBACK, 4242); /* logged at debug only */
	tc_subscribe(c, "log/t", 0); /* a round trip: the PUBACK was handled */
	cr_assert_eq(kill(b.pid, SIGUSR2), 0);
	cr_assert(broker_log_wait(&b, "log level now debug", TC_WAIT_MS));
	tc_ack(c, MQTT_PUBACK, 4343);
	cr_assert(broker_log_wait(&b, "unknown packet id 4343", TC_WAIT_MS), "no debug line while debug is on");
	cr_assert_eq(kill(b.pid, SIGUSR2), 0);
	cr_assert(broker_log_wait(&b, "log level now configured", TC_WAIT_MS));
	tc_ack(c, MQTT_PUBACK, 4444);
	tc_subscribe(c, "log/t2", 0);
	text = read_log(&b);
	cr_assert_eq(count(text, "unknown packet id 4242"), 0, "debug line before SIGUSR2");
	cr_assert_eq(count(text, "unknown packet id 4444"), 0, "debug line after the second SIGUSR2");
	free(text);
	tc_disconnect(c);
	broker_stop(&b);
}
