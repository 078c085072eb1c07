"""The score track: the scores as given, the flagged slices, a click and N/P jump to slices."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtTest import QTest

from medvis_desktop.arrays import next_flagged
from medvis_desktop.gui.score_track import DEFAULT_THRESHOLD, ScoreTrack

TRACK = np.array([0.1, 0.9, np.nan, 0.2, 0.7, 0.95, 0.3, 0.05], dtype=np.float32)


def make_track(qtbot) -> ScoreTrack:
    track = ScoreTrack()
    qtbot.addWidget(track)
    track.resize(600, 200)
    track.show()
    qtbot.waitExposed(track)
    track.set_track(TRACK, "lesion")
    return track


def test_the_curve_is_the_scores_and_the_flagged_are_those_above_the_threshold(qtbot):
    track = make_track(qtbot)
    x, y = track.curve.getData()
    np.testing.assert_array_equal(x, np.arange(1, 9))  # numbered from 1, as the view's caption
    np.testing.assert_array_equal(y, TRACK)
    flagged_x, _ = track.flagged.getData()
    assert list(flagged_x) == [2, 5, 6] and track.threshold == DEFAULT_THRESHOLD
    track.set_threshold(0.8)
    assert list(track.flagged.getData()[0]) == [2, 6]
    assert "lesion" in track.caption.text()


def test_n_and_p_step_through_the_flagged_slices(qtbot):
    track = make_track(qtbot)
    chosen: list[int] = []
    track.slice_chosen.connect(chosen.append)
    track.set_current(1)
    QTest.keyClick(track, Qt.Key.Key_N)
    track.set_current(chosen[-1])
    QTest.keyClick(track, Qt.Key.Key_N)
    track.set_current(chosen[-1])
    QTest.keyClick(track, Qt.Key.Key_N)  # none after 5: nothing chosen
    QTest.keyClick(track, Qt.Key.Key_P)
    assert chosen == [4, 5, 4]


def test_a_click_on_the_plot_chooses_that_slice(qtbot):
    track = make_track(qtbot)
    chosen: list[int] = []
    track.slice_chosen.connect(chosen.append)
    box = track.plot.getPlotItem().vb
    scene = box.mapViewToScene(QPointF(6, 0.5))  # the slice numbered 6 on screen
    where = track.plot.mapFromScene(scene)
    QTest.mouseClick(track.plot.viewport(), Qt.MouseButton.LeftButton, pos=where)
    assert chosen == [5]  # index 5, which the view's caption calls 6/8


def test_the_window_fills_the_track_as_results_arrive_and_n_jumps_to_a_flagged_slice(qtbot, window):
    from tests.gui.conftest import run_and_wait

    run_and_wait(qtbot, window, layer="conv2", target=1)
    explanation = window.explanation
    np.testing.assert_array_equal(window.track.curve.getData()[1], explanation.scores[:, 1])
    window.track.set_threshold(float(np.nanmedian(explanation.scores[:, 1])))
    window.viewer.set_slice(0)
    expected = next_flagged(explanation.scores[:, 1], window.track.threshold, 0, 1)
    menus = [action.menu() for action in window.menuBar().actions() if action.menu()]
    next_action = next(a for menu in menus for a in menu.actions() if a.text() == "Next flagged slice")
    next_action.trigger()
    assert expected is not None and window.viewer.cursor[0] == expected
    assert window.track.marker.value() == expected + 1  # where the caption's slice number is
    caption = window.viewer.views[0].annotations.caption.text()
    assert f" {expected + 1}/{len(explanation.scores)}" in caption


def tick_labels(track: ScoreTrack, side: str) -> list[str]:
    """The labels the axis draws (as pyqtgraph lays them out to paint)."""
    image = QImage(600, 200, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        _, _, texts = track.plot.getAxis(side).generateDrawSpecs(painter)
    finally:
        painter.end()
    return [text for _, _, text in texts]


def test_a_short_track_numbers_every_slice_and_no_fraction(qtbot):
    track = make_track(qtbot)
    assert tick_labels(track, "bottom") == [str(k) for k in range(1, 9)]


def test_the_score_axis_spans_0_to_1_in_plain_numbers(qtbot):
    """Scores up to 0.75: the axis still reads 0 to 1, not "score (x0.001)" from 0 to 800."""
    track = ScoreTrack()
    qtbot.addWidget(track)
    track.resize(600, 200)
    track.show()
    track.set_track(np.array([0.1, 0.75, 0.2, 0.3], dtype=np.float32), "lesion")
    qtbot.wait(100)  # pyqtgraph's own range, had it chosen one, is set by now
    low, high = track.plot.getPlotItem().vb.viewRange()[1]
    assert low <= 0 and high >= 1
    assert "x0.001" not in track.plot.getAxis("left").labelString()
    labels = [float(label) for label in tick_labels(track, "left")]
    assert labels and max(labels) == 1 and min(labels) == 0
    track.set_track(np.array([-2.0, 3.0], dtype=np.float32), "logit")  # not a probability: widened
    qtbot.wait(100)
    low, high = track.plot.getPlotItem().vb.viewRange()[1]
    assert low <= -2 and high >= 3


def test_one_image_says_its_score_in_words_instead_of_a_track(qtbot):
    track = ScoreTrack()
    qtbot.addWidget(track)
    track.show()
    track.set_track(np.array([np.nan], dtype=np.float32), "mass")
    assert track.caption.text() == "Score of mass: not computed yet"
    track.set_track(np.array([0.93], dtype=np.float32), "mass")
    assert track.plot is None  # a plot of one point says less than the number
    assert track.caption.text() == "Score of mass: 0.93, above the threshold 0.5"
    track.set_threshold(0.95)
    assert track.caption.text() == "Score of mass: 0.93, below the threshold 0.95"
    track.set_track(TRACK, "lesion")  # a study of several slices after it: the plot again
    assert track.plot.isVisible()
