#!/usr/bin/python3
"""test_bench.py - short ringmq-bench runs against the real broker (and the
floor forwarder) that check the harness's figures are consistent.

Each case starts its own server on an ephemeral port (ringmq: port 0 and
the "listening on" line it logs; ringmq-floor likewise), runs
ringmq-bench --json for a second or two, and checks the result line:
QoS >= 1 runs deliver everything exactly once and in order (sent ==
received, nothing lost, duplicated, skipped or unacknowledged); QoS 0
runs with expect_exact deliver publishes x subscribers.  The server is
then stopped with SIGTERM and must exit with status 0.  The tls case
gives ringmq a TLS listener with a throwaway self-signed ECDSA P-256
certificate (openssl, in the case's temporary directory) and runs the
same checks over TLS, plus the handshake counts.

Usage (meson runs it):  test_bench.py CASE
       test_bench.py --scenario FILE [bench options...]   (benchmark targets)
Environment: RMQ_BINARY, RMQ_SHARDS (default 1), BENCH_BINARY,
FLOOR_BINARY, RMQ_TEST_LOGDIR (broker logs of failed cases are printed).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

START_TIMEOUT_S = 20
STOP_TIMEOUT_S = 20
BENCH_TIMEOUT_S = 120
# Broker limits raised so that nothing the bench puts in flight is dropped.
RINGMQ_CONFIG = """listener 0 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 100000
max_inflight_messages 1000
max_connections -1
"""
LISTENING = re.compile(r"listening on ([0-9.]+):(\d+)")


def make_cert(d):
    """A self-signed ECDSA P-256 server certificate for 127.0.0.1 in @d: (cert, key)."""
    if not shutil.which("openssl"):
        fail("openssl is needed to make the TLS case's certificate (apt-get install openssl)")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], capture_output=True, text=True)
    if p.returncode != 0:
        fail("openssl could not make a certificate: " + p.stderr)
    return cert, key


class Server:
    """A broker or the floor, started on an ephemeral port; its stderr is
    drained by a thread (ringmq logs every connection) and kept.  With
    @tls, ringmq's listener is a TLS one (self.cert is then its certificate)."""

    def __init__(self, kind, shards, tls=False):
        self.kind = kind
        self.lines = []
        self.port = None
        self.cert = None
        self.ready = threading.Event()
        self.tmp = tempfile.TemporaryDirectory(prefix="rmq-bench-test-")
        if kind == "floor":
            argv = [os.environ["FLOOR_BINARY"], "-p", "0"]
        else:
            conf = os.path.join(self.tmp.name, "ringmq.conf")
            text = RINGMQ_CONFIG
            if tls:
                self.cert, key = make_cert(self.tmp.name)
                first, _, rest = text.partition("\n")
                text = f"{first}\ncertfile {self.cert}\nkeyfile {key}\n{rest}"
            with open(conf, "w") as f:
                f.write(text)
            argv = [os.environ["RMQ_BINARY"], "-c", conf, "--shards", str(shards)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, cwd=self.tmp.name, text=True)
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        if not self.ready.wait(START_TIMEOUT_S) or self.port is None:
            self.dump()
            self.proc.kill()
            fail(f"{kind} did not report 'listening on' within {START_TIMEOUT_S}s")

    def _drain(self):
        for line in self.proc.stderr:
            self.lines.append(line)
            m = LISTENING.search(line)
            if m and self.port is None:
                self.port = int(m.group(2))
                self.ready.set()
        self.ready.set()  # exited: wake the starter, which sees port None

    def dump(self):
        sys.stderr.write(f"--- {self.kind} log ---\n" + "".join(self.lines[-200:]))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.dump()
            fail(f"{self.kind} did not exit within {STOP_TIMEOUT_S}s of SIGTERM")
        self.reader.join(STOP_TIMEOUT_S)
        if rc != 0:
            self.dump()
            fail(f"{self.kind} exited with status {rc}")


def fail(msg):
    sys.stderr.write(f"FAIL: {msg}\n")
    sys.exit(1)


def bench(server, *args):
    argv = [os.environ["BENCH_BINARY"], "--port", str(server.port), "--json", "--progress", "off",
            "--broker-pid", str(server.proc.pid), "--label", server.kind] + list(args)
    sys.stderr.write("$ " + " ".join(argv) + "\n")
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=BENCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        server.dump()
        fail(f"ringmq-bench ran over {BENCH_TIMEOUT_S}s")
    sys.stderr.write(p.stderr)
    results = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    results = [r for r in results if r.get("type") == "result"]
    if p.returncode != 0 or len(results) != 1:
        server.dump()
        fail(f"ringmq-bench exited {p.returncode}: {results[-1]['verdict'] if results else 'no result'}")
    return results[0]


def expect(cond, what, r):
    if not cond:
        fail(f"{what}\nresult: {json.dumps(r, indent=1)}")


def check_exact(r, deliveries_per_msg):
    """Every message reached every subscriber once, in order."""
    expect(r["ok"], "verdict not OK", r)
    expect(r["sent"] > 0, "nothing was sent", r)
    expect(r["expected"] == r["sent"] * deliveries_per_msg, "expected != sent x subscribers", r)
    expect(r["received"] == r["expected"], "received != expected", r)
    for k in ("lost", "dups", "gaps", "unacked", "failed", "proto_errors", "stall_resets"):
        expect(r[k] == 0, f"{k} is {r[k]}", r)
    expect(r["msgs_per_s"] > 0 and r["lat_samples"] > 0, "no throughput or latency measured", r)
    expect(r["lat_p50_us"] <= r["lat_p99_us"] <= r["lat_max_us"], "percentiles out of order", r)
    expect(r["broker_rss_kib"] > 0 and r["broker_cpu_pct"] >= 0, "broker /proc sampling failed", r)


SHORT = ["--warmup", "0.2", "--duration", "1", "--drain", "10"]

CASES = {
    "qos1-pairs": lambda s: check_exact(
        bench(s, "--layout", "pairs", "--publishers", "20", "--qos", "1", *SHORT), 1),
    "qos2-pairs-v5": lambda s: check_exact(
        bench(s, "--layout", "pairs", "--publishers", "10", "--qos", "2", "--version", "5", *SHORT), 1),
    "qos1-fanin-v5": lambda s: check_exact(
        bench(s, "--layout", "fanin", "--publishers", "20", "--qos", "1", "--version", "5", *SHORT), 1),
    "qos0-fanout": lambda s: check_exact(
        bench(s, "--layout", "fanout", "--publishers", "1", "--subscribers", "20", "--expect-exact", "1",
              *SHORT), 20),
    "qos1-wildcard": lambda s: check_exact(
        bench(s, "--layout", "wildcard", "--publishers", "5", "--subscribers", "5", "--qos", "1", *SHORT), 5),
    "qos1-shared": lambda s: check_exact(
        bench(s, "--layout", "shared", "--publishers", "10", "--subscribers", "3", "--qos", "1", *SHORT), 1),
    "qos1-threads": lambda s: check_exact(
        bench(s, "--layout", "pairs", "--publishers", "16", "--qos", "1", "--threads", "3", *SHORT), 1),
}


def case_rate(s):
    r = bench(s, "--layout", "pairs", "--publishers", "4", "--qos", "1", "--rate", "2000", *SHORT)
    check_exact(r, 1)
    expect(1600 <= r["pub_per_s"] <= 2400, "fixed rate 2000/s not kept", r)


def case_idle(s):
    r = bench(s, "--layout", "idle", "--connections", "300", "--warmup", "0", "--duration", "0.5")
    expect(r["ok"] and r["failed"] == 0, "idle connections failed", r)
    expect(r["connections"] == 300 and r["rss_per_conn_bytes"] >= 0, "no RSS per connection", r)


def case_connect(s):
    r = bench(s, "--layout", "connect", "--connections", "8", "--warmup", "0.1", "--duration", "0.5")
    expect(r["ok"] and r["failed"] == 0, "handshakes failed", r)
    expect(r["handshakes_per_s"] > 0 and r["hs_samples"] > 0, "no handshakes counted", r)


def check_tls(r, handshakes):
    expect(r["tls"] and r["tls_suite"].startswith("TLSv1."), "not a TLS run", r)
    expect(r["tls_handshakes"] >= handshakes > 0, f"fewer than {handshakes} TLS handshakes", r)


def case_tls(s):
    """Over TLS: messages arrive exactly once (QoS 1 pairs; QoS 0 fan-out of
    payloads larger than a TLS record), and the connect layout counts full
    handshakes, with TLS 1.2 and the certificate verified."""
    r = bench(s, "--tls", "--layout", "pairs", "--publishers", "10", "--qos", "1", *SHORT)
    check_exact(r, 1)
    check_tls(r, 20)
    expect(r["tls_version"] == "1.3" and not r["tls_verified"], "TLS 1.3 without verification expected", r)
    r = bench(s, "--tls", "--layout", "fanout", "--publishers", "1", "--subscribers", "4", "--payload", "40KiB",
              "--inflight", "8", "--expect-exact", "1", *SHORT)
    check_exact(r, 4)
    check_tls(r, 5)
    r = bench(s, "--tls", "--tls-version", "1.2", "--ca", s.cert, "--layout", "connect", "--connections", "8",
              "--warmup", "0.1", "--duration", "0.5")
    expect(r["ok"] and r["failed"] == 0, "TLS handshakes failed", r)
    expect(r["handshakes_per_s"] > 0 and r["hs_samples"] > 0, "no handshakes counted", r)
    check_tls(r, r["hs_samples"])
    expect(r["tls_suite"].startswith("TLSv1.2") and r["tls_verified"], "verified TLS 1.2 expected", r)


CASES["qos1-rate"] = case_rate
CASES["idle"] = case_idle
CASES["connect"] = case_connect
CASES["tls"] = case_tls
# The floor forwarder must pass the same consistency checks (exact topics, QoS 0).
FLOOR_CASES = {
    "floor-qos0-pairs": lambda s: check_exact(
        bench(s, "--layout", "pairs", "--publishers", "20", "--expect-exact", "1", *SHORT), 1),
    "floor-qos0-fanout": lambda s: check_exact(
        bench(s, "--layout", "fanout", "--publishers", "1", "--subscribers", "20", "--expect-exact", "1",
              *SHORT), 20),
    "floor-connect": case_connect,
}


def main():
    shards = int(os.environ.get("RMQ_SHARDS", "1"))
    if len(sys.argv) >= 3 and sys.argv[1] == "--scenario":
        with open(sys.argv[2]) as f:
            tls = re.search(r"^\s*tls\s*=\s*(1|true|yes|on)\s*(#.*)?$", f.read(), re.M | re.I) is not None
        s = Server("ringmq", shards, tls)
        r = bench(s, "--scenario", *sys.argv[2:])
        print(json.dumps(r))
        s.stop()
        return
    if len(sys.argv) != 2 or sys.argv[1] not in {**CASES, **FLOOR_CASES}:
        fail(f"usage: test_bench.py CASE ({', '.join(list(CASES) + list(FLOOR_CASES))})")
    name = sys.argv[1]
    s = Server("floor" if name in FLOOR_CASES else "ringmq", shards, name == "tls")
    {**CASES, **FLOOR_CASES}[name](s)
    s.stop()
    print(f"ok {name}")


if __name__ == "__main__":
    main()
