// The hooks' configuration file (docs/design.md, "Configuration"), INI
// syntax:
//
//   sysfs_root = /sys
//   state_dir = /run/vdsm/hooks/sriov_passthrough
//   libvirt_uri = qemu:///system      # "none" disables libvirt look-ups
//   lock_timeout = 10                 # seconds
//   reclaim_grace = 300               # seconds a fresh reservation is never reclaimed
//   check_domains = no                # also ask libvirt whether a free-looking VF is in use
//   numa = preferred                  # required | preferred | ignore, for every network
//   vf_helper = /usr/libexec/sriov-passthrough/sriov-passthrough-vf-helper
//   [network.sriovnet]
//   pfs = ens1f0, ens1f1
//   vlan = 100
//   numa = required                   # this network's NUMA policy
//   vf_trust = on                     # and vf_spoofchk, vf_max_tx_rate, vf_min_tx_rate,
//                                     # vf_link_state: defaults for the network's vNICs
//   on_error = fail                   # or warn: start without settings the helper cannot make
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "placement.hpp"
#include "vf_settings.hpp"

namespace sriovpt {

inline constexpr const char* kDefaultConfigPath = "/etc/vdsm/hooks/sriov_passthrough.conf";
inline constexpr const char* kConfigEnvVar = "SRIOV_PASSTHROUGH_CONF";
// Where the RPM installs the VF helper (helper/CMakeLists.txt).
inline constexpr const char* kDefaultVfHelper = "/usr/libexec/sriov-passthrough/sriov-passthrough-vf-helper";

struct NetworkPool {
    std::string name;               // the oVirt network = the bridge in <source bridge=...>
    std::vector<std::string> pfs;   // PF net devices, in the order the operator wrote them
    std::optional<unsigned> vlan;   // default VLAN tag for vNICs on this network
    std::optional<NumaPolicy> numa; // unset: Config::numa
    VfSettings vf;                  // default VF settings for its vNICs (vf_settings.hpp)
    OnError on_error = OnError::fail;   // when the helper cannot make them
};

struct Config {
    std::string sysfs_root = "/sys";
    std::string state_dir = "/run/vdsm/hooks/sriov_passthrough";
    std::string libvirt_uri = "qemu:///system";
    unsigned lock_timeout = 10;     // seconds; bounds every wait
    unsigned reclaim_grace = 300;   // seconds
    bool check_domains = false;
    NumaPolicy numa = kDefaultNumaPolicy;  // for networks without their own `numa`
    std::string vf_helper = kDefaultVfHelper;   // the privileged helper for VF settings
    std::map<std::string, NetworkPool> networks;
    std::string path;               // the file read; empty when defaults were used

    // The pool of a network, or nullptr when the file has no section for it.
    const NetworkPool* network(const std::string& name) const;
    // The network whose pool has the PF `pf`: the first one by name when
    // several share it (check warns about that), nullptr when none has it.
    const NetworkPool* network_of_pf(const std::string& pf) const;
    // The NUMA policy of vNICs on `network` that do not set the property.
    NumaPolicy numa_policy(const std::string& network) const;
    bool libvirt_enabled() const { return libvirt_uri != "none"; }
};

// $SRIOV_PASSTHROUGH_CONF if set and not empty, else the default path.
std::string config_path_from_env();

// Reads the file at `path`. A missing file means all defaults when `path` is
// kDefaultConfigPath, and is an error for any other path (one named by
// $SRIOV_PASSTHROUGH_CONF or --config). Throws Error naming the file, the
// line's key and what is allowed for any unknown key, bad value or syntax
// error.
Config load_config(const std::string& path);

// Parses configuration text; `name` is used in error messages.
Config parse_config(std::string_view text, const std::string& name);

}  // namespace sriovpt
