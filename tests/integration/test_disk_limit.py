"""--max_disk_bytes: a store over its disk limit refuses what would grow it —
retained QoS >= 1 publishes (MQTT 5: PUBACK / PUBREC 0x97 Quota exceeded;
3.1.1: the connection is closed, never a false PUBACK) and new persistent
sessions (CONNACK 0x97, or return code 3 for 3.1.1) — while everything that
needs no disk carries on (issue 3: "when the disk is full, QoS >= 1 publishes
are refused with 0x97 or the connection is closed for 3.1.1")."""

import unittest

from gannet_fixture import BrokerTestCase, P, T, gannet_only, unique, wait_for


@gannet_only("--max_disk_bytes is gannet's")
class DiskLimitTest(BrokerTestCase):
    # A freshly opened RocksDB store already takes more than 1 byte: the limit is
    # exceeded from the first check (within about a second of the start).
    broker_flags = {"max_disk_bytes": 1}

    def wait_refusing(self):
        """Polls until a retained QoS 1 publish is refused (the first disk check)."""
        def refused():
            c = self.raw(5)
            ack = c.publish(unique("probe"), b"x", qos=1, retain=True)
            c.disconnect()
            return ack.rc == 0x97
        wait_for(refused, timeout=5.0, message="retained QoS 1 publish never refused with 0x97")

    def test_v5_retained_qos1_and_qos2_refused_with_quota_exceeded(self):
        self.wait_refusing()
        c = self.raw(5)
        self.assertEqual(c.publish(unique("r"), b"x", qos=1, retain=True).rc, 0x97)
        c.publish(unique("r"), b"x", qos=2, retain=True, complete=False)
        self.assertEqual(c.expect(T.PUBREC).rc, 0x97)
        # A refused retained message is not stored: a new subscriber gets nothing.
        topic = unique("kept")
        self.assertEqual(c.publish(topic, b"x", qos=1, retain=True).rc, 0x97)
        sub = self.raw(5)
        sub.subscribe(topic, qos=1)
        sub.ping()  # a retained PUBLISH would come before the PINGRESP
        self.assertEqual([p for p in sub.pending if p.type == T.PUBLISH], [])

    def test_v311_retained_qos1_closes_the_connection(self):
        self.wait_refusing()
        c = self.raw(4)
        c.publish(unique("r"), b"x", qos=1, retain=True, complete=False)
        closing = c.wait_closed()
        self.assertFalse(any(p.type == T.PUBACK for p in closing), "a false PUBACK was sent")

    def test_new_persistent_session_refused_clean_session_served(self):
        self.wait_refusing()
        v5 = self.raw(5, connect=False)
        ack = v5.connect(unique("p5"), clean=True, props={P.SESSION_EXPIRY_INTERVAL: 3600},
                         expect_rc=None)
        self.assertEqual(ack.rc, 0x97)
        v4 = self.raw(4, connect=False)
        self.assertEqual(v4.connect(unique("p4"), clean=False, expect_rc=None).rc, 3)
        # What needs no disk carries on: clean sessions, non-retained QoS 1.
        topic = unique("live")
        sub = self.raw(4)
        sub.subscribe(topic, qos=1)
        pub = self.raw(5)
        self.assertEqual(pub.publish(topic, b"hello", qos=1).rc, 0)
        got = sub.expect(T.PUBLISH)
        self.assertEqual(got.payload, b"hello")


if __name__ == "__main__":
    unittest.main()
