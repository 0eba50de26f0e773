// Test support: a throw-away host (fake sysfs, state directory, configuration
// file) and running the real hook executables the way VDSM does.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fake_sysfs.hpp"
#include "reservations.hpp"

namespace sriovpt::test {

// A fresh temporary directory, removed with everything in it on destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
private:
    std::string path_;
};

std::string read_text(const std::string& path);
void write_text(const std::string& path, const std::string& text);

// The content of a file under tests/data (fixtures/ holds the engine's
// samples from shared/fixtures).
std::string test_data(const std::string& name);

// Path of an installed-layout hook executable in the build tree.
std::string hook_path(const std::string& hook_point);

struct HookRun {
    int status = -1;        // exit status, or 128+signal
    std::string err;        // stderr
    std::string xml;        // the XML file after the run
};

// A simulated host: <dir>/sys (FakeSysfs), <dir>/state, <dir>/hooks.conf.
class TestHost {
public:
    // Writes a configuration with sysfs_root and state_dir pointing inside,
    // libvirt_uri = none, plus `extra` (more keys and [network.*] sections).
    explicit TestHost(const std::string& extra = "");

    sim::FakeSysfs& sysfs() { return sysfs_; }
    const std::string& dir() const { return dir_.path(); }
    std::string state_dir() const { return dir() + "/state"; }
    std::string conf_path() const { return dir() + "/hooks.conf"; }
    void write_config(const std::string& extra);

    // Runs the hook executable for `hook_point` as VDSM does: `xml` in a
    // temporary file named by $_hook_domxml, $vmId (when given), the
    // properties as variables, SRIOV_PASSTHROUGH_CONF, nothing else.
    HookRun run(const std::string& hook_point, const std::string& xml, const std::optional<std::string>& vm_id,
                const std::map<std::string, std::string>& props = {}) const;

    // Every record file of the state directory.
    std::vector<RecordEntry> records() const;
    // Good records only.
    std::vector<Reservation> reservations() const;

private:
    TempDir dir_;
    sim::FakeSysfs sysfs_;
};

// A Unix socket that takes connections (the kernel queues them) and never
// says a word: a libvirtd that hangs. Closed and removed on destruction;
// `ok()` is false when it could not be set up.
class SilentSocket {
public:
    explicit SilentSocket(std::string path);
    ~SilentSocket();
    SilentSocket(const SilentSocket&) = delete;
    SilentSocket& operator=(const SilentSocket&) = delete;
    bool ok() const { return fd_ >= 0; }
    const std::string& path() const { return path_; }
private:
    std::string path_;
    int fd_ = -1;
};

// Runs a command (argv[0] looked up in PATH) with `env` added to a minimal
// environment; returns exit status and combined stdout+stderr.
struct CommandResult {
    int status = -1;
    std::string output;
};
CommandResult run_command(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {});

// The three checks of docs/design.md, "Checking against libvirt", on a
// domain: libvirt's RelaxNG schema (virt-xml-validate), the test driver's
// parser (virsh -c test:///default define) and the QEMU driver (virsh -c
// qemu:///embed?root=... define --validate). Returns an empty string when
// all pass, else what failed. Before checking, the domain is adapted to this
// machine as that section says: type kvm -> qemu, oVirt's RHEL machine types
// -> q35.
std::string libvirt_rejects(const std::string& domain_xml);

}  // namespace sriovpt::test

namespace sriovpt::test {

inline constexpr const char* kVmId = "9c1f3d7e-2b44-4a51-8e0c-5d6a7b8c9d01";

// A reservation of VF 1 of ens1f0 (0000:3b:02.1) for a vNIC of kVmId, every
// field set: what the store and record tests write and read back.
Reservation sample_reservation();

// One vNIC of a generated domain, as the engine would send it.
struct TestVnic {
    std::string mac;
    std::string network = "sriovnet";
    std::map<std::string, std::string> props;   // custom properties in <metadata>
    std::string type = "bridge";
};

// A domain in the shape the engine sends (model, link, source bridge, alias,
// guest address, mac, mtu, filterref, bandwidth per vNIC; properties in
// <metadata> keyed by MAC).
std::string make_domain(const std::vector<TestVnic>& vnics, const std::string& uuid = kVmId,
                        const std::string& name = "vm1");

// A single <interface> as before_nic_hotplug receives it.
std::string make_interface(const std::string& mac, const std::string& network = "sriovnet");

}  // namespace sriovpt::test
