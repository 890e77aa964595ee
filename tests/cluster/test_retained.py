"""Retained messages replicated to every node (issue 4): set or cleared on any
node, a new subscriber on any other node sees the same; the last writer wins
(hybrid logical clock); a node that was down catches up when it rejoins.

Replication is eventually consistent, so each check polls: a fresh subscriber
subscribes until it sees what it expects (a retained message arrives right
after the SUBACK, before a marker the test publishes on the same connection)."""

import unittest

from cluster_fixture import ClusterTestCase
from gannet_fixture import T, unique, wait_for


class RetainedTest(ClusterTestCase):

    def retained_on(self, node, topic):
        """The retained payload a new subscriber on `node` gets for `topic`, or None."""
        c = self.raw(4, broker=self.nodes[node])
        marker = unique("m")
        c.subscribe([(topic, 1), (marker, 1)])
        c.publish(marker, b"marker", 1, complete=False)  # its PUBACK is read below
        payload = None
        while True:
            p = c.recv_packet()
            if p.type != T.PUBLISH:
                continue
            c.ack(p)
            if p.topic == marker:
                break
            if p.topic == topic and p.retain:
                payload = p.payload
        c.disconnect()
        return payload

    def wait_retained(self, node, topic, payload, timeout=10.0):
        last = []

        def check():
            last[:] = [self.retained_on(node, topic)]
            return last[0] == payload

        try:
            wait_for(check, timeout=timeout, interval=0.1, message=f"node {node}: {topic} = {payload!r}")
        except AssertionError as e:
            raise AssertionError(f"{e}; it has {last[0]!r}") from None

    def test_set_and_clear_everywhere(self):
        topic = unique("ret") + "/status"
        self.raw(4, broker=self.nodes[1]).publish(topic, b"online", 1, retain=True)
        for node in (2, 3):
            self.wait_retained(node, topic, b"online")
        self.raw(4, broker=self.nodes[1]).publish(topic, b"", 1, retain=True)  # clear
        for node in (2, 3, 1):
            self.wait_retained(node, topic, None)

    def test_last_writer_wins(self):
        topic = unique("lww") + "/v"
        self.raw(4, broker=self.nodes[1]).publish(topic, b"first", 1, retain=True)
        self.wait_retained(2, topic, b"first")
        self.raw(4, broker=self.nodes[2]).publish(topic, b"second", 1, retain=True)
        for node in (1, 2, 3):
            self.wait_retained(node, topic, b"second")

    def test_node_that_was_down_catches_up(self):
        topic = unique("catch") + "/v"
        self.nodes[3].kill9()
        self.raw(4, broker=self.nodes[1]).publish(topic, b"while you were out", 1, retain=True)
        self.nodes[3].restart()
        self.wait_retained(3, topic, b"while you were out")


if __name__ == "__main__":
    unittest.main()
