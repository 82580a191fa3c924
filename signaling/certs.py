"""A local CA and a server certificate for the embedded default, made on first start."""

from __future__ import annotations

import ipaddress
import logging
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import ifaddr
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

logger = logging.getLogger(__name__)


def lan_addresses() -> list[str]:
    """IPv4 addresses of this machine's interfaces, loopback first."""
    found = ["127.0.0.1"]
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and ip.ip not in found:
                found.append(ip.ip)
    return found


WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def link_host(listen_host: str, operator_cert: Path | None) -> str:
    """The host links in mails name when no public URL is configured.

    The listening address when it is one address; on every interface, the
    operator's certificate's first DNS name, else the machine address the
    generated certificate covers and `serve` prints for phones."""
    if listen_host not in WILDCARD_HOSTS:
        return listen_host
    if operator_cert is not None:
        cert = x509.load_pem_x509_certificate(operator_cert.read_bytes())
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            san = None
        names = san.value.get_values_for_type(x509.DNSName) if san else []
        if names:
            return names[0]
    return lan_addresses()[-1]


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def ensure_certificates(certs_dir: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server.key); creates them when missing or when the
    machine's addresses are no longer all covered."""
    certs_dir.mkdir(parents=True, exist_ok=True)
    ca_pem, ca_key = certs_dir / "ca.pem", certs_dir / "ca.key"
    server_pem, server_key = certs_dir / "server.pem", certs_dir / "server.key"
    if not (ca_pem.exists() and ca_key.exists()):
        _make_ca(ca_pem, ca_key)
    addresses = lan_addresses()
    if not (server_pem.exists() and server_key.exists()) or not _covers(
        server_pem, addresses
    ):
        _make_server(ca_pem, ca_key, server_pem, server_key, addresses)
    return ca_pem, server_pem, server_key


def _covers(server_pem: Path, addresses: list[str]) -> bool:
    cert = x509.load_pem_x509_certificate(server_pem.read_bytes())
    if cert.not_valid_after_utc < datetime.now(UTC) + timedelta(days=7):
        return False
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    return set(addresses) <= ips


def _make_ca(ca_pem: Path, ca_key: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "identdesk development"),
            x509.NameAttribute(
                NameOID.COMMON_NAME, f"identdesk local CA ({socket.gethostname()})"
            ),
        ]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    _write_private(ca_key, _key_pem(key))
    ca_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    logger.info("- local CA created: %s", ca_pem)


def _make_server(
    ca_pem: Path, ca_key: Path, server_pem: Path, server_key: Path, addresses: list[str]
) -> None:
    ca_cert = x509.load_pem_x509_certificate(ca_pem.read_bytes())
    ca_private = serialization.load_pem_private_key(ca_key.read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname()
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(host)]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    names.append(x509.IPAddress(ipaddress.ip_address("::1")))
    now = datetime.now(UTC)
    # 397 days: the longest lifetime Apple and Chrome accept for a server certificate
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=397))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_private, hashes.SHA256())  # type: ignore[arg-type]
    )
    _write_private(server_key, _key_pem(key))
    server_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    logger.info(
        "- server certificate for %s written: %s", ", ".join(addresses), server_pem
    )
