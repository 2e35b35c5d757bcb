/*
 * prom.h - writing the Prometheus text exposition format, version 0.0.4.
 *
 * A growable text buffer and the three kinds of line the format has:
 *   # HELP name text      (text escapes \ and newline)
 *   # TYPE name type      (counter, gauge or untyped)
 *   name{label="value",...} number
 * Label values escape \, " and newline.  Metric and label names are
 * checked against [a-zA-Z_:][a-zA-Z0-9_:]* with RMQ_ASSERT: they are
 * written in the code, so a bad one is a programmer error.  Pure: no I/O,
 * no globals; the caller sends the buffer.
 *
 * Owner:    the caller (the HTTP thread, or a test).
 * Lifetime: prom_init() .. prom_done(); the data pointer is valid until the
 *           next append or prom_done().
 * Shared:   never.
 */
#ifndef RINGMQ_PROM_H
#define RINGMQ_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room for one formatted label set, e.g. {shard="12",cause="queue_full"}. */
#define PROM_LABELS_BYTES 256

struct prom_buf {
	char *data; /* NUL-terminated when len > 0 */
	size_t len, cap;
	bool oom; /* an append failed; the text is incomplete */
};

/** prom_init() - an empty buffer (allocates on the first append). */
void prom_init(struct prom_buf *b);
/** prom_done() - free the text; the buffer is empty again. */
void prom_done(struct prom_buf *b);

/** prom_family() - the HELP and TYPE lines of metric @name. */
void prom_family(struct prom_buf *b, const char *name, const char *type, const char *help);

/**
 * prom_labels() - format @n label pairs (@kv: name, value, name, value...)
 * as {a="x",b="y"} into @buf (PROM_LABELS_BYTES), escaping the values.
 * Returns @buf; a set that does not fit is an assertion failure.
 */
const char *prom_labels(char *buf, unsigned n, const char *const *kv);

/** prom_u64() / prom_double() - one sample; @labels from prom_labels() or NULL. */
void prom_u64(struct prom_buf *b, const char *name, const char *labels, uint64_t v);
void prom_double(struct prom_buf *b, const char *name, const char *labels, double v);

/** prom_name_ok() - whether @name is a valid metric or label name. */
bool prom_name_ok(const char *name);

#endif
