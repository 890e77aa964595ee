"""gannet's Prometheus endpoint (--metrics_listen), docs/metrics.md: the names
and types it serves, and that its counters and gauges move as real clients
(paho-mqtt, raw sockets) make them: messages and payload bytes by QoS,
connections by protocol version, refused CONNECTs by reason, sessions
connected / offline, inflight and queued messages of an offline persistent
subscriber, the store commit histogram, process metrics. No label value is
ever a client id or a topic. (Drops: see test_hostile; the cluster metrics:
tests/cluster/test_forwarding.py.)

Gauges measured by the workers about once a second are polled with a timeout,
never read after a fixed sleep."""

import os
import re
import unittest
import urllib.request

from gannet_fixture import (BrokerTestCase, RawClient, T, build_connect, gannet_only, unique,
                            wait_for)

# Every family a single node (no --cluster_listen) serves, with its type. A
# cluster node adds the gannet_cluster_* families of CLUSTER_FAMILIES and the
# replication ones (see tests/cluster/test_forwarding.py).
NODE_FAMILIES = {
    "gannet_connections": "gauge",
    "gannet_connections_accepted_total": "counter",
    "gannet_connects_refused_total": "counter",
    "gannet_messages_received_total": "counter",
    "gannet_messages_sent_total": "counter",
    "gannet_message_bytes_received_total": "counter",
    "gannet_message_bytes_sent_total": "counter",
    "gannet_received_bytes_total": "counter",
    "gannet_sent_bytes_total": "counter",
    "gannet_messages_dropped_total": "counter",
    "gannet_protocol_errors_total": "counter",
    "gannet_connections_rejected_total": "counter",
    "gannet_limit_refusals_total": "counter",
    "gannet_overloaded": "gauge",
    "gannet_sessions": "gauge",
    "gannet_subscriptions": "gauge",
    "gannet_shared_subscriptions": "gauge",
    "gannet_retained_messages": "gauge",
    "gannet_inflight_messages": "gauge",
    "gannet_queued_messages": "gauge",
    "gannet_queued_bytes": "gauge",
    "gannet_store_commits_total": "counter",
    "gannet_store_commit_failures_total": "counter",
    "gannet_store_commit_duration_seconds": "histogram",
    "gannet_store_disk_bytes": "gauge",
    "gannet_journal_disk_bytes": "gauge",
    "gannet_messages_stored_total": "counter",
    "gannet_publishes_failed_store_total": "counter",
    "gannet_journal_records_moved_total": "counter",
    "gannet_cluster_messages_kept_total": "counter",
    "gannet_cluster_messages_kept": "gauge",
    "gannet_draining": "gauge",
    "gannet_drain_sessions_remaining": "gauge",
    "gannet_drain_sessions_handed_over_total": "counter",
    "gannet_process_cpu_seconds_total": "counter",
    "gannet_process_resident_memory_bytes": "gauge",
    "gannet_process_open_fds": "gauge",
    "gannet_process_max_fds": "gauge",
    "gannet_uptime_seconds": "gauge",
}

REFUSAL_REASONS = {"unsupported_protocol_version", "client_identifier_not_valid",
                   "bad_username_or_password", "not_authorized", "server_unavailable",
                   "server_busy", "quota_exceeded", "other"}
DROP_REASONS = {"queue_full", "slow_consumer", "expired", "too_large", "no_subscribers",
                "offline_qos0", "store_missing", "node_down", "store_full", "not_authorized"}

_TYPE_RE = re.compile(r"(?m)^# TYPE (\S+) (\S+)$")
_LABELS_RE = re.compile(r'(?m)^[a-zA-Z_:][a-zA-Z0-9_:]*\{([^}]*)\}')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def families(text):
    """name -> type of gannet's families, from the # TYPE lines of a scrape
    (prometheus-cpp adds exposer_* families of its own about scrapes)."""
    return {n: t for n, t in _TYPE_RE.findall(text) if n.startswith("gannet_")}


def label_values(text, name=None):
    """Every label value in a scrape (of the samples of family `name`: its
    samples, _bucket/_sum/_count included), as (label, value) pairs."""
    out = set()
    for line in text.splitlines():
        if line.startswith("#") or (name is not None and not line.startswith(name)):
            continue
        m = _LABELS_RE.match(line)
        if m:
            out.update(_LABEL_RE.findall(m.group(1)))
    return out


def assert_no_label_names(test, text, *names):
    """No label value of the scrape is (or contains) one of `names` (client ids,
    topics): label cardinality stays bounded."""
    values = {v for _, v in label_values(text)}
    for n in names:
        hits = [v for v in values if n in v]
        test.assertEqual(hits, [], f"{n!r} appears in label values")


@gannet_only("gannet's /metrics")
class MetricsTest(BrokerTestCase):

    broker_metrics = True

    def metric(self, name, **labels):
        value = self.broker.metric(name, **labels)
        self.assertIsNotNone(value, f"metric {name} {labels or ''} missing from /metrics")
        return value

    def wait_metric(self, name, predicate, timeout=5.0, **labels):
        last = []

        def check():
            v = self.broker.metric(name, **labels)
            last[:] = [v]
            return v is not None and predicate(v)
        try:
            wait_for(check, timeout, interval=0.05)
        except AssertionError:
            raise AssertionError(f"{name}{labels or ''} = {last[0] if last else None}: "
                                 f"condition not met") from None

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

    def test_serves_exactly_the_documented_families_with_bounded_labels(self):
        text = self.broker.metrics_text()
        self.assertEqual(families(text), NODE_FAMILIES)
        # Every family has a help text.
        helps = {n: h for n, h in re.findall(r"(?m)^# HELP (\S+) (.+)$", text)
                 if n.startswith("gannet_")}
        self.assertEqual(set(helps), set(NODE_FAMILIES))
        for name, help_text in helps.items():
            self.assertGreater(len(help_text), 15, f"{name}: help text {help_text!r}")
        # The label values are fixed sets.
        self.assertEqual({v for k, v in label_values(text, "gannet_connects_refused_total")
                          if k == "reason"}, REFUSAL_REASONS)
        self.assertEqual({v for k, v in label_values(text, "gannet_messages_dropped_total")
                          if k == "reason"}, DROP_REASONS)
        self.assertEqual(label_values(text, "gannet_connections{"),
                         {("listener", "mqtt"), ("listener", "mqtts"), ("listener", "ws"),
                          ("listener", "wss"), ("protocol", "3.1"), ("protocol", "3.1.1"),
                          ("protocol", "5")})
        self.assertEqual(label_values(text, "gannet_sessions{"),
                         {("state", "connected"), ("state", "offline")})
        self.assertEqual(self.metric("gannet_messages_dropped_total", reason="not_authorized"), 0)

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

    def test_connections_by_protocol_version(self):
        accepted = self.metric("gannet_connections_accepted_total", listener="mqtt")
        self.paho(version=4)
        self.paho(version=5)
        for protocol, n in (("3.1.1", 1), ("5", 1), ("3.1", 0)):
            self.wait_metric("gannet_connections", lambda v, n=n: v == n, listener="mqtt",
                             protocol=protocol)
        self.assertEqual(self.metric("gannet_connections_accepted_total", listener="mqtt"),
                         accepted + 2)
        self.assertEqual(self.metric("gannet_sessions", state="connected"), 2)

    def test_message_and_payload_bytes_counters_match_what_clients_sent_and_got(self):
        topic = unique("m")
        subs = [self.paho(version=4), self.paho(version=5)]
        for s in subs:
            s.subscribe(topic, 2)  # granted QoS 2: each message goes out with its own QoS
        names = ("gannet_messages_received_total", "gannet_message_bytes_received_total",
                 "gannet_messages_sent_total", "gannet_message_bytes_sent_total")
        before = {(n, q): self.metric(n, qos=str(q)) for n in names for q in range(3)}
        pub = self.paho(version=5)
        sent = {0: [0, 0], 1: [0, 0], 2: [0, 0]}  # qos -> [messages, payload bytes]
        for i in range(30):
            qos, payload = i % 3, b"p" * (i * 7 + 1)
            pub.publish(topic, payload, qos)
            sent[qos][0] += 1
            sent[qos][1] += len(payload)
        got = {0: [0, 0], 1: [0, 0], 2: [0, 0]}
        for s in subs:
            for m in s.wait_messages(30, topic):
                got[m.qos][0] += 1
                got[m.qos][1] += len(m.payload)
        for q in range(3):
            self.assertEqual(got[q], [2 * sent[q][0], 2 * sent[q][1]], f"QoS {q} delivered")
            for name, want in (("gannet_messages_received_total", sent[q][0]),
                               ("gannet_message_bytes_received_total", sent[q][1]),
                               ("gannet_messages_sent_total", got[q][0]),
                               ("gannet_message_bytes_sent_total", got[q][1])):
                self.wait_metric(name, lambda v, b=before[(name, q)], w=want: v - b == w,
                                 qos=str(q))
        assert_no_label_names(self, self.broker.metrics_text(), topic, pub.client_id,
                              *(s.client_id for s in subs))

    def test_refused_connects_are_counted_by_reason(self):
        # 3.1.1 §3.1.3-8: an empty client id needs cleanSession=1: return code 2.
        c = self.raw(4, connect=False)
        self.assertEqual(c.connect("", clean=False, expect_rc=None).rc, 2)
        c.wait_closed()
        # Protocol level 6 does not exist: CONNACK 0x01 (unacceptable protocol version).
        c = RawClient(self.port, version=4)
        self.addCleanup(c.close)
        c.send(build_connect(unique("lvl6"), version=6))
        self.assertEqual(c.expect(T.CONNACK).rc, 1)
        c.wait_closed()
        self.wait_metric("gannet_connects_refused_total", lambda v: v == 1,
                         reason="client_identifier_not_valid")
        self.wait_metric("gannet_connects_refused_total", lambda v: v == 1,
                         reason="unsupported_protocol_version")
        self.assertEqual(self.metric("gannet_connects_refused_total"), 2)  # nothing else

    def test_offline_persistent_subscriber_sessions_inflight_and_queued_gauges(self):
        topic, cid = unique("q"), unique("offline")
        commits = self.metric("gannet_store_commit_duration_seconds_count")
        sub = self.raw(4, client_id=cid, clean=False)
        sub.subscribe(topic, qos=1)
        pub = self.paho(version=4)
        # Three messages reach the subscriber, which never acknowledges them:
        # they stay inflight in its session.
        for i in range(3):
            pub.publish(topic, f"inflight-{i}".encode(), 1)
        for _ in range(3):
            sub.expect_matching(T.PUBLISH)
        sub.disconnect()
        self.wait_metric("gannet_sessions", lambda v: v == 1, state="offline")
        self.wait_metric("gannet_sessions", lambda v: v == 1, state="connected")  # the publisher
        # Five more wait in its queue while it is offline.
        payloads = [b"q" * (10 * (i + 1)) for i in range(5)]
        for p in payloads:
            pub.publish(topic, p, 1)
        self.wait_metric("gannet_inflight_messages", lambda v: v == 3)
        self.wait_metric("gannet_queued_messages", lambda v: v == 5)
        self.wait_metric("gannet_queued_bytes",
                         lambda v: v == sum(len(topic) + len(p) for p in payloads))
        # The persistent session's state went through the store, timed.
        self.wait_metric("gannet_store_commit_duration_seconds_count", lambda v: v > commits)
        text = self.broker.metrics_text()
        count = self.metric("gannet_store_commit_duration_seconds_count")
        self.assertEqual(self.broker.metric("gannet_store_commit_duration_seconds_bucket",
                                            le="+Inf"), count)
        self.assertGreater(self.metric("gannet_store_commit_duration_seconds_sum"), 0)
        assert_no_label_names(self, text, topic, cid, pub.client_id)
        # The client comes back: everything is sent (inflight first), nothing waits.
        back = self.raw(4, client_id=cid, clean=False)
        for _ in range(8):
            back.ack(back.expect_matching(T.PUBLISH))
        back.ping()
        self.wait_metric("gannet_inflight_messages", lambda v: v == 0)
        self.wait_metric("gannet_queued_messages", lambda v: v == 0)
        self.wait_metric("gannet_sessions", lambda v: v == 0, state="offline")

    def test_process_metrics_are_plausible(self):
        pid = self.broker.pid
        fds = lambda: len(os.listdir(f"/proc/{pid}/fd"))  # noqa: E731
        # Its own count (one scrape's socket aside) agrees with the kernel's.
        self.assertLessEqual(abs(self.metric("gannet_process_open_fds") - fds()), 3)
        before = self.metric("gannet_process_open_fds")
        clients = [self.raw(4) for _ in range(5)]
        self.wait_metric("gannet_process_open_fds", lambda v: v >= before + 5)
        with open(f"/proc/{pid}/limits") as f:
            soft = next(line.split()[3] for line in f if line.startswith("Max open files"))
        self.assertEqual(self.metric("gannet_process_max_fds"), float(soft))
        cpu, uptime = self.metric("gannet_process_cpu_seconds_total"), self.metric("gannet_uptime_seconds")
        self.assertGreater(cpu, 0)
        self.assertLessEqual(cpu, uptime * (os.cpu_count() or 1) + 1)
        with open(f"/proc/{pid}/status") as f:
            rss_kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        rss = self.metric("gannet_process_resident_memory_bytes")
        self.assertGreater(rss, 1 << 20)
        self.assertLess(abs(rss - rss_kib * 1024), rss / 2)
        for c in clients:
            c.disconnect()


if __name__ == "__main__":
    unittest.main()
