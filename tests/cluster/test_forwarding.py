"""Route replication and forwarding (issue 4): a subscription on one node
becomes a route on every node; a publish on any node reaches the subscribers
on the others, once per subscriber, with the subscriber's granted QoS. The
cluster metrics (peer_up, peers, routes, forwarded / received, forward
duration) follow them.

Raw socket clients (exact QoS and flags). Route changes are eventually
consistent: each test waits (polling gannetctl status) until the publishing
node has the routes it relies on. Absences are checked with a marker message
from the same publisher, after the one that must not arrive."""

import re
import unittest

from cluster_fixture import FAST, ClusterTestCase
from gannet_fixture import T, unique


class ForwardingTest(ClusterTestCase):
    node_metrics = True

    def subscriber(self, node, *filters, qos=2):
        c = self.raw(5, broker=self.nodes[node])
        for f in filters:
            c.subscribe(f, qos=qos)
        return c

    def assert_next_is(self, sub, payload, what):
        p = sub.expect_matching(T.PUBLISH)
        sub.ack(p)
        self.assertEqual(p.payload, payload, what)
        return p

    def test_qos_0_1_2_reach_a_subscriber_on_another_node(self):
        base = unique("fw")
        sub = self.subscriber(1, f"{base}/+/x", qos=2)
        self.wait_routes(3, 1, lambda n: n >= 1)
        pub = self.raw(5, broker=self.nodes[3])
        for qos in (0, 1, 2):
            pub.publish(f"{base}/q{qos}/x", f"qos{qos}".encode(), qos)
            p = self.assert_next_is(sub, f"qos{qos}".encode(), f"QoS {qos} across nodes")
            self.assertEqual((p.topic, p.qos), (f"{base}/q{qos}/x", qos))
        # Granted QoS 1 caps a QoS 2 publish.
        sub1 = self.subscriber(2, f"{base}/#", qos=1)
        self.wait_routes(3, 2, lambda n: n >= 1)
        pub.publish(f"{base}/capped/x", b"capped", 2)
        p = self.assert_next_is(sub1, b"capped", "QoS 2 publish to a QoS 1 subscription")
        self.assertEqual(p.qos, 1)
        self.assert_next_is(sub, b"capped", "the node 1 subscriber gets it too")

    def test_overlapping_filters_on_one_node_get_one_copy(self):
        base = unique("ov")
        sub = self.subscriber(1, f"{base}/#", f"{base}/+", f"{base}/a", qos=1)
        self.wait_routes(3, 1, lambda n: n >= 3)
        pub = self.raw(4, broker=self.nodes[3])
        pub.publish(f"{base}/a", b"once", 1)
        pub.publish(f"{base}/marker", b"marker", 1)
        self.assert_next_is(sub, b"once", "the publish")
        self.assert_next_is(sub, b"marker", "a second copy came before the marker")

    def test_unsubscribe_stops_delivery(self):
        base = unique("un")
        sub = self.subscriber(1, f"{base}/gone", f"{base}/marker", qos=1)
        self.wait_routes(3, 1, lambda n: n == 2)
        pub = self.raw(4, broker=self.nodes[3])
        pub.publish(f"{base}/gone", b"before", 1)
        self.assert_next_is(sub, b"before", "delivered while subscribed")
        sub.unsubscribe(f"{base}/gone")
        self.wait_routes(3, 1, lambda n: n == 1)
        pub.publish(f"{base}/gone", b"after", 1)
        pub.publish(f"{base}/marker", b"marker", 1)
        self.assert_next_is(sub, b"marker", "a message arrived for a filter unsubscribed from")

    def check_group_over_two_nodes(self, base, plain_on_node_2):
        """A share group with a member on nodes 1 and 2 (and, with
        plain_on_node_2, a plain subscriber on node 2 too): 20 messages
        published on node 3 reach the group exactly once each, on both nodes,
        and the plain subscriber every one."""
        group = f"$share/g-{base}/{base}/+"
        # Each member also has a plain subscription for its end marker.
        members = {n: self.subscriber(n, group, f"{base}-end/{n}", qos=1) for n in (1, 2)}
        plain = self.subscriber(2, f"{base}/+", f"{base}-end/plain", qos=1) if plain_on_node_2 else None
        self.wait_routes(3, 1, lambda n: n >= 2)
        self.wait_routes(3, 2, lambda n: n >= (4 if plain else 2))
        pub = self.raw(4, broker=self.nodes[3])
        expected = [f"m{i:02d}".encode() for i in range(20)]
        for p in expected:
            pub.publish(f"{base}/x", p, 1)
        # From the same publisher: an end marker reaches its node after the messages before it.
        for name in ("1", "2") + (("plain",) if plain else ()):
            pub.publish(f"{base}-end/{name}", b"end", 1)
        got = {n: self.read_until_end(c) for n, c in members.items()}
        self.assertEqual(sorted(got[1] + got[2]), expected,
                         f"each message exactly once across the group: {got}")
        self.assertTrue(got[1] and got[2], f"the group spans both nodes: {got}")
        if plain:
            self.assertEqual(self.read_until_end(plain), expected, "the plain subscriber")

    def test_shared_subscription_over_two_nodes_delivers_each_message_once(self):
        self.check_group_over_two_nodes(unique("sh"), plain_on_node_2=False)

    def read_until_end(self, c):
        """Payloads `c` receives (acking them) up to an b"end" message."""
        got = []
        while True:
            p = c.expect_matching(T.PUBLISH)
            c.ack(p)
            if p.payload == b"end":
                return got
            got.append(p.payload)

    def test_plain_and_shared_subscribers_on_one_node_get_one_copy_each(self):
        # Node 2 holds a persistent plain subscriber and a share group's only
        # member: node 1 sends each message there once, the publisher gets its
        # PUBACK (it used to wait forever for a second forward's ack), and each
        # subscriber gets each message once.
        base = unique("ps")
        plain, _ = self.persistent_raw(2, f"{base}-plain")
        plain.subscribe([(f"{base}/+", 1), (f"{base}-end/plain", 1)])
        member = self.subscriber(2, f"$share/g-{base}/{base}/+", f"{base}-end/member", qos=0)
        self.wait_routes(1, 2, lambda n: n >= 4)
        pub = self.raw(5, broker=self.nodes[1])
        expected = [f"m{i}".encode() for i in range(5)]
        for p in expected:
            ack = pub.publish(f"{base}/x", p, 1)  # waits for the PUBACK
            self.assertEqual(ack.type, T.PUBACK)
        pub.publish(f"{base}-end/plain", b"end", 1)
        pub.publish(f"{base}-end/member", b"end", 1)
        self.assertEqual(self.read_until_end(plain), expected, "the plain subscriber")
        self.assertEqual(self.read_until_end(member), expected, "the share group's member")

    def test_a_group_with_members_on_two_nodes_gets_each_message_once_beside_plain_routes(self):
        # Node 2 also has a plain subscriber: every message goes there, but its
        # group member gets only those the publishing node picked it for.
        self.check_group_over_two_nodes(unique("pg"), plain_on_node_2=True)

    def test_puback_means_durable_on_the_subscribers_node(self):
        """A persistent subscriber on node 1 is offline; 300 QoS 1 messages are
        published on node 2 and acknowledged; node 1 is killed with SIGKILL at
        once and restarted: every acknowledged message is there."""
        base, cid = unique("dur"), unique("dur-sub")
        sub = self.raw(4, client_id=cid, clean=False, broker=self.nodes[1])
        sub.subscribe(f"{base}/#", qos=1)
        sub.send(b"\xe0\x00")  # DISCONNECT
        sub.wait_closed()
        self.wait_routes(2, 1, lambda n: n >= 1)
        pub = self.raw(4, broker=self.nodes[2])
        expected = [f"m{i:03d}".encode() for i in range(300)]
        for p in expected:
            self.assertEqual(pub.publish(f"{base}/t", p, 1).rc, 0)
        self.nodes[1].kill9()
        self.nodes[1].restart()
        sub2 = self.raw(4, client_id=cid, clean=False, broker=self.nodes[1])
        self.assertTrue(sub2.connack.session_present)
        got = []
        while len(got) < len(expected):
            p = sub2.expect_matching(T.PUBLISH)
            sub2.ack(p)
            got.append(p.payload)
        self.assertEqual(got, expected, "acknowledged messages lost or out of order")

    def test_dead_node_routes_dropped_and_back_after_restart(self):
        base = unique("dead")
        self.subscriber(2, f"{base}/t", qos=1)
        self.wait_routes(1, 2, lambda n: n == 1)
        self.nodes[2].kill9()
        self.wait_state(1, 2, "dead")
        self.nodes[1].wait_log(re.compile(r"routes of node 2 dropped"), what="routes dropped on node 1")
        # Publishing towards the dead node's former route: served, not stuck.
        self.raw(4, broker=self.nodes[1]).publish(f"{base}/t", b"nobody", 1)
        self.nodes[2].restart()
        self.wait_state(1, 2, "alive")
        sub = self.subscriber(2, f"{base}/t", qos=1)
        self.wait_routes(1, 2, lambda n: n == 1)
        self.raw(4, broker=self.nodes[1]).publish(f"{base}/t", b"back", 1)
        self.assert_next_is(sub, b"back", "routes work again after the node rejoined")

    def test_cluster_metrics_count_peers_routes_and_forwards(self):
        """docs/metrics.md, Cluster: each node sees both peers up; a subscription
        on node 1 is one route of node 1 on node 3; QoS 1 publishes on node 3
        are counted as forwarded to node 1 there, received from node 3 on node
        1, and their acknowledgements time the forward-duration histogram."""
        for i in (1, 2, 3):
            for j in (1, 2, 3):
                if i != j:
                    self.assertEqual(self.nodes[i].metric("gannet_cluster_peer_up", peer=str(j)), 1)
            self.assertEqual(self.nodes[i].metric("gannet_cluster_peers", state="alive"), 2)
        base = unique("mx")
        sub = self.subscriber(1, f"{base}/#", qos=1)
        self.wait_routes(3, 1, lambda n: n == 1)
        n3, n1 = self.nodes[3], self.nodes[1]
        self.assertEqual(n3.metric("gannet_cluster_routes", peer="1"), 1)
        self.assertEqual(n3.metric("gannet_cluster_routes", peer="2"), 0)
        forwarded = {p: n3.metric("gannet_cluster_forwarded_messages_total", peer=p) for p in "12"}
        received = n1.metric("gannet_cluster_received_messages_total", peer="3")
        timed = n3.metric("gannet_cluster_forward_duration_seconds_count")
        pub = self.raw(4, broker=n3)
        for i in range(10):
            self.assertEqual(pub.publish(f"{base}/t", f"{i}".encode(), 1).rc, 0)
        for i in range(10):
            self.assert_next_is(sub, f"{i}".encode(), "forwarded in order")
        self.assertEqual(n3.metric("gannet_cluster_forwarded_messages_total", peer="1"),
                         forwarded["1"] + 10)
        self.assertEqual(n3.metric("gannet_cluster_forwarded_messages_total", peer="2"),
                         forwarded["2"], "no route to node 2: nothing forwarded there")
        self.assertEqual(n1.metric("gannet_cluster_received_messages_total", peer="3"), received + 10)
        # Each PUBACK waited for node 1's ForwardAck, which was timed first.
        self.assertGreater(n3.metric("gannet_cluster_forward_duration_seconds_count"), timed)
        self.assertEqual(n3.metric("gannet_cluster_forward_duration_seconds_bucket", le="+Inf"),
                         n3.metric("gannet_cluster_forward_duration_seconds_count"))


class UnreachableNodeTest(ClusterTestCase):
    """Messages for a node whose link is down are kept on disk by the
    publishing node and delivered when it is back. A long dead timeout: the
    routes of the killed node stay while it is down."""

    cluster_flags = dict(FAST, cluster_dead_ms=60000)
    node_metrics = True

    def test_messages_for_an_unreachable_node_are_kept_on_disk_and_delivered(self):
        base, cid = unique("keep"), unique("keep-sub")
        sub = self.raw(4, client_id=cid, clean=False, broker=self.nodes[3])
        sub.subscribe(f"{base}/t", qos=1)
        sub.disconnect()
        self.wait_routes(1, 3, lambda n: n == 1)
        self.nodes[3].kill9()
        self.nodes[1].wait_log(re.compile(r"link to node 3 at \S+: (link lost|unreachable)"),
                               what="node 1 noticing the lost link")
        pub = self.raw(5, broker=self.nodes[1])
        expected = [f"k{i:03d}".encode() for i in range(200)]
        for p in expected:
            ack = pub.publish(f"{base}/t", p, 1)
            self.assertEqual(ack.rc, 0, "acknowledged: kept on node 1's disk")
        self.nodes[1].wait_log(re.compile(r"keeping messages for it on disk"),
                               what="node 1 keeping messages for node 3")
        self.assertEqual(self.nodes[1].metric("gannet_cluster_messages_kept"), 200)
        # Kept across a crash of the publishing node too.
        self.nodes[1].kill9()
        self.nodes[1].restart()
        self.nodes[3].restart()
        self.nodes[1].wait_log(re.compile(r"messages kept for node 3 sent"),
                               what="node 1 sending what it kept")
        back = self.raw(4, client_id=cid, clean=False, broker=self.nodes[3])
        self.assertTrue(back.connack.session_present)
        got = []
        while len(got) < len(expected):
            p = back.expect_matching(T.PUBLISH, timeout=10)
            back.ack(p)
            got.append(p.payload)
        self.assertEqual(got, expected, "kept messages lost or out of order")
        self.assertEqual(self.nodes[1].metric("gannet_cluster_messages_kept"), 0)


if __name__ == "__main__":
    unittest.main()
