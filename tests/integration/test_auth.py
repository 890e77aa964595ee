"""Authentication (issue 7, first part): --password_file in Mosquitto's format,
written by Debian's own mosquitto_passwd ($7$ PBKDF2-SHA512 and $6$ SHA-512
lines), and --allow_anonymous. Right credentials connect (3.1.1 and 5); a wrong
password or an unknown user gets 0x86 (3.1.1: return code 4); no user name
gets 0x87 (3.1.1: 5) unless --allow_anonymous=true; refusals are counted by
reason in /metrics; a damaged password file stops gannet at start with the
line named."""

import os
import shutil
import subprocess
import tempfile
import unittest

from gannet_fixture import BrokerTestCase, gannet_only, run_gannet, scaled, unique

USERS = {"alice": ("s3cret", "sha512-pbkdf2"), "bob": ("hunter2", "sha512")}


def write_password_file(path):
    """A password file made by mosquitto_passwd (the real tool, both hash kinds)."""
    first = True
    for user, (password, kind) in USERS.items():
        args = ["mosquitto_passwd", "-H", kind, "-b"] + (["-c"] if first else []) + [path, user, password]
        subprocess.run(args, check=True, capture_output=True, timeout=scaled(10))
        first = False


@gannet_only("gannet's --password_file flag")
class PasswordFileTest(BrokerTestCase):
    start_broker_in_setup = False

    def start(self, **flags):
        tmp = tempfile.mkdtemp(prefix="gannet-auth-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "passwd")
        write_password_file(path)
        with open(path) as f:
            text = f.read()
        self.assertIn("alice:$7$", text)
        self.assertIn("bob:$6$", text)
        self.broker = self.launch_broker({"password_file": path, **flags}, metrics=True)

    def connect(self, version, username=None, password=None, expect_rc=0):
        c = self.raw(version, connect=False)
        return c.connect(unique("auth"), username=username,
                         password=None if password is None else password.encode(),
                         expect_rc=expect_rc)

    def test_users_of_a_mosquitto_passwd_file_connect(self):
        self.start()
        for user, (password, _) in USERS.items():
            for version in (4, 5):
                with self.subTest(user=user, version=version):
                    self.connect(version, user, password, expect_rc=0)

    def refused(self, reason):
        return self.broker.metric("gannet_connects_refused_total", reason=reason)

    def test_wrong_password_or_unknown_user_is_refused(self):
        self.start()
        before = self.refused("bad_username_or_password")
        self.connect(5, "alice", "wrong", expect_rc=0x86)
        self.connect(4, "alice", "wrong", expect_rc=4)
        self.connect(5, "mallory", "s3cret", expect_rc=0x86)
        self.connect(4, "bob", None, expect_rc=4)  # a user name without its password
        self.assertEqual(self.refused("bad_username_or_password") - before, 4)

    def test_no_user_name_is_refused_with_a_password_file(self):
        self.start()
        before = self.refused("not_authorized")  # the fixture's readiness probe is one
        self.connect(5, expect_rc=0x87)
        self.connect(4, expect_rc=5)
        self.assertEqual(self.refused("not_authorized") - before, 2)

    def test_allow_anonymous_lets_clients_without_a_user_name_in(self):
        self.start(allow_anonymous="true")
        self.connect(4, expect_rc=0)
        self.connect(5, "alice", "wrong", expect_rc=0x86)  # users are still checked

    def test_mosquitto_pub_with_credentials(self):
        self.start()
        cp = self.mosquitto_pub(unique("t"), "x", extra=("-u", "alice", "-P", "s3cret"), check=False)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        cp = self.mosquitto_pub(unique("t"), "x", extra=("-u", "alice", "-P", "nope"), check=False)
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("bad user name or password", cp.stderr.lower())


@gannet_only("gannet's --password_file flag")
class PasswordFileErrorsTest(unittest.TestCase):

    def run_gannet(self, text, *flags):
        with tempfile.TemporaryDirectory(prefix="gannet-auth-") as tmp:
            path = os.path.join(tmp, "passwd")
            with open(path, "w") as f:
                f.write(text)
            return run_gannet(["--mqtt_listen=127.0.0.1:0", f"--password_file={path}", *flags])

    def test_a_damaged_file_stops_gannet_naming_the_line(self):
        cases = {
            "# users\nalice:plaintext\n": "line 2",
            "alice\n": "line 1",
            "alice:$7$x$c2FsdA==$aGFzaA==\n": "line 1",
            "alice:$6$c2FsdA==$c2hvcnQ=\n": "line 1",
        }
        for text, where in cases.items():
            with self.subTest(text=text):
                rc, err = self.run_gannet(text)
                self.assertEqual(rc, 2, err)
                self.assertIn("--password_file", err)
                self.assertIn(where, err)

    def test_a_missing_file_or_a_bad_allow_anonymous_is_a_usage_error(self):
        rc, err = self.run_gannet("", "--allow_anonymous=maybe")
        self.assertEqual(rc, 2, err)
        self.assertIn("allow_anonymous", err)
        rc, err = run_gannet(["--mqtt_listen=127.0.0.1:0", "--password_file=/nonexistent/passwd"])
        self.assertEqual(rc, 2, err)
        self.assertIn("cannot read password file", err)


if __name__ == "__main__":
    unittest.main()
