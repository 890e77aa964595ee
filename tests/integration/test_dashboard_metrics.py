"""The Grafana dashboard (deploy/grafana/gannet.json) and the Prometheus alerting
rules (deploy/prometheus/gannet-rules.yml) against what gannet really serves.

Every `gannet_...` name in a PromQL expression of the dashboard (panel targets
and template variables) and of the rules is a metric family that a real node's
/metrics must declare with a `# TYPE` line (`_bucket` / `_sum` / `_count` of a
histogram count as its family). Here one node with --metrics_listen, after a
little traffic of every kind (3.1, 3.1.1 and 5 clients, QoS 0/1/2, a persistent
session offline with a queue, retained and shared subscriptions, a refused
CONNECT, a message nobody subscribed to), must serve every family but the
cluster ones (gannet_cluster_*, gannet_replication_*, gannet_replica_*: only on a
node with --cluster_listen); tests/cluster/test_dashboard_cluster_metrics.py
checks all of them on three clustered nodes.

Without a broker: the dashboard is importable (datasource input and variable,
`node` variable from label_values(gannet_uptime_seconds, instance), a row
repeated by node, every panel with a datasource and targets with an expr,
unique panel ids); every rule has alert, expr, for, a severity label and a
summary; every name, label and label value used is one of docs/metrics.md; and
the checker itself reports a made-up metric. With promtool (Debian package
`prometheus`, from scripts/install-deps.sh, or $PROMTOOL) also `promtool check rules`, `promtool test
rules` (deploy/prometheus/gannet-rules.test.yml), `promtool check config` and
the PromQL syntax of every dashboard expression (fails without promtool).
"""

import copy
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import yaml

from gannet_fixture import (REPO_ROOT, BrokerTestCase, PacketTypes, RawClient, gannet_only,
                            scaled, unique, v5_props, wait_for)

DASHBOARD = os.path.join(REPO_ROOT, "deploy", "grafana", "gannet.json")
RULES = os.path.join(REPO_ROOT, "deploy", "prometheus", "gannet-rules.yml")
RULES_TESTS = os.path.join(REPO_ROOT, "deploy", "prometheus", "gannet-rules.test.yml")
PROMETHEUS_CONFIG = os.path.join(REPO_ROOT, "deploy", "prometheus", "prometheus.yml")

# docs/metrics.md (issue 6): family -> (type, labels, {label: allowed values}).
_REFUSED = {"unsupported_protocol_version", "client_identifier_not_valid",
            "bad_username_or_password", "not_authorized", "server_unavailable", "server_busy",
            "quota_exceeded", "other"}
_DROPPED = {"queue_full", "slow_consumer", "expired", "too_large", "no_subscribers",
            "offline_qos0", "store_missing", "node_down", "store_full", "not_authorized"}
_QOS = {"0", "1", "2"}
_LISTENERS = {"mqtt", "mqtts", "ws", "wss"}
SPEC = {
    # Connections
    "gannet_connections": ("gauge", {"listener": _LISTENERS, "protocol": {"3.1", "3.1.1", "5"}}),
    "gannet_connections_accepted_total": ("counter", {"listener": _LISTENERS}),
    "gannet_connects_refused_total": ("counter", {"reason": _REFUSED}),
    # Messages
    "gannet_messages_received_total": ("counter", {"qos": _QOS}),
    "gannet_messages_sent_total": ("counter", {"qos": _QOS}),
    "gannet_message_bytes_received_total": ("counter", {"qos": _QOS}),
    "gannet_message_bytes_sent_total": ("counter", {"qos": _QOS}),
    "gannet_received_bytes_total": ("counter", {}),
    "gannet_sent_bytes_total": ("counter", {}),
    "gannet_messages_dropped_total": ("counter", {"reason": _DROPPED}),
    "gannet_protocol_errors_total": ("counter", {}),
    # Limits
    "gannet_connections_rejected_total": ("counter", {"reason": {
        "max_connections", "max_connections_per_ip", "connect_rate", "overload",
        "connect_timeout"}}),
    "gannet_limit_refusals_total": ("counter", {"limit": {
        "max_packet_size", "max_topic_length", "max_topic_levels",
        "max_subscriptions_per_client", "max_publish_rate"}}),
    "gannet_overloaded": ("gauge", {}),
    # Sessions, subscriptions, queues
    "gannet_sessions": ("gauge", {"state": {"connected", "offline"}}),
    "gannet_subscriptions": ("gauge", {}),
    "gannet_shared_subscriptions": ("gauge", {}),
    "gannet_retained_messages": ("gauge", {}),
    "gannet_inflight_messages": ("gauge", {}),
    "gannet_queued_messages": ("gauge", {}),
    "gannet_queued_bytes": ("gauge", {}),
    # Storage
    "gannet_store_commits_total": ("counter", {}),
    "gannet_store_commit_failures_total": ("counter", {}),
    "gannet_store_commit_duration_seconds": ("histogram", {}),
    "gannet_store_disk_bytes": ("gauge", {}),
    "gannet_journal_disk_bytes": ("gauge", {}),
    "gannet_messages_stored_total": ("counter", {}),
    "gannet_publishes_failed_store_total": ("counter", {}),
    "gannet_journal_records_moved_total": ("counter", {}),
    # Cluster
    "gannet_cluster_peer_up": ("gauge", {"peer": None}),
    "gannet_cluster_peers": ("gauge", {"state": {"alive", "suspect", "dead", "unreachable"}}),
    "gannet_cluster_forwarded_messages_total": ("counter", {"peer": None}),
    "gannet_cluster_received_messages_total": ("counter", {"peer": None}),
    "gannet_cluster_forward_duration_seconds": ("histogram", {}),
    "gannet_cluster_routes": ("gauge", {"peer": None}),
    "gannet_cluster_messages_kept": ("gauge", {}),
    "gannet_cluster_messages_kept_total": ("counter", {}),
    "gannet_replication_nodes": ("gauge", {}),
    "gannet_replication_epochs_total": ("counter", {}),
    "gannet_replica_sessions": ("gauge", {"owner": None}),
    "gannet_replica_messages": ("gauge", {"owner": None}),
    # Drain
    "gannet_draining": ("gauge", {}),
    "gannet_drain_sessions_remaining": ("gauge", {}),
    "gannet_drain_sessions_handed_over_total": ("counter", {}),
    # Process
    "gannet_process_cpu_seconds_total": ("counter", {}),
    "gannet_process_resident_memory_bytes": ("gauge", {}),
    "gannet_process_open_fds": ("gauge", {}),
    "gannet_process_max_fds": ("gauge", {}),
    "gannet_uptime_seconds": ("gauge", {}),
}
# Labels Prometheus adds (scrape target, relabelling) and histogram buckets.
TARGET_LABELS = {"instance", "job", "le", "namespace", "release", "cluster", "kubernetes_node"}
CLUSTER_ONLY_PREFIXES = ("gannet_cluster_", "gannet_replication_", "gannet_replica_")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Non-gannet series the rules may use.
ALLOWED_FOREIGN = {"up"}
SEVERITIES = {"critical", "warning", "info"}
# The alerts issue 6 asks for.
REQUIRED_ALERTS = {"GannetNodeDown", "GannetPeerUnreachable", "GannetUnderReplicated",
                   "GannetQueueGrowing", "GannetMessagesDropped", "GannetStoreCommitFailures",
                   "GannetStoreCommitLatencyHigh", "GannetDiskFilling", "GannetDrainingTooLong",
                   "GannetFileDescriptorsNearLimit"}

METRIC_NAME_RE = re.compile(r"(?<![A-Za-z0-9_:])gannet_[a-z0-9_]+")
# name{matchers}: the matchers of one selector.
SELECTOR_RE = re.compile(r"(?<![A-Za-z0-9_:])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
MATCHER_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
GROUPING_RE = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
TYPE_LINE_RE = re.compile(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)\s*$", re.M)
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+\S+', re.M)
DURATION_RE = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


# --------------------------------------------------------------------------
# Reading the dashboard and the rules
# --------------------------------------------------------------------------

def load_dashboard(path=DASHBOARD):
    with open(path) as f:
        return json.load(f)


def load_rules(path=RULES):
    with open(path) as f:
        return yaml.safe_load(f)


def all_panels(panels):
    """Every panel, including those inside (collapsed) rows."""
    for p in panels:
        yield p
        yield from all_panels(p.get("panels") or [])


def dashboard_exprs(dashboard):
    """(where, expr) of every PromQL expression: panel targets and query variables."""
    out = []
    for p in all_panels(dashboard.get("panels", [])):
        for t in p.get("targets") or []:
            if t.get("expr"):
                out.append((f"panel {p.get('id')} {p.get('title')!r}", t["expr"]))
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            if q:
                out.append((f"variable {v.get('name')!r}", q))
    return out


def rule_exprs(rules):
    """(where, expr) of every alerting and recording rule."""
    out = []
    for g in rules.get("groups") or []:
        for r in g.get("rules") or []:
            name = r.get("alert") or r.get("record")
            out.append((f"rule {name!r} (group {g.get('name')!r})", str(r.get("expr", ""))))
    return out


def family_of(name, known_types):
    """The family a referenced series name belongs to: `x_bucket` / `x_sum` /
    `x_count` of a histogram (or summary) x are x. known_types: name -> type,
    from the spec or a scrape."""
    if name in known_types and known_types[name] not in ("histogram", "summary"):
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        base = name[: -len(suffix)]
        if name.endswith(suffix) and known_types.get(base) in ("histogram", "summary"):
            return base
    return name


def referenced_families(exprs, known_types=None):
    """family -> sorted list of where it is referenced, for every gannet_ name."""
    types = {n: t for n, (t, _) in SPEC.items()}
    types.update(known_types or {})
    found = {}
    for where, expr in exprs:
        for name in METRIC_NAME_RE.findall(expr):
            found.setdefault(family_of(name, types), set()).add(where)
    return {k: sorted(v) for k, v in found.items()}


def selectors(expr):
    """(metric, label, op, value) of every label matcher in expr."""
    for m in SELECTOR_RE.finditer(expr):
        for lm in MATCHER_RE.finditer(m.group(2)):
            yield m.group(1), lm.group(1), lm.group(2), lm.group(3)


def spec_problems(exprs):
    """What in the expressions is not in the spec: unknown gannet_ names, labels
    the family does not have, enumerated label values it never takes, grouping
    labels none of the expression's metrics has."""
    problems = []
    refs = referenced_families(exprs)
    for family, wheres in sorted(refs.items()):
        if family not in SPEC:
            problems.append(f"{family}: not a gannet metric (docs/metrics.md); in {', '.join(wheres)}")
    for where, expr in exprs:
        names = {family_of(n, {k: t for k, (t, _) in SPEC.items()})
                 for n in METRIC_NAME_RE.findall(expr)}
        for metric, label, op, value in selectors(expr):
            fam = family_of(metric, {k: t for k, (t, _) in SPEC.items()})
            if fam not in SPEC or label in TARGET_LABELS:
                continue
            labels = SPEC[fam][1]
            if label not in labels:
                problems.append(f"{where}: {metric} has no label {label!r}")
                continue
            allowed = labels[label]
            if allowed is None or op in ("!~",):
                continue
            values = value.split("|") if op == "=~" else [value]
            for v in values:
                if re.fullmatch(r"[A-Za-z0-9_.]+", v) and v not in allowed:
                    problems.append(f"{where}: {metric}{{{label}{op}\"{value}\"}}: {v!r} is not one "
                                    f"of {sorted(allowed)}")
        known = set(TARGET_LABELS)
        for n in names:
            known |= set(SPEC.get(n, ("", {}))[1])
        if names & set(SPEC):
            for g in GROUPING_RE.finditer(expr):
                for label in (x.strip() for x in g.group(1).split(",")):
                    if label and label not in known:
                        problems.append(f"{where}: grouping by {label!r}, a label none of "
                                        f"{sorted(names)} has")
    return problems


# --------------------------------------------------------------------------
# Reading a scrape
# --------------------------------------------------------------------------

def scrape_types(text):
    """family -> type from the `# TYPE` lines of Prometheus text."""
    return {m.group(1): m.group(2) for m in TYPE_LINE_RE.finditer(text)}


def scrape_label_values(text):
    """(series name, label) -> set of values seen in samples."""
    out = {}
    for m in SAMPLE_RE.finditer(text):
        for lm in MATCHER_RE.finditer(m.group(2) or ""):
            out.setdefault((m.group(1), lm.group(1)), set()).add(lm.group(3))
    return out


def missing_from_scrape(refs, text, wanted=lambda family: True):
    """Problems of the referenced families (refs: family -> where) against one
    scrape: families without a `# TYPE` line, or of another type than the spec's."""
    types = scrape_types(text)
    problems = []
    for family, wheres in sorted(refs.items()):
        if not wanted(family):
            continue
        if family not in types:
            problems.append(f"{family}: no '# TYPE {family}' in /metrics; used by {', '.join(wheres)}")
        elif family in SPEC and types[family] != SPEC[family][0]:
            problems.append(f"{family}: type {types[family]} in /metrics, {SPEC[family][0]} in the spec")
    return problems


def missing_label_values(exprs, text, wanted=lambda family: True):
    """Equality matchers (label="value") whose value no sample of the family has."""
    seen = scrape_label_values(text)
    types = scrape_types(text)
    problems = []
    for where, expr in exprs:
        for metric, label, op, value in selectors(expr):
            fam = family_of(metric, types)
            if op != "=" or label in TARGET_LABELS or not wanted(fam) or fam not in types:
                continue
            if value not in seen.get((metric, label), set()):
                problems.append(f"{where}: no sample {metric}{{{label}=\"{value}\"}} in /metrics")
    return sorted(set(problems))


def is_cluster_only(family):
    return family.startswith(CLUSTER_ONLY_PREFIXES)


def all_exprs():
    return dashboard_exprs(load_dashboard()) + rule_exprs(load_rules())


def promtool():
    return os.environ.get("PROMTOOL") or shutil.which("promtool")


# --------------------------------------------------------------------------
# Without a broker
# --------------------------------------------------------------------------

class DashboardFileTest(unittest.TestCase):

    def setUp(self):
        self.d = load_dashboard()

    def test_importable_with_a_datasource_input_and_variables(self):
        d = self.d
        self.assertTrue(36 <= d.get("schemaVersion", 0) <= 41, d.get("schemaVersion"))
        self.assertIsNone(d.get("id"), "an exported dashboard has id null")
        self.assertTrue(d.get("uid") and d.get("title"))
        inputs = {i["name"]: i for i in d.get("__inputs", [])}
        self.assertIn("DS_PROMETHEUS", inputs)
        self.assertEqual(inputs["DS_PROMETHEUS"].get("pluginId"), "prometheus")
        variables = {v["name"]: v for v in d["templating"]["list"]}
        ds = variables.get("datasource")
        self.assertIsNotNone(ds, "no datasource variable")
        self.assertEqual((ds["type"], ds["query"]), ("datasource", "prometheus"))
        node = variables.get("node")
        self.assertIsNotNone(node, "no node variable")
        self.assertEqual(node["type"], "query")
        q = node["query"]["query"] if isinstance(node["query"], dict) else node["query"]
        self.assertEqual(re.sub(r"\s", "", q), "label_values(gannet_uptime_seconds,instance)")
        self.assertTrue(node.get("multi") and node.get("includeAll"),
                        "the node variable must allow all nodes (the per-node rows repeat over it)")
        self.assertEqual(node["datasource"]["uid"], "${datasource}")

    def test_panels_have_datasource_targets_and_unique_ids(self):
        panels = list(all_panels(self.d["panels"]))
        ids = [p.get("id") for p in panels]
        self.assertTrue(all(isinstance(i, int) for i in ids), ids)
        self.assertEqual(len(ids), len(set(ids)), f"duplicate panel ids: "
                         f"{sorted(i for i in ids if ids.count(i) > 1)}")
        rows = [p for p in panels if p["type"] == "row"]
        self.assertTrue(rows, "no rows")
        self.assertTrue(any(r.get("repeat") == "node" for r in rows), "no row repeated by node")
        data_panels = [p for p in panels if p["type"] != "row"]
        self.assertGreaterEqual(len(data_panels), 20)
        for p in data_panels:
            where = f"panel {p.get('id')} {p.get('title')!r}"
            self.assertTrue(p.get("title"), where)
            ds = p.get("datasource")
            self.assertIsInstance(ds, dict, f"{where}: no datasource")
            self.assertEqual(ds.get("type"), "prometheus", where)
            self.assertIn(ds.get("uid"), ("${datasource}", "${DS_PROMETHEUS}"), where)
            gp = p.get("gridPos", {})
            self.assertTrue(all(isinstance(gp.get(k), int) for k in ("x", "y", "w", "h")), where)
            self.assertLessEqual(gp["x"] + gp["w"], 24, where)
            targets = p.get("targets")
            self.assertTrue(targets, f"{where}: no targets")
            refs = [t.get("refId") for t in targets]
            self.assertEqual(len(refs), len(set(refs)), f"{where}: duplicate refIds {refs}")
            for t in targets:
                expr = t.get("expr")
                self.assertTrue(isinstance(expr, str) and expr.strip(), f"{where}: a target without expr")
                self.assertTrue(METRIC_NAME_RE.search(expr), f"{where}: {expr!r} uses no gannet metric")
                for open_, close in ("()", "{}", "[]"):
                    self.assertEqual(expr.count(open_), expr.count(close), f"{where}: unbalanced {expr!r}")
                self.assertEqual(expr.count('"') % 2, 0, f"{where}: unbalanced quotes in {expr!r}")
                tds = t.get("datasource")
                if tds is not None:
                    self.assertEqual(tds, ds, f"{where}: target datasource differs from the panel's")

    def test_uses_only_spec_metrics_and_shows_all_of_them(self):
        exprs = dashboard_exprs(self.d)
        self.assertEqual(spec_problems(exprs), [])
        shown = set(referenced_families(exprs))
        self.assertEqual(sorted(set(SPEC) - shown), [], "metrics of docs/metrics.md not on the dashboard")

    def test_the_checker_reports_a_metric_that_does_not_exist(self):
        # The checks above and the scrape comparison below must fail for a
        # dashboard that references a made-up metric (or a wrong label value).
        d = copy.deepcopy(self.d)
        d["panels"].append({"id": 99999, "type": "timeseries", "title": "bogus",
                            "datasource": {"type": "prometheus", "uid": "${datasource}"},
                            "targets": [{"refId": "A", "expr":
                                         'sum(rate(gannet_no_such_metric_total[5m])) + '
                                         'sum(gannet_sessions{state="sleeping"})'}]})
        exprs = dashboard_exprs(d)
        problems = spec_problems(exprs)
        self.assertTrue(any("gannet_no_such_metric_total" in p for p in problems), problems)
        self.assertTrue(any("'sleeping'" in p for p in problems), problems)
        scrape = "# TYPE gannet_sessions gauge\ngannet_sessions{state=\"connected\"} 1\n"
        missing = missing_from_scrape(referenced_families(exprs), scrape)
        self.assertTrue(any(m.startswith("gannet_no_such_metric_total:") for m in missing), missing)
        self.assertTrue(any(m.startswith("gannet_uptime_seconds:") for m in missing), missing)
        self.assertFalse(any(m.startswith("gannet_sessions:") for m in missing), missing)
        self.assertTrue(missing_label_values(exprs, scrape))
        # A histogram counts by its family: _bucket in an expression, TYPE histogram.
        scrape = ("# TYPE gannet_store_commit_duration_seconds histogram\n"
                  "gannet_store_commit_duration_seconds_bucket{le=\"+Inf\"} 1\n")
        refs = referenced_families([("x", "histogram_quantile(0.9, "
                                     "rate(gannet_store_commit_duration_seconds_bucket[1m]))")])
        self.assertEqual(list(refs), ["gannet_store_commit_duration_seconds"])
        self.assertEqual(missing_from_scrape(refs, scrape), [])
        self.assertTrue(missing_from_scrape(refs, scrape.replace("histogram", "gauge")))


class RulesFileTest(unittest.TestCase):

    def setUp(self):
        self.rules = load_rules()

    def test_every_alert_has_expr_for_severity_and_summary(self):
        groups = self.rules.get("groups")
        self.assertTrue(groups, "no groups")
        names = []
        for g in groups:
            self.assertTrue(g.get("name"), g)
            self.assertTrue(g.get("rules"), f"group {g.get('name')!r} has no rules")
            for r in g["rules"]:
                self.assertIn("alert", r, f"not an alerting rule: {r}")
                where = f"alert {r['alert']!r}"
                names.append(r["alert"])
                self.assertRegex(r["alert"], r"^Gannet[A-Z][A-Za-z0-9]+$", where)
                self.assertTrue(str(r.get("expr", "")).strip(), f"{where}: no expr")
                self.assertIn("for", r, f"{where}: no 'for'")
                self.assertRegex(str(r["for"]), DURATION_RE, f"{where}: bad 'for' {r['for']!r}")
                self.assertIn(r.get("labels", {}).get("severity"), SEVERITIES, f"{where}: severity")
                self.assertTrue(r.get("annotations", {}).get("summary", "").strip(), f"{where}: no summary")
                self.assertTrue(r.get("annotations", {}).get("description", "").strip(),
                                f"{where}: no description")
                self.assertEqual(set(r) - {"alert", "expr", "for", "labels", "annotations",
                                           "keep_firing_for"}, set(), where)
        self.assertEqual(len(names), len(set(names)), f"duplicate alert names: {names}")
        self.assertEqual(sorted(REQUIRED_ALERTS - set(names)), [], "alerts missing")

    def test_uses_only_spec_metrics(self):
        exprs = rule_exprs(self.rules)
        self.assertEqual(spec_problems(exprs), [])
        for where, expr in exprs:
            for name in re.findall(r"(?<![A-Za-z0-9_:])([a-z_][a-z0-9_]*)\s*\{", expr):
                if not name.startswith("gannet_") and name not in ALLOWED_FOREIGN:
                    self.fail(f"{where}: series {name!r} is not gannet's")
        self.assertIn("gannet_uptime_seconds", referenced_families(exprs))

    def test_prometheus_config(self):
        with open(PROMETHEUS_CONFIG) as f:
            cfg = yaml.safe_load(f)
        self.assertIn("gannet-rules.yml", cfg.get("rule_files", []))
        jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
        static = [j for j in jobs.values() if j.get("static_configs")]
        self.assertTrue(static, "no static scrape example")
        targets = [t for j in static for sc in j["static_configs"] for t in sc["targets"]]
        self.assertEqual(len(targets), 3, targets)
        k8s = [j for j in jobs.values() if j.get("kubernetes_sd_configs")]
        self.assertTrue(k8s, "no Kubernetes pod discovery example")
        self.assertEqual(k8s[0]["kubernetes_sd_configs"][0]["role"], "pod")
        for name in jobs:
            self.assertIn("gannet", name, "the rules select jobs whose name contains 'gannet'")
            self.assertEqual(jobs[name].get("metrics_path", "/metrics"), "/metrics")


class PromtoolTest(unittest.TestCase):

    def promtool(self, *args, cwd=None):
        tool = promtool()
        self.assertTrue(tool, "promtool not found: scripts/install-deps.sh installs it (Debian "
                              "package prometheus), or set $PROMTOOL")
        cp = subprocess.run([tool, *args], capture_output=True, text=True, cwd=cwd,
                            timeout=scaled(60))
        self.assertEqual(cp.returncode, 0, f"promtool {' '.join(args)}:\n{cp.stdout}{cp.stderr}")
        return cp.stdout

    def test_check_and_test_rules(self):
        self.promtool("check", "rules", RULES)
        self.promtool("test", "rules", os.path.basename(RULES_TESTS), cwd=os.path.dirname(RULES_TESTS))

    def test_check_config(self):
        # Debian's promtool is built without Kubernetes discovery: check the
        # rest (and the rule file it loads); the Kubernetes job is checked above.
        with open(PROMETHEUS_CONFIG) as f:
            cfg = yaml.safe_load(f)
        cfg["scrape_configs"] = [j for j in cfg["scrape_configs"] if "kubernetes_sd_configs" not in j]
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(RULES, tmp)
            path = os.path.join(tmp, "prometheus.yml")
            with open(path, "w") as f:
                yaml.safe_dump(cfg, f)
            self.promtool("check", "config", path)

    def test_dashboard_expressions_parse(self):
        # Each expression, with the Grafana variables filled in, as a recording rule.
        rules = []
        for i, (where, expr) in enumerate(dashboard_exprs(load_dashboard())):
            if expr.startswith("label_values("):
                continue
            e = re.sub(r"\$__(rate_)?interval|\$__range", "5m", expr)
            e = re.sub(r"\$\{?[a-zA-Z_]\w*\}?", ".*", e)
            rules.append({"record": f"dashboard:expr_{i}", "expr": e})
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "dashboard-rules.yml")
            with open(path, "w") as f:
                yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
            self.promtool("check", "rules", path)


# --------------------------------------------------------------------------
# Against a real node
# --------------------------------------------------------------------------

def drive_traffic(tc, broker=None):
    """A little of every kind of traffic on one node (BrokerTestCase tc): clients
    of every protocol version, QoS 0/1/2 both ways, retained, shared and
    persistent subscriptions, an offline session with a queue, a refused
    CONNECT, a message nobody subscribed to."""
    b = broker or tc.broker
    topic = unique("dash")
    subs = [tc.paho(version=v, broker=b) for v in (3, 4, 5)]
    for s in subs:
        s.subscribe(f"{topic}/#", qos=2)
    shared = tc.paho(version=5, broker=b)
    shared.subscribe(f"$share/g/{topic}/#", qos=1)
    # A persistent session, then offline: what follows queues for it.
    away_id = unique("away")
    away = tc.paho(client_id=away_id, version=4, clean=False, broker=b)
    away.subscribe(f"{topic}/#", qos=1)
    away.disconnect()
    pub = tc.paho(version=5, broker=b)
    for qos in (0, 1, 2):
        for i in range(3):
            pub.publish(f"{topic}/q{qos}", f"m{i}".encode(), qos)
    pub.publish(f"{topic}/retained", b"r", 1, retain=True)
    pub.publish(unique("nobody"), b"x", 1)  # no subscribers
    pub.publish(f"{topic}/expiring", b"e", 1,
                properties=v5_props(PacketTypes.PUBLISH, MessageExpiryInterval=60))
    for s in subs:
        s.wait_messages(11, timeout=10)
    # A refused CONNECT (3.1 without a client id: identifier rejected).
    with RawClient(b.port, version=3) as raw:
        raw.connect("", expect_rc=2)
    return topic


@gannet_only("gannet's /metrics")
class NodeScrapeTest(BrokerTestCase):

    broker_metrics = True

    def test_every_referenced_metric_is_served(self):
        exprs = all_exprs()
        refs = referenced_families(exprs)
        self.assertIn("gannet_uptime_seconds", refs)
        drive_traffic(self)
        wanted = lambda family: not is_cluster_only(family)  # noqa: E731
        last = []

        def complete():
            text = self.broker.metrics_text()
            last[:] = [text]
            return not missing_from_scrape(refs, text, wanted) and \
                not missing_label_values(exprs, text, wanted)
        try:
            # Families appear with the node; labelled series may follow the traffic.
            wait_for(complete, timeout=5, interval=0.2)
        except AssertionError:
            pass
        problems = missing_from_scrape(refs, last[0], wanted) + \
            missing_label_values(exprs, last[0], wanted)
        self.assertEqual(problems, [], "\nthe dashboard / alerts use metrics this node does not serve:\n  "
                         + "\n  ".join(problems))


if __name__ == "__main__":
    unittest.main()
