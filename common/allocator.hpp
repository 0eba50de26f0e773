// Where VFs are chosen, reserved and given back (docs/design.md, "The choice
// rule" and "Stale records").
//
// Every change happens under the store's lock, so choosing a free VF and
// writing its record is one step for concurrent hooks; the record itself is
// created exclusively, so even a bug in the choice could not give one VF to
// two holders.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "host.hpp"
#include "placement.hpp"
#include "reservations.hpp"

namespace sriovpt {

// One vNIC that needs a VF.
struct VnicRequest {
    std::string vm_id;
    std::string mac;
    std::string network;
    std::vector<std::string> pfs;   // the pool, in the operator's order
    std::optional<unsigned> vlan;
    std::string origin;             // hook point, for the record
    // NUMA (placement.hpp): PFs on the VM's nodes first (preferred) or only
    // (required); no nodes means no preference.
    NumaPolicy numa = NumaPolicy::ignore;
    std::set<int> vm_nodes;
    std::vector<int> pf_nodes;      // the node of each PF of `pfs` when read already (else read here)
    VfSettings vf_settings;         // written in the record before the helper makes them
};

struct Grant {
    Grant() = default;
    Grant(Reservation r, bool created_now, std::optional<Reservation> leftover = std::nullopt)
        : reservation(std::move(r)), created(created_now), replaced(std::move(leftover)) {}

    Reservation reservation;
    bool created = false;           // false: the vNIC already held this VF
    // A leftover of the same vNIC made for another network, pool or VLAN,
    // given back before this VF was chosen.
    std::optional<Reservation> replaced;
};

struct GcReport {
    std::vector<std::pair<Reservation, std::string>> reclaimed;   // with the reason
    std::vector<std::string> temporaries;                         // leftover temp files removed
    std::vector<std::string> notes;                               // what could not be checked, bad records
    IndexReport index;                                            // index entries added and removed
};

// Fills what every new record says of its making: this boot, now, and the
// hook point (or command) that made it. The one place these are set.
void stamp_new_record(const Host& host, Reservation& r, std::string_view origin);

class Allocator {
public:
    explicit Allocator(Host& host) : host_(host) {}

    // One VF for each request, all or none: on any failure every record this
    // call created is removed before the Error leaves. The same vm_id+mac
    // gets the VF it already holds when that VF serves the request as it is
    // now (same network and VLAN, a PF of the pool, and under numa=required
    // on the VM's nodes); a leftover that does not is given back for good,
    // even when the call then fails, and a VF chosen afresh
    // (Grant::replaced). Free VFs: on a PF of the pool, without
    // a record, not bound to vfio-pci/pci-stub, present in sysfs, host netdev
    // not up, and (with check_domains) not used by a running domain. Choice:
    // the PF with the fewest held VFs (pool order breaks ties), then the
    // lowest VF index. When none is free, stale records are reclaimed and
    // the choice retried. libvirt is asked with the lock released (each
    // question bounded by lock_timeout), so a hung libvirt never keeps other
    // hooks from the lock.
    std::vector<Grant> reserve(const std::vector<VnicRequest>& requests);

    // Gives back the records that `reserve` created (undo after a later
    // failure). Here and in release, release_vf and reclaiming, a record
    // with VF settings is not removed but marked reset-pending
    // (retire_record, vf_settings.hpp): the caller resets the VF with
    // finish_resets.
    void undo(const std::vector<Grant>& grants);

    // Gives back what vm_id holds (only `mac`'s VF when given). Releasing
    // what is not held succeeds and returns nothing. The records returned
    // that are reset_pending still wait for finish_resets.
    std::vector<Reservation> release(const std::string& vm_id, const std::optional<std::string>& mac = {});

    // Gives back one VF whatever holds it, even a damaged record. True if
    // there was a record.
    bool release_vf(const PciAddress& pci);

    // What vm_id holds, read under the lock; records given back and waiting
    // for their VF's reset are not the VM's any more.
    std::vector<Reservation> held_by(const std::string& vm_id);

    // Records a reservation as it is (a VM that arrived by migration holds
    // its VF already). Returns the existing holder's record instead when the
    // VF is held by another vm_id+mac; nothing is written then.
    std::optional<Reservation> adopt(const Reservation& r);

    // The records that the last successful `reserve` saw waiting for their
    // VF's reset (retire_record): the requesting vNICs' own, those it gave
    // back itself, and every one of the store when the pool ran dry (it then
    // reads the whole store). A start among thousands of records does not
    // read them all to find others. The caller resets them (finish_resets)
    // with the lock released.
    const std::vector<Reservation>& pending_resets() const { return pending_resets_; }

    // Reclaims every stale record, removes leftover temporary files and
    // makes the store's index match its records (dry_run: says what it
    // would). libvirt is asked with the lock released, as in reserve.
    GcReport collect_garbage(bool dry_run);

private:
    Host& host_;
    std::vector<Reservation> pending_resets_;
};

}  // namespace sriovpt
