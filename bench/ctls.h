/*
 * ctls.h - the client side of TLS in ringmq-bench: wolfSSL over a
 * connection's own buffers, inside its worker's io_uring loop.
 *
 * wolfSSL never touches a socket.  Its receive callback hands it the
 * ciphertext the worker's recv completions put in ctls.cin and answers
 * WANT_READ when that runs out; its send callback appends ciphertext to
 * ctls.wq.  So a handshake never blocks a worker, and a TLS connection
 * goes through the same states, buffers and close path as a plain one.
 *
 * How the buffers of a TLS connection are used (worker.c): proto.c keeps
 * appending plaintext to conn.out[out_cur] exactly as on a plain
 * connection; when no send is in flight, ctls_flush() encrypts all of it
 * into wq and swaps wq with conn.out[!out_cur], which the worker then
 * sends.  out_cur never flips on a TLS connection.  Received ciphertext is
 * decrypted by ctls_input() into conn.in, where proto_input() finds the
 * frames as usual.  A plain connection (conn.tls NULL) never calls into
 * this file.
 *
 * Certificates: with the `ca` key the broker's chain is verified against
 * that file (the host name is not checked); without it, nothing is
 * verified.  Every connection makes a full handshake: no session cache, no
 * resumption.
 *
 * Owner:    struct ctls - its connection's worker.  The WOLFSSL_CTX of a
 *           worker (worker.tls_ctx) - that worker; main builds it before
 *           the workers start and frees it after they joined.
 * Lifetime: ctls_new() in run_build() .. ctls_free() in run_free(); the
 *           wolfSSL session inside lives from ctls_start() (TCP connected)
 *           to ctls_reset() (slot freed), so a handshake slot of the
 *           connect layout makes a new session for every connection.
 * Shared:   never.
 */
#ifndef RINGMQ_BENCH_CTLS_H
#define RINGMQ_BENCH_CTLS_H

#include "bench.h"

/* Plaintext room asked of conn.in before each wolfSSL_read(): a record
 * larger than the room is handed out over several reads. */
#define CTLS_READ_ROOM 4096u
/* Longest wolfSSL error text kept for a failed connection. */
#define CTLS_WHY_BYTES 160u

struct ctls {
	void *ssl; /* WOLFSSL *, NULL between connections */
	struct buf cin; /* ciphertext received, consumed from cin_off */
	uint32_t cin_off;
	struct buf wq; /* ciphertext wolfSSL wrote, not yet handed to a send */
	bool established; /* the handshake completed */
	bool peer_closed; /* close_notify received */
	bool shutdown_sent; /* our close_notify is queued: no more plaintext */
};

/** ctls_global_init() / ctls_global_done() - once per process, around every other call. */
int ctls_global_init(void);
void ctls_global_done(void);

/**
 * ctls_ctx_new() - a client context for @cfg (tls_version, ca).  Returns
 * 0, or -EINVAL / -ENOMEM with the reason in @err (ERR_BYTES_MAX).
 */
int ctls_ctx_new(const struct scenario *cfg, struct WOLFSSL_CTX **ret, char *err);

/** ctls_ctx_free() - accepts NULL; returns NULL. */
struct WOLFSSL_CTX *ctls_ctx_free(struct WOLFSSL_CTX *ctx);

/** ctls_new() / ctls_free() - the per-connection state (no session yet). */
struct ctls *ctls_new(void);
struct ctls *ctls_free(struct ctls *t);

/**
 * ctls_start() - @c's TCP connect completed: a new session from the
 * worker's context, and its ClientHello in c->tls->wq.  Returns 0, or
 * -ENOMEM / -EPROTO with the reason in @why (CTLS_WHY_BYTES).
 */
int ctls_start(struct conn *c, char *why);

/**
 * ctls_recv_room() - at least @min free bytes at the end of the ciphertext
 * input (the consumed front is reused first) for the next recv to fill.
 * Returns 0 or -ENOBUFS / -ENOMEM.
 */
int ctls_recv_room(struct ctls *t, uint32_t min, uint8_t **ret_p, uint32_t *ret_len);

/**
 * ctls_input() - @n bytes of ciphertext arrived (in the room
 * ctls_recv_room() gave): advance the handshake and append every byte of
 * plaintext now available to c->in.  Returns 1; 0 when the broker sent
 * close_notify (peer_closed); or a negative errno with the reason in @why.
 */
int ctls_input(struct conn *c, uint32_t n, char *why);

/**
 * ctls_flush() - no send is in flight on @c: once the handshake is done,
 * encrypt the plaintext in c->out[c->out_cur] (and after a DISCONNECT,
 * queue close_notify), then move the pending ciphertext into
 * c->out[!c->out_cur] for the worker to send.  Returns 1 when there is
 * something to send, 0 when not, or a negative errno with @why.
 */
int ctls_flush(struct conn *c, char *why);

/** ctls_reset() - the connection closed: free the session, empty the buffers (their memory is kept). */
void ctls_reset(struct ctls *t);

/** ctls_thread_done() - a worker that ran handshakes ends (wolfSSL's per-thread ECC cache). */
void ctls_thread_done(void);

#endif
