from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.dev.certificate import ensure_self_signed


def test_self_signed_certificate_covers_localhost_and_keeps_its_key_private(tmp_path: Path) -> None:
    cert_file, key_file = ensure_self_signed(tmp_path)
    certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_the_certificate_is_a_server_leaf_that_cannot_sign_others(tmp_path: Path) -> None:
    certificate = x509.load_pem_x509_certificate(ensure_self_signed(tmp_path)[0].read_bytes())
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
    assert certificate.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is False


def test_a_certificate_made_as_a_ca_by_an_earlier_version_is_replaced(tmp_path: Path) -> None:
    cert_file, _ = ensure_self_signed(tmp_path)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    authority = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file.write_bytes(authority.public_bytes(serialization.Encoding.PEM))
    replaced = x509.load_pem_x509_certificate(ensure_self_signed(tmp_path)[0].read_bytes())
    assert replaced.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_certificate_is_reused_until_it_nears_expiry(tmp_path: Path) -> None:
    cert_file, _ = ensure_self_signed(tmp_path)
    first = cert_file.read_bytes()
    assert ensure_self_signed(tmp_path)[0].read_bytes() == first


def test_unreadable_certificate_is_replaced(tmp_path: Path) -> None:
    cert_file, _ = ensure_self_signed(tmp_path)
    cert_file.write_text("not a certificate")
    ensure_self_signed(tmp_path)
    certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    assert certificate.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=20)
