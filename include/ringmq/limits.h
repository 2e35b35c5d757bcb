/*
 * limits.h - every bound ringmq enforces, in one place.
 *
 * Naming: NOUN_UNIT_MAX / _MIN / _DEFAULT.  Each constant says what it
 * bounds, why it has this value, what happens at the limit and which
 * configuration directive overrides it (see docs/configuration.md).
 * Relationships between limits are checked with _Static_assert at the end.
 */
#ifndef RINGMQ_LIMITS_H
#define RINGMQ_LIMITS_H

/* Shards (threads).  The route index keeps one bit per shard in a fixed
 * bitmap, so the count is bounded at compile time.  Directive: shards. */
#define SHARDS_MAX 256
#define SHARDS_MIN 1

/* Largest MQTT packet a client may send (whole packet, header included).
 * The protocol allows 268,435,455 bytes; a broker that honours that for
 * every client can be made to buffer gigabytes.  A bigger packet is
 * refused: MQTT 5 gets DISCONNECT 0x95, earlier versions are closed.
 * Directive: message_size_limit / max_packet_size. */
#define PACKET_BYTES_DEFAULT (1u << 20)
#define PACKET_BYTES_MAX 268435455u
/* Before CONNECT has been accepted only this much is buffered, so an
 * unauthenticated peer cannot make the broker allocate.  CONNECT with a
 * large will payload needs more; directive: connect_packet_size_max. */
#define PACKET_BYTES_PRE_CONNECT_DEFAULT 65536u

/* Client connections per process.  At the limit, new TCP connections are
 * accepted and closed at once (MQTT 5: CONNACK 0x97 is not possible before
 * CONNECT, so the socket is simply closed and counted). Directive:
 * max_connections (-1 = unlimited up to CONNS_PER_SHARD_MAX * shards). */
#define CONNS_PER_SHARD_MAX 1048576u

/* Seconds a new connection has to complete its CONNECT packet before it is
 * closed.  Directive: connect_timeout. */
#define CONNECT_TIMEOUT_S_DEFAULT 10u

/* QoS 1/2 messages in flight to one client at once (server -> client).
 * MQTT 5 clients may lower it with Receive Maximum.  Directive:
 * max_inflight_messages. */
#define INFLIGHT_DEFAULT 64u
#define INFLIGHT_MAX 65535u

/* Receive Maximum announced to MQTT 5 clients (client -> server QoS 1/2 in
 * flight).  A client exceeding it is disconnected with 0x93.  Directive:
 * max_receive_inflight. */
#define RECEIVE_INFLIGHT_DEFAULT 1024u

/* Messages and bytes queued for one session beyond its inflight window
 * (offline sessions, or online ones whose window is full).  At the limit
 * new QoS 1/2 messages for that session are dropped and counted; QoS 0
 * messages are only queued while the client is online. Directives:
 * max_queued_messages, max_queued_bytes (0 = no byte limit). */
#define QUEUED_MESSAGES_DEFAULT 1000u
#define QUEUED_BYTES_DEFAULT 0u

/* All messages held for sessions (queued and in flight), summed over the
 * whole broker, in bytes of payload.  Bounds the broker's memory however
 * many persistent sessions pile up messages.  At the limit a message that
 * would be queued is dropped (counted as drop cause "memory_limit", one
 * log line when dropping starts); messages sent at once to online clients
 * are not affected.  Directive: max_queued_bytes_total (0 = no limit). */
#define QUEUED_BYTES_TOTAL_DEFAULT (1ull << 30)

/* Subscriptions one client may hold.  Beyond it SUBACK carries 0x97
 * (MQTT 5) / 0x80 (3.1.1).  Directive: max_subscriptions_per_client. */
#define SUBSCRIPTIONS_PER_CLIENT_DEFAULT 1024u
/* Sessions broker-wide, connected or kept for an offline client (each costs
 * about 1 KiB plus what it holds).  A CONNECT that would make one more is
 * refused (MQTT 5: 0x97 Quota exceeded, 3.x: 3 Server unavailable);
 * sessions loaded from the store at start-up always come back. */
#define SESSIONS_MAX_DEFAULT 1000000u

/* Topic names and filters.  Length is bounded by the protocol (65,535
 * bytes); levels are bounded here so a matcher's recursion and a trie's
 * depth stay small.  A topic or filter with more levels is refused
 * (PUBLISH: 0x90 / disconnect, SUBSCRIBE: 0x8F / 0x80).  Directives:
 * max_topic_length, max_topic_levels. */
#define TOPIC_BYTES_MAX 65535u
#define TOPIC_BYTES_DEFAULT 65535u
#define TOPIC_LEVELS_DEFAULT 64u
#define TOPIC_LEVELS_MAX 1024u

/* Client identifiers.  MQTT 3.1 limited them to 23 bytes; 3.1.1 and 5
 * allow servers to accept longer ones.  Directive: max_client_id_length. */
#define CLIENT_ID_BYTES_DEFAULT 256u
#define CLIENT_ID_BYTES_MAX 65535u

/* Keep alive: the largest keep alive a client may use (seconds).  MQTT 5
 * clients asking for more (or 0) get a Server Keep Alive in CONNACK; MQTT
 * 3.x has no way to tell a client, so 3.x clients keep what they asked for.
 * Directive: max_keepalive (0 = no maximum). */
#define KEEPALIVE_S_MAX_DEFAULT 65535u

/* Session expiry for persistent sessions of MQTT 3.1/3.1.1 clients
 * (clean session = 0), seconds; 0 = never expire. Directive:
 * persistent_client_expiration. */
#define SESSION_EXPIRY_S_DEFAULT 0u

/* Topic aliases a client may use towards the server (MQTT 5). Directive:
 * max_topic_alias. */
#define TOPIC_ALIAS_DEFAULT 10u

/* Topic aliases the server assigns towards one MQTT 5 client (never more
 * than the client's own Topic Alias Maximum).  Each costs a copy of the
 * topic per connection; the first N distinct topics sent get one.
 * Directive: max_topic_alias_out (0 = never send aliases). */
#define TOPIC_ALIAS_OUT_DEFAULT 32u

/* Bytes buffered for sending to one client before it is considered not to
 * be reading.  Beyond it the client is disconnected and counted.
 * Directive: max_output_bytes. */
#define OUTPUT_BYTES_DEFAULT (8u << 20)

/* Cross-shard rings: slots per ordered shard pair.  A full ring makes the
 * producer keep the item on its own overflow list (bounded by the
 * receiving session's queue limits) and retry next loop turn.
 * Directive: shard_ring_size. */
#define SHARD_RING_SLOTS_DEFAULT 4096u

/* Items one shard may hold back for another shard whose ring is full.
 * Beyond it, messages for that shard are dropped and counted (stats
 * "dropped"); a sustained overload of one shard therefore sheds load
 * instead of growing memory.  Not configurable: it scales with
 * shard_ring_size (the backlog is 16 rings' worth). */
#define SHARD_BACKLOG_RINGS 16u

/* Provided receive buffers per shard and their size.  Directive:
 * recv_buffers, recv_buffer_size. */
#define RECV_BUFFERS_DEFAULT 1024u
#define RECV_BUFFER_BYTES_DEFAULT 16384u

/* io_uring submission queue entries per shard. */
#define URING_ENTRIES_DEFAULT 4096u

/* Subscription identifiers one PUBLISH carries to a client (one per
 * matching subscription; further ones are not sent).  User properties are
 * bounded by the packet size only: parsing them is O(packet size). */
#define SUBSCRIPTION_IDS_MAX 32u

/* $SYS publication interval, seconds (0 disables). Directive: sys_interval. */
#define SYS_INTERVAL_S_DEFAULT 10u

/* HTTP listener (/metrics, /healthz, /readyz; directive http_listener).
 * A request is read up to the blank line after its headers; one larger
 * than HTTP_REQUEST_BYTES_MAX gets 431 and is closed (a scraper's request
 * is a few hundred bytes).  Reading the request and writing the answer
 * each have HTTP_IO_TIMEOUT_MS in all, so a client that dribbles or stops
 * reading holds the (single) HTTP thread that long at most, and never a
 * shard.  Not configurable. */
#define HTTP_REQUEST_BYTES_MAX 8192u
#define HTTP_IO_TIMEOUT_MS 2000

/* /healthz fails when a shard's loop has not turned for this long.  An idle
 * shard turns at least every 100 ms (its wait has that timeout), so only a
 * stuck or starved shard gets near it; long enough that a loaded host
 * delaying a thread for a moment is not reported. */
#define HTTP_HEALTH_STALL_MS 5000u

/* WebSocket listeners (protocol websockets, RFC 6455).  The opening
 * handshake is read up to the blank line after its headers; a request
 * larger than WS_HANDSHAKE_BYTES_MAX gets 431 and the connection is closed.
 * Browsers send well under 2 KiB (cookies of the page's host are the
 * variable part), so 8 KiB leaves room while an unauthenticated peer can
 * make the broker hold no more.  The bytes are held only until the
 * handshake completes, and connect_timeout bounds how long that may take.
 * Not configurable. */
#define WS_HANDSHAKE_BYTES_MAX 8192u

/* Largest payload of one client frame.  A bigger frame is refused with
 * close code 1009 and the connection is closed.  Frames are unwrapped as
 * their bytes arrive and never buffered whole, so this bounds no memory of
 * its own (max_packet_size bounds the MQTT packets inside); it refuses a
 * client early, at the frame header.  Directive: websockets_max_frame_size;
 * the default (0) means max_packet_size, so the largest packet fits one
 * frame.  A client that packs several packets into one frame may need more. */
#define WS_FRAME_BYTES_DEFAULT 0u
#define WS_FRAME_BYTES_MIN 128u
#define WS_FRAME_BYTES_MAX (1u << 30)

/* Per WebSocket listener: websockets_origin lines (the allowed browser
 * origins) and websockets_trusted_proxy lines (addresses whose
 * X-Forwarded-For is believed), and how long each value and the
 * websockets_path may be.  The values live in struct config_listener, so
 * the bounds keep it small; more lines than this are a config error. */
#define WS_ORIGINS_MAX 8u
#define WS_ORIGIN_BYTES_MAX 256u
#define WS_TRUSTED_PROXIES_MAX 8u
#define WS_ADDRESS_BYTES_MAX 64u
#define WS_PATH_BYTES_MAX 256u

/* The durable store (store.h, docs/persistence.md).  The LMDB map starts
 * at persistence_map_size and doubles when full (MDB_MAP_FULL) up to
 * persistence_max_size; at that size new QoS 1/2 messages are refused
 * (0x97) while deletions and session changes still commit.  The map is
 * address space; the file grows only with the data. */
#define STORE_MAP_BYTES_DEFAULT (64ull << 20)
#define STORE_MAX_BYTES_DEFAULT (4ull << 30)
#define STORE_MAP_BYTES_MIN (1ull << 20)
#define STORE_BYTES_MAX (1ull << 40)
/* durability batch: one commit (and sync) per interval at most. */
#define STORE_COMMIT_INTERVAL_MS_DEFAULT 10u
#define STORE_COMMIT_INTERVAL_MS_MAX 10000u
/* Batches in flight from one shard to the store thread (ring slots). */
#define STORE_RING_SLOTS 256u
/* An acknowledgement that waits this long for the store (a stalled disk,
 * or an answer lost between shards) is given up: MQTT 5 gets 0x97, MQTT 3
 * loses the connection, and later acknowledgements are not held up. */
#define STORE_ACK_TIMEOUT_MS 30000u
/* Past persistence_max_size the map may still grow by 1/8 (at least
 * STORE_MAP_BYTES_MIN), for commits without new messages only: LMDB needs
 * free pages even to delete, and a full store must be able to empty. */
#define STORE_DELETE_RESERVE_FRACTION 8u
/* When stopping, a commit that keeps failing is tried this many times more
 * (STORE_RETRY_MS apart); then the broker stops and says what was lost. */
#define STORE_STOP_TRIES 5u
/* While commits keep failing, one log line per this period (with a count). */
#define STORE_FAIL_LOG_MS 10000u
/* After a failed commit the writer retries at this pace; meanwhile QoS 1/2
 * publishes that need the store are refused. */
#define STORE_RETRY_MS 200u

/* PROXY protocol headers (proxy.h; directive proxy_protocol).  A v1 header
 * is one line of at most 107 bytes with its CRLF: the specification's own
 * bound.  A v2 header may announce up to 65,551 bytes; load balancers send
 * addresses plus a few TLVs (AWS, GCP and Azure endpoint ids, HAProxy's
 * SSL and unique-id TLVs: a few hundred bytes), so anything over
 * PROXY_HEADER_BYTES_MAX is refused and the connection closed, and an
 * unauthenticated peer never makes a connection buffer more.  Not
 * configurable.  The header must arrive within connect_timeout. */
#define PROXY_V1_BYTES_MAX 107u
#define PROXY_HEADER_BYTES_MAX 2048u
/* Networks one listener's proxy_protocol_trusted may list; a longer list
 * is a configuration error. */
#define PROXY_TRUSTED_NETS_MAX 16u

/* TLS certificate files (certfile, keyfile, cafile, capath, crlfile) are
 * checked for changes (inode, size, modification time) this often by the
 * main thread; a change loads them into a new context for new handshakes.
 * Kubernetes replaces a mounted Secret by swapping a symlink, which shows
 * up as a new inode.  Not configurable; SIGHUP reloads at once. */
#define TLS_FILE_CHECK_MS 2000u
/* A client certificate's CN or subject used as the username
 * (use_identity_as_username / use_subject_as_username): a longer one is
 * refused (CONNACK not authorized), never truncated into another name. */
#define TLS_IDENTITY_BYTES_MAX 256u

_Static_assert(PACKET_BYTES_PRE_CONNECT_DEFAULT <= PACKET_BYTES_DEFAULT,
	       "pre-CONNECT limit must not exceed the packet limit");
_Static_assert(PACKET_BYTES_DEFAULT <= PACKET_BYTES_MAX,
	       "default packet limit above the protocol's maximum");
_Static_assert(INFLIGHT_DEFAULT <= INFLIGHT_MAX, "inflight default");
_Static_assert(TOPIC_LEVELS_DEFAULT <= TOPIC_LEVELS_MAX, "topic levels");
_Static_assert((SHARD_RING_SLOTS_DEFAULT & (SHARD_RING_SLOTS_DEFAULT - 1)) == 0,
	       "ring slots must be a power of two");

#endif
