// NUMA placement (docs/design.md, "The choice rule"): the host NUMA nodes a
// VM lives on, read from its domain XML, and how a NUMA policy orders and
// filters a pool's PFs by the node each sits on.
#pragma once

#include <optional>
#include <pugixml.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "sysfs.hpp"

namespace sriovpt {

// The vNIC property `numa` and the configuration key of the same name.
//   required   only VFs of PFs on the VM's nodes
//   preferred  those first, then the others
//   ignore     NUMA plays no part
enum class NumaPolicy { required, preferred, ignore };

inline constexpr NumaPolicy kDefaultNumaPolicy = NumaPolicy::preferred;

std::string_view numa_policy_name(NumaPolicy p);
// Exactly "required", "preferred" or "ignore"; nullopt otherwise.
std::optional<NumaPolicy> numa_policy_from_name(std::string_view name);

// The host NUMA nodes of a VM; `nodes` empty means no preference (the domain
// has neither a <numatune> nodeset nor CPU pinning that maps to a node).
struct VmPlacement {
    std::set<int> nodes;
    std::string source;   // "numatune", "CPU pinning", or "" with no nodes
};

// A libvirt node or CPU set: "0-3,8,^2" (ranges, single numbers, '^'
// exclusions, blanks around items). Throws Error naming the text when it is
// not one, or names a number above 65535.
std::set<int> parse_number_set(std::string_view text);

// "0", "0,1": for messages.
std::string node_list(const std::set<int>& nodes);

// The VM's nodes from its domain XML: the union of the nodesets of
// <numatune>'s <memory> and <memnode> elements; without any, the nodes of
// the host CPUs that <cputune>'s <vcpupin> and <emulatorpin> name, each CPU
// mapped through devices/system/node/node<N>/cpulist under `sysfs` (CPUs of
// no node are left out). Throws Error naming the element for a set that
// does not parse (libvirt would refuse the domain too).
VmPlacement vm_placement(pugi::xml_node domain, const Sysfs& sysfs);

// The NUMA node of PF `pf` (class/net/<pf>/device/numa_node); -1 when
// unknown, missing or not a number.
int pf_numa_node(const Sysfs& sysfs, const std::string& pf);

// pf_numa_node for each of `pfs`, in order.
std::vector<int> pf_numa_nodes(const Sysfs& sysfs, const std::vector<std::string>& pfs);

// How a PF ranks under a policy: kNumaLocal before kNumaOther; kNumaExcluded
// PFs are not used at all.
inline constexpr int kNumaLocal = 0;
inline constexpr int kNumaOther = 1;
inline constexpr int kNumaExcluded = -1;

// One rank per PF, for PFs on `pf_nodes` (-1: on no node) and a VM on
// `vm_nodes`. With `ignore`, or a VM with no preference, every PF is local.
// `preferred`: local when on one of the VM's nodes, else other. `required`:
// local or excluded. A PF on node -1 is on none of the VM's nodes. Pure.
std::vector<int> numa_ranks(NumaPolicy policy, const std::set<int>& vm_nodes, const std::vector<int>& pf_nodes);

// Whether the VM's nodes can change what numa_ranks gives for these PFs,
// whatever they are: false for `ignore`, and for `preferred` when every PF
// sits on the same node (or every one on none), so a caller may skip
// finding the VM's placement. Pure.
bool placement_matters(NumaPolicy policy, const std::vector<int>& pf_nodes);

// The nodes and ranks of the PFs named `pfs` for a VM on `vm_nodes`. The
// nodes are `known` when it has one per PF, else read from sysfs, and only
// when they can matter (not for `ignore`, nor for a VM with no preference);
// otherwise every node is -1 and every rank kNumaLocal.
struct PoolPlacement {
    std::vector<int> nodes;
    std::vector<int> ranks;
};
PoolPlacement pool_placement(const Sysfs& sysfs, NumaPolicy policy, const std::set<int>& vm_nodes,
                             const std::vector<std::string>& pfs, const std::vector<int>& known = {});

// Why a PF of rank kNumaExcluded is left out: "is on NUMA node 1, not on
// the VM's node 0 (numa=required)".
std::string excluded_pf_text(int pf_node, const std::set<int>& vm_nodes);

// " on the VM's NUMA node 0 (numa=required)" when the policy limits the
// choice to the VM's nodes, else "": for "no free VF..." messages.
std::string numa_limit_text(NumaPolicy policy, const std::set<int>& vm_nodes);

}  // namespace sriovpt
