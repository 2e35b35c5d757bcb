#!/usr/bin/python3
"""MQTT 5 features with a third-party client: Eclipse Paho (python3-paho-mqtt 1.6.1).

The C tests 12..17 check each MQTT 5 feature byte by byte with our own
client; this file checks that a widely used client library gets the same
behaviour through its own API: shared subscriptions (each message to one
member), subscription identifiers, No Local, Retain As Published and Retain
Handling, request/response (Response Topic, Correlation Data), Message
Expiry Interval counted down for a queued message, user properties in order,
and client-to-server topic aliases.  It reuses the broker and client
helpers of paho_test.py (same directory), so the broker runs the same way:
ringmq from RMQ_BINARY with --shards RMQ_SHARDS, or mosquitto under
RMQ_TEST_BROKER=mosquitto.  Tests wait on events with timeouts; the only
fixed waits are bounded windows for something that must not happen and the
message expiry being counted down.
"""

import os
import queue
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paho_test import WAIT_S, Client, PahoTest  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from paho.mqtt.subscribeoptions import SubscribeOptions  # noqa: E402


def drain(clients, want, deadline_s=2 * WAIT_S):
    """Collect messages from several clients until @want arrived in total;
    returns a list of (client index, message)."""
    got = []
    end = time.monotonic() + deadline_s
    while len(got) < want:
        progress = False
        for i, c in enumerate(clients):
            try:
                got.append((i, c.messages.get(timeout=0.02)))
                progress = True
            except queue.Empty:
                pass
        if not progress and time.monotonic() > end:
            raise AssertionError("%d of %d messages arrived" % (len(got), want))
    return got


class Paho5Features(PahoTest):
    version = mqtt.MQTTv5

    def subscribe_with(self, c, topic, options, sub_id=None):
        """SUBSCRIBE with SubscribeOptions and an optional Subscription Identifier."""
        acked = queue.Queue()
        c.c.on_subscribe = lambda client, userdata, mid, codes, properties=None: acked.put(codes)
        props = None
        if sub_id is not None:
            props = Properties(PacketTypes.SUBSCRIBE)
            props.SubscriptionIdentifier = sub_id
        c.c.subscribe(topic, options=options, properties=props)
        codes = Client._get(acked, "SUBACK for %s" % topic)
        self.assertLess(codes[0].value, 0x80, "SUBSCRIBE %s refused: %s" % (topic, codes[0]))

    def publish_props(self, c, topic, payload, qos, props, retain=False):
        info = c.c.publish(topic, payload, qos=qos, retain=retain, properties=props)
        info.wait_for_publish(WAIT_S)
        self.assertTrue(info.is_published(), "publish to %r not completed" % topic)

    def test_shared_subscription_one_member_per_message(self):
        """4.8.2: three members of $share/pg/..., 30 messages: each to one member."""
        members = [self.client("paho-share-%d" % i) for i in range(3)]
        for m in members:
            m.subscribe("$share/pg/paho/shared", 1)
        pub = self.client("paho-share-pub")
        for i in range(30):
            pub.publish("paho/shared", b"s%02d" % i, 1)
        got = drain(members, 30)
        payloads = sorted(m.payload for _, m in got)
        self.assertEqual(payloads, sorted(b"s%02d" % i for i in range(30)),
                         "a message reached several members or none")
        self.assertGreaterEqual(len({i for i, _ in got}), 2, "round robin used one member only")
        for m in members:
            m.expect_nothing()
        for c in members + [pub]:
            c.disconnect()
        self.broker.stop()

    def test_subscription_identifier_delivered(self):
        """[MQTT-3.3.4-3] the subscription's identifier comes with the message."""
        sub = self.client("paho-subid")
        self.subscribe_with(sub, "paho/subid/+", SubscribeOptions(qos=1), sub_id=4242)
        pub = self.client("paho-subid-pub")
        pub.publish("paho/subid/a", b"x", 1)
        m = sub.expect("paho/subid/a", b"x", 1)
        self.assertEqual(getattr(m.properties, "SubscriptionIdentifier", None), [4242])
        sub.disconnect()
        pub.disconnect()
        self.broker.stop()

    def test_no_local_and_retain_as_published(self):
        """[MQTT-3.8.3-3] No Local; [MQTT-3.3.1-13] Retain As Published."""
        me = self.client("paho-nl")
        self.subscribe_with(me, "paho/nl", SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True))
        other = self.client("paho-nl-other")
        me.publish("paho/nl", b"mine", 1)
        me.expect_nothing()
        other.publish("paho/nl", b"theirs", 1, retain=True)
        m = me.expect("paho/nl", b"theirs", 1)
        self.assertTrue(m.retain, "Retain As Published: RETAIN 0 on a retained message")
        me.disconnect()
        other.disconnect()
        self.broker.stop()

    def test_retain_handling(self):
        """[MQTT-3.3.1-9/10/11] Retain Handling 2, 1 (new and existing), 0."""
        pub = self.client("paho-rh-pub")
        pub.publish("paho/rh", b"kept", 1, retain=True)
        sub = self.client("paho-rh")
        self.subscribe_with(sub, "paho/rh", SubscribeOptions(qos=1, retainHandling=2))
        sub.expect_nothing()
        self.subscribe_with(sub, "paho/rh", SubscribeOptions(qos=1, retainHandling=1))
        sub.expect_nothing()
        self.subscribe_with(sub, "paho/+", SubscribeOptions(qos=1, retainHandling=1))
        self.assertTrue(sub.expect("paho/rh", b"kept", 1).retain)
        self.subscribe_with(sub, "paho/rh", SubscribeOptions(qos=1, retainHandling=0))
        self.assertTrue(sub.expect("paho/rh", b"kept", 1).retain)
        sub.expect_nothing()
        sub.disconnect()
        pub.disconnect()
        self.broker.stop()

    def test_request_response_and_user_properties(self):
        """[MQTT-3.3.2-15/16/17/18] Response Topic, Correlation Data, user properties."""
        requester = self.client("paho-requester")
        requester.subscribe("paho/reply", 1)
        responder = self.client("paho-responder")
        responder.subscribe("paho/request", 1)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "paho/reply"
        props.CorrelationData = b"\x00\x01corr"
        props.UserProperty = [("b", "1"), ("a", "2"), ("b", "3")]
        self.publish_props(requester, "paho/request", b"ping", 1, props)
        m = responder.expect("paho/request", b"ping", 1)
        self.assertEqual(m.properties.ResponseTopic, "paho/reply")
        self.assertEqual(m.properties.CorrelationData, b"\x00\x01corr")
        self.assertEqual(m.properties.UserProperty, [("b", "1"), ("a", "2"), ("b", "3")])
        reply = Properties(PacketTypes.PUBLISH)
        reply.CorrelationData = m.properties.CorrelationData
        self.publish_props(responder, m.properties.ResponseTopic, b"pong", 1, reply)
        r = requester.expect("paho/reply", b"pong", 1)
        self.assertEqual(r.properties.CorrelationData, b"\x00\x01corr")
        requester.disconnect()
        responder.disconnect()
        self.broker.stop()

    def test_message_expiry_counted_down_for_queued_message(self):
        """[MQTT-3.3.2-5/6] queued 2 s: the 1 s message is gone, the 60 s one says <= 58."""
        sub = self.client("paho-mx", clean=False, expiry=300)
        sub.subscribe("paho/mx", 1)
        sub.disconnect()
        pub = self.client("paho-mx-pub")
        for payload, expiry in ((b"short", 1), (b"long", 60)):
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = expiry
            self.publish_props(pub, "paho/mx", payload, 1, props)
        time.sleep(2.2)  # bounded: the expiry itself is what is tested
        sub = self.client("paho-mx", clean=False, expiry=300)
        self.assertTrue(sub.session_present)
        m = sub.expect("paho/mx", b"long", 1)
        self.assertLessEqual(m.properties.MessageExpiryInterval, 58)
        sub.expect_nothing()
        sub.disconnect()
        pub.disconnect()
        self.broker.stop()

    def test_client_topic_alias(self):
        """[MQTT-3.3.2-12] an alias set with a topic is then used with an empty topic."""
        sub = self.client("paho-alias-sub")
        sub.subscribe("paho/alias/long/name", 1)
        pub = self.client("paho-alias-pub")
        props = Properties(PacketTypes.PUBLISH)
        props.TopicAlias = 3
        self.publish_props(pub, "paho/alias/long/name", b"set", 1, props)
        self.publish_props(pub, "", b"used", 1, props)
        sub.expect("paho/alias/long/name", b"set", 1)
        sub.expect("paho/alias/long/name", b"used", 1)
        sub.disconnect()
        pub.disconnect()
        self.broker.stop()


def load_tests(loader, tests, pattern):
    # Only this file's tests: paho_test.py runs the inherited ones.
    names = [n for n in loader.getTestCaseNames(Paho5Features) if n in vars(Paho5Features)]
    return unittest.TestSuite(Paho5Features(n) for n in names)


if __name__ == "__main__":
    unittest.main(verbosity=2)
