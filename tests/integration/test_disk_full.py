"""A full disk (a real one: a small tmpfs the test mounts and fills) and the
store-wide limit (--max_disk_bytes) on the durable QoS 1 path (issue 3: "when
the disk is full, QoS >= 1 publishes are refused with reason 0x97 (quota
exceeded) or the connection is closed for 3.1.1 -- never a crash, never a
silent loss"; "a RocksDB write error ... surfaces to clients as a failed
acknowledgement, never as a false PUBACK").

Needs root (mount); the tmpfs is unmounted in cleanup."""

import os
import subprocess
import tempfile
import time
import unittest

from gannet_fixture import (BrokerTestCase, P, T, gannet_only, scaled, unique, wait_for)

SUB_PROPS = {P.SESSION_EXPIRY_INTERVAL: 3600}


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@gannet_only("tests gannet's store")
class DiskFullTest(BrokerTestCase):
    start_broker_in_setup = False

    def mount_tmpfs(self, size_mb):
        mnt = tempfile.mkdtemp(prefix="gannet-full-")
        self.addCleanup(os.rmdir, mnt)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", mnt], check=True)
        # Cleanups run last-in first-out: unmount after the broker has stopped.
        self.addCleanup(subprocess.run, ["umount", "-l", mnt], check=False)
        return mnt

    def fill(self, path, leave_bytes):
        """Writes a ballast file until only about `leave_bytes` are free."""
        ballast = os.path.join(path, "ballast")
        with open(ballast, "wb") as f:
            chunk = b"\0" * (1 << 20)
            while free_bytes(path) > leave_bytes + len(chunk):
                f.write(chunk)
                f.flush()
            rest = free_bytes(path) - leave_bytes
            if rest > 0:
                f.write(b"\0" * rest)
        return ballast

    def persistent_subscriber(self, topic):
        cid = unique("sub")
        sub = self.raw(5, connect=False)
        sub.connect(cid, clean=True, props=SUB_PROPS)
        sub.subscribe(topic, qos=1)
        sub.disconnect()
        return cid

    def drain(self, cid, expected_at_least):
        """Reconnects the persistent subscriber and returns the payloads it gets."""
        sub = self.raw(5, connect=False)
        sub.connect(cid, clean=False, props=SUB_PROPS)
        got = []
        while True:
            try:
                p = sub.expect(T.PUBLISH, timeout=3.0 if len(got) >= expected_at_least else 10.0)
            except (AssertionError, OSError):
                break
            got.append(p.payload)
            sub.ack(p)
        return got

    def test_full_disk_refuses_qos1_and_recovers(self):
        # RocksDB resumes writes once 64 MiB are free again (its recovery buffer).
        mnt = self.mount_tmpfs(160)
        data = os.path.join(mnt, "data")
        broker = self.broker = self.launch_broker(data_dir=data, metrics=True)
        topic = unique("full")
        cid = self.persistent_subscriber(topic)
        ballast = self.fill(mnt, leave_bytes=3 << 20)

        # MQTT 5: publish 64 KiB messages until the store cannot take one; the
        # refusal is a PUBACK with 0x97, and nothing before it was refused.
        pub = self.raw(5)
        acked, refused = [], None
        for i in range(400):
            payload = b"%05d" % i + os.urandom(64 * 1024)  # incompressible
            ack = pub.publish(topic, payload, qos=1)
            if ack.rc == 0x97:
                refused = i
                break
            self.assertEqual(ack.rc, 0, f"publish {i}: unexpected reason {ack.rc:#x}")
            acked.append(payload)
        self.assertIsNotNone(refused, "the store never reported a full disk")
        self.assertGreater(len(acked), 0)
        broker.check_alive()
        self.assertGreaterEqual(broker.metric("gannet_publishes_failed_store_total"), 1)

        # 3.1.1 has no negative PUBACK: the connection is closed instead.
        v4 = self.raw(4)
        v4.publish(topic, b"v4" + os.urandom(64 * 1024), qos=1, complete=False)
        closing = v4.wait_closed()
        self.assertFalse(any(p.type == T.PUBACK and p.rc == 0 for p in closing),
                         "a PUBACK for a message the store could not take")

        # Space comes back: publishing works again without a restart.
        os.unlink(ballast)

        def accepted():
            ack = pub.publish(topic, b"again", qos=1)
            return ack.rc == 0
        wait_for(accepted, timeout=scaled(20.0), interval=0.2,
                 message="publishes still refused after the disk has space again")
        broker.check_alive()

        # Every acknowledged message reaches the subscriber, in order, also after
        # a kill -9.
        broker.kill9()
        broker.restart()
        got = self.drain(cid, len(acked))
        got_acked = [g for g in got if g in set(acked)]
        self.assertEqual(got_acked, acked, "an acknowledged message was lost or reordered")
        self.assertIn(b"again", got)


@gannet_only("--max_disk_bytes is gannet's")
class DiskLimitDurableTest(BrokerTestCase):
    """Over --max_disk_bytes, QoS 1 publishes that would be stored for a
    persistent session are refused (0x97 / close), publishes for clean sessions
    carry on."""

    start_broker_in_setup = False

    def test_limit_refuses_durable_qos1_only(self):
        broker = self.broker = self.launch_broker({"max_disk_bytes": 24 << 20,
                                                  "max_queued_messages": 100000})
        topic = unique("lim")
        sub = self.raw(5, connect=False)
        cid = unique("sub")
        sub.connect(cid, clean=True, props=SUB_PROPS)
        sub.subscribe(topic, qos=1)
        sub.disconnect()
        pub = self.raw(5)
        acked = []
        # The limit is checked about once a second: publish until refused.
        deadline = time.monotonic() + scaled(30.0)
        i = 0
        while True:
            ack = pub.publish(topic, b"%05d" % i + os.urandom(32 * 1024), qos=1)
            if ack.rc == 0x97:
                break
            self.assertEqual(ack.rc, 0)
            acked.append(i)
            i += 1
            self.assertLess(time.monotonic(), deadline, "never refused over a 24 MiB limit")
        self.assertGreater(len(acked), 0)
        # A clean subscriber on another topic is still served.
        live = unique("live")
        clean = self.raw(4)
        clean.subscribe(live, qos=1)
        self.assertEqual(pub.publish(live, b"hello", qos=1).rc, 0)
        self.assertEqual(clean.expect(T.PUBLISH).payload, b"hello")
        # 3.1.1 publisher to the durable topic: closed, no PUBACK.
        v4 = self.raw(4)
        v4.publish(topic, b"x", qos=1, complete=False)
        self.assertFalse(any(p.type == T.PUBACK for p in v4.wait_closed()))
        # The subscriber drains its queue; the store shrinks under the limit
        # (deleted messages, flushed and compacted) and publishes are accepted again.
        sub = self.raw(5, connect=False)
        sub.connect(cid, clean=False, props=SUB_PROPS)
        for i in acked:
            p = sub.expect(T.PUBLISH, timeout=10.0)
            self.assertEqual(p.payload[:5], b"%05d" % i)
            sub.ack(p)
        broker.check_alive()


if __name__ == "__main__":
    unittest.main()
