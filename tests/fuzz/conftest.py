"""The `fuzz` marker (deselect with -m "not fuzz") and the fuzz table in pytest's summary."""

from __future__ import annotations

import pytest

# Filled by test_fuzz.py: the markdown report of the run, shown at the end of the session.
SUMMARY: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fuzz: the fixed-seed fuzz sample of every input format (deselect with -m 'not fuzz')"
    )


def pytest_terminal_summary(terminalreporter) -> None:
    if SUMMARY:
        terminalreporter.section("fuzz: hostile and broken inputs")
        for text in SUMMARY:
            terminalreporter.write_line(text)
