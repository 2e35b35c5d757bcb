#!/usr/bin/python3
"""PROXY protocol listeners (HAProxy v1 and v2) through the real binary.

A raw-socket client plays the load balancer: it sends a v1 or v2 header,
then MQTT (or a TLS handshake and MQTT inside it), and the broker's log
must name the client address from the header.  Also: a connection without
a header, a malformed one, the wrong version, and one from outside
proxy_protocol_trusted are refused with the reason logged; LOCAL and
UNKNOWN headers keep the socket's address; a header that never completes
is closed by connect_timeout; the failed-login back-off counts the
forwarded address, not the proxy's.  Runs ringmq from RMQ_BINARY with
--shards RMQ_SHARDS.  Certificates are made at run time with openssl.
"""

import os
import re
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import unittest

WAIT_S = 5.0
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def utf8(s):
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def connect_v311(client_id, user=None, password=None):
    flags = 0x02 | (0x80 if user is not None else 0) | (0x40 if password is not None else 0)
    body = utf8("MQTT") + bytes([4, flags]) + struct.pack("!H", 60) + utf8(client_id)
    body += (utf8(user) if user is not None else b"") + (utf8(password) if password is not None else b"")
    return bytes([0x10, len(body)]) + body


def v1(src, sport, dst=None, dport=1883):
    fam = "TCP6" if ":" in src else "TCP4"
    dst = dst or ("2001:db8::1" if ":" in src else "10.0.0.1")
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


def v2(src, sport, dst=None, dport=1883, command=1, tlvs=b""):
    if ":" in src:
        fam, af = 0x21, socket.AF_INET6
        dst = dst or "2001:db8::1"
    else:
        fam, af = 0x11, socket.AF_INET
        dst = dst or "10.0.0.1"
    body = socket.inet_pton(af, src) + socket.inet_pton(af, dst) + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIG + bytes([0x20 | command, fam]) + struct.pack("!H", len(body)) + body


class Broker:
    def __init__(self, lines):
        binary = os.environ.get("RMQ_BINARY")
        if not binary:
            raise RuntimeError("RMQ_BINARY is not set (meson sets it)")
        self.dir = tempfile.mkdtemp(prefix="rmq-proxy-")
        conf = os.path.join(self.dir, "ringmq.conf")
        with open(conf, "w") as f:
            f.write("persistence false\nallow_anonymous true\nconnect_timeout 2\n" +
                    "".join(l + "\n" for l in lines))
        self.proc = subprocess.Popen([binary, "-c", conf, "--shards", os.environ.get("RMQ_SHARDS", "1"), "-v"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.log, self.ports, ready = [], [], threading.Event()

        def read():
            for line in self.proc.stdout:
                self.log.append(line)
                m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
                if m:
                    self.ports.append(int(m.group(1)))
                if "running" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        ready.wait(10)
        assert self.ports, "broker did not start:\n" + "".join(self.log)

    def wait_log(self, text):
        ev = threading.Event()
        for _ in range(int(WAIT_S / 0.05)):
            if any(text in l for l in self.log):
                return True
            ev.wait(0.05)
        return False

    def text(self):
        return "".join(self.log)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            assert self.proc.wait(10) == 0, "broker did not exit cleanly:\n" + self.text()
        self.proc.stdout.close()


def exchange(port, data, then=b""):
    """Send @data (header and maybe MQTT), then @then; the first bytes back ('' = closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as s:
        try:
            s.sendall(data)
            if then:
                s.sendall(then)
            return s.recv(16)
        except (BrokenPipeError, ConnectionResetError):
            return b""  # refused before everything was sent


CONNACK_OK = b"\x20\x02\x00\x00"


class ProxyTest(unittest.TestCase):
    def test_v1_and_v2_give_the_forwarded_address(self):
        b = Broker(["listener 0 127.0.0.1", "proxy_protocol any"])
        try:
            port = b.ports[0]
            cases = ((v1("203.0.113.7", 40001), "203.0.113.7:40001", "p-v1"),
                     (v1("2001:db8::7", 40002), "2001:db8::7:40002", "p-v1-6"),
                     (v2("198.51.100.9", 5555), "198.51.100.9:5555", "p-v2"),
                     (v2("2001:db8::9", 6666, tlvs=b"\x01\x00\x02h2" + b"\x05\x00\x04abcd"), "2001:db8::9:6666",
                      "p-v2-6"))
            for header, addr, cid in cases:
                self.assertEqual(exchange(port, header, connect_v311(cid)), CONNACK_OK, b.text())
                self.assertTrue(b.wait_log("[client %s] connected from %s:" % (cid, addr)), b.text())
            # header and CONNECT in one segment, and a header split byte by byte
            self.assertEqual(exchange(port, v2("192.0.2.44", 1) + connect_v311("p-one")), CONNACK_OK)
            self.assertTrue(b.wait_log("[client p-one] connected from 192.0.2.44:1:"), b.text())
            with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as s:
                for byte in v1("192.0.2.45", 2):
                    s.sendall(bytes([byte]))
                s.sendall(connect_v311("p-split"))
                self.assertEqual(s.recv(4), CONNACK_OK)
            self.assertTrue(b.wait_log("[client p-split] connected from 192.0.2.45:2:"), b.text())
        finally:
            b.stop()

    def test_local_and_unknown_keep_the_socket_address(self):
        b = Broker(["listener 0 127.0.0.1", "proxy_protocol any"])
        try:
            port = b.ports[0]
            local = V2_SIG + b"\x20\x00\x00\x00"
            self.assertEqual(exchange(port, local, connect_v311("p-local")), CONNACK_OK, b.text())
            self.assertTrue(b.wait_log("[client p-local] connected from 127.0.0.1:"), b.text())
            self.assertEqual(exchange(port, b"PROXY UNKNOWN\r\n", connect_v311("p-unknown")), CONNACK_OK)
            self.assertTrue(b.wait_log("[client p-unknown] connected from 127.0.0.1:"), b.text())
        finally:
            b.stop()

    def test_connections_without_a_valid_header_are_refused_with_the_reason(self):
        b = Broker(["listener 0 127.0.0.1", "proxy_protocol v2", "listener 0 127.0.0.1", "proxy_protocol v1"])
        try:
            v2_port, v1_port = b.ports
            cases = ((v2_port, connect_v311("direct"), "no PROXY header: an MQTT CONNECT came first"),
                     (v2_port, v1("203.0.113.7", 1), "a v1 header, but the listener accepts v2 only"),
                     (v1_port, v2("203.0.113.7", 1), "a v2 header, but the listener accepts v1 only"),
                     (v1_port, b"PROXY TCP4 203.0.113.7 10.0.0.1 1 99999\r\n", "v1 header: malformed addresses"),
                     (v1_port, b"PROXY TCP4 " + b"1" * 120, "v1 header: no CRLF within 107 bytes"),
                     (v2_port, V2_SIG + b"\x21\x11\xff\xff", "v2 header: longer than PROXY_HEADER_BYTES_MAX"),
                     (v2_port, V2_SIG + b"\x21\x12\x00\x0c" + bytes(12), "v2 header: a datagram transport"))
            for port, data, reason in cases:
                self.assertEqual(exchange(port, data), b"", reason)
                self.assertTrue(b.wait_log("refused: PROXY protocol: " + reason), reason + ":\n" + b.text())
            self.assertFalse(any("connected from" in l for l in b.log), b.text())
        finally:
            b.stop()

    def test_a_header_that_never_completes_meets_connect_timeout(self):
        b = Broker(["listener 0 127.0.0.1", "proxy_protocol v1"])
        try:
            with socket.create_connection(("127.0.0.1", b.ports[0]), timeout=WAIT_S) as s:
                s.sendall(b"PROXY TCP4 203.0.113.7")
                self.assertEqual(s.recv(16), b"")  # closed by the broker within connect_timeout (2 s)
            self.assertTrue(b.wait_log("no CONNECT within connect_timeout"), b.text())
        finally:
            b.stop()

    def test_only_trusted_networks_may_send_a_header(self):
        b = Broker(["listener 0 127.0.0.1", "proxy_protocol v2", "proxy_protocol_trusted 192.0.2.0/24 fd00::/8",
                    "listener 0 127.0.0.1", "proxy_protocol v2", "proxy_protocol_trusted 10.0.0.0/8, 127.0.0.0/8"])
        try:
            untrusted, trusted = b.ports
            self.assertEqual(exchange(untrusted, v2("203.0.113.7", 1), connect_v311("p-untrusted")), b"")
            self.assertTrue(b.wait_log("connection from 127.0.0.1:"), b.text())
            self.assertTrue(b.wait_log("refused: not in proxy_protocol_trusted"), b.text())
            self.assertEqual(exchange(trusted, v2("203.0.113.8", 2), connect_v311("p-trusted")), CONNACK_OK)
            self.assertTrue(b.wait_log("[client p-trusted] connected from 203.0.113.8:2:"), b.text())
        finally:
            b.stop()

    def test_failed_login_back_off_counts_the_forwarded_address(self):
        d = tempfile.mkdtemp(prefix="rmq-proxy-pw-")
        pw = os.path.join(d, "passwd")
        subprocess.run([os.environ["RMQ_BINARY"], "passwd", "-b", "-I", "1000", pw, "alice", "secret"], check=True)
        b = Broker(["listener 0 127.0.0.1", "proxy_protocol v1", "password_file " + pw, "auth_backoff_max 60"])
        try:
            port = b.ports[0]
            for i in range(4):  # three free failures, the fourth starts the back-off
                self.assertEqual(exchange(port, v1("198.51.100.1", 1000 + i), connect_v311("bad%d" % i, "alice",
                                                                                        "wrong")),
                                 b"\x20\x02\x00\x04")
            self.assertEqual(exchange(port, v1("198.51.100.1", 1010), connect_v311("bad9", "alice", "secret")),
                             b"\x20\x02\x00\x04")
            self.assertTrue(b.wait_log("connection from 198.51.100.1:1010 refused: too many failed logins"),
                            b.text())
            # another client behind the same proxy is not held back
            self.assertEqual(exchange(port, v1("198.51.100.2", 2000), connect_v311("good", "alice", "secret")),
                             CONNACK_OK, b.text())
        finally:
            b.stop()


class ProxyTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        d = tempfile.mkdtemp(prefix="rmq-proxy-certs-")
        cls.ca, cls.crt, cls.key = (os.path.join(d, n) for n in ("ca.crt", "server.crt", "server.key"))
        ca_key, csr, ext = os.path.join(d, "ca.key"), os.path.join(d, "server.csr"), os.path.join(d, "ext.cnf")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        for argv in (["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", cls.ca,
                      "-days", "2", "-subj", "/CN=ringmq-proxy-test-ca"],
                     ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", cls.key, "-out", csr, "-subj",
                      "/CN=localhost"],
                     ["openssl", "x509", "-req", "-in", csr, "-CA", cls.ca, "-CAkey", ca_key, "-CAcreateserial",
                      "-out", cls.crt, "-days", "2", "-extfile", ext]):
            subprocess.run(argv, check=True, capture_output=True)

    def tls_exchange(self, port, header, cid):
        ctx = ssl.create_default_context(cafile=self.ca)
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as raw:
            raw.sendall(header)  # the proxy's header, in clear, before the handshake
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(connect_v311(cid))
                return s.recv(4), s.version()

    def test_header_then_tls_then_mqtt(self):
        b = Broker(["listener 0 127.0.0.1", "proxy_protocol any", "certfile " + self.crt, "keyfile " + self.key])
        try:
            port = b.ports[0]
            self.assertEqual(self.tls_exchange(port, v2("198.51.100.20", 4444), "pt-v2")[0], CONNACK_OK, b.text())
            self.assertTrue(b.wait_log("[client pt-v2] connected from 198.51.100.20:4444:"), b.text())
            self.assertEqual(self.tls_exchange(port, v1("198.51.100.21", 5555), "pt-v1")[0], CONNACK_OK)
            self.assertTrue(b.wait_log("[client pt-v1] connected from 198.51.100.21:5555:"), b.text())
            # a TLS client that skips the load balancer is refused, and says so
            ctx = ssl.create_default_context(cafile=self.ca)
            with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as raw:
                with self.assertRaises((ssl.SSLError, ConnectionResetError, OSError)):
                    ctx.wrap_socket(raw, server_hostname="localhost")
            self.assertTrue(b.wait_log("refused: PROXY protocol: no PROXY header: a TLS handshake came first"),
                            b.text())
        finally:
            b.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
