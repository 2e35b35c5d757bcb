/*
 * inspect.c - `ringmq store stats|dump|check`: the store read-only, for
 * operators.  LMDB readers do not block the broker's writer, so this is
 * safe while the broker runs; what it prints is one consistent snapshot
 * per database.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ringmq/record.h"
#include "ringmq/store.h"

static void print_bytes(const uint8_t *p, size_t n, size_t max)
{
	for (size_t i = 0; i < n && i < max; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7F && p[i] != '\\')
			putchar(p[i]);
		else
			printf("\\x%02x", p[i]);
	}
	if (n > max)
		printf("...(%zu bytes)", n);
}

static void print_time(uint64_t wall_ms)
{
	time_t t = (time_t)(wall_ms / 1000);
	struct tm tm;
	char buf[64];

	if (!wall_ms) {
		printf("-");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%s", buf);
}

struct walk {
	unsigned db;
	uint64_t n, bad, newer;
	bool dump;
};

static void dump_msg(const struct msg *m, uint64_t expiry)
{
	printf(" qos=%u retain=%u topic=\"", m->qos, m->retain);
	print_bytes(m->topic.ptr, m->topic.len, 200);
	printf("\" payload=%u bytes expiry=", m->payload.len);
	print_time(expiry);
}

static void dump_one(unsigned db, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct msg m;
	struct rec_sess rs = {.will = &m};
	struct rec_sub sub;
	struct rec_deliv d = {.m = &m};
	struct rec_flow f;
	uint64_t v;

	printf("%s ", rec_db_name(db));
	print_bytes(key, klen, 120);
	printf(" :");
	switch (db) {
	case REC_DB_META:
		(void)rec_get_meta_u64(val, vlen, &v);
		printf(" %llu", (unsigned long long)v);
		break;
	case REC_DB_RETAIN:
		(void)rec_get_retain(val, vlen, &m, &v);
		dump_msg(&m, v);
		break;
	case REC_DB_SESS:
		(void)rec_get_sess(val, vlen, &rs);
		printf(" client=\"");
		print_bytes(rs.client_id.ptr, rs.client_id.len, 200);
		printf("\" mqtt=%u expiry=%us offline_since=", rs.version, rs.expiry_s);
		print_time(rs.offline_wall_ms);
		printf(" will=%s", rs.has_will ? "yes" : "no");
		break;
	case REC_DB_SUB:
		(void)rec_get_sub(val, vlen, &sub);
		printf(" filter=\"");
		print_bytes(sub.filter.ptr, sub.filter.len, 200);
		printf("\" options=0x%02x id=%u", sub.options, sub.sub_id);
		break;
	case REC_DB_DELIV:
		(void)rec_get_deliv(val, vlen, &d);
		printf(" state=%u pid=%u", d.state, d.pid);
		dump_msg(d.m, d.expiry_wall_ms);
		break;
	case REC_DB_FLOW:
		(void)rec_get_flow(val, vlen, &f);
		printf(" state=%u pid=%u", f.state, f.pid);
		break;
	default:
		break;
	}
	putchar('\n');
}

static int walk_fn(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct walk *w = ctx;
	int r = rec_check(w->db, val, vlen);

	w->n++;
	if (r == REC_NEWER) {
		w->newer++;
		printf("%s: record written by a newer format: ", rec_db_name(w->db));
		print_bytes(key, klen, 120);
		putchar('\n');
	} else if (r != REC_OK) {
		w->bad++;
		printf("%s: corrupt record: ", rec_db_name(w->db));
		print_bytes(key, klen, 120);
		putchar('\n');
	} else if (w->dump) {
		dump_one(w->db, key, klen, val, vlen);
	}
	return 0;
}

int store_inspect(const char *dir, const char *what)
{
	struct store_opts o = {.dir = dir, .nshards = 1, .read_only = true};
	bool stats = strcmp(what, "stats") == 0, dump = strcmp(what, "dump") == 0, check = strcmp(what, "check") == 0;
	uint64_t bad = 0;
	char err[1024];
	struct store *st;

	if (!stats && !dump && !check) {
		fprintf(stderr, "ringmq store: unknown command '%s' (stats, dump or check)\n", what);
		return 2;
	}
	st = store_open(&o, err, sizeof(err));
	if (!st) {
		fprintf(stderr, "ringmq store: %s\n", err);
		return 1;
	}
	if (stats) {
		printf("store %s\n", dir);
		printf("last commit ");
		print_time(store_last_clock(st));
		putchar('\n');
		for (unsigned db = 0; db < REC_DB_COUNT; db++)
			printf("%-14s %lld records\n", rec_db_name(db), (long long)store_count(st, db));
	}
	for (unsigned db = 0; !stats && db < REC_DB_COUNT; db++) {
		struct walk w = {.db = db, .dump = dump};
		int r = store_scan(st, db, NULL, 0, walk_fn, &w);
		if (r != 0) {
			fprintf(stderr, "ringmq store: reading %s: %s\n", rec_db_name(db), strerror(EIO));
			bad++;
		}
		bad += w.bad + w.newer;
		if (check)
			printf("%-14s %llu records, %llu corrupt%s\n", rec_db_name(db), (unsigned long long)w.n,
			       (unsigned long long)w.bad, w.newer ? ", some from a newer format" : "");
	}
	store_close(st);
	if (check)
		printf(bad ? "check: FAILED\n" : "check: ok\n");
	return bad ? 1 : 0;
}
