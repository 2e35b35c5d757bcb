/*
 * ctls.c - wolfSSL client sessions over memory buffers (see ctls.h).
 *
 * The receive callback copies ciphertext out of ctls.cin and answers
 * WANT_READ when it is used up, so wolfSSL_connect() and wolfSSL_read()
 * return instead of blocking; the send callback appends to ctls.wq and
 * fails only when the buffer would pass CONN_BUF_MAX.  This is the
 * broker's own arrangement (src/net/tls.c) from the other side; the bench
 * has its own copy because it links the codec only, never the layers it
 * measures.
 *
 * Suites and groups are wolfSSL's client defaults: the broker picks among
 * them, and the report names what was negotiated.  Session caching is off
 * so that every connection of the connect layout is a full handshake.
 */
#include "ctls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "ringmq/log.h"

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	struct ctls *t = ctx;
	uint32_t have = t->cin.len - t->cin_off;

	(void)ssl;
	if (have == 0)
		return WOLFSSL_CBIO_ERR_WANT_READ;
	if ((uint32_t)sz > have)
		sz = (int)have;
	memcpy(buf, t->cin.data + t->cin_off, (size_t)sz);
	t->cin_off += (uint32_t)sz;
	return sz;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	struct ctls *t = ctx;

	(void)ssl;
	if (buf_reserve(&t->wq, (uint32_t)sz) < 0)
		return WOLFSSL_CBIO_ERR_GENERAL;
	memcpy(t->wq.data + t->wq.len, buf, (size_t)sz);
	t->wq.len += (uint32_t)sz;
	return sz;
}

int ctls_global_init(void)
{
	return wolfSSL_Init() == WOLFSSL_SUCCESS ? 0 : -EIO;
}

void ctls_global_done(void)
{
	(void)wolfSSL_Cleanup(); /* at exit: nothing to do about a failure */
}

void ctls_thread_done(void)
{
#if defined(HAVE_ECC) && defined(FP_ECC)
	wc_ecc_fp_free();
#endif
}

/* Key exchange: X25519 first, then P-256, as OpenSSL-based clients offer
 * them.  wolfSSL's own default is a P-256 key share only, whose generic
 * (non-assembly) arithmetic in Debian's build made the generator, not the
 * broker, the limit of a handshake run.  TLS 1.3 takes the key share
 * order from the group list, TLS 1.2 the supported-groups extension. */
static int set_groups(WOLFSSL_CTX *ctx, uint8_t version)
{
	int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1};

	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		if (wolfSSL_CTX_UseSupportedCurve(ctx, (word16)groups[i]) != WOLFSSL_SUCCESS)
			return -EINVAL;
	if (version == 13 && wolfSSL_CTX_set_groups(ctx, groups, (int)(sizeof(groups) / sizeof(groups[0]))) !=
				     WOLFSSL_SUCCESS)
		return -EINVAL;
	return 0;
}

int ctls_ctx_new(const struct scenario *cfg, struct WOLFSSL_CTX **ret, char *err)
{
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(cfg->tls_version == 12 ? wolfTLSv1_2_client_method()
								  : wolfTLSv1_3_client_method());
	char reason[WOLFSSL_MAX_ERROR_SZ];

	if (!ctx) {
		snprintf(err, ERR_BYTES_MAX, "cannot create a TLS %s client context",
			 cfg->tls_version == 12 ? "1.2" : "1.3");
		return -ENOMEM;
	}
	if (cfg->ca[0]) {
		FILE *f = fopen(cfg->ca, "re");
		unsigned long e;

		if (!f) {
			snprintf(err, ERR_BYTES_MAX, "ca %.120s: %s", cfg->ca, strerror(errno));
			wolfSSL_CTX_free(ctx);
			return -EINVAL;
		}
		fclose(f);
		wolfSSL_ERR_clear_error();
		if (wolfSSL_CTX_load_verify_locations(ctx, cfg->ca, NULL) != WOLFSSL_SUCCESS) {
			e = wolfSSL_ERR_get_error();
			snprintf(err, ERR_BYTES_MAX, "ca %.120s: no PEM CA certificate could be loaded%s%.100s",
				 cfg->ca, e ? ": " : "", e ? wolfSSL_ERR_error_string(e, reason) : "");
			wolfSSL_CTX_free(ctx);
			return -EINVAL;
		}
		wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
	} else {
		wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
	}
	if (set_groups(ctx, cfg->tls_version) < 0) {
		snprintf(err, ERR_BYTES_MAX, "wolfSSL refuses the key exchange groups X25519, P-256");
		wolfSSL_CTX_free(ctx);
		return -EINVAL;
	}
	(void)wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF); /* returns the old mode */
	wolfSSL_CTX_SetIORecv(ctx, io_recv);
	wolfSSL_CTX_SetIOSend(ctx, io_send);
	*ret = ctx;
	return 0;
}

struct WOLFSSL_CTX *ctls_ctx_free(struct WOLFSSL_CTX *ctx)
{
	if (ctx)
		wolfSSL_CTX_free(ctx);
	return NULL;
}

struct ctls *ctls_new(void)
{
	return calloc(1, sizeof(struct ctls));
}

void ctls_reset(struct ctls *t)
{
	if (t->ssl) {
		wolfSSL_free(t->ssl);
		t->ssl = NULL;
	}
	t->cin.len = t->cin_off = 0;
	t->wq.len = 0;
	t->established = t->peer_closed = t->shutdown_sent = false;
}

struct ctls *ctls_free(struct ctls *t)
{
	if (t) {
		ctls_reset(t);
		free(t->cin.data);
		free(t->wq.data);
		free(t);
	}
	return NULL;
}

/* wolfSSL's reason for the last failure of @ret on @ssl. */
static int fail_why(WOLFSSL *ssl, int ret, const char *what, char *why)
{
	char reason[WOLFSSL_MAX_ERROR_SZ];
	int e = wolfSSL_get_error(ssl, ret);

	snprintf(why, CTLS_WHY_BYTES, "TLS %s: %.100s (%d)", what,
		 wolfSSL_ERR_error_string((unsigned long)e, reason), e);
	return -EPROTO;
}

static bool want_io(WOLFSSL *ssl, int ret)
{
	int e = wolfSSL_get_error(ssl, ret);

	return e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE;
}

/* Runs the handshake as far as the ciphertext received allows. */
static int handshake(struct conn *c, char *why)
{
	struct ctls *t = c->tls;
	struct worker *w = c->w;
	int r = wolfSSL_connect(t->ssl);

	if (r != WOLFSSL_SUCCESS)
		return want_io(t->ssl, r) ? 0 : fail_why(t->ssl, r, "handshake", why);
	t->established = true;
	w->tls_hs_n++;
	if (!w->tls_suite[0])
		snprintf(w->tls_suite, sizeof(w->tls_suite), "%s %s %s", wolfSSL_get_version(t->ssl),
			 wolfSSL_get_cipher_name(t->ssl),
			 wolfSSL_get_curve_name(t->ssl) ? wolfSSL_get_curve_name(t->ssl) : "");
	return 0;
}

int ctls_start(struct conn *c, char *why)
{
	struct ctls *t = c->tls;

	RMQ_ASSERT(t->ssl == NULL);
	t->ssl = wolfSSL_new(c->w->tls_ctx);
	if (!t->ssl) {
		snprintf(why, CTLS_WHY_BYTES, "TLS: cannot create a session (out of memory)");
		return -ENOMEM;
	}
	wolfSSL_SetIOReadCtx(t->ssl, t);
	wolfSSL_SetIOWriteCtx(t->ssl, t);
	return handshake(c, why);
}

int ctls_recv_room(struct ctls *t, uint32_t min, uint8_t **ret_p, uint32_t *ret_len)
{
	int r;

	if (t->cin_off) {
		memmove(t->cin.data, t->cin.data + t->cin_off, t->cin.len - t->cin_off);
		t->cin.len -= t->cin_off;
		t->cin_off = 0;
	}
	if (t->cin.cap - t->cin.len < min && (r = buf_reserve(&t->cin, min)) < 0)
		return r;
	*ret_p = t->cin.data + t->cin.len;
	*ret_len = t->cin.cap - t->cin.len;
	return 0;
}

int ctls_input(struct conn *c, uint32_t n, char *why)
{
	struct ctls *t = c->tls;
	struct buf *in = &c->in;
	int r;

	t->cin.len += n;
	if (!t->established) {
		if ((r = handshake(c, why)) < 0)
			return r;
		if (!t->established)
			return 1;
	}
	for (;;) {
		if (in->cap - in->len < CTLS_READ_ROOM && (r = buf_reserve(in, CTLS_READ_ROOM)) < 0) {
			snprintf(why, CTLS_WHY_BYTES, "a packet larger than the receive buffer limit");
			return r;
		}
		r = wolfSSL_read(t->ssl, in->data + in->len, (int)(in->cap - in->len));
		if (r > 0) {
			in->len += (uint32_t)r;
			continue;
		}
		if (want_io(t->ssl, r))
			return 1;
		if (wolfSSL_get_error(t->ssl, r) == WOLFSSL_ERROR_ZERO_RETURN) {
			t->peer_closed = true;
			return 0;
		}
		return fail_why(t->ssl, r, "read", why);
	}
}

int ctls_flush(struct conn *c, char *why)
{
	struct ctls *t = c->tls;
	struct buf *plain = &c->out[c->out_cur];
	struct buf *wire = &c->out[!c->out_cur];
	struct buf tmp;
	int r;

	RMQ_ASSERT(!c->send_busy && wire->len == 0);
	if (t->established && plain->len) {
		/* After our close_notify nothing more may be written: late acks are dropped. */
		if (!t->shutdown_sent && (r = wolfSSL_write(t->ssl, plain->data, (int)plain->len)) != (int)plain->len)
			return fail_why(t->ssl, r, "write", why);
		plain->len = 0;
		if (c->state == CS_BYE && !t->shutdown_sent) {
			/* close_notify rides in the same send as DISCONNECT; the
			 * broker closes first, so its answer is never waited for. */
			(void)wolfSSL_shutdown(t->ssl); /* "not done" until the peer's close_notify */
			t->shutdown_sent = true;
		}
	}
	if (t->wq.len == 0)
		return 0;
	tmp = *wire;
	*wire = t->wq;
	t->wq = tmp;
	return 1;
}
