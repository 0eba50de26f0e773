// The migration hooks through the real executables, run as VDSM runs them:
// the refusal on the source, the release after the VM left, the adoption on
// the destination, and failover pairs that need no refusal.
#include <gtest/gtest.h>

#include <algorithm>

#include "harness.hpp"

namespace sriovpt::test {
namespace {

const std::map<std::string, std::string> kPassthrough{{"passthrough", "true"}};
const std::map<std::string, std::string> kFailover{{"passthrough", "true"}, {"failover", "true"}};
constexpr const char* kOtherVm = "11111111-2222-3333-4444-555555555555";
constexpr const char* kPool = "[network.sriovnet]\npfs = ens1f0, ens1f1\nvlan = 200\n";

// Source and destination: the same hardware, two PFs of four VFs each.
class Migration : public testing::Test {
protected:
    Migration() : source_(kPool), destination_(kPool) {
        for (auto* host : {&source_, &destination_}) {
            host->sysfs().add_pf({"ens1f0", "0000:3b:00.0", 4});
            host->sysfs().add_pf({"ens1f1", "0000:5e:00.0", 4});
        }
    }

    // Starts `vnics` on `host` and returns the live domain.
    std::string start(TestHost& host, const std::vector<TestVnic>& vnics, const std::string& vm = kVmId,
                      const std::string& name = "vm1") {
        const auto run = host.run("before_vm_start", make_domain(vnics, vm, name), vm);
        EXPECT_EQ(run.status, 0) << run.err;
        return run.xml;
    }

    TestHost source_;
    TestHost destination_;
};

TEST_F(Migration, RefusedWhileAVfIsPassedThroughNamingEachVnic) {
    const auto live = start(source_, {{"00:1a:4a:16:01:10", "ovirtmgmt"},
                                      {"00:1a:4a:16:01:51", "sriovnet", kPassthrough},
                                      {"00:1a:4a:16:01:52", "sriovnet", kPassthrough}});
    const auto run = source_.run("before_vm_migrate_source", live, kVmId);
    EXPECT_EQ(run.status, 2) << run.err;
    EXPECT_EQ(run.xml, live) << "the XML is left as it was";
    EXPECT_EQ(run.err,
              "sriov-passthrough: before_vm_migrate_source: VM " + std::string(kVmId) +
                  " cannot be migrated while it holds SR-IOV VFs passed through: hot-unplug vNICs 00:1a:4a:16:01:51 "
                  "on sriovnet (VF 0000:3b:02.0), 00:1a:4a:16:01:52 on sriovnet (VF 0000:5e:02.0) first and plug them "
                  "back after the migration, or set failover=true on the vNIC profile and restart the VM (a failover "
                  "VF is unplugged for the migration by QEMU, the virtio vNIC carries the traffic)\n");
    EXPECT_EQ(source_.reservations().size(), 2u) << "a refusal releases nothing";
}

TEST_F(Migration, AllowedWithoutVfsAndAfterTheVnicWasUnplugged) {
    // Nothing held.
    const auto plain = make_domain({{"00:1a:4a:16:01:10", "ovirtmgmt"}});
    auto run = source_.run("before_vm_migrate_source", plain, kVmId);
    EXPECT_EQ(run.status, 0) << run.err;
    EXPECT_EQ(run.err, "");

    // Another VM's VF is not this VM's concern.
    start(source_, {{"00:1a:4a:16:02:51", "sriovnet", kPassthrough}}, kOtherVm, "vm2");
    run = source_.run("before_vm_migrate_source", plain, kVmId);
    EXPECT_EQ(run.status, 0) << run.err;

    // Reserved, but the live domain no longer uses it (hot-unplugged, the
    // record not yet given back): libvirt will migrate; release comes after.
    const auto live = start(source_, {{"00:1a:4a:16:01:51", "sriovnet", kPassthrough}});
    run = source_.run("before_vm_migrate_source", make_domain({{"00:1a:4a:16:01:10", "ovirtmgmt"}}), kVmId);
    EXPECT_EQ(run.status, 0) << run.err;
    run = source_.run("before_vm_migrate_source", live, kVmId);
    EXPECT_EQ(run.status, 2) << "the same record, with the VF in the live domain, refuses";
}

TEST_F(Migration, FailoverVmIsNotRefusedAndLibvirtAcceptsItsDomain) {
    const auto live = start(source_, {{"00:1a:4a:16:01:10", "ovirtmgmt"}, {"00:1a:4a:16:01:51", "sriovnet", kFailover}});
    EXPECT_NE(live.find(R"(<teaming type="persistent" />)"), std::string::npos) << live;
    EXPECT_NE(live.find(R"(<teaming type="transient" persistent="ua-00000002-4f3b-4e0e-9a43-2b8f0c9a1d11" />)"),
              std::string::npos)
        << live;
    EXPECT_NE(live.find(R"(<source bridge="sriovnet" />)"), std::string::npos) << "the virtio vNIC stays";
    EXPECT_EQ(libvirt_rejects(live), "");

    const auto run = source_.run("before_vm_migrate_source", live, kVmId);
    EXPECT_EQ(run.status, 0) << run.err;
    EXPECT_EQ(run.err, "sriov-passthrough: before_vm_migrate_source: vNIC 00:1a:4a:16:01:51: VF 0000:3b:02.0 is a "
                       "failover member; QEMU unplugs it for the migration\n");
}

TEST_F(Migration, FailoverStartIsIdempotentAndNeedsPassthroughAndAVmStart) {
    const auto xml = make_domain({{"00:1a:4a:16:01:51", "sriovnet", kFailover}});
    const auto first = source_.run("before_vm_start", xml, kVmId);
    ASSERT_EQ(first.status, 0) << first.err;
    EXPECT_EQ(first.err,
              "sriov-passthrough: before_vm_start: vNIC 00:1a:4a:16:01:51 of VM " + std::string(kVmId) +
              " on sriovnet -> VF 0000:3b:02.0 (ens1f0 VF 0, "
              "VLAN 200); failover: teamed with the virtio vNIC ua-00000001-4f3b-4e0e-9a43-2b8f0c9a1d11, which "
              "stays\n");
    const auto second = source_.run("before_vm_start", first.xml, kVmId);
    EXPECT_EQ(second.status, 0) << second.err;
    EXPECT_EQ(second.xml, first.xml) << "its own output: already a pair";
    EXPECT_EQ(source_.reservations().size(), 1u);

    const auto refused = source_.run(
        "before_vm_start", make_domain({{"00:1a:4a:16:01:61", "sriovnet", {{"failover", "true"}}}}, kOtherVm), kOtherVm);
    EXPECT_EQ(refused.status, 2);
    EXPECT_NE(refused.err.find("vNIC 00:1a:4a:16:01:61: property failover=true needs passthrough=true"),
              std::string::npos)
        << refused.err;

    const auto plug = make_interface("00:1a:4a:16:01:62");
    const auto hotplug = source_.run("before_nic_hotplug", plug, kVmId, kFailover);
    EXPECT_EQ(hotplug.status, 2);
    EXPECT_EQ(hotplug.xml, plug);
    EXPECT_NE(hotplug.err.find("property failover=true is honoured only when the VM starts"), std::string::npos)
        << hotplug.err;
    EXPECT_EQ(source_.reservations().size(), 1u);
}

TEST_F(Migration, MixedVmIsRefusedForItsPlainVfOnly) {
    const auto live = start(source_, {{"00:1a:4a:16:01:51", "sriovnet", kFailover},
                                      {"00:1a:4a:16:01:52", "sriovnet", kPassthrough}});
    EXPECT_EQ(libvirt_rejects(live), "");
    const auto run = source_.run("before_vm_migrate_source", live, kVmId);
    EXPECT_EQ(run.status, 2) << run.err;
    EXPECT_NE(run.err.find("hot-unplug vNIC 00:1a:4a:16:01:52 on sriovnet (VF 0000:5e:02.0) first"),
              std::string::npos)
        << run.err;
    EXPECT_EQ(run.err.find("01:51"), std::string::npos) << "the failover vNIC is not in the way: " << run.err;
}

TEST_F(Migration, SourceReleasesEverythingAfterTheVmLeftAndDestroyIsQuiet) {
    const auto live = start(source_, {{"00:1a:4a:16:01:51", "sriovnet", kFailover},
                                      {"00:1a:4a:16:01:52", "sriovnet", kPassthrough}});
    start(source_, {{"00:1a:4a:16:02:51", "sriovnet", kPassthrough}}, kOtherVm, "vm2");
    ASSERT_EQ(source_.reservations().size(), 3u);

    const auto left = source_.run("after_vm_migrate_source", live, kVmId);
    EXPECT_EQ(left.status, 0) << left.err;
    EXPECT_EQ(left.xml, live);
    EXPECT_EQ(std::count(left.err.begin(), left.err.end(), '\n'), 2) << left.err;
    EXPECT_NE(left.err.find("released VF 0000:3b:02.0 (ens1f0 VF 0) of vNIC 00:1a:4a:16:01:51 of VM"),
              std::string::npos)
        << left.err;
    const auto rest = source_.reservations();
    ASSERT_EQ(rest.size(), 1u);
    EXPECT_EQ(rest[0].vm_id, kOtherVm) << "only the migrated VM's VFs are given back";

    // VDSM then destroys the source's copy of the VM.
    const auto destroyed = source_.run("after_vm_destroy", live, kVmId);
    EXPECT_EQ(destroyed.status, 0) << destroyed.err;
    EXPECT_EQ(destroyed.err, "");
    EXPECT_EQ(source_.reservations().size(), 1u);
}

TEST_F(Migration, DestinationRecordsTheArrivingVfsAndDestroyGivesThemBack) {
    const auto live = start(source_, {{"00:1a:4a:16:01:51", "sriovnet", kFailover},
                                      {"00:1a:4a:16:01:52", "sriovnet", {{"passthrough", "true"}, {"vlan", "300"}}}});
    const auto arrived = destination_.run("after_vm_migrate_destination", live, kVmId);
    EXPECT_EQ(arrived.status, 0) << arrived.err;
    EXPECT_EQ(arrived.xml, live);
    EXPECT_EQ(arrived.err,
              "sriov-passthrough: after_vm_migrate_destination: recorded VF 0000:3b:02.0 of arriving vNIC "
              "00:1a:4a:16:01:51 of VM " + std::string(kVmId) + " (failover member)\n"
              "sriov-passthrough: after_vm_migrate_destination: recorded VF 0000:5e:02.0 of arriving vNIC "
              "00:1a:4a:16:01:52 of VM " + std::string(kVmId) + "\n");
    std::map<std::string, Reservation> held;
    for (const auto& r : destination_.reservations()) held[r.mac] = r;
    ASSERT_EQ(held.size(), 2u);
    const auto& a = held.at("00:1a:4a:16:01:51");
    EXPECT_EQ(a.pci, destination_.sysfs().vf_pci("ens1f0", 0));
    EXPECT_EQ(a.pf, "ens1f0");
    EXPECT_EQ(a.vf_index, 0u);
    EXPECT_EQ(a.network, "sriovnet");
    EXPECT_EQ(a.vlan, 200u);
    EXPECT_EQ(a.origin, "after_vm_migrate_destination");
    EXPECT_EQ(held.at("00:1a:4a:16:01:52").vlan, 300u);

    // A second run (VDSM retrying) changes nothing.
    const auto again = destination_.run("after_vm_migrate_destination", live, kVmId);
    EXPECT_EQ(again.status, 0) << again.err;
    EXPECT_EQ(destination_.reservations().size(), 2u);

    // A VM started here now does not get those VFs.
    start(destination_, {{"00:1a:4a:16:02:51", "sriovnet", kPassthrough}}, kOtherVm, "vm2");
    for (const auto& r : destination_.reservations()) {
        if (r.vm_id == kOtherVm) {
            EXPECT_EQ(r.pci, destination_.sysfs().vf_pci("ens1f0", 1));
        }
    }

    const auto destroyed = destination_.run("after_vm_destroy", live, kVmId);
    EXPECT_EQ(destroyed.status, 0) << destroyed.err;
    ASSERT_EQ(destination_.reservations().size(), 1u);
    EXPECT_EQ(destination_.reservations()[0].vm_id, kOtherVm);
}

TEST_F(Migration, DestinationReportsAVfHeldHereByAnotherVm) {
    // Here, another VM holds ens1f0 VF 0, the VF the arriving VM uses.
    start(destination_, {{"00:1a:4a:16:02:51", "sriovnet", kPassthrough}}, kOtherVm, "vm2");
    const auto live = start(source_, {{"00:1a:4a:16:01:51", "sriovnet", kPassthrough},
                                      {"00:1a:4a:16:01:52", "sriovnet", kPassthrough}});
    const auto arrived = destination_.run("after_vm_migrate_destination", live, kVmId);
    EXPECT_EQ(arrived.status, 1) << "after_* failures are logged by VDSM";
    EXPECT_EQ(arrived.err,
              "sriov-passthrough: after_vm_migrate_destination: VM " + std::string(kVmId) +
                  " arrived using VFs reserved here for others: VF 0000:3b:02.0 of vNIC 00:1a:4a:16:01:51 is already "
                  "held by vNIC 00:1a:4a:16:02:51 of VM " + kOtherVm +
                  "; done: recorded VF 0000:5e:02.0 of arriving vNIC 00:1a:4a:16:01:52 of VM " + kVmId + "\n");
    std::map<std::string, Reservation> held;
    for (const auto& r : destination_.reservations()) held[r.mac] = r;
    ASSERT_EQ(held.size(), 2u);
    EXPECT_EQ(held.at("00:1a:4a:16:02:51").vm_id, kOtherVm) << "the holder keeps its record";
    EXPECT_EQ(held.at("00:1a:4a:16:01:52").vm_id, kVmId) << "the VF without conflict is recorded";
}

TEST_F(Migration, DestinationCannotHotPlugWithLibvirtDisabledAndKeepsNothing) {
    // The failover VM arrives without its VF (unplugged before the migration);
    // this host's configuration has libvirt_uri = none, so no hot-plug.
    auto live = start(source_, {{"00:1a:4a:16:01:51", "sriovnet", kFailover}});
    const auto begin = live.find("<interface type=\"hostdev\"");
    live.erase(begin, live.find("</interface>", begin) + 12 - begin);
    const auto arrived = destination_.run("after_vm_migrate_destination", live, kVmId);
    EXPECT_EQ(arrived.status, 1) << arrived.err;
    EXPECT_EQ(arrived.err,
              "sriov-passthrough: after_vm_migrate_destination: vNIC 00:1a:4a:16:01:51 (failover) arrived without "
              "its VF: hot-plugging VF 0000:3b:02.0: libvirt is disabled (libvirt_uri = none); the guest keeps its "
              "network through the virtio vNIC\n");
    EXPECT_TRUE(destination_.records().empty());
}

TEST_F(Migration, SriovPassthroughRunDrivesTheMigrationHooks) {
    const auto live = start(source_, {{"00:1a:4a:16:01:51", "sriovnet", kPassthrough}});
    const auto file = source_.dir() + "/live.xml";
    write_text(file, live);
    const std::map<std::string, std::string> env{{"SRIOV_PASSTHROUGH_CONF", source_.conf_path()}};

    auto run = run_command({SRIOVPT_CLI, "run", "before_vm_migrate_source", "--domxml", file, "--vm-id", kVmId}, env);
    EXPECT_EQ(run.status, 2) << run.output;
    EXPECT_NE(run.output.find("sriov-passthrough: before_vm_migrate_source: VM " + std::string(kVmId) +
                              " cannot be migrated while it holds SR-IOV VFs passed through: hot-unplug vNIC "
                              "00:1a:4a:16:01:51 on sriovnet (VF 0000:3b:02.0) first"),
              std::string::npos)
        << run.output;
    EXPECT_NE(run.output.find("exit status 2 (failed; VDSM refuses the operation)"), std::string::npos) << run.output;

    // The VM id from the domain's <uuid> when --vm-id is not given.
    run = run_command({SRIOVPT_CLI, "run", "after_vm_migrate_source", "--domxml", file}, env);
    EXPECT_EQ(run.status, 0) << run.output;
    EXPECT_NE(run.output.find("released VF 0000:3b:02.0"), std::string::npos) << run.output;
    EXPECT_TRUE(source_.records().empty());

    run = run_command({SRIOVPT_CLI, "run", "before_vm_migrate_source", "--domxml", file, "--vm-id", kVmId}, env);
    EXPECT_EQ(run.status, 0) << run.output;
}

}  // namespace
}  // namespace sriovpt::test
