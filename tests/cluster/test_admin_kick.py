"""`gannetctl kick` (issue 7): an operator disconnects one client by its client
id, wherever it is connected in the cluster, and with --end_session ends its
session too. Every admin call (status, drain, kick) needs the admin token
derived from the cluster secret.

* an MQTT 5 client gets DISCONNECT 0x98 (Administrative action) and its will
  is published; its persistent session is kept (session present on return);
* a 3.1.1 client's connection is closed (no DISCONNECT exists for it), its
  will is published;
* kicking through a node the client is not connected to still finds it;
* --end_session ends the session (connected or offline): a reconnect with
  clean start 0 has session present 0 and no subscription;
* --end_session publishes a delayed will at once (the session ends), while a
  kick that keeps the session leaves it waiting for its delay (one node);
* an unknown client id: exit 1 with a clear message; no client id: exit 2;
* a wrong cluster secret is refused (exit 1) for kick, drain and status, and
  nothing happens: the client stays connected, the node does not drain;
* with --cluster_tls_* set, kick (and its asking of the other members) goes
  over mutual TLS, and gannetctl without a certificate is refused."""

import shutil
import tempfile
import unittest

from cluster_fixture import ClusterTestCase
from gannet_fixture import P, T, unique, wait_for
from pki import SERVER_NAMES, make_ca, make_cert

EXPIRY = {P.SESSION_EXPIRY_INTERVAL: 3600}
ADMINISTRATIVE_ACTION = 0x98


class AdminKickTest(ClusterTestCase):

    def watcher(self, node, topic):
        """A client on node `node` subscribed to `topic` (a will's)."""
        w = self.raw(4, broker=self.nodes[node])
        w.subscribe(topic, qos=1)
        return w

    def kick(self, via, client_id, *flags, secret_file=None):
        return self.gannetctl(via, "kick", client_id, *flags, secret_file=secret_file)

    def assert_kicked_v5(self, client):
        """The client gets DISCONNECT 0x98, then the connection closes."""
        packets = client.wait_closed()
        disconnects = [p for p in packets if p.type == T.DISCONNECT]
        self.assertEqual(len(disconnects), 1, packets)
        self.assertEqual(disconnects[0].rc, ADMINISTRATIVE_ACTION, packets)
        return disconnects[0]

    def test_mqtt5_client_gets_administrative_action_and_its_will_is_published(self):
        cid, will_topic = unique("kick5"), unique("will")
        watcher = self.watcher(1, will_topic)
        c = self.raw(5, broker=self.nodes[1], connect=False)
        c.connect(cid, clean=False, props=EXPIRY,
                  will=dict(topic=will_topic, payload=b"gone", qos=1))
        bystander = self.raw(5, broker=self.nodes[1])

        rc, out, err = self.kick(1, cid)
        self.assertEqual(rc, 0, err)
        self.assertIn("disconnected", out)
        self.assertIn("session of", out)
        self.assertIn("kept", out)
        d = self.assert_kicked_v5(c)
        self.assertIn("administrator", d.props.get(P.REASON_STRING, ""))
        will = watcher.expect_matching(T.PUBLISH)
        self.assertEqual((will.topic, will.payload), (will_topic, b"gone"))
        self.assertTrue(bystander.is_open())
        # Without --end_session the persistent session stays.
        again = self.raw(5, broker=self.nodes[1], connect=False)
        self.assertTrue(again.connect(cid, clean=False, props=EXPIRY).session_present)

    def test_mqtt311_client_is_closed_and_its_will_is_published(self):
        cid, will_topic = unique("kick4"), unique("will")
        watcher = self.watcher(2, will_topic)
        c = self.raw(4, broker=self.nodes[2], connect=False)
        c.connect(cid, will=dict(topic=will_topic, payload=b"bye", qos=0))

        rc, out, err = self.kick(2, cid)
        self.assertEqual(rc, 0, err)
        self.assertIn("disconnected", out)
        self.assertEqual(c.wait_closed(), [])  # 3.1.1 has no DISCONNECT from a server
        will = watcher.expect_matching(T.PUBLISH)
        self.assertEqual(will.payload, b"bye")

    def test_kick_through_a_node_the_client_is_not_connected_to(self):
        cid = unique("elsewhere")
        c = self.raw(5, broker=self.nodes[3], client_id=cid)
        rc, out, err = self.kick(1, cid)
        self.assertEqual(rc, 0, err)
        self.assertIn(f"node 3 ({self.cluster_address(3)})", out)
        self.assertIn("disconnected", out)
        self.assert_kicked_v5(c)

    def test_end_session_of_a_connected_client(self):
        cid, topic = unique("ender"), unique("ended")
        c = self.raw(5, broker=self.nodes[2], connect=False)
        c.connect(cid, clean=False, props=EXPIRY)
        c.subscribe(topic, qos=1)

        rc, out, err = self.kick(1, cid, "--end_session")
        self.assertEqual(rc, 0, err)
        self.assertIn("disconnected", out)
        self.assertIn("ended", out)
        self.assert_kicked_v5(c)
        self.assert_session_gone(3, cid, topic)  # asks the whole cluster for it

    def test_end_session_of_an_offline_session(self):
        cid, topic = unique("offline"), unique("ended")
        c = self.raw(4, broker=self.nodes[3], connect=False)
        c.connect(cid, clean=False)
        c.subscribe(topic, qos=1)
        c.disconnect()
        wait_for(lambda: self.nodes_connections(3) == 0, timeout=5,
                 message="node 3 to see the client gone")

        # Without --end_session there is nothing to kick: exit 1, the session
        # is named.
        rc, out, err = self.kick(1, cid)
        self.assertEqual(rc, 1, out)
        self.assertIn("not connected to any node", err)
        self.assertIn("session is kept on node 3", err)

        rc, out, err = self.kick(1, cid, "--end_session")
        self.assertEqual(rc, 0, err)
        self.assertIn("was not connected", out)
        self.assertIn("ended", out)
        self.assert_session_gone(1, cid, topic, version=4)

    def nodes_connections(self, node):
        return self.status(node)[node]["connections"]

    def assert_session_gone(self, node, cid, topic, version=5):
        """A reconnect to `node` with clean start 0 has session present 0 (a
        connect claims the session from every node), and a message to the old
        subscription's topic does not arrive."""
        again = self.raw(version, broker=self.nodes[node], connect=False)
        ack = again.connect(cid, clean=False, props=EXPIRY if version == 5 else None)
        self.assertFalse(ack.session_present)
        # A marker topic subscribed now: the same publisher's message to it comes
        # after the one to `topic`, which would have come first if subscribed.
        marker = unique("marker")
        again.subscribe(marker, qos=1)
        pub = self.raw(4, broker=self.nodes[node])
        pub.publish(topic, b"old subscription", qos=1)
        pub.publish(marker, b"marker", qos=1)
        p = again.expect(T.PUBLISH)
        self.assertEqual((p.topic, p.payload), (marker, b"marker"))

    def test_unknown_client_id(self):
        rc, out, err = self.kick(2, unique("nobody"))
        self.assertEqual(rc, 1, out)
        self.assertIn("is not connected to any node of the cluster (asked 3 of 3)", err)
        rc, out, err = self.gannetctl(2, "kick")
        self.assertEqual(rc, 2, out)
        self.assertIn("usage: gannetctl kick CLIENT_ID", err)

    def test_wrong_secret_is_refused_for_every_admin_call(self):
        bad = self.secret_file + ".bad"
        with open(bad, "w") as f:
            f.write("not-the-secret\n")
        cid = unique("stays")
        c = self.raw(5, broker=self.nodes[1], client_id=cid)
        for args in (("kick", cid), ("kick", cid, "--end_session"), ("drain",), ("status",)):
            rc, out, err = self.gannetctl(1, *args, secret_file=bad)
            self.assertEqual(rc, 1, f"{args}: {out}")
            self.assertIn("refused the call: not authenticated", err, args)
            self.assertNotIn("disconnected", out)
        self.assertTrue(c.is_open())
        self.assertEqual(self.status(1)[1]["state"], "self")  # not draining
        # The right secret still works.
        rc, out, err = self.kick(1, cid)
        self.assertEqual(rc, 0, err)
        self.assert_kicked_v5(c)


class SingleNodeKickTest(ClusterTestCase):
    """One node with --cluster_listen and no peers: kick needs no cluster."""
    node_count = 1

    def test_will_delay_waits_unless_the_session_ends(self):
        will_topic = unique("delayed")
        watcher = self.raw(4, broker=self.nodes[1])
        watcher.subscribe(will_topic, qos=1)
        clients = {}
        for cid in (unique("kept"), unique("ended")):
            clients[cid] = self.raw(5, broker=self.nodes[1], connect=False)
            clients[cid].connect(cid, clean=False, props=EXPIRY,
                                 will=dict(topic=will_topic, payload=cid.encode(), qos=1,
                                           props={P.WILL_DELAY_INTERVAL: 3600}))
        kept, ended = clients

        # Kicked, session kept: the will waits for its delay (an hour).
        rc, out, err = self.gannetctl(1, "kick", kept)
        self.assertEqual(rc, 0, err)
        self.assertEqual(clients[kept].wait_closed()[0].rc, ADMINISTRATIVE_ACTION)
        # Kicked with --end_session: the session ends now, and its will is
        # published with it (MQTT 5 §3.1.3.2.2). It is the first will to come.
        rc, out, err = self.gannetctl(1, "kick", ended, "--end_session")
        self.assertEqual(rc, 0, err)
        self.assertIn("ended", out)
        self.assertEqual(clients[ended].wait_closed()[0].rc, ADMINISTRATIVE_ACTION)
        will = watcher.expect_matching(T.PUBLISH)
        self.assertEqual(will.payload, ended.encode())
        # Gone: nothing to kick, on the only node there is.
        rc, out, err = self.gannetctl(1, "kick", ended, "--end_session")
        self.assertEqual(rc, 1, out)
        self.assertIn("(asked 1 of 1)", err)

class TlsKickTest(ClusterTestCase):
    start_cluster_in_setup = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.certs = tempfile.mkdtemp(prefix="gannet-kick-tls-")
        cls.ca = make_ca(cls.certs, "ca", "Gannet Test CA")
        # For 127.0.0.1, no key usage restriction: a node's (server and client)
        # and gannetctl's.
        cls.cert, cls.key = make_cert(cls.certs, "node", "node", san=SERVER_NAMES)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certs, ignore_errors=True)
        super().tearDownClass()

    def ctl_tls(self):
        return (f"--tls_cert_file={self.cert}", f"--tls_key_file={self.key}",
                f"--tls_ca_file={self.ca}")

    def test_kick_over_mutual_tls_finds_the_client_on_another_node(self):
        for i in (1, 2, 3):
            self.start_node(i, cluster_tls_cert_file=self.cert, cluster_tls_key_file=self.key,
                            cluster_tls_ca_file=self.ca)

        def all_alive():
            rc, out, err = self.gannetctl(1, *self.ctl_tls(), "status")
            return rc == 0 and [l.split()[2] for l in out.splitlines()[2:]] == ["alive"] * 2
        wait_for(all_alive, timeout=10, interval=0.05, message="node 1 to see 2 and 3 alive")
        cid = unique("tls-kick")
        c = self.raw(5, broker=self.nodes[3], client_id=cid)
        rc, out, err = self.gannetctl(1, "kick", cid, timeout=15)  # no certificate
        self.assertEqual(rc, 1, out)
        self.assertTrue(c.is_open())
        rc, out, err = self.gannetctl(1, *self.ctl_tls(), "kick", cid)
        self.assertEqual(rc, 0, err)
        self.assertIn(f"node 3 ({self.cluster_address(3)})", out)
        self.assertEqual([p.rc for p in c.wait_closed() if p.type == T.DISCONNECT],
                         [ADMINISTRATIVE_ACTION])


if __name__ == "__main__":
    unittest.main()
