/*
 * proto.h - the protocol engine: what a shard does with each packet.
 *
 * connect.c handles the first packet (CONNECT), hand-off to the home
 * shard, session take-over and CONNACK; publish.c inbound PUBLISH, the
 * QoS flows in both directions and fan-out; subscribe.c SUBSCRIBE and
 * UNSUBSCRIBE with retained delivery.  All functions run on the shard that
 * owns the connection and assert it.
 *
 * Owner:    the calling shard.
 * Lifetime: stateless; state lives in conn and sess.
 * Shared:   never.
 */
#ifndef RINGMQ_PROTO_H
#define RINGMQ_PROTO_H

#include <stdint.h>

#include "ringmq/mqtt.h"

struct shard;
struct conn;
struct sess;
struct msg;
struct handoff;
struct mqtt_connect;

/**
 * connect_first() - @c is new and its input holds at least one whole frame.
 * Validates the CONNECT; answers, hands the socket off to the home shard,
 * or accepts it here.  Returns 0 when the connection is still this shard's
 * and active, 1 when it was handed off or closed.
 */
int connect_first(struct shard *s, struct conn *c);

/**
 * connect_accept_now() - every check passed (and any enhanced
 * authentication succeeded): attach the session and send CONNACK, with
 * @auth_data (the server's last SCRAM message) when not NULL.  Returns 0,
 * or 1 when the connection was refused and is closing.
 */
int connect_accept_now(struct shard *s, struct conn *c, const struct mqtt_connect *k,
		       const struct mqtt_str *auth_data);

/** connect_accept() - connect_accept_now() with a generated client id @gen_id (or NULL). */
int connect_accept(struct shard *s, struct conn *c, const struct mqtt_connect *k, const char *gen_id,
		   const struct mqtt_str *auth_data);

/** connect_connack() - queue a CONNACK (marks the connection active so it can be sent). */
void connect_connack(struct shard *s, struct conn *c, uint8_t version, uint8_t reason, bool present,
		     const struct mqtt_props *props);

/**
 * login_begin() - CONNECT carried an Authentication Method: start the
 * exchange (SCRAM-SHA-512) or refuse.  Returns 0 while it goes on (state
 * CONN_AUTH), 1 when refused and closing.
 */
int login_begin(struct shard *s, struct conn *c, const struct mqtt_connect *k);

/**
 * login_continue() - a whole packet follows the CONNECT in c->in during
 * CONN_AUTH.  Returns 0 when the connection is active (or still
 * authenticating), 1 when it was refused and is closing.
 */
int login_continue(struct shard *s, struct conn *c);

/** login_reauth() - an AUTH packet on an active connection (re-authentication). */
void login_reauth(struct shard *s, struct conn *c, const struct mqtt_disconnect *a);

/** connect_adopt() - a handed-off socket arrives at its home shard (takes @h). */
void connect_adopt(struct shard *s, struct handoff *h);

/** proto_dispatch() - one decoded packet from an active connection. */
void proto_dispatch(struct shard *s, struct conn *c, const struct mqtt_packet *pkt);

void publish_in(struct shard *s, struct conn *c, const struct mqtt_publish *p);
void publish_ack_in(struct shard *s, struct conn *c, uint8_t type, const struct mqtt_ack *a);

/**
 * publish_route() - route @m (caller keeps its reference) to every shard
 * with a matching subscriber, and deliver locally.
 */
void publish_route(struct shard *s, struct msg *m);
/** publish_local() - match @m in this shard's trie and deliver. */
void publish_local(struct shard *s, struct msg *m);

void subscribe_in(struct shard *s, struct conn *c, const struct mqtt_subscribe *sub);
/**
 * subscribe_restore() - put a stored subscription of @se back (start-up):
 * the session, the trie and route index or its shared group.  0 or -errno.
 */
int subscribe_restore(struct shard *s, struct sess *se, const uint8_t *filter, uint16_t len, uint8_t options,
		      uint32_t sub_id);
/** publish_send_ack() - queue PUBACK/PUBREC/PUBREL/PUBCOMP for @pid with @reason (v5). */
void publish_send_ack(struct shard *s, struct conn *c, uint8_t type, uint16_t pid, uint8_t reason);
void unsubscribe_in(struct shard *s, struct conn *c, const struct mqtt_subscribe *sub);

#endif
