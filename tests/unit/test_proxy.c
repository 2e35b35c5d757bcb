/*
 * test_proxy.c - the PROXY protocol header codec (proxy.h).
 *
 * Codec rules (STYLE 9): every prefix of a valid header is "incomplete",
 * byte-at-a-time feeding gives the same result as all at once, and each
 * malformed input is refused with its own reason.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "ringmq/config.h"
#include "ringmq/limits.h"
#include "ringmq/proxy.h"

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A v2 header: @cmd, @fam, @body of @body_len bytes, then @tlv_len zero
 * bytes of TLVs.  Returns its length. */
static size_t v2(uint8_t *out, uint8_t cmd, uint8_t fam, const uint8_t *body, size_t body_len, size_t tlv_len)
{
	size_t len = body_len + tlv_len;

	memcpy(out, sig, 12);
	out[12] = (uint8_t)(0x20 | cmd);
	out[13] = fam;
	out[14] = (uint8_t)(len >> 8);
	out[15] = (uint8_t)len;
	if (body_len)
		memcpy(out + 16, body, body_len); /* body may be NULL when empty */
	memset(out + 16 + body_len, 0, tlv_len);
	return 16 + len;
}

static const uint8_t inet_body[12] = {192, 0, 2, 7, 10, 0, 0, 1, 0xC3, 0x50, 0x07, 0x5B}; /* :50000 -> :1883 */

static int parse_all(const void *buf, size_t len, unsigned versions, struct proxy_header *h, const char **why)
{
	*why = NULL;
	return proxy_parse(buf, len, versions, h, why);
}

/* Every proper prefix of @buf is incomplete; the whole is @len bytes. */
static void check_prefixes(const uint8_t *buf, size_t len, unsigned versions)
{
	struct proxy_header h;
	const char *why;

	for (size_t i = 0; i < len; i++)
		cr_assert_eq(parse_all(buf, i, versions, &h, &why), 0, "prefix of %zu bytes: %s", i, why ? why : "");
	cr_assert_eq(parse_all(buf, len, versions, &h, &why), (int)len, "%s", why ? why : "");
}

static void expect_refused(const void *buf, size_t len, unsigned versions, const char *reason)
{
	struct proxy_header h;
	const char *why;

	cr_assert_eq(parse_all(buf, len, versions, &h, &why), -EPROTO, "accepted: %.*s", (int)len,
		     (const char *)buf);
	cr_assert_not_null(why);
	cr_assert(strstr(why, reason), "reason '%s', expected '%s'", why, reason);
}

Test(proxy, v1_tcp4_gives_the_client_address_and_consumes_the_line)
{
	const char *in = "PROXY TCP4 192.0.2.7 10.0.0.1 50000 1883\r\n\x10\x0c";
	struct proxy_header h;
	const char *why;
	char peer[64];

	cr_assert_eq(parse_all(in, strlen(in), PROXY_V1, &h, &why), (int)strlen(in) - 2);
	cr_assert_eq(h.version, 1);
	cr_assert_not(h.local);
	cr_assert_eq(h.family, AF_INET);
	cr_assert_eq(h.source_port, 50000);
	cr_assert_eq(h.target_port, 1883);
	cr_assert_eq(proxy_format(&h, peer, sizeof(peer)), 0);
	cr_assert_str_eq(peer, "192.0.2.7:50000");
}

Test(proxy, v1_tcp6_and_every_prefix_is_incomplete)
{
	const char *in = "PROXY TCP6 2001:db8::7 2001:db8::1 65535 8883\r\n";
	struct proxy_header h;
	const char *why;
	char peer[64];

	check_prefixes((const uint8_t *)in, strlen(in), PROXY_ANY);
	cr_assert_eq(parse_all(in, strlen(in), PROXY_V1, &h, &why), (int)strlen(in));
	cr_assert_eq(h.family, AF_INET6);
	cr_assert_eq(proxy_format(&h, peer, sizeof(peer)), 0);
	cr_assert_str_eq(peer, "2001:db8::7:65535");
}

Test(proxy, v1_unknown_keeps_the_socket_address)
{
	struct proxy_header h;
	const char *why;
	char peer[64] = "untouched";

	cr_assert_eq(parse_all("PROXY UNKNOWN\r\n", 15, PROXY_V1, &h, &why), 15);
	cr_assert(h.local);
	cr_assert_eq(proxy_format(&h, peer, sizeof(peer)), -EAFNOSUPPORT);
	cr_assert_str_eq(peer, "untouched");
	const char *any = "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
	cr_assert_eq(parse_all(any, strlen(any), PROXY_V1, &h, &why), (int)strlen(any));
	cr_assert(h.local);
}

Test(proxy, v1_at_the_107_byte_limit_is_accepted_and_one_past_it_refused)
{
	char line[PROXY_V1_BYTES_MAX + 8];
	struct proxy_header h;
	const char *why;

	/* "PROXY UNKNOWN " + padding + CRLF = exactly 107 bytes */
	memset(line, 'x', sizeof(line));
	memcpy(line, "PROXY UNKNOWN ", 14);
	line[PROXY_V1_BYTES_MAX - 2] = '\r';
	line[PROXY_V1_BYTES_MAX - 1] = '\n';
	cr_assert_eq(parse_all(line, PROXY_V1_BYTES_MAX, PROXY_V1, &h, &why), (int)PROXY_V1_BYTES_MAX);
	memset(line, 'x', sizeof(line));
	memcpy(line, "PROXY UNKNOWN ", 14);
	cr_assert_eq(parse_all(line, PROXY_V1_BYTES_MAX - 1, PROXY_V1, &h, &why), 0, "still room for CRLF");
	expect_refused(line, PROXY_V1_BYTES_MAX, PROXY_V1, "no CRLF within 107 bytes");
}

Test(proxy, v1_malformed_lines_are_refused_with_their_reason)
{
	static const struct {
		const char *in;
		const char *reason;
	} cases[] = {
		{"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "expected TCP4, TCP6 or UNKNOWN"},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "malformed addresses or ports"},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "malformed addresses or ports"},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2x\r\n", "malformed addresses or ports"},
		{"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "malformed addresses or ports"},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "malformed addresses or ports"},
		{"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n", "not IPv4"},
		{"PROXY TCP6 1.2.3.4 2001:db8::1 1 2\r\n", "not IPv6"},
		{"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "not IPv4"},
		{"PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n", "control character"},
		{"PROXY UNKNOWNX\r\n", "expected TCP4, TCP6 or UNKNOWN"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_refused(cases[i].in, strlen(cases[i].in), PROXY_V1, cases[i].reason);
}

Test(proxy, v2_inet_proxy_command_with_tlvs_skipped)
{
	uint8_t buf[128];
	size_t n = v2(buf, 1, 0x11, inet_body, sizeof(inet_body), 20);
	struct proxy_header h;
	const char *why;
	char peer[64];

	buf[n] = 0x10; /* MQTT after the header is not consumed */
	check_prefixes(buf, n, PROXY_V2);
	cr_assert_eq(parse_all(buf, n + 1, PROXY_ANY, &h, &why), (int)n);
	cr_assert_eq(h.version, 2);
	cr_assert_eq(h.family, AF_INET);
	cr_assert_eq(h.target_port, 1883);
	cr_assert_eq(proxy_format(&h, peer, sizeof(peer)), 0);
	cr_assert_str_eq(peer, "192.0.2.7:50000");
}

Test(proxy, v2_inet6)
{
	uint8_t body[36] = {0}, buf[128];
	struct proxy_header h;
	const char *why;
	char peer[64];

	cr_assert_eq(inet_pton(AF_INET6, "2001:db8::42", body), 1);
	cr_assert_eq(inet_pton(AF_INET6, "2001:db8::1", body + 16), 1);
	body[32] = 0x12;
	body[33] = 0x34;
	body[35] = 80;
	size_t n = v2(buf, 1, 0x21, body, sizeof(body), 0);
	check_prefixes(buf, n, PROXY_ANY);
	cr_assert_eq(parse_all(buf, n, PROXY_V2, &h, &why), (int)n);
	cr_assert_eq(h.family, AF_INET6);
	cr_assert_eq(proxy_format(&h, peer, sizeof(peer)), 0);
	cr_assert_str_eq(peer, "2001:db8::42:4660");
}

Test(proxy, v2_local_unspec_and_unix_carry_no_client_address)
{
	uint8_t buf[512], unix_body[216] = {0};
	struct proxy_header h;
	const char *why;
	size_t n;

	n = v2(buf, 0, 0x11, inet_body, sizeof(inet_body), 0); /* LOCAL: addresses ignored */
	cr_assert_eq(parse_all(buf, n, PROXY_V2, &h, &why), (int)n);
	cr_assert(h.local);
	n = v2(buf, 0, 0x00, NULL, 0, 0);
	cr_assert_eq(parse_all(buf, n, PROXY_V2, &h, &why), 16);
	cr_assert(h.local);
	n = v2(buf, 1, 0x00, NULL, 0, 0);
	cr_assert_eq(parse_all(buf, n, PROXY_V2, &h, &why), 16);
	cr_assert(h.local);
	n = v2(buf, 1, 0x31, unix_body, sizeof(unix_body), 0);
	cr_assert_eq(parse_all(buf, n, PROXY_V2, &h, &why), (int)n);
	cr_assert(h.local);
	cr_assert_eq(h.family, AF_UNSPEC);
}

Test(proxy, v2_malformed_headers_are_refused_with_their_reason)
{
	uint8_t buf[64];
	size_t n;

	n = v2(buf, 1, 0x11, inet_body, sizeof(inet_body), 0);
	buf[12] = 0x11; /* version 1 in the binary form */
	expect_refused(buf, n, PROXY_V2, "version is not 2");
	n = v2(buf, 2, 0x11, inet_body, sizeof(inet_body), 0);
	expect_refused(buf, n, PROXY_V2, "neither LOCAL nor PROXY");
	n = v2(buf, 1, 0x12, inet_body, sizeof(inet_body), 0);
	expect_refused(buf, n, PROXY_V2, "datagram");
	n = v2(buf, 1, 0x41, inet_body, sizeof(inet_body), 0);
	expect_refused(buf, n, PROXY_V2, "unknown address family");
	n = v2(buf, 1, 0x10, inet_body, sizeof(inet_body), 0);
	expect_refused(buf, n, PROXY_V2, "unknown address family");
	n = v2(buf, 1, 0x11, inet_body, 8, 0);
	expect_refused(buf, 16, PROXY_V2, "too short for its addresses"); /* known before the body arrives */
	n = v2(buf, 1, 0x21, inet_body, sizeof(inet_body), 0);
	expect_refused(buf, n, PROXY_V2, "too short for its addresses");
}

Test(proxy, v2_over_the_length_bound_is_refused_from_its_fixed_part)
{
	uint8_t buf[16];
	size_t len = PROXY_HEADER_BYTES_MAX - 16 + 1;
	struct proxy_header h;
	const char *why;

	memcpy(buf, sig, 12);
	buf[12] = 0x21;
	buf[13] = 0x11;
	buf[14] = (uint8_t)(len >> 8);
	buf[15] = (uint8_t)len;
	expect_refused(buf, 16, PROXY_V2, "longer than PROXY_HEADER_BYTES_MAX");
	len--; /* exactly at the bound: waits for the rest */
	buf[14] = (uint8_t)(len >> 8);
	buf[15] = (uint8_t)len;
	cr_assert_eq(parse_all(buf, 16, PROXY_V2, &h, &why), 0);
}

Test(proxy, a_missing_header_is_named_after_what_came_instead)
{
	static const uint8_t connect[] = {0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T'};
	static const uint8_t hello[] = {0x16, 0x03, 0x01, 0x00, 0x05};
	uint8_t buf[64];
	size_t n = v2(buf, 1, 0x11, inet_body, sizeof(inet_body), 0);

	expect_refused(connect, sizeof(connect), PROXY_ANY, "an MQTT CONNECT came first");
	expect_refused(hello, sizeof(hello), PROXY_ANY, "a TLS handshake came first");
	expect_refused("GET / HTTP/1.1\r\n", 16, PROXY_ANY, "no PROXY header");
	expect_refused("PROXX", 5, PROXY_ANY, "no PROXY header");
	expect_refused(buf, n, PROXY_V1, "v2 header, but the listener accepts v1 only");
	expect_refused("PROXY TCP4", 10, PROXY_V2, "v1 header, but the listener accepts v2 only");
	/* one byte is enough to know */
	expect_refused(connect, 1, PROXY_ANY, "an MQTT CONNECT came first");
}

Test(proxy, byte_at_a_time_gives_the_same_result_as_all_at_once)
{
	const char *v1 = "PROXY TCP4 198.51.100.9 10.0.0.1 4242 1883\r\n";
	uint8_t buf[256];
	size_t n = v2(buf, 1, 0x11, inet_body, sizeof(inet_body), 100);
	struct proxy_header a, b;
	const char *why;
	int r = 0;
	size_t i;

	for (i = 1; i <= strlen(v1) && r == 0; i++)
		r = parse_all(v1, i, PROXY_ANY, &a, &why);
	cr_assert_eq(r, (int)strlen(v1));
	cr_assert_eq(i - 1, strlen(v1));
	cr_assert_eq(parse_all(v1, strlen(v1), PROXY_ANY, &b, &why), r);
	cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0);
	r = 0;
	for (i = 1; i <= n && r == 0; i++)
		r = parse_all(buf, i, PROXY_ANY, &a, &why);
	cr_assert_eq(r, (int)n);
	cr_assert_eq(parse_all(buf, n, PROXY_ANY, &b, &why), r);
	cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0);
}

Test(proxy, output_is_untouched_unless_complete)
{
	struct proxy_header h;
	const char *why;

	memset(&h, 0xAB, sizeof(h));
	cr_assert_eq(parse_all("PROXY TCP4 1.2.3.4", 18, PROXY_V1, &h, &why), 0);
	cr_assert_eq(h.version, 0xAB);
	cr_assert_eq(parse_all("PROXY TCP9 1.2.3.4 1.2.3.4 1 2\r\n", 32, PROXY_V1, &h, &why), -EPROTO);
	cr_assert_eq(h.version, 0xAB);
}

static struct sockaddr_storage sa_of(const char *addr)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1)
		s6->sin6_family = AF_INET6;
	return ss;
}

static struct config_net net_of(const char *addr, uint8_t prefix)
{
	struct config_net n = {.prefix = prefix};

	n.family = inet_pton(AF_INET, addr, n.addr) == 1 ? AF_INET : AF_INET6;
	if (n.family == AF_INET6)
		cr_assert_eq(inet_pton(AF_INET6, addr, n.addr), 1);
	return n;
}

Test(proxy, trusted_networks_match_by_prefix_and_v4_mapped_addresses)
{
	struct config_net nets[3] = {net_of("10.0.0.0", 8), net_of("192.168.1.128", 25), net_of("fd00::", 8)};
	struct sockaddr_storage ss;

	ss = sa_of("10.200.3.4");
	cr_assert(proxy_trusted(nets, 3, (struct sockaddr *)&ss));
	ss = sa_of("11.0.0.1");
	cr_assert_not(proxy_trusted(nets, 3, (struct sockaddr *)&ss));
	ss = sa_of("192.168.1.200");
	cr_assert(proxy_trusted(nets, 3, (struct sockaddr *)&ss));
	ss = sa_of("192.168.1.127");
	cr_assert_not(proxy_trusted(nets, 3, (struct sockaddr *)&ss));
	ss = sa_of("::ffff:10.1.2.3"); /* a dual-stack listener's view of an IPv4 peer */
	cr_assert(proxy_trusted(nets, 3, (struct sockaddr *)&ss));
	ss = sa_of("fdab::1");
	cr_assert(proxy_trusted(nets, 3, (struct sockaddr *)&ss));
	ss = sa_of("fe80::1");
	cr_assert_not(proxy_trusted(nets, 3, (struct sockaddr *)&ss));
	cr_assert(proxy_trusted(nets, 0, (struct sockaddr *)&ss), "no list: anyone");
	nets[0] = net_of("0.0.0.0", 0);
	ss = sa_of("203.0.113.1");
	cr_assert(proxy_trusted(nets, 1, (struct sockaddr *)&ss));
	ss = sa_of("2001:db8::1");
	cr_assert_not(proxy_trusted(nets, 1, (struct sockaddr *)&ss), "an IPv4 network never matches IPv6");
	nets[0] = net_of("::ffff:10.0.0.0", 104); /* the IPv6 spelling of 10.0.0.0/8 */
	ss = sa_of("::ffff:10.9.9.9");
	cr_assert(proxy_trusted(nets, 1, (struct sockaddr *)&ss));
}
