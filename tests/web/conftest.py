"""Chromium for the page's tests (Debian's, driven by Playwright): one launcher for every module."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.realparts import need_module, need_part

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = need_module("playwright.sync_api", "playwright is not installed")
    executable = chromium()
    if executable is None:
        need_part("no Chromium binary (run scripts/install_system_deps.sh, or set CHROMIUM=/path)")
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Exception as exc:  # noqa: BLE001 - any launch failure means "no usable browser here"
            need_part(f"Chromium at {executable} would not start: {exc}")
        yield b
        b.close()
