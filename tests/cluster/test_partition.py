"""Network partitions between real nodes (netns_fixture.py): three gannet
nodes, each in its own network namespace, joined by a bridge; a partition is
iptables dropping packets between namespaces, so links fail the way they do
on a real network (no RST, no refused dial: silence).

* the three nodes form a cluster across the namespaces;
* an isolated node is declared dead by the others and declares them dead;
  once healed, every node sees every other alive again;
* while node 1 is isolated, the other two go on forwarding: a QoS 1 publish on
  node 2 reaches a subscriber on node 3 (and the publisher gets its PUBACK).

Runs as root only (skipped otherwise)."""

import unittest

from netns_fixture import NetnsClusterTestCase
from gannet_fixture import unique  # after netns_fixture: cluster_fixture puts it on sys.path

ALL = (1, 2, 3)


class PartitionTest(NetnsClusterTestCase):

    def wait_all_alive(self):
        for observer in ALL:
            for other in ALL:
                if other != observer:
                    self.wait_state(observer, other, "alive")

    def test_nodes_in_separate_namespaces_form_a_cluster(self):
        self.wait_state(1, 2, "alive")
        self.wait_state(1, 3, "alive")
        self.wait_all_alive()
        self.assertEqual(self.status(1)[1]["state"], "self")

    def test_isolated_node_is_declared_dead_and_comes_back_when_healed(self):
        self.wait_all_alive()
        self.isolate(1)
        self.wait_state(2, 1, "dead")
        self.wait_state(3, 1, "dead")
        self.wait_state(1, 2, "dead")
        self.wait_state(1, 3, "dead")
        # The majority side still sees itself whole.
        self.assertEqual(self.status(2)[3]["state"], "alive")
        self.assertEqual(self.status(3)[2]["state"], "alive")

        self.heal_all()
        self.wait_all_alive()

    def test_qos1_publish_crosses_the_majority_while_node_1_is_isolated(self):
        self.wait_all_alive()
        self.isolate(1)
        self.wait_state(2, 1, "dead")
        self.wait_state(3, 1, "dead")

        topic = unique("part")
        sub = self.paho(version=5, broker=self.nodes[3])
        sub.subscribe(topic, qos=1)
        self.wait_routes(2, 3, lambda n: n >= 1)
        pub = self.paho(version=5, broker=self.nodes[2])
        pub.publish(topic, b"across the majority", qos=1)  # fails unless PUBACKed
        m = sub.wait_message(topic, b"across the majority")
        self.assertEqual(m.qos, 1)
        self.assertEqual(self.status(2)[1]["state"], "dead", "node 1 must still be cut off")


if __name__ == "__main__":
    unittest.main()
