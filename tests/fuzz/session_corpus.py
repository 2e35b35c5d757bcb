#!/usr/bin/python3
"""tests/fuzz/session_corpus.py - write the seed corpus of fuzz_session
(tests/fuzz/corpus/session/): scripts of realistic two-client exchanges in
the step format fuzz_session.c describes.  Run it from the repository root
after changing the script format; the output is committed."""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "session")


def varint(n):
    out = b""
    while True:
        d = n % 128
        n //= 128
        out += bytes([d | (0x80 if n else 0)])
        if not n:
            return out


def s(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack(">H", len(b)) + b


def pkt(t, flags, body):
    return bytes([t << 4 | flags]) + varint(len(body)) + body


def props(p=b""):
    return varint(len(p)) + p


def connect(cid, v=4, clean=True, keepalive=60, will=None, pr=b"", wpr=b""):
    flags = 0x02 if clean else 0
    payload = s(cid)
    if will:
        topic, msg, qos, retain = will
        flags |= 0x04 | qos << 3 | (0x20 if retain else 0)
        payload += (props(wpr) if v == 5 else b"") + s(topic) + s(msg)
    body = s("MQTT") + bytes([v, flags]) + struct.pack(">H", keepalive) + (props(pr) if v == 5 else b"")
    return pkt(1, 0, body + payload)


def publish(topic, msg, qos=0, pid=1, retain=False, v=4, pr=b"", dup=False):
    body = s(topic) + (struct.pack(">H", pid) if qos else b"") + (props(pr) if v == 5 else b"") + msg
    return pkt(3, qos << 1 | (1 if retain else 0) | (8 if dup else 0), body)


def subscribe(pid, filters, v=4, pr=b""):
    body = struct.pack(">H", pid) + (props(pr) if v == 5 else b"")
    for f, o in filters:
        body += s(f) + bytes([o])
    return pkt(8, 2, body)


def ack(t, pid):
    return pkt(t, 2 if t == 6 else 0, struct.pack(">H", pid))


def disconnect(v=4):
    return pkt(14, 0, b"\x00\x00" if v == 5 else b"")


def send(client, data):
    """Steps: client 0/1 sends @data, cut into reads of up to 255 bytes."""
    out = b""
    while data:
        chunk, data = data[:255], data[255:]
        out += bytes([client, len(chunk)]) + chunk
    return out


def close(client):
    return bytes([2 + client])


def reopen(client):
    return bytes([4 + client])


def wait(seconds):
    return bytes([6, seconds])


SESSION_EXPIRY = b"\x11" + struct.pack(">I", 300)
corpus = {
    "qos-both-ways-311": send(0, connect("a") + subscribe(1, [("t/#", 2)])) +
    send(1, connect("b") + publish("t/1", b"one", 1, 1) + publish("t/2", b"two", 2, 2)) +
    send(1, ack(6, 2)) + send(0, ack(4, 1) + ack(5, 2)) + send(0, ack(7, 2)) + send(0, disconnect()),
    "persistent-resume-311": send(0, connect("p", clean=False) + subscribe(1, [("q/+", 1)])) + close(0) +
    send(1, connect("b") + publish("q/x", b"queued", 1, 5) + publish("q/y", b"q2", 2, 6) + ack(6, 6)) +
    wait(3) + reopen(0) + send(0, connect("p", clean=False)) + send(0, ack(4, 1) + ack(5, 2) + ack(7, 2)),
    "takeover-v5": send(0, connect("same", 5, pr=SESSION_EXPIRY) + subscribe(1, [("x", 1)], 5)) +
    send(1, connect("same", 5, clean=False, pr=SESSION_EXPIRY)) + send(1, publish("x", b"after", 1, 3, v=5)) +
    send(1, ack(4, 1)) + send(0, publish("x", b"late", 1, 4, v=5)),
    "will-retained-delay-v5": send(0, connect("w", 5, will=("will/w", b"gone", 1, True),
                                                wpr=b"\x18" + struct.pack(">I", 2), pr=SESSION_EXPIRY)) +
    send(1, connect("s", 5) + subscribe(1, [("will/#", 1)], 5)) + close(0) + wait(3) + send(1, ack(4, 1)) +
    send(1, subscribe(2, [("will/#", 0x21)], 5)),
    "shared-alias-subid-v5": send(0, connect("m1", 5) + subscribe(1, [("$share/g/s/#", 1)], 5, b"\x0b\x07")) +
    send(1, connect("pub", 5, pr=b"\x22\x00\x0a") + publish("s/1", b"a", 1, 1, v=5, pr=b"\x23\x00\x01") +
         publish("", b"b", 1, 2, v=5, pr=b"\x23\x00\x01") + publish("s/2", b"c", 0, v=5,
                                                                  pr=b"\x02\x00\x00\x00\x05\x26" + s("k") + s("v"))) +
    send(0, ack(4, 1) + ack(4, 2)) + wait(10),
    "retained-expiry-v5": send(1, connect("r", 5) + publish("ret/a", b"r1", 1, 1, True, 5, b"\x02\x00\x00\x00\x02") +
                              publish("ret/b", b"", 0, retain=True, v=5)) + wait(1) +
    send(0, connect("late", 5) + subscribe(1, [("ret/#", 2)], 5)) + wait(5) + send(0, ack(4, 1)),
    "qos2-resend-311": send(1, connect("p2") + publish("d/1", b"x", 2, 9)) +
    send(1, publish("d/1", b"x", 2, 9, dup=True)) + send(1, ack(6, 9)) + send(1, ack(6, 9)) +
    send(0, connect("sub") + subscribe(3, [("d/#", 2)])) + send(1, publish("d/2", b"y", 2, 9)),
    "keepalive-timeout": send(0, connect("k", keepalive=1)) + wait(5) + send(1, connect("k")),
}

os.makedirs(OUT, exist_ok=True)
for name, data in corpus.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print("wrote %d inputs to %s" % (len(corpus), OUT))
