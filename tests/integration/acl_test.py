#!/usr/bin/python3
"""acl_file enforcement on every delivery path, through the real binary.

An ACL in mosquitto's syntax (anonymous section, users, topic rules with
read/write/readwrite/deny, patterns with %c and %u) is checked with Debian's
paho-mqtt clients (MQTT 3.1.1 and 5.0) on: live publishes, the publish
permission itself (MQTT 5 PUBACK 0x87), subscriptions (SUBACK 0x80 / 0x87),
wildcard subscriptions that only partly overlap what may be read, retained
messages sent on subscribe, wills, messages queued for an offline session,
shared subscription groups, '$' topics.  Broken files stop start-up; a bad
file on SIGHUP keeps the old rules.  Runs ringmq from RMQ_BINARY with
--shards RMQ_SHARDS; messages that must not arrive are checked after a
message that must, published later on the same path (ordering per
publisher), so no test sleeps for an absence.
"""

import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import unittest

try:
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
except ImportError as e:  # a missing dependency is a failure, never a skip
    sys.exit("acl_test.py needs python3-paho-mqtt under /usr/bin/python3: %s" % e)

WAIT_S = 5.0

ACL = """
# anonymous clients
topic read public/#

user alice
topic readwrite alice/#
topic deny alice/secret/#
topic read shared/#
topic write inbox/#

user bob
topic readwrite bob/#
topic read alice/pub/#
topic read shared/#

user admin
topic readwrite #
topic readwrite $SYS/#

pattern readwrite clients/%c/#
pattern read users/%u/#
"""


class Broker:
    def __init__(self):
        binary = os.environ.get("RMQ_BINARY")
        if not binary:
            raise RuntimeError("RMQ_BINARY is not set (meson sets it)")
        self.dir = tempfile.mkdtemp(prefix="rmq-acl-")
        self.pw = os.path.join(self.dir, "passwd")
        self.acl = os.path.join(self.dir, "acl")
        for user in ("alice", "bob", "admin"):
            subprocess.run([binary, "passwd", "-b", "-I", "100", self.pw, user, user + "-pw"], check=True)
        with open(self.acl, "w") as f:
            f.write(ACL)
        conf = os.path.join(self.dir, "ringmq.conf")
        with open(conf, "w") as f:
            f.write("listener 0 127.0.0.1\npersistence false\nallow_anonymous true\n"
                    "password_file %s\nacl_file %s\n" % (self.pw, self.acl))
        self.proc = subprocess.Popen([binary, "-c", conf, "--shards", os.environ.get("RMQ_SHARDS", "1")],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.log, self.port, ready = [], None, threading.Event()

        def read():
            for line in self.proc.stdout:
                self.log.append(line)
                m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        ready.wait(10)
        assert self.port, "broker did not start:\n" + "".join(self.log)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            assert self.proc.wait(10) == 0, "broker did not exit cleanly:\n" + "".join(self.log)


class Client:
    def __init__(self, broker, cid, user=None, v5=False, clean=True, will=None):
        self.msgs, self.acks, self.subacks = queue.Queue(), queue.Queue(), queue.Queue()
        self.v5 = v5
        if v5:
            self.c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv5)
        else:
            self.c = mqtt.Client(client_id=cid, clean_session=clean, protocol=mqtt.MQTTv311)
        if user:
            self.c.username_pw_set(user, user + "-pw")
        if will:
            self.c.will_set(will, b"gone", 1)
        self.c.on_message = lambda c, u, m: self.msgs.put((m.topic, m.payload, m.retain))
        if v5:
            self.c.on_subscribe = lambda c, u, mid, codes, p: self.subacks.put([x.value for x in codes])
            self.c.on_publish = lambda c, u, mid: None
        else:
            self.c.on_subscribe = lambda c, u, mid, codes: self.subacks.put(list(codes))
        connected = threading.Event()
        self.rc = None

        def on_connect(c, u, flags, rc, props=None):
            self.rc = rc
            connected.set()

        self.c.on_connect = on_connect
        kw = {"clean_start": clean} if v5 else {}
        self.c.connect("127.0.0.1", broker.port, 60, **kw)
        self.c.loop_start()
        assert connected.wait(WAIT_S), "no CONNACK for " + cid
        assert self.rc == 0, "%s refused: %s" % (cid, self.rc)

    def sub(self, flt, qos=1):
        self.c.subscribe(flt, qos)
        return self.subacks.get(timeout=WAIT_S)[0]

    def pub(self, topic, payload, qos=1, retain=False):
        info = self.c.publish(topic, payload, qos, retain)
        info.wait_for_publish(WAIT_S)
        return info

    def expect(self, topic, payload):
        """The next message must be (topic, payload): anything before it was not allowed."""
        t, p, _ = self.msgs.get(timeout=WAIT_S)
        assert (t, p) == (topic, payload), "expected %s %r, got %s %r" % (topic, payload, t, p)

    def close(self, clean=True):
        if clean:
            self.c.disconnect()
        else:
            self.c._sock.shutdown(2) if self.c._sock else None
        self.c.loop_stop()


class AclTest(unittest.TestCase):
    def setUp(self):
        self.b = Broker()

    def tearDown(self):
        self.b.stop()

    def test_publish_permission_and_live_delivery(self):
        bob = Client(self.b, "bob-1", "bob")
        self.assertEqual(bob.sub("bob/#"), 1)
        self.assertEqual(bob.sub("alice/#"), 1)  # overlaps alice/pub/# only
        alice = Client(self.b, "alice-1", "alice", v5=True)
        denied = []
        alice.c.on_publish = lambda c, u, mid: denied.append(mid)
        alice.pub("bob/x", b"no write")            # alice may not write bob/#
        alice.pub("alice/private", b"not for bob")  # bob may not read it
        alice.pub("alice/pub/1", b"for bob")
        bob.expect("alice/pub/1", b"for bob")
        admin = Client(self.b, "admin-1", "admin")
        admin.pub("bob/y", b"admin writes")
        bob.expect("bob/y", b"admin writes")
        for c in (bob, alice, admin):
            c.close()

    def test_suback_refusals_0x87_in_v5_0x80_in_v311(self):
        alice = Client(self.b, "alice-2", "alice", v5=True)
        self.assertEqual(alice.sub("bob/#"), 0x87)  # MQTT 5 SUBACK: Not authorized
        bob = Client(self.b, "bob-2", "bob")
        self.assertEqual(bob.sub("secret/#"), 0x80)
        self.assertEqual(bob.sub("$SYS/#"), 0x80)
        self.assertEqual(bob.sub("#"), 1)           # partly readable: allowed, filtered per message
        alice.close()
        bob.close()

    def test_wildcard_subscription_gets_only_readable_topics_and_deny_wins(self):
        alice = Client(self.b, "alice-3", "alice")
        self.assertEqual(alice.sub("alice/#"), 1)
        admin = Client(self.b, "admin-3", "admin")
        admin.pub("alice/secret/x", b"denied")
        admin.pub("alice/ok", b"allowed")
        alice.expect("alice/ok", b"allowed")
        alice.pub("alice/secret/y", b"no write either")
        alice.pub("alice/ok2", b"own")
        alice.expect("alice/ok2", b"own")
        alice.close()
        admin.close()

    def test_retained_messages_on_subscribe_are_filtered(self):
        admin = Client(self.b, "admin-4", "admin")
        admin.pub("alice/priv/r", b"hidden", retain=True)
        admin.pub("alice/pub/r", b"visible", retain=True)
        bob = Client(self.b, "bob-4", "bob")
        self.assertEqual(bob.sub("alice/#"), 1)
        bob.expect("alice/pub/r", b"visible")
        admin.pub("alice/pub/end", b"end")
        bob.expect("alice/pub/end", b"end")  # nothing hidden came in between
        bob.close()
        admin.close()

    def test_will_needs_write_permission(self):
        admin = Client(self.b, "admin-5", "admin")
        self.assertEqual(admin.sub("#"), 1)
        bad = Client(self.b, "alice-5a", "alice", will="bob/will")
        bad.close(clean=False)
        good = Client(self.b, "alice-5b", "alice", will="alice/will")
        good.close(clean=False)
        admin.expect("alice/will", b"gone")  # and not bob/will before it
        admin.close()

    def test_offline_queue_is_filtered_when_delivered(self):
        bob = Client(self.b, "bob-6", "bob", clean=False)
        self.assertEqual(bob.sub("#"), 1)
        bob.close()
        admin = Client(self.b, "admin-6", "admin")
        admin.pub("alice/x", b"not readable")
        admin.pub("alice/pub/q", b"readable")
        admin.close()
        bob = Client(self.b, "bob-6", "bob", clean=False)
        bob.expect("alice/pub/q", b"readable")
        bob.close()

    def test_shared_groups_and_patterns(self):
        bob = Client(self.b, "c7", "bob", v5=True)
        self.assertEqual(bob.sub("$share/g/alice/#"), 1)
        self.assertEqual(bob.sub("clients/c7/#"), 1)     # %c
        self.assertEqual(bob.sub("users/bob/#"), 1)      # %u
        self.assertEqual(bob.sub("clients/c8/#"), 0x87)  # someone else's %c
        admin = Client(self.b, "admin-7", "admin")
        admin.pub("alice/x", b"not readable")
        admin.pub("alice/pub/s", b"shared ok")
        bob.expect("alice/pub/s", b"shared ok")
        bob.pub("clients/c7/t", b"own pattern")
        bob.expect("clients/c7/t", b"own pattern")
        admin.pub("users/bob/n", b"to bob")
        bob.expect("users/bob/n", b"to bob")
        bob.close()
        admin.close()

    def test_anonymous_section(self):
        anon = Client(self.b, "anon-8")
        self.assertEqual(anon.sub("public/#"), 1)
        self.assertEqual(anon.sub("alice/#"), 0x80)
        anon.pub("public/x", b"anonymous may not write")
        admin = Client(self.b, "admin-8", "admin")
        admin.pub("public/y", b"from admin")
        anon.expect("public/y", b"from admin")
        anon.close()
        admin.close()


class AclFileTest(unittest.TestCase):
    def test_broken_acl_files_stop_start_up_and_sighup_keeps_old_rules(self):
        b = Broker()
        try:
            with open(b.acl, "w") as f:
                f.write("topic sometimes x\n")
            b.proc.send_signal(signal.SIGHUP)
            for _ in range(100):
                if any("acl_file not reloaded" in l for l in b.log):
                    break
                threading.Event().wait(0.05)
            self.assertTrue(any("%s:1: access must be" % b.acl in l for l in b.log), "".join(b.log))
            bob = Client(b, "bob-9", "bob")  # old rules still apply
            self.assertEqual(bob.sub("bob/#"), 1)
            bob.close()
        finally:
            b.stop()
        for text, msg in (("", "no rules"), ("user\n", "user: expected"), ("topic read a/#/b\n", "not a valid"),
                          ("frobnicate\n", "expected 'user'")):
            with open(b.acl, "w") as f:
                f.write(text)
            conf = os.path.join(b.dir, "ringmq.conf")
            r = subprocess.run([os.environ["RMQ_BINARY"], "-c", conf], capture_output=True, text=True, timeout=10)
            self.assertNotEqual(r.returncode, 0, text)
            self.assertIn(msg, r.stderr, text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
