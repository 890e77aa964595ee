"""Session ownership across the cluster (issue 4): a persistent session follows
its client to whatever node it reconnects to, with its subscriptions, inflight
and queued messages; the old node's copy is gone afterwards; a connected client
is taken over (MQTT 5: DISCONNECT 0x8E); concurrent connects of one client id
on two nodes end with exactly one connected.

Raw socket clients (exact flags, packet ids, DUP). Waits poll (gannetctl
status for routes), never sleep."""

import re
import threading
import time
import unittest

from cluster_fixture import ClusterTestCase
from gannet_fixture import (P, T, ConnectionClosed, RawClient, build_ack,
                            build_publish, unique, wait_for)

EXPIRY = {P.SESSION_EXPIRY_INTERVAL: 3600}


class SessionTest(ClusterTestCase):

    def persistent(self, node, client_id, version=4, expect_present=None):
        c = self.raw(version, broker=self.nodes[node], connect=False)
        if version == 5:
            ack = c.connect(client_id, clean=False, props=EXPIRY)
        else:
            ack = c.connect(client_id, clean=False)
        if expect_present is not None:
            self.assertEqual(ack.session_present, expect_present,
                             f"session present on node {node}")
        return c

    def test_session_follows_its_client_with_500_queued_messages(self):
        base, cid = unique("sf"), unique("dev")
        sub = self.persistent(1, cid, expect_present=False)
        sub.subscribe(f"{base}/#", qos=1)
        sub.disconnect()
        self.wait_routes(2, 1, lambda n: n >= 1)
        pub = self.raw(4, broker=self.nodes[2])
        for i in range(500):
            ack = pub.publish(f"{base}/m", f"m{i}".encode(), 1)
            self.assertEqual(ack.rc, 0)
        back = self.persistent(3, cid, expect_present=True)
        got = []
        for _ in range(500):
            p = back.expect_matching(T.PUBLISH, timeout=10)
            back.ack(p)
            got.append(p.payload.decode())
        self.assertEqual(got, [f"m{i}" for i in range(500)], "all 500, in order")
        # The session (and its route) left node 1: only node 3 routes the filter.
        self.wait_routes(2, 1, lambda n: n == 0)
        self.wait_routes(2, 3, lambda n: n == 1)
        pub.publish(f"{base}/after", b"after", 1)
        p = back.expect_matching(T.PUBLISH)
        back.ack(p)
        self.assertEqual(p.payload, b"after")

    def test_no_acknowledged_message_is_lost_when_a_session_moves_under_load(self):
        """A publisher on node 2 sends QoS 1 messages without pause while the
        subscriber moves from node 1 to node 3: every acknowledged message
        reaches it (messages routed to node 1 while the routes move follow the
        session)."""
        base, cid = unique("mv"), unique("dev")
        sub = self.persistent(1, cid)
        sub.subscribe(f"{base}/t", qos=1)
        self.wait_routes(2, 1, lambda n: n == 1)
        acked, stop = [], threading.Event()
        pub = self.raw(4, broker=self.nodes[2])

        def publish():
            i = 0
            while not stop.is_set():
                if pub.publish(f"{base}/t", f"{i}".encode(), 1).rc == 0:
                    acked.append(i)
                i += 1

        got = []

        def drain(client, until):
            self.drain_publishes(client, got, until)

        publisher = threading.Thread(target=publish)
        publisher.start()
        try:
            wait_for(lambda: len(acked) >= 300, timeout=30, message="300 messages acknowledged")
            drain(sub, lambda: len(got) >= 200)
            sub.close()
            back = self.persistent(3, cid, expect_present=True)
            moved_at = len(acked)
            wait_for(lambda: len(acked) >= moved_at + 300, timeout=30,
                     message="300 more acknowledged after the move")
        finally:
            stop.set()
            publisher.join()
        # Every acknowledged one (those that followed the session from node 1
        # may come after newer ones), or a timeout: then the assertion says which.
        deadline = time.monotonic() + 15
        drain(back, lambda: set(acked) <= set(got) or time.monotonic() > deadline)
        missing = sorted(set(acked) - set(got))
        self.assertEqual(missing, [], f"acknowledged, never delivered ({len(acked)} acked, "
                                      f"{len(got) - len(set(got))} duplicates)")

    def test_inflight_messages_move_with_dup_and_their_packet_ids(self):
        base, cid = unique("if"), unique("dev")
        sub = self.persistent(1, cid)
        sub.subscribe(f"{base}/#", qos=1)
        self.wait_routes(2, 1, lambda n: n >= 1)
        pub = self.raw(4, broker=self.nodes[2])
        for i in range(5):
            pub.publish(f"{base}/m", f"m{i}".encode(), 1)
        unacked = [sub.expect_matching(T.PUBLISH) for _ in range(5)]
        sub.ack(unacked[0])
        sub.ping()  # the PUBACK of m0 is handled before the connection goes
        sub.close()  # m1..m4 were sent and never acknowledged
        back = self.persistent(3, cid, expect_present=True)
        for want in unacked[1:]:
            p = back.expect_matching(T.PUBLISH)
            self.assertEqual((p.payload, p.pid, p.dup), (want.payload, want.pid, True),
                             "resent on the new node with its packet id and DUP")
            back.ack(p)
        back.ping()
        self.assertEqual(back.pending, [], "m0 was acknowledged: not sent again")

    def test_qos2_states_move_pubrel_outbound_and_inbound(self):
        base, cid = unique("q2"), unique("dev")
        watcher = self.raw(4, broker=self.nodes[2])
        watcher.subscribe(f"{base}-in", qos=2)
        sub = self.persistent(1, cid)
        sub.subscribe(f"{base}/#", qos=2)
        self.wait_routes(2, 1, lambda n: n >= 1)
        self.wait_routes(1, 2, lambda n: n >= 1)
        pub = self.raw(4, broker=self.nodes[2])
        pub.publish(f"{base}/m", b"exactly-once", 2)
        p = sub.expect_matching(T.PUBLISH)
        sub.send(build_ack(T.PUBREC, p.pid))
        sub.expect_matching(T.PUBREL, p.pid)
        # Inbound too: its own QoS 2 publish PUBREC'd, PUBREL not sent yet.
        in_pid = sub.publish(f"{base}-in", b"mine", 2, complete=False)
        sub.expect_matching(T.PUBREC, in_pid)
        sub.close()
        got = watcher.expect_matching(T.PUBLISH)
        watcher.ack(got)
        self.assertEqual(got.payload, b"mine")
        back = self.persistent(3, cid, expect_present=True)
        rel = back.expect_matching(T.PUBREL, p.pid)
        self.assertEqual(rel.pid, p.pid, "the PUBREC'd message goes on as PUBREL")
        back.send(build_ack(T.PUBCOMP, p.pid))
        # The client sends its PUBLISH again (DUP): the new node knows the packet
        # id is awaiting PUBREL and does not deliver it a second time.
        back.send(build_publish(f"{base}-in", b"mine", 2, dup=True, pid=in_pid))
        back.expect_matching(T.PUBREC, in_pid)
        back.send(build_ack(T.PUBREL, in_pid))
        back.expect_matching(T.PUBCOMP, in_pid)
        self.wait_routes(3, 2, lambda n: n >= 1)
        back.publish(f"{base}-in", b"marker", 2)
        nxt = watcher.expect_matching(T.PUBLISH)
        self.assertEqual(nxt.payload, b"marker", "the QoS 2 publish was delivered twice")
        back.ping()
        self.assertFalse([q for q in back.pending if q.type == T.PUBLISH],
                         "the PUBREC'd message is not sent again")

    def test_connected_client_is_taken_over_with_0x8e(self):
        base, cid = unique("to"), unique("dev")
        old = self.persistent(1, cid, version=5)
        old.subscribe(f"{base}/t", qos=1)
        new = self.persistent(2, cid, version=5, expect_present=True)
        packets = old.wait_closed()
        self.assertTrue(any(p.type == T.DISCONNECT and p.rc == 0x8E for p in packets),
                        f"DISCONNECT 0x8E on the old connection, got {packets!r}")
        self.wait_routes(3, 2, lambda n: n == 1)
        self.wait_routes(3, 1, lambda n: n == 0)
        pub = self.raw(5, broker=self.nodes[3])
        pub.publish(f"{base}/t", b"to-new", 1)
        p = new.expect_matching(T.PUBLISH)
        self.assertEqual(p.payload, b"to-new")

    def test_clean_start_elsewhere_discards_the_session(self):
        base, cid = unique("cs"), unique("dev")
        sub = self.persistent(1, cid)
        sub.subscribe(f"{base}/#", qos=1)
        sub.disconnect()
        self.wait_routes(2, 1, lambda n: n == 1)
        fresh = self.raw(4, broker=self.nodes[2], client_id=cid, clean=True)
        self.assertFalse(fresh.connack.session_present)
        self.wait_routes(3, 1, lambda n: n == 0)
        fresh.disconnect()
        again = self.persistent(3, cid, expect_present=False)
        again.disconnect()

    def test_concurrent_connects_on_two_nodes_end_with_one_winner(self):
        for round_ in range(5):
            cid = unique(f"race{round_}")
            clients = [RawClient(self.nodes[n].port, 5) for n in (1, 2)]
            for c in clients:
                self.addCleanup(c.close)
            results = [None, None]

            def connect(i):
                try:
                    results[i] = clients[i].connect(cid, clean=False, props=EXPIRY, expect_rc=None)
                except (ConnectionClosed, OSError, AssertionError) as e:
                    results[i] = e

            threads = [threading.Thread(target=connect, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            open_ = []

            def settled():
                open_[:] = [i for i, c in enumerate(clients) if c.is_open(timeout=2)]
                return len(open_) <= 1

            wait_for(settled, timeout=10, message="one of the two connections to close")
            self.assertEqual(len(open_), 1,
                             f"round {round_}: exactly one connection stays, got {results!r}")
            winner = clients[open_[0]]
            self.assertEqual(winner.connack.rc, 0)
            for c in clients:
                c.close()


class MovedWhileDownTest(ClusterTestCase):
    """A client id whose session moved while its node was down (without a
    replica: --replication_factor=1): the cluster decided the new owner, so the
    returning node drops its stale copy instead of merging it back (an
    unsubscribe, a delivered message, never come back)."""

    start_cluster_in_setup = False
    cluster_flags = dict(ClusterTestCase.cluster_flags, replication_factor=1)

    def test_the_returning_node_drops_its_stale_copy(self):
        base, cid = unique("mw"), unique("dev")
        self.start_node(1)
        self.start_node(3)
        self.wait_state(1, 3, "alive")
        first = self.raw(4, client_id=cid, clean=False, broker=self.nodes[1])
        first.subscribe(f"{base}/a", qos=1)
        first.disconnect()
        self.nodes[1].kill9()  # down with its copy (a drain would hand it over)
        self.start_node(2)
        # Ownership moves away from node 1 once it is dead (not before: it
        # could still be serving the session).
        self.wait_state(3, 1, "dead")
        self.wait_state(3, 2, "alive")
        second = self.raw(4, client_id=cid, clean=False, broker=self.nodes[2])
        self.assertFalse(second.connack.session_present, "node 1 (with the session) is down")
        second.subscribe(f"{base}/b", qos=1)
        second.disconnect()
        self.nodes[1].restart()
        self.nodes[1].wait_log(re.compile(r"1 sessions here are owned by other nodes now"),
                               timeout=15)
        for observer, node in ((3, 1), (3, 2)):
            self.wait_routes(observer, node, lambda n, node=node: n == (0 if node == 1 else 1))
        pub = self.raw(4, broker=self.nodes[3])
        pub.publish(f"{base}/a", b"a-stale", 1)
        pub.publish(f"{base}/b", b"b-current", 1)
        back = self.raw(4, client_id=cid, clean=False, broker=self.nodes[3])
        self.assertTrue(back.connack.session_present)
        p = back.expect_matching(T.PUBLISH)
        back.ack(p)
        self.assertEqual(p.payload, b"b-current")
        back.ping()
        self.assertEqual(back.pending, [], "the stale copy's subscription did not come back")


if __name__ == "__main__":
    unittest.main()
