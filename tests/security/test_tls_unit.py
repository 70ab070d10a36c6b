"""The TLS building blocks (no processes): a cluster CA, certificates issued for a
request, the token file that carries the CA, and the checks of user-supplied files."""

from __future__ import annotations

import ssl
import threading
from pathlib import Path

import pytest

from nbcluster.runtime import credentials, tls


def test_a_certificate_issued_for_a_request_verifies_against_its_ca_only() -> None:
    ca, ca_key = tls.make_ca("test")
    identity = tls.self_issued(ca, ca_key, tls.node_hosts("127.0.0.1"))
    other_ca, _ = tls.make_ca("other")
    assert _handshake(identity, ca, "127.0.0.1") is None
    assert "certificate verify failed" in (_handshake(identity, other_ca, "127.0.0.1") or "")
    # The certificate names its hosts: another address does not match.
    assert "match" in (_handshake(identity, ca, "127.0.0.2") or "")


def test_issue_refuses_what_is_not_a_request_with_hosts() -> None:
    ca, ca_key = tls.make_ca("test")
    with pytest.raises(tls.TlsError, match="not a certificate request"):
        tls.issue(ca, ca_key, b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
    csr, _ = tls.make_csr([])
    with pytest.raises(tls.TlsError, match="names no host"):
        tls.issue(ca, ca_key, csr)


def test_token_file_carries_the_ca_and_trusts_it_for_both_scopes(tmp_path: Path) -> None:
    ca, _ = tls.make_ca("test")
    path = tmp_path / "token"
    credentials.write_token_file(path, "abc123", ca)
    assert path.stat().st_mode & 0o777 == 0o600
    assert credentials.read_token_file(path) == "abc123"
    assert credentials.ca_for("abc123") == ca == credentials.ca_for(credentials.driver_token("abc123"))
    plain = tmp_path / "plain"
    plain.write_text("def456\n")
    assert credentials.read_token_file(plain) == "def456" and credentials.ca_for("def456") == b""
    assert tls.split_token_file(b"tok\n") == ("tok", b"")


def test_fingerprint_is_openssls_format() -> None:
    ca, _ = tls.make_ca("test")
    fp = tls.fingerprint(ca)
    assert fp.startswith("SHA256:") and len(fp.split(":")) == 33


def test_user_files_are_checked_with_a_clear_message(tmp_path: Path) -> None:
    ca, ca_key = tls.make_ca("test")
    identity = tls.self_issued(ca, ca_key, ["10.0.0.1"])
    (tmp_path / "ca.pem").write_bytes(ca)
    (tmp_path / "cert.pem").write_bytes(identity.cert_pem)
    (tmp_path / "key.pem").write_bytes(identity.key_pem)
    (tmp_path / "junk.pem").write_bytes(b"not a certificate")
    ok = tls.Settings(str(tmp_path / "ca.pem"), str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    got_ca, got, key = ok.head("h", ["10.0.0.1"])
    assert got_ca == ca and got.cert_pem == identity.cert_pem and key == b""
    with pytest.raises(tls.TlsError, match="both --tls-cert-file and --tls-key-file"):
        tls.Settings(str(tmp_path / "ca.pem"), str(tmp_path / "cert.pem"))
    with pytest.raises(tls.TlsError, match="--tls-ca-file .*junk.pem holds no usable CA"):
        tls.Settings(str(tmp_path / "junk.pem")).user_ca()
    with pytest.raises(tls.TlsError, match="do not make a usable certificate and key"):
        tls.Settings(str(tmp_path / "ca.pem"), str(tmp_path / "cert.pem"), str(tmp_path / "junk.pem")).head("h", [])
    with pytest.raises(tls.TlsError, match="cannot read --tls-ca-file"):
        tls.Settings(str(tmp_path / "missing.pem")).user_ca()
    with pytest.raises(tls.TlsError, match="needs its own --tls-cert-file"):
        tls.Settings(str(tmp_path / "ca.pem")).head("h", [])


def _handshake(identity: tls.Identity, trusted_ca: bytes, name: str) -> str | None:
    """A TLS handshake over a socket pair: None when the client accepted the server,
    else the client's error."""
    import socket

    server_sock, client_sock = socket.socketpair()
    server = identity.server_context().wrap_socket(server_sock, server_side=True, do_handshake_on_connect=False)

    def serve() -> None:
        try:
            server.do_handshake()
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        client = tls.client_context(trusted_ca).wrap_socket(client_sock, server_hostname=name)
        client.close()
        return None
    except ssl.SSLError as exc:
        client_sock.close()
        return str(exc)
    finally:
        server.close()
        thread.join(10)
