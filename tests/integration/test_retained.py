"""Retained messages: set, replace, clear, delivery on subscribe with the RETAIN
flag, live delivery without it, QoS of retained delivery, MQTT 5 Retain
Handling 0/1/2 and Retain As Published."""

import unittest

from gannet_fixture import BrokerTestCase, SubscribeOptions, T, sub_options, unique


class RetainedTest(BrokerTestCase):

    def retained_on_subscribe(self, topic_filter, version=4, qos=1, expect=0):
        """Subscribe a new client to topic_filter; wait for `expect` messages, then
        return every message it got before a live message published afterwards
        (retained messages come before live messages published after the SUBACK)."""
        sub = self.paho(version=version)
        marker = unique("marker")
        sub.subscribe(marker, 1)
        sub.subscribe(topic_filter, qos)
        if expect:
            sub.wait_for(lambda s: len([m for m in s._messages if m.topic != marker]) >= expect,
                         message=f"{expect} retained message(s)")
        sub.sync(self.paho(version=4), marker)
        return [m for m in sub.messages() if m.topic != marker]

    def test_set_and_delivered_on_subscribe_with_retain_flag(self):
        for version in (3, 4, 5):
            with self.subTest(version=version):
                topic = unique("ret")
                self.paho(version=version).publish(topic, b"state-1", 1, retain=True)
                got = self.retained_on_subscribe(topic, version, expect=1)
                self.assertEqual([(m.topic, m.payload, m.retain) for m in got], [(topic, b"state-1", True)])

    def test_replace(self):
        topic = unique("ret")
        pub = self.paho(version=4)
        pub.publish(topic, b"old", 1, retain=True)
        pub.publish(topic, b"new", 1, retain=True)
        got = self.retained_on_subscribe(topic, expect=1)
        self.assertEqual([m.payload for m in got], [b"new"])

    def test_clear_with_empty_payload(self):
        topic = unique("ret")
        pub = self.paho(version=4)
        pub.publish(topic, b"there", 1, retain=True)
        self.assertEqual([m.payload for m in self.retained_on_subscribe(topic, expect=1)], [b"there"])
        # The empty retained message goes to current subscribers as a normal message...
        live = self.paho(version=4)
        live.subscribe(topic, 1)
        live.wait_message(topic, b"there")
        live.clear()
        pub.publish(topic, b"", 1, retain=True)
        m = live.wait_message(topic)
        self.assertEqual((m.payload, m.retain), (b"", False))
        # ...and is not retained itself: a new subscriber gets nothing.
        self.assertEqual(self.retained_on_subscribe(topic), [])

    def test_live_delivery_has_retain_flag_clear(self):
        """[MQTT-3.3.1-9]: a message matching an established subscription is sent
        with RETAIN 0 however it was published (3.1.1, and MQTT 5 without Retain
        As Published)."""
        for version in (4, 5):
            with self.subTest(version=version):
                topic = unique("ret")
                sub = self.paho(version=version)
                sub.subscribe(topic, 1)
                self.paho(version=4).publish(topic, b"live", 1, retain=True)
                m = sub.wait_message(topic, b"live")
                self.assertFalse(m.retain)

    def test_wildcard_subscription_gets_every_retained_topic(self):
        base = unique("ret")
        pub = self.paho(version=4)
        topics = [f"{base}/a", f"{base}/b", f"{base}/c/d", f"{base}/e"]
        for t in topics:
            pub.publish(t, t.encode(), 1, retain=True)
        pub.publish(f"{base}/e", b"", 1, retain=True)  # cleared again
        got = self.retained_on_subscribe(f"{base}/#", expect=3)
        self.assertEqual(sorted(m.topic for m in got), sorted(topics[:3]))
        self.assertTrue(all(m.retain and m.payload == m.topic.encode() for m in got))
        got = self.retained_on_subscribe(f"{base}/+", expect=2)
        self.assertEqual(sorted(m.topic for m in got), sorted([f"{base}/a", f"{base}/b"]))

    def test_retained_delivered_at_min_qos(self):
        base = unique("ret")
        pub = self.paho(version=4)
        for q in (0, 1, 2):
            pub.publish(f"{base}/q{q}", b"x", q, retain=True)
        for sub_qos in (0, 1, 2):
            with self.subTest(subscription_qos=sub_qos):
                got = self.retained_on_subscribe(f"{base}/#", qos=sub_qos, expect=3)
                self.assertEqual(sorted((m.topic, m.qos) for m in got),
                                 sorted((f"{base}/q{q}", min(q, sub_qos)) for q in (0, 1, 2)))

    def test_retained_sent_again_on_resubscribe_v311(self):
        topic = unique("ret")
        self.paho(version=4).publish(topic, b"r", 1, retain=True)
        sub = self.raw(4)
        sub.subscribe(topic, qos=0)
        self.assertEqual(sub.expect(T.PUBLISH).payload, b"r")
        sub.subscribe(topic, qos=0)  # [MQTT-3.8.4-3]: replaces the subscription, re-sends retained
        p = sub.expect(T.PUBLISH)
        self.assertEqual((p.payload, p.retain), (b"r", True))

    def test_mosquitto_clients(self):
        topic = unique("ret")
        self.mosquitto_pub(topic, "kept", version="5", qos=1, retain=True)
        sub = self.mosquitto_sub(topic, version="311", qos=1)
        self.assertEqual(sub.wait_messages(1), [(topic, "kept")])
        self.assertEqual(sub.publishes()[0]["retain"], 1)
        # -r -n clears it.
        self.mosquitto_pub(topic, None, version="311", qos=1, retain=True)
        self.assertEqual(self.retained_on_subscribe(topic), [])


class RetainHandlingV5Test(BrokerTestCase):
    """MQTT 5 subscription options Retain Handling and Retain As Published."""

    def setUp(self):
        super().setUp()
        self.topic = unique("rh")
        self.paho(version=5).publish(self.topic, b"retained", 1, retain=True)

    def subscribe_and_check(self, raw, opts_byte, expect_retained):
        """SUBSCRIBE with the given options; the retained message must (or must
        not) come, before a live message published after the SUBACK."""
        raw.subscribe([(self.topic, opts_byte)])
        if expect_retained:
            p = raw.expect(T.PUBLISH)
            self.assertEqual((p.payload, p.retain), (b"retained", True))
        live = unique("live").encode()
        self.paho(version=5).publish(self.topic, live, 1)
        p = raw.expect(T.PUBLISH)
        self.assertEqual((p.payload, p.retain), (live, False),
                         "retained message sent when it must not be" if not expect_retained
                         else "retained message sent twice")
        raw.ack(p)

    def test_retain_handling_0_sends_on_every_subscribe(self):
        c = self.raw(5)
        for attempt in range(2):
            with self.subTest(subscribe=attempt + 1):
                self.subscribe_and_check(c, sub_options(1, retain_handling=0), True)

    def test_retain_handling_1_only_for_new_subscription(self):
        c = self.raw(5)
        self.subscribe_and_check(c, sub_options(1, retain_handling=1), True)
        # [MQTT-3.3.1-10]: the subscription existed, so no retained message.
        self.subscribe_and_check(c, sub_options(1, retain_handling=1), False)
        c.unsubscribe(self.topic)
        self.subscribe_and_check(c, sub_options(1, retain_handling=1), True)

    def test_retain_handling_2_never(self):
        c = self.raw(5)
        self.subscribe_and_check(c, sub_options(1, retain_handling=2), False)

    def test_retain_as_published(self):
        rap = self.paho(version=5)
        rap.subscribe(self.topic, options=SubscribeOptions(qos=1, retainAsPublished=True))
        plain = self.paho(version=5)
        plain.subscribe(self.topic, options=SubscribeOptions(qos=1, retainAsPublished=False))
        pub = self.paho(version=5)
        pub.publish(self.topic, b"live-retained", 1, retain=True)
        pub.publish(self.topic, b"live-plain", 1, retain=False)
        for sub, want in ((rap, {b"live-retained": True, b"live-plain": False}),
                          (plain, {b"live-retained": False, b"live-plain": False})):
            msgs = sub.wait_messages(3, self.topic)  # the retained one on subscribe + 2 live
            got = {m.payload: m.retain for m in msgs if m.payload.startswith(b"live")}
            self.assertEqual(got, want)
            first = msgs[0]
            self.assertEqual((first.payload, first.retain), (b"retained", True),
                             "retained message on subscribe always has RETAIN 1")


if __name__ == "__main__":
    unittest.main()
