"""gannet's Prometheus endpoint (--metrics_listen): gannet_connections,
gannet_messages_received_total, gannet_messages_sent_total,
gannet_messages_dropped_total{reason=...} (drops: see test_hostile)."""

import re
import unittest
import urllib.request

from gannet_fixture import BrokerTestCase, gannet_only, unique, wait_for


@gannet_only("gannet's /metrics")
class MetricsTest(BrokerTestCase):

    broker_metrics = True

    def metric(self, name, **labels):
        value = self.broker.metric(name, **labels)
        self.assertIsNotNone(value, f"metric {name} missing from /metrics")
        return value

    def test_logs_metrics_port_and_serves_prometheus_text(self):
        m = re.search(r"metrics listener on ([0-9.]+):(\d+)", self.broker.log_text())
        self.assertIsNotNone(m)
        with urllib.request.urlopen(f"http://127.0.0.1:{self.broker.metrics_port}/metrics", timeout=5) as r:
            self.assertEqual(r.status, 200)
            self.assertTrue(r.headers.get("Content-Type", "").startswith("text/plain"))
            text = r.read().decode()
        for name in ("gannet_connections", "gannet_messages_received_total", "gannet_messages_sent_total"):
            self.assertRegex(text, rf"(?m)^{name}(\{{[^}}]*\}})? [0-9.e+-]+$")
        self.assertRegex(text, r"(?m)^# TYPE gannet_connections gauge$")
        self.assertRegex(text, r"(?m)^# TYPE gannet_messages_received_total counter$")

    def test_connections_gauge_follows_clients(self):
        # At rest: no client at all (the fixture's readiness probe has gone).
        base = 0
        self.wait_metric("gannet_connections", lambda v: v == base)
        clients = [self.paho(version=v) for v in (3, 4, 5)] + [self.raw(5)]
        self.wait_metric("gannet_connections", lambda v: v == base + 4)
        for c in clients[:3]:
            c.disconnect()
        clients[3].disconnect()
        self.wait_metric("gannet_connections", lambda v: v == base)

    def test_message_counters(self):
        topic = unique("m")
        subs = [self.paho(version=4), self.paho(version=5)]
        for s in subs:
            s.subscribe(topic, 1)
        r0 = self.metric("gannet_messages_received_total")
        s0 = self.metric("gannet_messages_sent_total")
        pub = self.paho(version=5)
        for i in range(25):
            pub.publish(topic, b"x", i % 3)
        for s in subs:
            s.wait_messages(25, topic)
        self.wait_metric("gannet_messages_received_total", lambda v: v >= r0 + 25)
        self.wait_metric("gannet_messages_sent_total", lambda v: v >= s0 + 50)

    def wait_metric(self, name, predicate, timeout=5.0):
        last = []

        def check():
            v = self.broker.metric(name)
            last[:] = [v]
            return v is not None and predicate(v)
        try:
            wait_for(check, timeout)
        except AssertionError:
            raise AssertionError(f"{name} = {last[0] if last else None}: condition not met") from None


if __name__ == "__main__":
    unittest.main()
