/*
 * net.h - sockets and io_uring plumbing shared by the shards.
 *
 * Listening sockets: every shard opens its own SO_REUSEPORT socket per
 * listener, so the kernel spreads new connections over the shards and no
 * accept queue is shared.  Provided-buffer rings: each shard registers one
 * ring of fixed-size receive buffers that multishot recv picks from.
 *
 * Owner:    the shard that called net_bufring_new() owns the ring and its
 *           memory; listening sockets belong to the shard that opened them.
 * Lifetime: created at shard start, freed at shard exit.
 * Shared:   never.
 */
#ifndef RINGMQ_NET_H
#define RINGMQ_NET_H

#include <liburing.h>
#include <stdint.h>

/**
 * net_listen() - open, bind and listen on @addr:@port with SO_REUSEPORT.
 * @addr: numeric IPv4/IPv6 address or a host name; "" = all IPv6+IPv4.
 * @port: 0 picks an ephemeral port; *ret_port gets the bound port.
 * Returns 0 and the socket in *ret_fd, or a negative errno; on error
 * @err (256 bytes) says what failed ("bind 127.0.0.1:1883: Address in use").
 */
int net_listen(const char *addr, uint16_t port, int *ret_fd, uint16_t *ret_port, char *err);

/* A provided-buffer ring of `count` buffers of `size` bytes, group `bgid`. */
struct net_bufring {
	struct io_uring_buf_ring *br;
	uint8_t *base;
	uint32_t count;
	uint32_t size;
	uint16_t bgid;
	uint32_t mask;
};

/**
 * net_bufring_new() - allocate and register a buffer ring on @ring.
 * @count must be a power of two.  Returns 0 or a negative errno (-EINVAL
 * when the kernel lacks provided-buffer rings: Linux 5.19+ is required).
 */
int net_bufring_new(struct io_uring *ring, uint16_t bgid, uint32_t count, uint32_t size,
		    struct net_bufring *ret);

/** net_bufring_put() - give buffer @bid back to the kernel. */
void net_bufring_put(struct net_bufring *b, uint16_t bid);

/** net_bufring_ptr() - the memory of buffer @bid. */
static inline uint8_t *net_bufring_ptr(const struct net_bufring *b, uint16_t bid)
{
	return b->base + (size_t)bid * b->size;
}

/** net_bufring_free() - unregister and free; accepts a zeroed struct. */
void net_bufring_free(struct io_uring *ring, struct net_bufring *b);

/** net_accepted() - per-connection socket options (TCP_NODELAY). */
void net_accepted(int fd);

/** net_peer_name() - "ADDR:PORT" of a connected socket into @buf (64 bytes). */
void net_peer_name(int fd, char *buf, size_t len);

#endif
