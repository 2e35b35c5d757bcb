/*
 * run.c - build and free the state of one run: workers, connections,
 * publishers and subscribers.
 *
 * Everything is allocated up front, before any thread starts, so the hot
 * paths never allocate except to grow a connection's buffers.  Client i
 * of each kind goes to worker i mod threads; publisher i and subscriber i
 * of a pairs run therefore share a worker, and the end-to-end credit of
 * a pair never crosses threads.  Each worker's connection array holds its
 * subscribers first, then its publishers (or its idle / handshake slots).
 * With cfg.tls each worker gets its own wolfSSL client context and each
 * connection its TLS state here too, so a bad `ca` file stops the run
 * before anything connects.
 */
#include "bench.h"
#include "ctls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringmq/mqtt.h"

static bool pubsub(const struct scenario *cfg)
{
	return cfg->layout != LAYOUT_IDLE && cfg->layout != LAYOUT_CONNECT;
}

/* How many of @n items part @part of @parts receives (round robin). */
static uint32_t share(uint32_t n, uint32_t parts, uint32_t part)
{
	return n / parts + (part < n % parts ? 1 : 0);
}

static void conn_init(struct conn *c, struct worker *w, uint32_t slot, enum role role, uint32_t id)
{
	c->w = w;
	c->fd = -1;
	c->slot = slot;
	c->role = (uint8_t)role;
	c->id = id;
	c->state = CS_FREE;
}

static int sub_init(struct run *run, struct sub *s, uint32_t id)
{
	const struct scenario *cfg = &run->cfg;

	s->id = id;
	s->base = cfg->layout == LAYOUT_PAIRS ? id : 0;
	s->count = cfg->layout == LAYOUT_PAIRS ? 1 : run->npubs;
	s->next = calloc(s->count, sizeof(s->next[0]));
	return s->next ? 0 : -ENOMEM;
}

static int pub_init(struct run *run, struct pub *p, uint32_t id)
{
	const struct scenario *cfg = &run->cfg;
	uint32_t ring = 1;

	p->id = id;
	p->window = cfg->inflight;
	switch (cfg->layout) {
	case LAYOUT_FANIN:
	case LAYOUT_FANOUT:
	case LAYOUT_WILDCARD: p->expected = run->nsubs; break;
	default: p->expected = 1; break;
	}
	if (cfg->qos > 0) {
		/* Packet ids cycle through twice the window, so an id is reused
		 * only a whole window after it was acknowledged. */
		while (ring < 2 * cfg->inflight)
			ring *= 2;
		p->slot_mask = ring - 1;
		if (!(p->slot_state = calloc(ring, 1)))
			return -ENOMEM;
	}
	return proto_pub_init(run, p);
}

static int worker_init(struct run *run, struct worker *w, uint32_t idx)
{
	const struct scenario *cfg = &run->cfg;
	uint32_t nsubs = share(run->nsubs, run->nworkers, idx);
	uint32_t npubs = share(run->npubs, run->nworkers, idx);
	uint32_t n = 0;

	w->run = run;
	w->idx = idx;
	w->phase = -1;
	atomic_init(&w->ring_fd, -1);
	w->nconns = pubsub(cfg) ? nsubs + npubs : share(cfg->connections, run->nworkers, idx);
	w->conns = calloc(w->nconns ? w->nconns : 1, sizeof(w->conns[0]));
	w->pubs = calloc(npubs ? npubs : 1, sizeof(w->pubs[0]));
	w->ready = calloc(npubs ? npubs : 1, sizeof(w->ready[0]));
	w->blocked = calloc(npubs ? npubs : 1, sizeof(w->blocked[0]));
	w->credit = calloc(run->npubs ? run->npubs : 1, sizeof(w->credit[0]));
	w->dirty = calloc(run->npubs ? run->npubs : 1, sizeof(w->dirty[0]));
	w->lat = hist_new();
	w->hs_lat = hist_new();
	if (!w->conns || !w->pubs || !w->ready || !w->blocked || !w->credit || !w->dirty || !w->lat ||
	    !w->hs_lat)
		return -ENOMEM;
	if (!pubsub(cfg)) {
		for (uint32_t i = 0; i < w->nconns; i++)
			conn_init(&w->conns[i], w, i, cfg->layout == LAYOUT_IDLE ? ROLE_IDLE : ROLE_HANDSHAKE,
				  i * run->nworkers + idx);
		return 0;
	}
	for (uint32_t id = idx; id < run->nsubs; id += run->nworkers, n++) {
		conn_init(&w->conns[n], w, n, ROLE_SUB, id);
		w->conns[n].sub = &run->subs[id];
		run->subs[id].c = &w->conns[n];
	}
	for (uint32_t id = idx; id < run->npubs; id += run->nworkers, n++) {
		conn_init(&w->conns[n], w, n, ROLE_PUB, id);
		w->conns[n].pub = &run->pubs[id];
		run->pubs[id].c = &w->conns[n];
		w->pubs[w->npubs++] = &run->pubs[id];
	}
	return 0;
}

/* cfg.tls: the worker's client context and every connection's TLS state;
 * the reason of a failure in @err. */
static int worker_init_tls(struct run *run, struct worker *w, char *err)
{
	int r = ctls_ctx_new(&run->cfg, &w->tls_ctx, err);

	if (r < 0)
		return r;
	for (uint32_t i = 0; i < w->nconns; i++) {
		if (!(w->conns[i].tls = ctls_new())) {
			snprintf(err, ERR_BYTES_MAX, "building the run: %s", strerror(ENOMEM));
			return -ENOMEM;
		}
	}
	return 0;
}

int run_build(struct run *run, char *err)
{
	const struct scenario *cfg = &run->cfg;
	int r;

	run->addr.sin_family = AF_INET;
	run->addr.sin_port = htons(cfg->port);
	if (inet_pton(AF_INET, cfg->host, &run->addr.sin_addr) != 1) {
		snprintf(err, ERR_BYTES_MAX, "host '%s' is not an IPv4 address", cfg->host);
		return -EINVAL;
	}
	run->run_tag = (uint64_t)getpid();
	run->npubs = pubsub(cfg) ? cfg->publishers : 0;
	run->nsubs = pubsub(cfg) ? cfg->subscribers : 0;
	if ((uint64_t)run->nsubs * (cfg->layout == LAYOUT_PAIRS ? 1 : run->npubs) > TRACK_MAX) {
		snprintf(err, ERR_BYTES_MAX, "%u subscribers x %u publishers: more than %u pairs to track",
			 run->nsubs, run->npubs, TRACK_MAX);
		return -EINVAL;
	}
	run->nworkers = cfg->threads;
	run->workers = calloc(run->nworkers, sizeof(run->workers[0]));
	run->pubs = calloc(run->npubs ? run->npubs : 1, sizeof(run->pubs[0]));
	run->subs = calloc(run->nsubs ? run->nsubs : 1, sizeof(run->subs[0]));
	r = -ENOMEM;
	if (!run->workers || !run->pubs || !run->subs)
		goto fail;
	for (uint32_t i = 0; i < run->nsubs; i++)
		if ((r = sub_init(run, &run->subs[i], i)) < 0)
			goto fail;
	for (uint32_t i = 0; i < run->npubs; i++)
		if ((r = pub_init(run, &run->pubs[i], i)) < 0)
			goto fail;
	for (uint32_t i = 0; i < run->nworkers; i++)
		if ((r = worker_init(run, &run->workers[i], i)) < 0)
			goto fail;
	if (cfg->tls) {
		r = -EIO;
		if (ctls_global_init() < 0)
			goto fail;
		run->tls_init = true;
		for (uint32_t i = 0; i < run->nworkers; i++)
			if ((r = worker_init_tls(run, &run->workers[i], err)) < 0)
				return r; /* @err says why */
	}
	run->nconns = 0;
	for (uint32_t i = 0; i < run->nworkers; i++)
		run->nconns += run->workers[i].nconns;
	return 0;
fail:
	snprintf(err, ERR_BYTES_MAX, "building the run: %s", strerror(-r));
	return r;
}

static void conn_done(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->in.data);
	free(c->out[0].data);
	free(c->out[1].data);
	c->tls = ctls_free(c->tls);
}

void run_free(struct run *run)
{
	for (uint32_t i = 0; run->workers && i < run->nworkers; i++) {
		struct worker *w = &run->workers[i];

		for (uint32_t j = 0; w->conns && j < w->nconns; j++)
			conn_done(&w->conns[j]);
		if (w->ring_ok)
			io_uring_queue_exit(&w->ring);
		w->tls_ctx = ctls_ctx_free(w->tls_ctx);
		free(w->conns);
		free(w->pubs);
		free(w->ready);
		free(w->blocked);
		free(w->credit);
		free(w->dirty);
		hist_free(w->lat);
		hist_free(w->hs_lat);
	}
	for (uint32_t i = 0; run->pubs && i < run->npubs; i++) {
		free(run->pubs[i].tmpl);
		free(run->pubs[i].slot_state);
	}
	for (uint32_t i = 0; run->subs && i < run->nsubs; i++)
		free(run->subs[i].next);
	if (run->tls_init)
		ctls_global_done();
	run->tls_init = false;
	free(run->workers);
	free(run->pubs);
	free(run->subs);
	run->workers = NULL;
	run->pubs = NULL;
	run->subs = NULL;
}
