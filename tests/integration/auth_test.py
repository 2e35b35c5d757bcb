#!/usr/bin/python3
"""Authentication through the real binary: password files and SCRAM-SHA-512.

Password files are made by Debian's mosquitto_passwd ($7$, PBKDF2-SHA512),
by `ringmq passwd`, and by hand in mosquitto 1.x's $6$ format; plain CONNECT
logins are checked against each.  MQTT 5 enhanced authentication with the
SCRAM-SHA-512 method (RFC 5802 / 7677) is driven by a small client written
here from the RFC with hashlib/hmac, over a raw socket, so every byte of the
AUTH exchange is checked, including the server's signature.  Broken password
files must stop start-up with FILE:LINE: ringmq never fails open.
Runs ringmq from RMQ_BINARY with --shards RMQ_SHARDS.
"""

import base64
import hashlib
import hmac
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import unittest

WAIT_S = 5.0


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


def connect_v311(client_id, user=None, password=None):
    flags = 0x02 | (0x80 if user is not None else 0) | (0x40 if password is not None else 0)
    body = utf8("MQTT") + bytes([4, flags]) + struct.pack("!H", 60) + utf8(client_id)
    if user is not None:
        body += utf8(user)
    if password is not None:
        body += utf8(password)
    return packet(0x10, body)


def props(items):
    blob = b"".join(items)
    return varint(len(blob)) + blob


def connect_v5_auth(client_id, method, data):
    p = props([b"\x15" + utf8(method), b"\x16" + utf8(data)])
    body = utf8("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 60) + p + utf8(client_id)
    return packet(0x10, body)


def auth_v5(method, data):
    return packet(0xF0, bytes([0x18]) + props([b"\x15" + utf8(method), b"\x16" + utf8(data)]))


def read_packet(sock):
    """(type, body) of the next packet, or None when the server closed."""
    sock.settimeout(WAIT_S)
    first = sock.recv(1)
    if not first:
        return None
    n, mult = 0, 1
    while True:
        b = sock.recv(1)[0]
        n += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    body = b""
    while len(body) < n:
        chunk = sock.recv(n - len(body))
        if not chunk:
            return None
        body += chunk
    return first[0] >> 4, body


def parse_props(body):
    """Property id -> value (bytes for strings/binary, int otherwise) of a v5 property block."""
    n, mult, i = 0, 1, 0
    while True:
        b = body[i]
        i += 1
        n += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    end, out = i + n, {}
    while i < end:
        pid = body[i]
        i += 1
        if pid in (0x15, 0x16, 0x1F, 0x12, 0x1A, 0x1C):
            ln = struct.unpack("!H", body[i:i + 2])[0]
            out[pid] = body[i + 2:i + 2 + ln]
            i += 2 + ln
        elif pid in (0x24, 0x25, 0x28, 0x29, 0x2A, 0x01, 0x17, 0x19):
            out[pid] = body[i]
            i += 1
        elif pid in (0x21, 0x22, 0x13, 0x23):
            out[pid] = struct.unpack("!H", body[i:i + 2])[0]
            i += 2
        elif pid in (0x11, 0x27, 0x02, 0x18):
            out[pid] = struct.unpack("!I", body[i:i + 4])[0]
            i += 4
        else:
            raise AssertionError("unexpected property 0x%02x" % pid)
    return out, end


class ScramClient:
    """The client side of SCRAM-SHA-512, straight from RFC 5802 section 3."""

    def __init__(self, user, password):
        self.user, self.password = user, password
        self.cnonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"), self.cnonce)

    def first(self):
        return "n,," + self.first_bare

    def final(self, server_first):
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        assert attrs["r"].startswith(self.cnonce), "server nonce must extend ours"
        salt, iters = base64.b64decode(attrs["s"]), int(attrs["i"])
        salted = hashlib.pbkdf2_hmac("sha512", self.password.encode(), salt, iters)
        client_key = hmac.new(salted, b"Client Key", "sha512").digest()
        stored_key = hashlib.sha512(client_key).digest()
        without_proof = "c=biws,r=" + attrs["r"]
        self.auth_message = ",".join([self.first_bare, server_first, without_proof]).encode()
        sig = hmac.new(stored_key, self.auth_message, "sha512").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        server_key = hmac.new(salted, b"Server Key", "sha512").digest()
        self.expected_v = base64.b64encode(hmac.new(server_key, self.auth_message, "sha512").digest()).decode()
        return without_proof + ",p=" + base64.b64encode(proof).decode()


class Broker:
    def __init__(self, conf_lines):
        binary = os.environ.get("RMQ_BINARY")
        if not binary:
            raise RuntimeError("RMQ_BINARY is not set (meson sets it)")
        self.dir = tempfile.mkdtemp(prefix="rmq-auth-")
        conf = os.path.join(self.dir, "ringmq.conf")
        with open(conf, "w") as f:
            f.write("listener 0 127.0.0.1\npersistence false\n" + "".join(l + "\n" for l in conf_lines))
        self.proc = subprocess.Popen([binary, "-c", conf, "--shards", os.environ.get("RMQ_SHARDS", "1")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.log, self.port = [], None
        ready = threading.Event()

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

    def connect(self):
        assert self.port, "broker did not start:\n" + "".join(self.log)
        return socket.create_connection(("127.0.0.1", self.port), timeout=WAIT_S)

    def exit_code(self):
        return self.proc.wait(10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            assert self.proc.wait(10) == 0, "broker did not exit cleanly:\n" + "".join(self.log)


def ringmq_passwd(path, user, password):
    subprocess.run([os.environ["RMQ_BINARY"], "passwd", "-b", "-I", "1000", path, user, password], check=True)


class PasswordFileTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="rmq-pw-")
        self.pw = os.path.join(self.dir, "passwd")

    def login(self, broker, user, password):
        with broker.connect() as s:
            s.sendall(connect_v311("c-" + (user or "anon"), user, password))
            t, body = read_packet(s)
            self.assertEqual(t, 2)
            return body[1]

    def test_mosquitto_passwd_and_ringmq_passwd_entries_log_in(self):
        subprocess.run(["mosquitto_passwd", "-c", "-b", self.pw, "alice", "wonder"], check=True)
        ringmq_passwd(self.pw, "bob", "builder")
        salt = os.urandom(12)  # mosquitto 1.x's $6$: SHA-512(password || salt)
        h = hashlib.sha512(b"old" + salt).digest()
        with open(self.pw, "a") as f:
            f.write("carol:$6$%s$%s\n" % (base64.b64encode(salt).decode(), base64.b64encode(h).decode()))
        b = Broker(["allow_anonymous false", "password_file " + self.pw])
        try:
            self.assertEqual(self.login(b, "alice", "wonder"), 0)
            self.assertEqual(self.login(b, "bob", "builder"), 0)
            self.assertEqual(self.login(b, "carol", "old"), 0)
            self.assertEqual(self.login(b, "alice", "builder"), 4)  # bad user name or password
            self.assertEqual(self.login(b, "nobody", "x"), 4)
            self.assertEqual(self.login(b, "alice", None), 4)
            self.assertEqual(self.login(b, None, None), 5)  # not authorised
        finally:
            b.stop()

    def test_ringmq_passwd_replaces_an_entry_and_keeps_others(self):
        ringmq_passwd(self.pw, "u1", "one")
        ringmq_passwd(self.pw, "u2", "two")
        ringmq_passwd(self.pw, "u1", "uno")
        with open(self.pw) as f:
            lines = f.read().splitlines()
        self.assertEqual([l.split(":")[0] for l in lines], ["u1", "u2"])
        self.assertEqual(os.stat(self.pw).st_mode & 0o777, 0o600)
        b = Broker(["allow_anonymous false", "password_file " + self.pw])
        try:
            self.assertEqual(self.login(b, "u1", "uno"), 0)
            self.assertEqual(self.login(b, "u1", "one"), 4)
            self.assertEqual(self.login(b, "u2", "two"), 0)
        finally:
            b.stop()

    def wait_log(self, broker, text):
        deadline = threading.Event()
        for _ in range(100):
            if any(text in l for l in broker.log):
                return
            deadline.wait(0.05)
        self.fail("no log line with %r:\n%s" % (text, "".join(broker.log)))

    def test_sighup_reloads_and_a_bad_file_keeps_the_old_one(self):
        import signal
        ringmq_passwd(self.pw, "u1", "one")
        b = Broker(["allow_anonymous false", "password_file " + self.pw])
        try:
            self.assertEqual(self.login(b, "u2", "two"), 4)
            ringmq_passwd(self.pw, "u2", "two")
            b.proc.send_signal(signal.SIGHUP)
            self.wait_log(b, "password_file %s reloaded: 2 users" % self.pw)
            self.assertEqual(self.login(b, "u2", "two"), 0)
            with open(self.pw, "a") as f:
                f.write("garbage line\n")
            b.proc.send_signal(signal.SIGHUP)
            self.wait_log(b, "password_file not reloaded, keeping the previous one")
            self.assertEqual(self.login(b, "u1", "one"), 0)  # never fails open, never locks out
            self.assertEqual(self.login(b, "u2", "two"), 0)
        finally:
            b.stop()

    def test_failed_logins_back_off_per_address(self):
        ringmq_passwd(self.pw, "u1", "one")
        b = Broker(["allow_anonymous false", "password_file " + self.pw, "auth_backoff_max 30"])
        try:
            for _ in range(4):  # three free failures, the fourth starts the back-off
                self.assertEqual(self.login(b, "u1", "guess"), 4)
            self.assertEqual(self.login(b, "u1", "one"), 4)  # refused without a check while it lasts
            self.wait_log(b, "backing off")  # the log reader runs on its own thread
        finally:
            b.stop()
        b = Broker(["allow_anonymous false", "password_file " + self.pw, "auth_backoff_max 0"])
        try:
            for _ in range(6):
                self.assertEqual(self.login(b, "u1", "guess"), 4)
            self.assertEqual(self.login(b, "u1", "one"), 0)  # 0 turns it off
        finally:
            b.stop()

    def test_open_listener_without_authentication_refuses_to_start(self):
        conf = os.path.join(self.dir, "open.conf")
        with open(conf, "w") as f:
            f.write("listener 0 0.0.0.0\npersistence false\n")
        r = subprocess.run([os.environ["RMQ_BINARY"], "-c", conf], capture_output=True, text=True, timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("%s:1: listener: 0.0.0.0:0 is reachable from other hosts" % conf, r.stderr)
        r = subprocess.run([os.environ["RMQ_BINARY"], "--bind", "0.0.0.0", "--port", "0"], capture_output=True,
                           text=True, timeout=10)
        self.assertNotEqual(r.returncode, 0, "the embedded anonymous default is for loopback only")
        self.assertIn("is reachable from other hosts", r.stderr)

    def test_per_listener_allow_anonymous(self):
        ringmq_passwd(self.pw, "u1", "one")
        b = Broker(["per_listener_settings true", "password_file " + self.pw,
                    "listener 0 127.0.0.1", "allow_anonymous true"])
        try:
            self.wait_log(b, "running")
            ports = [int(m.group(1)) for l in b.log for m in [re.search(r"listening on 127\.0\.0\.1:(\d+)", l)] if m]
            self.assertEqual(len(ports), 2, "".join(b.log))
            closed, open_ = ports  # the first listener has no allow_anonymous line: global false
            for port, anon_rc in ((closed, 5), (open_, 0)):
                b.port = port
                self.assertEqual(self.login(b, None, None), anon_rc, port)
                self.assertEqual(self.login(b, "u1", "one"), 0, port)
        finally:
            b.stop()

    def test_broken_password_files_stop_start_up(self):
        cases = {"empty": "", "garbled": "alice\n", "bad hash": "alice:$7$x$y$z\n",
                 "unknown format": "alice:$1$abc$def\n"}
        for name, text in cases.items():
            with open(self.pw, "w") as f:
                f.write(text)
            b = Broker(["password_file " + self.pw])
            self.assertNotEqual(b.exit_code(), 0, name)
            self.assertTrue(any(self.pw + ":" in l for l in b.log), name + ": " + "".join(b.log))
        b = Broker(["password_file " + os.path.join(self.dir, "missing")])
        self.assertNotEqual(b.exit_code(), 0)
        self.assertTrue(any("cannot open password file" in l for l in b.log), "".join(b.log))


class ScramTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="rmq-scram-")
        self.pw = os.path.join(self.dir, "passwd")
        subprocess.run(["mosquitto_passwd", "-c", "-b", self.pw, "alice", "wonder"], check=True)
        ringmq_passwd(self.pw, "bob,=x", "builder")  # a name that needs SCRAM escaping
        self.broker = Broker(["allow_anonymous false", "password_file " + self.pw])

    def tearDown(self):
        self.broker.stop()

    def exchange(self, user, password, method="SCRAM-SHA-512"):
        """Run the exchange; returns (CONNACK reason, CONNACK properties, client)."""
        sc = ScramClient(user, password)
        s = self.broker.connect()
        s.sendall(connect_v5_auth("scram-" + user, method, sc.first()))
        t, body = read_packet(s)
        if t == 2:
            p, _ = parse_props(body[2:])
            s.close()
            return body[1], p, sc
        self.assertEqual(t, 15, "expected AUTH")  # [MQTT-4.12.0-2]
        self.assertEqual(body[0], 0x18)
        p, _ = parse_props(body[1:])
        self.assertEqual(p[0x15], method.encode())
        s.sendall(auth_v5(method, sc.final(p[0x16].decode())))
        t, body = read_packet(s)
        self.assertEqual(t, 2, "expected CONNACK")
        p, _ = parse_props(body[2:])
        s.close()
        return body[1], p, sc

    def test_scram_sha512_logs_in_and_proves_the_server(self):
        for user, pw in (("alice", "wonder"), ("bob,=x", "builder")):
            reason, p, sc = self.exchange(user, pw)
            self.assertEqual(reason, 0, user)
            self.assertEqual(p[0x15], b"SCRAM-SHA-512")
            self.assertEqual(p[0x16].decode(), "v=" + sc.expected_v)  # the server knew the password

    def test_scram_wrong_password_or_unknown_user_gets_0x86(self):
        self.assertEqual(self.exchange("alice", "builder")[0], 0x86)
        self.assertEqual(self.exchange("mallory", "x")[0], 0x86)

    def login_keep(self, user, password):
        sc = ScramClient(user, password)
        s = self.broker.connect()
        s.sendall(connect_v5_auth("reauth-" + user, "SCRAM-SHA-512", sc.first()))
        t, body = read_packet(s)
        p, _ = parse_props(body[1:])
        s.sendall(auth_v5("SCRAM-SHA-512", sc.final(p[0x16].decode())))
        t, body = read_packet(s)
        self.assertEqual((t, body[1]), (2, 0))
        return s

    def reauth(self, s, user, password):
        """AUTH 0x19 ... ; returns the final packet (type, reason, properties)."""
        sc = ScramClient(user, password)
        s.sendall(packet(0xF0, bytes([0x19]) + props([b"\x15" + utf8("SCRAM-SHA-512"), b"\x16" + utf8(sc.first())])))
        t, body = read_packet(s)
        self.assertEqual((t, body[0]), (15, 0x18))
        p, _ = parse_props(body[1:])
        s.sendall(auth_v5("SCRAM-SHA-512", sc.final(p[0x16].decode())))
        t, body = read_packet(s)
        p = parse_props(body[1:])[0] if len(body) > 1 else {}  # DISCONNECT may be the short form
        return t, body[0], p, sc

    def test_reauthentication_succeeds_and_a_wrong_proof_disconnects_0x86(self):
        s = self.login_keep("alice", "wonder")
        t, reason, p, sc = self.reauth(s, "alice", "wonder")  # MQTT 5 section 4.12.1
        self.assertEqual((t, reason), (15, 0x00))
        self.assertEqual(p[0x16].decode(), "v=" + sc.expected_v)
        t, reason, p, sc = self.reauth(s, "alice", "wrong")
        self.assertEqual((t, reason), (14, 0x86))  # DISCONNECT Bad User Name or Password
        s.close()

    def test_unsupported_method_gets_0x8c(self):
        reason, p, _ = self.exchange("alice", "wonder", method="PLAIN")
        self.assertEqual(reason, 0x8C)


class ScramWithoutStoreTest(unittest.TestCase):
    def test_scram_without_password_file_says_so(self):
        b = Broker(["allow_anonymous true"])
        try:
            with b.connect() as s:
                s.sendall(connect_v5_auth("c", "SCRAM-SHA-512", "n,,n=a,r=abc"))
                t, body = read_packet(s)
                self.assertEqual((t, body[1]), (2, 0x8C))
                p, _ = parse_props(body[2:])
                self.assertIn(b"password_file", p[0x1F])  # the reason string names what is missing
        finally:
            b.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
