/*
 * bench.h - the ringmq-bench load generator: configuration, connections,
 * publishers, subscribers and worker threads.
 *
 * One process drives every client of a run.  The main thread parses the
 * scenario, creates the workers and walks the run through its phases
 * (setup, warm-up, measure, drain, stop); each worker thread owns one
 * io_uring and a fixed share of the connections and does all their I/O.
 * Publishers stamp each payload with (CLOCK_MONOTONIC ns, publisher id,
 * sequence number); subscribers read the stamp back for the end-to-end
 * latency, loss, duplicate and ordering accounting.
 *
 * Owner:    struct run is built by the main thread before the workers
 *           start and is read-only to them afterwards, except `phase`
 *           (written by main) and each pub's `credit` / `blocked` atomics.
 *           A struct worker, its conns, pubs and subs belong to that
 *           worker's thread; main reads only the `st` atomics while the
 *           workers run and everything else after they have joined.
 * Lifetime: everything is allocated in main before the workers start and
 *           freed after they joined (run_free()).
 * Shared:   pub.credit is added to by any worker (relaxed batch flushes,
 *           see worker.c), pub.blocked / worker.wake_req pair up for the
 *           cross-thread wake-up (seq_cst, Dekker style).
 */
#ifndef RINGMQ_BENCH_H
#define RINGMQ_BENCH_H

#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hist.h"

/* ------------------------------------------------------------------------
 * Limits
 * ---------------------------------------------------------------------- */

/* The payload stamp: u64 send time (ns), u32 publisher id, u32 magic,
 * u64 sequence number, in host byte order (publisher and subscriber are
 * the same process).  Payloads smaller than this cannot be measured. */
#define STAMP_BYTES 24u
#define STAMP_MAGIC 0x42514d52u /* "RMQB" */
/* Worker threads; each has its own ring, so more than cores only adds
 * context switches. */
#define THREADS_MAX 256u
/* Connections of one run: bounded by the fd limit in practice; this bound
 * keeps the per-run arrays' sizes sane. */
#define CONNS_MAX 1000000u
/* Per-publisher in-flight window.  QoS 1/2 packet ids are taken from a
 * ring of twice the window (power of two), which must fit 1..65535. */
#define INFLIGHT_MAX 16384u
#define INFLIGHT_DEFAULT 64u
/* Payload bytes; a PUBLISH may not exceed the protocol's 256 MiB. */
#define PAYLOAD_MAX (16u << 20)
#define PAYLOAD_DEFAULT 64u
/* Messages one publisher appends to its send buffer per turn, so that a
 * worker's publishers take turns and one send stays under ~1 MiB. */
#define OUT_BATCH_MAX 256u
/* Largest inbound or outbound buffer of one connection; a frame or an
 * unsent backlog beyond it is a protocol error (the peer is not reading
 * or the broker sent an absurd packet). */
#define CONN_BUF_MAX (64u << 20)
/* Receive buffer of subscribers (directive recv_buffer), of publishers
 * (acks only) and of idle / handshake connections (CONNACK, PINGRESP). */
#define RECV_BUF_DEFAULT 65536u
#define RECV_BUF_ACKS 4096u
#define RECV_BUF_SMALL 256u
/* Submission and completion queue sizes of each worker's ring. */
#define RING_ENTRIES 4096u
#define RING_CQ_ENTRIES 65536u
/* Longest a worker sleeps in io_uring_enter: how fast it notices a phase
 * change the main thread made. */
#define TICK_NS_MAX 5000000u
/* Rate mode: shortest and longest timer step between sends. */
#define RATE_TICK_NS_MIN 20000u
#define RATE_TICK_NS_MAX 1000000u
/* (subscriber, publisher) pairs whose ordering is tracked: 8 bytes each. */
#define TRACK_MAX (1u << 24)
/* Strings of the configuration. */
#define NAME_BYTES_MAX 64u
#define TOPIC_BYTES_MAX 192u
#define CLIENT_ID_BYTES_MAX 64u
#define ERR_BYTES_MAX 256u
#define PATH_BYTES_MAX 256u
/* Negotiated TLS version and suite, as the report names them. */
#define TLS_SUITE_BYTES_MAX 80u

/* ------------------------------------------------------------------------
 * Configuration (scenario files and command line share the keys)
 * ---------------------------------------------------------------------- */

enum layout {
	LAYOUT_PAIRS, /* publisher i -> topic i -> subscriber i */
	LAYOUT_FANIN, /* every publisher -> one topic -> the subscribers */
	LAYOUT_FANOUT, /* the publishers -> one topic -> every subscriber */
	LAYOUT_WILDCARD, /* publisher i -> topic i; subscribers on prefix/w/+ */
	LAYOUT_SHARED, /* publishers -> one topic -> one of $share/g members */
	LAYOUT_IDLE, /* connections only, for memory per connection */
	LAYOUT_CONNECT, /* connect / CONNACK / DISCONNECT loops */
};

enum flow {
	FLOW_E2E, /* a publisher's window counts messages not yet delivered */
	FLOW_ACK, /* only the QoS 1/2 ack window (none at QoS 0) */
};

struct scenario {
	char name[NAME_BYTES_MAX];
	char label[NAME_BYTES_MAX]; /* broker name for the output */
	char host[NAME_BYTES_MAX];
	uint16_t port;
	uint8_t version; /* enum mqtt_version: 4 or 5 */
	uint8_t qos;
	int sub_qos; /* -1: same as qos */
	uint32_t payload;
	enum layout layout;
	enum flow flow;
	uint32_t publishers;
	uint32_t subscribers;
	uint32_t connections; /* idle: connections; connect: concurrent handshakes */
	uint32_t threads;
	uint32_t inflight;
	uint32_t connect_concurrency; /* setup: handshakes in progress at once */
	uint32_t recv_buffer;
	uint32_t stall_ms; /* e2e window forgiven after this long without progress */
	uint16_t keepalive_s;
	double rate; /* messages/s over all publishers; 0 = as fast as the window allows */
	double ramp; /* connections/s during setup; 0 = unlimited */
	double warmup_s;
	double duration_s;
	double drain_s;
	double setup_timeout_s;
	double interval_s; /* progress line / JSON progress period */
	char topic_prefix[NAME_BYTES_MAX];
	char share_group[NAME_BYTES_MAX];
	pid_t broker_pid;
	bool json;
	int progress; /* -1: when stderr is a terminal */
	bool expect_exact; /* QoS 0 loss or duplicates fail the run too */
	bool busy_poll; /* workers never sleep: no wake-up latency on the client side */
	bool persistent_subs; /* subscribers keep their sessions (clean session 0 / v5 session expiry) */
	bool tls; /* every connection speaks MQTT over TLS (ctls.h) */
	uint8_t tls_version; /* 12 or 13 */
	char ca[PATH_BYTES_MAX]; /* PEM CA file the broker's chain is verified against; "" = no verification */
};

/** scenario_defaults() - the values a run has before any scenario or option. */
void scenario_defaults(struct scenario *cfg);

/**
 * scenario_set() - set one key (scenario-file spelling, '-' and '_' alike).
 * Returns 0, or -EINVAL with a message in @err (ERR_BYTES_MAX).
 */
int scenario_set(struct scenario *cfg, const char *key, const char *value, char *err);

/** scenario_load() - read key=value lines from @path ('#' comments). */
int scenario_load(struct scenario *cfg, const char *path, char *err);

/**
 * scenario_parse_args() - --scenario FILE first, then every --key value or
 * --key=value in order.  Returns 0, 1 after --help was printed, or
 * -EINVAL with @err set.
 */
int scenario_parse_args(struct scenario *cfg, int argc, char **argv, char *err);

/** scenario_check() - cross-key validation and derived defaults. */
int scenario_check(struct scenario *cfg, char *err);

/** scenario_layout_name() / scenario_usage() - for the reports and --help. */
const char *scenario_layout_name(enum layout l);
void scenario_usage(void);

/* ------------------------------------------------------------------------
 * Run state
 * ---------------------------------------------------------------------- */

enum phase {
	PHASE_SETUP, /* connect, subscribe */
	PHASE_WARMUP, /* publish, nothing recorded */
	PHASE_MEASURE, /* publish, latency recorded, counters snapshotted */
	PHASE_DRAIN, /* no new publishes; in-flight ones complete */
	PHASE_STOP, /* DISCONNECT and close everything */
};

enum role { ROLE_PUB, ROLE_SUB, ROLE_IDLE, ROLE_HANDSHAKE };

enum conn_state {
	CS_FREE,
	CS_TCP, /* TCP connect submitted */
	CS_CONNACK, /* CONNECT sent, waiting for CONNACK */
	CS_SUBACK, /* SUBSCRIBE sent */
	CS_READY,
	CS_BYE, /* DISCONNECT sent, waiting for the server to close */
	CS_CLOSING, /* shutdown(2) done, waiting for our SQEs to complete */
};

struct buf {
	uint8_t *data;
	uint32_t len;
	uint32_t cap;
};

struct pub;
struct sub;
struct worker;
struct ctls;
struct WOLFSSL_CTX;

/* One MQTT client connection.  Owner: its worker.  Lifetime: the worker's
 * conn array; a handshake slot is reused once its SQEs have completed
 * (gen tells the reuses apart in user_data).  Shared: never. */
struct conn {
	struct worker *w;
	struct pub *pub; /* ROLE_PUB */
	struct sub *sub; /* ROLE_SUB */
	struct ctls *tls; /* NULL: plain TCP */
	int fd;
	uint32_t slot; /* index in w->conns */
	uint32_t id; /* publisher / subscriber / connection number */
	uint8_t role;
	uint8_t state;
	uint8_t gen;
	uint8_t pending; /* SQEs in flight */
	bool send_busy;
	bool recv_busy;
	bool failed;
	uint8_t out_cur; /* out[out_cur] fills while out[!out_cur] is sent */
	struct buf out[2];
	uint32_t out_sent; /* bytes of the in-flight buffer already sent */
	struct buf in;
	uint64_t t_start_ns; /* TCP connect submitted */
	uint64_t t_bye_ns; /* DISCONNECT sent */
	uint64_t last_tx_ns;
};

/* A publishing client.  Owner: its conn's worker, except credit / blocked
 * (see the file comment). */
struct pub {
	struct conn *c;
	uint32_t id;
	uint32_t expected; /* deliveries one message makes */
	uint8_t *tmpl; /* the encoded PUBLISH, stamped per message */
	uint32_t tmpl_len;
	uint32_t pid_off; /* packet id offset (QoS > 0) */
	uint32_t stamp_off;
	uint64_t seq; /* messages sent = the next sequence number */
	uint64_t forgiven; /* deliveries written off by stall resets */
	uint64_t credit_seen;
	uint64_t stall_since_ns;
	_Atomic uint64_t credit; /* deliveries seen by the subscribers */
	_Atomic bool blocked; /* e2e window full; wake the owner on credit */
	bool queued; /* on the worker's ready list */
	bool on_blocked_list;
	uint32_t window;
	uint32_t unacked;
	uint32_t slot_mask; /* packet id ring: pid = (seq & mask) + 1 */
	uint8_t *slot_state; /* 0 free, 1 PUBLISH sent, 2 PUBREL sent */
	uint64_t acked;
	uint64_t owed; /* rate mode: messages due but not yet sent */
};

/* A subscribing client and its per-publisher ordering state.  Owner: its
 * conn's worker. */
struct sub {
	struct conn *c;
	uint32_t id;
	uint32_t base; /* first publisher tracked */
	uint32_t count; /* publishers tracked */
	uint64_t *next; /* per tracked publisher: next expected seq */
	uint64_t recv;
	uint64_t dups; /* seq below the next expected one */
	uint64_t gaps; /* seqs skipped */
	uint64_t foreign; /* payload without our stamp, or an unknown publisher */
};

/* Counters the main thread reads while the workers run.  Written only by
 * the owning worker (relaxed stores of its own running totals). */
struct wstats {
	_Atomic uint64_t sent;
	_Atomic uint64_t expect; /* deliveries the sent messages should make */
	_Atomic uint64_t recv;
	_Atomic uint64_t recv_bytes; /* payload bytes */
	_Atomic uint64_t acked;
	_Atomic uint64_t ready; /* connections set up */
	_Atomic uint64_t failed; /* connections that failed */
	_Atomic uint64_t proto_errors;
	_Atomic uint64_t handshakes;
	_Atomic uint64_t hs_inflight;
	_Atomic uint64_t open; /* fds open */
	_Atomic uint64_t lat_sum; /* ns, measure phase */
	_Atomic uint64_t lat_n;
	_Atomic uint64_t lat_max; /* main exchanges it with 0 per interval */
	_Atomic uint64_t stall_resets;
};

struct run;

struct worker {
	struct run *run;
	uint32_t idx;
	pthread_t thread;
	struct io_uring ring;
	_Atomic int ring_fd; /* -1 until the ring exists */
	_Atomic bool wake_req;
	int phase;
	uint64_t now;
	struct conn *conns;
	uint32_t nconns;
	uint32_t next_connect; /* setup: next conn to open */
	uint32_t connecting; /* setup: handshakes in progress */
	uint64_t ramp_t0;
	uint64_t ramp_next_ns; /* 0: no ramp step pending */
	struct pub **pubs;
	uint32_t npubs;
	struct pub **ready; /* publishers to pump this turn */
	uint32_t nready;
	struct pub **blocked; /* publishers waiting for e2e credit */
	uint32_t nblocked;
	uint32_t *credit; /* per publisher id: deliveries not yet flushed */
	uint32_t *dirty;
	uint32_t ndirty;
	uint64_t rate_t0;
	uint64_t rate_issued; /* messages scheduled since rate_t0 */
	uint64_t rate_next_ns;
	uint64_t next_slow_ns;
	uint64_t stop_deadline_ns;
	bool load_started;
	bool ring_ok;
	uint64_t hs_seq;
	struct hist *lat;
	struct hist *hs_lat;
	struct WOLFSSL_CTX *tls_ctx; /* cfg.tls: this worker's client context */
	uint64_t tls_hs_n; /* TLS handshakes completed, whole run; main reads it after the join */
	char tls_suite[TLS_SUITE_BYTES_MAX]; /* the first handshake's version and suite */
	/* running totals behind st (plain: only this thread writes them) */
	uint64_t sent, expect, recv, recv_bytes, acked, ready_n, failed_n, proto_n, hs_n, hs_in, open_n;
	uint64_t lat_sum, lat_n;
	struct wstats st;
	char err[ERR_BYTES_MAX];
};

struct run {
	struct scenario cfg;
	_Atomic int phase;
	struct sockaddr_in addr;
	uint32_t nworkers;
	struct worker *workers;
	uint32_t npubs;
	uint32_t nsubs;
	struct pub *pubs;
	struct sub *subs;
	uint32_t nconns; /* all connections (handshake slots for LAYOUT_CONNECT) */
	uint64_t run_tag; /* the pid: keeps client ids unique per run */
	bool tls_init; /* ctls_global_init() done: run_free() undoes it */
};

/* ------------------------------------------------------------------------
 * Functions shared by the files of bench/
 * ---------------------------------------------------------------------- */

/** now_ns() - CLOCK_MONOTONIC in nanoseconds. */
uint64_t now_ns(void);

/** run_build() - allocate workers, conns, pubs and subs for @run->cfg. */
int run_build(struct run *run, char *err);

/** run_free() - frees everything run_build() made; accepts a half-built run. */
void run_free(struct run *run);

/** worker_main() - the thread body; @arg is its struct worker. */
void *worker_main(void *arg);

/** worker_fail() - record the first error of @w (printf-style). */
void worker_fail(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* proto.c: the MQTT side of a connection. */

/** proto_pub_init() - encode @p's PUBLISH template; -ENOMEM / -EINVAL. */
int proto_pub_init(const struct run *run, struct pub *p);

/** proto_connect() - append CONNECT for @c to its send buffer. */
int proto_connect(struct conn *c);

/** proto_subscribe() - append SUBSCRIBE for @c (a subscriber). */
int proto_subscribe(struct conn *c);

/** proto_disconnect() - append DISCONNECT. */
int proto_disconnect(struct conn *c);

/** proto_pingreq() - append PINGREQ. */
int proto_pingreq(struct conn *c);

/**
 * proto_input() - handle every whole frame in @c->in, keep the rest.
 * Returns 0, or a negative errno after worker_fail() for a protocol
 * error (the caller closes the connection).
 */
int proto_input(struct conn *c);

/**
 * proto_pub_fill() - append up to @n stamped PUBLISH packets of @p.
 * Returns how many were appended (the window / buffer may allow fewer).
 */
uint32_t proto_pub_fill(struct pub *p, uint32_t n);

/** buf_reserve() - make room for @n more bytes; -ENOBUFS beyond CONN_BUF_MAX. */
int buf_reserve(struct buf *b, uint32_t n);

/* worker.c helpers used by proto.c */

/** conn_ready() - @c finished its setup (CONNACK / SUBACK). */
void conn_ready(struct conn *c);

/** conn_kick() - submit @c's pending output if no send is in flight. */
void conn_kick(struct conn *c);

/** pub_wake() - put @p on its worker's ready list. */
void pub_wake(struct pub *p);

/** credit_add() - count one delivery of publisher @pub_id, flushed later. */
void credit_add(struct worker *w, uint32_t pub_id);

/** handshake_done() - a LAYOUT_CONNECT connection got its CONNACK. */
void handshake_done(struct conn *c);

#endif
