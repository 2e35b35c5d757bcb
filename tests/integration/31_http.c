/*
 * 31_http.c - the HTTP listener: /metrics, /healthz, /readyz.
 *
 * - The endpoints answer with the right status codes, content types and
 *   bodies; HEAD has no body; unknown paths, other methods, malformed and
 *   oversized requests get 404, 405, 400 and 431.
 * - /metrics passes `promtool check metrics` (Debian's prometheus package;
 *   the test fails, never skips, when promtool is missing), with traffic
 *   on every shard so the per-shard series carry values.
 * - /readyz turns 503 on SIGUSR1 (draining) while /healthz stays 200, and
 *   ringmq_ready follows.
 * - A scraper that sends half a request and stalls holds the HTTP thread
 *   for at most HTTP_IO_TIMEOUT_MS and never delays MQTT traffic: a QoS 1
 *   round trip completes while it stalls, and /healthz answers after.
 * - Without http_listener nothing listens (the listener is off by default).
 * The exact counter values on /metrics are checked in 30_sys.c.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "tclient.h"
#include "thttp.h"

TestSuite(http, .timeout = 120);

#define HTTP_CONFIG "http_listener 0 127.0.0.1\n"
/* The broker's HTTP_IO_TIMEOUT_MS (limits.h), and room for a loaded host. */
#define HTTP_IO_TIMEOUT_MS 2000
#define HTTP_SLACK_MS 3000

static uint16_t start(struct broker *b, const char *extra)
{
	char conf[512];

	harness_ringmq_only("the HTTP listener is ringmq's");
	(void)snprintf(conf, sizeof(conf), "%s%s", HTTP_CONFIG, extra ? extra : "");
	broker_start(b, conf);
	return thttp_port(b);
}

static void expect_header(const char *head, const char *line)
{
	cr_assert(strstr(head, line) != NULL, "no '%s' in:\n%s", line, head);
}

Test(http, probes_answer_200_with_a_short_text_body)
{
	struct broker b;
	uint16_t port = start(&b, NULL);
	char *body = NULL;

	cr_assert_eq(thttp_get(port, "/healthz", &body), 200);
	cr_assert(strncmp(body, "ok", 2) == 0, "healthz body: %s", body);
	free(body);
	cr_assert_eq(thttp_get(port, "/readyz", &body), 200);
	cr_assert_str_eq(body, "ready\n");
	free(body);
	cr_assert_eq(thttp_get(port, "/healthz?verbose=1", &body), 200, "a query string is ignored");
	free(body);
	broker_stop(&b);
}

Test(http, metrics_has_the_prometheus_content_type_and_head_has_no_body)
{
	static const char get[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n";
	static const char head_req[] = "HEAD /metrics HTTP/1.0\r\n\r\n";
	struct broker b;
	uint16_t port = start(&b, NULL);
	char *head = NULL, *body = NULL;

	cr_assert_eq(thttp_request(port, get, sizeof(get) - 1, 5000, &head, &body), 200);
	expect_header(head, "Content-Type: text/plain; version=0.0.4; charset=utf-8");
	expect_header(head, "Connection: close");
	cr_assert(strstr(body, "# TYPE ringmq_bytes_sent_total counter\n") != NULL);
	free(head);
	free(body);
	cr_assert_eq(thttp_request(port, head_req, sizeof(head_req) - 1, 5000, &head, &body), 200);
	expect_header(head, "Content-Length: ");
	cr_assert_str_eq(body, "", "HEAD answered with a body");
	free(head);
	free(body);
	broker_stop(&b);
}

Test(http, bad_requests_get_404_405_400_and_431)
{
	static const char post[] = "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
	static const char junk[] = "HELLO\r\n\r\n";
	static const char no_version[] = "GET /metrics\r\n\r\n";
	struct broker b;
	uint16_t port = start(&b, NULL);
	char *head = NULL, *big = malloc(9000);

	cr_assert_eq(thttp_get(port, "/nope", NULL), 404);
	cr_assert_eq(thttp_get(port, "/metrics/x", NULL), 404);
	cr_assert_eq(thttp_request(port, post, sizeof(post) - 1, 5000, &head, NULL), 405);
	expect_header(head, "Allow: GET, HEAD");
	free(head);
	cr_assert_eq(thttp_request(port, junk, sizeof(junk) - 1, 5000, NULL, NULL), 400);
	cr_assert_eq(thttp_request(port, no_version, sizeof(no_version) - 1, 5000, NULL, NULL), 400);
	/* Headers that never end within the request limit (8192 bytes). */
	memcpy(big, "GET /metrics HTTP/1.1\r\nX-Filler: ", 33);
	memset(big + 33, 'x', 9000 - 33);
	cr_assert_eq(thttp_request(port, big, 9000, 5000, NULL, NULL), 431);
	free(big);
	cr_assert_eq(thttp_get(port, "/healthz", NULL), 200, "the listener still serves");
	broker_stop(&b);
}

Test(http, promtool_accepts_metrics_with_traffic_on_every_shard)
{
	struct broker b;
	uint16_t port = start(&b, "sys_interval 1\n");
	struct tclient *c[8], *pub;
	char *page = NULL, *out = NULL;
	int rc;

	/* Eight clients, spread over the shards by their ids. */
	for (int i = 0; i < 8; i++) {
		char id[16];
		(void)snprintf(id, sizeof(id), "prom-%d", i);
		c[i] = tc_connect(&b, MQTT_V311, id, true);
		tc_subscribe(c[i], "prom/t", 1);
	}
	pub = tc_connect(&b, MQTT_V311, "prom-pub", true);
	tc_publish(pub, "prom/t", "hello", 1, false);
	for (int i = 0; i < 8; i++)
		tc_receive_qos(c[i], "prom/t", "hello", 1);
	cr_assert_eq(thttp_get(port, "/metrics", &page), 200);
	rc = thttp_promtool(page, &out);
	cr_assert_eq(rc, 0, "promtool check metrics failed (%d):\n%s", rc, out);
	cr_assert_eq(thttp_sum(page, "ringmq_connections"), 9);
	cr_assert_eq(thttp_sum(page, "ringmq_messages_received_total"), 1);
	cr_assert_eq(thttp_sum(page, "ringmq_subscriptions"), 8);
	cr_assert_eq(thttp_value(page, "ringmq_shards"), harness_shards());
	for (unsigned i = 0; i < harness_shards(); i++) {
		char series[64];
		(void)snprintf(series, sizeof(series), "ringmq_shard_loop_turns_total{shard=\"%u\"}", i);
		cr_assert_gt(thttp_value(page, series), 0, "shard %u never turned", i);
	}
	free(page);
	free(out);
	for (int i = 0; i < 8; i++)
		tc_disconnect(c[i]);
	tc_disconnect(pub);
	broker_stop(&b);
}

Test(http, readyz_is_503_while_draining_and_healthz_stays_200)
{
	struct broker b;
	uint16_t port = start(&b, NULL);
	char *body = NULL, *page = NULL;
	int64_t deadline;
	int status;

	cr_assert_eq(thttp_get(port, "/readyz", NULL), 200);
	cr_assert_eq(kill(b.pid, SIGUSR1), 0);
	cr_assert(broker_log_wait(&b, "draining", TC_WAIT_MS), "no draining line after SIGUSR1");
	deadline = harness_now_ms() + TC_WAIT_MS;
	do {
		free(body);
		status = thttp_get(port, "/readyz", &body);
	} while (status == 200 && harness_now_ms() < deadline);
	cr_assert_eq(status, 503, "readyz still %d after SIGUSR1", status);
	cr_assert_str_eq(body, "draining\n");
	free(body);
	cr_assert_eq(thttp_get(port, "/healthz", NULL), 200, "draining is not unhealthy");
	cr_assert_eq(thttp_get(port, "/metrics", &page), 200);
	cr_assert_eq(thttp_value(page, "ringmq_ready"), 0);
	free(page);
	broker_stop(&b);
}

static int open_stalled(uint16_t port)
{
	static const char half[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n"; /* no blank line: never complete */
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
	cr_assert_eq(send(fd, half, sizeof(half) - 1, MSG_NOSIGNAL), (ssize_t)(sizeof(half) - 1));
	return fd;
}

Test(http, a_stalled_scraper_never_delays_mqtt_and_is_cut_off)
{
	struct broker b;
	uint16_t port = start(&b, NULL);
	struct tclient *pub = tc_connect(&b, MQTT_V311, "stall-pub", true);
	struct tclient *sub = tc_connect(&b, MQTT_V311, "stall-sub", true);
	struct pollfd p;
	int64_t t0, took;
	char buf[64];
	int fd;

	tc_subscribe(sub, "stall/t", 1);
	fd = open_stalled(port);
	t0 = harness_now_ms();
	for (int i = 0; i < 20; i++) {
		tc_publish(pub, "stall/t", "x", 1, false);
		tc_receive_qos(sub, "stall/t", "x", 1);
	}
	took = harness_now_ms() - t0;
	cr_assert_lt(took, HTTP_IO_TIMEOUT_MS, "20 MQTT round trips took %lld ms while a scraper stalled",
		     (long long)took);
	/* The broker gives up on the half request and closes it. */
	p = (struct pollfd){.fd = fd, .events = POLLIN};
	cr_assert_eq(poll(&p, 1, HTTP_IO_TIMEOUT_MS + HTTP_SLACK_MS), 1, "stalled request not closed");
	cr_assert_leq(recv(fd, buf, sizeof(buf), 0), 0, "a stalled request got an answer");
	took = harness_now_ms() - t0;
	cr_assert_geq(took, HTTP_IO_TIMEOUT_MS - 100, "closed after %lld ms, before the timeout", (long long)took);
	close(fd);
	cr_assert_eq(thttp_get(port, "/healthz", NULL), 200);
	tc_disconnect(pub);
	tc_disconnect(sub);
	broker_stop(&b);
}

Test(http, the_listener_is_off_by_default)
{
	struct broker b;

	harness_ringmq_only("the HTTP listener is ringmq's");
	broker_start(&b, NULL);
	cr_assert(broker_log_wait(&b, " running", TC_WAIT_MS));
	cr_assert_not(broker_log_contains(&b, "http listening"), "an HTTP listener started without http_listener");
	broker_stop(&b);
}
