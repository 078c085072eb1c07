#!/usr/bin/env bash
# The frozen app (PyInstaller onedir) as a Debian package: OUT_DIR/medvis_VERSION_amd64.deb.
#   packaging/deb/build_deb.sh FROZEN_DIR VERSION OUT_DIR
# PYTHON: the Python the app was frozen from (PySide6 renders the icons, its metadata gives the
# licence texts); COMPRESSION (default zstd), LEVEL (default 3); MAINTAINER.
# /opt/medvis holds the app, /usr/bin/medvis links to it; the desktop entry, the NIfTI MIME type,
# the icons and the licence texts go where Debian keeps them. Depends: every shared library a
# bundled ELF file needs that is not in the bundle, as the Debian package that provides it here.
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 FROZEN_DIR VERSION OUT_DIR" >&2
    exit 2
fi
frozen=$(cd "$1" && pwd) version=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}
compression=${COMPRESSION:-zstd} level=${LEVEL:-3}
maintainer=${MAINTAINER:-"medvis developers <medvis@example.org>"}
[ -x "$frozen/medvis" ] || { echo "$frozen/medvis: not a frozen medvis" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/medvis"
doc="$root/usr/share/doc/medvis"
mkdir -p "$root/opt" "$root/usr/bin" "$root/usr/share/applications" "$root/usr/share/mime/packages" \
    "$root/usr/share/man/man1" "$doc/licenses" "$root/DEBIAN"

cp -a "$frozen" "$root/opt/medvis"
ln -s ../../opt/medvis/medvis "$root/usr/bin/medvis"
install -m 644 "$repo/packaging/linux/medvis.desktop" "$root/usr/share/applications/"
install -m 644 "$repo/packaging/linux/medvis-nifti.xml" "$root/usr/share/mime/packages/"
QT_QPA_PLATFORM=offscreen "$python" "$repo/packaging/linux/render_icons.py" "$root/usr/share/icons"
gzip -9n < "$here/medvis.1" > "$root/usr/share/man/man1/medvis.1.gz"

# Licence texts: medvis's, every bundled Python distribution's (from its metadata), CPython's,
# the demo data's.
install -m 644 "$here/copyright" "$doc/copyright"
install -m 644 "$repo/LICENSE" "$doc/licenses/medvis.LICENSE"
"$python" "$here/bundled_licences.py" "$frozen" "$doc/licenses" > "$stage/bundled.txt"
cp "$repo"/resources/demo/*.copyright "$repo"/resources/demo/*.LICENSE.txt "$repo/resources/demo/GPL-2.txt" \
    "$doc/licenses/"
{ echo "Python distributions and their licences bundled in /opt/medvis (name version licence):"
  cat "$stage/bundled.txt"; } > "$doc/licenses/BUNDLED.txt"
printf 'medvis (%s) unstable; urgency=medium\n\n  * Frozen build of medvis %s.\n\n -- %s  %s\n' \
    "$version" "$version" "$maintainer" "$(date -R)" | gzip -9n > "$doc/changelog.gz"

# Depends, from the ELF files: what they need that the bundle does not carry.
elfs=$(find "$root/opt/medvis" -type f \( -name '*.so' -o -name '*.so.*' -o -perm -u+x \) \
    -exec sh -c 'for f; do [ "$(head -c4 "$f")" = "$(printf "\177ELF")" ] && echo "$f"; done' sh {} +)
bundled=$(find "$root/opt/medvis" \( -type f -o -type l \) -name '*.so*' -printf '%f\n' | sort -u)
needed=$(echo "$elfs" | xargs readelf -d 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u)
missing=$(comm -23 <(echo "$needed") <(echo "$bundled"))
packages=""
for soname in $missing; do
    path=$(ldconfig -p | awk -v s="$soname" '$1 == s && /x86-64/ && !found {print $NF; found = 1}')
    [ -n "$path" ] || { echo "$soname is needed by the bundle but not installed here" >&2; exit 1; }
    owner=""
    for candidate in "$path" "$(readlink -f "$path")" "${path#/usr}" "/usr$path"; do
        owner=$(dpkg-query -S "$candidate" 2>/dev/null | awk -F: 'NR == 1 {print $1}') && [ -n "$owner" ] && break
    done
    [ -n "$owner" ] || { echo "no Debian package provides $path ($soname)" >&2; exit 1; }
    packages+="$owner"$'\n'
done
# The xcb platform plugin's libraries: needed (the list above has them when the bundle leaves
# them out, as medvis.spec does); listed here too so that a build bundling them still depends.
floor="libegl1 libgl1 libfontconfig1 libfreetype6 libdbus-1-3 libglib2.0-0 libx11-6 libx11-xcb1
libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
libxcb-render-util0 libxcb-render0 libxcb-shape0 libxcb-util1 libxcb-xkb1 libxcb-randr0
libxcb-xfixes0 libxcb-sync1 libxcb-shm0"
glibc=$(echo "$elfs" | xargs objdump -T 2>/dev/null | grep -o 'GLIBC_2\.[0-9]*' | sort -uV | tail -n1)
depends=$(printf '%s\n' $packages $floor | grep -v '^libc6$' | sort -u | paste -sd, | sed 's/,/, /g')
depends="libc6 (>= ${glibc#GLIBC_}), $depends"
echo "Depends: $depends"

install -m 755 "$here/postinst" "$here/postrm" "$root/DEBIAN/"
installed_kib=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@INSTALLED_SIZE@/$installed_kib/" -e "s/@DEPENDS@/$depends/" \
    -e "s/@MAINTAINER@/$maintainer/" "$here/control" > "$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    > "$root/DEBIAN/md5sums"
chmod -R u+rwX,go+rX,go-w "$root"

mkdir -p "$out"
# zstd -3: on 2 cores about 4x faster than gzip -9 (dpkg's gzip default) for the ~1.9 GB tree,
# and smaller (see the measurements in the report / README).
dpkg-deb --root-owner-group "-Z$compression" "-z$level" --build "$root" "$out/medvis_${version}_amd64.deb"
