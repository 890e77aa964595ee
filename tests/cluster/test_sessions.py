"""Session ownership across the cluster (issue 4): a persistent session follows
its client to whatever node it reconnects to, with its subscriptions, inflight
and queued messages; the old node's copy is gone afterwards; a connected client
is taken over (MQTT 5: DISCONNECT 0x8E); concurrent connects of one client id
on two nodes end with exactly one connected.

Raw socket clients (exact flags, packet ids, DUP). Waits poll (gannetctl
status for routes), never sleep."""

import threading
import unittest

from cluster_fixture import ClusterTestCase
from gannet_fixture import P, T, ConnectionClosed, RawClient, unique, wait_for

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


if __name__ == "__main__":
    unittest.main()
