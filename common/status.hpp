// The host as an operator sees it: every VF of every SR-IOV PF, who holds
// it, and whether that holder is stale or foreign (docs/design.md, "The
// command").
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "host.hpp"
#include "vf_state.hpp"

namespace sriovpt {

struct VfStatus {
    VfInfo vf;
    std::optional<std::string> network;  // the first [network.*] whose pool has the PF
    std::optional<Reservation> holder;
    VfState state = VfState::free;
    std::string note;                    // why stale / what is damaged
    // The holder's NUMA nodes (placement.hpp) from libvirt's live XML of its
    // VM, empty for a VM with no placement; nullopt when not known.
    std::optional<std::set<int>> holder_numa_nodes;
    // The VF's settings (vf_settings.hpp): as the kernel reports them when it
    // was asked (read_back_vf_settings), else as the record asked them.
    std::optional<VfSettings> settings;
    std::string settings_from;           // "kernel" or "record"
};

struct HostStatus {
    std::vector<PfInfo> pfs;
    std::vector<VfStatus> vfs;
    std::vector<std::string> notes;      // records of no VF on this host, libvirt unreachable, ...
};

// Reads sysfs and the records; asks libvirt (if enabled and `ask_libvirt`)
// which holders still run and which VFs running domains use.
HostStatus collect_status(Host& host, bool ask_libvirt);

}  // namespace sriovpt
