// The VF helper's logic without a kernel: its command line, its policy (and
// who may change the policy file), finding the VF in sysfs, the reservation
// check, and applying and resetting settings through a recording stand-in
// for the PF, undo included.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <map>
#include <set>

#include "error.hpp"
#include "harness.hpp"
#include "reservations.hpp"
#include "text.hpp"
#include "vf_helper.hpp"
#include "vf_policy.hpp"

namespace sriovpt {
namespace {

using test::TempDir;
using test::write_text;
using Kind = VfSetting::Kind;

constexpr const char* kMac = "00:1a:4a:16:01:51";

// --- The command line ---------------------------------------------------------

HelperRequest parse(std::vector<std::string> args) { return parse_helper_command_line(args); }

TEST(VfHelperCommandLine, ApplyPutsSettingsInOneOrder) {
    const auto req = parse({"apply", "0000:3b:02.1", "link_state=disable", "min_tx_rate=10", "--mac", "00:1A:4A:16:01:51",
                            "max_tx_rate=1000", "spoofchk=off", "--vm-id", "9C1F3D7E-2b44-4a51-8e0c-5d6a7b8c9d01",
                            "trust=on"});
    EXPECT_EQ(req.verb, HelperRequest::Verb::apply);
    EXPECT_EQ(req.vf.to_string(), "0000:3b:02.1");
    EXPECT_EQ(req.vm_id, test::kVmId);
    EXPECT_EQ(req.mac, kMac);
    const std::vector<VfSetting> expected = {VfSetting::trust(true), VfSetting::spoofchk(false),
                                             VfSetting::rate(10, 1000), VfSetting::link(VfLinkState::disable)};
    EXPECT_EQ(req.settings, expected);
}

TEST(VfHelperCommandLine, ResetAndCheck) {
    const auto reset = parse({"reset", "0000:3b:02.1"});
    EXPECT_EQ(reset.verb, HelperRequest::Verb::reset);
    EXPECT_EQ(reset.vf.to_string(), "0000:3b:02.1");
    EXPECT_EQ(parse({"check"}).verb, HelperRequest::Verb::check);
}

TEST(VfHelperCommandLine, Mistakes) {
    const std::string vm = test::kVmId;
    const std::map<std::string, std::vector<std::string>> cases = {
        {"no command", {}},
        {"unknown command 'set'", {"set", "0000:3b:02.1"}},
        {"check takes no arguments", {"check", "x"}},
        {"reset takes one VF's PCI address and nothing else", {"reset", "0000:3b:02.1", "trust=off"}},
        {"'3b:02.1' is not a PCI address like 0000:3b:02.1", {"reset", "3b:02.1"}},
        {"apply needs at least one setting", {"apply", "0000:3b:02.1", "--vm-id", vm, "--mac", kMac}},
        {"apply needs --vm-id", {"apply", "0000:3b:02.1", "trust=on", "--mac", kMac}},
        {"apply needs --mac", {"apply", "0000:3b:02.1", "trust=on", "--vm-id", vm}},
        {"--mac needs a value", {"apply", "0000:3b:02.1", "trust=on", "--vm-id", vm, "--mac"}},
        {"--vm-id given twice", {"apply", "0000:3b:02.1", "trust=on", "--vm-id", vm, "--vm-id", vm, "--mac", kMac}},
        {"trust given twice", {"apply", "0000:3b:02.1", "trust=on", "trust=off", "--vm-id", vm, "--mac", kMac}},
        {"trust='yes': not on or off", {"apply", "0000:3b:02.1", "trust=yes", "--vm-id", vm, "--mac", kMac}},
        {"unknown setting 'vlan'", {"apply", "0000:3b:02.1", "vlan=100", "--vm-id", vm, "--mac", kMac}},
        {"unexpected argument 'trust'", {"apply", "0000:3b:02.1", "trust", "--vm-id", vm, "--mac", kMac}},
        {"unexpected argument '--policy=/tmp/p'", {"apply", "0000:3b:02.1", "--policy=/tmp/p", "--vm-id", vm, "--mac", kMac}},
        {"max_tx_rate and min_tx_rate go together (one message sets both; 0 = no limit, no minimum)",
         {"apply", "0000:3b:02.1", "max_tx_rate=100", "--vm-id", vm, "--mac", kMac}},
        {"min_tx_rate 200 is above max_tx_rate 100",
         {"apply", "0000:3b:02.1", "max_tx_rate=100", "min_tx_rate=200", "--vm-id", vm, "--mac", kMac}},
        {"max_tx_rate='4294967296': not a rate in Mbps (0..4294967295)",
         {"apply", "0000:3b:02.1", "max_tx_rate=4294967296", "min_tx_rate=0", "--vm-id", vm, "--mac", kMac}},
        {"link_state='up': not auto, enable or disable",
         {"apply", "0000:3b:02.1", "link_state=up", "--vm-id", vm, "--mac", kMac}},
        {"--vm-id 'vm1': not a VM id (8-4-4-4-12 hex digits)",
         {"apply", "0000:3b:02.1", "trust=on", "--vm-id", "vm1", "--mac", kMac}},
        {"--mac '00:1a:4a:16:01': not a MAC address (xx:xx:xx:xx:xx:xx)",
         {"apply", "0000:3b:02.1", "trust=on", "--vm-id", vm, "--mac", "00:1a:4a:16:01"}},
    };
    for (const auto& [message, args] : cases) {
        SCOPED_TRACE(message);
        try {
            parse(args);
            ADD_FAILURE() << "accepted";
        } catch (const UsageError& e) {
            EXPECT_EQ(std::string(e.what()), message);
        }
    }
    // No limit with a guaranteed minimum is a request, not a mistake.
    EXPECT_EQ(parse({"apply", "0000:3b:02.1", "max_tx_rate=0", "min_tx_rate=200", "--vm-id", vm, "--mac", kMac}).settings,
              std::vector<VfSetting>{VfSetting::rate(200, 0)});
}

// --- The policy -----------------------------------------------------------------

std::optional<uid_t> fake_users(const std::string& name) {
    if (name == "vdsm") return 36;
    return std::nullopt;
}

VfPolicy policy_of(const std::string& text) { return parse_policy(text, "policy.conf", fake_users); }

TEST(VfHelperPolicy, DeniesEverythingByDefault) {
    const auto p = policy_of("user = vdsm\n");
    EXPECT_EQ(p.uid, 36u);
    EXPECT_TRUE(p.pfs.empty());
    EXPECT_TRUE(p.allowed.empty());
    EXPECT_EQ(p.refusal(VfSetting::trust(false)), "the policy does not allow trust (allow = nothing)");
    // The baseline is what the kernel gives a new VF.
    EXPECT_EQ(p.baseline(Kind::trust), VfSetting::trust(false));
    EXPECT_EQ(p.baseline(Kind::spoofchk), VfSetting::spoofchk(true));
    EXPECT_EQ(p.baseline(Kind::rate), VfSetting::rate(0, 0));
    EXPECT_EQ(p.baseline(Kind::link_state), VfSetting::link(VfLinkState::automatic));
    EXPECT_EQ(p.sysfs_root, "/sys");
    EXPECT_EQ(p.state_dir, "/run/vdsm/hooks/sriov_passthrough");
}

TEST(VfHelperPolicy, Everything) {
    const auto p = policy_of(
        "# the hooks' user\n"
        "user = 36\n"
        "pfs = ens1f0 , ens1f1\n"
        "allow = trust, rate\n"
        "   rate_ceiling = 10000  \n"
        "baseline_trust = off\nbaseline_spoofchk = off\nbaseline_min_tx_rate = 0\nbaseline_max_tx_rate = 25000\n"
        "baseline_link_state = disable\n"
        "sysfs_root = /tmp/sys\nstate_dir = /tmp/state\n");
    EXPECT_EQ(p.uid, 36u);
    EXPECT_EQ(p.pfs, (std::vector<std::string>{"ens1f0", "ens1f1"}));
    EXPECT_TRUE(p.allows_pf("ens1f1"));
    EXPECT_FALSE(p.allows_pf("ens1f"));
    EXPECT_EQ(p.allowed, (std::set<Kind>{Kind::trust, Kind::rate}));
    EXPECT_EQ(p.baseline(Kind::spoofchk), VfSetting::spoofchk(false));
    EXPECT_EQ(p.baseline(Kind::rate), VfSetting::rate(0, 25000));
    EXPECT_EQ(p.baseline(Kind::link_state), VfSetting::link(VfLinkState::disable));
    EXPECT_EQ(p.sysfs_root, "/tmp/sys");
    EXPECT_EQ(p.state_dir, "/tmp/state");

    EXPECT_EQ(p.refusal(VfSetting::trust(true)), "");
    EXPECT_EQ(p.refusal(VfSetting::rate(0, 10000)), "");
    EXPECT_EQ(p.refusal(VfSetting::rate(0, 10001)), "above the policy's rate_ceiling of 10000 Mbps");
    EXPECT_EQ(p.refusal(VfSetting::rate(10001, 0)), "max_tx_rate 0 is no limit, above the policy's rate_ceiling of 10000 Mbps");
    EXPECT_EQ(p.refusal(VfSetting::spoofchk(false)), "the policy does not allow spoofchk (allow = trust, rate)");
}

TEST(VfHelperPolicy, Mistakes) {
    const std::map<std::string, std::string> cases = {
        {"", "policy.conf: no user: say who may run the helper (user = vdsm)"},
        {"user = nosuchuser\n", "policy.conf line 1: user: no user 'nosuchuser' on this host"},
        {"user = vdsm\nuser = root\n", "policy.conf line 2: user: given twice (first on line 1)"},
        {"user = vdsm\ncolour = blue\n", "policy.conf line 2: unknown key 'colour'"},
        {"user = vdsm\nallow\n", "policy.conf line 2: 'allow' is not key = value"},
        {"user = vdsm\nallow = trust, vlan\n", "policy.conf line 2: allow: 'vlan' is not one of trust, spoofchk, rate, link_state"},
        {"user = vdsm\nallow = rate\n",
         "policy.conf: allow has rate but there is no rate_ceiling: say the highest rate in Mbps a VF may get"},
        {"user = vdsm\nrate_ceiling = 0\n", "policy.conf line 2: rate_ceiling: 0 would allow no rate; leave rate out of allow instead"},
        {"user = vdsm\npfs = ens1f0, ../x\n", "policy.conf line 2: pfs: '../x' is not a network interface name"},
        {"user = vdsm\nbaseline_trust = yes\n", "policy.conf line 2: baseline_trust: 'yes' is not on or off"},
        {"user = vdsm\nbaseline_link_state = up\n", "policy.conf line 2: baseline_link_state: 'up' is not auto, enable or disable"},
        {"user = vdsm\nbaseline_max_tx_rate = -1\n",
         "policy.conf line 2: baseline_max_tx_rate: '-1' is not a rate in Mbps (0..4294967295)"},
        {"user = vdsm\nbaseline_min_tx_rate = 100\nbaseline_max_tx_rate = 10\n",
         "policy.conf: baseline_min_tx_rate 100 is above baseline_max_tx_rate 10"},
        {"user = vdsm\nsysfs_root = sys\n", "policy.conf line 2: sysfs_root: 'sys' is not an absolute path"},
    };
    for (const auto& [text, message] : cases) {
        SCOPED_TRACE(text);
        try {
            policy_of(text);
            ADD_FAILURE() << "accepted";
        } catch (const Error& e) {
            EXPECT_EQ(std::string(e.what()), message);
        }
    }
}

TEST(VfHelperPolicy, SamplePolicyDeniesEverythingAndItsExamplesParse) {
    const auto sample = std::filesystem::path(SRIOVPT_README).parent_path() / "packaging" / "vf_helper_policy.conf";
    const auto text = test::read_text(sample.string());
    const auto shipped = parse_policy(text, sample.string(), fake_users);
    EXPECT_EQ(shipped.user, "vdsm");
    EXPECT_TRUE(shipped.pfs.empty());
    EXPECT_TRUE(shipped.allowed.empty());

    // Every commented "# key = value" line, uncommented, is valid.
    std::string examples;
    size_t uncommented = 0;
    for (const auto& line : split(text, '\n')) {
        // "# key = value": the key is one word.
        const auto body = line.rfind("# ", 0) == 0 ? line.substr(2) : std::string();
        if (!body.empty() && body.find(' ') != std::string::npos && body.find(' ') == body.find(" = ")) {
            examples += body + "\n";
            ++uncommented;
        } else {
            examples += line + "\n";
        }
    }
    EXPECT_EQ(uncommented, 10u);
    const auto full = parse_policy(examples, sample.string(), fake_users);
    EXPECT_EQ(full.pfs, (std::vector<std::string>{"ens1f0", "ens1f1"}));
    EXPECT_EQ(full.allowed, (std::set<Kind>{Kind::spoofchk, Kind::rate}));
    EXPECT_EQ(full.rate_ceiling, 10000u);
}

// The policy file's owner and modes: who can change it could grant itself
// anything. Changing owners needs root.
class VfHelperPolicyFile : public ::testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "needs root: the policy must be owned by root";
        ::chmod(dir_.path().c_str(), 0755);
        write_text(path_, "user = vdsm\n");
        ::chmod(path_.c_str(), 0644);
    }
    std::string load_error() {
        try {
            load_policy(path_, fake_users);
        } catch (const Error& e) {
            return e.what();
        }
        return "loaded";
    }
    TempDir dir_;
    std::string path_ = dir_.path() + "/policy.conf";
};

TEST_F(VfHelperPolicyFile, RootOwnedAndReadOnlyToOthersLoads) {
    EXPECT_EQ(load_error(), "loaded");
    EXPECT_EQ(load_policy(path_, fake_users).uid, 36u);
}

TEST_F(VfHelperPolicyFile, OwnedByAnotherUser) {
    ASSERT_EQ(::chown(path_.c_str(), 36, 0), 0);
    EXPECT_EQ(load_error(), "policy " + path_ + ": owned by uid 36, not root: refused");
}

TEST_F(VfHelperPolicyFile, WritableByOthers) {
    ::chmod(path_.c_str(), 0646);
    EXPECT_EQ(load_error(), "policy " + path_ + ": writable by others than root (mode 0646): refused");
    ::chmod(path_.c_str(), 0664);
    ASSERT_EQ(::chown(path_.c_str(), 0, 36), 0);
    EXPECT_EQ(load_error(), "policy " + path_ + ": writable by others than root (mode 0664): refused");
    // Group root writing it is root.
    ASSERT_EQ(::chown(path_.c_str(), 0, 0), 0);
    EXPECT_EQ(load_error(), "loaded");
}

TEST_F(VfHelperPolicyFile, InADirectoryOthersCanChange) {
    ::chmod(dir_.path().c_str(), 0777);
    EXPECT_EQ(load_error(), "policy " + path_ + ": its directory " + dir_.path() +
                                " can be changed by others than root (owner uid 0, mode 0777): refused");
    // Sticky, like /tmp: others cannot replace root's entries.
    ::chmod(dir_.path().c_str(), 01777);
    EXPECT_EQ(load_error(), "loaded");
    ::chmod(dir_.path().c_str(), 0755);
    ASSERT_EQ(::chown(dir_.path().c_str(), 36, 0), 0);
    EXPECT_EQ(load_error(), "policy " + path_ + ": its directory " + dir_.path() +
                                " can be changed by others than root (owner uid 36, mode 0755): refused");
}

TEST_F(VfHelperPolicyFile, SymlinkFifoAndMissing) {
    const auto link = dir_.path() + "/link.conf";
    ASSERT_EQ(::symlink(path_.c_str(), link.c_str()), 0);
    try {
        load_policy(link, fake_users);
        ADD_FAILURE() << "followed a symlink";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), "policy " + link + ": a symbolic link: refused");
    }
    const auto fifo = dir_.path() + "/fifo.conf";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
    try {
        load_policy(fifo, fake_users);
        ADD_FAILURE() << "read a FIFO";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), "policy " + fifo + ": not a regular file: refused");
    }
    const auto missing = dir_.path() + "/missing.conf";
    try {
        load_policy(missing, fake_users);
        ADD_FAILURE() << "loaded a missing file";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()),
                  "policy " + missing + ": No such file or directory (without a policy the helper does nothing)");
    }
}

// --- Finding the VF -------------------------------------------------------------

class VfHelperHost : public ::testing::Test {
protected:
    VfHelperHost() : sysfs_(dir_.path() + "/sys") {
        sysfs_.add_pf({.name = "ens1f0", .pci = "0000:3b:00.0", .num_vfs = 4});
        sysfs_.add_pf({.name = "ens1f1", .pci = "0000:3b:00.1", .num_vfs = 4});
        policy_ = policy_of("user = vdsm\npfs = ens1f1, ens1f0\n");
        policy_.state_dir = dir_.path() + "/state";
        std::filesystem::create_directories(policy_.state_dir);
    }
    Reservation record(const std::string& pf, unsigned index) const {
        Reservation r;
        r.pci = sysfs_.vf_pci(pf, index);
        r.pf = pf;
        r.vf_index = index;
        r.vm_id = test::kVmId;
        r.mac = kMac;
        r.network = "sriovnet";
        r.boot_id = "06903289-b3ab-4a3c-810c-fab67696ebbb";
        r.created = 1763890000;
        r.origin = "before_vm_start";
        return r;
    }
    void write_record(const Reservation& r, const std::string& text) const {
        write_text(policy_.state_dir + "/" + ReservationStore::file_name(r.pci), text);
    }
    std::string reservation_error(const VfLocation& where, const std::string& vm_id = test::kVmId,
                                  const std::string& mac = kMac) const {
        try {
            check_reservation(policy_.state_dir, where, vm_id, mac);
        } catch (const Error& e) {
            return e.what();
        }
        return "reserved";
    }

    TempDir dir_;
    sim::FakeSysfs sysfs_;
    VfPolicy policy_;
};

TEST_F(VfHelperHost, LocatesTheVfOnAnAllowedPf) {
    const Sysfs sysfs(sysfs_.root());
    const auto where = locate_vf(sysfs, policy_, sysfs_.vf_pci("ens1f0", 2));
    EXPECT_EQ(where.pf, "ens1f0");
    EXPECT_EQ(where.index, 2u);
    EXPECT_EQ(where.pci, sysfs_.vf_pci("ens1f0", 2));
}

TEST_F(VfHelperHost, RefusesVfsOfOtherPfsAndOtherDevices) {
    const Sysfs sysfs(sysfs_.root());
    auto only_f1 = policy_;
    only_f1.pfs = {"ens1f1"};
    for (const auto& pci : {sysfs_.vf_pci("ens1f0", 2), *PciAddress::parse("0000:3b:00.0"), *PciAddress::parse("0000:99:00.0")}) {
        SCOPED_TRACE(pci.to_string());
        try {
            locate_vf(sysfs, only_f1, pci);
            ADD_FAILURE() << "located";
        } catch (const Error& e) {
            EXPECT_EQ(std::string(e.what()),
                      "not a VF of a PF the policy allows (pfs = ens1f1) according to " + sysfs_.root());
        }
    }
    only_f1.pfs.clear();
    EXPECT_THROW(locate_vf(sysfs, only_f1, sysfs_.vf_pci("ens1f1", 0)), Error);
}

TEST_F(VfHelperHost, ReservationMustNameTheCallingVnic) {
    const auto r = record("ens1f0", 1);
    const VfLocation where{r.pci, "ens1f0", 1};
    const auto path = policy_.state_dir + "/vf-0000:3b:02.1";
    ASSERT_EQ(r.pci.to_string(), "0000:3b:02.1");
    EXPECT_EQ(reservation_error(where), "not reserved: there is no record " + path);

    write_record(r, format_record(r));
    EXPECT_EQ(reservation_error(where), "reserved");
    EXPECT_EQ(reservation_error(where, "11111111-2222-3333-4444-555555555555"),
              "reserved for VM '" + std::string(test::kVmId) +
                  "' vNIC '00:1a:4a:16:01:51', not for VM 11111111-2222-3333-4444-555555555555 vNIC 00:1a:4a:16:01:51");
    EXPECT_EQ(reservation_error(where, test::kVmId, "00:1a:4a:16:01:52"),
              "reserved for VM '" + std::string(test::kVmId) + "' vNIC '00:1a:4a:16:01:51', not for VM " +
                  test::kVmId + " vNIC 00:1a:4a:16:01:52");

    auto moved = r;
    moved.pf = "ens1f1";
    write_record(r, format_record(moved));
    EXPECT_EQ(reservation_error(where), "its record " + path + " names 'ens1f1' VF 1 but sysfs has it as ens1f0 VF 1");

    write_record(r, "sriov-passthrough-reservation 1\npci 0000:3b:02.1\n");
    EXPECT_EQ(reservation_error(where).rfind("its record " + path + " is damaged: ", 0), 0u) << reservation_error(where);

    std::filesystem::remove(path);
    ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0);
    EXPECT_EQ(reservation_error(where), "its record " + path + " is not a regular file");
}

// --- Applying and resetting, with a recording PF ----------------------------------

// A PF that answers from a table and writes down every call.
class RecordingPort : public VfPort {
public:
    VfKernelState before;
    std::map<std::string, int> refuse;   // describe(setting) -> errno
    std::set<std::string> no_answer;     // describe(setting) -> throws
    std::vector<std::string> calls;

    VfKernelState state(std::uint32_t vf) override {
        calls.push_back("state " + std::to_string(vf));
        auto s = before;
        s.vf = vf;
        return s;
    }
    NetlinkAck set(std::uint32_t vf, const VfSetting& setting) override {
        const auto what = describe(setting);
        calls.push_back("set " + std::to_string(vf) + " " + what);
        if (no_answer.count(what)) throw Error("netlink: no answer from the kernel within 5 s");
        const auto it = refuse.find(what);
        return {it == refuse.end() ? 0 : it->second, ""};
    }
};

VfPolicy allow_all() {
    return policy_of("user = vdsm\npfs = ens1f0\nallow = trust, spoofchk, rate, link_state\nrate_ceiling = 10000\n");
}

const std::vector<VfSetting> kAll = {VfSetting::trust(true), VfSetting::spoofchk(false), VfSetting::rate(0, 1000),
                                     VfSetting::link(VfLinkState::enable)};

TEST(VfHelperApply, EverySettingOneMessage) {
    RecordingPort port;
    const auto out = apply_settings(port, 1, kAll, allow_all(), "");
    EXPECT_EQ(out.status, kHelperDone);
    EXPECT_EQ(out.line, "");
    EXPECT_EQ(port.calls, (std::vector<std::string>{"state 1", "set 1 trust=on", "set 1 spoofchk=off",
                                                     "set 1 max_tx_rate=1000 min_tx_rate=0", "set 1 link_state=enable"}));
}

TEST(VfHelperApply, WhatThePfAlreadyHasIsNotSent) {
    RecordingPort port;
    port.before = VfKernelState{1, true, false, 0u, 1000u, VfLinkState::automatic};
    EXPECT_EQ(apply_settings(port, 1, kAll, allow_all(), "").status, kHelperDone);
    EXPECT_EQ(port.calls, (std::vector<std::string>{"state 1", "set 1 link_state=enable"}));
}

TEST(VfHelperApply, RefusalUndoesTheSettingsMadeToTheValuesReadBefore) {
    RecordingPort port;
    port.before = VfKernelState{1, false, true, 10u, 0u, VfLinkState::disable};
    port.refuse["max_tx_rate=1000 min_tx_rate=0"] = EINVAL;
    port.refuse["link_state=enable"] = EOPNOTSUPP;
    const auto out = apply_settings(port, 1, kAll, allow_all(), "");
    EXPECT_EQ(out.status, kHelperNotApplied);
    EXPECT_EQ(out.line,
              "max_tx_rate=1000 min_tx_rate=0: Invalid argument; link_state=enable: Operation not supported by the driver; "
              "undone: spoofchk=off (spoofchk=on again), trust=on (trust=off again)");
    EXPECT_EQ(port.calls, (std::vector<std::string>{"state 1", "set 1 trust=on", "set 1 spoofchk=off",
                                                     "set 1 max_tx_rate=1000 min_tx_rate=0", "set 1 link_state=enable",
                                                     "set 1 spoofchk=on", "set 1 trust=off"}));
}

TEST(VfHelperApply, UnreportedValuesAreUndoneToTheBaseline) {
    RecordingPort port;   // a PF that reports nothing
    auto policy = allow_all();
    policy.baseline_spoofchk = false;
    port.refuse["trust=on"] = EOPNOTSUPP;
    const auto out = apply_settings(port, 0, {VfSetting::spoofchk(true), VfSetting::trust(true)}, policy, "");
    EXPECT_EQ(out.status, kHelperNotApplied);
    EXPECT_EQ(out.line, "trust=on: Operation not supported by the driver; undone: spoofchk=on (spoofchk=off again)");
    EXPECT_EQ(port.calls.back(), "set 0 spoofchk=off");
}

TEST(VfHelperApply, FailedUndoLeavesTheVfChanged) {
    RecordingPort port;
    port.before = VfKernelState{1, false, true, 0u, 0u, VfLinkState::automatic};
    port.refuse["spoofchk=off"] = EOPNOTSUPP;
    port.refuse["trust=off"] = EIO;
    const auto out = apply_settings(port, 1, {VfSetting::trust(true), VfSetting::spoofchk(false)}, allow_all(), "");
    EXPECT_EQ(out.status, kHelperLeftChanged);
    EXPECT_EQ(out.line, "spoofchk=off: Operation not supported by the driver; undoing trust=on failed: trust=off: "
                        "Input/output error: the VF may keep trust=on");
}

TEST(VfHelperApply, NoAnswerCountsAsMadeAndIsUndone) {
    RecordingPort port;
    port.before = VfKernelState{1, false, true, 0u, 0u, VfLinkState::automatic};
    port.no_answer.insert("trust=on");
    const auto out = apply_settings(port, 1, {VfSetting::trust(true)}, allow_all(), "");
    EXPECT_EQ(out.status, kHelperNotApplied);
    EXPECT_EQ(out.line, "trust=on: netlink: no answer from the kernel within 5 s; undone: trust=on (trust=off again)");
}

TEST(VfHelperApply, PermissionDeniedStopsAtOnceAndSaysWhy) {
    RecordingPort port;
    for (const auto& s : kAll) port.refuse[describe(s)] = EPERM;
    const auto out = apply_settings(port, 1, kAll, allow_all(), "the helper has no CAP_NET_ADMIN: ...");
    EXPECT_EQ(out.status, kHelperNoPrivilege);
    EXPECT_EQ(out.line, "trust=on: Operation not permitted: the helper has no CAP_NET_ADMIN: ...");
    EXPECT_EQ(port.calls, (std::vector<std::string>{"state 1", "set 1 trust=on"}));
}

TEST(VfHelperApply, KernelTextIsShown) {
    NetlinkAck ack{EINVAL, "VF rate\nout of range"};
    EXPECT_EQ(refusal_text(ack), "Invalid argument (VF rate\\nout of range)");
}

TEST(VfHelperReset, AllowedSettingsBackToTheBaseline) {
    RecordingPort port;
    port.before = VfKernelState{2, true, false, 0u, 1000u, VfLinkState::enable};
    auto policy = allow_all();
    policy.allowed.erase(Kind::link_state);
    EXPECT_EQ(reset_settings(port, 2, policy, "").status, kHelperDone);
    EXPECT_EQ(port.calls, (std::vector<std::string>{"state 2", "set 2 trust=off", "set 2 spoofchk=on",
                                                     "set 2 max_tx_rate=0 min_tx_rate=0"}));
}

TEST(VfHelperReset, NothingToDoAtTheBaseline) {
    RecordingPort port;
    port.before = VfKernelState{2, false, true, 0u, 0u, VfLinkState::automatic};
    EXPECT_EQ(reset_settings(port, 2, allow_all(), "").status, kHelperDone);
    EXPECT_EQ(port.calls, std::vector<std::string>{"state 2"});
}

TEST(VfHelperReset, UnsupportedAndUnreportedWasNeverMade) {
    // A driver without trust or link state: it reports neither (the kernel's
    // all-ones for trust) and refuses both.
    RecordingPort port;
    port.before = VfKernelState{2, std::nullopt, true, 0u, 0u, std::nullopt};
    port.refuse["trust=off"] = EOPNOTSUPP;
    port.refuse["link_state=auto"] = EOPNOTSUPP;
    EXPECT_EQ(reset_settings(port, 2, allow_all(), "").status, kHelperDone);
}

TEST(VfHelperReset, RefusalLeavesTheVfChanged) {
    RecordingPort port;
    port.before = VfKernelState{2, true, false, 0u, 0u, VfLinkState::automatic};
    port.refuse["trust=off"] = EOPNOTSUPP;
    port.refuse["spoofchk=on"] = EBUSY;
    const auto out = reset_settings(port, 2, allow_all(), "");
    EXPECT_EQ(out.status, kHelperLeftChanged);
    EXPECT_EQ(out.line, "reset: trust=off: Operation not supported by the driver: the VF keeps trust=on; "
                        "spoofchk=on: Device or resource busy: the VF keeps spoofchk=off");
}

TEST(VfHelperReset, PermissionDenied) {
    RecordingPort port;
    port.before = VfKernelState{2, true, true, 0u, 0u, VfLinkState::automatic};
    port.refuse["trust=off"] = EPERM;
    const auto out = reset_settings(port, 2, allow_all(), "no CAP_NET_ADMIN");
    EXPECT_EQ(out.status, kHelperNoPrivilege);
    EXPECT_EQ(out.line, "reset: trust=off: Operation not permitted: no CAP_NET_ADMIN");
}

}  // namespace
}  // namespace sriovpt
