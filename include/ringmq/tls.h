/*
 * tls.h - TLS for MQTT listeners: wolfSSL over the connection's own buffers.
 *
 * wolfSSL never touches a socket: its I/O callbacks read ciphertext from a
 * buffer the shard fills from io_uring completions, and write ciphertext
 * into a buffer the shard sends with io_uring.  So a handshake never blocks
 * a shard, and TLS connections use the same loop, limits and close path as
 * plain ones.
 *
 * Certificates are reloaded without dropping anyone: a tls_ctx holds the
 * listener's current WOLFSSL_CTX behind an RCU pointer.  A reload builds a
 * complete new WOLFSSL_CTX from the files, swaps the pointer, waits for a
 * QSBR grace period and drops the main thread's reference to the old one.
 * wolfSSL counts the sessions made from a context (wolfSSL_new takes a
 * reference, wolfSSL_free drops it), so sessions already established keep
 * theirs until they end, and new handshakes use the new files.  A reload
 * that fails changes nothing.
 *
 * Owner:    struct tls_ctx - main (one per TLS listener), created before the
 *           shards start; only main reloads it (tls_ctx_reload).
 *           struct tls_conn - the connection that holds it, on its shard;
 *           it moves with a hand-off to the home shard (one owner at a time).
 * Lifetime: tls_ctx_new() .. tls_ctx_free() after the shards stopped; a
 *           replaced WOLFSSL_CTX lives on until its last session is freed.
 *           tls_conn_new() .. tls_conn_free() with the connection.
 * Shared:   tls_ctx's context pointer: written by main (rcu_xchg_pointer),
 *           read by the shards (rcu_dereference) inside their QSBR read
 *           side, i.e. anywhere in a loop turn; the rest is main's only.
 *           tls_conn never.
 */
#ifndef RINGMQ_TLS_H
#define RINGMQ_TLS_H

#include <stdbool.h>
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
	uint8_t identity; /* enum tls_identity of the listener: what tls_conn_identity() returns */
};

/* Which name of the client certificate is the MQTT username. */
enum tls_identity {
	TLS_IDENTITY_NONE = 0,
	TLS_IDENTITY_CN = 1, /* use_identity_as_username: the subject's CN */
	TLS_IDENTITY_SUBJECT = 2, /* use_subject_as_username: the whole subject, RFC 2253 */
};

/** tls_global_init() - once per process before any context. */
int tls_global_init(void);

/**
 * tls_thread_done() - a thread that ran handshakes (a shard) or loaded
 * certificates (main) ends: frees wolfSSL's per-thread ECC fixed-point
 * cache (FP_ECC builds such as Debian's), which nothing else frees.
 */
void tls_thread_done(void);

/**
 * tls_ctx_new() - the context of a TLS listener (@l has certfile/keyfile).
 * @l is borrowed for the context's whole life (reloads read it again).
 * Errors name the directive, the file and what is wrong, with wolfSSL's
 * reason, in @err (512 bytes).
 */
int tls_ctx_new(const struct config_listener *l, struct tls_ctx **ret, char *err);
struct tls_ctx *tls_ctx_free(struct tls_ctx *t);

/**
 * tls_ctx_reload() - main thread only, never from a shard (it waits for an
 * RCU grace period).  Without @force, reloads when the listener's files
 * (certfile, keyfile, cafile, capath, crlfile: inode, size, times) changed
 * and then stayed unchanged for one more call, so a file still being
 * written is not read half-way; with @force (SIGHUP), reloads now.
 * Returns 1 when a new context is in use, 0 when nothing changed (or a
 * change is settling), or -EINVAL with why in @err (512 bytes): the
 * previous context stays in use, and the same files are not tried again
 * until they change.
 */
int tls_ctx_reload(struct tls_ctx *t, bool force, char *err);

/** tls_conn_new() - a server session for a new connection, from the
 * listener's current context; NULL on ENOMEM.  Shard threads only. */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx);
struct tls_conn *tls_conn_free(struct tls_conn *t);

/**
 * tls_conn_identity() - after the handshake, the username the client
 * certificate gives under the listener's use_identity_as_username /
 * use_subject_as_username, into @buf (@len bytes, NUL-terminated).
 * Returns 0; -ENOENT when the listener uses neither, or there is no
 * certificate or no CN; -ENAMETOOLONG when it does not fit in @len or is
 * over TLS_IDENTITY_BYTES_MAX.
 */
int tls_conn_identity(struct tls_conn *t, char *buf, size_t len);

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
