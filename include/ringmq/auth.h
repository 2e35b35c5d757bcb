/*
 * auth.h - password database (mosquitto password files) and SCRAM-SHA-512.
 *
 * Password files use mosquitto's format, one "username:hash" per line:
 *   $7$ITERATIONS$SALT$HASH  PBKDF2-HMAC-SHA512, 64-byte hash (mosquitto 2.x)
 *   $6$SALT$HASH             SHA-512(password || salt) (mosquitto 1.x)
 * SALT and HASH in standard base64.  A $7$ entry's HASH is exactly SCRAM's
 * SaltedPassword (RFC 5802) for that salt and iteration count, so one file
 * serves plain CONNECT passwords and MQTT 5 enhanced authentication with
 * the SCRAM-SHA-512 method; $6$ entries can only log in with a plain
 * password.
 *
 * Owner:    struct auth_db - main; loaded before the shards start and
 *           read-only afterwards.  struct scram - one connection, on its
 *           shard, for the length of one authentication exchange.
 * Lifetime: auth_db_load() .. auth_db_free() after the shards stopped;
 *           scram_new() .. scram_free() by the connection.
 * Shared:   auth_db is read by every shard without locks (never written
 *           after loading); scram never.
 */
#ifndef RINGMQ_AUTH_H
#define RINGMQ_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_SCRAM_METHOD "SCRAM-SHA-512"
/* PBKDF2 iterations for new entries (mosquitto_passwd's default is 101;
 * ringmq uses more, the cost is paid once per login). */
#define AUTH_PBKDF2_ITERATIONS_DEFAULT 10000u
#define AUTH_PBKDF2_ITERATIONS_MAX 10000000u
#define AUTH_SALT_BYTES 12u
#define AUTH_HASH_BYTES 64u
/* Longest username and password accepted (bytes).  Longer ones are refused
 * before any hashing, so a hostile CONNECT cannot buy CPU time. */
#define AUTH_USERNAME_BYTES_MAX 256u
#define AUTH_PASSWORD_BYTES_MAX 1024u
/* Longest SCRAM message accepted from a client. */
#define AUTH_SCRAM_MESSAGE_BYTES_MAX 1024u

struct auth_db;
struct scram;

/**
 * auth_db_load() - read password file @path.  An unreadable, empty or
 * garbled file is an error ("FILE:LINE: what is wrong" in @err, 512 bytes):
 * ringmq never fails open.  Returns 0 or a negative errno.
 */
int auth_db_load(const char *path, struct auth_db **ret_db, char *err);
/** auth_db_free() - NULL-safe; returns NULL. */
struct auth_db *auth_db_free(struct auth_db *db);
/** auth_db_count() - entries loaded. */
size_t auth_db_count(const struct auth_db *db);

/**
 * auth_check_password() - 0 if @user exists and @pass is its password,
 * -EACCES otherwise (unknown users take as long as known ones, and the
 * hash comparison is constant-time).
 */
int auth_check_password(const struct auth_db *db, const uint8_t *user, size_t ulen, const uint8_t *pass,
			size_t plen);

/**
 * auth_hash_new() - a new "$7$ITER$SALT$HASH" entry for @password into
 * @out (@cap bytes).  Returns 0 or a negative errno.
 */
int auth_hash_new(const char *password, unsigned iterations, char *out, size_t cap);

/**
 * scram_first() - server side of SCRAM-SHA-512 (RFC 5802 / 7677), step 1.
 * @client_first: the client-first-message ("n,,n=USER,r=NONCE").
 * Writes the server-first-message into @out (@cap bytes, *ret_len) and
 * returns the exchange state in *ret.  An unknown user gets a fake but
 * consistent challenge and fails at the last step, so user names cannot be
 * probed.  Returns 0, -EINVAL for a malformed message, -ENOMEM.
 */
int scram_first(const struct auth_db *db, const uint8_t *client_first, size_t len, struct scram **ret,
		uint8_t *out, size_t cap, size_t *ret_len);

/**
 * scram_final() - step 2: check the client-final-message's proof.  On
 * success writes the server-final-message ("v=...") into @out and returns
 * 0; -EACCES for a wrong proof or unknown user; -EINVAL when malformed.
 */
int scram_final(struct scram *sc, const uint8_t *client_final, size_t len, uint8_t *out, size_t cap,
		size_t *ret_len);

/** scram_user() - the user name the exchange authenticated (valid until scram_free). */
const char *scram_user(const struct scram *sc);

/** scram_free() - NULL-safe; returns NULL. */
struct scram *scram_free(struct scram *sc);

#endif
