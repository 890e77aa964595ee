"""Draining a node (issue 5): `gannetctl drain` or SIGTERM makes a node stop
accepting connections, hand every session to the other nodes, redirect its
clients (MQTT 5: DISCONNECT 0x9C with a Server Reference; 3.1.1: close) and
exit 0. Clients that reconnect elsewhere find their sessions (session present)
and every message acknowledged to a publisher, also those published during the
drain. Duplicates (QoS 1 is at least once) are counted and printed. Its
progress shows in gannet_drain_sessions_remaining / _handed_over_total."""

import signal
import threading
import time
import unittest

from cluster_fixture import ClusterTestCase
from gannet_fixture import P, T, ConnectionClosed, RawClient, unique, wait_for

EXPIRY = {P.SESSION_EXPIRY_INTERVAL: 3600}


def assert_all_delivered(test, name, got, acked):
    """Every acknowledged message delivered; prints the duplicate count."""
    missing = sorted(set(acked) - set(got))
    dups = len(got) - len(set(got))
    print(f"\n{name}: {len(acked)} acknowledged, {len(set(got))} delivered, {dups} duplicates")
    test.assertEqual(missing, [], f"{name}: acknowledged, never delivered")


class Subscriber:
    """A persistent subscriber that reads and acknowledges in a thread and, when
    its connection is closed, reconnects: MQTT 5 to the Server Reference it was
    given, 3.1.1 to `fallback_port`."""

    def __init__(self, test, node, client_id, version, topic, fallback_port):
        """fallback_port: a port, or a function giving one (a node that is up)."""
        self.test, self.client_id, self.version = test, client_id, version
        self.fallback_port = fallback_port if callable(fallback_port) else lambda: fallback_port
        self.got, self.reasons, self.presents, self.errors = [], [], [], []
        self.stop = threading.Event()
        self.client = self.connect(test.nodes[node].port)
        self.client.subscribe(topic, qos=1)
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def connect(self, port):
        c = RawClient(port, self.version)
        self.test.addCleanup(c.close)
        ack = c.connect(self.client_id, clean=False, props=EXPIRY if self.version == 5 else None)
        self.presents.append(ack.session_present)
        return c

    def run(self):
        disconnect = None
        while not self.stop.is_set():
            try:
                p = self.client.recv_packet(timeout=0.2)
            except AssertionError:
                continue
            except (ConnectionClosed, OSError):
                port = self.fallback_port()
                if disconnect is not None:
                    self.reasons.append(disconnect.rc)
                    ref = disconnect.props.get(P.SERVER_REFERENCE)
                    if ref:
                        port = int(ref.rsplit(":", 1)[1])
                disconnect = None
                for attempt in range(50):
                    try:
                        self.client = self.connect(port)
                        break
                    except (ConnectionClosed, OSError, AssertionError) as e:
                        # That node went down meanwhile: another one.
                        if attempt == 49:
                            self.errors.append(repr(e))
                            return
                        time.sleep(0.1)
                        port = self.fallback_port()
                continue
            if p.type == T.DISCONNECT:
                disconnect = p
                continue
            if p.type == T.PUBLISH:
                self.got.append(int(p.payload))
                try:
                    self.client.ack(p)
                except OSError:
                    pass  # closed meanwhile: the next read reconnects (and it comes again)

    def finish(self):
        self.stop.set()
        self.thread.join()

    def finish_after(self, acked, timeout):
        """Wait until every acknowledged message arrived (those that followed a
        moved session may come after newer ones), stop; AssertionError with
        what it got when they do not or the subscriber could not reconnect."""
        try:
            wait_for(lambda: set(acked) <= set(self.got) or self.errors, timeout=timeout,
                     message=f"{self.client_id} to get every acknowledged message")
        except AssertionError:
            raise AssertionError(
                f"{self.client_id}: not all delivered; presents {self.presents}, "
                f"reasons {self.reasons}, errors {self.errors}, {len(self.got)} got, missing "
                f"{sorted(set(acked) - set(self.got))[:20]}") from None
        finally:
            self.finish()
        if self.errors:
            raise AssertionError(f"{self.client_id} could not reconnect: {self.errors}")


class DrainTest(ClusterTestCase):
    cluster_flags = dict(ClusterTestCase.cluster_flags, drain_timeout=15, max_queued_messages=100000)
    node_metrics = True

    def publish_continuously(self, node, topic):
        acked, stop = [], threading.Event()
        pub = self.raw(4, broker=self.nodes[node])

        def run():
            i = 0
            while not stop.is_set():
                if pub.publish(topic, f"{i}".encode(), 1).rc == 0:
                    acked.append(i)
                i += 1

        t = threading.Thread(target=run)
        t.start()
        return acked, stop, t

    def test_drain_under_load_loses_no_acknowledged_message(self):
        base = unique("dr")
        topic = f"{base}/t"
        subs = [Subscriber(self, 1, unique(f"live{v}"), v, topic, self.nodes[3].port)
                for v in (5, 5, 4, 4)]
        offline = []
        for v in (5, 4):
            cid = unique(f"off{v}")
            c = self.raw(v, broker=self.nodes[1], client_id=cid, clean=False,
                         props=EXPIRY if v == 5 else None)
            c.subscribe(topic, qos=1)
            c.disconnect()
            offline.append((cid, v))
        self.wait_routes(2, 1, lambda n: n == 1)
        acked, stop, publisher = self.publish_continuously(2, topic)
        try:
            wait_for(lambda: len(acked) >= 300, timeout=30, message="300 acknowledged")
            rc, out, err = self.gannetctl(1, "drain")
            self.assertEqual(rc, 0, err)
            self.assertIn("draining", out)
            self.assertEqual(self.nodes[1].metric("gannet_draining"), 1)
            # The others show it draining while it hands its sessions over.
            wait_for(lambda: self.status(2).get(1, {}).get("state") == "draining", timeout=5,
                     interval=0.05, message="node 2 to show node 1 draining")
            self.assertEqual(self.nodes[2].metric("gannet_draining"), 0)
            self.assertEqual(self.nodes[1].wait_exit(timeout=20), 0, "a drained node exits 0")
            self.assertIn("drain done", self.nodes[1].log_text(),
                          f"node 1 did not finish its drain: {self.nodes[1].log_tail(15)}")
            at_exit = len(acked)
            wait_for(lambda: len(acked) >= at_exit + 300, timeout=30,
                     message="300 more acknowledged after the drain")
        finally:
            stop.set()
            publisher.join()
        for s in subs:
            s.finish_after(acked, timeout=20)
            self.assertEqual(s.presents[1:], [True], f"{s.client_id}: session present after the move")
            if s.version == 5:
                self.assertEqual(s.reasons, [0x9C], f"{s.client_id}: DISCONNECT 0x9C")
            assert_all_delivered(self, s.client_id, s.got, acked)
        for cid, v in offline:
            c = self.raw(v, broker=self.nodes[2], client_id=cid, clean=False,
                         props=EXPIRY if v == 5 else None)
            self.assertTrue(c.connack.session_present, f"{cid} was handed over")
            got = []
            while not set(acked) <= set(got):
                p = c.expect_matching(T.PUBLISH, timeout=10)
                c.ack(p)
                got.append(int(p.payload))
            assert_all_delivered(self, cid, got, acked)

    def test_drain_progress_metrics(self):
        """docs/metrics.md, Drain: the sessions a draining node still holds, and
        those it handed over (once the new node confirmed them). The node
        lingers about a second after the last handover before it exits."""
        cids = [unique("dp") for _ in range(3)]
        for cid in cids:
            c, _ = self.persistent_raw(1, cid)
            c.disconnect()
        n1 = self.nodes[1]
        wait_for(lambda: n1.metric("gannet_sessions", state="offline") == 3, timeout=5)
        self.assertEqual(n1.metric("gannet_drain_sessions_remaining"), 0)
        self.assertEqual(n1.metric("gannet_drain_sessions_handed_over_total"), 0)
        rc, _, err = self.gannetctl(1, "drain")
        self.assertEqual(rc, 0, err)
        remaining = set()

        def handed_over():
            remaining.add(n1.metric("gannet_drain_sessions_remaining"))
            return n1.metric("gannet_drain_sessions_handed_over_total") == 3
        wait_for(handed_over, timeout=10, interval=0.02, message="3 sessions handed over")
        self.assertLessEqual(max(remaining), 3, remaining)

        def none_left():
            try:
                return n1.metric("gannet_drain_sessions_remaining") == 0
            except OSError:  # it lingered less than this poll took: it exited
                return not n1.is_running()
        wait_for(none_left, timeout=5, interval=0.02, message="no session left on the draining node")
        self.assertEqual(n1.wait_exit(timeout=20), 0)
        self.assertIn("drain done", n1.log_text())
        self.assertEqual(sum(self.nodes[i].metric("gannet_sessions", state="offline")
                             for i in (2, 3)), 3)

    def test_sigterm_drains_and_status_shows_it(self):
        base, cid = unique("st"), unique("dev")
        c = self.raw(4, broker=self.nodes[1], client_id=cid, clean=False)
        c.subscribe(f"{base}/t", qos=1)
        c.disconnect()
        self.wait_routes(3, 1, lambda n: n == 1)
        pub = self.raw(4, broker=self.nodes[3])
        for i in range(50):
            pub.publish(f"{base}/t", f"{i}".encode(), 1)
        self.assertEqual(self.status(2)[1]["state"], "alive")
        self.assertEqual(self.nodes[1].metric("gannet_draining"), 0)
        self.assertEqual(self.nodes[1].terminate(sig=signal.SIGTERM), 0)
        self.assertIn("received SIGTERM: draining", self.nodes[1].log_text())
        back = self.raw(4, broker=self.nodes[2], client_id=cid, clean=False)
        self.assertTrue(back.connack.session_present)
        got = []
        for _ in range(50):
            p = back.expect_matching(T.PUBLISH)
            back.ack(p)
            got.append(int(p.payload))
        self.assertEqual(got, list(range(50)))


class RollingRestartTest(ClusterTestCase):
    cluster_flags = dict(ClusterTestCase.cluster_flags, drain_timeout=15, max_queued_messages=100000)

    def test_rolling_restart_under_load_loses_nothing(self):
        """Nodes 1, 2, 3 drained and restarted one after the other while a
        publisher (reconnecting to a node that is up when its own goes) sends
        QoS 1 without pause and persistent subscribers follow their sessions."""
        topic = f"{unique('rr')}/t"
        up = {1, 2, 3}
        lock = threading.Lock()

        def some_port(exclude=None):
            with lock:
                choices = sorted(n for n in up if n != exclude)
            return self.nodes[choices[0]].port

        subs = [Subscriber(self, n, unique(f"rr{v}"), v, topic, some_port)
                for n, v in ((1, 5), (1, 4), (2, 5), (3, 4))]
        for n in (1, 2, 3):
            self.wait_routes(n % 3 + 1, n, lambda c: c >= 1)
        acked, stop = [], threading.Event()

        def publish():
            pub, i = RawClient(some_port(), 4), 0
            pub.connect(unique("rrpub"))
            while not stop.is_set():
                try:
                    if pub.publish(topic, f"{i}".encode(), 1).rc == 0:
                        acked.append(i)
                except (ConnectionClosed, OSError, AssertionError):
                    pub.close()
                    time.sleep(0.05)
                    try:
                        pub = RawClient(some_port(), 4)
                        pub.connect(unique("rrpub"))
                    except (ConnectionClosed, OSError, AssertionError):
                        pass
                i += 1
            pub.close()

        publisher = threading.Thread(target=publish)
        publisher.start()
        try:
            for n in (1, 2, 3):
                wait_for(lambda: len(acked) >= 200, timeout=30, message="publishing")
                before = len(acked)
                with lock:
                    up.discard(n)
                rc, out, err = self.gannetctl(n, "drain")
                self.assertEqual(rc, 0, err)
                self.assertEqual(self.nodes[n].wait_exit(timeout=20), 0)
                self.nodes[n].restart()
                for other in {1, 2, 3} - {n}:
                    self.wait_state(other, n, "alive")
                with lock:
                    up.add(n)
                wait_for(lambda: len(acked) >= before + 200, timeout=30,
                         message=f"publishing after node {n} restarted")
        finally:
            stop.set()
            publisher.join()
        for s in subs:
            s.finish_after(acked, timeout=30)
            self.assertTrue(all(s.presents[1:]), f"{s.client_id}: session present after moves")
            assert_all_delivered(self, f"{s.client_id} ({len(s.presents) - 1} moves)", s.got, acked)


if __name__ == "__main__":
    unittest.main()
