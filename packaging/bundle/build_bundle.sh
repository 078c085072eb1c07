#!/usr/bin/env bash
# The offline bundle: medvis-VERSION-linux-x86_64.tar.gz with every wheel medvis needs on
# CPython 3.11 / Linux x86_64 (exactly the versions and hashes of packaging/requirements.lock),
# install.sh, the desktop entry, icons and licences. Installing it needs no network.
#   packaging/bundle/build_bundle.sh WHEEL VERSION OUT_DIR   (PYTHON: the venv's python)
set -euo pipefail

wheel=$1 version=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}
name="medvis-$version-linux-x86_64"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/$name"
mkdir -p "$root/wheelhouse" "$root/share"

# Wheels only, for the target platform (CPython 3.11, glibc 2.34 or older manylinux tags)
# whatever machine builds the bundle, each checked against the lock's hashes.
platforms=()
for minor in $(seq 34 -1 17); do platforms+=(--platform "manylinux_2_${minor}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
"$python" -m pip download --quiet --no-deps --require-hashes --only-binary=:all: "${platforms[@]}" \
    --python-version 3.11 --implementation cp --abi cp311 \
    -r "$repo/packaging/requirements.lock" -d "$root/wheelhouse"
cp "$wheel" "$root/wheelhouse/"

# One requirements file for install.sh: the lock plus medvis's own wheel, all hash-checked.
wheel_hash=$(sha256sum "$wheel" | cut -d' ' -f1)
{
    grep -v '^#' "$repo/packaging/requirements.lock"
    echo "medvis-desktop==$version --hash=sha256:$wheel_hash"
} > "$root/requirements.txt"

cp "$here/install.sh" "$here/uninstall.sh" "$root/"
cp "$here/INSTALL.txt" "$root/README.txt"
cp "$repo/LICENSE" "$root/LICENSE"
cp "$repo/packaging/linux/medvis.desktop" "$repo/packaging/linux/medvis-nifti.xml" "$root/share/"
QT_QPA_PLATFORM=offscreen "$python" "$repo/packaging/linux/render_icons.py" "$root/share/icons"
echo "$version" > "$root/VERSION"

mkdir -p "$out"
# The wheels are compressed already: the fastest gzip level loses almost nothing.
tar -C "$stage" -cf - "$name" | gzip -1 > "$out/$name.tar.gz.partial"
mv "$out/$name.tar.gz.partial" "$out/$name.tar.gz"
echo "$out/$name.tar.gz"
