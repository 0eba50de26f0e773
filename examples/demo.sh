#!/usr/bin/env bash
# The main job on the bundled example: a simulated SR-IOV host (examples/host.spec)
# and the domain XML the oVirt engine sends (examples/engine-domain.xml).
# Builds first (installing what is missing); everything else happens in a
# temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh >/dev/null
bin=${BUILD_DIR:-build}/bin
work=$(mktemp -d /tmp/sriov-passthrough-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT

"$bin/sriov-fake-host" examples/host.spec "$work/sys"
sed "s#@ROOT@#$work#" examples/sriov_passthrough.conf > "$work/sriov_passthrough.conf"
export SRIOV_PASSTHROUGH_CONF=$work/sriov_passthrough.conf
vm=9c1f3d7e-2b44-4a51-8e0c-5d6a7b8c9d01

section() { printf '\n=== %s\n' "$*"; }
interfaces() { sed -n '/<interface/,/<\/interface>/p' "$1"; }

section "the host: PFs and VFs before the VM starts"
"$bin/sriov-passthrough" status

section "the engine's vNICs (examples/engine-domain.xml); 00:1a:4a:16:01:51 has passthrough=true, vlan=100"
interfaces examples/engine-domain.xml

section "before_vm_start, run as VDSM runs it"
"$bin/sriov-passthrough" run before_vm_start --domxml examples/engine-domain.xml --vm-id "$vm" -o "$work/started.xml"

section "the vNICs libvirt gets"
interfaces "$work/started.xml"

section "the reservations"
"$bin/sriov-passthrough" status

section "after_vm_destroy gives the VF back"
"$bin/sriov-passthrough" run after_vm_destroy --domxml "$work/started.xml" --vm-id "$vm" -o /dev/null
"$bin/sriov-passthrough" status
