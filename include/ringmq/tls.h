/*
 * tls.h - TLS for MQTT listeners: wolfSSL over the connection's own buffers.
 *
 * wolfSSL never touches a socket: its I/O callbacks read ciphertext from a
 * buffer the shard fills from io_uring completions, and write ciphertext
 * into a buffer the shard sends with io_uring.  So a handshake never blocks
 * a shard, and TLS connections use the same loop, limits and close path as
 * plain ones.
 *
 * Owner:    struct tls_ctx - main (one per TLS listener), created before the
 *           shards start, read-only afterwards (wolfSSL contexts may be
 *           shared by threads creating sessions from them).
 *           struct tls_conn - the connection that holds it, on its shard;
 *           it moves with a hand-off to the home shard (one owner at a time).
 * Lifetime: tls_ctx_new() .. tls_ctx_free() after the shards stopped;
 *           tls_conn_new() .. tls_conn_free() with the connection.
 * Shared:   tls_ctx read-only by all shards; tls_conn never.
 */
#ifndef RINGMQ_TLS_H
#define RINGMQ_TLS_H

#include <stddef.h>
#include <stdint.h>

struct config_listener;
struct tls_ctx;

/* Ciphertext not yet consumed by wolfSSL is bounded: a peer that sends
 * faster than records are processed is read no further until it is. */
#define TLS_CIPHER_IN_BYTES_MAX (256u * 1024u)

struct tls_buf {
	uint8_t *data;
	uint32_t len, cap, off;
};

struct tls_conn {
	void *ssl; /* WOLFSSL * */
	struct tls_buf in; /* ciphertext received, from off */
	struct tls_buf out; /* ciphertext to send */
	int handshake_done;
	char peer_cn[128]; /* client certificate CN, when one was presented */
};

/** tls_global_init() - once per process before any context. */
int tls_global_init(void);

/**
 * tls_ctx_new() - the context of a TLS listener (@l has certfile/keyfile).
 * Errors name the file and what is wrong in @err (512 bytes).
 */
int tls_ctx_new(const struct config_listener *l, struct tls_ctx **ret, char *err);
struct tls_ctx *tls_ctx_free(struct tls_ctx *t);

/** tls_conn_new() - a server session for a new connection; NULL on ENOMEM. */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx);
struct tls_conn *tls_conn_free(struct tls_conn *t);

/**
 * tls_in_room() - at least @min bytes of free space at the end of the
 * ciphertext input (for a recv to write into); *ret_len gets all of it.
 * Returns 0 or -ENOBUFS past TLS_CIPHER_IN_BYTES_MAX.
 */
int tls_in_room(struct tls_conn *t, uint32_t min, uint8_t **ret_p, uint32_t *ret_len);

/** tls_feed() - append received ciphertext.  Returns 0 or -ENOBUFS (over the bound). */
int tls_feed(struct tls_conn *t, const uint8_t *p, size_t n);

/**
 * tls_read() - run the handshake and decrypt into @buf.  Returns the
 * plaintext bytes (> 0), 0 when more ciphertext is needed, or < 0 on a
 * fatal error with a cause in words in @why (256 bytes).  Output the
 * handshake produced is in t->out.
 */
int tls_read(struct tls_conn *t, uint8_t *buf, size_t cap, char *why);

/** tls_write() - encrypt @n bytes into t->out.  Returns 0 or < 0 (why in @why). */
int tls_write(struct tls_conn *t, const uint8_t *p, size_t n, char *why);

#endif
