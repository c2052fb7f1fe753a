"""The trio that ./dev.sh set up is third_party/trio's patched build: importing it loads
neither ssl nor idna (a mount never uses them), and its TLS names still work."""

from __future__ import annotations

import hashlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PATCHES = REPO / "third_party" / "trio"


def series_label() -> str:
    """install.sh's local version label: the hash of series, patches and install.sh."""
    names = [n for n in (PATCHES / "series").read_text().splitlines()
             if n.strip() and not n.lstrip().startswith("#")]  # fmt: skip
    data = b"".join((PATCHES / n).read_bytes() for n in ["series", *names, "install.sh"])
    return "unionfs." + hashlib.sha256(data).hexdigest()[:12]


def test_installed_trio_is_the_patched_build_of_this_series() -> None:
    if Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        pytest.skip("not running in the virtualenv that ./dev.sh setup builds")
    version = importlib.metadata.version("trio")
    assert version == f"0.35.0+{series_label()}", (
        f"trio {version} is not the build of third_party/trio as it is now: run ./dev.sh setup"
    )


def test_importing_trio_loads_no_tls_and_its_tls_names_still_work() -> None:
    probe = (
        "import sys, trio\n"
        "from trio._socket import encode_hostname\n"
        "print(sorted(m for m in ('ssl', 'idna', 'trio._ssl', 'trio._dtls') if m in sys.modules))\n"
        "print(trio.SSLStream.__module__, trio.DTLSEndpoint.__module__, 'ssl' in sys.modules)\n"
        "print('serve_ssl_over_tcp' in dir(trio), encode_hostname('bücher.example'))\n"
        "try:\n    trio.no_such_name\nexcept AttributeError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.splitlines()  # fmt: skip
    assert out == [
        "[]",
        "trio trio True",
        "True b'xn--bcher-kva.example'",
        "module 'trio' has no attribute 'no_such_name'",
    ]
