"""Helpers for the gannetctl integration tests (test_gannetctl_*.py).

* ``gannetctl_binary()`` -- $GANNETCTL_BIN, else the sibling of $GANNET_BIN in
  the same build tree (<build>/cmd/gannet/gannet -> <build>/cmd/gannetctl/gannetctl).
* ``run_gannetctl(*args)`` -- runs it, returns the CompletedProcess (text).
* ``Mosquitto``      -- /usr/sbin/mosquitto with a given config on a free
                        loopback port (TLS listeners, password files).
* ``make_pki(dir)``  -- a test CA, a second unrelated CA, server certificates
                        (valid, expired, for another name) and a client
                        certificate, made with the openssl command line.
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


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True,
                   timeout=scaled(30))


def make_pki(d):
    """Certificates in directory d; returns {name: path}. ca / other_ca: CAs;
    server: for 127.0.0.1 and localhost, signed by ca; expired: the same names,
    valid only in January 2020 (openssl ca takes explicit dates, openssl x509
    -days cannot go back); wrongname: for other.example only; client: a client
    certificate signed by ca. Keys are P-256 (fast)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
             "-subj", "/CN=Gannet Test CA", cwd=d)
    _openssl("req", "-x509", *ec, "-keyout", "other_ca.key", "-out", "other_ca.pem", "-days", "30",
             "-subj", "/CN=Unrelated Test CA", cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    with open(os.path.join(d, "wrongname.ext"), "w") as f:
        f.write("subjectAltName=DNS:other.example\n")
    for name, subject in (("server", "/CN=localhost"), ("client", "/CN=doctor-client"),
                          ("wrongname", "/CN=other.example")):
        _openssl("req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subject, cwd=d)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "30", "-extfile", "server.ext", cwd=d)
    _openssl("x509", "-req", "-in", "wrongname.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "wrongname.pem", "-days", "30", "-extfile", "wrongname.ext",
             cwd=d)
    _openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "client.pem", "-days", "30", cwd=d)
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\n"
                "serial = serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n"
                "[p]\ncommonName = supplied\n")
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "serial"), "w") as f:
        f.write("1000\n")
    # The expired certificate reuses the server's key.
    _openssl("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key",
             "-in", "server.csr", "-out", "expired.pem", "-startdate", "20200101000000Z",
             "-enddate", "20200201000000Z", "-extfile", "server.ext", "-notext", cwd=d)
    paths = {n: os.path.join(d, f"{n}.pem") for n in
             ("ca", "other_ca", "server", "expired", "wrongname", "client")}
    paths.update({f"{n}_key": os.path.join(d, f"{n}.key") for n in
                  ("server", "wrongname", "client", "other_ca")})
    paths["expired_key"] = paths["server_key"]
    return paths
