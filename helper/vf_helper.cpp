#include "vf_helper.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <map>

#include "capabilities.hpp"
#include "error.hpp"
#include "fd_io.hpp"
#include "reservations.hpp"
#include "text.hpp"

namespace sriovpt {

namespace {

constexpr size_t kMaxRecordBytes = 64 * 1024;
// TotalVFs is a 16-bit field of the SR-IOV capability: no PF has more VFs,
// whatever a (fake) sriov_numvfs says.
constexpr unsigned kMaxVfIndex = 65535;

constexpr VfSetting::Kind kOrder[] = {VfSetting::Kind::trust, VfSetting::Kind::spoofchk, VfSetting::Kind::rate,
                                      VfSetting::Kind::link_state};

bool parse_on_off(const std::string& key, std::string_view value) {
    if (value == "on") return true;
    if (value == "off") return false;
    throw UsageError(cat(key, "=", quoted(value), ": not on or off"));
}

std::uint32_t parse_mbps(const std::string& key, std::string_view value) {
    const auto n = parse_decimal(value);
    if (!n || *n > UINT32_MAX) throw UsageError(cat(key, "=", quoted(value), ": not a rate in Mbps (0..", UINT32_MAX, ")"));
    return static_cast<std::uint32_t>(*n);
}

PciAddress parse_vf_address(std::string_view text) {
    const auto pci = PciAddress::parse(text);
    if (!pci) throw UsageError(cat(quoted(text), " is not a PCI address like 0000:3b:02.1"));
    return *pci;
}

// The record file, read without following a link or blocking on a FIFO.
std::string read_record(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        const int e = errno;
        if (e == ENOENT) fail("not reserved: there is no record ", path);
        fail("its record ", path, " cannot be read: ", std::strerror(e));
    }
    auto file = read_if_regular(fd, kMaxRecordBytes);
    ::close(fd);
    auto& r = file.read;
    if (!file.regular()) fail("its record ", path, " is not a regular file");
    if (r.error) fail("its record ", path, " cannot be read: ", std::strerror(r.error));
    if (r.too_long) fail("its record ", path, " is larger than ", kMaxRecordBytes, " bytes");
    return std::move(r.text);
}

struct Made {
    VfSetting setting;
    VfSetting before;   // what undoing it sets
};

}  // namespace

std::string helper_usage() {
    return cat(kVfHelperName,
               " apply PCI [trust=on|off] [spoofchk=on|off] [max_tx_rate=MBPS min_tx_rate=MBPS] "
               "[link_state=auto|enable|disable] --vm-id UUID --mac MAC | reset PCI | check");
}

HelperRequest parse_helper_command_line(const std::vector<std::string>& args) {
    HelperRequest req;
    if (args.empty()) throw UsageError("no command");
    const auto& verb = args[0];
    if (verb == "check") {
        if (args.size() != 1) throw UsageError("check takes no arguments");
        req.verb = HelperRequest::Verb::check;
        return req;
    }
    if (verb == "reset") {
        if (args.size() != 2) throw UsageError("reset takes one VF's PCI address and nothing else");
        req.verb = HelperRequest::Verb::reset;
        req.vf = parse_vf_address(args[1]);
        return req;
    }
    if (verb != "apply") throw UsageError(cat("unknown command ", quoted(verb)));
    req.verb = HelperRequest::Verb::apply;
    if (args.size() < 2) throw UsageError("apply needs a VF's PCI address");
    req.vf = parse_vf_address(args[1]);

    std::map<std::string, std::string> values;
    std::optional<std::string> vm_id, mac;
    for (size_t i = 2; i < args.size(); ++i) {
        const auto& arg = args[i];
        if (arg == "--vm-id" || arg == "--mac") {
            if (i + 1 == args.size()) throw UsageError(cat(arg, " needs a value"));
            auto& slot = arg == "--vm-id" ? vm_id : mac;
            if (slot) throw UsageError(cat(arg, " given twice"));
            slot = args[++i];
            continue;
        }
        const auto eq = arg.find('=');
        if (eq == std::string::npos || arg.rfind("--", 0) == 0) throw UsageError(cat("unexpected argument ", quoted(arg)));
        const auto key = arg.substr(0, eq);
        if (key != "trust" && key != "spoofchk" && key != "max_tx_rate" && key != "min_tx_rate" && key != "link_state")
            throw UsageError(cat("unknown setting ", quoted(key)));
        if (!values.emplace(key, arg.substr(eq + 1)).second) throw UsageError(cat(key, " given twice"));
    }

    if (values.count("trust")) req.settings.push_back(VfSetting::trust(parse_on_off("trust", values["trust"])));
    if (values.count("spoofchk")) req.settings.push_back(VfSetting::spoofchk(parse_on_off("spoofchk", values["spoofchk"])));
    const bool has_max = values.count("max_tx_rate") != 0;
    const bool has_min = values.count("min_tx_rate") != 0;
    if (has_max != has_min)
        throw UsageError("max_tx_rate and min_tx_rate go together (one message sets both; 0 = no limit, no minimum)");
    if (has_max) {
        const auto max = parse_mbps("max_tx_rate", values["max_tx_rate"]);
        const auto min = parse_mbps("min_tx_rate", values["min_tx_rate"]);
        if (max != 0 && min > max) throw UsageError(cat("min_tx_rate ", min, " is above max_tx_rate ", max));
        req.settings.push_back(VfSetting::rate(min, max));
    }
    if (values.count("link_state")) {
        const auto state = parse_link_state(values["link_state"]);
        if (!state) throw UsageError(cat("link_state=", quoted(values["link_state"]), ": not auto, enable or disable"));
        req.settings.push_back(VfSetting::link(*state));
    }
    if (req.settings.empty()) throw UsageError("apply needs at least one setting");
    if (!vm_id) throw UsageError("apply needs --vm-id");
    if (!mac) throw UsageError("apply needs --mac");
    const auto uuid = normalize_uuid(*vm_id);
    if (!uuid) throw UsageError(cat("--vm-id ", quoted(*vm_id), ": not a VM id (8-4-4-4-12 hex digits)"));
    const auto norm_mac = normalize_mac(*mac);
    if (!norm_mac) throw UsageError(cat("--mac ", quoted(*mac), ": not a MAC address (xx:xx:xx:xx:xx:xx)"));
    req.vm_id = *uuid;
    req.mac = *norm_mac;
    return req;
}

VfLocation locate_vf(const Sysfs& sysfs, const VfPolicy& policy, const PciAddress& pci) {
    if (policy.pfs.empty()) fail("the policy allows no PF (pfs is empty)");
    const Inventory inventory(sysfs);
    for (const auto& name : policy.pfs) {
        const auto pf = inventory.pf(name);
        if (!pf) continue;
        const unsigned n = std::min(pf->num_vfs, kMaxVfIndex);
        for (unsigned i = 0; i < n; ++i) {
            if (inventory.vf_address(*pf, i) == pci) return {pci, name, i};
        }
    }
    fail("not a VF of a PF the policy allows (pfs = ", join(policy.pfs), ") according to ", sysfs.root());
}

void check_reservation(const std::string& state_dir, const VfLocation& vf, const std::string& vm_id,
                       const std::string& mac) {
    const auto path = cat(state_dir, "/", ReservationStore::file_name(vf.pci));
    const auto text = read_record(path);
    Reservation r;
    try {
        r = parse_record(text);
    } catch (const Error& e) {
        fail("its record ", path, " is damaged: ", e.what());
    }
    const auto holder_vm = normalize_uuid(r.vm_id).value_or(r.vm_id);
    const auto holder_mac = normalize_mac(r.mac).value_or(r.mac);
    if (r.pci != vf.pci) fail("its record ", path, " names another VF, ", r.pci.to_string());
    if (holder_vm != vm_id || holder_mac != mac)
        fail("reserved for VM ", quoted(r.vm_id), " vNIC ", quoted(r.mac), ", not for VM ", vm_id, " vNIC ", mac);
    if (r.pf != vf.pf || r.vf_index != vf.index)
        fail("its record ", path, " names ", quoted(r.pf), " VF ", r.vf_index, " but sysfs has it as ", vf.pf, " VF ",
             vf.index);
}

NetlinkVfPort::NetlinkVfPort(const std::string& pf) : pf_(pf) {
    const auto reply = with_context(cat("reading PF ", pf, " from the kernel"), [&] { return socket_.get_link(pf); });
    if (reply.error)
        fail("reading PF ", pf, " from the kernel: ", std::strerror(reply.error->error),
             reply.error->message.empty() ? "" : cat(" (", printable(reply.error->message), ")"));
    link_ = reply.link;
}

VfKernelState NetlinkVfPort::state(std::uint32_t vf) {
    if (const auto* s = link_.vf(vf)) return *s;
    // A device without VFs in the kernel's eyes (a veth; a driver that
    // cannot report them): nothing is known, the settings will tell.
    if (link_.vfs.empty() && link_.num_vfs.value_or(0) == 0 && link_.problems.empty()) {
        VfKernelState unknown;
        unknown.vf = vf;
        return unknown;
    }
    fail("the kernel does not report VF ", vf, " of ", pf_, " (it reports ", link_.vfs.size(), " of ",
         link_.num_vfs.value_or(0), " VFs", link_.problems.empty() ? "" : cat("; ", join(link_.problems, "; ")), ")");
}

NetlinkAck NetlinkVfPort::set(std::uint32_t vf, const VfSetting& setting) {
    return socket_.set_vf(link_.ifindex, vf, setting);
}

std::string refusal_text(const NetlinkAck& ack) {
    std::string text = ack.error == EOPNOTSUPP ? "Operation not supported by the driver" : std::strerror(ack.error);
    if (!ack.message.empty()) text += cat(" (", printable(ack.message), ")");
    return text;
}

VfOutcome apply_settings(VfPort& port, std::uint32_t vf, const std::vector<VfSetting>& settings, const VfPolicy& policy,
                         const std::string& no_privilege) {
    const VfKernelState before = port.state(vf);
    std::vector<Made> made;
    std::vector<std::string> refused;
    bool denied = false;
    for (const auto& s : settings) {
        const auto current = before.current(s.kind);
        if (current == s) continue;
        const Made m{s, current.value_or(policy.baseline(s.kind))};
        NetlinkAck ack;
        try {
            ack = port.set(vf, s);
        } catch (const Error& e) {
            // No verdict: the kernel may have made it, so it is undone too.
            refused.push_back(cat(describe(s), ": ", e.what()));
            made.push_back(m);
            continue;
        }
        if (ack.error == 0) {
            made.push_back(m);
        } else if (ack.error == EPERM) {
            // Every other setting would meet the same answer.
            refused.push_back(cat(describe(s), ": ", refusal_text(ack), ": ", no_privilege));
            denied = true;
            break;
        } else {
            refused.push_back(cat(describe(s), ": ", refusal_text(ack)));
        }
    }
    if (refused.empty()) return {};

    // The kernel keeps what it made before a refusal: undo it, last first.
    std::vector<std::string> undone, stuck;
    for (auto it = made.rbegin(); it != made.rend(); ++it) {
        std::string why;
        try {
            const auto ack = port.set(vf, it->before);
            if (ack.error == 0) {
                undone.push_back(cat(describe(it->setting), " (", describe(it->before), " again)"));
                continue;
            }
            why = refusal_text(ack);
        } catch (const Error& e) {
            why = e.what();
        }
        stuck.push_back(cat("undoing ", describe(it->setting), " failed: ", describe(it->before), ": ", why,
                            ": the VF may keep ", describe(it->setting)));
    }
    VfOutcome out;
    out.line = join(refused, "; ");
    if (!undone.empty()) out.line += cat("; undone: ", join(undone, ", "));
    if (!stuck.empty()) out.line += cat("; ", join(stuck, "; "));
    out.status = !stuck.empty() ? kHelperLeftChanged : denied ? kHelperNoPrivilege : kHelperNotApplied;
    return out;
}

VfOutcome reset_settings(VfPort& port, std::uint32_t vf, const VfPolicy& policy, const std::string& no_privilege) {
    const VfKernelState before = port.state(vf);
    std::vector<std::string> failed;
    bool denied = false;
    for (const auto kind : kOrder) {
        if (!policy.allows(kind)) continue;
        const auto target = policy.baseline(kind);
        const auto current = before.current(kind);
        if (current == target) continue;
        NetlinkAck ack;
        try {
            ack = port.set(vf, target);
        } catch (const Error& e) {
            failed.push_back(cat(describe(target), ": ", e.what()));
            continue;
        }
        if (ack.error == 0) continue;
        // A setting the driver can neither make nor report was never made.
        if (ack.error == EOPNOTSUPP && !current) continue;
        if (ack.error == EPERM) {
            failed.push_back(cat(describe(target), ": ", refusal_text(ack), ": ", no_privilege));
            denied = true;
            break;
        }
        failed.push_back(cat(describe(target), ": ", refusal_text(ack),
                             current ? cat(": the VF keeps ", describe(*current)) : std::string()));
    }
    if (failed.empty()) return {};
    return {denied ? kHelperNoPrivilege : kHelperLeftChanged, cat("reset: ", join(failed, "; "))};
}

int run_vf_helper(const std::vector<std::string>& args, const std::string& policy_path) {
    const auto say = [](const std::string& line) { std::fprintf(stderr, "%s: %s\n", kVfHelperName, line.c_str()); };

    // Privileges first: nothing else runs with more than CAP_NET_ADMIN.
    Capabilities caps;
    try {
        caps = keep_only_net_admin();
    } catch (const Error& e) {
        say(e.what());
        return kHelperCannotRun;
    }

    HelperRequest req;
    try {
        req = parse_helper_command_line(args);
    } catch (const UsageError& e) {
        say(cat(e.what(), " (usage: ", helper_usage(), ")"));
        return kHelperUsage;
    }

    VfPolicy policy;
    try {
        policy = load_policy(policy_path);
    } catch (const Error& e) {
        say(e.what());
        return kHelperCannotRun;
    }
    const uid_t caller = ::getuid();
    if (caller != 0 && caller != policy.uid) {
        say(cat("uid ", caller, " may not use this helper: the policy ", policy_path, " allows ", quoted(policy.user),
                " (uid ", policy.uid, ") and root"));
        return kHelperRefused;
    }

    // Under no_new_privs the file capability is never granted: say so
    // rather than let every setting come back EPERM. Without it the kernel
    // is asked, and its EPERM is explained.
    const auto no_privilege = missing_net_admin_reason(caps, own_path());
    if (!caps.net_admin && (caps.no_new_privs || req.verb == HelperRequest::Verb::check)) {
        say(no_privilege);
        return kHelperNoPrivilege;
    }
    if (req.verb == HelperRequest::Verb::check) {
        std::vector<std::string> allowed;
        for (const auto k : policy.allowed) allowed.emplace_back(kind_name(k));
        std::printf("%s: ok: policy %s; user %s (uid %u); PFs %s; settings %s; CAP_NET_ADMIN held\n", kVfHelperName,
                    policy_path.c_str(), policy.user.c_str(), static_cast<unsigned>(policy.uid),
                    policy.pfs.empty() ? "none" : join(policy.pfs).c_str(),
                    allowed.empty() ? "none" : join(allowed).c_str());
        return kHelperDone;
    }

    const auto vf_text = cat("VF ", req.vf.to_string());
    VfLocation where;
    try {
        const Sysfs sysfs(policy.sysfs_root);
        where = locate_vf(sysfs, policy, req.vf);
    } catch (const Error& e) {
        say(cat(vf_text, ": ", e.what()));
        return kHelperRefused;
    }
    const auto prefix = cat(vf_text, " (", where.pf, " VF ", where.index, "): ");

    if (req.verb == HelperRequest::Verb::apply) {
        std::vector<std::string> refused;
        for (const auto& s : req.settings) {
            if (const auto why = policy.refusal(s); !why.empty()) refused.push_back(cat(describe(s), ": ", why));
        }
        if (!refused.empty()) {
            say(prefix + join(refused, "; "));
            return kHelperRefused;
        }
        try {
            check_reservation(policy.state_dir, where, req.vm_id, req.mac);
        } catch (const Error& e) {
            say(prefix + e.what());
            return kHelperRefused;
        }
    }

    VfOutcome outcome;
    try {
        NetlinkVfPort port(where.pf);
        outcome = req.verb == HelperRequest::Verb::apply
                      ? apply_settings(port, where.index, req.settings, policy, no_privilege)
                      : reset_settings(port, where.index, policy, no_privilege);
    } catch (const Error& e) {
        say(prefix + e.what());
        return kHelperCannotRun;
    }
    if (outcome.status != kHelperDone) say(prefix + outcome.line);
    return outcome.status;
}

}  // namespace sriovpt
