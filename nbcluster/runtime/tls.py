"""TLS for the carriers that cross machines: gRPC (GCS, node managers, the relay), the
object port, and the jobs HTTP API.

A cluster started with TLS (``nbcluster start --head --tls``; the default when the
head binds an address other than loopback) has its own certificate authority, made
at head start with the ``cryptography`` package and kept in the head's session
(``tls/ca.key``, mode 0600). The head issues itself a certificate; every node manager,
once it has proven the cluster token, gets one from the head for its addresses
(``Gcs.IssueCertificate``: the node sends a CSR, its private key never leaves it).
Clients pin the cluster's CA: its certificate travels in the token file (after the
token line), so the one file a user copies to another machine is all it needs, and
``nbcluster start --head`` prints its fingerprint. Alternatively the user supplies
the CA, certificate and key files of each node (``--tls-ca-file`` etc.).

Local sockets (same machine, peer uid checked) carry no TLS.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: Certificates are valid this long (a cluster outliving it restarts its head).
VALIDITY = datetime.timedelta(days=365)
_PEM_CERT_BEGIN = b"-----BEGIN CERTIFICATE-----"


class TlsError(ValueError):
    """A TLS file or setting is unusable; the message says which and why."""


@dataclass(frozen=True)
class Identity:
    """What a server presents: its certificate chain and key, and the CA it trusts."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def server_context(self) -> ssl.SSLContext:
        """For the object port and the jobs API (gRPC takes the PEMs directly)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        _load_chain(ctx, self.cert_pem, self.key_pem)
        return ctx


def client_context(ca_pem: bytes) -> ssl.SSLContext:
    """A client context that trusts only ``ca_pem`` and checks the server's name."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=ca_pem.decode())
    return ctx


def _load_chain(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    # ssl loads chains from files only: a private temporary directory for an instant.
    import tempfile

    with tempfile.TemporaryDirectory(prefix="nbcluster-tls-") as tmp:
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert.write_bytes(cert_pem)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        ctx.load_cert_chain(cert, key)


@dataclass(frozen=True)
class Settings:
    """TLS for a cluster being started. With no files, the head makes the cluster's
    own CA and issues certificates; with files, they are the user's (PEM): the CA to
    trust, and this node's certificate and key, which must name its address."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    #: The head only: the key of ``ca_file``. The head then is that CA, as with a CA of
    #: its own (it issues its own certificate and the nodes'), but the CA outlives the
    #: head: a restarted head is trusted by the nodes and clients that pinned it (a
    #: head in Kubernetes gets both from a Secret, ``runtime/kubernetes/``).
    ca_key_file: str | None = None
    #: More names for the head's certificate besides its addresses (a Service's DNS names).
    extra_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise TlsError("give both --tls-cert-file and --tls-key-file, or neither")
        if self.ca_key_file is not None and (self.ca_file is None or self.cert_file is not None):
            raise TlsError("a CA key file goes with its CA file and no certificate file (the head issues its own)")

    def user_ca(self) -> bytes:
        """The CA of ``ca_file`` (checked), or b"" when none is named."""
        if self.ca_file is None:
            return b""
        return check_ca(_read(self.ca_file, "--tls-ca-file"), f"--tls-ca-file {self.ca_file}")

    def user_identity(self, ca_pem: bytes) -> Identity | None:
        """This node's certificate and key from the user's files (checked to load), or None."""
        if self.cert_file is None or self.key_file is None:
            return None
        cert, key = _read(self.cert_file, "--tls-cert-file"), _read(self.key_file, "--tls-key-file")
        identity = Identity(ca_pem, cert, key)
        try:
            identity.server_context()
        except (ssl.SSLError, OSError) as exc:
            raise TlsError(f"--tls-cert-file {self.cert_file} and --tls-key-file {self.key_file} "
                           f"do not make a usable certificate and key: {exc}") from None
        return identity

    def head(self, name: str, hosts: Iterable[str]) -> tuple[bytes, Identity, bytes]:
        """(CA PEM, the head's identity, the CA's key — b"" for a user's CA)."""
        hosts = [*hosts, *self.extra_hosts]
        if self.ca_file is None:
            if self.cert_file is not None:
                raise TlsError("--tls-cert-file needs --tls-ca-file (the CA that signed it)")
            ca_pem, ca_key = make_ca(name)
            return ca_pem, self_issued(ca_pem, ca_key, hosts), ca_key
        ca_pem = self.user_ca()
        if self.ca_key_file is not None:
            ca_key = _read(self.ca_key_file, "the CA key file")
            check_pair(ca_pem, ca_key, self.ca_key_file)
            return ca_pem, self_issued(ca_pem, ca_key, hosts), ca_key
        identity = self.user_identity(ca_pem)
        if identity is None:
            raise TlsError("a head with the user's CA (--tls-ca-file) needs its own --tls-cert-file and --tls-key-file")
        return ca_pem, identity, b""


def _read(path: str, flag: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read {flag} {path}: {exc.strerror}") from None


# -- making keys and certificates --------------------------------------------------
def _new_key():  # noqa: ANN202 - cryptography's key type
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:  # noqa: ANN001
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert) -> bytes:  # noqa: ANN001
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def make_ca(name: str) -> tuple[bytes, bytes]:
    """A new certificate authority for one cluster: (certificate PEM, key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"nbcluster CA {name}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return _cert_pem(cert), _key_pem(key)


def _names(hosts: Iterable[str]) -> list:
    from cryptography import x509

    names: list = []
    for host in dict.fromkeys(h for h in hosts if h):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def make_csr(hosts: Iterable[str]) -> tuple[bytes, bytes]:
    """A key and a certificate request for ``hosts`` (IPs or names): (CSR PEM, key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = _new_key()
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nbcluster node")])
    )
    names = _names(hosts)
    if names:  # (cryptography >= 51 refuses an empty subjectAltName; the CA refuses a request without one)
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def issue(ca_cert_pem: bytes, ca_key_pem: bytes, csr_pem: bytes) -> bytes:
    """Sign ``csr_pem`` with the CA: a certificate for the names the request lists,
    usable as a server and as a client. TlsError for a malformed request."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise TlsError(f"not a certificate request: {exc}") from None
    if not csr.is_signature_valid:
        raise TlsError("the certificate request's signature does not match its key")
    try:
        names = list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        names = []
    if not names:
        raise TlsError("the certificate request names no host (subjectAltName)")
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return _cert_pem(cert)


def self_issued(ca_cert_pem: bytes, ca_key_pem: bytes, hosts: Iterable[str]) -> Identity:
    """An identity for ``hosts`` signed by the CA whose key this process holds (the head)."""
    csr, key = make_csr(hosts)
    return Identity(ca_cert_pem, issue(ca_cert_pem, ca_key_pem, csr), key)


def fingerprint(cert_pem: bytes) -> str:
    """``SHA256:AB:CD:...`` of a certificate, as ``openssl x509 -fingerprint`` prints it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    digest = x509.load_pem_x509_certificate(cert_pem).fingerprint(hashes.SHA256())
    return "SHA256:" + ":".join(f"{b:02X}" for b in digest)


def check_ca(ca_pem: bytes, where: str) -> bytes:
    """``ca_pem`` if it holds at least one certificate; TlsError naming ``where``."""
    from cryptography import x509

    try:
        x509.load_pem_x509_certificates(ca_pem)
    except ValueError as exc:
        raise TlsError(f"{where} holds no usable CA certificate: {exc}") from None
    return ca_pem


def check_pair(ca_pem: bytes, ca_key_pem: bytes, where: str) -> None:
    """TlsError naming ``where`` unless ``ca_key_pem`` is the key of ``ca_pem``'s (first) certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(ca_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise TlsError(f"{where} holds no usable private key: {exc}") from None
    cert = x509.load_pem_x509_certificates(ca_pem)[0]
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*der) != cert.public_key().public_bytes(*der):
        raise TlsError(f"{where} is not the key of the CA certificate it goes with")


def node_hosts(*addresses: str) -> list[str]:
    """The names a node's certificate covers: the addresses it serves on (all of this
    machine's for a wildcard), this machine's name, and loopback."""
    hosts: list[str] = []
    for address in addresses:
        if address in ("0.0.0.0", "::", ""):
            import psutil

            hosts += [a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs
                      if a.family in (socket.AF_INET, socket.AF_INET6)]
        else:
            hosts.append(address)
    return [*hosts, socket.gethostname(), "127.0.0.1", "localhost"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address; "" counts) is this machine's loopback."""
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def speaks_tls(address: str, timeout: float = 2.0) -> bool:
    """Whether the server at ``address`` (host:port) answers a TLS ClientHello as a TLS
    server would (a handshake, or a TLS alert). Its certificate is not checked: this
    only tells a client without the cluster's CA why a server closes its connections."""
    host, _, port = address.rpartition(":")
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname=None):
            return True
    except ssl.SSLError as exc:  # an alert is a TLS answer; "wrong version number" is not
        return "ALERT" in str(exc.reason or "").upper()
    except (OSError, ValueError):
        return False


# -- token files: the token, then the CA ---------------------------------------------
def split_token_file(text: bytes) -> tuple[str, bytes]:
    """(token, CA PEM or b"") of a token file: the token on the first line, then the
    cluster's CA certificate when the cluster uses TLS."""
    head, sep, rest = text.partition(_PEM_CERT_BEGIN)
    token = head.decode(errors="replace").strip()
    return token, (sep + rest).strip() + b"\n" if sep else b""


def join_token_file(token: str, ca_pem: bytes) -> bytes:
    """A token file's contents: the token on the first line, then the cluster's CA (PEM)
    when it has one."""
    return token.encode() + b"\n" + (ca_pem if ca_pem else b"")
