// How `sriov-passthrough status` prints what common/status.hpp collects:
// a table for the operator, JSON for scripts.
#pragma once

#include <string>
#include <string_view>

#include "status.hpp"

namespace sriovpt::cli {

// The state as the table says it ("foreign (host netdev up)").
std::string_view vf_state_name(VfState s);

// {"vfs": [...], "pfs": [...], "notes": [...]}: the vfs entries in the shape
// of docs/design.md, "The command", with "netdev", "iommu_group" and "note"
// added.
std::string format_status_json(const HostStatus& status);
std::string format_status_table(const HostStatus& status);

// A JSON string literal for `s` (quotes included).
std::string json_string(std::string_view s);

}  // namespace sriovpt::cli
