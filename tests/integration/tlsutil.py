"""Test certificates made at test time with the openssl command (nothing
secret is kept in the repository), and a TLS client for ferry's listeners."""
import os
import socket
import ssl
import subprocess
import tempfile

import ferrytest as ft


def _run(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=60)
    ft.check(p.returncode == 0, f"openssl {' '.join(args)}: {p.stderr.decode()}")


class CA:
    """A certificate authority in a private temporary directory."""

    def __init__(self, name="test-ca"):
        self.dir = tempfile.mkdtemp(prefix="ferry-tls-")
        self.name = name
        self.pem = self.path(f"{name}.pem")
        self.key = self.path(f"{name}.key")
        _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", self.key, "-out", self.pem, "-days", "30", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)
        self._serial = 1

    def path(self, name):
        return os.path.join(self.dir, name)

    def issue(self, name, dns=(), uris=(), days=30, start=None, end=None, cn=None):
        """A leaf certificate for the SAN names; returns (cert path, key path).
        start/end (YYYYMMDDHHMMSSZ) set the validity explicitly; cn="" leaves the
        subject without a common name."""
        key, csr, pem = self.path(f"{name}.key"), self.path(f"{name}.csr"), self.path(f"{name}.pem")
        _run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", csr, "-subj",
             f"/CN={cn or name}/O=Ferry Test" if cn != "" else "/O=Ferry Test", cwd=self.dir)
        san = ",".join([f"DNS:{d}" for d in dns] + [f"URI:{u}" for u in uris])
        ext = self.path(f"{name}.ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
            if san:
                f.write(f"subjectAltName={san}\n")
        if start or end:
            cnf = self.path("ca.cnf")
            with open(cnf, "w") as f:
                f.write(f"""[ca]
default_ca = c
[c]
database = {self.path('index.txt')}
new_certs_dir = {self.dir}
serial = {self.path('serial')}
default_md = sha256
policy = p
email_in_dn = no
[p]
commonName = supplied
organizationName = optional
""")
            open(self.path("index.txt"), "a").close()
            with open(self.path("serial"), "w") as f:
                f.write(f"{self._serial:04X}\n")
            self._serial += 1
            _run("ca", "-batch", "-notext", "-config", cnf, "-cert", self.pem, "-keyfile", self.key,
                 "-in", csr, "-out", pem, "-startdate", start, "-enddate", end, "-extfile", ext,
                 cwd=self.dir)
        else:
            _run("x509", "-req", "-in", csr, "-CA", self.pem, "-CAkey", self.key,
                 "-CAcreateserial", "-out", pem, "-days", str(days), "-extfile", ext, cwd=self.dir)
        return pem, key


def client_context(ca=None, alpn=("http/1.1",), min_version=None, max_version=None):
    ctx = ssl.create_default_context(cafile=ca.pem if ca else None)
    if ca is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    return ctx


class TLSClient(ft.Client):
    """ft.Client over TLS."""

    def __init__(self, port, ctx, server_hostname=None, session=None, timeout=ft.IO_TIMEOUT):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = ctx.wrap_socket(raw, server_hostname=server_hostname, session=session)
        self.buf = b""
        self.received = b""

    def _fill(self):
        try:
            d = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError):
            d = b""
        if d:
            self.buf += d
            self.received += d
        return d

    def peer_names(self):
        """The DNS names of the certificate ferry presented."""
        cert = self.sock.getpeercert()
        return [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
