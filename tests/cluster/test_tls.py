"""Mutual TLS on the cluster port (issue 4): with --cluster_tls_cert_file,
--cluster_tls_key_file and --cluster_tls_ca_file the nodes link only with peers
whose certificate their CA signed, and gannetctl needs one too. Certificates
are made by the openssl command line for each test class (EC P-256, SAN
IP:127.0.0.1)."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from cluster_fixture import ClusterTestCase
from gannet_fixture import T, gannet_binary, unique, wait_for


def make_ca(directory, name):
    key, pem = os.path.join(directory, f"{name}.key"), os.path.join(directory, f"{name}.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", pem,
                    "-days", "2", "-subj", f"/CN={name}"], check=True, capture_output=True)
    return key, pem


def make_cert(directory, name, ca_key, ca_pem):
    key, csr = os.path.join(directory, f"{name}.key"), os.path.join(directory, f"{name}.csr")
    pem, ext = os.path.join(directory, f"{name}.pem"), os.path.join(directory, f"{name}.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={name}"],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
                    "-CAcreateserial", "-out", pem, "-days", "2", "-extfile", ext],
                   check=True, capture_output=True)
    return key, pem


class ClusterTlsTest(ClusterTestCase):
    start_cluster_in_setup = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.certs = tempfile.mkdtemp(prefix="gannet-tls-")
        ca_key, cls.ca = make_ca(cls.certs, "cluster-ca")
        cls.node_key, cls.node_cert = make_cert(cls.certs, "node", ca_key, cls.ca)
        other_ca_key, cls.other_ca = make_ca(cls.certs, "other-ca")
        cls.stranger_key, cls.stranger_cert = make_cert(cls.certs, "stranger", other_ca_key,
                                                        cls.other_ca)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certs, ignore_errors=True)
        super().tearDownClass()

    def tls_flags(self, cert=None, key=None, ca=None):
        return {"cluster_tls_cert_file": cert or self.node_cert,
                "cluster_tls_key_file": key or self.node_key,
                "cluster_tls_ca_file": ca or self.ca}

    def ctl_tls(self):
        return (f"--tls_cert_file={self.node_cert}", f"--tls_key_file={self.node_key}",
                f"--tls_ca_file={self.ca}")

    def status_over_tls(self, i):
        rc, out, err = self.gannetctl(i, *self.ctl_tls(), "status")
        self.assertEqual(rc, 0, err)
        return {int(line.split()[0]): line.split()[2] for line in out.splitlines()[1:]}

    def wait_alive_over_tls(self, observer, node):
        wait_for(lambda: self.status_over_tls(observer).get(node) == "alive", timeout=10,
                 interval=0.05, message=f"node {observer} to see node {node} alive over TLS")

    def test_nodes_link_and_forward_over_mutual_tls(self):
        for i in (1, 2, 3):
            self.start_node(i, **self.tls_flags())
        for observer, node in ((1, 2), (1, 3), (3, 1)):
            self.wait_alive_over_tls(observer, node)
        topic = unique("tls")
        sub = self.raw(4, broker=self.nodes[1])
        sub.subscribe(topic, qos=1)

        def routed():
            rc, out, err = self.gannetctl(3, *self.ctl_tls(), "status")
            rows = {int(l.split()[0]): int(l.split()[6]) for l in out.splitlines()[1:]}
            return rows.get(1) == 1
        wait_for(routed, timeout=10, interval=0.05, message="node 3 to have node 1's route")
        self.raw(4, broker=self.nodes[3]).publish(topic, b"over tls", 1)
        p = sub.expect_matching(T.PUBLISH)
        self.assertEqual(p.payload, b"over tls")

    def test_gannetctl_needs_a_certificate(self):
        self.start_node(1, **self.tls_flags())
        rc, out, err = self.gannetctl(1, "status", timeout=15)
        self.assertEqual(rc, 1, out)
        rc, out, err = self.gannetctl(1, f"--tls_cert_file={self.stranger_cert}",
                                      f"--tls_key_file={self.stranger_key}",
                                      f"--tls_ca_file={self.ca}", "status", timeout=15)
        self.assertEqual(rc, 1, "a certificate of another CA is refused: " + out)
        self.assertEqual(self.status_over_tls(1)[1], "self")

    def test_node_with_a_certificate_of_another_ca_or_none_is_refused(self):
        self.start_node(1, **self.tls_flags())
        self.start_node(2, **self.tls_flags(cert=self.stranger_cert, key=self.stranger_key))
        self.start_node(3)  # plaintext
        for n in (2, 3):
            self.nodes[n].wait_log(re.compile(r"link to node 1 at .*(unreachable|refused)"),
                                   what=f"node {n} failing to link with node 1")
        # Several heartbeat and suspect periods: neither ever becomes alive.
        for _ in range(10):
            states = self.status_over_tls(1)
            self.assertEqual((states[2], states[3]), ("unreachable", "unreachable"))

    def test_incomplete_tls_flags_are_a_usage_error(self):
        flags = self.node_flags(1, cluster_tls_cert_file=self.node_cert)
        cmd = [gannet_binary()] + [f"--{k}={v}" for k, v in flags.items()] + [
            "--mqtt_listen=127.0.0.1:0", f"--data_dir={tempfile.mkdtemp(prefix='gannet-tls-data-')}"]
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        self.assertEqual(cp.returncode, 2, cp.stderr)
        self.assertIn("--cluster_tls_key_file is missing", cp.stderr)


if __name__ == "__main__":
    unittest.main()
