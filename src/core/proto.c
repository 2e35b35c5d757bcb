/*
 * proto.c - dispatch of packets on an active connection.
 *
 * CONNECT is handled before a connection becomes active (connect.c); here
 * a second CONNECT is a protocol error [MQTT-3.1.0-2], and packets only a
 * server sends (CONNACK, SUBACK, UNSUBACK, PINGRESP) are protocol errors.
 */
#include "ringmq/conn.h"
#include "ringmq/log.h"
#include "ringmq/proto.h"
#include "ringmq/sess.h"
#include "ringmq/shard.h"

static void disconnect_in(struct shard *s, struct conn *c, const struct mqtt_disconnect *d)
{
	struct sess *se = c->sess;

	if (c->version == MQTT_V5 && (d->props.present & MQTT_HAS(MQTT_PROP_SESSION_EXPIRY))) {
		if (se->expiry_s == 0 && d->props.session_expiry != 0) {
			/* MQTT 5 section 3.14.2.2.2: no non-zero expiry after connecting with zero */
			conn_close(s, c, MQTT_RC_PROTOCOL_ERROR, true, "session expiry set on DISCONNECT after 0");
			return;
		}
		se->expiry_s = d->props.session_expiry;
	}
	/* [MQTT-3.14.4-3] normal DISCONNECT deletes the will; 0x04 keeps it */
	c->publish_will = c->version == MQTT_V5 && d->reason == MQTT_RC_DISCONNECT_WITH_WILL;
	conn_close(s, c, d->reason, false, "client sent DISCONNECT");
}

void proto_dispatch(struct shard *s, struct conn *c, const struct mqtt_packet *pkt)
{
	struct mqtt_packet resp = {.type = MQTT_PINGRESP};

	switch (pkt->type) {
	case MQTT_PUBLISH:
		publish_in(s, c, &pkt->publish);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		publish_ack_in(s, c, pkt->type, &pkt->ack);
		break;
	case MQTT_SUBSCRIBE:
		subscribe_in(s, c, &pkt->subscribe);
		break;
	case MQTT_UNSUBSCRIBE:
		unsubscribe_in(s, c, &pkt->subscribe);
		break;
	case MQTT_PINGREQ:
		(void)conn_send_packet(s, c, &resp); /* failure closes the connection */
		break;
	case MQTT_DISCONNECT:
		disconnect_in(s, c, &pkt->disconnect);
		break;
	case MQTT_CONNECT:
		c->publish_will = true;
		conn_close(s, c, MQTT_RC_PROTOCOL_ERROR, true, "second CONNECT"); /* [MQTT-3.1.0-2] */
		break;
	case MQTT_AUTH:
		login_reauth(s, c, &pkt->disconnect);
		break;
	default:
		c->publish_will = true;
		conn_close(s, c, MQTT_RC_PROTOCOL_ERROR, true, "packet type only a server may send");
		break;
	}
}
