#!/usr/bin/python3
"""WebSocket listeners (protocol websockets) through the real binary.

Eclipse Paho (Debian's python3-paho-mqtt, transport="websockets") over ws
and wss, MQTT 3.1.1 and 5, QoS 0/1/2, with enough client ids that most
CONNECTs are handed to another shard under --shards 4.  A raw socket client
checks what Paho never sends: the 101 answer and its Sec-WebSocket-Accept,
a CONNECT split over three fragments with a ping between them, several
packets in one frame, a client close echoed, each refused handshake (wrong
path 404, Origin 403, version 426, no mqtt subprotocol 400, oversize 431)
and each bad frame with its close code (unmasked and reserved bits 1002,
text 1003, too large 1009), and X-Forwarded-For believed only from
websockets_trusted_proxy.  Certificates for wss are made by the test with
openssl (nothing is committed).  Runs ringmq from RMQ_BINARY with --shards
RMQ_SHARDS; tests wait on events with timeouts and never sleep.
"""

import base64
import hashlib
import os
import queue
import re
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import unittest

try:
    import paho.mqtt.client as mqtt
except ImportError as e:  # a missing dependency is a failure, never a skip
    sys.exit("ws_test.py needs python3-paho-mqtt under /usr/bin/python3: %s" % e)

WAIT_S = 5.0
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def make_cert(d):
    """A self-signed certificate for localhost / 127.0.0.1: (cert, key)."""
    crt, key = os.path.join(d, "server.crt"), os.path.join(d, "server.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    return crt, key


class Broker:
    def __init__(self, lines, name):
        binary = os.environ.get("RMQ_BINARY")
        if not binary:
            raise RuntimeError("RMQ_BINARY is not set (meson sets it)")
        logdir = os.environ.get("RMQ_TEST_LOGDIR") or tempfile.gettempdir()
        os.makedirs(logdir, exist_ok=True)
        shards = os.environ.get("RMQ_SHARDS", "1")
        self.conf = os.path.join(logdir, "ringmq-s%s-ws.%s.conf" % (shards, name))
        with open(self.conf, "w") as f:
            f.write("persistence false\nallow_anonymous true\nlog_level debug\n" +
                    "".join(l + "\n" for l in lines))
        self.proc = subprocess.Popen([binary, "-c", self.conf, "--shards", shards], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.log, self.ports = [], []
        self.cond = threading.Condition()
        ready = threading.Event()

        def read():
            for line in self.proc.stdout:
                with self.cond:
                    self.log.append(line)
                    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
                    if m:
                        self.ports.append(int(m.group(1)))
                    self.cond.notify_all()
                if "running" in line:
                    ready.set()
            ready.set()
            with self.cond:
                self.cond.notify_all()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(10) or not self.ports:
            raise AssertionError("broker did not start:\n" + "".join(self.log))

    def text(self):
        with self.cond:
            return "".join(self.log)

    def wait_log(self, pattern):
        with self.cond:
            return self.cond.wait_for(lambda: any(re.search(pattern, l) for l in self.log), WAIT_S)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            assert self.proc.wait(10) == 0, "broker did not exit cleanly:\n" + self.text()
        self.proc.stdout.close()


# ----------------------------------------------------------------- raw client

def mqtt_len(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_str(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def connect_packet(client_id, keepalive=60):
    body = mqtt_str("MQTT") + bytes([4, 0x02]) + struct.pack(">H", keepalive) + mqtt_str(client_id)
    return b"\x10" + mqtt_len(len(body)) + body


def subscribe_packet(pid, topic, qos=0):
    body = struct.pack(">H", pid) + mqtt_str(topic) + bytes([qos])
    return b"\x82" + mqtt_len(len(body)) + body


def publish_packet(topic, payload):
    body = mqtt_str(topic) + payload
    return b"\x30" + mqtt_len(len(body)) + body


class WsClient:
    """A WebSocket client by hand: masks what it sends, reads server frames."""

    def __init__(self, port, path="/mqtt", protocol="mqtt", version="13", origin=None, extra=(), tls=False,
                 request=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.key = base64.b64encode(os.urandom(16)).decode()
        if request is None:
            lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % port, "Upgrade: websocket",
                     "Connection: Upgrade", "Sec-WebSocket-Key: " + self.key, "Sec-WebSocket-Version: " + version]
            if protocol:
                lines.append("Sec-WebSocket-Protocol: " + protocol)
            if origin:
                lines.append("Origin: " + origin)
            lines += list(extra)
            request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.sock.sendall(request)
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
        self.headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.stream = b""

    def body(self):
        """The rest of an error response (the connection closes after it)."""
        data = self.buf
        while True:
            chunk = self.sock.recv(4096)
            if not chunk:
                return data
            data += chunk

    def frame(self, opcode, payload, fin=True, rsv=0, mask=True):
        b0 = (0x80 if fin else 0) | rsv | opcode
        n = len(payload)
        if n <= 125:
            head = bytes([b0, (0x80 if mask else 0) | n])
        elif n <= 0xFFFF:
            head = bytes([b0, (0x80 if mask else 0) | 126]) + struct.pack(">H", n)
        else:
            head = bytes([b0, (0x80 if mask else 0) | 127]) + struct.pack(">Q", n)
        if not mask:
            return head + payload
        key = os.urandom(4)
        return head + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))

    def send(self, *frames):
        self.sock.sendall(b"".join(frames))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self):
        b0, b1 = self._read(2)
        assert not b1 & 0x80, "server frames are not masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._read(8))[0]
        return bool(b0 & 0x80), b0 & 0x0F, self._read(n)

    def recv_packet(self):
        """The next MQTT packet from the binary frames, as (first byte, body)."""
        while True:
            if len(self.stream) >= 2:
                mult, i, length = 1, 1, 0
                while i < len(self.stream):
                    b = self.stream[i]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        break
                else:
                    i = None
                if i is not None and len(self.stream) >= i + length and not self.stream[i - 1] & 0x80:
                    pkt, self.stream = self.stream[:i + length], self.stream[i + length:]
                    return pkt[0], pkt[i:]
            fin, op, payload = self.recv_frame()
            assert op == 2, "MQTT arrives in binary frames, got opcode %d" % op
            self.stream += payload

    def close_code(self):
        """Read frames until the server's close frame; its code (None if none)."""
        while True:
            fin, op, payload = self.recv_frame()
            if op == 8:
                return struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None

    def at_eof(self):
        try:
            while True:
                if not self.sock.recv(4096):
                    return True
        except (ConnectionResetError, socket.timeout):
            return False

    def close(self):
        self.sock.close()


class WsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="rmq-ws-")
        cls.crt, cls.key = make_cert(cls.dir)

    def broker(self, lines, name):
        b = Broker(lines, name)
        self.addCleanup(b.stop)
        return b

    def paho_roundtrip(self, port, tls, tag):
        got = queue.Queue()
        clients = []

        def client(cid, version):
            c = mqtt.Client(cid, protocol=version, transport="websockets")
            c.ws_set_options(path="/mqtt")
            if tls:
                c.tls_set(ca_certs=self.crt)
            connected = threading.Event()
            c.on_connect = lambda *a: connected.set()
            c.on_message = lambda cl, ud, m: got.put((cid, m.topic, m.payload, m.qos))
            c.connect("127.0.0.1" if not tls else "localhost", port)
            c.loop_start()
            clients.append(c)
            self.assertTrue(connected.wait(WAIT_S), "%s did not connect" % cid)
            return c

        try:
            subs = []
            for i in range(4):  # ids on every shard: most CONNECTs are handed off under --shards 4
                s = client("%s-sub%d" % (tag, i), mqtt.MQTTv311 if i % 2 else mqtt.MQTTv5)
                done = threading.Event()
                s.on_subscribe = lambda *a, e=done: e.set()
                s.subscribe("ws/#", qos=2)
                self.assertTrue(done.wait(WAIT_S))
                subs.append(s)
            pub = client(tag + "-pub", mqtt.MQTTv5)
            big = bytes(range(256)) * 300  # 76,800 bytes: 64-bit frame lengths both ways
            for qos in (0, 1, 2):
                pub.publish("ws/%d" % qos, b"q%d" % qos, qos=qos).wait_for_publish()
            pub.publish("ws/big", big, qos=1).wait_for_publish()
            seen = {}
            for _ in range(4 * 4):
                cid, topic, payload, qos = got.get(timeout=WAIT_S)
                seen.setdefault(cid, {})[topic] = (payload, qos)
            self.assertEqual(len(seen), 4)
            for cid, topics in seen.items():
                self.assertEqual(topics["ws/0"], (b"q0", 0), cid)
                self.assertEqual(topics["ws/1"], (b"q1", 1), cid)
                self.assertEqual(topics["ws/2"], (b"q2", 2), cid)
                self.assertEqual(topics["ws/big"], (big, 1), cid)
        finally:
            for c in clients:
                c.disconnect()
                c.loop_stop()

    def test_paho_over_ws_and_wss(self):
        b = self.broker(["listener 0 127.0.0.1", "protocol websockets",
                         "listener 0 127.0.0.1", "protocol websockets", "certfile " + self.crt,
                         "keyfile " + self.key], "paho")
        ws_port, wss_port = b.ports
        self.paho_roundtrip(ws_port, False, "ws")
        self.paho_roundtrip(wss_port, True, "wss")
        self.assertTrue(b.wait_log(r"\[client ws-sub0\] connected from 127\.0\.0\.1"), b.text())
        self.assertTrue(b.wait_log(r"\[client wss-pub\] disconnected from .*client sent DISCONNECT"), b.text())

    def raw_session(self, port, tls):
        c = WsClient(port, tls=tls)
        self.addCleanup(c.close)
        self.assertEqual(c.status, 101)
        self.assertEqual(c.headers.get("upgrade", "").lower(), "websocket")
        self.assertEqual(c.headers.get("connection", "").lower(), "upgrade")
        accept = base64.b64encode(hashlib.sha1((c.key + GUID).encode()).digest()).decode()
        self.assertEqual(c.headers.get("sec-websocket-accept"), accept)
        self.assertEqual(c.headers.get("sec-websocket-protocol"), "mqtt")
        connect = connect_packet("raw-%s-%d" % ("wss" if tls else "ws", port))
        # CONNECT in three fragments with a ping between two of them
        c.send(c.frame(2, connect[:3], fin=False), c.frame(0, connect[3:9], fin=False),
               c.frame(9, b"are you there"), c.frame(0, connect[9:], fin=True))
        fin, op, payload = c.recv_frame()
        self.assertEqual((fin, op, payload), (True, 10, b"are you there"), "the pong echoes the ping")
        self.assertEqual(c.recv_packet(), (0x20, b"\x00\x00"), "CONNACK")
        # SUBSCRIBE, PUBLISH and PINGREQ in one frame; PINGREQ split over two
        c.send(c.frame(2, subscribe_packet(1, "raw/t") + publish_packet("raw/t", b"x" * 300) + b"\xc0"),
               c.frame(2, b"\x00"))
        self.assertEqual(c.recv_packet(), (0x90, b"\x00\x01\x00"), "SUBACK")
        self.assertEqual(c.recv_packet(), (0x30, mqtt_str("raw/t") + b"x" * 300), "the PUBLISH comes back")
        self.assertEqual(c.recv_packet(), (0xD0, b""), "PINGRESP")
        c.send(c.frame(8, struct.pack(">H", 1000) + b"bye"))
        self.assertEqual(c.close_code(), 1000, "the close is echoed")
        self.assertTrue(c.at_eof(), "then the connection closes")

    def test_raw_frames_over_ws_and_wss(self):
        b = self.broker(["listener 0 127.0.0.1", "protocol websockets",
                         "listener 0 127.0.0.1", "protocol websockets", "certfile " + self.crt,
                         "keyfile " + self.key], "raw")
        for port, tls in ((b.ports[0], False), (b.ports[1], True)):
            self.raw_session(port, tls)
        self.assertTrue(b.wait_log(r"WebSocket closed by client \(code 1000\)"), b.text())

    def test_frames_sent_without_waiting_for_the_answer(self):
        """RFC 6455 4.1 asks a client to wait for 101; one that does not still
        gets the 101 first, also when its CONNECT moves to another shard."""
        b = self.broker(["listener 0 127.0.0.1", "protocol websockets"], "eager")
        port = b.ports[0]
        for i in range(8):
            cid = "eager-%d" % i
            key = base64.b64encode(os.urandom(16)).decode()
            req = ("GET /mqtt HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
                   % key).encode()
            mask = os.urandom(4)
            pkt = connect_packet(cid)
            frame = bytes([0x82, 0x80 | len(pkt)]) + mask + bytes(x ^ mask[j & 3] for j, x in enumerate(pkt))
            close = bytes([0x88, 0x82]) + mask + bytes(x ^ mask[j & 3] for j, x in enumerate(b"\x03\xe8"))
            c = WsClient(port, request=req + frame + (close if i % 2 else b""))
            try:
                self.assertEqual(c.status, 101, cid)
                self.assertEqual(c.recv_packet(), (0x20, b"\x00\x00"), cid)
                if i % 2:
                    self.assertEqual(c.close_code(), 1000, "the close behind the CONNECT is echoed")
                    self.assertTrue(c.at_eof())
            finally:
                c.close()
        self.assertTrue(b.wait_log(r"\[client eager-7\] disconnected from .*WebSocket closed by client"), b.text())

    def test_refused_handshakes(self):
        b = self.broker(["listener 0 127.0.0.1", "protocol websockets", "websockets_path /ws",
                         "websockets_origin https://app.example"], "refused")
        port = b.ports[0]
        cases = (
            (dict(path="/mqtt"), 404, r"refused: 404 .*asked for /mqtt, websockets_path is /ws"),
            (dict(path="/ws", origin="https://evil.example"), 403, r"refused: 403 .*Origin https://evil"),
            (dict(path="/ws", version="8"), 426, r"refused: 426 Sec-WebSocket-Version must be 13"),
            (dict(path="/ws", protocol="chat"), 400, r"refused: 400 Sec-WebSocket-Protocol does not offer mqtt"),
            (dict(path="/ws", extra=["X-Pad: " + "p" * 9000]), 431, r"refused: 431"),
            (dict(request=connect_packet("plain")), 400, r"refused: 400 MQTT sent to a WebSocket listener"),
        )
        for kwargs, status, log in cases:
            c = WsClient(port, **kwargs)
            try:
                self.assertEqual(c.status, status, kwargs)
                if status == 426:
                    self.assertEqual(c.headers.get("sec-websocket-version"), "13")
                if status != 431:
                    self.assertTrue(c.body(), "an error response has a body saying why")
            finally:
                c.close()
            self.assertTrue(b.wait_log(log), log + "\n" + b.text())
        for origin in ("https://app.example", "HTTPS://APP.EXAMPLE", None):
            c = WsClient(port, path="/ws?token=1", origin=origin)
            self.assertEqual(c.status, 101, origin)
            c.close()

    def test_bad_frames_get_their_close_code(self):
        b = self.broker(["listener 0 127.0.0.1", "protocol websockets", "websockets_max_frame_size 1024"], "bad")
        port = b.ports[0]
        cases = (
            (lambda c: c.frame(2, connect_packet("u"), mask=False), 1002, "unmasked client frame"),
            (lambda c: c.frame(2, connect_packet("r"), rsv=0x40), 1002, "reserved bits"),
            (lambda c: c.frame(1, connect_packet("t")), 1003, "text frame"),
            (lambda c: c.frame(2, b"\x00" * 1025), 1009, "larger than websockets_max_frame_size"),
            (lambda c: c.frame(0, b"\x00"), 1002, "continuation frame outside"),
            (lambda c: c.frame(8, b"\x03\xe8bad \xed\xa0\x80 text"), 1007, "close reason is not valid UTF-8"),
        )
        for make, code, why in cases:
            c = WsClient(port)
            try:
                self.assertEqual(c.status, 101)
                c.send(make(c))
                self.assertEqual(c.close_code(), code, why)
                self.assertTrue(c.at_eof())
            finally:
                c.close()
            self.assertTrue(b.wait_log("WebSocket protocol error: .*" + re.escape(why)), why + "\n" + b.text())
        # After CONNACK too: the packet-size limit of MQTT is separate from the frame limit.
        c = WsClient(port)
        try:
            c.send(c.frame(2, connect_packet("late")))
            self.assertEqual(c.recv_packet(), (0x20, b"\x00\x00"))
            c.send(c.frame(1, b"hello"))
            self.assertEqual(c.close_code(), 1003)
        finally:
            c.close()
        self.assertTrue(b.wait_log(r"\[client late\] disconnected from .*text frame"), b.text())

    def test_forwarded_for_only_from_trusted_proxies(self):
        b = self.broker(["listener 0 127.0.0.1", "protocol websockets", "websockets_trusted_proxy 127.0.0.1",
                         "listener 0 127.0.0.1", "protocol websockets", "websockets_trusted_proxy 10.9.8.7"],
                        "forwarded")
        for port, cid in ((b.ports[0], "via-trusted"), (b.ports[1], "via-untrusted")):
            c = WsClient(port, extra=["X-Forwarded-For: 198.51.100.1, 203.0.113.9"])
            try:
                c.send(c.frame(2, connect_packet(cid)))
                self.assertEqual(c.recv_packet(), (0x20, b"\x00\x00"))
            finally:
                c.close()
        self.assertTrue(b.wait_log(r"\[client via-trusted\] connected from 203\.0\.113\.9:"), b.text())
        self.assertTrue(b.wait_log(r"\[client via-untrusted\] connected from 127\.0\.0\.1:\d+"), b.text())

    def test_websocket_settings_on_an_mqtt_listener_stop_start_up(self):
        d = tempfile.mkdtemp(prefix="rmq-ws-conf-")
        conf = os.path.join(d, "ringmq.conf")
        with open(conf, "w") as f:
            f.write("persistence false\nallow_anonymous true\nlistener 0 127.0.0.1\n"
                    "websockets_origin https://a.example\n")
        r = subprocess.run([os.environ["RMQ_BINARY"], "-c", conf], capture_output=True, text=True, timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(conf + ":3: listener: websockets_* settings on a listener that is not 'protocol websockets'",
                      r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
