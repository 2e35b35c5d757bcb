#!/usr/bin/python3
"""Interoperability with a third-party client: Eclipse Paho (python3-paho-mqtt 1.6.1).

Runs under Debian's /usr/bin/python3, which carries python3-paho-mqtt; a
python3 earlier on PATH usually does not.  For MQTT 3.1.1 and 5.0: QoS 0/1/2
end to end, retained messages, the will, and a persistent session resumed
with the messages queued while it was offline.  Each test starts its own
broker the way the C harness does (tests/integration/harness.c): ringmq
from RMQ_BINARY with --shards RMQ_SHARDS on an ephemeral port, waiting for
its "listening on 127.0.0.1:PORT" line; or, with RMQ_TEST_BROKER=mosquitto,
Debian's mosquitto as the oracle.  Tests wait on events with timeouts and
never sleep.  A failing test prints the broker's log.
"""

import os
import queue
import re
import signal
import socket
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
    sys.exit("paho_test.py needs python3-paho-mqtt under /usr/bin/python3: %s" % e)

WAIT_S = 5.0  # an event that must happen
QUIET_S = 0.3  # a window in which something must not happen
START_S = 10.0
STOP_S = 10.0


class Broker:
    """The broker under test, as a child process with its stderr in a log file."""

    def __init__(self, name):
        self.mosquitto = os.environ.get("RMQ_TEST_BROKER") == "mosquitto"
        self.shards = os.environ.get("RMQ_SHARDS", "1")
        logdir = os.environ.get("RMQ_TEST_LOGDIR") or tempfile.gettempdir()
        os.makedirs(logdir, exist_ok=True)
        kind = "mosquitto" if self.mosquitto else "ringmq"
        base = os.path.join(logdir, "%s-s%s-paho.%s" % (kind, self.shards, name))
        self.log_path, self.conf_path = base + ".log", base + ".conf"
        self.port = None
        self.proc = None
        self._listening = threading.Event()
        self._reader = None

    def start(self):
        if self.mosquitto:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            conf = ("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "log_dest stderr\nlog_type all\n" % self.port)
            if os.geteuid() == 0:
                conf += "user root\n"  # stay in reach of our signals
            argv = ["/usr/sbin/mosquitto", "-c", self.conf_path]
            # "Opening ... listen socket" comes before the listen(2); "running" after.
            pattern = re.compile(r"mosquitto version \S+ running")
        else:
            binary = os.environ.get("RMQ_BINARY")
            if not binary:
                raise RuntimeError("RMQ_BINARY is not set (meson sets it)")
            conf = "listener 0 127.0.0.1\nallow_anonymous true\npersistence false\n"
            argv = [binary, "-c", self.conf_path, "--shards", self.shards]
            pattern = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
        with open(self.conf_path, "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read, args=(pattern,), daemon=True)
        self._reader.start()
        # The reader sets the event on the listening line, or at end of
        # output when the broker exits early.
        if not self._listening.wait(START_S) or self.port is None:
            self.kill()
            raise AssertionError("broker not listening within %.0f s (exit status %s)"
                                 % (START_S, self.proc.poll()))

    def _read(self, pattern):
        """Copy the broker's output to the log file and spot the listening line."""
        with open(self.log_path, "w") as log:
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace")
                log.write(line)
                log.flush()
                m = pattern.search(line)
                if m and not self._listening.is_set():
                    if not self.mosquitto:
                        self.port = int(m.group(1))
                    self._listening.set()
        self._listening.set()

    def stop(self):
        """SIGTERM and a clean exit (status 0) within STOP_S."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(STOP_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("broker did not exit within %.0f s of SIGTERM" % STOP_S)
        self._reader.join(STOP_S)
        self.proc.stdout.close()
        if status != 0:
            raise AssertionError("broker exited with status %d" % status)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc and not self.proc.stdout.closed:
            self._reader.join(STOP_S)
            self.proc.stdout.close()

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return "(no log)"


class Client:
    """A paho client whose callbacks feed queues, so tests wait with timeouts."""

    def __init__(self, broker, client_id, version, clean=True, will=None, expiry=None):
        self.version = version
        self.messages = queue.Queue()
        self.connacks = queue.Queue()
        kwargs = {"client_id": client_id, "protocol": version}
        if version != mqtt.MQTTv5:
            kwargs["clean_session"] = clean
        self.c = mqtt.Client(**kwargs)
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        if will:
            self.c.will_set(will[0], will[1], qos=1)
        connect_kw = {}
        if version == mqtt.MQTTv5:
            connect_kw["clean_start"] = clean
            if expiry is not None:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = expiry
                connect_kw["properties"] = props
        self.c.connect("127.0.0.1", broker.port, keepalive=60, **connect_kw)
        self.c.loop_start()
        flags, rc = self._get(self.connacks, "CONNACK")
        if rc != 0:
            raise AssertionError("%s: connection refused, %s" % (client_id, rc))
        self.session_present = bool(flags.get("session present"))

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connacks.put((flags, rc))

    @staticmethod
    def _get(q, what, timeout=WAIT_S):
        try:
            return q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no %s within %.0f s" % (what, timeout)) from None

    def subscribe(self, topic, qos):
        done = threading.Event()
        granted = []

        def on_subscribe(client, userdata, mid, granted_qos, properties=None):
            granted.extend(g if isinstance(g, int) else g.value for g in granted_qos)
            done.set()

        self.c.on_subscribe = on_subscribe
        self.c.subscribe(topic, qos)
        if not done.wait(WAIT_S):
            raise AssertionError("no SUBACK for %s" % topic)
        if granted != [qos]:
            raise AssertionError("SUBACK %s for %s at QoS %d" % (granted, topic, qos))

    def publish(self, topic, payload, qos, retain=False):
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(WAIT_S)
        if not info.is_published():
            raise AssertionError("QoS %d publish of %s not completed" % (qos, topic))

    def expect(self, topic, payload, qos):
        m = self._get(self.messages, "message on %s" % topic)
        if (m.topic, m.payload, m.qos) != (topic, payload, qos):
            raise AssertionError("expected %s %r QoS %d, got %s %r QoS %d"
                                 % (topic, payload, qos, m.topic, m.payload, m.qos))
        return m

    def expect_nothing(self):
        try:
            m = self.messages.get(timeout=QUIET_S)
        except queue.Empty:
            return
        raise AssertionError("unexpected message %s %r" % (m.topic, m.payload))

    def disconnect(self):
        self.c.disconnect()
        self.c.loop_stop()

    def drop(self):
        """End the connection without DISCONNECT: stop paho's thread first so
        it cannot reconnect, then shut the socket down."""
        sock = self.c.socket()
        self.c.loop_stop()
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()




class PahoTest(unittest.TestCase):
    version = None  # set by the subclasses below

    def setUp(self):
        self.broker = Broker("%s.%s" % (type(self).__name__, self._testMethodName))
        self.broker.start()
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            try:
                c.c.loop_stop()
            except Exception:  # cleanup only: the test's own result stands
                pass
        self.broker.kill()

    def run(self, result=None):
        """Print the broker log when the test fails; keep it only then."""
        result = result or self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        super().run(result)
        broker = getattr(self, "broker", None)
        if broker is None:
            return result
        if len(result.failures) + len(result.errors) > before:
            sys.stderr.write("---- broker log %s ----\n%s---- end of broker log ----\n"
                             % (broker.log_path, broker.log()))
        else:
            for path in (broker.log_path, broker.conf_path):
                if os.path.exists(path):
                    os.unlink(path)
        return result

    def client(self, client_id, **kw):
        c = Client(self.broker, client_id, self.version, **kw)
        self.clients.append(c)
        return c

    def round_trip(self, qos):
        sub = self.client("paho-sub")
        pub = self.client("paho-pub")
        sub.subscribe("paho/qos", qos)
        pub.publish("paho/qos", b"hello %d" % qos, qos)
        sub.expect("paho/qos", b"hello %d" % qos, qos)
        sub.expect_nothing()
        sub.disconnect()
        pub.disconnect()
        self.broker.stop()

    def test_qos0_end_to_end(self):
        self.round_trip(0)

    def test_qos1_end_to_end(self):
        self.round_trip(1)

    def test_qos2_end_to_end(self):
        self.round_trip(2)

    def test_retained_message_delivered_to_new_subscriber(self):
        pub = self.client("paho-ret-pub")
        pub.publish("paho/retained", b"kept", 1, retain=True)
        sub = self.client("paho-ret-sub")
        sub.subscribe("paho/#", 1)
        m = sub.expect("paho/retained", b"kept", 1)
        self.assertTrue(m.retain, "retained message delivered with RETAIN 0 [MQTT-3.3.1-8]")
        sub.disconnect()
        pub.disconnect()
        self.broker.stop()

    def test_will_published_when_connection_drops(self):
        watcher = self.client("paho-watcher")
        watcher.subscribe("paho/will", 1)
        dying = self.client("paho-dying", will=("paho/will", b"gone"))
        dying.drop()
        watcher.expect("paho/will", b"gone", 1)
        watcher.disconnect()
        self.broker.stop()

    def test_will_not_published_after_disconnect(self):
        watcher = self.client("paho-watcher")
        watcher.subscribe("paho/will", 1)
        polite = self.client("paho-polite", will=("paho/will", b"gone"))
        polite.publish("paho/will", b"marker", 1)
        polite.disconnect()
        watcher.expect("paho/will", b"marker", 1)
        watcher.expect_nothing()
        watcher.disconnect()
        self.broker.stop()

    def test_persistent_session_gets_messages_queued_while_offline(self):
        sub = self.client("paho-persistent", clean=False, expiry=300)
        self.assertFalse(sub.session_present)
        sub.subscribe("paho/queued", 1)
        sub.disconnect()
        pub = self.client("paho-queue-pub")
        for i in range(3):
            pub.publish("paho/queued", b"m%d" % i, 1 + i % 2)
        sub = self.client("paho-persistent", clean=False, expiry=300)
        self.assertTrue(sub.session_present, "Session Present 0 on resume [MQTT-3.2.2-2]")
        for i in range(3):
            sub.expect("paho/queued", b"m%d" % i, 1)
        sub.expect_nothing()
        sub.disconnect()
        pub.disconnect()
        self.broker.stop()


class Paho311(PahoTest):
    version = mqtt.MQTTv311


class Paho5(PahoTest):
    version = mqtt.MQTTv5


def load_tests(loader, tests, pattern):
    suite = unittest.TestSuite()
    for cls in (Paho311, Paho5):
        suite.addTests(loader.loadTestsFromTestCase(cls))
    return suite


if __name__ == "__main__":
    unittest.main(verbosity=2)
