"""A small MQTT 3.1.1 / 5.0 client over a plain socket, for tests that must
control every packet: the packet ids, the DUP flag, or a QoS 2 flow left
half done.  Builders return the bytes of one packet; RawClient sends them
and reads packets back with timeouts.  Only what the tests need is here.
"""

import socket
import struct
import time

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15
NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL", 7: "PUBCOMP",
         8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP",
         14: "DISCONNECT", 15: "AUTH"}

# MQTT 5 properties: id -> (name, wire type).
PROPS = {
    0x01: ("payload_format", "byte"), 0x02: ("message_expiry", "u32"), 0x03: ("content_type", "str"),
    0x08: ("response_topic", "str"), 0x09: ("correlation_data", "bin"), 0x0B: ("subscription_id", "varint"),
    0x11: ("session_expiry", "u32"), 0x12: ("assigned_client_id", "str"), 0x13: ("server_keepalive", "u16"),
    0x15: ("auth_method", "str"), 0x16: ("auth_data", "bin"), 0x17: ("request_problem_info", "byte"),
    0x18: ("will_delay", "u32"), 0x19: ("request_response_info", "byte"), 0x1A: ("response_info", "str"),
    0x1C: ("server_reference", "str"), 0x1F: ("reason_string", "str"), 0x21: ("receive_maximum", "u16"),
    0x22: ("topic_alias_maximum", "u16"), 0x23: ("topic_alias", "u16"), 0x24: ("maximum_qos", "byte"),
    0x25: ("retain_available", "byte"), 0x26: ("user_property", "pair"), 0x27: ("maximum_packet_size", "u32"),
    0x28: ("wildcard_available", "byte"), 0x29: ("subscription_id_available", "byte"),
    0x2A: ("shared_available", "byte"),
}
PROP_IDS = {name: (pid, kind) for pid, (name, kind) in PROPS.items()}


class ProtocolError(Exception):
    pass


def varint(n):
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(buf, off):
    """(value, new offset) of the variable byte integer at @off."""
    value, mult = 0, 1
    for i in range(4):
        if off + i >= len(buf):
            raise ProtocolError("truncated variable byte integer")
        b = buf[off + i]
        value += (b & 0x7F) * mult
        if not b & 0x80:
            return value, off + i + 1
        mult *= 128
    raise ProtocolError("variable byte integer longer than 4 bytes")


def mbytes(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack(">H", len(b)) + b


def properties(items):
    """Encode MQTT 5 properties from (name, value) pairs, in the given order."""
    body = bytearray()
    for name, value in items:
        pid, kind = PROP_IDS[name]
        body += varint(pid)
        if kind == "byte":
            body.append(value)
        elif kind == "u16":
            body += struct.pack(">H", value)
        elif kind == "u32":
            body += struct.pack(">I", value)
        elif kind == "varint":
            body += varint(value)
        elif kind in ("str", "bin"):
            body += mbytes(value)
        else:  # pair
            body += mbytes(value[0]) + mbytes(value[1])
    return varint(len(body)) + bytes(body)


def parse_properties(buf, off):
    """(dict name -> value, new offset); user properties and subscription ids are lists."""
    length, off = read_varint(buf, off)
    end, out = off + length, {}
    if end > len(buf):
        raise ProtocolError("properties longer than the packet")
    while off < end:
        pid, off = read_varint(buf, off)
        if pid not in PROPS:
            raise ProtocolError("unknown property 0x%02x" % pid)
        name, kind = PROPS[pid]
        if kind == "byte":
            value, off = buf[off], off + 1
        elif kind == "u16":
            value, off = struct.unpack_from(">H", buf, off)[0], off + 2
        elif kind == "u32":
            value, off = struct.unpack_from(">I", buf, off)[0], off + 4
        elif kind == "varint":
            value, off = read_varint(buf, off)
        elif kind in ("str", "bin"):
            n = struct.unpack_from(">H", buf, off)[0]
            value, off = bytes(buf[off + 2:off + 2 + n]), off + 2 + n
        else:
            n = struct.unpack_from(">H", buf, off)[0]
            k, off = bytes(buf[off + 2:off + 2 + n]), off + 2 + n
            n = struct.unpack_from(">H", buf, off)[0]
            v, off = bytes(buf[off + 2:off + 2 + n]), off + 2 + n
            value = (k, v)
        if name in ("user_property", "subscription_id"):
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    return out, end


def packet(ptype, flags, body):
    return bytes([ptype << 4 | flags]) + varint(len(body)) + body


def connect(client_id, version=4, clean=True, keepalive=60, session_expiry=None):
    flags = 0x02 if clean else 0
    body = mbytes("MQTT") + bytes([version, flags]) + struct.pack(">H", keepalive)
    if version == 5:
        body += properties([("session_expiry", session_expiry)] if session_expiry else [])
    return packet(CONNECT, 0, body + mbytes(client_id))


def subscribe(pid, filters, version=4, sub_id=None):
    """@filters: (filter, options) pairs; options is the QoS plus, for MQTT 5,
    no-local (0x04), retain-as-published (0x08) and retain handling."""
    body = struct.pack(">H", pid)
    if version == 5:
        body += properties([("subscription_id", sub_id)] if sub_id else [])
    for f, options in filters:
        body += mbytes(f) + bytes([options])
    return packet(SUBSCRIBE, 2, body)


def publish(topic, payload, qos=0, pid=None, dup=False, retain=False, version=4, props=()):
    flags = qos << 1 | (0x08 if dup else 0) | (0x01 if retain else 0)
    body = mbytes(topic)
    if qos:
        body += struct.pack(">H", pid)
    if version == 5:
        body += properties(props)
    return packet(PUBLISH, flags, body + payload)


def ack(ptype, pid):
    """PUBACK, PUBREC, PUBREL or PUBCOMP with reason Success (valid for 3.1.1 and 5)."""
    return packet(ptype, 2 if ptype == PUBREL else 0, struct.pack(">H", pid))


def disconnect():
    return packet(DISCONNECT, 0, b"")


class Packet:
    def __init__(self, ptype, flags, body, version):
        self.type, self.flags, self.body, self.version = ptype, flags, body, version
        self.props = {}
        if ptype == PUBLISH:
            self.qos = (flags >> 1) & 3
            self.dup = bool(flags & 0x08)
            self.retain = bool(flags & 0x01)
            n = struct.unpack_from(">H", body, 0)[0]
            self.topic = body[2:2 + n].decode()
            off = 2 + n
            self.pid = None
            if self.qos:
                self.pid = struct.unpack_from(">H", body, off)[0]
                off += 2
            if version == 5:
                self.props, off = parse_properties(body, off)
            self.payload = bytes(body[off:])
        elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK):
            self.pid = struct.unpack_from(">H", body, 0)[0]
            if ptype in (SUBACK, UNSUBACK):
                off = 2
                if version == 5:
                    self.props, off = parse_properties(body, off)
                self.reasons = list(body[off:])
            else:
                self.reason = body[2] if len(body) > 2 else 0
                if version == 5 and len(body) > 3:
                    self.props, _ = parse_properties(body, 3)
        elif ptype == CONNACK:
            self.session_present = bool(body[0] & 1)
            self.reason = body[1]
            if version == 5 and len(body) > 2:
                self.props, _ = parse_properties(body, 2)
        elif ptype == DISCONNECT:
            self.reason = body[0] if body else 0

    def __repr__(self):
        name = NAMES.get(self.type, str(self.type))
        if self.type == PUBLISH:
            return "PUBLISH(topic=%s qos=%d pid=%s dup=%d retain=%d payload=%r)" % (
                self.topic, self.qos, self.pid, self.dup, self.retain, self.payload[:40])
        if hasattr(self, "pid"):
            return "%s(pid=%d reason=0x%02x)" % (name, self.pid, getattr(self, "reason", 0))
        if hasattr(self, "reason"):
            return "%s(reason=0x%02x)" % (name, self.reason)
        return name


class Closed(Exception):
    """The broker closed the connection."""


class RawClient:
    def __init__(self, port, version=4, timeout=5.0):
        self.version, self.timeout = version, timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()
        self.eof = False
        self.acks = []

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            raise Closed()
        self.buf += chunk

    def recv(self, timeout=None):
        """The next packet.  Raises Closed at end of stream, socket.timeout when none came."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self.buf) >= 2:
                try:
                    length, off = read_varint(self.buf, 1)
                except ProtocolError:
                    if len(self.buf) >= 5:
                        raise
                    length = None
                if length is not None and len(self.buf) >= off + length:
                    first = self.buf[0]
                    body = bytes(self.buf[off:off + length])
                    del self.buf[:off + length]
                    return Packet(first >> 4, first & 0x0F, body, self.version)
            if self.eof:
                raise Closed()
            self._fill(deadline)

    def expect(self, ptype, timeout=None):
        try:
            p = self.recv(timeout)
        except socket.timeout:
            raise AssertionError("no %s within %.1f s" % (NAMES[ptype], self.timeout if timeout is None
                                                          else timeout)) from None
        except Closed:
            raise AssertionError("connection closed while waiting for %s" % NAMES[ptype]) from None
        if p.type != ptype:
            raise AssertionError("expected %s, got %r" % (NAMES[ptype], p))
        return p

    def expect_nothing(self, quiet):
        """No packet within @quiet seconds (and the connection stays open)."""
        try:
            p = self.recv(quiet)
        except socket.timeout:
            return
        except Closed:
            raise AssertionError("connection closed unexpectedly") from None
        raise AssertionError("unexpected %r" % p)

    def wait_closed(self, timeout=None):
        """Read until the broker closes the connection; returns the packets seen before."""
        seen = []
        while True:
            try:
                seen.append(self.recv(timeout))
            except Closed:
                return seen
            except socket.timeout:
                raise AssertionError("connection still open after %.1f s (packets seen: %r)"
                                     % (self.timeout if timeout is None else timeout, seen)) from None

    def connect(self, client_id, clean=True, session_expiry=None, keepalive=60):
        self.send(connect(client_id, self.version, clean, keepalive, session_expiry))
        p = self.expect(CONNACK)
        if p.reason != 0:
            raise AssertionError("%s: CONNACK reason 0x%02x" % (client_id, p.reason))
        return p

    def subscribe(self, pid, filters, sub_id=None):
        self.send(subscribe(pid, filters, self.version, sub_id))
        p = self.expect(SUBACK)
        if p.pid != pid:
            raise AssertionError("SUBACK for packet id %d, sent %d" % (p.pid, pid))
        return p.reasons

    def publish(self, topic, payload, qos=0, pid=None, dup=False, retain=False, props=()):
        self.send(publish(topic, payload, qos, pid, dup, retain, self.version, props))

    def next_message(self, timeout=None):
        """The next PUBLISH, answering the flows on the way: PUBACK for QoS 1,
        PUBREC for QoS 2 and PUBCOMP for each PUBREL.  Acknowledgements of
        this client's own publishes are kept in self.acks."""
        while True:
            try:
                p = self.recv(timeout)
            except socket.timeout:
                raise AssertionError("no PUBLISH within %.1f s" % (self.timeout if timeout is None
                                                                   else timeout)) from None
            except Closed:
                raise AssertionError("connection closed while waiting for a PUBLISH") from None
            if p.type == PUBLISH:
                if p.qos == 1:
                    self.send(ack(PUBACK, p.pid))
                elif p.qos == 2:
                    self.send(ack(PUBREC, p.pid))
                return p
            if p.type == PUBREL:
                self.send(ack(PUBCOMP, p.pid))
            elif p.type in (PUBACK, PUBREC, PUBCOMP):
                self.acks.append(p)
            else:
                raise AssertionError("unexpected %r" % p)

    def quiet(self, quiet):
        """No PUBLISH within @quiet seconds (flows still open are completed)."""
        try:
            p = self.next_message(quiet)
        except AssertionError as e:
            if "no PUBLISH" in str(e):
                return
            raise
        raise AssertionError("unexpected %r" % p)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
