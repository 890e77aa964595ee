"""gannet's command line: unknown flags and bad values exit 2 with a message on
stderr; SIGTERM exits 0; port 0 logs the port actually used."""

import os
import re
import socket
import subprocess
import tempfile
import unittest

from gannet_fixture import (BrokerTestCase, RawClient, T, gannet_binary, gannet_only, run_gannet,
                            scaled, unique)


@gannet_only("gannet's own command line")
class FlagErrorsTest(unittest.TestCase):

    def test_unknown_flag(self):
        rc, err = run_gannet(["--mqtt_listen=127.0.0.1:0", "--no_such_flag_xyz=1"])
        self.assertEqual(rc, 2, err)
        self.assertIn("no_such_flag_xyz", err)

    def test_bad_values(self):
        cases = [
            ("workers", "abc"),
            ("max_packet_size", "lots"),
            ("sys_interval", "1.5s"),
            ("connect_timeout", "soon"),
            ("max_queued_messages", "12x"),
            ("max_inflight_messages", ""),
            ("receive_maximum", "many"),
            ("topic_alias_maximum", "ten"),
            ("max_keepalive", "forever"),
            ("max_connection_buffer_bytes", "1MiB?"),
            ("mqtt_listen", "127.0.0.1:notaport"),
            ("max_queued_bytes", "big"),
            ("queue_overflow", "sometimes"),
            ("fsync", "maybe"),
            ("mqtt_advertise", "gannet-0.example:0"),
            ("mqtt_advertise", "no port"),
        ]
        for flag, value in cases:
            with self.subTest(flag=flag, value=value):
                args = ["--mqtt_listen=127.0.0.1:0", "--workers=1", f"--{flag}={value}"]
                rc, err = run_gannet(args)
                self.assertEqual(rc, 2, f"--{flag}={value!r}: exit {rc}, stderr: {err}")
                self.assertIn(flag, err, "the message should name the flag")

    def test_unknown_flag_in_flagfile(self):
        with tempfile.NamedTemporaryFile("w", suffix=".flags", delete=False) as f:
            f.write("# a comment\n--mqtt_listen=127.0.0.1:0\n--no_such_flag_in_file=1\n")
        rc, err = run_gannet([f"--flagfile={f.name}"])
        self.assertEqual(rc, 2, err)
        self.assertIn("no_such_flag_in_file", err)

    def test_flagfile_that_does_not_exist(self):
        rc, err = run_gannet(["--flagfile=/nonexistent/gannet.flags"])
        self.assertEqual(rc, 2, err)
        self.assertIn("/nonexistent/gannet.flags", err)

    def test_listen_port_in_use_fails(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            rc, err = run_gannet([f"--mqtt_listen=127.0.0.1:{port}", "--workers=1"])
        self.assertNotEqual(rc, 0, "gannet ran although its port was taken")
        self.assertTrue(err.strip(), "no error message")


@gannet_only("gannet's own command line")
class ClusterPortInUseTest(BrokerTestCase):
    def test_cluster_listen_on_a_port_another_gannet_listens_on_fails(self):
        # gannet's MQTT listener uses SO_REUSEPORT (one socket per worker); the
        # cluster listener must not join it and take half of the connections.
        secret = os.path.join(self.broker.tmp, "secret")
        with open(secret, "w") as f:
            f.write("s\n")
        rc, err = run_gannet(["--mqtt_listen=127.0.0.1:0", "--node_id=1",
                              f"--cluster_listen=127.0.0.1:{self.broker.port}",
                              "--peers=2@127.0.0.1:1", f"--cluster_secret_file={secret}"])
        self.assertNotEqual(rc, 0, "gannet ran although its cluster port was taken")
        self.assertIn("--cluster_listen", err)


@gannet_only("gannet's own command line")
class FlagFileTest(unittest.TestCase):
    """DESIGN.md: `gannet --flagfile=gannet.flags` takes the same flags, one per line."""

    def test_flags_from_a_file_configure_the_node(self):
        with tempfile.TemporaryDirectory(prefix="gannet-flagfile-") as tmp:
            flags = f"{tmp}/gannet.flags"
            with open(flags, "w") as f:
                f.write(f"# node flags\n--mqtt_listen=127.0.0.1:0\n--data_dir={tmp}/data\n"
                        "--workers=1\n--log_level=info\n")
            proc = subprocess.Popen([gannet_binary(), f"--flagfile={flags}"], cwd=tmp,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True, errors="replace")
            try:
                port = None
                for line in proc.stderr:
                    m = re.search(r"mqtt listener on 127\.0\.0\.1:(\d+) \(1 workers\)", line)
                    if m:
                        port = int(m.group(1))
                        break
                self.assertIsNotNone(port, "no listener line: the flag file was not applied")
                with RawClient(port, 4) as c:
                    self.assertEqual(c.connect(unique("ff")).rc, 0)
                self.assertTrue(os.path.isdir(f"{tmp}/data"))
            finally:
                proc.terminate()
                self.assertEqual(proc.wait(timeout=scaled(10)), 0)


@gannet_only("gannet's own command line")
class SignalTest(BrokerTestCase):

    def test_port_zero_logs_the_port_in_use(self):
        m = re.search(r"mqtt listener on ([0-9.]+):(\d+)", self.broker.log_text())
        self.assertIsNotNone(m)
        self.assertEqual((m.group(1), int(m.group(2))), ("127.0.0.1", self.port))
        self.assertNotEqual(self.port, 0)
        with RawClient(self.port, 4) as c:
            self.assertEqual(c.connect(unique("cli")).rc, 0)

    def test_sigterm_exits_zero(self):
        self.assertEqual(self.broker.terminate(), 0)

    def test_sigterm_with_clients_connected(self):
        raw4 = self.raw(4)
        raw5 = self.raw(5)
        topic = unique("t")
        sub = self.paho(version=5)
        sub.subscribe(topic, 1)
        self.paho(version=4).publish(topic, b"before-shutdown", 1)
        sub.wait_message(topic)
        self.assertEqual(self.broker.terminate(), 0)
        self.assertEqual(raw4.wait_closed(), [])
        # MQTT 5 may get a DISCONNECT first (e.g. 0x8B Server shutting down).
        self.assertTrue(all(p.type == T.DISCONNECT for p in raw5.wait_closed()))
        sub.wait_disconnected()


if __name__ == "__main__":
    unittest.main()
