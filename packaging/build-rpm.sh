#!/bin/sh
# Builds the binary RPM vdsm-hook-sriov-passthrough from this git tree, here
# or on Fedora/EL, and prints the path of the RPM on standard output.
#
#   packaging/build-rpm.sh [--release N] [OUTDIR]
#
# The source tarball holds the files git tracks, as they are in the working
# tree (uncommitted edits included, untracked files left out). rpmbuild works
# in a private _topdir under $SRIOVPT_RPM_WORKDIR (default: build-rpm/ at the
# top of the tree) and runs with --nodeps: Debian's rpm database knows none of
# the Fedora packages in BuildRequires. The RPM is copied to OUTDIR (default:
# the work directory).
set -eu

usage() {
    echo "usage: $0 [--release N] [OUTDIR]" >&2
    exit 2
}

release=1
outdir=
while [ $# -gt 0 ]; do
    case $1 in
        --release) [ $# -ge 2 ] || usage; release=$2; shift 2 ;;
        --release=*) release=${1#--release=}; shift ;;
        -h|--help) usage ;;
        -*) usage ;;
        *) [ -z "$outdir" ] || usage; outdir=$1; shift ;;
    esac
done

top=$(cd "$(dirname "$0")/.." && pwd)
name=vdsm-hook-sriov-passthrough
version=$(sed -n 's/^project(vdsm-hook-sriov-passthrough VERSION \([0-9][0-9.]*\).*/\1/p' "$top/CMakeLists.txt")
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

# The tarball: every tracked file that exists in the working tree.
tarball=$topdir/SOURCES/$name-$version.tar.gz
(
    cd "$top"
    git ls-files -z | xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
        tar --null -T - --transform "s,^,$name-$version/," --owner=0 --group=0 -czf "$tarball"
)
cp "$top/packaging/$name.spec" "$topdir/SPECS/"

# Debian's rpmbuild lacks Fedora's debuginfo machinery; without a debuginfo
# package the build-id links would clash with any other package's.
log=$topdir/rpmbuild.log
if ! rpmbuild -bb --nodeps \
        --define "_topdir $topdir" \
        --define "pkg_version $version" \
        --define "pkg_release $release" \
        --define "debug_package %{nil}" \
        --define "_build_id_links none" \
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
