"""The Grafana dashboard and the alerting rules against three clustered nodes.

tests/integration/test_dashboard_metrics.py checks the dashboard's and the
rules' metrics on a single node, except the ones only a clustered node serves
(gannet_cluster_*, gannet_replication_*, gannet_replica_*). Here three nodes
with --metrics_listen, after traffic that crosses nodes (a publisher on node 1,
persistent subscribers on every node: forwards both ways, replicas of every
node's sessions), must each serve every family the dashboard
(deploy/grafana/gannet.json) and the rules (deploy/prometheus/gannet-rules.yml)
reference, with the label values their equality matchers select
(e.g. gannet_cluster_peers{state="alive"}).
"""

import unittest

from cluster_fixture import ClusterTestCase
from gannet_fixture import unique, wait_for

import test_dashboard_metrics as dm  # noqa: E402  (tests/integration, on sys.path via cluster_fixture)


class ClusterScrapeTest(ClusterTestCase):

    node_metrics = True

    def test_every_referenced_metric_is_served_by_every_node(self):
        exprs = dm.all_exprs()
        refs = dm.referenced_families(exprs)
        self.assertTrue(any(dm.is_cluster_only(f) for f in refs), "no cluster metric referenced?")

        # A persistent subscriber on every node (each node's sessions get a
        # replica on another), a publisher on node 1: forwards to 2 and 3, and
        # from 2 and 3 back to node 1's subscriber.
        topic = unique("dashc")
        subs = {}
        for i in self.nodes:
            subs[i] = self.paho(client_id=unique(f"persist{i}"), version=4, clean=False,
                                broker=self.nodes[i])
            subs[i].subscribe(f"{topic}/#", qos=1)
        for i in self.nodes:
            for j in self.nodes:
                if i != j:
                    self.wait_routes(i, j, lambda n: n >= 1)
        for i in self.nodes:
            pub = self.paho(version=5, broker=self.nodes[i])
            for qos in (0, 1, 2):
                pub.publish(f"{topic}/from{i}", f"q{qos}".encode(), qos)
        for s in subs.values():
            s.wait_messages(3 * len(self.nodes), timeout=10)
        # The rest of the traffic mix (refused CONNECT, retained, shared, queues) on node 1.
        dm.drive_traffic(self, broker=self.nodes[1])

        last = {}

        def problems_of(i):
            text = self.nodes[i].metrics_text()
            return dm.missing_from_scrape(refs, text) + dm.missing_label_values(exprs, text)

        def complete():
            for i in self.nodes:
                last[i] = problems_of(i)
            return not any(last.values())
        try:
            # Replication and forward metrics follow the traffic.
            wait_for(complete, timeout=10, interval=0.25)
        except AssertionError:
            pass
        report = [f"node {i}: {p}" for i in sorted(last) for p in last[i]]
        self.assertEqual(report, [], "\nthe dashboard / alerts use metrics these nodes do not serve:\n  "
                         + "\n  ".join(report))


if __name__ == "__main__":
    unittest.main()
