/*
 * harness.c - broker start/stop for the integration tests.
 *
 * The broker runs as a child of the test process with stdin from
 * /dev/null and stdout/stderr written to a per-test log file.  Start-up
 * is complete when the log shows the listening line; the harness waits
 * for it with inotify on the log file and a pidfd for the child in one
 * poll(2), so it neither sleeps nor misses an early exit.  The broker
 * gets PR_SET_PDEATHSIG (and an atexit handler kills what is left), so a
 * test that dies (failed assertion, crash, Criterion timeout) never leaves
 * a broker behind.
 *
 * Log files are named <kind>-s<shards>-<suite>.<test>.<n>.log, so the
 * report hook at the end of this file, which runs in Criterion's runner
 * process and knows only the test's name and result, can find them: it
 * prints them when the test failed and removes them when it passed.  The
 * kind and shard count are in the name because meson runs the shards 1
 * and shards 4 registrations of one executable at the same time.
 *
 * Oracle run: with RMQ_TEST_BROKER=mosquitto the same directives are
 * translated to a mosquitto config (table `directives` below); a
 * directive mosquitto lacks fails the test unless the test declared
 * itself ringmq-only, which skips it (with its reason printed) only then.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Brokers one test may start (a restart scenario needs two). */
#define BROKERS_PER_TEST_MAX 8
#define CONFIG_BYTES_MAX 4096

static unsigned brokers_started;
/* Brokers still running, killed at exit in case the test ends early. */
static pid_t brokers_running[BROKERS_PER_TEST_MAX];

static void kill_leftovers(void)
{
	for (unsigned i = 0; i < BROKERS_PER_TEST_MAX; i++)
		if (brokers_running[i] > 0)
			kill(brokers_running[i], SIGKILL);
}

int64_t harness_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool harness_is_mosquitto(void)
{
	const char *kind = getenv("RMQ_TEST_BROKER");

	if (!kind || !*kind || strcmp(kind, "ringmq") == 0)
		return false;
	cr_assert(strcmp(kind, "mosquitto") == 0, "RMQ_TEST_BROKER=%s: expected ringmq or mosquitto", kind);
	return true;
}

unsigned harness_shards(void)
{
	const char *s = getenv("RMQ_SHARDS");
	char *end;
	unsigned long n;

	if (!s || !*s)
		return 1;
	n = strtoul(s, &end, 10);
	cr_assert(*end == '\0' && n >= 1 && n <= 256, "RMQ_SHARDS=%s is not a shard count", s);
	return (unsigned)n;
}

void harness_ringmq_only(const char *why)
{
	if (harness_is_mosquitto())
		cr_skip_test("ringmq-only under the mosquitto oracle run: %s", why);
}

void harness_mosquitto_deviates(const char *why)
{
	if (harness_is_mosquitto())
		cr_skip_test("known mosquitto deviation: %s", why);
}

static const char *log_dir(void)
{
	const char *d = getenv("RMQ_TEST_LOGDIR");

	return d && *d ? d : "/tmp";
}

/* The log/config path prefix of broker @idx of test @suite/@name. */
static void name_path(char *dst, size_t cap, const char *suite, const char *name, unsigned idx,
		      const char *ext)
{
	int n = snprintf(dst, cap, "%s/%s-s%u-%s.%s.%u.%s", log_dir(),
			 harness_is_mosquitto() ? "mosquitto" : "ringmq", harness_shards(), suite, name,
			 idx, ext);

	cr_assert(n > 0 && (size_t)n < cap, "log path too long");
}

/* ------------------------------------------------------------------------
 * Configuration
 * ---------------------------------------------------------------------- */

/* How each directive the tests use reaches mosquitto 2.0: same line, or
 * none (ringmq-only).  Directives not listed fail the oracle run loudly, so
 * a new one is translated on purpose rather than passed through blindly. */
static const struct {
	const char *name;
	bool mosquitto_has;
} directives[] = {
	{"allow_anonymous", true},
	{"max_keepalive", true},
	{"max_inflight_messages", true},
	{"max_queued_messages", true},
	{"max_packet_size", true},
	{"max_connections", true}, /* a listener option there; written after the listener */
	{"persistent_client_expiration", true},
	{"persistence", true},
	{"retain_available", true},
	{"max_qos", true},
	{"message_size_limit", true},
	{"sys_interval", true},
	{"max_topic_alias", true},
	{"connect_timeout", false},
	{"max_subscriptions_per_client", false},
	{"max_topic_levels", false},
	{"max_client_id_length", false},
};

/* Fails the test unless the directive on @line (@len bytes) is in the
 * table and mosquitto has it. */
static void check_translatable(const char *line, size_t len)
{
	size_t word = 0;

	while (word < len && line[word] != ' ' && line[word] != '\t')
		word++;
	for (size_t i = 0; i < sizeof(directives) / sizeof(directives[0]); i++)
		if (strlen(directives[i].name) == word && memcmp(directives[i].name, line, word) == 0) {
			cr_assert(directives[i].mosquitto_has,
				  "directive '%.*s' has no mosquitto equivalent: mark the test "
				  "harness_ringmq_only()",
				  (int)len, line);
			return;
		}
	cr_assert_fail("directive '%.*s' is not in harness.c's translation table", (int)len, line);
}

/* A port that was free a moment ago, for mosquitto, which cannot report an
 * ephemeral port it bound.  The window between close and mosquitto's bind
 * is the oracle run's only race; ringmq binds port 0 itself. */
static uint16_t free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0, "socket: %s", strerror(errno));
	cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "bind: %s", strerror(errno));
	cr_assert(getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
	close(fd);
	return ntohs(a.sin_port);
}

static void write_config(struct broker *b, const char *extra)
{
	char text[CONFIG_BYTES_MAX];
	size_t n = 0;
	int r;
	FILE *f;

	if (b->mosquitto)
		/* As root, mosquitto switches to user "mosquitto" unless told
		 * otherwise, and the credential change clears PR_SET_PDEATHSIG. */
		r = snprintf(text, sizeof(text),
			     "listener %u 127.0.0.1\nallow_anonymous true\npersistence false\n"
			     "log_dest stderr\nlog_type all\nlog_timestamp_format %%H:%%M:%%S\n%s",
			     b->port, geteuid() == 0 ? "user root\n" : "");
	else
		r = snprintf(text, sizeof(text),
			     "listener 0 127.0.0.1\nallow_anonymous true\npersistence false\n");
	cr_assert(r > 0 && (size_t)r < sizeof(text));
	n = (size_t)r;
	for (const char *p = extra ? extra : ""; *p;) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);

		if (len > 0 && p[0] != '#' && b->mosquitto)
			check_translatable(p, len);
		cr_assert(n + len + 1 < sizeof(text), "config too long");
		memcpy(text + n, p, len);
		n += len;
		text[n++] = '\n';
		p += len + (eol ? 1 : 0);
	}
	f = fopen(b->conf_path, "w");
	cr_assert(f, "%s: %s", b->conf_path, strerror(errno));
	cr_assert(fwrite(text, 1, n, f) == n);
	cr_assert(fclose(f) == 0);
}

/* ------------------------------------------------------------------------
 * The log file
 * ---------------------------------------------------------------------- */

/* The whole log as a NUL-terminated string (caller frees). */
static char *log_read(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t cap = 0, len = 0, got;

	if (!f)
		return strdup("");
	do {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 16384;
			text = realloc(text, cap);
			cr_assert(text);
		}
		got = fread(text + len, 1, cap - len - 1, f);
		len += got;
	} while (got > 0);
	fclose(f);
	text[len] = '\0';
	return text;
}

bool broker_log_contains(const struct broker *b, const char *needle)
{
	char *text = log_read(b->log_path);
	bool found = strstr(text, needle) != NULL;

	free(text);
	return found;
}

/* Wait for @needle in the log; returns the log text (caller frees) when it
 * appears, NULL on timeout or when the broker exits first (*ret_exited). */
static char *log_wait(const struct broker *b, const char *needle, int timeout_ms, bool *ret_exited)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	char *text = NULL;

	cr_assert(in >= 0, "inotify_init1: %s", strerror(errno));
	/* Watch first, read second: a line written in between still wakes us. */
	cr_assert(inotify_add_watch(in, b->log_path, IN_MODIFY) >= 0, "inotify_add_watch %s: %s",
		  b->log_path, strerror(errno));
	*ret_exited = false;
	for (;;) {
		struct pollfd pfd[2] = {{.fd = in, .events = POLLIN}, {.fd = b->pidfd, .events = POLLIN}};
		int64_t left = deadline - harness_now_ms();
		char drain[4096];

		text = log_read(b->log_path);
		if (strstr(text, needle))
			break;
		free(text);
		text = NULL;
		if (left <= 0 || *ret_exited)
			break;
		if (poll(pfd, b->pidfd >= 0 ? 2 : 1, (int)left) < 0 && errno != EINTR)
			cr_assert_fail("poll: %s", strerror(errno));
		while (read(in, drain, sizeof(drain)) > 0)
			;
		/* One more read after the exit picks up the last lines. */
		if (pfd[1].revents & POLLIN)
			*ret_exited = true;
	}
	close(in);
	return text;
}

bool broker_log_wait(const struct broker *b, const char *needle, int timeout_ms)
{
	bool exited;
	char *text = log_wait(b, needle, timeout_ms, &exited);

	free(text);
	return text != NULL;
}

/* ------------------------------------------------------------------------
 * Start and stop
 * ---------------------------------------------------------------------- */

static void spawn(struct broker *b)
{
	char shards[16];
	const char *bin = b->mosquitto ? "/usr/sbin/mosquitto" : getenv("RMQ_BINARY");
	int fd;

	cr_assert(bin && *bin, "RMQ_BINARY is not set (meson sets it; see tests/integration/meson.build)");
	cr_assert(access(bin, X_OK) == 0, "broker binary %s: %s", bin, strerror(errno));
	fd = open(b->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert(fd >= 0, "%s: %s", b->log_path, strerror(errno));
	snprintf(shards, sizeof(shards), "%u", b->shards);
	fflush(NULL);
	b->pid = fork();
	cr_assert(b->pid >= 0, "fork: %s", strerror(errno));
	if (b->pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		/* The test process is single-threaded, so the death signal
		 * follows the process that forked us. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(null, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (b->mosquitto)
			execl(bin, bin, "-c", b->conf_path, (char *)NULL);
		else
			execl(bin, bin, "-c", b->conf_path, "--shards", shards, (char *)NULL);
		dprintf(STDERR_FILENO, "harness: exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	close(fd);
	if (brokers_started == 1)
		atexit(kill_leftovers);
	brokers_running[brokers_started - 1] = b->pid;
	b->pidfd = (int)syscall(SYS_pidfd_open, b->pid, 0);
	cr_assert(b->pidfd >= 0, "pidfd_open: %s", strerror(errno));
}

void broker_start(struct broker *b, const char *extra)
{
	const struct criterion_test *t = criterion_current_test;
	const char *needle;
	bool exited;
	char *text;

	cr_assert(brokers_started < BROKERS_PER_TEST_MAX, "too many brokers in one test");
	memset(b, 0, sizeof(*b));
	b->pidfd = -1;
	b->mosquitto = harness_is_mosquitto();
	b->shards = harness_shards();
	if (brokers_started == 0) {
		mkdir(log_dir(), 0755); /* EEXIST is the usual case */
		/* Logs of a failed earlier run must not pass for this run's. */
		for (unsigned i = 1; i < BROKERS_PER_TEST_MAX; i++) {
			name_path(b->log_path, sizeof(b->log_path), t->category, t->name, i, "log");
			unlink(b->log_path);
		}
	}
	name_path(b->log_path, sizeof(b->log_path), t->category, t->name, brokers_started, "log");
	name_path(b->conf_path, sizeof(b->conf_path), t->category, t->name, brokers_started, "conf");
	brokers_started++;
	if (b->mosquitto)
		b->port = free_port();
	write_config(b, extra);
	spawn(b);

	/* mosquitto logs "Opening ... listen socket" before it listens, and
	 * "running" once it does. */
	needle = b->mosquitto ? " running" : "listening on 127.0.0.1:";
	text = log_wait(b, needle, BROKER_START_MS, &exited);
	cr_assert(text, "broker %s within %d ms (log: %s)", exited ? "exited before listening" : "not listening",
		  BROKER_START_MS, b->log_path);
	if (!b->mosquitto) {
		unsigned long port = strtoul(strstr(text, needle) + strlen(needle), NULL, 10);

		cr_assert(port > 0 && port <= 65535, "bad port in the listening line");
		b->port = (uint16_t)port;
	}
	free(text);
}

int broker_wait_exit(struct broker *b, int timeout_ms)
{
	struct pollfd pfd = {.fd = b->pidfd, .events = POLLIN};
	int status = -1;

	cr_assert(b->pid > 0, "broker not running");
	if (poll(&pfd, 1, timeout_ms) <= 0) {
		kill(b->pid, SIGKILL);
		waitpid(b->pid, NULL, 0);
	} else {
		cr_assert(waitpid(b->pid, &status, 0) == b->pid);
	}
	for (unsigned i = 0; i < BROKERS_PER_TEST_MAX; i++)
		if (brokers_running[i] == b->pid)
			brokers_running[i] = 0;
	close(b->pidfd);
	b->pidfd = -1;
	b->pid = 0;
	return status;
}

void broker_stop(struct broker *b)
{
	int status;

	cr_assert(kill(b->pid, SIGTERM) == 0, "kill: %s", strerror(errno));
	status = broker_wait_exit(b, BROKER_STOP_MS);
	cr_assert(status != -1, "broker did not exit within %d ms of SIGTERM", BROKER_STOP_MS);
	cr_assert(WIFEXITED(status), "broker died of signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	cr_assert(WEXITSTATUS(status) == 0, "broker exited with status %d", WEXITSTATUS(status));
}

/* ------------------------------------------------------------------------
 * Report hook: runs in Criterion's runner process after each test.
 * ---------------------------------------------------------------------- */

ReportHook(POST_FINI)(struct criterion_test_stats *stats)
{
	bool failed = stats->test_status == CR_STATUS_FAILED || stats->crashed || stats->timed_out;

	for (unsigned i = 0; i < BROKERS_PER_TEST_MAX; i++) {
		char path[PATH_MAX], conf[PATH_MAX];
		char *text;

		name_path(path, sizeof(path), stats->test->category, stats->test->name, i, "log");
		name_path(conf, sizeof(conf), stats->test->category, stats->test->name, i, "conf");
		if (!failed) {
			unlink(path);
			unlink(conf);
		} else if (access(path, F_OK) == 0) {
			/* Kept, with the config, to reproduce the failure. */
			text = log_read(path);
			fprintf(stderr, "---- broker log %s ----\n%s---- end of broker log ----\n", path, text);
			free(text);
		}
	}
}

/* ------------------------------------------------------------------------
 * Resource use
 * ---------------------------------------------------------------------- */

long broker_rss_kb(const struct broker *b)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)b->pid);
	f = fopen(path, "r");
	cr_assert(f, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = strtol(line + 6, NULL, 10);
	fclose(f);
	cr_assert(kb >= 0, "no VmRSS in %s", path);
	return kb;
}
