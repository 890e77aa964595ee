"""TLS and WebSocket listeners (issue 7): --mqtts_listen, --ws_listen and
--wss_listen with real clients — mosquitto_pub/sub with --cafile / --cert /
--key, paho-mqtt over TLS and over (secure) WebSockets, Python's ssl module
for exact handshake checks. Mutual TLS with the certificate's CN as user name,
TLS 1.2+ only, cipher choice, certificate and password-file reload on SIGHUP
without dropping connected clients, clear start errors for bad files."""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as paho

from gannet_fixture import (HOST, BrokerTestCase, RawClient, ConnectionClosed, T, build_connect,
                            gannet_only, run_gannet, scaled, unique)
from pki import Pki

LISTENER_RE = {name: re.compile(rf"{name} listener on [0-9.]+:(\d+)") for name in ("mqtts", "ws", "wss")}


def tls_client_context(pki, cert=False, version=None):
    ctx = ssl.create_default_context(cafile=pki.ca)
    if cert:
        ctx.load_cert_chain(pki.client_cert, pki.client_key)
    if version is not None:
        ctx.minimum_version = version
        ctx.maximum_version = version
    return ctx


def tls_raw(port, pki, version=4, cert=False, tls_version=None):
    """A RawClient whose socket speaks TLS (handshake done)."""
    c = RawClient(port, version)
    c.sock = tls_client_context(pki, cert, tls_version).wrap_socket(c.sock, server_hostname="localhost")
    return c


class PahoSession:
    """paho-mqtt over tcp/websockets, with or without TLS; records messages."""

    def __init__(self, port, transport="tcp", tls_ca=None, version=paho.MQTTv311, username=None,
                 password=None, client_id=None):
        self.messages = []
        self.connack = None
        self.cond = threading.Condition()
        self.client = paho.Client(client_id=client_id or unique("paho"), transport=transport,
                                  protocol=version)
        if transport == "websockets":
            self.client.ws_set_options(path="/mqtt")
        if tls_ca:
            self.client.tls_set(ca_certs=tls_ca)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = []
        self.client.connect(HOST, port, 30)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        with self.cond:
            self.connack = rc.value if hasattr(rc, "value") else rc
            self.cond.notify_all()

    def _on_message(self, client, userdata, m):
        with self.cond:
            self.messages.append((m.topic, bytes(m.payload)))
            self.cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        with self.cond:
            self.subscribed.append(mid)
            self.cond.notify_all()

    def wait(self, predicate, what, timeout=10.0):
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self), scaled(timeout)):
                raise AssertionError(f"timed out waiting for {what}; messages {self.messages[-5:]}")

    def subscribe(self, topic, qos=1):
        _, mid = self.client.subscribe(topic, qos)
        self.wait(lambda s: mid in s.subscribed, f"SUBACK for {topic}")

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@gannet_only("gannet's TLS and WebSocket listener flags")
class TlsTest(BrokerTestCase):
    start_broker_in_setup = False

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gannet-tls-")
        cls.pki = Pki(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, True)

    def start(self, **flags):
        base = {"mqtts_listen": f"{HOST}:0", "ws_listen": f"{HOST}:0", "wss_listen": f"{HOST}:0",
                "tls_cert_file": self.pki.server_cert, "tls_key_file": self.pki.server_key}
        base.update(flags)
        self.broker = self.launch_broker({k: v for k, v in base.items() if v is not None},
                                         metrics=True)
        self.ports = {}
        for name, regex in LISTENER_RE.items():
            if base.get(f"{name}_listen"):
                self.ports[name] = int(self.broker.wait_log(regex).group(1))
        return self.broker

    def password_file(self):
        """A password file made by mosquitto_passwd with user alice (s3cret)."""
        tmp = tempfile.mkdtemp(prefix="gannet-tls-pw-")
        self.addCleanup(shutil.rmtree, tmp, True)
        passwd = os.path.join(tmp, "passwd")
        subprocess.run(["mosquitto_passwd", "-c", "-b", passwd, "alice", "s3cret"], check=True,
                       capture_output=True)
        return passwd

    def paho(self, port, **kw):
        s = PahoSession(port, **kw)
        self.addCleanup(s.close)
        s.wait(lambda s: s.connack is not None, "CONNACK")
        return s

    def sub(self, topic, extra):
        return self.mosquitto_sub(topic, extra=extra, broker=_PortOf(self.ports["mqtts"]))

    # --- MQTT over TLS with Mosquitto's clients -------------------------------

    def test_mosquitto_clients_over_tls(self):
        self.start()
        tls = ["--cafile", self.pki.ca]
        topic = unique("tls/t")
        s = self.sub(topic, tls)
        for qos in (0, 1, 2):
            self.mosquitto_pub(topic, f"over tls q{qos}", qos=qos, extra=tls,
                               broker=_PortOf(self.ports["mqtts"]))
        # A plain-TCP publisher reaches the TLS subscriber too: one broker.
        self.mosquitto_pub(topic, "over tcp")
        s.wait_for(lambda ls: sum(l.endswith(("over tls q0", "over tls q1", "over tls q2", "over tcp"))
                                  for l in ls) >= 4, message="4 messages")

    def test_a_large_message_crosses_tls_intact(self):
        self.start()
        topic = unique("tls/big")
        receiver = self.paho(self.ports["mqtts"], tls_ca=self.pki.ca)
        receiver.subscribe(topic)
        payload = os.urandom(700_000)
        sender = self.paho(self.ports["wss"], transport="websockets", tls_ca=self.pki.ca)
        sender.client.publish(topic, payload, qos=1)
        receiver.wait(lambda s: s.messages, "the large message")
        self.assertEqual(receiver.messages[0], (topic, payload))

    def test_plain_client_on_the_tls_port_is_closed_and_logged(self):
        self.start()
        c = RawClient(self.ports["mqtts"], 4)
        self.addCleanup(c.close)
        c.send(build_connect(unique("plain")))
        with self.assertRaises(ConnectionClosed):
            c.expect(T.CONNACK, timeout=5)
        self.broker.wait_log(re.compile(r"mqtts connection from 127\.0\.0\.1:\d+ closed before CONNECT: "
                                        r"TLS handshake failed"))
        self.assert_broker_alive()

    def test_only_tls_1_2_and_later(self):
        self.start()
        port = self.ports["mqtts"]
        for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            with self.subTest(version=version):
                ctx = tls_client_context(self.pki, version=version)
                ctx.set_ciphers("ALL:@SECLEVEL=0")
                with socket.create_connection((HOST, port), timeout=scaled(5)) as raw:
                    with self.assertRaises((ssl.SSLError, ConnectionResetError)):
                        ctx.wrap_socket(raw, server_hostname="localhost")
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with self.subTest(version=version):
                c = tls_raw(port, self.pki, tls_version=version)
                self.addCleanup(c.close)
                self.assertEqual(c.sock.version(), {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                                    ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version])
                c.connect(unique("v"))

    def test_minimum_version_1_3_and_cipher_choice(self):
        self.start(tls_min_version="1.3")
        with socket.create_connection((HOST, self.ports["mqtts"]), timeout=scaled(5)) as raw:
            with self.assertRaises((ssl.SSLError, ConnectionResetError)):
                tls_client_context(self.pki, version=ssl.TLSVersion.TLSv1_2).wrap_socket(
                    raw, server_hostname="localhost")
        self.broker.stop()
        self.start(tls_ciphers="ECDHE-RSA-AES256-GCM-SHA384")
        c = tls_raw(self.ports["mqtts"], self.pki, tls_version=ssl.TLSVersion.TLSv1_2)
        self.addCleanup(c.close)
        self.assertEqual(c.sock.cipher()[0], "ECDHE-RSA-AES256-GCM-SHA384")
        c.connect(unique("cipher"))

    # --- mutual TLS -----------------------------------------------------------

    def test_client_certificates_required_with_a_ca_file(self):
        self.start(tls_ca_file=self.pki.ca)
        port = _PortOf(self.ports["mqtts"])
        topic = unique("mtls/t")
        with_cert = ["--cafile", self.pki.ca, "--cert", self.pki.client_cert, "--key", self.pki.client_key]
        s = self.mosquitto_sub(topic, extra=with_cert, broker=port)
        self.mosquitto_pub(topic, "with a certificate", qos=1, extra=with_cert, broker=port)
        s.wait_for(lambda ls: any(l.endswith("with a certificate") for l in ls), message="message")
        # No certificate, or one from a CA the broker does not trust: refused
        # in the handshake.
        no_cert = self.mosquitto_pub(topic, "no certificate", qos=1, extra=["--cafile", self.pki.ca],
                                     broker=port, check=False)
        self.assertNotEqual(no_cert.returncode, 0)
        stranger = ["--cafile", self.pki.ca, "--cert", self.pki.stranger_cert, "--key", self.pki.stranger_key]
        refused = self.mosquitto_pub(topic, "stranger", qos=1, extra=stranger, broker=port, check=False)
        self.assertNotEqual(refused.returncode, 0)
        self.broker.wait_log(re.compile(r"client certificate refused"))
        self.assertFalse(any(l.endswith(("no certificate", "stranger")) for l in s.lines))

    def test_certificate_cn_is_the_user_name(self):
        passwd = self.password_file()
        self.start(tls_ca_file=self.pki.ca, tls_use_identity_as_username="true",
                   password_file=passwd)
        # On the TLS port the certificate is the credential: no user name or
        # password needed (and a wrong one does not matter).
        c = tls_raw(self.ports["mqtts"], self.pki, version=5, cert=True)
        self.addCleanup(c.close)
        c.connect(unique("cert"), username="whoever", password=b"wrong", expect_rc=0)
        # The plain port still asks for a password.
        plain = RawClient(self.broker.port, 5)
        self.addCleanup(plain.close)
        plain.connect(unique("plain"), expect_rc=0x87)

    def test_handshakes_that_never_finish_are_cut_at_the_connect_timeout(self):
        # A slow-loris on the TLS and WebSocket ports: half a ClientHello, half
        # an upgrade request. --connect_timeout covers the handshakes too.
        self.start(connect_timeout=1)
        partial = {"mqtts": bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]),
                   "ws": b"GET /mqtt HTTP/1.1\r\nHost: x\r\n",
                   "wss": bytes([0x16, 0x03, 0x01])}
        socks = {}
        for name, data in partial.items():
            s = socket.create_connection((HOST, self.ports[name]), timeout=scaled(5))
            self.addCleanup(s.close)
            s.sendall(data)
            socks[name] = s
        start = time.monotonic()
        for name, s in socks.items():
            with self.subTest(listener=name):
                try:
                    while s.recv(4096):  # an HTTP error or TLS alert may come first
                        pass
                except ConnectionResetError:
                    pass
                self.assertLess(time.monotonic() - start, scaled(4), f"{name} not cut in time")
        self.assert_broker_alive()

    # --- WebSocket --------------------------------------------------------------

    def test_paho_over_websocket_and_secure_websocket(self):
        self.start()
        topic = unique("ws/t")
        over_ws = self.paho(self.ports["ws"], transport="websockets", version=paho.MQTTv5)
        over_wss = self.paho(self.ports["wss"], transport="websockets", tls_ca=self.pki.ca)
        over_ws.subscribe(topic)
        over_wss.subscribe(topic)
        self.mosquitto_pub(topic, "from tcp", qos=1)
        over_ws.client.publish(topic, b"from ws", qos=1)
        over_wss.client.publish(topic, b"from wss", qos=2)
        want = {(topic, b"from tcp"), (topic, b"from ws"), (topic, b"from wss")}
        for s in (over_ws, over_wss):
            s.wait(lambda s: want <= set(s.messages), "three messages")
        # Counted by the listener they came in on.
        self.assertEqual(self.broker.metric("gannet_connections", listener="ws", protocol="5"), 1)
        self.assertEqual(self.broker.metric("gannet_connections", listener="wss", protocol="3.1.1"), 1)
        self.assertEqual(self.broker.metric("gannet_connections", listener="mqtts", protocol="3.1.1"), 0)
        self.assertEqual(self.broker.metric("gannet_connections_accepted_total", listener="ws"), 1)
        self.assertEqual(self.broker.metric("gannet_connections_accepted_total", listener="wss"), 1)

    def test_websocket_upgrade_is_checked(self):
        self.start()

        def http(request):
            with socket.create_connection((HOST, self.ports["ws"]), timeout=scaled(5)) as s:
                s.sendall(request.encode())
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                return data.decode(errors="replace")

        key = "dGhlIHNhbXBsZSBub25jZQ=="
        good = (f"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Protocol: mqtt\r\n\r\n")
        answer = http(good)
        self.assertTrue(answer.startswith("HTTP/1.1 101"), answer)
        self.assertIn("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", answer)
        self.assertRegex(answer, r"(?i)sec-websocket-protocol: mqtt\r\n")
        self.assertTrue(http(good.replace("GET /mqtt", "GET /other")).startswith("HTTP/1.1 404"))
        self.assertTrue(http(good.replace("Version: 13", "Version: 8")).startswith("HTTP/1.1 426"))
        self.assert_broker_alive()

    # --- reload on SIGHUP ---------------------------------------------------------

    def test_sighup_reloads_the_certificate_without_dropping_clients(self):
        tmp = tempfile.mkdtemp(prefix="gannet-tls-reload-")
        self.addCleanup(shutil.rmtree, tmp, True)
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        shutil.copy(self.pki.server_cert, cert)
        shutil.copy(self.pki.server_key, key)
        self.start(tls_cert_file=cert, tls_key_file=key)
        port = self.ports["mqtts"]

        def served_cert():
            with socket.create_connection((HOST, port), timeout=scaled(5)) as raw:
                with tls_client_context(self.pki).wrap_socket(raw, server_hostname="localhost") as s:
                    return s.getpeercert(binary_form=True)

        def pem_der(path):
            with open(path) as f:
                return ssl.PEM_cert_to_DER_cert(f.read())

        self.assertEqual(served_cert(), pem_der(self.pki.server_cert))
        topic = unique("reload/t")
        connected = self.paho(port, tls_ca=self.pki.ca)
        connected.subscribe(topic)

        shutil.copy(self.pki.server2_cert, cert)
        shutil.copy(self.pki.server2_key, key)
        os.kill(self.broker.pid, signal.SIGHUP)
        self.broker.wait_log(re.compile(r"reloaded TLS certificate"))
        self.assertEqual(served_cert(), pem_der(self.pki.server2_cert))
        # The client connected before the reload is still served.
        self.mosquitto_pub(topic, "after reload", qos=1)
        connected.wait(lambda s: (topic, b"after reload") in s.messages, "a message after the reload")

        # A broken key: the reload fails, said in the log, the current
        # certificate stays.
        with open(key, "w") as f:
            f.write("not a key\n")
        os.kill(self.broker.pid, signal.SIGHUP)
        self.broker.wait_log(re.compile(r"reload: cannot load the TLS key .*previous one stays in use"))
        self.assertEqual(served_cert(), pem_der(self.pki.server2_cert))
        self.assert_broker_alive()

    def test_sighup_reloads_the_password_file(self):
        passwd = self.password_file()
        self.start(password_file=passwd, mqtts_listen=None, ws_listen=None, wss_listen=None,
                   tls_cert_file=None, tls_key_file=None)
        alice = RawClient(self.broker.port, 5)
        self.addCleanup(alice.close)
        alice.connect(unique("alice"), username="alice", password=b"s3cret")
        carol = RawClient(self.broker.port, 5)
        self.addCleanup(carol.close)
        carol.connect(unique("carol"), username="carol", password=b"pw", expect_rc=0x86)

        subprocess.run(["mosquitto_passwd", "-b", passwd, "carol", "pw"], check=True, capture_output=True)
        os.kill(self.broker.pid, signal.SIGHUP)
        self.broker.wait_log(re.compile(r"reloaded password file .* \(2 users\)"))
        carol = RawClient(self.broker.port, 5)
        self.addCleanup(carol.close)
        carol.connect(unique("carol"), username="carol", password=b"pw", expect_rc=0)
        # alice, connected before, still is.
        alice.send(bytes([0xC0, 0]))  # PINGREQ
        alice.expect(T.PINGRESP)

    # --- start errors -----------------------------------------------------------

    def test_bad_tls_settings_stop_the_start_with_a_clear_error(self):
        cases = [
            ({"mqtts_listen": f"{HOST}:0"}, "need --tls_cert_file and --tls_key_file"),
            ({"mqtts_listen": f"{HOST}:0", "tls_cert_file": "/nonexistent.pem",
              "tls_key_file": self.pki.server_key}, "cannot load the TLS certificate /nonexistent.pem"),
            ({"mqtts_listen": f"{HOST}:0", "tls_cert_file": self.pki.server_cert,
              "tls_key_file": self.pki.client_key}, "does not match the certificate"),
            ({"wss_listen": f"{HOST}:0", "tls_cert_file": self.pki.server_cert,
              "tls_key_file": self.pki.server_key, "tls_ciphers": "NOPE"}, "TLS ciphers 'NOPE'"),
            ({"mqtts_listen": f"{HOST}:0", "tls_cert_file": self.pki.server_cert,
              "tls_key_file": self.pki.server_key, "tls_min_version": "1.1"}, "use 1.2 or 1.3"),
            ({"tls_cert_file": self.pki.server_cert, "tls_key_file": self.pki.server_key},
             "give one of them"),
            ({"mqtts_listen": f"{HOST}:0", "tls_cert_file": self.pki.server_cert,
              "tls_key_file": self.pki.server_key, "tls_use_identity_as_username": "true"},
             "needs --tls_ca_file"),
        ]
        for flags, message in cases:
            with self.subTest(message=message):
                rc, err = run_gannet([f"--mqtt_listen={HOST}:0"] +
                                     [f"--{k}={v}" for k, v in flags.items()])
                self.assertEqual(rc, 2, err)
                self.assertIn(message, err)


class _PortOf:
    """Stands for a broker in the fixture's helpers that only need `.port`."""

    def __init__(self, port):
        self.port = port


if __name__ == "__main__":
    unittest.main()
