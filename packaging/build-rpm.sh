#!/bin/sh
# Builds the binary RPM vdsm-hook-sriov-passthrough from this git tree, here
# or on Fedora/EL, and prints the path of the RPM on standard output.
#
#   packaging/build-rpm.sh [--release N] [--head] [OUTDIR]
#
# The source tarball holds the files git tracks, as they are in the working
# tree (uncommitted edits included, untracked files left out); with --head,
# the commit HEAD instead (git archive; the spec and version come from HEAD
# too). rpmbuild works in a private _topdir under $SRIOVPT_RPM_WORKDIR (default: build-rpm/ at the
# top of the tree) and runs with --nodeps: Debian's rpm database knows none of
# the Fedora packages in BuildRequires. The RPM is copied to OUTDIR (default:
# the work directory).
set -eu

usage() {
    echo "usage: $0 [--release N] [--head] [OUTDIR]" >&2
    exit 2
}

release=1
from_head=no
outdir=
while [ $# -gt 0 ]; do
    case $1 in
        --release) [ $# -ge 2 ] || usage; release=$2; shift 2 ;;
        --release=*) release=${1#--release=}; shift ;;
        --head) from_head=yes; shift ;;
        -h|--help) usage ;;
        -*) usage ;;
        *) [ -z "$outdir" ] || usage; outdir=$1; shift ;;
    esac
done

top=$(cd "$(dirname "$0")/.." && pwd)
name=vdsm-hook-sriov-passthrough
# source_file PATH: a file of the tree, from the working tree or HEAD.
source_file() {
    if [ "$from_head" = yes ]; then git -C "$top" show "HEAD:$1"; else cat "$top/$1"; fi
}
version=$(source_file CMakeLists.txt |
    sed -n 's/^project(vdsm-hook-sriov-passthrough VERSION \([0-9][0-9.]*\).*/\1/p')
if [ -z "$version" ]; then
    echo "$0: cannot find the version in project() of $top/CMakeLists.txt" >&2
    exit 1
fi
work=${SRIOVPT_RPM_WORKDIR:-$top/build-rpm}
topdir=$work/rpmbuild
outdir=${outdir:-$work}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

rm -rf "$topdir"
mkdir -p "$topdir/SOURCES" "$topdir/SPECS"

tarball=$topdir/SOURCES/$name-$version.tar.gz
if [ "$from_head" = yes ]; then
    git -C "$top" archive --format=tar.gz --prefix="$name-$version/" -o "$tarball" HEAD
else
    # Every tracked file that exists in the working tree.
    (
        cd "$top"
        git ls-files -z | xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
            tar --null -T - --transform "s,^,$name-$version/," --owner=0 --group=0 -czf "$tarball"
    )
fi
source_file "packaging/$name.spec" >"$topdir/SPECS/$name.spec"

# Fixes for Debian's rpm, which builds no debuginfo package: without one the
# /usr/lib/.build-id links would land in our package (and clash with any other
# package's), and its brp-compress needs bash (it uses 'read -d').
set --
if [ -e /etc/debian_version ]; then
    set -- --define "_build_id_links none" \
        --define "__brp_compress bash %{_rpmconfigdir}/brp-compress %{?_prefix}"
fi
log=$topdir/rpmbuild.log
if ! rpmbuild -bb --nodeps \
        --define "_topdir $topdir" \
        --define "pkg_version $version" \
        --define "pkg_release $release" \
        "$@" \
        "$topdir/SPECS/$name.spec" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "$0: rpmbuild failed; the whole log is $log" >&2
    exit 1
fi

rpm_file=$(find "$topdir/RPMS" -name "$name-$version-$release*.rpm" | head -n 1)
if [ -z "$rpm_file" ]; then
    echo "$0: rpmbuild made no $name RPM; see $log" >&2
    exit 1
fi
if [ "$(dirname "$rpm_file")" != "$outdir" ]; then
    cp "$rpm_file" "$outdir/"
fi
echo "$outdir/$(basename "$rpm_file")"
