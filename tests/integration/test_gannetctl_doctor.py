"""`gannetctl doctor HOST:PORT` (docs/troubleshooting.md): every diagnosis
against a real cause. All well against gannet (3.1.1 and 5, exit 0, a round
trip); nothing listening; a server that listens on loopback only; packets
dropped by an iptables rule and an unreachable network (in a network namespace
of the test's own); a listener that never answers CONNECT; bad credentials and
anonymous clients refused (a password file made by mosquitto_passwd); TLS: all
well, the wrong CA, an expired certificate, a certificate for another name,
--tls against a plain port, a plain client against the TLS port, a client
certificate required / accepted / refused. The TLS server is gannet
(--mqtts_listen), with certificates from pki.py.

Needs root, ip(8) and iptables for the network namespace tests (as on the test
machine): without them those tests fail, they are not skipped."""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import unittest
import uuid

from gannet_fixture import BrokerTestCase, gannet_binary, gannet_only, scaled, wait_for
from gannetctl_fixture import free_port, run_gannetctl
from pki import Pki

_TLS_LISTENER_RE = re.compile(r"mqtts listener on [0-9.]+:(\d+)")


# Skipped with BROKER=mosquitto (inherited by every class below): that mode
# runs the suite without a gannet binary, and doctor is tested against gannet.
@gannet_only("gannetctl doctor is tested against gannet")
class DoctorTestCase(BrokerTestCase):
    start_broker_in_setup = False

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="gannetctl-doctor-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def doctor(self, *args, expect=0, prefix=(), timeout=30):
        cp = run_gannetctl("doctor", *args, prefix=prefix, timeout=timeout)
        out = cp.stdout
        self.assertEqual(cp.returncode, expect, f"stdout:\n{out}\nstderr:\n{cp.stderr}")
        if expect == 1:
            # One problem, with its fix, as the last two lines.
            lines = out.strip().splitlines()
            self.assertEqual(sum(l.startswith("problem: ") for l in lines), 1, out)
            self.assertTrue(lines[-2].startswith("problem: ") and lines[-1].startswith("fix: "), out)
        return out


class DoctorPlainTest(DoctorTestCase):
    def test_all_well_against_gannet(self):
        b = self.launch_broker(kind="gannet")
        for version in ("3.1.1", "5"):
            with self.subTest(version=version):
                out = self.doctor(f"127.0.0.1:{b.port}", f"--mqtt_version={version}")
                self.assertIn("ok: TCP connection to 127.0.0.1", out)
                self.assertIn(f"ok: MQTT {version} CONNECT accepted", out)
                self.assertRegex(out, r"ok: round trip: subscribed, published QoS 1 to "
                                      r"'gannet-doctor/\d+/[0-9a-f]+' and got it back in [0-9.]+ ms")
                self.assertIn("ok: all well", out)
                self.assertNotIn("problem:", out)

    def test_localhost_is_resolved(self):
        b = self.launch_broker(kind="gannet")
        out = self.doctor(f"localhost:{b.port}")
        self.assertIn("ok: resolved localhost to ", out)

    def test_nothing_listening(self):
        port = free_port()
        out = self.doctor(f"127.0.0.1:{port}", expect=1)
        self.assertIn(f"problem: nothing is listening on 127.0.0.1:{port} (connection refused)", out)
        self.assertIn("--mqtt_listen", out)

    def test_unknown_host(self):
        out = self.doctor("no-such-host.invalid:1883", "--timeout=5", expect=1)
        self.assertIn("problem: cannot resolve 'no-such-host.invalid'", out)

    def test_a_listener_that_never_answers_connect(self):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        self.addCleanup(server.close)
        accepted = []

        def accept():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                pass
        t = threading.Thread(target=accept, daemon=True)
        t.start()
        out = self.doctor(f"127.0.0.1:{server.getsockname()[1]}", "--timeout=1", expect=1)
        self.assertIn("the server accepted the TCP connection but never answered CONNECT within 1 s",
                      out)
        t.join(scaled(5))
        for c in accepted:
            c.close()

    def test_a_server_that_is_not_mqtt(self):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        self.addCleanup(server.close)

        def answer_like_http():
            try:
                c, _ = server.accept()
                c.recv(1024)
                c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                c.close()
            except OSError:
                pass
        t = threading.Thread(target=answer_like_http, daemon=True)
        t.start()
        out = self.doctor(f"127.0.0.1:{server.getsockname()[1]}", "--timeout=2", expect=1)
        self.assertIn("problem: the server answered CONNECT with bytes that are not MQTT "
                      "(48 54 54 50", out)
        t.join(scaled(5))

    def test_usage_errors(self):
        for args in (["1883"], ["host:0"], ["host:port"], ["127.0.0.1:1883", "--mqtt_version=4.0"],
                     ["127.0.0.1:1883", "--cafile=x"], ["127.0.0.1:1883", "--timeout=0"], []):
            with self.subTest(args=args):
                cp = run_gannetctl("doctor", *args)
                self.assertEqual(cp.returncode, 2, cp.stdout + cp.stderr)


class DoctorAuthTest(DoctorTestCase):
    def setUp(self):
        super().setUp()
        path = os.path.join(self.tmp, "passwd")
        subprocess.run(["mosquitto_passwd", "-c", "-b", path, "alice", "s3cret"], check=True,
                       capture_output=True, timeout=scaled(10))
        self.b = self.launch_broker({"password_file": path}, kind="gannet")
        self.where = f"127.0.0.1:{self.b.port}"

    def test_bad_credentials(self):
        for version, code in (("3.1.1", "CONNACK return code 4"), ("5", "CONNACK 0x86")):
            with self.subTest(version=version):
                out = self.doctor(self.where, "--user=alice", "--password=wrong",
                                  f"--mqtt_version={version}", expect=1)
                self.assertIn(f"problem: the server refused user 'alice': bad user name or password "
                              f"({code})", out)
                self.assertIn("gannetctl passwd FILE alice", out)

    def test_anonymous_not_allowed(self):
        for version, code in (("3.1.1", "CONNACK return code 5"), ("5", "CONNACK 0x87")):
            with self.subTest(version=version):
                out = self.doctor(self.where, f"--mqtt_version={version}", expect=1)
                self.assertIn("problem: no user name given and anonymous clients are not allowed "
                              f"(not authorised, {code})", out)
                self.assertIn("--user=USER --password=PASSWORD", out)

    def test_right_credentials(self):
        out = self.doctor(self.where, "--user=alice", "--password=s3cret")
        self.assertIn("ok: all well", out)


class DoctorAclTest(DoctorTestCase):
    """Connected, but the ACL (gannet --acl_file, Mosquitto's format) denies the
    round trip's topic: SUBACK 0x80 / 0x87, PUBACK 0x87, or (3.1.1) a publish
    acknowledged and silently dropped."""

    def start(self, acl):
        pw, acl_path = os.path.join(self.tmp, "passwd"), os.path.join(self.tmp, "acl")
        subprocess.run(["mosquitto_passwd", "-c", "-b", pw, "alice", "s3cret"], check=True,
                       capture_output=True, timeout=scaled(10))
        with open(acl_path, "w") as f:
            f.write(acl)
        b = self.launch_broker({"password_file": pw, "acl_file": acl_path}, kind="gannet")
        return f"127.0.0.1:{b.port}"

    def test_subscribe_denied(self):
        where = self.start("user alice\ntopic readwrite sensors/#\n")
        for version, code in (("3.1.1", "SUBACK 0x80"), ("5", "SUBACK 0x87")):
            with self.subTest(version=version):
                out = self.doctor(where, "--user=alice", "--password=s3cret",
                                  f"--mqtt_version={version}", expect=1)
                self.assertRegex(out, r"problem: connected, but the ACL does not allow this user to "
                                      rf"subscribe to topic 'gannet-doctor/\d+/[0-9a-f]+' \({code}\)")

    def test_publish_denied(self):
        where = self.start("user alice\ntopic read gannet-doctor/#\n")
        out = self.doctor(where, "--user=alice", "--password=s3cret", "--mqtt_version=5", expect=1)
        self.assertIn("problem: connected, but the ACL does not allow this user to publish to topic",
                      out)
        self.assertIn("(PUBACK 0x87)", out)
        out = self.doctor(where, "--user=alice", "--password=s3cret", "--timeout=1", expect=1)
        self.assertIn("the publish was acknowledged, but the message did not come back", out)


class NetNs:
    """A network namespace of its own with lo up; deleted by delete(). Needs
    root and ip(8): without them the constructor raises, saying so."""

    def __init__(self):
        self.name = f"gdoc-{uuid.uuid4().hex[:8]}"
        try:
            cp = subprocess.run(["ip", "netns", "add", self.name], capture_output=True, text=True,
                                timeout=scaled(10))
        except FileNotFoundError:
            raise AssertionError("ip(8) not found: the network namespace tests need iproute2") \
                from None
        if cp.returncode != 0:
            raise AssertionError(f"cannot create network namespace {self.name} (these tests need "
                                 f"root): ip netns add exited {cp.returncode}: {cp.stderr.strip()}")
        try:
            self.run("ip", "link", "set", "lo", "up")
        except BaseException:
            self.delete()
            raise

    def prefix(self):
        return ["ip", "netns", "exec", self.name]

    def run(self, *cmd):
        return subprocess.run(self.prefix() + list(cmd), check=True, capture_output=True, text=True,
                              timeout=scaled(10))

    def delete(self):
        # check=True: a namespace left behind fails the test rather than piling up.
        subprocess.run(["ip", "netns", "delete", self.name], check=True, capture_output=True,
                       timeout=scaled(10))


class DoctorNetworkTest(DoctorTestCase):
    """Causes that need a network of the test's own: a namespace with only lo
    (root, ip(8) and iptables: the test machine has them)."""

    def setUp(self):
        super().setUp()
        self.ns = NetNs()
        self.addCleanup(self.ns.delete)

    def gannet_in_ns(self, listen):
        """gannet inside the namespace on `listen`; stopped in cleanup."""
        log_path = os.path.join(self.tmp, "gannet-ns.log")
        log = open(log_path, "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen(["setpriv", "--pdeathsig", "KILL", "--"] + self.ns.prefix() +
                                [gannet_binary(), f"--mqtt_listen={listen}", "--workers=1",
                                 f"--data_dir={self.tmp}/data"],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

        def stop():
            proc.terminate()
            try:
                proc.wait(scaled(10))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.addCleanup(stop)

        def listening():
            with open(log_path, errors="replace") as f:
                text = f.read()
            if proc.poll() is not None:
                raise AssertionError(f"gannet exited with {proc.returncode}: {text}")
            return "mqtt listener on" in text
        wait_for(listening, timeout=15, message="gannet's listener in the namespace")

    def test_firewall_drops_packets(self):
        self.ns.run("iptables", "-A", "INPUT", "-p", "tcp", "--dport", "1883", "-j", "DROP")
        self.gannet_in_ns("127.0.0.1:1883")
        out = self.doctor("127.0.0.1:1883", "--timeout=1", prefix=self.ns.prefix(), expect=1)
        self.assertIn("problem: no answer from 127.0.0.1:1883 within 1 s: packets are being dropped "
                      "— a firewall or a wrong address", out)
        self.assertIn("sudo ufw status", out)
        self.assertIn("sudo iptables -L -n", out)
        self.assertIn("security groups", out)

    def test_server_listens_on_loopback_only(self):
        # A second address on lo stands for the host's LAN address.
        self.ns.run("ip", "addr", "add", "10.123.0.1/32", "dev", "lo")
        self.gannet_in_ns("127.0.0.1:1883")
        out = self.doctor("10.123.0.1:1883", "--timeout=2", prefix=self.ns.prefix(), expect=1)
        self.assertIn("problem: nothing is listening on 10.123.0.1:1883 (connection refused)", out)
        self.assertIn("a server listens on loopback only", out)
        self.assertIn("set --mqtt_listen=0.0.0.0:1883", out)
        # From the loopback address itself all is well.
        self.doctor("127.0.0.1:1883", prefix=self.ns.prefix())

    def test_unreachable_network(self):
        out = self.doctor("10.99.0.1:1883", "--timeout=2", prefix=self.ns.prefix(), expect=1)
        self.assertIn("problem: cannot reach 10.99.0.1:1883: Network is unreachable", out)
        self.assertIn("ip route get 10.99.0.1", out)


class DoctorTlsTest(DoctorTestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki_dir = tempfile.mkdtemp(prefix="gannetctl-pki-")
        cls.pki = Pki(cls.pki_dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki_dir, True)

    def tls_server(self, cert=None, key=None, client_ca=None):
        """gannet with an MQTT over TLS listener on 127.0.0.1 presenting cert /
        key (default: the valid server certificate); with client_ca it requires
        a client certificate signed by that CA. Returns the TLS port."""
        flags = {"mqtts_listen": "127.0.0.1:0", "tls_cert_file": cert or self.pki.server_cert,
                 "tls_key_file": key or self.pki.server_key}
        if client_ca:
            flags["tls_ca_file"] = client_ca
        b = self.launch_broker(flags, kind="gannet")
        return int(b.wait_log(_TLS_LISTENER_RE, what="gannet's mqtts listener").group(1))

    def test_all_well_over_tls(self):
        port = self.tls_server()
        for host in ("127.0.0.1", "localhost"):
            with self.subTest(host=host):
                out = self.doctor(f"{host}:{port}", "--tls", f"--cafile={self.pki.ca}")
                self.assertRegex(out, r"ok: TLSv1\.[23] handshake in [0-9.]+ ms; server certificate "
                                      rf"verified for {host}")
                self.assertIn("round trip", out)
                self.assertIn("over TLS", out)

    def test_wrong_ca(self):
        port = self.tls_server()
        out = self.doctor(f"127.0.0.1:{port}", "--tls", f"--cafile={self.pki.other_ca}",
                          expect=1)
        self.assertIn("problem: the server's certificate is not signed by the CA you gave "
                      f"(--cafile={self.pki.other_ca}): unknown CA", out)
        self.assertIn("Gannet Test CA", out)

    def test_system_store_does_not_know_a_private_ca(self):
        port = self.tls_server()
        out = self.doctor(f"127.0.0.1:{port}", "--tls", expect=1)
        self.assertIn("not signed by a CA this system trusts", out)
        # --insecure skips the check (and says so).
        out = self.doctor(f"127.0.0.1:{port}", "--tls", "--insecure")
        self.assertIn("NOT verified", out)

    def test_expired_certificate(self):
        port = self.tls_server(self.pki.expired_cert, self.pki.expired_key)
        out = self.doctor(f"127.0.0.1:{port}", "--tls", f"--cafile={self.pki.ca}", expect=1)
        self.assertIn("problem: the server's certificate expired on Feb  1 00:00:00 2020 GMT", out)
        self.assertIn("renew the certificate", out)

    def test_certificate_for_another_name(self):
        port = self.tls_server(self.pki.wrongname_cert, self.pki.wrongname_key)
        out = self.doctor(f"127.0.0.1:{port}", "--tls", f"--cafile={self.pki.ca}", expect=1)
        self.assertIn("problem: the server's certificate is for other.example, CN other.example, "
                      "not for 127.0.0.1: hostname mismatch", out)

    def test_tls_against_a_plain_port(self):
        b = self.launch_broker(kind="gannet")
        out = self.doctor(f"127.0.0.1:{b.port}", "--tls", f"--cafile={self.pki.ca}",
                          "--timeout=2", expect=1)
        self.assertIn("problem: this port does not speak TLS (a plain MQTT port?)", out)
        self.assertIn("drop --tls", out)

    def test_plain_client_against_the_tls_port(self):
        port = self.tls_server()
        out = self.doctor(f"127.0.0.1:{port}", "--timeout=2", expect=1)
        self.assertIn("try --tls", out)

    def test_client_certificate_required(self):
        port = self.tls_server(client_ca=self.pki.ca)
        where = f"127.0.0.1:{port}"
        out = self.doctor(where, "--tls", f"--cafile={self.pki.ca}", expect=1)
        self.assertIn("problem: the server wants a client certificate (mutual TLS) and none was "
                      "given", out)
        self.assertIn("--cert=CLIENT.pem --key=CLIENT.key", out)
        out = self.doctor(where, "--tls", f"--cafile={self.pki.ca}",
                          f"--cert={self.pki.client_cert}", f"--key={self.pki.client_key}")
        self.assertIn("ok: all well", out)
        out = self.doctor(where, "--tls", f"--cafile={self.pki.ca}",
                          f"--cert={self.pki.stranger_cert}", f"--key={self.pki.stranger_key}",
                          expect=1)
        self.assertIn("problem: the server refused our client certificate", out)

    def test_unreadable_files_are_usage_errors(self):
        port = self.tls_server()
        cp = run_gannetctl("doctor", f"127.0.0.1:{port}", "--tls", "--cafile=/nonexistent/ca.pem")
        self.assertEqual(cp.returncode, 2, cp.stdout)
        self.assertIn("cannot use --cafile=/nonexistent/ca.pem", cp.stdout)


if __name__ == "__main__":
    unittest.main()
