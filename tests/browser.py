"""What the browser tests share: headless Chromium (through Playwright), and WCAG contrast.

Outside CI a missing Chromium or Playwright skips the browser tests; in CI (CI=true) it
fails them, so that CI can never pass without having looked.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Computed text colour of an element and the background it sits on (the nearest set).
COLOURS = """(selector) => {
  const element = document.querySelector(selector);
  let node = element, background = "rgba(0, 0, 0, 0)";
  while (node && background === "rgba(0, 0, 0, 0)") {
    background = getComputedStyle(node).backgroundColor;
    node = node.parentElement;
  }
  return [getComputedStyle(element).color, background];
}"""


def need_browser(chromium: str = CHROMIUM) -> None:
    """Fail in CI, skip elsewhere, when Chromium or Playwright is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "Playwright for Python is not installed (pip install -e '.[test]')"
    else:
        if Path(chromium).exists():
            return
        reason = f"Chromium is not installed at {chromium} (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run the browser tests")
    pytest.skip(reason)


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """A headless Chromium, closed afterwards (skips or fails as `need_browser` says)."""
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def luminance(colour: str) -> float:
    """The relative luminance (WCAG 2) of a CSS `rgb(...)` or `rgba(...)` colour."""
    red, green, blue = (int(x) / 255 for x in re.findall(r"\d+", colour)[:3])

    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(red) + 0.7152 * channel(green) + 0.0722 * channel(blue)


def contrast(foreground: str, background: str) -> float:
    """The WCAG contrast ratio of two CSS colours: 1 to 21."""
    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)
