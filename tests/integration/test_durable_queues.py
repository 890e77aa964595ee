"""Durable QoS 1/2 messages across kill -9 (issue 3, second step).

A PUBACK / PUBREC from gannet means the message is in RocksDB for every
persistent subscriber session it matched. After kill -9 and a restart on the
same data dir these survive:

* offline queues (in order, within --max_queued_messages, the bound still
  counting after the restart, message expiry honoured);
* outbound inflight messages: re-sent first, with DUP=1 and the packet ids they
  had before the kill; a QoS 2 message whose PUBREC gannet had received comes
  back as PUBREL, not as the PUBLISH;
* inbound QoS 2 packet ids awaiting PUBREL: a re-sent PUBLISH is answered with
  PUBREC and not delivered again (exactly once);
* nothing of an expired session: its queue is gone with it.

Every state change is durable before the packet that reveals it is written
(PUBACK / PUBREC to a publisher, PUBREL after a subscriber's PUBREC, PINGRESP
after a PUBACK / PUBCOMP of the same connection), so a test may kill -9 as soon
as it has seen that packet.

All clients are raw sockets (exact flags and packet ids). Absences are checked
with a marker message published after the one that must not arrive. Where a
message that should have survived may be missing, reading stops after IDLE
seconds without a PUBLISH, so a lost queue fails in seconds, not at a timeout
per message."""

import time
import unittest

from gannet_fixture import (BrokerTestCase, P, T, build_ack, build_disconnect, build_publish,
                            build_subscribe, gannet_only, sleep_until, sub_options, unique,
                            wait_for)

IDLE = 3.0  # seconds without a PUBLISH after which a reader concludes nothing more comes


class DurableTestBase(BrokerTestCase):
    """Helpers shared by the durable queue tests."""

    # ---- sessions ------------------------------------------------------------

    def offline_subscriber(self, topic, cid, qos=1):
        """A persistent 3.1.1 session subscribed to `topic`, then disconnected."""
        sub = self.persistent(4, cid)
        sub.subscribe(topic, qos=qos)
        self.disconnect(sub)

    def persistent(self, version, cid, clean=True, expiry=3600):
        """A persistent session: 3.1.1 cleanSession=0 (`clean` is ignored, a
        3.1.1 persistent session is always cleanSession=0); MQTT 5 Clean Start
        = `clean` with a Session Expiry Interval."""
        if version == 5:
            return self.raw(5, client_id=cid, clean=clean, props={P.SESSION_EXPIRY_INTERVAL: expiry})
        return self.raw(version, client_id=cid, clean=False)

    def reconnect(self, version, cid, expiry=3600):
        """Resume the session: cleanSession=0 / Clean Start=0."""
        return self.persistent(version, cid, clean=False, expiry=expiry)

    def disconnect(self, c):
        """DISCONNECT, then wait until gannet closed the connection: it handled the
        DISCONNECT, so the session is offline before anything else happens."""
        c.send(build_disconnect(0 if c.version == 5 else None, None, c.version))
        c.wait_closed()

    def restart_after_kill9(self):
        self.broker.kill9()
        self.broker.restart()

    def subscribe_keeping_publishes(self, c, topic, qos):
        """SUBSCRIBE and wait for its SUBACK; PUBLISHes that arrive before the
        SUBACK (a resurrected queue would) stay for later reads."""
        pid = c.next_pid()
        c.send(build_subscribe(pid, [(topic, sub_options(qos))], None, c.version))
        ack = c.expect_matching(T.SUBACK, pid)
        self.assertEqual(ack.rcs, [qos], f"SUBACK for {topic!r}")
        return ack

    # ---- publishing ------------------------------------------------------------

    def publish_pipelined(self, pub, topic, payloads, window=50):
        """QoS 1 publishes of `payloads` with up to `window` unacknowledged at a
        time; waits for every PUBACK. Returns the payloads in PUBACK order."""
        payloads = list(payloads)
        inflight = {}  # packet id -> payload
        acked = []
        nxt = 0

        def send(n):
            nonlocal nxt
            buf = bytearray()
            while n > 0 and nxt < len(payloads):
                pid = pub.next_pid()
                inflight[pid] = payloads[nxt]
                buf += build_publish(topic, payloads[nxt], 1, pid=pid, version=pub.version)
                nxt += 1
                n -= 1
            if buf:
                pub.send(bytes(buf))

        send(window)
        while inflight:
            a = pub.expect(T.PUBACK)
            self.assertIn(a.pid, inflight, f"PUBACK for a packet id not in flight: {a!r}")
            self.assertLess(a.rc, 0x80, f"publish refused: {a!r}")
            acked.append(inflight.pop(a.pid))
            send(1)
        return acked

    # ---- receiving ---------------------------------------------------------------

    def receive(self, c, count, idle=IDLE, ack=True):
        """Read up to `count` PUBLISHes (acknowledging each with ack=True); stop
        early after `idle` seconds without one. Returns the PUBLISH packets."""
        got = []
        while len(got) < count:
            try:
                p = c.expect_matching(T.PUBLISH, timeout=idle)
            except AssertionError:
                break  # nothing for `idle` seconds: the rest is not coming
            if ack:
                c.ack(p)
            got.append(p)
        return got

    def assert_nothing_before_marker(self, c, publisher, topic, what):
        """`publisher` publishes a marker on `topic` (QoS 1); `c` (subscribed to
        it) must receive no PUBLISH before the marker. Everything `c` receives
        is acknowledged."""
        marker = unique("marker").encode()
        publisher.publish(topic, marker, 1)
        extra = []
        while True:
            p = c.expect_matching(T.PUBLISH)
            c.ack(p)
            if p.payload == marker:
                break
            extra.append(p)
        self.assertEqual([(p.payload, p.pid, p.dup) for p in extra], [],
                         f"{what}: PUBLISHes (payload, packet id, DUP) arrived before the marker")


@gannet_only("kill -9: Mosquitto loses what it has not autosaved")
class DurableQueueTest(DurableTestBase):

    # 2,000 queued in test 1 (the default bound is 1000); window 20 stated for test 2.
    broker_flags = {"max_queued_messages": 5000, "max_inflight_messages": 20}

    def test_offline_queue_2000_qos1_survive_sigkill(self):
        topic, cid = unique("dq"), unique("dq-sub")
        self.offline_subscriber(topic, cid)

        expected = [f"m{i:04d}".encode() for i in range(2000)]
        pub = self.raw(4)
        acked = self.publish_pipelined(pub, topic, expected)
        self.assertEqual(acked, expected, "PUBACKs out of order")

        self.restart_after_kill9()

        sub2 = self.reconnect(4, cid)
        self.assertTrue(sub2.connack.session_present, "the persistent session is gone after kill -9")
        got = self.receive(sub2, len(expected))
        payloads = [p.payload for p in got]
        if payloads != expected:
            lost = len(set(expected) - set(payloads))
            self.fail(f"after kill -9: received {len(payloads)} of {len(expected)} acknowledged "
                      f"messages ({lost} lost), first {payloads[:5]}, last {payloads[-5:]}")
        self.assertEqual([p.topic for p in got], [topic] * len(expected))
        self.assertEqual({p.qos for p in got}, {1})
        dups = [p.payload for p in got if p.dup]
        self.assertEqual(dups, [], "DUP set on messages never sent before")
        # Each exactly once: nothing more after the 2,000.
        self.assert_nothing_before_marker(sub2, self.raw(4), topic, "after the 2,000 queued messages")

    def test_inflight_sigkill_mid_stream(self):
        window = 20
        topic, cid = unique("inf"), unique("inf-sub")
        sub = self.persistent(4, cid)
        sub.subscribe(topic, qos=1)  # stays connected and never acknowledges

        expected = [f"m{i:03d}".encode() for i in range(200)]
        acked = self.publish_pipelined(self.raw(4), topic, expected)
        self.assertEqual(acked, expected)

        first = [sub.expect_matching(T.PUBLISH) for _ in range(window)]
        sub.ping()  # PUBLISHes read meanwhile stay in sub.pending
        over = [p for p in sub.pending if p.type == T.PUBLISH]
        self.assertEqual(over, [], f"more than --max_inflight_messages={window} unacknowledged")
        self.assertEqual([p.payload for p in first], expected[:window])
        self.assertEqual([p.dup for p in first], [False] * window)
        pids = [p.pid for p in first]
        self.assertEqual(len(set(pids)), window, f"packet ids reused while in flight: {pids}")

        self.restart_after_kill9()

        sub2 = self.reconnect(4, cid)
        self.assertTrue(sub2.connack.session_present)
        got = self.receive(sub2, len(expected))
        before = [(p.payload, p.pid, True) for p in first]
        resent = [(p.payload, p.pid, p.dup) for p in got[:window]]
        self.assertEqual(resent, before,
                         "the messages in flight at the kill must come first, with DUP=1 and their "
                         f"packet ids; received {len(got)} PUBLISHes in all")
        payloads = [p.payload for p in got]
        self.assertEqual(len(payloads), len(expected),
                         f"received {len(payloads)} of the {len(expected)} acknowledged messages; "
                         f"missing e.g. {[m for m in expected if m not in set(payloads)][:5]}")
        self.assertEqual(payloads, expected, "acknowledged messages out of order or duplicated")
        self.assertEqual([p.payload for p in got[window:] if p.dup], [],
                         "DUP set on messages never sent before")
        self.assert_nothing_before_marker(sub2, self.raw(4), topic, "after the 200 messages")

    def test_qos2_exactly_once_across_restart_inbound(self):
        topic, pcid, scid = unique("q2in"), unique("q2-pub"), unique("q2-sub")
        sub = self.persistent(4, scid)
        sub.subscribe(topic, qos=2)

        pub = self.persistent(4, pcid)
        pub.send(build_publish(topic, b"exactly-once", 2, pid=7))
        rec = pub.expect(T.PUBREC)
        self.assertEqual(rec.pid, 7)

        p = sub.expect_matching(T.PUBLISH)
        self.assertEqual((p.topic, p.payload, p.qos, p.dup), (topic, b"exactly-once", 2, False))
        sub.ack(p)  # PUBREC, PUBREL, PUBCOMP: this delivery is complete
        sub.ping()  # gannet has handled the PUBCOMP

        self.restart_after_kill9()

        sub2 = self.reconnect(4, scid)
        self.assertTrue(sub2.connack.session_present)
        pub2 = self.reconnect(4, pcid)
        self.assertTrue(pub2.connack.session_present, "the publisher's session is gone after kill -9")
        # The publisher never saw a PUBCOMP: it re-sends the PUBLISH (§4.3.3),
        # which gannet must recognise by its packet id.
        pub2.send(build_publish(topic, b"exactly-once", 2, dup=True, pid=7))
        rec = pub2.expect(T.PUBREC)
        self.assertEqual((rec.pid, rec.rc), (7, 0))
        pub2.send(build_ack(T.PUBREL, 7))
        comp = pub2.expect(T.PUBCOMP)
        self.assertEqual((comp.pid, comp.rc), (7, 0))
        # The marker from the same publisher, after the PUBCOMP: a second copy
        # would have been routed before it.
        self.assert_nothing_before_marker(sub2, pub2, topic,
                                          "the re-sent QoS 2 PUBLISH was delivered a second time")

    def test_qos2_outbound_pubrec_state_survives(self):
        topic, cid = unique("q2out"), unique("q2out-sub")
        sub = self.persistent(4, cid)
        sub.subscribe(topic, qos=2)
        self.raw(4).publish(topic, b"once", 2)  # the whole QoS 2 flow: PUBCOMP back

        p = sub.expect_matching(T.PUBLISH)
        self.assertEqual((p.topic, p.payload, p.qos, p.dup), (topic, b"once", 2, False))
        sub.send(build_ack(T.PUBREC, p.pid))
        rel = sub.expect_matching(T.PUBREL, p.pid)  # no PUBCOMP from us
        self.assertEqual(rel.flags, 0x02)

        self.restart_after_kill9()

        sub2 = self.reconnect(4, cid)
        self.assertTrue(sub2.connack.session_present)
        try:
            first = sub2.recv_packet(timeout=IDLE)
        except AssertionError:
            self.fail(f"nothing re-sent after kill -9: expected PUBREL {p.pid} "
                      "(the PUBREC-received state was lost)")
        self.assertEqual((first.name, getattr(first, "pid", None)), ("PUBREL", p.pid),
                         f"expected PUBREL {p.pid} re-sent (not the PUBLISH), got {first!r}")
        self.assertEqual(first.flags, 0x02, "PUBREL fixed header flags must be 0010")
        sub2.send(build_ack(T.PUBCOMP, p.pid))
        self.assert_nothing_before_marker(sub2, self.raw(4), topic,
                                          "the QoS 2 message whose PUBREC was received came again")

    def test_expired_session_queue_deleted(self):
        topic, cid = unique("exp"), unique("exp-sub")
        sub = self.persistent(5, cid, expiry=2)
        sub.subscribe(topic, qos=1)
        self.disconnect(sub)
        offline = time.monotonic()

        pub = self.raw(4)
        self.publish_pipelined(pub, topic, [f"q{i}".encode() for i in range(10)])
        self.broker.kill9()
        sleep_until(offline + 2.5)  # past the 2 s expiry while gannet is down
        self.broker.restart()

        sub2 = self.reconnect(5, cid, expiry=60)
        self.assertFalse(sub2.connack.session_present, "the session outlived its 2 s expiry")
        # A new session: subscribe again, then only the marker may arrive (a
        # resurrected queue would come at once, before or after the SUBACK).
        self.subscribe_keeping_publishes(sub2, topic, 1)
        self.assert_nothing_before_marker(sub2, self.raw(4), topic,
                                          "the expired session's queue was delivered to the new session")

    def test_message_expiry_honoured_from_disk(self):
        topic, cid = unique("mexp"), unique("mexp-sub")
        sub = self.persistent(5, cid)
        sub.subscribe(topic, qos=1)
        self.disconnect(sub)

        pub = self.raw(5)
        published = time.monotonic()
        ack = pub.publish(topic, b"expiring", 1, props={P.MESSAGE_EXPIRY_INTERVAL: 1})
        self.assertEqual(ack.rc, 0)
        ack = pub.publish(topic, b"keep", 1)
        self.assertEqual(ack.rc, 0)

        self.broker.kill9()
        sleep_until(published + 1.5)  # the 1 s expiry passes while gannet is down
        self.broker.restart()

        sub2 = self.reconnect(5, cid)
        self.assertTrue(sub2.connack.session_present)
        got = self.receive(sub2, 1)
        self.assertEqual([p.payload for p in got], [b"keep"],
                         "expected only the message without expiry (queued second)")
        self.assertNotIn(P.MESSAGE_EXPIRY_INTERVAL, got[0].props)
        self.assert_nothing_before_marker(sub2, self.raw(4), topic, "after the surviving message")


@gannet_only("kill -9: Mosquitto loses what it has not autosaved; /metrics")
class QueueBoundAfterRestartTest(DurableTestBase):

    broker_flags = {"max_queued_messages": 50}
    broker_metrics = True

    def queue_full_drops(self):
        return self.broker.metric("gannet_messages_dropped_total", reason="queue_full") or 0

    def test_queue_bound_applies_after_restart(self):
        topic, cid = unique("bound"), unique("bound-sub")
        self.offline_subscriber(topic, cid)

        published = [f"m{i:03d}".encode() for i in range(100)]
        pub = self.raw(4)
        self.assertEqual(self.publish_pipelined(pub, topic, published), published)  # all acknowledged
        # refuse-newest: m050..m099 were dropped for this session, and counted.
        wait_for(lambda: self.queue_full_drops() == 50, 5, "50 queue_full drops")

        self.restart_after_kill9()

        # The 50 queued on disk still fill the queue: more are refused too.
        self.publish_pipelined(self.raw(4), topic, [f"n{i:03d}".encode() for i in range(10)])

        sub2 = self.reconnect(4, cid)
        self.assertTrue(sub2.connack.session_present)
        got = [p.payload for p in self.receive(sub2, 50)]
        self.assertEqual(got, published[:50],
                         f"expected exactly m000..m049 (received {len(got)}: first {got[:3]}, "
                         f"last {got[-3:]})")
        self.assertEqual(self.queue_full_drops(), 10, "the 10 published after the restart onto the "
                                                      "full queue are counted as queue_full")
        self.assert_nothing_before_marker(sub2, self.raw(4), topic, "after the 50 queued messages")


if __name__ == "__main__":
    unittest.main()
