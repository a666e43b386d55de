"""The extra CA bundle: what this machine trusts beyond the public CAs (a TLS-intercepting
proxy's CA, for one), handed to builds and to the lab cloud's VMs. README, "Extra CA
bundle"."""

from __future__ import annotations

import os
from pathlib import Path

# WORKSHOP_EXTRA_CA_BUNDLE names another file.
DEFAULT_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
SETTING = "WORKSHOP_EXTRA_CA_BUNDLE"


def configured_path() -> str:
    return os.environ.get(SETTING, DEFAULT_CA_BUNDLE)


def extra_ca_bundle() -> Path | None:
    """The CA bundle builds and VMs trust, when there is one."""
    bundle = Path(configured_path())
    return bundle if bundle.is_file() else None
