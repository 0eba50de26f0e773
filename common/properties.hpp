// The vNIC custom properties an operator sets on a vNIC profile
// (docs/design.md, "Properties"):
//
//   passthrough = true|false      pass this vNIC through as a VF
//   vlan        = 1..4094         VLAN tag on the VF; overrides the network's default
//   sriov_pf    = PF[,PF...]      restrict the VF pool to these PFs
//   failover    = true|false      keep the virtio vNIC and team a VF with it
//   numa        = required|preferred|ignore   NUMA policy for the VF's PF (placement.hpp)
//   vf_trust, vf_spoofchk, vf_max_tx_rate, vf_min_tx_rate, vf_link_state
//                                 settings of the VF (vf_settings.hpp)
//
// A value outside its range is an error naming the property, the value and
// what is allowed; never a silent default.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "placement.hpp"
#include "vf_settings.hpp"

namespace sriovpt {

struct VnicProperties {
    bool passthrough = false;
    bool failover = false;
    std::optional<unsigned> vlan;
    std::vector<std::string> sriov_pf;
    std::optional<NumaPolicy> numa;   // unset: the network's, else the configuration's
    VfSettings vf;                  // vf_trust, vf_spoofchk, vf_*_tx_rate, vf_link_state
};

// Returns the value of one property, or nullopt if it is not set.
using PropertyLookup = std::function<std::optional<std::string>(std::string_view name)>;

// Reads and validates every property through `lookup`. An empty value counts
// as unset (the engine sends a property the operator left blank as "");
// otherwise values are not trimmed, except around the names of sriov_pf.
VnicProperties parse_properties(const PropertyLookup& lookup);

// VLAN tag 1..4094, strict decimal; throws Error otherwise.
unsigned parse_vlan(std::string_view value);

// "ens1f0, ens1f1": each a valid Linux interface name (see is_valid_ifname);
// throws Error otherwise.
std::vector<std::string> parse_pf_list(std::string_view value);

// A Linux network interface name that is safe to use as a sysfs path
// component: 1..15 characters from [A-Za-z0-9_.-], starting with a letter,
// digit or '_' (so never "." or ".."), no '/'.
bool is_valid_ifname(std::string_view name);

// Property names, as the engine and VDSM spell them.
inline constexpr const char* kPropPassthrough = "passthrough";
inline constexpr const char* kPropVlan = "vlan";
inline constexpr const char* kPropSriovPf = "sriov_pf";
inline constexpr const char* kPropFailover = "failover";
inline constexpr const char* kPropNuma = "numa";

}  // namespace sriovpt
