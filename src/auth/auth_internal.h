/*
 * auth_internal.h - what passwd.c and scram.c share: the entry layout and
 * thin wrappers over wolfCrypt (PBKDF2, HMAC-SHA512, SHA-512, base64).
 */
#ifndef RINGMQ_AUTH_INTERNAL_H
#define RINGMQ_AUTH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringmq/auth.h"

struct auth_entry {
	char user[AUTH_USERNAME_BYTES_MAX + 1];
	size_t user_len;
	uint8_t kind; /* 6 or 7 */
	unsigned iterations;
	uint8_t salt[64];
	size_t salt_len;
	uint8_t hash[AUTH_HASH_BYTES];
	size_t hash_len;
};

struct auth_db {
	struct auth_entry *v;
	size_t n, cap;
};

const struct auth_entry *auth_db_find(const struct auth_db *db, const uint8_t *user, size_t len);
int auth_pbkdf2(const uint8_t *pass, size_t plen, const uint8_t *salt, size_t slen, unsigned iter,
		uint8_t out[AUTH_HASH_BYTES]);
int auth_sha512_salted(const uint8_t *pass, size_t plen, const uint8_t *salt, size_t slen,
		       uint8_t out[AUTH_HASH_BYTES]);
int auth_hmac(const uint8_t *key, size_t klen, const uint8_t *msg, size_t mlen, uint8_t out[AUTH_HASH_BYTES]);
int auth_sha512(const uint8_t *msg, size_t len, uint8_t out[AUTH_HASH_BYTES]);
/* Standard base64 with padding, NUL-terminated. */
int auth_b64_encode(const uint8_t *in, size_t len, char *out, size_t cap);
int auth_b64_decode(const char *in, uint8_t *out, size_t cap, size_t *ret_len);
int auth_b64_decode_n(const uint8_t *in, size_t inlen, uint8_t *out, size_t cap, size_t *ret_len);
/* Constant-time equality. */
bool auth_equal(const uint8_t *a, const uint8_t *b, size_t n);

#endif
