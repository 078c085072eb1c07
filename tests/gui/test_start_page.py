"""Before a study is open the window says what to do next: recent files, demos, open buttons."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from tests.gui.conftest import make_window


def click_item(view, row: int) -> None:
    rect = view.visualItemRect(view.item(row))
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_an_empty_window_offers_the_demos_and_the_ways_to_open(qtbot, settings):
    window = make_window(qtbot, settings)
    assert window.slices_page.currentWidget() is window.start_page
    from medvis_desktop.demo.cases import CASES

    titles = [window.start_page.demos.item(k).text() for k in range(window.start_page.demos.count())]
    assert titles == [case.title for case in CASES.values()]
    assert window.start_page.recent.item(0).text() == "Nothing opened yet"
    assert "drop a study" in window.start_page.hint.text()


def test_a_recent_study_opens_with_one_click(qtbot, settings, ct_nifti):
    settings.setValue("recent", [str(ct_nifti)])
    window = make_window(qtbot, settings)
    assert window.start_page.recent.item(0).toolTip() == str(ct_nifti)
    click_item(window.start_page.recent, 0)
    assert window.volume is not None and window.volume.source == ct_nifti
    assert window.slices_page.currentWidget() is window.viewer
