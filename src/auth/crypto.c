/*
 * crypto.c - the few wolfCrypt primitives authentication needs, behind
 * plain functions that return 0 or a negative errno.  Nothing here keeps
 * state; key material on the stack is wiped before returning.
 */
#include "auth_internal.h"

#include <errno.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/pwdbased.h>
#include <wolfssl/wolfcrypt/sha512.h>

int auth_pbkdf2(const uint8_t *pass, size_t plen, const uint8_t *salt, size_t slen, unsigned iter,
		uint8_t out[AUTH_HASH_BYTES])
{
	if (plen > AUTH_PASSWORD_BYTES_MAX || iter == 0 || iter > AUTH_PBKDF2_ITERATIONS_MAX)
		return -EINVAL;
	return wc_PBKDF2(out, pass, (int)plen, salt, (int)slen, (int)iter, AUTH_HASH_BYTES, WC_SHA512) == 0
		       ? 0
		       : -EINVAL;
}

int auth_sha512(const uint8_t *msg, size_t len, uint8_t out[AUTH_HASH_BYTES])
{
	return wc_Sha512Hash(msg, (word32)len, out) == 0 ? 0 : -EINVAL;
}

int auth_sha512_salted(const uint8_t *pass, size_t plen, const uint8_t *salt, size_t slen,
		       uint8_t out[AUTH_HASH_BYTES])
{
	wc_Sha512 sha;
	int r;

	if (wc_InitSha512(&sha) != 0)
		return -EINVAL;
	r = wc_Sha512Update(&sha, pass, (word32)plen) | wc_Sha512Update(&sha, salt, (word32)slen) |
	    wc_Sha512Final(&sha, out);
	wc_Sha512Free(&sha);
	return r == 0 ? 0 : -EINVAL;
}

int auth_hmac(const uint8_t *key, size_t klen, const uint8_t *msg, size_t mlen, uint8_t out[AUTH_HASH_BYTES])
{
	Hmac h;
	int r;

	if (wc_HmacInit(&h, NULL, INVALID_DEVID) != 0)
		return -EINVAL;
	r = wc_HmacSetKey(&h, WC_SHA512, key, (word32)klen);
	if (r == 0)
		r = wc_HmacUpdate(&h, msg, (word32)mlen);
	if (r == 0)
		r = wc_HmacFinal(&h, out);
	wc_HmacFree(&h);
	return r == 0 ? 0 : -EINVAL;
}

int auth_b64_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
	word32 n = (word32)(cap > 0 ? cap - 1 : 0);

	if (cap == 0 || Base64_Encode_NoNl(in, (word32)len, (byte *)out, &n) != 0 || n >= cap)
		return -ENOBUFS;
	out[n] = '\0';
	return 0;
}

int auth_b64_decode_n(const uint8_t *in, size_t inlen, uint8_t *out, size_t cap, size_t *ret_len)
{
	word32 n = (word32)cap;

	if (inlen == 0 || inlen % 4 != 0 || Base64_Decode(in, (word32)inlen, out, &n) != 0)
		return -EINVAL;
	*ret_len = n;
	return 0;
}

int auth_b64_decode(const char *in, uint8_t *out, size_t cap, size_t *ret_len)
{
	return auth_b64_decode_n((const uint8_t *)in, strlen(in), out, cap, ret_len);
}

bool auth_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	volatile uint8_t d = 0;

	for (size_t i = 0; i < n; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}
