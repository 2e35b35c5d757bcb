/*
 * persist_restore.c - start-up: the store's records back into memory
 * (persist.h).  Main loads the retained messages before any shard runs;
 * each shard loads the sessions whose client id hashes to it, with their
 * subscriptions, deliveries and QoS 2 packet ids, before the listeners
 * open.  A corrupt record is logged and skipped; a record of a newer
 * format stops the start.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ringmq/log.h"
#include "ringmq/msg.h"
#include "ringmq/persist.h"
#include "ringmq/proto.h"
#include "ringmq/record.h"
#include "ringmq/retain.h"
#include "ringmq/sess.h"
#include "ringmq/shard.h"
#include "ringmq/store.h"

/* A wall-clock deadline as CLOCK_MONOTONIC.  @now_ms: CLOCK_MONOTONIC now,
 * @wall_now: CLOCK_REALTIME now. */
static uint64_t to_mono(uint64_t now_ms, uint64_t wall_ms, uint64_t wall_now)
{
	if (!wall_ms)
		return 0;
	if (wall_ms <= wall_now)
		return now_ms ? now_ms : 1; /* already due */
	return now_ms + (wall_ms - wall_now);
}

/* A heap message from a record's view; expiry from the wall clock. */
static struct msg *restore_msg(struct shard *s, const struct msg *view, uint64_t expiry_wall, uint64_t wall_now)
{
	return msg_copy(view, to_mono(s->now_ms, expiry_wall, wall_now));
}

struct restore_ctx {
	struct shard *s;
	struct sess *se;
	uint64_t wall_now;
	int err;
	uint64_t sessions, subs, delivs, skipped;
	/* flows of the session being restored, by sequence number */
	struct {
		uint64_t seq;
		struct rec_flow f;
	} *flows;
	uint32_t nflows, flow_cap;
};

static uint64_t key_seq(const uint8_t *key, size_t klen)
{
	uint64_t v = 0;

	for (size_t i = klen - 8; i < klen; i++)
		v = v << 8 | key[i];
	return v;
}

static int bad_record(struct restore_ctx *rc, unsigned db, int r)
{
	if (r == REC_NEWER) {
		log_error(NULL, "store: a %s record was written by a newer ringmq: refusing to start", rec_db_name(db));
		rc->err = -EPROTO;
		return 1;
	}
	log_error(NULL, "store: corrupt %s record skipped", rec_db_name(db));
	atomic_fetch_add(&store_stats(rc->s->b->store)->corrupt, 1);
	rc->skipped++;
	return 0;
}

static int restore_sub(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct restore_ctx *rc = ctx;
	struct rec_sub sub;
	int r = rec_get_sub(val, vlen, &sub);

	(void)key;
	(void)klen;
	if (r != REC_OK)
		return bad_record(rc, REC_DB_SUB, r);
	r = subscribe_restore(rc->s, rc->se, sub.filter.ptr, (uint16_t)sub.filter.len, sub.options, sub.sub_id);
	if (r < 0)
		log_error(rc->se->client_id, "store: subscription '%.*s' not restored: %s", (int)sub.filter.len,
			  (const char *)sub.filter.ptr, strerror(-r));
	else
		rc->subs++;
	return 0;
}

static int restore_flow(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct restore_ctx *rc = ctx;
	struct rec_flow f;
	int r = rec_get_flow(val, vlen, &f);

	if (r != REC_OK || klen < 8)
		return bad_record(rc, REC_DB_FLOW, r == REC_OK ? REC_CORRUPT : r);
	if (rc->nflows == rc->flow_cap) {
		uint32_t cap = rc->flow_cap ? rc->flow_cap * 2 : 16;
		void *n = realloc(rc->flows, cap * sizeof(*rc->flows));
		if (!n) {
			rc->err = -ENOMEM;
			return 1;
		}
		rc->flows = n;
		rc->flow_cap = cap;
	}
	rc->flows[rc->nflows].seq = key_seq(key, klen);
	rc->flows[rc->nflows].f = f;
	rc->nflows++;
	return 0;
}

static int restore_deliv(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct restore_ctx *rc = ctx;
	struct msg view;
	struct rec_deliv rd = {.m = &view};
	struct deliv d = {0};
	int r = rec_get_deliv(val, vlen, &rd);

	if (r != REC_OK || klen < 8)
		return bad_record(rc, REC_DB_DELIV, r == REC_OK ? REC_CORRUPT : r);
	d.seq = key_seq(key, klen);
	if (d.seq > rc->se->next_seq)
		rc->se->next_seq = d.seq;
	d.state = rd.state;
	d.pid = rd.pid;
	for (uint32_t i = 0; i < rc->nflows; i++) {
		if (rc->flows[i].seq == d.seq) {
			d.state = rc->flows[i].f.state;
			d.pid = rc->flows[i].f.pid;
			d.flowed = true;
		}
	}
	d.qos = rd.qos;
	d.retain = rd.retain;
	d.share_id = rd.share_id;
	d.m = restore_msg(rc->s, rd.m, rd.expiry_wall_ms, rc->wall_now);
	if (!d.m) {
		rc->err = -ENOMEM;
		return 1;
	}
	if (rd.nsubids && (d.subids = malloc(rd.nsubids * sizeof(*d.subids)))) {
		memcpy(d.subids, rd.subids, rd.nsubids * sizeof(*d.subids));
		d.nsubids = rd.nsubids;
	}
	if (d.state == DELIV_QUEUED && msg_expired(d.m, rc->s->now_ms)) {
		persist_deliv_del(rc->s, rc->se, &d); /* expired while the broker was down */
		d.m = msg_unref(d.m);
		free(d.subids);
		return 0;
	}
	if (sess_restore_deliv(rc->s, rc->se, &d) < 0) {
		msg_unref(d.m);
		free(d.subids);
		rc->err = -ENOMEM;
		return 1;
	}
	rc->delivs++;
	return 0;
}

static int restore_q2in(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct restore_ctx *rc = ctx;
	int r = rec_get_q2in(val, vlen);
	uint16_t pid;

	if (r != REC_OK || klen < 2)
		return bad_record(rc, REC_DB_Q2IN, r == REC_OK ? REC_CORRUPT : r);
	pid = (uint16_t)(key[klen - 2] << 8 | key[klen - 1]);
	if (sess_qos2_mark(rc->se, pid) < 0) {
		rc->err = -ENOMEM;
		return 1;
	}
	return 0;
}

static int restore_sess(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct restore_ctx *rc = ctx;
	struct shard *s = rc->s;
	struct store *st = s->b->store;
	struct msg will;
	struct rec_sess rs = {.will = &will};
	struct sess *se;
	uint64_t off_wall, gone_ms;
	int r = rec_get_sess(val, vlen, &rs);

	if (r != REC_OK)
		return bad_record(rc, REC_DB_SESS, r);
	if (shard_home(s->b, rs.client_id.ptr, rs.client_id.len) != s->id)
		return 0;
	se = sess_new(s, rs.client_id.ptr, rs.client_id.len, rs.version);
	if (!se || (rs.has_username && !(se->username = strndup((const char *)rs.username.ptr, rs.username.len)))) {
		rc->err = -ENOMEM;
		return 1;
	}
	se->stored = true;
	se->expiry_s = rs.expiry_s;
	/* Offline since it went away, or since the last commit before a crash. */
	off_wall = rs.offline_wall_ms ? rs.offline_wall_ms : store_last_clock(st);
	gone_ms = off_wall && off_wall < rc->wall_now ? rc->wall_now - off_wall : 0;
	se->offline_since_ms = s->now_ms > gone_ms ? s->now_ms - gone_ms : 0;
	if (rs.has_will) {
		se->will = restore_msg(s, rs.will, rs.will_expiry_wall_ms, rc->wall_now);
		se->will_delay_s = rs.will_delay_s;
		/* Its connection is gone: the will goes after its delay from then. */
		se->will_at_ms = se->offline_since_ms + (uint64_t)rs.will_delay_s * 1000u;
		if (!se->will_at_ms)
			se->will_at_ms = 1;
	}
	rc->se = se;
	rc->nflows = 0;
	r = store_scan(st, REC_DB_SUB, key, klen, restore_sub, rc);
	if (r == 0 && !rc->err)
		r = store_scan(st, REC_DB_FLOW, key, klen, restore_flow, rc);
	if (r == 0 && !rc->err)
		r = store_scan(st, REC_DB_DELIV, key, klen, restore_deliv, rc);
	if (r == 0 && !rc->err)
		r = store_scan(st, REC_DB_Q2IN, key, klen, restore_q2in, rc);
	if (r < 0 && !rc->err)
		rc->err = -EIO;
	if (!rs.offline_wall_ms)
		persist_sess_put(s, se); /* record when it went away */
	rc->sessions++;
	return rc->err ? 1 : 0;
}

int persist_shard_init(struct shard *s)
{
	struct restore_ctx rc = {.s = s, .wall_now = store_wall_ms()};
	int r;

	s->ps.next_ticket = 0;
	if (!s->b->store)
		return 0;
	s->now_ms = shard_now_ms();
	r = store_scan(s->b->store, REC_DB_SESS, NULL, 0, restore_sess, &rc);
	free(rc.flows);
	if (rc.err)
		return rc.err;
	if (r < 0) {
		log_error(NULL, "store: cannot read sessions: %s", strerror(-r));
		return -EIO;
	}
	if (rc.sessions)
		log_info(NULL, "store: restored %llu sessions, %llu subscriptions, %llu queued or in-flight messages%s",
			 (unsigned long long)rc.sessions, (unsigned long long)rc.subs, (unsigned long long)rc.delivs,
			 rc.skipped ? " (corrupt records skipped: see above)" : "");
	return 0;
}

struct retain_ctx {
	struct broker *b;
	uint64_t now_ms, wall_now, count, skipped;
	int err;
};

static int restore_retained(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct retain_ctx *rc = ctx;
	struct msg view, *m;
	uint64_t expiry;
	int r = rec_get_retain(val, vlen, &view, &expiry);

	(void)key;
	(void)klen;
	if (r == REC_NEWER) {
		log_error(NULL, "store: a retained record was written by a newer ringmq: refusing to start");
		rc->err = -EPROTO;
		return 1;
	}
	if (r != REC_OK) {
		log_error(NULL, "store: corrupt retained record skipped");
		atomic_fetch_add(&store_stats(rc->b->store)->corrupt, 1);
		rc->skipped++;
		return 0;
	}
	if (expiry && expiry <= rc->wall_now)
		return 0; /* expired while the broker was down; dropped from the store by the next set */
	m = msg_copy(&view, to_mono(rc->now_ms, expiry, rc->wall_now));
	if (!m || retain_set(rc->b->retain, m) < 0) {
		msg_unref(m);
		rc->err = -ENOMEM;
		return 1;
	}
	msg_unref(m);
	rc->count++;
	return 0;
}

int persist_restore_retained(struct broker *b)
{
	struct retain_ctx rc = {.b = b, .wall_now = store_wall_ms()};
	int r;

	if (!b->store)
		return 0;
	rc.now_ms = shard_now_ms();
	r = store_scan(b->store, REC_DB_RETAIN, NULL, 0, restore_retained, &rc);
	if (rc.err)
		return rc.err;
	if (r < 0)
		return -EIO;
	if (rc.count)
		log_info(NULL, "store: restored %llu retained messages", (unsigned long long)rc.count);
	return 0;
}
