"""Hostile and broken clients over raw sockets. Each case: the offending
connection is closed (MQTT 5: with the DISCONNECT reason code where one is
sent), nothing it sent is delivered, the broker stays up, and a healthy client
keeps publishing and receiving throughout."""

import random
import struct
import time
import unittest

from gannet_fixture import (BrokerTestCase, ConnectionClosed, P, RawClient, T, build_connect,
                            build_publish, build_subscribe, encode_str, encode_varint, gannet_only,
                            mosquitto_deviation, packet, scaled, sleep_until, unique, wait_for)

MiB = 1024 * 1024


class HostileTestBase(BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.healthy_topic = unique("healthy")
        self.healthy_sub = self.paho(version=5)
        self.healthy_sub.subscribe(self.healthy_topic, 1)
        self.healthy_pub = self.paho(version=4)
        self.assert_healthy()

    def assert_healthy(self, timeout=5.0):
        """A fresh message goes from the healthy publisher to the healthy subscriber."""
        token = unique("ok").encode()
        self.healthy_pub.publish(self.healthy_topic, token, 1, timeout=timeout)
        self.healthy_sub.wait_message(self.healthy_topic, token, timeout=timeout)
        self.assert_broker_alive()

    def tearDown(self):
        # Every case ends with the broker still serving the healthy clients.
        if self.broker is not None and self.broker.is_running():
            self.assert_healthy()
        super().tearDown()

    def rejected(self, client, timeout=5.0):
        """The connection is closed without accepting anything (at most a
        DISCONNECT, or a failure CONNACK, comes first); returns the DISCONNECT
        reason codes seen."""
        packets = client.wait_closed(timeout)
        for p in packets:
            ok = p.type == T.DISCONNECT or (p.type == T.CONNACK and p.rc >= 0x80)
            self.assertTrue(ok, f"the broker answered before closing: {packets!r}")
        return [p.rc for p in packets if p.type == T.DISCONNECT]

    def check(self, version, data, reasons=None, connect=True):
        """Send `data` (after a CONNECT if connect) and expect the connection to
        be closed. MQTT 5: a DISCONNECT, if sent, has a reason code in `reasons`
        (>= 0x80 when not given). Returns the reason codes."""
        c = self.raw(version) if connect else self.raw(version, connect=False)
        try:
            c.send(data)
        except OSError:
            pass  # already closed on us
        rcs = self.rejected(c)
        for rc in rcs:
            if reasons:
                self.assertIn(rc, reasons, f"DISCONNECT reason {rc:#x}")
            else:
                self.assertGreaterEqual(rc, 0x80)
        return rcs

    def assert_not_delivered(self, watcher, topic_pred):
        """Nothing matching reached `watcher` (subscribed to '#'): checked after a
        message from the healthy publisher, sent later, arrived there."""
        watcher.sync(self.healthy_pub, self.healthy_topic)
        bad = [m for m in watcher.messages() if topic_pred(m.topic)]
        self.assertEqual(bad, [], "message from a rejected connection was delivered")


class MalformedPacketTest(HostileTestBase):

    def test_bad_remaining_length(self):
        # Five bytes of variable byte integer: malformed [MQTT-1.5.5-1].
        for version in (4, 5):
            with self.subTest(version=version, when="after CONNECT"):
                self.check(version, b"\x30\xff\xff\xff\xff\x7f", (0x81,))
        with self.subTest(when="as the first packet"):
            self.check(4, b"\x10\xff\xff\xff\xff\x01", connect=False)

    @gannet_only("gannet sends DISCONNECT 0x81 before closing (a SHOULD); Mosquitto just closes")
    def test_bad_remaining_length_v5_disconnect_0x81(self):
        self.assertEqual(self.check(5, b"\x30\xff\xff\xff\xff\x7f"), [0x81])

    def test_truncated_packet_then_close(self):
        watcher = self.paho(version=4)
        watcher.subscribe("#", 0)
        for version in (4, 5):
            with self.subTest(version=version):
                c = self.raw(version)
                whole = build_publish(f"trunc-{version}", b"x" * 100, 1, pid=1, version=version)
                c.send(whole[: len(whole) // 2])
                c.shutdown()
        with self.subTest(what="truncated CONNECT"):
            c = self.raw(4, connect=False)
            c.send(build_connect(unique("half"), 4)[:9])
            c.shutdown()
        self.assert_not_delivered(watcher, lambda t: t.startswith("trunc-"))

    def test_qos_3_publish(self):
        """[MQTT-3.3.1-4]: QoS bits 11 is malformed."""
        for version in (4, 5):
            with self.subTest(version=version):
                body = encode_str("q3") + b"\x00\x01" + (b"\x00" if version == 5 else b"") + b"x"
                self.check(version, packet(T.PUBLISH, 0x06, body), (0x81,))

    def test_reserved_fixed_header_flags(self):
        """[MQTT-2.2.2-2]: SUBSCRIBE / PUBREL with wrong flag bits, reserved
        packet type 0: malformed."""
        for version in (4, 5):
            sub_body = struct.pack("!H", 1) + (b"\x00" if version == 5 else b"") + encode_str("a") + b"\x00"
            cases = {
                "SUBSCRIBE flags 0": packet(T.SUBSCRIBE, 0x00, sub_body),
                "PUBREL flags 0": packet(T.PUBREL, 0x00, b"\x00\x01"),
                "packet type 0": b"\x00\x00",
            }
            for name, data in cases.items():
                with self.subTest(version=version, case=name):
                    self.check(version, data, (0x81, 0x82))

    def test_subscribe_without_filters(self):
        """[MQTT-3.8.3-3]: a SUBSCRIBE needs at least one filter."""
        for version in (4, 5):
            with self.subTest(version=version):
                body = struct.pack("!H", 1) + (b"\x00" if version == 5 else b"")
                self.check(version, packet(T.SUBSCRIBE, 0x02, body), (0x81, 0x82))

    def test_subscribe_with_qos_3_or_reserved_option_bits(self):
        for version, opts in ((4, 0x03), (4, 0x04), (5, 0x03), (5, 0xC0)):
            with self.subTest(version=version, options=hex(opts)):
                self.check(version, build_subscribe(1, [("a/b", opts)], version=version), (0x81, 0x82))

    def test_random_garbage(self):
        rng = random.Random(1234)
        for i in range(40):
            data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
            c = RawClient(self.port, 4)
            self.addCleanup(c.close)
            try:
                if i % 2:
                    c.connect(unique("junk"))
                c.send(data)
            except (OSError, ConnectionClosed, AssertionError):
                pass
            c.shutdown()
        self.assert_healthy()


class ProtocolViolationTest(HostileTestBase):

    def test_packet_before_connect(self):
        """[MQTT-3.1.0-1]: the first packet must be CONNECT; anything else: close,
        without CONNACK or any other answer."""
        cases = {
            "PUBLISH": build_publish(unique("early"), b"x", 0),
            "SUBSCRIBE": build_subscribe(1, [("#", 0)]),
            "PINGREQ": b"\xc0\x00",
            "DISCONNECT": b"\xe0\x00",
        }
        for name, data in cases.items():
            with self.subTest(first_packet=name):
                c = self.raw(4, connect=False)
                c.send(data)
                packets = c.wait_closed()
                self.assertEqual(packets, [], f"broker answered a {name} sent before CONNECT")

    def test_second_connect(self):
        """[MQTT-3.1.0-2]: a second CONNECT is a protocol error: close."""
        for version in (3, 4, 5):
            with self.subTest(version=version):
                self.check(version, build_connect(unique("again"), version), (0x82,))

    @gannet_only("gannet sends DISCONNECT 0x82 before closing (a SHOULD); Mosquitto just closes")
    def test_second_connect_v5_disconnect_0x82(self):
        self.assertEqual(self.check(5, build_connect(unique("again"), 5)), [0x82])

    def test_wildcards_in_publish_topic(self):
        """[MQTT-3.3.2-2]: the Topic Name must not contain wildcards."""
        watcher = self.paho(version=4)
        watcher.subscribe("#", 0)
        for version in (4, 5):
            for topic in ("wild/+", "wild/#", "+", "#", "wild/a+b"):
                with self.subTest(version=version, topic=topic):
                    rcs = self.check(version, build_publish(topic, b"x", 1, pid=1, version=version),
                                     (0x81, 0x82, 0x90))
                    if version == 5:
                        self.assertEqual(len(rcs), 1, "no DISCONNECT with a reason code before the close")
        self.assert_not_delivered(watcher, lambda t: t.startswith("wild") or t in ("+", "#"))

    def test_empty_topic_without_alias(self):
        """An empty Topic Name is only allowed with a Topic Alias (MQTT 5); in
        3.1.1 topic names are at least one character [MQTT-4.7.3-1]."""
        for version in (4, 5):
            with self.subTest(version=version):
                self.check(version, build_publish("", b"x", 0, version=version), (0x82, 0x81, 0x94))

    def test_unsupported_protocol_level(self):
        """[MQTT-3.1.2-2]: CONNACK 0x01 (3.1.1) / 0x84 (MQTT 5) and close, or just close."""
        body = encode_str("MQTT") + bytes([6, 0x02]) + struct.pack("!H", 60) + encode_str("lvl6")
        c = self.raw(4, connect=False)
        c.send(packet(T.CONNECT, 0, body))
        packets = c.wait_closed()
        for p in packets:
            self.assertEqual(p.type, T.CONNACK, packets)
            self.assertIn(p.rc, (0x01, 0x84))

    def test_connect_reserved_flag_set(self):
        """[MQTT-3.1.2-3]: the reserved CONNECT flag must be 0."""
        for version in (4, 5):
            with self.subTest(version=version):
                data = bytearray(build_connect(unique("rsv"), version))
                data[9] |= 0x01  # connect flags byte: 1 header + 1 length + 6 name + 1 level
                c = self.raw(version, connect=False)
                c.send(bytes(data))
                packets = c.wait_closed()
                self.assertTrue(all(p.type == T.CONNACK and p.rc >= 0x80 for p in packets), packets)

    def test_many_abrupt_connections(self):
        for i in range(100):
            c = RawClient(self.port, 4 + (i % 2))
            try:
                c.connect(unique("abrupt"), keepalive=30)
            finally:
                c.shutdown()
        self.assert_healthy()


class InvalidUtf8Test(HostileTestBase):
    """[MQTT-1.5.4-1/2]: ill-formed UTF-8 or U+0000 in a string: malformed, close."""

    BAD = {
        "invalid byte": b"utf/\xff",
        "truncated sequence": b"utf/\xc3",
        "overlong '/'": b"utf/\xc0\xaf",
        "surrogate": b"utf/\xed\xa0\x80",
        "null character": b"utf/\x00",
    }

    def test_invalid_utf8_in_publish_topic(self):
        watcher = self.paho(version=4)
        watcher.subscribe("#", 0)
        for version in (4, 5):
            for name, topic in self.BAD.items():
                with self.subTest(version=version, case=name):
                    self.check(version, build_publish(topic, b"x", 0, version=version), (0x81,))
        self.assert_not_delivered(watcher, lambda t: isinstance(t, bytes) or t.startswith("utf"))

    def test_invalid_utf8_in_subscribe_filter(self):
        for version in (4, 5):
            for name, flt in self.BAD.items():
                with self.subTest(version=version, case=name):
                    self.check(version, build_subscribe(1, [(flt, 0)], version=version), (0x81,))

    def test_invalid_utf8_client_id(self):
        for version in (4, 5):
            with self.subTest(version=version):
                c = self.raw(version, connect=False)
                c.send(build_connect(b"id-\xff", version))
                packets = c.wait_closed()
                self.assertTrue(all(p.type == T.CONNACK and p.rc >= 0x80 for p in packets), packets)


class MaximumPacketSizeTest(HostileTestBase):

    broker_flags = {"max_packet_size": 2048}

    def publish_of_size(self, topic, total, version):
        """A QoS 1 PUBLISH whose whole packet is exactly `total` bytes."""
        overhead = len(build_publish(topic, b"", 1, pid=1, version=version))
        size = total - overhead
        for _ in range(3):  # the remaining length's own size may change
            data = build_publish(topic, b"p" * size, 1, pid=1, version=version)
            size += total - len(data)
        self.assertEqual(len(data), total)
        return data

    def test_connack_announces_maximum(self):
        self.assertEqual(self.raw(5).connack.props.get(P.MAXIMUM_PACKET_SIZE), 2048)

    def test_packet_at_the_limit_accepted(self):
        topic = unique("size")
        watcher = self.paho(version=4)
        watcher.subscribe(topic, 1)
        for version in (4, 5):
            c = self.raw(version)
            c.send(self.publish_of_size(topic, 2048, version))
            self.assertEqual(c.expect(T.PUBACK).pid, 1)
        self.assertEqual(len(watcher.wait_messages(2, topic)), 2)

    def check_over_limit(self, total):
        topic = unique("size")
        watcher = self.paho(version=4)
        watcher.subscribe("#", 1)
        for version in (4, 5):
            with self.subTest(version=version):
                self.check(version, self.publish_of_size(topic, total, version), (0x95,))
        self.assert_not_delivered(watcher, lambda t: t == topic)

    def test_packet_over_the_limit_closes(self):
        self.check_over_limit(4000)

    @mosquitto_deviation("Mosquitto 2.0.11 compares the Remaining Length, not the whole packet, with "
                         "max_packet_size: it accepts packets up to 2 bytes over")
    def test_packet_one_byte_over_the_limit_closes(self):
        """The Maximum Packet Size counts the whole packet, fixed header included (2.1.4)."""
        self.check_over_limit(2049)

    def test_huge_declared_length_closed_without_waiting_for_data(self):
        """A header announcing ~256 MB: closed at once, not after reading it."""
        for version in (4, 5):
            with self.subTest(version=version):
                c = self.raw(version)
                start = time.monotonic()
                c.send(b"\x30" + encode_varint(268435455) + b"\x00\x01t")
                self.rejected(c, timeout=3)
                self.assertLess(time.monotonic() - start, scaled(3))

    def test_over_the_limit_v5_disconnect_0x95(self):
        self.assertEqual(self.check(5, self.publish_of_size(unique("size"), 4000, 5)), [0x95])


@gannet_only("--connect_timeout has no Mosquitto equivalent")
class ConnectTimeoutTest(HostileTestBase):

    broker_flags = {"connect_timeout": 1}

    def test_silent_socket_closed_after_connect_timeout(self):
        c = self.raw(4, connect=False)
        start = time.monotonic()
        self.assertEqual(c.wait_closed(timeout=3.5), [])
        self.assertGreaterEqual(time.monotonic() - start, 0.9)

    def test_partial_connect_closed_after_connect_timeout(self):
        c = self.raw(4, connect=False)
        c.send(build_connect(unique("slow"), 4)[:6])
        self.assertEqual(c.wait_closed(timeout=3.5), [])

    def test_connect_within_timeout_is_served(self):
        c = self.raw(4, connect=False)
        sleep_until(time.monotonic() + 0.5)  # a slow but legitimate client
        c.connect(unique("late"), keepalive=60)
        sleep_until(time.monotonic() + 1.5)  # well past the connect timeout: still served
        self.assertTrue(c.is_open())


class Flood:
    """A subscriber that never reads, and a publisher pushing QoS 0 data to it."""

    PAYLOAD = 64 * 1024

    def flood(self, total, on_progress=None):
        topic = unique("flood")
        slow = self.raw(4, rcvbuf=4096)
        slow.subscribe(topic, qos=0)  # ...and never reads again
        pub = self.raw(4, timeout=20)
        data = build_publish(topic, b"\xab" * self.PAYLOAD, 0)
        chunk = data * 16  # about 1 MiB per send
        sent = 0
        while sent < total:
            pub.sock.sendall(chunk)  # socket.timeout if the broker stops reading the publisher
            sent += len(chunk)
            if on_progress:
                on_progress(sent)
        # PINGREQ after all the data: answered once the broker has read everything.
        self.assertTrue(pub.is_open(timeout=30), "publisher disconnected")
        return slow, pub


class SlowSubscriberTest(Flood, HostileTestBase):
    """The broker's memory stays bounded while 200 MiB of QoS 0 messages are
    published to a subscriber that never reads; other clients are served."""

    # max_queued_messages bounds Mosquitto, whose per-client queue also holds QoS 0
    # messages for online clients (1000 x 64 KiB by default); gannet's QoS 0 path is
    # bounded by max_connection_buffer_bytes alone.
    broker_flags = {"max_connection_buffer_bytes": MiB, "max_queued_messages": 100}
    TOTAL = 200 * MiB
    RSS_GROWTH_LIMIT = 32 * MiB

    def test_memory_bounded_and_others_served(self):
        baseline = self.broker.rss_bytes()
        peak = [baseline]
        checks = [0]

        def progress(sent):
            peak[0] = max(peak[0], self.broker.rss_bytes())
            if sent // (25 * MiB) > checks[0]:  # a healthy round trip every 25 MiB
                checks[0] += 1
                self.assert_healthy(timeout=10)

        self.flood(self.TOTAL, progress)
        peak[0] = max(peak[0], self.broker.rss_bytes())
        growth = peak[0] - baseline
        self.assertGreaterEqual(checks[0], 7)
        self.assertLess(growth, self.RSS_GROWTH_LIMIT,
                        f"broker RSS grew by {growth / MiB:.1f} MiB while 200 MiB went to a subscriber "
                        f"that does not read (baseline {baseline / MiB:.1f} MiB)")


@gannet_only("gannet's /metrics")
class SlowSubscriberMetricsTest(Flood, HostileTestBase):

    broker_flags = {"max_connection_buffer_bytes": MiB}
    broker_metrics = True

    def test_qos0_drops_counted(self):
        before = self.broker.metric("gannet_messages_dropped_total") or 0
        total = 32 * MiB
        self.flood(total)
        wait_for(lambda: (self.broker.metric("gannet_messages_dropped_total") or 0) > before,
                 timeout=10, message="gannet_messages_dropped_total to grow")
        text = self.broker.metrics_text()
        self.assertRegex(text, r'gannet_messages_dropped_total\{[^}]*reason="[^"]+"\}')
        received = self.broker.metric("gannet_messages_received_total")
        self.assertGreaterEqual(received, total // (self.PAYLOAD + 100))


if __name__ == "__main__":
    unittest.main()
