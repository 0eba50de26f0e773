// A model of VDSM driving the hooks: every executable installed for a hook
// point, in VDSM's order, with VDSM's environment, around the same steps VDSM
// takes. Written from VDSM's source (oVirt vdsm, lib/vdsm/common/hooks.py,
// lib/vdsm/virt/vm.py, domxml_preprocess.py, metadata.py,
// vmdevices/network.py; docs/design.md, "VDSM's flows"), so that the tests
// exercise the hooks the way the real caller does rather than one hook point
// at a time. What VDSM does besides calling hooks (libvirt, devices) is
// modelled only where it decides what the next hook sees.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "harness.hpp"

namespace sriovpt::test {

using Props = std::map<std::string, std::string>;

// One hook executable run.
struct HookCall {
    std::string hook_point;
    std::string executable;
    int status = -1;
    std::string err;
    bool xml_changed = false;   // the file differs after the run
};

// What a flow did. `ok` is VDSM's verdict on the operation; `failed_at` the
// step that failed it ("before_vm_start", "libvirt", "vdsm", ...) and `why`
// what VDSM would report (the failing hook's stderr, or VDSM's own reason).
struct FlowResult {
    bool ok = true;
    std::string failed_at;
    std::string why;
    std::string xml;                  // what VDSM hands libvirt (start, hotplug)
    std::vector<HookCall> calls;      // every executable run, in order
    std::string err() const;          // all stderr, concatenated
};

// The host a flow runs on: the configuration the hooks see
// ($SRIOV_PASSTHROUGH_CONF) and the sysfs tree VDSM's own steps look at.
struct FlowHost {
    std::string conf_path;
    std::string sysfs_root;
};

class VdsmFlow {
public:
    // `hooks_dir` is the tree VDSM runs hooks from (the build tree mirrors
    // <prefix>/libexec/vdsm/hooks).
    VdsmFlow(FlowHost host, std::string hooks_dir);
    explicit VdsmFlow(const TestHost& host, std::string hooks_dir = SRIOVPT_HOOKS_DIR);

    // VM start (Vm._run): for each device of <devices> but disks whose
    // metadata (VDSM's matching rule) has an <ovirt-vm:custom> element, even
    // empty, before_device_create over that device with its custom
    // properties and then the VM's (the VM's win) in the environment; each
    // device replaced by the hooks' output and moved to the end of
    // <devices>. Then before_vm_start over the whole domain with the VM's
    // properties. A failing before_* hook fails the start; VDSM then
    // destroys the VM, which runs after_vm_destroy.
    FlowResult start_vm(const std::string& engine_xml, const std::string& vm_id, const Props& vm_custom = {});

    // The live domain XML as VDSM later hands it to hooks (destroy,
    // migration): the XML VDSM gave libvirt, with the ovirt-vm <metadata>
    // replaced by VDSM's own descriptor, which VDSM builds from the engine's
    // XML and writes over the domain's right after defining it
    // (Vm._update_metadata, Descriptor.dump); each vNIC that the live domain
    // shows teamed is then saved under its MAC and alias
    // (save_device_metadata with Interface.get_metadata).
    std::string live_xml(const std::string& engine_xml, const std::string& started_xml) const;

    // Hot-plug (Vm.hotplugNic): before_nic_hotplug with the vNIC's and the
    // VM's properties; then libvirt's attach, which fails when
    // `attach_fails`, and then after_nic_hotplug_fail gets the hooks' output.
    FlowResult hotplug_nic(const std::string& nic_xml, const std::string& vm_id, const Props& nic_custom,
                           bool attach_fails = false, const Props& vm_custom = {});

    // Hot-unplug (Vm.hotunplugNic): VDSM regenerates the vNIC's XML from its
    // device object, made from the engine's bridge XML, not from the hostdev
    // XML libvirt has: before_nic_hotunplug, the detach, after_nic_hotunplug.
    FlowResult hotunplug_nic(const std::string& engine_nic_xml, const std::string& vm_id, const Props& nic_custom);

    // Destroy (Vm.releaseVm): after_vm_destroy over the last domain XML.
    FlowResult destroy(const std::string& xml, const std::string& vm_id);

    // Runs every executable of `hook_point` as VDSM's _runHooksDir does:
    // sorted, the XML in a temporary file named by $_hook_domxml, stop at
    // exit status 2. Returns the file's content after the last one.
    std::string run_hook_point(const std::string& hook_point, const std::string& xml, const std::string& vm_id,
                               const Props& device_custom, const Props& vm_custom, FlowResult& result) const;

    const FlowHost& host() const { return host_; }

private:
    FlowHost host_;
    std::string hooks_dir_;
};

// What VDSM's metadata look-up gives the <interface> whose alias is `alias`
// in `domain_xml`: how many entries match (VDSM needs one at most; with none
// it starts the device from nothing), and the first one's custom properties
// and network.
struct VdsmDeviceMetadata {
    size_t matches = 0;
    Props custom;
    std::string network;
};
VdsmDeviceMetadata vdsm_metadata_of(const std::string& domain_xml, const std::string& alias);

// Migration of a running VM from `source` to `destination` (both VdsmFlow
// over their own hosts), as VDSM's source and destination do it:
//   source: before_vm_migrate_source over the live XML (exit != 0: refused)
//   destination: VM created from the source's live XML; each hostdev
//     <interface> there is detached at its PCI address on the destination
//     (Interface.setup, detach_detachable), which fails when no such device
//     exists there; then before_vm_migrate_destination (exit != 0: the
//     migration fails, and the destination VM is destroyed: after_vm_destroy)
//   libvirt migrates: refused when the live domain has a PCI host device that
//     is not the transient member of a failover pair
//   destination: after_vm_migrate_destination; source:
//     after_vm_migrate_source, then after_vm_destroy.
// `live_xml` is the source's live XML (VdsmFlow::live_xml).
struct MigrationResult {
    bool ok = true;
    std::string failed_at;
    std::string why;
    FlowResult source;
    FlowResult destination;
};
MigrationResult migrate(const VdsmFlow& source, const VdsmFlow& destination, const std::string& live_xml,
                        const std::string& vm_id);

}  // namespace sriovpt::test
