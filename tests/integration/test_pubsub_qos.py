"""Publish/subscribe at QoS 0, 1 and 2 in both directions, MQTT 3.1, 3.1.1 and 5,
with paho, mosquitto_pub/sub and raw packets: delivered QoS, packet ids, the
QoS 2 exactly-once handshake and DUP retransmission to a persistent session."""

import unittest

from gannet_fixture import (BrokerTestCase, P, T, build_ack, build_publish, unique)


class PahoQosMatrixTest(BrokerTestCase):
    """Every publish QoS x subscription QoS: delivered at min(publish, subscription)."""

    def check_matrix(self, sub_version, pub_version):
        base = unique("qos")
        sub = self.paho(version=sub_version)
        for sq in (0, 1, 2):
            self.assertEqual(sub.subscribe(f"{base}/s{sq}", sq), [sq])
        pub = self.paho(version=pub_version)
        for sq in (0, 1, 2):
            for pq in (0, 1, 2):
                pub.publish(f"{base}/s{sq}", f"p{pq}s{sq}".encode(), pq)
        sub.wait_messages(9)
        for sq in (0, 1, 2):
            sub.sync(pub, f"{base}/s{sq}", qos=2)
        got = {}
        for m in sub.messages():
            if not m.payload.startswith(b"sync-"):
                got.setdefault(m.payload.decode(), []).append(m)
        self.assertEqual(sorted(got), sorted(f"p{pq}s{sq}" for pq in range(3) for sq in range(3)))
        for key, msgs in got.items():
            pq, sq = int(key[1]), int(key[3])
            self.assertEqual(len(msgs), 1, f"{key} delivered {len(msgs)} times")
            m = msgs[0]
            self.assertEqual(m.topic, f"{base}/s{sq}")
            self.assertEqual(m.qos, min(pq, sq), f"{key}: delivered QoS")
            self.assertFalse(m.retain)

    def test_v31(self):
        self.check_matrix(3, 3)

    def test_v311(self):
        self.check_matrix(4, 4)

    def test_v5(self):
        self.check_matrix(5, 5)

    def test_v5_subscriber_v31_publisher(self):
        self.check_matrix(5, 3)

    def test_v311_subscriber_v5_publisher(self):
        self.check_matrix(4, 5)

    def test_payload_bytes_intact(self):
        topic = unique("bin")
        sub = self.paho(version=5)
        sub.subscribe(topic, 2)
        pub = self.paho(version=4)
        payloads = [b"", b"\x00", bytes(range(256)), b"\xff" * 70000, "ünïcödé".encode()]
        for i, pl in enumerate(payloads):
            pub.publish(topic, pl, i % 3)
        msgs = sub.wait_messages(len(payloads), topic)
        self.assertEqual(sorted(m.payload for m in msgs), sorted(payloads))


class MosquittoClientsTest(BrokerTestCase):
    """mosquitto_pub / mosquitto_sub in every protocol version, at every QoS."""

    VERSIONS = ("31", "311", "5")

    def test_every_version_pair_and_qos(self):
        base = unique("cli")
        subs = {v: self.mosquitto_sub(f"{base}/#", version=v, qos=2) for v in self.VERSIONS}
        expected = []
        for pv in self.VERSIONS:
            for qos in (0, 1, 2):
                topic = f"{base}/v{pv}/q{qos}"
                msg = f"from-v{pv}-q{qos}"
                out = self.mosquitto_pub(topic, msg, version=pv, qos=qos)
                if qos == 1:
                    self.assertIn("received PUBACK", out.stdout)
                if qos == 2:
                    self.assertIn("received PUBREC", out.stdout)
                    self.assertIn("received PUBCOMP", out.stdout)
                expected.append((topic, msg, qos))
        for v, sub in subs.items():
            with self.subTest(subscriber_version=v):
                got = sub.wait_messages(len(expected))
                self.assertEqual(sorted(got), sorted((t, m) for t, m, _ in expected))
                heads = {h["topic"]: h for h in sub.publishes()}
                for topic, _, qos in expected:
                    self.assertEqual(heads[topic]["qos"], qos, f"delivered QoS on {topic}")
                    self.assertEqual(heads[topic]["retain"], 0)

    def test_qos_downgraded_to_subscription(self):
        base = unique("down")
        sub0 = self.mosquitto_sub(f"{base}/x", version="311", qos=0)
        sub1 = self.mosquitto_sub(f"{base}/x", version="5", qos=1)
        self.mosquitto_pub(f"{base}/x", "hello", version="5", qos=2)
        sub0.wait_messages(1)
        sub1.wait_messages(1)
        self.assertEqual(sub0.publishes()[0]["qos"], 0)
        self.assertEqual(sub1.publishes()[0]["qos"], 1)


class RawQosFlowTest(BrokerTestCase):
    """Exact packets of the QoS 1 / QoS 2 flows and packet identifier handling."""

    def test_inbound_acks_echo_packet_ids(self):
        for version in (4, 5):
            with self.subTest(version=version):
                c = self.raw(version)
                topic = unique("ids")
                # Two flows interleaved: QoS 2 with id 300, QoS 1 with id 65535.
                c.send(build_publish(topic, b"a", 2, pid=300, version=version))
                c.send(build_publish(topic, b"b", 1, pid=65535, version=version))
                first, second = c.recv_packet(), c.recv_packet()
                self.assertEqual((first.type, first.pid), (T.PUBREC, 300))
                self.assertEqual((second.type, second.pid), (T.PUBACK, 65535))
                c.send(build_ack(T.PUBREL, 300, version=version))
                comp = c.expect(T.PUBCOMP)
                self.assertEqual(comp.pid, 300)
                self.assertTrue(c.is_open())

    def test_outbound_qos2_handshake(self):
        for version in (4, 5):
            with self.subTest(version=version):
                topic = unique("q2out")
                sub = self.raw(version)
                sub.subscribe(topic, qos=2)
                pub = self.raw(version)
                pub.publish(topic, b"exactly-once", 2)
                p = sub.expect(T.PUBLISH)
                self.assertEqual((p.topic, p.payload, p.qos, p.dup), (topic, b"exactly-once", 2, False))
                self.assertNotEqual(p.pid, 0)
                sub.send(build_ack(T.PUBREC, p.pid, version=version))
                rel = sub.expect(T.PUBREL)
                self.assertEqual(rel.pid, p.pid)
                self.assertEqual(rel.flags, 0x02, "PUBREL fixed header flags must be 0010")
                sub.send(build_ack(T.PUBCOMP, p.pid, version=version))
                self.assertTrue(sub.is_open())

    def test_outbound_packet_ids_distinct_while_in_flight(self):
        topic = unique("inflight")
        sub = self.raw(4)
        sub.subscribe(topic, qos=1)
        pub = self.paho(version=4)
        for i in range(10):
            pub.publish(topic, f"m{i}".encode(), 1)
        pubs = [sub.expect(T.PUBLISH) for _ in range(10)]
        self.assertEqual([p.payload for p in pubs], [f"m{i}".encode() for i in range(10)], "order")
        ids = [p.pid for p in pubs]
        self.assertNotIn(0, ids)
        self.assertEqual(len(set(ids)), 10, f"packet ids reused while unacknowledged: {ids}")
        for p in pubs:
            sub.ack(p)
        self.assertTrue(sub.is_open())

    def test_inbound_qos2_duplicate_before_pubrel_delivered_once(self):
        """[MQTT-4.3.3]: until PUBREL, a re-sent PUBLISH with the same id is
        acknowledged with PUBREC again and not delivered again."""
        for version in (4, 5):
            with self.subTest(version=version):
                topic = unique("q2dup")
                sub = self.paho(version=4)
                sub.subscribe(topic, 2)
                pub = self.raw(version)
                pub.send(build_publish(topic, b"once", 2, pid=7, version=version))
                self.assertEqual(pub.expect(T.PUBREC).pid, 7)
                pub.send(build_publish(topic, b"once", 2, pid=7, dup=True, version=version))
                self.assertEqual(pub.expect(T.PUBREC).pid, 7)
                pub.send(build_ack(T.PUBREL, 7, version=version))
                self.assertEqual(pub.expect(T.PUBCOMP).pid, 7)
                # The same id after the flow completed is a new message.
                pub.publish(topic, b"again", 2, pid=7)
                sub.wait_message(topic, b"again")
                self.assertEqual([m.payload for m in sub.messages(topic)], [b"once", b"again"])

    def test_inbound_qos2_state_survives_reconnect(self):
        """PUBREC received, connection lost, PUBREL sent on the new connection of
        the persistent session: PUBCOMP, and the message is delivered exactly once."""
        for version in (4, 5):
            with self.subTest(version=version):
                topic, cid = unique("q2rc"), unique("q2rc")
                props = {P.SESSION_EXPIRY_INTERVAL: 60} if version == 5 else None
                sub = self.paho(version=4)
                sub.subscribe(topic, 2)
                pub = self.raw(version, client_id=cid, clean=False, props=props)
                pub.send(build_publish(topic, b"m", 2, pid=42, version=version))
                self.assertEqual(pub.expect(T.PUBREC).pid, 42)
                pub.shutdown()
                pub2 = self.raw(version, client_id=cid, clean=False, props=props)
                self.assertTrue(pub2.connack.session_present)
                pub2.send(build_ack(T.PUBREL, 42, version=version))
                self.assertEqual(pub2.expect(T.PUBCOMP).pid, 42)
                sub.wait_message(topic, b"m")
                sub.sync(self.paho(version=4), topic, qos=2)
                self.assertEqual([m.payload for m in sub.messages(topic) if m.payload == b"m"], [b"m"])


class RetransmissionTest(BrokerTestCase):
    """Unacknowledged QoS 1/2 messages are re-sent to a persistent session on
    reconnect, with DUP=1 and their original packet identifiers
    ([MQTT-4.4.0-1], [MQTT-3.3.1-1]), in their original order."""

    def persistent(self, version, cid):
        props = {P.SESSION_EXPIRY_INTERVAL: 300} if version == 5 else None
        return self.raw(version, client_id=cid, clean=False, props=props)

    def check_qos1(self, version):
        topic, cid = unique("rt1"), unique("rt1")
        sub = self.persistent(version, cid)
        sub.subscribe(topic, qos=1)
        pub = self.paho(version=4)
        for i in range(3):
            pub.publish(topic, f"m{i}".encode(), 1)
        first = [sub.expect(T.PUBLISH) for _ in range(3)]
        self.assertEqual([p.dup for p in first], [False] * 3)
        sub.ack(first[0])  # m0 acknowledged, m1 and m2 not
        sub.ping()  # the PUBACK has been processed
        sub.shutdown()
        sub2 = self.persistent(version, cid)
        if version != 3:  # MQTT 3.1 has no session present flag
            self.assertTrue(sub2.connack.session_present)
        pub.publish(topic, b"m3", 1)  # a new message after the reconnect
        again = [sub2.expect(T.PUBLISH) for _ in range(3)]
        self.assertEqual([p.payload for p in again], [b"m1", b"m2", b"m3"])
        self.assertEqual([(p.pid, p.dup) for p in again[:2]], [(first[1].pid, True), (first[2].pid, True)])
        self.assertFalse(again[2].dup, "a message not sent before must not have DUP set")
        self.assertNotIn(again[2].pid, (first[1].pid, first[2].pid))
        for p in again:
            sub2.ack(p)
        self.assertTrue(sub2.is_open())

    def test_qos1_v311(self):
        self.check_qos1(4)

    def test_qos1_v5(self):
        self.check_qos1(5)

    def test_qos1_v31(self):
        self.check_qos1(3)

    def check_qos2(self, version):
        topic, cid = unique("rt2"), unique("rt2")
        sub = self.persistent(version, cid)
        sub.subscribe(topic, qos=2)
        pub = self.paho(version=4)
        pub.publish(topic, b"no-pubrec", 2)
        pub.publish(topic, b"no-pubcomp", 2)
        a, b = sub.expect(T.PUBLISH), sub.expect(T.PUBLISH)
        self.assertEqual((a.payload, b.payload), (b"no-pubrec", b"no-pubcomp"))
        sub.send(build_ack(T.PUBREC, b.pid, version=version))  # only b gets PUBREC
        self.assertEqual(sub.expect(T.PUBREL).pid, b.pid)
        sub.shutdown()
        sub2 = self.persistent(version, cid)
        self.assertTrue(sub2.connack.session_present)
        got = [sub2.recv_packet(), sub2.recv_packet()]
        publishes = [p for p in got if p.type == T.PUBLISH]
        pubrels = [p for p in got if p.type == T.PUBREL]
        self.assertEqual(len(publishes), 1, f"expected the PUBLISH of 'no-pubrec' again: {got}")
        self.assertEqual((publishes[0].payload, publishes[0].pid, publishes[0].dup), (b"no-pubrec", a.pid, True))
        self.assertEqual(len(pubrels), 1, f"expected the PUBREL of 'no-pubcomp' again, not its PUBLISH: {got}")
        self.assertEqual(pubrels[0].pid, b.pid)
        sub2.send(build_ack(T.PUBCOMP, b.pid, version=version))
        sub2.ack(publishes[0])
        # Nothing more of either message: the next PUBLISH is a new one.
        pub.publish(topic, b"next", 2)
        nxt = sub2.expect(T.PUBLISH)
        self.assertEqual((nxt.payload, nxt.dup), (b"next", False))
        sub2.ack(nxt)

    def test_qos2_v311(self):
        self.check_qos2(4)

    def test_qos2_v5(self):
        self.check_qos2(5)

    def test_clean_session_drops_inflight(self):
        """A clean session does not get the old session's unacknowledged messages."""
        topic, cid = unique("rtc"), unique("rtc")
        sub = self.persistent(4, cid)
        sub.subscribe(topic, qos=1)
        self.paho(version=4).publish(topic, b"old", 1)
        sub.expect(T.PUBLISH)
        sub.shutdown()
        fresh = self.raw(4, client_id=cid, clean=True)
        self.assertFalse(fresh.connack.session_present)
        fresh.subscribe(topic, qos=1)
        self.paho(version=4).publish(topic, b"new", 1)
        p = fresh.expect(T.PUBLISH)
        self.assertEqual((p.payload, p.dup), (b"new", False))


if __name__ == "__main__":
    unittest.main()
