"""Authorisation (issue 7, second part): --acl_file in Mosquitto's acl_file
format (docs/security.md, "Authorisation (ACL)"), with users from a
--password_file written by the real mosquitto_passwd.

What a client sees: a PUBLISH it may not write is refused with 0x87 (MQTT 5
PUBACK / PUBREC) or acknowledged and dropped (3.1.1), never delivered; a
SUBSCRIBE filter it may not read gets 0x87 (MQTT 5) / 0x80 (3.1.1) alone, the
others of the same packet are granted; a message on a topic it may not read is
not delivered, retained ones included; %u / %c patterns give each client its
own subtree and a user name with '+' or '/' does not widen it; a will topic it
may not write refuses the CONNECT (as Mosquitto 2.0); a damaged ACL file stops
gannet at start naming the line; refusals count as not_authorized drops."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest

from gannet_fixture import (BrokerTestCase, P, SubscribeOptions, T, gannet_only, run_gannet,
                            scaled, unique)

PASSWORD = "pw-1234"
# "+" and "a/b": user names that would widen a %u pattern if substituted. (A
# user "#" cannot be in a password file: the line would be a comment.)
USERS = ("alice", "bob", "admin", "carol", "+", "a/b")

ACL = """\
# Mosquitto acl_file. Anonymous clients (no user name):
topic read public/#
topic write public/anon/#

user alice
topic readwrite shared/#
topic deny shared/secret
topic read readonly/#
topic write writeonly/#
topic read retained/allowed/#
topic deny retained/allowed/hidden

user bob
topic readwrite shared/#
topic readwrite retained/#

user admin
topic readwrite #

# carol has no section: denied everything but the patterns.

# Every client:
pattern readwrite users/%u/#
pattern readwrite clients/%c/#
"""

def write_password_file(path):
    for i, user in enumerate(USERS):
        args = ["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) + [path, user, PASSWORD]
        subprocess.run(args, check=True, capture_output=True, timeout=scaled(10))


@gannet_only("gannet's --acl_file flag")
class AclTest(BrokerTestCase):
    start_broker_in_setup = False

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gannet-acl-")
        cls.passwd = os.path.join(cls.tmp, "passwd")
        write_password_file(cls.passwd)
        cls.acl = os.path.join(cls.tmp, "acl")
        with open(cls.acl, "w") as f:
            f.write(ACL)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, True)

    def setUp(self):
        super().setUp()
        self.broker = self.launch_broker(
            {"password_file": self.passwd, "acl_file": self.acl, "allow_anonymous": "true"},
            metrics=True)

    # ---- helpers -------------------------------------------------------------

    def client(self, version, user=None, client_id=None, will=None, expect_rc=0):
        c = self.raw(version, connect=False)
        c.connect(client_id or unique("acl"), will=will, username=user,
                  password=PASSWORD.encode() if user else None, expect_rc=expect_rc)
        return c

    def paho_user(self, user, version=5, client_id=None):
        c = self.paho(client_id, version=version, connect=False)
        c.client.username_pw_set(user, PASSWORD)
        c.connect()
        return c

    def dropped(self):
        return self.broker.metric("gannet_messages_dropped_total", reason="not_authorized") or 0

    def assert_nothing_but(self, sub, sync_topic, wanted=()):
        """`sub` (a PahoClient) got the sync message already; nothing but
        `wanted` topics (and the sync) arrived."""
        got = sorted({m.topic for m in sub.messages()} - {sync_topic})
        self.assertEqual(got, sorted(wanted))

    # ---- PUBLISH ---------------------------------------------------------------

    def test_denied_publish_mqtt5_gets_0x87_and_is_never_delivered(self):
        admin = self.paho_user("admin")
        self.assertEqual(admin.subscribe("#", qos=1), [1])
        before = self.dropped()
        alice = self.client(5, "alice")
        ack = alice.publish("readonly/a", b"q1", qos=1)
        self.assertEqual((ack.type, ack.rc), (T.PUBACK, 0x87))
        self.assertIn(0x1F, ack.props)  # a reason string says why
        pid = alice.publish("readonly/b", b"q2", qos=2, complete=False)
        rec = alice.expect(T.PUBREC)
        self.assertEqual((rec.pid, rec.rc), (pid, 0x87))
        alice.publish("readonly/c", b"q0", qos=0)
        # Allowed: writeonly/# (no PUBREL needed for the refused QoS 2: the exchange ended).
        ok = alice.publish("writeonly/sync", b"sync", qos=1)
        self.assertLess(ok.rc, 0x80)
        admin.wait_message("writeonly/sync", b"sync")
        self.assert_nothing_but(admin, "writeonly/sync")
        self.assertEqual(self.dropped() - before, 3)
        self.assertTrue(alice.is_open())

    def test_denied_publish_mqtt311_is_acknowledged_and_dropped(self):
        admin = self.paho_user("admin", version=4)
        self.assertEqual(admin.subscribe("#", qos=2), [2])
        before = self.dropped()
        alice = self.client(4, "alice")
        ack = alice.publish("readonly/a", b"q1", qos=1)
        self.assertEqual(ack.type, T.PUBACK)
        comp = alice.publish("readonly/b", b"q2", qos=2)  # PUBREC, PUBREL, PUBCOMP as usual
        self.assertEqual(comp.type, T.PUBCOMP)
        self.assertEqual(alice.last_pubrec.type, T.PUBREC)
        alice.publish("readonly/c", b"q0", qos=0)
        alice.publish("writeonly/sync", b"sync", qos=1)
        admin.wait_message("writeonly/sync", b"sync")
        self.assert_nothing_but(admin, "writeonly/sync")
        self.assertEqual(self.dropped() - before, 3)
        # A denied retained publish is not retained either.
        alice.publish("readonly/r", b"kept?", qos=1, retain=True)
        late = self.paho_user("admin")
        late.subscribe("readonly/#", qos=1)
        admin.clear()
        self.mosquitto_pub("readonly/sync", "sync", qos=1, extra=("-u", "admin", "-P", PASSWORD))
        late.wait_message("readonly/sync", b"sync")
        self.assert_nothing_but(late, "readonly/sync")

    def test_mosquitto_pub_to_an_allowed_and_a_denied_topic(self):
        sub = self.mosquitto_sub("#", version="5", extra=("-u", "admin", "-P", PASSWORD))
        creds = ("-u", "alice", "-P", PASSWORD)
        self.mosquitto_pub("readonly/x", "denied", version="311", qos=1, extra=creds)
        self.mosquitto_pub("writeonly/x", "allowed", version="311", qos=1, extra=creds)
        sub.wait_messages(1)
        self.assertEqual(sub.messages(), [("writeonly/x", "allowed")])

    # ---- SUBSCRIBE -------------------------------------------------------------

    def test_subscribe_is_refused_per_filter(self):
        filters = ["shared/#", "#", "readonly/+", "writeonly/#", "users/alice/#", "users/bob/#",
                   "shared/secret"]
        for version, refused in ((5, 0x87), (4, 0x80)):
            with self.subTest(version=version):
                alice = self.client(version, "alice")
                ack = alice.subscribe([(f, 1) for f in filters])
                self.assertEqual(ack.rcs, [1, refused, 1, refused, 1, refused, refused])

    def test_no_subscription_is_kept_for_a_refused_filter(self):
        alice = self.paho_user("alice")
        granted = alice.subscribe([("writeonly/#", SubscribeOptions(qos=1)),
                                   ("shared/sync", SubscribeOptions(qos=1))])
        self.assertEqual(granted, [0x87, 1])
        admin = self.paho_user("admin")
        admin.publish("writeonly/x", b"not for alice", qos=1)
        admin.publish("shared/sync", b"sync", qos=1)
        alice.wait_message("shared/sync", b"sync")
        self.assert_nothing_but(alice, "shared/sync")

    def test_deny_by_default_for_a_user_without_a_section(self):
        carol = self.client(5, "carol")
        self.assertEqual(carol.subscribe("shared/#", qos=1).rcs, [0x87])
        self.assertEqual(carol.publish("shared/x", b"x", qos=1).rc, 0x87)
        # Her own subtree (the patterns) is hers all the same.
        self.assertEqual(carol.subscribe("users/carol/#", qos=1).rcs, [1])
        self.assertLess(carol.publish("users/carol/x", b"x", qos=1).rc, 0x80)
        self.assertEqual(carol.expect(T.PUBLISH).topic, "users/carol/x")

    # ---- read access at delivery -----------------------------------------------

    def test_a_topic_denied_for_reading_is_not_delivered(self):
        alice = self.paho_user("alice")
        self.assertEqual(alice.subscribe("shared/#", qos=1), [1])  # allowed, but shared/secret is denied
        creds = ("-u", "bob", "-P", PASSWORD)
        before = self.dropped()
        self.mosquitto_pub("shared/secret", "hidden", qos=1, extra=creds)
        self.mosquitto_pub("shared/open", "shown", qos=1, extra=creds)
        alice.wait_message("shared/open", b"shown")
        self.assert_nothing_but(alice, "shared/open")
        self.assertEqual(self.dropped() - before, 1)

    def test_retained_message_is_not_delivered_without_read_access(self):
        bob = self.paho_user("bob")
        bob.publish("retained/allowed/hidden", b"hidden", qos=1, retain=True)
        bob.publish("retained/allowed/shown", b"shown", qos=1, retain=True)
        bob.publish("retained/other", b"other", qos=1, retain=True)
        for version in (5, 4):
            with self.subTest(version=version):
                alice = self.paho_user("alice", version=version)
                self.assertEqual(alice.subscribe("retained/allowed/#", qos=1), [1])
                alice.wait_message("retained/allowed/shown", b"shown")
                bob.publish("retained/allowed/sync", b"sync", qos=1)
                alice.wait_message("retained/allowed/sync", b"sync")
                self.assert_nothing_but(alice, "retained/allowed/sync", ["retained/allowed/shown"])
                # The wider filter is refused: no retained message through it.
                self.assertIn(alice.subscribe("retained/#", qos=1)[0], (0x87, 0x80))

    def test_offline_session_is_checked_as_its_user_after_a_restart(self):
        # The user name is stored with the session: what arrives for it while
        # it is offline after a restart is checked for alice (who may read
        # shared/open), not for an anonymous client (who may read nothing there).
        cid = unique("alice-persistent")
        alice = self.raw(5, connect=False)
        alice.connect(cid, clean=True, props={P.SESSION_EXPIRY_INTERVAL: 3600}, username="alice",
                      password=PASSWORD.encode())
        self.assertEqual(alice.subscribe("shared/#", qos=1).rcs, [1])
        alice.disconnect()
        self.broker.terminate()
        self.broker.restart()
        creds = ("-u", "bob", "-P", PASSWORD)
        self.mosquitto_pub("shared/secret", "hidden", qos=1, extra=creds)
        self.mosquitto_pub("shared/open", "shown", qos=1, extra=creds)
        again = self.raw(5, connect=False)
        ack = again.connect(cid, clean=False, props={P.SESSION_EXPIRY_INTERVAL: 3600},
                            username="alice", password=PASSWORD.encode())
        self.assertTrue(ack.session_present)
        first = again.expect(T.PUBLISH)
        self.assertEqual((first.topic, first.payload), ("shared/open", b"shown"))
        again.ack(first)
        self.mosquitto_pub("shared/sync", "sync", qos=1, extra=creds)
        sync = again.expect(T.PUBLISH)
        self.assertEqual(sync.topic, "shared/sync")

    # ---- patterns ----------------------------------------------------------------

    def test_each_user_sees_only_their_own_subtree(self):
        alice = self.paho_user("alice")
        bob = self.paho_user("bob")
        self.assertEqual(alice.subscribe("users/alice/#", qos=1), [1])
        self.assertEqual(bob.subscribe("users/bob/#", qos=1), [1])
        self.assertEqual(alice.subscribe("users/bob/#", qos=1), [0x87])
        self.assertEqual(alice.subscribe("users/+/#", qos=1), [0x87])
        raw_alice = self.client(5, "alice")
        self.assertEqual(raw_alice.publish("users/bob/inbox", b"from alice", qos=1).rc, 0x87)
        self.assertLess(raw_alice.publish("users/alice/inbox", b"mine", qos=1).rc, 0x80)
        bob.publish("users/bob/inbox", b"mine too", qos=1)
        alice.wait_message("users/alice/inbox", b"mine")
        bob.wait_message("users/bob/inbox", b"mine too")
        self.assert_nothing_but(alice, "users/alice/inbox")
        self.assert_nothing_but(bob, "users/bob/inbox")

    def test_client_id_pattern(self):
        dev = self.client(5, "carol", client_id="dev1")
        self.assertEqual(dev.subscribe([("clients/dev1/#", 1), ("clients/dev2/#", 1)]).rcs, [1, 0x87])
        self.assertEqual(dev.publish("clients/dev2/x", b"x", qos=1).rc, 0x87)
        self.assertLess(dev.publish("clients/dev1/x", b"x", qos=1).rc, 0x80)
        self.assertEqual(dev.expect(T.PUBLISH).topic, "clients/dev1/x")
        # A client id with a wildcard does not get a wider subtree.
        wild = self.client(5, "carol", client_id="+")
        self.assertEqual(wild.subscribe([("clients/+/#", 1), ("clients/dev1/#", 1)]).rcs,
                         [0x87, 0x87])

    def test_user_names_with_wildcards_or_slashes_do_not_widen_patterns(self):
        # Substituted, "users/%u/#" would be "users/+/#" (every user's subtree)
        # or "users/a/b/#" (part of user a's): it does not apply to these users.
        for user in ("+", "a/b"):
            with self.subTest(user=user):
                c = self.client(5, user)
                self.assertEqual(c.subscribe([("users/+/#", 1), ("users/a/#", 1), ("users/#", 1),
                                              ("users/a/b/#", 1)]).rcs, [0x87] * 4)
                self.assertEqual(c.publish("users/a/b/x", b"x", qos=1).rc, 0x87)
                self.assertEqual(c.publish("users/alice/x", b"x", qos=1).rc, 0x87)

    # ---- anonymous clients ---------------------------------------------------------

    def test_anonymous_section(self):
        anon = self.client(5)
        self.assertEqual(anon.subscribe([("public/#", 1), ("shared/#", 1)]).rcs, [1, 0x87])
        self.assertEqual(anon.publish("public/other", b"x", qos=1).rc, 0x87)
        self.assertLess(anon.publish("public/anon/x", b"x", qos=1).rc, 0x80)
        self.assertEqual(anon.expect(T.PUBLISH).topic, "public/anon/x")
        # Anonymous rules are not a user's.
        alice = self.client(5, "alice")
        self.assertEqual(alice.subscribe("public/#", qos=1).rcs, [0x87])
        anon4 = self.client(4)
        self.assertEqual(anon4.subscribe([("public/#", 0), ("readonly/#", 0)]).rcs, [0, 0x80])

    # ---- wills ---------------------------------------------------------------------

    def test_a_will_the_client_may_not_write_refuses_the_connect(self):
        will = {"topic": "readonly/will", "payload": b"gone", "qos": 1}
        self.client(5, "alice", will=will, expect_rc=0x87)
        self.client(4, "alice", will=will, expect_rc=5)
        admin = self.paho_user("admin")
        admin.subscribe("writeonly/#", qos=1)
        c = self.client(5, "alice", will={"topic": "writeonly/will", "payload": b"gone", "qos": 1})
        c.shutdown()  # abnormal close: the will is published
        admin.wait_message("writeonly/will", b"gone")


@gannet_only("gannet's --acl_file flag and SIGHUP reload")
class AclReloadTest(BrokerTestCase):
    """SIGHUP reads the ACL file again: connected clients stay, the new rules
    apply to them at once (subscriptions made under the old rules included); a
    damaged file keeps the rules in use."""

    start_broker_in_setup = False

    def write_acl(self, text):
        with open(self.acl, "w") as f:
            f.write(text)

    def reload(self, expect):
        os.kill(self.broker.pid, signal.SIGHUP)
        self.broker.wait_log(re.compile(expect))

    def test_sighup_applies_new_rules_to_connected_clients(self):
        tmp = tempfile.mkdtemp(prefix="gannet-acl-reload-")
        self.addCleanup(shutil.rmtree, tmp, True)
        passwd = os.path.join(tmp, "passwd")
        write_password_file(passwd)
        self.acl = os.path.join(tmp, "acl")
        self.write_acl("user admin\ntopic readwrite #\n\nuser bob\ntopic readwrite shared/#\n")
        self.broker = self.launch_broker({"password_file": passwd, "acl_file": self.acl})
        bob = self.paho(version=5, connect=False)
        bob.client.username_pw_set("bob", PASSWORD)
        bob.connect()
        self.assertEqual(bob.subscribe("shared/#", qos=1), [1])
        admin = self.raw(5, connect=False)
        admin.connect(unique("admin"), username="admin", password=PASSWORD.encode())
        admin.publish("shared/x", b"before", qos=1)
        bob.wait_message("shared/x", b"before")

        self.write_acl("user admin\ntopic readwrite #\n\n"
                       "user bob\ntopic readwrite shared/#\ntopic deny shared/x\n")
        self.reload(r"reloaded ACL file")
        admin.publish("shared/x", b"after", qos=1)
        admin.publish("shared/y", b"after", qos=1)
        bob.wait_message("shared/y", b"after")
        self.assertEqual([m.payload for m in bob.messages() if m.topic == "shared/x"], [b"before"])
        # bob may no longer publish there either.
        raw_bob = self.raw(5, connect=False)
        raw_bob.connect(unique("bob"), username="bob", password=PASSWORD.encode())
        self.assertEqual(raw_bob.publish("shared/x", b"denied", qos=1).rc, 0x87)

        # A damaged file: said in the log, the rules in use stay.
        self.write_acl("user bob\ntopic sometimes shared/#\n")
        self.reload(r"reload: .*line 2.*previous one stays in use")
        admin.publish("shared/x", b"still denied", qos=1)
        admin.publish("shared/y", b"still allowed", qos=1)
        bob.wait_message("shared/y", b"still allowed")
        self.assertEqual([m.payload for m in bob.messages() if m.topic == "shared/x"], [b"before"])
        self.assert_broker_alive()


@gannet_only("gannet's --acl_file flag")
class AclFileErrorsTest(unittest.TestCase):

    def run_gannet(self, text):
        with tempfile.TemporaryDirectory(prefix="gannet-acl-") as tmp:
            path = os.path.join(tmp, "acl")
            with open(path, "w") as f:
                f.write(text)
            rc, err = run_gannet(["--mqtt_listen=127.0.0.1:0", f"--acl_file={path}"])
            return rc, err, path

    def test_a_damaged_acl_file_stops_gannet_naming_the_line(self):
        cases = {
            "# acl\ntopic read a/#\nuser alice\ntopic raed a/b\n": ("line 4", "unknown access 'raed'"),
            "topic read a/#/b\n": ("line 1", "invalid topic filter"),
            "\n\nfoo bar\n": ("line 3", "unknown keyword 'foo'"),
            "topic read\n": ("line 1", "without a topic"),
            "user\n": ("line 1", "without a user name"),
        }
        for text, (where, why) in cases.items():
            with self.subTest(text=text):
                rc, err, path = self.run_gannet(text)
                self.assertEqual(rc, 2, err)
                self.assertIn("--acl_file", err)
                self.assertIn(f"{path} {where}: ", err)
                self.assertIn(why, err)

    def test_a_missing_acl_file_is_a_usage_error(self):
        rc, err = run_gannet(["--mqtt_listen=127.0.0.1:0", "--acl_file=/nonexistent/acl"])
        self.assertEqual(rc, 2, err)
        self.assertIn("cannot read ACL file /nonexistent/acl", err)


if __name__ == "__main__":
    unittest.main()
