// VF settings end to end (docs/design.md, "VF settings and the privileged
// helper"): the real hook executables, driven in VDSM's order
// (tests/support/vdsm_flow.hpp), and the real command, with the
// configuration's vf_helper pointed at a recording stand-in for the helper.
//
// The stand-in (StandIn below) is a shell script. It appends each command
// line it gets to helper.log; refuses `apply` for a VF whose record is
// missing or does not say its settings (as the real helper checks the
// record, and as the hooks must write it first); keeps what it "made" on
// each VF in vfs/<pci>, and logs "DIRTY <pci>" when asked to apply to a VF
// that still has settings: a VF handed out before its reset. helper.fail
// tells it to fail: a line "WORD STATUS" makes any call with the argument
// WORD (a setting like trust=on, or the verb reset) exit STATUS with a line
// like the real helper's.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "harness.hpp"
#include "vdsm_flow.hpp"

namespace sriovpt::test {
namespace {

constexpr const char* kOtherVm = "11111111-2222-3333-4444-555555555555";
constexpr const char* kMac = "00:1a:4a:16:01:51";

class StandIn {
public:
    explicit StandIn(const TestHost& host) : dir_(host.dir() + "/helper"), state_(host.state_dir()) {
        std::filesystem::create_directories(dir_ + "/vfs");
        write_text(path(), R"(#!/bin/sh
# A recording stand-in for sriov-passthrough-vf-helper.
PATH=/usr/bin:/bin
d=')" + dir_ + R"('
state=')" + state_ + R"('
echo "$*" >> "$d/helper.log"
verb=$1 pci=$2
for a in "$@"; do
  s=$(awk -v w="$a" '$1 == w { print $2; exit }' "$d/helper.fail" 2>/dev/null)
  if [ -n "$s" ]; then
    echo "sriov-passthrough-vf-helper: VF $pci (stand-in PF VF 0): $a: Operation not supported by the driver" >&2
    exit "$s"
  fi
done
case "$verb" in
apply)
  grep -q "^vf_settings " "$state/vf-$pci" 2>/dev/null || {
    echo "sriov-passthrough-vf-helper: VF $pci: its record does not say its settings" >&2; exit 3; }
  [ -f "$d/vfs/$pci" ] && echo "DIRTY $pci" >> "$d/helper.log"
  shift 2
  echo "$*" > "$d/vfs/$pci" ;;
reset) rm -f "$d/vfs/$pci" ;;
check) echo "sriov-passthrough-vf-helper: ok: stand-in" ;;
esac
exit 0
)");
        ::chmod(path().c_str(), 0755);
    }

    std::string path() const { return dir_ + "/vf-helper"; }
    // The command lines it got, one per call.
    std::vector<std::string> calls() const {
        if (!std::filesystem::exists(dir_ + "/helper.log")) return {};
        std::vector<std::string> out;
        const auto text = read_text(dir_ + "/helper.log");
        size_t start = 0;
        for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
            out.push_back(text.substr(start, nl - start));
        return out;
    }
    void fail(const std::string& word, int status) {
        std::string text;
        if (std::filesystem::exists(dir_ + "/helper.fail")) text = read_text(dir_ + "/helper.fail");
        write_text(dir_ + "/helper.fail", text + word + " " + std::to_string(status) + "\n");
    }
    void heal() { std::filesystem::remove(dir_ + "/helper.fail"); }
    void forget() { std::filesystem::remove(dir_ + "/helper.log"); }
    // What the stand-in left made on each VF (none: all reset).
    std::vector<std::string> changed_vfs() const {
        std::vector<std::string> out;
        for (const auto& e : std::filesystem::directory_iterator(dir_ + "/vfs")) out.push_back(e.path().filename());
        std::sort(out.begin(), out.end());
        return out;
    }

private:
    std::string dir_;
    std::string state_;
};

std::string apply_line(const std::string& pci, const std::string& words, const std::string& vm = kVmId,
                       const std::string& mac = kMac) {
    return "apply " + pci + " " + words + " --vm-id " + vm + " --mac " + mac;
}

class VfSettingsFlow : public testing::Test {
protected:
    explicit VfSettingsFlow(const std::string& network_extra = "", unsigned vfs = 2)
        : host_(""), helper_(host_), vdsm_(host_) {
        configure(network_extra);
        host_.sysfs().add_pf({"ens1f0", "0000:3b:00.0", vfs});
        host_.sysfs().add_pf({"ens1f1", "0000:5e:00.0", vfs});
    }
    void configure(const std::string& network_extra) {
        host_.write_config("vf_helper = " + helper_.path() + "\n[network.sriovnet]\npfs = ens1f0, ens1f1\n" +
                           network_extra);
    }
    std::string vf(const std::string& pf, unsigned index) { return host_.sysfs().vf_pci(pf, index).to_string(); }

    TestHost host_;
    StandIn helper_;
    VdsmFlow vdsm_;
};

const Props kTrusted{{"passthrough", "true"}, {"vf_trust", "on"}, {"vf_max_tx_rate", "1000"}};

TEST_F(VfSettingsFlow, MadeAtStartBeforeTheGuestRunsAndResetAtDestroy) {
    const auto engine = make_domain({{"00:1a:4a:16:01:10", "ovirtmgmt"}, {kMac, "sriovnet", kTrusted}});
    const auto start = vdsm_.start_vm(engine, kVmId);
    ASSERT_TRUE(start.ok) << start.failed_at << ": " << start.why;
    const auto pci = vf("ens1f0", 0);
    EXPECT_EQ(helper_.calls(), std::vector<std::string>{apply_line(pci, "trust=on max_tx_rate=1000 min_tx_rate=0")});
    EXPECT_NE(start.err().find("vNIC " + std::string(kMac) + ": VF " + pci +
                               " (ens1f0 VF 0) set to trust=on max_tx_rate=1000 min_tx_rate=0\n"),
              std::string::npos)
        << start.err();
    const auto held = host_.reservations();
    ASSERT_EQ(held.size(), 1u);
    EXPECT_EQ(held[0].vf_settings.trust, true);
    EXPECT_EQ(held[0].vf_settings.max_tx_rate, 1000u);
    EXPECT_FALSE(held[0].reset_pending);
    EXPECT_EQ(read_text(host_.state_dir() + "/vf-" + pci).substr(0, 32), "sriov-passthrough-reservation 3\n");

    helper_.forget();
    const auto destroyed = vdsm_.destroy(vdsm_.live_xml(engine, start.xml), kVmId);
    ASSERT_TRUE(destroyed.ok) << destroyed.why;
    EXPECT_EQ(destroyed.calls.at(0).status, 0) << destroyed.err();
    EXPECT_EQ(helper_.calls(), std::vector<std::string>{"reset " + pci});
    EXPECT_NE(destroyed.err().find("reset VF " + pci + " (ens1f0 VF 0) to the helper's baseline (it had trust=on"),
              std::string::npos)
        << destroyed.err();
    EXPECT_TRUE(host_.records().empty());
    EXPECT_TRUE(helper_.changed_vfs().empty());
}

TEST_F(VfSettingsFlow, AVnicThatAsksForNoSettingNeverRunsTheHelper) {
    const auto engine = make_domain({{kMac, "sriovnet", {{"passthrough", "true"}}}});
    const auto start = vdsm_.start_vm(engine, kVmId);
    ASSERT_TRUE(start.ok) << start.why;
    EXPECT_EQ(read_text(host_.state_dir() + "/vf-" + vf("ens1f0", 0)).substr(0, 32),
              "sriov-passthrough-reservation 1\n")
        << "the record is the one earlier releases read";
    ASSERT_TRUE(vdsm_.destroy(start.xml, kVmId).ok);
    EXPECT_TRUE(helper_.calls().empty());
    EXPECT_TRUE(host_.records().empty());
}

class VfSettingsDefaults : public VfSettingsFlow {
protected:
    VfSettingsDefaults() : VfSettingsFlow("vf_spoofchk = off\nvf_link_state = enable\nvf_trust = off\n") {}
};

TEST_F(VfSettingsDefaults, TheNetworksDefaultsAndTheVnicsOwnValues) {
    const auto engine = make_domain({{kMac, "sriovnet", {{"passthrough", "true"}}},
                                     {"00:1a:4a:16:01:52", "sriovnet", {{"passthrough", "true"}, {"vf_trust", "on"}}}});
    const auto start = vdsm_.start_vm(engine, kVmId);
    ASSERT_TRUE(start.ok) << start.why;
    EXPECT_EQ(helper_.calls(),
              (std::vector<std::string>{
                  apply_line(vf("ens1f0", 0), "trust=off spoofchk=off link_state=enable"),
                  apply_line(vf("ens1f1", 0), "trust=on spoofchk=off link_state=enable", kVmId, "00:1a:4a:16:01:52")}));
}

TEST_F(VfSettingsFlow, HotplugMakesThemAndUnplugOrAFailedPlugResets) {
    const auto nic = make_interface(kMac);
    const auto plugged = vdsm_.hotplug_nic(nic, kVmId, kTrusted);
    ASSERT_TRUE(plugged.ok) << plugged.failed_at << ": " << plugged.why;
    const auto pci = vf("ens1f0", 0);
    EXPECT_EQ(helper_.calls(), std::vector<std::string>{apply_line(pci, "trust=on max_tx_rate=1000 min_tx_rate=0")});

    const auto unplugged = vdsm_.hotunplug_nic(nic, kVmId, kTrusted);
    ASSERT_TRUE(unplugged.ok) << unplugged.why;
    EXPECT_EQ(helper_.calls().back(), "reset " + pci);
    EXPECT_TRUE(host_.records().empty());

    // libvirt refuses the plug: after_nic_hotplug_fail gives it back, reset.
    helper_.forget();
    const auto refused = vdsm_.hotplug_nic(nic, kVmId, kTrusted, /*attach_fails=*/true);
    EXPECT_EQ(refused.failed_at, "libvirt");
    EXPECT_EQ(helper_.calls(),
              (std::vector<std::string>{apply_line(pci, "trust=on max_tx_rate=1000 min_tx_rate=0"), "reset " + pci}));
    EXPECT_TRUE(host_.records().empty());
    EXPECT_TRUE(helper_.changed_vfs().empty());
}

// One line on stderr, ending in a newline.
void expect_one_line(const std::string& err) {
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

TEST_F(VfSettingsFlow, OnErrorFailRefusesTheStartAndHoldsNothing) {
    helper_.fail("trust=on", 1);
    const auto xml = make_domain({{kMac, "sriovnet", kTrusted}});
    const auto run = host_.run("before_vm_start", xml, kVmId);
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.xml, xml) << "the XML byte for byte";
    expect_one_line(run.err);
    const auto pci = vf("ens1f0", 0);
    EXPECT_EQ(run.err, "sriov-passthrough: before_vm_start: VF settings trust=on max_tx_rate=1000 min_tx_rate=0 for vNIC " +
                           std::string(kMac) + " on VF " + pci +
                           " (ens1f0 VF 0) could not be made (on_error = fail; nothing is held): VF helper " +
                           helper_.path() + ": sriov-passthrough-vf-helper: VF " + pci +
                           " (stand-in PF VF 0): trust=on: Operation not supported by the driver\n");
    EXPECT_TRUE(host_.records().empty());
    EXPECT_EQ(helper_.calls(), std::vector<std::string>{apply_line(pci, "trust=on max_tx_rate=1000 min_tx_rate=0")})
        << "status 1: the helper undid everything, so no reset is due";

    // As VDSM does it: the start fails, and the destroy that follows is quiet.
    const auto start = vdsm_.start_vm(xml, kVmId);
    EXPECT_FALSE(start.ok);
    EXPECT_EQ(start.failed_at, "before_vm_start");
    EXPECT_TRUE(host_.records().empty());
}

TEST_F(VfSettingsFlow, PartialFailureOfAVmIsUndoneOnEveryVf) {
    // The first vNIC's settings are made, the second's are refused: the
    // first VF is reset, both records go.
    helper_.fail("spoofchk=off", 1);
    const auto xml = make_domain({{kMac, "sriovnet", kTrusted},
                                  {"00:1a:4a:16:01:52", "sriovnet", {{"passthrough", "true"}, {"vf_spoofchk", "off"}}},
                                  {"00:1a:4a:16:01:53", "sriovnet", {{"passthrough", "true"}, {"vf_trust", "on"}}}});
    const auto run = host_.run("before_vm_start", xml, kVmId);
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.xml, xml);
    expect_one_line(run.err);
    EXPECT_NE(run.err.find("VF settings spoofchk=off for vNIC 00:1a:4a:16:01:52 on VF " + vf("ens1f1", 0) +
                           " (ens1f1 VF 0) could not be made"),
              std::string::npos)
        << run.err;
    EXPECT_EQ(helper_.calls(),
              (std::vector<std::string>{apply_line(vf("ens1f0", 0), "trust=on max_tx_rate=1000 min_tx_rate=0"),
                                        apply_line(vf("ens1f1", 0), "spoofchk=off", kVmId, "00:1a:4a:16:01:52"),
                                        "reset " + vf("ens1f0", 0)}))
        << "the third vNIC is never tried";
    EXPECT_TRUE(host_.records().empty());
    EXPECT_TRUE(helper_.changed_vfs().empty());
}

TEST_F(VfSettingsFlow, AHelperThatLeavesTheVfChangedGetsItReset) {
    helper_.fail("trust=on", 5);
    const auto xml = make_domain({{kMac, "sriovnet", kTrusted}});
    const auto run = host_.run("before_vm_start", xml, kVmId);
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.xml, xml);
    expect_one_line(run.err);
    EXPECT_EQ(helper_.calls().back(), "reset " + vf("ens1f0", 0));
    EXPECT_TRUE(host_.records().empty());
}

class VfSettingsWarn : public VfSettingsFlow {
protected:
    VfSettingsWarn() : VfSettingsFlow("on_error = warn\n") {}
};

TEST_F(VfSettingsWarn, StartsWithoutTheSettingsAndSaysSo) {
    helper_.fail("trust=on", 1);
    const auto engine = make_domain({{kMac, "sriovnet", kTrusted}});
    const auto start = vdsm_.start_vm(engine, kVmId);
    ASSERT_TRUE(start.ok) << start.why;
    const auto pci = vf("ens1f0", 0);
    EXPECT_NE(start.xml.find("<interface type=\"hostdev\""), std::string::npos);
    EXPECT_NE(start.err().find("sriov-passthrough: before_vm_start: VF settings trust=on for vNIC " + std::string(kMac) +
                               " on VF " + pci + " (ens1f0 VF 0) not made; starting without it, with max_tx_rate=1000 "
                               "min_tx_rate=0 (on_error = warn): VF helper " +
                               helper_.path() + ": sriov-passthrough-vf-helper: VF " + pci +
                               " (stand-in PF VF 0): trust=on: Operation not supported by the driver\n"),
              std::string::npos)
        << start.err();
    EXPECT_EQ(helper_.calls(), (std::vector<std::string>{apply_line(pci, "trust=on max_tx_rate=1000 min_tx_rate=0"),
                                                         apply_line(pci, "trust=on"),
                                                         apply_line(pci, "max_tx_rate=1000 min_tx_rate=0")}))
        << "all at once, then one by one";
    const auto held = host_.reservations();
    ASSERT_EQ(held.size(), 1u);
    VfSettings rate_only;
    rate_only.max_tx_rate = 1000;
    rate_only.min_tx_rate = 0;
    EXPECT_EQ(held[0].vf_settings, rate_only) << "the record says what the VF has";

    helper_.forget();
    ASSERT_TRUE(vdsm_.destroy(start.xml, kVmId).ok);
    EXPECT_EQ(helper_.calls(), std::vector<std::string>{"reset " + pci});
    EXPECT_TRUE(host_.records().empty());
}

TEST_F(VfSettingsWarn, NoneMadeLeavesARecordWithoutSettings) {
    helper_.fail("trust=on", 1);
    const auto start = vdsm_.start_vm(make_domain({{kMac, "sriovnet", {{"passthrough", "true"}, {"vf_trust", "on"}}}}),
                                      kVmId);
    ASSERT_TRUE(start.ok) << start.why;
    EXPECT_NE(start.err().find("VF settings trust=on for vNIC " + std::string(kMac) + " on VF " + vf("ens1f0", 0) +
                               " (ens1f0 VF 0) not made; starting without it (on_error = warn): "),
              std::string::npos)
        << start.err();
    EXPECT_EQ(helper_.calls().size(), 1u) << "a single setting is not tried twice";
    const auto held = host_.reservations();
    ASSERT_EQ(held.size(), 1u);
    EXPECT_TRUE(held[0].vf_settings.empty());
    helper_.forget();
    ASSERT_TRUE(vdsm_.destroy(start.xml, kVmId).ok);
    EXPECT_TRUE(helper_.calls().empty()) << "nothing to reset";
}

TEST_F(VfSettingsFlow, AMissingHelperIsAClearErrorAndHoldsNothing) {
    host_.write_config("vf_helper = /nonexistent/vf-helper\n[network.sriovnet]\npfs = ens1f0, ens1f1\n");
    const auto xml = make_domain({{kMac, "sriovnet", kTrusted}});
    const auto run = host_.run("before_vm_start", xml, kVmId);
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.xml, xml);
    expect_one_line(run.err);
    EXPECT_NE(run.err.find("could not be made (on_error = fail; nothing is held): VF helper /nonexistent/vf-helper: "
                           "cannot be run: /nonexistent/vf-helper: No such file or directory\n"),
              std::string::npos)
        << run.err;
    EXPECT_TRUE(host_.records().empty());
    // Without settings the helper is not needed.
    const auto plain = host_.run("before_vm_start", make_domain({{kMac, "sriovnet", {{"passthrough", "true"}}}}), kVmId);
    EXPECT_EQ(plain.status, 0) << plain.err;
}

// One VF on the network, so the next VM needs that very VF.
class VfSettingsOneVf : public VfSettingsFlow {
protected:
    VfSettingsOneVf() : VfSettingsFlow("", 1) {
        host_.write_config("vf_helper = " + helper_.path() + "\n[network.sriovnet]\npfs = ens1f0\n");
    }
};

TEST_F(VfSettingsOneVf, AFailedResetKeepsTheRecordMarkedAndTheVfIsResetBeforeReuse) {
    const auto engine = make_domain({{kMac, "sriovnet", kTrusted}});
    const auto start = vdsm_.start_vm(engine, kVmId);
    ASSERT_TRUE(start.ok) << start.why;
    const auto pci = vf("ens1f0", 0);

    helper_.fail("reset", 5);
    const auto destroyed = vdsm_.destroy(start.xml, kVmId);
    ASSERT_EQ(destroyed.calls.size(), 1u);
    EXPECT_EQ(destroyed.calls[0].status, 1) << "a failed after_* hook: VDSM logs it";
    expect_one_line(destroyed.calls[0].err);
    EXPECT_NE(destroyed.calls[0].err.find("resetting the settings of VF " + pci + " (ens1f0 VF 0) (trust=on "
                                          "max_tx_rate=1000 min_tx_rate=0, made for vNIC " + kMac),
              std::string::npos)
        << destroyed.calls[0].err;
    EXPECT_NE(destroyed.calls[0].err.find("done: released VF " + pci), std::string::npos) << destroyed.calls[0].err;
    auto held = host_.reservations();
    ASSERT_EQ(held.size(), 1u) << "the record stays";
    EXPECT_TRUE(held[0].reset_pending);

    // Meanwhile the VF is not handed out, not even to the same vNIC.
    const auto other = make_domain({{"00:1a:4a:16:02:51", "sriovnet", {{"passthrough", "true"}}}}, kOtherVm, "vm2");
    auto refused = host_.run("before_vm_start", other, kOtherVm);
    EXPECT_EQ(refused.status, 2);
    EXPECT_NE(refused.err.find("no free VF (all 1 VFs of ens1f0 are held)"), std::string::npos) << refused.err;
    EXPECT_EQ(host_.run("before_vm_start", engine, kVmId).status, 2);
    ASSERT_EQ(host_.reservations().size(), 1u);
    EXPECT_TRUE(host_.reservations()[0].reset_pending);

    // status says so.
    const auto status = run_command({SRIOVPT_CLI, "--config", host_.conf_path(), "status", "--json", "--no-libvirt"});
    EXPECT_NE(status.output.find("\"state\": \"reset-pending\""), std::string::npos) << status.output;
    EXPECT_NE(status.output.find("\"vf_settings\": {\"trust\": \"on\", \"max_tx_rate\": 1000, \"min_tx_rate\": 0}, "
                                 "\"vf_settings_from\": \"record\""),
              std::string::npos)
        << status.output;

    // Once the helper can, the next reservation that needs the VF resets it
    // first, then hands it out, clean.
    helper_.heal();
    helper_.forget();
    const auto again = vdsm_.start_vm(other, kOtherVm);
    ASSERT_TRUE(again.ok) << again.why;
    EXPECT_EQ(helper_.calls(), std::vector<std::string>{"reset " + pci});
    EXPECT_NE(again.err().find("reset VF " + pci + " (ens1f0 VF 0) to the helper's baseline"), std::string::npos)
        << again.err();
    held = host_.reservations();
    ASSERT_EQ(held.size(), 1u);
    EXPECT_EQ(held[0].vm_id, kOtherVm);
    EXPECT_TRUE(helper_.changed_vfs().empty());
}

TEST_F(VfSettingsOneVf, AVfLeftByAVmThatDiedUnseenIsResetBeforeItIsHandedOutAgain) {
    // after_vm_destroy never ran (VDSM was killed): the record of a VM that
    // no longer runs, with settings. Reclaimed when the pool runs dry, it is
    // reset first.
    // libvirt's test driver, whose one running domain is not this VM.
    write_text(host_.conf_path(), "sysfs_root = " + host_.dir() + "/sys\nstate_dir = " + host_.state_dir() +
                                      "\nlibvirt_uri = test:///default\nreclaim_grace = 0\nvf_helper = " +
                                      helper_.path() + "\n[network.sriovnet]\npfs = ens1f0\n");
    const auto engine = make_domain({{kMac, "sriovnet", kTrusted}});
    ASSERT_TRUE(vdsm_.start_vm(engine, kVmId).ok);
    helper_.forget();

    const auto other = make_domain({{"00:1a:4a:16:02:51", "sriovnet", {{"passthrough", "true"}, {"vf_trust", "on"}}}},
                                   kOtherVm, "vm2");
    const auto start = vdsm_.start_vm(other, kOtherVm);
    ASSERT_TRUE(start.ok) << start.why;
    const auto pci = vf("ens1f0", 0);
    EXPECT_EQ(helper_.calls(), (std::vector<std::string>{"reset " + pci,
                                                         apply_line(pci, "trust=on", kOtherVm, "00:1a:4a:16:02:51")}));
    const auto held = host_.reservations();
    ASSERT_EQ(held.size(), 1u);
    EXPECT_EQ(held[0].vm_id, kOtherVm);
}

TEST_F(VfSettingsFlow, TheCommandsReleaseAndGcResetToo) {
    const auto engine = make_domain({{kMac, "sriovnet", kTrusted}});
    ASSERT_TRUE(vdsm_.start_vm(engine, kVmId).ok);
    const auto pci = vf("ens1f0", 0);
    const auto cli = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {SRIOVPT_CLI, "--config", host_.conf_path()});
        return run_command(args);
    };
    helper_.forget();
    auto r = cli({"release", "--vm-id", kVmId});
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("reset VF " + pci), std::string::npos) << r.output;
    EXPECT_EQ(helper_.calls(), std::vector<std::string>{"reset " + pci});
    EXPECT_TRUE(host_.records().empty());

    ASSERT_TRUE(vdsm_.start_vm(engine, kVmId).ok);
    helper_.forget();
    r = cli({"release", "--vf", pci});
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(helper_.calls(), std::vector<std::string>{"reset " + pci});
    EXPECT_TRUE(host_.records().empty());

    // A reset that fails leaves the record; gc retries it.
    ASSERT_TRUE(vdsm_.start_vm(engine, kVmId).ok);
    helper_.fail("reset", 6);
    r = cli({"release", "--vm-id", kVmId});
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find("its record stays, marked"), std::string::npos) << r.output;
    ASSERT_EQ(host_.reservations().size(), 1u);
    r = cli({"gc", "--dry-run"});
    EXPECT_NE(r.output.find("would reset VF " + pci), std::string::npos) << r.output;
    helper_.heal();
    helper_.forget();
    r = cli({"gc"});
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(helper_.calls(), std::vector<std::string>{"reset " + pci});
    EXPECT_TRUE(host_.records().empty());
}

TEST_F(VfSettingsFlow, StatusShowsTheSettingsOfEachHeldVf) {
    ASSERT_TRUE(vdsm_.start_vm(make_domain({{kMac, "sriovnet", kTrusted}}), kVmId).ok);
    const auto table = run_command({SRIOVPT_CLI, "--config", host_.conf_path(), "status", "--no-libvirt"});
    EXPECT_NE(table.output.find("VF " + vf("ens1f0", 0) +
                                " (ens1f0 VF 0) settings: trust=on max_tx_rate=1000 min_tx_rate=0 (from the record)\n"),
              std::string::npos)
        << table.output;
}

TEST_F(VfSettingsFlow, CheckRunsTheHelper) {
    auto r = run_command({SRIOVPT_CLI, "--config", host_.conf_path(), "check"});
    EXPECT_NE(r.output.find("ok: VF helper " + helper_.path() + " run as "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("sriov-passthrough-vf-helper: ok: stand-in"), std::string::npos) << r.output;
    helper_.fail("check", 4);
    r = run_command({SRIOVPT_CLI, "--config", host_.conf_path(), "check"});
    EXPECT_NE(r.output.find("warning: VF helper " + helper_.path() + " run as "), std::string::npos) << r.output;
    host_.write_config("vf_helper = /nonexistent/helper\n[network.sriovnet]\npfs = ens1f0\nvf_trust = on\n");
    r = run_command({SRIOVPT_CLI, "--config", host_.conf_path(), "check"});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.output.find("PROBLEM: VF helper /nonexistent/helper (vf_helper): No such file or directory"),
              std::string::npos)
        << r.output;
}

TEST_F(VfSettingsFlow, AFailoverVfIsSetOnTheDestinationAndResetOnTheSource) {
    TestHost there("");
    StandIn there_helper(there);
    there.write_config("vf_helper = " + there_helper.path() + "\n[network.sriovnet]\npfs = ens1f0, ens1f1\n");
    there.sysfs().add_pf({"ens1f0", "0000:3b:00.0", 2});
    there.sysfs().add_pf({"ens1f1", "0000:5e:00.0", 2});
    VdsmFlow there_vdsm(there);

    const Props failover{{"passthrough", "true"}, {"failover", "true"}, {"vf_trust", "on"}};
    const auto engine = make_domain({{kMac, "sriovnet", failover}});
    const auto start = vdsm_.start_vm(engine, kVmId);
    ASSERT_TRUE(start.ok) << start.why;
    const auto pci = vf("ens1f0", 0);
    EXPECT_EQ(helper_.calls(), std::vector<std::string>{apply_line(pci, "trust=on")});
    helper_.forget();

    const auto moved = migrate(vdsm_, there_vdsm, vdsm_.live_xml(engine, start.xml), kVmId);
    ASSERT_TRUE(moved.ok) << moved.failed_at << ": " << moved.why;
    EXPECT_EQ(there_helper.calls(), std::vector<std::string>{apply_line(pci, "trust=on")})
        << "made at before_vm_migrate_destination, before libvirt hands the VF to the guest";
    EXPECT_EQ(helper_.calls(), std::vector<std::string>{"reset " + pci}) << "the source's VF, at after_vm_migrate_source";
    EXPECT_TRUE(host_.records().empty());
    ASSERT_EQ(there.reservations().size(), 1u);
    EXPECT_EQ(there.reservations()[0].vf_settings.trust, true);

    there_helper.forget();
    ASSERT_TRUE(there_vdsm.destroy(vdsm_.live_xml(engine, start.xml), kVmId).ok);
    EXPECT_EQ(there_helper.calls(), std::vector<std::string>{"reset " + pci});
    EXPECT_TRUE(there.records().empty());
}

TEST_F(VfSettingsFlow, ADestinationThatCannotMakeTheSettingsRefusesTheMigration) {
    TestHost there("");
    StandIn there_helper(there);
    there.write_config("vf_helper = " + there_helper.path() + "\n[network.sriovnet]\npfs = ens1f0\n");
    there.sysfs().add_pf({"ens1f0", "0000:3b:00.0", 2});
    VdsmFlow there_vdsm(there);
    there_helper.fail("trust=on", 1);

    const Props failover{{"passthrough", "true"}, {"failover", "true"}, {"vf_trust", "on"}};
    const auto engine = make_domain({{kMac, "sriovnet", failover}});
    const auto start = vdsm_.start_vm(engine, kVmId);
    ASSERT_TRUE(start.ok) << start.why;
    helper_.forget();
    const auto m = migrate(vdsm_, there_vdsm, vdsm_.live_xml(engine, start.xml), kVmId);
    EXPECT_FALSE(m.ok);
    EXPECT_EQ(m.failed_at, "before_vm_migrate_destination");
    expect_one_line(m.why);
    EXPECT_NE(m.why.find("trust=on: Operation not supported by the driver"), std::string::npos) << m.why;
    EXPECT_TRUE(there.records().empty()) << "the destination holds nothing";
    EXPECT_TRUE(helper_.calls().empty()) << "the VM stays on the source, its VF as it was";
    EXPECT_EQ(host_.reservations().size(), 1u);
}

TEST_F(VfSettingsFlow, BadValuesAreRefusedBeforeAnythingIsReserved) {
    const auto refused = [&](const Props& props) {
        const auto xml = make_domain({{kMac, "sriovnet", props}});
        const auto run = host_.run("before_vm_start", xml, kVmId);
        EXPECT_EQ(run.status, 2);
        EXPECT_EQ(run.xml, xml);
        EXPECT_TRUE(host_.records().empty());
        return run.err;
    };
    EXPECT_EQ(refused({{"passthrough", "true"}, {"vf_trust", "yes"}}),
              "sriov-passthrough: before_vm_start: vNIC " + std::string(kMac) +
                  ": property vf_trust='yes' is not allowed (allowed: on or off)\n");
    EXPECT_EQ(refused({{"passthrough", "true"}, {"vf_max_tx_rate", "100"}, {"vf_min_tx_rate", "200"}}),
              "sriov-passthrough: before_vm_start: vNIC " + std::string(kMac) +
                  " on network sriovnet: vf_min_tx_rate 200 (the vNIC's property) is above vf_max_tx_rate 100 (the "
                  "vNIC's property); the minimum must not exceed the maximum (0 = no limit)\n");
    EXPECT_TRUE(helper_.calls().empty());
    // Not ours without passthrough: another hook may use the name.
    const auto other = host_.run("before_vm_start", make_domain({{kMac, "sriovnet", {{"vf_trust", "yes"}}}}), kVmId);
    EXPECT_EQ(other.status, 0) << other.err;
}

TEST_F(VfSettingsFlow, ALeftoverTheVnicNoLongerUsesIsReset) {
    // The VM died without after_vm_destroy and starts again on another VLAN:
    // its old VF is given back (docs/design.md, "The choice rule"), reset.
    ASSERT_TRUE(vdsm_.start_vm(make_domain({{kMac, "sriovnet", kTrusted}}), kVmId).ok);
    const auto old_pci = vf("ens1f0", 0);
    helper_.forget();
    Props moved = kTrusted;
    moved["vlan"] = "300";
    const auto start = vdsm_.start_vm(make_domain({{kMac, "sriovnet", moved}}), kVmId);
    ASSERT_TRUE(start.ok) << start.why;
    const auto held = host_.reservations();
    ASSERT_EQ(held.size(), 1u);
    EXPECT_EQ(held[0].vlan, 300u);
    const auto calls = helper_.calls();
    ASSERT_EQ(calls.size(), 2u);
    EXPECT_EQ(calls[0], "reset " + old_pci);
    EXPECT_EQ(calls[1], apply_line(held[0].pci.to_string(), "trust=on max_tx_rate=1000 min_tx_rate=0"));
    EXPECT_EQ(helper_.changed_vfs(), std::vector<std::string>{held[0].pci.to_string()});
}

TEST_F(VfSettingsFlow, TheNextReservationRetriesAResetThatFailed) {
    ASSERT_TRUE(vdsm_.start_vm(make_domain({{kMac, "sriovnet", kTrusted}}), kVmId).ok);
    const auto pci = vf("ens1f0", 0);
    helper_.fail("reset", 5);
    EXPECT_EQ(vdsm_.destroy(make_domain({{kMac, "sriovnet", kTrusted}}), kVmId).calls.at(0).status, 1);
    ASSERT_EQ(host_.reservations().size(), 1u);
    helper_.heal();
    helper_.forget();

    // The VM again, now without settings, a free VF elsewhere: its vNIC's
    // pending reset is done after its reservation, outside the lock.
    const auto again = make_domain({{kMac, "sriovnet", {{"passthrough", "true"}}}});
    const auto start = vdsm_.start_vm(again, kVmId);
    ASSERT_TRUE(start.ok) << start.why;
    EXPECT_EQ(helper_.calls(), std::vector<std::string>{"reset " + pci});
    const auto held = host_.reservations();
    ASSERT_EQ(held.size(), 1u);
    EXPECT_EQ(held[0].vm_id, kVmId);
    EXPECT_NE(held[0].pci.to_string(), pci) << "not the VF that waited for its reset";
}

}  // namespace
}  // namespace sriovpt::test
