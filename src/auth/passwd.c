/*
 * passwd.c - mosquitto-format password files: loading, checking, making.
 *
 * The whole file is parsed into an array at start-up; any line that is not
 * "user:$7$..." or "user:$6$..." (or blank, or a '#' comment) makes loading
 * fail with its line number, and so does a file without entries: a broker
 * that was told to check passwords never ends up checking none.  Lookups
 * are linear: password checks happen once per connection and cost a
 * PBKDF2 run that dwarfs the scan.
 */
#include "ringmq/auth.h"
#include "auth_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define LINE_BYTES_MAX 2048u

static int load_fail(char *err, const char *path, unsigned line, const char *what)
{
	snprintf(err, 512, "%s:%u: %s", path, line, what);
	return -EINVAL;
}

/* Parse "$7$ITER$SALT$HASH" or "$6$SALT$HASH" into @e. */
static int parse_hash(char *h, struct auth_entry *e)
{
	char *salt, *hash, *end;
	unsigned long iter;

	if (strncmp(h, "$7$", 3) == 0) {
		e->kind = 7;
		iter = strtoul(h + 3, &end, 10);
		if (end == h + 3 || *end != '$' || iter == 0 || iter > AUTH_PBKDF2_ITERATIONS_MAX)
			return -EINVAL;
		e->iterations = (unsigned)iter;
		salt = end + 1;
	} else if (strncmp(h, "$6$", 3) == 0) {
		e->kind = 6;
		salt = h + 3;
	} else {
		return -EINVAL;
	}
	hash = strchr(salt, '$');
	if (!hash)
		return -EINVAL;
	*hash++ = '\0';
	/* wolfCrypt wants room for the padding too: decode into a larger buffer. */
	uint8_t tmp[AUTH_HASH_BYTES + 8];
	if (auth_b64_decode(salt, e->salt, sizeof(e->salt), &e->salt_len) < 0 || e->salt_len == 0 ||
	    auth_b64_decode(hash, tmp, sizeof(tmp), &e->hash_len) < 0 || e->hash_len != AUTH_HASH_BYTES)
		return -EINVAL;
	memcpy(e->hash, tmp, AUTH_HASH_BYTES);
	return 0;
}

static int add_entry(struct auth_db *db, const struct auth_entry *e)
{
	if (db->n == db->cap) {
		size_t cap = db->cap ? db->cap * 2 : 16;
		struct auth_entry *v = realloc(db->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		db->v = v;
		db->cap = cap;
	}
	db->v[db->n++] = *e;
	return 0;
}

static int parse_line(struct auth_db *db, char *line, const char *path, unsigned ln, char *err)
{
	struct auth_entry e = {0};
	size_t len = strlen(line);
	char *colon;

	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	if (len == 0 || line[0] == '#')
		return 0;
	colon = strchr(line, ':');
	if (!colon || colon == line)
		return load_fail(err, path, ln, "expected USERNAME:HASH");
	*colon = '\0';
	if ((size_t)(colon - line) >= sizeof(e.user))
		return load_fail(err, path, ln, "username too long");
	memcpy(e.user, line, (size_t)(colon - line) + 1);
	e.user_len = (size_t)(colon - line);
	if (parse_hash(colon + 1, &e) < 0)
		return load_fail(err, path, ln, "hash is not $7$ITERATIONS$SALT$HASH or $6$SALT$HASH in base64");
	if (auth_db_find(db, (const uint8_t *)e.user, e.user_len))
		return load_fail(err, path, ln, "username appears twice");
	return add_entry(db, &e) < 0 ? load_fail(err, path, ln, "out of memory") : 0;
}

int auth_db_load(const char *path, struct auth_db **ret_db, char *err)
{
	struct auth_db *db = calloc(1, sizeof(*db));
	char line[LINE_BYTES_MAX];
	unsigned ln = 0;
	FILE *f;
	int r = 0;

	if (!db)
		return -ENOMEM;
	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		snprintf(err, 512, "%s: cannot open password file: %s", path, strerror(errno));
		auth_db_free(db);
		return r;
	}
	while (r == 0 && fgets(line, sizeof(line), f)) {
		ln++;
		if (!strchr(line, '\n') && !feof(f))
			r = load_fail(err, path, ln, "line too long");
		else
			r = parse_line(db, line, path, ln, err);
	}
	fclose(f);
	if (r == 0 && db->n == 0)
		r = load_fail(err, path, ln, "no entries: refusing to run with an empty password file");
	if (r < 0) {
		auth_db_free(db);
		return r;
	}
	*ret_db = db;
	return 0;
}

struct auth_db *auth_db_free(struct auth_db *db)
{
	if (db) {
		if (db->v)
			explicit_bzero(db->v, db->n * sizeof(*db->v));
		free(db->v);
		free(db);
	}
	return NULL;
}

size_t auth_db_count(const struct auth_db *db)
{
	return db->n;
}

const struct auth_entry *auth_db_find(const struct auth_db *db, const uint8_t *user, size_t len)
{
	for (size_t i = 0; i < db->n; i++)
		if (db->v[i].user_len == len && memcmp(db->v[i].user, user, len) == 0)
			return &db->v[i];
	return NULL;
}

int auth_check_password(const struct auth_db *db, const uint8_t *user, size_t ulen, const uint8_t *pass,
			size_t plen)
{
	const struct auth_entry *e = auth_db_find(db, user, ulen);
	uint8_t got[AUTH_HASH_BYTES];
	static const uint8_t dummy_salt[AUTH_SALT_BYTES];

	if (ulen > AUTH_USERNAME_BYTES_MAX || plen > AUTH_PASSWORD_BYTES_MAX)
		return -EACCES;
	if (!e) {
		/* Same work as a real check, so timing does not reveal user names. */
		(void)auth_pbkdf2(pass, plen, dummy_salt, sizeof(dummy_salt), AUTH_PBKDF2_ITERATIONS_DEFAULT, got);
		return -EACCES;
	}
	if (e->kind == 7) {
		if (auth_pbkdf2(pass, plen, e->salt, e->salt_len, e->iterations, got) < 0)
			return -EACCES;
	} else if (auth_sha512_salted(pass, plen, e->salt, e->salt_len, got) < 0) {
		return -EACCES;
	}
	return auth_equal(got, e->hash, AUTH_HASH_BYTES) ? 0 : -EACCES;
}

int auth_hash_new(const char *password, unsigned iterations, char *out, size_t cap)
{
	uint8_t salt[AUTH_SALT_BYTES], hash[AUTH_HASH_BYTES];
	char s64[32], h64[128];
	int n;

	if (getrandom(salt, sizeof(salt), 0) != (ssize_t)sizeof(salt))
		return -EIO;
	if (auth_pbkdf2((const uint8_t *)password, strlen(password), salt, sizeof(salt), iterations, hash) < 0 ||
	    auth_b64_encode(salt, sizeof(salt), s64, sizeof(s64)) < 0 ||
	    auth_b64_encode(hash, sizeof(hash), h64, sizeof(h64)) < 0)
		return -EINVAL;
	n = snprintf(out, cap, "$7$%u$%s$%s", iterations, s64, h64);
	return n > 0 && (size_t)n < cap ? 0 : -ENOBUFS;
}
