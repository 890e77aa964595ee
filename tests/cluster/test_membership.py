"""Cluster membership (issue 4, first step): three real gannet nodes on
loopback find each other over gRPC, authenticate with the shared secret,
heartbeat, and report each other alive / suspect / dead through gannetctl.

* every node sees the other two alive;
* a node killed with SIGKILL becomes suspect, then dead, on the others; when it
  comes back it is alive again with a new incarnation;
* a node with the wrong cluster secret is refused (never alive), and says why;
* gannetctl with the wrong secret is refused (exit 1);
* a node whose peers are all down still serves its own MQTT clients."""

import re
import unittest

from cluster_fixture import ClusterTestCase
from gannet_fixture import T, unique


class MembershipTest(ClusterTestCase):

    def test_every_node_sees_the_others_alive(self):
        for observer in (1, 2, 3):
            for other in (1, 2, 3):
                if other != observer:
                    self.wait_state(observer, other, "alive")
        status = self.status(1)
        self.assertEqual(status[1]["state"], "self")
        self.assertEqual(sorted(status), [1, 2, 3])

    def test_killed_node_is_suspect_then_dead_then_rejoins(self):
        before = self.wait_state(1, 3, "alive")
        self.nodes[3].kill9()
        # Heartbeats every 100 ms; suspect after 600 ms, dead after 1500 ms silent.
        self.wait_state(1, 3, "dead")
        self.wait_state(2, 3, "dead")
        self.nodes[1].wait_log(re.compile(r"node 3 is suspect"), what="node 3 suspect on node 1")
        self.nodes[1].wait_log(re.compile(r"node 3 is dead"), what="node 3 dead on node 1")
        self.assertEqual(self.status(1)[2]["state"], "alive", "node 2 must not be affected")

        self.nodes[3].restart()
        after = self.wait_state(1, 3, "alive")
        self.wait_state(2, 3, "alive")
        self.wait_state(3, 1, "alive")
        self.assertNotEqual(after["incarnation"], before["incarnation"],
                            "a restarted node must come back with a new incarnation")
        self.nodes[1].wait_log(re.compile(r"node 3 restarted"), what="node 3 restarted on node 1")

    def test_status_reports_connections_and_routes_of_every_node(self):
        c = self.raw(4, broker=self.nodes[2])
        c.subscribe(unique("r") + "/#", qos=0)
        self.wait_for_report(1, 2, lambda r: r["connections"] >= 1 and r["routes"] >= 1)


    def wait_for_report(self, observer, node, predicate):
        from gannet_fixture import wait_for
        last = {}

        def check():
            nonlocal last
            last = self.status(observer).get(node, {})
            return last.get("state") == "alive" and predicate(last)

        try:
            wait_for(check, timeout=10.0, interval=0.05, message=f"node {observer}'s view of {node}")
        except AssertionError as e:
            raise AssertionError(f"{e}: {last}") from None


class PeerNamesTest(ClusterTestCase):
    start_cluster_in_setup = False

    def test_peers_given_by_host_name(self):
        """--peers may name hosts (resolved on every dial, as a Kubernetes pod's
        name is after it comes back with a new IP)."""
        for i in (1, 2, 3):
            peers = ",".join(f"{j}@localhost:{self.cluster_ports[j - 1]}"
                             for j in (1, 2, 3) if j != i)
            self.start_node(i, peers=peers)
        for observer, node in ((1, 2), (2, 3), (3, 1)):
            self.wait_state(observer, node, "alive")
        self.nodes[2].kill9()
        self.wait_state(1, 2, "dead")
        self.nodes[2].restart()
        self.wait_state(1, 2, "alive")


class WrongSecretTest(ClusterTestCase):
    start_cluster_in_setup = False

    def test_node_with_wrong_secret_is_refused(self):
        self.start_node(1)
        self.start_node(2)
        self.wait_state(1, 2, "alive")
        bad = self.secret_file + ".bad"
        with open(bad, "w") as f:
            f.write("not-the-secret\n")
        self.start_node(3, secret_file=bad)
        self.nodes[3].wait_log(re.compile(r"does not know the cluster secret"),
                               what="node 3 logging that its peers' proofs fail")
        self.nodes[1].wait_log(re.compile(r"node 3 .*(does not know the cluster secret|"
                                          r"another cluster secret)"),
                               what="node 1 logging the refused link with node 3")
        # Give it several heartbeat and suspect periods: it must never become alive.
        for _ in range(10):
            self.assertNotIn(self.status(1)[3]["state"], ("alive", "suspect"))
            self.assertNotIn(self.status(2)[3]["state"], ("alive", "suspect"))

    def test_gannetctl_with_wrong_secret_is_refused(self):
        self.start_node(1)
        bad = self.secret_file + ".bad"
        with open(bad, "w") as f:
            f.write("not-the-secret\n")
        rc, out, err = self.gannetctl(1, "status", secret_file=bad)
        self.assertEqual(rc, 1, out)
        self.assertIn("not authenticated", err)
        rc, out, err = self.gannetctl(1, "status")
        self.assertEqual(rc, 0, err)

    def test_node_without_peers_serves_its_own_clients(self):
        node = self.start_node(1)  # nodes 2 and 3 never start
        self.assertEqual(self.status(1)[2]["state"], "unreachable")
        topic = unique("alone")
        sub = self.raw(4, broker=node)
        sub.subscribe(topic, qos=1)
        self.raw(4, broker=node).publish(topic, b"still serving", 1)
        p = sub.expect_matching(T.PUBLISH)
        self.assertEqual(p.payload, b"still serving")


if __name__ == "__main__":
    unittest.main()
