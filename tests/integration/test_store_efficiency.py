"""The store writes a message once however many offline persistent sessions it
is queued for, and deletes what was delivered (issue 3: "Store once", "delivered
and expired messages are deleted promptly ... the store does not grow without
bound")."""

import os
import re
import unittest

from gannet_fixture import BrokerTestCase, P, T, gannet_only, unique

SUBSCRIBERS = 10
MESSAGES = 200
PAYLOAD = 8 * 1024
SUB_PROPS = {P.SESSION_EXPIRY_INTERVAL: 3600}


def write_bytes(pid):
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    raise AssertionError("no write_bytes in /proc/PID/io")


@gannet_only("tests gannet's store")
class StoreOnceTest(BrokerTestCase):
    broker_flags = {"fsync": "true"}  # every byte reaches the disk (write_bytes counts it)
    broker_metrics = True

    def subscribe_offline(self, topic):
        ids = []
        for _ in range(SUBSCRIBERS):
            cid = unique("sub")
            c = self.raw(5, connect=False)
            c.connect(cid, clean=True, props=SUB_PROPS)
            c.subscribe(topic, qos=1)
            c.disconnect()
            ids.append(cid)
        return ids

    def drain(self, cid, expected):
        c = self.raw(5, connect=False)
        ack = c.connect(cid, clean=False, props=SUB_PROPS)
        self.assertTrue(ack.session_present)
        got = []
        for _ in range(expected):
            p = c.expect(T.PUBLISH, timeout=10.0)
            got.append(p.payload)
            c.ack(p)
        c.ping()  # its acks are processed (and their deletes committed) before the PINGRESP
        c.disconnect()
        return got

    def test_fan_out_to_offline_sessions_writes_each_message_once(self):
        topic = unique("once")
        ids = self.subscribe_offline(topic)
        pub = self.raw(5)
        payloads = [b"%04d" % i + os.urandom(PAYLOAD - 4) for i in range(MESSAGES)]
        before = write_bytes(self.broker.pid)
        for p in payloads:
            self.assertEqual(pub.publish(topic, p, qos=1).rc, 0)
        written = write_bytes(self.broker.pid) - before
        self.assertEqual(self.broker.metric("gannet_messages_stored_total"), MESSAGES)
        payload_bytes = MESSAGES * PAYLOAD
        # Once: the payloads plus small entries, far from one copy per subscriber
        # (10x). Each publish here is two synced commits (the message on the
        # publisher's worker, the queue entries on the subscribers'), and a sync
        # writes whole 4 KiB pages: up to ~1 KiB of overhead per KiB of payload.
        self.assertGreaterEqual(written, payload_bytes)
        self.assertLess(written, 3 * payload_bytes,
                        f"{written} bytes written for {payload_bytes} bytes of payload "
                        f"queued for {SUBSCRIBERS} sessions")

        # Every subscriber gets every message, in order.
        for cid in ids:
            self.assertEqual(self.drain(cid, MESSAGES), payloads)

        # Delivered means deleted: after a kill -9 nothing is left to restore.
        self.broker.kill9()
        self.broker.restart()
        m = self.broker.wait_log(re.compile(
            r"(\d+) inflight and (\d+) queued messages, (\d+) shared message records"))
        self.assertEqual(m.groups(), ("0", "0", "0"), m.group(0))


if __name__ == "__main__":
    unittest.main()
