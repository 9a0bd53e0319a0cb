from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

from cryptography import x509

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
