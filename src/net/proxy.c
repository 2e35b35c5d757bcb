/*
 * proxy.c - PROXY protocol headers (see proxy.h and HAProxy's
 * proxy-protocol.txt).
 *
 * Version 1 is one text line, "PROXY TCP4|TCP6|UNKNOWN ... \r\n", at most
 * 107 bytes with its CRLF (the specification's own bound, so a reader
 * never buffers more).  Version 2 is binary: a 12-byte signature, a
 * version/command byte, a family/transport byte, a 16-bit length and that
 * many bytes of addresses and TLVs; the length is bounded here by
 * PROXY_HEADER_BYTES_MAX, far above what load balancers send.
 *
 * Only what the first bytes allow is decided early: a buffer that is not a
 * prefix of an accepted signature is refused at once, so a client that
 * speaks MQTT or TLS straight to a PROXY listener is told so without
 * waiting for the CONNECT timeout.
 */
#include "ringmq/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "ringmq/config.h"
#include "ringmq/limits.h"

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[6] = "PROXY ";

#define V2_FIXED_BYTES 16u
#define V2_INET_BYTES 12u /* two IPv4 addresses, two ports */
#define V2_INET6_BYTES 36u /* two IPv6 addresses, two ports */

_Static_assert(PROXY_HEADER_BYTES_MAX >= PROXY_V1_BYTES_MAX, "a v1 header must fit the header bound");
_Static_assert(PROXY_HEADER_BYTES_MAX >= V2_FIXED_BYTES + V2_INET6_BYTES, "a v2 IPv6 header must fit");

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* ------------------------------------------------------------- version 1 */

/* One space-terminated field of at most @max bytes at *@p (before @end). */
static bool v1_field(const char **p, const char *end, char sep, char *out, size_t max)
{
	const char *q = memchr(*p, sep, (size_t)(end - *p));
	size_t n;

	if (!q)
		return false;
	n = (size_t)(q - *p);
	if (n == 0 || n >= max)
		return false;
	memcpy(out, *p, n);
	out[n] = '\0';
	*p = q + 1;
	return true;
}

static bool v1_port(const char *s, uint16_t *ret)
{
	unsigned v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*ret = (uint16_t)v;
	return true;
}

/* "PROXY TCP4 SRC DST SPORT DPORT\r\n": the line is whole (ends at @end,
 * CRLF excluded). */
static int v1_line(const char *p, const char *end, struct proxy_header *h, const char **why)
{
	char proto[8], src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN], sport[8], dport[8];
	const char *tail = end;

	p += sizeof(v1_sig);
	if ((size_t)(end - p) >= 7 && memcmp(p, "UNKNOWN", 7) == 0 && (end - p == 7 || p[7] == ' ')) {
		/* the proxy does not know the client; anything may follow */
		h->local = true;
		h->family = AF_UNSPEC;
		return 0;
	}
	*why = "v1 header: expected TCP4, TCP6 or UNKNOWN after PROXY";
	if (!v1_field(&p, end, ' ', proto, sizeof(proto)))
		return -EPROTO;
	if (strcmp(proto, "TCP4") == 0)
		h->family = AF_INET;
	else if (strcmp(proto, "TCP6") == 0)
		h->family = AF_INET6;
	else
		return -EPROTO;
	*why = "v1 header: malformed addresses or ports";
	if (!v1_field(&p, end, ' ', src, sizeof(src)) || !v1_field(&p, end, ' ', dst, sizeof(dst)) ||
	    !v1_field(&p, end, ' ', sport, sizeof(sport)))
		return -EPROTO;
	if (p >= tail || (size_t)(tail - p) >= sizeof(dport))
		return -EPROTO;
	memcpy(dport, p, (size_t)(tail - p));
	dport[tail - p] = '\0';
	if (!v1_port(sport, &h->source_port) || !v1_port(dport, &h->target_port))
		return -EPROTO;
	*why = h->family == AF_INET ? "v1 header: TCP4 with an address that is not IPv4"
				    : "v1 header: TCP6 with an address that is not IPv6";
	if (inet_pton(h->family, src, h->source) != 1 || inet_pton(h->family, dst, h->target) != 1)
		return -EPROTO;
	return 0;
}

static int v1_parse(const uint8_t *buf, size_t len, struct proxy_header *h, const char **why)
{
	size_t scan = min_size(len, PROXY_V1_BYTES_MAX);
	const uint8_t *cr = NULL;
	int r;

	for (size_t i = 0; i + 1 < scan; i++) {
		if (buf[i] == '\r' && buf[i + 1] == '\n') {
			cr = buf + i;
			break;
		}
		if (buf[i] == '\0' || buf[i] == '\n') {
			*why = "v1 header: control character before CRLF";
			return -EPROTO;
		}
	}
	if (!cr) {
		if (len >= PROXY_V1_BYTES_MAX) {
			*why = "v1 header: no CRLF within 107 bytes";
			return -EPROTO;
		}
		return 0;
	}
	memset(h, 0, sizeof(*h));
	h->version = 1;
	r = v1_line((const char *)buf, (const char *)cr, h, why);
	return r < 0 ? r : (int)(cr - buf) + 2;
}

/* ------------------------------------------------------------- version 2 */

static int v2_parse(const uint8_t *buf, size_t len, struct proxy_header *h, const char **why)
{
	size_t total;
	uint8_t cmd, fam;

	if (len < V2_FIXED_BYTES)
		return 0;
	if ((buf[12] >> 4) != 2) {
		*why = "v2 header: version is not 2";
		return -EPROTO;
	}
	cmd = buf[12] & 0x0F;
	if (cmd > 1) {
		*why = "v2 header: command is neither LOCAL nor PROXY";
		return -EPROTO;
	}
	total = V2_FIXED_BYTES + ((size_t)buf[14] << 8 | buf[15]);
	if (total > PROXY_HEADER_BYTES_MAX) {
		*why = "v2 header: longer than PROXY_HEADER_BYTES_MAX";
		return -EPROTO;
	}
	fam = buf[13];
	memset(h, 0, sizeof(*h));
	h->version = 2;
	h->family = AF_UNSPEC;
	h->local = true;
	if (cmd == 1 && (fam & 0x0F) == 2) { /* SOCK_DGRAM: not an MQTT connection */
		*why = "v2 header: a datagram transport";
		return -EPROTO;
	}
	if (cmd == 1 && fam != 0x00 && fam != 0x11 && fam != 0x21 && fam != 0x31) {
		*why = "v2 header: unknown address family or transport";
		return -EPROTO;
	}
	if ((fam == 0x11 && total < V2_FIXED_BYTES + V2_INET_BYTES) ||
	    (fam == 0x21 && total < V2_FIXED_BYTES + V2_INET6_BYTES)) {
		*why = "v2 header: length too short for its addresses";
		return -EPROTO;
	}
	if (len < total)
		return 0;
	if (cmd == 0 || fam == 0x00 || fam == 0x31)
		return (int)total; /* LOCAL, UNSPEC or AF_UNIX: no client address */
	h->local = false;
	if (fam == 0x11) {
		h->family = AF_INET;
		memcpy(h->source, buf + 16, 4);
		memcpy(h->target, buf + 20, 4);
		h->source_port = (uint16_t)(buf[24] << 8 | buf[25]);
		h->target_port = (uint16_t)(buf[26] << 8 | buf[27]);
	} else {
		h->family = AF_INET6;
		memcpy(h->source, buf + 16, 16);
		memcpy(h->target, buf + 32, 16);
		h->source_port = (uint16_t)(buf[48] << 8 | buf[49]);
		h->target_port = (uint16_t)(buf[50] << 8 | buf[51]);
	}
	return (int)total; /* TLVs after the addresses are skipped */
}

/* ------------------------------------------------------------------- API */

int proxy_parse(const uint8_t *buf, size_t len, unsigned versions, struct proxy_header *ret,
		const char **ret_why)
{
	bool v1 = (versions & PROXY_V1) && memcmp(buf, v1_sig, min_size(len, sizeof(v1_sig))) == 0;
	bool v2 = (versions & PROXY_V2) && memcmp(buf, v2_sig, min_size(len, sizeof(v2_sig))) == 0;
	struct proxy_header h;
	const char *why = "";
	int r;

	if (len == 0)
		return 0;
	if (!v1 && !v2) {
		if ((versions & PROXY_V1) && memcmp(buf, v2_sig, min_size(len, sizeof(v2_sig))) == 0)
			why = "a v2 header, but the listener accepts v1 only";
		else if ((versions & PROXY_V2) && memcmp(buf, v1_sig, min_size(len, sizeof(v1_sig))) == 0)
			why = "a v1 header, but the listener accepts v2 only";
		else if (buf[0] == 0x16)
			why = "no PROXY header: a TLS handshake came first";
		else if ((buf[0] >> 4) == 1)
			why = "no PROXY header: an MQTT CONNECT came first";
		else
			why = "no PROXY header";
		*ret_why = why;
		return -EPROTO;
	}
	if (v1 && len < sizeof(v1_sig))
		return 0;
	if (v2 && len < sizeof(v2_sig))
		return 0;
	r = v1 ? v1_parse(buf, len, &h, &why) : v2_parse(buf, len, &h, &why);
	if (r < 0)
		*ret_why = why;
	else if (r > 0)
		*ret = h;
	return r;
}

int proxy_format(const struct proxy_header *h, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (h->local || (h->family != AF_INET && h->family != AF_INET6))
		return -EAFNOSUPPORT;
	if (!inet_ntop(h->family, h->source, host, sizeof(host)))
		return -EAFNOSUPPORT;
	snprintf(buf, len, "%s:%u", host, h->source_port);
	return 0;
}

static bool net_match(const struct config_net *n, int family, const uint8_t *addr)
{
	unsigned bytes = n->prefix / 8u, bits = n->prefix % 8u;

	if (n->family != family)
		return false;
	if (memcmp(n->addr, addr, bytes) != 0)
		return false;
	if (bits == 0)
		return true;
	uint8_t mask = (uint8_t)(0xFFu << (8u - bits));
	return (n->addr[bytes] & mask) == (addr[bytes] & mask);
}

bool proxy_trusted(const struct config_net *nets, unsigned count, const struct sockaddr *sa)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
	const uint8_t *addr, *v4 = NULL;

	if (count == 0)
		return true;
	if (sa->sa_family == AF_INET) {
		addr = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		addr = (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		if (memcmp(addr, mapped, sizeof(mapped)) == 0)
			v4 = addr + sizeof(mapped); /* matches IPv4 networks as well as IPv6 ones */
	} else {
		return false;
	}
	for (unsigned i = 0; i < count; i++)
		if (net_match(&nets[i], sa->sa_family, addr) || (v4 && net_match(&nets[i], AF_INET, v4)))
			return true;
	return false;
}
