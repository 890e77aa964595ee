#!/usr/bin/python3
"""Byte-level MQTT conformance runner over Mosquitto's packet sequences.

Runs the conversations in <repo>/../shared/conformance/mosquitto-sequences/
*.json (format: README.md next to them) against an MQTT broker over raw TCP
sockets and compares what the broker sends back.  Stdlib only.

    run_sequences.py --broker-cmd 'BIN --listen=127.0.0.1:{port} --dir={data_dir}' \
        [--known-failures FILE] [--filter REGEX] [--jobs N] [--verbose]
    run_sequences.py --mosquitto [/usr/sbin/mosquitto] ...
    run_sequences.py --host 127.0.0.1 --port 1883 ...   (broker already running)

With --broker-cmd the runner picks a free port on 127.0.0.1 (binds port 0),
creates a temporary data directory, substitutes {port} and {data_dir} in each
argument of the command (split with shlex, no shell), starts the broker, polls
until the port accepts connections (no fixed sleeps), runs the cases and
stops the broker (SIGTERM, then SIGKILL) at the end, also on Ctrl-C, SIGTERM
or an exception.  --mosquitto writes {data_dir}/mosquitto.conf (listener
<port> 127.0.0.1, allow_anonymous true; everything else at the 2.0 defaults,
which are what the data assumes: Topic Alias Maximum 10, Receive Maximum 20)
and runs `BIN -c {data_dir}/mosquitto.conf`.  After the run the broker must
still be alive and answer CONNECT + PINGREQ, otherwise the run fails.

Each case runs on its own TCP connection(s), --jobs of them in parallel
(default 16).  Per-step timeouts: 2 s for each expected packet
(--recv-timeout), 2 s to observe a close (--close-timeout); a close shows up
as EOF/ECONNRESET at once, so only broken behaviour costs time.

Steps: `send` writes the bytes; `recv` reads whole MQTT packets (framed by the
fixed header) and compares them; `external_publish` runs a second raw-socket
client (MQTT 3.1.1, unique client id, clean session) that connects, publishes
{topic, qos, payload} with packet id 1, completes the QoS 1/2 handshake, sends
DISCONNECT and closes.  connect: true sends a CONNECT of the case's version
(clean start, keep-alive 60) and expects a success CONNACK.  Afterwards
expect_disconnect: true -> the broker must close the connection;
false -> PINGREQ must get PINGRESP with nothing else before it (with the
isolation of R9 no other traffic can legitimately reach the connection),
then the runner sends DISCONNECT and closes.

Case id: FILE:GROUP:NAME, with runs of whitespace in GROUP and NAME collapsed
to one space and the ends stripped (the data pads group names and has names
that differ only by a trailing space).  A few cases have exactly the same
FILE/GROUP/NAME; the second, third... get " [dup 2]", " [dup 3]" appended in
file order.  Ids never contain two consecutive spaces or a tab, which the
known-failures format relies on.

Known-failures file: one case id per line, then two or more spaces (or a tab)
and "# reason"; lines starting with "#" and blank lines are ignored.  Exit code
0 only if every failing case is listed, every listed case selected by
--filter failed, every listed id exists in the data and the broker survived;
otherwise 1.  A listed case that passes is reported as "UNEXPECTEDLY PASSING
... -- remove it from the list".  --write-known-failures FILE writes the
current failures in that format, keeping the reasons of entries already in
the --known-failures file and categorising new ones automatically.
Exit 2: usage/setup error (data missing, broker did not start); 130: interrupted.

Output: one line per failing case, "FAIL <id>: <what differed>" (or
"FAIL (known) ..."), expected vs got in hex; then
"conformance: N passed, M failed" and a line with the known/unexpected/
skipped counts.  --verbose also lists every passing case that needed a
relaxation, with the relaxations used.

STRICT (the spec fixes it)
  * packet type and fixed-header flags of every packet the broker sends;
  * reason/return codes of CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK
    and UNSUBACK (every code in the SUBACK/UNSUBACK list);
  * packet identifiers the broker echoes (PUBACK/PUBREC/PUBCOMP for the
    client's PUBLISH, SUBACK, UNSUBACK);
  * PUBLISH sent by the broker: DUP/QoS/RETAIN flags, topic, MQTT 5
    properties, payload bytes;
  * the close when expect_disconnect is true, staying open when false;
  * MQTT 3.1/3.1.1 packets byte for byte, except the server-chosen PUBLISH
    packet id (R3).

RELAXATIONS (choices the spec leaves to the server, or needed to run cases
concurrently; each use is recorded as a note, listed with --verbose)
  R1 MQTT 5 CONNACK: only packet type, session-present byte and reason code
     are compared.  The properties (Topic Alias Maximum 10, Receive Maximum
     20, Maximum Packet Size...) are Mosquitto's configuration (README
     caveat); Assigned Client Identifier etc. are server specific.
  R2 Optional error notice before a close.  When the last expected packet of
     a case with expect_disconnect=true is an MQTT 5 DISCONNECT with reason
     >= 0x80, or an MQTT 5 style CONNACK with reason >= 0x80, the server MAY
     send it (MQTT 5 4.13, 3.1.4, 3.2.2.2): accepted are the same packet type
     with any reason >= 0x80 followed by a close, or a plain close.  A reason
     code other than the data's is only a note: which of 0x81 Malformed /
     0x82 Protocol Error / a specific code is used is where the data records
     Mosquitto's choices; --strict-reason-codes makes it a failure.  For an
     expected CONNACK 0x84 (unsupported protocol version) the 3.1.1 encoding
     20 02 00 01 is accepted too (the server cannot know which encoding a
     client of an unknown version speaks; 3.1.1 [MQTT-3.1.2-2] requires it).
     In the final close check of an MQTT 5 connection that got a successful
     CONNACK, one DISCONNECT with reason >= 0x80 before the close is accepted
     even where the data lists none.  Nothing of the kind is accepted on
     MQTT 3.1/3.1.1 connections or before a successful CONNACK (no server
     DISCONNECT there, [MQTT-3.14.0-1]), nor a DISCONNECT with reason < 0x80.
  R3 Packet identifiers the broker picks for its own QoS 1/2 PUBLISH: any
     non-zero value is accepted (the data has Mosquitto's 1, 2...).  The
     mapping is kept for the rest of the case: ids in the PUBACK/PUBREC/
     PUBCOMP the test sends and in the PUBREL the broker sends are translated
     (expected <-> actual swapped, so a deliberately unknown id stays
     unknown).  Ids of the client's own flows are never touched.
  R4 MQTT 5 PUBACK/PUBREC/PUBREL/PUBCOMP/DISCONNECT short forms are
     equivalent (reason code and property length can be omitted for 0x00 and
     no properties): 40 02 00 01 == 40 03 00 01 00 == 40 04 00 01 00 00.
  R5 Reason String (0x1F) and User Property (0x26) added by the broker to
     acks (PUBACK..PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, CONNACK) are
     ignored: optional diagnostics.  In PUBLISH they are application data and
     are compared.
  R6 MQTT 5 PUBLISH properties are compared as a multiset (the order is not
     fixed, e.g. several Subscription Identifiers), except that User
     Properties keep their relative order ([MQTT-3.3.2-18]).
  R7 Consecutive expected packets may interleave between two streams: the
     broker's own PUBLISH/PUBREL versus its responses (CONNACK, SUBACK,
     PUBACK...).  Within a stream the order is strict.  The spec does not
     order a forwarded PUBLISH against the ack of the client's PUBLISH and
     lets PUBLISH precede SUBACK (3.8.4).
  R8 Client ids.  The default CONNECT uses a unique 13-character
     alphanumeric id ("cf" + run tag + case number) instead of the test
     name: cases run concurrently, identical names in different groups would
     make the broker take sessions over, and 1-23 alphanumerics is what
     every server must accept ([MQTT-3.1.3-5]).  Alphanumeric client ids
     inside the data's raw CONNECT packets ('p', 'q'...) are replaced by a
     same-length id that no concurrently running case uses (remaining lengths
     stay valid); other ids (UTF-8 and odd-character tests) are sent as they
     are and such cases are serialised against each other instead.
  R9 Isolation.  A case that subscribes never runs concurrently with one that
     publishes (PUBLISH, Will, external_publish) on a matching topic;
     unparsable filters/topics match everything.  After a case that published
     a retained message the runner clears it (empty retained PUBLISH) before
     releasing the topic, so no later case sees it (the upstream sequential
     runner relied on file order).
  R10 expect_disconnect=false: after PINGRESP the runner sends DISCONNECT
     before closing, so no Will message leaks into other cases.
  R11 Sends that fail because the broker already closed the connection are
     ignored; the next expected packet or the close check decides.
  R12 MQTT 5 PUBACK/PUBREC reason 0x10 (No matching subscribers) and 0x00
     (Success) are interchangeable: the server "MAY use this Reason Code
     instead of 0x00" (3.4.2.1).
"""

import argparse
import ctypes
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SEQUENCES = HERE.parent.parent.parent / 'shared' / 'conformance' / 'mosquitto-sequences'
ALNUM = string.ascii_lowercase + string.ascii_uppercase + string.digits
ANY = object()   # "matches every topic / filter"

# --------------------------------------------------------------------------
# payload mini-language (same semantics as Mosquitto's msg_sequence_test.py)


def parse_payload(message):
    b = bytearray()
    parts = message.split(' ')
    i = 0
    while i < len(parts):
        p = parts[i]
        if len(p) == 0:
            i += 1
            continue
        c = p[0]
        if c == 'i':
            b += int(p[1:]).to_bytes(1, 'big')
        elif c in 'Hkms':
            b += int(p[1:]).to_bytes(2, 'big')
        elif c == 'L':
            b += int(p[1:]).to_bytes(4, 'big')
        elif c == "'":
            s = p[1:]
            while (len(s) == 0 or s[-1] != "'") and i < len(parts) - 1:
                i += 1
                s += ' ' + parts[i]
            if len(s) == 0 or s[-1] != "'":
                raise ValueError('unterminated string in %r' % message)
            b += s[:-1].encode('utf-8')
        elif c in 'vr':
            v = int(p[1:])
            while True:        # values >= 2^28 allowed on purpose
                byte = v % 128
                v //= 128
                if v > 0:
                    byte |= 0x80
                b.append(byte)
                if v == 0:
                    break
        else:
            b += bytes.fromhex(p)
        i += 1
    return bytes(b)


# --------------------------------------------------------------------------
# packet helpers


def enc_varint(v):
    out = bytearray()
    while True:
        byte = v % 128
        v //= 128
        if v:
            byte |= 0x80
        out.append(byte)
        if not v:
            return bytes(out)


def dec_varint(buf, i, maxbytes=4):
    """-> (value, next index) or None if incomplete/invalid."""
    v = 0
    mul = 1
    for n in range(maxbytes):
        if i + n >= len(buf):
            return None
        x = buf[i + n]
        v += (x & 0x7F) * mul
        mul *= 128
        if not x & 0x80:
            return v, i + n + 1
    return None


def split_packets(data):
    """Frame a byte string into [(offset, raw packet)], stopping at the
    first incomplete/invalid packet.  Returns (packets, rest_offset)."""
    out = []
    i = 0
    while i < len(data):
        r = dec_varint(data, i + 1)
        if r is None:
            break
        ln, j = r
        if j + ln > len(data):
            break
        out.append((i, data[i:j + ln]))
        i = j + ln
    return out, i


def body_of(pkt):
    r = dec_varint(pkt, 1)
    return pkt[r[1]:]


def make_packet(first, body):
    return bytes([first]) + enc_varint(len(body)) + body


def mqtt_str(s):
    if isinstance(s, str):
        s = s.encode('utf-8')
    return len(s).to_bytes(2, 'big') + s


def hexs(b, limit=48):
    if b is None:
        return '-'
    h = b[:limit].hex(' ')
    if len(b) > limit:
        h += ' ...(+%d bytes)' % (len(b) - limit)
    return h if h else '(empty)'


PROP_KIND = {}
for _k in (0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A):
    PROP_KIND[_k] = 1
for _k in (0x13, 0x21, 0x22, 0x23):
    PROP_KIND[_k] = 2
for _k in (0x02, 0x11, 0x18, 0x27):
    PROP_KIND[_k] = 4
PROP_KIND[0x0B] = 'v'
for _k in (0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F, 0x09, 0x16):
    PROP_KIND[_k] = 's'
PROP_KIND[0x26] = 'pair'
DIAG_PROPS = (0x1F, 0x26)


def parse_props(buf, i):
    """Parse an MQTT 5 property block at buf[i].  -> (list of (id, raw
    value bytes), next index) or None if malformed."""
    r = dec_varint(buf, i)
    if r is None:
        return None
    ln, j = r
    end = j + ln
    if end > len(buf):
        return None
    props = []
    while j < end:
        r = dec_varint(buf, j)
        if r is None:
            return None
        pid, j = r
        kind = PROP_KIND.get(pid)
        if kind is None:
            return None
        start = j
        if kind == 'v':
            r = dec_varint(buf, j)
            if r is None:
                return None
            j = r[1]
        elif kind == 's':
            if j + 2 > end:
                return None
            j += 2 + int.from_bytes(buf[j:j + 2], 'big')
        elif kind == 'pair':
            for _ in range(2):
                if j + 2 > end:
                    return None
                j += 2 + int.from_bytes(buf[j:j + 2], 'big')
        else:
            j += kind
        if j > end:
            return None
        props.append((pid, bytes(buf[start:j])))
    return props, end


def canon_props(props):
    users = [p for p in props if p[0] == 0x26]
    others = sorted(p for p in props if p[0] != 0x26)
    return others, users


def props_hex(props):
    return ' '.join('%02x:%s' % (p, v.hex()) for p, v in props) or '(none)'


def parse_publish(pkt, v5):
    """-> dict(first, topic, pid, props, payload) or None."""
    first = pkt[0]
    body = body_of(pkt)
    qos = (first >> 1) & 3
    if len(body) < 2:
        return None
    tl = int.from_bytes(body[0:2], 'big')
    i = 2 + tl
    if i > len(body):
        return None
    d = {'first': first, 'topic': bytes(body[2:i]), 'pid': None, 'props': None}
    if qos:
        if i + 2 > len(body):
            return None
        d['pid'] = int.from_bytes(body[i:i + 2], 'big')
        i += 2
    if v5:
        r = parse_props(body, i)
        if r is None:
            return None
        d['props'], i = r
    d['payload'] = bytes(body[i:])
    return d


def parse_connect(pkt):
    """Best-effort CONNECT parse -> dict or None.  Keys: level, flags,
    cid_off (offset of the client id bytes inside pkt), cid, will_topic."""
    if pkt[0] >> 4 != 1:
        return None
    r = dec_varint(pkt, 1)
    if r is None:
        return None
    hdr = r[1]
    b = pkt
    try:
        n = int.from_bytes(b[hdr:hdr + 2], 'big')
        i = hdr + 2 + n
        level = b[i]
        flags = b[i + 1]
        i += 4
        if i > len(b):
            return None
        d = {'level': level, 'flags': flags, 'cid': None, 'cid_off': None,
             'will_topic': None}
        if level == 5:
            r = parse_props(b, i)
            if r is None:
                return d
            i = r[1]
        if i + 2 > len(b):
            return d
        n = int.from_bytes(b[i:i + 2], 'big')
        if i + 2 + n > len(b):
            return d
        d['cid'] = bytes(b[i + 2:i + 2 + n])
        d['cid_off'] = i + 2
        i += 2 + n
        if flags & 0x04:
            if level == 5:
                r = parse_props(b, i)
                if r is None:
                    return d
                i = r[1]
            if i + 2 > len(b):
                return d
            n = int.from_bytes(b[i:i + 2], 'big')
            if i + 2 + n > len(b):
                return d
            d['will_topic'] = bytes(b[i + 2:i + 2 + n])
        return d
    except IndexError:
        return None


def parse_subscribe_filters(pkt, v5):
    """-> list of filters (bytes) or None if unparsable."""
    body = body_of(pkt)
    i = 2
    if v5:
        r = parse_props(body, i)
        if r is None:
            return None
        i = r[1]
    out = []
    while i < len(body):
        if i + 2 > len(body):
            return None
        n = int.from_bytes(body[i:i + 2], 'big')
        if i + 2 + n + 1 > len(body):
            return None
        out.append(bytes(body[i + 2:i + 2 + n]))
        i += 2 + n + 1
    return out


def filter_matches(flt, topic):
    if flt is ANY or topic is ANY:
        return True
    f = flt.decode('utf-8', 'surrogateescape')
    t = topic.decode('utf-8', 'surrogateescape')
    if f.startswith('$share/'):
        parts = f.split('/', 2)
        f = parts[2] if len(parts) == 3 else ''
    fl = f.split('/')
    tl = t.split('/')
    for k, x in enumerate(fl):
        if x == '#':
            return True
        if k >= len(tl):
            return False
        if x != '+' and x != tl[k]:
            return False
    return len(fl) == len(tl)


def valid_topic_name(t):
    if not t or b'+' in t or b'#' in t or b'\x00' in t:
        return False
    try:
        t.decode('utf-8')
    except UnicodeDecodeError:
        return False
    return True


# --------------------------------------------------------------------------
# data loading and static analysis


class Case:
    __slots__ = ('index', 'id', 'file', 'group', 'name', 'ver', 'connect',
                 'expect_disconnect', 'steps', 'subs', 'pubs', 'locks',
                 'retained', 'cid_rewrites', 'free')


def norm(s):
    return re.sub(r'\s+', ' ', s).strip()


def load_cases(seq_dir):
    cases = []
    skipped = 0
    seen = {}
    for path in sorted(Path(seq_dir).glob('*.json')):
        with open(path, encoding='utf-8') as f:
            groups = json.load(f)
        for g in groups:
            if g.get('disable'):
                skipped += len(g.get('tests', []))
                continue
            for t in g['tests']:
                c = Case()
                c.file = path.name
                c.group = g['group']
                c.name = t['name']
                base = '%s:%s:%s' % (c.file, norm(c.group), norm(c.name))
                n = seen.get(base, 0) + 1
                seen[base] = n
                c.id = base if n == 1 else '%s [dup %d]' % (base, n)
                c.ver = t.get('ver', g.get('ver', 4))
                c.connect = t.get('connect', g.get('connect', True))
                c.expect_disconnect = t.get('expect_disconnect', g.get('expect_disconnect', True))
                c.steps = []
                for m in t['msgs']:
                    typ = m['type']
                    if typ in ('send', 'recv'):
                        c.steps.append((typ, parse_payload(m['payload']), m.get('comment', '')))
                    elif typ in ('external_publish', 'publish'):
                        c.steps.append(('ext', m, m.get('comment', '')))
                    else:
                        raise ValueError('%s: unknown message type %r' % (c.id, typ))
                c.index = len(cases)
                cases.append(c)
    return cases, skipped


def default_connect(ver, cid):
    cid = mqtt_str(cid)
    if ver == 3:
        var = mqtt_str('MQIsdp') + bytes([3, 0x02]) + (60).to_bytes(2, 'big')
    elif ver == 5:
        var = mqtt_str('MQTT') + bytes([5, 0x02]) + (60).to_bytes(2, 'big') + b'\x00'
    else:
        var = mqtt_str('MQTT') + bytes([4, 0x02]) + (60).to_bytes(2, 'big')
    return make_packet(0x10, var + cid)


def analyse(c):
    """Work out which topics the case subscribes to / publishes on, which
    client ids it uses, and which raw client ids can be rewritten."""
    subs, pubs, locks, retained = [], [], set(), []
    rewrites = []       # (step index, offset in step, length, orig id)
    stream = bytearray()
    owners = []         # per byte of stream: (step index, offset)
    if c.connect:
        stream += default_connect(c.ver, 'x')
        owners += [(None, 0)] * len(stream)
    for si, (typ, data, _) in enumerate(c.steps):
        if typ == 'send':
            stream += data
            owners += [(si, k) for k in range(len(data))]
        elif typ == 'ext':
            pubs.append(data['topic'].encode('utf-8'))
    level = c.ver
    distinct = {}
    for off, pkt in split_packets(bytes(stream))[0]:
        t = pkt[0] >> 4
        if t == 1:
            d = parse_connect(pkt)
            if d is None:
                continue
            level = d['level']
            if d['cid'] is not None and owners[off][0] is not None:
                cid = d['cid']
                si, k = owners[off]
                # the id must lie within one send step to be patched
                same_step = (owners[off + d['cid_off'] + len(cid) - 1][0] == si) if cid else True
                if (cid and all(ch in ALNUM.encode() for ch in cid) and same_step
                        and len(cid) <= 23
                        and (cid in distinct or not distinct or (len(cid) > 1 and len(distinct) < 26))):
                    distinct.setdefault(cid, len(distinct))
                    rewrites.append((si, k + d['cid_off'], len(cid), distinct[cid]))
                elif cid:
                    locks.add(b'cid:' + cid)
            if d['flags'] & 0x04:
                pubs.append(d['will_topic'] if d['will_topic'] is not None else ANY)
        elif t == 3:
            d = parse_publish(pkt, level == 5)
            if d is None or not d['topic']:
                pubs.append(ANY)
                continue
            pubs.append(d['topic'])
            if pkt[0] & 1 and valid_topic_name(d['topic']) and d['topic'] not in retained:
                retained.append(d['topic'])
        elif t == 8:
            fl = parse_subscribe_filters(pkt, level == 5)
            if fl is None:
                subs.append(ANY)
            else:
                subs.extend(fl)
    c.subs, c.pubs, c.locks, c.retained, c.cid_rewrites = subs, pubs, locks, retained, rewrites
    c.free = not subs and not pubs and not locks


def conflicts(a, b):
    if a.locks & b.locks:
        return True
    for s in a.subs:
        for p in b.pubs:
            if filter_matches(s, p):
                return True
    for s in b.subs:
        for p in a.pubs:
            if filter_matches(s, p):
                return True
    return False


# --------------------------------------------------------------------------
# connection


class Conn:
    def __init__(self, host, port, timeout):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = None          # None while open, else reason string
        self.send_error = None

    def send(self, data):
        if self.eof is not None or self.send_error is not None:
            return False
        try:
            self.sock.sendall(data)
            return True
        except OSError as e:
            self.send_error = e.strerror or str(e)
            return False

    def _fill(self, deadline):
        if self.eof is not None:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, ConnectionAbortedError):
            self.eof = 'connection reset'
            return False
        except OSError as e:
            self.eof = 'socket error: %s' % (e.strerror or e)
            return False
        if not chunk:
            self.eof = 'connection closed'
            return False
        self.buf += chunk
        return True

    def read_packet(self, timeout):
        """-> ('pkt', bytes) | ('closed', partial) | ('timeout', partial) |
        ('bad', bytes) for an invalid remaining length."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                r = dec_varint(self.buf, 1)
                if r is None and len(self.buf) >= 5:
                    bad = bytes(self.buf)
                    self.buf.clear()
                    return 'bad', bad
                if r is not None and len(self.buf) >= r[1] + r[0]:
                    n = r[1] + r[0]
                    pkt = bytes(self.buf[:n])
                    del self.buf[:n]
                    return 'pkt', pkt
            if not self._fill(deadline):
                partial = bytes(self.buf)
                self.buf.clear()
                if self.eof is not None:
                    return 'closed', partial
                return 'timeout', partial

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def describe(kind, data, conn):
    if kind == 'closed':
        s = conn.eof or 'connection closed'
        if data:
            s += ' after partial packet %s' % hexs(data)
        if conn.send_error:
            s += ' (an earlier send failed: %s)' % conn.send_error
        return s
    if kind == 'timeout':
        return 'nothing' + (' but partial %s' % hexs(data) if data else '') + ' within the timeout'
    if kind == 'bad':
        return 'invalid remaining length: %s' % hexs(data)
    return hexs(data)


# --------------------------------------------------------------------------
# comparison


class CaseFailed(Exception):
    pass


class State:
    def __init__(self, opts, case):
        self.opts = opts
        self.case = case
        self.level = case.ver
        self.connack_ok = False
        self.ids = {}           # expected server packet id -> actual
        self.notes = []
        self.notice_seen = False

    def tr(self, pid):
        """Translate an expected server-chosen packet id (swap semantics)."""
        if pid in self.ids:
            return self.ids[pid]
        for e, a in self.ids.items():
            if a == pid and pid not in self.ids:
                return e
        return pid

    def v5(self):
        return self.level == 5


def strip_diag(props):
    return [p for p in props if p[0] not in DIAG_PROPS]


def norm_ack(pkt, v5):
    """PUBACK..PUBCOMP / DISCONNECT (v5) -> comparable tuple, or None."""
    t = pkt[0] >> 4
    body = body_of(pkt)
    if t == 14:
        rc = body[0] if len(body) >= 1 else 0
        rest = 1
        pid = None
    else:
        if len(body) < 2:
            return None
        pid = int.from_bytes(body[0:2], 'big')
        rc = body[2] if len(body) >= 3 else 0
        rest = 3
    props = []
    if len(body) > rest:
        r = parse_props(body, rest)
        if r is None or r[1] != len(body):
            return None
        props = r[0]
    return (pkt[0], pid, rc, tuple(sorted(strip_diag(props))))


def compare(exp, act, st):
    """Return None if act matches exp, else a message."""
    et = exp[0] >> 4
    v5 = st.v5()
    if et == 6 and len(exp) >= 4 and exp[1] < 0x80:
        # PUBREL of a server flow: R3 id translation
        pid = int.from_bytes(exp[2:4], 'big')
        tp = st.tr(pid)
        if tp != pid:
            exp = bytes(exp[:2]) + tp.to_bytes(2, 'big') + bytes(exp[4:])
    if exp == act:
        if et == 2 and len(act) >= 4 and act[3] == 0:
            st.connack_ok = True
        if et == 3:
            d = parse_publish(exp, v5)
            if d and d['pid'] is not None:
                if st.ids.get(d['pid'], d['pid']) != d['pid']:
                    return 'expected %s, got %s (packet id %d expected, as mapped earlier)' % (
                        hexs(exp), hexs(act), st.ids[d['pid']])
                st.ids.setdefault(d['pid'], d['pid'])
        return None
    mismatch = 'expected %s, got %s' % (hexs(exp), hexs(act))
    if act[0] != exp[0]:
        return mismatch
    eb = body_of(exp)
    ab = body_of(act)
    if et == 2:                                    # CONNACK
        if len(eb) >= 3 and len(ab) >= 2:         # R1: MQTT 5 CONNACK
            if eb[0] == ab[0] and eb[1] == ab[1]:
                if len(ab) >= 3 and parse_props(ab, 2) is None:
                    return mismatch + ' (malformed CONNACK properties)'
                if ab[1] == 0:
                    st.connack_ok = True
                st.notes.append('R1 CONNACK properties not compared')
                return None
        return mismatch
    if et == 3:                                    # PUBLISH from the broker
        de = parse_publish(exp, v5)
        da = parse_publish(act, v5)
        if de is None or da is None:
            return mismatch
        if de['topic'] != da['topic'] or de['payload'] != da['payload']:
            return mismatch
        if de['props'] is not None:
            if canon_props(de['props']) != canon_props(da['props']):
                return mismatch + ' (properties %s vs %s)' % (props_hex(de['props']), props_hex(da['props']))
            if de['props'] != da['props']:
                st.notes.append('R6 PUBLISH property order differs')
        if de['pid'] is not None:
            want = st.ids.get(de['pid'])
            if want is not None and want != da['pid']:
                return mismatch + ' (packet id %d expected, as mapped earlier)' % want
            if want is None:
                if da['pid'] == 0:
                    return mismatch + ' (packet id 0)'
                st.ids[de['pid']] = da['pid']
                if da['pid'] != de['pid']:
                    st.notes.append('R3 server packet id %d used for expected %d' % (da['pid'], de['pid']))
        return None
    if et in (4, 5, 6, 7) or et == 14:
        if not v5:
            return mismatch
        ne, na = norm_ack(exp, True), norm_ack(act, True)
        if ne is not None and ne == na:
            st.notes.append('R4/R5 equivalent MQTT 5 ack encoding')
            return None
        if ne is not None and na is not None and et in (4, 5) and ne[2] in (0x00, 0x10) \
                and na[2] in (0x00, 0x10) and ne[:2] == na[:2] and ne[3] == na[3]:
            st.notes.append('R12 PUBACK/PUBREC 0x%02x instead of 0x%02x' % (na[2], ne[2]))
            return None
        return mismatch
    if et in (9, 11) and v5:                       # SUBACK / UNSUBACK
        if len(eb) < 2 or len(ab) < 2 or eb[0:2] != ab[0:2]:
            return mismatch
        re_, ra = parse_props(eb, 2), parse_props(ab, 2)
        if re_ is None or ra is None:
            return mismatch
        if sorted(strip_diag(re_[0])) == sorted(strip_diag(ra[0])) and eb[re_[1]:] == ab[ra[1]:]:
            st.notes.append('R5 diagnostic properties in SUBACK/UNSUBACK ignored')
            return None
        return mismatch
    return mismatch


def stream_of(pkt):
    return 'pub' if (pkt[0] >> 4) in (3, 6) else 'resp'


def notice_eligible(case, exp):
    """R2: is this expected packet an optional error notice before close?"""
    if not case.expect_disconnect or len(exp) < 3:
        return False
    t = exp[0] >> 4
    b = body_of(exp)
    if t == 14 and exp[0] == 0xE0 and len(b) >= 1 and b[0] >= 0x80:
        return True
    if t == 2 and len(b) >= 3 and b[1] >= 0x80:
        return True
    return False


# --------------------------------------------------------------------------
# running one case


class Runner:
    def __init__(self, opts, host, port):
        self.opts = opts
        self.host = host
        self.port = port
        self.tag = ''.join(random.choice(ALNUM) for _ in range(6))
        self.helper_seq = 0
        self.helper_lock = threading.Lock()

    def connect(self):
        return Conn(self.host, self.port, self.opts.recv_timeout)

    def helper_id(self):
        with self.helper_lock:
            self.helper_seq += 1
            return 'ch%s%05d' % (self.tag, self.helper_seq)

    def slot_id(self, slot, k, length):
        # R8: same length, unique among concurrently running cases
        # (slot picks the first character; k, the k-th distinct id of the
        # case, the second: analyse() only allows k > 0 for length >= 2)
        if k == 0:
            return (ALNUM[slot] + 'z' * (length - 1)).encode()
        return (ALNUM[slot] + ALNUM[(k - 1) % 25] + 'z' * (length - 2)).encode()

    def helper(self, what, packets_and_replies):
        """Run a small 3.1.1 helper client conversation.  Raises CaseFailed."""
        cid = self.helper_id()
        try:
            conn = self.connect()
        except OSError as e:
            raise CaseFailed('%s: cannot connect: %s' % (what, e))
        try:
            conn.send(make_packet(0x10, mqtt_str('MQTT') + bytes([4, 0x02]) + (60).to_bytes(2, 'big') + mqtt_str(cid)))
            for send, expect in [(None, b'\x20\x02\x00\x00')] + packets_and_replies:
                if send is not None:
                    conn.send(send)
                if expect is not None:
                    kind, data = conn.read_packet(self.opts.recv_timeout)
                    if kind != 'pkt' or data != expect:
                        raise CaseFailed('%s: expected %s, got %s' % (what, hexs(expect), describe(kind, data, conn)))
            conn.send(b'\xe0\x00')
        finally:
            conn.close()

    def external_publish(self, m):
        topic = m['topic'].encode('utf-8')
        payload = m.get('payload', '')
        payload = payload.encode('utf-8') if isinstance(payload, str) else bytes(payload)
        qos = int(m.get('qos', 0))
        retain = 1 if m.get('retain') else 0
        if qos == 0:
            conv = [(make_packet(0x30 | retain, mqtt_str(topic) + payload), None)]
        else:
            conv = [(make_packet(0x30 | (qos << 1) | retain, mqtt_str(topic) + b'\x00\x01' + payload),
                     b'\x40\x02\x00\x01' if qos == 1 else b'\x50\x02\x00\x01')]
            if qos == 2:
                conv.append((b'\x62\x02\x00\x01', b'\x70\x02\x00\x01'))
        self.helper('external_publish helper', conv)

    def clear_retained(self, topic):
        self.helper('retained-message cleanup', [(make_packet(0x31, mqtt_str(topic)), None)])

    def run_case(self, c, slot):
        st = State(self.opts, c)
        try:
            conn = self.connect()
        except OSError as e:
            return False, 'cannot connect to broker: %s' % e, st.notes
        try:
            self._run_steps(c, st, conn, slot)
            ok, detail = True, None
        except CaseFailed as e:
            ok, detail = False, str(e)
        finally:
            conn.close()
        try:
            for t in c.retained:
                self.clear_retained(t)
        except CaseFailed as e:
            if ok:
                ok, detail = False, str(e)
        return ok, detail, st.notes

    def _run_steps(self, c, st, conn, slot):
        o = self.opts
        if c.connect:
            cid = 'cf%s%05d' % (self.tag, c.index)
            conn.send(default_connect(c.ver, cid))
            kind, data = conn.read_packet(o.recv_timeout)
            exp = b'\x20\x03\x00\x00\x00' if c.ver == 5 else b'\x20\x02\x00\x00'
            if kind != 'pkt':
                raise CaseFailed('default CONNECT: expected CONNACK %s, got %s' % (hexs(exp), describe(kind, data, conn)))
            why = compare(exp, data, st)
            if why:
                raise CaseFailed('default CONNECT: ' + why)
            st.notes = [n for n in st.notes if not n.startswith('R1')]

        rewrites = {}
        for si, off, ln, k in c.cid_rewrites:
            rewrites.setdefault(si, []).append((off, self.slot_id(slot, k, ln)))

        last_recv = max((i for i, s in enumerate(c.steps) if s[0] == 'recv'), default=-1)
        i = 0
        n = len(c.steps)
        while i < n:
            typ, data, comment = c.steps[i]
            if typ == 'send':
                conn.send(self._prepare_send(si=i, data=data, st=st, rewrites=rewrites))
                i += 1
            elif typ == 'ext':
                self.external_publish(data)
                i += 1
            else:
                j = i
                while j < n and c.steps[j][0] == 'recv':
                    j += 1
                run = [(k, c.steps[k][1], c.steps[k][2]) for k in range(i, j)]
                notice = None
                if run[-1][0] == last_recv and notice_eligible(c, run[-1][1]):
                    notice = run.pop()
                self._recv_run(conn, st, run)
                if notice is not None:
                    self._notice(conn, st, notice)
                i = j

        if c.expect_disconnect:
            self._expect_closed(conn, st)
        else:
            self._expect_open(conn, st)

    def _prepare_send(self, si, data, st, rewrites):
        if si in rewrites:
            data = bytearray(data)
            for off, new in rewrites[si]:
                data[off:off + len(new)] = new
            data = bytes(data)
        pkts, _ = split_packets(data)
        for off, pkt in pkts:
            t = pkt[0] >> 4
            if t == 1:
                d = parse_connect(pkt)
                if d is not None:
                    st.level = d['level']
            elif t in (4, 5, 7) and st.ids and len(pkt) >= 4:
                # R3: acks for the server's PUBLISH flows use the server's ids
                hl = dec_varint(pkt, 1)[1]
                if len(pkt) >= hl + 2:
                    pid = int.from_bytes(pkt[hl:hl + 2], 'big')
                    tp = st.tr(pid)
                    if tp != pid:
                        data = bytearray(data)
                        data[off + hl:off + hl + 2] = tp.to_bytes(2, 'big')
                        data = bytes(data)
        return data

    def _recv_run(self, conn, st, run):
        pending = list(run)
        while pending:
            kind, data = conn.read_packet(self.opts.recv_timeout)
            if kind != 'pkt':
                k, exp, comment = pending[0]
                raise CaseFailed('step %d recv%s: expected %s, got %s' % (
                    k + 1, ' (%s)' % comment if comment else '', hexs(exp), describe(kind, data, conn)))
            target = next((p for p in pending if stream_of(p[1]) == stream_of(data)), pending[0])
            k, exp, comment = target
            why = compare(exp, data, st)
            if why:
                raise CaseFailed('step %d recv%s: %s' % (k + 1, ' (%s)' % comment if comment else '', why))
            if target is not pending[0]:
                st.notes.append('R7 step %d arrived before step %d' % (k + 1, pending[0][0] + 1))
            pending.remove(target)

    def _notice(self, conn, st, notice):
        """R2: optional CONNACK/DISCONNECT >= 0x80 before the close."""
        k, exp, comment = notice
        kind, data = conn.read_packet(self.opts.close_timeout)
        label = 'step %d recv%s' % (k + 1, ' (%s)' % comment if comment else '')
        if kind == 'closed' and not data:
            st.notes.append('R2 plain close instead of %s' % hexs(exp))
            return
        if kind != 'pkt':
            raise CaseFailed('%s: expected %s or a close, got %s' % (label, hexs(exp), describe(kind, data, conn)))
        et = exp[0] >> 4
        eb, ab = body_of(exp), body_of(data)
        if data[0] == exp[0]:
            erc = eb[0] if et == 14 else eb[1]
            arc = None
            if et == 14:
                arc = ab[0] if len(ab) >= 1 else 0
                ok_shape = norm_ack(data, True) is not None
            else:
                arc = ab[1] if len(ab) >= 2 else None
                ok_shape = len(ab) >= 3 and parse_props(ab, 2) is not None
            if arc is not None and arc >= 0x80 and ok_shape:
                if arc != erc:
                    if self.opts.strict_reason_codes:
                        raise CaseFailed('%s: expected %s, got %s (reason code 0x%02x instead of 0x%02x)' % (
                            label, hexs(exp), hexs(data), arc, erc))
                    st.notes.append('R2 reason code 0x%02x instead of 0x%02x' % (arc, erc))
                elif data != exp:
                    st.notes.append('R2/R5 notice encoding differs')
                st.notice_seen = True
                return
        if et == 2 and eb[1] == 0x84 and data == b'\x20\x02\x00\x01':
            st.notes.append('R2 3.1.1-style CONNACK 0x01 for unsupported protocol version')
            return
        raise CaseFailed('%s: expected %s (or a plain close), got %s' % (label, hexs(exp), hexs(data)))

    def _expect_closed(self, conn, st):
        seen_notice = st.notice_seen
        while True:
            kind, data = conn.read_packet(self.opts.close_timeout)
            if kind == 'closed':
                if data:
                    raise CaseFailed('expected the broker to close the connection, got partial packet %s then close' % hexs(data))
                return
            if kind == 'timeout':
                raise CaseFailed('expected the broker to close the connection, still open after %.1fs%s' % (
                    self.opts.close_timeout, (' (partial %s)' % hexs(data)) if data else ''))
            if kind == 'bad':
                raise CaseFailed('expected close, got invalid data %s' % hexs(data))
            if (data[0] == 0xE0 and st.v5() and st.connack_ok and not seen_notice):
                n = norm_ack(data, True)
                if n is not None and n[2] >= 0x80:
                    st.notes.append('R2 DISCONNECT 0x%02x before close' % n[2])
                    seen_notice = True
                    continue
            raise CaseFailed('expected the broker to close the connection, got %s' % hexs(data))

    def _expect_open(self, conn, st):
        if conn.eof is not None:
            raise CaseFailed('expected the connection to stay open, but: %s' % conn.eof)
        conn.send(b'\xc0\x00')
        kind, data = conn.read_packet(self.opts.recv_timeout)
        if kind == 'pkt' and data == b'\xd0\x00':
            conn.send(b'\xe0\x00')      # R10: no Will message leaks
            return
        if kind == 'pkt':
            raise CaseFailed('connection check: sent PINGREQ, expected d0 00, got %s' % hexs(data))
        raise CaseFailed('connection check: sent PINGREQ, expected d0 00, got %s' % describe(kind, data, conn))


# --------------------------------------------------------------------------
# scheduling


class Scheduler:
    def __init__(self, cases):
        self.pending = list(cases)
        self.running = []
        self.cv = threading.Condition()
        self.stopped = False

    def take(self):
        with self.cv:
            while True:
                if self.stopped or not self.pending:
                    return None
                for k, c in enumerate(self.pending):
                    if c.free or not any(conflicts(c, r) for r in self.running):
                        del self.pending[k]
                        self.running.append(c)
                        return c
                self.cv.wait()

    def done(self, c):
        with self.cv:
            self.running.remove(c)
            self.cv.notify_all()

    def stop(self):
        with self.cv:
            self.stopped = True
            self.cv.notify_all()


def run_all(runner, cases, jobs):
    sched = Scheduler(cases)
    results = {}
    lock = threading.Lock()

    def worker(slot):
        while True:
            c = sched.take()
            if c is None:
                return
            try:
                t0 = time.monotonic()
                ok, detail, notes = runner.run_case(c, slot)
                dt = time.monotonic() - t0
            except Exception as e:   # runner bug: report, keep going
                ok, detail, notes, dt = False, 'runner error: %r' % e, [], 0.0
            with lock:
                results[c.id] = (ok, detail, notes, dt)
            sched.done(c)

    threads = [threading.Thread(target=worker, args=(s,), daemon=True) for s in range(jobs)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except BaseException:
        sched.stop()
        raise
    return results


# --------------------------------------------------------------------------
# broker process


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _die_with_parent():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)       # PR_SET_PDEATHSIG
    except Exception:
        pass


class Broker:
    def __init__(self, argv_template, mosquitto_bin=None, keep=False):
        self.port = free_port()
        self.data_dir = tempfile.mkdtemp(prefix='conformance-broker-')
        self.keep = keep
        if mosquitto_bin:
            conf = os.path.join(self.data_dir, 'mosquitto.conf')
            with open(conf, 'w') as f:
                f.write('listener %d 127.0.0.1\nallow_anonymous true\n' % self.port)
            argv_template = [mosquitto_bin, '-c', '{data_dir}/mosquitto.conf']
        self.argv = [a.replace('{port}', str(self.port)).replace('{data_dir}', self.data_dir)
                     for a in argv_template]
        self.log_path = os.path.join(self.data_dir, 'broker.log')
        self.proc = None
        self.died = None

    def start(self, timeout=15.0):
        self.log = open(self.log_path, 'wb')
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('broker exited with code %s before accepting connections\n%s' % (
                    self.proc.returncode, self.log_tail()))
            try:
                s = socket.create_connection(('127.0.0.1', self.port), timeout=0.5)
                s.close()
                return
            except OSError:
                time.sleep(0.02)      # poll interval
        raise RuntimeError('broker did not accept connections on 127.0.0.1:%d within %.0fs\n%s' % (
            self.port, timeout, self.log_tail()))

    def log_tail(self, n=30):
        try:
            with open(self.log_path, 'rb') as f:
                lines = f.read().decode('utf-8', 'replace').splitlines()
            return '\n'.join('  broker: ' + l for l in lines[-n:])
        except OSError:
            return ''

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGTERM)
                except OSError:
                    self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    except OSError:
                        self.proc.kill()
                    self.proc.wait(5)
            self.log.close()
        if not self.keep:
            shutil.rmtree(self.data_dir, ignore_errors=True)


# --------------------------------------------------------------------------
# known failures


def read_known(path):
    known = {}
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.rstrip('\n')
            if not line.strip() or line.lstrip().startswith('#'):
                continue
            parts = re.split(r'(?:\t| {2,})#', line, maxsplit=1)
            cid = parts[0].strip()
            known[cid] = parts[1].strip() if len(parts) > 1 else ''
    return known


def categorise(detail):
    """Automatic reason for --write-known-failures (edit it by hand)."""
    d = detail or ''
    if 'default CONNECT' in d:
        return 'default CONNECT not accepted'
    if 'still open after' in d or ('or a close, got nothing' in d):
        return 'does not close the connection'
    m = re.search(r'or a plain close\), got (\w\w)', d) or \
        re.search(r'expected the broker to close the connection, got (\w\w)', d)
    if m:
        return 'sends %s instead of closing' % packet_name(int(m.group(1), 16))
    if 'expected the connection to stay open' in d or ('connection check' in d and 'close' in d):
        return 'closes a connection that must stay open'
    if 'connection check' in d:
        return 'unexpected packet instead of PINGRESP'
    m = re.search(r'expected (\w\w)', d)
    if m and ('connection closed' in d or 'connection reset' in d):
        return 'closes instead of sending %s' % packet_name(int(m.group(1), 16))
    if m and 'nothing' in d:
        return 'no %s within the timeout' % packet_name(int(m.group(1), 16))
    if m:
        return 'wrong %s' % packet_name(int(m.group(1), 16))
    return 'other'


def packet_name(first):
    names = {1: 'CONNECT', 2: 'CONNACK', 3: 'PUBLISH', 4: 'PUBACK', 5: 'PUBREC', 6: 'PUBREL',
             7: 'PUBCOMP', 8: 'SUBSCRIBE', 9: 'SUBACK', 10: 'UNSUBSCRIBE', 11: 'UNSUBACK',
             12: 'PINGREQ', 13: 'PINGRESP', 14: 'DISCONNECT', 15: 'AUTH'}
    return names.get(first >> 4, 'packet %02x' % first)


def write_known(path, cases, results, old):
    lines = ['# Known conformance failures (ids: FILE:GROUP:NAME), one per line,',
             '# followed by two spaces and "# reason".  Generated by',
             '# run_sequences.py --write-known-failures; keep the reasons up to date.']
    for c in cases:
        r = results.get(c.id)
        if r and not r[0]:
            reason = old.get(c.id) or categorise(r[1])
            lines.append('%s  # %s' % (c.id, reason))
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')


# --------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument('--broker-cmd', help='broker command; {port} and {data_dir} are substituted')
    g.add_argument('--mosquitto', nargs='?', const='/usr/sbin/mosquitto', metavar='BIN',
                   help='run Mosquitto with a generated config (default /usr/sbin/mosquitto)')
    g.add_argument('--host', help='use an already running broker at HOST (with --port)')
    ap.add_argument('--port', type=int, default=1883)
    ap.add_argument('--sequences', default=str(DEFAULT_SEQUENCES), help='data directory (default: %(default)s)')
    ap.add_argument('--known-failures', help='list of case ids expected to fail')
    ap.add_argument('--write-known-failures', metavar='FILE', help='write the current failures to FILE')
    ap.add_argument('--filter', help='only run cases whose id matches this regex (re.search)')
    ap.add_argument('--jobs', type=int, default=16)
    ap.add_argument('--recv-timeout', type=float, default=2.0)
    ap.add_argument('--close-timeout', type=float, default=2.0)
    ap.add_argument('--strict-reason-codes', action='store_true',
                    help='a DISCONNECT/CONNACK notice with another reason code >= 0x80 fails (see R2)')
    ap.add_argument('--keep-data-dir', action='store_true', help='keep the broker data dir and log')
    ap.add_argument('--list', action='store_true', help='list the case ids and exit')
    ap.add_argument('--verbose', '-v', action='store_true')
    opts = ap.parse_args(argv)
    opts.jobs = max(1, min(opts.jobs, len(ALNUM)))

    seq = Path(opts.sequences)
    if not seq.is_dir():
        print('conformance: sequence data not found at %s' % seq, file=sys.stderr)
        return 2
    cases, skipped = load_cases(seq)
    all_ids = {c.id for c in cases}
    filtered_out = 0
    if opts.filter:
        rx = re.compile(opts.filter)
        sel = [c for c in cases if rx.search(c.id)]
        filtered_out = len(cases) - len(sel)
        cases = sel
    if opts.list:
        for c in cases:
            print(c.id)
        return 0
    for c in cases:
        analyse(c)

    known = read_known(opts.known_failures) if opts.known_failures else {}

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)

    broker = None
    t0 = time.monotonic()
    try:
        if opts.host:
            host, port = opts.host, opts.port
        else:
            argv_t = shlex.split(opts.broker_cmd) if opts.broker_cmd else None
            broker = Broker(argv_t, mosquitto_bin=opts.mosquitto, keep=opts.keep_data_dir)
            try:
                broker.start()
            except (RuntimeError, OSError) as e:
                print('conformance: cannot start broker %s: %s' % (' '.join(broker.argv), e), file=sys.stderr)
                return 2
            host, port = '127.0.0.1', broker.port
            if opts.verbose:
                print('broker: %s (pid %d)' % (' '.join(broker.argv), broker.proc.pid))
        runner = Runner(opts, host, port)
        results = run_all(runner, cases, opts.jobs)
        # the broker must have survived all of it
        broker_problem = None
        if broker is not None and not broker.alive():
            broker_problem = 'broker exited during the run with code %s\n%s' % (
                broker.proc.returncode, broker.log_tail())
        else:
            try:
                conn = Conn(host, port, opts.recv_timeout)
                conn.send(default_connect(4, 'cfend' + runner.tag))
                ok1 = conn.read_packet(opts.recv_timeout) == ('pkt', b'\x20\x02\x00\x00')
                conn.send(b'\xc0\x00')
                ok2 = conn.read_packet(opts.recv_timeout) == ('pkt', b'\xd0\x00')
                conn.send(b'\xe0\x00')
                conn.close()
                if not (ok1 and ok2):
                    broker_problem = 'broker does not answer CONNECT/PINGREQ after the run'
            except OSError as e:
                broker_problem = 'broker not reachable after the run: %s' % e
    except KeyboardInterrupt:
        print('conformance: interrupted', file=sys.stderr)
        return 130
    finally:
        if broker is not None:
            broker.stop()
            if opts.keep_data_dir:
                print('broker data dir and log kept in %s' % broker.data_dir)
    elapsed = time.monotonic() - t0

    passed = failed = known_failed = unexpected = with_notes = 0
    unexpected_pass = []
    for c in cases:
        ok, detail, notes, dt = results[c.id]
        if ok:
            passed += 1
            if notes:
                with_notes += 1
                if opts.verbose:
                    print('pass  %s  [%s]' % (c.id, '; '.join(sorted(set(notes)))))
            if c.id in known:
                unexpected_pass.append(c.id)
        else:
            failed += 1
            if c.id in known:
                known_failed += 1
                print('FAIL (known) %s: %s' % (c.id, detail))
            else:
                unexpected += 1
                print('FAIL %s: %s' % (c.id, detail))
    for cid in unexpected_pass:
        print('UNEXPECTEDLY PASSING %s -- remove it from the list (%s)' % (cid, opts.known_failures))
    stale = [k for k in known if k not in all_ids]
    for k in stale:
        print('UNKNOWN ID in %s: %s -- no such case in the data' % (opts.known_failures, k))
    if broker_problem:
        print('BROKER: %s' % broker_problem)
    if opts.write_known_failures:
        write_known(opts.write_known_failures, cases, results, known)
        print('wrote %d failures to %s' % (failed, opts.write_known_failures))

    print('conformance: %d passed, %d failed' % (passed, failed))
    print('known failures: %d listed and failed, %d unexpected failures, %d unexpectedly passing, '
          '%d unknown ids; %d skipped (disabled), %d filtered out; %d passed using a tolerance; %.1fs' % (
              known_failed, unexpected, len(unexpected_pass), len(stale), skipped, filtered_out,
              with_notes, elapsed))
    ok = unexpected == 0 and not unexpected_pass and not stale and not broker_problem
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
