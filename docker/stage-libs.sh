#!/bin/sh
# Shared libraries of the patterngate image (docker/Dockerfile, build stage).
#
#   stage-libs.sh BINARY DESTDIR        stage BINARY's libraries into DESTDIR
#   stage-libs.sh --try BINARY DESTDIR  run BINARY in a chroot that holds only
#                                       DESTDIR and the base's libraries
#
# Staging copies every shared library that BINARY loads (as `ldd` resolves
# them, dependencies of dependencies included) and that the runtime base,
# gcr.io/distroless/cc-debian12, does not provide (BASE_SONAMES below). Each
# one becomes a regular file named by its soname in the /usr/lib directory
# its real path is in, e.g. DESTDIR/usr/lib/x86_64-linux-gnu/libuv.so.1, so
# that `COPY --from=build DESTDIR/ /` puts it on the dynamic loader's default
# search path (no ld.so.cache entry, RPATH or LD_LIBRARY_PATH is needed).
#
# --try proves the staged set complete: it builds a throw-away root holding
# DESTDIR, the loader and the base-provided libraries BINARY loads (nothing
# else), and runs `BINARY --version` in it with LD_BIND_NOW=1, so a missing
# library or symbol fails. Needs chroot (root, or CAP_SYS_CHROOT as in
# `docker build`).
#
# tests/packaging/check_dockerfile.py runs this script on the built binary and
# compares BASE_SONAMES with its own list of the base's libraries.
set -eu

# Sonames that gcr.io/distroless/cc-debian12 provides: the Debian 12 packages
# libc6, libssl3 (base-debian12), libgcc-s1, libstdc++6 and libgomp1 (cc).
BASE_SONAMES="ld-linux-x86-64.so.2 ld-linux-aarch64.so.1 libc.so.6 libm.so.6
libmvec.so.1 libdl.so.2 libpthread.so.0 librt.so.1 libutil.so.1 libresolv.so.2
libanl.so.1 libnsl.so.1 libBrokenLocale.so.1 libc_malloc_debug.so.0
libthread_db.so.1 libnss_files.so.2 libnss_dns.so.2 libnss_compat.so.2
libnss_hesiod.so.2 libssl.so.3 libcrypto.so.3 libgcc_s.so.1 libstdc++.so.6
libgomp.so.1"

usage() { echo "usage: $0 [--try] BINARY DESTDIR" >&2; exit 2; }

try=0
if [ "${1:-}" = "--try" ]; then try=1; shift; fi
[ $# -eq 2 ] || usage
binary=$1 dest=$2

in_base() {
    for b in $BASE_SONAMES; do [ "$b" = "$1" ] && return 0; done
    return 1
}

# The loader's default directories are under /usr on a merged-/usr system;
# /lib and /lib64 may be symlinks in the runtime image, never copy onto them.
usr_path() {
    case $1 in
        /lib/*|/lib64/*) echo "/usr$1" ;;
        *) echo "$1" ;;
    esac
}

# "SONAME PATH" for every library ldd resolves; the loader line has no "=>"
# (its name is its path); linux-vdso has no file. Any "not found" fails.
libs=$(ldd "$binary") || { echo "$0: ldd $binary failed" >&2; exit 1; }
if printf '%s\n' "$libs" | grep -q 'not found'; then
    printf '%s\n' "$libs" >&2
    echo "$0: $binary has unresolved libraries" >&2
    exit 1
fi
pairs=$(printf '%s\n' "$libs" | awk '
    $2 == "=>" && $3 ~ /^\// { print $1, $3; next }
    $1 ~ /^\//               { n = $1; sub(/.*\//, "", n); print n, $1 }')

if [ $try -eq 0 ]; then
    mkdir -p "$dest"
    printf '%s\n' "$pairs" | while read -r soname path; do
        [ -n "$soname" ] || continue
        in_base "$soname" && continue
        dir=$(usr_path "$(dirname "$(readlink -f "$path")")")
        mkdir -p "$dest$dir"
        cp -L "$path" "$dest$dir/$soname"
        echo "staged $dir/$soname"
    done
    exit 0
fi

# --try: DESTDIR + the base-provided libraries BINARY loads + BINARY.
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
cp -a "$dest/." "$root/"
printf '%s\n' "$pairs" | while read -r soname path; do
    [ -n "$soname" ] || continue
    in_base "$soname" || continue
    case $soname in
        ld-linux*) dir=$(dirname "$path") ;;   # the ELF interpreter's own path
        *) dir=$(usr_path "$(dirname "$(readlink -f "$path")")") ;;
    esac
    mkdir -p "$root$dir"
    cp -L "$path" "$root$dir/$soname"
done
cp -L "$binary" "$root/patterngate"
LD_BIND_NOW=1 chroot "$root" /patterngate --version
echo "ok: $binary runs with the staged libraries and the base's only"
