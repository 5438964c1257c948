"""Restore timings parsed from the in-page marks (tools.browser.restore_trace)."""

from __future__ import annotations

from typing import Any

import pytest

from tools.browser.restore_trace import RestoreTimes


def marks(*entries: tuple[float, str]) -> list[list[Any]]:
    return [[at, what] for at, what in entries]


def test_window_ends_with_the_last_annotation_layer_restored() -> None:
    times = RestoreTimes.from_marks(
        marks(
            (100.0, "reset>"),
            (101.0, "changed"),
            (130.0, "reset<"),
            (131.0, "restore>"),
            (150.0, "changed"),
            (160.0, "layer annotation>"),
            (190.0, "layer annotation<"),
            (190.5, "layer annotation>"),
            (240.0, "changed"),
            (250.0, "layer annotation<"),
            (251.0, "layer image>"),
            (400.0, "changed"),  # after the window: not a gap inside it
            (410.0, "layer image<"),
            (420.0, "restore<"),
        )
    )
    assert times == RestoreTimes(reset_ms=30.0, window_ms=150.0, restore_ms=320.0, max_gap_ms=90.0)


def test_state_without_annotation_layers_has_no_window() -> None:
    times = RestoreTimes.from_marks(
        marks((0.0, "reset>"), (5.0, "reset<"), (5.0, "restore>"), (40.0, "restore<"))
    )
    assert times is not None and times.window_ms is None
    assert times.restore_ms == pytest.approx(40.0)


def test_no_restore_recorded() -> None:
    assert RestoreTimes.from_marks(marks((0.0, "changed"))) is None
