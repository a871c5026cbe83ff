"""Self-signed certificate authorities for TLS tests (PostgreSQL ``ssl=on``, S3 CA bundles).

Uses the ``cryptography`` package (a dependency of moto), so no ``openssl`` CLI is needed.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=2)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA key and certificate that can issue server certificates."""

    name: x509.Name
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue_server_cert(self, hosts: Iterable[str]) -> tuple[bytes, bytes]:
        """A server certificate for ``hosts`` (DNS names or IP addresses): (cert PEM, key PEM)."""
        hosts = list(hosts)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(_san(hosts), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def make_ca(common_name: str) -> CertificateAuthority:
    """A fresh self-signed CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(name=name, key=key, cert=cert)


LOOPBACK_HOSTS = ("localhost", "127.0.0.1")


def write_server_tls(ca_name: str, ca_file: Path, cert_file: Path, key_file: Path | None = None,
                     hosts: Iterable[str] = LOOPBACK_HOSTS) -> Path:
    """A fresh CA's certificate in ``ca_file`` and a server certificate it issued for
    ``hosts`` in ``cert_file``, its key in ``key_file`` (mode 0600), or appended to
    ``cert_file`` when ``key_file`` is None (one PEM, as radosgw reads it; then that file is
    0600). Returns ``ca_file``, the bundle clients verify the server with."""
    ca = make_ca(ca_name)
    cert_pem, key_pem = ca.issue_server_cert(hosts)
    ca_file.write_bytes(ca.cert_pem)
    if key_file is None:
        cert_file.write_bytes(cert_pem + key_pem)
        cert_file.chmod(0o600)
    else:
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        key_file.chmod(0o600)
    return ca_file


class ServesTls:
    """A test server that can serve TLS with a certificate from a fresh test CA (written
    when it starts): :attr:`ca_file` is the bundle that verifies it."""

    _ca_file: Path | None = None
    #: what :attr:`ca_file` raises on a server without TLS
    tls_error: type[Exception] = RuntimeError

    @property
    def ca_file(self) -> Path:
        if self._ca_file is None:
            raise self.tls_error(f"this {type(self).__name__} serves no TLS (create it with TLS on and start it)")
        return self._ca_file
