/*
 * test_auth.c - password files and SCRAM-SHA-512 without a broker.
 *
 * Entries are made with auth_hash_new() and checked with
 * auth_check_password(); broken files must refuse to load with their line
 * number.  The SCRAM exchange is driven by a client built here from RFC
 * 5802 on the same wolfCrypt wrappers, and every failure path (wrong
 * proof, unknown user, tampered nonce, malformed messages) is exercised.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/auth/auth_internal.h"
#include "ringmq/auth.h"

static char path[64];

static struct auth_db *load(const char *text, int *ret, char *err)
{
	struct auth_db *db = NULL;
	int fd;

	snprintf(path, sizeof(path), "/tmp/rmq-auth-XXXXXX");
	fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	*ret = auth_db_load(path, &db, err);
	unlink(path);
	return db;
}

static struct auth_db *db_with(const char *user, const char *pw)
{
	char entry[512], text[700], err[512];
	int r;

	cr_assert_eq(auth_hash_new(pw, 1000, entry, sizeof(entry)), 0);
	snprintf(text, sizeof(text), "# comment\n\n%s:%s\n", user, entry);
	struct auth_db *db = load(text, &r, err);
	cr_assert_eq(r, 0, "%s", err);
	return db;
}

Test(auth, new_entries_check_their_password_only)
{
	struct auth_db *db = db_with("alice", "wonder");

	cr_assert_eq(auth_db_count(db), 1);
	cr_assert_eq(auth_check_password(db, (const uint8_t *)"alice", 5, (const uint8_t *)"wonder", 6), 0);
	cr_assert_eq(auth_check_password(db, (const uint8_t *)"alice", 5, (const uint8_t *)"wondeR", 6), -EACCES);
	cr_assert_eq(auth_check_password(db, (const uint8_t *)"alic", 4, (const uint8_t *)"wonder", 6), -EACCES);
	auth_db_free(db);
}

Test(auth, broken_files_name_their_line)
{
	static const struct {
		const char *text, *msg;
	} cases[] = {
		{"", ":0: no entries"},
		{"# only a comment\n", ":1: no entries"},
		{"alice\n", ":1: expected USERNAME:HASH"},
		{"ok:$6$YWJj$\nbad:$9$x\n", ":1: hash is not"},
		{"alice:$7$0$YWJj$YWJj\n", ":1: hash is not"},
		{"alice:$7$10$!!!!$YWJj\n", ":1: hash is not"},
	};
	char err[512];
	int r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct auth_db *db = load(cases[i].text, &r, err);
		cr_assert_null(db);
		cr_assert_eq(r, -EINVAL, "case %zu", i);
		cr_assert(strstr(err, cases[i].msg), "case %zu: %s", i, err);
	}
}

Test(auth, duplicate_users_are_refused)
{
	char entry[512], text[1200], err[512];
	int r;

	cr_assert_eq(auth_hash_new("pw", 100, entry, sizeof(entry)), 0);
	snprintf(text, sizeof(text), "a:%s\na:%s\n", entry, entry);
	cr_assert_null(load(text, &r, err));
	cr_assert(strstr(err, ":2: username appears twice"), "%s", err);
}

/* The client side of RFC 5802, for the server under test. */
static void client_final(const char *first_bare, const char *server_first, const char *password, char *out,
			 size_t cap, char *expected_v, size_t vcap)
{
	const char *r = strstr(server_first, "r="), *sp = strstr(server_first, ",s=");
	const char *ip = strstr(server_first, ",i=");
	char nonce[256], salt64[128], without[512], am[1500], p64[128];
	uint8_t salt[64], salted[64], ck[64], sk[64], stored[64], sig[64], proof[64], ssig[64];
	size_t salt_len;

	cr_assert(r && sp && ip);
	snprintf(nonce, sizeof(nonce), "%.*s", (int)(sp - r - 2), r + 2);
	snprintf(salt64, sizeof(salt64), "%.*s", (int)(ip - sp - 3), sp + 3);
	cr_assert_eq(auth_b64_decode(salt64, salt, sizeof(salt), &salt_len), 0);
	cr_assert_eq(auth_pbkdf2((const uint8_t *)password, strlen(password), salt, salt_len,
				 (unsigned)strtoul(ip + 3, NULL, 10), salted), 0);
	snprintf(without, sizeof(without), "c=biws,r=%s", nonce);
	snprintf(am, sizeof(am), "%s,%s,%s", first_bare, server_first, without);
	auth_hmac(salted, 64, (const uint8_t *)"Client Key", 10, ck);
	auth_sha512(ck, 64, stored);
	auth_hmac(stored, 64, (const uint8_t *)am, strlen(am), sig);
	for (int i = 0; i < 64; i++)
		proof[i] = ck[i] ^ sig[i];
	auth_b64_encode(proof, 64, p64, sizeof(p64));
	snprintf(out, cap, "%s,p=%s", without, p64);
	auth_hmac(salted, 64, (const uint8_t *)"Server Key", 10, sk);
	auth_hmac(sk, 64, (const uint8_t *)am, strlen(am), ssig);
	char v64[128];
	auth_b64_encode(ssig, 64, v64, sizeof(v64));
	snprintf(expected_v, vcap, "v=%s", v64);
}

static int run_scram(struct auth_db *db, const char *user, const char *password, bool tamper, char *final_out)
{
	char first[160], bare[128], cf[1024], v[256];
	uint8_t out[512];
	size_t n;
	struct scram *sc = NULL;
	int r;

	snprintf(bare, sizeof(bare), "n=%s,r=fyko+d2lbbFgONRv9qkxdawL", user);
	snprintf(first, sizeof(first), "n,,%s", bare);
	cr_assert_eq(scram_first(db, (const uint8_t *)first, strlen(first), &sc, out, sizeof(out), &n), 0);
	out[n] = '\0';
	cr_assert(strncmp((char *)out, "r=fyko+d2lbbFgONRv9qkxdawL", 26) == 0, "server nonce extends the client's");
	client_final(bare, (char *)out, password, cf, sizeof(cf), v, sizeof(v));
	if (tamper)
		cf[10] ^= 1; /* a different nonce */
	r = scram_final(sc, (const uint8_t *)cf, strlen(cf), out, sizeof(out), &n);
	if (r == 0) {
		out[n] = '\0';
		cr_assert_str_eq((char *)out, v, "server signature");
		snprintf(final_out, 256, "%s", scram_user(sc));
	}
	scram_free(sc);
	return r;
}

Test(auth, scram_sha512_exchange_succeeds_with_the_right_password)
{
	struct auth_db *db = db_with("alice", "wonder");
	char user[256];

	cr_assert_eq(run_scram(db, "alice", "wonder", false, user), 0);
	cr_assert_str_eq(user, "alice");
	auth_db_free(db);
}

Test(auth, scram_refuses_wrong_password_unknown_user_and_tampering)
{
	struct auth_db *db = db_with("alice", "wonder");
	char user[256];

	cr_assert_eq(run_scram(db, "alice", "wrong", false, user), -EACCES);
	cr_assert_eq(run_scram(db, "mallory", "wonder", false, user), -EACCES);
	cr_assert_eq(run_scram(db, "alice", "wonder", true, user), -EINVAL);
	auth_db_free(db);
}

Test(auth, scram_refuses_malformed_client_first)
{
	static const char *const bad[] = {"",	     "n,,",	    "p=tls,,n=a,r=x", "n,,r=x",
					  "n,,n=a", "n,,n=,r=x", "n,,n=a=ZZ,r=x", "n,,n=a,r="};
	struct auth_db *db = db_with("a", "b");
	uint8_t out[512];
	size_t n;
	struct scram *sc = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(scram_first(db, (const uint8_t *)bad[i], strlen(bad[i]), &sc, out, sizeof(out), &n),
			     -EINVAL, "%s", bad[i]);
	auth_db_free(db);
}
