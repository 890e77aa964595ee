"""Test certificates made with the openssl command line: a CA, server
certificates for localhost / 127.0.0.1 (valid, a second one, an expired one),
one for another name, client certificates, and a second CA nobody trusts.
Used by the TLS, WebSocket and doctor tests. Keys are RSA 2048 (the TLS tests
choose an ECDHE-RSA cipher)."""

import os
import subprocess

# The names a server certificate is for: what the tests connect to.
SERVER_NAMES = "DNS:localhost,IP:127.0.0.1"


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory, name, cn):
    """<name>.key / <name>.crt: a self-signed CA with common name cn."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.crt", "-days", "30", "-subj", f"/CN={cn}", cwd=directory)
    return os.path.join(directory, f"{name}.crt")


def _ca_config(directory, ca):
    """A minimal `openssl ca` configuration (and its database) for CA <ca>."""
    conf = os.path.join(directory, f"{ca}-ca.cnf")
    if not os.path.exists(conf):
        with open(conf, "w") as f:
            f.write(f"[ca]\ndefault_ca = d\n[d]\ndatabase = {ca}-index.txt\nnew_certs_dir = .\n"
                    f"serial = {ca}-serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n"
                    "copy_extensions = none\n[p]\ncommonName = supplied\n")
        open(os.path.join(directory, f"{ca}-index.txt"), "w").close()
        with open(os.path.join(directory, f"{ca}-serial"), "w") as f:
            f.write("1000\n")
    return conf


def make_cert(directory, name, cn, ca="ca", san=None, dates=None):
    """<name>.key / <name>.crt signed by CA <ca>, valid for 30 days from now.
    With san (e.g. SERVER_NAMES) a server certificate for those names, else a
    client certificate (extendedKeyUsage=clientAuth). dates=(start, end) in
    openssl's YYYYMMDDHHMMSSZ form sets the validity instead: `openssl x509
    -days` cannot go back in time, `openssl ca -startdate/-enddate` can."""
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.csr", "-subj", f"/CN={cn}", cwd=directory)
    ext = os.path.join(directory, f"{name}.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName={san}\n" if san else "extendedKeyUsage=clientAuth\n")
    if dates:
        _openssl("ca", "-batch", "-config", _ca_config(directory, ca), "-cert", f"{ca}.crt",
                 "-keyfile", f"{ca}.key", "-in", f"{name}.csr", "-out", f"{name}.crt",
                 "-startdate", dates[0], "-enddate", dates[1], "-extfile", ext, "-notext",
                 cwd=directory)
    else:
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "30", "-extfile", ext,
                 cwd=directory)
    return os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")


class Pki:
    """Files in `directory` (the caller removes it). Each certificate is an
    <x>_cert / <x>_key pair of paths:

    * ca -- the trusted CA's certificate (CN "Gannet Test CA"); other_ca -- a CA
      nobody trusts (CN "Unrelated Test CA").
    * server -- for localhost and 127.0.0.1, signed by ca; server2 -- a second
      one (reload tests); expired -- the same names, valid only in January 2020;
      wrongname -- for other.example only (SAN and CN).
    * client -- a client certificate, CN device-7, signed by ca; stranger -- the
      same CN signed by other_ca."""

    def __init__(self, directory):
        self.dir = directory
        self.ca = make_ca(directory, "ca", "Gannet Test CA")
        self.other_ca = make_ca(directory, "other_ca", "Unrelated Test CA")
        self.server_cert, self.server_key = make_cert(directory, "server", "localhost",
                                                      san=SERVER_NAMES)
        self.server2_cert, self.server2_key = make_cert(directory, "server2", "localhost",
                                                        san=SERVER_NAMES)
        self.expired_cert, self.expired_key = make_cert(
            directory, "expired", "localhost", san=SERVER_NAMES,
            dates=("20200101000000Z", "20200201000000Z"))
        self.wrongname_cert, self.wrongname_key = make_cert(directory, "wrongname", "other.example",
                                                            san="DNS:other.example")
        self.client_cert, self.client_key = make_cert(directory, "client", "device-7")
        self.stranger_cert, self.stranger_key = make_cert(directory, "stranger", "device-7",
                                                          ca="other_ca")
