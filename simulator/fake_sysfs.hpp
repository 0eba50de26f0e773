// A simulated SR-IOV host: a sysfs tree in the kernel's layout, with relative
// symlinks, built in an ordinary directory from a small declarative table.
// Used by the tests and by the bundled example.
//
//   <root>/class/net/ens1f0 -> ../../devices/pci0000:00/0000:3b:00.0/net/ens1f0
//   <root>/devices/pci0000:00/0000:3b:00.0/{sriov_totalvfs,sriov_numvfs,virtfnN -> ../0000:3b:02.0}
//   <root>/devices/pci0000:00/0000:3b:02.0/{physfn,numa_node,driver,net/<ifname>/operstate,iommu_group}
//   <root>/devices/system/node/node0/cpulist
#pragma once

#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pci.hpp"

namespace sriovpt::sim {

struct FakePf {
    std::string name;                 // net device, e.g. ens1f0
    std::string pci;                  // e.g. 0000:3b:00.0
    unsigned num_vfs = 0;
    std::optional<unsigned> total_vfs;  // default: max(num_vfs, 8)
    int numa_node = 0;
    std::string vf_driver = "iavf";   // driver of every VF; "" = none bound
    std::string operstate = "up";     // the PF's link
};

class FakeSysfs {
public:
    // Creates `root` (and parents) if needed.
    explicit FakeSysfs(std::string root);

    const std::string& root() const { return root_; }

    void add_pf(const FakePf& pf);

    // A plain net device that is not an SR-IOV PF (e.g. the management NIC).
    void add_plain_netdev(const std::string& name, const std::string& pci);

    // Rebinds VF `index` of `pf` to `driver` ("" = unbind). Network drivers
    // get a net/<pf>v<index> directory, vfio-pci and pci-stub none.
    void set_vf_driver(const std::string& pf, unsigned index, const std::string& driver);

    // operstate of the VF's host netdev (it must have one).
    void set_vf_netdev_state(const std::string& pf, unsigned index, const std::string& state);

    void set_vf_numa_node(const std::string& pf, unsigned index, int node);

    // A host NUMA node with its CPUs: devices/system/node/node<N>/cpulist
    // ("0-3,8-11", as the kernel writes it; "" for a node without CPUs).
    void add_numa_node(unsigned node, const std::string& cpulist);

    // The PCI address of VF `index` of `pf` (as the tree names it).
    PciAddress vf_pci(const std::string& pf, unsigned index) const;

    // Reads a table, one entry per line ('#' comments):
    //   pf NAME PCI NUM_VFS [total=N] [numa=N] [driver=NAME|none] [link=up|down]
    //   netdev NAME PCI
    //   vf PF INDEX [driver=NAME|none] [netdev=up|down] [numa=N]
    //   node N CPULIST
    // Throws Error naming the line on a mistake.
    void apply_spec(std::istream& in);

private:
    struct PfState {
        FakePf spec;
        PciAddress pci;
    };
    std::string device_dir(const PciAddress& pci) const;  // relative to root
    const PfState& pf_state(const std::string& pf) const;
    std::string vf_ifname(const std::string& pf, unsigned index) const;

    std::string root_;
    std::map<std::string, PfState> pfs_;
    unsigned next_iommu_group_ = 10;
};

}  // namespace sriovpt::sim
