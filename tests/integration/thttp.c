/*
 * thttp.c - the integration tests' HTTP client and Prometheus text readers
 * (see thttp.h).
 *
 * Blocking sockets with poll(2) and a deadline, like tclient.c: a request
 * the broker never answers fails the test at the deadline instead of
 * hanging it.  promtool runs as a child with its standard input and output
 * in temporary files, so neither side can block on a full pipe.
 */
#include "thttp.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define THTTP_WAIT_MS 5000
#define THTTP_SERIES_MAX 256

uint16_t thttp_port(const struct broker *b)
{
	static const char needle[] = "http listening on 127.0.0.1:";
	char text[65536];
	const char *at;
	unsigned long port;
	FILE *f;
	size_t n;

	cr_assert(broker_log_wait(b, needle, BROKER_START_MS), "no '%s' line in %s", needle, b->log_path);
	f = fopen(b->log_path, "r");
	cr_assert(f, "%s: %s", b->log_path, strerror(errno));
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	at = strstr(text, needle);
	cr_assert(at, "the listening line went away");
	port = strtoul(at + strlen(needle), NULL, 10);
	cr_assert(port > 0 && port <= 65535, "bad port in '%.60s'", at);
	return (uint16_t)port;
}

static int connect_to(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0, "socket: %s", strerror(errno));
	cr_assert(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect to HTTP port %u: %s", port,
		  strerror(errno));
	return fd;
}

bool thttp_port_open(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool open;

	cr_assert(fd >= 0, "socket: %s", strerror(errno));
	open = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return open;
}

/* Everything until the peer closes, or the deadline. */
static char *read_all(int fd, int timeout_ms, size_t *ret_len)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap);

	cr_assert(buf);
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - harness_now_ms();
		ssize_t n;

		cr_assert(left > 0, "HTTP answer not complete within %d ms (%zu bytes so far)", timeout_ms, len);
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		if (cap - len < 4096) {
			cap *= 2;
			buf = realloc(buf, cap);
			cr_assert(buf);
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* closed (or reset): the answer is what arrived */
		len += (size_t)n;
	}
	buf[len] = '\0';
	*ret_len = len;
	return buf;
}

int thttp_request(uint16_t port, const void *req, size_t len, int timeout_ms, char **ret_head, char **ret_body)
{
	int fd = connect_to(port), status = 0;
	const char *p = req;
	size_t got;
	char *all, *sep;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break; /* the broker may answer and close before reading it all */
		p += n;
		len -= (size_t)n;
	}
	all = read_all(fd, timeout_ms, &got);
	close(fd);
	if (strncmp(all, "HTTP/1.1 ", 9) == 0 || strncmp(all, "HTTP/1.0 ", 9) == 0)
		status = (int)strtol(all + 9, NULL, 10);
	sep = strstr(all, "\r\n\r\n");
	if (ret_body)
		*ret_body = strdup(sep ? sep + 4 : "");
	if (sep)
		*sep = '\0';
	if (ret_head)
		*ret_head = strdup(all);
	free(all);
	return status;
}

int thttp_get(uint16_t port, const char *path, char **ret_body)
{
	char req[512];
	/* HTTP/1.0: the answer is never chunked and the server closes after it. */
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: ringmq-test\r\n\r\n",
			 path);

	cr_assert(n > 0 && (size_t)n < sizeof(req));
	return thttp_request(port, req, (size_t)n, THTTP_WAIT_MS, NULL, ret_body);
}

double thttp_value(const char *page, const char *series)
{
	char want[THTTP_SERIES_MAX + 2];
	const char *at;
	int n = snprintf(want, sizeof(want), "%s ", series);

	cr_assert(n > 0 && (size_t)n < sizeof(want));
	for (at = page; (at = strstr(at, want)) != NULL; at++)
		if (at == page || at[-1] == '\n')
			return strtod(at + strlen(want), NULL);
	cr_assert_fail("no sample %s on the page", series);
	return 0;
}

double thttp_sum(const char *page, const char *name)
{
	size_t nl = strlen(name);
	double sum = 0;
	bool found = false;

	for (const char *line = page; *line;) {
		const char *eol = strchr(line, '\n');
		if (line[0] != '#' && strncmp(line, name, nl) == 0 && (line[nl] == '{' || line[nl] == ' ')) {
			const char *sp = strchr(line, ' ');
			if (line[nl] == '{')
				sp = strstr(line, "} ") ? strstr(line, "} ") + 1 : sp;
			sum += strtod(sp, NULL);
			found = true;
		}
		if (!eol)
			break;
		line = eol + 1;
	}
	return found ? sum : -1;
}

static char *file_text(int fd)
{
	off_t size = lseek(fd, 0, SEEK_END);
	char *text = malloc((size_t)size + 1);

	cr_assert(size >= 0 && text);
	cr_assert(pread(fd, text, (size_t)size, 0) == size);
	text[size] = '\0';
	return text;
}

int thttp_promtool(const char *page, char **ret_output)
{
	char in_path[] = "/tmp/ringmq-metrics-XXXXXX", out_path[] = "/tmp/ringmq-promtool-XXXXXX";
	int in = mkstemp(in_path), out = mkstemp(out_path), status;
	size_t len = strlen(page);
	pid_t pid;

	cr_assert(in >= 0 && out >= 0, "mkstemp: %s", strerror(errno));
	unlink(in_path);
	unlink(out_path);
	cr_assert(write(in, page, len) == (ssize_t)len);
	cr_assert(lseek(in, 0, SEEK_SET) == 0);
	fflush(NULL);
	pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(in, STDIN_FILENO);
		dup2(out, STDOUT_FILENO);
		dup2(out, STDERR_FILENO);
		execlp("promtool", "promtool", "check", "metrics", (char *)NULL);
		_exit(127);
	}
	cr_assert(waitpid(pid, &status, 0) == pid);
	*ret_output = file_text(out);
	close(in);
	close(out);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 127,
		  "promtool could not be run: install Debian's prometheus package (apt-get install prometheus; "
		  "build.sh test does it)");
	return WEXITSTATUS(status);
}
