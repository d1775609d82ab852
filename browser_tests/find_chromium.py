"""Find a Chromium for the browser test; never downloads one.

Order: ``MINIGPT_CHROMIUM`` (a path or a command name), then ``chromium``, ``chromium-browser`` and
``google-chrome`` on PATH, then the Chromium that ``python -m playwright install chromium`` put in
Playwright's own folder. Run as a script it prints the path (exit 0) or why none was found (exit 1);
``.ci/run`` uses it to decide whether to run ``make test-browser``.
"""

from __future__ import annotations

import os
import shutil
import sys

COMMANDS = ("chromium", "chromium-browser", "google-chrome")
HOW_TO_GET_ONE = "apt-get install chromium, or set MINIGPT_CHROMIUM"


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def playwright_chromium() -> str | None:
    """The path of Playwright's own Chromium when it is installed, else None (starts Playwright's driver)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    try:
        with sync_playwright() as p:
            path = p.chromium.executable_path
    except Exception:  # a broken driver is the same as no browser here
        return None
    return path if path and _executable(path) else None


def find_chromium(check_playwright: bool = True) -> tuple[str | None, str]:
    """``(path, "")`` for the Chromium to use, or ``(None, reason)`` when there is none."""
    wanted = os.environ.get("MINIGPT_CHROMIUM", "").strip()
    if wanted:
        path = wanted if os.sep in wanted else shutil.which(wanted)
        if path and _executable(path):
            return path, ""
        return None, f"MINIGPT_CHROMIUM={wanted} is not an executable file or a command on PATH"
    for name in COMMANDS:
        path = shutil.which(name)
        if path:
            return path, ""
    path = playwright_chromium() if check_playwright else None
    if path:
        return path, ""
    return None, (f"no Chromium found ({'/'.join(COMMANDS)} not on PATH, no Playwright browser; "
                  f"{HOW_TO_GET_ONE})")


def main() -> int:
    path, reason = find_chromium()
    print(path or reason)
    return 0 if path else 1


if __name__ == "__main__":
    sys.exit(main())
