"""Test certificates made with the openssl command line: a CA, a server
certificate for localhost / 127.0.0.1, client certificates, and a second CA
nobody trusts. Used by the TLS, WebSocket and doctor tests."""

import os
import subprocess


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory, name):
    """<name>.key / <name>.crt: a self-signed CA."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.crt", "-days", "30", "-subj", f"/CN={name}", cwd=directory)
    return os.path.join(directory, f"{name}.crt")


def make_cert(directory, name, cn, ca="ca", server=False, days=30):
    """<name>.key / <name>.crt signed by CA <ca>; a server certificate names
    localhost and 127.0.0.1."""
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.csr", "-subj", f"/CN={cn}", cwd=directory)
    ext = os.path.join(directory, f"{name}.ext")
    with open(ext, "w") as f:
        if server:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        else:
            f.write("extendedKeyUsage=clientAuth\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", str(days), "-extfile", ext,
             cwd=directory)
    return os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")


class Pki:
    """ca (trusted), other_ca (not), server, server2 (a second server
    certificate for reload tests), client (CN device-7), stranger (CN
    device-7 signed by other_ca)."""

    def __init__(self, directory):
        self.dir = directory
        self.ca = make_ca(directory, "ca")
        self.other_ca = make_ca(directory, "other_ca")
        self.server_cert, self.server_key = make_cert(directory, "server", "localhost", server=True)
        self.server2_cert, self.server2_key = make_cert(directory, "server2", "localhost", server=True)
        self.client_cert, self.client_key = make_cert(directory, "client", "device-7")
        self.stranger_cert, self.stranger_key = make_cert(directory, "stranger", "device-7",
                                                          ca="other_ca")
