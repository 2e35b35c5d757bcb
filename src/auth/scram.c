/*
 * scram.c - the server side of SCRAM-SHA-512 (RFC 5802, RFC 7677) for MQTT
 * 5 enhanced authentication.
 *
 *   C: n,,n=USER,r=CNONCE                    (CONNECT Authentication Data)
 *   S: r=CNONCE+SNONCE,s=SALT,i=ITERATIONS   (AUTH 0x18)
 *   C: c=biws,r=CNONCE+SNONCE,p=PROOF        (AUTH 0x18)
 *   S: v=SERVER_SIGNATURE                    (CONNACK 0x00)
 *
 * The stored $7$ hash is SaltedPassword, so the server never needs the
 * password.  An unknown user (or a $6$ entry, which has no PBKDF2 salt)
 * gets a challenge with a salt derived from the name and a per-process
 * secret, and fails only at the proof: the exchange does not reveal which
 * user names exist.  Channel binding is not offered ("n" gs2 flag only).
 */
#include "ringmq/auth.h"
#include "auth_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define NONCE_BYTES 18u

struct scram {
	/* A copy, not a pointer into the database: a SIGHUP reload may free
	 * the database while an exchange is half-way. */
	struct auth_entry entry;
	const struct auth_entry *e; /* &entry, or NULL: unknown user, fails at the proof */
	char user[AUTH_USERNAME_BYTES_MAX + 1];
	char gs2[16]; /* the gs2 header, "n,," */
	char first_bare[AUTH_SCRAM_MESSAGE_BYTES_MAX + 1];
	char server_first[AUTH_SCRAM_MESSAGE_BYTES_MAX + 1];
	char nonce[AUTH_SCRAM_MESSAGE_BYTES_MAX + 1];
};

static uint8_t fake_secret[32];
static pthread_once_t fake_once = PTHREAD_ONCE_INIT;

static void fake_init(void)
{
	if (getrandom(fake_secret, sizeof(fake_secret), 0) != (ssize_t)sizeof(fake_secret))
		memset(fake_secret, 0x5a, sizeof(fake_secret)); /* only hides user names; not a key */
}

/* "n=USER" with RFC 5802's =2C / =3D escapes decoded into @out. */
static int parse_user(const char *p, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char ch = p[i];
		if (ch == '=') {
			if (i + 2 >= n)
				return -EINVAL;
			if (p[i + 1] == '2' && p[i + 2] == 'C')
				ch = ',';
			else if (p[i + 1] == '3' && p[i + 2] == 'D')
				ch = '=';
			else
				return -EINVAL;
			i += 2;
		}
		if (o >= AUTH_USERNAME_BYTES_MAX || ch == '\0')
			return -EINVAL;
		out[o++] = ch;
	}
	out[o] = '\0';
	return o ? 0 : -EINVAL;
}

static bool printable_nonce(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
			return false;
	return n > 0;
}

/* Split "n,,n=USER,r=NONCE[,ext]" into gs2 header, user and nonce. */
static int parse_client_first(struct scram *sc, const char *m, size_t len)
{
	const char *bare, *u, *r, *end;

	if (len < 3 || (m[0] != 'n' && m[0] != 'y') || m[1] != ',' || m[2] != ',')
		return -EINVAL; /* "p=" (channel binding) and authzid are not supported */
	memcpy(sc->gs2, m, 3);
	bare = m + 3;
	if ((size_t)(m + len - bare) > AUTH_SCRAM_MESSAGE_BYTES_MAX)
		return -EINVAL;
	memcpy(sc->first_bare, bare, (size_t)(m + len - bare));
	if (strncmp(bare, "n=", 2) != 0)
		return -EINVAL;
	u = bare + 2;
	r = memchr(u, ',', (size_t)(m + len - u));
	if (!r || parse_user(u, (size_t)(r - u), sc->user) < 0 || strncmp(r, ",r=", 3) != 0)
		return -EINVAL;
	r += 3;
	end = memchr(r, ',', (size_t)(m + len - r));
	if (!end)
		end = m + len;
	if (!printable_nonce(r, (size_t)(end - r)))
		return -EINVAL;
	memcpy(sc->nonce, r, (size_t)(end - r));
	return 0;
}

int scram_first(const struct auth_db *db, const uint8_t *client_first, size_t len, struct scram **ret,
		uint8_t *out, size_t cap, size_t *ret_len)
{
	struct scram *sc;
	uint8_t snonce[NONCE_BYTES], fake[AUTH_HASH_BYTES];
	const uint8_t *salt;
	size_t salt_len;
	unsigned iter;
	char s64[40], n64[128];
	int n;

	if (len > AUTH_SCRAM_MESSAGE_BYTES_MAX)
		return -EINVAL;
	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return -ENOMEM;
	if (parse_client_first(sc, (const char *)client_first, len) < 0 ||
	    getrandom(snonce, sizeof(snonce), 0) != (ssize_t)sizeof(snonce) ||
	    auth_b64_encode(snonce, sizeof(snonce), s64, sizeof(s64)) < 0)
		goto fail;
	sc->e = db ? auth_db_find(db, (const uint8_t *)sc->user, strlen(sc->user)) : NULL;
	if (sc->e && sc->e->kind != 7)
		sc->e = NULL; /* $6$ entries cannot do SCRAM */
	if (sc->e) {
		sc->entry = *sc->e;
		sc->e = &sc->entry;
	}
	if (sc->e) {
		salt = sc->e->salt;
		salt_len = sc->e->salt_len;
		iter = sc->e->iterations;
	} else {
		pthread_once(&fake_once, fake_init);
		(void)auth_hmac(fake_secret, sizeof(fake_secret), (const uint8_t *)sc->user, strlen(sc->user), fake);
		salt = fake;
		salt_len = AUTH_SALT_BYTES;
		iter = AUTH_PBKDF2_ITERATIONS_DEFAULT;
	}
	if (strlen(sc->nonce) + strlen(s64) >= sizeof(sc->nonce) ||
	    auth_b64_encode(salt, salt_len, n64, sizeof(n64)) < 0)
		goto fail;
	strncat(sc->nonce, s64, sizeof(sc->nonce) - strlen(sc->nonce) - 1);
	n = snprintf(sc->server_first, sizeof(sc->server_first), "r=%s,s=%s,i=%u", sc->nonce, n64, iter);
	if (n <= 0 || (size_t)n >= sizeof(sc->server_first) || (size_t)n > cap)
		goto fail;
	memcpy(out, sc->server_first, (size_t)n);
	*ret_len = (size_t)n;
	*ret = sc;
	return 0;
fail:
	scram_free(sc);
	return -EINVAL;
}

/* Compute and compare; on success write "v=..." into @out. */
static int check_proof(struct scram *sc, const char *without_proof, size_t wp_len, const uint8_t *proof,
		       uint8_t *out, size_t cap, size_t *ret_len)
{
	char auth_msg[3 * AUTH_SCRAM_MESSAGE_BYTES_MAX + 4];
	uint8_t ckey[AUTH_HASH_BYTES], stored[AUTH_HASH_BYTES], csig[AUTH_HASH_BYTES], skey[AUTH_HASH_BYTES];
	uint8_t ssig[AUTH_HASH_BYTES], check[AUTH_HASH_BYTES];
	char v64[128];
	int n, r = -EACCES;

	n = snprintf(auth_msg, sizeof(auth_msg), "%s,%s,%.*s", sc->first_bare, sc->server_first, (int)wp_len,
		     without_proof);
	if (n <= 0 || (size_t)n >= sizeof(auth_msg) || !sc->e)
		return -EACCES;
	if (auth_hmac(sc->e->hash, AUTH_HASH_BYTES, (const uint8_t *)"Client Key", 10, ckey) < 0 ||
	    auth_sha512(ckey, sizeof(ckey), stored) < 0 ||
	    auth_hmac(stored, sizeof(stored), (const uint8_t *)auth_msg, (size_t)n, csig) < 0)
		goto out;
	for (unsigned i = 0; i < AUTH_HASH_BYTES; i++)
		check[i] = proof[i] ^ csig[i]; /* the client's ClientKey, if the proof is right */
	if (auth_sha512(check, sizeof(check), check) < 0 || !auth_equal(check, stored, AUTH_HASH_BYTES))
		goto out;
	if (auth_hmac(sc->e->hash, AUTH_HASH_BYTES, (const uint8_t *)"Server Key", 10, skey) < 0 ||
	    auth_hmac(skey, sizeof(skey), (const uint8_t *)auth_msg, (size_t)n, ssig) < 0 ||
	    auth_b64_encode(ssig, sizeof(ssig), v64, sizeof(v64)) < 0)
		goto out;
	n = snprintf((char *)out, cap, "v=%s", v64);
	if (n > 0 && (size_t)n < cap) {
		*ret_len = (size_t)n;
		r = 0;
	}
out:
	explicit_bzero(ckey, sizeof(ckey));
	explicit_bzero(skey, sizeof(skey));
	return r;
}

int scram_final(struct scram *sc, const uint8_t *client_final, size_t len, uint8_t *out, size_t cap,
		size_t *ret_len)
{
	const char *m = (const char *)client_final, *p, *r;
	char c64[32];
	uint8_t proof[AUTH_HASH_BYTES + 8];
	size_t plen, nlen = strlen(sc->nonce);

	if (len > AUTH_SCRAM_MESSAGE_BYTES_MAX || auth_b64_encode((const uint8_t *)sc->gs2, 3, c64, sizeof(c64)) < 0)
		return -EINVAL;
	/* c=<base64 gs2 header>,r=<nonce>[,ext],p=<proof> */
	if (len < 2 || strncmp(m, "c=", 2) != 0 || len < 2 + strlen(c64) + 1 ||
	    memcmp(m + 2, c64, strlen(c64)) != 0 || m[2 + strlen(c64)] != ',')
		return -EINVAL;
	r = m + 2 + strlen(c64) + 1;
	if ((size_t)(m + len - r) < 2 + nlen || strncmp(r, "r=", 2) != 0 || memcmp(r + 2, sc->nonce, nlen) != 0)
		return -EINVAL;
	for (p = m + len - 1; p > r && !(p[0] == 'p' && p[1] == '=' && p[-1] == ','); p--)
		;
	if (p <= r || auth_b64_decode_n((const uint8_t *)p + 2, (size_t)(m + len - p - 2), proof, sizeof(proof),
					&plen) < 0 || plen != AUTH_HASH_BYTES)
		return -EINVAL;
	return check_proof(sc, m, (size_t)(p - 1 - m), proof, out, cap, ret_len);
}

const char *scram_user(const struct scram *sc)
{
	return sc->user;
}

struct scram *scram_free(struct scram *sc)
{
	if (sc) {
		explicit_bzero(sc, sizeof(*sc));
		free(sc);
	}
	return NULL;
}
