#!/usr/bin/env bash
# Debian packages medvis needs: Qt's runtime libraries, a virtual screen for headless
# screenshots, and the real medical data used by demos and tests (nothing is downloaded at
# run time). Installs what is missing when run as root; otherwise names the exact command.
#   packaging/system_deps.sh            what make run and make test need
#   packaging/system_deps.sh package    also what make package and make package-test need
set -euo pipefail

QT_OFFSCREEN="libegl1 libgl1 libx11-6 libdbus-1-3 libfontconfig1 libfreetype6 libglib2.0-0 libxkbcommon0"
QT_WINDOW="libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0 \
libxcb-render0 libxcb-shape0 libxcb-util1 libxcb-xkb1 libxkbcommon-x11-0 xvfb xauth"
DATA="invesalius-examples mricron-data"
# Real DICOM peers of the tests: the standard's validator and a PACS started on the loopback.
DICOM="dicom3tools orthanc openssl"
# The browser the tests open `medvis evaluate`'s HTML report in, headless.
REPORT="chromium"
# Building the frozen app and the .deb, and installing the bundle on the system's CPython 3.11.
# The Wayland client libraries are those of Qt's Wayland platform plugin, which the frozen app
# carries (the .deb's Depends are read from the libraries present at build time).
PACKAGE=""
if [ "${1:-}" = package ]; then
    PACKAGE="binutils dpkg-dev desktop-file-utils python3.11 python3.11-venv util-linux xdotool
libwayland-client0 libwayland-cursor0 libwayland-egl1"
fi

missing=()
for pkg in $QT_OFFSCREEN $QT_WINDOW $DATA $DICOM $REPORT $PACKAGE; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "medvis needs these Debian packages; install them with:" >&2
    echo "  sudo apt-get install ${missing[*]}" >&2
    exit 1
fi
