"""$SYS topics (Mosquitto's names): $SYS/broker/uptime, version,
clients/connected, messages/received, messages/sent -- retained, republished
every --sys_interval."""

import re
import unittest

from gannet_fixture import BrokerTestCase, unique

TOPICS = ["$SYS/broker/uptime", "$SYS/broker/version", "$SYS/broker/clients/connected",
          "$SYS/broker/messages/received", "$SYS/broker/messages/sent"]


def number(payload):
    """The leading integer of a $SYS payload ('12 seconds' -> 12)."""
    m = re.match(rb"\s*(\d+)", payload)
    if not m:
        raise AssertionError(f"not a number: {payload!r}")
    return int(m.group(1))


class SysTopicsTest(BrokerTestCase):

    broker_flags = {"sys_interval": 1}

    def sys_client(self, filters=("$SYS/#",)):
        c = self.paho(version=4)
        for f in filters:
            c.subscribe(f, 0)
        return c

    def latest(self, c, topic):
        msgs = c.messages(topic)
        return number(msgs[-1].payload) if msgs else None

    def test_topics_exist_and_are_retained(self):
        c = self.sys_client()
        for topic in TOPICS:
            m = c.wait_message(topic, timeout=4)
            self.assertTrue(m.payload, f"{topic} is empty")
        # A client subscribing now gets them at once, as retained messages.
        late = self.sys_client(TOPICS)
        for topic in TOPICS:
            first = late.wait_message(topic, timeout=2)
            self.assertTrue(first.retain, f"{topic} not retained")
        for topic in TOPICS:
            if topic != "$SYS/broker/version":
                number(late.messages(topic)[0].payload)

    def test_uptime_is_republished_and_increases(self):
        c = self.sys_client(["$SYS/broker/uptime"])
        live = c.wait_for(lambda s: [m for m in s._messages if not m.retain][:3] if
                          len([m for m in s._messages if not m.retain]) >= 3 else None,
                          timeout=6, message="three live $SYS/broker/uptime updates")
        values = [number(m.payload) for m in live]
        self.assertEqual(values, sorted(values))
        self.assertGreater(values[-1], values[0])
        gaps = [b.time - a.time for a, b in zip(live, live[1:])]
        self.assertTrue(all(g < 2.5 for g in gaps), f"updates {gaps} apart with sys_interval 1")

    def test_clients_connected_follows_connections(self):
        c = self.sys_client(["$SYS/broker/clients/connected"])
        c.wait_message("$SYS/broker/clients/connected", timeout=4)
        before = self.latest(c, "$SYS/broker/clients/connected")
        extra = [self.paho(version=v) for v in (3, 4, 5)]
        peak = c.wait_for(lambda s: (v := self.latest(s, "$SYS/broker/clients/connected")) is not None
                          and v >= before + 3 and v, timeout=5, message="count up by 3")
        for e in extra:
            e.disconnect()
        c.wait_for(lambda s: self.latest(s, "$SYS/broker/clients/connected") <= peak - 3,
                   timeout=5, message="count down by 3")

    def test_message_counters_increase(self):
        c = self.sys_client(["$SYS/broker/messages/received", "$SYS/broker/messages/sent"])
        c.wait_message("$SYS/broker/messages/received", timeout=4)
        c.wait_message("$SYS/broker/messages/sent", timeout=4)
        r0 = self.latest(c, "$SYS/broker/messages/received")
        s0 = self.latest(c, "$SYS/broker/messages/sent")
        topic = unique("count")
        sub = self.paho(version=4)
        sub.subscribe(topic, 1)
        pub = self.paho(version=5)
        for i in range(20):
            pub.publish(topic, b"x", 1)
        sub.wait_messages(20, topic)
        c.wait_for(lambda s: self.latest(s, "$SYS/broker/messages/received") >= r0 + 20,
                   timeout=5, message="messages/received up by 20")
        c.wait_for(lambda s: self.latest(s, "$SYS/broker/messages/sent") >= s0 + 20,
                   timeout=5, message="messages/sent up by 20")

    def test_clients_cannot_forge_sys_values(self):
        """A client publishing a retained message into $SYS/broker/... must not
        replace what the broker reports there."""
        pub = self.paho(version=4)
        pub.publish("$SYS/broker/version", b"forged", 1, retain=True)  # acknowledged (3.1.1) or not
        c = self.sys_client(["$SYS/broker/version"])
        m = c.wait_message("$SYS/broker/version", timeout=4)
        self.assertNotEqual(m.payload, b"forged")


class SysIntervalDefaultTest(BrokerTestCase):

    def test_mosquitto_sub_reads_sys(self):
        sub = self.mosquitto_sub("$SYS/broker/version", version="5")
        msgs = sub.wait_messages(1, timeout=7)
        self.assertEqual(msgs[0][0], "$SYS/broker/version")
        self.assertTrue(msgs[0][1])


if __name__ == "__main__":
    unittest.main()
