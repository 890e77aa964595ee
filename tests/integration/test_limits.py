"""Limits and overload protection (docs/security.md, "Limits"), with real
clients over real sockets: connection limits at accept (per node, per source
address, connect rate per address), the CONNECT timeout against slow-loris
clients, per-client limits (topic length and levels, subscriptions, publish
rate) with their exact reason codes in MQTT 5 and their 3.1.1 behaviour,
overload shedding, and every new flag's bad value (exit 2).

Loopback accepts the whole of 127/8, so a client bound to 127.0.0.2 is another
source address than one on 127.0.0.1. Waits poll for a condition; the only
fixed pauses are the slow-loris client's own gaps between bytes."""

import itertools
import os
import resource
import socket
import threading
import time
import unittest

from gannet_fixture import (HOST, BrokerTestCase, ConnectionClosed, RawClient, T, build_connect,
                            build_publish, gannet_only, scaled, unique, wait_for)
from test_cli import run_gannet

MiB = 1024 * 1024


class SourcedRawClient(RawClient):
    """A RawClient whose socket is bound to source address `source` first."""

    def __init__(self, port, source, version=4, timeout=5.0):
        self.version = version
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((source, 0))
        self.sock.settimeout(scaled(timeout))
        try:
            self.sock.connect((HOST, port))
        except OSError:
            self.sock.close()
            raise
        self.buf = bytearray()
        self.pending = []
        self.closed_by_peer = False
        self._pid = itertools.count(1)


def raise_fd_limit(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def try_mqtt_connect(port, source, version=4, timeout=3.0):
    """Connects from `source` and sends CONNECT. Returns (client, CONNACK) when
    answered, (None, None) when the broker closed the socket without a word
    (turned away at accept)."""
    try:
        c = SourcedRawClient(port, source, version, timeout)
    except OSError:
        return None, None
    try:
        c.send(build_connect(unique("lim"), version, True, 60))
        return c, c.expect(T.CONNACK)
    except (ConnectionClosed, OSError):
        c.close()
        return None, None


def can_connect(port, source):
    """Whether a CONNECT from `source` is answered with CONNACK 0 now."""
    c, ack = try_mqtt_connect(port, source)
    if c is not None:
        c.close()
    return ack is not None and ack.rc == 0


class LimitsTestCase(BrokerTestCase):
    broker_metrics = True

    def setUp(self):
        super().setUp()
        if self.broker is not None:
            # The fixture's readiness probe (from 127.0.0.1) has gone, and with
            # it its place in the connection limits.
            self.wait_metric("gannet_connections", lambda v: v == 0)

    def metric(self, name, **labels):
        v = self.broker.metric(name, **labels)
        self.assertIsNotNone(v, f"{name} {labels} missing from /metrics")
        return v

    def wait_metric(self, name, predicate, timeout=5.0, **labels):
        last = []

        def check():
            last[:] = [self.broker.metric(name, **labels)]
            return last[0] is not None and predicate(last[0])
        try:
            wait_for(check, timeout, interval=0.05)
        except AssertionError:
            raise AssertionError(f"{name}{labels} is {last[0] if last else None}") from None
        return last[0]

    def rejected(self, reason):
        return self.metric("gannet_connections_rejected_total", reason=reason)

    def refusals(self, limit):
        return self.metric("gannet_limit_refusals_total", limit=limit)

    def sourced(self, source, version=4, connect=True):
        c = SourcedRawClient(self.port, source, version)
        self.addCleanup(c.close)
        if connect:
            c.connect(unique("src"))
        return c

    def assert_round_trip(self, source, version=5):
        """A client from `source` connects, subscribes, publishes QoS 1 and gets
        its message back."""
        c = self.sourced(source, version)
        topic = unique("rt")
        c.subscribe(topic, qos=1)
        c.publish(topic, b"hello", qos=1)
        p = c.expect(T.PUBLISH)
        self.assertEqual((p.topic, p.payload), (topic, b"hello"))
        c.disconnect()


# --------------------------------------------------------------------------
# Connection limits at accept
# --------------------------------------------------------------------------

@gannet_only("gannet's connection limits")
class ConnectionFloodTest(LimitsTestCase):
    broker_flags = {"max_connections_per_ip": 100}

    def setUp(self):
        raise_fd_limit(8192)  # before the broker starts: it inherits it too
        super().setUp()

    def test_flood_from_one_address_is_capped_and_others_still_served(self):
        pid = self.broker.pid
        fds_before = open_fds(pid)
        rss_before = rss(pid)
        accepted_before = self.metric("gannet_connections_accepted_total")
        flood = []
        self.addCleanup(lambda: [s.close() for s in flood])
        n = 5000
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            flood.append(s)
            try:
                s.connect((HOST, self.port))
            except OSError:
                pass  # a full backlog: the kernel refused it; gannet never saw it
        # Every flood connection was accepted and judged.
        accepted = self.wait_metric("gannet_connections_accepted_total",
                                    lambda v: v >= accepted_before + n - 50, timeout=20)
        rejected = self.wait_metric("gannet_connections_rejected_total",
                                    lambda v: v >= accepted - accepted_before - 100, timeout=10,
                                    reason="max_connections_per_ip")
        self.assertEqual(rejected, accepted - accepted_before - 100)
        # At most 100 of them are held open by gannet.
        held = open_fds(pid) - fds_before
        self.assertLessEqual(held, 100 + 5, f"gannet holds {held} more fds")
        self.assertGreaterEqual(held, 100 - 5)
        # Another source address is served while the flood is open.
        self.assert_round_trip("127.0.0.2", version=5)
        self.assert_round_trip("127.0.0.2", version=4)
        # Memory stays bounded: nothing of the refused connections is kept.
        grown = rss(pid) - rss_before
        self.assertLess(grown, 64 * MiB, f"RSS grew by {grown} bytes")
        self.assertEqual(self.rejected("max_connections"), 0)
        # Closing the flood releases the address's slots: it may connect again.
        for s in flood:
            s.close()
        flood.clear()
        wait_for(lambda: can_connect(self.port, "127.0.0.1"), timeout=10,
                 message="127.0.0.1 may connect again once its connections closed")


@gannet_only("gannet's connection limits")
class ConnectRateTest(LimitsTestCase):
    broker_flags = {"max_connect_rate_per_ip": 5}

    def test_connect_rate_per_address(self):
        started = time.monotonic()
        answered = []
        for _ in range(30):
            c, ack = try_mqtt_connect(self.port, "127.0.0.3")
            if ack is not None:
                self.assertEqual(ack.rc, 0)
                answered.append(c)
                self.addCleanup(c.close)
        elapsed = time.monotonic() - started
        # The burst (5), plus 5 a second for the time the loop took.
        self.assertGreaterEqual(len(answered), 5)
        self.assertLessEqual(len(answered), 5 + int(elapsed * 5) + 1)
        self.wait_metric("gannet_connections_rejected_total",
                         lambda v: v == 30 - len(answered), reason="connect_rate")
        # Another address has its own bucket.
        self.assert_round_trip("127.0.0.4")
        # The bucket refills: the address connects again a moment later.
        wait_for(lambda: can_connect(self.port, "127.0.0.3"), timeout=5,
                 interval=0.1, message="127.0.0.3 connects again after its bucket refilled")


@gannet_only("gannet's connection limits")
class MaxConnectionsTest(LimitsTestCase):
    broker_flags = {"max_connections": 5}

    def test_total_connections_per_node(self):
        held = [self.sourced(f"127.0.1.{i}") for i in range(1, 6)]
        for i in range(3):
            self.assertFalse(can_connect(self.port, f"127.0.2.{i + 1}"),
                             "a sixth connection must be closed at accept")
        self.wait_metric("gannet_connections_rejected_total", lambda v: v == 3,
                         reason="max_connections")
        self.assertEqual(self.rejected("max_connections_per_ip"), 0)
        # The held ones keep working.
        for c in held:
            self.assertTrue(c.is_open())
        # One closes: its slot is free again.
        held[0].disconnect()
        wait_for(lambda: can_connect(self.port, "127.0.2.9"), timeout=5,
                 message="a connection is admitted once one closed")


# --------------------------------------------------------------------------
# Slow-loris: the CONNECT timeout
# --------------------------------------------------------------------------

class Dribbler:
    """Sends a CONNECT one byte every `gap` seconds on each of its sockets and
    records when the broker closed each one."""

    def __init__(self, port, count, gap=0.3, source="127.0.0.5"):
        self.gap = gap
        self.data = build_connect(unique("loris"), 4, True, 60) + b"\x00" * 64
        self.socks = []
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((source, 0))
            s.connect((HOST, port))
            s.setblocking(False)
            self.socks.append(s)
        self.opened = time.monotonic()
        self.closed_at = [None] * count
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _closed(self, s):
        try:
            return s.recv(1) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _run(self):
        i = 0
        while not self.stop.is_set() and None in self.closed_at:
            for k, s in enumerate(self.socks):
                if self.closed_at[k] is not None:
                    continue
                if self._closed(s):
                    self.closed_at[k] = time.monotonic() - self.opened
                    continue
                try:
                    s.send(self.data[i:i + 1])
                except OSError:
                    self.closed_at[k] = time.monotonic() - self.opened
            i = min(i + 1, len(self.data) - 1)
            self.stop.wait(self.gap)  # the attack's own pace

    def close(self):
        self.stop.set()
        self.thread.join(5)
        for s in self.socks:
            s.close()


@gannet_only("gannet's connect timeout metric")
class SlowLorisTest(LimitsTestCase):
    broker_flags = {"connect_timeout": 2}

    def test_dribbled_connect_is_cut_at_the_connect_timeout(self):
        d = Dribbler(self.port, 1)
        self.addCleanup(d.close)
        wait_for(lambda: d.closed_at[0] is not None, timeout=6, interval=0.05,
                 message="the slow-loris connection is still open")
        # 2 s, the 250 ms sweep, the dribbler's 300 ms pace.
        self.assertGreaterEqual(d.closed_at[0], 1.8)
        self.assertLessEqual(d.closed_at[0], 2 + 1.2)
        self.wait_metric("gannet_connections_rejected_total", lambda v: v >= 1,
                         reason="connect_timeout")
        self.assertEqual(self.rejected("connect_timeout"), 1, "counted once")

    def test_many_slow_clients_do_not_stop_a_normal_one(self):
        d = Dribbler(self.port, 50)
        self.addCleanup(d.close)
        # While they dribble, normal clients connect and get messages through.
        sub = self.paho(version=5)
        topic = unique("loris")
        sub.subscribe(topic, 1)
        pub = self.paho(version=4)
        for i in range(5):
            pub.publish(topic, f"m{i}".encode(), 1)
        sub.wait_messages(5, topic)
        self.assertTrue(None in d.closed_at or max(d.closed_at) > 1.5,
                        "the normal clients ran while the slow ones were open")
        wait_for(lambda: None not in d.closed_at, timeout=6, interval=0.05,
                 message="slow-loris connections still open")
        self.assertLessEqual(max(d.closed_at), 2 + 1.2)
        self.wait_metric("gannet_connections_rejected_total", lambda v: v >= 50,
                         reason="connect_timeout")
        self.assertEqual(self.rejected("connect_timeout"), 50)
        self.assertTrue(sub.is_connected() and pub.is_connected())


# --------------------------------------------------------------------------
# Per-client limits
# --------------------------------------------------------------------------

@gannet_only("gannet's per-client limits")
class TopicAndSubscriptionLimitsTest(LimitsTestCase):
    broker_flags = {"max_topic_length": 32, "max_topic_levels": 4,
                    "max_subscriptions_per_client": 3, "max_packet_size": 1024}

    LONG = "t/" + "x" * 31            # 33 bytes, 2 levels
    DEEP = "a/b/c/d/e"                # 5 levels

    def watcher(self):
        """A subscriber to everything, to see what got through."""
        w = self.raw(5)
        w.subscribe("#", qos=1)
        return w

    def test_publish_v5_topic_too_long_or_deep(self):
        w = self.watcher()
        c = self.raw(5)
        for topic, limit in ((self.LONG, "max_topic_length"), (self.DEEP, "max_topic_levels")):
            before = self.refusals(limit)
            ack = c.publish(topic, b"x", qos=1)
            self.assertEqual(ack.rc, 0x90, f"PUBACK for {topic!r}")
            pid = c.publish(topic, b"x", qos=2, complete=False)
            rec = c.expect(T.PUBREC)
            self.assertEqual((rec.pid, rec.rc), (pid, 0x90))
            c.publish(topic, b"x", qos=0)
            self.wait_metric("gannet_limit_refusals_total", lambda v: v == before + 3, limit=limit)
        # Within the limits: accepted and delivered (exactly 32 bytes, 4 levels).
        ok = "a/b/c/" + "y" * 26
        self.assertEqual(len(ok), 32)
        self.assertEqual(c.publish(ok, b"fine", qos=1).rc, 0)
        p = w.expect(T.PUBLISH)
        self.assertEqual((p.topic, p.payload), (ok, b"fine"))

    def test_publish_v311_topic_too_long_is_acknowledged_and_dropped(self):
        w = self.watcher()
        c = self.raw(4)
        ack = c.publish(self.LONG, b"x", qos=1)
        self.assertEqual(ack.type, T.PUBACK)
        c.publish(self.DEEP, b"x", qos=2)  # PUBREC, PUBREL, PUBCOMP
        c.publish("ok/topic", b"after", qos=1)
        p = w.expect(T.PUBLISH)
        self.assertEqual(p.topic, "ok/topic", "the refused ones were not delivered")
        self.assertTrue(c.is_open())

    def test_subscribe_filter_too_long_or_deep(self):
        c5 = self.raw(5)
        ack = c5.subscribe([(self.LONG, 1), ("a/+/c/d/#", 1), ("a/+/c/#", 1)])
        self.assertEqual(ack.rcs, [0x8F, 0x8F, 1])
        c4 = self.raw(4)
        ack = c4.subscribe([(self.LONG, 1), ("a/b/c/d/e", 0), ("a/b", 0)])
        self.assertEqual(ack.rcs, [0x80, 0x80, 0])
        # A shared subscription's levels are its filter's.
        ack = c5.subscribe([("$share/g/a/b/c/d", 0)])
        self.assertEqual(ack.rcs, [0])
        self.assertGreaterEqual(self.refusals("max_topic_length"), 2)
        self.assertGreaterEqual(self.refusals("max_topic_levels"), 2)

    def test_packet_over_max_packet_size_is_counted(self):
        # The existing limit (test_hostile checks its reason codes): counted too.
        for version, expected in ((5, [0x95]), (4, [])):
            c = self.raw(version)
            c.send(build_publish("big", b"z" * 2000, 0, version=version))
            packets = c.wait_closed()
            self.assertEqual([p.rc for p in packets if p.type == T.DISCONNECT], expected)
        self.wait_metric("gannet_limit_refusals_total", lambda v: v == 2, limit="max_packet_size")

    def test_subscriptions_per_client(self):
        c = self.raw(5)
        ack = c.subscribe([("s/1", 1), ("s/2", 1), ("s/3", 1), ("s/4", 1)])
        self.assertEqual(ack.rcs, [1, 1, 1, 0x97])
        # Subscribing again to one it has replaces it: not a new one.
        self.assertEqual(c.subscribe("s/2", qos=0).rcs, [0])
        self.assertEqual(c.subscribe("s/5", qos=0).rcs, [0x97])
        c.unsubscribe("s/1")
        self.assertEqual(c.subscribe("s/5", qos=0).rcs, [0])
        c4 = self.raw(4)
        ack = c4.subscribe([("s/1", 1), ("s/2", 1), ("s/3", 1), ("s/4", 1)])
        self.assertEqual(ack.rcs, [1, 1, 1, 0x80])
        self.assertEqual(self.refusals("max_subscriptions_per_client"), 3)


@gannet_only("gannet's per-client limits")
class PublishRateTest(LimitsTestCase):
    broker_flags = {"max_publish_rate": 5}

    def test_v5_over_the_rate_gets_0x96_and_is_dropped(self):
        w = self.raw(5)
        topic = unique("rate")
        w.subscribe(topic, qos=1)
        c = self.raw(5)
        started = time.monotonic()
        codes = [c.publish(topic, b"m", qos=1).rc for _ in range(20)]
        elapsed = time.monotonic() - started
        accepted = codes.count(0)
        self.assertEqual(accepted + codes.count(0x96), 20, codes)
        self.assertGreaterEqual(accepted, 5)
        self.assertLessEqual(accepted, 5 + int(elapsed * 5) + 1)
        self.assertEqual(codes[:5], [0] * 5)
        # QoS 0 over the rate: dropped silently.
        for _ in range(10):
            c.publish(topic, b"q0", qos=0)
        self.assertTrue(c.is_open())
        got = 0
        while True:
            try:
                p = w.recv_packet(timeout=0.5)
            except AssertionError:
                break
            if p.type == T.PUBLISH:
                got += 1
                w.ack(p)
        self.assertLessEqual(got, accepted + 1 + int((time.monotonic() - started) * 5) + 1)
        self.assertGreaterEqual(self.refusals("max_publish_rate"), 20 - accepted)

    def test_v311_qos1_over_the_rate_is_disconnected_qos0_dropped(self):
        c0 = self.raw(4)
        for _ in range(20):
            c0.publish(unique("q0"), b"x", qos=0)
        self.assertTrue(c0.is_open(), "QoS 0 over the rate is only dropped")
        c = self.raw(4)
        acks = 0
        with self.assertRaises((ConnectionClosed, OSError)):
            for _ in range(40):
                c.publish(unique("q1"), b"x", qos=1)
                acks += 1
        self.assertGreaterEqual(acks, 5)
        self.assertLess(acks, 40)


# --------------------------------------------------------------------------
# Overload
# --------------------------------------------------------------------------

@gannet_only("gannet's overload protection")
class OverloadTest(LimitsTestCase):
    start_broker_in_setup = False

    def test_new_connections_refused_while_connected_clients_are_served(self):
        # The resident memory of an idle node, then a threshold a little above it.
        probe = self.launch_broker(metrics=True)
        base = rss(probe.pid)
        probe.stop()
        limit = base + 48 * MiB
        self.broker = self.launch_broker({"max_memory_bytes": limit, "max_packet_size": 2 * MiB},
                                         metrics=True)
        self.assertEqual(self.metric("gannet_overloaded"), 0)
        sub = self.raw(5)
        topic = unique("busy")
        sub.subscribe(topic, qos=1)
        pub = self.raw(4)
        # Grow the node's memory: retained messages of 1 MiB.
        payload = b"\x5a" * MiB
        for i in range(200):
            pub.publish(f"ballast/{i}", payload, qos=0, retain=True)
            if i % 10 == 9:
                pub.ping()
                if rss(self.broker.pid) > limit + 8 * MiB:
                    break
        self.wait_metric("gannet_overloaded", lambda v: v == 1, timeout=5)
        # New connections are turned away: 0x89 / 3.1.1 return code 3.
        with RawClient(self.port, 5) as c:
            self.assertEqual(c.connect(unique("late"), expect_rc=None).rc, 0x89)
            c.wait_closed()
        with RawClient(self.port, 4) as c:
            self.assertEqual(c.connect(unique("late"), expect_rc=None).rc, 3)
            c.wait_closed()
        self.assertGreaterEqual(self.rejected("overload"), 2)
        self.assertGreaterEqual(self.metric("gannet_connects_refused_total", reason="server_busy"), 2)
        # The connected ones carry on.
        for i in range(3):
            self.assertEqual(pub.publish(topic, f"still {i}".encode(), qos=1).type, T.PUBACK)
            p = sub.expect(T.PUBLISH)
            self.assertEqual(p.payload, f"still {i}".encode())
            sub.ack(p)


# --------------------------------------------------------------------------
# Flags
# --------------------------------------------------------------------------

@gannet_only("gannet's own command line")
class LimitFlagsTest(unittest.TestCase):

    def test_bad_values_exit_2(self):
        cases = [
            ("max_connections", "lots"), ("max_connections", "-1"),
            ("max_connections", "100000001"),
            ("max_connections_per_ip", "x"), ("max_connections_per_ip", "-5"),
            ("max_connect_rate_per_ip", "1.5"), ("max_connect_rate_per_ip", "1000001"),
            ("max_memory_bytes", "1GiB"), ("max_memory_bytes", "1000"),
            ("max_topic_length", "0"), ("max_topic_length", "65536"), ("max_topic_length", "long"),
            ("max_topic_levels", "65536"), ("max_topic_levels", "deep"),
            ("max_subscriptions_per_client", "many"), ("max_subscriptions_per_client", "-1"),
            ("max_publish_rate", "fast"), ("max_publish_rate", "10000001"),
        ]
        for flag, value in cases:
            with self.subTest(flag=flag, value=value):
                rc, err = run_gannet(["--mqtt_listen=127.0.0.1:0", f"--{flag}={value}"])
                self.assertEqual(rc, 2, err)
                self.assertIn(flag, err)


if __name__ == "__main__":
    unittest.main()
