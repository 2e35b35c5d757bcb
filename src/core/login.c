/*
 * login.c - MQTT 5 enhanced authentication (section 4.12) with the
 * SCRAM-SHA-512 method, against the password file.
 *
 *   CONNECT  (method, client-first)  ->  AUTH 0x18 (method, server-first)
 *   AUTH 0x18 (method, client-final) ->  CONNACK 0x00 (method, server-final)
 *
 * While the exchange runs the connection is in CONN_AUTH: its CONNECT stays
 * at the start of c->in (connect_len bytes) and the AUTH packets follow it;
 * when the proof checks out, the CONNECT is decoded again and accepted as
 * if it had just arrived.  The exchange lives on the client id's home shard
 * (the hand-off happens before authentication), bounded by connect_timeout
 * and connect_packet_size_max like any connection that has no CONNACK yet.
 * A failure is CONNACK 0x86 (bad user name or password), 0x8C (method not
 * supported, or no password_file to check against) or 0x82 (a packet other
 * than AUTH in the middle of the exchange) [MQTT-4.12.0-1..7].
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <urcu-qsbr.h>

#include "ringmq/auth.h"
#include "ringmq/backoff.h"
#include "ringmq/conn.h"
#include "ringmq/log.h"
#include "ringmq/proto.h"
#include "ringmq/sess.h"
#include "ringmq/shard.h"

#define SCRAM_OUT_BYTES 512

static int login_refuse(struct shard *s, struct conn *c, uint8_t reason, const char *why)
{
	struct mqtt_props p = {0};

	log_info(NULL, "connection from %s refused: %s", c->peer, why);
	p.present = MQTT_HAS(MQTT_PROP_REASON_STRING);
	p.reason_string.ptr = (const uint8_t *)why;
	p.reason_string.len = (uint32_t)strlen(why);
	c->scram = scram_free(c->scram);
	connect_connack(s, c, MQTT_V5, reason, false, &p);
	conn_close_after_flush(s, c);
	return 1;
}

static bool is_scram(const struct mqtt_str *m)
{
	return m->len == sizeof(AUTH_SCRAM_METHOD) - 1 && memcmp(m->ptr, AUTH_SCRAM_METHOD, m->len) == 0;
}

/* Queue AUTH @reason with the method and @data on an active connection. */
static void auth_packet(struct shard *s, struct conn *c, uint8_t reason, const struct mqtt_str *method,
			const uint8_t *data, size_t len)
{
	struct mqtt_packet pkt = {.type = MQTT_AUTH};

	pkt.disconnect.reason = reason;
	pkt.disconnect.props.present = MQTT_HAS(MQTT_PROP_AUTH_METHOD) | MQTT_HAS(MQTT_PROP_AUTH_DATA);
	pkt.disconnect.props.auth_method = *method;
	pkt.disconnect.props.auth_data.ptr = data;
	pkt.disconnect.props.auth_data.len = (uint32_t)len;
	(void)conn_send_packet(s, c, &pkt); /* failure closes the connection */
}

static void send_auth(struct shard *s, struct conn *c, const struct mqtt_str *method, const uint8_t *data,
		      size_t len)
{
	struct mqtt_packet pkt = {.type = MQTT_AUTH};

	pkt.disconnect.reason = MQTT_RC_CONTINUE_AUTH;
	pkt.disconnect.props.present = MQTT_HAS(MQTT_PROP_AUTH_METHOD) | MQTT_HAS(MQTT_PROP_AUTH_DATA);
	pkt.disconnect.props.auth_method = *method;
	pkt.disconnect.props.auth_data.ptr = data;
	pkt.disconnect.props.auth_data.len = (uint32_t)len;
	c->version = MQTT_V5; /* AUTH exists only in MQTT 5 */
	c->state = CONN_ACTIVE; /* so the packet can be queued */
	(void)conn_send_packet(s, c, &pkt); /* failure closes the connection */
	if (c->state == CONN_ACTIVE)
		c->state = CONN_AUTH;
}

int login_begin(struct shard *s, struct conn *c, const struct mqtt_connect *k)
{
	const struct mqtt_props *p = &k->props;
	uint8_t out[SCRAM_OUT_BYTES];
	size_t n;

	RMQ_ASSERT(c->owner_shard == s->id);
	if (!is_scram(&p->auth_method))
		return login_refuse(s, c, MQTT_RC_BAD_AUTH_METHOD, "authentication method not supported");
	const struct auth_db *db = rcu_dereference(s->b->auth);

	if (!db)
		return login_refuse(s, c, MQTT_RC_BAD_AUTH_METHOD,
				    "SCRAM-SHA-512 needs a password store: no password_file is configured");
	if (backoff_blocked(s->b->backoff, c->peer, s->now_ms))
		return login_refuse(s, c, MQTT_RC_BAD_USER_OR_PASSWORD, "too many failed logins: backing off");
	if (!(p->present & MQTT_HAS(MQTT_PROP_AUTH_DATA)) ||
	    scram_first(db, p->auth_data.ptr, p->auth_data.len, &c->scram, out, sizeof(out), &n) < 0)
		return login_refuse(s, c, MQTT_RC_BAD_USER_OR_PASSWORD, "malformed SCRAM client-first message");
	send_auth(s, c, &p->auth_method, out, n);
	return 0;
}

/* The CONNECT kept at the start of c->in, decoded again. */
static int connect_again(struct conn *c, struct mqtt_packet *ret)
{
	uint8_t reason;
	return mqtt_decode(MQTT_V5, c->in.data, c->connect_len, ret, &reason) > 0 ? 0 : -EINVAL;
}

int login_continue(struct shard *s, struct conn *c)
{
	struct mqtt_packet auth, conn;
	uint8_t out[SCRAM_OUT_BYTES], reason;
	struct mqtt_str final;
	size_t n;
	int r;

	RMQ_ASSERT(c->state == CONN_AUTH && c->scram);
	r = mqtt_decode(MQTT_V5, c->in.data + c->in.off, c->in.len - c->in.off, &auth, &reason);
	if (r < 0)
		return login_refuse(s, c, reason, "malformed packet during authentication");
	c->in.off += (uint32_t)r;
	if (auth.type == MQTT_DISCONNECT) {
		c->scram = scram_free(c->scram);
		conn_close(s, c, 0, false, "client gave up authenticating");
		return 1;
	}
	RMQ_ASSERT(connect_again(c, &conn) == 0); /* it decoded before */
	if (auth.type != MQTT_AUTH || auth.disconnect.reason != MQTT_RC_CONTINUE_AUTH ||
	    !(auth.disconnect.props.present & MQTT_HAS(MQTT_PROP_AUTH_METHOD)) ||
	    auth.disconnect.props.auth_method.len != conn.connect.props.auth_method.len ||
	    memcmp(auth.disconnect.props.auth_method.ptr, conn.connect.props.auth_method.ptr,
		   auth.disconnect.props.auth_method.len) != 0)
		return login_refuse(s, c, MQTT_RC_PROTOCOL_ERROR, "expected AUTH 0x18 with the same method");
	r = scram_final(c->scram, auth.disconnect.props.auth_data.ptr, auth.disconnect.props.auth_data.len, out,
			sizeof(out), &n);
	if (r < 0) {
		backoff_failed(s->b->backoff, c->peer, s->now_ms, s->b->cfg->auth_backoff_max_s);
		return login_refuse(s, c, MQTT_RC_BAD_USER_OR_PASSWORD, "SCRAM proof does not match");
	}
	backoff_ok(s->b->backoff, c->peer);
	log_info(NULL, "connection from %s authenticated as '%s' (SCRAM-SHA-512)", c->peer, scram_user(c->scram));
	c->auth_user = strdup(scram_user(c->scram));
	if (!c->auth_user)
		return login_refuse(s, c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
	c->scram = scram_free(c->scram);
	c->scram_login = true;
	final.ptr = out;
	final.len = (uint32_t)n;
	c->state = CONN_NEW; /* connect_accept_now() moves it to CONN_ACTIVE */
	return connect_accept_now(s, c, &conn.connect, &final);
}

/* Re-authentication (MQTT 5 section 4.12.1): AUTH 0x19 starts a new SCRAM
 * exchange on an active connection that logged in with SCRAM; AUTH 0x18
 * carries the client's final message; success is AUTH 0x00 with the
 * server's signature, failure DISCONNECT 0x86.  Other packets keep flowing
 * meanwhile. */
void login_reauth(struct shard *s, struct conn *c, const struct mqtt_disconnect *a)
{
	const struct auth_db *db = rcu_dereference(s->b->auth);
	uint8_t out[SCRAM_OUT_BYTES];
	size_t n;

	c->publish_will = true;
	if (!c->scram_login || !(a->props.present & MQTT_HAS(MQTT_PROP_AUTH_METHOD)) ||
	    !is_scram(&a->props.auth_method) ||
	    !(a->reason == MQTT_RC_REAUTHENTICATE ? !c->scram : a->reason == MQTT_RC_CONTINUE_AUTH && c->scram)) {
		/* [MQTT-4.12.0-7] [MQTT-4.12.1-1] only with the method of the CONNECT, in order */
		conn_close(s, c, MQTT_RC_PROTOCOL_ERROR, true, "unexpected AUTH");
		return;
	}
	if (a->reason == MQTT_RC_REAUTHENTICATE) {
		if (!db || scram_first(db, a->props.auth_data.ptr, a->props.auth_data.len, &c->scram, out, sizeof(out),
				       &n) < 0) {
			conn_close(s, c, MQTT_RC_BAD_USER_OR_PASSWORD, true, "re-authentication refused");
			return;
		}
		auth_packet(s, c, MQTT_RC_CONTINUE_AUTH, &a->props.auth_method, out, n);
		return;
	}
	if (scram_final(c->scram, a->props.auth_data.ptr, a->props.auth_data.len, out, sizeof(out), &n) < 0) {
		c->scram = scram_free(c->scram);
		backoff_failed(s->b->backoff, c->peer, s->now_ms, s->b->cfg->auth_backoff_max_s);
		conn_close(s, c, MQTT_RC_BAD_USER_OR_PASSWORD, true, "re-authentication failed");
		return;
	}
	if (c->sess) { /* the credentials of the new exchange apply from now on */
		char *user = strdup(scram_user(c->scram));
		if (user) {
			free(c->sess->username);
			c->sess->username = user;
		}
	}
	log_info(c->client_id, "re-authenticated as '%s' (SCRAM-SHA-512)", scram_user(c->scram));
	c->scram = scram_free(c->scram);
	auth_packet(s, c, MQTT_RC_SUCCESS, &a->props.auth_method, out, n);
}
