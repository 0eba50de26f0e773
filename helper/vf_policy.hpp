// The VF helper's policy (docs/design.md, "VF settings and the privileged
// helper"): a root-owned file that says who may use the helper and what it
// may do. Everything is denied unless the file allows it.
//
//   user = vdsm                 who may run the helper (name or uid); root always may
//   pfs = ens1f0, ens1f1        PFs whose VFs may be changed (default: none)
//   allow = trust, spoofchk, rate, link_state
//                               settings a caller may make (default: none)
//   rate_ceiling = 10000        highest min_tx_rate and max_tx_rate in Mbps;
//                               required when `allow` has rate
//   baseline_trust = off        what `reset` restores (defaults: the values
//   baseline_spoofchk = on      of a VF the kernel has just created)
//   baseline_min_tx_rate = 0
//   baseline_max_tx_rate = 0
//   baseline_link_state = auto
//   sysfs_root = /sys           where the VFs are looked up
//   state_dir = /run/vdsm/hooks/sriov_passthrough
//                               where the hooks' reservation records are
//
// One `key = value` per line; lines starting with '#' are comments. An
// unknown key, a key given twice or a bad value is an error naming the file,
// the line and the key.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "vf_link.hpp"

namespace sriovpt {

struct VfPolicy {
    std::string user;                 // as written
    uid_t uid = 0;
    std::vector<std::string> pfs;
    std::set<VfSetting::Kind> allowed;
    std::optional<std::uint32_t> rate_ceiling;   // Mbps
    bool baseline_trust = false;
    bool baseline_spoofchk = true;
    std::uint32_t baseline_min_tx_rate = 0;
    std::uint32_t baseline_max_tx_rate = 0;
    VfLinkState baseline_link_state = VfLinkState::automatic;
    std::string sysfs_root = "/sys";
    std::string state_dir = "/run/vdsm/hooks/sriov_passthrough";

    bool allows(VfSetting::Kind kind) const { return allowed.count(kind) != 0; }
    bool allows_pf(std::string_view pf) const;
    // What `reset` sets `kind` back to.
    VfSetting baseline(VfSetting::Kind kind) const;
    // Why the policy refuses `setting` (not allowed, above the ceiling);
    // empty when it allows it.
    std::string refusal(const VfSetting& setting) const;
};

// Looks a user name up; nullopt when there is no such user.
using UserLookup = std::function<std::optional<uid_t>(const std::string& name)>;

// The system's user database (getpwnam).
std::optional<uid_t> system_user(const std::string& name);

// Parses a policy; `file` names it in errors. Throws Error.
VfPolicy parse_policy(std::string_view text, std::string_view file, const UserLookup& lookup = system_user);

// Reads and parses the policy at `path`, which must be a regular file owned
// by root and writable by nobody else, in directories that only root can
// change (owned by root, not writable by group or others unless sticky):
// otherwise whoever can change it could grant itself anything. Throws Error.
VfPolicy load_policy(const std::string& path, const UserLookup& lookup = system_user);

}  // namespace sriovpt
