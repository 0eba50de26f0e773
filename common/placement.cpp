#include "placement.hpp"

#include <algorithm>
#include <map>

#include "error.hpp"
#include "text.hpp"

namespace sriovpt {

std::string_view numa_policy_name(NumaPolicy p) {
    switch (p) {
        case NumaPolicy::required: return "required";
        case NumaPolicy::preferred: return "preferred";
        case NumaPolicy::ignore: return "ignore";
    }
    return "?";
}

std::optional<NumaPolicy> numa_policy_from_name(std::string_view name) {
    for (const auto p : {NumaPolicy::required, NumaPolicy::preferred, NumaPolicy::ignore}) {
        if (name == numa_policy_name(p)) return p;
    }
    return std::nullopt;
}

namespace {

constexpr unsigned long kMaxSetNumber = 65535;

std::optional<int> set_number(std::string_view s) {
    // libvirt's own parser (virBitmapParse) takes plain decimals; a leading
    // zero is harmless there, so it is here.
    while (s.size() > 1 && s.front() == '0') s.remove_prefix(1);
    const auto n = parse_decimal(s);
    if (!n || *n > kMaxSetNumber) return std::nullopt;
    return static_cast<int>(*n);
}

}  // namespace

std::set<int> parse_number_set(std::string_view text) {
    // Ranges are merged before any number is listed, so that a long text of
    // wide ranges ("0-65535,0-65535,...") costs its length, not its length
    // times 65536.
    std::vector<std::pair<int, int>> ranges;
    std::set<int> excluded;
    const auto bad = [&]() -> void {
        fail(quoted(text), " is not a set of numbers (such as 0-3,8,^2; each at most ", kMaxSetNumber, ")");
    };
    if (trim(text).empty()) bad();
    for (const auto& item : split(text, ',')) {
        std::string_view s = item;
        if (s.empty()) bad();
        if (s.front() == '^') {
            const auto n = set_number(trim(s.substr(1)));
            if (!n) bad();
            excluded.insert(*n);
            continue;
        }
        const auto dash = s.find('-');
        const auto first = set_number(trim(s.substr(0, dash)));
        const auto last = dash == std::string_view::npos ? first : set_number(trim(s.substr(dash + 1)));
        if (!first || !last || *last < *first) bad();
        ranges.emplace_back(*first, *last);
    }
    std::sort(ranges.begin(), ranges.end());
    std::set<int> out;
    int next = 0;  // the first number not yet listed
    for (const auto& [first, last] : ranges) {
        for (int n = std::max(first, next); n <= last; ++n) {
            if (!excluded.count(n)) out.insert(out.end(), n);
        }
        next = std::max(next, last + 1);
    }
    return out;
}

std::string node_list(const std::set<int>& nodes) {
    std::vector<std::string> parts;
    for (const int n : nodes) parts.push_back(std::to_string(n));
    return join(parts, ",");
}

namespace {

// The nodes of the host CPUs in `cpus`, from node<N>/cpulist. Read only when
// a VM is pinned by CPU and not by <numatune>.
std::set<int> nodes_of_cpus(const std::set<int>& cpus, const Sysfs& sysfs) {
    std::set<int> nodes;
    constexpr std::string_view kNodeDir = "devices/system/node";
    for (const auto& name : sysfs.list(kNodeDir)) {
        if (name.rfind("node", 0) != 0) continue;
        const auto node = parse_decimal(std::string_view(name).substr(4));
        if (!node || *node > kMaxSetNumber) continue;
        const auto list = sysfs.read(cat(kNodeDir, "/", name, "/cpulist"));
        if (!list || trim(*list).empty()) continue;  // a node without CPUs (memory only)
        std::set<int> on_node;
        try {
            on_node = parse_number_set(*list);
        } catch (const Error&) {
            continue;  // the kernel writes it; a bad one says nothing of the VM
        }
        for (const int cpu : cpus) {
            if (on_node.count(cpu)) {
                nodes.insert(static_cast<int>(*node));
                break;
            }
        }
    }
    return nodes;
}

std::set<int> set_of(pugi::xml_node element, const char* attribute) {
    const auto value = element.attribute(attribute);
    return with_context(cat("<", element.parent().name(), "><", element.name(), " ", attribute, ">"),
                        [&] { return parse_number_set(value.as_string()); });
}

}  // namespace

VmPlacement vm_placement(pugi::xml_node domain, const Sysfs& sysfs) {
    VmPlacement placement;
    // <memory placement="auto"> has no nodeset: numad chooses at start, which
    // is no preference we can know of.
    if (const auto numatune = domain.child("numatune")) {
        for (const auto& element : numatune.children()) {
            const std::string_view name = element.name();
            if ((name == "memory" || name == "memnode") && element.attribute("nodeset")) {
                const auto nodes = set_of(element, "nodeset");
                placement.nodes.insert(nodes.begin(), nodes.end());
            }
        }
        if (!placement.nodes.empty()) {
            placement.source = "numatune";
            return placement;
        }
    }
    std::set<int> cpus;
    if (const auto cputune = domain.child("cputune")) {
        for (const auto& element : cputune.children()) {
            const std::string_view name = element.name();
            if ((name == "vcpupin" || name == "emulatorpin") && element.attribute("cpuset")) {
                const auto set = set_of(element, "cpuset");
                cpus.insert(set.begin(), set.end());
            }
        }
    }
    if (cpus.empty()) return placement;
    placement.nodes = nodes_of_cpus(cpus, sysfs);
    if (!placement.nodes.empty()) placement.source = "CPU pinning";
    return placement;
}

namespace {

bool bad_pf_name(const std::string& pf) {
    return pf.empty() || pf.find('/') != std::string::npos || pf == "." || pf == "..";
}

std::string numa_node_path(const std::string& pf) { return "class/net/" + pf + "/device/numa_node"; }

int node_of(const std::optional<std::string>& text) {
    if (!text) return -1;
    const auto n = parse_decimal(*text);  // the kernel's -1, or anything else but a node: unknown
    return n && *n <= kMaxSetNumber ? static_cast<int>(*n) : -1;
}

}  // namespace

int pf_numa_node(const Sysfs& sysfs, const std::string& pf) {
    if (bad_pf_name(pf)) return -1;
    return node_of(sysfs.read(numa_node_path(pf)));
}

std::vector<int> pf_numa_nodes(const Sysfs& sysfs, const std::vector<std::string>& pfs) {
    std::vector<int> nodes;
    for (const auto& pf : pfs) nodes.push_back(pf_numa_node(sysfs, pf));
    return nodes;
}

std::vector<int> numa_ranks(NumaPolicy policy, const std::set<int>& vm_nodes, const std::vector<int>& pf_nodes) {
    std::vector<int> ranks(pf_nodes.size(), kNumaLocal);
    if (policy == NumaPolicy::ignore || vm_nodes.empty()) return ranks;
    for (size_t i = 0; i < pf_nodes.size(); ++i) {
        if (vm_nodes.count(pf_nodes[i])) continue;  // never -1: vm_nodes holds no negative node
        ranks[i] = policy == NumaPolicy::required ? kNumaExcluded : kNumaOther;
    }
    return ranks;
}

bool placement_matters(NumaPolicy policy, const std::vector<int>& pf_nodes) {
    if (policy == NumaPolicy::ignore || pf_nodes.empty()) return false;
    if (policy == NumaPolicy::required) return true;
    for (const int node : pf_nodes) {
        if (node != pf_nodes.front()) return true;
    }
    return false;
}

PoolPlacement pool_placement(const Sysfs& sysfs, NumaPolicy policy, const std::set<int>& vm_nodes,
                             const std::vector<std::string>& pfs, const std::vector<int>& known) {
    PoolPlacement out;
    out.nodes.assign(pfs.size(), -1);
    if (policy != NumaPolicy::ignore && !vm_nodes.empty())
        out.nodes = known.size() == pfs.size() ? known : pf_numa_nodes(sysfs, pfs);
    out.ranks = numa_ranks(policy, vm_nodes, out.nodes);
    return out;
}

namespace {

std::string nodes_text(const std::set<int>& nodes) {
    return cat(nodes.size() == 1 ? "node " : "nodes ", node_list(nodes));
}

}  // namespace

std::string excluded_pf_text(int pf_node, const std::set<int>& vm_nodes) {
    return cat(pf_node < 0 ? std::string("is on no known NUMA node (numa_node -1)") : cat("is on NUMA node ", pf_node),
               ", not on the VM's ", nodes_text(vm_nodes), " (numa=required)");
}

std::string numa_limit_text(NumaPolicy policy, const std::set<int>& vm_nodes) {
    if (policy != NumaPolicy::required || vm_nodes.empty()) return "";
    return cat(" on the VM's NUMA ", nodes_text(vm_nodes), " (numa=required)");
}

}  // namespace sriovpt
