"""Helpers for the gannetctl integration tests (test_gannetctl_*.py).

* ``gannetctl_binary()`` -- $GANNETCTL_BIN, else the sibling of $GANNET_BIN in
  the same build tree (<build>/cmd/gannet/gannet -> <build>/cmd/gannetctl/gannetctl).
* ``run_gannetctl(*args)`` -- runs it, returns the CompletedProcess (text).
* ``free_port()``    -- a loopback TCP port nothing listens on (at the moment).
* ``Mosquitto``      -- /usr/sbin/mosquitto with a given config on a free
                        loopback port (to check that it accepts our password
                        files).

Test certificates come from pki.py.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import time

from gannet_fixture import HOST, MOSQUITTO_BIN, BrokerError, gannet_binary, scaled

_PDEATHSIG = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []


def gannetctl_binary():
    """$GANNETCTL_BIN, else <build>/cmd/gannetctl/gannetctl next to $GANNET_BIN."""
    binary = os.environ.get("GANNETCTL_BIN")
    if not binary:
        build = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(gannet_binary()))))
        binary = os.path.join(build, "cmd", "gannetctl", "gannetctl")
    if not os.path.exists(binary):
        raise BrokerError(f"gannetctl binary not found at {binary!r}: build the gannetctl target "
                          "(cmake --build BUILD --target gannetctl) or set GANNETCTL_BIN")
    return binary


def run_gannetctl(*args, input=None, timeout=30.0, prefix=()):
    """gannetctl ARGS...; `prefix` runs it under another command (ip netns exec NS)."""
    return subprocess.run(list(prefix) + [gannetctl_binary()] + [str(a) for a in args],
                          input=input, capture_output=True, text=True, timeout=scaled(timeout))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Mosquitto:
    """One Mosquitto process on 127.0.0.1 with `lines` of configuration after
    its `listener PORT 127.0.0.1` line. stop() in cleanup."""

    def __init__(self, tmp, lines):
        self.tmp = tmp
        self.lines = list(lines)
        self.proc = None
        self.port = None
        self.log_path = os.path.join(tmp, f"mosquitto-{id(self)}.log")

    def start(self, timeout=10.0):
        for _ in range(5):
            port = free_port()
            conf = os.path.join(self.tmp, f"mosquitto-{port}.conf")
            with open(conf, "w") as f:
                f.write("\n".join([f"listener {port} {HOST}"] + self.lines +
                                  ["log_dest stderr", "log_type all", "persistence false"] +
                                  (["user root"] if os.geteuid() == 0 else [])) + "\n")
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(_PDEATHSIG + [MOSQUITTO_BIN, "-c", conf],
                                             stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT)
            deadline = time.monotonic() + scaled(timeout)
            while time.monotonic() < deadline:
                text = self.log()
                if re.search(r"mosquitto version \S+ running", text):
                    self.port = port
                    return self
                if self.proc.poll() is not None:
                    break
                time.sleep(0.01)
            self.stop()
            if "Address already in use" not in self.log():
                raise BrokerError(f"mosquitto did not start; log:\n{self.log()}")
        raise BrokerError("mosquitto: no free port after 5 tries")

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(scaled(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

