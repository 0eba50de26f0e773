#include "allocator.hpp"

#include <algorithm>
#include <map>
#include <tuple>

#include "error.hpp"
#include "text.hpp"
#include "vf_settings.hpp"

namespace sriovpt {

std::optional<std::string> staleness(const Reservation& r, const std::string& boot_id, std::int64_t now,
                                     unsigned grace, const std::set<std::string>* running) {
    if (!r.boot_id.empty() && !boot_id.empty() && r.boot_id != boot_id) return "made before the host last booted";
    if (now - r.created < static_cast<std::int64_t>(grace)) return std::nullopt;
    if (running && !running->count(r.vm_id)) return cat("VM ", r.vm_id, " is not running");
    return std::nullopt;
}

namespace {

// What libvirt said. It is asked with the store's lock released: a libvirt
// that does not answer must not keep every other hook (a VM destroy that
// only gives VFs back) waiting for the lock. libvirt's state does not follow
// our lock anyway, so an answer from just before taking it is as good as one
// taken under it.
struct LibvirtAnswers {
    bool running_asked = false;
    std::optional<std::set<std::string>> running;     // the answer, when there is one
    std::string running_error;                        // why there is none
    bool in_use_asked = false;
    std::optional<std::map<PciAddress, std::string>> in_use;
    std::string in_use_error;
};

// Thrown (under the lock) by a decision that needs an answer not asked yet:
// the caller drops the lock, asks, and starts over. Not an Error: nothing
// failed.
struct NeedLibvirt {
    bool running = false;
    bool in_use = false;
};

// Asks what `need` says, each question once per call (each may wait
// lock_timeout; a failure is an answer too).
void ask_libvirt(Host& host, LibvirtAnswers& answers, const NeedLibvirt& need) {
    const auto ask = [](bool wanted, bool& asked, auto& answer, std::string& error, auto question) {
        if (!wanted || asked) return;
        asked = true;
        try {
            answer = question();
        } catch (const Error& e) {
            error = e.what();
        }
    };
    ask(need.running, answers.running_asked, answers.running, answers.running_error,
        [&] { return host.domains().running_vm_ids(); });
    ask(need.in_use, answers.in_use_asked, answers.in_use, answers.in_use_error,
        [&] { return host.domains().host_devices_in_use(); });
}

// Runs `attempt` under the store's lock. When it throws NeedLibvirt, the
// lock is released, libvirt asked, and `attempt` run again from a fresh
// look at the store; what an attempt changed before it threw, it undoes
// itself. Each round asks at least one new question, so there are at most
// three.
template <typename F>
auto under_lock_asking_libvirt(Host& host, LibvirtAnswers& answers, F attempt) -> decltype(attempt()) {
    for (;;) {
        NeedLibvirt need;
        {
            const auto lock = host.store().lock();
            try {
                return attempt();
            } catch (const NeedLibvirt& n) {
                need = n;
            }
        }
        if ((!need.running || answers.running_asked) && (!need.in_use || answers.in_use_asked))
            fail("internal error: libvirt was asked the same question twice");
        ask_libvirt(host, answers, need);
    }
}

// The store as read under the lock, kept up to date as this process changes it.
struct Snapshot {
    std::vector<RecordEntry> entries;

    std::set<PciAddress> blocked() const {  // every VF with a record file, good or bad
        std::set<PciAddress> out;
        for (const auto& e : entries) {
            if (e.pci) out.insert(*e.pci);
            if (e.record) out.insert(e.record->pci);
        }
        return out;
    }
    unsigned held_on(const std::string& pf) const {
        return static_cast<unsigned>(std::count_if(entries.begin(), entries.end(),
                                                   [&](const auto& e) { return e.record && e.record->pf == pf; }));
    }
    const Reservation* find(const std::string& vm_id, const std::string& mac) const {
        for (const auto& e : entries) {
            // A record that waits for its VF's reset is no longer the vNIC's.
            if (e.record && e.record->vm_id == vm_id && e.record->mac == mac && !awaits_reset(*e.record))
                return &*e.record;
        }
        return nullptr;
    }
    void erase(const PciAddress& pci) {
        std::erase_if(entries, [&](const auto& e) { return e.record && e.record->pci == pci; });
    }
};

// Whether a VF held for the vNIC already serves `req` as it asks now: the
// same network, a PF of its pool, the same VLAN, and under numa=required a
// PF on the VM's nodes.
bool serves(const Reservation& held, const VnicRequest& req, const Sysfs& sysfs) {
    const auto at = std::find(req.pfs.begin(), req.pfs.end(), held.pf);
    if (held.network != req.network || held.vlan != req.vlan || at == req.pfs.end()) return false;
    // NUMA: under `required`, a leftover on another node than the VM's does not serve.
    if (req.numa != NumaPolicy::required || req.vm_nodes.empty()) return true;
    const auto numa = pool_placement(sysfs, req.numa, req.vm_nodes, req.pfs, req.pf_nodes);
    return numa.ranks[static_cast<size_t>(at - req.pfs.begin())] != kNumaExcluded;
}

// What was seen on one PF while looking for a free VF, for the message when
// there is none.
struct PfTally {
    std::string name;
    std::string missing;    // why the PF cannot serve, if it cannot
    unsigned vfs = 0;
    unsigned held = 0;
    unsigned assigned = 0;  // bound to vfio-pci/pci-stub without a record
    unsigned netdev_up = 0;
    unsigned in_domains = 0;
    unsigned absent = 0;    // virtfn link missing or dangling

    std::string describe() const {
        if (!missing.empty()) return cat(name, " ", missing);
        if (held == vfs) return cat("all ", vfs, " VFs of ", name, " are held");
        std::vector<std::string> parts{cat(held, " held")};
        if (absent) parts.push_back(cat(absent, " missing from sysfs (virtfn link absent or dangling)"));
        if (assigned) parts.push_back(cat(assigned, " bound to vfio-pci without a reservation"));
        if (netdev_up) parts.push_back(cat(netdev_up, " in use by the host (netdev up)"));
        if (in_domains) parts.push_back(cat(in_domains, " used by a running libvirt domain"));
        return cat(name, " has ", vfs, " VFs: ", join(parts));
    }
};

class Chooser {
public:
    Chooser(Host& host, const Snapshot& snapshot, const LibvirtAnswers& answers)
        : host_(host), snapshot_(snapshot), answers_(answers) {}

    // The free VF for `req`, or nullopt with `tallies` saying why there is none.
    // PFs are tried least held first (pool order breaks ties), and sysfs is
    // read only for the PFs tried: a start usually reads one PF and one VF.
    std::optional<VfInfo> choose(const VnicRequest& req, std::vector<PfTally>& tallies) {
        tallies.assign(req.pfs.size(), PfTally{});
        const auto blocked = snapshot_.blocked();
        // --- NUMA (placement.hpp): the rank goes before the balancing, which
        // stays among PFs of equal rank; excluded PFs are not tried.
        const auto numa = pool_placement(host_.sysfs(), req.numa, req.vm_nodes, req.pfs, req.pf_nodes);
        std::vector<std::tuple<int, unsigned, size_t>> order;  // (NUMA rank, held, position in the pool)
        for (size_t k = 0; k < req.pfs.size(); ++k) {
            if (numa.ranks[k] == kNumaExcluded) {
                tallies[k].name = req.pfs[k];
                tallies[k].missing = excluded_pf_text(numa.nodes[k], req.vm_nodes);
                continue;
            }
            order.emplace_back(numa.ranks[k], snapshot_.held_on(req.pfs[k]), k);
        }
        std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
            return std::tie(std::get<0>(a), std::get<1>(a)) < std::tie(std::get<0>(b), std::get<1>(b));
        });
        // --- end NUMA
        for (const auto& [rank, held, k] : order) {
            const auto& name = req.pfs[k];
            auto& tally = tallies[k];
            tally.name = name;
            const auto& pf = pf_info(name);
            if (!pf) {
                tally.missing = "is not an SR-IOV PF on this host (no class/net/" + name + "/device/sriov_totalvfs)";
                continue;
            }
            if (!pf->problem.empty()) {
                tally.missing = "cannot be used: " + pf->problem;
                continue;
            }
            if (pf->num_vfs == 0) {
                tally.missing = "has no VFs enabled (sriov_numvfs is 0)";
                continue;
            }
            tally.vfs = pf->num_vfs;
            for (unsigned i = 0; i < pf->num_vfs; ++i) {
                const auto pci = host_.inventory().vf_address(*pf, i);
                if (!pci) {
                    ++tally.absent;
                    continue;
                }
                if (blocked.count(*pci)) {
                    ++tally.held;
                    continue;
                }
                auto vf = host_.inventory().vf(*pf, i);
                if (!vf) {
                    ++tally.absent;
                    continue;
                }
                if (is_assignment_driver(vf->driver)) {
                    ++tally.assigned;
                } else if (vf->netdev_state == "up") {
                    ++tally.netdev_up;
                } else if (used_by_domains(*pci)) {
                    ++tally.in_domains;
                } else {
                    return vf;
                }
            }
        }
        return std::nullopt;
    }

private:
    // The PF as sysfs shows it, read once per reservation (it does not
    // change under a hook, and each read resolves several symlinks).
    const std::optional<PfInfo>& pf_info(const std::string& name) {
        auto it = pfs_.find(name);
        if (it == pfs_.end()) it = pfs_.emplace(name, host_.inventory().pf(name)).first;
        return it->second;
    }

    bool used_by_domains(const PciAddress& pci) {
        if (!host_.config().check_domains) return false;
        if (!answers_.in_use_asked) throw NeedLibvirt{false, true};
        if (!answers_.in_use)
            fail("checking the VF against running libvirt domains (check_domains = yes): ", answers_.in_use_error);
        return answers_.in_use->count(pci) != 0;
    }

    Host& host_;
    const Snapshot& snapshot_;
    const LibvirtAnswers& answers_;
    std::map<std::string, std::optional<PfInfo>> pfs_;
};

// Removes the stale records of `snapshot` (from the store too unless
// dry_run); returns them with their reasons. Records of the VMs in `spare`
// are kept whatever their age: a VM being started right now is not yet a
// domain libvirt knows, and its records include those this very call made.
// Needs libvirt's answer (throws NeedLibvirt until it has it) only when some
// record is old enough for it to matter; `note` says why there was none.
// Throws before it changes anything.
std::vector<std::pair<Reservation, std::string>> reclaim_stale(Host& host, Snapshot& snapshot, bool dry_run,
                                                               std::string& note, const LibvirtAnswers& answers,
                                                               const std::set<std::string>& spare = {}) {
    const auto& config = host.config();
    const auto now = host.now();
    const auto spared = [&](const RecordEntry& e) { return e.record && spare.count(e.record->vm_id) != 0; };
    bool need_libvirt = false;
    for (const auto& e : snapshot.entries) {
        if (e.record && !spared(e) && !staleness(*e.record, host.boot_id, now, config.reclaim_grace, nullptr) &&
            now - e.record->created >= static_cast<std::int64_t>(config.reclaim_grace))
            need_libvirt = true;
    }
    const std::set<std::string>* running = nullptr;
    if (need_libvirt) {
        if (!answers.running_asked) throw NeedLibvirt{true, false};
        if (answers.running)
            running = &*answers.running;
        else
            note = cat("could not ask libvirt which VMs run, so no reservation of this boot was reclaimed: ",
                       answers.running_error);
    }
    std::vector<std::pair<Reservation, std::string>> reclaimed;
    auto& entries = snapshot.entries;
    for (auto it = entries.begin(); it != entries.end();) {
        // A record already given back and waiting for its reset has no holder
        // to reclaim from (finish_resets, vf_settings.hpp); one of an earlier
        // boot goes like any other.
        const bool resetting = it->record && awaits_reset(*it->record) &&
                               (it->record->boot_id.empty() || host.boot_id.empty() ||
                                it->record->boot_id == host.boot_id);
        const auto why = it->record && !spared(*it) && !resetting
                             ? staleness(*it->record, host.boot_id, now, config.reclaim_grace, running)
                             : std::nullopt;
        if (!why) {
            ++it;
            continue;
        }
        reclaimed.emplace_back(*it->record, *why);
        if (!dry_run) {
            // A VF with settings stays blocked, its record marked, until reset.
            if (const auto kept = retire_record(host.store(), *it->record, host.boot_id); kept && kept->reset_pending) {
                it->record = *kept;
                ++it;
                continue;
            }
        }
        it = entries.erase(it);
    }
    return reclaimed;
}

Snapshot read_snapshot(Host& host) { return Snapshot{host.store().load()}; }

}  // namespace

std::vector<Grant> Allocator::reserve(const std::vector<VnicRequest>& requests) {
    auto& store = host_.store();
    std::set<std::string> starting;
    for (const auto& req : requests) starting.insert(req.vm_id);
    // Leftovers given back, by vNIC: kept across attempts, as giving back is
    // not undone.
    std::map<std::pair<std::string, std::string>, Reservation> replaced;
    LibvirtAnswers answers;
    return under_lock_asking_libvirt(host_, answers, [&] {
        auto snapshot = read_snapshot(host_);
        Chooser chooser(host_, snapshot, answers);
        std::vector<Grant> grants;
        bool reclaimed_once = false;
        try {
            for (const auto& req : requests) {
                with_context(cat("reserving a VF for vNIC ", req.mac, " on network ", req.network), [&] {
                    while (const auto* held = snapshot.find(req.vm_id, req.mac)) {
                        if (serves(*held, req, host_.sysfs())) {
                            grants.push_back({*held, false, {}});
                            return;
                        }
                        // A leftover of an earlier life of this vNIC (an
                        // after_* hook was killed or timed out) that was
                        // made for another network, pool or VLAN: never
                        // reused, given back for good (nothing runs on it:
                        // the vNIC is being started now), then a VF is
                        // planned afresh, possibly the same one.
                        const auto old = *held;
                        const auto kept = retire_record(store, old, host_.boot_id);
                        snapshot.erase(old.pci);
                        if (kept && kept->reset_pending)
                            snapshot.entries.push_back(RecordEntry{ReservationStore::file_name(old.pci), old.pci, kept, ""});
                        replaced.insert_or_assign({req.vm_id, req.mac}, old);
                    }
                    std::vector<PfTally> tallies;
                    for (;;) {
                        auto vf = chooser.choose(req, tallies);
                        if (!vf && !reclaimed_once) {
                            // Only now is libvirt worth its cost: the pool is dry,
                            // and records of VMs that died unseen may be refilling it.
                            reclaimed_once = true;
                            std::string note;
                            if (!reclaim_stale(host_, snapshot, false, note, answers, starting).empty()) continue;
                            if (!note.empty()) {
                                PfTally t;
                                t.missing = note;
                                tallies.push_back(t);
                            }
                        }
                        if (!vf) {
                            std::vector<std::string> why;
                            for (const auto& t : tallies) why.push_back(t.name.empty() ? t.missing : t.describe());
                            fail("no free VF", numa_limit_text(req.numa, req.vm_nodes), " (", join(why, "; "), ")");
                        }
                        Reservation r;
                        r.pci = vf->pci;
                        r.pf = vf->pf;
                        r.vf_index = vf->index;
                        r.vm_id = req.vm_id;
                        r.mac = req.mac;
                        r.network = req.network;
                        r.vlan = req.vlan;
                        r.boot_id = host_.boot_id;
                        r.created = host_.now();
                        r.origin = req.origin;
                        r.vf_settings = req.vf_settings;
                        const bool created = store.create(r);
                        // A record under the lock that we did not see means
                        // someone wrote without it; skip that VF either way.
                        snapshot.entries.push_back(RecordEntry{ReservationStore::file_name(r.pci), r.pci,
                                                               created ? std::optional(r) : std::nullopt, ""});
                        if (!created) continue;
                        std::optional<Reservation> leftover;
                        if (const auto it = replaced.find({req.vm_id, req.mac}); it != replaced.end())
                            leftover = it->second;
                        grants.push_back({r, true, leftover});
                        return;
                    }
                });
            }
        } catch (...) {
            // Failed, or needs libvirt first: what this attempt created goes.
            for (const auto& g : grants) {
                if (g.created) store.remove(g.reservation.pci);
            }
            throw;
        }
        pending_resets_.clear();
        for (const auto& e : snapshot.entries) {
            if (e.record && awaits_reset(*e.record)) pending_resets_.push_back(*e.record);
        }
        return grants;
    });
}

void Allocator::undo(const std::vector<Grant>& grants) {
    if (std::none_of(grants.begin(), grants.end(), [](const auto& g) { return g.created; })) return;
    auto& store = host_.store();
    const auto lock = store.lock();
    const auto snapshot = read_snapshot(host_);
    // Only a VF whose record is still the one this grant wrote: since then it
    // may have been released or reclaimed and given to another vNIC.
    for (const auto& g : grants) {
        if (!g.created) continue;
        const auto same = std::any_of(snapshot.entries.begin(), snapshot.entries.end(),
                                      [&](const auto& e) { return e.record && *e.record == g.reservation; });
        if (same) retire_record(store, g.reservation, host_.boot_id);
    }
}

std::vector<Reservation> Allocator::release(const std::string& vm_id, const std::optional<std::string>& mac) {
    auto& store = host_.store();
    const auto lock = store.lock();
    std::vector<Reservation> released;
    for (const auto& e : store.load()) {
        if (!e.record || e.record->vm_id != vm_id || (mac && e.record->mac != *mac)) continue;
        if (auto gone = retire_record(store, *e.record, host_.boot_id)) released.push_back(std::move(*gone));
    }
    return released;
}

bool Allocator::release_vf(const PciAddress& pci) {
    auto& store = host_.store();
    const auto lock = store.lock();
    for (const auto& e : store.load()) {
        if (e.record && e.record->pci == pci) return retire_record(store, *e.record, host_.boot_id).has_value();
    }
    return store.remove(pci);
}

std::optional<Reservation> Allocator::adopt(const Reservation& r) {
    auto& store = host_.store();
    const auto lock = store.lock();
    for (const auto& e : store.load()) {
        if (e.record && e.record->pci == r.pci) {
            // A record that waits for its VF's reset is nobody's to adopt:
            // the reset would undo what the new holder's settings need.
            if (e.record->vm_id == r.vm_id && e.record->mac == r.mac && !awaits_reset(*e.record)) return std::nullopt;
            return e.record;
        }
        if (e.pci == r.pci) fail("the record of VF ", r.pci.to_string(), " is damaged: ", e.problem);
    }
    if (!store.create(r)) fail("VF ", r.pci.to_string(), " was reserved by a process that did not take the lock");
    return std::nullopt;
}

GcReport Allocator::collect_garbage(bool dry_run) {
    auto& store = host_.store();
    LibvirtAnswers answers;
    return under_lock_asking_libvirt(host_, answers, [&] {
        GcReport report;
        auto snapshot = read_snapshot(host_);
        for (const auto& e : snapshot.entries) {
            if (!e.record) report.notes.push_back(cat(store.dir(), "/", e.file, ": ", e.problem, " (left in place)"));
        }
        std::string note;
        // First, as it may need libvirt before it changes anything.
        report.reclaimed = reclaim_stale(host_, snapshot, dry_run, note, answers);
        if (!note.empty()) report.notes.push_back(note);
        if (!dry_run) report.temporaries = store.remove_temporaries();
        return report;
    });
}

}  // namespace sriovpt
