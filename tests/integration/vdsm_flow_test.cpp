// The hooks driven the way VDSM drives them (tests/support/vdsm_flow.hpp):
// every installed hook point, in VDSM's order, with VDSM's environment.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>

#include "harness.hpp"
#include "vdsm_flow.hpp"

namespace sriovpt::test {
namespace {

const Props kPassthrough{{"passthrough", "true"}};
const Props kFailover{{"passthrough", "true"}, {"failover", "true"}};
constexpr const char* kOtherVm = "11111111-2222-3333-4444-555555555555";
constexpr const char* kPool = "[network.sriovnet]\npfs = ens1f0, ens1f1\nvlan = 200\n";

// make_domain's aliases: ua-0000000<slot>-4f3b-4e0e-9a43-2b8f0c9a1d11, slot from 1.
std::string alias_of_slot(int slot) { return "ua-0000000" + std::to_string(slot) + "-4f3b-4e0e-9a43-2b8f0c9a1d11"; }

// Every hook run exited 0, said nothing and left its file as it was.
void expect_all_hooks_quiet(const FlowResult& r) {
    for (const auto& c : r.calls) {
        EXPECT_EQ(c.status, 0) << c.hook_point << ": " << c.err;
        EXPECT_EQ(c.err, "") << c.hook_point;
        EXPECT_FALSE(c.xml_changed) << c.hook_point;
    }
}

class Flow : public testing::Test {
protected:
    Flow() : host_(kPool), other_(kPool), vdsm_(host_), other_vdsm_(other_) {
        for (auto* h : {&host_, &other_}) {
            h->sysfs().add_pf({"ens1f0", "0000:3b:00.0", 2});
            h->sysfs().add_pf({"ens1f1", "0000:5e:00.0", 2});
        }
    }
    TestHost host_;
    TestHost other_;
    VdsmFlow vdsm_;
    VdsmFlow other_vdsm_;
};

TEST_F(Flow, FailoverAndPlainPassthroughVmStartsWithAPairVdsmCanFollow) {
    const auto engine = make_domain({{"00:1a:4a:16:01:10", "ovirtmgmt"},
                                     {"00:1a:4a:16:01:51", "sriovnet", kFailover},
                                     {"00:1a:4a:16:01:52", "sriovnet", kPassthrough}});
    const auto start = vdsm_.start_vm(engine, kVmId);
    ASSERT_TRUE(start.ok) << start.failed_at << ": " << start.why;

    // before_device_create ran for no vNIC: no hook of ours is installed
    // there; before_vm_start did both vNICs.
    for (const auto& c : start.calls) EXPECT_EQ(c.hook_point, "before_vm_start");
    EXPECT_EQ(start.err(),
              "sriov-passthrough: before_vm_start: vNIC 00:1a:4a:16:01:51 of VM " + std::string(kVmId) +
                  " on sriovnet -> VF 0000:3b:02.0 (ens1f0 VF 0, VLAN 200); failover: teamed with the virtio vNIC " +
                  alias_of_slot(2) + ", which stays\n" +
                  "sriov-passthrough: before_vm_start: vNIC 00:1a:4a:16:01:52 of VM " + kVmId +
                  " on sriovnet -> VF 0000:5e:02.0 (ens1f1 VF 0, VLAN 200); dropped for passthrough: model, mtu (the VF uses "
                  "the PF's MTU), filterref (no MAC anti-spoofing), bandwidth (no QoS)\n");
    EXPECT_EQ(host_.reservations().size(), 2u);
    EXPECT_EQ(libvirt_rejects(start.xml), "");

    // In the XML handed to libvirt (and to any later before_vm_start hook),
    // VDSM's rule finds each member of the pair: the virtio vNIC keeps its
    // properties, the VF has its own entry and network.
    const auto persistent = vdsm_metadata_of(start.xml, alias_of_slot(2));
    EXPECT_EQ(persistent.matches, 1u);
    EXPECT_EQ(persistent.custom, kFailover);
    const auto vf = vdsm_metadata_of(start.xml, alias_of_slot(2) + "-vf");
    EXPECT_EQ(vf.matches, 1u);
    EXPECT_EQ(vf.network, "sriovnet");

    // After define VDSM writes its own metadata over ours; the virtio vNIC is
    // saved under MAC and alias, so it keeps its properties there too.
    const auto live = vdsm_.live_xml(engine, start.xml);
    const auto live_persistent = vdsm_metadata_of(live, alias_of_slot(2));
    EXPECT_EQ(live_persistent.matches, 1u);
    EXPECT_EQ(live_persistent.custom, kFailover);
    EXPECT_EQ(vdsm_metadata_of(live, alias_of_slot(2) + "-vf").matches, 0u)
        << "VDSM keeps no entry for a device the engine did not send";

    // A restart of the same XML (VDSM recovering) changes nothing.
    const auto again = vdsm_.start_vm(start.xml, kVmId);
    ASSERT_TRUE(again.ok) << again.why;
    EXPECT_EQ(host_.reservations().size(), 2u);

    const auto gone = vdsm_.destroy(live, kVmId);
    EXPECT_TRUE(host_.reservations().empty()) << gone.err();
}

TEST_F(Flow, EngineMetadataKeyedByAliasToo) {
    // Newer engines write alias and mac_address on each vNIC's entry.
    auto engine = test_data("fixtures/engine-domain.xml");
    const auto pos = engine.find("<ovirt-vm:vlan>100</ovirt-vm:vlan>");
    ASSERT_NE(pos, std::string::npos);
    engine.replace(pos, 0, "<ovirt-vm:failover>true</ovirt-vm:failover>");
    const auto start = vdsm_.start_vm(engine, kVmId);
    ASSERT_TRUE(start.ok) << start.why;
    const auto alias = std::string("ua-7d1c1e2a-4f3b-4e0e-9a43-2b8f0c9a1d11");
    EXPECT_EQ(vdsm_metadata_of(start.xml, alias).matches, 1u);
    EXPECT_EQ(vdsm_metadata_of(start.xml, alias).custom.at("vlan"), "100");
    EXPECT_EQ(vdsm_metadata_of(start.xml, alias + "-vf").matches, 1u);
    EXPECT_EQ(libvirt_rejects(start.xml), "");
}

TEST_F(Flow, FourPassthroughVnicsOverThreeFreeVfsAreRefusedWithNothingHeld) {
    other_.sysfs().set_vf_driver("ens1f1", 1, "vfio-pci");  // not ours: three VFs left
    const auto engine = make_domain({{"00:1a:4a:16:01:51", "sriovnet", kPassthrough},
                                     {"00:1a:4a:16:01:52", "sriovnet", kPassthrough},
                                     {"00:1a:4a:16:01:53", "sriovnet", kPassthrough},
                                     {"00:1a:4a:16:01:54", "sriovnet", kFailover}});
    const auto start = other_vdsm_.start_vm(engine, kVmId);
    EXPECT_FALSE(start.ok);
    EXPECT_EQ(start.failed_at, "before_vm_start");
    EXPECT_NE(start.why.find("no free VF"), std::string::npos) << start.why;
    EXPECT_TRUE(other_.records().empty()) << "all or nothing";
    ASSERT_FALSE(start.calls.empty());
    EXPECT_EQ(start.calls.back().hook_point, "after_vm_destroy");
    EXPECT_EQ(start.calls.back().status, 0) << start.calls.back().err;
}

// A VM with no passthrough vNIC, on a host whose configuration or state
// directory is broken: every hook of its life exits 0 and says nothing.
TEST_F(Flow, VmWithoutPassthroughIsNeverTouchedWhateverIsBroken) {
    struct Broken {
        const char* what;
        std::function<void(TestHost&)> make;
    };
    const std::vector<Broken> cases{
        {"a typo'd key", [](TestHost& h) { h.write_config("lock_timout = 5\n"); }},
        {"a bad value", [](TestHost& h) { h.write_config("reclaim_grace = soon\n"); }},
        {"a syntax error", [](TestHost& h) { h.write_config("[network.sriovnet\n"); }},
        {"the configuration is a directory",
         [](TestHost& h) {
             std::filesystem::remove(h.conf_path());
             std::filesystem::create_directory(h.conf_path());
         }},
        {"the state directory's parent is missing",
         [](TestHost& h) { h.write_config("state_dir = " + h.dir() + "/no/such/dir\n" + kPool); }},
        {"the state directory is a file",
         [](TestHost& h) {
             write_text(h.dir() + "/state-file", "x");
             h.write_config("state_dir = " + h.dir() + "/state-file\n" + kPool);
         }},
        {"the sysfs root is missing",
         [](TestHost& h) { h.write_config("sysfs_root = " + h.dir() + "/nothing\n" + kPool); }},
    };
    const auto engine = make_domain({{"00:1a:4a:16:01:10", "ovirtmgmt"}, {"00:1a:4a:16:01:11", "sriovnet"}});
    const auto nic = make_interface("00:1a:4a:16:01:12");
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        TestHost source(kPool), destination(kPool);
        c.make(source);
        c.make(destination);
        VdsmFlow src(source), dst(destination);

        const auto start = src.start_vm(engine, kVmId);
        ASSERT_TRUE(start.ok) << start.why;
        ASSERT_EQ(start.calls.size(), 1u) << "before_vm_start ran";
        expect_all_hooks_quiet(start);
        const auto live = src.live_xml(engine, start.xml);

        const auto plugged = src.hotplug_nic(nic, kVmId, {{"vlan", "7"}}, /*attach_fails=*/true);
        EXPECT_EQ(plugged.failed_at, "libvirt");
        EXPECT_EQ(plugged.xml, nic);
        expect_all_hooks_quiet(plugged);
        expect_all_hooks_quiet(src.hotunplug_nic(nic, kVmId, {}));

        const auto moved = migrate(src, dst, live, kVmId);
        EXPECT_TRUE(moved.ok) << moved.failed_at << ": " << moved.why;
        EXPECT_EQ(moved.source.calls.size(), 3u) << "before_vm_migrate_source, after_vm_migrate_source, after_vm_destroy";
        EXPECT_EQ(moved.destination.calls.size(), 2u) << "before_ and after_vm_migrate_destination";
        expect_all_hooks_quiet(moved.source);
        expect_all_hooks_quiet(moved.destination);
        expect_all_hooks_quiet(dst.destroy(live, kVmId));
    }
}

TEST_F(Flow, NativeSriovVmIsNotOurs) {
    // The engine's own SR-IOV vNIC is a hostdev interface without our
    // properties: with a broken configuration it still starts and moves.
    host_.write_config("lock_timout = 5\n");
    auto engine = make_domain({{"00:1a:4a:16:01:10", "ovirtmgmt"}});
    const std::string native = R"(<interface type="hostdev" managed="no"><mac address="00:1a:4a:16:01:99"/>)"
                               R"(<source><address type="pci" domain="0x0000" bus="0x3b" slot="0x02" function="0x1"/>)"
                               R"(</source><alias name="ua-native"/></interface>)";
    engine.insert(engine.find("  </devices>"), native + "\n");
    const auto start = vdsm_.start_vm(engine, kVmId);
    ASSERT_TRUE(start.ok) << start.why;
    expect_all_hooks_quiet(start);
    FlowResult r;
    vdsm_.run_hook_point("before_vm_migrate_source", start.xml, kVmId, {}, {}, r);
    vdsm_.run_hook_point("after_vm_migrate_source", start.xml, kVmId, {}, {}, r);
    vdsm_.run_hook_point("after_vm_destroy", start.xml, kVmId, {}, {}, r);
    expect_all_hooks_quiet(r);
}

TEST_F(Flow, AVmOfOursMeetingABrokenConfigurationFailsClearly) {
    host_.write_config("lock_timout = 5\n");
    const auto engine = make_domain({{"00:1a:4a:16:01:51", "sriovnet", kPassthrough}});
    const auto start = vdsm_.start_vm(engine, kVmId);
    EXPECT_FALSE(start.ok);
    EXPECT_EQ(start.failed_at, "before_vm_start");
    EXPECT_NE(start.why.find("unknown key 'lock_timout'"), std::string::npos) << start.why;
    const auto gone = vdsm_.destroy(engine, kVmId);
    ASSERT_EQ(gone.calls.size(), 1u);
    EXPECT_EQ(gone.calls[0].status, 1) << "after_* failures are logged by VDSM";
}

TEST_F(Flow, HotplugItsFailureAndHotUnplug) {
    const auto engine = make_domain({{"00:1a:4a:16:01:10", "ovirtmgmt"}});
    ASSERT_TRUE(vdsm_.start_vm(engine, kVmId).ok);
    const auto nic = make_interface("00:1a:4a:16:01:62");

    const auto failed = vdsm_.hotplug_nic(nic, kVmId, {{"passthrough", "true"}, {"vlan", "300"}}, true);
    EXPECT_EQ(failed.failed_at, "libvirt");
    ASSERT_EQ(failed.calls.size(), 2u);
    EXPECT_EQ(failed.calls[1].hook_point, "after_nic_hotplug_fail");
    EXPECT_EQ(failed.calls[1].status, 0) << failed.calls[1].err;
    EXPECT_TRUE(host_.reservations().empty()) << "the failed plug gave its VF back";

    // The VM's property overrides the vNIC's (VDSM's environment order).
    const auto plugged = vdsm_.hotplug_nic(nic, kVmId, {{"passthrough", "true"}, {"vlan", "300"}}, false,
                                           {{"vlan", "301"}});
    ASSERT_TRUE(plugged.ok) << plugged.why;
    EXPECT_NE(plugged.xml.find(R"(<tag id="301" />)"), std::string::npos) << plugged.xml;
    ASSERT_EQ(host_.reservations().size(), 1u);

    // VDSM hands the unplug hooks its own bridge XML, not the hostdev one.
    const auto unplugged = vdsm_.hotunplug_nic(nic, kVmId, kPassthrough);
    EXPECT_TRUE(unplugged.ok);
    EXPECT_TRUE(host_.reservations().empty()) << unplugged.err();
}

TEST_F(Flow, PlainPassthroughMigratesOnlyAfterTheUnplug) {
    const auto engine = make_domain({{"00:1a:4a:16:01:10", "ovirtmgmt"}, {"00:1a:4a:16:01:51", "sriovnet", kPassthrough}});
    const auto start = vdsm_.start_vm(engine, kVmId);
    ASSERT_TRUE(start.ok) << start.why;
    const auto live = vdsm_.live_xml(engine, start.xml);
    auto refused = migrate(vdsm_, other_vdsm_, live, kVmId);
    EXPECT_FALSE(refused.ok);
    EXPECT_EQ(refused.failed_at, "before_vm_migrate_source");
    EXPECT_NE(refused.why.find("hot-unplug vNIC 00:1a:4a:16:01:51 on sriovnet (VF 0000:3b:02.0) first"),
              std::string::npos)
        << refused.why;
    EXPECT_EQ(host_.reservations().size(), 1u);

    // Unplug (VDSM's bridge XML of the vNIC), migrate, plug back there.
    const auto vnic = make_interface("00:1a:4a:16:01:51");
    ASSERT_TRUE(vdsm_.hotunplug_nic(vnic, kVmId, kPassthrough).ok);
    const auto without = vdsm_.live_xml(engine, engine);
    const auto moved = migrate(vdsm_, other_vdsm_, without, kVmId);
    EXPECT_TRUE(moved.ok) << moved.failed_at << ": " << moved.why;
    EXPECT_TRUE(host_.reservations().empty());
    ASSERT_TRUE(other_vdsm_.hotplug_nic(vnic, kVmId, kPassthrough).ok);
    EXPECT_EQ(other_.reservations().size(), 1u);
}

TEST_F(Flow, FailoverVmMigratesToAHostWhereItsVfAddressIsFree) {
    const auto engine = make_domain({{"00:1a:4a:16:01:10", "ovirtmgmt"}, {"00:1a:4a:16:01:51", "sriovnet", kFailover}});
    const auto start = vdsm_.start_vm(engine, kVmId);
    ASSERT_TRUE(start.ok) << start.why;
    const auto live = vdsm_.live_xml(engine, start.xml);
    const auto moved = migrate(vdsm_, other_vdsm_, live, kVmId);
    ASSERT_TRUE(moved.ok) << moved.failed_at << ": " << moved.why;
    EXPECT_TRUE(host_.reservations().empty()) << "the source gave the VF back";
    const auto there = other_.reservations();
    ASSERT_EQ(there.size(), 1u);
    EXPECT_EQ(there[0].pci.to_string(), "0000:3b:02.0");
    EXPECT_EQ(there[0].vm_id, kVmId);
    EXPECT_EQ(there[0].origin, "before_vm_migrate_destination");
    other_vdsm_.destroy(live, kVmId);
    EXPECT_TRUE(other_.reservations().empty());
}

TEST_F(Flow, FailoverVmIsRefusedWhereItsVfAddressIsHeldOrMissingOrOnAnotherNetwork) {
    const auto engine = make_domain({{"00:1a:4a:16:01:51", "sriovnet", kFailover}});
    const auto start = vdsm_.start_vm(engine, kVmId);
    ASSERT_TRUE(start.ok) << start.why;
    const auto live = vdsm_.live_xml(engine, start.xml);

    // Held there by a VM that is starting.
    ASSERT_TRUE(other_vdsm_.start_vm(make_domain({{"00:1a:4a:16:02:51", "sriovnet", kPassthrough}}, kOtherVm, "vm2"),
                                     kOtherVm)
                    .ok);
    auto m = migrate(vdsm_, other_vdsm_, live, kVmId);
    EXPECT_FALSE(m.ok);
    EXPECT_EQ(m.failed_at, "before_vm_migrate_destination");
    EXPECT_EQ(m.why, "sriov-passthrough: before_vm_migrate_destination: VM " + std::string(kVmId) +
                         " cannot arrive here: failover vNIC 00:1a:4a:16:01:51 needs VF 0000:3b:02.0 (the PCI address "
                         "it has on the source), which is held here by vNIC 00:1a:4a:16:02:51 of VM " +
                         kOtherVm + "\n");
    ASSERT_EQ(other_.reservations().size(), 1u) << "the other VM keeps its VF; nothing recorded for the arrival";
    EXPECT_EQ(host_.reservations().size(), 1u) << "the VM stays on the source with its VF";

    // On another network there.
    TestHost third("[network.sriovnet]\npfs = ens1f1\nvlan = 200\n[network.storage]\npfs = ens1f0\n");
    third.sysfs().add_pf({"ens1f0", "0000:3b:00.0", 2});
    third.sysfs().add_pf({"ens1f1", "0000:5e:00.0", 2});
    m = migrate(vdsm_, VdsmFlow(third), live, kVmId);
    EXPECT_EQ(m.failed_at, "before_vm_migrate_destination");
    EXPECT_NE(m.why.find("needs VF 0000:3b:02.0 here, the PCI address it has on the source: it is a VF of ens1f0, "
                         "which does not serve network sriovnet here (its PFs: ens1f1)"),
              std::string::npos)
        << m.why;
    EXPECT_TRUE(third.records().empty());

    // Another VLAN there.
    TestHost fourth("[network.sriovnet]\npfs = ens1f0\nvlan = 300\n");
    fourth.sysfs().add_pf({"ens1f0", "0000:3b:00.0", 2});
    m = migrate(vdsm_, VdsmFlow(fourth), live, kVmId);
    EXPECT_EQ(m.failed_at, "before_vm_migrate_destination");
    EXPECT_NE(m.why.find("the VF has VLAN 200 from the source, but network sriovnet here gives VLAN 300"),
              std::string::npos)
        << m.why;

    // No such device there: VDSM's own detach fails before any hook runs.
    TestHost fifth(kPool);
    fifth.sysfs().add_pf({"ens1f0", "0000:3c:00.0", 2});
    m = migrate(vdsm_, VdsmFlow(fifth), live, kVmId);
    EXPECT_EQ(m.failed_at, "vdsm");
    EXPECT_TRUE(fifth.records().empty());
    EXPECT_EQ(host_.reservations().size(), 1u);
    // Our hook, run there all the same, says so too.
    FlowResult direct;
    VdsmFlow(fifth).run_hook_point("before_vm_migrate_destination", live, kVmId, {}, {}, direct);
    EXPECT_EQ(direct.failed_at, "before_vm_migrate_destination");
    EXPECT_NE(direct.why.find("failover vNIC 00:1a:4a:16:01:51 needs VF 0000:3b:02.0 here, the PCI address it has on "
                              "the source: there is no such VF on this host"),
              std::string::npos)
        << direct.why;
    EXPECT_TRUE(fifth.records().empty());
}

TEST_F(Flow, TheProgramDrivesAStartAndADestroyByHand) {
    const auto engine = host_.dir() + "/vm.xml";
    write_text(engine, make_domain({{"00:1a:4a:16:01:51", "sriovnet", kPassthrough}}));
    const Props env{{"SRIOV_PASSTHROUGH_CONF", host_.conf_path()}};
    const auto start = run_command({SRIOVPT_VDSM_FLOW, "start", engine}, env);
    ASSERT_EQ(start.status, 0) << start.output;
    EXPECT_NE(start.output.find("before_vm_start: " + hook_path("before_vm_start") + ": exit 0"), std::string::npos)
        << start.output;
    EXPECT_NE(start.output.find(R"(<interface type="hostdev" managed="yes">)"), std::string::npos) << start.output;
    EXPECT_EQ(host_.reservations().size(), 1u);
    const auto gone = run_command({SRIOVPT_VDSM_FLOW, "destroy", engine, "--vm-id", kVmId}, env);
    EXPECT_EQ(gone.status, 0) << gone.output;
    EXPECT_TRUE(host_.reservations().empty());
    EXPECT_EQ(run_command({SRIOVPT_VDSM_FLOW, "start"}, env).status, 2) << "usage";
}

}  // namespace
}  // namespace sriovpt::test
