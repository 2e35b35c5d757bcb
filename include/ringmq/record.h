/*
 * record.h - the store's record formats: keys and values of every LMDB
 * database, and the operation stream a shard hands to the store thread.
 * Pure functions over bytes: no LMDB, no I/O, no shared state (fuzzed by
 * tests/fuzz/fuzz_record.c).
 *
 * Every value is framed:
 *   u8 format (RECORD_FORMAT), u8 kind (enum rec_kind), body, u32 CRC-32C
 *   of everything before it (little endian).
 * A reader checks all four: a value with a newer format is refused (the
 * store will not start on it); a bad kind, a bad checksum or a body that
 * does not parse exactly is reported as corrupt and skipped.
 * Integers in bodies are little endian; strings are u32 length + bytes.
 *
 * Keys (LMDB keys are at most RECORD_KEY_MAX bytes):
 *   retained  topic part
 *   sessions  client-id part
 *   subs      client-id part + filter part
 *   deliv     client-id part + u64 big-endian sequence number
 *   flow      client-id part + u64 big-endian sequence number
 *   qos2in    client-id part + u16 big-endian packet id
 * A "part" is u16 big-endian original length + the bytes; longer than its
 * limit, the bytes are cut and an 8-byte FNV-1a hash of the whole string
 * follows, so long names stay distinct (values always hold the full
 * strings).  The length prefix keeps one client's keys from being a
 * prefix of another's, so a session's records are one key range.
 *
 * Owner/Lifetime/Shared: pure functions; decoded views point into the
 * caller's bytes and live as long as they do.
 */
#ifndef RINGMQ_RECORD_H
#define RINGMQ_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringmq/msg.h"

#define RECORD_FORMAT 1u
#define RECORD_KEY_MAX 511u /* LMDB's default maximum key size */
#define RECORD_ID_PART_MAX 200u /* client-id bytes kept in a key */
#define RECORD_NAME_PART_MAX 280u /* topic / filter bytes kept in a key */

enum rec_db {
	REC_DB_META = 0,
	REC_DB_RETAIN = 1,
	REC_DB_SESS = 2,
	REC_DB_SUB = 3,
	REC_DB_DELIV = 4,
	REC_DB_FLOW = 5,
	REC_DB_Q2IN = 6,
	REC_DB_COUNT = 7,
};

/** rec_db_name() - the LMDB database name of @db. */
const char *rec_db_name(unsigned db);

enum rec_kind {
	REC_KIND_META = 1,
	REC_KIND_RETAIN = 2,
	REC_KIND_SESS = 3,
	REC_KIND_SUB = 4,
	REC_KIND_DELIV = 5,
	REC_KIND_FLOW = 6,
	REC_KIND_Q2IN = 7,
};

/* Decoding results. */
#define REC_OK 0
#define REC_CORRUPT (-1) /* bad frame, checksum or body: skip it */
#define REC_NEWER (-2) /* written by a newer ringmq: refuse to start */

/* A growable byte buffer; every writer sets `oom` instead of failing. */
struct rec_buf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};

void rec_buf_reserve(struct rec_buf *b, size_t n);
void rec_buf_free(struct rec_buf *b);

/* ---- keys ---- */

/** rec_key_id() - the client-id part of a key; returns its length. @dst holds RECORD_KEY_MAX. */
size_t rec_key_id(uint8_t *dst, const uint8_t *id, size_t len);
/** rec_key_name() - append the topic/filter part at @dst; returns its length. */
size_t rec_key_name(uint8_t *dst, const uint8_t *name, size_t len);
/** rec_key_u64()/rec_key_u16() - append a big-endian number; return its length. */
size_t rec_key_u64(uint8_t *dst, uint64_t v);
size_t rec_key_u16(uint8_t *dst, uint16_t v);

/* ---- values ---- */

/* A session as stored (the will and username are views).  struct msg has a
 * flexible array, so records point at one instead of holding it. */
struct rec_sess {
	struct mqtt_str client_id;
	uint8_t version; /* MQTT protocol level */
	uint32_t expiry_s;
	uint64_t offline_wall_ms; /* CLOCK_REALTIME ms it went offline; 0 = it was online */
	bool has_username;
	struct mqtt_str username;
	bool has_will;
	uint32_t will_delay_s;
	struct msg *will; /* encoding: the will; decoding: where its view goes (set by the caller) */
	uint64_t will_expiry_wall_ms;
};

struct rec_sub {
	struct mqtt_str filter;
	uint8_t options;
	uint32_t sub_id;
};

/* A message on its way to a session (queued: state 0, or in flight). */
struct rec_deliv {
	uint8_t state; /* enum deliv_state */
	uint16_t pid;
	uint8_t qos;
	bool retain;
	uint32_t share_id;
	uint8_t nsubids;
	uint32_t subids[MQTT_SUBIDS_MAX];
	struct msg *m; /* decoding: where the message's view goes (set by the caller) */
	uint64_t expiry_wall_ms;
};

struct rec_flow {
	uint8_t state;
	uint16_t pid;
};

/*
 * Encoders append one framed value to @b.  Message expiry is given as
 * CLOCK_REALTIME ms (0 = never) so it keeps counting across downtime.
 */
void rec_put_retain(struct rec_buf *b, const struct msg *m, uint64_t expiry_wall_ms);
void rec_put_sess(struct rec_buf *b, const struct rec_sess *rs);
void rec_put_sub(struct rec_buf *b, const struct rec_sub *sub);
void rec_put_deliv(struct rec_buf *b, const struct rec_deliv *d, const struct msg *m);
void rec_put_flow(struct rec_buf *b, const struct rec_flow *f);
void rec_put_q2in(struct rec_buf *b);
void rec_put_meta_u64(struct rec_buf *b, uint64_t v);

/* Decoders: REC_OK, REC_CORRUPT or REC_NEWER. */
int rec_get_retain(const uint8_t *p, size_t n, struct msg *ret_m, uint64_t *ret_expiry_wall_ms);
int rec_get_sess(const uint8_t *p, size_t n, struct rec_sess *ret);
int rec_get_sub(const uint8_t *p, size_t n, struct rec_sub *ret);
int rec_get_deliv(const uint8_t *p, size_t n, struct rec_deliv *ret);
int rec_get_flow(const uint8_t *p, size_t n, struct rec_flow *ret);
int rec_get_q2in(const uint8_t *p, size_t n);
int rec_get_meta_u64(const uint8_t *p, size_t n, uint64_t *ret);

/**
 * rec_check() - validate the value @p/@n found in database @db (frame,
 * checksum, body).  Used by `ringmq store check` and at restore.
 */
int rec_check(unsigned db, const uint8_t *p, size_t n);

/** rec_crc32c() - CRC-32C (Castagnoli) of @n bytes, continuing from @crc (start with 0). */
uint32_t rec_crc32c(uint32_t crc, const uint8_t *p, size_t n);
/** rec_crc32c_portable() - the same without CPU instructions (the fallback; tests compare the two). */
uint32_t rec_crc32c_portable(uint32_t crc, const uint8_t *p, size_t n);

/* ---- the operation stream (shard -> store thread) ----
 * One op: u8 type, u8 db, u16 key length (little endian), u32 value
 * length (little endian), key, value.  REC_OP_DEL_SESSION deletes the
 * session's record and every key that starts with the op's key (the
 * client-id part) in every per-session database.  REC_OP_NOP is an op the
 * shard took back before the batch left (a delivery acknowledged at once):
 * its bytes stay in the stream and the writer skips it.  Decoders write
 * their outputs only when they return success. */
enum rec_op_type {
	REC_OP_PUT = 1,
	REC_OP_DEL = 2,
	REC_OP_DEL_SESSION = 3,
	REC_OP_NOP = 4, /* an op taken back before the batch left (skipped) */
};

#define REC_OP_HEADER 8u

/** rec_op_begin() - start an op; write the key and value after it, then call rec_op_end(). */
size_t rec_op_begin(struct rec_buf *b, uint8_t type, uint8_t db);
/** rec_op_key_done() - the key ends here (bytes since rec_op_begin's header). */
void rec_op_key_done(struct rec_buf *b, size_t at);
void rec_op_end(struct rec_buf *b, size_t at);

struct rec_op {
	uint8_t type, db;
	const uint8_t *key;
	uint16_t klen;
	const uint8_t *val;
	uint32_t vlen;
};

/**
 * rec_op_next() - decode the op at *@off in @p/@n and advance *@off.
 * Returns 1 for an op, 0 at the end, REC_CORRUPT for a malformed stream
 * (also when *@off is past @n).
 */
int rec_op_next(const uint8_t *p, size_t n, size_t *off, struct rec_op *ret);

#endif
