"""A self-signed certificate for localhost, made once for the dev profile and renewed before it expires."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=30)
RENEW_BEFORE = dt.timedelta(days=2)
# A server's leaf: it signs TLS handshakes and nothing else. Trusting it (as `make run`'s users do) must not
# mean trusting whatever a stolen dev key could sign.
_SIGNATURE_ONLY = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
    key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
)  # fmt: skip


def ensure_self_signed(directory: Path, also_for: Sequence[str] = ()) -> tuple[Path, Path]:
    """(certificate, key) files for localhost, 127.0.0.1, ::1 and the host names `also_for` (a compose topology's
    service name) under `directory`, made when missing, expiring or not a leaf."""
    cert_file, key_file = directory / "localhost.crt", directory / "localhost.key"
    if cert_file.is_file() and key_file.is_file() and not _to_replace(cert_file):
        return cert_file, key_file
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                    *(x509.DNSName(host) for host in also_for),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_SIGNATURE_ONLY, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key_bytes)
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert_file, key_file


def _to_replace(cert_file: Path) -> bool:
    """Unreadable, expiring soon, or made as a certificate authority (as earlier versions did)."""
    try:
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
        authority = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except (ValueError, x509.ExtensionNotFound):
        return True
    return authority or certificate.not_valid_after_utc - dt.datetime.now(dt.UTC) < RENEW_BEFORE
