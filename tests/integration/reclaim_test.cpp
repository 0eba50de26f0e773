// Reclaiming reservations of VMs that no longer run (docs/design.md, "Stale
// records"), against libvirt's test driver: tests/data/worlds/running.xml
// holds running domains, some using VFs of the fake host (see the file). The
// real hooks and the real command, as VDSM and an operator run them.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "harness.hpp"
#include "host.hpp"
#include "hooks.hpp"

namespace fs = std::filesystem;

namespace sriovpt::test {
namespace {

const std::map<std::string, std::string> kPassthrough{{"passthrough", "true"}};

// Running in the world file.
constexpr const char* kRunHostdev = "a1a1a1a1-0000-4000-8000-000000000001";  // uses ens1f0 VF 0
constexpr const char* kRunIface = "a2a2a2a2-0000-4000-8000-000000000002";    // uses ens1f0 VF 1
constexpr const char* kRunPlain = "a4a4a4a4-0000-4000-8000-000000000004";
// Not running anywhere.
constexpr const char* kGoneA = "de000000-0000-4000-8000-00000000000a";
constexpr const char* kGoneB = "de000000-0000-4000-8000-00000000000b";
constexpr const char* kNewVm = "0e000000-0000-4000-8000-000000000001";
constexpr const char* kNewMac = "00:1a:4a:16:0e:01";

std::string world_uri() { return "test://" + std::string(SRIOVPT_TEST_DATA_DIR) + "/worlds/running.xml"; }

// ens1f0 and ens1f1 with four VFs each; sriovnet served by ens1f0 alone, so
// four records make its pool dry.
class Reclaim : public testing::Test {
protected:
    Reclaim() {
        host_.sysfs().add_pf({"ens1f0", "0000:3b:00.0", 4});
        host_.sysfs().add_pf({"ens1f1", "0000:5e:00.0", 4});
    }

    void configure(const std::string& libvirt_uri, const std::string& extra) {
        write_text(host_.conf_path(), "sysfs_root = " + host_.dir() + "/sys\nstate_dir = " + host_.state_dir() +
                                          "\nlibvirt_uri = " + libvirt_uri + "\nlock_timeout = 20\n" + extra +
                                          "\n[network.sriovnet]\npfs = ens1f0\n");
    }

    // A record as an earlier hook would have left it, `age` seconds old.
    void put_record(const std::string& vm, const std::string& mac, unsigned index, std::int64_t age,
                    const std::string& boot = current_boot_id()) {
        Reservation r;
        r.pci = host_.sysfs().vf_pci("ens1f0", index);
        r.pf = "ens1f0";
        r.vf_index = index;
        r.vm_id = vm;
        r.mac = mac;
        r.network = "sriovnet";
        r.boot_id = boot;
        r.created = static_cast<std::int64_t>(std::time(nullptr)) - age;
        r.origin = "before_vm_start";
        ReservationStore store(host_.state_dir(), std::chrono::seconds(1));
        ASSERT_TRUE(store.create(r));
    }

    // The dry pool of most tests: VFs 0 and 1 held by the two running VMs
    // that use them, 2 and 3 by VMs that do not run; all an hour old.
    void fill_pool() {
        put_record(kRunHostdev, "00:1a:4a:16:0a:01", 0, 3600);
        put_record(kRunIface, "00:1a:4a:16:0a:02", 1, 3600);
        put_record(kGoneA, "00:1a:4a:16:0b:01", 2, 3600);
        put_record(kGoneB, "00:1a:4a:16:0b:02", 3, 3600);
    }

    HookRun start(const std::string& vm = kNewVm, const std::string& mac = kNewMac) {
        return host_.run("before_vm_start", make_domain({{mac, "sriovnet", kPassthrough}}, vm, "new"), vm);
    }

    // VF index -> holder VM, of good records.
    std::map<unsigned, std::string> holders() {
        std::map<unsigned, std::string> out;
        for (const auto& e : host_.records()) {
            EXPECT_TRUE(e.record) << e.file << ": " << e.problem;
            if (e.record) out[e.record->vf_index] = e.record->vm_id;
        }
        return out;
    }

    // Every record file with its exact content.
    std::map<std::string, std::string> store_files() {
        std::map<std::string, std::string> out;
        for (const auto& entry : fs::directory_iterator(host_.state_dir())) {
            const auto name = entry.path().filename().string();
            if (name != "lock") out[name] = read_text(entry.path().string());
        }
        return out;
    }

    CommandResult cli(const std::vector<std::string>& args) {
        std::vector<std::string> argv{SRIOVPT_CLI};
        argv.insert(argv.end(), args.begin(), args.end());
        return run_command(argv, {{"SRIOV_PASSTHROUGH_CONF", host_.conf_path()}});
    }

    TestHost host_;
};

TEST_F(Reclaim, TheWorldFileIsWhatTheTestsAssume) {
    const auto list = run_command({"virsh", "-q", "-r", "-c", world_uri(), "list", "--uuid"});
    ASSERT_EQ(list.status, 0) << list.output;
    for (const auto* vm : {kRunHostdev, kRunIface, kRunPlain}) EXPECT_NE(list.output.find(vm), std::string::npos);
    EXPECT_EQ(list.output.find(kGoneA), std::string::npos);
}

TEST_F(Reclaim, DryPoolReclaimsRecordsOfVmsThatDoNotRunAndKeepsThoseThatDo) {
    configure(world_uri(), "reclaim_grace = 60");
    fill_pool();
    const auto run = start();
    ASSERT_EQ(run.status, 0) << run.err;
    EXPECT_NE(run.xml.find(R"(bus="0x3b" slot="0x02" function="0x2")"), std::string::npos)
        << "the lowest reclaimed VF: " << run.xml;
    EXPECT_EQ(holders(), (std::map<unsigned, std::string>{{0, kRunHostdev}, {1, kRunIface}, {2, kNewVm}}))
        << "both records of VMs that do not run are reclaimed, the running VMs keep theirs";

    // VF 3 is free again; once taken, nothing more can be reclaimed.
    ASSERT_EQ(start("0e000000-0000-4000-8000-000000000002", "00:1a:4a:16:0e:02").status, 0);
    const auto refused = start("0e000000-0000-4000-8000-000000000003", "00:1a:4a:16:0e:03");
    EXPECT_EQ(refused.status, 2);
    EXPECT_NE(refused.err.find("no free VF (all 4 VFs of ens1f0 are held)"), std::string::npos) << refused.err;
    EXPECT_EQ(holders().size(), 4u);
}

TEST_F(Reclaim, RecordsYoungerThanTheGracePeriodAreNeverReclaimed) {
    configure(world_uri(), "reclaim_grace = 600");
    put_record(kRunHostdev, "00:1a:4a:16:0a:01", 0, 3600);
    put_record(kRunIface, "00:1a:4a:16:0a:02", 1, 3600);
    put_record(kGoneA, "00:1a:4a:16:0b:01", 2, 590);  // a VM libvirt may not know yet
    put_record(kGoneB, "00:1a:4a:16:0b:02", 3, 0);
    const auto before = store_files();
    const auto run = start();
    EXPECT_EQ(run.status, 2);
    EXPECT_NE(run.err.find("no free VF (all 4 VFs of ens1f0 are held)"), std::string::npos) << run.err;
    EXPECT_EQ(store_files(), before);
    const auto gc = cli({"gc"});
    EXPECT_EQ(gc.status, 0) << gc.output;
    EXPECT_EQ(gc.output, "nothing to reclaim\n");
    EXPECT_EQ(store_files(), before);

    // Past the grace period the same record is reclaimed.
    configure(world_uri(), "reclaim_grace = 580");
    ASSERT_EQ(start().status, 0);
    EXPECT_EQ(holders().at(2), kNewVm);
    EXPECT_EQ(holders().at(3), kGoneB);
}

TEST_F(Reclaim, RecordsOfAnotherBootAreStaleWithoutLibvirt) {
    configure("none", "reclaim_grace = 60");
    put_record(kRunHostdev, "00:1a:4a:16:0a:01", 0, 3600);
    put_record(kGoneA, "00:1a:4a:16:0b:01", 1, 3600);
    put_record(kGoneB, "00:1a:4a:16:0b:02", 2, 10, "0badb007-0000-4000-8000-000000000000");
    put_record(kRunIface, "00:1a:4a:16:0a:02", 3, 3600);
    const auto run = start();
    ASSERT_EQ(run.status, 0) << run.err;
    EXPECT_EQ(holders().at(2), kNewVm) << "made before the host last booted, even 10 s old";
    EXPECT_EQ(holders().at(1), kGoneA) << "without libvirt a record of this boot cannot be proved stale";

    // gc reclaims it too.
    ASSERT_EQ(host_.run("after_vm_destroy", "", std::string(kRunHostdev)).status, 0);
    put_record(kGoneB, "00:1a:4a:16:0b:02", 0, 0, "0badb007-0000-4000-8000-000000000000");
    const auto gc = cli({"gc"});
    EXPECT_EQ(gc.status, 0) << gc.output;
    EXPECT_NE(gc.output.find("reclaimed VF 0000:3b:02.0 of vNIC 00:1a:4a:16:0b:02 of VM " + std::string(kGoneB) +
                             ": made before the host last booted"),
              std::string::npos)
        << gc.output;
    EXPECT_NE(gc.output.find("could not ask libvirt which VMs run"), std::string::npos) << gc.output;
    EXPECT_FALSE(holders().count(0));
}

TEST_F(Reclaim, CheckDomainsSkipsVfsUsedByRunningDomains) {
    // No records at all: VFs 0 and 1 look free in sysfs, but running
    // domains use them (as a <hostdev> and as an <interface type="hostdev">).
    configure(world_uri(), "check_domains = yes");
    const auto run = start();
    ASSERT_EQ(run.status, 0) << run.err;
    EXPECT_EQ(holders(), (std::map<unsigned, std::string>{{2, kNewVm}}));

    ASSERT_EQ(host_.run("after_vm_destroy", "", kNewVm).status, 0);
    configure(world_uri(), "check_domains = no");
    ASSERT_EQ(start().status, 0);
    EXPECT_EQ(holders(), (std::map<unsigned, std::string>{{0, kNewVm}})) << "without the check VF 0 looks free";
}

TEST_F(Reclaim, GcDryRunChangesNothingGcReclaimsStatusShowsStaleAndForeign) {
    configure(world_uri(), "reclaim_grace = 60");
    fill_pool();
    write_text(host_.state_dir() + "/.tmp-4194303-0", "sriov-passthrough-reservation 1\npci 0000:3b");

    // status --json: stale records and VFs used by domains without a record.
    const auto status = cli({"status", "--json"});
    ASSERT_EQ(status.status, 0) << status.output;
    const auto line_of = [&](const std::string& pci) {
        const auto at = status.output.find("{\"pci\": \"" + pci + "\"");
        return at == std::string::npos ? std::string() : status.output.substr(at, status.output.find('\n', at) - at);
    };
    EXPECT_NE(line_of("0000:3b:02.0").find(R"("state": "held")"), std::string::npos) << status.output;
    EXPECT_NE(line_of("0000:3b:02.2").find(R"("state": "stale")"), std::string::npos) << status.output;
    EXPECT_NE(line_of("0000:3b:02.2").find(std::string("\"vm_id\": \"") + kGoneA + "\""), std::string::npos);
    EXPECT_NE(line_of("0000:3b:02.3").find(R"("state": "stale")"), std::string::npos) << status.output;
    EXPECT_NE(line_of("0000:5e:02.0").find(R"("state": "foreign-domain")"), std::string::npos) << status.output;
    EXPECT_NE(line_of("0000:5e:02.0").find(R"("holder": null)"), std::string::npos) << status.output;
    EXPECT_NE(line_of("0000:5e:02.1").find(R"("state": "free")"), std::string::npos) << status.output;

    const auto before = store_files();
    const auto dry = cli({"gc", "--dry-run"});
    EXPECT_EQ(dry.status, 0) << dry.output;
    EXPECT_EQ(dry.output, "would reclaim VF 0000:3b:02.2 of vNIC 00:1a:4a:16:0b:01 of VM " + std::string(kGoneA) +
                              ": VM " + kGoneA + " is not running\n" +
                              "would reclaim VF 0000:3b:02.3 of vNIC 00:1a:4a:16:0b:02 of VM " + kGoneB + ": VM " +
                              kGoneB + " is not running\n");
    EXPECT_EQ(store_files(), before) << "--dry-run changes nothing, not even the leftover temporary";

    const auto gc = cli({"gc"});
    EXPECT_EQ(gc.status, 0) << gc.output;
    EXPECT_EQ(gc.output, "reclaimed VF 0000:3b:02.2 of vNIC 00:1a:4a:16:0b:01 of VM " + std::string(kGoneA) + ": VM " +
                             kGoneA + " is not running\n" + "reclaimed VF 0000:3b:02.3 of vNIC 00:1a:4a:16:0b:02 of VM " +
                             kGoneB + ": VM " + kGoneB + " is not running\n" +
                             "removed leftover .tmp-4194303-0\n");
    EXPECT_EQ(holders(), (std::map<unsigned, std::string>{{0, kRunHostdev}, {1, kRunIface}}));
    EXPECT_FALSE(fs::exists(host_.state_dir() + "/.tmp-4194303-0"));
    EXPECT_EQ(cli({"gc"}).output, "nothing to reclaim\n");
}

TEST_F(Reclaim, UnreachableLibvirtStillFailsCleanly) {
    configure("qemu+unix:///system?socket=/nonexistent/libvirt-sock", "reclaim_grace = 0");
    fill_pool();
    const auto before = store_files();
    const auto xml = make_domain({{kNewMac, "sriovnet", kPassthrough}}, kNewVm, "new");
    const auto t0 = std::chrono::steady_clock::now();
    const auto run = host_.run("before_vm_start", xml, std::string(kNewVm));
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.xml, xml);
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
    EXPECT_NE(run.err.find("no free VF (all 4 VFs of ens1f0 are held; could not ask libvirt which VMs run, so no "
                           "reservation of this boot was reclaimed: cannot connect to libvirt at qemu+unix:///system?socket="
                           "/nonexistent/libvirt-sock"),
              std::string::npos)
        << run.err;
    EXPECT_EQ(store_files(), before);
    EXPECT_LT(took, std::chrono::seconds(20)) << "bounded by lock_timeout";

    const auto gc = cli({"gc"});
    EXPECT_EQ(gc.status, 0) << gc.output;
    EXPECT_NE(gc.output.find("note: could not ask libvirt which VMs run"), std::string::npos) << gc.output;
    EXPECT_EQ(store_files(), before);
}

TEST_F(Reclaim, LibvirtThatNeverAnswersIsWaitedForAtMostLockTimeout) {
    // A socket that takes connections (the kernel queues them) and never
    // says a word: a libvirtd that hangs.
    const auto socket_path = host_.dir() + "/hung-libvirt-sock";
    const SilentSocket hung(socket_path);
    ASSERT_TRUE(hung.ok());

    write_text(host_.conf_path(), "sysfs_root = " + host_.dir() + "/sys\nstate_dir = " + host_.state_dir() +
                                      "\nlibvirt_uri = qemu+unix:///system?socket=" + socket_path +
                                      "\nlock_timeout = 2\nreclaim_grace = 0\n[network.sriovnet]\npfs = ens1f0\n");
    fill_pool();
    const auto before = store_files();
    const auto t0 = std::chrono::steady_clock::now();
    const auto run = start();
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(run.status, 2) << run.err;
    EXPECT_NE(run.err.find("could not ask libvirt which VMs run, so no reservation of this boot was reclaimed: "
                           "libvirt at qemu+unix:///system?socket=" + socket_path + " did not answer within 2 s"),
              std::string::npos)
        << run.err;
    EXPECT_LT(took, std::chrono::seconds(8)) << "the hook must not hang with libvirt";
    EXPECT_EQ(store_files(), before);
}

// libvirt is loaded with dlopen only when a question needs it; a hook that
// links it pays for loading it on every VM start (docs/design.md, "libvirt").
TEST(LibvirtOnDemand, NoHookLinksLibvirt) {
    for (const auto hp : all_hook_points()) {
        const std::string point(hook_point_name(hp));
        const auto ldd = run_command({"ldd", hook_path(point)});
        ASSERT_EQ(ldd.status, 0) << point << ": " << ldd.output;
        EXPECT_NE(ldd.output.find("libc.so"), std::string::npos) << "ldd listed nothing for " << point;
        EXPECT_EQ(ldd.output.find("libvirt"), std::string::npos) << point << " links libvirt:\n" << ldd.output;
    }
}

}  // namespace
}  // namespace sriovpt::test
