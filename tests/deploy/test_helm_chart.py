"""The Helm chart (helm/gannet): lint, render, check the rendered objects, then
run what it renders as a real three-node cluster on loopback.

1. `helm lint` (default values, and TLS + WebSocket + ServiceMonitor on).
2. `helm template` with the default values and with TLS / WebSocket /
   ServiceMonitor enabled (and a few more combinations); every document is
   parsed with PyYAML and the facts that keep a cluster healthy are asserted:
   three replicas, stable node ids, --peers naming every pod through the
   headless Service, the PodDisruptionBudget, the probes, the preStop drain,
   terminationGracePeriodSeconds above --drain_timeout, the security context,
   the ServiceMonitor and port 8883 only when enabled. Combinations that cannot
   work (grace period not above the drain timeout, TLS without a certificate)
   must fail to render.
3. The rendered ConfigMap's gannet.flags, the rendered Secret's cluster secret
   and the StatefulSet's container command are run for real: three gannet
   processes on 127.0.0.1 (listen addresses and the hosts in --peers rewritten
   to free loopback ports, data in a temp dir, HOSTNAME=<pod name> so the
   command computes the node id from the ordinal). They must form a cluster
   (gannetctl status on each: three nodes, the others alive) and carry a
   message published with mosquitto_pub on node 1 to a mosquitto_sub on node 3.
   Every process is stopped at the end, also on failure.

Until gannet skips its own id in --peers (the chart lists every replica, the
node included), a gannet that rejects it (exit 2, "has this node's own
--node_id") gets the list without its own entry; once gannet accepts it, the
rendered list is passed unchanged. The test prints which way it ran.

Environment: HELM_BIN (default <repo>/.tools/helm, where `make test` installs
it; the test fails, not skips, without a helm 3), GANNET_BIN, GANNETCTL_BIN
(default: <repo>/build/cmd/...), GANNET_TEST_TIMEOUT_SCALE,
GANNET_TEST_KEEP_TMP=1 (keep the temp dir with the nodes' logs).
Run: cd tests/deploy && HELM_BIN=../../.tools/helm /usr/bin/python3 -m unittest -v test_helm_chart
"""

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
from cluster_fixture import free_ports  # noqa: E402
from gannet_fixture import scaled, wait_for  # noqa: E402
CHART = os.path.join(REPO_ROOT, "helm", "gannet")
RELEASE = "gtest"
NAMESPACE = "mqtt"
FULLNAME = "gtest-gannet"          # <release>-<chart name>
HEADLESS = "gtest-gannet-headless"
HOST = "127.0.0.1"
KEEP_TMP = os.environ.get("GANNET_TEST_KEEP_TMP", "") not in ("", "0")

# The TLS and WebSocket listener flags: rendered only with tls.enabled /
# websocket.enabled.
LISTENER_FLAGS = {"mqtts_listen", "tls_cert_file", "tls_key_file", "tls_ca_file", "ws_listen",
                  "wss_listen"}

# TLS / WebSocket / ServiceMonitor on (the certificate need not be real to render).
ALL_ON = ["tls.enabled=true", "tls.cert=CERT-PEM", "tls.key=KEY-PEM", "tls.ca=CA-PEM",
          "websocket.enabled=true", "metrics.serviceMonitor.enabled=true"]


def tool(env, default):
    path = os.environ.get(env) or default
    if not path or not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise AssertionError(f"{env}: no executable at {path!r} (make test installs helm into "
                             f".tools/; ctest passes GANNET_BIN, GANNETCTL_BIN and HELM_BIN)")
    return path


def helm_bin():
    return tool("HELM_BIN", os.path.join(REPO_ROOT, ".tools", "helm"))


def gannet_bin():
    return tool("GANNET_BIN", os.path.join(REPO_ROOT, "build", "cmd", "gannet", "gannet"))


def gannetctl_bin():
    return tool("GANNETCTL_BIN", os.path.join(REPO_ROOT, "build", "cmd", "gannetctl", "gannetctl"))


def run_helm(*args, check=True):
    cp = subprocess.run([helm_bin(), *args], capture_output=True, text=True, timeout=scaled(60))
    if check and cp.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {cp.returncode}:\n{cp.stdout}{cp.stderr}")
    return cp


def render(*sets):
    """helm template with --set values: the parsed documents (None ones dropped)."""
    args = ["template", RELEASE, CHART, "--namespace", NAMESPACE]
    for s in sets:
        args += ["--set", s]
    out = run_helm(*args).stdout
    return [d for d in yaml.safe_load_all(out) if d is not None]


class Rendered:
    """The objects of one render, by kind and name."""

    def __init__(self, docs):
        self.docs = docs
        for d in docs:
            assert isinstance(d, dict) and "kind" in d and "apiVersion" in d, f"not an object: {d!r}"

    def all(self, kind):
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind, name=None):
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        if len(found) != 1:
            raise AssertionError(f"expected one {kind} {name or ''}, found "
                                 f"{[d['metadata']['name'] for d in found]}")
        return found[0]

    @property
    def sts(self):
        return self.one("StatefulSet")

    @property
    def pod(self):
        return self.sts["spec"]["template"]["spec"]

    @property
    def container(self):
        cs = [c for c in self.pod["containers"] if c["name"] == "gannet"]
        assert len(cs) == 1, self.pod["containers"]
        return cs[0]

    @property
    def flags_text(self):
        cm = self.one("ConfigMap")
        return cm["data"]["gannet.flags"]

    @property
    def flags(self):
        return parse_flagfile(self.flags_text)

    def flag(self, name):
        values = [v for n, v in self.flags if n == name]
        if len(values) != 1:
            raise AssertionError(f"--{name} appears {len(values)} times in gannet.flags:\n{self.flags_text}")
        return values[0]

    def has_flag(self, name):
        return any(n == name for n, _ in self.flags)

    def container_port(self, name):
        ports = [p["containerPort"] for p in self.container["ports"] if p["name"] == name]
        assert len(ports) == 1, f"container port {name!r}: {self.container['ports']}"
        return ports[0]

    def service_ports(self, name):
        return {p["port"]: p for p in self.one("Service", name)["spec"]["ports"]}

    def secret_value(self, name, key):
        return base64.b64decode(self.one("Secret", name)["data"][key]).decode()


def parse_flagfile(text):
    """An Abseil flagfile: [(name, value)], one --name=value per line; '#' lines
    and blank lines skipped. Anything else is an error."""
    flags = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"--([a-z][a-z0-9_]*)=(.*)", line)
        if not m:
            raise AssertionError(f"not a --flag=value line in gannet.flags: {line!r}")
        flags.append((m.group(1), m.group(2)))
    return flags


def parse_peers(value):
    """--peers: [(id, host, port)]."""
    peers = []
    for entry in value.split(","):
        m = re.fullmatch(r"(\d+)@(.+):(\d+)", entry)
        if not m:
            raise AssertionError(f"bad --peers entry {entry!r}")
        peers.append((int(m.group(1)), m.group(2), int(m.group(3))))
    return peers


def host_port(value):
    m = re.fullmatch(r"(.+):(\d+)", value)
    if not m:
        raise AssertionError(f"not HOST:PORT: {value!r}")
    return m.group(1), int(m.group(2))


def known_gannet_flags():
    cp = subprocess.run([gannet_bin(), "--helpfull"], capture_output=True, text=True,
                        timeout=scaled(20))
    return set(re.findall(r"^\s+--([a-z0-9_]+) \(", cp.stdout + cp.stderr, re.M))


def stop_process(p, sig=signal.SIGINT, timeout=10.0):
    """Stops p (SIGINT: gannet stops at once; SIGTERM would drain), then kills it."""
    if p.poll() is not None:
        return
    try:
        p.send_signal(sig)
        p.wait(timeout=scaled(timeout))
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=scaled(10))
    except ProcessLookupError:
        pass


class ChartRenderTest(unittest.TestCase):
    """helm lint and helm template: the rendered objects."""

    @classmethod
    def setUpClass(cls):
        # Missing helm is a failure, not a skip: these become errors of every test.
        helm_bin()
        cls.default = Rendered(render())
        cls.all_on = Rendered(render(*ALL_ON))

    def test_helm_is_helm3(self):
        out = run_helm("version", "--short").stdout
        self.assertRegex(out.strip(), r"^v3\.")

    def test_lint(self):
        run_helm("lint", "--strict", CHART)
        run_helm("lint", "--strict", CHART, *sum((["--set", s] for s in ALL_ON), []))

    def test_objects_of_the_default_render(self):
        kinds = sorted(d["kind"] for d in self.default.docs)
        self.assertEqual(kinds, ["ConfigMap", "PodDisruptionBudget", "Secret", "Service", "Service",
                                 "Service", "ServiceAccount", "StatefulSet"])
        for d in self.default.docs:
            self.assertEqual(d["metadata"].get("namespace"), NAMESPACE, d["metadata"]["name"])

    def test_statefulset(self):
        sts = self.default.sts
        spec = sts["spec"]
        self.assertEqual(sts["metadata"]["name"], FULLNAME)
        self.assertEqual(spec["replicas"], 3)
        self.assertEqual(spec["podManagementPolicy"], "Parallel")
        self.assertEqual(spec["serviceName"], HEADLESS)
        self.assertEqual(spec["updateStrategy"]["type"], "RollingUpdate")
        labels = spec["template"]["metadata"]["labels"]
        for k, v in spec["selector"]["matchLabels"].items():
            self.assertEqual(labels.get(k), v)
        # The data dir is the volumeClaimTemplate's volume.
        claims = spec["volumeClaimTemplates"]
        self.assertEqual([c["metadata"]["name"] for c in claims], ["data"])
        self.assertEqual(claims[0]["spec"]["accessModes"], ["ReadWriteOnce"])
        self.assertIn("storage", claims[0]["spec"]["resources"]["requests"])
        mounts = {m["name"]: m for m in self.default.container["volumeMounts"]}
        self.assertEqual(mounts["data"]["mountPath"], self.default.flag("data_dir"))
        self.assertNotIn("data", [v["name"] for v in self.default.pod["volumes"]])

    def test_node_id_from_the_ordinal(self):
        """The container command, run by sh with HOSTNAME=<pod name>, starts gannet
        with the flagfile and --node_id = ordinal + 1."""
        cmd = self.default.container["command"]
        self.assertEqual(cmd[:2], ["sh", "-c"])
        self.assertRegex(cmd[2], r"^exec gannet ")
        self.assertIn("--flagfile=/etc/gannet/gannet.flags", cmd[2])
        mounts = {m["name"]: m for m in self.default.container["volumeMounts"]}
        self.assertEqual(mounts["config"]["mountPath"], "/etc/gannet/gannet.flags")
        self.assertEqual(mounts["config"]["subPath"], "gannet.flags")
        config_volume = [v for v in self.default.pod["volumes"] if v["name"] == "config"][0]
        self.assertEqual(config_volume["configMap"]["name"], self.default.one("ConfigMap")["metadata"]["name"])
        for ordinal in range(3):
            script = cmd[2].replace("exec gannet ", "exec printf '%s\\n' ", 1)
            out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True,
                                 env={"HOSTNAME": f"{FULLNAME}-{ordinal}", "POD_IP": f"10.0.0.{ordinal}",
                                      "PATH": "/usr/bin:/bin"},
                                 check=True).stdout.split()
            self.assertIn(f"--node_id={ordinal + 1}", out)
            self.assertIn(f"--mqtt_advertise=10.0.0.{ordinal}:1883", out)
        pod_ip = [e for e in self.default.container["env"] if e["name"] == "POD_IP"][0]
        self.assertEqual(pod_ip["valueFrom"]["fieldRef"]["fieldPath"], "status.podIP")
        # IPv6: the address in brackets.
        v6 = Rendered(render("listenHost=[::]")).container["command"][2]
        self.assertIn("--mqtt_advertise=[${POD_IP}]:1883", v6)
        self.assertNotIn("mqtt_advertise", Rendered(render("gannet.advertisePodIP=false")).container["command"][2])

    def test_flagfile(self):
        r = self.default
        names = [n for n, _ in r.flags]
        self.assertEqual(len(names), len(set(names)), f"a flag twice:\n{r.flags_text}")
        for name in ("mqtt_listen", "cluster_listen", "peers", "data_dir", "metrics_listen",
                     "drain_timeout", "replication_factor", "cluster_secret_file", "log_level"):
            self.assertIn(name, names)
        self.assertNotIn("node_id", names)  # per pod, on the command line
        known = known_gannet_flags()
        self.assertIn("peers", known)  # the --helpfull parse works
        self.assertEqual([n for n in names if n not in known], [],
                         "flags in gannet.flags this gannet does not know")
        # --workers follows the CPU limit (2 by default) unless set.
        self.assertEqual(r.flag("workers"), "2")
        self.assertEqual(Rendered(render("resources.limits.cpu=1500m")).flag("workers"), "2")
        self.assertEqual(Rendered(render("gannet.workers=3")).flag("workers"), "3")
        extra = Rendered(render("extraFlags={--max_queued_messages=5000,--queue_overflow=drop_oldest}"))
        self.assertEqual(extra.flag("max_queued_messages"), "5000")
        self.assertEqual(extra.flag("queue_overflow"), "drop_oldest")

    def test_peers_name_every_pod_through_the_headless_service(self):
        peers = parse_peers(self.default.flag("peers"))
        port = self.default.container_port("cluster")
        self.assertEqual(peers, [(i + 1, f"{FULLNAME}-{i}.{HEADLESS}.{NAMESPACE}.svc.cluster.local", port)
                                 for i in range(3)])
        self.assertEqual(host_port(self.default.flag("cluster_listen"))[1], port)
        five = Rendered(render("replicaCount=5", "clusterDomain=k8s.example"))
        self.assertEqual(five.sts["spec"]["replicas"], 5)
        self.assertEqual([p[:2] for p in parse_peers(five.flag("peers"))],
                         [(i + 1, f"{FULLNAME}-{i}.{HEADLESS}.{NAMESPACE}.svc.k8s.example")
                          for i in range(5)])

    def test_headless_service(self):
        svc = self.default.one("Service", HEADLESS)["spec"]
        self.assertEqual(svc["clusterIP"], "None")
        self.assertIs(svc["publishNotReadyAddresses"], True)
        self.assertEqual([(p["name"], p["port"]) for p in svc["ports"]], [("cluster", 7946)])
        self.assertEqual(svc["selector"], self.default.sts["spec"]["selector"]["matchLabels"])

    def test_client_service_mqtt_only_by_default(self):
        ports = self.default.service_ports(FULLNAME)
        self.assertEqual(sorted(ports), [1883])
        self.assertEqual(ports[1883]["targetPort"], "mqtt")
        self.assertEqual(self.default.container_port("mqtt"), 1883)
        self.assertEqual(host_port(self.default.flag("mqtt_listen"))[1], 1883)
        self.assertNotIn(8883, [p["containerPort"] for p in self.default.container["ports"]])
        for name in LISTENER_FLAGS:
            self.assertFalse(self.default.has_flag(name), name)

    def test_tls_and_websocket_when_enabled(self):
        r = self.all_on
        ports = r.service_ports(FULLNAME)
        self.assertEqual(sorted(ports), [1883, 8083, 8084, 8883])
        self.assertEqual(ports[8883]["targetPort"], "mqtts")
        self.assertEqual(ports[8084]["targetPort"], "websocket-tls")
        self.assertEqual(r.container_port("mqtts"), 8883)
        self.assertEqual(r.container_port("websocket-tls"), 8084)
        self.assertEqual(host_port(r.flag("mqtts_listen"))[1], 8883)
        self.assertEqual(host_port(r.flag("ws_listen"))[1], 8083)
        self.assertEqual(host_port(r.flag("wss_listen"))[1], 8084)
        # Every flag rendered with everything on is one this gannet knows.
        known = known_gannet_flags()
        self.assertEqual([n for n, _ in r.flags if n not in known], [], r.flags_text)
        tls_mount = [m for m in r.container["volumeMounts"] if m["name"] == "tls"][0]["mountPath"]
        for flag, key in (("tls_cert_file", "tls.crt"), ("tls_key_file", "tls.key"), ("tls_ca_file", "ca.crt")):
            self.assertEqual(r.flag(flag), f"{tls_mount}/{key}")
        self.assertEqual(r.secret_value(f"{FULLNAME}-tls", "tls.crt"), "CERT-PEM")
        self.assertEqual(r.secret_value(f"{FULLNAME}-tls", "tls.key"), "KEY-PEM")
        # An existing Secret: none rendered, the pod mounts that one.
        existing = Rendered(render("tls.enabled=true", "tls.existingSecret=my-tls"))
        self.assertEqual(existing.all("Secret"), [existing.one("Secret", f"{FULLNAME}-cluster")])
        tls_volume = [v for v in existing.pod["volumes"] if v["name"] == "tls"][0]
        self.assertEqual(tls_volume["secret"]["secretName"], "my-tls")
        self.assertFalse(existing.has_flag("tls_ca_file"))
        # WebSocket alone: no wss. TLS alone: 8883 but no WebSocket port.
        ws_only = Rendered(render("websocket.enabled=true"))
        self.assertEqual(sorted(ws_only.service_ports(FULLNAME)), [1883, 8083])
        self.assertFalse(ws_only.has_flag("wss_listen"))
        tls_only = Rendered(render("tls.enabled=true", "tls.existingSecret=my-tls"))
        self.assertEqual(sorted(tls_only.service_ports(FULLNAME)), [1883, 8883])

    def test_servicemonitor_only_when_enabled(self):
        self.assertEqual(self.default.all("ServiceMonitor"), [])
        sm = self.all_on.one("ServiceMonitor")
        self.assertEqual(sm["apiVersion"], "monitoring.coreos.com/v1")
        [endpoint] = sm["spec"]["endpoints"]
        self.assertEqual(endpoint["path"], "/metrics")
        self.assertEqual(endpoint["port"], "metrics")
        # It selects the metrics Service, whose port is the container's metrics port.
        selected = [s for s in self.all_on.all("Service")
                    if all(s["metadata"]["labels"].get(k) == v
                           for k, v in sm["spec"]["selector"]["matchLabels"].items())]
        self.assertEqual(len(selected), 1, [s["metadata"]["name"] for s in selected])
        [port] = selected[0]["spec"]["ports"]
        self.assertEqual(port["name"], "metrics")
        self.assertEqual(port["targetPort"], "metrics")
        metrics_port = self.all_on.container_port("metrics")
        self.assertEqual(host_port(self.all_on.flag("metrics_listen"))[1], metrics_port)
        self.assertEqual(sm["spec"]["namespaceSelector"]["matchNames"], [NAMESPACE])
        # Metrics off: no metrics flag, port, Service or ServiceMonitor.
        off = Rendered(render("metrics.enabled=false", "metrics.serviceMonitor.enabled=true"))
        self.assertFalse(off.has_flag("metrics_listen"))
        self.assertEqual(off.all("ServiceMonitor"), [])
        self.assertNotIn("metrics", [p["name"] for p in off.container["ports"]])

    def test_pdb(self):
        pdb = self.default.one("PodDisruptionBudget")
        self.assertEqual(pdb["apiVersion"], "policy/v1")
        self.assertEqual(pdb["spec"]["maxUnavailable"], 1)
        self.assertNotIn("minAvailable", pdb["spec"])
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"], self.default.sts["spec"]["selector"]["matchLabels"])

    def test_probes(self):
        c = self.default.container
        live, ready = c["livenessProbe"], c["readinessProbe"]
        self.assertEqual(live["tcpSocket"]["port"], "cluster")
        self.assertEqual(ready["tcpSocket"]["port"], "mqtt")
        self.assertEqual(self.default.container_port("cluster"), host_port(self.default.flag("cluster_listen"))[1])
        self.assertEqual(self.default.container_port("mqtt"), host_port(self.default.flag("mqtt_listen"))[1])
        startup = c["startupProbe"]
        self.assertEqual(startup["tcpSocket"]["port"], "cluster")
        for probe in (live, ready, startup):
            self.assertGreater(probe["periodSeconds"], 0)
            self.assertGreater(probe["failureThreshold"], 0)

    def test_prestop_drain_and_grace_period(self):
        r = self.default
        script = r.container["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(script[:2], ["sh", "-c"])
        secret_file = r.flag("cluster_secret_file")
        cluster_port = host_port(r.flag("cluster_listen"))[1]
        self.assertIn(f"gannetctl --server=127.0.0.1:{cluster_port} --cluster_secret_file={secret_file} drain",
                      script[2])
        # It waits for gannet (PID 1) to exit: a SIGTERM during a drain stops it at once.
        self.assertIn("kill -0 1", script[2])
        # The secret file is where the cluster Secret is mounted.
        mount = [m for m in r.container["volumeMounts"] if m["name"] == "cluster-secret"][0]
        self.assertEqual(os.path.dirname(secret_file), mount["mountPath"])
        volume = [v for v in r.pod["volumes"] if v["name"] == "cluster-secret"][0]
        self.assertEqual(volume["secret"]["secretName"], f"{FULLNAME}-cluster")
        self.assertIn(os.path.basename(secret_file), [i["path"] for i in volume["secret"]["items"]])
        drain = int(r.flag("drain_timeout"))
        self.assertGreater(r.pod["terminationGracePeriodSeconds"], drain)
        longer = Rendered(render("gannet.drainTimeout=120"))
        self.assertEqual(int(longer.flag("drain_timeout")), 120)
        self.assertGreater(longer.pod["terminationGracePeriodSeconds"], 120)
        bad = run_helm("template", RELEASE, CHART, "--set", "terminationGracePeriodSeconds=20", check=False)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("must be larger than gannet.drainTimeout", bad.stderr)
        off = Rendered(render("preStop.enabled=false"))
        self.assertNotIn("lifecycle", off.container)

    def test_security_context(self):
        pod_sc = self.default.pod["securityContext"]
        sc = self.default.container["securityContext"]
        self.assertIs(pod_sc["runAsNonRoot"], True)
        self.assertIsInstance(pod_sc["runAsUser"], int)
        self.assertGreater(pod_sc["runAsUser"], 0)
        self.assertIs(sc["runAsNonRoot"], True)
        self.assertGreater(sc["runAsUser"], 0)
        self.assertIs(sc["readOnlyRootFilesystem"], True)
        self.assertIs(sc["allowPrivilegeEscalation"], False)
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        self.assertNotIn("add", sc["capabilities"])
        # Writable: only the data volume and /tmp.
        self.assertEqual(sorted(m["mountPath"] for m in self.default.container["volumeMounts"]
                                if not m.get("readOnly")), ["/data", "/tmp"])
        res = self.default.container["resources"]
        self.assertTrue(res["requests"]["cpu"] and res["requests"]["memory"])
        self.assertTrue(res["limits"]["cpu"] and res["limits"]["memory"])

    def test_anti_affinity(self):
        soft = self.default.pod["affinity"]["podAntiAffinity"]
        self.assertEqual(list(soft), ["preferredDuringSchedulingIgnoredDuringExecution"])
        term = soft["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
        self.assertEqual(term["labelSelector"]["matchLabels"], self.default.sts["spec"]["selector"]["matchLabels"])
        hard = Rendered(render("antiAffinity.type=hard")).pod["affinity"]["podAntiAffinity"]
        self.assertEqual(list(hard), ["requiredDuringSchedulingIgnoredDuringExecution"])
        self.assertEqual(hard["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"],
                         "kubernetes.io/hostname")

    def test_cluster_secret(self):
        generated = self.default.secret_value(f"{FULLNAME}-cluster", "cluster.secret")
        self.assertGreaterEqual(len(generated), 32)
        again = Rendered(render()).secret_value(f"{FULLNAME}-cluster", "cluster.secret")
        self.assertNotEqual(generated, again)  # random per install (kept by lookup on upgrades)
        given = Rendered(render("cluster.secret=s3cret-value"))
        self.assertEqual(given.secret_value(f"{FULLNAME}-cluster", "cluster.secret"), "s3cret-value")
        existing = Rendered(render("cluster.existingSecret=ops-secret", "cluster.secretKey=key"))
        self.assertEqual(existing.all("Secret"), [])
        volume = [v for v in existing.pod["volumes"] if v["name"] == "cluster-secret"][0]
        self.assertEqual(volume["secret"]["secretName"], "ops-secret")
        self.assertEqual(existing.flag("cluster_secret_file"), "/etc/gannet/secret/key")

    def test_tls_without_certificate_does_not_render(self):
        bad = run_helm("template", RELEASE, CHART, "--set", "tls.enabled=true", check=False)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("tls.enabled needs", bad.stderr)


class ChartOnLoopbackTest(unittest.TestCase):
    """What the chart renders, run as three real gannet nodes on 127.0.0.1."""

    def setUp(self):
        helm_bin()
        self.gannet = gannet_bin()
        self.gannetctl = gannetctl_bin()
        for tool_name in ("mosquitto_pub", "mosquitto_sub"):
            self.assertTrue(shutil.which(tool_name), f"{tool_name} not found (Debian mosquitto-clients)")
        self.tmp = tempfile.mkdtemp(prefix="gannet-helm-")
        if not KEEP_TMP:
            self.addCleanup(shutil.rmtree, self.tmp, True)
        self.procs = []
        self.logs = {}
        self.addCleanup(self.stop_all)

    def stop_all(self):
        for p in reversed(self.procs):
            stop_process(p)

    def spawn(self, args, log_name=None, **kw):
        stderr = subprocess.STDOUT
        stdout = subprocess.PIPE
        if log_name:
            path = os.path.join(self.tmp, log_name)
            self.logs[log_name] = path
            stdout = open(path, "w")
            self.addCleanup(stdout.close)
        p = subprocess.Popen(args, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def log_tail(self, name, lines=40):
        try:
            with open(self.logs[name]) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def own_id_accepted(self, secret_file):
        """Whether this gannet accepts its own id in --peers (then the chart's list
        is passed unchanged) or exits 2 with "has this node's own --node_id"."""
        data_dir = os.path.join(self.tmp, "own-id-probe")
        own, other = free_ports(2)  # nothing listens there: the probe never forms a cluster
        p = self.spawn([self.gannet, "--node_id=1", f"--peers=1@{HOST}:{own},2@{HOST}:{other}",
                        f"--cluster_listen={HOST}:0", f"--mqtt_listen={HOST}:0",
                        f"--cluster_secret_file={secret_file}", f"--data_dir={data_dir}",
                        "--workers=1", "--sys_interval=0"], log_name="own-id-probe.log")

        def decided():
            if p.poll() is not None:
                return "exited"
            return "ready" if re.search(r"\bready\b", self.log_tail("own-id-probe.log", 200)) else None

        how = wait_for(decided, 15, message="the --peers own-id probe to exit or start")
        if how == "ready":
            stop_process(p)
            return True
        out = self.log_tail("own-id-probe.log")
        if p.returncode == 2 and "has this node's own --node_id" in out:
            return False
        raise AssertionError(f"own-id probe: gannet exited {p.returncode}:\n{out}")

    def status(self, port, secret_file):
        cp = subprocess.run([self.gannetctl, f"--server={HOST}:{port}",
                             f"--cluster_secret_file={secret_file}", "--timeout_ms=2000", "status"],
                            capture_output=True, text=True, timeout=scaled(10))
        if cp.returncode != 0:
            return None
        rows = {}
        for line in cp.stdout.splitlines()[1:]:
            f = line.split()
            if len(f) > 6 and f[0].isdigit():
                rows[int(f[0])] = {"state": f[2], "routes": int(f[6]) if f[6].isdigit() else -1}
        return rows

    def test_rendered_cluster_runs_on_loopback(self):
        started = time.monotonic()
        r = Rendered(render())
        replicas = r.sts["spec"]["replicas"]
        self.assertEqual(replicas, 3)
        command = r.container["command"]
        flags = r.flags
        peers = parse_peers(r.flag("peers"))
        self.assertEqual([p[0] for p in peers], list(range(1, replicas + 1)))

        secret_file = os.path.join(self.tmp, "cluster.secret")
        with open(secret_file, "w") as f:
            f.write(r.secret_value(f"{FULLNAME}-cluster", "cluster.secret"))
        os.chmod(secret_file, 0o600)

        accepted = self.own_id_accepted(secret_file)
        how = ("accepts its own id in --peers: the rendered list is passed unchanged" if accepted else
               "rejects its own id in --peers: each node's own entry is stripped")
        print(f"\n[deploy.helm_chart] gannet {how}", file=sys.stderr)

        # Loopback ports: every *_listen flag of every node, plus the cluster ports the peers dial.
        listen_flags = [n for n, _ in flags if n.endswith("_listen")]
        self.assertIn("cluster_listen", listen_flags)
        ports = iter(free_ports(replicas * len(listen_flags)))
        node_ports = [{name: next(ports) for name in listen_flags} for _ in range(replicas)]
        loopback_peers = [(node_id, HOST, node_ports[node_id - 1]["cluster_listen"]) for node_id, _, _ in peers]

        bindir = os.path.join(self.tmp, "bin")
        os.mkdir(bindir)
        os.symlink(self.gannet, os.path.join(bindir, "gannet"))
        nodes = []
        for ordinal in range(replicas):
            node_id = ordinal + 1
            lines = []
            for name, value in flags:
                if name.endswith("_listen"):
                    value = f"{HOST}:{node_ports[ordinal][name]}"
                elif name == "peers":
                    value = ",".join(f"{i}@{h}:{p}" for i, h, p in loopback_peers
                                     if accepted or i != node_id)
                elif name == "data_dir":
                    value = os.path.join(self.tmp, f"data-{ordinal}")
                elif name == "cluster_secret_file":
                    value = secret_file
                lines.append(f"--{name}={value}")
            flagfile = os.path.join(self.tmp, f"gannet-{ordinal}.flags")
            with open(flagfile, "w") as f:
                f.write("\n".join(lines) + "\n")
            # The StatefulSet's own command line, with the flagfile's path for this node.
            self.assertIn("/etc/gannet/gannet.flags", command[2])
            script = command[2].replace("/etc/gannet/gannet.flags", flagfile)
            env = dict(os.environ, HOSTNAME=f"{FULLNAME}-{ordinal}", POD_IP=HOST,
                       PATH=bindir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"))
            p = self.spawn(["/bin/sh", "-c", script], log_name=f"node{node_id}.log", env=env)
            nodes.append((node_id, p, node_ports[ordinal]))

        def log_report():
            return "\n".join(f"--- node{i} (exit {p.poll()}):\n{self.log_tail(f'node{i}.log')}" for i, p, _ in nodes)

        def check_running():
            for i, p, _ in nodes:
                if p.poll() is not None:
                    raise AssertionError(f"node {i} exited with {p.returncode}\n{log_report()}")

        # Each node: three members, itself (its id from the ordinal) and the others alive.
        last = {}
        for node_id, _, np in nodes:
            def formed():
                check_running()
                rows = self.status(np["cluster_listen"], secret_file)
                last[node_id] = rows
                if not rows or sorted(rows) != list(range(1, replicas + 1)):
                    return False
                return all(row["state"] == ("self" if i == node_id else "alive") for i, row in rows.items())
            try:
                wait_for(formed, 20, message=f"node {node_id} to see all {replicas} nodes alive")
            except AssertionError as e:
                raise AssertionError(f"{e}; last status: {last.get(node_id)}\n{log_report()}") from None

        # MQTT: a subscriber on node 3 gets what is published on node 1.
        mqtt1 = nodes[0][2]["mqtt_listen"]
        mqtt3 = nodes[2][2]["mqtt_listen"]
        cluster1 = nodes[0][2]["cluster_listen"]
        topic = f"plant/helm-{os.getpid()}/temperature"
        before = self.status(cluster1, secret_file)[3]["routes"]
        sub = self.spawn(["mosquitto_sub", "-h", HOST, "-p", str(mqtt3), "-i", f"helm-sub-{os.getpid()}",
                          "-t", topic, "-q", "1", "-C", "1", "-v", "-W", str(int(scaled(30)))],
                         log_name="mosquitto_sub.log")
        # The subscription has reached node 1 once node 1 counts one more route of node 3.
        def route_known():
            check_running()
            if sub.poll() is not None:
                self.fail(f"mosquitto_sub exited {sub.returncode}: {self.log_tail('mosquitto_sub.log')}")
            rows = self.status(cluster1, secret_file) or {}
            return rows.get(3, {}).get("routes", -1) > before

        wait_for(route_known, 15, message="node 1 to learn node 3's new route")
        deadline = time.monotonic() + scaled(15)
        while sub.poll() is None and time.monotonic() < deadline:
            cp = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(mqtt1), "-t", topic, "-m", "21.5",
                                 "-q", "1"], capture_output=True, text=True, timeout=scaled(10))
            self.assertEqual(cp.returncode, 0, f"mosquitto_pub on node 1: {cp.stderr}")
            try:
                sub.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
        check_running()
        self.assertEqual(sub.poll(), 0, f"mosquitto_sub on node 3 got nothing:\n"
                                        f"{self.log_tail('mosquitto_sub.log')}\n{log_report()}")
        self.assertEqual(self.log_tail("mosquitto_sub.log").strip(), f"{topic} 21.5")
        print(f"[deploy.helm_chart] cluster formed and delivered in {time.monotonic() - started:.1f}s",
              file=sys.stderr)

        # The preStop hook, run for node 2 (its cluster port, the secret file and its
        # pid instead of PID 1): it drains the node and returns once gannet has exited,
        # well within the pod's grace period.
        node_id, node, np = nodes[1]
        hook = r.container["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(hook[:2], ["sh", "-c"])
        rendered_cluster_port = host_port(r.flag("cluster_listen"))[1]
        script = hook[2].replace(f"127.0.0.1:{rendered_cluster_port}", f"{HOST}:{np['cluster_listen']}")
        script = script.replace(r.flag("cluster_secret_file"), secret_file)
        script, n = re.subn(r"kill -0 1\b", f"kill -0 {node.pid}", script)
        self.assertEqual(n, 1, hook[2])
        os.symlink(self.gannetctl, os.path.join(bindir, "gannetctl"))
        hook_started = time.monotonic()
        hook_proc = self.spawn(["/bin/sh", "-c", script], log_name="prestop.log",
                               env=dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")))
        grace = r.pod["terminationGracePeriodSeconds"]
        try:
            node.wait(timeout=scaled(grace))  # reaps it: the hook's kill -0 sees it gone
            hook_proc.wait(timeout=scaled(10))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the preStop hook did not finish within {grace}s:\n"
                                 f"{self.log_tail('prestop.log')}\n{log_report()}") from None
        took = time.monotonic() - hook_started
        self.assertEqual(hook_proc.returncode, 0, self.log_tail("prestop.log"))
        self.assertIn("draining", self.log_tail("prestop.log"))
        self.assertEqual(node.returncode, 0, f"node {node_id} after the preStop drain:\n{log_report()}")
        self.assertRegex(self.log_tail(f"node{node_id}.log", 400), r"drain(ed| done)")
        print(f"[deploy.helm_chart] preStop hook drained node {node_id} and returned in {took:.1f}s",
              file=sys.stderr)
        for i, p, _ in (nodes[0], nodes[2]):
            self.assertIsNone(p.poll(), f"node {i} exited:\n{log_report()}")


if __name__ == "__main__":
    unittest.main()
