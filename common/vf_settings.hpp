// VF settings beyond the VLAN (docs/design.md, "VF settings and the
// privileged helper"): trust, MAC spoof checking, rate limits and link
// state, asked for by vNIC properties or a network's defaults, made through
// the privileged helper when a VF is reserved and reset to the helper's
// baseline whenever it is given back.
//
//   vf_trust = on|off             vf_spoofchk = on|off
//   vf_max_tx_rate = 0..1000000   vf_min_tx_rate = 0..1000000   (Mbps; 0 = no limit / no minimum)
//   vf_link_state = auto|enable|disable
//
// The hooks never talk netlink: they run the helper (its path from the
// configuration's vf_helper), bounded by lock_timeout. A vNIC that asks for
// no setting costs nothing: no helper, no record written again.
//
// A record with settings says so (reservations.hpp, version 3) from before
// the helper runs, so a VF whose holder crashed is still known to need a
// reset. Giving such a VF back marks its record "reset pending" under the
// lock; the reset runs with the lock released; only when it succeeds does
// the record go. Until then the record keeps the VF from being handed out,
// and `gc` and every reservation retry it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "pci.hpp"

namespace sriovpt {

class Host;
class ReservationStore;
struct Reservation;
struct Grant;

// What a vNIC asks of its VF; unset = leave as the helper's baseline.
struct VfSettings {
    std::optional<bool> trust;
    std::optional<bool> spoofchk;
    std::optional<std::uint32_t> max_tx_rate;   // Mbps, 0 = no limit
    std::optional<std::uint32_t> min_tx_rate;   // Mbps, 0 = nothing guaranteed
    std::optional<std::string> link_state;      // "auto", "enable", "disable"

    bool empty() const { return !trust && !spoofchk && !max_tx_rate && !min_tx_rate && !link_state; }
    bool operator==(const VfSettings&) const = default;
};

// What to do when the helper cannot make a network's settings.
enum class OnError { fail, warn };

inline constexpr const char* kPropVfTrust = "vf_trust";
inline constexpr const char* kPropVfSpoofchk = "vf_spoofchk";
inline constexpr const char* kPropVfMaxTxRate = "vf_max_tx_rate";
inline constexpr const char* kPropVfMinTxRate = "vf_min_tx_rate";
inline constexpr const char* kPropVfLinkState = "vf_link_state";
inline constexpr std::uint32_t kMaxTxRateMbps = 1000000;

// Whether `key` is one of the five names above.
bool is_vf_setting_key(std::string_view key);

// Sets the value of `key` (one of the five names) in `s`. Throws Error
// naming the value and what is allowed.
void set_vf_setting(VfSettings& s, std::string_view key, std::string_view value);

// "fail" or "warn"; throws Error otherwise.
OnError parse_on_error(std::string_view value);

// `vnic`'s settings, each unset one taken from `network`; when one rate is
// set the other is 0, as the kernel sets both at once. Throws Error when the
// minimum is above a maximum that is not 0 (no limit), saying where each
// came from.
VfSettings effective_vf_settings(const VfSettings& vnic, const VfSettings& network);

// The settings as the helper's arguments, in its order: "trust=on",
// "spoofchk=off", "max_tx_rate=1000", "min_tx_rate=0", "link_state=auto".
std::vector<std::string> helper_words(const VfSettings& s);
// The same joined by spaces, for messages; "none" when empty.
std::string describe_vf_settings(const VfSettings& s);
// The record's text: the words joined by commas, "-" when empty; and back
// (throws Error on anything but what format_vf_settings writes).
std::string format_vf_settings(const VfSettings& s);
VfSettings parse_vf_settings(std::string_view text);

// One run of the helper.
struct HelperRun {
    int status = -1;         // its exit status; -1 when it did not exit by itself
    std::string line;        // what it said (stderr and stdout, last line), printable
    std::string failure;     // why there is no status: not found, not executable, timed out, killed
    bool ok() const { return status == 0; }
    // Whether the VF is known to be as before: the helper says it changed
    // nothing, or never ran.
    bool changed_nothing() const;
    // "exit 1: <line>" or the failure, for messages.
    std::string text() const;
};

// Runs the helper at `path` with `args`, an empty environment and stdin
// from /dev/null, and waits at most `timeout` (then kills it). With `as`,
// the child becomes that uid and gid first (check, run by root, asks as the
// hooks' user would). Never throws for the helper's own failures.
HelperRun run_helper(const std::string& path, const std::vector<std::string>& args, std::chrono::milliseconds timeout,
                     std::optional<std::pair<uid_t, gid_t>> as = std::nullopt);

// What a reserved vNIC asks of its VF, beside its Grant.
struct VfPlan {
    VfSettings settings;
    OnError on_error = OnError::fail;
};

// Makes the settings of each grant whose plan has some (plans[i] for
// grants[i]), through the helper. Returns one note per VF changed (and, with
// on_error = warn, per VF left without its settings). With on_error = fail a
// refusal throws Error naming the vNIC, the VF, the PF and the helper's
// answer, after every grant this call created is given back and every VF it
// changed is reset: nothing is held. With on_error = warn, settings the
// driver or the policy refused are left out one by one and the others made;
// the grants' records are kept in step (they say what each VF has).
std::vector<std::string> apply_vf_settings(Host& host, std::vector<Grant>& grants, const std::vector<VfPlan>& plans);

// Gives back the records `grants` created (a before_* hook failed after
// reserving), resetting the VFs whose records say they have settings, except
// those in `clean` (known unchanged). Returns what could not be reset.
std::vector<std::string> undo_grants(Host& host, const std::vector<Grant>& grants,
                                     const std::set<PciAddress>& clean = {});

// Gives back the record of `r`'s VF, under the store's lock: removed when
// no reset is due (no settings, or made in an earlier boot, whose VFs the
// kernel has made afresh); otherwise rewritten marked reset-pending and
// kept, so the VF is not handed out before finish_resets. Returns the record
// as it now is (reset_pending set when kept), or nullopt when there was none.
std::optional<Reservation> retire_record(ReservationStore& store, const Reservation& r, const std::string& boot_id);

// Whether `r` is a released record that waits for its VF's reset.
bool awaits_reset(const Reservation& r);

// What finish_resets did.
struct ResetReport {
    std::vector<std::string> done;     // one line per VF reset and given back
    std::vector<std::string> failed;   // one line per VF whose record stays
};

// Resets, with the store's lock released, each VF of `records` that is
// reset-pending; a record that is still the same afterwards goes when its
// reset succeeded, and stays marked otherwise.
ResetReport finish_resets(Host& host, const std::vector<Reservation>& records);

// finish_resets over every reset-pending record of the store. Reads only the
// store when there is none.
ResetReport retry_pending_resets(Host& host);

// What `check` says about the helper: one line each, "ok: ...",
// "warning: ..." or "PROBLEM: ...".
std::vector<std::string> check_vf_helper(Host& host);

}  // namespace sriovpt
