/*
 * tls.c - wolfSSL sessions over memory buffers (see tls.h).
 *
 * The receive callback hands wolfSSL ciphertext from t->in and answers
 * WANT_READ when it runs out, so wolfSSL_accept()/wolfSSL_read() return
 * instead of blocking; the send callback appends to t->out and always
 * succeeds (the shard bounds output per connection).
 *
 * Versions and suites: TLS 1.2 and 1.3 by default (wolfSSLv23 with 1.2 as
 * the minimum), or 1.3 only.  Default suites are AEAD with forward secrecy
 * only.  The TLS 1.3 suites always come first in the list given to
 * wolfSSL: Debian 12's wolfSSL 5.5.4 picks the server's first suite that
 * the client offers even when that suite is a TLS 1.2 one and the version
 * being negotiated is 1.3, and then fails the handshake with
 * VERSION_ERROR ("record layer version error") for every client that
 * offers both versions (OpenSSL, mosquitto_pub, Python).  With 1.3 suites
 * first, 1.3 clients get a 1.3 suite and 1.2-only clients skip them.
 *
 * Reload: every context is built complete from the files before it
 * replaces the old one (tls.h), so a failed reload changes nothing.
 */
#include "ringmq/tls.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <urcu-qsbr.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "ringmq/config.h"
#include "ringmq/limits.h"

#define TLS13_AEAD "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256"
#define TLS12_AEAD_PFS                                                                                     \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"        \
	"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define ERR_BYTES 512 /* the @err buffers of tls.h */

/* The files a context is built from, in this order. */
enum tls_file { FILE_CERT, FILE_KEY, FILE_CA, FILE_CAPATH, FILE_CRL, FILE_COUNT };

/* What stat(2) says of one file (through symlinks): a change in any field
 * is a change of the file.  err is the errno of a failed stat, so a file
 * appearing or vanishing is a change too. */
struct stamp {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct timespec ctime;
	int err;
};

struct tls_ctx {
	WOLFSSL_CTX *cur; /* RCU: shards rcu_dereference(), main swaps */
	const struct config_listener *l; /* borrowed from the configuration */
	struct stamp loaded[FILE_COUNT]; /* the files cur was built from (or last tried) */
	struct stamp seen[FILE_COUNT]; /* the last check's view, for settling */
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
	int r = n ? buf_room(b, n, max) : 0;

	if (r < 0 || n == 0)
		return r; /* nothing to add: b->data may still be NULL */
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

void tls_thread_done(void)
{
#if defined(HAVE_ECC) && defined(FP_ECC)
	wc_ecc_fp_free();
#endif
}

/* ------------------------------------------------------- building a context */

/* Why the first PEM certificate of @f does not load, when wolfSSL's
 * loader said nothing: its base64 does not decode, or its DER is not an
 * X.509 certificate. */
static void diagnose_cert(FILE *f, char *reason, size_t len)
{
	static uint8_t pem[65536], der[65536]; /* main thread only (tls.h) */
	size_t n = fread(pem, 1, sizeof(pem), f);
	int d = wc_CertPemToDer(pem, (int)n, der, (int)sizeof(der), CERT_TYPE);
	WOLFSSL_X509 *x;

	if (d < 0) {
		snprintf(reason, len, "%s", wc_GetErrorString(d));
		return;
	}
	x = wolfSSL_X509_d2i(NULL, der, d);
	if (x)
		wolfSSL_X509_free(x);
	else
		snprintf(reason, len, "the first PEM block is not a valid X.509 certificate");
}

/* "DIRECTIVE: WHAT FILE: REASON" into @err; returns -EINVAL.  The reason
 * is errno's for a file that cannot be opened, else wolfSSL's (from its
 * error queue, its return code @r, or a second look at a certificate file
 * when @cert). */
static int build_fail(char *err, const char *what, const char *file, int r, bool cert)
{
	char reason[WOLFSSL_MAX_ERROR_SZ + 64] = "";
	unsigned long e = wolfSSL_ERR_get_error();
	FILE *f = file ? fopen(file, "re") : NULL;

	if (file && !f)
		snprintf(reason, sizeof(reason), "%s", strerror(errno));
	else if (e)
		wolfSSL_ERR_error_string(e, reason);
	else if (r < 0)
		wolfSSL_ERR_error_string((unsigned long)r, reason);
	else if (f && cert)
		diagnose_cert(f, reason, sizeof(reason));
	if (f)
		fclose(f);
	if (!reason[0])
		snprintf(reason, sizeof(reason), "wolfSSL gives no reason");
	wolfSSL_ERR_clear_error();
	snprintf(err, ERR_BYTES, "%s%s%.300s%s%s", what, file ? " " : "", file ? file : "", reason[0] ? ": " : "",
		 reason);
	return -EINVAL;
}

/* Each name of a cipher list on its own must be a suite wolfSSL knows
 * (wolfSSL silently drops unknown names from a list that has a known one),
 * and for ciphers_tls1.3 a TLS 1.3 suite.  @ctx is a scratch context: a
 * list set once leaves traces in wolfSSL 5.5.4's context that a later
 * list does not clear. */
static int check_suites(WOLFSSL_CTX *ctx, const char *directive, const char *list, bool tls13, char *err)
{
	char name[128];

	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ":, ");
		if (n > 0 && n < sizeof(name) && !strchr("!-+@", p[0])) {
			memcpy(name, p, n);
			name[n] = '\0';
			if (tls13 && strncmp(name, "TLS13-", 6) != 0 &&
			    (strncmp(name, "TLS_", 4) != 0 || strstr(name, "_WITH_"))) {
				snprintf(err, ERR_BYTES, "%s: '%s' is not a TLS 1.3 suite (TLS_AES_128_GCM_SHA256...)",
					 directive, name);
				return -EINVAL;
			}
			if (wolfSSL_CTX_set_cipher_list(ctx, name) != WOLFSSL_SUCCESS) {
				wolfSSL_ERR_clear_error();
				snprintf(err, ERR_BYTES, "%s: wolfSSL does not know the cipher suite '%s'", directive,
					 name);
				return -EINVAL;
			}
		} else if (n >= sizeof(name)) {
			snprintf(err, ERR_BYTES, "%s: a suite name longer than %zu bytes", directive, sizeof(name) - 1);
			return -EINVAL;
		}
		p += n;
		p += strspn(p, ":, ");
	}
	return 0;
}

static int set_suites(WOLFSSL_CTX *ctx, const struct config_listener *l, char *err)
{
	const char *s13 = l->ciphers_tls13[0] ? l->ciphers_tls13 : TLS13_AEAD;
	const char *s12 = l->ciphers[0] ? l->ciphers : TLS12_AEAD_PFS;
	char list[sizeof(l->ciphers) + sizeof(l->ciphers_tls13) + 2];
	WOLFSSL_CTX *scratch = wolfSSL_CTX_new(wolfSSLv23_server_method());
	int r;

	if (!scratch) {
		snprintf(err, ERR_BYTES, "cannot create a TLS context");
		return -ENOMEM;
	}
	r = check_suites(scratch, "ciphers_tls1.3", s13, true, err);
	if (r == 0)
		r = check_suites(scratch, "ciphers", s12, false, err);
	wolfSSL_CTX_free(scratch);
	if (r < 0)
		return r;
	/* TLS 1.3 suites first: see the top of this file */
	if (l->tls_version == 13)
		snprintf(list, sizeof(list), "%s", s13);
	else
		snprintf(list, sizeof(list), "%s:%s", s13, s12);
	if (wolfSSL_CTX_set_cipher_list(ctx, list) != WOLFSSL_SUCCESS) {
		wolfSSL_ERR_clear_error();
		snprintf(err, ERR_BYTES, "ciphers / ciphers_tls1.3: the list is not accepted by wolfSSL");
		return -EINVAL;
	}
	return 0;
}

/* capath: every regular file of the directory that holds PEM certificates
 * (OpenSSL's hash links point at the same files: loaded twice, harmless).
 * Files that are not certificates are skipped; none at all is an error. */
static int load_capath(WOLFSSL_CTX *ctx, const char *dir, char *err)
{
	char path[PATH_MAX];
	unsigned loaded = 0;
	struct dirent *e;
	struct stat st;
	DIR *d = opendir(dir);

	if (!d) {
		snprintf(err, ERR_BYTES, "capath: cannot open the directory %.300s: %s", dir, strerror(errno));
		return -EINVAL;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
			continue;
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (wolfSSL_CTX_load_verify_locations(ctx, path, NULL) == WOLFSSL_SUCCESS)
			loaded++;
		wolfSSL_ERR_clear_error();
	}
	closedir(d);
	if (loaded == 0) {
		snprintf(err, ERR_BYTES, "capath: no PEM CA certificate in the directory %.300s", dir);
		return -EINVAL;
	}
	return 0;
}

static int load_crl(WOLFSSL_CTX *ctx, const char *file, char *err)
{
#ifdef HAVE_CRL
	int r;

	if (wolfSSL_CTX_EnableCRL(ctx, WOLFSSL_CRL_CHECK) != WOLFSSL_SUCCESS)
		return build_fail(err, "crlfile: cannot enable CRL checks for", file, 0, false);
	r = wolfSSL_CTX_LoadCRLFile(ctx, file, WOLFSSL_FILETYPE_PEM);
	if (r != WOLFSSL_SUCCESS)
		return build_fail(err, "crlfile: cannot load a PEM CRL from", file, r, false);
	return 0;
#else
	(void)ctx;
	snprintf(err, ERR_BYTES, "crlfile %.300s: this wolfSSL is built without CRL support (HAVE_CRL)", file);
	return -EINVAL;
#endif
}

/* A complete context from the listener's files, or none. */
static int ctx_build(const struct config_listener *l, WOLFSSL_CTX **ret, char *err)
{
	WOLFSSL_CTX *ctx;
	int r = -EINVAL;

	wolfSSL_ERR_clear_error();
	ctx = wolfSSL_CTX_new(l->tls_version == 13 ? wolfTLSv1_3_server_method() : wolfSSLv23_server_method());
	if (!ctx) {
		snprintf(err, ERR_BYTES, "cannot create a TLS context");
		return -ENOMEM;
	}
	if (l->tls_version != 13 && wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS) {
		snprintf(err, ERR_BYTES, "tls_version: wolfSSL refuses TLS 1.2 as the minimum");
		goto fail;
	}
	if (set_suites(ctx, l, err) < 0)
		goto fail;
	r = wolfSSL_CTX_use_certificate_chain_file(ctx, l->certfile);
	if (r != WOLFSSL_SUCCESS) {
		r = build_fail(err, "certfile: cannot load a PEM certificate chain from", l->certfile, r, true);
		goto fail;
	}
	r = wolfSSL_CTX_use_PrivateKey_file(ctx, l->keyfile, WOLFSSL_FILETYPE_PEM);
	if (r != WOLFSSL_SUCCESS) {
		r = build_fail(err, "keyfile: cannot load a PEM private key from", l->keyfile, r, false);
		goto fail;
	}
	r = -EINVAL;
	if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS) {
		wolfSSL_ERR_clear_error();
		snprintf(err, ERR_BYTES, "keyfile %.300s does not match certfile %.150s", l->keyfile, l->certfile);
		goto fail;
	}
	if (l->cafile[0]) {
		r = wolfSSL_CTX_load_verify_locations(ctx, l->cafile, NULL);
		if (r != WOLFSSL_SUCCESS) {
			r = build_fail(err, "cafile: cannot load CA certificates from", l->cafile, r, true);
			goto fail;
		}
	}
	r = -EINVAL;
	if (l->capath[0] && load_capath(ctx, l->capath, err) < 0)
		goto fail;
	if (l->crlfile[0] && load_crl(ctx, l->crlfile, err) < 0)
		goto fail;
	wolfSSL_CTX_set_verify(ctx,
			       l->require_certificate ? WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT
						      : WOLFSSL_VERIFY_NONE,
			       NULL);
	wolfSSL_CTX_SetIORecv(ctx, io_recv);
	wolfSSL_CTX_SetIOSend(ctx, io_send);
	*ret = ctx;
	return 0;
fail:
	wolfSSL_CTX_free(ctx);
	return r < 0 ? r : -EINVAL;
}

/* ------------------------------------------------------ contexts and reload */

static void stamp_all(const struct config_listener *l, struct stamp *st)
{
	const char *files[FILE_COUNT] = {l->certfile, l->keyfile, l->cafile, l->capath, l->crlfile};
	struct stat sb;

	memset(st, 0, FILE_COUNT * sizeof(*st));
	for (int i = 0; i < FILE_COUNT; i++) {
		if (!files[i][0])
			continue;
		if (stat(files[i], &sb) != 0) {
			st[i].err = errno;
			continue;
		}
		st[i] = (struct stamp){.dev = sb.st_dev,
				       .ino = sb.st_ino,
				       .size = sb.st_size,
				       .mtime = sb.st_mtim,
				       .ctime = sb.st_ctim};
	}
}

static bool stamps_equal(const struct stamp *a, const struct stamp *b)
{
	for (int i = 0; i < FILE_COUNT; i++) {
		if (a[i].dev != b[i].dev || a[i].ino != b[i].ino || a[i].size != b[i].size || a[i].err != b[i].err ||
		    a[i].mtime.tv_sec != b[i].mtime.tv_sec || a[i].mtime.tv_nsec != b[i].mtime.tv_nsec ||
		    a[i].ctime.tv_sec != b[i].ctime.tv_sec || a[i].ctime.tv_nsec != b[i].ctime.tv_nsec)
			return false;
	}
	return true;
}

int tls_ctx_new(const struct config_listener *l, struct tls_ctx **ret, char *err)
{
	struct tls_ctx *t = calloc(1, sizeof(*t));
	int r;

	if (!t)
		return -ENOMEM;
	t->l = l;
	stamp_all(l, t->loaded);
	memcpy(t->seen, t->loaded, sizeof(t->seen));
	r = ctx_build(l, &t->cur, err);
	if (r < 0) {
		free(t);
		return r;
	}
	*ret = t;
	return 0;
}

int tls_ctx_reload(struct tls_ctx *t, bool force, char *err)
{
	struct stamp now[FILE_COUNT];
	WOLFSSL_CTX *fresh, *old;
	bool settled;
	int r;

	stamp_all(t->l, now);
	settled = stamps_equal(now, t->seen);
	memcpy(t->seen, now, sizeof(now));
	if (!force && (!settled || stamps_equal(now, t->loaded)))
		return 0; /* unchanged, or changed since the last check: let the writer finish */
	memcpy(t->loaded, now, sizeof(now)); /* a failure is reported once per change */
	r = ctx_build(t->l, &fresh, err);
	if (r < 0)
		return r;
	old = rcu_xchg_pointer(&t->cur, fresh);
	synchronize_rcu(); /* no shard is between reading t->cur and wolfSSL_new() on it */
	wolfSSL_CTX_free(old); /* sessions made from it hold their own references */
	return 1;
}

struct tls_ctx *tls_ctx_free(struct tls_ctx *t)
{
	if (t) {
		if (t->cur)
			wolfSSL_CTX_free(t->cur);
		free(t);
	}
	return NULL;
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx)
{
	struct tls_conn *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ssl = wolfSSL_new(rcu_dereference(ctx->cur));
	if (!t->ssl) {
		free(t);
		return NULL;
	}
	t->identity = ctx->l->use_identity_as_username  ? TLS_IDENTITY_CN
		      : ctx->l->use_subject_as_username ? TLS_IDENTITY_SUBJECT
							: TLS_IDENTITY_NONE;
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
	else if (err == CRL_CERT_REVOKED)
		snprintf(why, 256, "client certificate revoked (listed in crlfile)");
	else if (err == CRL_MISSING)
		snprintf(why, 256, "crlfile has no CRL from the client certificate's issuer");
	else if (err == CRL_CERT_DATE_ERR)
		snprintf(why, 256, "crlfile is out of date (its next update time has passed)");
	else if (err == VERSION_ERROR || err == MATCH_SUITE_ERROR)
		snprintf(why, 256, "protocol version or cipher suite mismatch (%s)",
			 wolfSSL_ERR_error_string((unsigned long)err, reason));
	else
		snprintf(why, 256, "%s", wolfSSL_ERR_error_string((unsigned long)err, reason));
}

/* One attribute value, RFC 2253-escaped, at buf[*at..] (bounded by @len). */
static bool rfc2253_value(const uint8_t *p, int n, char *buf, size_t len, size_t *at)
{
	static const char hex[] = "0123456789ABCDEF";

	for (int i = 0; i < n; i++) {
		uint8_t ch = p[i];
		bool edge = (i == 0 && (ch == '#' || ch == ' ')) || (i == n - 1 && ch == ' ');
		if (*at + 4 >= len)
			return false;
		if (ch < 0x20 || ch >= 0x7F) { /* control and non-ASCII bytes: \XX, as OpenSSL's ESC_MSB */
			buf[(*at)++] = '\\';
			buf[(*at)++] = hex[ch >> 4];
			buf[(*at)++] = hex[ch & 0x0F];
			continue;
		}
		if (edge || strchr(",+\"\\<>;", ch))
			buf[(*at)++] = '\\';
		buf[(*at)++] = (char)ch;
	}
	return true;
}

/* The subject as mosquitto's use_subject_as_username gives it: OpenSSL's
 * X509_NAME_print_ex(XN_FLAG_RFC2253), i.e. the attributes last to first,
 * "SN=value" joined by ",", values RFC 2253-escaped ("CN=alice,O=Example,
 * C=DE" without the space).  wolfSSL's own RFC 2253 printer puts ", "
 * between attributes, which would not match mosquitto ACL files. */
static int subject_text(WOLFSSL_X509_NAME *n, char *buf, size_t len)
{
	size_t at = 0, cap = len < TLS_IDENTITY_BYTES_MAX + 1 ? len : TLS_IDENTITY_BYTES_MAX + 1;
	int count = wolfSSL_X509_NAME_entry_count(n);
	char oid[80];

	if (count <= 0)
		return -ENOENT;
	for (int i = count - 1; i >= 0; i--) {
		WOLFSSL_X509_NAME_ENTRY *e = wolfSSL_X509_NAME_get_entry(n, i);
		WOLFSSL_ASN1_OBJECT *o = e ? wolfSSL_X509_NAME_ENTRY_get_object(e) : NULL;
		WOLFSSL_ASN1_STRING *v = e ? wolfSSL_X509_NAME_ENTRY_get_data(e) : NULL;
		const char *sn = o ? wolfSSL_OBJ_nid2sn(wolfSSL_OBJ_obj2nid(o)) : NULL;
		int w;

		if (!o || !v)
			return -ENOENT;
		if (!sn) {
			if (wolfSSL_OBJ_obj2txt(oid, (int)sizeof(oid), o, 1) <= 0)
				return -ENOENT;
			sn = oid;
		}
		w = snprintf(buf + at, cap - at, "%s%s=", at ? "," : "", sn);
		if (w < 0 || (size_t)w >= cap - at)
			return -ENAMETOOLONG;
		at += (size_t)w;
		if (!rfc2253_value(wolfSSL_ASN1_STRING_data(v), wolfSSL_ASN1_STRING_length(v), buf, cap, &at))
			return -ENAMETOOLONG;
	}
	buf[at] = '\0';
	return 0;
}

int tls_conn_identity(struct tls_conn *t, char *buf, size_t len)
{
	char cn[TLS_IDENTITY_BYTES_MAX + 2];
	WOLFSSL_X509 *x;
	WOLFSSL_X509_NAME *n;
	int r = -ENOENT, cn_len;

	if (t->identity == TLS_IDENTITY_NONE || !t->handshake_done || !(x = wolfSSL_get_peer_certificate(t->ssl)))
		return -ENOENT;
	n = wolfSSL_X509_get_subject_name(x);
	if (n && t->identity == TLS_IDENTITY_SUBJECT) {
		r = subject_text(n, buf, len);
	} else if (n) {
		cn_len = wolfSSL_X509_NAME_get_text_by_NID(n, NID_commonName, cn, sizeof(cn));
		if (cn_len > (int)TLS_IDENTITY_BYTES_MAX || (cn_len > 0 && (size_t)cn_len >= len))
			r = -ENAMETOOLONG;
		else if (cn_len > 0)
			r = snprintf(buf, len, "%s", cn) < 0 ? -EINVAL : 0;
	}
	wolfSSL_X509_free(x);
	return r;
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
