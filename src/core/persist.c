/*
 * persist.c - the shards' side of the store (see persist.h): change
 * records, acknowledgements after commit, restore.
 *
 * Times.  Records keep wall-clock times (CLOCK_REALTIME ms) so expiry goes
 * on counting while the broker is down; memory keeps CLOCK_MONOTONIC.
 * Converting adds the difference between the two clocks at that moment.
 */
#include "ringmq/persist.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ringmq/conn.h"
#include "ringmq/limits.h"
#include "ringmq/log.h"
#include "ringmq/msg.h"
#include "ringmq/proto.h"
#include "ringmq/record.h"
#include "ringmq/retain.h"
#include "ringmq/sess.h"
#include "ringmq/shard.h"
#include "ringmq/store.h"

#define SESS_EXPIRY_NEVER 0xFFFFFFFFu

bool persist_gating(const struct shard *s)
{
	return s->b->store && s->b->cfg->durability == DURABILITY_SYNC;
}

bool persist_failing(const struct shard *s)
{
	return s->b->store && atomic_load_explicit(&store_stats(s->b->store)->failing, memory_order_relaxed);
}

/* ------------------------------------------------------------ op writing */

static struct store_batch *batch(struct shard *s)
{
	struct persist_shard *ps = &s->ps;

	if (!ps->cur && !(ps->cur = store_batch_new(s->id)))
		log_error(NULL, "store: out of memory for a change batch");
	return ps->cur;
}

/* Begin an op; NULL when there is no batch. */
static struct rec_buf *op_begin(struct shard *s, uint8_t type, uint8_t db, size_t *ret_at)
{
	struct store_batch *b = batch(s);

	if (!b)
		return NULL;
	*ret_at = rec_op_begin(&b->ops, type, db);
	return &b->ops;
}

/* End an op; an op cut short by an allocation failure is taken back whole. */
static void op_end(struct shard *s, struct rec_buf *ops, size_t at)
{
	if (ops->oom) {
		ops->len = at;
		ops->oom = false;
		log_error(NULL, "store: out of memory: a change was not recorded");
		return;
	}
	rec_op_end(ops, at);
	(void)s;
}

static void key_id(struct rec_buf *ops, const struct sess *se)
{
	uint8_t k[RECORD_KEY_MAX];
	size_t n = rec_key_id(k, (const uint8_t *)se->client_id, se->id_len);

	rec_buf_reserve(ops, n);
	if (!ops->oom) {
		memcpy(ops->p + ops->len, k, n);
		ops->len += n;
	}
}

static void key_more(struct rec_buf *ops, const uint8_t *k, size_t n)
{
	rec_buf_reserve(ops, n);
	if (!ops->oom) {
		memcpy(ops->p + ops->len, k, n);
		ops->len += n;
	}
}

static uint64_t to_wall(const struct shard *s, uint64_t mono_ms)
{
	if (!mono_ms)
		return 0;
	return store_wall_ms() + (mono_ms > s->now_ms ? mono_ms - s->now_ms : 0);
}

/* -------------------------------------------------------- change records */

void persist_sess_put(struct shard *s, struct sess *se)
{
	struct rec_sess rs = {0};
	struct rec_buf *ops;
	size_t at;

	if (!s->b->store)
		return;
	if (se->expiry_s == 0) {
		persist_sess_del(s, se); /* not (or no longer) a session that outlives its connection */
		return;
	}
	rs.client_id.ptr = (const uint8_t *)se->client_id;
	rs.client_id.len = se->id_len;
	rs.version = se->version;
	rs.expiry_s = se->expiry_s;
	if (!se->conn)
		rs.offline_wall_ms = store_wall_ms() - (s->now_ms - se->offline_since_ms);
	if (se->username) {
		rs.has_username = true;
		rs.username.ptr = (const uint8_t *)se->username;
		rs.username.len = (uint32_t)strlen(se->username);
	}
	if (se->will) {
		rs.has_will = true;
		rs.will = se->will;
		rs.will_delay_s = se->will_delay_s;
		rs.will_expiry_wall_ms = to_wall(s, se->will->expiry_at_ms);
	}
	if (!(ops = op_begin(s, REC_OP_PUT, REC_DB_SESS, &at)))
		return;
	key_id(ops, se);
	rec_op_key_done(ops, at);
	rec_put_sess(ops, &rs);
	op_end(s, ops, at);
	se->stored = true;
}

void persist_sess_del(struct shard *s, struct sess *se)
{
	struct rec_buf *ops;
	size_t at;

	if (!s->b->store || !se->stored)
		return;
	se->stored = false;
	if (!(ops = op_begin(s, REC_OP_DEL_SESSION, REC_DB_SESS, &at)))
		return;
	key_id(ops, se);
	rec_op_key_done(ops, at);
	op_end(s, ops, at);
}

static void sub_key(struct rec_buf *ops, const struct sess *se, const uint8_t *f, uint16_t len)
{
	uint8_t k[RECORD_KEY_MAX];

	key_id(ops, se);
	key_more(ops, k, rec_key_name(k, f, len));
}

void persist_sub_put(struct shard *s, struct sess *se, const uint8_t *f, uint16_t len, uint8_t options,
		     uint32_t sub_id)
{
	struct rec_sub sub = {.filter = {.ptr = f, .len = len}, .options = options, .sub_id = sub_id};
	struct rec_buf *ops;
	size_t at;

	if (!s->b->store || !se->stored || !(ops = op_begin(s, REC_OP_PUT, REC_DB_SUB, &at)))
		return;
	sub_key(ops, se, f, len);
	rec_op_key_done(ops, at);
	rec_put_sub(ops, &sub);
	op_end(s, ops, at);
}

void persist_sub_del(struct shard *s, struct sess *se, const uint8_t *f, uint16_t len)
{
	struct rec_buf *ops;
	size_t at;

	if (!s->b->store || !se->stored || !(ops = op_begin(s, REC_OP_DEL, REC_DB_SUB, &at)))
		return;
	sub_key(ops, se, f, len);
	rec_op_key_done(ops, at);
	op_end(s, ops, at);
}

static void seq_key(struct rec_buf *ops, const struct sess *se, uint64_t seq)
{
	uint8_t k[8];

	key_id(ops, se);
	key_more(ops, k, rec_key_u64(k, seq));
}

void persist_deliv_put(struct shard *s, struct sess *se, struct deliv *d)
{
	struct rec_deliv rd = {0};
	struct rec_buf *ops;
	size_t at;

	if (!s->b->store || !se->stored || d->qos == 0 || d->seq)
		return;
	if (!(ops = op_begin(s, REC_OP_PUT, REC_DB_DELIV, &at)))
		return;
	d->seq = ++se->next_seq;
	d->op_at = (uint32_t)at;
	d->op_batch = s->ps.batch_no;
	rd.state = d->state;
	rd.pid = d->state ? d->pid : 0;
	rd.qos = d->qos;
	rd.retain = d->retain;
	rd.share_id = d->share_id;
	rd.nsubids = d->nsubids;
	if (d->nsubids)
		memcpy(rd.subids, d->subids, d->nsubids * sizeof(*d->subids));
	rd.expiry_wall_ms = to_wall(s, d->m->expiry_at_ms);
	seq_key(ops, se, d->seq);
	rec_op_key_done(ops, at);
	rec_put_deliv(ops, &rd, d->m);
	if (ops->oom) {
		d->seq = 0;
		se->next_seq--;
	}
	op_end(s, ops, at);
}

void persist_deliv_flow(struct shard *s, struct sess *se, struct deliv *d)
{
	struct rec_flow f = {.state = d->state, .pid = d->pid};
	struct rec_buf *ops;
	size_t at;

	if (!s->b->store || !d->seq || !se->stored)
		return;
	if (!(ops = op_begin(s, REC_OP_PUT, REC_DB_FLOW, &at)))
		return;
	seq_key(ops, se, d->seq);
	rec_op_key_done(ops, at);
	rec_put_flow(ops, &f);
	op_end(s, ops, at);
	d->flowed = true;
}

void persist_deliv_del(struct shard *s, struct sess *se, const struct deliv *d)
{
	struct rec_buf *ops;
	size_t at;

	if (!s->b->store || !d->seq || !se->stored)
		return;
	if (d->op_batch == s->ps.batch_no && s->ps.cur && !d->flowed && d->op_at < s->ps.cur->ops.len &&
	    s->ps.cur->ops.p[d->op_at] == REC_OP_PUT) {
		/* Delivered and acknowledged before its record left: the record is
		 * taken back and nothing reaches the disk.  (An acknowledgement
		 * waiting for this batch still waits for its commit.) */
		s->ps.cur->ops.p[d->op_at] = REC_OP_NOP;
		return;
	}
	for (int db = REC_DB_DELIV; db <= (d->flowed ? REC_DB_FLOW : REC_DB_DELIV); db++) {
		if (!(ops = op_begin(s, REC_OP_DEL, (uint8_t)db, &at)))
			return;
		seq_key(ops, se, d->seq);
		rec_op_key_done(ops, at);
		op_end(s, ops, at);
	}
}

void persist_q2in(struct shard *s, struct sess *se, uint16_t pid, bool on)
{
	struct rec_buf *ops;
	uint8_t k[2];
	size_t at;

	if (!s->b->store || !se->stored)
		return;
	if (!(ops = op_begin(s, on ? REC_OP_PUT : REC_OP_DEL, REC_DB_Q2IN, &at)))
		return;
	key_id(ops, se);
	key_more(ops, k, rec_key_u16(k, pid));
	rec_op_key_done(ops, at);
	if (on)
		rec_put_q2in(ops);
	op_end(s, ops, at);
}

void persist_retain(struct shard *s, const struct msg *m)
{
	uint8_t k[RECORD_KEY_MAX];
	struct rec_buf *ops;
	size_t at;
	bool del = m->payload.len == 0;

	if (!s->b->store || !(ops = op_begin(s, del ? REC_OP_DEL : REC_OP_PUT, REC_DB_RETAIN, &at)))
		return;
	key_more(ops, k, rec_key_name(k, m->topic.ptr, m->topic.len));
	rec_op_key_done(ops, at);
	if (!del)
		rec_put_retain(ops, m, to_wall(s, m->expiry_at_ms));
	op_end(s, ops, at);
}

/* ------------------------------------------------------- acknowledgements */

size_t persist_mark(const struct shard *s)
{
	return s->ps.cur ? s->ps.cur->ops.len : 0;
}

static struct persist_ack *ack_at(struct persist_shard *ps, uint32_t i)
{
	return &ps->acks[(ps->ack_head + i) & (ps->ack_cap - 1)];
}

static struct persist_ack *ack_push(struct persist_shard *ps)
{
	if (ps->ack_len == ps->ack_cap) {
		uint32_t cap = ps->ack_cap ? ps->ack_cap * 2 : 64;
		struct persist_ack *n = malloc(cap * sizeof(*n));
		if (!n)
			return NULL;
		for (uint32_t i = 0; i < ps->ack_len; i++)
			n[i] = *ack_at(ps, i);
		free(ps->acks);
		ps->acks = n;
		ps->ack_head = 0;
		ps->ack_cap = cap;
	}
	ps->ack_len++;
	return ack_at(ps, ps->ack_len - 1);
}

/* A failed acknowledgement: MQTT 5 hears 0x97 (the message may not be
 * kept), MQTT 3 cannot be told and loses the connection unacknowledged, so
 * it sends the message again.  A QoS 2 packet id is released either way. */
static void ack_failed(struct shard *s, struct conn *c, const struct persist_ack *a)
{
	struct sess *se = c->sess;

	if (a->qos2 && se && se->qos2_in && (se->qos2_in[a->pid >> 6] >> (a->pid & 63) & 1)) {
		se->qos2_in[a->pid >> 6] &= ~(UINT64_C(1) << (a->pid & 63));
		if (c->qos2_in_count)
			c->qos2_in_count--;
		persist_q2in(s, se, a->pid, false);
	}
	if (c->version == MQTT_V5) {
		publish_send_ack(s, c, a->type, a->pid, MQTT_RC_QUOTA_EXCEEDED);
		return;
	}
	conn_close(s, c, MQTT_RC_QUOTA_EXCEEDED, false, "the store could not keep a PUBLISH: not acknowledged");
}

/* Send every acknowledgement at the head whose parts are all in. */
static void release(struct shard *s)
{
	struct persist_shard *ps = &s->ps;

	while (ps->ack_len && ack_at(ps, 0)->parts == 0) {
		struct persist_ack a = *ack_at(ps, 0);
		struct conn *c = conn_lookup(s, UD_PACK(OP_SEND, a.gen, a.slot));

		ps->ack_head = (ps->ack_head + 1) & (ps->ack_cap - 1);
		ps->ack_len--;
		if (!c || c->state > CONN_FLUSHING || !c->sess)
			continue; /* gone: the client sends it again */
		if (a.status < 0 && a.type != MQTT_PUBCOMP)
			ack_failed(s, c, &a);
		else
			publish_send_ack(s, c, a.type, a.pid, a.reason);
	}
}

void persist_ack_in(struct shard *s, uint64_t ticket, int status)
{
	struct persist_shard *ps = &s->ps;
	struct persist_ack *a;
	uint64_t first;

	if (!ps->ack_len)
		return;
	first = ack_at(ps, 0)->ticket;
	if (ticket < first)
		return; /* stale */
	/* Tickets ascend; they are consecutive unless an entry could not be
	 * allocated (ack_add), so the guess is checked and a search follows. */
	if (ticket - first < ps->ack_len && ack_at(ps, (uint32_t)(ticket - first))->ticket == ticket) {
		a = ack_at(ps, (uint32_t)(ticket - first));
	} else {
		uint32_t lo = 0, hi = ps->ack_len;
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			if (ack_at(ps, mid)->ticket < ticket)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == ps->ack_len || ack_at(ps, lo)->ticket != ticket)
			return; /* stale, or its entry was never made */
		a = ack_at(ps, lo);
	}
	if (status < 0 && a->status == 0)
		a->status = (int8_t)(status == -ENOSPC ? -ENOSPC : -EIO);
	if (a->parts)
		a->parts--;
	release(s);
}

/* This shard's records for ticket (@origin, @ticket) are in the current
 * batch if it grew since @mark: wait for its commit; else answer now. */
static void part(struct shard *s, uint32_t origin, uint64_t ticket, size_t mark);

void persist_ack_open(struct shard *s)
{
	struct persist_shard *ps = &s->ps;

	ps->ctx.on = true;
	ps->ctx.origin = s->id;
	ps->ctx.ticket = ++ps->next_ticket;
	ps->ctx.sent = 0;
	ps->ctx.mark = persist_mark(s);
}

bool persist_ack_carries(const struct shard *s, const struct msg *m)
{
	const struct persist_shard *ps = &s->ps;

	/* A shard that received the message owes its origin one part, so it
	 * may pass that part on once (a shared group's forward); copies beyond
	 * that (redeliveries of a session ending meanwhile) go unflagged. */
	return ps->ctx.on && m->ack_ticket == ps->ctx.ticket && m->ack_origin == ps->ctx.origin &&
	       (ps->ctx.origin == s->id || ps->ctx.sent == 0);
}

void persist_ack_sent(struct shard *s)
{
	s->ps.ctx.sent++;
}

static void ack_add(struct shard *s, struct conn *c, uint64_t ticket, uint8_t type, uint16_t pid, uint8_t reason,
		    uint16_t parts, bool qos2)
{
	struct persist_ack *a = ack_push(&s->ps);

	if (!a) {
		log_error(c->client_id, "out of memory: acknowledging without waiting for the store");
		publish_send_ack(s, c, type, pid, reason);
		return;
	}
	*a = (struct persist_ack){.ticket = ticket, .slot = c->slot, .gen = c->gen, .pid = pid, .parts = parts,
				  .type = type, .reason = reason, .qos2 = qos2, .since_ms = s->now_ms};
}

void persist_ack_close(struct shard *s, struct conn *c, uint8_t type, uint16_t pid, uint8_t reason, bool qos2)
{
	struct persist_shard *ps = &s->ps;
	uint64_t ticket = ps->ctx.ticket;
	size_t mark = ps->ctx.mark;

	ps->ctx.on = false;
	ack_add(s, c, ticket, type, pid, reason, (uint16_t)(ps->ctx.sent + 1), qos2);
	part(s, s->id, ticket, mark);
	release(s);
}

void persist_ack_queue(struct shard *s, struct conn *c, uint8_t type, uint16_t pid, uint8_t reason, size_t mark)
{
	uint64_t ticket = ++s->ps.next_ticket;

	ack_add(s, c, ticket, type, pid, reason, 1, false);
	part(s, s->id, ticket, mark);
	release(s);
}

void persist_item_begin(struct shard *s, const struct msg *m)
{
	struct persist_shard *ps = &s->ps;

	ps->ctx.on = true;
	ps->ctx.origin = m->ack_origin;
	ps->ctx.ticket = m->ack_ticket;
	ps->ctx.sent = 0;
	ps->ctx.mark = persist_mark(s);
}

void persist_item_end(struct shard *s)
{
	struct persist_shard *ps = &s->ps;

	ps->ctx.on = false;
	RMQ_ASSERT(ps->ctx.sent <= 1); /* persist_ack_carries() lets one flagged copy go on */
	if (ps->ctx.sent == 0)
		part(s, ps->ctx.origin, ps->ctx.ticket, ps->ctx.mark);
}

/* Answer one part to its origin. */
static void answer(struct shard *s, uint32_t origin, uint64_t ticket, int status)
{
	struct spsc_item it = {.op = SHARD_OP_ACK, .arg = (uint32_t)status, .ptr = (void *)(uintptr_t)ticket};

	if (origin == s->id) {
		persist_ack_in(s, ticket, status);
		return;
	}
	if (shard_send(s, origin, &it) < 0) {
		/* The origin's ring and backlog are full: it hears nothing, and its
		 * client repeats the PUBLISH after reconnecting. */
		log_error(NULL, "store: acknowledgement part for shard %u lost (its ring is full)", origin);
	}
}

static void part(struct shard *s, uint32_t origin, uint64_t ticket, size_t mark)
{
	struct store_token t = {.origin = origin, .ticket = ticket};

	if (persist_mark(s) > mark && store_batch_token(s->ps.cur, t))
		return;
	answer(s, origin, ticket, 0);
}

void persist_sweep(struct shard *s)
{
	struct persist_shard *ps = &s->ps;
	bool logged = false;

	while (ps->ack_len && ack_at(ps, 0)->parts && s->now_ms - ack_at(ps, 0)->since_ms >= STORE_ACK_TIMEOUT_MS) {
		struct persist_ack *a = ack_at(ps, 0);
		if (!logged)
			log_error(NULL, "store: acknowledgements waited %u ms for commits: given up as failed",
				  STORE_ACK_TIMEOUT_MS);
		logged = true;
		a->parts = 0;
		a->status = -EIO;
		release(s); /* later answers for it are stale and ignored */
	}
}

/* ------------------------------------------------------------- the loop */

static void submit(struct shard *s, bool force);

void persist_turn_end(struct shard *s)
{
	submit(s, false);
}

static void wake_store(struct shard *s)
{
	shard_wake_fd(s, store_ring_fd(s->b->store));
}

static void submit(struct shard *s, bool force)
{
	struct persist_shard *ps = &s->ps;
	struct store *st = s->b->store;

	if (!st)
		return;
	while (ps->pending) {
		struct store_batch *b = ps->pending, *next = b->next;
		int w;
		b->next = NULL;
		w = store_submit(st, s->id, b);
		if (w < 0) {
			b->next = next;
			break;
		}
		if (w == 1)
			wake_store(s);
		ps->pending = next;
	}
	/* One batch at the store at a time: while it commits, the next one
	 * grows, and a delivery acknowledged meanwhile never reaches the disk. */
	if (ps->cur && ps->cur->ops.len && (ps->at_store == 0 || force || persist_failing(s))) {
		struct store_batch *b = ps->cur;
		int w = ps->pending ? -EAGAIN : store_submit(st, s->id, b);
		ps->cur = NULL;
		ps->batch_no++;
		ps->at_store++;
		if (w == 1)
			wake_store(s);
		if (w < 0) {
			struct store_batch **tail = &ps->pending;
			while (*tail)
				tail = &(*tail)->next;
			*tail = b;
		}
	}
}

void persist_drain(struct shard *s)
{
	struct store *st = s->b->store;
	struct store_batch *b;

	if (!st)
		return;
	while ((b = store_done(st, s->id))) {
		if (!b->answer_only)
			s->ps.at_store--; /* a failed commit answers early and keeps the batch (store.c) */
		for (uint32_t i = 0; i < b->ntok; i++)
			answer(s, b->tokens[i].origin, b->tokens[i].ticket, b->status);
		if (!s->ps.cur) {
			b->ops.len = 0;
			b->ntok = 0;
			b->status = 0;
			b->answer_only = false;
			s->ps.cur = b; /* reused for the next turn */
		} else {
			store_batch_free(b);
		}
	}
}

bool persist_idle(struct shard *s)
{
	return !s->b->store || (store_done_idle(s->b->store, s->id) && !s->ps.pending);
}

void persist_shard_fini(struct shard *s)
{
	struct persist_shard *ps = &s->ps;

	submit(s, true); /* the last changes go to the store, which commits them when it stops */
	while (ps->pending) {
		struct store_batch *b = ps->pending;
		ps->pending = b->next;
		log_error(NULL, "store: ring full at shutdown: %zu bytes of changes not committed", b->ops.len);
		store_batch_free(b);
	}
	store_batch_free(ps->cur);
	ps->cur = NULL;
	free(ps->acks);
	ps->acks = NULL;
	ps->ack_len = ps->ack_cap = 0;
}
