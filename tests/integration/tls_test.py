#!/usr/bin/python3
"""TLS listeners through the real binary: wolfSSL inside the shard loop.

Certificates are made by the test with openssl (a CA, RSA and ECDSA server
certificates for 127.0.0.1/localhost, client certificates and CRLs, valid
two days; nothing is committed).  Checks: mosquitto_pub/mosquitto_sub over
TLS with --cafile (MQTT 3.1.1 and 5, QoS 1 and 2), one listener serving
TLS 1.2 and 1.3 to openssl s_client with AEAD suites only (RSA and ECDSA
certificates), ciphers / ciphers_tls1.3, plain MQTT sent to the TLS port
and TLS sent to a plain port each logged in words, tls_version tlsv1.3
refusing TLS 1.2, mutual TLS with cafile or capath, crlfile refusing a
revoked certificate, use_identity_as_username / use_subject_as_username,
certificate reload on SIGHUP and on a Kubernetes-style symlink swap while
a client stays connected, a failed reload keeping the old certificate,
and broken settings stopping start-up with FILE:LINE.  Runs ringmq from
RMQ_BINARY with --shards RMQ_SHARDS.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

WAIT_S = 5.0


def sh(*argv):
    subprocess.run(argv, check=True, capture_output=True)


def make_client_cert(d, ca, ca_key, name, subj=None):
    key, csr, crt = (os.path.join(d, name + ext) for ext in (".key", ".csr", ".crt"))
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj",
       subj or "/CN=" + name)
    sh("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
       "-days", "2")
    return crt, key


def make_server_cert(d, ca, ca_key, name, ecdsa=False):
    """A server certificate for localhost/127.0.0.1: RSA, or ECDSA P-256 with its key in the SEC1 form
    'openssl ecparam -genkey' writes (an EC PARAMETERS block first)."""
    key, csr, crt, ext = (os.path.join(d, name + e) for e in (".key", ".csr", ".crt", ".cnf"))
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    if ecdsa:
        sh("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-out", key)
        sh("openssl", "req", "-new", "-key", key, "-out", csr, "-subj", "/CN=localhost")
    else:
        sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    sh("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
       "-days", "2", "-extfile", ext)
    return crt, key


def served_fingerprint(port, ca, *flags):
    """SHA-256 fingerprint of the certificate the listener serves now."""
    r = subprocess.run(["timeout", "5", "openssl", "s_client", *flags, "-connect", "127.0.0.1:%d" % port,
                        "-CAfile", ca], input="", capture_output=True, text=True)
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", r.stdout, re.S)
    assert m, r.stdout + r.stderr
    return fingerprint_of(m.group(0))


def fingerprint_of(pem_or_path):
    argv = ["openssl", "x509", "-noout", "-fingerprint", "-sha256"]
    if os.path.exists(pem_or_path):
        return subprocess.run(argv + ["-in", pem_or_path], capture_output=True, text=True, check=True).stdout
    return subprocess.run(argv, input=pem_or_path, capture_output=True, text=True, check=True).stdout


def replace_file(src, dst):
    """Put @src at @dst atomically, as a writer that renames into place would."""
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.rename(tmp, dst)


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

    def wait_log(self, text, timeout_s=5.0):
        for _ in range(int(timeout_s / 0.05)):
            if any(text in l for l in self.log):
                return True
            threading.Event().wait(0.05)
        return False

    def text(self):
        return "".join(self.log)

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

    def test_tls12_and_13_with_aead_suites_by_default(self):
        b = Broker(self.tls_lines())
        try:
            for flag, proto in (("-tls1_2", "TLSv1.2"), ("-no_tls1_3", "TLSv1.2"), ("-bugs", "TLSv1.3"),
                                ("-tls1_3", "TLSv1.3")):
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
        garbage = os.path.join(self.dir, "garbage.pem")
        with open(garbage, "w") as f:
            f.write("not a certificate\n")
        empty_dir = tempfile.mkdtemp(prefix="rmq-empty-capath-")
        cert = ["certfile " + self.crt, "keyfile " + self.key]
        mtls = cert + ["cafile " + self.ca, "require_certificate true"]
        cases = ((["keyfile " + self.key], "certfile and keyfile go together"),
                 (["certfile " + self.ca, "keyfile " + self.key], "does not match certfile"),
                 (["certfile /nonexistent.pem", "keyfile " + self.key],
                  "certfile: cannot load a PEM certificate chain from /nonexistent.pem: No such file or directory"),
                 (["certfile " + garbage, "keyfile " + self.key],
                  "certfile: cannot load a PEM certificate chain from " + garbage + ": "),
                 (cert + ["require_certificate true"], "require_certificate needs a cafile or capath"),
                 (cert + ["ciphers_tls1.3 ECDHE-RSA-AES128-GCM-SHA256"],
                  "ciphers_tls1.3: 'ECDHE-RSA-AES128-GCM-SHA256' is not a TLS 1.3 suite"),
                 (cert + ["ciphers ECDHE-RSA-AES128-GCM-SHA256:NOPE-SUITE"],
                  "ciphers: wolfSSL does not know the cipher suite 'NOPE-SUITE'"),
                 (cert + ["capath " + empty_dir, "require_certificate true"],
                  "capath: no PEM CA certificate in the directory " + empty_dir),
                 (cert + ["capath /nonexistent-dir", "require_certificate true"],
                  "capath: cannot open the directory /nonexistent-dir"),
                 (mtls + ["crlfile " + garbage], "crlfile: cannot load a PEM CRL from " + garbage),
                 (cert + ["cafile " + self.ca, "crlfile " + garbage], "crlfile needs require_certificate true"),
                 (cert + ["cafile " + self.ca, "use_identity_as_username true"],
                  "use_identity_as_username needs require_certificate true"))
        for lines, msg in cases:
            b = Broker(["listener 0 127.0.0.1"] + lines)
            self.assertNotEqual(b.proc.wait(10), 0, msg)
            b.stop()
            self.assertTrue(any(msg in l for l in b.log), msg + ":\n" + "".join(b.log))
            self.assertTrue(any(re.search(r"ringmq\.conf(:\d+)?: listener", l) for l in b.log), "".join(b.log))

    def test_ecdsa_server_certificate_with_tls12_and_13(self):
        crt, key = make_server_cert(self.dir, self.ca, os.path.join(self.dir, "ca.key"), "ecdsa", ecdsa=True)
        b = Broker(["listener 0 127.0.0.1", "certfile " + crt, "keyfile " + key])
        try:
            port = b.ports[0]
            for flag, proto, suite in (("-tls1_2", "TLSv1.2", "ECDHE-ECDSA-"), ("-tls1_3", "TLSv1.3", "TLS_"),
                                       ("-bugs", "TLSv1.3", "TLS_")):
                r = subprocess.run(["timeout", "5", "openssl", "s_client", flag, "-connect", "127.0.0.1:%d" % port,
                                    "-CAfile", self.ca], input="", capture_output=True, text=True)
                m = re.search(r"New, (TLSv1\.[23]), Cipher is (\S+)", r.stdout)
                self.assertIsNotNone(m, r.stdout + r.stderr + b.text())
                self.assertEqual(m.group(1), proto)
                self.assertTrue(m.group(2).startswith(suite), m.group(2))
                self.assertIn("Verify return code: 0 (ok)", r.stdout)
            for version in ("mqttv311", "mqttv5"):
                subprocess.run(["timeout", "10", "mosquitto_pub", "-p", str(port), "--cafile", self.ca, "-V", version,
                                "-q", "1", "-t", "ecdsa", "-m", "x"], check=True)
        finally:
            b.stop()

    def test_cipher_lists_per_version(self):
        b = Broker(self.tls_lines(["ciphers ECDHE-RSA-AES256-GCM-SHA384",
                                   "ciphers_tls1.3 TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"]))
        try:
            port = b.ports[0]
            for flags, proto, suite in ((["-tls1_3"], "TLSv1.3", "TLS_AES_256_GCM_SHA384"),
                                        (["-tls1_2"], "TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384"),
                                        (["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"], "TLSv1.3",
                                         "TLS_CHACHA20_POLY1305_SHA256")):
                r = subprocess.run(["timeout", "5", "openssl", "s_client", *flags, "-connect", "127.0.0.1:%d" % port,
                                    "-CAfile", self.ca], input="", capture_output=True, text=True)
                self.assertIn("New, %s, Cipher is %s" % (proto, suite), r.stdout, r.stdout + r.stderr)
            for flags in (["-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"],
                          ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"]):
                r = subprocess.run(["timeout", "5", "openssl", "s_client", *flags, "-connect", "127.0.0.1:%d" % port,
                                    "-CAfile", self.ca], input="", capture_output=True, text=True)
                self.assertNotIn("Cipher is TLS_AES_128", r.stdout)
                self.assertNotIn("Cipher is ECDHE-RSA-AES128", r.stdout)
            self.assertTrue(b.wait_log("protocol version or cipher suite mismatch"), b.text())
        finally:
            b.stop()

    def test_sighup_reloads_the_certificate_and_connected_clients_stay(self):
        d = tempfile.mkdtemp(prefix="rmq-reload-")
        ca_key = os.path.join(self.dir, "ca.key")
        old_crt, old_key = make_server_cert(d, self.ca, ca_key, "old")
        new_crt, new_key = make_server_cert(d, self.ca, ca_key, "new", ecdsa=True)
        crt, key = os.path.join(d, "server.crt"), os.path.join(d, "server.key")
        shutil.copyfile(old_crt, crt)
        shutil.copyfile(old_key, key)
        b = Broker(["listener 0 127.0.0.1", "certfile " + crt, "keyfile " + key])
        try:
            port = b.ports[0]
            self.assertEqual(served_fingerprint(port, self.ca), fingerprint_of(old_crt))
            sub = subprocess.Popen(["timeout", "20", "mosquitto_sub", "-p", str(port), "--cafile", self.ca, "-q", "1",
                                    "-t", "reload/#", "-C", "1", "-v", "-i", "stays"], stdout=subprocess.PIPE, text=True)
            self.assertTrue(b.wait_log("[client stays] connected from"), b.text())
            replace_file(new_key, key)
            replace_file(new_crt, crt)
            b.proc.send_signal(signal.SIGHUP)
            self.assertTrue(b.wait_log("TLS certificate reloaded from %s (SIGHUP)" % crt), b.text())
            self.assertEqual(served_fingerprint(port, self.ca), fingerprint_of(new_crt))
            self.assertEqual(served_fingerprint(port, self.ca, "-tls1_2"), fingerprint_of(new_crt))
            subprocess.run(["timeout", "10", "mosquitto_pub", "-p", str(port), "--cafile", self.ca, "-q", "1", "-t",
                            "reload/after", "-m", "still here"], check=True)
            out, _ = sub.communicate(timeout=15)
            self.assertEqual(out.strip(), "reload/after still here", b.text())
            self.assertEqual(sum("[client stays] connected from" in l for l in b.log), 1, "the same connection:\n" +
                             b.text())
        finally:
            b.stop()

    def test_a_replaced_kubernetes_secret_is_picked_up_without_a_signal(self):
        # A Secret volume: tls.crt -> ..data/tls.crt, ..data -> ..TIMESTAMP; an update makes a new
        # timestamped directory and renames a new ..data symlink over the old one.
        d = tempfile.mkdtemp(prefix="rmq-secret-")
        ca_key = os.path.join(self.dir, "ca.key")
        for gen in ("..gen1", "..gen2"):
            os.mkdir(os.path.join(d, gen))
            crt, key = make_server_cert(d, self.ca, ca_key, gen.strip("."))
            os.rename(crt, os.path.join(d, gen, "tls.crt"))
            os.rename(key, os.path.join(d, gen, "tls.key"))
        os.symlink("..gen1", os.path.join(d, "..data"))
        for name in ("tls.crt", "tls.key"):
            os.symlink(os.path.join("..data", name), os.path.join(d, name))
        b = Broker(["listener 0 127.0.0.1", "certfile " + os.path.join(d, "tls.crt"),
                    "keyfile " + os.path.join(d, "tls.key")])
        try:
            port = b.ports[0]
            self.assertEqual(served_fingerprint(port, self.ca), fingerprint_of(os.path.join(d, "..gen1", "tls.crt")))
            os.symlink("..gen2", os.path.join(d, "..data_tmp"))
            os.rename(os.path.join(d, "..data_tmp"), os.path.join(d, "..data"))
            self.assertTrue(b.wait_log("TLS certificate reloaded from %s (files changed)" % os.path.join(d, "tls.crt"),
                                       timeout_s=15), b.text())
            self.assertEqual(served_fingerprint(port, self.ca), fingerprint_of(os.path.join(d, "..gen2", "tls.crt")))
        finally:
            b.stop()

    def test_a_failed_reload_keeps_the_previous_certificate(self):
        d = tempfile.mkdtemp(prefix="rmq-badreload-")
        ca_key = os.path.join(self.dir, "ca.key")
        good_crt, good_key = make_server_cert(d, self.ca, ca_key, "good")
        other_crt, _ = make_server_cert(d, self.ca, ca_key, "other")
        crt, key = os.path.join(d, "server.crt"), os.path.join(d, "server.key")
        shutil.copyfile(good_crt, crt)
        shutil.copyfile(good_key, key)
        garbage = os.path.join(d, "garbage")
        with open(garbage, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
        b = Broker(["listener 0 127.0.0.1", "certfile " + crt, "keyfile " + key])
        try:
            port = b.ports[0]
            replace_file(garbage, crt)
            b.proc.send_signal(signal.SIGHUP)
            self.assertTrue(b.wait_log("TLS files not reloaded, keeping the previous certificate: certfile: cannot "
                                       "load a PEM certificate chain from " + crt + ": "), b.text())
            self.assertTrue(any(re.search(r"ringmq\.conf:\d+: listener \d+: TLS files not reloaded", l)
                                for l in b.log), b.text())
            self.assertEqual(served_fingerprint(port, self.ca), fingerprint_of(good_crt))
            replace_file(other_crt, crt)  # a certificate without its key
            b.proc.send_signal(signal.SIGHUP)
            self.assertTrue(b.wait_log("keeping the previous certificate: keyfile %s does not match certfile" % key),
                            b.text())
            self.assertEqual(served_fingerprint(port, self.ca), fingerprint_of(good_crt))
            subprocess.run(["timeout", "10", "mosquitto_pub", "-p", str(port), "--cafile", self.ca, "-t", "t", "-m",
                            "x"], check=True)
        finally:
            b.stop()

    def test_use_identity_as_username_takes_the_certificate_cn(self):
        ca_key = os.path.join(self.dir, "ca.key")
        alice_crt, alice_key = make_client_cert(self.dir, self.ca, ca_key, "alice")
        nocn_crt, nocn_key = make_client_cert(self.dir, self.ca, ca_key, "nocn", "/O=No Common Name")
        d = tempfile.mkdtemp(prefix="rmq-identity-")
        acl, pw = os.path.join(d, "acl"), os.path.join(d, "passwd")
        with open(acl, "w") as f:
            f.write("user alice\ntopic readwrite alice/#\n")
        subprocess.run([os.environ["RMQ_BINARY"], "passwd", "-b", "-I", "1000", pw, "bob", "bobpw"], check=True)
        b = Broker(self.tls_lines(["cafile " + self.ca, "require_certificate true", "use_identity_as_username true",
                                   "acl_file " + acl, "password_file " + pw, "allow_anonymous false"]))
        try:
            port = b.ports[0]
            base = ["-p", str(port), "--cafile", self.ca, "--cert", alice_crt, "--key", alice_key]
            sub = subprocess.Popen(["timeout", "15", "mosquitto_sub", *base, "-u", "mallory", "-P", "wrong", "-t",
                                    "alice/#", "-C", "1", "-v", "-i", "alice-sub"], stdout=subprocess.PIPE, text=True)
            self.assertTrue(b.wait_log("[client alice-sub] connected from"), b.text())
            self.assertTrue(b.wait_log("user 'alice' from its client certificate"), b.text())
            threading.Event().wait(0.3)  # the subscription lands before the publish
            subprocess.run(["timeout", "10", "mosquitto_pub", *base, "-V", "mqttv5", "-t", "alice/x", "-m", "hi"],
                           check=True)
            out, _ = sub.communicate(timeout=15)
            self.assertEqual(out.strip(), "alice/x hi", "the ACL of the certificate's user applies:\n" + b.text())
            r = subprocess.run(["timeout", "10", "mosquitto_pub", "-p", str(port), "--cafile", self.ca, "--cert",
                                nocn_crt, "--key", nocn_key, "-t", "alice/x", "-m", "x"], capture_output=True)
            self.assertNotEqual(r.returncode, 0)
            self.assertTrue(b.wait_log("refused: client certificate without a CN"), b.text())
        finally:
            b.stop()

    def test_use_subject_as_username_takes_the_whole_subject(self):
        crt, key = make_client_cert(self.dir, self.ca, os.path.join(self.dir, "ca.key"), "carol",
                                    "/C=DE/O=Example, Inc./OU=#ops /CN=carol;<x>/emailAddress=carol@example.com")
        # what mosquitto takes: OpenSSL's RFC 2253 form of the subject
        subject = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-subject", "-nameopt", "RFC2253"],
                                 capture_output=True, text=True, check=True).stdout.strip()[len("subject="):]
        self.assertEqual(subject, "emailAddress=carol@example.com,CN=carol\\;\\<x\\>,OU=\\#ops\\ ,O=Example\\, Inc.,C=DE")
        b = Broker(self.tls_lines(["cafile " + self.ca, "require_certificate true", "use_subject_as_username true"]))
        try:
            subprocess.run(["timeout", "10", "mosquitto_pub", "-p", str(b.ports[0]), "--cafile", self.ca, "--cert",
                            crt, "--key", key, "-u", "ignored", "-t", "t", "-m", "x"], check=True)
            self.assertTrue(b.wait_log("user '%s' from its client certificate" % subject), b.text())
        finally:
            b.stop()

    def test_crlfile_refuses_revoked_certificates_and_reloads(self):
        d = tempfile.mkdtemp(prefix="rmq-crl-")
        ca_key = os.path.join(self.dir, "ca.key")
        alice = make_client_cert(d, self.ca, ca_key, "alice")
        mallory = make_client_cert(d, self.ca, ca_key, "mallory")
        cnf, crl = os.path.join(d, "ca.cnf"), os.path.join(d, "crl.pem")
        with open(cnf, "w") as f:
            f.write("[ca]\ndefault_ca = ca_default\n[ca_default]\ndatabase = %s/index.txt\n"
                    "crlnumber = %s/crlnumber\ndefault_md = sha256\ndefault_crl_days = 2\n" % (d, d))
        open(os.path.join(d, "index.txt"), "w").close()
        with open(os.path.join(d, "crlnumber"), "w") as f:
            f.write("01\n")
        ca = ["openssl", "ca", "-config", cnf, "-keyfile", ca_key, "-cert", self.ca]

        def revoke(crt):
            sh(*ca, "-revoke", crt)
            sh(*ca, "-gencrl", "-out", crl + ".new")
            os.rename(crl + ".new", crl)

        revoke(mallory[0])
        b = Broker(self.tls_lines(["cafile " + self.ca, "require_certificate true", "crlfile " + crl]))
        try:
            pub = ["timeout", "10", "mosquitto_pub", "-p", str(b.ports[0]), "--cafile", self.ca, "-t", "t", "-m", "x"]
            self.assertEqual(subprocess.run(pub + ["--cert", alice[0], "--key", alice[1]]).returncode, 0, b.text())
            self.assertNotEqual(subprocess.run(pub + ["--cert", mallory[0], "--key", mallory[1]],
                                               capture_output=True).returncode, 0)
            self.assertTrue(b.wait_log("client certificate revoked (listed in crlfile)"), b.text())
            revoke(alice[0])
            b.proc.send_signal(signal.SIGHUP)
            self.assertTrue(b.wait_log("TLS certificate reloaded from"), b.text())
            self.assertNotEqual(subprocess.run(pub + ["--cert", alice[0], "--key", alice[1]],
                                               capture_output=True).returncode, 0)
        finally:
            b.stop()

    def test_capath_directory_of_ca_certificates(self):
        ca_key = os.path.join(self.dir, "ca.key")
        capath = tempfile.mkdtemp(prefix="rmq-capath-")
        shutil.copyfile(self.ca, os.path.join(capath, "ringmq-test-ca.pem"))
        with open(os.path.join(capath, "README"), "w") as f:
            f.write("not a certificate: skipped\n")
        sh("openssl", "rehash", capath)  # OpenSSL's hash links: the same file again
        alice = make_client_cert(self.dir, self.ca, ca_key, "alice")
        rogue_dir = tempfile.mkdtemp(prefix="rmq-rogue-")
        rogue_ca, _, _ = make_certs(rogue_dir, "rogue-ca")
        mallory = make_client_cert(rogue_dir, rogue_ca, os.path.join(rogue_dir, "ca.key"), "mallory")
        b = Broker(self.tls_lines(["capath " + capath, "require_certificate true"]))
        try:
            pub = ["timeout", "10", "mosquitto_pub", "-p", str(b.ports[0]), "--cafile", self.ca, "-t", "t", "-m", "x"]
            self.assertEqual(subprocess.run(pub + ["--cert", alice[0], "--key", alice[1]]).returncode, 0, b.text())
            self.assertNotEqual(subprocess.run(pub + ["--cert", mallory[0], "--key", mallory[1]],
                                               capture_output=True).returncode, 0)
            self.assertTrue(b.wait_log("client certificate from an unknown CA"), b.text())
        finally:
            b.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
