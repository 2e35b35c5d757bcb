#!/usr/bin/python3
"""Persistence through the real binary: the LMDB store across restarts and crashes.

Each test starts ringmq (RMQ_BINARY, --shards RMQ_SHARDS) on an ephemeral
port with a configuration file in a temporary directory that has
`persistence true` and `persistence_location <tmp>/data`, stops it with
SIGTERM or SIGKILL, and starts it again on the same data:

1. retained messages (3.1.1 and 5.0, with their MQTT 5 properties) come
   back, and a message expiry keeps counting while the broker is down;
2. persistent sessions (3.1.1 clean session 0, 5.0 session expiry) keep
   their subscriptions and options and the QoS 1/2 messages queued for
   them, in order; a session expiry keeps counting while the broker is down;
3. QoS 2 flows in flight at a SIGKILL resume in both directions (a raw
   socket client, rawmqtt.py, controls every packet);
4. SIGKILL under load loses no acknowledged message (durability sync), and
   neither does the embedded default run with no configuration at all;
5. store faults (RINGMQ_STORE_FAULT_FILE) and a full store refuse new
   messages with 0x97 and keep serving; nothing acknowledged is lost;
6. start-up errors stop the broker with a clear message and never touch
   the data (a second broker on the same directory, a location that is a
   regular file, a newer record format); a corrupt session record is
   skipped and reported;
7. durability batch and none keep everything across a clean stop.

The stores are edited with mdb_dump/mdb_load (lmdb-utils).  A few waits
are real time on purpose: expiry intervals counting while the broker is
down, and half a second before a SIGKILL so that what the broker received
has been committed.  A failing test prints the broker's log.
"""

import collections
import hashlib
import os
import queue
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import warnings

import rawmqtt as raw
from rawmqtt import PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, RawClient

try:
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.subscribeoptions import SubscribeOptions
except ImportError as e:  # a missing dependency is a failure, never a skip
    sys.exit("persist_test.py needs python3-paho-mqtt under /usr/bin/python3: %s" % e)

for tool in ("mdb_dump", "mdb_load"):
    if not shutil.which(tool):
        sys.exit("persist_test.py needs %s (Debian package lmdb-utils)" % tool)

V311, V5 = mqtt.MQTTv311, mqtt.MQTTv5
WAIT_S = 5.0  # an event that must happen
QUIET_S = 0.5  # a window in which something must not happen
START_S = 10.0
STOP_S = 10.0
COMMIT_S = 0.5  # before a SIGKILL: what the broker has seen is committed by then
DRAIN_S = 30.0  # a subscriber receiving everything queued for it
RC_STORE_FAILED = 0x97  # Quota exceeded: the reason code for a message the store could not take

BINARY = os.environ.get("RMQ_BINARY")
SHARDS = os.environ.get("RMQ_SHARDS", "1")
if not BINARY:
    sys.exit("RMQ_BINARY is not set (meson sets it)")
BINARY = os.path.abspath(BINARY)


def clean_env(extra=None):
    """The environment for the broker: ours without RINGMQ_* settings, plus @extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGMQ_")}
    env.update(extra or {})
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def store_check(data):
    """`ringmq store check DIR`: (exit status, output)."""
    r = subprocess.run([BINARY, "store", "check", data], capture_output=True, text=True, timeout=30,
                       env=clean_env())
    return r.returncode, r.stdout + r.stderr


# ------------------------------------------------------------------ the broker


class Broker:
    """The broker as a child process; it can be started again on the same data.

    Its output (every run) is kept in memory and, when the test fails,
    printed and written to RMQ_TEST_LOGDIR."""

    def __init__(self, workdir, name, lines=(), env=None, embedded=False):
        self.workdir, self.name, self.lines = workdir, name, list(lines)
        self.env = env or {}
        self.embedded = embedded
        self.data = os.path.join(workdir, "data")
        self.conf_path = os.path.join(workdir, "ringmq.conf")
        self.fixed_port = free_port() if embedded else None
        self.port = None
        self.proc = None
        self.lines_out = []
        self.runs = 0
        self._lock = threading.Lock()
        self._reader = None

    def config(self):
        return ("listener 0 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s\n"
                % self.data) + "".join(l + "\n" for l in self.lines)

    def argv(self):
        if self.embedded:  # exactly what a new user types: no file, no environment
            return [BINARY, "-p", str(self.fixed_port)]
        return [BINARY, "-c", self.conf_path, "--shards", SHARDS]

    def start(self):
        if not self.embedded:
            with open(self.conf_path, "w") as f:
                f.write(self.config())
        self.runs += 1
        self._note("---- start %d: %s\n" % (self.runs, " ".join(self.argv())))
        listening = threading.Event()
        self.port = None
        self.proc = subprocess.Popen(self.argv(), cwd=self.workdir, env=clean_env(self.env),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def read(proc):
            for line in proc.stdout:
                line = line.decode(errors="replace")
                self._note(line)
                m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
                if m and not listening.is_set():
                    self.port = int(m.group(1))
                    listening.set()
            listening.set()

        self._reader = threading.Thread(target=read, args=(self.proc,), daemon=True)
        self._reader.start()
        if not listening.wait(START_S) or self.port is None:
            try:
                status = self.proc.wait(1.0)  # it ended its output: it is exiting
            except subprocess.TimeoutExpired:
                status = None
            self.kill()
            raise AssertionError("broker not listening within %.0f s (exit status %s)" % (START_S, status))
        return self

    LOG_LINES_MAX = 20000  # a broker stuck in a loop that logs must not eat the memory

    def _note(self, line):
        with self._lock:
            if len(self.lines_out) < self.LOG_LINES_MAX:
                self.lines_out.append(line)
            elif len(self.lines_out) == self.LOG_LINES_MAX:
                self.lines_out.append("---- (further lines dropped)\n")

    def _reap(self):
        self._reader.join(STOP_S)
        self.proc.stdout.close()

    def stop(self):
        """SIGTERM and a clean exit (status 0)."""
        self._note("---- SIGTERM\n")
        self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(STOP_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("broker did not exit within %.0f s of SIGTERM" % STOP_S) from None
        self._reap()
        if status != 0:
            raise AssertionError("broker exited with status %d after SIGTERM" % status)

    def crash(self):
        """SIGKILL: no chance to commit anything more."""
        self._note("---- SIGKILL\n")
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._reap()

    def halt(self, how):
        if how == "sigterm":
            self.stop()
        else:
            self.crash()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc and not self.proc.stdout.closed:
            self._reap()

    def log(self):
        with self._lock:
            return "".join(self.lines_out)

    def wait_log(self, text, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            time.sleep(0.02)
        return False

    def run_once(self, timeout=START_S):
        """Start it expecting start-up to fail: (exit status, stdout, stderr)."""
        if not self.embedded:
            with open(self.conf_path, "w") as f:
                f.write(self.config())
        try:
            r = subprocess.run(self.argv(), cwd=self.workdir, env=clean_env(self.env), stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("the broker started (still running after %.0f s) although it must refuse to;"
                                 " output:\n%s%s" % (timeout, e.stdout or "", e.stderr or "")) from None
        self._note("---- run expected to fail: status %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
        return r.returncode, r.stdout, r.stderr


# ------------------------------------------------------------- paho clients


class Client:
    """A paho client whose callbacks feed queues, so tests wait with timeouts."""

    def __init__(self, port, client_id, version, clean=True, expiry=None):
        self.version, self.client_id = version, client_id
        self.messages = queue.Queue()
        self.connacks = queue.Queue()
        kwargs = {"client_id": client_id, "protocol": version}
        if version != V5:
            kwargs["clean_session"] = clean
        self.c = mqtt.Client(**kwargs)
        self.c.on_connect = lambda c, u, flags, rc, props=None: self.connacks.put((flags, rc))
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        connect_kw = {}
        if version == V5:
            connect_kw["clean_start"] = clean
            if expiry is not None:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = expiry
                connect_kw["properties"] = props
        self.c.connect("127.0.0.1", port, keepalive=60, **connect_kw)
        self.c.loop_start()
        flags, rc = get(self.connacks, "CONNACK for %s" % client_id)
        if rc != 0:
            raise AssertionError("%s: connection refused, %s" % (client_id, rc))
        self.session_present = bool(flags.get("session present"))

    def subscribe(self, topic, qos, no_local=False, rap=False, sub_id=None):
        done = threading.Event()
        granted = []

        def on_subscribe(client, userdata, mid, granted_qos, properties=None):
            granted.extend(g if isinstance(g, int) else g.value for g in granted_qos)
            done.set()

        self.c.on_subscribe = on_subscribe
        if self.version == V5:
            props = None
            if sub_id is not None:
                props = Properties(PacketTypes.SUBSCRIBE)
                props.SubscriptionIdentifier = sub_id
            self.c.subscribe(topic, options=SubscribeOptions(qos=qos, noLocal=no_local, retainAsPublished=rap),
                             properties=props)
        else:
            self.c.subscribe(topic, qos)
        if not done.wait(WAIT_S):
            raise AssertionError("no SUBACK for %s" % topic)
        if granted != [qos]:
            raise AssertionError("SUBACK %s for %s at QoS %d" % (granted, topic, qos))

    def publish(self, topic, payload, qos, retain=False, props=None):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=props)
        info.wait_for_publish(WAIT_S)
        if not info.is_published():
            raise AssertionError("%s: QoS %d publish on %s not acknowledged" % (self.client_id, qos, topic))

    def expect(self, topic, payload, qos):
        m = get(self.messages, "%s: message %r on %s" % (self.client_id, payload, topic))
        if (m.topic, m.payload, m.qos) != (topic, payload, qos):
            raise AssertionError("%s: expected %s %r QoS %d, got %s %r QoS %d"
                                 % (self.client_id, topic, payload, qos, m.topic, m.payload, m.qos))
        return m

    def expect_nothing(self, quiet=QUIET_S):
        try:
            m = self.messages.get(timeout=quiet)
        except queue.Empty:
            return
        raise AssertionError("%s: unexpected message %s %r" % (self.client_id, m.topic, m.payload))

    def close(self):
        """DISCONNECT (if still connected) and stop the network thread, which
        would otherwise reconnect by itself."""
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()


def get(q, what, timeout=WAIT_S):
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError("no %s within %.0f s" % (what, timeout)) from None


def publish_props(**kw):
    props = Properties(PacketTypes.PUBLISH)
    for k, v in kw.items():
        setattr(props, k, v)
    return props


class Collector:
    """A paho subscriber that counts what it receives, for draining a queue."""

    def __init__(self, port, client_id, version, expiry=3600):
        self.client_id, self.version = client_id, version
        self.got = []  # (topic, payload, qos) in arrival order
        self.cond = threading.Condition()
        self.connacks = queue.Queue()
        kwargs = {"client_id": client_id, "protocol": version}
        if version != V5:
            kwargs["clean_session"] = False
        self.c = mqtt.Client(**kwargs)
        self.c.on_connect = lambda c, u, flags, rc, props=None: self.connacks.put((flags, rc))
        self.c.on_message = self._on_message
        self.c.max_inflight_messages_set(100)
        self.port, self.expiry = port, expiry

    def _on_message(self, client, userdata, m):
        with self.cond:
            self.got.append((m.topic, m.payload, m.qos))
            self.cond.notify_all()

    def connect(self, port, clean):
        connect_kw = {}
        if self.version == V5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.expiry
            connect_kw = {"clean_start": clean, "properties": props}
        self.c.connect("127.0.0.1", port, keepalive=60, **connect_kw)
        self.c.loop_start()
        flags, rc = get(self.connacks, "CONNACK for %s" % self.client_id)
        if rc != 0:
            raise AssertionError("%s: connection refused, %s" % (self.client_id, rc))
        return bool(flags.get("session present"))

    def subscribe(self, topic, qos):
        done = threading.Event()
        self.c.on_subscribe = lambda *args: done.set()
        self.c.subscribe(topic, qos)
        if not done.wait(WAIT_S):
            raise AssertionError("%s: no SUBACK for %s" % (self.client_id, topic))

    def wait_for(self, payloads, timeout=DRAIN_S):
        """Wait until every payload in @payloads has arrived; the missing ones otherwise."""
        want = set(payloads)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                missing = want - {p for _, p, _ in self.got}
                left = deadline - time.monotonic()
                if not missing or left <= 0:
                    return missing
                self.cond.wait(min(left, 0.2))

    def close(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()


class LoadPublisher(threading.Thread):
    """Publishes numbered messages as fast as the broker acknowledges them,
    with a bounded number outstanding, until stopped or @count are sent."""

    WINDOW = 200

    def __init__(self, port, name, version, topic, qos, count):
        super().__init__(daemon=True)
        self.name_, self.topic, self.qos, self.count = name, topic, qos, count
        self.window = threading.Semaphore(self.WINDOW)
        self.acks = 0
        self.ack_lock = threading.Lock()
        self.sent = []  # (payload, MQTTMessageInfo)
        self.halt = threading.Event()
        self.error = None
        self.c = mqtt.Client(client_id=name, protocol=version)
        self.c.max_inflight_messages_set(100)
        connacks = queue.Queue()
        self.c.on_connect = lambda c, u, flags, rc, props=None: connacks.put(rc)
        self.c.on_publish = self._on_publish
        self.c.connect("127.0.0.1", port, keepalive=60)
        self.c.loop_start()
        rc = get(connacks, "CONNACK for %s" % name)
        if rc != 0:
            raise AssertionError("%s: connection refused, %s" % (name, rc))

    def _on_publish(self, client, userdata, mid):
        with self.ack_lock:
            self.acks += 1
        self.window.release()

    def run(self):
        try:
            for i in range(self.count):
                while not self.window.acquire(timeout=0.1):
                    if self.halt.is_set():
                        return
                if self.halt.is_set():
                    return
                payload = ("%s:%d" % (self.name_, i)).encode()
                self.sent.append((payload, self.c.publish(self.topic, payload, qos=self.qos)))
        except Exception as e:  # reported by the test
            self.error = e

    def finish(self):
        """Stop publishing and the network thread (the broker is gone by now)."""
        self.halt.set()
        self.join(WAIT_S)
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()

    def acknowledged(self):
        return [p for p, info in self.sent if info.is_published()]


# -------------------------------------------------------------- LMDB editing


def mdb_records(data, db):
    """The records of database @db as [(key bytes, value bytes)], via mdb_dump."""
    out = subprocess.run(["mdb_dump", "-s", db, data], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    body = lines[lines.index("HEADER=END") + 1:lines.index("DATA=END")]
    return [(bytes.fromhex(body[i].strip()), bytes.fromhex(body[i + 1].strip())) for i in range(0, len(body), 2)]


def mdb_replace(data, db, key, value):
    """Overwrite one record of @db with mdb_load (it overwrites by default)."""
    dump = ("VERSION=3\nformat=bytevalue\ndatabase=%s\ntype=btree\nHEADER=END\n %s\n %s\nDATA=END\n"
            % (db, key.hex(), value.hex()))
    path = os.path.join(os.path.dirname(data), "load-%s.txt" % db)
    with open(path, "w") as f:
        f.write(dump)
    subprocess.run(["mdb_load", "-s", db, "-f", path, data], capture_output=True, text=True, check=True)


# ------------------------------------------------------------------ the tests


class PersistBase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="rmq-persist-")
        self.brokers, self.clients, self.raws = [], [], []

    def tearDown(self):
        for c in self.clients:
            try:
                c.c.loop_stop()
            except Exception:  # cleanup only: the test's own result stands
                pass
        for r in self.raws:
            r.close()
        for b in self.brokers:
            b.kill()

    def run(self, result=None):
        """Print the brokers' logs when the test fails; remove the directory."""
        result = result or self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        super().run(result)
        failed = len(result.failures) + len(result.errors) > before
        for b in getattr(self, "brokers", []):
            if failed:
                lines = b.log().splitlines(True)
                if len(lines) > 400:  # the whole log is in RMQ_TEST_LOGDIR
                    lines = lines[:150] + ["---- (%d lines left out)\n" % (len(lines) - 400)] + lines[-250:]
                sys.stderr.write("---- broker log (%s) ----\n%s---- end of broker log ----\n"
                                 % (b.name, "".join(lines)))
                logdir = os.environ.get("RMQ_TEST_LOGDIR")
                if logdir:
                    os.makedirs(logdir, exist_ok=True)
                    path = os.path.join(logdir, "ringmq-s%s-persist.%s.%s.log"
                                        % (SHARDS, self._testMethodName, b.name))
                    with open(path, "w") as f:
                        f.write(b.log())
        if hasattr(self, "dir"):
            shutil.rmtree(self.dir, ignore_errors=True)
        return result

    def broker(self, name="broker", lines=(), env=None, embedded=False, workdir=None):
        b = Broker(workdir or self.dir, name, lines, env, embedded)
        self.brokers.append(b)
        return b

    def client(self, port, client_id, version, **kw):
        c = Client(port, client_id, version, **kw)
        self.clients.append(c)
        return c

    def expect_msg(self, c, topic, payload, qos):
        """The next PUBLISH on raw client @c is @payload on @topic at @qos."""
        m = c.next_message()
        self.assertEqual((m.topic, m.payload, m.qos), (topic, payload, qos), "got %r" % m)
        return m

    def raw(self, port, version):
        r = RawClient(port, version)
        self.raws.append(r)
        return r


class T1Retained(PersistBase):
    """Retained messages and their MQTT 5 properties survive a restart;
    message expiry counts on while the broker is down [MQTT-3.3.2-5]."""

    def retained_across(self, how):
        b = self.broker().start()
        p4 = self.client(b.port, "ret-pub-311", V311)
        p4.publish("ret/v311", b"from 3.1.1", 1, retain=True)
        p4.close()
        p5 = self.client(b.port, "ret-pub-5", V5)
        p5.publish("ret/v5", b"from 5", 1, retain=True,
                   props=publish_props(ContentType="text/plain", ResponseTopic="ret/answers",
                                       CorrelationData=b"\x00corr\xff", PayloadFormatIndicator=1,
                                       UserProperty=[("k1", "v1"), ("k2", "v2"), ("k1", "again")]))
        p5.publish("ret/exp4", b"expires in 4 s", 1, retain=True, props=publish_props(MessageExpiryInterval=4))
        p5.publish("ret/exp1", b"expires in 1 s", 1, retain=True, props=publish_props(MessageExpiryInterval=1))
        p5.close()
        b.halt(how)
        time.sleep(2.0)  # the broker is down while the expiry intervals run
        b.start()

        s5 = self.client(b.port, "ret-sub-5", V5)
        s5.subscribe("ret/#", 1)
        got = {}
        for _ in range(3):
            m = get(s5.messages, "retained message (got %s so far)" % sorted(got))
            got[m.topic] = m
        s5.expect_nothing()  # ret/exp1 expired while the broker was down
        self.assertEqual(sorted(got), ["ret/exp4", "ret/v311", "ret/v5"])
        for topic, payload in (("ret/v311", b"from 3.1.1"), ("ret/v5", b"from 5"), ("ret/exp4", b"expires in 4 s")):
            self.assertEqual(got[topic].payload, payload)
            self.assertTrue(got[topic].retain, "%s delivered with RETAIN 0" % topic)
        p = got["ret/v5"].properties
        self.assertEqual(getattr(p, "ContentType", None), "text/plain")
        self.assertEqual(getattr(p, "ResponseTopic", None), "ret/answers")
        self.assertEqual(getattr(p, "CorrelationData", None), b"\x00corr\xff")
        self.assertEqual(getattr(p, "PayloadFormatIndicator", None), 1)
        self.assertEqual(getattr(p, "UserProperty", None), [("k1", "v1"), ("k2", "v2"), ("k1", "again")],
                         "user properties in order [MQTT-3.3.2-18]")
        left = getattr(got["ret/exp4"].properties, "MessageExpiryInterval", None)
        self.assertIsNotNone(left, "expiry interval missing on the expiring message [MQTT-3.3.2-6]")
        self.assertTrue(0 < left <= 2, "expiry interval %s after >= 2 s down (4 s at publish)" % left)
        self.assertFalse(hasattr(got["ret/v311"].properties, "MessageExpiryInterval"))
        s5.close()

        s4 = self.client(b.port, "ret-sub-311", V311)
        s4.subscribe("ret/#", 1)
        got4 = {}
        for _ in range(3):
            m = get(s4.messages, "retained message for 3.1.1 (got %s so far)" % sorted(got4))
            got4[m.topic] = m.payload
        s4.expect_nothing()
        self.assertEqual(got4, {"ret/v311": b"from 3.1.1", "ret/v5": b"from 5", "ret/exp4": b"expires in 4 s"})
        s4.close()
        b.stop()

    def test_retained_survive_sigterm(self):
        self.retained_across("sigterm")

    def test_retained_qos1_acknowledged_with_stored_subscribers_on_every_shard(self):
        """A retained QoS 1/2 PUBLISH is copied into the retained store before
        it is routed; its acknowledgement must still follow the commits of
        every shard that keeps it for a subscriber (it once waited for the
        30 s give-up instead)."""
        b = self.broker().start()
        subs = [self.client(b.port, "fan-sub-%d" % i, V5, clean=False, expiry=300) for i in range(8)]
        for c in subs:
            c.subscribe("fan/#", 1)
        pub = self.client(b.port, "fan-pub", V5)
        for i in range(20):
            # wait_for_publish(WAIT_S) fails the test when a PUBACK/PUBCOMP is late
            pub.publish("fan/%d" % i, b"retained %d" % i, 1 + i % 2, retain=True)
        for c in subs:
            for i in range(20):
                m = get(c.messages, "message %d for %s" % (i, c.client_id))
                self.assertEqual(m.payload, b"retained %d" % i)
        b.stop()

    def test_retained_survive_sigkill(self):
        self.retained_across("sigkill")


class T2Sessions(PersistBase):
    """Persistent sessions survive a restart: subscriptions with their
    options, queued QoS 1/2 messages in order, QoS 2 exactly once."""

    def sessions_across(self, how):
        b = self.broker().start()
        s4 = self.client(b.port, "sess-311", V311, clean=False)
        self.assertFalse(s4.session_present)
        s4.subscribe("sess/a", 1)
        s4.subscribe("sess/b", 2)
        s4.close()
        s5 = self.client(b.port, "sess-5", V5, clean=True, expiry=300)
        s5.subscribe("sess/v5/id", 1, sub_id=42)
        s5.subscribe("sess/v5/nl", 1, no_local=True)
        s5.subscribe("sess/v5/rap", 1, rap=True)
        s5.subscribe("sess/v5/q2", 2)
        s5.subscribe("$share/g/sess/shared", 1)
        s5.close()

        pub = self.client(b.port, "sess-pub", V5)
        for i in range(3):  # queued while both are offline
            pub.publish("sess/a", b"a%d" % i, 1)
            pub.publish("sess/b", b"b%d" % i, 2)
            pub.publish("sess/v5/id", b"id%d" % i, 1)
            pub.publish("sess/v5/q2", b"q%d" % i, 2)
            pub.publish("sess/shared", b"sh%d" % i, 1)
        pub.close()
        b.halt(how)
        b.start()

        # Raw clients from here, so the order on the wire is what is checked
        # (paho hands a QoS 2 message over only at its PUBREL).
        s4 = self.raw(b.port, 4)
        self.assertTrue(s4.connect("sess-311", clean=False).session_present,
                        "Session Present 0 after restart [MQTT-3.2.2-2]")
        for i in range(3):
            self.expect_msg(s4, "sess/a", b"a%d" % i, 1)
            self.expect_msg(s4, "sess/b", b"b%d" % i, 2)
        s4.quiet(QUIET_S)  # QoS 2 exactly once, nothing else queued

        s5 = self.raw(b.port, 5)
        self.assertTrue(s5.connect("sess-5", clean=False, session_expiry=300).session_present,
                        "Session Present 0 after restart [MQTT-3.2.2-2]")
        for i in range(3):
            m = self.expect_msg(s5, "sess/v5/id", b"id%d" % i, 1)
            self.assertEqual(m.props.get("subscription_id"), [42],
                             "subscription identifier of a queued message [MQTT-3.3.4-3]")
            self.expect_msg(s5, "sess/v5/q2", b"q%d" % i, 2)
            self.expect_msg(s5, "sess/shared", b"sh%d" % i, 1)
        s5.quiet(QUIET_S)

        # Published after the restart, without subscribing again.
        pub = self.client(b.port, "sess-pub", V5)
        pub.publish("sess/a", b"live-a", 1)
        self.expect_msg(s4, "sess/a", b"live-a", 1)
        pub.publish("sess/b", b"live-b", 2)
        self.expect_msg(s4, "sess/b", b"live-b", 2)
        pub.publish("sess/v5/id", b"live-id", 1)
        m = self.expect_msg(s5, "sess/v5/id", b"live-id", 1)
        self.assertEqual(m.props.get("subscription_id"), [42])
        s5.publish("sess/v5/nl", b"own", 1, pid=500)  # no-local: not back to its sender [MQTT-3.8.3-3]
        self.assertEqual(s5.expect(PUBACK).pid, 500)
        pub.publish("sess/v5/nl", b"other", 1)
        self.expect_msg(s5, "sess/v5/nl", b"other", 1)
        pub.publish("sess/v5/rap", b"rap", 1, retain=True)
        m = self.expect_msg(s5, "sess/v5/rap", b"rap", 1)
        self.assertTrue(m.retain, "retain-as-published lost: RETAIN 0 [MQTT-3.3.1-12]")
        pub.publish("sess/shared", b"live-shared", 1)
        self.expect_msg(s5, "sess/shared", b"live-shared", 1)
        pub.publish("sess/v5/q2", b"live-q", 2)
        self.expect_msg(s5, "sess/v5/q2", b"live-q", 2)
        s4.quiet(0.1)
        s5.quiet(QUIET_S)
        pub.close()
        for c in (s4, s5):
            c.send(raw.disconnect())
            c.close()
        b.stop()

    def test_sessions_survive_sigterm(self):
        self.sessions_across("sigterm")

    def test_sessions_survive_sigkill(self):
        self.sessions_across("sigkill")

    def test_session_expiry_counts_while_down(self):
        b = self.broker().start()
        short = self.client(b.port, "exp-short", V5, expiry=2)
        short.subscribe("exp/t", 1)
        short.close()
        long_ = self.client(b.port, "exp-long", V5, expiry=300)
        long_.subscribe("exp/t", 1)
        long_.close()
        b.stop()
        time.sleep(3.0)  # longer than the 2 s expiry, all of it with the broker down
        b.start()
        short = self.client(b.port, "exp-short", V5, clean=False, expiry=2)
        self.assertFalse(short.session_present, "a session expired while the broker was down came back")
        long_ = self.client(b.port, "exp-long", V5, clean=False, expiry=300)
        self.assertTrue(long_.session_present, "a session with 300 s left was lost")
        pub = self.client(b.port, "exp-pub", V5)
        pub.publish("exp/t", b"still subscribed", 1)
        long_.expect("exp/t", b"still subscribed", 1)
        short.expect_nothing()  # its subscription went with the session
        for c in (pub, short, long_):
            c.close()
        b.stop()

    def test_stored_sessions_come_back_past_max_sessions(self):
        """max_sessions bounds new sessions only: every stored one is restored
        even when the limit was lowered meanwhile, and its client gets back in."""
        b = self.broker().start()
        for i in range(3):
            c = self.client(b.port, "kept-%d" % i, V311, clean=False)
            c.subscribe("kept/t", 1)
            c.close()
        b.stop()
        b.lines.append("max_sessions 2")
        b.start()
        for i in range(3):
            c = self.client(b.port, "kept-%d" % i, V311, clean=False)
            self.assertTrue(c.session_present, "kept-%d: its stored session was not restored" % i)
            c.close()
        with self.assertRaises(AssertionError, msg="a new session past max_sessions was accepted"):
            self.client(b.port, "newcomer", V311, clean=False)
        self.assertTrue(b.wait_log("refused: max_sessions reached"), b.log())
        b.stop()


class T3InflightQos2(PersistBase):
    """QoS 2 flows in flight at a SIGKILL resume after the restart
    [MQTT-4.4.0-1], in both directions, for 3.1.1 and 5.0."""

    def session(self, port, version, client_id):
        c = self.raw(port, version)
        ca = c.connect(client_id, clean=False, session_expiry=300 if version == 5 else None)
        return c, ca.session_present

    def publish_qos2(self, port, topic, payload):
        p = self.raw(port, 4)
        p.connect("inflight-pub")
        p.publish(topic, payload, 2, pid=1)
        self.assertEqual(p.expect(PUBREC).pid, 1)
        p.send(raw.ack(PUBREL, 1))
        self.assertEqual(p.expect(PUBCOMP).pid, 1)
        p.send(raw.disconnect())
        p.close()

    def crash_and_restart(self, b, *clients):
        time.sleep(COMMIT_S)
        b.crash()
        for c in clients:
            c.close()
        b.start()

    def test_outgoing_pubrel_resent_after_sigkill(self):
        b = self.broker().start()
        for v in (4, 5):
            with self.subTest(mqtt=v):
                cid, topic = "q2out-rel-%d" % v, "q2out/rel/%d" % v
                s, _ = self.session(b.port, v, cid)
                self.assertEqual(s.subscribe(1, [(topic, 2)]), [2])
                self.publish_qos2(b.port, topic, b"half done")
                m = s.expect(PUBLISH)
                self.assertEqual((m.topic, m.payload, m.qos), (topic, b"half done", 2))
                s.send(raw.ack(PUBREC, m.pid))
                self.assertEqual(s.expect(PUBREL).pid, m.pid)
                # no PUBCOMP
                self.crash_and_restart(b, s)
                s, present = self.session(b.port, v, cid)
                self.assertTrue(present, "Session Present 0 after restart")
                rel = s.expect(PUBREL)  # not the PUBLISH again [MQTT-4.4.0-1]
                self.assertEqual(rel.pid, m.pid, "PUBREL resent with another packet id")
                s.send(raw.ack(PUBCOMP, m.pid))
                s.expect_nothing(QUIET_S)
                self.publish_qos2(b.port, topic, b"next")  # the session goes on
                n = s.expect(PUBLISH)
                self.assertEqual((n.payload, n.qos, n.dup), (b"next", 2, False))
                s.send(raw.ack(PUBREC, n.pid))
                self.assertEqual(s.expect(PUBREL).pid, n.pid)
                s.send(raw.ack(PUBCOMP, n.pid))
                s.expect_nothing(0.2)
                s.send(raw.disconnect())
                s.close()
        b.stop()

    def test_outgoing_publish_resent_with_dup_after_sigkill(self):
        b = self.broker().start()
        for v in (4, 5):
            with self.subTest(mqtt=v):
                cid, topic = "q2out-pub-%d" % v, "q2out/pub/%d" % v
                s, _ = self.session(b.port, v, cid)
                self.assertEqual(s.subscribe(1, [(topic, 2)]), [2])
                self.publish_qos2(b.port, topic, b"unanswered")
                m = s.expect(PUBLISH)
                self.assertEqual((m.payload, m.qos, m.dup), (b"unanswered", 2, False))
                # no PUBREC
                self.crash_and_restart(b, s)
                s, present = self.session(b.port, v, cid)
                self.assertTrue(present, "Session Present 0 after restart")
                again = s.expect(PUBLISH)
                self.assertEqual((again.topic, again.payload, again.qos), (topic, b"unanswered", 2))
                self.assertTrue(again.dup, "resent PUBLISH without DUP [MQTT-3.3.1-1]")
                self.assertEqual(again.pid, m.pid, "resent PUBLISH with another packet id [MQTT-4.4.0-1]")
                s.send(raw.ack(PUBREC, again.pid))
                self.assertEqual(s.expect(PUBREL).pid, again.pid)
                s.send(raw.ack(PUBCOMP, again.pid))
                s.expect_nothing(QUIET_S)
                s.send(raw.disconnect())
                s.close()
        b.stop()

    def drain(self, s, quiet):
        """Receive on @s for @quiet seconds, completing every flow; the PUBLISHes seen."""
        seen = []
        end = time.monotonic() + quiet
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return seen
            try:
                p = s.recv(left)
            except socket.timeout:
                return seen
            if p.type == PUBLISH:
                seen.append(p)
                if p.qos == 1:
                    s.send(raw.ack(PUBACK, p.pid))
                elif p.qos == 2:
                    s.send(raw.ack(PUBREC, p.pid))
            elif p.type == PUBREL:
                s.send(raw.ack(PUBCOMP, p.pid))

    def test_incoming_qos2_completed_after_sigkill(self):
        b = self.broker().start()
        for v in (4, 5):
            with self.subTest(mqtt=v):
                topic = "q2in/%d" % v
                s, _ = self.session(b.port, 4, "q2in-sub-%d" % v)
                self.assertEqual(s.subscribe(1, [(topic, 2)]), [2])
                p, _ = self.session(b.port, v, "q2in-pub-%d" % v)
                p.publish(topic, b"once", 2, pid=7)
                rec = p.expect(PUBREC)
                self.assertEqual((rec.pid, rec.reason), (7, 0))
                seen = self.drain(s, COMMIT_S)  # the subscriber completes its side
                # no PUBREL from the publisher
                self.crash_and_restart(b, s, p)
                s, present = self.session(b.port, 4, "q2in-sub-%d" % v)
                self.assertTrue(present)
                p, present = self.session(b.port, v, "q2in-pub-%d" % v)
                self.assertTrue(present, "publisher's Session Present 0 after restart")
                p.publish(topic, b"once", 2, pid=7, dup=True)
                rec = p.expect(PUBREC)
                self.assertEqual((rec.pid, rec.reason), (7, 0), "PUBREC for the resent PUBLISH")
                seen += self.drain(s, QUIET_S)
                p.send(raw.ack(PUBREL, 7))
                comp = p.expect(PUBCOMP)
                self.assertEqual((comp.pid, comp.reason), (7, 0), "PUBCOMP for pid 7")
                seen += self.drain(s, 0.2)
                once = [x for x in seen if x.payload == b"once"]
                self.assertEqual(len(once), 1, "QoS 2 message delivered %d times: %r"
                                 % (len(once), once))
                # A new message may use packet id 7 again.
                p.publish(topic, b"second", 2, pid=7)
                rec = p.expect(PUBREC)
                self.assertEqual((rec.pid, rec.reason), (7, 0))
                p.send(raw.ack(PUBREL, 7))
                self.assertEqual(p.expect(PUBCOMP).pid, 7)
                later = self.drain(s, QUIET_S)
                self.assertEqual([x.payload for x in later], [b"second"],
                                 "a new PUBLISH with a packet id used before the crash")
                for c in (s, p):
                    c.send(raw.disconnect())
                    c.close()
        b.stop()


class T4Load(PersistBase):
    """SIGKILL under load loses no acknowledged message (durability sync)."""

    def round(self, b, subs, pubs_spec, rnd, kill_after):
        pubs = [LoadPublisher(b.port, "%s-r%d" % (name, rnd), ver, topic, qos, count)
                for name, ver, topic, qos, count in pubs_spec]
        self.clients += pubs
        for p in pubs:
            p.start()
        deadline = time.monotonic() + 20
        while sum(p.acks for p in pubs) < kill_after:
            if time.monotonic() > deadline:
                raise AssertionError("only %d acknowledgements in 20 s" % sum(p.acks for p in pubs))
            time.sleep(0.01)
        b.crash()  # mid-stream: the publishers still have messages in flight
        for p in pubs:
            p.finish()
            if p.error:
                raise AssertionError("publisher %s: %r" % (p.name_, p.error))
        acked = {p.topic + "|" + p.name_: p.acknowledged() for p in pubs}
        outstanding = sum(len(p.sent) for p in pubs) - sum(len(a) for a in acked.values())
        sys.stderr.write("round %d: %d acknowledged, %d unacknowledged at the SIGKILL\n"
                         % (rnd, sum(len(a) for a in acked.values()), outstanding))
        b.start()
        for s, filters in subs:
            present = s.connect(b.port, clean=False)
            self.assertTrue(present, "%s: Session Present 0 after SIGKILL" % s.client_id)
        for s, filters in subs:
            want = []
            for key, payloads in acked.items():
                topic = key.split("|")[0]
                if any(mqtt.topic_matches_sub(f, topic) for f in filters):
                    want += payloads
            missing = s.wait_for(want)
            self.assertFalse(missing, "round %d: %s lost %d of %d acknowledged messages, e.g. %s"
                             % (rnd, s.client_id, len(missing), len(want), sorted(missing)[:5]))
        time.sleep(QUIET_S)  # duplicates, if any, arrive now
        for s, filters in subs:
            with s.cond:
                q2 = [p for t, p, q in s.got if q == 2]
            dups = {p for p, n in collections.Counter(q2).items() if n > 1}
            self.assertFalse(dups, "round %d: %s got QoS 2 messages more than once: %s"
                             % (rnd, s.client_id, sorted(dups)[:5]))
            s.close()
            with s.cond:
                s.got.clear()
        return sum(len(a) for a in acked.values()), outstanding

    def test_sigkill_under_load_loses_nothing_acknowledged(self):
        b = self.broker(lines=["max_queued_messages 1000000"]).start()
        subs = [(Collector(b.port, "load-s311-q1", V311), ["load/q1/#"]),
                (Collector(b.port, "load-s5-q2", V5), ["load/q2/#"]),
                (Collector(b.port, "load-s5-all", V5), ["load/#"])]
        self.clients += [s for s, _ in subs]
        qos_of = {"load/q1/#": 1, "load/q2/#": 2, "load/#": 2}
        for s, filters in subs:
            s.connect(b.port, clean=True)
            for f in filters:
                s.subscribe(f, qos_of[f])
            s.close()  # offline from here on
        spec = [("p311q1", V311, "load/q1/a", 1, 4000), ("p5q1", V5, "load/q1/b", 1, 4000),
                ("p311q2", V311, "load/q2/c", 2, 4000), ("p5q2", V5, "load/q2/d", 2, 4000)]
        total = 0
        for rnd in range(3):
            n, _ = self.round(b, subs, spec, rnd, kill_after=400 + 300 * rnd)
            total += n
        self.assertGreater(total, 0)
        b.stop()
        code, out = store_check(b.data)
        self.assertEqual(code, 0, out)

    def test_embedded_default_sigkill_under_qos1_load(self):
        # A new user: no file, no environment, `ringmq -p PORT` in an empty
        # directory.  The data goes to ./data.  The default queue bound
        # (1000 per session) is above what is published here.
        work = os.path.join(self.dir, "newuser")
        os.mkdir(work)
        b = self.broker("embedded", embedded=True, workdir=work).start()
        self.assertTrue(os.path.exists(os.path.join(work, "data", "data.mdb")), "no ./data/data.mdb")
        s = Collector(b.port, "newuser-sub", V311)
        self.clients.append(s)
        s.connect(b.port, clean=True)
        s.subscribe("load/q1/#", 1)
        s.close()
        spec = [("nu311", V311, "load/q1/a", 1, 400), ("nu5", V5, "load/q1/b", 1, 400)]
        n, _ = self.round(b, [(s, ["load/q1/#"])], spec, 0, kill_after=200)
        self.assertGreaterEqual(n, 200)
        b.stop()


class T5Faults(PersistBase):
    """A failing or full store refuses new messages (0x97), keeps serving,
    and loses nothing acknowledged."""

    def qos0_flows(self, port, tag):
        a = self.client(port, "q0-sub-" + tag, V311)
        a.subscribe("zero/" + tag, 0)
        z = self.client(port, "q0-pub-" + tag, V5)
        z.publish("zero/" + tag, b"still serving", 0)
        a.expect("zero/" + tag, b"still serving", 0)
        a.close()
        z.close()

    def test_commit_faults(self):
        fault = os.path.join(self.dir, "store-fault")
        b = self.broker(env={"RINGMQ_STORE_FAULT_FILE": fault}).start()
        sub = self.client(b.port, "fault-sub", V5, expiry=300)
        sub.subscribe("fault/q", 1)
        sub.close()
        p5 = self.raw(b.port, 5)
        p5.connect("fault-pub5")
        acked = []

        def pub(payload, pid):
            p5.publish("fault/q", payload, 1, pid=pid)
            a = p5.expect(PUBACK)
            self.assertEqual(a.pid, pid)
            if a.reason == 0:
                acked.append(payload)
            return a.reason

        for i in range(5):
            self.assertEqual(pub(b"before-%d" % i, i + 1), 0)
        p5.publish("fault/ret", b"retained before", 1, pid=50, retain=True)
        self.assertEqual(p5.expect(PUBACK).reason, 0)

        open(fault, "w").close()
        self.assertEqual(pub(b"refused-5", 100), RC_STORE_FAILED,
                         "MQTT 5 QoS 1 PUBLISH while commits fail")
        p4 = self.raw(b.port, 4)
        p4.connect("fault-pub311")
        p4.publish("fault/q", b"refused-311", 1, pid=1)
        seen = p4.wait_closed(WAIT_S)
        self.assertFalse([p for p in seen if p.type == PUBACK],
                         "MQTT 3.1.1 publisher got a PUBACK while commits fail: %r" % seen)
        self.qos0_flows(b.port, "fault")
        self.assertEqual(pub(b"refused-5b", 101), RC_STORE_FAILED, "still failing while the file exists")

        os.unlink(fault)
        deadline, pid = time.monotonic() + WAIT_S, 200
        while True:  # the store retries on its own; the flag clears with a good commit
            reason = pub(b"after-%d" % pid, pid)
            if reason == 0:
                break
            self.assertEqual(reason, RC_STORE_FAILED)
            self.assertLess(time.monotonic(), deadline, "still refusing %.0f s after the fault ended" % WAIT_S)
            time.sleep(0.05)
            pid += 1
        for i in range(5):
            self.assertEqual(pub(b"after-%d" % (300 + i), 300 + i), 0, "refused after a good commit")
        p5.send(raw.disconnect())
        p5.close()
        p4_again = self.raw(b.port, 4)  # 3.1.1 publishers are served again
        p4_again.connect("fault-pub311")
        p4_again.publish("fault/q", b"after-311", 1, pid=2)
        self.assertEqual(p4_again.expect(PUBACK).pid, 2)
        acked.append(b"after-311")
        p4_again.send(raw.disconnect())
        p4_again.close()

        b.stop()
        b.start()
        sub = self.client(b.port, "fault-sub", V5, clean=False, expiry=300)
        self.assertTrue(sub.session_present)
        got = []
        while True:
            try:
                got.append(sub.messages.get(timeout=QUIET_S * 2 if len(got) >= len(acked) else WAIT_S).payload)
            except queue.Empty:
                break
        missing = [p for p in acked if p not in got]
        self.assertFalse(missing, "acknowledged messages lost: %s (received %s)" % (missing, got))
        order = [p for p in got if p in acked]
        self.assertEqual(order, sorted(order, key=acked.index), "queued messages out of order")
        r = self.client(b.port, "fault-ret", V311)
        r.subscribe("fault/ret", 1)
        r.expect("fault/ret", b"retained before", 1)
        for c in (sub, r):
            c.close()
        b.stop()
        code, out = store_check(b.data)
        self.assertEqual(code, 0, out)

    def test_store_full(self):
        b = self.broker(lines=["persistence_map_size 1048576", "persistence_max_size 2097152"]).start()
        sub = self.client(b.port, "full-sub", V5, expiry=300)
        sub.subscribe("full/q", 1)
        sub.close()
        p = self.raw(b.port, 5)
        p.connect("full-pub")
        acked, refused = [], None
        for i in range(40):
            payload = b"%04d" % i + b"x" * (100 * 1024 - 4)
            p.publish("full/q", payload, 1, pid=i + 1)
            a = p.expect(PUBACK, timeout=10)
            self.assertEqual(a.pid, i + 1)
            if a.reason == RC_STORE_FAILED:
                refused = i
                break
            self.assertEqual(a.reason, 0, "PUBACK reason for message %d" % i)
            acked.append(payload)
        self.assertIsNotNone(refused, "40 x 100 KiB acknowledged into a store of at most 2 MiB")
        self.assertGreater(len(acked), 0)
        self.qos0_flows(b.port, "full")
        p.send(raw.disconnect())
        p.close()
        b.stop()
        b.start()
        sub = self.client(b.port, "full-sub", V5, clean=False, expiry=300)
        self.assertTrue(sub.session_present)
        for i, payload in enumerate(acked):
            m = get(sub.messages, "acknowledged message %d of %d" % (i, len(acked)))
            self.assertEqual(m.payload[:4], payload[:4])
            self.assertEqual(m.payload, payload)
        # Delivered and acknowledged, the messages leave the store, so there
        # is room again: new QoS 1 messages are accepted.
        p = self.raw(b.port, 5)
        p.connect("full-pub")
        deadline = time.monotonic() + WAIT_S
        for pid in range(1, 1000):
            p.publish("full/q", b"room again", 1, pid=pid)
            a = p.expect(PUBACK)
            if a.reason == 0:
                break
            if time.monotonic() > deadline:
                self.fail("new QoS 1 messages still refused (PUBACK 0x%02x) %.0f s after the subscriber took "
                          "every stored message" % (a.reason, WAIT_S))
            time.sleep(0.1)
        sub.expect("full/q", b"room again", 1)
        p.send(raw.disconnect())
        p.close()
        sub.close()
        b.stop()
        code, out = store_check(b.data)
        self.assertEqual(code, 0, out)


class T6Startup(PersistBase):
    """Start-up errors stop the broker with a message and leave the data alone."""

    def seed(self, b):
        """Some state: a retained message and a persistent session."""
        c = self.client(b.port, "seed", V5, expiry=300)
        c.subscribe("seed/t", 1)
        c.publish("seed/ret", b"kept", 1, retain=True)
        c.close()

    def test_second_broker_on_the_same_directory(self):
        b = self.broker().start()
        self.seed(b)
        second = self.broker("second")
        code, out, err = second.run_once()
        self.assertNotEqual(code, 0, "a second broker started on a data directory in use")
        self.assertIn("in use by another process", err)
        self.assertIn(b.data, err)
        c = self.client(b.port, "still-there", V311)  # the first one is unharmed
        c.subscribe("seed/ret", 1)
        c.expect("seed/ret", b"kept", 1)
        c.close()
        b.stop()
        self.assertEqual(len(mdb_records(b.data, "retained")), 1, "the data was touched")

    def test_data_files_are_private(self):
        self.addCleanup(os.umask, os.umask(0o022))  # the usual umask: files would be 0644 by default
        b = self.broker().start()
        self.seed(b)
        b.stop()
        mode = stat.S_IMODE(os.stat(b.data).st_mode)
        self.assertEqual(mode, 0o700, "data directory mode %o" % mode)
        names = sorted(os.listdir(b.data))
        self.assertIn("data.mdb", names)
        self.assertIn("lock.mdb", names)
        for name in names:
            mode = stat.S_IMODE(os.stat(os.path.join(b.data, name)).st_mode)
            self.assertEqual(mode, 0o600, "%s mode %o" % (name, mode))

    def test_location_is_a_regular_file(self):
        path = os.path.join(self.dir, "data")
        with open(path, "wb") as f:
            f.write(b"not a store")
        code, out, err = self.broker().run_once()
        self.assertNotEqual(code, 0, "started with persistence_location on a regular file")
        self.assertIn(path, err)
        self.assertIn("persistence", err)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"not a store", "the file was changed")

    def test_newer_format_refused_and_untouched(self):
        b = self.broker().start()
        self.seed(b)
        b.stop()
        fmt = dict(mdb_records(b.data, "meta"))[b"format"]
        self.assertEqual(fmt[0], 1)
        mdb_replace(b.data, "meta", b"format", b"\x02" + fmt[1:])
        before = sha256(os.path.join(b.data, "data.mdb"))
        code, out, err = b.run_once()
        self.assertNotEqual(code, 0, "started on a store of a newer format")
        self.assertIn("newer", err)
        self.assertEqual(sha256(os.path.join(b.data, "data.mdb")), before, "data.mdb changed")
        self.assertEqual(dict(mdb_records(b.data, "meta"))[b"format"][0], 2)
        self.assertEqual(len(mdb_records(b.data, "sessions")), 1)
        self.assertEqual(len(mdb_records(b.data, "retained")), 1)

    def test_corrupt_session_record_skipped(self):
        b = self.broker().start()
        for cid in ("good-a", "bad", "good-b"):
            c = self.client(b.port, cid, V5, expiry=300)
            c.subscribe("corrupt/t", 1)
            c.close()
        b.stop()
        recs = mdb_records(b.data, "sessions")
        self.assertEqual(len(recs), 3)
        key, value = next((k, v) for k, v in recs if k.endswith(b"bad"))
        flipped = bytearray(value)
        flipped[len(value) // 2] ^= 0x5A  # inside the body: the checksum no longer matches
        mdb_replace(b.data, "sessions", key, bytes(flipped))
        b.start()
        self.assertTrue(b.wait_log("corrupt"), "no log line about the corrupt record")
        self.assertRegex(b.log(), r"corrupt.*sessions|sessions.*corrupt")
        code, out = store_check(b.data)
        self.assertEqual(code, 1, "store check on a corrupt store:\n" + out)
        self.assertRegex(out, r"sessions.*corrupt")
        pub = self.client(b.port, "corrupt-pub", V311)
        pub.publish("corrupt/t", b"hello", 1)
        for cid in ("good-a", "good-b"):
            c = self.client(b.port, cid, V5, clean=False, expiry=300)
            self.assertTrue(c.session_present, "%s not restored next to a corrupt record" % cid)
            c.expect("corrupt/t", b"hello", 1)
            c.close()
        bad = self.client(b.port, "bad", V5, clean=False, expiry=300)
        self.assertFalse(bad.session_present, "a session restored from a corrupt record")
        bad.close()
        pub.close()
        b.stop()


class T7Durability(PersistBase):
    """durability batch and none: a clean stop commits everything."""

    def keeps_everything(self, mode):
        b = self.broker(lines=["durability " + mode, "commit_interval 50"]).start()
        sub = self.client(b.port, "dur-sub", V311, clean=False)
        sub.subscribe("dur/q", 2)
        sub.close()
        pub = self.client(b.port, "dur-pub", V5)
        for i in range(20):
            pub.publish("dur/q", b"m%d" % i, 1 + i % 2)
        pub.publish("dur/ret", b"retained", 1, retain=True)
        pub.close()
        b.stop()
        b.start()
        sub = self.raw(b.port, 4)
        self.assertTrue(sub.connect("dur-sub", clean=False).session_present)
        for i in range(20):
            self.expect_msg(sub, "dur/q", b"m%d" % i, 1 + i % 2)
        sub.quiet(QUIET_S)
        r = self.client(b.port, "dur-ret", V5)
        r.subscribe("dur/#", 1)
        r.expect("dur/ret", b"retained", 1)
        r.close()
        sub.send(raw.disconnect())
        sub.close()
        b.stop()

    def test_durability_batch(self):
        self.keeps_everything("batch")

    def test_durability_none(self):
        self.keeps_everything("none")


def setUpModule():
    # paho 1.6.1 leaves the socket pair of each client to the garbage collector.
    warnings.filterwarnings("ignore", category=ResourceWarning, message="unclosed <socket")


if __name__ == "__main__":
    unittest.main(verbosity=2)
