// before_vm_start and after_vm_destroy through the real executables, run as
// VDSM runs them: environment, a temporary XML file, exit codes, stderr.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "harness.hpp"

namespace sriovpt::test {
namespace {

const std::map<std::string, std::string> kPassthrough{{"passthrough", "true"}};

// Two PFs of four VFs serving sriovnet, default VLAN 200.
class VmStart : public testing::Test {
protected:
    VmStart() : host_("[network.sriovnet]\npfs = ens1f0, ens1f1\nvlan = 200\n") {
        host_.sysfs().add_pf({"ens1f0", "0000:3b:00.0", 4});
        host_.sysfs().add_pf({"ens1f1", "0000:5e:00.0", 4});
    }

    // Runs a before_* hook that must fail: exit 2, one line on stderr that
    // contains `what`, the file untouched, no reservation.
    void expect_refused(const std::string& hook_point, const std::string& xml, const std::optional<std::string>& vm,
                        const std::string& what, const std::map<std::string, std::string>& props = {}) {
        const auto before = host_.records().size();
        const auto run = host_.run(hook_point, xml, vm, props);
        EXPECT_EQ(run.status, 2) << run.err;
        EXPECT_EQ(run.xml, xml) << "the XML file must be left byte for byte";
        EXPECT_NE(run.err.find(what), std::string::npos) << run.err;
        EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
        EXPECT_EQ(run.err.rfind("sriov-passthrough: " + hook_point + ": ", 0), 0u) << run.err;
        EXPECT_EQ(host_.records().size(), before) << "no reservation may be left behind";
    }

    TestHost host_;
};

TEST_F(VmStart, EngineFixtureGetsAVfAndLibvirtAcceptsTheResult) {
    const auto xml = test_data("fixtures/engine-domain.xml");
    const auto run = host_.run("before_vm_start", xml, kVmId);
    ASSERT_EQ(run.status, 0) << run.err;
    EXPECT_NE(run.xml.find(R"(<interface type="hostdev" managed="yes">)"), std::string::npos) << run.xml;
    EXPECT_NE(run.xml.find(R"(<address type="pci" domain="0x0000" bus="0x3b" slot="0x02" function="0x0" />)"),
              std::string::npos) << run.xml;
    EXPECT_NE(run.xml.find(R"(<tag id="100" />)"), std::string::npos) << "the vNIC's vlan overrides the network's";
    EXPECT_NE(run.xml.find(R"(<source bridge="ovirtmgmt" />)"), std::string::npos) << "the other vNIC stays a bridge";
    EXPECT_NE(run.xml.find("<?xml version=\"1.0\" encoding=\"utf-8\"?>"), std::string::npos) << "declaration kept";
    EXPECT_EQ(run.err,
              "sriov-passthrough: before_vm_start: vNIC 00:1a:4a:16:01:51 of VM " + std::string(kVmId) +
              " on sriovnet -> VF 0000:3b:02.0 (ens1f0 VF 0, "
              "VLAN 100); dropped for passthrough: model, mtu (the VF uses the PF's MTU), filterref (no MAC "
              "anti-spoofing), bandwidth (no QoS)\n");
    const auto held = host_.reservations();
    ASSERT_EQ(held.size(), 1u);
    EXPECT_EQ(held[0].vm_id, kVmId);
    EXPECT_EQ(held[0].mac, "00:1a:4a:16:01:51");
    EXPECT_EQ(held[0].vlan, 100u);
    EXPECT_EQ(libvirt_rejects(run.xml), "");
}

TEST_F(VmStart, SecondRunOverItsOwnOutputChangesNothing) {
    const auto first = host_.run("before_vm_start", test_data("fixtures/engine-domain.xml"), kVmId);
    ASSERT_EQ(first.status, 0) << first.err;
    const auto second = host_.run("before_vm_start", first.xml, kVmId);
    EXPECT_EQ(second.status, 0) << second.err;
    EXPECT_EQ(second.xml, first.xml);
    EXPECT_EQ(host_.reservations().size(), 1u);
}

TEST_F(VmStart, SameVnicStartedAgainKeepsItsVf) {
    const auto xml = make_domain({{"00:1a:4a:16:01:51", "sriovnet", kPassthrough}});
    const auto first = host_.run("before_vm_start", xml, kVmId);
    const auto again = host_.run("before_vm_start", xml, kVmId);
    ASSERT_EQ(again.status, 0) << again.err;
    EXPECT_EQ(again.xml, first.xml);
    EXPECT_NE(again.err.find("already held"), std::string::npos) << again.err;
    EXPECT_EQ(host_.reservations().size(), 1u);
}

TEST_F(VmStart, MixedVnicsSpreadOverPfsAndValidate) {
    const auto xml = make_domain({{"00:1a:4a:16:01:10", "ovirtmgmt"},
                                  {"00:1a:4a:16:01:51", "sriovnet", kPassthrough},
                                  {"00:1a:4a:16:01:52", "sriovnet", {{"passthrough", "true"}, {"vlan", "300"}}},
                                  {"00:1a:4a:16:01:53", "sriovnet", {{"passthrough", "false"}}},
                                  {"00:1A:4A:16:01:54", "sriovnet", kPassthrough}});
    const auto run = host_.run("before_vm_start", xml, kVmId);
    ASSERT_EQ(run.status, 0) << run.err;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 3) << "one line per passed-through vNIC";
    const auto held = host_.reservations();
    ASSERT_EQ(held.size(), 3u);
    std::map<std::string, Reservation> by_mac;
    for (const auto& r : held) by_mac[r.mac] = r;
    // Fewest held first, then lowest index: ens1f0 VF 0, ens1f1 VF 0, ens1f0 VF 1.
    EXPECT_EQ(by_mac.at("00:1a:4a:16:01:51").pci, host_.sysfs().vf_pci("ens1f0", 0));
    EXPECT_EQ(by_mac.at("00:1a:4a:16:01:52").pci, host_.sysfs().vf_pci("ens1f1", 0));
    EXPECT_EQ(by_mac.at("00:1a:4a:16:01:54").pci, host_.sysfs().vf_pci("ens1f0", 1));
    EXPECT_EQ(by_mac.at("00:1a:4a:16:01:51").vlan, 200u) << "the network's default VLAN";
    EXPECT_EQ(by_mac.at("00:1a:4a:16:01:52").vlan, 300u);
    EXPECT_EQ(libvirt_rejects(run.xml), "");

    const auto destroyed = host_.run("after_vm_destroy", run.xml, kVmId);
    EXPECT_EQ(destroyed.status, 0) << destroyed.err;
    EXPECT_EQ(destroyed.xml, run.xml) << "after_vm_destroy does not touch the XML";
    EXPECT_TRUE(host_.records().empty());
    const auto again = host_.run("after_vm_destroy", run.xml, kVmId);
    EXPECT_EQ(again.status, 0) << "release is idempotent";
    EXPECT_EQ(again.err, "");
}

TEST_F(VmStart, SkipsForeignVfs) {
    host_.sysfs().set_vf_driver("ens1f0", 0, "vfio-pci");   // assigned without our record
    host_.sysfs().set_vf_netdev_state("ens1f0", 1, "up");   // used by the host
    host_.write_config("[network.sriovnet]\npfs = ens1f0\n");
    const auto run = host_.run("before_vm_start", make_domain({{"00:1a:4a:16:01:51", "sriovnet", kPassthrough}}), kVmId);
    ASSERT_EQ(run.status, 0) << run.err;
    ASSERT_EQ(host_.reservations().size(), 1u);
    EXPECT_EQ(host_.reservations()[0].pci, host_.sysfs().vf_pci("ens1f0", 2));
}

TEST_F(VmStart, SriovPfPropertyAloneDefinesThePool) {
    host_.write_config("");
    const auto run = host_.run(
        "before_vm_start",
        make_domain({{"00:1a:4a:16:01:51", "unlisted", {{"passthrough", "true"}, {"sriov_pf", "ens1f1"}}}}), kVmId);
    ASSERT_EQ(run.status, 0) << run.err;
    EXPECT_EQ(host_.reservations().at(0).pf, "ens1f1");
    EXPECT_EQ(run.xml.find("<vlan>"), std::string::npos) << "no vlan property and no network default";
}

TEST_F(VmStart, NoPassthroughVnicNeedsNoConfiguration) {
    host_.write_config("this is = not [valid");  // never read on the fast path
    std::filesystem::remove_all(host_.dir() + "/sys");
    const auto xml = make_domain({{"00:1a:4a:16:01:10", "ovirtmgmt"}, {"00:1a:4a:16:01:11", "sriovnet"}});
    const auto run = host_.run("before_vm_start", xml, kVmId);
    EXPECT_EQ(run.status, 0) << run.err;
    EXPECT_EQ(run.xml, xml) << "nothing to do: the file is not rewritten";
    EXPECT_EQ(run.err, "");
}

TEST_F(VmStart, AllOrNothingWhenThePoolIsTooSmall) {
    host_.write_config("[network.sriovnet]\npfs = ens1f0\n");
    std::vector<TestVnic> vnics;
    for (int i = 0; i < 5; ++i) vnics.push_back({"00:1a:4a:16:01:5" + std::to_string(i), "sriovnet", kPassthrough});
    expect_refused("before_vm_start", make_domain(vnics), kVmId,
                   "reserving a VF for vNIC 00:1a:4a:16:01:54 on network sriovnet: no free VF (all 4 VFs of ens1f0 "
                   "are held)");
}

TEST_F(VmStart, ExhaustionNamesWhatBlocksEachPf) {
    host_.write_config("[network.sriovnet]\npfs = ens1f0, ens9f9\n");
    host_.sysfs().set_vf_driver("ens1f0", 3, "vfio-pci");
    host_.sysfs().set_vf_netdev_state("ens1f0", 2, "up");
    const auto a = make_domain({{"00:1a:4a:16:01:51", "sriovnet", kPassthrough}, {"00:1a:4a:16:01:52", "sriovnet", kPassthrough}},
                               kVmId);
    ASSERT_EQ(host_.run("before_vm_start", a, kVmId).status, 0);
    expect_refused("before_vm_start", make_domain({{"00:1a:4a:16:01:61", "sriovnet", kPassthrough}}, "11111111-2222-3333-4444-555555555555"),
                   std::nullopt,
                   "no free VF (ens1f0 has 4 VFs: 2 held, 1 bound to vfio-pci without a reservation, 1 in use by the "
                   "host (netdev up); ens9f9 is not an SR-IOV PF on this host");
}

TEST_F(VmStart, BadInputIsRefusedCleanly) {
    const auto good = make_domain({{"00:1a:4a:16:01:51", "sriovnet", kPassthrough}});
    // XML that names one of our properties may concern us, so what is wrong
    // with it is said; XML that names none is plainly not ours (an empty
    // file, too) and is left to libvirt: exit 0.
    expect_refused("before_vm_start", "<domain><devices><interface passthrough", kVmId, "is malformed");
    expect_refused("before_vm_start", "<network><failover/></network>", kVmId,
                   "expected a <domain> element, got <network>");
    for (const std::string other : {"", "<domain><devices><interface", "<network/>"}) {
        const auto run = host_.run("before_vm_start", other, kVmId);
        EXPECT_EQ(run.status, 0) << other;
        EXPECT_EQ(run.err, "") << other;
        EXPECT_EQ(run.xml, other);
    }
    expect_refused("before_vm_start", make_domain({{"00:1a:4a:16:01:51", "sriovnet", {{"passthrough", "yes"}}}}), kVmId,
                   "vNIC 00:1a:4a:16:01:51: property passthrough='yes' is not allowed (allowed: true or false)");
    expect_refused("before_vm_start",
                   make_domain({{"00:1a:4a:16:01:51", "sriovnet", {{"passthrough", "true"}, {"vlan", "4095"}}}}), kVmId,
                   "vNIC 00:1a:4a:16:01:51: property vlan: '4095' is not a VLAN tag (allowed: a whole number from 1 to 4094)");
    expect_refused("before_vm_start",
                   make_domain({{"00:1a:4a:16:01:51", "sriovnet", {{"passthrough", "true"}, {"sriov_pf", "../../etc"}}}}),
                   kVmId, "property sriov_pf: '../../etc' is not a list of PF names");
    expect_refused("before_vm_start",
                   make_domain({{"00:1a:4a:16:01:51", "sriovnet", {{"passthrough", "true"}, {"sriov_pf", "ens2f0"}}}}),
                   kVmId, "property sriov_pf names ens2f0, which does not serve this network");
    expect_refused("before_vm_start", make_domain({{"00:1a:4a:16:01:51", "othernet", kPassthrough}}), kVmId,
                   "vNIC 00:1a:4a:16:01:51 on network othernet: no PF pool configured for network othernet");
    expect_refused("before_vm_start", make_domain({{"00:1a:4a:16:01:51", "sriovnet", kPassthrough, "network"}}), kVmId,
                   "vNIC 00:1a:4a:16:01:51: has passthrough=true but is of type 'network'");
    expect_refused("before_vm_start",
                   make_domain({{"00:1a:4a:16:01:51", "sriovnet", kPassthrough}, {"00:1A:4A:16:01:51", "sriovnet", kPassthrough}}),
                   kVmId, "two vNICs have the MAC 00:1a:4a:16:01:51");
    // Values from the XML are escaped and cut: one line whatever they hold.
    const auto odd_network =
        make_domain({{"00:1a:4a:16:01:51", "other&#9;net" + std::string(100, 'x'), kPassthrough}});
    expect_refused("before_vm_start", odd_network, kVmId,
                   "on network other\\tnet" + std::string(55, 'x') + "... (109 bytes): no PF pool configured");
    auto no_uuid = good;
    no_uuid.erase(no_uuid.find("  <uuid>"), no_uuid.find("</uuid>\n") + 8 - no_uuid.find("  <uuid>"));
    expect_refused("before_vm_start", no_uuid, std::nullopt, "no VM id: $vmId is not set and the XML has no <uuid>");
    expect_refused("before_vm_start", good, std::string("not-a-uuid"), "$vmId 'not-a-uuid' is not a UUID");
    host_.write_config("[network.sriovnet]\npfs = ens1f0\nvlan = 0\n");
    expect_refused("before_vm_start", good, kVmId, "[network.sriovnet] vlan: '0' is not a VLAN tag");
}

TEST_F(VmStart, MissingHookDomxmlVariable) {
    const auto run = run_command({hook_path("before_vm_start")}, {{"vmId", kVmId}});
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.output, "sriov-passthrough: before_vm_start: $_hook_domxml is not set: run by VDSM, or by "
                          "'sriov-passthrough run'\n");
}

TEST_F(VmStart, NativeSriovHostdevIsLeftAlone) {
    auto xml = make_domain({{"00:1a:4a:16:01:51", "sriovnet", kPassthrough, "hostdev"}});
    const auto run = host_.run("before_vm_start", xml, kVmId);
    EXPECT_EQ(run.status, 0) << run.err;
    EXPECT_EQ(run.xml, xml);
    EXPECT_TRUE(host_.records().empty());
}

}  // namespace
}  // namespace sriovpt::test
