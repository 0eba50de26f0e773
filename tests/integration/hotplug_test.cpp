// Device-level hooks: before_nic_hotplug / before_device_create get one
// <interface> and the vNIC's properties in the environment; the unplug hooks
// find the VF by vmId and MAC in our records.
#include <gtest/gtest.h>
#include <unistd.h>

#include "harness.hpp"

namespace sriovpt::test {
namespace {

class Hotplug : public testing::Test {
protected:
    Hotplug() : host_("[network.sriovnet]\npfs = ens1f0\n") { host_.sysfs().add_pf({"ens1f0", "0000:3b:00.0", 2}); }
    TestHost host_;
};

TEST_F(Hotplug, PlugThenUnplugGivesTheVfBack) {
    const auto nic = test_data("fixtures/hotplug-interface.xml");
    const auto plugged = host_.run("before_nic_hotplug", nic, kVmId, {{"passthrough", "true"}, {"vlan", "42"}});
    ASSERT_EQ(plugged.status, 0) << plugged.err;
    EXPECT_NE(plugged.xml.find(R"(<interface type="hostdev" managed="yes">)"), std::string::npos) << plugged.xml;
    EXPECT_NE(plugged.xml.find(R"(<tag id="42" />)"), std::string::npos) << plugged.xml;
    ASSERT_EQ(host_.reservations().size(), 1u);
    EXPECT_EQ(host_.reservations()[0].mac, "00:1a:4a:16:01:62");
    EXPECT_EQ(host_.reservations()[0].origin, "before_nic_hotplug");

    // The hotplugged interface inside a domain must satisfy libvirt too.
    auto domain = make_domain({});
    const auto body = plugged.xml.substr(plugged.xml.find("<interface"));
    domain.insert(domain.find("  </devices>"), body);
    EXPECT_EQ(libvirt_rejects(domain), "");

    // VDSM hands after_nic_hotunplug its own copy of the original bridge vNIC.
    const auto unplugged = host_.run("after_nic_hotunplug", nic, kVmId);
    EXPECT_EQ(unplugged.status, 0) << unplugged.err;
    EXPECT_NE(unplugged.err.find("released VF 0000:3b:02.0"), std::string::npos) << unplugged.err;
    EXPECT_TRUE(host_.records().empty());
}

TEST_F(Hotplug, FailedHotplugReleasesFromTheRewrittenXml) {
    const auto plugged = host_.run("before_nic_hotplug", make_interface("00:1a:4a:16:01:63"), kVmId, {{"passthrough", "true"}});
    ASSERT_EQ(plugged.status, 0) << plugged.err;
    const auto other = host_.run("before_nic_hotplug", make_interface("00:1a:4a:16:01:64"), kVmId, {{"passthrough", "true"}});
    ASSERT_EQ(other.status, 0) << other.err;
    const auto failed = host_.run("after_nic_hotplug_fail", plugged.xml, kVmId);
    EXPECT_EQ(failed.status, 0) << failed.err;
    const auto held = host_.reservations();
    ASSERT_EQ(held.size(), 1u) << "only the failed vNIC's VF is released";
    EXPECT_EQ(held[0].mac, "00:1a:4a:16:01:64");
}

// VDSM runs before_device_create over each vNIC at every VM start, before
// before_vm_start; reserving there would break all-or-nothing and failover
// pairs (docs/design.md, "Hook points"), and the hook point has no other
// job: none is installed.
TEST_F(Hotplug, NoHookOfOursRunsAtBeforeDeviceCreate) {
    EXPECT_NE(::access(hook_path("before_vm_start").c_str(), X_OK), -1);
    EXPECT_EQ(::access(hook_path("before_device_create").c_str(), F_OK), -1);

    // The operator who tries it by hand is told why.
    const auto nic = host_.dir() + "/nic.xml";
    write_text(nic, make_interface("00:1a:4a:16:01:65"));
    const auto run = run_command({SRIOVPT_CLI, "run", "before_device_create", "--domxml", nic});
    EXPECT_NE(run.status, 0);
    EXPECT_NE(run.output.find("no hook of ours runs at before_device_create: VDSM hands each device back unchanged, "
                              "and before_vm_start passes the whole VM's vNICs through"),
              std::string::npos)
        << run.output;
    EXPECT_TRUE(host_.records().empty());
}

TEST_F(Hotplug, WithoutPassthroughNothingHappens) {
    const auto nic = make_interface("00:1a:4a:16:01:66");
    for (const auto& props : std::vector<std::map<std::string, std::string>>{{}, {{"passthrough", "false"}, {"vlan", "5"}}}) {
        const auto run = host_.run("before_nic_hotplug", nic, kVmId, props);
        EXPECT_EQ(run.status, 0) << run.err;
        EXPECT_EQ(run.xml, nic);
    }
    EXPECT_TRUE(host_.records().empty());
}

TEST_F(Hotplug, ExhaustionAndBadInputRefuseTheHotplugCleanly) {
    for (const auto* mac : {"00:1a:4a:16:01:71", "00:1a:4a:16:01:72"})
        ASSERT_EQ(host_.run("before_nic_hotplug", make_interface(mac), kVmId, {{"passthrough", "true"}}).status, 0);
    struct Case {
        std::string xml;
        std::optional<std::string> vm;
        std::map<std::string, std::string> props;
        std::string message;
    };
    const std::vector<Case> cases{
        {make_interface("00:1a:4a:16:01:73"), kVmId, {{"passthrough", "true"}},
         "reserving a VF for vNIC 00:1a:4a:16:01:73 on network sriovnet: no free VF (all 2 VFs of ens1f0 are held)"},
        {make_interface("00:1a:4a:16:01:73"), std::nullopt, {{"passthrough", "true"}}, "no VM id: $vmId is not set"},
        {make_interface("00:1a:4a:16:01:73"), kVmId, {{"passthrough", "true"}, {"vlan", "abc"}},
         "property vlan: 'abc' is not a VLAN tag"},
        {make_interface("00:1a:4a:16:01:73"), kVmId, {{"passthrough", "TRUE"}}, "property passthrough='TRUE'"},
        {make_interface("00:1a:4a:16:01:73", "elsewhere"), kVmId, {{"passthrough", "true"}},
         "no PF pool configured for network elsewhere"},
        {"<interface type='bridge'><source bridge='sriovnet'/></interface>", kVmId, {{"passthrough", "true"}},
         "has passthrough=true but no <mac address>"},
        {"<disk/>", kVmId, {{"passthrough", "true"}}, "expected a <interface> element, got <disk>"},
    };
    const auto before = host_.records().size();
    for (const auto& c : cases) {
        const auto run = host_.run("before_nic_hotplug", c.xml, c.vm, c.props);
        EXPECT_EQ(run.status, 2) << c.message;
        EXPECT_EQ(run.xml, c.xml);
        EXPECT_NE(run.err.find(c.message), std::string::npos) << run.err;
        EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
    }
    EXPECT_EQ(host_.records().size(), before);
}

TEST_F(Hotplug, UnplugHooksFailWithExitOne) {
    // VDSM passes the vNIC's custom properties to the unplug hooks.
    const auto run = host_.run("after_nic_hotunplug", "<interface type='bridge'/>", kVmId, {{"passthrough", "true"}});
    EXPECT_EQ(run.status, 1);
    EXPECT_NE(run.err.find("sriov-passthrough: after_nic_hotunplug: the <interface> has no valid <mac address>"),
              std::string::npos) << run.err;
    const auto unknown = host_.run("after_nic_hotunplug", make_interface("00:1a:4a:16:01:99"), kVmId);
    EXPECT_EQ(unknown.status, 0) << "releasing what is not held succeeds quietly";
    EXPECT_EQ(unknown.err, "");
    // Without passthrough among its properties the vNIC is not ours: even
    // bad input is no reason to fail VDSM's operation.
    const auto bystander = host_.run("after_nic_hotunplug", "<interface type='bridge'/>", kVmId, {{"vlan", "5"}});
    EXPECT_EQ(bystander.status, 0);
    EXPECT_EQ(bystander.err, "");
}

}  // namespace
}  // namespace sriovpt::test
