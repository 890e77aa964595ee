"""`gannetctl passwd FILE USER [PASSWORD]` (docs/operations.md): the lines it
writes are accepted by Mosquitto 2.0 itself (the real broker with
password_file, driven by mosquitto_pub) and by gannet (--password_file);
updating a user, the password from stdin or from a terminal (two prompts,
no echo), a file made by mosquitto_passwd extended with its other lines kept
byte for byte; bad user names (exit 2) and damaged files (exit 1, file
untouched)."""

import os
import pty
import select
import shutil
import stat
import subprocess
import tempfile
import time
import unittest

from gannet_fixture import BrokerTestCase, gannet_only, scaled, unique
from gannetctl_fixture import Mosquitto, gannetctl_binary, run_gannetctl


def mosquitto_accepts(port, user, password):
    """True when Mosquitto accepts user/password (mosquitto_pub exits 0)."""
    cp = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", unique("pw"),
                         "-m", "x", "-q", "1", "-u", user, "-P", password, "-i", unique("pw")],
                        capture_output=True, text=True, timeout=scaled(10))
    return cp.returncode == 0


@gannet_only("gannetctl runs against gannet (and Mosquitto by itself)")
class PasswdTest(BrokerTestCase):
    start_broker_in_setup = False

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="gannetctl-passwd-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.path = os.path.join(self.tmp, "passwd")

    def passwd(self, user, password=None, stdin=None, path=None, expect=0):
        args = ["passwd", path or self.path, user] + ([password] if password is not None else [])
        cp = run_gannetctl(*args, input=stdin if stdin is not None else "")
        self.assertEqual(cp.returncode, expect, f"stdout: {cp.stdout}\nstderr: {cp.stderr}")
        return cp

    def text(self):
        with open(self.path) as f:
            return f.read()

    def mosquitto(self):
        m = Mosquitto(self.tmp, [f"password_file {self.path}", "allow_anonymous false"]).start()
        self.addCleanup(m.stop)
        return m

    def gannet_connect(self, broker, user, password, expect_rc):
        c = self.raw(4, connect=False, broker=broker)
        c.connect(unique("pw"), username=user, password=password.encode(), expect_rc=expect_rc)
        c.close()

    def test_a_new_file_is_accepted_by_mosquitto_and_gannet(self):
        cp = self.passwd("alice", "s3cret")
        self.assertIn("added user 'alice'", cp.stdout)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        text = self.text()
        self.assertRegex(text, r"^alice:\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==\n$")
        m = self.mosquitto()
        self.assertTrue(mosquitto_accepts(m.port, "alice", "s3cret"), m.log())
        self.assertFalse(mosquitto_accepts(m.port, "alice", "wrong"))
        g = self.launch_broker({"password_file": self.path}, kind="gannet")
        self.gannet_connect(g, "alice", "s3cret", 0)
        self.gannet_connect(g, "alice", "wrong", 4)

    def test_updating_a_user_replaces_its_line(self):
        self.passwd("alice", "first")
        self.passwd("bob", "bobs")
        cp = self.passwd("alice", "second")
        self.assertIn("updated user 'alice'", cp.stdout)
        lines = self.text().splitlines()
        self.assertEqual([l.split(":")[0] for l in lines], ["alice", "bob"])
        m = self.mosquitto()
        self.assertTrue(mosquitto_accepts(m.port, "alice", "second"))
        self.assertFalse(mosquitto_accepts(m.port, "alice", "first"))
        self.assertTrue(mosquitto_accepts(m.port, "bob", "bobs"))
        g = self.launch_broker({"password_file": self.path}, kind="gannet")
        self.gannet_connect(g, "alice", "second", 0)
        self.gannet_connect(g, "alice", "first", 4)

    def test_password_from_stdin(self):
        self.passwd("carol", stdin="from stdin:$x\n")
        self.passwd("dave", stdin="no newline at the end")
        m = self.mosquitto()
        self.assertTrue(mosquitto_accepts(m.port, "carol", "from stdin:$x"))
        self.assertTrue(mosquitto_accepts(m.port, "dave", "no newline at the end"))
        cp = self.passwd("erin", stdin="", expect=1)
        self.assertIn("no password on stdin", cp.stderr)
        cp = self.passwd("erin", stdin="\n", expect=2)
        self.assertIn("empty", cp.stderr)

    def test_a_mosquitto_passwd_file_is_extended_and_its_lines_kept(self):
        subprocess.run(["mosquitto_passwd", "-c", "-b", self.path, "alice", "s3cret"], check=True,
                       capture_output=True, timeout=scaled(10))
        subprocess.run(["mosquitto_passwd", "-H", "sha512", "-b", self.path, "bob", "hunter2"],
                       check=True, capture_output=True, timeout=scaled(10))
        with open(self.path, "a") as f:
            f.write("# kept as it is\n\n")
        os.chmod(self.path, 0o640)
        before = self.text().splitlines(keepends=True)
        self.passwd("carol", "c4rol")
        self.passwd("bob", "new-bob")
        after = self.text().splitlines(keepends=True)
        self.assertEqual(after[0], before[0])           # alice untouched
        self.assertTrue(after[1].startswith("bob:$7$101$"), after[1])  # updated in place
        self.assertEqual(after[2:4], before[2:4])        # the comment and the blank line
        self.assertTrue(after[4].startswith("carol:$7$101$"))
        self.assertEqual(len(after), 5)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o640)  # mode kept
        m = self.mosquitto()
        for user, password in (("alice", "s3cret"), ("bob", "new-bob"), ("carol", "c4rol")):
            self.assertTrue(mosquitto_accepts(m.port, user, password), user)
        self.assertFalse(mosquitto_accepts(m.port, "bob", "hunter2"))
        g = self.launch_broker({"password_file": self.path}, kind="gannet")
        for user, password in (("alice", "s3cret"), ("bob", "new-bob"), ("carol", "c4rol")):
            self.gannet_connect(g, user, password, 0)

    def test_bad_user_names_are_usage_errors(self):
        for user in ("a:b", "", "#comment"):
            with self.subTest(user=user):
                cp = self.passwd(user, "pw", expect=2)
                self.assertIn("cannot use user name", cp.stderr)
        self.assertFalse(os.path.exists(self.path))

    def test_a_damaged_file_is_not_rewritten(self):
        original = "alice:$7$101$c2FsdHNhbHRzYWx0$aGFzaA==\n# comment\nbob:plaintext\n"
        with open(self.path, "w") as f:
            f.write(original)
        cp = self.passwd("carol", "pw", expect=1)
        self.assertIn("line 1", cp.stderr)  # alice's hash is 4 bytes, not 64
        with open(self.path, "w") as f:
            f.write("# comment\nbob:plaintext\n")
        cp = self.passwd("carol", "pw", expect=1)
        self.assertIn(f"{self.path} line 2", cp.stderr)
        self.assertIn("plain text", cp.stderr)
        self.assertEqual(self.text(), "# comment\nbob:plaintext\n")
        self.assertEqual(sorted(os.listdir(self.tmp)), ["passwd"])  # no temp file left

    def test_terminal_prompts_twice_without_echo(self):
        def run(first, second):
            master, slave = pty.openpty()
            proc = subprocess.Popen([gannetctl_binary(), "passwd", self.path, "tty-user"],
                                    stdin=slave, stdout=slave, stderr=slave, close_fds=True)
            os.close(slave)
            seen = b""

            def read_until(marker):
                nonlocal seen
                deadline = time.monotonic() + scaled(10)
                while marker not in seen:
                    self.assertLess(time.monotonic(), deadline, f"no {marker!r} in {seen!r}")
                    if select.select([master], [], [], 0.1)[0]:
                        try:
                            seen += os.read(master, 1024)
                        except OSError:  # EIO: the child closed the terminal
                            break
            try:
                read_until(b"Password: ")
                os.write(master, first.encode() + b"\n")
                read_until(b"Reenter password: ")
                os.write(master, second.encode() + b"\n")
                rc = proc.wait(scaled(10))
                read_until(b"\xff")  # drain the rest (ends at EIO)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                os.close(master)
            return rc, seen.decode("utf-8", "replace")

        rc, out = run("Tty-S3cret", "Tty-Other")
        self.assertEqual(rc, 1, out)
        self.assertIn("do not match", out)
        self.assertFalse(os.path.exists(self.path))
        rc, out = run("Tty-S3cret", "Tty-S3cret")
        self.assertEqual(rc, 0, out)
        self.assertNotIn("Tty-S3cret", out)  # never echoed
        m = self.mosquitto()
        self.assertTrue(mosquitto_accepts(m.port, "tty-user", "Tty-S3cret"))


if __name__ == "__main__":
    unittest.main()
