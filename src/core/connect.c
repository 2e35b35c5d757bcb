/*
 * connect.c - the first packet: CONNECT, hand-off to the home shard,
 * session take-over and CONNACK.
 *
 * The accepting shard reads and validates CONNECT.  If the client id's home
 * shard is another, the socket and every byte read so far move there in
 * one SHARD_OP_HANDOFF item, and the home shard runs connect_first() again
 * on the same bytes (decoding CONNECT twice is cheaper than shipping a
 * decoded copy with its views).  From then on the session, its take-over
 * and its will are single-threaded on the home shard.  A client without a
 * client id gets a generated one that hashes to the accepting shard, so it
 * never moves.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu-qsbr.h>

#include "ringmq/auth.h"
#include "ringmq/backoff.h"
#include "ringmq/conn.h"
#include "ringmq/limits.h"
#include "ringmq/log.h"
#include "ringmq/persist.h"
#include "ringmq/msg.h"
#include "ringmq/proto.h"
#include "ringmq/sess.h"
#include "ringmq/shard.h"
#include "ringmq/stats.h"
#include "ringmq/tls.h"
#include "ringmq/ws.h"
#include "ringmq/topic.h"

#define GENERATED_ID_BYTES 32
#define SESS_EXPIRY_NEVER 0xFFFFFFFFu

/* The protocol level a CONNECT claims, or 0 if it cannot be read. */
static uint8_t peek_level(const uint8_t *p, uint32_t len)
{
	uint32_t i = 1, nlen;

	while (i < len && i < 5 && (p[i] & 0x80))
		i++;
	i++;
	if (i + 2 > len)
		return 0;
	nlen = (uint32_t)p[i] << 8 | p[i + 1];
	i += 2 + nlen;
	return i < len ? p[i] : 0;
}

void connect_connack(struct shard *s, struct conn *c, uint8_t version, uint8_t reason, bool present,
			 const struct mqtt_props *props)
{
	struct mqtt_packet pkt = {.type = MQTT_CONNACK};

	pkt.connack.session_present = present;
	pkt.connack.reason = reason;
	if (props)
		pkt.connack.props = *props;
	if (version == MQTT_V5 && mqtt_encoded_len(version, &pkt) > c->packet_max_out) {
		/* [MQTT-3.2.2-19/20] reason string and user properties are the first to go */
		pkt.connack.props.present &= ~(MQTT_HAS(MQTT_PROP_REASON_STRING) | MQTT_HAS(MQTT_PROP_USER));
		pkt.connack.props.user.len = 0;
	}
	c->version = version;
	c->state = CONN_ACTIVE; /* so the packet can be queued */
	(void)conn_send_packet(s, c, &pkt); /* if it cannot be queued the connection closes */
}

/* Refuse: CONNACK with @v5_reason (v5) or @v3_code (3.x), then close. */
static void refuse(struct shard *s, struct conn *c, uint8_t version, uint8_t v5_reason, uint8_t v3_code,
		   const char *why)
{
	log_info(NULL, "connection from %s refused: %s", c->peer, why);
	connect_connack(s, c, version, version == MQTT_V5 ? v5_reason : v3_code, false, NULL);
	conn_close_after_flush(s, c);
}

static void generate_id(struct shard *s, char *buf)
{
	do {
		snprintf(buf, GENERATED_ID_BYTES, "ringmq-%u-%llx", s->id, (unsigned long long)++s->id_counter);
	} while (shard_home(s->b, (const uint8_t *)buf, (uint32_t)strlen(buf)) != s->id);
}

static int handoff(struct shard *s, struct conn *c, unsigned home)
{
	struct handoff *h = malloc(sizeof(*h) + c->in.len);
	struct spsc_item it = {.op = SHARD_OP_HANDOFF};

	if (!h) {
		conn_close(s, c, MQTT_RC_SERVER_BUSY, false, "out of memory for hand-off");
		return 1;
	}
	h->fd = c->fd;
	h->tls = c->tls; /* the session goes with the socket */
	c->tls = NULL;
	h->ws = conn_ws_detach(c); /* and so do the WebSocket state and its unsent output */
	h->listener = c->listener;
	h->accepted_ms = c->accepted_ms;
	h->len = c->in.len;
	memcpy(h->peer, c->peer, sizeof(h->peer));
	memcpy(h->bytes, c->in.data, c->in.len);
	it.ptr = h;
	if (shard_send(s, home, &it) < 0) {
		free(h);
		conn_close(s, c, MQTT_RC_SERVER_BUSY, false, "home shard overloaded");
		return 1;
	}
	c->handed_off = true;
	c->state = CONN_CLOSING;
	if (c->ops == 0) {
		c->next_closing = s->closing;
		s->closing = c;
	}
	return 1;
}

void connect_adopt(struct shard *s, struct handoff *h)
{
	struct conn *c = s->stopping ? NULL : conn_new(s, h->fd, h->listener);

	if (!c) {
		close(h->fd);
		tls_conn_free(h->tls);
		ws_conn_free(h->ws);
		atomic_fetch_sub_explicit(&s->b->conns_total, 1, memory_order_relaxed);
		free(h);
		return;
	}
	c->accepted_ms = h->accepted_ms;
	c->tls = h->tls;
	conn_ws_attach(s, c, h->ws);
	memcpy(c->peer, h->peer, sizeof(c->peer));
	c->in.data = malloc(h->len);
	if (!c->in.data) {
		free(h);
		conn_close(s, c, MQTT_RC_SERVER_BUSY, false, "out of memory");
		return;
	}
	memcpy(c->in.data, h->bytes, h->len);
	c->in.len = c->in.cap = h->len;
	free(h);
	if (connect_first(s, c) != 0)
		return;
	if (c->state == CONN_AUTH)
		conn_arm_recv(s, c); /* enhanced authentication goes on */
	else
		conn_after_connect(s, c);
}

/* Username and password of a plain CONNECT.  Returns 0 or refuses and returns 1. */
static int credentials_check(struct shard *s, struct conn *c, const struct mqtt_connect *k)
{
	const struct config *cfg = s->b->cfg;
	int per = cfg->listeners[c->listener].allow_anonymous;
	bool anonymous = per >= 0 ? per : cfg->allow_anonymous; /* per_listener_settings */
	uint8_t v = k->version;

	if (!k->has_username) {
		if (anonymous)
			return 0;
		refuse(s, c, v, MQTT_RC_NOT_AUTHORIZED, MQTT_V3_NOT_AUTHORIZED, "anonymous access is not allowed");
		return 1;
	}
	const struct auth_db *db = rcu_dereference(s->b->auth);

	if (!db) {
		if (anonymous)
			return 0; /* no password file: a username is only a label, as in mosquitto */
		refuse(s, c, v, MQTT_RC_BAD_USER_OR_PASSWORD, MQTT_V3_BAD_USER_OR_PASSWORD,
		       "username given but no password_file is configured");
		return 1;
	}
	if (backoff_blocked(s->b->backoff, c->peer, s->now_ms)) {
		log_info(NULL, "connection from %s refused: too many failed logins, backing off", c->peer);
		connect_connack(s, c, v, v == MQTT_V5 ? MQTT_RC_BAD_USER_OR_PASSWORD : MQTT_V3_BAD_USER_OR_PASSWORD,
				false, NULL);
		conn_close_after_flush(s, c);
		return 1;
	}
	if (!k->has_password || auth_check_password(db, k->username.ptr, k->username.len, k->password.ptr,
						    k->password.len) < 0) {
		backoff_failed(s->b->backoff, c->peer, s->now_ms, cfg->auth_backoff_max_s);
		log_info(NULL, "connection from %s refused: bad username or password for '%.*s'", c->peer,
			 (int)(k->username.len > 64 ? 64 : k->username.len), (const char *)k->username.ptr);
		connect_connack(s, c, v, v == MQTT_V5 ? MQTT_RC_BAD_USER_OR_PASSWORD : MQTT_V3_BAD_USER_OR_PASSWORD,
			     false, NULL);
		conn_close_after_flush(s, c);
		return 1;
	}
	backoff_ok(s->b->backoff, c->peer);
	return 0;
}

/* use_identity_as_username / use_subject_as_username (mosquitto's
 * semantics): the verified client certificate names the user, and the
 * CONNECT's username and password are not used.  Returns 0 with the name
 * in c->auth_user, or refuses and returns 1. */
static int certificate_user(struct shard *s, struct conn *c, const struct mqtt_connect *k)
{
	char name[TLS_IDENTITY_BYTES_MAX + 1];
	uint8_t v = k->version;
	int r;

	if (v == MQTT_V5 && (k->props.present & MQTT_HAS(MQTT_PROP_AUTH_METHOD))) {
		refuse(s, c, v, MQTT_RC_BAD_AUTH_METHOD, 0, "enhanced authentication on a listener whose client "
							     "certificates name the user");
		return 1;
	}
	r = tls_conn_identity(c->tls, name, sizeof(name));
	if (r == -ENAMETOOLONG) {
		refuse(s, c, v, MQTT_RC_NOT_AUTHORIZED, MQTT_V3_NOT_AUTHORIZED,
		       "client certificate name over TLS_IDENTITY_BYTES_MAX");
		return 1;
	}
	if (r < 0) {
		refuse(s, c, v, MQTT_RC_NOT_AUTHORIZED, MQTT_V3_NOT_AUTHORIZED,
		       c->tls->identity == TLS_IDENTITY_CN ? "client certificate without a CN"
							   : "client certificate without a subject");
		return 1;
	}
	free(c->auth_user);
	c->auth_user = strdup(name);
	if (!c->auth_user) {
		refuse(s, c, v, MQTT_RC_SERVER_UNAVAILABLE, MQTT_V3_SERVER_UNAVAILABLE, "out of memory");
		return 1;
	}
	log_info(NULL, "connection from %s: user '%s' from its client certificate", c->peer, name);
	return 0;
}

/* Validate what the codec cannot (configuration-dependent rules).  Returns
 * 0 or refuses and returns 1. */
static int connect_check(struct shard *s, struct conn *c, const struct mqtt_connect *k)
{
	const struct config *cfg = s->b->cfg;
	uint8_t v = k->version;

	if (k->client_id.len == 0 && v != MQTT_V5 && (!k->clean || v == MQTT_V31)) {
		/* [MQTT-3.1.3-8] empty id needs clean session; 3.1 requires an id */
		refuse(s, c, v, MQTT_RC_CLIENT_ID_INVALID, MQTT_V3_ID_REJECTED,
		       "empty client id without clean session");
		return 1;
	}
	if (k->client_id.len > cfg->max_client_id_length) {
		refuse(s, c, v, MQTT_RC_CLIENT_ID_INVALID, MQTT_V3_ID_REJECTED,
		       "client id longer than max_client_id_length");
		return 1;
	}
	if (s->draining) {
		struct mqtt_props p = {0};
		log_info(NULL, "connection from %s refused: draining", c->peer);
		if (v == MQTT_V5 && cfg->server_reference[0]) {
			p.present = MQTT_HAS(MQTT_PROP_SERVER_REFERENCE);
			p.server_reference.ptr = (const uint8_t *)cfg->server_reference;
			p.server_reference.len = (uint32_t)strlen(cfg->server_reference);
		}
		uint8_t rc = cfg->drain_server_moved ? MQTT_RC_SERVER_MOVED : MQTT_RC_USE_ANOTHER_SERVER;
		connect_connack(s, c, v, v == MQTT_V5 ? rc : MQTT_V3_SERVER_UNAVAILABLE, false,
				v == MQTT_V5 ? &p : NULL);
		conn_close_after_flush(s, c);
		return 1;
	}
	/* With an Authentication Method, login.c authenticates instead; on a
	 * use_identity_as_username listener the client certificate does. */
	if (c->tls && c->tls->identity != TLS_IDENTITY_NONE) {
		if (certificate_user(s, c, k))
			return 1;
	} else if (!(v == MQTT_V5 && (k->props.present & MQTT_HAS(MQTT_PROP_AUTH_METHOD))) &&
		   credentials_check(s, c, k)) {
		return 1;
	}
	if (k->will) {
		if (topic_name_check(k->will_topic.ptr, k->will_topic.len, cfg->max_topic_levels) < 0 ||
		    k->will_topic.len > cfg->max_topic_length) {
			refuse(s, c, v, MQTT_RC_TOPIC_NAME_INVALID, MQTT_V3_SERVER_UNAVAILABLE, "invalid will topic");
			return 1;
		}
		if (k->will_qos > cfg->max_qos) {
			refuse(s, c, v, MQTT_RC_QOS_NOT_SUPPORTED, MQTT_V3_SERVER_UNAVAILABLE,
			       "will QoS above max_qos");
			return 1;
		}
		if (k->will_retain && !cfg->retain_available) {
			refuse(s, c, v, MQTT_RC_RETAIN_NOT_SUPPORTED, MQTT_V3_SERVER_UNAVAILABLE,
			       "will retain unavailable");
			return 1;
		}
		if (v == MQTT_V5 && (k->will_props.present & MQTT_HAS(MQTT_PROP_PAYLOAD_FORMAT)) &&
		    k->will_props.payload_format == 1 &&
		    mqtt_utf8_check(k->will_payload.ptr, k->will_payload.len) < 0) {
			refuse(s, c, v, MQTT_RC_PAYLOAD_FORMAT_INVALID, 0,
			       "will payload is not the UTF-8 it claims to be");
			return 1;
		}
		if (cfg->message_size_limit && k->will_payload.len > cfg->message_size_limit) {
			refuse(s, c, v, MQTT_RC_PACKET_TOO_LARGE, MQTT_V3_SERVER_UNAVAILABLE,
			       "will message over message_size_limit");
			return 1;
		}
	}
	return 0;
}

static void connack_props(struct shard *s, struct conn *c, const struct mqtt_connect *k, const char *gen_id,
			  struct mqtt_props *p)
{
	const struct config *cfg = s->b->cfg;

	memset(p, 0, sizeof(*p));
	p->present = MQTT_HAS(MQTT_PROP_RECEIVE_MAX) | MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE) |
		     MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX);
	p->receive_max = (uint16_t)(cfg->max_receive_inflight > 65535 ? 65535 : cfg->max_receive_inflight);
	p->max_packet_size = cfg->max_packet_size;
	p->topic_alias_max = (uint16_t)cfg->max_topic_alias;
	/* Absent means available (MQTT 5 section 3.2.2.3): say only what is off. */
	if (!cfg->shared_subscription_available) {
		p->present |= MQTT_HAS(MQTT_PROP_SHARED_SUB_AVAILABLE);
		p->shared_available = 0;
	}
	if (!cfg->wildcard_subscription_available) {
		p->present |= MQTT_HAS(MQTT_PROP_WILDCARD_SUB_AVAILABLE);
		p->wildcard_available = 0;
	}
	if (!cfg->subscription_identifier_available) {
		p->present |= MQTT_HAS(MQTT_PROP_SUBID_AVAILABLE);
		p->subid_available = 0;
	}
	if (cfg->response_information[0] && (k->props.present & MQTT_HAS(MQTT_PROP_REQUEST_RESPONSE_INFO)) &&
	    k->props.request_response_info == 1) {
		/* [MQTT-3.1.2-28] only when asked for */
		p->present |= MQTT_HAS(MQTT_PROP_RESPONSE_INFO);
		p->response_info.ptr = (const uint8_t *)cfg->response_information;
		p->response_info.len = (uint32_t)strlen(cfg->response_information);
	}
	if (!cfg->retain_available) {
		p->present |= MQTT_HAS(MQTT_PROP_RETAIN_AVAILABLE);
		p->retain_available = 0;
	}
	if (cfg->max_qos < 2) {
		p->present |= MQTT_HAS(MQTT_PROP_MAX_QOS);
		p->max_qos = cfg->max_qos;
	}
	if (gen_id) {
		p->present |= MQTT_HAS(MQTT_PROP_ASSIGNED_CLIENT_ID);
		p->assigned_client_id.ptr = (const uint8_t *)gen_id;
		p->assigned_client_id.len = (uint32_t)strlen(gen_id);
	}
	if (cfg->max_keepalive != 0 && /* 0: no maximum, as in mosquitto */
	    (k->keepalive > cfg->max_keepalive || (k->keepalive == 0 && cfg->max_keepalive < 65535))) {
		/* [MQTT-3.2.2-21] the client must use the Server Keep Alive */
		p->present |= MQTT_HAS(MQTT_PROP_SERVER_KEEP_ALIVE);
		p->server_keep_alive = (uint16_t)cfg->max_keepalive;
		c->keepalive_ms = cfg->max_keepalive * 1000u;
	}
}

/* Sessions on all shards (each shard's own gauge, relaxed loads: a limit
 * good to the few CONNECTs other shards handle at the same moment). */
static uint64_t sessions_total(const struct broker *b)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < b->nshards; i++)
		n += atomic_load_explicit(&b->shards[i].stats.sessions, memory_order_relaxed);
	return n;
}

/* Find or make the session, taking over a live connection.  NULL on ENOMEM,
 * or with *ret_full set when a new session would pass max_sessions. */
static struct sess *session_take(struct shard *s, const struct mqtt_connect *k, const uint8_t *id,
				 uint32_t id_len, bool *ret_present, bool *ret_full)
{
	uint32_t max = s->b->cfg->max_sessions;

	struct sess *se = sess_find(s->sessions, id, id_len);

	if (se && se->conn) {
		struct conn *old = se->conn;
		/* [MQTT-3.1.4-3] close the existing connection; v5 gets DISCONNECT 0x8E.
		 * Its will follows the session's rules: v5 per will delay, 3.x not at all. */
		old->publish_will = old->version == MQTT_V5;
		conn_close(s, old, MQTT_RC_SESSION_TAKEN_OVER, true, "session taken over");
		se = sess_find(s->sessions, id, id_len); /* the close may have ended it */
	}
	if (se && k->clean) {
		sess_end(s, se); /* [MQTT-3.1.2-4] Clean Start discards the session */
		se = NULL;
	}
	*ret_present = se != NULL;
	if (se) {
		se->will = msg_unref(se->will); /* [MQTT-3.1.3-9] a reconnect cancels a delayed will */
		se->will_at_ms = 0;
		return se;
	}
	if (max && sessions_total(s->b) >= max) {
		*ret_full = true;
		return NULL;
	}
	return sess_new(s, id, id_len, k->version);
}

int connect_accept(struct shard *s, struct conn *c, const struct mqtt_connect *k, const char *gen_id,
		   const struct mqtt_str *auth_data)
{
	const struct config *cfg = s->b->cfg;
	const uint8_t *id = gen_id ? (const uint8_t *)gen_id : k->client_id.ptr;
	uint32_t id_len = gen_id ? (uint32_t)strlen(gen_id) : k->client_id.len;
	struct mqtt_props props;
	struct sess *se;
	char *user = NULL;
	bool present, full = false;

	c->keepalive_ms = k->keepalive * 1000u;
	if (k->version == MQTT_V5) {
		connack_props(s, c, k, gen_id, &props);
		if (k->props.present & MQTT_HAS(MQTT_PROP_RECEIVE_MAX))
			c->receive_max_out = k->props.receive_max;
		if (k->props.present & MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE))
			c->packet_max_out = k->props.max_packet_size;
		if (k->props.present & MQTT_HAS(MQTT_PROP_TOPIC_ALIAS_MAX)) {
			/* [MQTT-3.3.2-11] never more than the client's maximum; a power of
			 * two keeps the alias table's probing mask simple */
			uint32_t max = k->props.topic_alias_max < cfg->max_topic_alias_out ? k->props.topic_alias_max
											     : cfg->max_topic_alias_out;
			while (max & (max - 1))
				max &= max - 1;
			c->alias_out_max = (uint16_t)max;
		}
	}
	if (c->auth_user) {
		user = c->auth_user;
		c->auth_user = NULL;
	} else if (k->has_username && !(user = strndup((const char *)k->username.ptr, k->username.len))) {
		/* never fall back to anonymous rules */
		refuse(s, c, k->version, MQTT_RC_SERVER_UNAVAILABLE, MQTT_V3_SERVER_UNAVAILABLE, "out of memory");
		return 1;
	}
	se = session_take(s, k, id, id_len, &present, &full);
	if (!se) {
		free(user);
		if (full)
			refuse(s, c, k->version, MQTT_RC_QUOTA_EXCEEDED, MQTT_V3_SERVER_UNAVAILABLE,
			       "max_sessions reached");
		else
			refuse(s, c, k->version, MQTT_RC_SERVER_UNAVAILABLE, MQTT_V3_SERVER_UNAVAILABLE,
			       "out of memory");
		return 1;
	}
	se->version = k->version;
	free(se->username); /* the credentials of this connection apply from now on */
	se->username = user;
	if (k->version == MQTT_V5)
		se->expiry_s = k->props.present & MQTT_HAS(MQTT_PROP_SESSION_EXPIRY) ? k->props.session_expiry : 0;
	else
		se->expiry_s = k->clean ? 0
			       : cfg->persistent_client_expiration_s ? cfg->persistent_client_expiration_s
								     : SESS_EXPIRY_NEVER;
	if (k->will) {
		struct mqtt_str topic = k->will_topic, payload = k->will_payload;
		se->will = msg_new(&topic, &payload, k->will_qos, k->will_retain,
				   k->version == MQTT_V5 ? &k->will_props : NULL, id, id_len, s->now_ms);
		se->will_delay_s = k->version == MQTT_V5 && (k->will_props.present & MQTT_HAS(MQTT_PROP_WILL_DELAY))
					   ? k->will_props.will_delay
					   : 0;
	}
	se->conn = c;
	stats_client_up(s); /* counts the CONNECT and the client connected */
	c->sess = se;
	c->publish_will = true; /* every close but a normal DISCONNECT publishes the will */
	c->client_id = se->client_id;
	persist_sess_put(s, se); /* a session with an expiry is recorded (or forgotten if it has none now) */
	if (auth_data) {
		/* MQTT 5 section 4.12: CONNACK ends the exchange with the method and the server's last word */
		props.present |= MQTT_HAS(MQTT_PROP_AUTH_METHOD) | MQTT_HAS(MQTT_PROP_AUTH_DATA);
		props.auth_method = k->props.auth_method;
		props.auth_data = *auth_data;
	}
	connect_connack(s, c, k->version, 0, present, k->version == MQTT_V5 ? &props : NULL);
	log_info(se->client_id, "connected from %s: MQTT %s, keep alive %us, clean %d, session present %d", c->peer,
		 k->version == MQTT_V5 ? "5.0" : k->version == MQTT_V311 ? "3.1.1" : "3.1", k->keepalive, k->clean,
		 present);
	if (present)
		sess_resume(s, se);
	return 0;
}

int connect_first(struct shard *s, struct conn *c)
{
	struct mqtt_frame f;
	struct mqtt_packet pkt;
	uint8_t reason = 0, level;
	unsigned home;
	int r;

	RMQ_ASSERT(c->owner_shard == s->id);
	if (c->in.data[0] == 0x16 && !c->tls) { /* a TLS handshake record */
		conn_close(s, c, MQTT_RC_PROTOCOL_ERROR, false, "TLS sent to a plain MQTT listener");
		log_info(NULL, "connection from %s closed: TLS sent to a plain MQTT listener", c->peer);
		return 1;
	}
	if ((c->in.data[0] >> 4) != MQTT_CONNECT) {
		conn_close(s, c, MQTT_RC_PROTOCOL_ERROR, false, "first packet is not CONNECT"); /* [MQTT-3.1.0-1] */
		return 1;
	}
	r = mqtt_frame_cut(c->in.data, c->in.len, s->b->cfg->connect_packet_size_max, &f, &reason);
	RMQ_ASSERT(r > 0); /* the caller saw a whole frame */
	r = mqtt_decode(MQTT_V311, c->in.data, (size_t)r, &pkt, &reason); /* version: CONNECT carries its own */
	if (r < 0) {
		level = peek_level(c->in.data, c->in.len);
		if (reason == MQTT_RC_UNSUPPORTED_VERSION && level != MQTT_V5) {
			/* [MQTT-3.1.2-2] CONNACK 1, in the 3.1.1 form every version reads */
			refuse(s, c, MQTT_V311, 0, MQTT_V3_BAD_VERSION, "unsupported protocol version");
		} else if (level == MQTT_V5 && reason != MQTT_RC_UNSUPPORTED_VERSION) {
			refuse(s, c, MQTT_V5, reason, 0, "malformed CONNECT");
		} else if (level == MQTT_V5) {
			refuse(s, c, MQTT_V5, reason, 0, "unsupported protocol version");
		} else {
			conn_close(s, c, reason, false, "malformed CONNECT"); /* 3.x: close, no CONNACK */
		}
		return 1;
	}
	c->in.off = (uint32_t)r;
	c->connect_len = (uint32_t)r;
	if (pkt.connect.version == MQTT_V5 && (pkt.connect.props.present & MQTT_HAS(MQTT_PROP_MAX_PACKET_SIZE)))
		c->packet_max_out = pkt.connect.props.max_packet_size; /* refusals respect it too */
	/* The home shard checks and authenticates: the session, its take-over
	 * and any AUTH exchange then stay on one thread. */
	if (pkt.connect.client_id.len) {
		home = shard_home(s->b, pkt.connect.client_id.ptr, pkt.connect.client_id.len);
		if (home != s->id)
			return handoff(s, c, home);
	}
	if (connect_check(s, c, &pkt.connect))
		return 1;
	if (pkt.connect.version == MQTT_V5 && (pkt.connect.props.present & MQTT_HAS(MQTT_PROP_AUTH_METHOD)))
		return login_begin(s, c, &pkt.connect);
	return connect_accept_now(s, c, &pkt.connect, NULL);
}

int connect_accept_now(struct shard *s, struct conn *c, const struct mqtt_connect *k, const struct mqtt_str *auth_data)
{
	char gen_id[GENERATED_ID_BYTES];

	if (k->client_id.len == 0) {
		generate_id(s, gen_id); /* hashes to this shard: no hand-off */
		return connect_accept(s, c, k, gen_id, auth_data);
	}
	return connect_accept(s, c, k, NULL, auth_data);
}
