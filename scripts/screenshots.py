"""Screenshot every page of a running Tooltrail at 1440x900 (for eyeballing the UI).

Usage (app already running, e.g. `PORT=8765 python -m tooltrail.launcher up`):

    .venv/bin/python scripts/screenshots.py --base http://127.0.0.1:8765 \
        --user ui --password ui-pass-123 --out /tmp

Uses Debian's /usr/bin/chromium (no downloaded browsers). Writes /tmp/shot-*.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (one launch recipe)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="http://127.0.0.1:8765")
    parser.add_argument("--user", default="ui")
    parser.add_argument("--password", default="ui-pass-123")
    parser.add_argument("--out", default="/tmp")
    parser.add_argument("--step", default="8", help="step selected on the trace page")
    parser.add_argument("--trace", default="", help="trace path (default: newest in the list)")
    parser.add_argument("--dark", action="store_true", help="prefers-color-scheme: dark")
    opts = parser.parse_args()
    out = Path(opts.out)
    base = opts.base.rstrip("/")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(
            viewport={"width": 1440, "height": 900},
            color_scheme="dark" if opts.dark else "light",
        )

        page.goto(f"{base}/accounts/login/")
        page.screenshot(path=str(out / "shot-login.png"))
        page.fill("input[name=username]", "nobody")
        page.fill("input[name=password]", "wrong")
        page.click("button[type=submit]")
        page.screenshot(path=str(out / "shot-login-error.png"))
        page.fill("input[name=username]", opts.user)
        page.fill("input[name=password]", opts.password)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")

        page.goto(f"{base}/traces/")
        page.wait_for_timeout(500)
        page.screenshot(path=str(out / "shot-traces.png"))

        trace = opts.trace
        if not trace:
            href = page.locator("#trace-rows a").first.get_attribute("href")
            trace = href or ""
        if trace:
            page.goto(f"{base}{trace}?step={opts.step}")
            page.wait_for_timeout(800)
            page.screenshot(path=str(out / "shot-trace.png"))
            # Select another step through htmx, as a user clicking the tree would.
            heads = page.locator("li.step > a.step-head")
            if heads.count() > 2:
                heads.nth(2).click()
                page.wait_for_timeout(600)
                page.screenshot(path=str(out / "shot-trace-clicked.png"))
            page.set_viewport_size({"width": 900, "height": 900})
            page.screenshot(path=str(out / "shot-trace-narrow.png"))
            page.set_viewport_size({"width": 1440, "height": 900})

        for listing, name in (("agents", "agent"), ("tools", "tool")):
            page.goto(f"{base}/{listing}/")
            page.screenshot(path=str(out / f"shot-{listing}.png"))
            href = page.locator("main table a").first.get_attribute("href")
            if href:
                page.goto(f"{base}{href}")
                page.screenshot(path=str(out / f"shot-{name}.png"), full_page=True)

        page.goto(f"{base}/tokens/")
        page.screenshot(path=str(out / "shot-tokens.png"))

        print("\n".join(sorted(str(f) for f in out.glob("shot-*.png"))))
        browser.close()


if __name__ == "__main__":
    main()
