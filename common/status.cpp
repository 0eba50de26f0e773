#include "status.hpp"

#include <algorithm>
#include <future>
#include <map>
#include <set>
#include <system_error>

#include "error.hpp"
#include "placement.hpp"
#include "text.hpp"

namespace sriovpt {

namespace {

// The NUMA nodes of each running holder, one libvirt question per VM.
// The first failure stops the questions (libvirt answering slowly would make
// each of them wait lock_timeout) and becomes a note.
void add_holder_numa_nodes(Host& host, const std::optional<std::set<std::string>>& running, HostStatus& status) {
    if (!running) return;
    std::map<std::string, std::set<int>> nodes_of_vm;
    for (auto& s : status.vfs) {
        if (!s.holder || !running->count(s.holder->vm_id)) continue;
        const auto& vm_id = s.holder->vm_id;
        auto it = nodes_of_vm.find(vm_id);
        if (it == nodes_of_vm.end()) {
            try {
                pugi::xml_document doc;
                const auto xml = host.domains().domain_xml(vm_id);
                if (!doc.load_string(xml.c_str())) fail("libvirt's XML of domain ", vm_id, " does not parse");
                it = nodes_of_vm.emplace(vm_id, vm_placement(doc.child("domain"), host.sysfs()).nodes).first;
            } catch (const Error& e) {
                status.notes.push_back(cat("the NUMA nodes of the VMs holding VFs are not shown: ", e.what()));
                for (auto& other : status.vfs) other.holder_numa_nodes.reset();
                return;
            }
        }
        s.holder_numa_nodes = it->second;
    }
}

}  // namespace

HostStatus collect_status(Host& host, bool ask_libvirt) {
    HostStatus status;
    const auto& config = host.config();
    // The records are read while sysfs is: both are thousands of small
    // reads on a full host. Everything the reading thread touches is built
    // before it starts (Host builds its parts on first use).
    auto& store = host.store();
    const auto& inventory = host.inventory();
    std::future<std::vector<RecordEntry>> loading;
    try {
        loading = std::async(std::launch::async, [&store] { return store.load(); });
    } catch (const std::system_error&) {
        // No thread to be had: one after the other.
    }
    auto scanned = inventory.scan();
    const auto entries = loading.valid() ? loading.get() : store.load();
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
    for (auto& [pf, vfs, missing] : scanned) {
        if (!pf.problem.empty())
            status.notes.push_back(cat("PF ", pf.name, " cannot be used: ", pf.problem));
        std::optional<std::string> network;
        if (const auto* pool = config.network_of_pf(pf.name)) network = pool->name;
        status.pfs.push_back(pf);
        for (auto& vf : vfs) {
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
                    if (!record->record->vf_settings.empty()) {
                        s.settings = record->record->vf_settings;
                        s.settings_from = "record";
                    }
                }
            }
            const auto user = in_domains.find(vf.pci);
            s.state = classify_vf(record, stale, vf, [&] { return user != in_domains.end(); });
            if (s.state == VfState::damaged) s.note = record->problem;
            if (s.state == VfState::stale) s.note = *stale;
            if (s.state == VfState::resetting)
                s.note = "given back; its VF settings wait for a reset (sriov-passthrough gc retries)";
            if (s.state == VfState::in_domain) s.note = cat("VM ", user->second);
            s.vf = std::move(vf);
            status.vfs.push_back(std::move(s));
        }
        for (const auto& m : missing)
            status.notes.push_back(cat("PF ", pf.name, ": ", m, ": that VF is missing from sysfs and is never given"));
    }
    add_holder_numa_nodes(host, running, status);
    for (const auto& e : entries) {
        if (!e.pci || !seen.count(*e.pci))
            status.notes.push_back(cat("record ", host.store().dir(), "/", e.file, " names no VF of this host",
                                       e.record ? cat(" (held by VM ", e.record->vm_id, " vNIC ", e.record->mac, ")")
                                                : cat(": ", e.problem)));
    }
    return status;
}

}  // namespace sriovpt
