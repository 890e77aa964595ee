"""Node crash (issue 5): node 1 is killed with SIGKILL. The node holding node
1's replica (node 2, next in ring order) takes its sessions over once node 1
is declared dead; a client reconnecting to another node finds its session
(its connect waits until the session is taken over). Wills of node 1's
clients are published by the node that took their sessions. A restarted node
1 learns that its sessions were taken over and drops its stale copies.

Raw socket clients; waits poll, never sleep."""

import re
import unittest

from cluster_fixture import ClusterTestCase
from gannet_fixture import T, unique, wait_for


class CrashTest(ClusterTestCase):
    node_metrics = True

    def test_will_of_a_client_on_the_crashed_node_is_published(self):
        topic = unique("will")
        watcher = self.raw(4, broker=self.nodes[3])
        watcher.subscribe(topic, qos=1)
        self.wait_routes(1, 3, lambda n: n == 1)
        self.persistent_raw(1, unique("dev"), will=dict(topic=topic, payload=b"gone", qos=1))
        # The session (with its will) is on node 2 too before anything is acked
        # for it; its CONNACK came after node 1 stored it.
        wait_for(lambda: (self.nodes[2].metric("gannet_replica_sessions", owner="1") or 0) == 1,
                 timeout=10, message="the session on node 2's replica")
        self.nodes[1].kill9()
        p = watcher.expect_matching(T.PUBLISH, timeout=15)
        self.assertEqual((p.topic, p.payload), (topic, b"gone"))
        watcher.ack(p)

    def test_restarted_node_drops_the_sessions_taken_over_while_it_was_down(self):
        base, cid = unique("rs"), unique("dev")
        sub, _ = self.persistent_raw(1, cid)
        sub.subscribe(f"{base}/#", qos=1)
        sub.disconnect()
        wait_for(lambda: (self.nodes[2].metric("gannet_replica_sessions", owner="1") or 0) == 1,
                 timeout=10, message="the session on node 2's replica")
        self.nodes[1].kill9()
        self.nodes[2].wait_log(re.compile(r"took over 1 sessions of node 1"), timeout=15)
        # Node 3 routes to node 2 only from here (before, what it kept for node
        # 1 also went to node 2: at least once, not the returning node's doing).
        self.nodes[3].wait_log(re.compile(r"routes kept for dead node 1 dropped"), timeout=15)
        pub = self.raw(4, broker=self.nodes[3])
        self.wait_routes(3, 2, lambda n: n == 1)
        for i in range(20):
            self.assertEqual(pub.publish(f"{base}/m", f"{i}".encode(), 1).rc, 0)
        self.nodes[1].restart()
        self.nodes[1].wait_log(re.compile(r"sessions restored here are gone"), timeout=15)
        self.wait_state(1, 2, "alive")
        # gannet_sessions{state="connected"|"offline"}: metric() sums both states.
        wait_for(lambda: self.nodes[1].metric("gannet_sessions") == 0, timeout=10,
                 message="node 1 holds no session after it learnt they were taken over")
        # The client comes back to node 1: its session (from node 2) with the 20
        # messages, each exactly once.
        back, ack = self.persistent_raw(1, cid)
        self.assertTrue(ack.session_present)
        got = []
        self.drain_publishes(back, got, lambda: len(got) >= 20)
        back.ping()
        self.assertEqual(got, list(range(20)))
        self.assertEqual(back.pending, [], "no message twice")


if __name__ == "__main__":
    unittest.main()
