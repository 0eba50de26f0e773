#include "status.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "error.hpp"
#include "text.hpp"

namespace sriovpt {

std::string_view vf_state_name(VfState s) {
    switch (s) {
        case VfState::free: return "free";
        case VfState::held: return "held";
        case VfState::stale: return "stale";
        case VfState::damaged: return "damaged";
        case VfState::assigned: return "foreign (bound to vfio-pci without a reservation)";
        case VfState::host_up: return "foreign (host netdev up)";
        case VfState::in_domain: return "foreign (used by a libvirt domain)";
    }
    return "?";
}

namespace {

std::string_view state_key(VfState s) {
    switch (s) {
        case VfState::assigned: return "foreign-assigned";
        case VfState::host_up: return "foreign-netdev-up";
        case VfState::in_domain: return "foreign-domain";
        default: return vf_state_name(s);
    }
}

}  // namespace

HostStatus collect_status(Host& host, bool ask_libvirt) {
    HostStatus status;
    const auto& config = host.config();
    const auto entries = host.store().load();
    std::map<PciAddress, const RecordEntry*> by_pci;
    for (const auto& e : entries) {
        if (e.pci) by_pci[*e.pci] = &e;
    }
    std::optional<std::set<std::string>> running;
    std::map<PciAddress, std::string> in_domains;
    if (ask_libvirt && config.libvirt_enabled()) {
        try {
            running = host.domains().running_vm_ids();
            in_domains = host.domains().host_devices_in_use();
        } catch (const Error& e) {
            status.notes.push_back(cat("libvirt not asked, stale and domain-used VFs are not shown: ", e.what()));
        }
    }
    std::set<PciAddress> seen;
    const auto now = host.now();
    status.pfs = host.inventory().all_pfs();
    for (const auto& pf : status.pfs) {
        if (!pf.problem.empty())
            status.notes.push_back(cat("PF ", pf.name, " cannot be used: ", pf.problem));
        std::vector<std::string> missing;
        std::optional<std::string> network;
        if (const auto* pool = config.network_of_pf(pf.name)) network = pool->name;
        for (auto& vf : host.inventory().vfs(pf, &missing)) {
            VfStatus s;
            s.network = network;
            seen.insert(vf.pci);
            const RecordEntry* record = nullptr;
            std::optional<std::string> stale;
            if (const auto it = by_pci.find(vf.pci); it != by_pci.end()) {
                record = it->second;
                if (record->record) {
                    s.holder = record->record;
                    stale = staleness(*record->record, host.boot_id, now, config.reclaim_grace,
                                      running ? &*running : nullptr);
                }
            }
            const auto user = in_domains.find(vf.pci);
            s.state = classify_vf(record, stale, vf, [&] { return user != in_domains.end(); });
            if (s.state == VfState::damaged) s.note = record->problem;
            if (s.state == VfState::stale) s.note = *stale;
            if (s.state == VfState::in_domain) s.note = cat("VM ", user->second);
            s.vf = std::move(vf);
            status.vfs.push_back(std::move(s));
        }
        for (const auto& m : missing)
            status.notes.push_back(cat("PF ", pf.name, ": ", m, ": that VF is missing from sysfs and is never given"));
    }
    for (const auto& e : entries) {
        if (!e.pci || !seen.count(*e.pci))
            status.notes.push_back(cat("record ", host.store().dir(), "/", e.file, " names no VF of this host",
                                       e.record ? cat(" (held by VM ", e.record->vm_id, " vNIC ", e.record->mac, ")")
                                                : cat(": ", e.problem)));
    }
    return status;
}

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
                       ", \"since\": ", h.created, ", \"origin\": ", json_string(h.origin), "}");
        } else {
            out += "null";
        }
        out += cat(", \"state\": ", json_string(state_key(s.state)),
                   ", \"netdev\": ", vf.netdev.empty() ? std::string("null") : json_string(vf.netdev),
                   ", \"iommu_group\": ", vf.iommu_group ? std::to_string(*vf.iommu_group) : std::string("null"),
                   ", \"note\": ", s.note.empty() ? std::string("null") : json_string(s.note), "}");
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
    std::vector<std::vector<std::string>> rows{{"PF", "VF", "PCI", "NUMA", "DRIVER", "NETWORK", "STATE", "HOLDER"}};
    for (const auto& s : status.vfs) {
        const auto& vf = s.vf;
        std::string holder = s.holder ? cat(s.holder->vm_id, " ", s.holder->mac) : std::string("-");
        std::string state(vf_state_name(s.state));
        if (!s.note.empty()) state += ": " + s.note;
        rows.push_back({vf.pf, std::to_string(vf.index), vf.pci.to_string(),
                        vf.numa_node < 0 ? std::string("-") : std::to_string(vf.numa_node),
                        vf.driver.empty() ? std::string("-") : vf.driver, s.network.value_or("-"), state, holder});
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
    for (const auto& note : status.notes) out += "note: " + printable(note, 4096) + "\n";
    return out;
}

}  // namespace sriovpt
