#include "vf_state.hpp"

#include "error.hpp"

namespace sriovpt {

std::optional<std::string> staleness(const Reservation& r, const std::string& boot_id, std::int64_t now,
                                     unsigned grace, const std::set<std::string>* running) {
    if (!r.boot_id.empty() && !boot_id.empty() && r.boot_id != boot_id) return "made before the host last booted";
    if (now - r.created < static_cast<std::int64_t>(grace)) return std::nullopt;
    if (running && !running->count(r.vm_id)) return cat("VM ", r.vm_id, " is not running");
    return std::nullopt;
}

VfState classify_vf(const RecordEntry* record, const std::optional<std::string>& stale_reason, const VfInfo& vf,
                    const std::function<bool()>& used_by_domain) {
    if (record) {
        if (!record->record) return VfState::damaged;
        if (record->record->reset_pending) return VfState::resetting;
        return stale_reason ? VfState::stale : VfState::held;
    }
    if (is_assignment_driver(vf.driver)) return VfState::assigned;
    if (vf.netdev_state == "up") return VfState::host_up;
    if (used_by_domain && used_by_domain()) return VfState::in_domain;
    return VfState::free;
}

}  // namespace sriovpt
