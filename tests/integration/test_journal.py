"""The inflight journal (<data_dir>/journal, docs/storage.md): what a persistent
subscriber has in flight is written there, one frame per loop iteration.

* A record a client never acknowledges moves into the store once the journal
  has moved on by two files (--journal_segment_bytes), so the journal's files
  go while the message stays durable: after kill -9 it is re-sent with DUP and
  its packet id.
* A journal file ending in a frame cut short (a crash mid-write) is read up to
  that frame; a file damaged in the middle stops gannet at startup with exit
  status 1 and a message naming the file.

Raw socket clients: exact packet ids and DUP flags."""

import os
import unittest

from gannet_fixture import T, gannet_only, unique
from test_durable_queues import DurableTestBase
from test_persistence import run_gannet

SEGMENT = 32768


def journal_files(data_dir):
    d = os.path.join(data_dir, "journal")
    return sorted(f for f in os.listdir(d) if f.endswith(".journal")) if os.path.isdir(d) else []


@gannet_only("the inflight journal is gannet's")
class JournalTest(DurableTestBase):

    broker_flags = {"journal_segment_bytes": SEGMENT, "max_inflight_messages": 20,
                    "max_queued_messages": 10000, "workers": 1}
    broker_metrics = True

    def test_unacknowledged_records_leave_the_journal_and_survive_sigkill(self):
        window = 20
        slow_topic, slow_cid = unique("slow"), unique("slow-sub")
        slow = self.persistent(4, slow_cid)
        slow.subscribe(slow_topic, qos=1)  # connected, never acknowledges
        pub = self.raw(4)
        expected_slow = [f"s{i:02d}".encode() for i in range(window)]
        self.publish_pipelined(pub, slow_topic, expected_slow)
        first = [slow.expect_matching(T.PUBLISH) for _ in range(window)]
        self.assertEqual([p.payload for p in first], expected_slow)
        self.assertEqual(journal_files(self.broker.data_dir), ["w0-0000000001.journal"])

        # Traffic through the journal: a persistent subscriber that acknowledges
        # everything, ~30 journal files' worth.
        fast_topic, fast_cid = unique("fast"), unique("fast-sub")
        fast = self.persistent(4, fast_cid)
        fast.subscribe(fast_topic, qos=1)
        payloads = [f"f{i:04d}-".encode() + b"x" * 300 for i in range(3000)]
        self.publish_pipelined(pub, fast_topic, payloads)
        got = self.receive(fast, len(payloads))
        self.assertEqual([p.payload for p in got], payloads)
        fast.ping()  # gannet handled the last PUBACK

        files = journal_files(self.broker.data_dir)
        self.assertNotIn("w0-0000000001.journal", files,
                         "the file holding the unacknowledged records was not removed")
        self.assertLessEqual(len(files), 2, f"old journal files are not removed: {files}")
        self.assertEqual(self.broker.metric("gannet_journal_records_moved_total"), window)
        on_disk = sum(os.path.getsize(os.path.join(self.broker.data_dir, "journal", f))
                      for f in files)
        self.assertEqual(self.broker.metric("gannet_journal_disk_bytes"), on_disk)

        self.restart_after_kill9()

        slow2 = self.reconnect(4, slow_cid)
        self.assertTrue(slow2.connack.session_present)
        again = self.receive(slow2, window)
        self.assertEqual([(p.payload, p.pid, p.dup) for p in again],
                         [(p.payload, p.pid, True) for p in first],
                         "the unacknowledged messages must come again, DUP=1, same packet ids")
        self.assert_nothing_before_marker(slow2, self.raw(4), slow_topic, "after the 20 re-sent")
        fast2 = self.reconnect(4, fast_cid)
        self.assert_nothing_before_marker(fast2, self.raw(4), fast_topic,
                                          "acknowledged messages came back after the restart")

    def inflight_in_two_frames(self):
        """A subscriber with two unacknowledged messages, each written by its own
        commit (two frames); gannet killed. Returns (client id, topic, file)."""
        topic, cid = unique("frames"), unique("frames-sub")
        sub = self.persistent(4, cid)
        sub.subscribe(topic, qos=1)
        pub = self.raw(4)
        for payload in (b"one", b"two"):
            pub.publish(topic, payload, 1)  # waits for the PUBACK: the frame is written
            self.assertEqual(sub.expect_matching(T.PUBLISH).payload, payload)
        self.broker.kill9()
        files = journal_files(self.broker.data_dir)
        self.assertEqual(len(files), 1, files)
        return cid, topic, os.path.join(self.broker.data_dir, "journal", files[0])

    def test_torn_tail_is_ignored(self):
        cid, topic, path = self.inflight_in_two_frames()
        with open(path, "ab") as f:
            f.write(b"\x40\x00\x00\x00\x01\x02\x03")  # a frame header cut short
        self.broker.restart()
        sub = self.reconnect(4, cid)
        got = self.receive(sub, 2)
        self.assertEqual([(p.payload, p.dup) for p in got], [(b"one", True), (b"two", True)])
        self.assertEqual(journal_files(self.broker.data_dir), [],
                         "the journal read at startup is removed (its records are in the store)")

    def test_damaged_journal_exits_1_naming_the_file(self):
        cid, topic, path = self.inflight_in_two_frames()
        with open(path, "r+b") as f:
            f.seek(8 + 8 + 2)  # inside the first frame; the second follows it
            b = f.read(1)
            f.seek(8 + 8 + 2)
            f.write(bytes([b[0] ^ 0xFF]))
        rc, out = run_gannet(self.broker.data_dir)
        self.assertEqual(rc, 1, out)
        self.assertIn(path, out, "the message should name the damaged file")
        self.assertIn("damaged", out)


if __name__ == "__main__":
    unittest.main()
