#!/usr/bin/python3
"""TLS listeners through the real binary: wolfSSL inside the shard loop.

Certificates are made by the test with openssl (a CA and an RSA server
certificate for 127.0.0.1/localhost, valid two days; nothing is
committed).  Checks: mosquitto_pub/mosquitto_sub over TLS with --cafile
(MQTT 3.1.1 and 5, QoS 1 and 2), openssl s_client negotiating TLS 1.2 and
1.3 with AEAD suites only, plain MQTT sent to the TLS port and TLS sent to
a plain port each logged in words, tls_version tlsv1.3 refusing TLS 1.2,
and broken certificate settings stopping start-up with FILE:LINE.  Runs
ringmq from RMQ_BINARY with --shards RMQ_SHARDS.
"""

import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

WAIT_S = 5.0


def sh(*argv):
    subprocess.run(argv, check=True, capture_output=True)


def make_client_cert(d, ca, ca_key, name):
    key, csr, crt = (os.path.join(d, name + ext) for ext in (".key", ".csr", ".crt"))
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + name)
    sh("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
       "-days", "2")
    return crt, key


def make_certs(d, ca_cn="ringmq-test-ca"):
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    key, csr, crt = (os.path.join(d, n) for n in ("server.key", "server.csr", "server.crt"))
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
       "-subj", "/CN=" + ca_cn)
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    sh("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
       "-days", "2", "-extfile", ext)
    return ca, crt, key


class Broker:
    def __init__(self, lines):
        binary = os.environ.get("RMQ_BINARY")
        if not binary:
            raise RuntimeError("RMQ_BINARY is not set (meson sets it)")
        self.dir = tempfile.mkdtemp(prefix="rmq-tls-")
        self.conf = os.path.join(self.dir, "ringmq.conf")
        with open(self.conf, "w") as f:
            f.write("persistence false\nallow_anonymous true\n" + "".join(l + "\n" for l in lines))
        self.proc = subprocess.Popen([binary, "-c", self.conf, "--shards", os.environ.get("RMQ_SHARDS", "1")],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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

    def wait_log(self, text):
        for _ in range(100):
            if any(text in l for l in self.log):
                return True
            threading.Event().wait(0.05)
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            assert self.proc.wait(10) == 0, "broker did not exit cleanly:\n" + "".join(self.log)
        self.proc.stdout.close()


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="rmq-certs-")
        cls.ca, cls.crt, cls.key = make_certs(cls.dir)

    def tls_lines(self, extra=()):
        return ["listener 0 127.0.0.1", "certfile " + self.crt, "keyfile " + self.key] + list(extra)

    def test_mosquitto_clients_over_tls(self):
        b = Broker(self.tls_lines())
        try:
            port = b.ports[0]
            for version, qos in (("mqttv311", "1"), ("mqttv5", "2")):
                sub = subprocess.Popen(["timeout", "10", "mosquitto_sub", "-p", str(port), "--cafile", self.ca,
                                        "-V", version, "-q", qos, "-t", "tls/#", "-C", "1", "-v"],
                                       stdout=subprocess.PIPE, text=True)
                self.assertTrue(b.wait_log("connected from"), "".join(b.log))
                threading.Event().wait(0.3)  # the subscription lands before the publish
                subprocess.run(["timeout", "10", "mosquitto_pub", "-p", str(port), "--cafile", self.ca, "-V",
                                version, "-q", qos, "-t", "tls/" + version, "-m", "secret"], check=True)
                out, _ = sub.communicate(timeout=10)
                self.assertEqual(out.strip(), "tls/%s secret" % version)
        finally:
            b.stop()

    def test_tls12_with_aead_suites_by_default(self):
        b = Broker(self.tls_lines())
        try:
            for flag, proto in (("-tls1_2", "TLSv1.2"), ("-no_tls1_3", "TLSv1.2"), ("-bugs", "TLSv1.2")):
                r = subprocess.run(["timeout", "5", "openssl", "s_client", flag, "-connect",
                                    "127.0.0.1:%d" % b.ports[0], "-CAfile", self.ca], input="",
                                   capture_output=True, text=True)
                m = re.search(r"New, (TLSv1\.[23]), Cipher is (\S+)", r.stdout)
                self.assertIsNotNone(m, r.stdout + r.stderr)
                self.assertEqual(m.group(1), proto)
                self.assertTrue("GCM" in m.group(2) or "CHACHA20" in m.group(2), m.group(2))
            r = subprocess.run(["timeout", "5", "openssl", "s_client", "-tls1_2", "-cipher", "AES128-SHA",
                                "-connect", "127.0.0.1:%d" % b.ports[0], "-CAfile", self.ca], input="",
                               capture_output=True, text=True)
            self.assertNotIn("Cipher is AES128-SHA", r.stdout, "a suite without forward secrecy was accepted")
        finally:
            b.stop()

    def test_tls_version_13_speaks_13_and_refuses_12(self):
        b = Broker(self.tls_lines(["tls_version tlsv1.3"]))
        try:
            r = subprocess.run(["timeout", "5", "openssl", "s_client", "-tls1_3", "-connect",
                                "127.0.0.1:%d" % b.ports[0], "-CAfile", self.ca], input="",
                               capture_output=True, text=True)
            self.assertIn("New, TLSv1.3, Cipher is TLS_", r.stdout, r.stdout + r.stderr)
            r = subprocess.run(["timeout", "5", "openssl", "s_client", "-tls1_2", "-connect",
                                "127.0.0.1:%d" % b.ports[0], "-CAfile", self.ca], input="",
                               capture_output=True, text=True)
            self.assertNotIn("Cipher is ECDHE", r.stdout)
            self.assertTrue(b.wait_log("protocol version or cipher suite mismatch"), "".join(b.log))
        finally:
            b.stop()

    def test_plain_mqtt_to_tls_and_tls_to_plain_are_named(self):
        b = Broker(self.tls_lines(["listener 0 127.0.0.1"]))
        try:
            tls_port, plain_port = b.ports
            with socket.create_connection(("127.0.0.1", tls_port), timeout=WAIT_S) as s:
                s.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")
                s.recv(64)
            self.assertTrue(b.wait_log("plain MQTT sent to a TLS listener"), "".join(b.log))
            subprocess.run(["timeout", "5", "openssl", "s_client", "-connect", "127.0.0.1:%d" % plain_port],
                           input="", capture_output=True)
            self.assertTrue(b.wait_log("TLS sent to a plain MQTT listener"), "".join(b.log))
        finally:
            b.stop()

    def test_mutual_tls_requires_a_certificate_from_the_ca(self):
        good_crt, good_key = make_client_cert(self.dir, self.ca, os.path.join(self.dir, "ca.key"), "alice")
        rogue_dir = tempfile.mkdtemp(prefix="rmq-rogue-")
        rogue_ca, _, _ = make_certs(rogue_dir, "rogue-ca")
        bad_crt, bad_key = make_client_cert(rogue_dir, rogue_ca, os.path.join(rogue_dir, "ca.key"), "mallory")
        b = Broker(self.tls_lines(["cafile " + self.ca, "require_certificate true"]))
        try:
            pub = ["timeout", "10", "mosquitto_pub", "-p", str(b.ports[0]), "--cafile", self.ca, "-t", "m", "-m", "x"]
            self.assertNotEqual(subprocess.run(pub, capture_output=True).returncode, 0)
            self.assertTrue(b.wait_log("client certificate missing"), "".join(b.log))
            self.assertEqual(subprocess.run(pub + ["--cert", good_crt, "--key", good_key]).returncode, 0)
            self.assertNotEqual(subprocess.run(pub + ["--cert", bad_crt, "--key", bad_key],
                                               capture_output=True).returncode, 0)
            self.assertTrue(b.wait_log("client certificate from an unknown CA"), "".join(b.log))
        finally:
            b.stop()

    def test_broken_tls_settings_stop_start_up(self):
        cases = ((["keyfile " + self.key], "certfile and keyfile go together"),
                 (["certfile " + self.ca, "keyfile " + self.key], "keyfile does not match certfile"),
                 (["certfile /nonexistent.pem", "keyfile " + self.key], "certfile: cannot load"),
                 (["certfile " + self.crt, "keyfile " + self.key, "require_certificate true"],
                  "require_certificate needs a cafile"))
        for lines, msg in cases:
            b = Broker(["listener 0 127.0.0.1"] + lines)
            self.assertNotEqual(b.proc.wait(10), 0, msg)
            b.stop()
            self.assertTrue(any(msg in l for l in b.log), msg + ":\n" + "".join(b.log))
            self.assertTrue(any(re.search(r"ringmq\.conf(:\d+)?: listener", l) for l in b.log), "".join(b.log))


if __name__ == "__main__":
    unittest.main(verbosity=2)
