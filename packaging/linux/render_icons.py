"""The icon in the hicolor theme's layout: the SVG, and PNGs rendered from it with Qt.

    QT_QPA_PLATFORM=offscreen python packaging/linux/render_icons.py OUT_DIR
writes OUT_DIR/hicolor/scalable/apps/medvis.svg and OUT_DIR/hicolor/NxN/apps/medvis.png.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

SVG = Path(__file__).resolve().parents[2] / "resources" / "icons" / "medvis.svg"
SIZES = (48, 128, 256)


def main(out: Path) -> None:
    app = QGuiApplication.instance() or QGuiApplication([])  # noqa: F841 (Qt needs one for fonts)
    scalable = out / "hicolor" / "scalable" / "apps"
    scalable.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SVG, scalable / "medvis.svg")
    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        raise SystemExit(f"{SVG} is not a valid SVG")
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        folder = out / "hicolor" / f"{size}x{size}" / "apps"
        folder.mkdir(parents=True, exist_ok=True)
        if not image.save(str(folder / "medvis.png")):
            raise SystemExit(f"could not write {folder / 'medvis.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
