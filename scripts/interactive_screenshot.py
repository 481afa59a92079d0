"""Screenshot of an interactive view (or any local page) in headless Chromium, for the docs.

    python scripts/interactive_screenshot.py runs/quickstart/interactive/pca_2d_interactive.html docs/img/x.png

Waits until the plot has drawn (the page script marks its div), then saves a PNG of the window.
Needs Chromium (Debian: ``apt-get install chromium``); uses the DevTools-pipe client of the tests.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from chromium import Browser, find_chromium

WAIT = """
new Promise(function (resolve) {
  (function poll(n) {
    var gd = document.querySelector('.js-plotly-plot');
    if ((gd && gd.getAttribute('data-shown')) || (!gd && document.readyState === 'complete') || n === 0) {
      setTimeout(function () { resolve(true); }, 500);
    } else { setTimeout(function () { poll(n - 1); }, 100); }
  })(600);
})
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1300)
    parser.add_argument("--height", type=int, default=700)
    args = parser.parse_args()
    executable = find_chromium()
    if executable is None:
        print("interactive_screenshot: no chromium on PATH (Debian: apt-get install chromium)", file=sys.stderr)
        return 1
    with Browser(executable, width=args.width, height=args.height) as browser:
        browser.open(args.page.resolve().as_uri())
        browser.evaluate(WAIT)
        browser.screenshot(args.out)
        outside = [u for u in browser.requests if not u.startswith(("file:", "data:", "blob:", "about:"))]
    print(f"{args.out}: screenshot of {args.page}; requests that left the machine: {len(outside)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
