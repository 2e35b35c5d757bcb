/*
 * fuzz_proxy.c - libFuzzer target for proxy.c (PROXY protocol headers).
 *
 * Input: the bytes a peer sends first on a PROXY listener.  They are parsed
 * for every accepted-versions setting (v1, v2, either), and the answers are
 * checked against the codec's contract: a complete header is at most
 * PROXY_HEADER_BYTES_MAX bytes and never longer than the input, parses to
 * the same result from exactly its own bytes, and every shorter prefix of
 * it is "incomplete"; "incomplete" only ever happens below the bound; a
 * refusal always carries a reason.  Each accepted header's client is
 * formatted, and the input's first bytes also drive proxy_trusted() with a
 * network and an address made from them.
 *
 * Failures abort through RMQ_ASSERT, which libFuzzer reports as a crash.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ringmq/config.h"
#include "ringmq/limits.h"
#include "ringmq/log.h"
#include "ringmq/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_versions(const uint8_t *data, size_t size, unsigned versions)
{
	struct proxy_header h, again;
	const char *why = NULL;
	char peer[64];
	int r = proxy_parse(data, size, versions, &h, &why);

	RMQ_ASSERT(r >= -EPROTO);
	if (r < 0) {
		RMQ_ASSERT(r == -EPROTO);
		RMQ_ASSERT(why != NULL && why[0] != '\0');
		return;
	}
	if (r == 0) {
		RMQ_ASSERT(size < PROXY_HEADER_BYTES_MAX);
		return;
	}
	RMQ_ASSERT((size_t)r <= size);
	RMQ_ASSERT((size_t)r <= PROXY_HEADER_BYTES_MAX);
	RMQ_ASSERT(h.version == 1 || h.version == 2);
	RMQ_ASSERT(h.version != 1 || (size_t)r <= PROXY_V1_BYTES_MAX);
	RMQ_ASSERT(versions & (h.version == 1 ? PROXY_V1 : PROXY_V2));
	RMQ_ASSERT(h.local || h.family == AF_INET || h.family == AF_INET6);
	RMQ_ASSERT(proxy_parse(data, (size_t)r, versions, &again, &why) == r);
	RMQ_ASSERT(memcmp(&h, &again, sizeof(h)) == 0);
	for (size_t i = 0; i < (size_t)r; i++)
		RMQ_ASSERT(proxy_parse(data, i, versions, &again, &why) == 0);
	if (proxy_format(&h, peer, sizeof(peer)) == 0)
		RMQ_ASSERT(memchr(peer, '\0', sizeof(peer)) != NULL && strchr(peer, ':') != NULL);
	else
		RMQ_ASSERT(h.local);
}

static void check_trusted(const uint8_t *data, size_t size)
{
	struct config_net net = {0};
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
	struct sockaddr_in s4 = {.sin_family = AF_INET};

	if (size < 34)
		return;
	net.family = data[0] & 1 ? AF_INET6 : AF_INET;
	net.prefix = (uint8_t)(data[1] % (net.family == AF_INET6 ? 129 : 33));
	memcpy(net.addr, data + 2, 16);
	memcpy(&s6.sin6_addr, data + 18, 16);
	memcpy(&s4.sin_addr, data + 18, 4);
	/* a network always contains its own address */
	if (net.family == AF_INET6) {
		memcpy(&s6.sin6_addr, net.addr, 16);
		RMQ_ASSERT(proxy_trusted(&net, 1, (const struct sockaddr *)&s6));
	} else {
		memcpy(&s4.sin_addr, net.addr, 4);
		RMQ_ASSERT(proxy_trusted(&net, 1, (const struct sockaddr *)&s4));
	}
	memcpy(&s6.sin6_addr, data + 18, 16);
	memcpy(&s4.sin_addr, data + 18, 4);
	(void)proxy_trusted(&net, 1, (const struct sockaddr *)&s6);
	(void)proxy_trusted(&net, 1, (const struct sockaddr *)&s4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_versions(data, size, PROXY_V1);
	check_versions(data, size, PROXY_V2);
	check_versions(data, size, PROXY_ANY);
	check_trusted(data, size);
	return 0;
}
