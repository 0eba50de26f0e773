// The host as an operator sees it: every VF of every SR-IOV PF, who holds
// it, and whether that holder is stale or foreign (docs/design.md, "The
// command").
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "host.hpp"
#include "vf_state.hpp"

namespace sriovpt {

std::string_view vf_state_name(VfState s);

struct VfStatus {
    VfInfo vf;
    std::optional<std::string> network;  // the first [network.*] whose pool has the PF
    std::optional<Reservation> holder;
    VfState state = VfState::free;
    std::string note;                    // why stale / what is damaged
};

struct HostStatus {
    std::vector<PfInfo> pfs;
    std::vector<VfStatus> vfs;
    std::vector<std::string> notes;      // records of no VF on this host, libvirt unreachable, ...
};

// Reads sysfs and the records; asks libvirt (if enabled and `ask_libvirt`)
// which holders still run and which VFs running domains use.
HostStatus collect_status(Host& host, bool ask_libvirt);

// {"vfs": [...], "pfs": [...], "notes": [...]}: the vfs entries in the shape
// of docs/design.md, "The command", with "netdev", "iommu_group" and "note"
// added.
std::string format_status_json(const HostStatus& status);
std::string format_status_table(const HostStatus& status);

// A JSON string literal for `s` (quotes included).
std::string json_string(std::string_view s);

}  // namespace sriovpt
