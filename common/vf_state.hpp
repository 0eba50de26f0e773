// Whether a VF can be given (docs/design.md, "The choice rule"): the one
// classification that the allocator's choice and `status` share, and the one
// rule of when a reservation is stale ("Stale records").
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>

#include "reservations.hpp"
#include "sysfs.hpp"

namespace sriovpt {

enum class VfState {
    free,       // can be given
    held,       // our record, holder running or too young to judge
    stale,      // our record, holder no longer runs (gc reclaims it)
    damaged,    // a record we cannot read: never given, shown for the operator
    assigned,   // bound to vfio-pci/pci-stub without our record: not ours
    host_up,    // its host netdev is up: in use by the host
    in_domain,  // used by a running libvirt domain without our record
    resetting,  // our record, given back, its VF settings not reset yet: never given
};

// Why a reservation no longer protects a running VM, or nullopt if it may
// still be in use. `running` is nullopt when libvirt could not be asked; then
// only the boot id can prove a record stale. Records younger than `grace`
// seconds are never stale: VDSM runs before_vm_start before libvirt knows
// the domain.
std::optional<std::string> staleness(const Reservation& r, const std::string& boot_id, std::int64_t now,
                                     unsigned grace, const std::set<std::string>* running);

// The state of `vf`, the first of these that holds deciding:
//   1. it has a record file (`record`): damaged when the record cannot be
//      read, resetting when it waits for its VF's reset (vf_settings.hpp),
//      stale when `stale_reason` is set, else held;
//   2. bound to vfio-pci or pci-stub: assigned;
//   3. its host netdev is up: host_up;
//   4. `used_by_domain()`: in_domain (asked last, only for a VF that passed
//      the others: answering may need libvirt);
//   5. free.
// The allocator, which must read as little as it can, looks at the record
// file first from the store alone and calls this with `record` null for a VF
// that has none.
VfState classify_vf(const RecordEntry* record, const std::optional<std::string>& stale_reason, const VfInfo& vf,
                    const std::function<bool()>& used_by_domain);

}  // namespace sriovpt
