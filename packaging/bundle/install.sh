#!/usr/bin/env bash
# Installs medvis from this folder with no network: a virtual environment made from the
# wheels in wheelhouse/ (pip --no-index, every file checked against its sha256), the `medvis`
# command on the PATH, the desktop entry, icons and a MIME type for NIfTI files.
#
#   ./install.sh [--prefix DIR] [--python PYTHON] [--bin-dir DIR] [--no-desktop]
#
# As root the defaults are /opt/medvis-venv (/opt/medvis is the .deb's), /usr/local/bin and
# /usr/local/share; otherwise ~/.local/opt/medvis, ~/.local/bin and ~/.local/share.
# Needs CPython 3.11 (with its venv module) on Linux x86_64 with glibc 2.34 or newer, as the
# wheels are built for it.
# Everything is checked before anything is written; a failure leaves nothing behind, and an
# existing installation stays as it was. The user's settings (~/.config/medvis) are never touched.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" -eq 0 ]; then
    prefix=/opt/medvis-venv bin_dir=/usr/local/bin share_dir=/usr/local/share
else
    prefix="$HOME/.local/opt/medvis" bin_dir="$HOME/.local/bin" share_dir="$HOME/.local/share"
fi
python=""
desktop=1
# Installed size of a version (the virtual environment), with room to spare, in MiB.
NEEDED_MIB=2600
# Shared libraries Qt loads from the system, and the Debian/Ubuntu packages that carry them.
QT_LIBRARIES="libEGL.so.1:libegl1 libGL.so.1:libgl1 libfontconfig.so.1:libfontconfig1
libfreetype.so.6:libfreetype6 libdbus-1.so.3:libdbus-1-3 libglib-2.0.so.0:libglib2.0-0
libX11.so.6:libx11-6 libX11-xcb.so.1:libx11-xcb1 libxkbcommon.so.0:libxkbcommon0
libxkbcommon-x11.so.0:libxkbcommon-x11-0 libxcb-cursor.so.0:libxcb-cursor0
libxcb-icccm.so.4:libxcb-icccm4 libxcb-image.so.0:libxcb-image0 libxcb-keysyms.so.1:libxcb-keysyms1
libxcb-render-util.so.0:libxcb-render-util0 libxcb-shape.so.0:libxcb-shape0 libxcb-xkb.so.1:libxcb-xkb1"

fail() {
    echo "medvis install: $*" >&2
    echo "medvis install: nothing was installed." >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --python) python=$2; shift 2 ;;
        --bin-dir) bin_dir=$2; shift 2 ;;
        --share-dir) share_dir=$2; shift 2 ;;
        --no-desktop) desktop=0; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) fail "unknown option '$1' (see --help)" ;;
    esac
done
case "$prefix" in /*) ;; *) prefix="$PWD/$prefix" ;; esac
[ -f "$here/VERSION" ] && [ -d "$here/wheelhouse" ] || fail "run install.sh from the unpacked bundle (VERSION and wheelhouse/ are missing)."
version=$(cat "$here/VERSION")

# --- checks: nothing is written before all of them pass -----------------------------------

[ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ] ||
    fail "this bundle is for Linux on x86_64; this machine is $(uname -s) $(uname -m)."

if [ -z "$python" ]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null; then python=$(command -v "$candidate"); break; fi
    done
fi
[ -n "$python" ] && [ -x "$(command -v "$python")" ] ||
    fail "no Python found. medvis $version needs CPython 3.11: install python3.11 and python3.11-venv, or name one with --python."
found=$("$python" -c 'import platform, sys; print(platform.python_implementation(), "%d.%d" % sys.version_info[:2])' 2>/dev/null) ||
    fail "$python does not run."
[ "$found" = "CPython 3.11" ] ||
    fail "$python is $found, but the wheels in this bundle are built for CPython 3.11 (Linux x86_64). Install python3.11 and python3.11-venv and run ./install.sh --python python3.11, or install the .deb, which carries its own Python."
"$python" -c 'import ensurepip, venv' 2>/dev/null ||
    fail "$python has no venv module: install the Debian package python3.11-venv."
glibc=$("$python" -c 'import platform; print(platform.libc_ver()[1])')
"$python" -c "import sys; sys.exit(tuple(map(int, '$glibc'.split('.'))) < (2, 34))" ||
    fail "glibc $glibc is too old: the wheels need glibc 2.34 or newer (Debian 12, Ubuntu 22.04, RHEL 9)."

missing=""
# Read once: `ldconfig -p | grep -q` would fail now and then under pipefail (grep stops reading,
# ldconfig dies of SIGPIPE) and report a library that is there as missing.
libraries=$(/sbin/ldconfig -p 2>/dev/null || true)
for entry in $QT_LIBRARIES; do
    library=${entry%%:*} package=${entry##*:}
    if ! grep -q "[[:space:]]$library " <<< "$libraries"; then
        missing="$missing $package"
    fi
done
[ -z "$missing" ] ||
    fail "system libraries that Qt needs are missing. Install them first:  sudo apt-get install$missing"

writable_parent() {  # the nearest existing folder above $1 must be writable
    local path=$1
    while [ ! -e "$path" ]; do path=$(dirname "$path"); done
    [ -w "$path" ]
}
for target in "$prefix" "$bin_dir" $([ $desktop = 1 ] && echo "$share_dir"); do
    writable_parent "$target" ||
        fail "no write access to $target. Run as root (sudo ./install.sh) for a system-wide installation, or choose folders you own with --prefix, --bin-dir and --share-dir."
done

mkdir_parent=$prefix
while [ ! -e "$mkdir_parent" ]; do mkdir_parent=$(dirname "$mkdir_parent"); done
free_mib=$(df -Pm "$mkdir_parent" | awk 'NR == 2 {print $4}')
[ "$free_mib" -ge "$NEEDED_MIB" ] ||
    fail "$free_mib MiB free on $(df -P "$mkdir_parent" | awk 'NR == 2 {print $6}'); medvis needs about $NEEDED_MIB MiB."

# --- install into a staging folder, then switch over ----------------------------------------

[ -e "$prefix" ] && made_prefix=0 || made_prefix=1
mkdir -p "$prefix"
staging=$(mktemp -d "$prefix/.installing-XXXXXX")
chmod 755 "$staging"  # mktemp makes it private; every user runs the installed app
cleanup() {
    rm -rf "$staging"
    [ $made_prefix = 0 ] || rmdir "$prefix" 2>/dev/null || true
}
trap cleanup EXIT
trap 'fail "interrupted."' INT TERM

echo "Installing medvis $version into $prefix (Python: $python)"
"$python" -m venv "$staging/env" || fail "could not create a virtual environment with $python."
"$staging/env/bin/python" -m pip install --quiet --no-index --no-cache-dir --disable-pip-version-check \
    --find-links "$here/wheelhouse" --require-hashes -r "$here/requirements.txt" ||
    fail "pip could not install the wheels (see above)."
# The environment is run as env/bin/python -I -m medvis_desktop, which still works once the folder
# is renamed (console scripts would keep the staging path in their first line). -I: neither the
# current folder nor PYTHONPATH can put another medvis_desktop (a checkout, say) in its place.
"$staging/env/bin/python" -I -c "import medvis_desktop, sys; sys.exit(medvis_desktop.__version__ != '$version')" ||
    fail "the installed package does not import."
mkdir -p "$staging/share"
cp -r "$here/share/." "$staging/share/"
cp "$here/LICENSE" "$here/README.txt" "$here/uninstall.sh" "$staging/"

# From here on the new version replaces the old one; settings live elsewhere and stay.
if [ -e "$prefix/$version" ]; then
    rm -rf "$prefix/.previous-$version"
    mv "$prefix/$version" "$prefix/.previous-$version"
fi
mv "$staging" "$prefix/$version"
trap - EXIT
ln -sfn "$version" "$prefix/current.new" && mv -T "$prefix/current.new" "$prefix/current"
ln -sfn "current/uninstall.sh" "$prefix/uninstall.sh"
for old in "$prefix"/*/ "$prefix"/.previous-*/; do
    old=${old%/}
    [ -d "$old" ] && [ "$(basename "$old")" != "$version" ] && [ "$(basename "$old")" != current ] &&
        rm -rf "$old"
done

mkdir -p "$bin_dir"
cat > "$bin_dir/medvis" <<EOF
#!/bin/sh
# medvis, installed from the offline bundle into $prefix
exec "$prefix/current/env/bin/python" -I -m medvis_desktop "\$@"
EOF
chmod 755 "$bin_dir/medvis"
echo "$bin_dir/medvis" > "$prefix/installed-files"

if [ $desktop = 1 ]; then
    mkdir -p "$share_dir/applications" "$share_dir/mime/packages"
    sed "s|^Exec=medvis|Exec=$bin_dir/medvis|" "$prefix/current/share/medvis.desktop" \
        > "$share_dir/applications/medvis.desktop"
    cp "$prefix/current/share/medvis-nifti.xml" "$share_dir/mime/packages/"
    echo "$share_dir/applications/medvis.desktop" >> "$prefix/installed-files"
    echo "$share_dir/mime/packages/medvis-nifti.xml" >> "$prefix/installed-files"
    (cd "$prefix/current/share/icons" && find . -type f) | while read -r icon; do
        mkdir -p "$(dirname "$share_dir/icons/$icon")"
        cp "$prefix/current/share/icons/$icon" "$share_dir/icons/$icon"
        echo "$share_dir/icons/$icon" >> "$prefix/installed-files"
    done
    command -v update-desktop-database >/dev/null && update-desktop-database -q "$share_dir/applications" || true
    command -v update-mime-database >/dev/null && update-mime-database "$share_dir/mime" >/dev/null 2>&1 || true
    command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$share_dir/icons/hicolor" || true
fi

echo "medvis $version is installed: $bin_dir/medvis"
case ":$PATH:" in *":$bin_dir:"*) ;; *) echo "Add $bin_dir to your PATH to run it as 'medvis'." ;; esac
echo "Check it with:  medvis --version   and   medvis --demo ct"
echo "Remove it with: $prefix/uninstall.sh"
