"""Three (or more) real gannet nodes on loopback ports, forming one cluster.

Builds on tests/integration/gannet_fixture.py (Broker, clients, cleanup): each
node is a Broker with --node_id, --cluster_listen, --peers and a shared
--cluster_secret_file; gannetctl ($GANNETCTL_BIN) reads their status. Timeouts
are short (heartbeat 100 ms, suspect 600 ms, dead 1500 ms) so that failure
detection is tested in seconds; waits poll for the state, never sleep blindly."""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from gannet_fixture import (REPO_ROOT, Broker, BrokerTestCase, ConnectionClosed,  # noqa: E402
                            T, scaled, wait_for)

HOST = "127.0.0.1"
FAST = {"cluster_heartbeat_ms": 100, "cluster_suspect_ms": 600, "cluster_dead_ms": 1500}


def gannetctl_binary():
    binary = os.environ.get("GANNETCTL_BIN") or os.path.join(REPO_ROOT, "build", "cmd", "gannetctl",
                                                             "gannetctl")
    if not os.path.exists(binary):
        raise AssertionError(f"gannetctl not found at {binary!r}: set GANNETCTL_BIN (ctest does)")
    return binary


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (bound together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class ClusterTestCase(BrokerTestCase):
    """self.nodes[i] is node i's Broker (1-based). Every node is stopped in cleanup."""

    start_broker_in_setup = False
    node_count = 3
    start_cluster_in_setup = True
    cluster_flags = FAST
    node_metrics = False  # serve /metrics on each node (Broker.metric)

    def setUp(self):
        super().setUp()
        tmp = tempfile.mkdtemp(prefix="gannet-cluster-")
        self.secret_file = os.path.join(tmp, "secret")
        with open(self.secret_file, "w") as f:
            f.write("test-cluster-secret\n")
        # The nodes' MQTT ports too, from the same reservation: a node's MQTT
        # listener given port 0 could otherwise get another node's cluster port.
        ports = free_ports(2 * self.node_count)
        self.cluster_ports = ports[:self.node_count]
        self.mqtt_ports = ports[self.node_count:]
        self.nodes = {}
        if self.start_cluster_in_setup:
            for i in range(1, self.node_count + 1):
                self.start_node(i)
            self.wait_all_alive()

    def wait_all_alive(self, timeout=10.0):
        """Every node reports every other alive: each reaches a majority, so
        persistent sessions are served (a node that does not refuses them, 0x88)."""
        for i in self.nodes:
            for j in self.nodes:
                if i != j:
                    self.wait_state(i, j, "alive", timeout=timeout)

    def cluster_address(self, i):
        return f"{HOST}:{self.cluster_ports[i - 1]}"

    def node_flags(self, i, secret_file=None, **extra):
        peers = ",".join(f"{j}@{self.cluster_address(j)}"
                         for j in range(1, self.node_count + 1) if j != i)
        flags = {"node_id": i, "cluster_listen": self.cluster_address(i), "peers": peers,
                 "cluster_secret_file": secret_file or self.secret_file, "workers": 1}
        flags.update(self.cluster_flags)
        flags.update(extra)
        return flags

    def start_node(self, i, **kw):
        # Stopped with SIGINT (at once): SIGTERM would drain it into the others.
        b = Broker(self.node_flags(i, **kw), kind="gannet", metrics=self.node_metrics,
                   log_sink=self._broker_logs, stop_signal=signal.SIGINT)
        self.addCleanup(b.stop)
        b.start(port=self.mqtt_ports[i - 1])
        self.nodes[i] = b
        restart = b.restart

        def restart_then_wait_quorum(*args, **kwargs):
            # A restarted node refuses persistent sessions (0x88) until it hears
            # from a majority: when enough nodes run for one, wait for it.
            result = restart(*args, **kwargs)
            running = [j for j, n in self.nodes.items() if n.is_running()]
            if len(running) * 2 > self.node_count:
                self.wait_quorum(i)
            return result

        b.restart = restart_then_wait_quorum
        return b

    def persistent_raw(self, node, client_id, will=None):
        """A 3.1.1 raw client with a persistent session (cleanSession=0) on node
        `node`: (client, CONNACK)."""
        c = self.raw(4, broker=self.nodes[node], connect=False)
        ack = c.connect(client_id, clean=False, will=will)
        return c, ack

    @staticmethod
    def drain_publishes(client, got, until):
        """Reads PUBLISHes (acking them), their payloads as ints into `got`,
        until until() or the connection ends (then False)."""
        while not until():
            try:
                p = client.expect_matching(T.PUBLISH, timeout=0.2)
            except AssertionError:
                continue
            except (ConnectionClosed, OSError):
                return False
            client.ack(p)
            got.append(int(p.payload))
        return True

    def wait_quorum(self, i, timeout=10.0):
        """Node i reports a majority of the cluster (itself included) alive."""
        def check():
            alive = sum(1 for j, row in self.status(i).items()
                        if j != i and row["state"] == "alive")
            return (alive + 1) * 2 > self.node_count
        wait_for(check, timeout=timeout, interval=0.05, message=f"node {i} to reach a majority")

    # ---- gannetctl -------------------------------------------------------------

    def gannetctl(self, i, *args, secret_file=None, timeout=10.0):
        cmd = [gannetctl_binary(), f"--server={self.cluster_address(i)}",
               f"--cluster_secret_file={secret_file or self.secret_file}", *args]
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=scaled(timeout))
        return cp.returncode, cp.stdout, cp.stderr

    def status(self, i):
        """node id -> {state, incarnation, connections, routes} as node i reports it."""
        rc, out, err = self.gannetctl(i, "status")
        self.assertEqual(rc, 0, f"gannetctl status on node {i} failed: {err}")
        rows = {}
        for line in out.splitlines()[1:]:
            f = line.split()
            rows[int(f[0])] = {"state": f[2], "incarnation": int(f[3]),
                               "connections": int(f[5]), "routes": int(f[6])}
        return rows

    def wait_state(self, observer, node, state, timeout=10.0):
        """Poll node `observer`'s status until it reports `node` in `state`."""
        last = {}

        def check():
            nonlocal last
            last = self.status(observer)
            return last.get(node, {}).get("state") == state

        try:
            wait_for(check, timeout=timeout, interval=0.05,
                     message=f"node {observer} to report node {node} {state}")
        except AssertionError as e:
            raise AssertionError(f"{e}; its last status: {last}") from None
        return last[node]

    def wait_routes(self, observer, node, predicate, timeout=10.0):
        """Poll until node `observer` reports node `node` alive with a route count
        (distinct filters) for which predicate(count) holds. Route deltas travel
        before the heartbeat that counts them, so after this the observer has
        applied them."""
        last = {}

        def check():
            nonlocal last
            last = self.status(observer).get(node, {})
            return last.get("state") == "alive" and predicate(last.get("routes", -1))

        try:
            wait_for(check, timeout=timeout, interval=0.05,
                     message=f"node {observer}'s route count of node {node}")
        except AssertionError as e:
            raise AssertionError(f"{e}; last: {last}") from None
