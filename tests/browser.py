"""A real headless Chromium for the console's browser tests: found or installed, driven by
Playwright's Python API.

The browser is Debian's ``chromium`` package at ``/usr/bin/chromium``; when missing it is
installed from the OS packages (``apt-get install chromium``, as root), the way tests/pg.py
installs PostgreSQL. Playwright never downloads a browser here (``playwright install`` needs the
internet): it launches the system one through ``executable_path``.

Run directly to install the browser ahead of a test run: ``python tests/browser.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
#: Headless, sandbox-less (tests may run as root in a container), and silent on the network:
#: no QUIC, no background updates or sync, nothing but the pages the test opens.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def install_chromium() -> None:
    """Install Chromium from the OS packages (Debian/Ubuntu, as root)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(
            "Chromium is not installed and cannot be installed automatically here (needs root "
            "and apt-get): install the `chromium` package so /usr/bin/chromium exists"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
        check=True,
        env=env,
    )


def chromium_path() -> Path:
    """The Chromium executable, installing it first if needed."""
    if not CHROMIUM.is_file():
        install_chromium()
    if not CHROMIUM.is_file():
        raise RuntimeError(f"installed the chromium package but found no {CHROMIUM}")
    return CHROMIUM


if __name__ == "__main__":
    print(chromium_path())
