#!/bin/bash
# Tests the RPM for real: its contents, then install, upgrade and erase in a
# scratch root with the rpm of this machine (Debian's is fine).
#
#   packaging/test-rpm.sh [--head] [RPM]
#
# Without RPM, builds one with packaging/build-rpm.sh (--head: from the commit
# HEAD rather than the working tree). The upgrade needs a
# second package with a higher release: it is always built here, from the
# same tree. Work files go to $SRIOVPT_RPM_WORKDIR (default: build-rpm/ at the
# top of the tree). Needs root: rpm installs files owned by root and vdsm, and
# the package's %post runs chrooted in the scratch root.
#
# Prints "ok - ..." or "not ok - ..." per check and a summary line; exits
# non-zero when any check failed.
set -u -o pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
name=vdsm-hook-sriov-passthrough
conf=/etc/vdsm/hooks/sriov_passthrough.conf
tmpfiles=/usr/lib/tmpfiles.d/$name.conf
state_dir=/run/vdsm/hooks/sriov_passthrough
hooks_dir=/usr/libexec/vdsm/hooks
unit_dir=/usr/lib/systemd/system
gc_service=$unit_dir/sriov-passthrough-gc.service
gc_timer=$unit_dir/sriov-passthrough-gc.timer
vf_helper=/usr/libexec/sriov-passthrough/sriov-passthrough-vf-helper
vf_policy=/etc/vdsm/hooks/sriov_passthrough_vf_helper.conf
work=${SRIOVPT_RPM_WORKDIR:-$top/build-rpm}/test
export SRIOVPT_RPM_WORKDIR=$work

passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $*"; failed=$((failed + 1)); }
# check DESCRIPTION COMMAND...: one check, passed when COMMAND succeeds.
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
bail_out() {
    echo "not ok - $*"
    failed=$((failed + 1))
    echo "$passed passed, $failed failed (stopped early)"
    exit 1
}

if [ "$(id -u)" != 0 ]; then
    echo "$0: must run as root (rpm --root installs files owned by root and vdsm)" >&2
    exit 2
fi

root=
proc_mounted=no
cleanup() {
    if [ "$proc_mounted" = yes ]; then
        umount "$root/proc" || { echo "$0: cannot unmount $root/proc; left $root" >&2; return; }
    fi
    if [ -n "$root" ]; then rm -rf --one-file-system "$root"; fi
}
trap cleanup EXIT

mkdir -p "$work"
source_opt=
if [ "${1:-}" = --head ]; then
    source_opt=--head
    shift
fi
if [ -n "$source_opt" ]; then
    cmakelists=$(git -C "$top" show HEAD:CMakeLists.txt)
    hook_point_list=$(git -C "$top" show HEAD:common/hook_points.def)
else
    cmakelists=$(cat "$top/CMakeLists.txt")
    hook_point_list=$(cat "$top/common/hook_points.def")
fi
version=$(sed -n 's/^project(vdsm-hook-sriov-passthrough VERSION \([0-9][0-9.]*\).*/\1/p' <<<"$cmakelists")
hook_points=$(sed -n 's/^HOOK_POINT(\([a-z_]*\),.*/\1/p' <<<"$hook_point_list")
[ -n "$version" ] && [ -n "$hook_points" ] ||
    bail_out "read the version from $top/CMakeLists.txt and the hook points from common/hook_points.def"

# --- The packages ------------------------------------------------------------

if [ $# -ge 1 ]; then
    rpm1=$1
else
    rpm1=$("$top/packaging/build-rpm.sh" $source_opt --release 1 "$work") || bail_out "build the RPM"
    ok "build-rpm.sh builds $(basename "$rpm1")"
fi
[ -f "$rpm1" ] || bail_out "RPM $rpm1 exists"
q() { rpm -qp "$@" "$rpm1" 2>/dev/null; }

release1=$(q --qf '%{RELEASE}')
# rpm compares "1.1" > "1", "1.fc39.1" > "1.fc39".
release2=$release1.1
rpm2=$("$top/packaging/build-rpm.sh" $source_opt --release "$release2" "$work") ||
    bail_out "build the upgrade RPM (release $release2)"
ok "build-rpm.sh builds the upgrade $(basename "$rpm2")"

# --- What the package holds -----------------------------------------------------

check "package name is $name" [ "$(q --qf '%{NAME}')" = "$name" ]
check "package version is the CMake project version $version" [ "$(q --qf '%{VERSION}')" = "$version" ]

listing=$(q -lv)
# mode_owner PATH: "MODE OWNER GROUP" of PATH in the package.
mode_owner() { awk -v p="$1" '$NF == p { print $1, $3, $4 }' <<<"$listing"; }

n=0
bad=
for hp in $hook_points; do
    n=$((n + 1))
    got=$(mode_owner "$hooks_dir/$hp/50_sriov_passthrough")
    [ "$got" = "-rwxr-xr-x root root" ] || bad="$bad $hp($got)"
done
check "all $n hooks of common/hook_points.def at $hooks_dir/<hook_point>/50_sriov_passthrough, 0755 root:root" [ -z "$bad" ]
[ -z "$bad" ] || echo "#   wrong or missing:$bad"
check "no other hook in the package" \
    [ "$(q -l | grep -c "^$hooks_dir/")" = "$n" ]
check "/usr/bin/sriov-passthrough, 0755 root:root" \
    [ "$(mode_owner /usr/bin/sriov-passthrough)" = "-rwxr-xr-x root root" ]
check "$conf, 0644 root:root" [ "$(mode_owner $conf)" = "-rw-r--r-- root root" ]
check "rpm -qc lists $conf and $vf_policy (and only them)" \
    [ "$(q -c | sort)" = "$(printf '%s\n' "$conf" "$vf_policy" | sort)" ]
fileflags=$(q --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]')
check "$conf is %config(noreplace)" grep -qx "$conf cn" <<<"$fileflags"
check "$vf_helper, 0755 root:root, file capability cap_net_admin=ep (not setuid)" \
    eval '[ "$(mode_owner $vf_helper)" = "-rwxr-xr-x root root" ] &&
          grep -qx "$vf_helper cap_net_admin=ep" <(q --qf "[%{FILENAMES} %{FILECAPS}\n]")'
check "$vf_policy, 0644 root:root, %config(noreplace)" \
    eval '[ "$(mode_owner $vf_policy)" = "-rw-r--r-- root root" ] && grep -qx "$vf_policy cn" <<<"$fileflags"'
check "$tmpfiles, 0644 root:root" [ "$(mode_owner $tmpfiles)" = "-rw-r--r-- root root" ]
check "state dir $state_dir is a %ghost directory 0750 vdsm:kvm" \
    eval '[ "$(mode_owner $state_dir)" = "drwxr-x--- vdsm kvm" ] && grep -qx "$state_dir g" <<<"$fileflags"'
check "man page sriov-passthrough.8 in /usr/share/man/man8" \
    grep -Eq '^/usr/share/man/man8/sriov-passthrough\.8(\.gz|\.bz2|\.xz|\.zst)?$' <(q -l)
check "README.md is %doc" grep -Eq '^/usr/share/doc/[^ ]*/README\.md d$' <<<"$fileflags"
check "LICENSE is %license" grep -Eq '^/usr/share/licenses/[^ ]*/LICENSE l$' <<<"$fileflags"
check "every file is owned by root except the state dir" \
    [ -z "$(awk -v s="$state_dir" '$NF != s && ($3 != "root" || $4 != "root")' <<<"$listing")" ]
check "Requires: vdsm" grep -qx 'vdsm' <(q -R)
check "Conflicts: vdsm-hook-sriov" grep -qx 'vdsm-hook-sriov' <(q --conflicts)
check "%post applies the tmpfiles.d entry" \
    grep -q "systemd-tmpfiles --create $tmpfiles" <(q --scripts)
check "$gc_service and $gc_timer, 0644 root:root" \
    eval '[ "$(mode_owner $gc_service)" = "-rw-r--r-- root root" ] && [ "$(mode_owner $gc_timer)" = "-rw-r--r-- root root" ]'
check "%post enables the gc timer at the first install, %preun disables it at erase" \
    eval 'grep -q "systemctl --no-reload enable sriov-passthrough-gc.timer" <(q --scripts) &&
          grep -q "systemctl --no-reload disable --now sriov-passthrough-gc.timer" <(q --scripts)'

# --- Install into a scratch root ---------------------------------------------------

root=$(mktemp -d "$work/root.XXXXXX")
log=$work/rpm.log
: >"$log"
r() { rpm --root "$root" --dbpath /var/lib/rpm "$@" 2>>"$log"; }

# A root with the users of an oVirt host and just enough for the scriptlet:
# /bin/sh and systemd-tmpfiles with their libraries, and /proc.
mkdir -p "$root/etc" "$root/proc"
printf 'root:x:0:0:root:/root:/bin/sh\nvdsm:x:36:36:Node Virtualization Manager:/var/lib/vdsm:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nkvm:x:36:vdsm\n' >"$root/etc/group"
for program in /bin/sh "$(command -v systemd-tmpfiles)"; do
    for file in "$program" $(ldd "$program" | grep -o '/[^ ]*'); do
        mkdir -p "$root$(dirname "$file")"
        cp -L "$file" "$root$file"
    done
done
if mount -t proc proc "$root/proc" 2>/dev/null; then proc_mounted=yes; fi
# Every file of the root but the rpm database and /proc, for the end.
files_in_root() { (cd "$root" && find . \( -path ./var/lib/rpm -o -path ./proc \) -prune -o ! -type d -print | sort); }
before=$(files_in_root)

r --initdb || bail_out "rpm --initdb in the scratch root (see $log)"
r --nodeps -i "$rpm1" >>"$log"
check "rpm -i into the scratch root" r -q "$name" --quiet
check "no scriptlet failed during install" eval '! grep -q "scriptlet failed" "$log"'
check "rpm -V: installed files match the package" eval 'r -V --nodeps "$name" >>"$log"'

bad=
for hp in $hook_points; do
    f=$root$hooks_dir/$hp/50_sriov_passthrough
    [ "$(stat -c '%a %U %G' "$f" 2>/dev/null)" = "755 root root" ] || bad="$bad $hp"
done
check "installed hooks are 0755 root:root" [ -z "$bad" ]
# scripts/bootstrap.sh installs getcap (libcap2-bin): missing, it fails.
if command -v getcap >/dev/null; then
    check "installed $vf_helper has the file capability cap_net_admin=ep (getcap)" \
        [ "$(getcap "$root$vf_helper" 2>&1)" = "$root$vf_helper cap_net_admin=ep" ]
else
    not_ok "getcap is installed (scripts/bootstrap.sh installs libcap2-bin)"
fi

if [ "$proc_mounted" = yes ]; then
    check "%post created $state_dir, 0750 vdsm:kvm" \
        [ "$(stat -c '%a %u %g' "$root$state_dir" 2>/dev/null)" = "750 36 36" ]
else
    echo "# cannot mount /proc in the scratch root: %post cannot run systemd-tmpfiles; checking the entry directly"
    systemd-tmpfiles --root="$root" --create "$root$tmpfiles" >>"$log" 2>&1
    check "the tmpfiles.d entry creates $state_dir, 0750 vdsm:kvm" \
        [ "$(stat -c '%a %u %g' "$root$state_dir" 2>/dev/null)" = "750 36 36" ]
fi

# The installed programs, run from the scratch root with this host's
# libraries, and the installed sample configuration.
export SRIOV_PASSTHROUGH_CONF=$root$conf
cat >"$work/plain.xml" <<'EOF'
<?xml version="1.0" encoding="utf-8"?>
<domain type="kvm" xmlns:ovirt-vm="http://ovirt.org/vm/1.0">
  <name>plain</name>
  <uuid>3f6a1a2e-5b7c-4d8e-9f00-112233445566</uuid>
  <devices>
    <interface type="bridge">
      <model type="virtio"/>
      <source bridge="ovirtmgmt"/>
      <mac address="00:1a:4a:16:01:50"/>
    </interface>
  </devices>
  <metadata>
    <ovirt-vm:vm/>
  </metadata>
</domain>
EOF
sed -e 's/ovirtmgmt/sriovnet/' \
    -e 's|<ovirt-vm:vm/>|<ovirt-vm:vm><ovirt-vm:device mac_address="00:1a:4a:16:01:50"><ovirt-vm:custom><ovirt-vm:passthrough>true</ovirt-vm:passthrough></ovirt-vm:custom></ovirt-vm:device></ovirt-vm:vm>|' \
    "$work/plain.xml" >"$work/passthrough.xml"

hook=$root$hooks_dir/before_vm_start/50_sriov_passthrough
cp "$work/plain.xml" "$work/domxml"
_hook_domxml=$work/domxml vmId=3f6a1a2e-5b7c-4d8e-9f00-112233445566 "$hook" >/dev/null 2>"$work/hook.err"
status=$?
check "installed before_vm_start hook: no passthrough vNIC -> exit 0, XML unchanged" \
    eval '[ $status = 0 ] && cmp -s "$work/plain.xml" "$work/domxml"'
cp "$work/passthrough.xml" "$work/domxml"
_hook_domxml=$work/domxml vmId=3f6a1a2e-5b7c-4d8e-9f00-112233445566 "$hook" >/dev/null 2>"$work/hook.err"
status=$?
check "installed hook reads the sample configuration: passthrough vNIC, no PF pool -> exit 2, XML unchanged" \
    eval '[ $status = 2 ] && cmp -s "$work/passthrough.xml" "$work/domxml" && grep -q "no PF pool configured for network sriovnet" "$work/hook.err"'
[ $status = 2 ] || sed 's/^/#   /' "$work/hook.err"

cli=$root/usr/bin/sriov-passthrough
check "installed sriov-passthrough --version prints $version" \
    grep -qF "$version" <("$cli" --version 2>&1)
check "installed sriov-passthrough --help exits 0" eval '"$cli" --help >/dev/null 2>&1'
check "installed $vf_helper without a command exits 2 with its usage" \
    eval '"$root$vf_helper" >/dev/null 2>"$work/helper.err"; [ $? = 2 ] && grep -q "usage: " "$work/helper.err"'
if command -v groff >/dev/null; then
    man_page=$(ls "$root"/usr/share/man/man8/sriov-passthrough.8*)
    check "man page renders without groff warnings" \
        eval '[ -z "$(zcat -f "$man_page" | groff -man -Tutf8 -ww -z 2>&1)" ]'
fi

# The gc timer and its service, as installed.
check "the gc service runs /usr/bin/sriov-passthrough gc once per start, as vdsm:kvm (the hooks' user)" \
    eval 'grep -qx "ExecStart=/usr/bin/sriov-passthrough gc" "$root$gc_service" &&
          grep -qx "Type=oneshot" "$root$gc_service" &&
          grep -qx "User=vdsm" "$root$gc_service" && grep -qx "Group=kvm" "$root$gc_service"'
check "the gc timer starts it after boot and then periodically, wanted by timers.target" \
    eval 'grep -q "^OnBootSec=" "$root$gc_timer" && grep -q "^OnUnitActiveSec=" "$root$gc_timer" &&
          grep -qx "WantedBy=timers.target" "$root$gc_timer"'
# systemd-analyze verify, offline: in a root of its own holding the two
# units, the command they start and this machine's targets they order against.
if command -v systemd-analyze >/dev/null && ls /usr/lib/systemd/system/*.target >/dev/null 2>&1; then
    vroot=$(mktemp -d "$work/verify.XXXXXX")
    mkdir -p "$vroot$unit_dir" "$vroot/usr/bin"
    cp /usr/lib/systemd/system/*.target "$vroot$unit_dir/"
    cp "$root$gc_service" "$root$gc_timer" "$vroot$unit_dir/"
    cp "$root/usr/bin/sriov-passthrough" "$vroot/usr/bin/"
    verify=$(systemd-analyze --man=no --root="$vroot" verify "$vroot$gc_service" "$vroot$gc_timer" 2>&1)
    status=$?
    check "systemd-analyze verify: the gc units load without a warning" eval '[ $status = 0 ] && [ -z "$verify" ]'
    [ -z "$verify" ] || sed 's/^/#   /' <<<"$verify"
    rm -rf "$vroot"
else
    echo "# systemd-analyze or this machine's systemd targets missing: the gc units are not verified"
fi

# --- Upgrade, keeping a modified configuration --------------------------------------

printf '\n# changed by the administrator\nlock_timeout = 20\n' >>"$root$conf"
modified=$(cat "$root$conf")
r --nodeps -U "$rpm2" >>"$log"
check "rpm -U to release $release2" [ "$(r -q --qf '%{RELEASE}' "$name")" = "$release2" ]
check "only one version installed after the upgrade" [ "$(r -q "$name" | wc -l)" = 1 ]
check "upgrade kept the modified $conf" eval '[ "$(cat "$root$conf")" = "$modified" ]'
check "upgrade made no .rpmnew (the packaged file did not change)" [ ! -e "$root$conf.rpmnew" ]
check "no scriptlet failed during upgrade" eval '! grep -q "scriptlet failed" "$log"'

# --- Erase -----------------------------------------------------------------------

r -e "$name" >>"$log"
check "rpm -e" eval '! r -q "$name" --quiet'
check "erase saved the modified configuration as $conf.rpmsave" \
    eval '[ "$(cat "$root$conf.rpmsave" 2>/dev/null)" = "$modified" ]'
left=
while read -r path; do
    if [ -e "$root$path" ]; then left="$left $path"; fi
done < <(rpm -qlp "$rpm2" 2>/dev/null)
check "erase removed every file of the package (state dir included)" [ -z "$left" ]
[ -z "$left" ] || echo "#   left:$left"
new_files=$(comm -13 <(echo "$before") <(files_in_root))
check "nothing new in the scratch root but $conf.rpmsave" [ "$new_files" = ".$conf.rpmsave" ]
[ "$new_files" = ".$conf.rpmsave" ] || sed 's/^/#   /' <<<"$new_files"

# --- rpmlint ----------------------------------------------------------------------

# scripts/bootstrap.sh installs rpmlint, so a missing one fails rather than
# skips: CI must not pass without it. Errors fail; warnings are shown.
# The filters come from the same tree as the RPM.
if [ -n "$source_opt" ]; then
    git -C "$top" show "HEAD:packaging/$name.rpmlintrc" >"$work/rpmlintrc"
else
    cp "$top/packaging/$name.rpmlintrc" "$work/rpmlintrc"
fi
if ! command -v rpmlint >/dev/null; then
    not_ok "rpmlint is installed (scripts/bootstrap.sh installs it; or apt-get/dnf install rpmlint)"
else
    rpmlint -r "$work/rpmlintrc" "$rpm1" >"$work/rpmlint.log" 2>&1
    status=$?
    if [ $status = 0 ] && ! grep -q ': E: ' "$work/rpmlint.log"; then
        grep -E ': W: |errors, .* warnings' "$work/rpmlint.log" | sed 's/^/#   /'
        ok "rpmlint: no errors ($(grep -c ': W: ' "$work/rpmlint.log") warnings, shown above)"
    else
        sed 's/^/#   /' "$work/rpmlint.log"
        not_ok "rpmlint: exit status $status, its errors above"
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
