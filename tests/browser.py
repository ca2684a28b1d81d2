"""The browser the report is read in: Debian's Chromium, driven by Playwright's Python package
(never its own browser download), headless, with a fresh profile and nothing fetched by the
browser itself. For the report's tests and benchmarks/bench_story.py."""

from __future__ import annotations

from playwright.sync_api import Browser, Playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
