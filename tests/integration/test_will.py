"""Will messages: published on an abnormal close, not on DISCONNECT; MQTT 5
Will Delay Interval, DISCONNECT 0x04, will properties passed through."""

import time
import unittest

from gannet_fixture import (BrokerTestCase, P, build_connect, build_disconnect, mosquitto_deviation, scaled,
                            sleep_until, unique)



class WillTest(BrokerTestCase):

    def watcher(self, topic, qos=2, version=5):
        w = self.paho(version=version)
        w.subscribe(topic, qos)
        return w

    def will_client(self, version, topic, payload=b"gone", qos=1, retain=False, will_props=None,
                    props=None, client_id=None, keepalive=60):
        will = dict(topic=topic, payload=payload, qos=qos, retain=retain, props=will_props)
        return self.raw(version, client_id=client_id, will=will, props=props, keepalive=keepalive)

    def assert_no_will(self, watcher, topic):
        """A message published now on the will topic arrives and the will did not."""
        watcher.sync(self.paho(version=4), topic)
        wills = [m for m in watcher.messages(topic) if not m.payload.startswith(b"sync-")]
        self.assertEqual(wills, [], "will message published when it must not be")

    def test_will_on_abnormal_close(self):
        for version in (3, 4, 5):
            with self.subTest(version=version):
                topic = unique("will")
                w = self.watcher(topic, qos=2)
                c = self.will_client(version, topic, b"lost", qos=1)
                c.shutdown()  # TCP FIN, no DISCONNECT
                m = w.wait_message(topic)
                self.assertEqual((m.payload, m.qos, m.retain), (b"lost", 1, False))

    def test_will_qos_limited_by_subscription(self):
        topic = unique("will")
        w = self.watcher(topic, qos=0, version=4)
        self.will_client(4, topic, qos=2).shutdown()
        self.assertEqual(w.wait_message(topic).qos, 0)

    def test_no_will_on_disconnect(self):
        for version in (3, 4, 5):
            with self.subTest(version=version):
                topic = unique("will")
                w = self.watcher(topic)
                c = self.will_client(version, topic)
                c.send(build_disconnect(0 if version == 5 else None, version=version))
                c.wait_closed()  # the broker has handled the DISCONNECT
                self.assertEqual(c.buf, b"")
                self.assert_no_will(w, topic)

    def test_retained_will(self):
        topic = unique("will")
        w = self.watcher(topic)
        self.will_client(4, topic, b"offline", qos=1, retain=True).shutdown()
        w.wait_message(topic, b"offline")
        late = self.paho(version=4)
        late.subscribe(topic, 1)
        m = late.wait_message(topic)
        self.assertEqual((m.payload, m.retain), (b"offline", True))

    def check_will_on_violation(self, bad_packet):
        for version in (4, 5):
            with self.subTest(version=version):
                topic = unique("will")
                w = self.watcher(topic)
                c = self.will_client(version, topic, b"violator")
                c.send(bad_packet(version))
                c.wait_closed()
                w.wait_message(topic, b"violator", timeout=3)

    def test_will_on_malformed_packet(self):
        """The server closes the connection for a malformed packet (PUBLISH with
        QoS 3, [MQTT-3.3.1-4]): the will is published."""
        self.check_will_on_violation(lambda version: b"\x36\x05\x00\x01a\x00\x01")

    @mosquitto_deviation("Mosquitto 2.0.11 closes on a second CONNECT without publishing the will")
    def test_will_on_second_connect(self):
        """A second CONNECT is a protocol error [MQTT-3.1.0-2]; the server closes
        the connection because of it, so the will is published (3.1.2.5)."""
        self.check_will_on_violation(lambda version: build_connect("second", version))

    def test_v5_disconnect_with_0x04_sends_will(self):
        topic = unique("will")
        w = self.watcher(topic)
        c = self.will_client(5, topic, b"asked-for")
        c.send(build_disconnect(0x04, version=5))
        m = w.wait_message(topic)
        self.assertEqual(m.payload, b"asked-for")

    def test_v5_will_properties_passed_through(self):
        topic = unique("will")
        w = self.watcher(topic, version=5)
        will_props = [
            (P.PAYLOAD_FORMAT_INDICATOR, 1),
            (P.MESSAGE_EXPIRY_INTERVAL, 3600),
            (P.CONTENT_TYPE, "text/plain"),
            (P.RESPONSE_TOPIC, "reply/here"),
            (P.CORRELATION_DATA, b"\x00\x01corr"),
            (P.USER_PROPERTY, ("origin", "sensor-7")),
            (P.USER_PROPERTY, ("origin", "again")),
            (P.USER_PROPERTY, ("zone", "north")),
        ]
        self.will_client(5, topic, "ciao".encode(), will_props=will_props).shutdown()
        m = w.wait_message(topic)
        self.assertEqual(m.payload, b"ciao")
        self.assertEqual(m.prop("PayloadFormatIndicator"), 1)
        self.assertEqual(m.prop("ContentType"), "text/plain")
        self.assertEqual(m.prop("ResponseTopic"), "reply/here")
        self.assertEqual(m.prop("CorrelationData"), b"\x00\x01corr")
        self.assertEqual(m.prop("UserProperty"), [("origin", "sensor-7"), ("origin", "again"), ("zone", "north")],
                         "user properties in their order [MQTT-3.3.2-18]")
        expiry = m.prop("MessageExpiryInterval")
        self.assertIsNotNone(expiry)
        self.assertTrue(3590 <= expiry <= 3600, expiry)

    def test_v5_will_delay(self):
        topic = unique("will")
        w = self.watcher(topic)
        c = self.will_client(5, topic, b"late", will_props={P.WILL_DELAY_INTERVAL: 1},
                             props={P.SESSION_EXPIRY_INTERVAL: 30})
        c.shutdown()
        closed = time.monotonic()
        m = w.wait_message(topic, timeout=5)
        elapsed = m.time - closed
        self.assertGreaterEqual(elapsed, 0.9, "will sent before its Will Delay Interval")
        self.assertLess(elapsed, scaled(3.5))

    def test_v5_will_delay_cancelled_by_reconnect(self):
        """[MQTT-3.1.3-9]: a new connection to the session before the delay
        passes: no will."""
        topic, cid = unique("will"), unique("wd")
        w = self.watcher(topic)
        props = {P.SESSION_EXPIRY_INTERVAL: 30}
        c = self.will_client(5, topic, b"never", will_props={P.WILL_DELAY_INTERVAL: 1}, props=props,
                             client_id=cid)
        c.shutdown()
        closed = time.monotonic()
        back = self.raw(5, client_id=cid, clean=False, props=props)
        self.assertTrue(back.connack.session_present)
        sleep_until(closed + 2.0)  # well past the 1 s delay
        self.assert_no_will(w, topic)
        back.disconnect(0)

    def test_v5_will_sent_when_session_ends_before_delay(self):
        """Will Delay 60 s but Session Expiry 1 s: the will is sent when the
        session ends (MQTT 5 3.1.3.2.2)."""
        topic = unique("will")
        w = self.watcher(topic)
        c = self.will_client(5, topic, b"session-over", will_props={P.WILL_DELAY_INTERVAL: 60},
                             props={P.SESSION_EXPIRY_INTERVAL: 1})
        c.shutdown()
        closed = time.monotonic()
        m = w.wait_message(topic, timeout=5)
        self.assertGreaterEqual(m.time - closed, 0.9, "will sent before the session ended")
        self.assertLess(m.time - closed, scaled(3.5))

    def test_v5_will_delay_zero_sends_immediately_even_with_session(self):
        topic = unique("will")
        w = self.watcher(topic)
        c = self.will_client(5, topic, b"now", props={P.SESSION_EXPIRY_INTERVAL: 300})
        c.shutdown()
        closed = time.monotonic()
        m = w.wait_message(topic, timeout=3)
        self.assertLess(m.time - closed, scaled(1.5))


if __name__ == "__main__":
    unittest.main()
