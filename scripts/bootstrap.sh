#!/usr/bin/env bash
# Installs what the build and the tests need on a Debian machine (when
# something is missing), then configures and builds into ./build.
#   BUILD_DIR=...        another build directory
#   CMAKE_ARGS="..."     extra arguments for cmake's configure step
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  cmake g++ make pkg-config
  libvirt-dev libpugixml-dev libboost-program-options-dev libgtest-dev libbenchmark-dev
  libvirt-clients                                   # virt-xml-validate, virsh (test driver)
  libvirt-daemon-driver-qemu qemu-system-x86        # qemu:///embed, to validate our XML as QEMU's driver would
  rpm rpmlint                                       # rpmbuild and rpmlint, for packaging/
  libmnl-dev libcap-ng-dev                          # the VF helper (helper/): netlink, capabilities
  libcap2-bin iproute2 util-linux                   # its tests: setcap/getcap, ip, unshare/setpriv
  clang libclang-rt-14-dev                          # fuzz/run.sh: libFuzzer and clang's sanitizers
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
fi
# libvirt's embedded QEMU driver, run as root, wants its unprivileged user.
if [ "$(id -u)" -eq 0 ] && ! getent passwd libvirt-qemu >/dev/null; then
  useradd --system --no-create-home --shell /usr/sbin/nologin libvirt-qemu
fi

build_dir=${BUILD_DIR:-build}
# shellcheck disable=SC2086
cmake -S . -B "$build_dir" ${CMAKE_ARGS:-} >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
