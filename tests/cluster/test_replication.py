"""Session replication (issue 5): a node's persistent sessions (subscriptions,
inflight and queued messages) are stored on --replication_factor - 1 other
nodes before what makes them durable is acknowledged; the replica follows
every change (messages delivered and acknowledged leave it too).

Raw socket clients; waits poll the replica node's metrics, never sleep."""

import unittest

from cluster_fixture import ClusterTestCase
from gannet_fixture import T, unique, wait_for


class ReplicationTest(ClusterTestCase):
    node_metrics = True

    def replica(self, holder, owner):
        """(sessions, messages) node `holder` keeps of node `owner`'s sessions."""
        b = self.nodes[holder]
        return (b.metric("gannet_replica_sessions", owner=str(owner)) or 0,
                b.metric("gannet_replica_messages", owner=str(owner)) or 0)

    def wait_replica(self, holder, owner, expected, timeout=10.0):
        last = None

        def check():
            nonlocal last
            last = self.replica(holder, owner)
            return last == expected

        try:
            wait_for(check, timeout=timeout, interval=0.05,
                     message=f"node {holder}'s replica of node {owner} to be {expected}")
        except AssertionError as e:
            raise AssertionError(f"{e}; last: {last}") from None

    def test_queued_messages_are_on_the_replica_node_and_leave_it_when_delivered(self):
        base, cid = unique("rq"), unique("dev")
        sub = self.raw(4, broker=self.nodes[1], connect=False)
        sub.connect(cid, clean=False)
        sub.subscribe(f"{base}/#", qos=1)
        sub.disconnect()
        # Node 1 replicates to the next node in ring order: node 2.
        self.wait_replica(2, 1, (1, 0))
        self.wait_routes(3, 1, lambda n: n == 1)
        pub = self.raw(4, broker=self.nodes[3])
        for i in range(50):
            self.assertEqual(pub.publish(f"{base}/m", f"m{i}".encode(), 1).rc, 0)
        # Acknowledged: already on node 2 (the metric reads its store).
        self.assertEqual(self.replica(2, 1), (1, 50))
        self.assertEqual(self.replica(3, 1), (0, 0), "replication factor 2: one replica")
        back = self.raw(4, broker=self.nodes[1], connect=False)
        self.assertTrue(back.connect(cid, clean=False).session_present)
        for i in range(50):
            p = back.expect_matching(T.PUBLISH, timeout=10)
            self.assertEqual(p.payload, f"m{i}".encode())
            back.ack(p)
        self.wait_replica(2, 1, (1, 0))
        back.disconnect()

    def test_a_clean_session_is_not_replicated(self):
        base = unique("rc")
        sub = self.raw(4, broker=self.nodes[1])
        sub.subscribe(f"{base}/#", qos=1)
        self.wait_routes(3, 1, lambda n: n == 1)
        pub = self.raw(4, broker=self.nodes[3])
        self.assertEqual(pub.publish(f"{base}/m", b"x", 1).rc, 0)
        sub.expect_matching(T.PUBLISH)
        self.assertEqual(self.replica(2, 1), (0, 0))


class NoReplicationTest(ClusterTestCase):
    node_metrics = True
    cluster_flags = dict(ClusterTestCase.cluster_flags, replication_factor=1)

    def test_replication_factor_1_keeps_sessions_on_their_node_only(self):
        base, cid = unique("r1"), unique("dev")
        sub = self.raw(4, broker=self.nodes[1], connect=False)
        sub.connect(cid, clean=False)
        sub.subscribe(f"{base}/#", qos=1)
        sub.disconnect()
        self.wait_routes(3, 1, lambda n: n == 1)
        pub = self.raw(4, broker=self.nodes[3])
        self.assertEqual(pub.publish(f"{base}/m", b"x", 1).rc, 0)
        for holder in (2, 3):
            self.assertIsNone(self.nodes[holder].metric("gannet_replica_sessions", owner="1"))
        self.assertIsNone(self.nodes[1].metric("gannet_replication_nodes"))


if __name__ == "__main__":
    unittest.main()
