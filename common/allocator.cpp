#include "allocator.hpp"

#include <algorithm>
#include <map>
#include <tuple>

#include "error.hpp"
#include "text.hpp"
#include "vf_settings.hpp"
#include "vf_state.hpp"

namespace sriovpt {

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

// Whether a VF held for the vNIC already serves `req` as it asks now: the
// same network, a PF of its pool, the same VLAN, and under numa=required a
// PF on the VM's nodes.
bool serves(const Reservation& held, const VnicRequest& req, const Sysfs& sysfs) {
    const auto at = std::find(req.pfs.begin(), req.pfs.end(), held.pf);
    if (held.network != req.network || held.vlan != req.vlan || at == req.pfs.end()) return false;
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

// Why a pool has no free VF: what was seen on each of its PFs, and what
// could not be checked.
struct Shortage {
    std::vector<PfTally> pfs;
    std::string note;

    std::string describe() const {
        std::vector<std::string> why;
        for (const auto& t : pfs) why.push_back(t.describe());
        if (!note.empty()) why.push_back(note);
        return join(why, "; ");
    }
};

// The store as one reservation sees it, under the lock: read through the
// index, only what the choice asks for (the vNIC's own records, the held
// VFs of the PFs it tries, whether a VF has a record), and kept up to date
// with what this call changes.
class StoreView {
public:
    explicit StoreView(ReservationStore& store) : store_(store) {}

    // The records of the vNIC vm_id+mac, by PCI address.
    std::vector<Reservation> records_of(const std::string& vm_id, const std::string& mac) {
        auto it = vms_.find(vm_id);
        if (it == vms_.end()) it = vms_.emplace(vm_id, store_.records_of_vm(vm_id)).first;
        std::vector<Reservation> out;
        for (const auto& r : it->second) {
            if (r.vm_id == vm_id && r.mac == mac) out.push_back(r);
        }
        return out;
    }

    // How many VFs of `pf` are held.
    unsigned held_count(const std::string& pf) {
        if (const auto it = pfs_.find(pf); it != pfs_.end()) return static_cast<unsigned>(it->second.size());
        auto it = counts_.find(pf);
        if (it == counts_.end()) it = counts_.emplace(pf, store_.held_on_pf(pf)).first;
        return it->second;
    }

    // The VF indexes of `pf` that are held, sorted.
    const std::vector<unsigned>& held_on(const std::string& pf) {
        auto it = pfs_.find(pf);
        if (it == pfs_.end()) {
            // None held, by the count file: no listing. (A record the index
            // misses is still seen, by has_record.)
            auto held = held_count(pf) == 0 ? std::vector<unsigned>{} : store_.indexed_on_pf(pf);
            it = pfs_.emplace(pf, std::move(held)).first;
        }
        return it->second;
    }

    bool has_record(const PciAddress& pci) const { return lost_.count(pci) || store_.has_record(pci); }

    // Writes `r`; false when its VF turned out to have a record already.
    bool create(const Reservation& r) {
        if (!store_.create(r)) {
            // Written by someone who did not take the lock: never that VF.
            lost_.insert(r.pci);
            return false;
        }
        if (const auto it = vms_.find(r.vm_id); it != vms_.end()) it->second.push_back(r);
        if (const auto it = pfs_.find(r.pf); it != pfs_.end())
            it->second.insert(std::lower_bound(it->second.begin(), it->second.end(), r.vf_index), r.vf_index);
        if (const auto it = counts_.find(r.pf); it != counts_.end()) ++it->second;
        return true;
    }

    // Gives `r` back (retire_record): a record with VF settings stays,
    // marked, blocking its VF until the reset; it is then in `pending`.
    void give_back(const Reservation& r, const std::string& boot_id, std::vector<Reservation>& pending) {
        const auto kept = retire_record(store_, r, boot_id);
        if (const auto it = vms_.find(r.vm_id); it != vms_.end()) std::erase(it->second, r);
        if (kept && kept->reset_pending) {
            pending.push_back(*kept);
            return;  // still held on its PF
        }
        if (const auto it = pfs_.find(r.pf); it != pfs_.end()) {
            const auto at = std::lower_bound(it->second.begin(), it->second.end(), r.vf_index);
            if (at != it->second.end() && *at == r.vf_index) it->second.erase(at);
        }
        if (const auto it = counts_.find(r.pf); it != counts_.end() && it->second > 0) --it->second;
    }

    // After records were reclaimed or the index repaired behind its back.
    void forget() {
        vms_.clear();
        pfs_.clear();
        counts_.clear();
    }

private:
    ReservationStore& store_;
    std::map<std::string, std::vector<Reservation>> vms_;
    std::map<std::string, std::vector<unsigned>> pfs_;   // listed: the PFs walked
    std::map<std::string, unsigned> counts_;            // counted: the PFs ordered
    std::set<PciAddress> lost_;
};

class Chooser {
public:
    Chooser(Host& host, StoreView& view, const LibvirtAnswers& answers) : host_(host), view_(view), answers_(answers) {}

    // The free VF for `req`, or nullopt with `why` saying why there is none.
    // sysfs is read only for the PFs tried, in pool_order: a start usually
    // reads one PF and one VF.
    std::optional<VfInfo> choose(const VnicRequest& req, Shortage& why) {
        why = Shortage{};
        why.pfs.assign(req.pfs.size(), PfTally{});
        for (const size_t k : pool_order(req, why)) {
            if (auto vf = free_vf_on(req.pfs[k], why.pfs[k])) return vf;
        }
        return std::nullopt;
    }

private:
    // The order the PFs of the pool are tried in (positions in req.pfs):
    // by NUMA rank (placement.hpp), then the fewest held, the pool's order
    // breaking ties. A PF the NUMA policy excludes is not tried; `why` says so.
    std::vector<size_t> pool_order(const VnicRequest& req, Shortage& why) {
        const auto numa = pool_placement(host_.sysfs(), req.numa, req.vm_nodes, req.pfs, req.pf_nodes);
        std::vector<std::tuple<int, unsigned, size_t>> order;  // (NUMA rank, held, position in the pool)
        for (size_t k = 0; k < req.pfs.size(); ++k) {
            if (numa.ranks[k] == kNumaExcluded) {
                why.pfs[k].name = req.pfs[k];
                why.pfs[k].missing = excluded_pf_text(numa.nodes[k], req.vm_nodes);
                continue;
            }
            order.emplace_back(numa.ranks[k], view_.held_count(req.pfs[k]), k);
        }
        std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
            return std::tie(std::get<0>(a), std::get<1>(a)) < std::tie(std::get<0>(b), std::get<1>(b));
        });
        std::vector<size_t> out;
        for (const auto& entry : order) out.push_back(std::get<2>(entry));
        return out;
    }

    // The free VF of the lowest index on PF `name`, counting in `tally`
    // what the others are.
    std::optional<VfInfo> free_vf_on(const std::string& name, PfTally& tally) {
        tally.name = name;
        const auto& pf = pf_info(name);
        if (!pf) {
            tally.missing = "is not an SR-IOV PF on this host (no class/net/" + name + "/device/sriov_totalvfs)";
            return std::nullopt;
        }
        if (!pf->problem.empty()) {
            tally.missing = "cannot be used: " + pf->problem;
            return std::nullopt;
        }
        if (pf->num_vfs == 0) {
            tally.missing = "has no VFs enabled (sriov_numvfs is 0)";
            return std::nullopt;
        }
        tally.vfs = pf->num_vfs;
        // The index says which are held without a look at sysfs.
        const auto& held = view_.held_on(name);
        for (unsigned i = 0; i < pf->num_vfs; ++i) {
            if (std::binary_search(held.begin(), held.end(), i)) {
                ++tally.held;
                continue;
            }
            auto vf = host_.inventory().vf(*pf, i, Inventory::Detail::usage);
            if (!vf) {
                ++tally.absent;
                continue;
            }
            if (view_.has_record(vf->pci)) {  // a record the index does not list under this PF
                ++tally.held;
                continue;
            }
            switch (classify_vf(nullptr, std::nullopt, *vf, [&] { return used_by_domains(vf->pci); })) {
                case VfState::free: return vf;
                case VfState::assigned: ++tally.assigned; break;
                case VfState::host_up: ++tally.netdev_up; break;
                case VfState::in_domain: ++tally.in_domains; break;
                default: ++tally.held; break;
            }
        }
        return std::nullopt;
    }

    // The PF as sysfs shows it, read once per reservation (it does not
    // change under a hook, and each read resolves several symlinks).
    const std::optional<PfInfo>& pf_info(const std::string& name) {
        auto it = pfs_.find(name);
        if (it == pfs_.end()) it = pfs_.emplace(name, host_.inventory().pf(name, Inventory::Detail::usage)).first;
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
    StoreView& view_;
    const LibvirtAnswers& answers_;
    std::map<std::string, std::optional<PfInfo>> pfs_;
};

// The stale records among `entries` (every record of the store), with their
// reasons. Records of the VMs in `spare` are kept whatever their age: a VM
// being started right now is not yet a domain libvirt knows, and its records
// include those this very call made. Needs libvirt's answer (throws
// NeedLibvirt until it has it) only when some record is old enough for it to
// matter; `note` says why there was none. Changes nothing.
std::vector<std::pair<Reservation, std::string>> stale_records(Host& host, const std::vector<RecordEntry>& entries,
                                                               std::string& note, const LibvirtAnswers& answers,
                                                               const std::set<std::string>& spare = {}) {
    const auto& config = host.config();
    const auto now = host.now();
    const auto judged = [&](const RecordEntry& e) {
        if (!e.record || spare.count(e.record->vm_id)) return false;
        // A record already given back and waiting for its reset has no holder
        // to reclaim from (finish_resets, vf_settings.hpp); one of an earlier
        // boot goes like any other.
        const auto& r = *e.record;
        return !awaits_reset(r) || (!r.boot_id.empty() && !host.boot_id.empty() && r.boot_id != host.boot_id);
    };
    bool need_libvirt = false;
    for (const auto& e : entries) {
        if (judged(e) && !staleness(*e.record, host.boot_id, now, config.reclaim_grace, nullptr) &&
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
    std::vector<std::pair<Reservation, std::string>> out;
    for (const auto& e : entries) {
        if (!judged(e)) continue;
        if (auto why = staleness(*e.record, host.boot_id, now, config.reclaim_grace, running))
            out.emplace_back(*e.record, std::move(*why));
    }
    return out;
}

// One attempt at a reservation, under the lock: what it reads and what it
// has done so far.
struct Attempt {
    Host& host;
    const LibvirtAnswers& answers;
    const std::set<std::string>& starting;   // the VMs of this call: never reclaimed by it
    // Leftovers given back, by vNIC: kept across attempts, as giving back is
    // not undone.
    std::map<std::pair<std::string, std::string>, Reservation>& replaced;
    StoreView view;
    Chooser chooser;
    bool refilled = false;   // the pool was refilled once already
    std::vector<Reservation> pending;   // records seen waiting for their VF's reset

    Attempt(Host& h, const LibvirtAnswers& a, const std::set<std::string>& s,
            std::map<std::pair<std::string, std::string>, Reservation>& r)
        : host(h), answers(a), starting(s), replaced(r), view(h.store()), chooser(h, view, a) {}
};

// The VF the vNIC holds when it still serves `req` as it asks now. A
// leftover of an earlier life of the vNIC (an after_* hook was killed or
// timed out) made for another network, pool or VLAN is never reused: it is
// given back for good (nothing runs on it: the vNIC is being started now)
// and remembered for the grant.
std::optional<Reservation> kept_vf(Attempt& a, const VnicRequest& req) {
    for (const auto& held : a.view.records_of(req.vm_id, req.mac)) {
        // A record that waits for its VF's reset is no longer the vNIC's;
        // the caller retries the reset.
        if (awaits_reset(held)) {
            a.pending.push_back(held);
            continue;
        }
        if (serves(held, req, a.host.sysfs())) return held;
        a.view.give_back(held, a.host.boot_id, a.pending);
        a.replaced.insert_or_assign({req.vm_id, req.mac}, held);
    }
    return std::nullopt;
}

// Gives the pool what can be had back when it ran dry: stale records are
// reclaimed (from a full read of the store), and the index is repaired (a
// crash can leave entries that make a VF look held). True if anything was.
// `note` says what could not be checked.
bool refill_pool(Attempt& a, std::string& note) {
    auto& store = a.host.store();
    const auto entries = store.load();
    // First, as it may need libvirt before it changes anything.
    const auto stale = stale_records(a.host, entries, note, a.answers, a.starting);
    for (const auto& [r, why] : stale) {
        // A VF with settings stays blocked, its record marked, until reset.
        if (const auto kept = retire_record(store, r, a.host.boot_id); kept && kept->reset_pending)
            a.pending.push_back(*kept);
    }
    for (const auto& e : entries) {
        if (e.record && awaits_reset(*e.record)) a.pending.push_back(*e.record);
    }
    const bool repaired = !store.repair_index().empty();
    a.view.forget();
    return !stale.empty() || repaired;
}

// A free VF for `req`; throws Error saying what each PF of the pool holds
// when there is none.
VfInfo free_vf(Attempt& a, const VnicRequest& req) {
    Shortage why;
    if (auto vf = a.chooser.choose(req, why)) return *vf;
    if (!a.refilled) {
        // Only now is libvirt worth its cost: the pool is dry, and records of
        // VMs that died unseen may be refilling it.
        a.refilled = true;
        std::string note;
        if (refill_pool(a, note)) {
            if (auto vf = a.chooser.choose(req, why)) return *vf;
        } else {
            why.note = note;
        }
    }
    fail("no free VF", numa_limit_text(req.numa, req.vm_nodes), " (", why.describe(), ")");
}

Reservation reservation_of(const Host& host, const VnicRequest& req, const VfInfo& vf) {
    Reservation r;
    r.pci = vf.pci;
    r.pf = vf.pf;
    r.vf_index = vf.index;
    r.vm_id = req.vm_id;
    r.mac = req.mac;
    r.network = req.network;
    r.vlan = req.vlan;
    r.vf_settings = req.vf_settings;
    stamp_new_record(host, r, req.origin);
    return r;
}

Grant grant_for(Attempt& a, const VnicRequest& req) {
    if (auto held = kept_vf(a, req)) return Grant{*held, false};
    // The chosen VF can have a record after all only when someone wrote it
    // without the lock; it is then never chosen again, so this ends.
    Reservation r;
    do {
        r = reservation_of(a.host, req, free_vf(a, req));
    } while (!a.view.create(r));
    std::optional<Reservation> leftover;
    if (const auto it = a.replaced.find({req.vm_id, req.mac}); it != a.replaced.end()) leftover = it->second;
    return Grant{r, true, leftover};
}

// Every request served, or none: what this attempt created is given back
// when it fails or needs libvirt first.
std::vector<Grant> grant_all(Attempt& a, const std::vector<VnicRequest>& requests) {
    std::vector<Grant> grants;
    try {
        for (const auto& req : requests) {
            grants.push_back(with_context(cat("reserving a VF for vNIC ", req.mac, " on network ", req.network),
                                          [&] { return grant_for(a, req); }));
        }
    } catch (...) {
        // Made in this attempt and given to no guest: nothing to reset.
        for (const auto& g : grants) {
            if (g.created) a.host.store().remove(g.reservation);
        }
        a.view.forget();
        throw;
    }
    return grants;
}

}  // namespace

void stamp_new_record(const Host& host, Reservation& r, std::string_view origin) {
    r.boot_id = host.boot_id;
    r.created = host.now();
    r.origin = std::string(origin);
}

std::vector<Grant> Allocator::reserve(const std::vector<VnicRequest>& requests) {
    std::set<std::string> starting;
    for (const auto& req : requests) starting.insert(req.vm_id);
    std::map<std::pair<std::string, std::string>, Reservation> replaced;
    LibvirtAnswers answers;
    return under_lock_asking_libvirt(host_, answers, [&] {
        Attempt attempt(host_, answers, starting, replaced);
        auto grants = grant_all(attempt, requests);
        pending_resets_ = std::move(attempt.pending);
        return grants;
    });
}

void Allocator::undo(const std::vector<Grant>& grants) {
    if (std::none_of(grants.begin(), grants.end(), [](const auto& g) { return g.created; })) return;
    auto& store = host_.store();
    const auto lock = store.lock();
    // Only a VF whose record is still the one this grant wrote: since then it
    // may have been released or reclaimed and given to another vNIC.
    for (const auto& g : grants) {
        if (!g.created) continue;
        const auto e = store.read(g.reservation.pci);
        if (e && e->record && *e->record == g.reservation) retire_record(store, *e->record, host_.boot_id);
    }
}

std::vector<Reservation> Allocator::release(const std::string& vm_id, const std::optional<std::string>& mac) {
    auto& store = host_.store();
    const auto lock = store.lock();
    std::vector<Reservation> released;
    for (const auto& r : store.records_of_vm(vm_id)) {
        if (mac && r.mac != *mac) continue;
        if (auto gone = retire_record(store, r, host_.boot_id)) released.push_back(std::move(*gone));
    }
    return released;
}

bool Allocator::release_vf(const PciAddress& pci) {
    auto& store = host_.store();
    const auto lock = store.lock();
    if (const auto e = store.read(pci); e && e->record) return retire_record(store, *e->record, host_.boot_id).has_value();
    return store.remove(pci);
}

std::vector<Reservation> Allocator::held_by(const std::string& vm_id) {
    auto& store = host_.store();
    const auto lock = store.lock();
    auto records = store.records_of_vm(vm_id);
    std::erase_if(records, [](const Reservation& r) { return awaits_reset(r); });
    return records;
}

std::optional<Reservation> Allocator::adopt(const Reservation& r) {
    auto& store = host_.store();
    const auto lock = store.lock();
    if (const auto e = store.read(r.pci)) {
        if (!e->record) fail("the record of VF ", r.pci.to_string(), " is damaged: ", e->problem);
        // A record that waits for its VF's reset is nobody's to adopt: the
        // reset would undo what the new holder's settings need.
        if (e->record->vm_id == r.vm_id && e->record->mac == r.mac && !awaits_reset(*e->record)) return std::nullopt;
        return e->record;
    }
    if (!store.create(r)) fail("VF ", r.pci.to_string(), " was reserved by a process that did not take the lock");
    return std::nullopt;
}

GcReport Allocator::collect_garbage(bool dry_run) {
    auto& store = host_.store();
    LibvirtAnswers answers;
    return under_lock_asking_libvirt(host_, answers, [&] {
        GcReport report;
        const auto entries = store.load();
        for (const auto& e : entries) {
            if (!e.record) report.notes.push_back(cat(store.dir(), "/", e.file, ": ", e.problem, " (left in place)"));
        }
        std::string note;
        // First, as it may need libvirt before it changes anything.
        report.reclaimed = stale_records(host_, entries, note, answers);
        if (!note.empty()) report.notes.push_back(note);
        if (dry_run) {
            report.index = store.check_index();
            return report;
        }
        for (const auto& [r, why] : report.reclaimed) retire_record(store, r, host_.boot_id);
        report.temporaries = store.remove_temporaries();
        report.index = store.repair_index();
        return report;
    });
}

}  // namespace sriovpt
