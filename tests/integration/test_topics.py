"""Topic matching: '+', '#', $-topics versus wildcards, shared subscriptions
($share/group/filter), overlapping subscriptions (max QoS, subscription
identifiers), No Local, QoS downgrade, unsubscribe, invalid filters."""

import unittest

from gannet_fixture import (BrokerTestCase, ConnectionClosed, P, SubscribeOptions, T, build_subscribe,
                            gannet_only, sub_options, unique)


class WildcardTest(BrokerTestCase):

    def matches(self, topic_filter, topics, version=4):
        """Publish to every topic in `topics`; return those a subscriber of
        topic_filter received (a marker published last bounds the wait)."""
        base = self.base
        sub = self.paho(version=version)
        sub.subscribe(topic_filter.replace("B", base), 1)
        marker = f"{base}/zz-marker"
        sub.subscribe(marker, 1)
        pub = self.paho(version=4)
        for t in topics:
            pub.publish(t.replace("B", base), t.encode(), 1)
        sub.sync(pub, marker)
        return sorted(m.payload.decode() for m in sub.messages() if m.topic != marker)

    def setUp(self):
        super().setUp()
        self.base = unique("w")

    def test_plus_matches_exactly_one_level(self):
        got = self.matches("B/+/c", ["B/b/c", "B/x/c", "B//c", "B/b/d", "B/b/x/c", "B/c", "B/b/c/"])
        self.assertEqual(got, ["B//c", "B/b/c", "B/x/c"])

    def test_hash_matches_parent_and_all_levels(self):
        got = self.matches("B/a/#", ["B/a", "B/a/", "B/a/b", "B/a/b/c/d", "B/ab", "B/b/a"])
        self.assertEqual(got, ["B/a", "B/a/", "B/a/b", "B/a/b/c/d"])

    def test_plus_and_hash_combined(self):
        got = self.matches("B/+/x/#", ["B/1/x", "B/2/x/y", "B/3/y/x", "B/x"])
        self.assertEqual(got, ["B/1/x", "B/2/x/y"])

    def test_topics_are_case_sensitive_and_exact(self):
        got = self.matches("B/Temp", ["B/Temp", "B/temp", "B/TEMP", "B/Temp ", "B/Temp/"])
        self.assertEqual(got, ["B/Temp"])

    def test_unicode_and_spaces(self):
        got = self.matches("B/+/état", ["B/zone 1/état", "B/🙂/état", "B/x/etat"], version=5)
        self.assertEqual(got, ["B/zone 1/état", "B/🙂/état"])

    def test_single_hash_matches_everything_of_this_test(self):
        sub = self.paho(version=4)
        sub.subscribe("#", 0)
        pub = self.paho(version=4)
        pub.publish(f"{self.base}/deep/er/topic", b"x", 0)
        pub.publish(f"/{self.base}", b"y", 0)  # leading empty level
        sub.wait_message(f"{self.base}/deep/er/topic")
        sub.wait_message(f"/{self.base}")


class DollarTopicTest(BrokerTestCase):
    """[MQTT-4.7.2-1]: filters starting with a wildcard do not match topics
    starting with '$'."""

    broker_flags = {"sys_interval": 1}

    def test_wildcards_do_not_match_sys_topics(self):
        wild = self.paho(version=4)
        wild.subscribe("#", 0)
        wild.subscribe("+/broker/uptime", 0)
        wild.subscribe("+/+/+", 0)
        sys_sub = self.paho(version=4)
        sys_sub.subscribe("$SYS/#", 0)
        # Two rounds of live $SYS updates (retain flag 0) reached the $SYS subscriber...
        sys_sub.wait_for(lambda s: len([m for m in s._messages
                                        if m.topic == "$SYS/broker/uptime" and not m.retain]) >= 2,
                         timeout=5, message="two live $SYS/broker/uptime updates")
        # ...and a normal message after them reached the wildcard subscriber.
        marker = unique("marker")
        wild.subscribe(marker, 1)
        wild.sync(self.paho(version=4), marker)
        leaked = [m.topic for m in wild.messages() if m.topic.startswith("$")]
        self.assertEqual(leaked, [], "wildcard filter matched $-topics")

    def test_explicit_dollar_filters_match(self):
        sub = self.paho(version=4)
        sub.subscribe("$SYS/broker/+", 0)
        m = sub.wait_message("$SYS/broker/uptime")
        self.assertTrue(m.payload)

    def test_client_dollar_topic_not_matched_by_wildcard(self):
        name = unique("dollar")
        wild = self.paho(version=4)
        wild.subscribe("#", 1)
        wild.subscribe("+/x", 1)
        explicit = self.paho(version=4)
        explicit.subscribe(f"${name}/#", 1)
        pub = self.paho(version=4)
        pub.publish(f"${name}/x", b"dollar", 1)
        explicit.wait_message(f"${name}/x", b"dollar")
        wild.sync(pub, f"{name}/x")  # matched by both of wild's filters: arrives (once)
        self.assertEqual([m.topic for m in wild.messages() if m.topic.startswith("$")], [])


class SharedSubscriptionTest(BrokerTestCase):
    """$share/{group}/{filter} (MQTT 5 4.8.2): each message goes to exactly one
    member of each group; normal subscribers get every message."""

    def members_received(self, members, n_expected, prefix):
        def all_in(_):
            return sum(len([m for m in c.messages() if m.payload.startswith(prefix)]) for c in members) >= n_expected
        members[0].wait_for(all_in, timeout=10, message=f"{n_expected} messages across the group")
        return [[m.payload for m in c.messages() if m.payload.startswith(prefix)] for c in members]

    def barrier(self, clients, pub, base):
        """Each client is also subscribed to its own marker topic: once its
        marker arrived, everything the publisher sent before has too."""
        for i, c in enumerate(clients):
            c.sync(pub, f"{base}-marker/{i}")

    def check_group(self, version, qos):
        base = unique("shr")
        members = [self.paho(version=version) for _ in range(3)]
        for i, c in enumerate(members):
            self.assertEqual(c.subscribe(f"$share/g1/{base}/#", qos), [qos])
            c.subscribe(f"{base}-marker/{i}", 1)
        other_group = [self.paho(version=version) for _ in range(2)]
        for i, c in enumerate(other_group):
            c.subscribe(f"$share/g2/{base}/+/x", qos)
            c.subscribe(f"{base}-marker/{i + 3}", 1)
        plain = self.paho(version=version)
        plain.subscribe(f"{base}/#", qos)
        plain.subscribe(f"{base}-marker/5", 1)
        pub = self.paho(version=4)
        n = 30
        for i in range(n):
            pub.publish(f"{base}/{i}/x", f"m{i:02d}".encode(), qos)
        expected = sorted(f"m{i:02d}".encode() for i in range(n))
        self.members_received(members, n, b"m")
        self.members_received(other_group, n, b"m")
        plain.wait_for(lambda s: len([m for m in s._messages if m.payload.startswith(b"m")]) >= n,
                       timeout=10, message=f"{n} messages")
        self.barrier(members + other_group + [plain], pub, base)
        g1 = [[m.payload for m in c.messages() if m.payload.startswith(b"m")] for c in members]
        g2 = [[m.payload for m in c.messages() if m.payload.startswith(b"m")] for c in other_group]
        self.assertEqual(sorted(sum(g1, [])), expected, "group g1: each message exactly once")
        self.assertEqual(sorted(sum(g2, [])), expected, "group g2: each message exactly once")
        self.assertEqual(sorted(m.payload for m in plain.messages() if m.payload.startswith(b"m")), expected)
        return g1, g2

    def test_v5_qos0(self):
        self.check_group(5, 0)

    def test_v5_qos1(self):
        self.check_group(5, 1)

    def test_v311_clients_can_share(self):
        self.check_group(4, 1)

    def test_leaving_member_gets_no_more(self):
        base = unique("shr")
        a, b = self.paho(version=5), self.paho(version=5)
        for c in (a, b):
            c.subscribe(f"$share/g/{base}", 1)
        a.unsubscribe(f"$share/g/{base}")
        a.subscribe(f"{base}-marker", 1)
        pub = self.paho(version=5)
        for i in range(10):
            pub.publish(base, f"m{i}".encode(), 1)
        b.wait_messages(10, base)
        a.sync(pub, f"{base}-marker")
        self.assertEqual(a.messages(base), [])

    def test_mosquitto_sub_shared(self):
        base = unique("shr")
        subs = [self.mosquitto_sub(f"$share/cli/{base}", version="5", qos=1) for _ in range(2)]
        for i in range(6):
            self.mosquitto_pub(base, f"m{i}", version="5", qos=1)
        subs[0].wait_for(lambda _: sum(len(s.messages()) for s in subs) >= 6, message="6 messages")
        got = sorted(p for s in subs for _, p in s.messages())
        self.assertEqual(got, [f"m{i}" for i in range(6)])


class OverlappingSubscriptionTest(BrokerTestCase):

    def subscribe_overlapping(self, c):
        base = unique("ovl")
        c.subscribe([(f"{base}/#", sub_options(0))], props={P.SUBSCRIPTION_IDENTIFIER: 1})
        c.subscribe([(f"{base}/+", sub_options(2))], props={P.SUBSCRIPTION_IDENTIFIER: 2})
        c.subscribe([(f"{base}/x", sub_options(1))], props={P.SUBSCRIPTION_IDENTIFIER: 3})
        c.subscribe([(f"{base}/y", sub_options(1))])  # no identifier
        c.subscribe([(f"{base}-marker", sub_options(0))])
        return base

    def collect(self, c, base, pub_qos=2, topic="x"):
        pub = self.raw(5)
        pub.publish(f"{base}/{topic}", b"payload", pub_qos)
        pub.publish(f"{base}-marker", b"end", 0)
        got = []
        while True:
            p = c.expect_matching(T.PUBLISH)
            if p.topic == f"{base}-marker":
                return got
            c.ack(p)
            got.append(p)

    def test_v5_copies_carry_subscription_identifiers(self):
        """Spec-level (either delivery strategy): the maximum QoS is honoured
        [MQTT-3.3.4-2] and every matching identifier is sent [MQTT-3.3.4-4/5]."""
        c = self.raw(5)
        base = self.subscribe_overlapping(c)
        got = self.collect(c, base)
        self.assertTrue(got)
        self.assertEqual(max(p.qos for p in got), 2)
        ids = sorted(i for p in got for i in p.props.get(P.SUBSCRIPTION_IDENTIFIER, []))
        self.assertEqual(ids, [1, 2, 3])

    @gannet_only("MQTT 5 allows one copy per matching subscription (Mosquitto sends 3); gannet sends one")
    def test_v5_single_delivery_with_max_qos_and_all_identifiers(self):
        c = self.raw(5)
        base = self.subscribe_overlapping(c)
        got = self.collect(c, base)
        self.assertEqual(len(got), 1, f"one PUBLISH per client expected: {got}")
        self.assertEqual(got[0].qos, 2)
        self.assertEqual(sorted(got[0].props.get(P.SUBSCRIPTION_IDENTIFIER, [])), [1, 2, 3])

    def test_v5_identifier_absent_for_subscription_without_one(self):
        c = self.raw(5)
        base = self.subscribe_overlapping(c)
        got = self.collect(c, base, topic="y")  # matches #(1), +(2) and y(no id)
        ids = sorted(i for p in got for i in p.props.get(P.SUBSCRIPTION_IDENTIFIER, []))
        self.assertEqual(ids, [1, 2])
        self.assertEqual(max(p.qos for p in got), 2)

    def test_v311_max_qos_of_overlapping_subscriptions(self):
        c = self.raw(4)
        base = unique("ovl")
        c.subscribe(f"{base}/#", qos=0)
        c.subscribe(f"{base}/+", qos=1)
        c.subscribe(f"{base}-marker", qos=0)
        got = self.collect(c, base)
        self.assertTrue(got)
        self.assertEqual(max(p.qos for p in got), 1)
        self.assertTrue(all(p.payload == b"payload" for p in got))

    def test_resubscribe_replaces_subscription(self):
        """[MQTT-3.8.4-3]: the same filter again replaces the subscription: one
        copy, at the new QoS."""
        c = self.raw(4)
        base = unique("ovl")
        c.subscribe(f"{base}/x", qos=2)
        c.subscribe(f"{base}/x", qos=1)
        c.subscribe(f"{base}-marker", qos=0)
        got = self.collect(c, base)
        self.assertEqual([(p.payload, p.qos) for p in got], [(b"payload", 1)])


class QosDowngradeTest(BrokerTestCase):
    """The delivered QoS is the minimum of the publish and the subscription QoS."""

    def test_downgrade_on_the_wire(self):
        for version in (4, 5):
            with self.subTest(version=version):
                base = unique("down")
                c = self.raw(version)
                ack = c.subscribe([(f"{base}/0", sub_options(0)), (f"{base}/1", sub_options(1))])
                self.assertEqual(ack.rcs, [0, 1])
                pub = self.raw(5)
                pub.publish(f"{base}/0", b"a", 2)
                p = c.expect(T.PUBLISH)
                self.assertEqual((p.topic, p.qos, p.pid), (f"{base}/0", 0, None), "QoS 0: no packet id")
                pub.publish(f"{base}/1", b"b", 2)
                p = c.expect(T.PUBLISH)
                self.assertEqual((p.topic, p.qos), (f"{base}/1", 1))
                c.ack(p)
                pub.publish(f"{base}/1", b"c", 0)  # never upgraded
                self.assertEqual(c.expect(T.PUBLISH).qos, 0)


class NoLocalTest(BrokerTestCase):

    def test_no_local_suppresses_own_messages(self):
        topic = unique("nl")
        me = self.paho(version=5)
        me.subscribe(topic, options=SubscribeOptions(qos=1, noLocal=True))
        me.subscribe(f"{topic}-marker", 1)
        other = self.paho(version=5)
        other.subscribe(topic, 1)
        me.publish(topic, b"mine", 1)
        me.sync(me, f"{topic}-marker")
        other.wait_message(topic, b"mine")
        self.assertEqual(me.messages(topic), [], "No Local subscription got its own message")
        # Messages from others still arrive.
        other.publish(topic, b"theirs", 1)
        me.wait_message(topic, b"theirs")

    def test_without_no_local_own_messages_arrive(self):
        topic = unique("nl")
        me = self.paho(version=5)
        me.subscribe(topic, options=SubscribeOptions(qos=1, noLocal=False))
        me.publish(topic, b"echo", 1)
        me.wait_message(topic, b"echo")

    def test_v311_own_messages_arrive(self):
        topic = unique("nl")
        me = self.paho(version=4)
        me.subscribe(topic, 1)
        me.publish(topic, b"echo", 1)
        me.wait_message(topic, b"echo")


class UnsubscribeTest(BrokerTestCase):

    def test_unsubscribe_stops_delivery(self):
        for version in (4, 5):
            with self.subTest(version=version):
                topic = unique("un")
                c = self.raw(version)
                c.subscribe(topic, qos=1)
                c.subscribe(f"{topic}-marker", qos=1)
                ack = c.unsubscribe(topic)
                if version == 5:
                    self.assertEqual(ack.rcs, [0x00])
                pub = self.paho(version=4)
                pub.publish(topic, b"gone", 1)
                pub.publish(f"{topic}-marker", b"m", 1)
                p = c.expect(T.PUBLISH)
                self.assertEqual(p.topic, f"{topic}-marker")

    def test_v5_unsuback_reason_codes(self):
        c = self.raw(5)
        topic = unique("un")
        c.subscribe(topic, qos=0)
        ack = c.unsubscribe([topic, unique("never-subscribed")])
        self.assertEqual(ack.rcs[0], 0x00)
        self.assertIn(ack.rcs[1], (0x00, 0x11), "0x11 No subscription existed, or success")


class InvalidFilterTest(BrokerTestCase):
    """Wildcards must be whole levels and '#' last [MQTT-4.7.1-1/2]; an empty
    filter is invalid [MQTT-4.7.3-1]. The subscription is refused: a SUBACK
    failure code (0x80 / MQTT 5 >= 0x80), or the connection is closed (MQTT 5:
    DISCONNECT >= 0x80 first, if any)."""

    BAD = ["a/#/b", "a#", "a/b+", "+a/b", "#/a", ""]

    def test_invalid_filters_refused(self):
        for version in (4, 5):
            for flt in self.BAD:
                with self.subTest(version=version, filter=flt):
                    c = self.raw(version)
                    c.send(build_subscribe(1, [(flt, 0)], version=version))
                    try:
                        p = c.recv_packet()
                    except ConnectionClosed:
                        continue
                    if p.type == T.SUBACK:
                        self.assertGreaterEqual(p.rcs[0], 0x80, f"invalid filter {flt!r} granted")
                        if version == 5 and p.rcs[0] != 0x8F:
                            self.assertIn(p.rcs[0], (0x80, 0x83, 0x8F))
                    else:
                        self.assertEqual(p.type, T.DISCONNECT, p)
                        self.assertGreaterEqual(p.rc, 0x80)
                        c.wait_closed()

    def test_broker_serves_others_after_bad_filters(self):
        topic = unique("ok")
        sub = self.paho(version=5)
        sub.subscribe(topic, 1)
        for flt in self.BAD:
            c = self.raw(5)
            c.send(build_subscribe(1, [(flt, 0)], version=5))
        pub = self.paho(version=4)
        pub.publish(topic, b"fine", 1)
        sub.wait_message(topic, b"fine")


if __name__ == "__main__":
    unittest.main()
