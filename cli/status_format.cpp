#include "status_format.hpp"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <set>

#include "error.hpp"
#include "placement.hpp"
#include "text.hpp"

namespace sriovpt::cli {

std::string_view vf_state_name(VfState s) {
    switch (s) {
        case VfState::free: return "free";
        case VfState::held: return "held";
        case VfState::stale: return "stale";
        case VfState::damaged: return "damaged";
        case VfState::assigned: return "foreign (bound to vfio-pci without a reservation)";
        case VfState::host_up: return "foreign (host netdev up)";
        case VfState::in_domain: return "foreign (used by a libvirt domain)";
        case VfState::resetting: return "reset pending";
    }
    return "?";
}

namespace {

std::string_view state_key(VfState s) {
    switch (s) {
        case VfState::assigned: return "foreign-assigned";
        case VfState::host_up: return "foreign-netdev-up";
        case VfState::in_domain: return "foreign-domain";
        case VfState::resetting: return "reset-pending";
        default: return vf_state_name(s);
    }
}

// A JSON list of NUMA nodes, null when not known.
std::string numa_nodes_json(const std::optional<std::set<int>>& nodes) {
    if (!nodes) return "null";
    std::string out = "[";
    for (const int n : *nodes) out += cat(out.size() > 1 ? ", " : "", n);
    return out + "]";
}

// {"trust": "on", "max_tx_rate": 1000, ...}: what is known, nothing else.
std::string settings_json(const VfSettings& s) {
    std::vector<std::string> parts;
    const auto on_off = [](bool on) { return json_string(on ? "on" : "off"); };
    if (s.trust) parts.push_back(cat("\"trust\": ", on_off(*s.trust)));
    if (s.spoofchk) parts.push_back(cat("\"spoofchk\": ", on_off(*s.spoofchk)));
    if (s.max_tx_rate) parts.push_back(cat("\"max_tx_rate\": ", *s.max_tx_rate));
    if (s.min_tx_rate) parts.push_back(cat("\"min_tx_rate\": ", *s.min_tx_rate));
    if (s.link_state) parts.push_back(cat("\"link_state\": ", json_string(*s.link_state)));
    return "{" + join(parts, ", ") + "}";
}

}  // namespace

std::string json_string(std::string_view s) {
    std::string out = "\"";
    // JSON is Unicode: bytes that are not UTF-8 (a file name can hold any) become U+FFFD.
    for (const char c : valid_utf8(s)) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\t': out += "\\t"; break;
            case '\r': out += "\\r"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += c;
                }
        }
    }
    return out + "\"";
}

std::string format_status_json(const HostStatus& status) {
    const auto opt = [](const std::optional<std::string>& s) { return s ? json_string(*s) : std::string("null"); };
    std::string out = "{\"vfs\": [";
    bool first = true;
    for (const auto& s : status.vfs) {
        out += first ? "\n  " : ",\n  ";
        first = false;
        const auto& vf = s.vf;
        out += cat("{\"pci\": ", json_string(vf.pci.to_string()), ", \"pf\": ", json_string(vf.pf),
                   ", \"vf_index\": ", vf.index, ", \"numa_node\": ", vf.numa_node,
                   ", \"driver\": ", vf.driver.empty() ? std::string("null") : json_string(vf.driver),
                   ", \"network\": ", opt(s.network), ", \"holder\": ");
        if (s.holder) {
            const auto& h = *s.holder;
            out += cat("{\"vm_id\": ", json_string(h.vm_id), ", \"mac\": ", json_string(h.mac),
                       ", \"vlan\": ", h.vlan ? std::to_string(*h.vlan) : std::string("null"),
                       ", \"since\": ", h.created, ", \"origin\": ", json_string(h.origin),
                       ", \"numa_nodes\": ", numa_nodes_json(s.holder_numa_nodes), "}");
        } else {
            out += "null";
        }
        out += cat(", \"state\": ", json_string(state_key(s.state)),
                   ", \"netdev\": ", vf.netdev.empty() ? std::string("null") : json_string(vf.netdev),
                   ", \"iommu_group\": ", vf.iommu_group ? std::to_string(*vf.iommu_group) : std::string("null"),
                   ", \"note\": ", s.note.empty() ? std::string("null") : json_string(s.note),
                   ", \"vf_settings\": ", s.settings ? settings_json(*s.settings) : std::string("null"),
                   ", \"vf_settings_from\": ", s.settings ? json_string(s.settings_from) : std::string("null"), "}");
    }
    out += first ? "]" : "\n]";
    out += ", \"pfs\": [";
    for (size_t i = 0; i < status.pfs.size(); ++i) {
        const auto& pf = status.pfs[i];
        out += cat(i ? ",\n  " : "\n  ", "{\"name\": ", json_string(pf.name),
                   ", \"pci\": ", pf.pci ? json_string(pf.pci->to_string()) : std::string("null"),
                   ", \"num_vfs\": ", pf.num_vfs, ", \"total_vfs\": ", pf.total_vfs,
                   ", \"link\": ", json_string(pf.operstate),
                   ", \"problem\": ", pf.problem.empty() ? std::string("null") : json_string(pf.problem), "}");
    }
    out += status.pfs.empty() ? "]" : "\n]";
    out += ", \"notes\": [";
    for (size_t i = 0; i < status.notes.size(); ++i) out += (i ? ", " : "") + json_string(status.notes[i]);
    return out + "]}\n";
}

std::string format_status_table(const HostStatus& status) {
    std::vector<std::vector<std::string>> rows{
        {"PF", "VF", "PCI", "NUMA", "DRIVER", "NETWORK", "STATE", "HOLDER", "HOLDER NUMA"}};
    for (const auto& s : status.vfs) {
        const auto& vf = s.vf;
        std::string holder = s.holder ? cat(s.holder->vm_id, " ", s.holder->mac) : std::string("-");
        std::string state(vf_state_name(s.state));
        if (!s.note.empty()) state += ": " + s.note;
        rows.push_back({vf.pf, std::to_string(vf.index), vf.pci.to_string(),
                        vf.numa_node < 0 ? std::string("-") : std::to_string(vf.numa_node),
                        vf.driver.empty() ? std::string("-") : vf.driver, s.network.value_or("-"), state, holder,
                        !s.holder_numa_nodes ? std::string("-")
                        : s.holder_numa_nodes->empty() ? std::string("any")
                                                       : node_list(*s.holder_numa_nodes)});
    }
    std::vector<size_t> width(rows.front().size(), 0);
    for (const auto& row : rows) {
        for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    }
    std::string out;
    for (const auto& row : rows) {
        std::string line;
        for (size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
        }
        out += line + "\n";
    }
    for (const auto& pf : status.pfs) {
        if (pf.num_vfs == 0 && pf.problem.empty())
            out += cat(pf.name, ": SR-IOV PF with no VFs enabled (sriov_numvfs 0 of ", pf.total_vfs, ")\n");
    }
    if (status.pfs.empty()) out += "(no SR-IOV PF found)\n";
    for (const auto& s : status.vfs) {
        if (s.settings)
            out += cat("VF ", s.vf.pci.to_string(), " (", s.vf.pf, " VF ", s.vf.index, ") settings: ",
                       describe_vf_settings(*s.settings), " (from the ", s.settings_from, ")\n");
    }
    for (const auto& note : status.notes) out += "note: " + printable(note, 4096) + "\n";
    return out;
}

}  // namespace sriovpt::cli
