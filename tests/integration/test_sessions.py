"""Sessions: clean vs persistent (3.1.1 cleanSession, MQTT 5 Clean Start +
Session Expiry Interval), the session present flag, queued QoS 1/2 messages for
offline clients, client-id takeover (MQTT 5: DISCONNECT 0x8E), server-assigned
client ids, sessions across a broker restart."""

import time
import unittest

from gannet_fixture import BrokerTestCase, P, T, build_disconnect, mosquitto_deviation, sleep_until, unique



class SessionTestBase(BrokerTestCase):

    def connect(self, version, cid, clean, expiry=None, **kw):
        props = {P.SESSION_EXPIRY_INTERVAL: expiry} if (version == 5 and expiry is not None) else None
        return self.raw(version, client_id=cid, clean=clean, props=props, **kw)

    def disconnect(self, c, props=None):
        """DISCONNECT and wait until the broker closed the connection (it handled it)."""
        c.send(build_disconnect(0 if c.version == 5 else None, props, c.version))
        c.wait_closed()

    def assert_next_publishes(self, c, payloads, topic=None):
        got = []
        for _ in payloads:
            p = c.expect(T.PUBLISH)
            c.ack(p)
            got.append(p)
        self.assertEqual([p.payload for p in got], payloads)
        if topic:
            self.assertTrue(all(p.topic == topic for p in got))
        return got

    def assert_not_subscribed(self, c, topic):
        """A message on `topic` does not arrive; a marker published after it does."""
        marker = unique("marker")
        c.subscribe(marker, qos=1)
        pub = self.paho(version=4)
        pub.publish(topic, b"should-not-arrive", 1)
        pub.publish(marker, b"marker", 1)
        p = c.expect(T.PUBLISH)
        self.assertEqual((p.topic, p.payload), (marker, b"marker"), "message for a subscription that should be gone")


class CleanAndPersistentTest(SessionTestBase):

    def test_v311_clean_session_forgets_subscriptions(self):
        topic, cid = unique("s"), unique("clean")
        c = self.connect(4, cid, clean=True)
        c.subscribe(topic, qos=1)
        self.disconnect(c)
        c2 = self.connect(4, cid, clean=True)
        self.assertFalse(c2.connack.session_present)
        self.assert_not_subscribed(c2, topic)

    def test_v311_persistent_session_queues_qos1_and_qos2(self):
        topic, cid = unique("s"), unique("persist")
        c = self.connect(4, cid, clean=False)
        self.assertFalse(c.connack.session_present)
        c.subscribe(topic, qos=2)
        self.disconnect(c)
        pub = self.paho(version=4)
        pub.publish(topic, b"q0-lost-or-kept", 0)
        for payload, qos in ((b"q1-a", 1), (b"q2-b", 2), (b"q1-c", 1)):
            pub.publish(topic, payload, qos)
        c2 = self.connect(4, cid, clean=False)
        self.assertTrue(c2.connack.session_present)
        got = []
        while len(got) < 3:
            p = c2.expect(T.PUBLISH)
            c2.ack(p)
            if p.qos > 0:  # QoS 0 messages MAY be queued as well; not required
                got.append((p.payload, p.qos))
        self.assertEqual(got, [(b"q1-a", 1), (b"q2-b", 2), (b"q1-c", 1)])
        # The subscription itself survived: live messages arrive without SUBSCRIBE.
        pub.publish(topic, b"live", 1)
        p = c2.expect(T.PUBLISH)
        self.assertEqual(p.payload, b"live")

    def test_v31_persistent_session(self):
        topic, cid = unique("s"), unique("v31")
        c = self.connect(3, cid, clean=False)
        c.subscribe(topic, qos=1)
        self.disconnect(c)
        self.paho(version=3).publish(topic, b"for-3.1", 1)
        c2 = self.connect(3, cid, clean=False)
        self.assert_next_publishes(c2, [b"for-3.1"], topic)

    def test_v311_session_present_flag(self):
        cid = unique("sp")
        steps = [(False, False), (False, True), (True, False), (False, False)]
        for i, (clean, present) in enumerate(steps):
            c = self.connect(4, cid, clean=clean)
            self.assertEqual(c.connack.session_present, present, f"step {i}: cleanSession={int(clean)}")
            if not clean:
                c.subscribe(unique("t"), qos=1)  # some state
            self.disconnect(c)

    def test_v5_session_present_flag(self):
        cid = unique("sp5")
        # (clean start, session expiry, expected session present)
        steps = [(False, 60, False), (False, 60, True), (True, 60, False), (False, 0, True), (False, 60, False)]
        for i, (clean, expiry, present) in enumerate(steps):
            c = self.connect(5, cid, clean=clean, expiry=expiry)
            self.assertEqual(c.connack.session_present, present, f"step {i}: clean={clean} expiry={expiry}")
            self.disconnect(c)

    def test_v5_clean_start_discards_session(self):
        topic, cid = unique("s"), unique("cs")
        c = self.connect(5, cid, clean=False, expiry=60)
        c.subscribe(topic, qos=1)
        self.disconnect(c)
        c2 = self.connect(5, cid, clean=True, expiry=60)
        self.assertFalse(c2.connack.session_present)
        self.assert_not_subscribed(c2, topic)

    def test_v5_offline_queue(self):
        topic, cid = unique("s"), unique("q5")
        c = self.connect(5, cid, clean=False, expiry=60)
        c.subscribe(topic, qos=2)
        self.disconnect(c)
        pub = self.paho(version=5)
        payloads = [f"m{i}".encode() for i in range(5)]
        for i, pl in enumerate(payloads):
            pub.publish(topic, pl, 1 + i % 2)
        c2 = self.connect(5, cid, clean=False, expiry=60)
        self.assertTrue(c2.connack.session_present)
        got = self.assert_next_publishes(c2, payloads, topic)
        self.assertEqual([p.qos for p in got], [1 + i % 2 for i in range(5)])

    def test_v5_session_expiry_zero_ends_with_connection(self):
        topic, cid = unique("s"), unique("e0")
        c = self.connect(5, cid, clean=False, expiry=0)
        c.subscribe(topic, qos=1)
        c.shutdown()  # even an abnormal close ends a session with expiry 0
        c2 = self.raw(5, client_id=cid, clean=False)
        self.assertFalse(c2.connack.session_present)
        self.assert_not_subscribed(c2, topic)

    def test_v5_session_expires_after_interval(self):
        topic, cid = unique("s"), unique("e1")
        c = self.connect(5, cid, clean=False, expiry=1)
        c.subscribe(topic, qos=1)
        c.shutdown()
        # Within the interval the session is still there...
        c = self.connect(5, cid, clean=False, expiry=1)
        self.assertTrue(c.connack.session_present)
        self.disconnect(c)
        closed = time.monotonic()
        sleep_until(closed + 2.2)
        # ...after it, it is gone.
        c2 = self.connect(5, cid, clean=False, expiry=1)
        self.assertFalse(c2.connack.session_present)
        self.assert_not_subscribed(c2, topic)

    def test_v5_disconnect_can_shorten_session_expiry(self):
        """DISCONNECT with Session Expiry Interval 0 ends a session that CONNECT
        asked to keep for 60 s (3.14.2.2.2)."""
        topic, cid = unique("s"), unique("de")
        c = self.connect(5, cid, clean=False, expiry=60)
        c.subscribe(topic, qos=1)
        self.disconnect(c, props={P.SESSION_EXPIRY_INTERVAL: 0})
        c2 = self.connect(5, cid, clean=False, expiry=60)
        self.assertFalse(c2.connack.session_present)


class QueueLimitTest(SessionTestBase):

    broker_flags = {"max_queued_messages": 5}

    def test_offline_queue_is_bounded(self):
        topic, cid = unique("s"), unique("bound")
        c = self.connect(4, cid, clean=False)
        c.subscribe(topic, qos=1)
        self.disconnect(c)
        other = self.paho(version=4)
        other.subscribe(topic, 1)
        pub = self.paho(version=4)
        for i in range(30):
            pub.publish(topic, f"m{i:02d}".encode(), 1)  # every publish is acknowledged
        other.wait_messages(30, topic)  # online subscribers are not limited
        c2 = self.connect(4, cid, clean=False)
        self.assertTrue(c2.connack.session_present)
        got = []
        pub.publish(topic, b"live-marker", 1)
        while True:
            p = c2.expect(T.PUBLISH)
            c2.ack(p)
            if p.payload == b"live-marker":
                break
            got.append(p.payload)
        self.assertGreaterEqual(len(got), 1, "nothing was queued")
        self.assertLessEqual(len(got), 5, f"queue exceeded --max_queued_messages=5: {got}")
        self.assertEqual(got, sorted(set(got)), "queued messages duplicated or out of order")


class TakeoverTest(SessionTestBase):

    def test_v311_second_connection_with_same_id_takes_over(self):
        cid = unique("dup")
        first = self.connect(4, cid, clean=True)
        second = self.connect(4, cid, clean=True)
        first.wait_closed()
        self.assertTrue(second.is_open())

    @mosquitto_deviation("Mosquitto 2.0.11 closes the old connection without DISCONNECT 0x8E")
    def test_v5_old_connection_gets_disconnect_0x8e(self):
        """MQTT 5 3.1.4: the existing client gets DISCONNECT 0x8E (Session taken
        over) and its connection is closed [MQTT-3.1.4-3]."""
        cid = unique("dup5")
        first = self.connect(5, cid, clean=True)
        second = self.connect(5, cid, clean=True)
        packets = first.wait_closed()
        self.assertEqual([(p.type, p.rc) for p in packets], [(T.DISCONNECT, 0x8E)])
        self.assertTrue(second.is_open())

    def test_v5_takeover_closes_old_connection(self):
        cid = unique("dup5")
        first = self.connect(5, cid, clean=True)
        second = self.connect(5, cid, clean=True)
        first.wait_closed()
        self.assertTrue(second.is_open())

    def test_takeover_continues_persistent_session(self):
        for version in (4, 5):
            with self.subTest(version=version):
                topic, cid = unique("s"), unique("tk")
                first = self.connect(version, cid, clean=False, expiry=60)
                first.subscribe(topic, qos=1)
                second = self.connect(version, cid, clean=False, expiry=60)
                self.assertTrue(second.connack.session_present)
                first.wait_closed()
                self.paho(version=4).publish(topic, b"to-the-new-one", 1)
                self.assert_next_publishes(second, [b"to-the-new-one"], topic)

    def test_paho_takeover_between_versions(self):
        cid = unique("mix")
        old = self.paho(cid, version=4)
        new = self.paho(cid, version=5)
        old.wait_disconnected()
        topic = unique("t")
        new.subscribe(topic, 1)
        self.paho(version=4).publish(topic, b"ok", 1)
        new.wait_message(topic, b"ok")


class ClientIdTest(SessionTestBase):

    def test_v5_server_assigned_client_id(self):
        a = self.raw(5, client_id="")
        b = self.raw(5, client_id="")
        ida = a.connack.props.get(P.ASSIGNED_CLIENT_IDENTIFIER)
        idb = b.connack.props.get(P.ASSIGNED_CLIENT_IDENTIFIER)
        self.assertTrue(ida and idb, f"no Assigned Client Identifier: {a.connack!r}")
        self.assertNotEqual(ida, idb)
        self.assertTrue(a.is_open() and b.is_open())

    def test_v5_assigned_client_id_can_resume_its_session(self):
        topic = unique("s")
        c = self.raw(5, client_id="", clean=True, props={P.SESSION_EXPIRY_INTERVAL: 60})
        cid = c.connack.props[P.ASSIGNED_CLIENT_IDENTIFIER]
        c.subscribe(topic, qos=1)
        self.disconnect(c)
        self.paho(version=5).publish(topic, b"kept-for-you", 1)
        c2 = self.connect(5, cid, clean=False, expiry=60)
        self.assertTrue(c2.connack.session_present)
        self.assertNotIn(P.ASSIGNED_CLIENT_IDENTIFIER, c2.connack.props)
        self.assert_next_publishes(c2, [b"kept-for-you"], topic)

    def test_paho_v5_empty_client_id(self):
        c = self.paho("", version=5, connect=False)
        ack = c.connect()
        self.assertTrue(ack.prop("AssignedClientIdentifier"))

    def test_v311_empty_client_id_with_clean_session(self):
        c = self.raw(4, client_id="", clean=True)
        self.assertEqual(c.connack.rc, 0)
        self.assertTrue(c.is_open())

    def test_v311_empty_client_id_without_clean_session_rejected(self):
        """[MQTT-3.1.3-8]: CONNACK 0x02 (identifier rejected), then close."""
        c = self.raw(4, connect=False)
        c.connect("", clean=False, expect_rc=0x02)
        c.wait_closed()

    def test_mosquitto_sub_v5_without_id(self):
        topic = unique("s")
        sub = self.mosquitto_sub(topic, version="5", qos=1)
        self.mosquitto_pub(topic, "hi", version="5", qos=1)
        self.assertEqual(sub.wait_messages(1), [(topic, "hi")])


class RestartTest(SessionTestBase):
    """The broker process can be stopped (SIGTERM or kill -9) and started again
    on the same data dir, and serves clients again. (Whether sessions and
    messages survive is for the persistence tests.)"""

    start_broker_in_setup = False

    def check_restart(self, stop):
        broker = self.broker = self.launch_broker(mosquitto_persistence=True)
        topic, cid = unique("s"), unique("restart")
        c = self.connect(4, cid, clean=False)
        c.subscribe(topic, qos=1)
        self.paho(version=5).publish(topic, b"before", 1)
        self.assert_next_publishes(c, [b"before"], topic)
        stop(broker)
        c.wait_closed()
        broker.restart()
        c2 = self.connect(4, cid, clean=False)
        # If the PUBACK of "before" had not reached the broker when it was killed,
        # the message is still inflight and is resent (DUP) right after CONNACK.
        c2.ping()
        while c2.pending:
            p = c2.recv_packet()
            self.assertEqual((p.type, p.payload, p.dup), (T.PUBLISH, b"before", True))
            c2.ack(p)
        c2.subscribe(topic, qos=1)
        self.paho(version=5).publish(topic, b"after", 1)
        self.assert_next_publishes(c2, [b"after"], topic)

    def test_restart_after_sigterm(self):
        self.check_restart(lambda b: self.assertEqual(b.terminate(), 0))

    def test_restart_after_kill9(self):
        """kill -9 leaves no lock or socket behind that stops a restart."""
        self.check_restart(lambda b: b.kill9())


if __name__ == "__main__":
    unittest.main()
