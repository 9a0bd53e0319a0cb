"""`python -m app.runtime.probe`: the container's health check. Exit 0 when this container's API answers
/api/common/health on its own port (over TLS when TLS_CERT_FILE is set), 1 otherwise. It asks the process next to
it over loopback, so it checks liveness, not the certificate: that is the clients' business."""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request

TIMEOUT = 2.0


def main() -> int:
    port = os.environ.get("LISTEN_PORT", "8443")
    tls = bool(os.environ.get("TLS_CERT_FILE"))
    context = None
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # our own process over loopback: liveness only
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/api/common/health"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT, context=context) as response:  # nosec B310 # noqa: S310
            return 0 if response.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
