// sriov-passthrough-vf-helper: changes the settings of one VF that the hooks
// hold, with CAP_NET_ADMIN from its file capability, within what a
// root-owned policy allows (docs/design.md, "VF settings and the privileged
// helper").
//
//   sriov-passthrough-vf-helper apply PCI SETTING... --vm-id UUID --mac MAC
//   sriov-passthrough-vf-helper reset PCI
//   sriov-passthrough-vf-helper check
//
// SETTING is trust=on|off, spoofchk=on|off, max_tx_rate=MBPS together with
// min_tx_rate=MBPS, link_state=auto|enable|disable; each at most once.
//
// `apply` makes the settings on the VF at PCI, which must be a VF of a PF
// the policy allows, reserved (by its record in the policy's state_dir) for
// that VM's vNIC with that MAC; each setting must be allowed by the policy.
// Settings the PF already reports as asked are not sent. When the kernel
// refuses one, the ones made are undone (to the values the PF reported
// before, or the policy's baseline when it reported none), and every refusal
// is reported in one line. `reset` sets every setting the policy allows back
// to its baseline; a setting the driver cannot make (EOPNOTSUPP) and did not
// report counts as never made. `check` says whether the helper could work:
// the policy, the caller, CAP_NET_ADMIN.
//
// Nothing from the caller but the command line is used: the PF, the VF's
// index and the PF's ifindex come from sysfs and the kernel.
//
// Exit status:
//   0  done
//   1  not applied: the kernel refused a setting; every setting made was undone
//   2  usage: the command line is wrong
//   3  refused: the caller, the policy or the reservation does not allow it; nothing sent
//   4  no CAP_NET_ADMIN (NoNewPrivileges, or the file capability missing); nothing changed
//   5  the VF is left changed: an undo failed, or reset did not reach the baseline;
//      the caller must treat the VF as not reset
//   6  cannot run: the policy cannot be read or is invalid, sysfs or the kernel cannot be asked
//
// Every failure writes one line on stderr:
//   sriov-passthrough-vf-helper: VF 0000:3b:02.1 (ens1f0 VF 1): trust=on: Operation not supported by the driver; ...
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "error.hpp"
#include "pci.hpp"
#include "sysfs.hpp"
#include "vf_link.hpp"
#include "vf_policy.hpp"

namespace sriovpt {

inline constexpr const char* kVfHelperName = "sriov-passthrough-vf-helper";

enum VfHelperStatus : int {
    kHelperDone = 0,
    kHelperNotApplied = 1,
    kHelperUsage = 2,
    kHelperRefused = 3,
    kHelperNoPrivilege = 4,
    kHelperLeftChanged = 5,
    kHelperCannotRun = 6,
};

// A command line that is not one the helper takes.
class UsageError : public Error {
public:
    using Error::Error;
};

struct HelperRequest {
    enum class Verb { apply, reset, check };
    Verb verb = Verb::check;
    PciAddress vf;
    std::vector<VfSetting> settings;   // apply: trust, spoofchk, rate, link_state, in that order
    std::string vm_id;                 // apply: lower case
    std::string mac;                   // apply: lower case
};

// Parses the arguments after the program name. Throws UsageError.
HelperRequest parse_helper_command_line(const std::vector<std::string>& args);

// The one-line usage, for messages.
std::string helper_usage();

// Where a VF is: its PF (by net device name) and its index there.
struct VfLocation {
    PciAddress pci;
    std::string pf;
    std::uint32_t index = 0;
};

// Finds `pci` among the VFs (virtfnN links) of the PFs the policy allows.
// Throws Error when it is none of them.
VfLocation locate_vf(const Sysfs& sysfs, const VfPolicy& policy, const PciAddress& pci);

// Checks that the VF's record in `state_dir` names the VM `vm_id` and the
// vNIC `mac`, and the PF and index sysfs gave. Throws Error otherwise.
void check_reservation(const std::string& state_dir, const VfLocation& vf, const std::string& vm_id,
                       const std::string& mac);

// One PF's VFs, as the kernel sees them. An interface so the undo logic is
// tested with a recording fake.
class VfPort {
public:
    virtual ~VfPort() = default;
    // What the PF reports of VF `vf`; unreported values are nullopt. Throws
    // Error when the PF cannot be asked or does not know VF `vf`.
    virtual VfKernelState state(std::uint32_t vf) = 0;
    // One setting, one message; the kernel's verdict. Throws Error when no
    // verdict comes.
    virtual NetlinkAck set(std::uint32_t vf, const VfSetting& setting) = 0;
};

// The real PF, through RTM_GETLINK (read once, at construction) and
// RTM_SETLINK. Throws Error when the PF cannot be read.
class NetlinkVfPort : public VfPort {
public:
    explicit NetlinkVfPort(const std::string& pf);
    VfKernelState state(std::uint32_t vf) override;
    NetlinkAck set(std::uint32_t vf, const VfSetting& setting) override;

private:
    std::string pf_;
    RouteSocket socket_;
    LinkInfo link_;
};

// The outcome of apply or reset: the exit status and, unless 0, the line
// (without the program name and the VF).
struct VfOutcome {
    int status = kHelperDone;
    std::string line;
};

// The kernel's refusal in words: "Operation not supported by the driver",
// with the kernel's own text when it gave one.
std::string refusal_text(const NetlinkAck& ack);

// Makes `settings` on VF `vf` of `port`, undoing on failure (see the top of
// this file). `no_privilege` explains an EPERM.
VfOutcome apply_settings(VfPort& port, std::uint32_t vf, const std::vector<VfSetting>& settings, const VfPolicy& policy,
                         const std::string& no_privilege);

// Sets every setting the policy allows back to the baseline.
VfOutcome reset_settings(VfPort& port, std::uint32_t vf, const VfPolicy& policy, const std::string& no_privilege);

// The whole helper: drops privileges, then does what `args` says under the
// policy at `policy_path`, writing the line on stderr. Returns the exit status.
int run_vf_helper(const std::vector<std::string>& args, const std::string& policy_path);

}  // namespace sriovpt
