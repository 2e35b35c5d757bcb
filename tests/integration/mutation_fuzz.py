#!/usr/bin/python3
"""Network mutation fuzzer: mutated MQTT packet sequences over TCP against the running broker.

Each sequence is what one client sends on one connection: a CONNECT (MQTT
3.1, 3.1.1 or 5, with or without will, credentials and properties) and up
to a dozen packets of every kind a client sends (PUBLISH at every QoS with
topic aliases and properties, the four acknowledgements, SUBSCRIBE with
options, UNSUBSCRIBE, PINGREQ, DISCONNECT, AUTH), sometimes packets only a
server sends.  The sequence is then mutated at packet level (drop,
duplicate, swap, splice from another sequence, retype) and at byte level
(bit flips, interesting values, inserted, deleted and repeated bytes,
truncation, rewritten Remaining Lengths), and the CONNECT is usually left
intact so the mutations reach the post-CONNECT code.  It goes out in one
write, in random chunks or a byte at a time, while the client answers what
the broker sends as a well-behaved client would (PUBACK, PUBREC, PUBREL,
PUBCOMP), so QoS flows and in-flight windows move.  The connection then
ends with a half-close (the broker must then close it: a connection it
keeps is a stall), a reset, a plain close, or it lingers open for up to
1.7 s (past a keep alive of 1 s) before closing.  Client ids come from a
small pool, so sequences take over each other's sessions across shards.

Checked: everything the broker sends is well-framed and of a type a
server may send; every half-closed connection is closed by the broker
within CLOSE_S; the broker stays up; a well-behaved witness (a QoS 1
publisher and subscriber, connected throughout) completes a round trip
every --check-every sequences and at the end; a new client connects at
the end; and the broker exits with status 0 within STOP_S of SIGTERM.
Under the ASan build (-Db_sanitize=address,undefined) exit status 0 also
means no leak and no memory error was reported.

Usage (meson registers a bounded run of 5,000 sequences per shard count):
  RMQ_BINARY=build/src/ringmq tests/integration/mutation_fuzz.py --sequences 100000
  ... --seed 1234              reproduce a run (the seed is printed)
  ... --replay DIR_OR_FILES    resend saved sequences, in order, one at a time
On failure the sequences last in flight are saved (raw bytes, one file
each) under RMQ_TEST_LOGDIR/mutation-fuzz-SEED/ with the broker's log.
RMQ_SHARDS, RMQ_TEST_LOGDIR and RMQ_TEST_BROKER=mosquitto work as for
paho_test.py.
"""

import argparse
import collections
import errno
import os
import random
import re
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

START_S = 10.0
STOP_S = 30.0  # a broker with 100,000 sequences of state behind it, under ASan
CLOSE_S = 10.0  # after our half-close the broker must close the connection
WAIT_S = 5.0  # a witness round trip
IDS = 24  # client id pool

# The broker's configuration: small queues and a short session expiry so that
# 100,000 sequences of persistent sessions stay bounded; a short connect
# timeout so dribbled pre-CONNECT connections go quickly; $SYS every second
# so its publications race the fuzzing.
RINGMQ_CONF = """listener 0 127.0.0.1
allow_anonymous true
persistence false
connect_timeout 2
max_queued_messages 100
persistent_client_expiration 30
sys_interval 1
max_topic_alias 10
"""


def fail(msg):
    raise AssertionError(msg)


# ---------------------------------------------------------------------------
# The broker
# ---------------------------------------------------------------------------

class Broker:
    """The broker under test, its output copied to a log file."""

    def __init__(self, name, persist=False):
        self.persist = persist
        self.mosquitto = os.environ.get("RMQ_TEST_BROKER") == "mosquitto"
        self.shards = os.environ.get("RMQ_SHARDS", "1")
        self.logdir = os.environ.get("RMQ_TEST_LOGDIR") or tempfile.gettempdir()
        os.makedirs(self.logdir, exist_ok=True)
        kind = "mosquitto" if self.mosquitto else "ringmq"
        base = os.path.join(self.logdir, "%s-s%s-%s" % (kind, self.shards, name))
        self.log_path, self.conf_path = base + ".log", base + ".conf"
        self.port = None
        self.proc = None
        self._listening = threading.Event()

    def start(self):
        if self.mosquitto:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            conf = ("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "log_dest stderr\nmax_queued_messages 100\n" % self.port)
            if os.geteuid() == 0:
                conf += "user root\n"
            argv = ["/usr/sbin/mosquitto", "-c", self.conf_path]
            pattern = re.compile(r"mosquitto version \S+ running")
        else:
            binary = os.environ.get("RMQ_BINARY")
            if not binary:
                fail("RMQ_BINARY is not set (meson sets it)")
            conf = RINGMQ_CONF
            if self.persist:
                # The store on, durability sync, as in the default run: every
                # QoS 1/2 acknowledgement waits for a commit.
                self.data_dir = tempfile.mkdtemp(prefix="mutation-fuzz-data-")
                conf += "persistence true\npersistence_location %s\ndurability sync\n" % self.data_dir
            argv = [binary, "-c", self.conf_path, "--shards", self.shards]
            pattern = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
        with open(self.conf_path, "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read, args=(pattern,), daemon=True)
        self._reader.start()
        if not self._listening.wait(START_S) or self.port is None:
            self.kill()
            fail("broker not listening within %.0f s (exit status %s)" % (START_S, self.proc.poll()))

    def _read(self, pattern):
        # Line by line, flushed, so the log is complete whenever it is read.
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

    def alive(self):
        status = self.proc.poll()
        if status is not None:
            how = "signal %d" % -status if status < 0 else "status %d" % status
            fail("the broker died (%s)" % how)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(STOP_S)
        except subprocess.TimeoutExpired:
            self.kill()
            fail("broker did not exit within %.0f s of SIGTERM" % STOP_S)
        self._reader.join(STOP_S)
        if status != 0:
            fail("broker exited with %s after SIGTERM (under ASan: a leak or memory error, see the log)"
                 % ("signal %d" % -status if status < 0 else "status %d" % status))
        if self.persist:
            # Every record the fuzzing left behind must read back.
            check = subprocess.run([os.environ["RMQ_BINARY"], "store", "check", self.data_dir],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if check.returncode != 0:
                fail("ringmq store check failed after the run:\n" + check.stdout)
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.persist:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_tail(self, lines=60):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"


# ---------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s16(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack(">H", len(b) & 0xFFFF) + b


def frame(first, body):
    return bytes([first]) + varint(len(body)) + body


# Property id -> (kind, packets it belongs in); kind: b byte, h u16, i u32,
# v varint, s string, d binary, p string pair.
PROPS = {
    0x01: ("b", "PW"), 0x02: ("i", "PW"), 0x03: ("s", "PW"), 0x08: ("s", "PW"),
    0x09: ("d", "PW"), 0x0B: ("v", "S"), 0x11: ("i", "CD"), 0x15: ("s", "CA"),
    0x16: ("d", "CA"), 0x17: ("b", "C"), 0x18: ("i", "W"), 0x19: ("b", "C"),
    0x1F: ("s", "DA"), 0x21: ("h", "C"), 0x22: ("h", "C"), 0x23: ("h", "P"),
    0x26: ("p", "CPWSUDAK"), 0x27: ("i", "C"), 0x12: ("s", ""), 0x13: ("h", ""),
    0x1A: ("s", ""), 0x1C: ("s", ""), 0x24: ("b", ""), 0x25: ("b", ""),
}
INTERESTING_U32 = [0, 1, 2, 60, 0x7F, 0x80, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF]
TOPICS = ["fz/a", "fz/b", "fz/a/b", "fz/a/b/c", "fz", "$SYS/x", "fz//", "/", "fz/\u00e9", "a" * 300]
FILTERS = ["fz/a", "fz/+", "fz/#", "#", "+/+", "fz/+/b", "$SYS/#", "$share/g/fz/#", "$share/h/#",
           "fz/a/#", "+", "$share/g", "fz/#/a", "fz+", ""]


class Gen:
    """Random valid-ish packets; @r is the run's random.Random."""

    def __init__(self, r):
        self.r = r

    def str_value(self):
        r = self.r
        return r.choice(["", "x", "text/plain", "fz/reply", "\u00e9t\u00e9", "a" * r.randrange(1, 200)])

    def props(self, kind, v5):
        """The property block for packet kind letter @kind (C, P, W, S, U, D, A, K), or b'' before MQTT 5."""
        if not v5:
            return b""
        r = self.r
        out = bytearray()
        n = r.choice([0, 0, 1, 2, 3, 5]) if r.random() < 0.97 else r.randrange(50, 400)
        ids = [i for i, (_, where) in PROPS.items() if kind in where]
        for _ in range(n):
            pid = r.choice(ids) if ids and r.random() < 0.9 else r.choice(list(PROPS) + [0x00, 0x7F, 0xFF])
            t = PROPS.get(pid, ("b", ""))[0]
            out += bytes([pid])
            if t == "b":
                out.append(r.choice([0, 1, 2, 255]))
            elif t == "h":
                out += struct.pack(">H", r.choice([0, 1, 2, 5, 10, 11, 0xFFFF]))
            elif t == "i":
                out += struct.pack(">I", r.choice(INTERESTING_U32))
            elif t == "v":
                out += varint(r.choice([0, 1, 127, 128, 268435455]))
            elif t in "sd":
                out += s16(self.str_value())
            else:
                out += s16(self.str_value()) + s16(self.str_value())
        return varint(len(out)) + bytes(out)

    def connect(self, version, cid):
        r = self.r
        v5 = version == 5
        flags = 0x02 if r.random() < 0.6 else 0
        will = b""
        if r.random() < 0.25:
            qos = r.choice([0, 1, 2])
            flags |= 0x04 | (qos << 3) | (0x20 if r.random() < 0.3 else 0)
            will = self.props("W", v5) + s16(r.choice(TOPICS)) + s16(self.str_value())
        user = pw = b""
        if r.random() < 0.15:
            flags |= 0x80
            user = s16("user")
            if r.random() < 0.5:
                flags |= 0x40
                pw = s16("secret")
        name = b"MQIsdp" if version == 3 else b"MQTT"
        keepalive = r.choice([0, 0, 60, 1, 65535])
        body = (s16(name) + bytes([version, flags]) + struct.pack(">H", keepalive) + self.props("C", v5)
                + s16(cid) + will + user + pw)
        return frame(0x10, body)

    def publish(self, v5, pid):
        r = self.r
        qos = r.choice([0, 0, 1, 1, 2])
        first = 0x30 | (qos << 1) | (1 if r.random() < 0.2 else 0) | (0x08 if qos and r.random() < 0.1 else 0)
        topic = r.choice(TOPICS)
        if v5 and r.random() < 0.15:
            topic = ""  # with (or, mutated, without) a topic alias
        body = s16(topic) + (struct.pack(">H", pid) if qos else b"") + self.props("P", v5)
        body += r.choice([b"", b"hello", r.randbytes(r.randrange(1, 64)), b"p" * r.randrange(100, 5000)])
        return frame(first, body)

    def ack(self, v5, pid):
        r = self.r
        first = r.choice([0x40, 0x50, 0x62, 0x70])
        body = struct.pack(">H", pid)
        if v5 and r.random() < 0.6:
            body += bytes([r.choice([0, 0x10, 0x80, 0x92])]) + (self.props("K", v5) if r.random() < 0.5 else b"")
        return frame(first, body)

    def subscribe(self, v5, pid):
        r = self.r
        body = bytearray(struct.pack(">H", pid) + self.props("S", v5))
        for _ in range(r.choice([1, 1, 2, 3, 20])):
            opts = r.choice([0, 1, 2]) | (r.choice([0, 4, 8, 12, 16, 32]) if v5 else 0)
            body += s16(r.choice(FILTERS)) + bytes([opts])
        return frame(0x82, bytes(body))

    def unsubscribe(self, v5, pid):
        r = self.r
        body = bytearray(struct.pack(">H", pid) + self.props("U", v5))
        for _ in range(r.choice([1, 2, 5])):
            body += s16(r.choice(FILTERS))
        return frame(0xA2, bytes(body))

    def other(self, v5):
        r = self.r
        k = r.randrange(10)
        if k < 4:
            return frame(0xC0, b"")  # PINGREQ
        if k < 6:
            reason = r.choice([0, 4, 0x80, 0x8E])
            return frame(0xE0, bytes([reason]) + self.props("D", v5) if v5 and r.random() < 0.7 else b"")
        if k == 6:
            return frame(0xF0, bytes([r.choice([0, 0x18, 0x19])]) + self.props("A", v5))  # AUTH
        # Packets only a server sends.
        return r.choice([frame(0x20, b"\x00\x00"), frame(0x90, b"\x00\x01\x00"), frame(0xB0, b"\x00\x01"),
                         frame(0xD0, b""), frame(0x00, b"")])

    def sequence(self):
        """A list of packets (bytes), CONNECT first."""
        r = self.r
        version = r.choice([3, 4, 4, 5, 5, 5])
        v5 = version == 5
        cid = "fz%d" % r.randrange(IDS) if r.random() < 0.95 else ""
        pkts = [self.connect(version, cid)]
        pid = r.randrange(1, 65536)
        for _ in range(r.randrange(0, 13)):
            k = r.randrange(100)
            pid = pid % 65535 + 1 if r.random() < 0.9 else r.choice([0, 1, 65535])
            if k < 40:
                pkts.append(self.publish(v5, pid))
            elif k < 60:
                pkts.append(self.ack(v5, pid))
            elif k < 75:
                pkts.append(self.subscribe(v5, pid))
            elif k < 82:
                pkts.append(self.unsubscribe(v5, pid))
            else:
                pkts.append(self.other(v5))
        return pkts


# ---------------------------------------------------------------------------
# Mutation
# ---------------------------------------------------------------------------

INTERESTING_BYTES = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x10, 0x20, 0x30, 0x3F, 0x62, 0x82, 0xC0, 0xE0, 0xF0]


def mutate_bytes(r, b):
    b = bytearray(b)
    if not b:
        return bytes(r.randbytes(r.randrange(1, 8)))
    op = r.randrange(9)
    i = r.randrange(len(b))
    if op == 0:
        for _ in range(r.randrange(1, 4)):
            j = r.randrange(len(b))
            b[j] ^= 1 << r.randrange(8)
    elif op == 1:
        b[i] = r.choice(INTERESTING_BYTES)
    elif op == 2:
        b[i:i] = r.randbytes(r.randrange(1, 16))
    elif op == 3:
        del b[i:i + r.randrange(1, 16)]
    elif op == 4:
        del b[i:]
    elif op == 5:
        n = r.randrange(1, 64)
        b[i:i] = bytes(b[i:i + n]) * r.randrange(2, 20)
    elif op == 6:
        b[i] = r.randrange(256)
    elif op == 7:
        # A 16-bit length field (strings, packet ids) at a random offset.
        b[i:i + 2] = struct.pack(">H", r.choice([0, 1, 0x7FFF, 0xFFFF, len(b) & 0xFFFF]))
    else:
        # A new Remaining Length, from small to the protocol's maximum.
        n = r.choice([0, 1, 2, 127, 128, 16383, 16384, 65535, 2097152, 268435455])
        body = b[1:]
        while body and body[0] & 0x80:
            body = body[1:]
        body = body[1:] if body else body
        b = bytearray(b[:1]) + varint(n) + body
    return bytes(b)


def mutate(r, pkts, pool):
    """Mutated copy of the packet list @pkts; @pool holds packets of earlier sequences."""
    pkts = list(pkts)
    keep_connect = r.random() < 0.7
    for _ in range(r.choice([0, 1, 1, 2, 3, 5]) if r.random() > 0.03 else 0):
        lo = 1 if keep_connect and len(pkts) > 1 else 0
        if r.random() < 0.35 and len(pkts) > lo:
            op = r.randrange(5)
            i = r.randrange(lo, len(pkts))
            if op == 0 and len(pkts) > 1:
                del pkts[i]
            elif op == 1:
                pkts.insert(i, pkts[i] * r.choice([1, 1, 2, 50]))
            elif op == 2:
                j = r.randrange(lo, len(pkts))
                pkts[i], pkts[j] = pkts[j], pkts[i]
            elif op == 3 and pool:
                pkts.insert(i, r.choice(pool))
            else:
                p = bytearray(pkts[i])
                if p:
                    p[0] = r.randrange(256)
                pkts[i] = bytes(p)
        elif r.random() < 0.8 and len(pkts) > lo:
            i = r.randrange(lo, len(pkts))
            pkts[i] = mutate_bytes(r, pkts[i])
        else:
            whole = mutate_bytes(r, b"".join(pkts[lo:]))
            pkts = pkts[:lo] + [whole]
    return pkts


def chunks_of(r, data):
    """How @data goes out: one write, random chunks, or a byte at a time (short data only)."""
    k = r.randrange(10)
    if k < 6 or not data:
        return [data]
    if k < 9 or len(data) > 400:
        out, i = [], 0
        while i < len(data):
            n = r.choice([1, 2, 3, 7, 13, 64, 511, 513, 1021, 4096])
            out.append(data[i:i + n])
            i += n
        return out
    return [data[i:i + 1] for i in range(len(data))]


# ---------------------------------------------------------------------------
# Connections
# ---------------------------------------------------------------------------

SERVER_TYPES = {2, 3, 4, 5, 6, 7, 9, 11, 13, 14, 15}  # what a server may send


class Conn:
    """One sequence's connection.  States: "send" (the mutated stream is going
    out), then by its ending "half-closed" (waiting for the broker's close),
    "linger" (open a while, acknowledging what the broker sends, then
    closed) or finished at once (reset, abandon)."""

    def __init__(self, index, data, chunks, ending, linger_s, port, sel):
        self.index = index
        self.data = data
        self.chunks = collections.deque(chunks)
        self.ending = ending  # "half-close", "reset", "abandon" or "linger"
        self.linger_s = linger_s
        self.state = "send"
        self.sel = sel
        self.rx = bytearray()
        self.closed_by_us_at = None
        self.linger_until = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        err = self.sock.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            fail("connect: %s" % os.strerror(err))
        sel.register(self.sock, selectors.EVENT_WRITE | selectors.EVENT_READ, self)

    def respond(self, first, body):
        """The well-behaved answer to a broker packet, while we still send:
        PUBACK/PUBREC for a QoS 1/2 PUBLISH, PUBCOMP for PUBREL, PUBREL for
        PUBREC, so QoS flows and in-flight windows move."""
        t, qos = first >> 4, (first >> 1) & 3
        out = None
        if t == 3 and qos and len(body) >= 2:
            tl = struct.unpack(">H", body[:2])[0]
            pid = body[2 + tl:4 + tl]
            if len(pid) == 2:
                out = (b"\x40\x02" if qos == 1 else b"\x50\x02") + pid
        elif t == 6 and len(body) >= 2:
            out = b"\x70\x02" + body[:2]
        elif t == 5 and len(body) >= 2:
            out = b"\x62\x02" + body[:2]
        if out is None or self.state not in ("send", "linger"):
            return
        self.chunks.append(out)
        if self.state == "linger":
            self.sel.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self)

    def check_rx(self):
        """Everything the broker sent must be well-framed server packets."""
        rx = self.rx
        while rx:
            t = rx[0] >> 4
            if t not in SERVER_TYPES:
                fail("sequence %d: the broker sent packet type %d, which only a client sends (first byte 0x%02x)"
                     % (self.index, t, rx[0]))
            n, mult, i = 0, 1, 1
            while True:
                if i >= len(rx):
                    return
                n += (rx[i] & 0x7F) * mult
                if not rx[i] & 0x80:
                    break
                mult *= 128
                i += 1
                if i > 4:
                    fail("sequence %d: the broker sent a malformed Remaining Length" % self.index)
            if len(rx) < i + 1 + n:
                return
            self.respond(rx[0], bytes(rx[i + 1:i + 1 + n]))
            del rx[:i + 1 + n]


def run(args):
    r = random.Random(args.seed)
    gen = Gen(r)
    broker = Broker("mutation_fuzz.%d" % args.seed, persist=args.persistence)
    broker.start()
    recent = collections.deque(maxlen=4 * args.concurrency)
    ok = False
    try:
        witness = Witness(broker.port)
        sel = selectors.DefaultSelector()
        pool = []
        started = done = stalls = 0
        live = {}
        t0 = time.monotonic()
        next_check = args.check_every
        while done < args.sequences:
            while started < args.sequences and len(live) < args.concurrency:
                if args.replay:
                    data = args.replay[started]
                    chunks, ending = [data], "half-close"
                else:
                    pkts = gen.sequence()
                    if len(pool) < 512:
                        pool.extend(pkts[1:])
                    else:
                        pool[r.randrange(len(pool))] = r.choice(pkts)
                    data = b"".join(mutate(r, pkts, pool))
                    chunks = chunks_of(r, data)
                    ending = r.choice(["half-close"] * 6 + ["reset", "reset", "abandon", "linger", "linger"])
                # Mostly short; sometimes past 1.5 x a keep alive of 1 s.
                linger_s = r.choice([0.02, 0.05, 0.1, 0.2, 1.7]) if not args.replay else 0
                c = Conn(started, data, chunks, ending, linger_s, broker.port, sel)
                recent.append((started, data))
                live[c.sock.fileno()] = c
                started += 1
            for key, ev in sel.select(timeout=0.05):
                c = key.data
                if step(c, ev):
                    finish(sel, live, c)
                    done += 1
            now = time.monotonic()
            for c in list(live.values()):
                if c.state == "linger" and now > c.linger_until:
                    finish(sel, live, c)
                    done += 1
                elif c.closed_by_us_at is not None and now - c.closed_by_us_at > CLOSE_S:
                    stalls += 1
                    fail("sequence %d: the broker kept the connection %.0f s after the client's half-close "
                         "(a stall); %d bytes sent: %s" % (c.index, CLOSE_S, len(c.data), c.data[:64].hex()))
            if done >= next_check or done == args.sequences:
                broker.alive()
                witness.check()
                next_check += args.check_every
                if args.verbose:
                    print("%d sequences, %.1f s" % (done, time.monotonic() - t0), flush=True)
        witness.check()
        Witness(broker.port, "after").close()
        witness.close()
        broker.alive()
        elapsed = time.monotonic() - t0
        broker.stop()
        ok = True
        print("mutation_fuzz: seed %d, %d sequences, %d shard(s), %.1f s: no crash, no stall, exit 0"
              % (args.seed, args.sequences, int(broker.shards), elapsed))
    except (AssertionError, OSError):
        broker.alive()  # a dead broker is the failure to report, whatever symptom came first
        raise
    finally:
        if not ok:
            save(broker, args.seed, recent)
            broker.kill()


def finish(sel, live, c):
    sel.unregister(c.sock)
    del live[c.sock.fileno()]
    c.sock.close()


def step(c, ev):
    """Advances connection @c on selector events @ev; True when it is finished."""
    if ev & selectors.EVENT_READ:
        try:
            got = c.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except BlockingIOError:
            got = None
        except OSError as e:
            if e.errno in (errno.ENOTCONN, errno.ECONNREFUSED):
                fail("sequence %d: connection refused by the broker: %s" % (c.index, e))
            raise
        if got == b"":
            return True
        if got:
            c.rx += got
            c.check_rx()
    if ev & selectors.EVENT_WRITE and c.state in ("send", "linger"):
        try:
            while c.chunks:
                n = c.sock.send(c.chunks[0])
                if n < len(c.chunks[0]):
                    c.chunks[0] = c.chunks[0][n:]
                    return False
                c.chunks.popleft()
                if c.chunks:
                    return False  # one send per event: separate chunks stay separate receives
        except BlockingIOError:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        if c.state == "linger":
            c.sel.modify(c.sock, selectors.EVENT_READ, c)
            return False
        if c.ending == "reset":
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return True
        if c.ending == "abandon":
            return True
        if c.ending == "linger":
            c.state = "linger"
            c.linger_until = time.monotonic() + c.linger_s
            c.sel.modify(c.sock, selectors.EVENT_READ, c)
            return False
        try:
            c.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return True
        c.state = "half-closed"
        c.closed_by_us_at = time.monotonic()
        c.sel.modify(c.sock, selectors.EVENT_READ, c)  # nothing left to write: wait for the close
    return False


def save(broker, seed, recent):
    d = os.path.join(broker.logdir, "mutation-fuzz-%d" % seed)
    os.makedirs(d, exist_ok=True)
    for index, data in recent:
        with open(os.path.join(d, "seq-%07d.bin" % index), "wb") as f:
            f.write(data)
    sys.stderr.write("mutation_fuzz: seed %d failed; the last %d sequences are in %s (replay with --replay %s)\n"
                     "---- broker log %s (tail) ----\n%s---- end ----\n"
                     % (seed, len(recent), d, d, broker.log_path, broker.log_tail()))


# ---------------------------------------------------------------------------
# The witness: a well-behaved QoS 1 publisher and subscriber (MQTT 3.1.1)
# ---------------------------------------------------------------------------

class Sync:
    """A blocking MQTT 3.1.1 connection with a frame reader."""

    def __init__(self, port, cid):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        self.rx = bytearray()
        self.cid = cid
        self.sock.sendall(frame(0x10, s16("MQTT") + bytes([4, 0x02]) + struct.pack(">H", 0) + s16(cid)))
        t, body = self.read()
        if t != 2 or body[1] != 0:
            fail("witness %s: no CONNACK 0 (type %d)" % (cid, t))

    def read(self):
        deadline = time.monotonic() + WAIT_S
        while True:
            if len(self.rx) >= 2:
                n, mult, i = 0, 1, 1
                while i < len(self.rx) and i <= 4:
                    n += (self.rx[i] & 0x7F) * mult
                    if not self.rx[i] & 0x80:
                        break
                    mult *= 128
                    i += 1
                if i < len(self.rx) and len(self.rx) >= i + 1 + n:
                    t, body = self.rx[0] >> 4, bytes(self.rx[i + 1:i + 1 + n])
                    del self.rx[:i + 1 + n]
                    return t, body
            left = deadline - time.monotonic()
            if left <= 0:
                fail("witness %s: nothing from the broker within %.0f s (starved or stalled)" % (self.cid, WAIT_S))
            self.sock.settimeout(left)
            try:
                got = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not got:
                fail("witness %s: the broker closed the connection" % self.cid)
            self.rx += got

    def close(self):
        self.sock.sendall(b"\xe0\x00")
        self.sock.close()


class Witness:
    def __init__(self, port, name="witness"):
        self.sub = Sync(port, "rmq-%s-sub" % name)
        self.pub = Sync(port, "rmq-%s-pub" % name)
        self.topic = "rmq-%s/t" % name
        self.seq = 0
        self.sub.sock.sendall(frame(0x82, struct.pack(">H", 1) + s16(self.topic) + b"\x01"))
        t, body = self.sub.read()
        if t != 9 or body[2] != 1:
            fail("witness: SUBACK %r" % body)
        self.check()

    def check(self):
        self.seq += 1
        payload = b"witness %d" % self.seq
        pid = self.seq % 65535 + 1
        self.pub.sock.sendall(frame(0x32, s16(self.topic) + struct.pack(">H", pid) + payload))
        t, body = self.pub.read()
        if t != 4 or struct.unpack(">H", body[:2])[0] != pid:
            fail("witness: expected PUBACK %d, got type %d" % (pid, t))
        t, body = self.sub.read()
        if t != 3:
            fail("witness: expected PUBLISH, got type %d" % t)
        tl = struct.unpack(">H", body[:2])[0]
        got = body[2 + tl + 2:]
        if got != payload:
            fail("witness: expected %r, got %r" % (payload, got))
        self.sub.sock.sendall(b"\x40\x02" + body[2 + tl:2 + tl + 2])

    def close(self):
        self.pub.close()
        self.sub.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sequences", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--check-every", type=int, default=500)
    ap.add_argument("--replay", nargs="+", metavar="PATH", help="saved sequences (files or directories)")
    ap.add_argument("--persistence", action="store_true",
                    help="run the broker with its LMDB store on (durability sync), in a temporary directory")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "big")
    if args.replay:
        files = []
        for p in args.replay:
            files += sorted(os.path.join(p, f) for f in os.listdir(p)) if os.path.isdir(p) else [p]
        args.replay = [open(f, "rb").read() for f in files]
        args.sequences = len(args.replay)
        args.concurrency = 1
    print("mutation_fuzz: seed %d, %d sequences" % (args.seed, args.sequences), flush=True)
    try:
        run(args)
    except (AssertionError, OSError) as e:
        sys.exit("mutation_fuzz: FAILED (seed %d): %s" % (args.seed, e))


if __name__ == "__main__":
    main()
