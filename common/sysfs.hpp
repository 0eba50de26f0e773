// Read-only access to a sysfs tree under a configurable root
// (docs/design.md, "sysfs").
//
// The kernel's symlinks are relative ("../../devices/..."); they are resolved
// component by component inside the root, so a fake tree in a test directory
// behaves like /sys and no path can climb out of the root.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pci.hpp"

namespace sriovpt {

class Sysfs {
public:
    explicit Sysfs(std::string root);

    const std::string& root() const { return root_; }

    // `rel` (relative to the root) with every symlink resolved inside the root:
    // a path relative to the root without "." or ".." or links. nullopt when a
    // component does not exist or the links loop.
    std::optional<std::string> resolve(std::string_view rel) const;

    // Contents of a regular file (at most 64 KiB), trimmed; nullopt if it
    // cannot be read or is not a regular file (never opened blocking).
    std::optional<std::string> read(std::string_view rel) const;

    // Last component of a symlink's target ("driver" -> "iavf"); nullopt if
    // `rel` is not a symlink.
    std::optional<std::string> link_basename(std::string_view rel) const;

    // Names in a directory (without "." and ".."), sorted; empty if missing.
    std::vector<std::string> list(std::string_view rel) const;

    bool exists(std::string_view rel) const;

private:
    std::string absolute(std::string_view rel) const;
    std::string root_;
};

// One VF as the hooks see it.
struct VfInfo {
    PciAddress pci;
    std::string pf;
    unsigned index = 0;           // N of the PF's virtfnN
    std::string device_dir;       // relative to the sysfs root, resolved
    std::string driver;           // empty when no driver is bound
    std::string netdev;           // host net device while bound to a network driver
    std::string netdev_state;     // its operstate ("up", "down", ...)
    int numa_node = -1;           // -1 = unknown
    std::optional<unsigned> iommu_group;
};

// The most VFs a PF can have: TotalVFs is a 16-bit field of the SR-IOV
// capability (PCIe Base Specification, SR-IOV Extended Capability).
inline constexpr unsigned kMaxVfsPerPf = 65535;

// A PF as found from class/net/<name>.
struct PfInfo {
    std::string name;
    std::string device_dir;       // relative to the sysfs root, resolved
    std::optional<PciAddress> pci;
    unsigned total_vfs = 0;
    unsigned num_vfs = 0;
    std::string operstate;
    // Why the PF cannot be used, naming the file and its value, when
    // sriov_totalvfs or sriov_numvfs is not a number in range (then
    // num_vfs is 0); empty otherwise.
    std::string problem;
};

// Drivers that mean "assigned to a guest": a free VF is never bound to one.
bool is_assignment_driver(std::string_view driver);

// The SR-IOV view of a sysfs tree. Cheap queries first: finding a free VF
// reads only the VFs it considers, not the whole host.
class Inventory {
public:
    explicit Inventory(const Sysfs& sysfs) : sysfs_(sysfs) {}

    // The PF behind class/net/<name>; nullopt if there is no such net device
    // or it is not an SR-IOV PF (no sriov_totalvfs).
    std::optional<PfInfo> pf(const std::string& name) const;

    // PCI address of the PF's VF number `index` (virtfn<index>), nullopt if absent.
    std::optional<PciAddress> vf_address(const PfInfo& pf, unsigned index) const;

    // Everything about VF `index` of `pf`; nullopt if absent.
    std::optional<VfInfo> vf(const PfInfo& pf, unsigned index) const;

    // Every SR-IOV PF of the host, sorted by name.
    std::vector<PfInfo> all_pfs() const;

    // Every VF of a PF, by index. A VF whose virtfn link is missing or
    // dangling is left out and, when `missing` is given, described there
    // ("virtfn3 -> ../0000:3b:02.3, which does not exist").
    std::vector<VfInfo> vfs(const PfInfo& pf, std::vector<std::string>* missing = nullptr) const;

    // The PF and VF index of the VF at `pci`, looked for among every PF's
    // virtfn links; nullopt when it is no VF of this host. Reads every PF:
    // for the arrival of a migrating VM, never for a start.
    struct VfLocation {
        PfInfo pf;
        unsigned index = 0;
    };
    std::optional<VfLocation> locate_vf(const PciAddress& pci) const;

private:
    const Sysfs& sysfs_;
};

}  // namespace sriovpt
