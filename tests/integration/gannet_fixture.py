"""Test fixture for Gannet's integration tests.

Starts the real broker binary on a free loopback port and gives the tests real
clients to drive it with:

* ``Broker``         -- one broker process (gannet, or Mosquitto with
                        BROKER=mosquitto), its temp data dir, port, stderr log,
                        kill -9 / restart on the same data dir, RSS, /metrics.
* ``BrokerTestCase`` -- unittest base class: starts a broker per test, stops
                        every broker and client in cleanup (also on failure),
                        appends the broker's stderr to the report of a failed
                        test, and fails a test whose broker crashed.
* ``PahoClient``     -- paho-mqtt 1.6 client (3.1, 3.1.1, 5) with thread-safe
                        message collection and ``wait_for``.
* ``RawClient``      -- a plain TCP socket with minimal MQTT packet builders
                        and a parser, for exact bytes and hostile input.
* ``MosquittoSub`` / ``mosquitto_pub`` -- the mosquitto command line clients.

Environment:
  GANNET_BIN        path of the gannet binary (set by CTest). Without it, the
                    fixture looks for <repo>/build/cmd/gannet/gannet.
  BROKER=mosquitto  run the same tests against /usr/sbin/mosquitto instead.
  MOSQUITTO_STRICT=1  in mosquitto mode, do not mark known Mosquitto deviations
                    from the spec as expected failures (see README.md).
  GANNET_TEST_TIMEOUT_SCALE  multiply every timeout (slow or sanitizer builds).
  GANNET_TEST_KEEP_TMP=1     keep temp dirs (data dir, broker log).

No fixed sleeps: everything polls for a condition with a deadline.
"""

import atexit
import itertools
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

__all__ = [
    "BROKER_KIND", "MOSQUITTO", "Broker", "BrokerTestCase", "PahoClient",
    "RawClient", "MosquittoSub", "mosquitto_pub", "wait_for", "gannet_only",
    "mosquitto_deviation", "Properties", "PacketTypes", "SubscribeOptions",
    "ConnectionClosed", "Packet", "P", "T", "unique", "scaled", "gannet_binary", "BrokerError",
    "sleep_until", "run_gannet",
]

BROKER_KIND = os.environ.get("BROKER", "gannet").strip().lower() or "gannet"
MOSQUITTO = BROKER_KIND == "mosquitto"
MOSQUITTO_STRICT = os.environ.get("MOSQUITTO_STRICT", "") not in ("", "0")
TIMEOUT_SCALE = float(os.environ.get("GANNET_TEST_TIMEOUT_SCALE", "1") or 1)
KEEP_TMP = os.environ.get("GANNET_TEST_KEEP_TMP", "") not in ("", "0")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
MOSQUITTO_BIN = os.environ.get("MOSQUITTO_BIN", "/usr/sbin/mosquitto")
HOST = "127.0.0.1"

if BROKER_KIND not in ("gannet", "mosquitto"):
    raise SystemExit(f"BROKER must be 'gannet' or 'mosquitto', not {BROKER_KIND!r}")


def scaled(seconds):
    """A timeout, scaled by GANNET_TEST_TIMEOUT_SCALE."""
    return seconds * TIMEOUT_SCALE


def unique(prefix="t"):
    """A unique name for a topic or client id, so tests never see each other."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_for(predicate, timeout=5.0, interval=0.01, message=None):
    """Poll predicate() until it returns a truthy value; return that value.

    Raises AssertionError after `timeout` seconds (scaled)."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", "condition")
            raise AssertionError(f"timed out after {scaled(timeout):.1f}s waiting for {what}")
        time.sleep(interval)


def sleep_until(deadline):
    """Wait until time.monotonic() reaches `deadline`. Only for tests where time
    itself is the condition: a keep-alive, will delay or expiry interval must
    (not) have passed, or a client keeps a rhythm. Everything else polls."""
    while time.monotonic() < deadline:
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def gannet_only(reason):
    """Skip a test (or class) in mosquitto mode only; it always runs against gannet."""
    return unittest.skipIf(MOSQUITTO, f"gannet-only: {reason}")


def mosquitto_deviation(reason):
    """The test asserts what the MQTT spec (or Gannet's contract) requires and
    Mosquitto 2.0.11 is known to do otherwise. In mosquitto mode the test still
    runs and is marked as an expected failure (an unexpected pass is reported),
    unless MOSQUITTO_STRICT=1. Against gannet it is an ordinary test."""
    def decorate(fn):
        fn.mosquitto_deviation = reason
        if MOSQUITTO and not MOSQUITTO_STRICT:
            return unittest.expectedFailure(fn)
        return fn
    return decorate


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# Broker process
# --------------------------------------------------------------------------

_LISTENER_RE = re.compile(r"mqtt listener on ([0-9.]+):(\d+)")
_METRICS_RE = re.compile(r"metrics listener on ([0-9.]+):(\d+)")
_LIVE_BROKERS = set()

# gannet flag -> Mosquitto config option. Flags not listed have no Mosquitto
# equivalent; tests that depend on them are marked gannet_only.
_MOSQUITTO_OPTIONS = {
    "sys_interval": "sys_interval",
    "max_keepalive": "max_keepalive",
    "max_packet_size": "max_packet_size",
    "max_queued_messages": "max_queued_messages",
    "max_inflight_messages": "max_inflight_messages",
}
_MOSQUITTO_LISTENER_OPTIONS = {"topic_alias_maximum": "max_topic_alias"}
_MOSQUITTO_IGNORED = {"connect_timeout", "receive_maximum", "max_connection_buffer_bytes",
                      "workers", "log_level"}


class BrokerError(AssertionError):
    pass


def gannet_binary():
    """$GANNET_BIN, else <repo>/build/cmd/gannet/gannet; BrokerError if missing."""
    binary = os.environ.get("GANNET_BIN") or os.path.join(REPO_ROOT, "build", "cmd", "gannet", "gannet")
    if not os.path.exists(binary):
        raise BrokerError(f"gannet binary not found at {binary!r}: set GANNET_BIN (ctest does) "
                          "or run with BROKER=mosquitto")
    return binary


def run_gannet(args, timeout=10.0):
    """Run gannet with `args` (and a throwaway --data_dir) to completion, for
    start errors; returns (exit code, stderr + stdout)."""
    with tempfile.TemporaryDirectory(prefix="gannet-run-") as tmp:
        cmd = [gannet_binary(), f"--data_dir={tmp}/data"] + list(args)
        try:
            cp = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                errors="replace", timeout=scaled(timeout), cwd=tmp)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"{' '.join(cmd)} still running after {timeout}s "
                                 f"(stderr: {e.stderr!r})") from None
        return cp.returncode, cp.stderr + cp.stdout


class Broker:
    """One broker process on 127.0.0.1.

    flags: gannet flags without the leading dashes, e.g. {"sys_interval": 1}.
    In mosquitto mode they are translated into a generated mosquitto.conf.
    """

    def __init__(self, flags=None, metrics=False, kind=BROKER_KIND, data_dir=None,
                 log_sink=None, mosquitto_persistence=False, stop_signal=signal.SIGTERM):
        self.kind = kind
        # What terminate() sends by default (a cluster node drains on SIGTERM;
        # the cluster tests stop theirs with SIGINT unless a test drains).
        self.stop_signal = stop_signal
        self.flags = dict(flags or {})
        self.metrics = metrics
        self.tmp = tempfile.mkdtemp(prefix=f"{kind}-it-")
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.log_path = os.path.join(self.tmp, "broker.log")
        self.mosquitto_persistence = mosquitto_persistence
        self.port = None
        self.metrics_port = None
        self.proc = None
        self.log_sink = log_sink
        self.starts = 0
        self._expected_exit = False
        self.last_returncode = None

    # ---- lifecycle ---------------------------------------------------------

    def command(self, port=0):
        if self.kind == "mosquitto":
            return [MOSQUITTO_BIN, "-c", self._write_mosquitto_conf(port)]
        cmd = [gannet_binary(), f"--mqtt_listen={HOST}:{port}", f"--data_dir={self.data_dir}",
               "--workers=2", "--log_level=info"]
        if self.metrics:
            cmd.append(f"--metrics_listen={HOST}:0")
        for key, value in self.flags.items():
            if key in ("workers", "log_level"):
                cmd = [c for c in cmd if not c.startswith(f"--{key}=")]
            cmd.append(f"--{key}={value}")
        return cmd

    def _write_mosquitto_conf(self, port):
        lines = [f"listener {port} {HOST}"]
        for key, value in self.flags.items():
            if key in _MOSQUITTO_LISTENER_OPTIONS:
                lines.append(f"{_MOSQUITTO_LISTENER_OPTIONS[key]} {value}")
        lines += ["allow_anonymous true", "log_dest stderr", "log_type all",
                  "connection_messages true", "log_timestamp true"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to user mosquitto, who cannot write our temp dir
        if self.mosquitto_persistence:
            lines += ["persistence true", f"persistence_location {self.data_dir}/",
                      "autosave_interval 1"]
        else:
            lines.append("persistence false")
        if "sys_interval" not in self.flags:
            lines.append("sys_interval 5")  # gannet's default
        for key, value in self.flags.items():
            if key in _MOSQUITTO_OPTIONS:
                lines.append(f"{_MOSQUITTO_OPTIONS[key]} {value}")
            elif key in _MOSQUITTO_LISTENER_OPTIONS or key in _MOSQUITTO_IGNORED:
                pass
            else:
                raise BrokerError(f"no Mosquitto equivalent for flag --{key}; mark the test gannet_only")
        path = os.path.join(self.tmp, "mosquitto.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def _spawn(self, cmd):
        with open(self.log_path, "ab") as log:
            log.write(f"=== start #{self.starts + 1}: {' '.join(cmd)}\n".encode())
            log.flush()
            # Where this start's output begins (before the process can write).
            self._log_offset = log.tell()
            # setpriv: the broker gets SIGKILL if the test process dies, so a
            # crashed or timed-out test run never leaves a broker behind.
            prefix = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []
            self.proc = subprocess.Popen(prefix + cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.tmp)
        self.starts += 1
        self._expected_exit = False
        _LIVE_BROKERS.add(self)

    def start(self, port=0, timeout=15.0):
        """Start the broker and wait until it answers an MQTT CONNECT."""
        if self.kind == "mosquitto":
            self._start_mosquitto(port, timeout)
        else:
            self._start_gannet(port, timeout)
        self.wait_ready(timeout)
        return self

    def _start_gannet(self, port, timeout):
        self._spawn(self.command(port))
        m = self.wait_log(_LISTENER_RE, timeout, what="'mqtt listener on HOST:PORT' in gannet's stderr")
        self.port = int(m.group(2))
        if self.metrics:
            m = self.wait_log(_METRICS_RE, timeout, what="'metrics listener on HOST:PORT' in gannet's stderr")
            self.metrics_port = int(m.group(2))

    def _start_mosquitto(self, port, timeout):
        attempts = 1 if port else 5
        for attempt in range(attempts):
            chosen = port or _free_port()
            self._spawn(self.command(chosen))
            try:
                # Logged once every listener is open (a failed bind exits before it).
                self.wait_log(re.compile(r"mosquitto version \S+ running"), timeout,
                              what="mosquitto's 'running' line")
                self.port = chosen
                return
            except BrokerError:
                if attempt == attempts - 1 or "Address already in use" not in self.log_text():
                    raise

    def wait_log(self, regex, timeout=10.0, what=None):
        """Poll the broker's log (from the current start on) for regex; return the match."""
        deadline = time.monotonic() + scaled(timeout)
        while True:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                text = f.read().decode("utf-8", "replace")
            m = regex.search(text)
            if m:
                return m
            if self.proc.poll() is not None:
                self._expected_exit = True
                raise BrokerError(f"{self.kind} exited with code {self.proc.returncode} before "
                                  f"{what or regex.pattern}; log:\n{self.log_tail()}")
            if time.monotonic() >= deadline:
                raise BrokerError(f"timed out waiting for {what or regex.pattern}; log:\n{self.log_tail()}")
            time.sleep(0.01)

    def probe_client(self):
        """The raw client wait_ready() connects with (subclasses reach the broker
        elsewhere), and how to name the broker in errors."""
        return RawClient(self.port, version=4, timeout=1.0), f"{self.kind} on port {self.port}"

    def wait_ready(self, timeout=15.0):
        """Poll until a raw MQTT 3.1.1 CONNECT gets a CONNACK."""
        deadline = time.monotonic() + scaled(timeout)
        last, where = None, f"{self.kind} on port {self.port}"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._expected_exit = True
                raise BrokerError(f"{where} exited with code {self.proc.returncode}; log:\n{self.log_tail()}")
            try:
                client, where = self.probe_client()
                with client as c:
                    # Any CONNACK will do: a broker that requires a user name
                    # refuses this anonymous one, and is ready all the same.
                    ack = c.connect(unique("ready"), clean=True, keepalive=10, expect_rc=None)
                    if ack.rc == 0:
                        c.disconnect()
                return
            except (OSError, ConnectionClosed, AssertionError) as e:
                last = e
                time.sleep(0.02)
        raise BrokerError(f"{where} not ready after {timeout}s ({last!r}); "
                          f"log:\n{self.log_tail()}")

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    def check_alive(self):
        """Raise if the broker process has died (crashed) while we did not stop it."""
        if self.proc is not None and self.proc.poll() is not None and not self._expected_exit:
            self._expected_exit = True
            raise BrokerError(f"{self.kind} died unexpectedly with code {self.proc.returncode}; "
                              f"log:\n{self.log_tail()}")

    def terminate(self, timeout=10.0, sig=None):
        """SIGTERM (or `sig`, or the broker's stop_signal) and wait; returns the
        exit code (SIGKILL after timeout, then raises)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self._expected_exit = True
        self.proc.send_signal(sig or self.stop_signal)
        try:
            rc = self.proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise BrokerError(f"{self.kind} did not exit within {timeout}s of SIGTERM; killed")
        finally:
            _LIVE_BROKERS.discard(self)
        self.last_returncode = rc
        return rc

    def wait_exit(self, timeout=10.0):
        """Wait for the broker to exit by itself (a drained node); its exit code."""
        self._expected_exit = True
        try:
            rc = self.proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            raise BrokerError(f"{self.kind} still running after {timeout}s") from None
        _LIVE_BROKERS.discard(self)
        self.last_returncode = rc
        return rc

    def kill9(self):
        """kill -9 the broker (for persistence tests); the data dir stays."""
        if self.proc is not None and self.proc.poll() is None:
            self._expected_exit = True
            self.proc.kill()
            self.proc.wait()
        _LIVE_BROKERS.discard(self)

    def restart(self, same_port=True, timeout=15.0):
        """Start again on the same data dir (after kill9() or terminate()).

        Tries the previous port first so clients can reconnect to it; falls back
        to a new port. Read broker.port afterwards either way."""
        if self.is_running():
            raise BrokerError("restart() while the broker is still running")
        old = self.port
        if same_port and old:
            try:
                return self.start(port=old, timeout=timeout)
            except BrokerError:
                if self.is_running():
                    self.kill9()
        return self.start(port=0, timeout=timeout)

    def stop(self):
        """Stop for good (cleanup). Raises if the broker had crashed or hangs."""
        crashed = None
        if self.proc is not None and self.proc.poll() is not None and not self._expected_exit:
            crashed = self.proc.returncode
        rc = None
        try:
            if crashed is None:
                rc = self.terminate()
        finally:
            _LIVE_BROKERS.discard(self)
            if self.log_sink is not None:
                self.log_sink.append(f"\n--- {self.kind} log ({self.log_path}) ---\n{self.log_tail(300)}")
            if not KEEP_TMP:
                shutil.rmtree(self.tmp, ignore_errors=True)
        if crashed is not None:
            raise BrokerError(f"{self.kind} died during the test with exit code {crashed}")
        if rc is not None and rc < 0 and rc not in (-signal.SIGTERM, -signal.SIGKILL):
            raise BrokerError(f"{self.kind} crashed on SIGTERM: killed by signal {-rc}")

    # ---- observation -------------------------------------------------------

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=60):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def rss_bytes(self):
        """Resident set size of the broker process (from /proc)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise BrokerError("no VmRSS in /proc status")

    def metrics_text(self, timeout=5.0):
        if self.metrics_port is None:
            raise BrokerError("broker started without metrics=True")
        url = f"http://{HOST}:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=scaled(timeout)) as r:
            return r.read().decode("utf-8", "replace")

    def metric(self, name, **labels):
        """Sum of the samples of metric `name` whose labels include `labels`
        (so a labelled family without `labels`, e.g. gannet_sessions, sums all
        its series); None if the metric is absent. A histogram's series are
        NAME_bucket{le=...}, NAME_sum and NAME_count."""
        return parse_metric(self.metrics_text(), name, **labels)


_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metric(text, name, **labels):
    total, found = 0.0, False
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m or m.group(1) != name:
            continue
        got = dict(_LABEL_RE.findall(m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(4))
            found = True
    return total if found else None


def _kill_leftovers():
    for b in list(_LIVE_BROKERS):
        try:
            b.kill9()
        except Exception:
            pass


atexit.register(_kill_leftovers)


# --------------------------------------------------------------------------
# Raw MQTT packets
# --------------------------------------------------------------------------

class T:
    """Control packet types."""
    CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
    SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP = 8, 9, 10, 11, 12, 13
    DISCONNECT, AUTH = 14, 15
    NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
             7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
             12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}


class P:
    """MQTT 5 property identifiers."""
    PAYLOAD_FORMAT_INDICATOR = 0x01
    MESSAGE_EXPIRY_INTERVAL = 0x02
    CONTENT_TYPE = 0x03
    RESPONSE_TOPIC = 0x08
    CORRELATION_DATA = 0x09
    SUBSCRIPTION_IDENTIFIER = 0x0B
    SESSION_EXPIRY_INTERVAL = 0x11
    ASSIGNED_CLIENT_IDENTIFIER = 0x12
    SERVER_KEEP_ALIVE = 0x13
    AUTHENTICATION_METHOD = 0x15
    AUTHENTICATION_DATA = 0x16
    REQUEST_PROBLEM_INFORMATION = 0x17
    WILL_DELAY_INTERVAL = 0x18
    REQUEST_RESPONSE_INFORMATION = 0x19
    RESPONSE_INFORMATION = 0x1A
    SERVER_REFERENCE = 0x1C
    REASON_STRING = 0x1F
    RECEIVE_MAXIMUM = 0x21
    TOPIC_ALIAS_MAXIMUM = 0x22
    TOPIC_ALIAS = 0x23
    MAXIMUM_QOS = 0x24
    RETAIN_AVAILABLE = 0x25
    USER_PROPERTY = 0x26
    MAXIMUM_PACKET_SIZE = 0x27
    WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
    SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
    SHARED_SUBSCRIPTION_AVAILABLE = 0x2A

    # id -> encoding: byte, u16, u32, varint, str, bin, pair
    TYPES = {0x01: "byte", 0x02: "u32", 0x03: "str", 0x08: "str", 0x09: "bin", 0x0B: "varint",
             0x11: "u32", 0x12: "str", 0x13: "u16", 0x15: "str", 0x16: "bin", 0x17: "byte",
             0x18: "u32", 0x19: "byte", 0x1A: "str", 0x1C: "str", 0x1F: "str", 0x21: "u16",
             0x22: "u16", 0x23: "u16", 0x24: "byte", 0x25: "byte", 0x26: "pair", 0x27: "u32",
             0x28: "byte", 0x29: "byte", 0x2A: "byte"}
    MULTI = (0x26, 0x0B)  # may appear more than once


def encode_varint(n):
    if n < 0:
        raise ValueError(n)
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        if n:
            byte |= 0x80
        out.append(byte)
        if not n:
            return bytes(out)


def encode_str(s):
    """UTF-8 string with 2-byte length. bytes are sent as they are (for invalid UTF-8)."""
    b = s if isinstance(s, (bytes, bytearray)) else s.encode("utf-8")
    return struct.pack("!H", len(b)) + bytes(b)


encode_bin = encode_str


def encode_props(props):
    """props: None, dict {id: value} or list of (id, value); USER_PROPERTY value is a
    (name, value) pair, or a list of pairs in the dict form; SUBSCRIPTION_IDENTIFIER
    may be a list in the dict form."""
    if props is None:
        return b"\x00"
    items = props.items() if isinstance(props, dict) else props
    flat = []
    for pid, value in items:
        if pid in P.MULTI and isinstance(value, list):
            flat += [(pid, v) for v in value]
        else:
            flat.append((pid, value))
    body = bytearray()
    for pid, value in flat:
        kind = P.TYPES[pid]
        body += encode_varint(pid)
        if kind == "byte":
            body.append(value)
        elif kind == "u16":
            body += struct.pack("!H", value)
        elif kind == "u32":
            body += struct.pack("!I", value)
        elif kind == "varint":
            body += encode_varint(value)
        elif kind in ("str", "bin"):
            body += encode_str(value)
        elif kind == "pair":
            body += encode_str(value[0]) + encode_str(value[1])
    return encode_varint(len(body)) + bytes(body)


def fixed_header(ptype, flags, body_len):
    return bytes([(ptype << 4) | flags]) + encode_varint(body_len)


def packet(ptype, flags, body):
    return fixed_header(ptype, flags, len(body)) + bytes(body)


def build_connect(client_id, version=4, clean=True, keepalive=60, will=None, username=None,
                  password=None, props=None):
    """CONNECT for version 3 (MQIsdp), 4 (3.1.1) or 5.

    will: dict(topic=, payload=, qos=0, retain=False, props=None (v5))."""
    name = b"MQIsdp" if version == 3 else b"MQTT"
    flags = 0
    if clean:
        flags |= 0x02
    if will:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
    if password is not None:
        flags |= 0x40
    if username is not None:
        flags |= 0x80
    body = encode_str(name) + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        body += encode_props(props)
    body += encode_str(client_id)
    if will:
        if version == 5:
            body += encode_props(will.get("props"))
        payload = will.get("payload", b"")
        body += encode_str(will["topic"]) + encode_bin(payload if isinstance(payload, bytes) else payload.encode())
    if username is not None:
        body += encode_str(username)
    if password is not None:
        body += encode_bin(password if isinstance(password, bytes) else password.encode())
    return packet(T.CONNECT, 0, body)


def build_publish(topic, payload=b"", qos=0, retain=False, dup=False, pid=None, props=None, version=4):
    flags = (qos << 1) | (0x01 if retain else 0) | (0x08 if dup else 0)
    body = encode_str(topic)
    if qos > 0:
        body += struct.pack("!H", pid if pid is not None else 1)
    if version == 5:
        body += encode_props(props)
    body += payload if isinstance(payload, (bytes, bytearray)) else payload.encode()
    return packet(T.PUBLISH, flags, body)


def sub_options(qos=0, no_local=False, retain_as_published=False, retain_handling=0):
    return qos | (0x04 if no_local else 0) | (0x08 if retain_as_published else 0) | (retain_handling << 4)


def build_subscribe(pid, filters, props=None, version=4):
    """filters: list of (filter, options byte) -- see sub_options() -- or (filter, qos)."""
    body = struct.pack("!H", pid)
    if version == 5:
        body += encode_props(props)
    for flt, opts in filters:
        body += encode_str(flt) + bytes([opts])
    return packet(T.SUBSCRIBE, 0x02, body)


def build_unsubscribe(pid, filters, props=None, version=4):
    body = struct.pack("!H", pid)
    if version == 5:
        body += encode_props(props)
    for flt in filters:
        body += encode_str(flt)
    return packet(T.UNSUBSCRIBE, 0x02, body)


def build_ack(ptype, pid, rc=None, props=None, version=4):
    """PUBACK / PUBREC / PUBREL / PUBCOMP."""
    body = struct.pack("!H", pid)
    if version == 5 and (rc is not None or props is not None):
        body += bytes([rc or 0])
        if props is not None:
            body += encode_props(props)
    return packet(ptype, 0x02 if ptype == T.PUBREL else 0, body)


def build_pingreq():
    return b"\xc0\x00"


def build_disconnect(rc=None, props=None, version=4):
    body = b""
    if version == 5 and (rc is not None or props is not None):
        body = bytes([rc or 0]) + (encode_props(props) if props is not None else b"")
    return packet(T.DISCONNECT, 0, body)


class ConnectionClosed(Exception):
    """The broker closed the connection (EOF or reset)."""


class Packet:
    """A parsed packet from the broker. Fields present depend on the type:
    CONNACK: session_present, rc, props; PUBLISH: topic (str, or bytes if not
    UTF-8), payload, qos, retain, dup, pid, props; PUBACK..PUBCOMP, UNSUBACK:
    pid, rc (rcs), props; SUBACK: pid, rcs, props; DISCONNECT/AUTH: rc, props.
    props is a dict id -> value; USER_PROPERTY and SUBSCRIPTION_IDENTIFIER are
    lists."""

    def __init__(self, ptype, flags, body):
        self.type, self.flags, self.body = ptype, flags, bytes(body)
        self.props = {}

    @property
    def name(self):
        return T.NAMES.get(self.type, f"type{self.type}")

    def __repr__(self):
        fields = {k: v for k, v in self.__dict__.items() if k not in ("type", "flags", "body")}
        if "payload" in fields and len(fields["payload"]) > 64:
            fields["payload"] = fields["payload"][:64] + b"..."
        return f"<{self.name} flags={self.flags:#x} {fields}>"


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def remaining(self):
        return len(self.data) - self.pos

    def u8(self):
        v = self.data[self.pos]
        self.pos += 1
        return v

    def u16(self):
        v = struct.unpack_from("!H", self.data, self.pos)[0]
        self.pos += 2
        return v

    def u32(self):
        v = struct.unpack_from("!I", self.data, self.pos)[0]
        self.pos += 4
        return v

    def varint(self):
        mult, value = 1, 0
        for _ in range(4):
            b = self.u8()
            value += (b & 0x7F) * mult
            if not b & 0x80:
                return value
            mult *= 128
        raise ValueError("malformed variable byte integer from broker")

    def raw(self, n):
        if n > self.remaining():
            raise ValueError("field runs past the end of the packet")
        v = self.data[self.pos:self.pos + n]
        self.pos += n
        return bytes(v)

    def binary(self):
        return self.raw(self.u16())

    def string(self):
        b = self.binary()
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return b

    def props(self):
        end = self.varint()
        end += self.pos
        out = {}
        while self.pos < end:
            pid = self.varint()
            kind = P.TYPES.get(pid)
            if kind is None:
                raise ValueError(f"unknown property id {pid:#x} from broker")
            v = {"byte": self.u8, "u16": self.u16, "u32": self.u32, "varint": self.varint,
                 "str": self.string, "bin": self.binary,
                 "pair": lambda: (self.string(), self.string())}[kind]()
            if pid in P.MULTI:
                out.setdefault(pid, []).append(v)
            elif pid in out:
                raise ValueError(f"property {pid:#x} repeated by broker")
            else:
                out[pid] = v
        return out


def parse_packet(ptype, flags, body, version):
    p = Packet(ptype, flags, body)
    r = _Reader(body)
    v5 = version == 5
    if ptype == T.CONNACK:
        p.session_present = bool(r.u8() & 0x01)
        p.rc = r.u8()
        if v5 and r.remaining():
            p.props = r.props()
    elif ptype == T.PUBLISH:
        p.qos = (flags >> 1) & 0x03
        p.retain = bool(flags & 0x01)
        p.dup = bool(flags & 0x08)
        p.topic = r.string()
        p.pid = r.u16() if p.qos else None
        if v5:
            p.props = r.props()
        p.payload = r.raw(r.remaining())
    elif ptype in (T.PUBACK, T.PUBREC, T.PUBREL, T.PUBCOMP):
        p.pid = r.u16()
        p.rc = r.u8() if r.remaining() else 0
        if v5 and r.remaining():
            p.props = r.props()
    elif ptype in (T.SUBACK, T.UNSUBACK):
        p.pid = r.u16()
        if v5:
            p.props = r.props()
        p.rcs = list(r.raw(r.remaining()))
    elif ptype in (T.DISCONNECT, T.AUTH):
        p.rc = r.u8() if r.remaining() else 0
        if r.remaining():
            p.props = r.props()
    return p


class RawClient:
    """A plain TCP connection speaking MQTT byte by byte.

    recv_packet() parses one packet; ConnectionClosed on EOF/reset;
    AssertionError on timeout."""

    def __init__(self, port, version=4, timeout=5.0, host=HOST, rcvbuf=None):
        self.version = version
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(scaled(timeout))
        self.sock.connect((host, port))
        self.buf = bytearray()
        self.pending = []  # packets read while looking for another one; returned first
        self.closed_by_peer = False
        self._pid = itertools.count(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def next_pid(self):
        pid = next(self._pid) % 65536
        return pid or next(self._pid)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def shutdown(self):
        """Abnormal close: FIN without DISCONNECT."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("timed out waiting for data from the broker")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise AssertionError("timed out waiting for data from the broker") from None
        except (ConnectionResetError, BrokenPipeError) as e:
            self.closed_by_peer = True
            raise ConnectionClosed(f"connection reset ({e})") from None
        if not chunk:
            self.closed_by_peer = True
            raise ConnectionClosed("connection closed by the broker"
                                   + (f" with {len(self.buf)} unparsed bytes" if self.buf else ""))
        self.buf += chunk

    def recv_packet(self, timeout=None):
        if self.pending:
            return self.pending.pop(0)
        return self._read_packet(timeout)

    def _read_packet(self, timeout=None):
        deadline = time.monotonic() + scaled(timeout if timeout is not None else self.timeout)
        while True:
            if len(self.buf) >= 2:
                mult, length, i = 1, 0, 1
                complete = False
                while i < len(self.buf) and i <= 4:
                    b = self.buf[i]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        complete = True
                        break
                if complete and len(self.buf) >= i + length:
                    first = self.buf[0]
                    body = bytes(self.buf[i:i + length])
                    del self.buf[:i + length]
                    return parse_packet(first >> 4, first & 0x0F, body, self.version)
            self._fill(deadline)

    def expect(self, ptype, timeout=None):
        p = self.recv_packet(timeout)
        if p.type != ptype:
            raise AssertionError(f"expected {T.NAMES[ptype]}, got {p!r}")
        return p

    def expect_matching(self, ptype, pid=None, timeout=None):
        """Read until a packet of type ptype (with packet id pid) arrives; other
        packets read meanwhile are kept (in order) for recv_packet()."""
        skipped = []
        deadline = time.monotonic() + scaled(timeout if timeout is not None else self.timeout)
        try:
            for i, p in enumerate(self.pending):
                if p.type == ptype and (pid is None or getattr(p, "pid", None) == pid):
                    return self.pending.pop(i)
            while True:
                left = (deadline - time.monotonic()) / TIMEOUT_SCALE
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {T.NAMES[ptype]}; got {skipped!r}")
                p = self._read_packet(left)
                if p.type == ptype and (pid is None or getattr(p, "pid", None) == pid):
                    return p
                skipped.append(p)
        finally:
            self.pending.extend(skipped)

    def wait_closed(self, timeout=5.0):
        """Read until the broker closes the connection; return the packets read
        before that (including unread pending ones). AssertionError if it is
        still open after `timeout`."""
        packets, self.pending = self.pending, []
        deadline = time.monotonic() + scaled(timeout)
        while True:
            try:
                packets.append(self.recv_packet(max(0.0, deadline - time.monotonic()) / TIMEOUT_SCALE))
            except ConnectionClosed:
                return packets
            except AssertionError:
                raise AssertionError(f"connection still open after {timeout}s; got {packets!r}") from None

    def is_open(self, timeout=5.0):
        """PINGREQ -> PINGRESP round trip (other packets read meanwhile are kept)."""
        try:
            self.send(build_pingreq())
            self.expect_matching(T.PINGRESP, timeout=timeout)
            return True
        except (ConnectionClosed, OSError):
            return False

    # ---- conveniences --------------------------------------------------------

    def connect(self, client_id, clean=True, keepalive=60, will=None, props=None, username=None,
                password=None, expect_rc=0):
        self.send(build_connect(client_id, self.version, clean, keepalive, will, username, password, props))
        ack = self.expect(T.CONNACK)
        if expect_rc is not None and ack.rc != expect_rc:
            raise AssertionError(f"CONNACK rc {ack.rc:#x}, expected {expect_rc:#x}: {ack!r}")
        self.connack = ack
        return ack

    def subscribe(self, filters, qos=0, props=None, pid=None, **opts):
        """filters: a filter string (with qos / v5 options as kwargs) or a list of
        (filter, options byte). Returns the SUBACK."""
        if isinstance(filters, str):
            filters = [(filters, sub_options(qos, **opts))]
        pid = pid or self.next_pid()
        self.send(build_subscribe(pid, filters, props, self.version))
        ack = self.expect(T.SUBACK)
        if ack.pid != pid:
            raise AssertionError(f"SUBACK for packet id {ack.pid}, expected {pid}")
        return ack

    def unsubscribe(self, filters, props=None):
        pid = self.next_pid()
        self.send(build_unsubscribe(pid, [filters] if isinstance(filters, str) else filters, props,
                                    self.version))
        ack = self.expect(T.UNSUBACK)
        if ack.pid != pid:
            raise AssertionError(f"UNSUBACK for packet id {ack.pid}, expected {pid}")
        return ack

    def publish(self, topic, payload=b"", qos=0, retain=False, dup=False, pid=None, props=None,
                complete=True):
        """Send a PUBLISH; with complete=True run the QoS 1/2 handshake and
        return the PUBACK / PUBCOMP (PUBREC is in .last_pubrec)."""
        if qos and pid is None:
            pid = self.next_pid()
        self.send(build_publish(topic, payload, qos, retain, dup, pid, props, self.version))
        if not complete or qos == 0:
            return pid
        if qos == 1:
            ack = self.expect(T.PUBACK)
        else:
            self.last_pubrec = self.expect(T.PUBREC)
            if self.last_pubrec.pid != pid:
                raise AssertionError(f"PUBREC for {self.last_pubrec.pid}, expected {pid}")
            self.send(build_ack(T.PUBREL, pid, version=self.version))
            ack = self.expect(T.PUBCOMP)
        if ack.pid != pid:
            raise AssertionError(f"{ack.name} for packet id {ack.pid}, expected {pid}")
        return ack

    def ack(self, pub):
        """Acknowledge a received PUBLISH (PUBACK, or PUBREC/PUBREL/PUBCOMP for QoS 2)."""
        if pub.qos == 1:
            self.send(build_ack(T.PUBACK, pub.pid, version=self.version))
        elif pub.qos == 2:
            self.send(build_ack(T.PUBREC, pub.pid, version=self.version))
            self.expect_matching(T.PUBREL, pub.pid)
            self.send(build_ack(T.PUBCOMP, pub.pid, version=self.version))

    def disconnect(self, rc=None, props=None):
        try:
            self.send(build_disconnect(rc, props, self.version))
        except OSError:
            pass
        self.close()

    def ping(self, timeout=None):
        self.send(build_pingreq())
        return self.expect_matching(T.PINGRESP, timeout=timeout)


# --------------------------------------------------------------------------
# paho-mqtt clients
# --------------------------------------------------------------------------

class Message:
    """A message received by a PahoClient."""

    def __init__(self, m):
        self.topic = m.topic
        self.payload = m.payload
        self.qos = m.qos
        self.retain = bool(m.retain)
        self.dup = bool(m.dup)
        self.mid = m.mid
        self.properties = getattr(m, "properties", None)
        self.time = time.monotonic()

    def prop(self, name, default=None):
        """An MQTT 5 property by paho name, e.g. 'UserProperty', 'SubscriptionIdentifier'."""
        if self.properties is None:
            return default
        return getattr(self.properties, name, default)

    def __repr__(self):
        return f"<Message {self.topic!r} {self.payload[:40]!r} q{self.qos} r{int(self.retain)}>"


class ConnackInfo:
    def __init__(self, rc, session_present, properties):
        self.rc, self.session_present, self.properties = rc, session_present, properties

    def prop(self, name, default=None):
        return getattr(self.properties, name, default) if self.properties is not None else default


_PAHO_PROTOCOL = {3: mqtt.MQTTv31, 4: mqtt.MQTTv311, 5: mqtt.MQTTv5}


class PahoClient:
    """paho-mqtt client on a background loop thread, collecting messages.

    version: 3 (3.1), 4 (3.1.1) or 5. will: dict(topic, payload, qos, retain,
    props (paho Properties)). Auto-reconnect is off: a test sees every drop."""

    def __init__(self, port, client_id=None, version=4, clean=True, keepalive=60, will=None,
                 connect_props=None, host=HOST):
        self.port, self.host, self.version = port, host, version
        self.client_id = unique("paho") if client_id is None else client_id
        self.clean, self.keepalive, self.connect_props = clean, keepalive, connect_props
        self.lock = threading.Condition()
        self._messages = []
        self.connack = None
        self.disconnects = []  # (rc, properties) in order
        self._acks = {}
        if version == 5:
            self.client = mqtt.Client(self.client_id, protocol=mqtt.MQTTv5, reconnect_on_failure=False)
        else:
            self.client = mqtt.Client(self.client_id, clean_session=clean, protocol=_PAHO_PROTOCOL[version],
                                      reconnect_on_failure=False)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        if will:
            self.client.will_set(will["topic"], will.get("payload"), will.get("qos", 0),
                                 will.get("retain", False), properties=will.get("props"))
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = self._on_unsubscribe
        self._started = False

    # callbacks (paho's loop thread)
    def _on_connect(self, client, userdata, flags, rc, properties=None):
        rc_value = rc.value if hasattr(rc, "value") else rc
        with self.lock:
            self.connack = ConnackInfo(rc_value, bool(flags.get("session present")), properties)
            self.lock.notify_all()

    def _on_message(self, client, userdata, m):
        with self.lock:
            self._messages.append(Message(m))
            self.lock.notify_all()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        rc_value = rc.value if hasattr(rc, "value") else rc
        with self.lock:
            self.disconnects.append((rc_value, properties))
            self.lock.notify_all()

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        codes = [g.value if hasattr(g, "value") else g for g in granted]
        with self.lock:
            self._acks[mid] = codes
            self.lock.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, properties=None, reasons=None):
        codes = reasons if reasons is not None else []
        if not isinstance(codes, list):
            codes = [codes]
        codes = [c.value if hasattr(c, "value") else c for c in codes]
        with self.lock:
            self._acks[mid] = codes
            self.lock.notify_all()

    # ---- API -----------------------------------------------------------------

    def wait_for(self, predicate, timeout=5.0, message=None):
        """Wait until predicate(self) is truthy (under the lock); return its value."""
        deadline = time.monotonic() + scaled(timeout)
        with self.lock:
            while True:
                value = predicate(self)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.client_id}: timed out after {scaled(timeout):.1f}s "
                                         f"waiting for {message or 'condition'}; messages: "
                                         f"{self._messages[-10:]!r}")
                self.lock.wait(min(left, 0.05))

    def connect(self, timeout=5.0, expect_rc=0, clean_start=None):
        """Connect and wait for the CONNACK; returns ConnackInfo."""
        with self.lock:
            self.connack = None
        if self.version == 5:
            cs = self.clean if clean_start is None else clean_start
            self.client.connect(self.host, self.port, self.keepalive, clean_start=cs,
                                properties=self.connect_props)
        else:
            self.client.connect(self.host, self.port, self.keepalive)
        if not self._started:
            self.client.loop_start()
            self._started = True
        ack = self.wait_for(lambda s: s.connack, timeout, "CONNACK")
        if expect_rc is not None and ack.rc != expect_rc:
            raise AssertionError(f"{self.client_id}: CONNACK rc {ack.rc}, expected {expect_rc}")
        return ack

    def subscribe(self, topic, qos=0, options=None, properties=None, sub_id=None, timeout=5.0):
        """Subscribe and wait for the SUBACK; returns the list of granted codes."""
        if sub_id is not None:
            properties = properties or Properties(PacketTypes.SUBSCRIBE)
            properties.SubscriptionIdentifier = sub_id
        if self.version == 5:
            if isinstance(topic, list):
                rc, mid = self.client.subscribe(topic, properties=properties)
            else:
                rc, mid = self.client.subscribe(topic, options=options or SubscribeOptions(qos=qos),
                                                properties=properties)
        else:
            rc, mid = self.client.subscribe(topic, qos)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError(f"subscribe failed locally: {mqtt.error_string(rc)}")
        return self.wait_for(lambda s: s._acks.get(mid), timeout, f"SUBACK for {topic!r}")

    def unsubscribe(self, topic, timeout=5.0):
        rc, mid = self.client.unsubscribe(topic)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError(f"unsubscribe failed locally: {mqtt.error_string(rc)}")
        return self.wait_for(lambda s: mid in s._acks and (s._acks[mid] or True), timeout, "UNSUBACK")

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None, wait=True, timeout=5.0):
        """Publish; with wait=True wait until sent (QoS 0) or acknowledged (QoS 1/2)."""
        info = self.client.publish(topic, payload, qos, retain, properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError(f"publish failed locally: {mqtt.error_string(info.rc)}")
        if wait:
            deadline = time.monotonic() + scaled(timeout)
            while not info.is_published():
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.client_id}: publish to {topic!r} (QoS {qos}) "
                                         f"not acknowledged within {timeout}s")
                if self.disconnects:
                    raise AssertionError(f"{self.client_id}: disconnected while publishing: {self.disconnects}")
                time.sleep(0.005)
        return info

    def messages(self, topic=None):
        with self.lock:
            return [m for m in self._messages if topic is None or m.topic == topic]

    def clear(self):
        with self.lock:
            self._messages.clear()

    def wait_messages(self, count, topic=None, timeout=5.0):
        """Wait until at least `count` messages (on `topic`) arrived; return them all."""
        self.wait_for(lambda s: len([m for m in s._messages if topic is None or m.topic == topic]) >= count,
                      timeout, f"{count} message(s)" + (f" on {topic!r}" if topic else ""))
        return self.messages(topic)

    def wait_message(self, topic, payload=None, timeout=5.0):
        """Wait for a message on topic (with payload); return it."""
        def find(s):
            for m in s._messages:
                if m.topic == topic and (payload is None or m.payload == payload):
                    return m
            return None
        return self.wait_for(find, timeout, f"message on {topic!r}" + (f" {payload!r}" if payload else ""))

    def sync(self, publisher, topic, qos=1, timeout=5.0):
        """Barrier: `publisher` publishes a unique token to `topic` (which this
        client must be subscribed to) and we wait until it arrives here. Messages
        the same publisher sent earlier on that topic have arrived by then."""
        token = unique("sync").encode()
        publisher.publish(topic, token, qos)
        return self.wait_message(topic, token, timeout)

    def wait_disconnected(self, timeout=5.0):
        return self.wait_for(lambda s: s.disconnects and s.disconnects, timeout, "disconnect")

    def is_connected(self):
        return self.client.is_connected()

    def disconnect(self, reasoncode=None, properties=None, timeout=5.0):
        """Clean DISCONNECT; waits until paho reports the connection gone."""
        if self.client.is_connected():
            if reasoncode is not None and self.version == 5:
                from paho.mqtt.reasoncodes import ReasonCodes
                rc = ReasonCodes(PacketTypes.DISCONNECT, identifier=reasoncode)
                self.client.disconnect(rc, properties)
            else:
                self.client.disconnect(properties=properties) if self.version == 5 else self.client.disconnect()
            self.wait_disconnected(timeout)
        self.stop_loop()

    def drop(self, timeout=5.0):
        """Abnormal close: shut the TCP connection without DISCONNECT (the will fires)."""
        sock = self.client.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.wait_disconnected(timeout)
        self.stop_loop()

    def stop_loop(self):
        if self._started:
            self.client.loop_stop()
            self._started = False

    def close(self):
        """Cleanup: stop the loop thread and close the socket, whatever the state."""
        try:
            if self.client.is_connected():
                self.client.disconnect()
        except Exception:
            pass
        try:
            self.stop_loop()
        except Exception:
            pass
        sock = self.client.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


def v5_props(packet_type, **values):
    """paho Properties, e.g. v5_props(PacketTypes.PUBLISH, MessageExpiryInterval=5)."""
    p = Properties(packet_type)
    for k, v in values.items():
        setattr(p, k, v)
    return p


__all__.append("v5_props")


# --------------------------------------------------------------------------
# mosquitto_pub / mosquitto_sub
# --------------------------------------------------------------------------

def mosquitto_pub(port, topic, message, version="311", qos=0, retain=False, extra=(), timeout=10.0,
                  check=True):
    """Run mosquitto_pub to completion; returns the CompletedProcess."""
    cmd = ["mosquitto_pub", "-h", HOST, "-p", str(port), "-V", str(version), "-t", topic,
           "-q", str(qos), "-d"]
    if message is None:
        cmd.append("-n")
    else:
        cmd += ["-m", message]
    if retain:
        cmd.append("-r")
    cmd += list(extra)
    cp = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                        timeout=scaled(timeout))
    if check and cp.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {cp.returncode}: {cp.stdout}{cp.stderr}")
    return cp


_PUBLISH_DEBUG_RE = re.compile(r"received PUBLISH \(d(\d), q(\d), r(\d), m(\d+), '(.*)', \.\.\. \((\d+) bytes\)\)")


class MosquittoSub:
    """mosquitto_sub in the background (-v -d), its output read by a thread."""

    def __init__(self, port, topic, version="311", qos=0, extra=(), client_id=None):
        topics = [topic] if isinstance(topic, str) else list(topic)
        cmd = ["stdbuf", "-oL", "mosquitto_sub", "-h", HOST, "-p", str(port), "-V", str(version),
               "-q", str(qos), "-v", "-d"]
        for t in topics:
            cmd += ["-t", t]
        if client_id:
            cmd += ["-i", client_id]
        cmd += list(extra)
        self.cmd = cmd
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, errors="replace")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, predicate, timeout=5.0, message=None):
        deadline = time.monotonic() + scaled(timeout)
        with self.cond:
            while True:
                value = predicate(self.lines)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"mosquitto_sub: timed out waiting for {message}; output:\n"
                                         + "\n".join(self.lines[-30:]))
                self.cond.wait(min(left, 0.05))

    def wait_subscribed(self, timeout=5.0):
        return self.wait_for(lambda ls: any(l.startswith("Subscribed (mid") for l in ls), timeout, "SUBACK")

    def publishes(self):
        """Debug records of the PUBLISH packets received: dicts dup, qos, retain, mid, topic, size."""
        with self.cond:
            out = []
            for line in self.lines:
                m = _PUBLISH_DEBUG_RE.search(line)
                if m:
                    out.append({"dup": int(m.group(1)), "qos": int(m.group(2)), "retain": int(m.group(3)),
                                "mid": int(m.group(4)), "topic": m.group(5), "size": int(m.group(6))})
            return out

    def messages(self):
        """(topic, payload) of printed messages (-v format: 'topic payload')."""
        with self.cond:
            out = []
            for line in self.lines:
                if line.startswith("Client ") or line.startswith("Subscribed (mid") or not line:
                    continue
                topic, _, payload = line.partition(" ")
                out.append((topic, payload))
            return out

    def wait_messages(self, count, timeout=5.0):
        self.wait_for(lambda ls: len(self.messages_unlocked(ls)) >= count, timeout, f"{count} message(s)")
        return self.messages()

    @staticmethod
    def messages_unlocked(lines):
        return [l for l in lines if l and not l.startswith("Client ") and not l.startswith("Subscribed (mid")]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.thread.join(5)
        self.proc.stdout.close()
        return self.proc.returncode


# --------------------------------------------------------------------------
# unittest base class
# --------------------------------------------------------------------------

class BrokerTestCase(unittest.TestCase):
    """Starts a broker before each test (self.broker) with `broker_flags`;
    every broker and client made through the helpers is stopped in cleanup,
    also when the test fails. A failed test's report gets the broker logs."""

    broker_flags = {}
    broker_metrics = False
    start_broker_in_setup = True

    def setUp(self):
        self._broker_logs = []
        self.broker = None
        if self.start_broker_in_setup:
            self.broker = self.launch_broker(self.broker_flags, metrics=self.broker_metrics)

    def launch_broker(self, flags=None, metrics=False, **kw):
        b = Broker(flags, metrics=metrics, log_sink=self._broker_logs, **kw)
        self.addCleanup(b.stop)
        b.start()
        return b

    @property
    def port(self):
        return self.broker.port

    def assert_broker_alive(self, broker=None):
        (broker or self.broker).check_alive()

    def paho(self, client_id=None, version=4, connect=True, broker=None, **kw):
        c = PahoClient((broker or self.broker).port, client_id, version, **kw)
        self.addCleanup(c.close)
        if connect:
            c.connect()
        return c

    def raw(self, version=4, client_id=None, connect=True, broker=None, clean=True, keepalive=60,
            props=None, will=None, timeout=5.0, rcvbuf=None):
        c = RawClient((broker or self.broker).port, version, timeout, rcvbuf=rcvbuf)
        self.addCleanup(c.close)
        if connect:
            c.connect(client_id if client_id is not None else unique("raw"), clean, keepalive, will, props)
        return c

    def mosquitto_sub(self, topic, version="311", qos=0, extra=(), client_id=None, broker=None,
                      wait_subscribed=True):
        s = MosquittoSub((broker or self.broker).port, topic, version, qos, extra, client_id)
        self.addCleanup(s.stop)
        if wait_subscribed:
            s.wait_subscribed()
        return s

    def mosquitto_pub(self, topic, message, version="311", qos=0, retain=False, extra=(), broker=None,
                      check=True):
        return mosquitto_pub((broker or self.broker).port, topic, message, version, qos, retain, extra,
                             check=check)

    def run(self, result=None):
        if result is None:
            return super().run(result)
        n_fail, n_err = len(result.failures), len(result.errors)
        outcome = super().run(result)
        logs = "".join(getattr(self, "_broker_logs", []))
        if logs:
            for lst, start in ((result.failures, n_fail), (result.errors, n_err)):
                for i in range(start, len(lst)):
                    test, text = lst[i]
                    if test is self or getattr(test, "test_case", None) is self:
                        lst[i] = (test, text + logs)
        return outcome
