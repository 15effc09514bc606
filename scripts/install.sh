#!/usr/bin/env bash
# Installs rateclust as a C library: the header, the shared library under its versioned name with a soname
# and the usual symlinks, the static library, and a pkg-config file. After
#
#   scripts/install.sh --prefix /usr/local          (or any prefix; no root needed for your own)
#
# a C program builds with `cc app.c $(pkg-config --cflags --libs rateclust)` (PKG_CONFIG_PATH=PREFIX/lib/pkgconfig
# for a prefix pkg-config does not search). Options:
#   --prefix DIR      where to install (required): DIR/include, DIR/lib, DIR/lib/pkgconfig
#   --from DIR        install the libraries already built in DIR instead of running `cargo build --release`
#
# The soname is librateclust.so.MAJOR.MINOR for 0.x versions (any 0.x minor release may break the ABI) and
# librateclust.so.MAJOR from 1.0; it is set on the installed copy with patchelf (Debian: patchelf), so
# ordinary cargo builds are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="" from=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --from) from="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$prefix" ] || { echo "install.sh: --prefix DIR is required" >&2; exit 2; }
command -v patchelf >/dev/null || { echo "install.sh: patchelf is needed to set the soname (Debian/Ubuntu: apt-get install patchelf)" >&2; exit 1; }
if [ -z "$from" ]; then
  cargo build --release --lib
  from=target/release
fi
for f in librateclust.so librateclust.a; do
  [ -e "$from/$f" ] || { echo "install.sh: $from/$f not found (build the library first)" >&2; exit 1; }
done
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
major=${version%%.*}
rest=${version#*.}
minor=${rest%%.*}
if [ "$major" = 0 ]; then soversion="0.$minor"; else soversion="$major"; fi
mkdir -p "$prefix/include" "$prefix/lib/pkgconfig"
prefix=$(cd "$prefix" && pwd)
install -m 644 include/rateclust.h "$prefix/include/rateclust.h"
install -m 755 "$from/librateclust.so" "$prefix/lib/librateclust.so.$version"
patchelf --set-soname "librateclust.so.$soversion" "$prefix/lib/librateclust.so.$version"
ln -sfn "librateclust.so.$version" "$prefix/lib/librateclust.so.$soversion"
ln -sfn "librateclust.so.$soversion" "$prefix/lib/librateclust.so"
install -m 644 "$from/librateclust.a" "$prefix/lib/librateclust.a"
tmp="$prefix/lib/pkgconfig/.rateclust.pc.tmp$$"
cat > "$tmp" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: rateclust
Description: Image clustering by rate reduction (CPP) on CLIP, with a C ABI
Version: $version
Libs: -L\${libdir} -lrateclust
Libs.private: -lpthread -ldl -lm -lrt -lutil -lgcc_s
Cflags: -I\${includedir}
PC
mv "$tmp" "$prefix/lib/pkgconfig/rateclust.pc"
echo "installed rateclust $version into $prefix (soname librateclust.so.$soversion); pkg-config file: $prefix/lib/pkgconfig/rateclust.pc"
