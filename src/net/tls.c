/*
 * tls.c - wolfSSL sessions over memory buffers (see tls.h).
 *
 * The receive callback hands wolfSSL ciphertext from t->in and answers
 * WANT_READ when it runs out, so wolfSSL_accept()/wolfSSL_read() return
 * instead of blocking; the send callback appends to t->out and always
 * succeeds (the shard bounds output per connection).  Default cipher
 * suites are AEAD with forward secrecy only; TLS 1.2 is the minimum.
 */
#include "ringmq/tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "ringmq/config.h"

#define TLS12_AEAD_PFS                                                                                     \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"        \
	"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"          \
	"TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256"

struct tls_ctx {
	WOLFSSL_CTX *ctx;
};

/* Room for @n more bytes at the end of @b: the consumed front is reused
 * first, then the buffer doubles; -ENOBUFS past @max (0: no bound). */
static int buf_room(struct tls_buf *b, size_t n, size_t max)
{
	size_t cap = b->cap ? b->cap : 4096;
	uint8_t *d;

	if (b->off && b->off == b->len)
		b->off = b->len = 0;
	if (b->len + n <= b->cap)
		return 0;
	if (b->off) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	while (cap < b->len + n)
		cap *= 2;
	if (max && b->len + n > max)
		return -ENOBUFS;
	if (max && cap > max)
		cap = max;
	if (cap > b->cap) {
		d = realloc(b->data, cap);
		if (!d)
			return -ENOMEM;
		b->data = d;
		b->cap = (uint32_t)cap;
	}
	return 0;
}

static int buf_append(struct tls_buf *b, const uint8_t *p, size_t n, size_t max)
{
	int r = buf_room(b, n, max);

	if (r < 0)
		return r;
	memcpy(b->data + b->len, p, n);
	b->len += (uint32_t)n;
	return 0;
}

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	struct tls_conn *t = ctx;
	uint32_t have = t->in.len - t->in.off;

	(void)ssl;
	if (have == 0)
		return WOLFSSL_CBIO_ERR_WANT_READ;
	if ((uint32_t)sz > have)
		sz = (int)have;
	memcpy(buf, t->in.data + t->in.off, (size_t)sz);
	t->in.off += (uint32_t)sz;
	return sz;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	struct tls_conn *t = ctx;

	(void)ssl;
	return buf_append(&t->out, (const uint8_t *)buf, (size_t)sz, 0) < 0 ? WOLFSSL_CBIO_ERR_GENERAL : sz;
}

int tls_global_init(void)
{
	return wolfSSL_Init() == WOLFSSL_SUCCESS ? 0 : -EIO;
}

static int ctx_fail(struct tls_ctx *t, char *err, const char *what, const char *file)
{
	snprintf(err, 512, "%s%s%.256s", what, file ? ": " : "", file ? file : "");
	tls_ctx_free(t);
	return -EINVAL;
}

int tls_ctx_new(const struct config_listener *l, struct tls_ctx **ret, char *err)
{
	struct tls_ctx *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	/* TLS 1.2 unless tls_version tlsv1.3 asks for 1.3 only: with Debian's
	 * wolfSSL 5.5.4 a server offering both fails the handshake with OpenSSL
	 * clients that offer both (seen with mosquitto_pub and s_client), so
	 * the default is the version every client completes. */
	t->ctx = wolfSSL_CTX_new(l->tls_version == 13 ? wolfTLSv1_3_server_method() : wolfTLSv1_2_server_method());
	if (!t->ctx)
		return ctx_fail(t, err, "cannot create a TLS context", NULL);
	if (wolfSSL_CTX_set_cipher_list(t->ctx, l->ciphers[0] ? l->ciphers : TLS12_AEAD_PFS) != WOLFSSL_SUCCESS)
		return ctx_fail(t, err, "ciphers / tls_version not accepted by wolfSSL", NULL);
	if (wolfSSL_CTX_use_certificate_chain_file(t->ctx, l->certfile) != WOLFSSL_SUCCESS)
		return ctx_fail(t, err, "certfile: cannot load a PEM certificate chain from", l->certfile);
	if (wolfSSL_CTX_use_PrivateKey_file(t->ctx, l->keyfile, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
		return ctx_fail(t, err, "keyfile: cannot load a PEM private key from", l->keyfile);
	if (wolfSSL_CTX_check_private_key(t->ctx) != WOLFSSL_SUCCESS)
		return ctx_fail(t, err, "keyfile does not match certfile", l->keyfile);
	if (l->cafile[0] && wolfSSL_CTX_load_verify_locations(t->ctx, l->cafile, NULL) != WOLFSSL_SUCCESS)
		return ctx_fail(t, err, "cafile: cannot load CA certificates from", l->cafile);
	wolfSSL_CTX_set_verify(t->ctx,
			       l->require_certificate ? WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT
						      : WOLFSSL_VERIFY_NONE,
			       NULL);
	wolfSSL_CTX_SetIORecv(t->ctx, io_recv);
	wolfSSL_CTX_SetIOSend(t->ctx, io_send);
	*ret = t;
	return 0;
}

struct tls_ctx *tls_ctx_free(struct tls_ctx *t)
{
	if (t) {
		if (t->ctx)
			wolfSSL_CTX_free(t->ctx);
		free(t);
	}
	return NULL;
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx)
{
	struct tls_conn *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ssl = wolfSSL_new(ctx->ctx);
	if (!t->ssl) {
		free(t);
		return NULL;
	}
	wolfSSL_SetIOReadCtx(t->ssl, t);
	wolfSSL_SetIOWriteCtx(t->ssl, t);
	return t;
}

struct tls_conn *tls_conn_free(struct tls_conn *t)
{
	if (t) {
		if (t->ssl)
			wolfSSL_free(t->ssl);
		free(t->in.data);
		free(t->out.data);
		free(t);
	}
	return NULL;
}

int tls_in_room(struct tls_conn *t, uint32_t min, uint8_t **ret_p, uint32_t *ret_len)
{
	int r = buf_room(&t->in, min, TLS_CIPHER_IN_BYTES_MAX);

	if (r < 0)
		return r;
	*ret_p = t->in.data + t->in.len;
	*ret_len = t->in.cap - t->in.len;
	return 0;
}

int tls_feed(struct tls_conn *t, const uint8_t *p, size_t n)
{
	return buf_append(&t->in, p, n, TLS_CIPHER_IN_BYTES_MAX);
}

/* The handshake's failure in words, for the log. */
static void describe(struct tls_conn *t, int err, char *why)
{
	char reason[WOLFSSL_MAX_ERROR_SZ];

	if (!t->handshake_done && t->in.len > 0 && t->in.data[0] == 0x10)
		snprintf(why, 256, "plain MQTT sent to a TLS listener");
	else if (err == NO_PEER_CERT)
		snprintf(why, 256, "client certificate missing (require_certificate true)");
	else if (err == ASN_NO_SIGNER_E || err == ASN_SELF_SIGNED_E)
		snprintf(why, 256, "client certificate from an unknown CA");
	else if (err == ASN_SIG_CONFIRM_E)
		snprintf(why, 256, "client certificate signature does not verify against cafile");
	else if (err == ASN_AFTER_DATE_E)
		snprintf(why, 256, "client certificate expired");
	else if (err == ASN_BEFORE_DATE_E)
		snprintf(why, 256, "client certificate not yet valid");
	else if (err == VERSION_ERROR || err == MATCH_SUITE_ERROR)
		snprintf(why, 256, "protocol version or cipher suite mismatch (%s)",
			 wolfSSL_ERR_error_string((unsigned long)err, reason));
	else
		snprintf(why, 256, "%s", wolfSSL_ERR_error_string((unsigned long)err, reason));
}

static void remember_cn(struct tls_conn *t)
{
	WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(t->ssl);

	if (!x)
		return;
	WOLFSSL_X509_NAME *n = wolfSSL_X509_get_subject_name(x);
	if (n && wolfSSL_X509_NAME_get_text_by_NID(n, NID_commonName, t->peer_cn, sizeof(t->peer_cn)) < 0)
		t->peer_cn[0] = '\0';
	wolfSSL_X509_free(x);
}

int tls_read(struct tls_conn *t, uint8_t *buf, size_t cap, char *why)
{
	int r, e;

	if (!t->handshake_done) {
		r = wolfSSL_accept(t->ssl);
		if (r != WOLFSSL_SUCCESS) {
			e = wolfSSL_get_error(t->ssl, r);
			if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
				return 0;
			describe(t, e, why);
			return -EPROTO;
		}
		t->handshake_done = 1;
		remember_cn(t);
	}
	r = wolfSSL_read(t->ssl, buf, (int)(cap > INT32_MAX ? INT32_MAX : cap));
	if (r > 0)
		return r;
	e = wolfSSL_get_error(t->ssl, r);
	if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
		return 0;
	if (e == WOLFSSL_ERROR_ZERO_RETURN) {
		snprintf(why, 256, "TLS close_notify from the client");
		return -ECONNRESET;
	}
	describe(t, e, why);
	return -EPROTO;
}

int tls_write(struct tls_conn *t, const uint8_t *p, size_t n, char *why)
{
	int r = wolfSSL_write(t->ssl, p, (int)n);

	if (r == (int)n)
		return 0;
	describe(t, wolfSSL_get_error(t->ssl, r), why);
	return -EPROTO;
}
