#!/usr/bin/env bash
# Removes medvis as install.sh put it: the launcher, the desktop entry, icons and MIME type,
# and the installation folder. The user's settings and recent files (~/.config/medvis) stay.
set -euo pipefail

prefix=$(dirname "$(dirname "$(readlink -f "$0")")")
[ -f "$prefix/installed-files" ] && [ -L "$prefix/current" ] ||
    { echo "medvis uninstall: $prefix is not a medvis installation" >&2; exit 1; }
while read -r file; do
    rm -f "$file"
done < "$prefix/installed-files"
share_dirs=$(sed -n 's|/applications/medvis.desktop$||p' "$prefix/installed-files")
rm -rf "$prefix"
for share in $share_dirs; do
    command -v update-desktop-database >/dev/null && update-desktop-database -q "$share/applications" || true
    command -v update-mime-database >/dev/null && update-mime-database "$share/mime" >/dev/null 2>&1 || true
done
echo "medvis is removed from $prefix; your settings in ~/.config/medvis are kept."
