/*
 * 32_exporter.c - a real consumer of $SYS: Debian's prometheus-mqtt-exporter
 * (mqtt2prometheus 0.1.7) subscribes to $SYS/# on ringmq and must export
 * every numeric topic.
 *
 * The test first reads one whole $SYS publication itself to learn the
 * numeric topics (everything but version, timestamp and uptime's "N
 * seconds"), writes an exporter configuration with one metric per topic
 * (metric_per_topic_config: the metric name is the topic after
 * $SYS/broker/), starts the exporter on a free port and scrapes it until
 * every metric is there with a number.  Two values are compared with
 * what ringmq says itself: the shard count and the retained-message count
 * (every $SYS topic is retained).  A missing exporter binary fails the
 * test with the package to install; it never skips.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "tclient.h"
#include "thttp.h"

TestSuite(exporter, .timeout = 120);

#define TOPICS_MAX 512
#define EXPORTER_WAIT_MS 30000
#define SYS_PREFIX "$SYS/broker/"

struct topics {
	unsigned n;
	char name[TOPICS_MAX][96]; /* after $SYS/broker/ */
	char value[TOPICS_MAX][64];
};

static bool numeric(const char *s)
{
	char *end;

	if (!*s)
		return false;
	(void)strtod(s, &end);
	return *end == '\0';
}

static bool is_start(const struct mqtt_packet *p)
{
	return p->type == MQTT_PUBLISH && !p->publish.retain && tc_str_eq(p->publish.topic, SYS_PREFIX "version");
}

/* One whole live publication's numeric topics. */
static void learn(const struct broker *b, struct topics *t)
{
	struct tclient *c = tc_connect(b, MQTT_V311, "exporter-learn", true);
	struct mqtt_packet p;

	tc_subscribe(c, "$SYS/#", 0);
	do
		p = tc_expect(c, MQTT_PUBLISH);
	while (!is_start(&p));
	t->n = 0;
	for (;;) {
		const char *topic = tc_dup(p.publish.topic), *value = tc_dup(p.publish.payload);
		if (numeric(value)) {
			cr_assert(t->n < TOPICS_MAX);
			cr_assert(strncmp(topic, SYS_PREFIX, strlen(SYS_PREFIX)) == 0, "%s", topic);
			(void)snprintf(t->name[t->n], sizeof(t->name[0]), "%s", topic + strlen(SYS_PREFIX));
			(void)snprintf(t->value[t->n], sizeof(t->value[0]), "%s", value);
			t->n++;
		}
		p = tc_expect(c, MQTT_PUBLISH);
		if (is_start(&p))
			break;
	}
	tc_disconnect(c);
}

/* "retained messages/count" -> "ringmq_sys_retained_messages_count". */
static void prom_name(const char *topic, char *buf, size_t cap)
{
	size_t n = (size_t)snprintf(buf, cap, "ringmq_sys_%s", topic);

	cr_assert(n < cap);
	for (char *p = buf; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			*p = '_';
}

static void write_config(const char *path, uint16_t mqtt_port, const struct topics *t)
{
	FILE *f = fopen(path, "w");
	char name[128];

	cr_assert(f, "%s: %s", path, strerror(errno));
	fprintf(f, "mqtt:\n  server: tcp://127.0.0.1:%u\n  client_id: ringmq-exporter-test\n"
		   "  topic_path: \"$SYS/#\"\n  device_id_regex: \"(?P<deviceid>\\\\$SYS)/.*\"\n  qos: 0\n"
		   "  metric_per_topic_config:\n    metric_name_regex: \"\\\\$SYS/broker/(?P<metricname>.*)\"\n"
		   "cache:\n  timeout: 24h\nmetrics:\n",
		mqtt_port);
	for (unsigned i = 0; i < t->n; i++) {
		prom_name(t->name[i], name, sizeof(name));
		fprintf(f, "  - prom_name: %s\n    mqtt_name: \"%s\"\n    help: \"$SYS/broker/%s\"\n    type: gauge\n",
			name, t->name[i], t->name[i]);
	}
	cr_assert_eq(fclose(f), 0);
}

static uint16_t free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	cr_assert(getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
	close(fd);
	return ntohs(a.sin_port);
}

static pid_t spawn_exporter(const char *config, uint16_t port, const char *log)
{
	char portstr[8];
	pid_t pid;
	int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	cr_assert(fd >= 0, "%s: %s", log, strerror(errno));
	(void)snprintf(portstr, sizeof(portstr), "%u", port);
	fflush(NULL);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		execlp("prometheus-mqtt-exporter", "prometheus-mqtt-exporter", "-config", config, "-listen-address",
		       "127.0.0.1", "-listen-port", portstr, (char *)NULL);
		dprintf(STDERR_FILENO, "exec prometheus-mqtt-exporter: %s\n", strerror(errno));
		_exit(127);
	}
	close(fd);
	return pid;
}

/* The exporter's value of @name, or false when it has none yet. */
static bool exported(const char *page, const char *name, double *ret)
{
	size_t n = strlen(name);

	for (const char *line = page; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (strncmp(line, name, n) == 0 && (line[n] == '{' || line[n] == ' ')) {
			const char *v = line[n] == '{' ? strstr(line, "} ") : line + n;
			if (!v)
				return false;
			*ret = strtod(v + (line[n] == '{' ? 2 : 1), NULL);
			return true;
		}
	}
	return false;
}

/* Scrape until every topic is exported; returns the last page (caller frees). */
static char *scrape_all(pid_t pid, uint16_t port, const struct topics *t, const char *log)
{
	int64_t deadline = harness_now_ms() + EXPORTER_WAIT_MS;
	char name[128];
	const char *missing = "";

	for (;;) {
		char *page = NULL;
		int status;
		double v;

		cr_assert_eq(waitpid(pid, &status, WNOHANG), 0,
			     "prometheus-mqtt-exporter exited (status %d): install Debian's prometheus-mqtt-exporter "
			     "(build.sh test does it); its log: %s",
			     WIFEXITED(status) ? WEXITSTATUS(status) : -1, log);
		if (thttp_port_open(port) && thttp_get(port, "/metrics", &page) == 200) {
			unsigned i;
			for (i = 0; i < t->n; i++) {
				prom_name(t->name[i], name, sizeof(name));
				if (!exported(page, name, &v)) {
					missing = t->name[i];
					break;
				}
			}
			if (i == t->n)
				return page;
		}
		free(page);
		cr_assert(harness_now_ms() < deadline, "after %d ms the exporter still lacks $SYS/broker/%s (log: %s)",
			  EXPORTER_WAIT_MS, missing, log);
		usleep(200 * 1000); /* the exporter offers no event to wait for: poll its page */
	}
}

Test(exporter, prometheus_mqtt_exporter_exports_every_numeric_sys_topic)
{
	static struct topics t;
	char config[512], log[512], name[128];
	const char *dir = getenv("RMQ_TEST_LOGDIR");
	struct broker b;
	uint16_t port = free_port();
	char *page;
	double v;
	pid_t pid;

	harness_ringmq_only("checks ringmq's $SYS tree through the exporter");
	broker_start(&b, "sys_interval 1\n");
	learn(&b, &t);
	cr_assert_geq(t.n, 50, "only %u numeric $SYS topics", t.n);
	(void)snprintf(config, sizeof(config), "%s/exporter-s%u.yaml", dir && *dir ? dir : "/tmp", harness_shards());
	(void)snprintf(log, sizeof(log), "%s/exporter-s%u.log", dir && *dir ? dir : "/tmp", harness_shards());
	write_config(config, b.port, &t);
	pid = spawn_exporter(config, port, log);
	page = scrape_all(pid, port, &t, log);
	prom_name("ringmq/shards", name, sizeof(name));
	cr_assert(exported(page, name, &v) && v == harness_shards(), "%s = %g", name, v);
	prom_name("retained messages/count", name, sizeof(name));
	cr_assert(exported(page, name, &v));
	cr_assert_geq(v, t.n, "retained count %g below the %u numeric topics", v, t.n);
	free(page);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	unlink(config);
	unlink(log);
	broker_stop(&b);
}
