/*
 * http.c - the HTTP listener: /metrics, /healthz, /readyz (see http.h).
 *
 * One thread, blocking-free sockets and poll(2).  The thread waits for a
 * connection or the stop eventfd, then serves that one connection to the
 * end: read the request up to its blank line (at most
 * HTTP_REQUEST_BYTES_MAX bytes, within HTTP_IO_TIMEOUT_MS), answer, close.
 * The deadline covers the whole request, not each read, so a client
 * sending a byte at a time cannot hold the thread longer; the stop eventfd
 * is watched during every wait, so shutdown never waits for a client.
 * Requests are served one after another: a scrape takes well under a
 * millisecond, and serving them concurrently would buy nothing but a way
 * to use more memory.  Nothing here touches a shard's memory except
 * through stats_snapshot_take(), which only loads atomics.
 *
 * HTTP parsing is deliberately small: the request line is checked
 * ("METHOD SP PATH SP HTTP/1.x"), headers are skipped, a body is neither
 * expected nor read.  Any answer closes the connection, which is what a
 * Prometheus scraper and a kubelet probe handle best anyway.
 */
#include "ringmq/http.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ringmq/limits.h"
#include "ringmq/log.h"
#include "ringmq/metrics.h"
#include "ringmq/net.h"
#include "ringmq/shard.h"
#include "ringmq/stats.h"

#define HTTP_BACKLOG 64
#define HTTP_HEAD_BYTES 512 /* the status line and headers of an answer */
#define HTTP_PEER_BYTES 64
#define HTTP_LINGER_MS 500 /* reading what a client still sends after the answer */
#define HTTP_LINGER_BYTES 65536
#define HTTP_ERROR_BYTES 256
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define TEXT_CONTENT_TYPE "text/plain; charset=utf-8"

struct http {
	struct broker *b;
	int listen_fd;
	int stop_fd; /* eventfd: readable once http_stop() was called */
	pthread_t thread;
};

/* An answer: status, content type and body (borrowed). */
struct answer {
	int status;
	const char *reason;
	const char *type;
	const char *body;
	size_t len;
	bool allow; /* add "Allow: GET, HEAD" (405) */
};

/* ---------------------------------------------------------------- socket */

static int listen_on(const char *addr, uint16_t port, int *ret_fd, uint16_t *ret_port, char *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char portstr[8];
	int fd = -1, one = 1, r;

	(void)snprintf(portstr, sizeof(portstr), "%u", port);
	hints.ai_family = addr[0] ? AF_UNSPEC : AF_INET6;
	r = getaddrinfo(addr[0] ? addr : NULL, portstr, &hints, &res);
	if (r != 0) {
		(void)snprintf(err, HTTP_ERROR_BYTES, "resolve '%s': %s", addr, gai_strerror(r));
		return -EADDRNOTAVAIL;
	}
	/* No SO_REUSEPORT here (unlike the MQTT listeners): a second broker on
	 * the same port must fail, not share the probes. */
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (res->ai_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){0}, sizeof(int)) < 0) ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, HTTP_BACKLOG) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		r = -errno;
		(void)snprintf(err, HTTP_ERROR_BYTES, "listen on %s:%u: %s", addr[0] ? addr : "*", port,
			       strerror(-r));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return r;
	}
	freeaddrinfo(res);
	*ret_port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						  : ((struct sockaddr_in6 *)&ss)->sin6_port);
	*ret_fd = fd;
	return 0;
}

/* Wait until @fd is ready for @events, the deadline passes (-ETIMEDOUT) or
 * the server is stopping (-ECANCELED). */
static int wait_fd(const struct http *h, int fd, short events, uint64_t deadline_ms)
{
	for (;;) {
		struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = h->stop_fd, .events = POLLIN}};
		uint64_t now = shard_now_ms();
		int r;

		if (now >= deadline_ms)
			return -ETIMEDOUT;
		r = poll(p, 2, (int)(deadline_ms - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (p[1].revents)
			return -ECANCELED;
		if (p[0].revents)
			return 0;
	}
}

/* Read until the blank line that ends the headers.  Returns 0, -E2BIG,
 * -ETIMEDOUT, -ECANCELED or -ECONNRESET. */
static int read_request(const struct http *h, int fd, char *buf, size_t cap, size_t *ret_len)
{
	uint64_t deadline = shard_now_ms() + HTTP_IO_TIMEOUT_MS;
	size_t len = 0;

	for (;;) {
		ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n > 0) {
			len += (size_t)n;
			buf[len] = '\0';
			if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n")) {
				*ret_len = len;
				return 0;
			}
			if (len == cap - 1)
				return -E2BIG;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			return -ECONNRESET;
		if (errno == EAGAIN) {
			int r = wait_fd(h, fd, POLLIN, deadline);
			if (r < 0)
				return r;
		}
	}
}

static int write_all(const struct http *h, int fd, const char *p, size_t len, uint64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EAGAIN) {
			int r = wait_fd(h, fd, POLLOUT, deadline);
			if (r < 0)
				return r;
		} else if (n < 0 && errno != EINTR) {
			return -errno;
		}
	}
	return 0;
}

/* -------------------------------------------------------------- answers */

static void answer_text(struct answer *a, int status, const char *reason, const char *body)
{
	*a = (struct answer){.status = status, .reason = reason, .type = TEXT_CONTENT_TYPE, .body = body,
			     .len = strlen(body)};
}

static void send_answer(const struct http *h, int fd, const struct answer *a, bool head)
{
	char hdr[HTTP_HEAD_BYTES];
	uint64_t deadline = shard_now_ms() + HTTP_IO_TIMEOUT_MS;
	int n = snprintf(hdr, sizeof(hdr),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
			 a->status, a->reason, a->type, a->len, a->allow ? "Allow: GET, HEAD\r\n" : "");

	RMQ_ASSERT(n > 0 && (size_t)n < sizeof(hdr));
	if (write_all(h, fd, hdr, (size_t)n, deadline) == 0 && !head && a->len > 0)
		(void)write_all(h, fd, a->body, a->len, deadline); /* a client gone is its own business */
}

/* GET /healthz, /readyz: @text (HTTP_ERROR_BYTES) holds the body. */
static void probe(struct stats_snapshot *s, bool ready, struct answer *a, char *text)
{
	const char *why;
	int stalled;

	if (ready) {
		why = stats_not_ready(s);
		(void)snprintf(text, HTTP_ERROR_BYTES, "%s\n", why ? why : "ready");
		answer_text(a, why ? 503 : 200, why ? "Service Unavailable" : "OK", text);
		return;
	}
	stalled = stats_stalled_shard(s, HTTP_HEALTH_STALL_MS);
	if (stalled < 0)
		(void)snprintf(text, HTTP_ERROR_BYTES, "ok: %u shards turning\n", s->nshards);
	else
		(void)snprintf(text, HTTP_ERROR_BYTES, "shard %d has not turned for over %u ms\n", stalled,
			       HTTP_HEALTH_STALL_MS);
	answer_text(a, stalled < 0 ? 200 : 503, stalled < 0 ? "OK" : "Service Unavailable", text);
}

/* Answer the request for @path with @snap's figures; @page and @text
 * (HTTP_ERROR_BYTES) hold the body. */
static void route(struct stats_snapshot *snap, const char *path, struct prom_buf *page, char *text,
		  struct answer *a)
{
	if (strcmp(path, "/metrics") == 0) {
		metrics_render(snap, RINGMQ_VERSION, page);
		if (page->oom) {
			answer_text(a, 500, "Internal Server Error", "out of memory\n");
			return;
		}
		*a = (struct answer){.status = 200, .reason = "OK", .type = PROM_CONTENT_TYPE, .body = page->data,
				     .len = page->len};
	} else if (strcmp(path, "/healthz") == 0) {
		probe(snap, false, a, text);
	} else if (strcmp(path, "/readyz") == 0) {
		probe(snap, true, a, text);
	} else {
		answer_text(a, 404, "Not Found", "not found: try /metrics, /healthz or /readyz\n");
	}
}

/* Split "METHOD SP TARGET SP HTTP/1.x" in place.  Returns false if malformed. */
static bool request_line(char *req, char **ret_method, char **ret_path)
{
	char *sp1 = strchr(req, ' '), *sp2, *eol = strpbrk(req, "\r\n"), *q;

	if (!sp1 || !eol || sp1 > eol)
		return false;
	sp2 = strchr(sp1 + 1, ' ');
	if (!sp2 || sp2 > eol || strncmp(sp2 + 1, "HTTP/1.", 7) != 0 || sp1[1] != '/')
		return false;
	*sp1 = '\0';
	*sp2 = '\0';
	q = strchr(sp1 + 1, '?');
	if (q)
		*q = '\0'; /* no endpoint takes parameters */
	*ret_method = req;
	*ret_path = sp1 + 1;
	return true;
}

static void serve(struct http *h, int fd, const char *peer)
{
	char req[HTTP_REQUEST_BYTES_MAX + 1], text[HTTP_ERROR_BYTES];
	struct prom_buf page;
	struct stats_snapshot *snap = NULL;
	struct answer a;
	char *method = NULL, *path = NULL;
	size_t len = 0;
	int r = read_request(h, fd, req, sizeof(req), &len);

	prom_init(&page);
	if (r == -E2BIG)
		answer_text(&a, 431, "Request Header Fields Too Large", "request too large\n");
	else if (r < 0)
		return; /* timed out, closed or stopping: nobody to answer */
	else if (!request_line(req, &method, &path))
		answer_text(&a, 400, "Bad Request", "bad request\n");
	else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		answer_text(&a, 405, "Method Not Allowed", "only GET and HEAD\n");
	else if (!(snap = stats_snapshot_take(h->b)))
		answer_text(&a, 500, "Internal Server Error", "out of memory\n");
	else
		route(snap, path, &page, text, &a);
	a.allow = a.status == 405;
	log_debug(NULL, "http %s %s from %s: %d", method ? method : "-", path ? path : "-", peer, a.status);
	send_answer(h, fd, &a, method && strcmp(method, "HEAD") == 0);
	prom_done(&page);
	free(snap);
}

/* Close the way nginx does ("lingering close"): send FIN first, then read
 * and drop what the client still sends until it closes too (bounded in time
 * and bytes).  Closing with unread bytes would send a reset, which can
 * destroy the answer before the client has read it (a 431 leaves the rest
 * of the oversized request unread). */
static void linger_close(const struct http *h, int fd)
{
	uint64_t deadline = shard_now_ms() + HTTP_LINGER_MS;
	size_t dropped = 0;
	char buf[4096];

	(void)shutdown(fd, SHUT_WR); /* ENOTCONN if the client is gone: nothing to do */
	while (dropped < HTTP_LINGER_BYTES) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n > 0) {
			dropped += (size_t)n;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			break;
		if (errno == EAGAIN && wait_fd(h, fd, POLLIN, deadline) < 0)
			break;
	}
	close(fd);
}

static void *http_main(void *arg)
{
	struct http *h = arg;
	char peer[HTTP_PEER_BYTES];

	for (;;) {
		struct pollfd p[2] = {{.fd = h->listen_fd, .events = POLLIN}, {.fd = h->stop_fd, .events = POLLIN}};
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR) {
			log_error(NULL, "http: poll: %s", strerror(errno));
			break;
		}
		if (p[1].revents)
			break;
		if (!p[0].revents)
			continue;
		fd = accept4(h->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn(NULL, "http: accept: %s", strerror(errno));
			continue;
		}
		net_peer_name(fd, peer, sizeof(peer));
		serve(h, fd, peer);
		linger_close(h, fd);
	}
	return NULL;
}

/* ------------------------------------------------------------- public */

int http_start(struct broker *b, const char *addr, uint16_t port, struct http **ret)
{
	struct http *h = calloc(1, sizeof(*h));
	char err[HTTP_ERROR_BYTES];
	uint16_t bound = 0;
	int r;

	if (!h)
		return -ENOMEM;
	h->b = b;
	h->listen_fd = -1;
	h->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->stop_fd < 0) {
		r = -errno;
		log_error(NULL, "http_listener: eventfd: %s", strerror(-r));
		free(h);
		return r;
	}
	r = listen_on(addr, port, &h->listen_fd, &bound, err);
	if (r == 0 && (r = -pthread_create(&h->thread, NULL, http_main, h)) < 0)
		(void)snprintf(err, sizeof(err), "cannot start the thread: %s", strerror(-r));
	if (r < 0) {
		log_error(NULL, "http_listener: %s", err);
		if (h->listen_fd >= 0)
			close(h->listen_fd);
		close(h->stop_fd);
		free(h);
		return r;
	}
	log_info(NULL, "http listening on %s:%u (/metrics, /healthz, /readyz)", addr[0] ? addr : "*", bound);
	*ret = h;
	return 0;
}

struct http *http_stop(struct http *h)
{
	uint64_t one = 1;

	if (!h)
		return NULL;
	/* An eventfd write of 1 cannot fail short of overflow, which one write cannot reach. */
	(void)!write(h->stop_fd, &one, sizeof(one));
	pthread_join(h->thread, NULL);
	close(h->listen_fd);
	close(h->stop_fd);
	free(h);
	return NULL;
}
