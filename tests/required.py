"""Optional test dependencies (plotly, Chromium, ffmpeg, scikit-learn): a missing one skips its
tests on a developer's machine and fails them under CI (the environment variable ``CI`` set), where
``.ci/run`` installs every one, so that no check silently stops running there."""

from __future__ import annotations

import os

import pytest


def need(what: str, present: bool) -> None:
    """Skip without ``what`` locally; under CI its absence fails the test."""
    if present:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing: CI must run these tests (.ci/run installs it)")
    pytest.skip(f"{what} is not installed")
