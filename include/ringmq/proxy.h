/*
 * proxy.h - the PROXY protocol header (HAProxy, versions 1 and 2) that a
 * load balancer sends before anything else on a connection, to say which
 * client it forwards.
 *
 * A codec in the style of src/mqtt: pure functions over caller-owned
 * bytes, no I/O, no logging, no allocation.  proxy_parse() answers
 * "complete" (bytes consumed), "incomplete" or "malformed" (with the reason
 * in words), so the caller can feed it whatever its reads gave so far.
 *
 * Owner:    struct proxy_header - the caller (a connection on its shard,
 *           usually on its stack).
 * Lifetime: filled by proxy_parse(); holds copies, no views into the input.
 * Shared:   never.
 */
#ifndef RINGMQ_PROXY_H
#define RINGMQ_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct config_net;

/* Which header versions a listener accepts (directive proxy_protocol):
 * a bitmask, PROXY_ANY = either. */
enum proxy_versions {
	PROXY_OFF = 0,
	PROXY_V1 = 1,
	PROXY_V2 = 2,
	PROXY_ANY = 3,
};

struct proxy_header {
	uint8_t version; /* 1 or 2 */
	/* The proxy speaks for itself (v2 LOCAL: health checks) or does not
	 * know the client (v1 UNKNOWN, v2 AF_UNSPEC / AF_UNIX): no address. */
	bool local;
	int family; /* AF_INET or AF_INET6; AF_UNSPEC when no address came */
	uint8_t source[16]; /* network byte order; the first 4 bytes for AF_INET */
	uint8_t target[16];
	uint16_t source_port; /* host byte order */
	uint16_t target_port;
};

/**
 * proxy_parse() - one PROXY header at the start of @buf.
 * @versions: the versions accepted (enum proxy_versions, not PROXY_OFF).
 * Returns the header's length in bytes (> 0) with *ret filled; 0 when
 * @buf is a valid beginning of a header and more bytes are needed; or
 * -EPROTO with the reason in *ret_why (a static string) when the bytes are
 * not a header of an accepted version, or a malformed or oversized one
 * (v1 over PROXY_V1_BYTES_MAX, v2 over PROXY_HEADER_BYTES_MAX).  Never
 * reads past @len.  v2 TLVs are skipped, not interpreted.
 */
int proxy_parse(const uint8_t *buf, size_t len, unsigned versions, struct proxy_header *ret,
		const char **ret_why);

/**
 * proxy_format() - the header's client as "ADDR:PORT" (the form
 * net_peer_name() writes) into @buf of @len bytes.  Returns 0, or
 * -EAFNOSUPPORT when the header carries no client address (h->local); @buf
 * is then untouched.
 */
int proxy_format(const struct proxy_header *h, char *buf, size_t len);

/**
 * proxy_trusted() - whether @sa (the socket's peer) lies in one of the
 * @count networks of @nets.  An IPv4-mapped IPv6 address (a dual-stack
 * listener) matches IPv4 networks.  Any address is trusted when @count is 0.
 */
bool proxy_trusted(const struct config_net *nets, unsigned count, const struct sockaddr *sa);

#endif
