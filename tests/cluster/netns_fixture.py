"""Three gannet nodes in their own network namespaces, for real partitions.

Builds on cluster_fixture.py: NetnsClusterTestCase is a ClusterTestCase whose
nodes each run in a network namespace of their own, joined by a bridge in a
fourth "switch" namespace. Nothing touches the host's networking: the veth
pairs are created with both ends already inside the namespaces, and deleting
the namespaces removes them.

    switch namespace  gnt<pid>-<k>-s :  br0 ── n1, n2, n3   (veth ends)
    node namespace i  gnt<pid>-<k>-<i>:  eth0 = 10.A.B.i/24, lo up

Node i listens for MQTT on 10.A.B.i:1883 and for its peers on 10.A.B.i:7000
(fixed ports: every port is free in a fresh namespace). cut(i, j) drops, with
iptables, every packet node i receives from node j and every packet node j
receives from node i: packets leave and are lost on the way, as in a real
partition; the sender's kernel sees nothing (a DROP in OUTPUT would make it
refuse some sends with EPERM, an error a real network never gives). ARP is not
filtered, so healing needs no neighbour relearning.

Clients reach a node from inside its namespace:
* self.paho(broker=self.nodes[i]) / self.raw(broker=self.nodes[i]) work as in
  ClusterTestCase: the socket is created inside the node's namespace (pass
  netns=j to create it in node j's namespace instead, across the network);
* gannetctl runs under `ip netns exec` (self.gannetctl(i, ...), hence status()
  and wait_state() too);
* anything else: `with in_netns(self.netns(i)): ...` creates sockets, and
  starts subprocesses, in that namespace.

in_netns() switches the *calling thread* only (setns(2) on a thread changes
that thread's namespace, not the process's): a socket belongs to the namespace
it was created in for its whole life, so creating it inside the context is
enough, and paho's loop thread (started later, on another thread) keeps using
it. This was chosen over a helper thread per client because paho creates its
socket synchronously in connect(), and over `ip netns exec python` because the
test keeps its clients in its own process. Python 3.11 has no os.setns (it came
in 3.12), so setns is called through ctypes.

Names: namespaces are gnt<pid>-<k>-<1..3|s> (k counts the tests of this
process), the subnet 10.A.B.0/24 is derived from the pid. Each test's network
is private to its namespaces anyway, so concurrent test processes (ctest -j)
cannot see each other whatever the numbers; the pid in the names keeps their
namespaces apart and lets a later run delete the namespaces of a run that was
killed (its pid no longer alive). Its brokers died with it (setpriv
--pdeathsig in gannet_fixture.Broker).

Needs root (skipped otherwise), ip (iproute2) and iptables (make deps). When
root, a failure to build the network is a test error, never a skip."""

import contextlib
import ctypes
import itertools
import os
import re
import shutil
import signal
import subprocess

from cluster_fixture import ClusterTestCase, gannetctl_binary
from gannet_fixture import Broker, PahoClient, RawClient, scaled, unique

MQTT_PORT = 1883
CLUSTER_PORT = 7000
NETNS_DIR = "/run/netns"
PREFIX = "gnt"
_NAME_RE = re.compile(rf"^{PREFIX}(\d+)-\d+-[0-9s]+$")
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_test_counter = itertools.count(1)
_swept = False


def _setns(fd):
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns(CLONE_NEWNET): {os.strerror(e)}")


@contextlib.contextmanager
def in_netns(name):
    """Run the body with the calling thread in network namespace `name` (as made
    by `ip netns add`); the thread's previous namespace is restored on exit.
    Sockets created and processes started in the body belong to `name`."""
    target = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(original)
        finally:
            os.close(original)
    finally:
        os.close(target)


class NetnsError(Exception):
    """Building or changing the test network failed: reported as a test error
    (not a failure of the broker, and never a skip)."""


def run(*cmd, timeout=10.0, check=True):
    """Run a command (ip, iptables); NetnsError with its output if it fails."""
    cp = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                        timeout=scaled(timeout))
    if check and cp.returncode != 0:
        raise NetnsError(f"`{' '.join(cmd)}` exited {cp.returncode}: {cp.stderr.strip()}")
    return cp


def _pid_alive(pid):
    """pid runs (a zombie, killed but not yet reaped, counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def delete_netns(name):
    """Kill what still runs in namespace `name`, then delete it (its veth ends go
    with it). Quiet if it does not exist."""
    if not os.path.exists(os.path.join(NETNS_DIR, name)):
        return
    pids = run("ip", "netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    cp = run("ip", "netns", "delete", name, check=False)
    # Two test processes may sweep the same stale namespace at once: gone is gone.
    if cp.returncode != 0 and os.path.exists(os.path.join(NETNS_DIR, name)):
        raise NetnsError(f"`ip netns delete {name}` exited {cp.returncode}: {cp.stderr.strip()}")


def sweep_stale_namespaces():
    """Delete gnt<pid>-* namespaces whose test process is gone."""
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return
    for name in names:
        m = _NAME_RE.match(name)
        if m and not _pid_alive(int(m.group(1))):
            delete_netns(name)


class NetnsBroker(Broker):
    """A gannet node started with `ip netns exec NETNS`, MQTT on ADDRESS:1883.
    The process is gannet itself (ip execs it), so the Broker's signals reach it."""

    def __init__(self, netns, address, *args, **kw):
        self.netns, self.address = netns, address
        super().__init__(*args, **kw)

    def command(self, port=0):
        cmd = [a for a in super().command(port) if not a.startswith("--mqtt_listen=")]
        cmd.insert(1, f"--mqtt_listen={self.address}:{port or MQTT_PORT}")
        # --metrics_listen stays 127.0.0.1: the namespace's own lo (metrics_text() enters it).
        return ["ip", "netns", "exec", self.netns] + cmd

    def probe_client(self):
        # wait_ready() connects from inside the namespace.
        return (NetnsRawClient(self.netns, self.port, version=4, timeout=1.0, host=self.address),
                f"gannet at {self.address}:{self.port} in {self.netns}")

    def metrics_text(self, timeout=5.0):
        with in_netns(self.netns):
            return super().metrics_text(timeout)


class NetnsPahoClient(PahoClient):
    """PahoClient whose socket is created in network namespace `netns`."""

    def __init__(self, netns, *args, **kw):
        self.netns = netns
        super().__init__(*args, **kw)

    def connect(self, *args, **kw):
        with in_netns(self.netns):
            return super().connect(*args, **kw)


class NetnsRawClient(RawClient):
    """RawClient whose socket is created (and connected) in network namespace `netns`."""

    def __init__(self, netns, *args, **kw):
        self.netns = netns
        with in_netns(netns):
            super().__init__(*args, **kw)


class NetnsClusterTestCase(ClusterTestCase):
    """self.nodes[i] is node i's NetnsBroker; self.netns(i) its namespace,
    self.address(i) its IP. Partitions: cut(i, j), heal(i, j), isolate(i),
    heal_all(). Everything (processes, namespaces, veths) is removed in cleanup,
    also when setUp fails half way."""

    def setUp(self):
        global _swept
        if os.geteuid() != 0:
            self.skipTest("partition tests need root (network namespaces, iptables)")
        for tool in ("ip", "iptables"):
            if shutil.which(tool) is None:
                raise NetnsError(f"{tool} not found: install iproute2 and iptables (make deps)")
        if not _swept:
            sweep_stale_namespaces()
            _swept = True
        pid = os.getpid()
        self._netns_base = f"{PREFIX}{pid}-{next(_test_counter)}"
        self.subnet = f"10.{100 + (pid >> 8) % 150}.{pid & 0xFF}"
        self._cuts = set()
        self._build_network()
        super().setUp()

    # ---- names and addresses -------------------------------------------------

    def netns(self, i):
        """Namespace name of node i (i = "s": the switch)."""
        return f"{self._netns_base}-{i}"

    def address(self, i):
        return f"{self.subnet}.{i}"

    def cluster_address(self, i):
        return f"{self.address(i)}:{CLUSTER_PORT}"

    # ---- the network -----------------------------------------------------------

    def _add_netns(self, name):
        # Registered before it exists: a half-made network is removed too.
        self.addCleanup(delete_netns, name)
        run("ip", "netns", "add", name)
        run("ip", "-n", name, "link", "set", "lo", "up")

    def _build_network(self):
        switch = self.netns("s")
        self._add_netns(switch)
        run("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", switch, "link", "set", "br0", "up")
        for i in range(1, self.node_count + 1):
            ns = self.netns(i)
            self._add_netns(ns)
            # Both ends are created inside their namespaces: no name on the host.
            run("ip", "link", "add", "eth0", "netns", ns, "type", "veth",
                "peer", "name", f"n{i}", "netns", switch)
            run("ip", "-n", switch, "link", "set", f"n{i}", "master", "br0", "up")
            run("ip", "-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")

    def _iptables(self, i, *args, check=True):
        return run("ip", "netns", "exec", self.netns(i), "iptables", "-w", "5", *args, check=check)

    def _drop_rule(self, i, j):
        return ("INPUT", "-s", self.address(j), "-j", "DROP")

    def cut(self, i, j):
        """Drop all traffic between node i and node j, both ways (idempotent)."""
        if i == j:
            raise ValueError("cut(i, i)")
        if frozenset((i, j)) in self._cuts:
            return
        self._iptables(i, "-A", *self._drop_rule(i, j))
        self._iptables(j, "-A", *self._drop_rule(j, i))
        self._cuts.add(frozenset((i, j)))

    def heal(self, i, j):
        """Undo cut(i, j) (idempotent)."""
        if frozenset((i, j)) not in self._cuts:
            return
        self._iptables(i, "-D", *self._drop_rule(i, j))
        self._iptables(j, "-D", *self._drop_rule(j, i))
        self._cuts.discard(frozenset((i, j)))

    def isolate(self, i):
        """Cut node i from every other node (its own clients still reach it)."""
        for j in range(1, self.node_count + 1):
            if j != i:
                self.cut(i, j)

    def heal_all(self):
        """Remove every cut."""
        for i in range(1, self.node_count + 1):
            self._iptables(i, "-F", "INPUT")
        self._cuts.clear()

    def cuts(self):
        """The current cuts, as sorted (i, j) pairs."""
        return sorted(tuple(sorted(c)) for c in self._cuts)

    # ---- nodes, clients, gannetctl ---------------------------------------------

    def start_node(self, i, **kw):
        b = NetnsBroker(self.netns(i), self.address(i), self.node_flags(i, **kw), kind="gannet",
                        metrics=self.node_metrics, log_sink=self._broker_logs,
                        stop_signal=signal.SIGINT)
        self.addCleanup(b.stop)
        b.start()
        self.nodes[i] = b
        return b

    def _client_netns(self, broker, netns):
        if netns is None:
            return broker.netns
        return self.netns(netns) if isinstance(netns, int) else netns

    def paho(self, client_id=None, version=4, connect=True, broker=None, netns=None, **kw):
        """A PahoClient of `broker` (a node), its socket made in the node's
        namespace, or in node `netns`'s (an int) to cross the network."""
        b = broker or self.broker
        c = NetnsPahoClient(self._client_netns(b, netns), b.port, client_id, version,
                            host=b.address, **kw)
        self.addCleanup(c.close)
        if connect:
            c.connect()
        return c

    def raw(self, version=4, client_id=None, connect=True, broker=None, clean=True, keepalive=60,
            props=None, will=None, timeout=5.0, rcvbuf=None, netns=None):
        """A RawClient of `broker`; netns as in paho()."""
        b = broker or self.broker
        c = NetnsRawClient(self._client_netns(b, netns), b.port, version, timeout,
                           host=b.address, rcvbuf=rcvbuf)
        self.addCleanup(c.close)
        if connect:
            c.connect(client_id if client_id is not None else unique("raw"), clean, keepalive, will,
                      props)
        return c

    def mosquitto_sub(self, *args, **kw):
        raise NotImplementedError("mosquitto_sub/pub dial 127.0.0.1 of the host: use paho() or raw()")

    mosquitto_pub = mosquitto_sub

    def gannetctl(self, i, *args, secret_file=None, timeout=10.0, netns=None):
        """gannetctl against node i, run in node i's namespace (or node `netns`'s)."""
        ns = self.netns(i if netns is None else netns)
        cmd = ["ip", "netns", "exec", ns, gannetctl_binary(), f"--server={self.cluster_address(i)}",
               f"--cluster_secret_file={secret_file or self.secret_file}", *args]
        cp = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=scaled(timeout))
        return cp.returncode, cp.stdout, cp.stderr
