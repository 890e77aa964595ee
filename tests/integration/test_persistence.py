"""Durable state across kill -9 (issue 3, first step): persistent sessions,
their subscriptions and retained messages are in RocksDB (<data_dir>/store) and
reloaded at startup; clean sessions leave nothing; session expiry and delayed
wills count across a restart; a locked or corrupt data directory stops gannet
with a clear message and exit status 1.

Queued and inflight messages are not persisted yet (next step): nothing here
expects them to survive.

Every state change is made durable before its acknowledgement is written
(CONNACK, SUBACK, PUBACK of a retained publish), so a test may kill -9 as soon
as it has the acknowledgement."""

import os
import subprocess
import time
import unittest

from gannet_fixture import (BrokerTestCase, P, T, build_disconnect, gannet_binary, gannet_only,
                            scaled, sleep_until, unique)


def run_gannet(data_dir, timeout=10.0):
    """Run gannet on `data_dir` until it exits; returns (exit code, output)."""
    cmd = [gannet_binary(), "--mqtt_listen=127.0.0.1:0", f"--data_dir={data_dir}", "--workers=1"]
    try:
        cp = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            errors="replace", timeout=scaled(timeout))
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{' '.join(cmd)} still running after {timeout}s "
                             f"(output: {e.stderr!r})") from None
    return cp.returncode, cp.stderr + cp.stdout


@gannet_only("kill -9 persistence: Mosquitto only saves on exit and every autosave_interval")
class PersistenceTest(BrokerTestCase):

    def restart_after_kill9(self):
        self.broker.kill9()
        self.broker.restart()

    def persistent_subscriber(self, version, cid, topic, **sub_opts):
        props = {P.SESSION_EXPIRY_INTERVAL: 3600} if version == 5 else None
        # 3.1.1: cleanSession=0; MQTT 5: Clean Start and a Session Expiry Interval.
        c = self.raw(version, client_id=cid, clean=version == 5, props=props)
        c.subscribe(topic, qos=1, **sub_opts)
        return c

    def reconnect(self, version, cid, expiry=3600):
        props = {P.SESSION_EXPIRY_INTERVAL: expiry} if version == 5 else None
        return self.raw(version, client_id=cid, clean=False, props=props)

    def disconnect(self, c):
        """DISCONNECT (0x00) and wait until gannet closed the connection: it has
        handled the DISCONNECT, so the session is offline from then on, not still
        connected when gannet is killed (which would count it as offline from the
        restart instead)."""
        c.send(build_disconnect(0 if c.version == 5 else None, None, c.version))
        c.wait_closed()

    def assert_receives(self, c, topic, payload):
        p = c.expect_matching(T.PUBLISH)
        self.assertEqual((p.topic, p.payload), (topic, payload))
        c.ack(p)
        return p

    def check_subscription_survives(self, version, disconnect_first):
        topic, cid = unique("ps"), unique("psub")
        c = self.persistent_subscriber(version, cid, topic)
        if disconnect_first:
            self.disconnect(c)
        self.restart_after_kill9()
        c2 = self.reconnect(version, cid)
        self.assertTrue(c2.connack.session_present, "the persistent session is gone after kill -9")
        # No SUBSCRIBE: the subscription came back with the session.
        self.raw(4).publish(topic, b"after-restart", 1)
        self.assert_receives(c2, topic, b"after-restart")

    def test_v311_subscription_survives_kill9_while_connected(self):
        self.check_subscription_survives(4, disconnect_first=False)

    def test_v311_subscription_survives_kill9_while_offline(self):
        self.check_subscription_survives(4, disconnect_first=True)

    def test_v5_subscription_survives_kill9(self):
        self.check_subscription_survives(5, disconnect_first=True)

    def test_v5_subscription_options_survive(self):
        """QoS, No Local and the Subscription Identifier are stored with the filter."""
        topic, cid = unique("opt"), unique("psub")
        c = self.raw(5, client_id=cid, props={P.SESSION_EXPIRY_INTERVAL: 3600})
        c.subscribe(topic, qos=1, no_local=True, props={P.SUBSCRIPTION_IDENTIFIER: 42})
        self.restart_after_kill9()
        c2 = self.reconnect(5, cid)
        self.assertTrue(c2.connack.session_present)
        c2.publish(topic, b"own", 1)  # No Local: not delivered back to itself
        self.raw(4).publish(topic, b"other", 1)
        p = self.assert_receives(c2, topic, b"other")
        self.assertEqual(p.qos, 1)
        self.assertEqual(p.props.get(P.SUBSCRIPTION_IDENTIFIER), [42])

    def test_unsubscribe_survives_kill9(self):
        topic, gone, cid = unique("keep"), unique("gone"), unique("psub")
        c = self.persistent_subscriber(4, cid, topic)
        c.subscribe(gone, qos=1)
        c.unsubscribe(gone)
        self.restart_after_kill9()
        c2 = self.reconnect(4, cid)
        self.assertTrue(c2.connack.session_present)
        pub = self.raw(4)
        pub.publish(gone, b"unsubscribed", 1)
        pub.publish(topic, b"barrier", 1)
        self.assert_receives(c2, topic, b"barrier")  # and nothing for `gone` before it

    def test_retained_set_and_cleared_survive_kill9(self):
        base = unique("ret")
        pub = self.raw(4)
        pub.publish(f"{base}/kept", b"v1", 1, retain=True)
        pub.publish(f"{base}/kept", b"v2", 1, retain=True)  # replaces v1
        pub.publish(f"{base}/cleared", b"old", 1, retain=True)
        pub.publish(f"{base}/cleared", b"", 1, retain=True)  # clears it
        v5 = self.raw(5)
        v5.publish(f"{base}/props", b"with-props", 1, retain=True,
                   props={P.CONTENT_TYPE: "text/plain", P.USER_PROPERTY: [("k", "v")]})
        self.restart_after_kill9()
        sub = self.raw(5)
        sub.subscribe(f"{base}/cleared", qos=1)
        sub.subscribe(f"{base}/kept", qos=1)
        # Retained messages follow their SUBACK: one for 'cleared' would come before
        # the SUBACK of 'kept' (subscribe() expects the SUBACK next).
        p = self.assert_receives(sub, f"{base}/kept", b"v2")
        self.assertTrue(p.retain)
        sub.subscribe(f"{base}/props", qos=1)
        p = self.assert_receives(sub, f"{base}/props", b"with-props")
        self.assertEqual(p.props.get(P.CONTENT_TYPE), "text/plain")
        self.assertEqual(p.props.get(P.USER_PROPERTY), [("k", "v")])

    def test_clean_sessions_leave_nothing(self):
        topic, c4, c5 = unique("clean"), unique("clean4"), unique("clean5")
        a = self.raw(4, client_id=c4, clean=True)
        a.subscribe(topic, qos=1)
        b = self.raw(5, client_id=c5, clean=True)  # MQTT 5: expiry 0 by default
        b.subscribe(topic, qos=1)
        self.restart_after_kill9()
        self.assertFalse(self.raw(4, client_id=c4, clean=False).connack.session_present)
        self.assertFalse(self.raw(5, client_id=c5, clean=False,
                                  props={P.SESSION_EXPIRY_INTERVAL: 60}).connack.session_present)

    def test_clean_start_discards_the_stored_session(self):
        topic, cid = unique("cs"), unique("psub")
        self.persistent_subscriber(4, cid, topic).disconnect()
        self.raw(4, client_id=cid, clean=True).disconnect()  # 3.1.1: ends the old session
        self.restart_after_kill9()
        self.assertFalse(self.reconnect(4, cid).connack.session_present)

    def test_v5_expired_session_is_gone_after_restart(self):
        short, long_ = unique("short"), unique("long")
        topic = unique("exp")
        for cid, expiry in ((short, 1), (long_, 300)):
            c = self.raw(5, client_id=cid, props={P.SESSION_EXPIRY_INTERVAL: expiry})
            c.subscribe(topic, qos=1)
            self.disconnect(c)
        offline = time.monotonic()
        self.broker.kill9()
        sleep_until(offline + 1.5)  # past the 1 s expiry while gannet is down
        self.broker.restart()
        self.assertFalse(self.reconnect(5, short, expiry=1).connack.session_present)
        self.assertTrue(self.reconnect(5, long_, expiry=300).connack.session_present)

    def test_v5_expiry_counts_from_disconnect_across_restart(self):
        """Still within its expiry at the restart: present, and it still expires
        on time afterwards (the remaining time, not a fresh interval)."""
        cid, topic = unique("rem"), unique("rem")
        c = self.raw(5, client_id=cid, props={P.SESSION_EXPIRY_INTERVAL: 3})
        c.subscribe(topic, qos=1)
        self.disconnect(c)
        offline = time.monotonic()
        self.restart_after_kill9()
        sleep_until(offline + 4.0)
        self.assertFalse(self.reconnect(5, cid, expiry=3).connack.session_present)

    def watcher(self, topic):
        """A persistent 3.1.1 subscriber, to see wills published around a restart."""
        cid = unique("watch")
        self.persistent_subscriber(4, cid, topic)
        return cid

    def test_v5_will_with_delay_survives_restart(self):
        topic, wcid = unique("will"), unique("willer")
        watch = self.watcher(topic)
        self.raw(5, client_id=wcid, props={P.SESSION_EXPIRY_INTERVAL: 60},
                 will={"topic": topic, "payload": b"delayed", "qos": 1,
                       "props": {P.WILL_DELAY_INTERVAL: 2}})
        # Connected when gannet dies: it counts as disconnected at the restart.
        self.broker.kill9()
        restarting = time.monotonic()  # the will is due 2 s after the new process loads
        self.broker.restart()
        w = self.reconnect(4, watch)
        self.assertTrue(w.connack.session_present)
        p = w.expect_matching(T.PUBLISH, timeout=scaled(6))
        self.assertEqual((p.topic, p.payload), (topic, b"delayed"))
        self.assertGreaterEqual(time.monotonic() - restarting, 1.9, "will sent before its delay")

    def test_v5_offline_pending_will_survives_restart(self):
        topic, wcid = unique("will"), unique("willer")
        watch = self.watcher(topic)
        c = self.raw(5, client_id=wcid, props={P.SESSION_EXPIRY_INTERVAL: 60},
                     will={"topic": topic, "payload": b"pending", "qos": 1,
                           "props": {P.WILL_DELAY_INTERVAL: 3}})
        c.shutdown()  # abnormal close: the will waits for its delay
        # Whether gannet has handled the close before the kill or not, the will
        # must come after the restart (pending offline, or scheduled at the
        # restart). The 3 s delay keeps it from going out before the kill, into
        # the watcher's queue, which does not survive a restart yet.
        self.restart_after_kill9()
        w = self.reconnect(4, watch)
        p = w.expect_matching(T.PUBLISH, timeout=scaled(8))
        self.assertEqual((p.topic, p.payload), (topic, b"pending"))

    def test_v311_will_of_session_connected_at_crash_is_published(self):
        """Will Delay 0 (3.1.1 has none): published once the restarted node runs."""
        topic, wcid = unique("will"), unique("willer")
        watch = self.watcher(topic)
        self.raw(4, client_id=wcid, clean=False, will={"topic": topic, "payload": b"crash", "qos": 1})
        self.restart_after_kill9()
        w = self.reconnect(4, watch)
        p = w.expect_matching(T.PUBLISH, timeout=scaled(5))
        self.assertEqual((p.topic, p.payload), (topic, b"crash"))
        # Acknowledged (and the ack processed) before the next kill: an
        # unacknowledged QoS 1 will would rightly be delivered again.
        w.ack(p)
        w.ping()
        # The will is published once: the restarted session no longer has it.
        self.restart_after_kill9()
        w2 = self.reconnect(4, watch)
        self.raw(4).publish(topic, b"barrier", 1)
        p = w2.expect_matching(T.PUBLISH)
        self.assertEqual(p.payload, b"barrier")


@gannet_only("gannet's own startup checks")
class DataDirFaultTest(BrokerTestCase):

    def test_data_dir_locked_by_running_gannet(self):
        rc, out = run_gannet(self.broker.data_dir)
        self.assertEqual(rc, 1, out)
        self.assertIn(self.broker.data_dir, out, "the message should name the directory")
        self.assertTrue(self.broker.is_running())

    def test_corrupt_store_exits_1(self):
        self.assertEqual(self.broker.terminate(), 0)
        current = os.path.join(self.broker.data_dir, "store", "CURRENT")
        self.assertTrue(os.path.exists(current))
        with open(current, "wb") as f:
            f.write(b"\x00garbage\xff\n")
        rc, out = run_gannet(self.broker.data_dir)
        self.assertEqual(rc, 1, out)
        self.assertIn(os.path.join(self.broker.data_dir, "store"), out,
                      "the message should name the store directory")
        self.assertRegex(out.lower(), r"corrupt", out)


if __name__ == "__main__":
    unittest.main()
