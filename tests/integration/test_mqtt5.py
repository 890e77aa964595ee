"""MQTT 5 features: CONNACK limits, Receive Maximum flow control both ways,
topic aliases both directions, Message Expiry Interval, Maximum Packet Size,
user properties, request/response properties, subscription identifiers,
reason codes and reason strings on acknowledgements."""

import time
import unittest

from gannet_fixture import (BrokerTestCase, P, PacketTypes, T, build_ack, build_publish, gannet_only,
                            mosquitto_deviation, sleep_until, sub_options, unique, v5_props)



class ConnackPropertiesTest(BrokerTestCase):

    broker_flags = {"topic_alias_maximum": 4, "max_packet_size": 4096}

    def test_announces_topic_alias_maximum_and_maximum_packet_size(self):
        c = self.raw(5)
        self.assertEqual(c.connack.props.get(P.TOPIC_ALIAS_MAXIMUM), 4)
        self.assertEqual(c.connack.props.get(P.MAXIMUM_PACKET_SIZE), 4096)

    def test_v311_connack_has_no_properties(self):
        c = self.raw(4)
        self.assertEqual(c.connack.body, b"\x00\x00")


@gannet_only("--receive_maximum has no Mosquitto equivalent")
class GannetConnackTest(BrokerTestCase):

    broker_flags = {"receive_maximum": 7}

    def test_announces_receive_maximum(self):
        c = self.raw(5)
        self.assertEqual(c.connack.props.get(P.RECEIVE_MAXIMUM), 7)

    def test_defaults(self):
        b = self.launch_broker({})
        c = self.raw(5, broker=b)
        self.assertEqual(c.connack.props.get(P.RECEIVE_MAXIMUM), 100)
        self.assertEqual(c.connack.props.get(P.TOPIC_ALIAS_MAXIMUM), 10)
        self.assertEqual(c.connack.props.get(P.MAXIMUM_PACKET_SIZE), 1048576)


class InboundFlowControlTest(BrokerTestCase):
    """Client -> server: the client may have at most the server's Receive
    Maximum QoS 1/2 publishes unacknowledged (3.3.4)."""

    broker_flags = {"receive_maximum": 5}  # Mosquitto announces its own (20)

    def test_up_to_receive_maximum_is_fine(self):
        c = self.raw(5)
        quota = c.connack.props.get(P.RECEIVE_MAXIMUM, 65535)
        self.assertLessEqual(quota, 1000)
        topic = unique("rm")
        for pid in range(1, quota + 1):
            c.send(build_publish(topic, b"x", 2, pid=pid, version=5))
        for pid in range(1, quota + 1):
            rec = c.expect_matching(T.PUBREC, pid)
            self.assertLess(rec.rc, 0x80)
        for pid in range(1, quota + 1):
            c.send(build_ack(T.PUBREL, pid, version=5))
            c.expect_matching(T.PUBCOMP, pid)
        self.assertTrue(c.is_open())

    @mosquitto_deviation("Mosquitto 2.0.11 answers the extra PUBLISH with PUBREC 0x97 and stays connected")
    def test_exceeding_receive_maximum_disconnects_0x93(self):
        """More than Receive Maximum unacknowledged QoS 2 publishes: DISCONNECT
        0x93 (Receive Maximum exceeded), then close."""
        c = self.raw(5)
        quota = c.connack.props.get(P.RECEIVE_MAXIMUM, 65535)
        self.assertLessEqual(quota, 1000)
        topic = unique("rm")
        for pid in range(1, quota + 2):
            c.send(build_publish(topic, b"x", 2, pid=pid, version=5))
        packets = c.wait_closed()
        disconnects = [p for p in packets if p.type == T.DISCONNECT]
        self.assertEqual([p.rc for p in disconnects], [0x93], packets)


MOSQUITTO_WINDOW = ("Mosquitto 2.0.11 sends two queued messages for one PUBACK, exceeding the "
                    "client's Receive Maximum / its own max_inflight_messages")


class OutboundFlowControlTest(BrokerTestCase):
    """Server -> client: never more unacknowledged QoS 1/2 PUBLISHes than the
    client's Receive Maximum (MQTT 5) / --max_inflight_messages."""

    broker_flags = {"max_inflight_messages": 3}

    def drain_window(self, c):
        """PUBLISHes that arrive now -- the publisher's messages are all
        acknowledged, so the broker has them: a PINGREQ round trip, then a short
        look (an absence can only be observed for a while)."""
        got = []
        c.send(b"\xc0\x00")
        deadline = None
        while True:
            timeout = 5 if deadline is None else deadline - time.monotonic()
            if timeout <= 0:
                return got
            try:
                p = c.recv_packet(timeout=timeout)
            except AssertionError:
                return got
            if p.type == T.PINGRESP and deadline is None:
                deadline = time.monotonic() + 0.3
            elif p.type == T.PUBLISH:
                got.append(p)

    def check_window(self, c, window, reopen_by_one, total=8):
        topic = unique("win")
        c.subscribe(topic, qos=1)
        pub = self.paho(version=4)
        for i in range(total):
            pub.publish(topic, f"m{i}".encode(), 1)  # all acknowledged by the broker
        received = [c.expect(T.PUBLISH) for _ in range(window)]
        self.assertEqual(self.drain_window(c), [], f"more than {window} unacknowledged QoS 1 messages in flight")
        if reopen_by_one:
            # Each acknowledgement opens the window by exactly one.
            for step in range(2):
                c.send(build_ack(T.PUBACK, received[step].pid, version=c.version))
                received.append(c.expect(T.PUBLISH))
                self.assertEqual(self.drain_window(c), [], f"one PUBACK let more than one message go (step {step})")
            acked = 2
        else:
            acked = 0
        for p in received[acked:]:
            c.send(build_ack(T.PUBACK, p.pid, version=c.version))
        while len(received) < total:
            p = c.expect(T.PUBLISH)
            c.send(build_ack(T.PUBACK, p.pid, version=c.version))
            received.append(p)
        self.assertEqual([p.payload for p in received], [f"m{i}".encode() for i in range(total)], "order")
        self.assertTrue(c.is_open())

    def test_v5_client_receive_maximum(self):
        self.check_window(self.raw(5, props={P.RECEIVE_MAXIMUM: 2}), 2, reopen_by_one=False)

    @mosquitto_deviation(MOSQUITTO_WINDOW)
    def test_v5_each_puback_releases_one_message(self):
        """[MQTT-3.3.4-9]: never more than Receive Maximum unacknowledged."""
        self.check_window(self.raw(5, props={P.RECEIVE_MAXIMUM: 2}), 2, reopen_by_one=True)

    @gannet_only("--max_inflight_messages caps the client's Receive Maximum; Mosquitto uses the client's value")
    def test_v5_receive_maximum_capped_by_max_inflight(self):
        self.check_window(self.raw(5, props={P.RECEIVE_MAXIMUM: 100}), 3, reopen_by_one=True)

    def test_v311_max_inflight(self):
        self.check_window(self.raw(4), 3, reopen_by_one=False)

    @mosquitto_deviation(MOSQUITTO_WINDOW)
    def test_v311_each_puback_releases_one_message(self):
        self.check_window(self.raw(4), 3, reopen_by_one=True)


class TopicAliasTest(BrokerTestCase):

    broker_flags = {"topic_alias_maximum": 3}

    def setUp(self):
        super().setUp()
        self.base = unique("ta")
        self.sub = self.paho(version=5)
        self.sub.subscribe(f"{self.base}/#", 1)

    def test_client_to_server_alias(self):
        c = self.raw(5)
        self.assertEqual(c.connack.props.get(P.TOPIC_ALIAS_MAXIMUM), 3)
        a, b = f"{self.base}/a", f"{self.base}/b"
        c.publish(a, b"1", 1, props={P.TOPIC_ALIAS: 1})   # sets alias 1 -> a
        c.publish("", b"2", 1, props={P.TOPIC_ALIAS: 1})  # uses it
        c.publish(b, b"3", 1, props={P.TOPIC_ALIAS: 1})   # re-maps alias 1 -> b
        c.publish("", b"4", 1, props={P.TOPIC_ALIAS: 1})
        c.publish(a, b"5", 1, props={P.TOPIC_ALIAS: 3})   # the maximum is allowed
        c.publish("", b"6", 1, props={P.TOPIC_ALIAS: 3})
        msgs = self.sub.wait_messages(6)
        self.assertEqual([(m.topic, m.payload) for m in msgs],
                         [(a, b"1"), (a, b"2"), (b, b"3"), (b, b"4"), (a, b"5"), (a, b"6")])
        self.assertTrue(all(m.prop("TopicAlias") is None for m in msgs),
                        "a subscriber that announced no Topic Alias Maximum got an alias")

    def check_alias_error(self, props, topic, allowed):
        c = self.raw(5)
        c.send(build_publish(topic, b"bad", 1, pid=1, props=props, version=5))
        packets = c.wait_closed()
        self.assertNotIn(T.PUBACK, [p.type for p in packets], "bad topic alias accepted")
        rcs = [p.rc for p in packets if p.type == T.DISCONNECT]
        if rcs:
            self.assertIn(rcs[0], allowed)
        return rcs

    def test_alias_above_maximum_is_an_error(self):
        """Topic Alias greater than the server's Topic Alias Maximum: DISCONNECT
        0x94 (Topic Alias invalid) [MQTT-3.3.2-8]."""
        self.check_alias_error({P.TOPIC_ALIAS: 4}, f"{self.base}/x", (0x94, 0x82))

    def test_alias_zero_is_an_error(self):
        self.check_alias_error({P.TOPIC_ALIAS: 0}, f"{self.base}/x", (0x94, 0x82, 0x81))

    def test_unknown_alias_with_empty_topic_is_an_error(self):
        self.check_alias_error({P.TOPIC_ALIAS: 2}, "", (0x82, 0x94))

    def test_aliases_are_per_connection(self):
        c1 = self.raw(5)
        c1.publish(f"{self.base}/p", b"1", 1, props={P.TOPIC_ALIAS: 1})
        c2 = self.raw(5)
        self.check_alias_error({P.TOPIC_ALIAS: 1}, "", (0x82, 0x94))
        self.assertTrue(c2.is_open())

    def test_alias_above_maximum_sends_disconnect_0x94(self):
        self.assertEqual(self.check_alias_error({P.TOPIC_ALIAS: 4}, f"{self.base}/x", (0x94,)), [0x94])

    def test_server_to_client_aliases_within_client_maximum(self):
        """The server may use topic aliases towards a client that allows them:
        never above the client's Topic Alias Maximum, and every message must
        resolve to its real topic (3.3.2.3.4)."""
        c = self.raw(5, props={P.TOPIC_ALIAS_MAXIMUM: 2})
        c.subscribe(f"{self.base}/#", qos=0)
        pub = self.paho(version=5)
        topics = [f"{self.base}/t{i % 4}" for i in range(20)]
        for i, t in enumerate(topics):
            pub.publish(t, f"{t}|{i}".encode(), 0)
        aliases = {}
        for _ in topics:
            p = c.expect(T.PUBLISH)
            alias = p.props.get(P.TOPIC_ALIAS)
            if alias is not None:
                self.assertTrue(1 <= alias <= 2, f"alias {alias} outside the client's maximum 2")
                if p.topic:
                    aliases[alias] = p.topic
                topic = aliases.get(alias)
                self.assertIsNotNone(topic, f"alias {alias} used before it was set")
            else:
                self.assertTrue(p.topic, "empty topic without alias")
                topic = p.topic
            self.assertEqual(topic, p.payload.decode().split("|")[0])


class MessageExpiryTest(BrokerTestCase):

    def test_expired_messages_not_delivered_from_offline_queue(self):
        topic, cid = unique("exp"), unique("exp")
        props = {P.SESSION_EXPIRY_INTERVAL: 60}
        c = self.raw(5, client_id=cid, clean=False, props=props)
        c.subscribe(topic, qos=1)
        c.disconnect(0)
        pub = self.raw(5)
        pub.publish(topic, b"short", 1, props={P.MESSAGE_EXPIRY_INTERVAL: 1})
        pub.publish(topic, b"long", 1, props={P.MESSAGE_EXPIRY_INTERVAL: 60})
        pub.publish(topic, b"forever", 1)
        published = time.monotonic()
        sleep_until(published + 2.2)
        c2 = self.raw(5, client_id=cid, clean=False, props=props)
        self.assertTrue(c2.connack.session_present)
        got = []
        for _ in range(2):
            p = c2.expect(T.PUBLISH)
            c2.ack(p)
            got.append(p)
        self.assertEqual([p.payload for p in got], [b"long", b"forever"], "expired message delivered")
        remaining = got[0].props.get(P.MESSAGE_EXPIRY_INTERVAL)
        self.assertIsNotNone(remaining, "Message Expiry Interval not forwarded")
        # [MQTT-3.3.2-6]: the received value minus the time it waited (>= 2 s).
        self.assertTrue(50 <= remaining <= 58, f"remaining expiry {remaining}")
        self.assertNotIn(P.MESSAGE_EXPIRY_INTERVAL, got[1].props)

    def test_expired_retained_message_not_delivered(self):
        base = unique("exp")
        pub = self.raw(5)
        pub.publish(f"{base}/short", b"s", 1, retain=True, props={P.MESSAGE_EXPIRY_INTERVAL: 1})
        pub.publish(f"{base}/long", b"l", 1, retain=True, props={P.MESSAGE_EXPIRY_INTERVAL: 60})
        sleep_until(time.monotonic() + 2.2)
        c = self.raw(5)
        c.subscribe(f"{base}/#", qos=1)
        p = c.expect(T.PUBLISH)
        c.ack(p)
        self.assertEqual((p.topic, p.retain), (f"{base}/long", True))
        self.assertTrue(50 <= p.props.get(P.MESSAGE_EXPIRY_INTERVAL, 0) <= 58, p.props)
        # Nothing else: a live message published now is next.
        self.paho(version=5).publish(f"{base}/live", b"now", 1)
        p = c.expect(T.PUBLISH)
        self.assertEqual(p.topic, f"{base}/live", "expired retained message delivered")

    def test_live_delivery_keeps_expiry(self):
        topic = unique("exp")
        sub = self.paho(version=5)
        sub.subscribe(topic, 1)
        self.paho(version=5).publish(topic, b"x", 1, properties=v5_props(PacketTypes.PUBLISH,
                                                                          MessageExpiryInterval=30))
        m = sub.wait_message(topic)
        self.assertIn(m.prop("MessageExpiryInterval"), (29, 30))


class MaximumPacketSizeTest(BrokerTestCase):

    def test_server_does_not_send_packets_above_client_maximum(self):
        """[MQTT-3.1.2-24]: the server must not send a packet larger than the
        client's Maximum Packet Size; it discards that message for that client."""
        topic = unique("mps")
        c = self.raw(5, props={P.MAXIMUM_PACKET_SIZE: 200})
        c.subscribe(topic, qos=1)
        big_reader = self.paho(version=5)
        big_reader.subscribe(topic, 1)
        pub = self.paho(version=5)
        pub.publish(topic, b"s" * 50, 1)
        pub.publish(topic, b"B" * 500, 1)
        pub.publish(topic, b"t" * 60, 1)
        got = []
        for _ in range(2):
            p = c.expect(T.PUBLISH)
            c.ack(p)
            got.append(p.payload)
        self.assertEqual(got, [b"s" * 50, b"t" * 60])
        self.assertTrue(c.is_open())
        big_reader.wait_message(topic, b"B" * 500)  # others still get it


class PropertiesPassThroughTest(BrokerTestCase):

    def test_user_properties_in_order(self):
        topic = unique("up")
        v5 = self.paho(version=5)
        v5.subscribe(topic, 1)
        v3 = self.paho(version=4)
        v3.subscribe(topic, 1)
        props = v5_props(PacketTypes.PUBLISH, UserProperty=[("k", "1"), ("a", "2"), ("k", "3"), ("ü", "ß")])
        self.paho(version=5).publish(topic, b"with-props", 1, properties=props)
        m = v5.wait_message(topic)
        self.assertEqual(m.prop("UserProperty"), [("k", "1"), ("a", "2"), ("k", "3"), ("ü", "ß")])
        self.assertEqual(v3.wait_message(topic).payload, b"with-props")

    def test_content_type_and_payload_format(self):
        topic = unique("ct")
        sub = self.raw(5)
        sub.subscribe(topic, qos=0)
        self.raw(5).publish(topic, b"{}", 0, props={P.CONTENT_TYPE: "application/json",
                                                    P.PAYLOAD_FORMAT_INDICATOR: 1})
        p = sub.expect(T.PUBLISH)
        self.assertEqual(p.props.get(P.CONTENT_TYPE), "application/json")
        self.assertEqual(p.props.get(P.PAYLOAD_FORMAT_INDICATOR), 1)

    def test_request_response(self):
        req_topic, resp_topic = unique("req"), unique("resp")
        responder = self.raw(5)
        responder.subscribe(req_topic, qos=1)
        requester = self.paho(version=5)
        requester.subscribe(resp_topic, 1)
        requester.publish(req_topic, b"what time?", 1,
                          properties=v5_props(PacketTypes.PUBLISH, ResponseTopic=resp_topic,
                                              CorrelationData=b"\x00req-42\xff"))
        req = responder.expect(T.PUBLISH)
        responder.ack(req)
        self.assertEqual(req.props.get(P.RESPONSE_TOPIC), resp_topic)
        self.assertEqual(req.props.get(P.CORRELATION_DATA), b"\x00req-42\xff")
        responder.publish(req.props[P.RESPONSE_TOPIC], b"noon", 1,
                          props={P.CORRELATION_DATA: req.props[P.CORRELATION_DATA]})
        m = requester.wait_message(resp_topic)
        self.assertEqual((m.payload, m.prop("CorrelationData")), (b"noon", b"\x00req-42\xff"))

    def test_subscription_identifier(self):
        topic = unique("sid")
        sub = self.paho(version=5)
        sub.subscribe(topic, 1, sub_id=7)
        pub = self.paho(version=5)
        pub.publish(topic, b"a", 1)
        self.assertEqual(sub.wait_message(topic, b"a").prop("SubscriptionIdentifier"), [7])
        sub.subscribe(topic, 1, sub_id=268435455)  # replaces: the largest identifier
        pub.publish(topic, b"b", 1)
        self.assertEqual(sub.wait_message(topic, b"b").prop("SubscriptionIdentifier"), [268435455])

    def test_mosquitto_pub_user_property(self):
        topic = unique("up")
        sub = self.paho(version=5)
        sub.subscribe(topic, 1)
        self.mosquitto_pub(topic, "hi", version="5", qos=1,
                           extra=["-D", "publish", "user-property", "site", "lab"])
        self.assertEqual(sub.wait_message(topic).prop("UserProperty"), [("site", "lab")])


class ReasonCodeTest(BrokerTestCase):

    def test_puback_without_subscribers(self):
        """0x10 (No matching subscribers) is allowed instead of 0x00 (3.4.2.1)."""
        c = self.raw(5)
        ack = c.publish(unique("nobody"), b"x", 1)
        self.assertIn(ack.rc, (0x00, 0x10))
        c.publish(unique("nobody"), b"x", 2)
        self.assertIn(c.last_pubrec.rc, (0x00, 0x10))

    def test_acks_with_subscriber_are_success(self):
        topic = unique("rc")
        self.paho(version=5).subscribe(topic, 2)
        c = self.raw(5)
        self.assertEqual(c.publish(topic, b"x", 1).rc, 0x00)
        comp = c.publish(topic, b"y", 2)
        self.assertEqual((c.last_pubrec.rc, comp.rc), (0x00, 0x00))

    def test_suback_grants_requested_qos(self):
        c = self.raw(5)
        base = unique("rc")
        ack = c.subscribe([(f"{base}/0", sub_options(0)), (f"{base}/1", sub_options(1)),
                           (f"{base}/2", sub_options(2))])
        self.assertEqual(ack.rcs, [0, 1, 2])

    def test_request_problem_information_zero_suppresses_reason_strings(self):
        """[MQTT-3.1.2-29]: with Request Problem Information 0 the server sends
        no Reason String or User Property except on PUBLISH, CONNACK, DISCONNECT."""
        c = self.raw(5, props={P.REQUEST_PROBLEM_INFORMATION: 0})
        acks = [c.publish(unique("nobody"), b"x", 1), c.publish(unique("nobody"), b"x", 2), c.last_pubrec,
                c.subscribe("a/b", qos=0), c.unsubscribe(["never/subscribed"])]
        for ack in acks:
            self.assertNotIn(P.REASON_STRING, ack.props, ack)
            self.assertNotIn(P.USER_PROPERTY, ack.props, ack)


if __name__ == "__main__":
    unittest.main()
