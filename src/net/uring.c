/*
 * uring.c - listening sockets and provided-buffer rings.
 *
 * Listening sockets are created blocking-free (accept goes through
 * io_uring's multishot accept), with SO_REUSEPORT so each shard has its own
 * socket on the same address.  Port 0 is resolved by the first shard; the
 * others bind the port it got.
 *
 * The buffer ring is one mmap'ed region: the ring entries followed by the
 * buffers.  Buffers go back to the kernel one at a time as the shard has
 * consumed them (net_bufring_put), so a slow frame never pins more than its
 * own buffers.
 */
#include "ringmq/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG 4096

static int listen_on(const struct addrinfo *ai, int *ret_fd)
{
	int one = 1;
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	/* MQTT packets are small and each send is a whole batch already:
	 * Nagle plus delayed ACKs would hold them back up to ~40 ms.  Accepted
	 * sockets inherit the option; net_accepted() sets it again anyway. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		goto fail;
	if (ai->ai_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){0}, sizeof(int)) < 0)
		goto fail;
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0)
		goto fail;
	*ret_fd = fd;
	return 0;
fail:
	one = -errno;
	close(fd);
	return one;
}

int net_listen(const char *addr, uint16_t port, int *ret_fd, uint16_t *ret_port, char *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char portstr[8];
	int fd = -1, r;

	snprintf(portstr, sizeof(portstr), "%u", port);
	hints.ai_family = addr[0] ? AF_UNSPEC : AF_INET6;
	r = getaddrinfo(addr[0] ? addr : NULL, portstr, &hints, &res);
	if (r != 0) {
		snprintf(err, 256, "resolve '%s': %s", addr, gai_strerror(r));
		return -EADDRNOTAVAIL;
	}
	r = listen_on(res, &fd);
	freeaddrinfo(res);
	if (r < 0) {
		snprintf(err, 256, "listen on %s:%u: %s", addr[0] ? addr : "*", port, strerror(-r));
		return r;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		r = -errno;
		close(fd);
		snprintf(err, 256, "getsockname: %s", strerror(-r));
		return r;
	}
	*ret_port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						  : ((struct sockaddr_in6 *)&ss)->sin6_port);
	*ret_fd = fd;
	return 0;
}

int net_bufring_new(struct io_uring *ring, uint16_t bgid, uint32_t count, uint32_t size,
		    struct net_bufring *ret)
{
	struct io_uring_buf_reg reg = {0};
	size_t ring_bytes = count * sizeof(struct io_uring_buf);
	size_t total = ring_bytes + (size_t)count * size;
	void *mem;
	int r;

	if (count == 0 || (count & (count - 1)) != 0 || count > 32768)
		return -EINVAL;
	mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	reg.ring_addr = (unsigned long)mem;
	reg.ring_entries = count;
	reg.bgid = bgid;
	r = io_uring_register_buf_ring(ring, &reg, 0);
	if (r < 0) {
		munmap(mem, total);
		return r;
	}
	ret->br = mem;
	ret->base = (uint8_t *)mem + ring_bytes;
	ret->count = count;
	ret->size = size;
	ret->bgid = bgid;
	ret->mask = io_uring_buf_ring_mask(count);
	io_uring_buf_ring_init(ret->br);
	for (uint32_t i = 0; i < count; i++)
		io_uring_buf_ring_add(ret->br, net_bufring_ptr(ret, (uint16_t)i), size, (uint16_t)i,
				      ret->mask, (int)i);
	io_uring_buf_ring_advance(ret->br, (int)count);
	return 0;
}

void net_bufring_put(struct net_bufring *b, uint16_t bid)
{
	io_uring_buf_ring_add(b->br, net_bufring_ptr(b, bid), b->size, bid, b->mask, 0);
	io_uring_buf_ring_advance(b->br, 1);
}

void net_bufring_free(struct io_uring *ring, struct net_bufring *b)
{
	if (!b->br)
		return;
	(void)io_uring_unregister_buf_ring(ring, b->bgid); /* ring teardown follows anyway */
	munmap(b->br, b->count * sizeof(struct io_uring_buf) + (size_t)b->count * b->size);
	b->br = NULL;
}

void net_accepted(int fd)
{
	int one = 1;
	/* Best effort: a socket without it still works, only with more latency. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void net_peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0) {
		/* A client that reset before its accept was handled has no address
		 * left to read (multishot accept does not report one). */
		snprintf(buf, len, "(peer gone: %s)", strerror(errno));
		return;
	}
	{
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
			port = ntohs(s4->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
			port = ntohs(s6->sin6_port);
		}
	}
	snprintf(buf, len, "%s:%u", host, port);
}
