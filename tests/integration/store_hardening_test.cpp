// The state directory and sysfs as a real host leaves them (issue 10,
// "Hardening"), through the real hooks and the real command, each run
// bounded by timeout(1) so that a hang fails the test instead of stalling it.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "harness.hpp"
#include "host.hpp"

namespace fs = std::filesystem;

namespace sriovpt::test {
namespace {

const std::map<std::string, std::string> kPassthrough{{"passthrough", "true"}};
const std::string kMac = "00:1a:4a:16:01:51";
constexpr const char* kOtherVm = "0e000000-0000-4000-8000-000000000001";
// The hooks' user in these tests: the state directory belongs to it, as
// /run/vdsm/hooks/sriov_passthrough belongs to vdsm:kvm on a host.
constexpr uid_t kHooksUid = 65534;
// Every run is killed after this long: far more than any of them needs.
constexpr int kLimitSeconds = 20;
constexpr int kKilled = 128 + 9;  // timeout -s KILL

// Who runs a program: root (this test) or the hooks' user.
enum class As { root, hooks };

std::vector<std::string> bounded(As as, std::vector<std::string> argv) {
    std::vector<std::string> out{"timeout", "-s", "KILL", std::to_string(kLimitSeconds)};
    if (as == As::hooks) {
        const auto id = std::to_string(kHooksUid);
        out.insert(out.end(), {"setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups"});
    }
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
}

// ens1f0 and ens1f1, four VFs each; sriovnet on ens1f0 (VLAN 100), othernet
// on ens1f1 (VLAN 200).
class StoreHardening : public testing::Test {
protected:
    StoreHardening()
        : host_("[network.sriovnet]\npfs = ens1f0\nvlan = 100\n[network.othernet]\npfs = ens1f1\nvlan = 200\n") {
        host_.sysfs().add_pf({"ens1f0", "0000:3b:00.0", 4});
        host_.sysfs().add_pf({"ens1f1", "0000:5e:00.0", 4});
        fs::create_directories(work_);
        // The hooks' user must reach the configuration, sysfs and the XML.
        ::chmod(host_.dir().c_str(), 0755);
        ::chmod(work_.c_str(), 0777);
    }

    // The state directory as the RPM's tmpfiles.d entry makes it: owned by
    // the hooks' user, 0750.
    void state_dir_of_the_hooks() {
        fs::create_directories(host_.state_dir());
        ASSERT_EQ(::chown(host_.state_dir().c_str(), kHooksUid, kHooksUid), 0);
        ::chmod(host_.state_dir().c_str(), 0750);
    }

    // Runs a hook as VDSM does, as `as`, bounded.
    HookRun hook(const std::string& hook_point, const std::string& xml, const std::string& vm_id, As as = As::root,
                 const std::map<std::string, std::string>& props = {}) {
        const auto path = work_ + "/domxml-" + std::to_string(++runs_);
        write_text(path, xml);
        ::chmod(path.c_str(), 0666);
        std::map<std::string, std::string> env{{"_hook_domxml", path},
                                               {"SRIOV_PASSTHROUGH_CONF", host_.conf_path()},
                                               {"vmId", vm_id}};
        for (const auto& [k, v] : props) env[k] = v;
        const auto result = run_command(bounded(as, {hook_path(hook_point)}), env);
        return HookRun{result.status, result.output, read_text(path)};
    }

    CommandResult cli(const std::vector<std::string>& args, As as = As::root) {
        std::vector<std::string> argv{SRIOVPT_CLI};
        argv.insert(argv.end(), args.begin(), args.end());
        return run_command(bounded(as, argv), {{"SRIOV_PASSTHROUGH_CONF", host_.conf_path()}});
    }

    std::string domain(const std::string& network = "sriovnet", std::map<std::string, std::string> props = kPassthrough,
                       const std::string& vm = kVmId) const {
        return make_domain({{kMac, network, std::move(props)}}, vm, "vm");
    }

    TestHost host_;
    std::string work_ = host_.dir() + "/work";
    int runs_ = 0;
};

// --- Item 1: the command run as root ------------------------------------------------

std::string owner_of(const std::string& path) {
    struct stat st{};
    if (::lstat(path.c_str(), &st) != 0) return "(missing)";
    return std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid);
}

TEST_F(StoreHardening, WhatRootsCommandsCreateTheHooksCanUse) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: the command run as root, the hooks as another user";
    state_dir_of_the_hooks();
    const auto state = host_.state_dir();

    // root: gc creates the lock; 'run' runs before_vm_start, whose record is
    // made by root; release of another VM.
    const auto gc = cli({"gc"});
    ASSERT_EQ(gc.status, 0) << gc.output;
    EXPECT_EQ(owner_of(state + "/lock"), "65534:65534") << "the lock belongs to the hooks' user";
    const auto xml_path = work_ + "/run.xml";
    write_text(xml_path, domain());
    const auto run = cli({"run", "before_vm_start", "--domxml", xml_path, "--vm-id", kVmId});
    ASSERT_EQ(run.status, 0) << run.output;
    ASSERT_EQ(host_.reservations().size(), 1u);
    const auto record = state + "/" + ReservationStore::file_name(host_.reservations()[0].pci);
    EXPECT_EQ(owner_of(record), "65534:65534") << "the record belongs to the hooks' user";
    EXPECT_EQ(cli({"release", "--vm-id", kOtherVm}).status, 0);
    const auto check = cli({"check"});
    EXPECT_EQ(check.output.find("PROBLEM"), std::string::npos) << check.output;

    // The hooks, as their user: the record made by root reads as good and
    // is released; a new start reserves and writes.
    const auto status = cli({"status", "--no-libvirt"}, As::hooks);
    EXPECT_EQ(status.status, 0) << status.output;
    EXPECT_NE(status.output.find(std::string(kVmId) + " " + kMac), std::string::npos) << status.output;
    const auto destroy = hook("after_vm_destroy", domain(), kVmId, As::hooks);
    EXPECT_EQ(destroy.status, 0) << destroy.err;
    EXPECT_NE(destroy.err.find("released VF"), std::string::npos) << destroy.err;
    EXPECT_TRUE(host_.records().empty());
    const auto start = hook("before_vm_start", domain(), kVmId, As::hooks);
    EXPECT_EQ(start.status, 0) << start.err;
    EXPECT_EQ(host_.reservations().size(), 1u);
}

TEST_F(StoreHardening, CheckFindsAStoreTheHooksCannotUse) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: files of root in a directory of another user";
    state_dir_of_the_hooks();
    const auto state = host_.state_dir();
    // As an earlier release, run as root, left them.
    write_text(state + "/lock", "");
    ::chmod((state + "/lock").c_str(), 0640);
    Reservation r;
    r.pci = host_.sysfs().vf_pci("ens1f0", 2);
    r.pf = "ens1f0";
    r.vf_index = 2;
    r.vm_id = kOtherVm;
    r.mac = "00:1a:4a:16:0e:01";
    r.network = "sriovnet";
    r.boot_id = current_boot_id();
    r.created = 1;
    write_text(state + "/vf-0000:3b:02.2", format_record(r));
    ::chmod((state + "/vf-0000:3b:02.2").c_str(), 0640);

    const auto check = cli({"check"});
    EXPECT_EQ(check.status, 1) << check.output;
    EXPECT_NE(check.output.find("PROBLEM: " + state + "/lock belongs to root:root (0:0) with mode 0640: the hooks, "
                                "which run as the state directory's owner nobody:nogroup (65534:65534), cannot open it "
                                "for reading and writing, so every change fails (fix: chown 65534:65534 " + state +
                                "/lock; chmod u+rw " + state + "/lock)\n"),
              std::string::npos)
        << check.output;
    EXPECT_NE(check.output.find("PROBLEM: " + state + "/vf-0000:3b:02.2 belongs to root:root (0:0) with mode 0640: the "
                                "hooks, which run as the state directory's owner nobody:nogroup (65534:65534), cannot "
                                "read it, so they never give that VF nor release it"),
              std::string::npos)
        << check.output;

    // What the hooks see of it.
    const auto start = hook("before_vm_start", domain(), kVmId, As::hooks);
    EXPECT_EQ(start.status, 2);
    EXPECT_EQ(start.err, "sriov-passthrough: before_vm_start: lock file " + state +
                             "/lock cannot be opened: Permission denied\n");
    const auto status = cli({"status", "--no-libvirt"}, As::hooks);
    EXPECT_NE(status.output.find("damaged: cannot be read: Permission denied (it belongs to root:root (0:0), mode "
                                 "0640; the hooks must be able to read it)"),
              std::string::npos)
        << status.output;

    // root's gc gives the lock back to the hooks; the record stays the
    // operator's to fix, and check keeps saying so.
    EXPECT_EQ(cli({"gc"}).status, 0);
    EXPECT_EQ(owner_of(state + "/lock"), "65534:65534");
    const auto again = cli({"check"});
    EXPECT_EQ(again.output.find("/lock belongs to"), std::string::npos) << again.output;
    EXPECT_NE(again.output.find("/vf-0000:3b:02.2 belongs to root:root"), std::string::npos) << again.output;
    ASSERT_EQ(::chown((state + "/vf-0000:3b:02.2").c_str(), kHooksUid, kHooksUid), 0);
    EXPECT_EQ(cli({"check"}).output.find("PROBLEM"), std::string::npos);
}

// --- Item 2: a leftover reservation of the same vNIC --------------------------------

TEST_F(StoreHardening, ALeftoverOfTheVnicOnAnotherNetworkOrVlanIsNotReused) {
    // Started on sriovnet; its after_vm_destroy never ran (killed).
    auto first = hook("before_vm_start", domain("sriovnet"), kVmId);
    ASSERT_EQ(first.status, 0) << first.err;
    ASSERT_NE(first.xml.find(R"(bus="0x3b")"), std::string::npos) << first.xml;
    ASSERT_NE(first.xml.find(R"(<tag id="100")"), std::string::npos) << first.xml;

    // Started again with the vNIC on othernet: a VF of othernet's PF, its VLAN.
    const auto moved = hook("before_vm_start", domain("othernet"), kVmId);
    ASSERT_EQ(moved.status, 0) << moved.err;
    EXPECT_NE(moved.xml.find(R"(bus="0x5e")"), std::string::npos) << "a VF of ens1f1: " << moved.xml;
    EXPECT_NE(moved.xml.find(R"(<tag id="200")"), std::string::npos) << moved.xml;
    EXPECT_EQ(moved.xml.find(R"(<tag id="100")"), std::string::npos) << "never the old network's VLAN";
    EXPECT_NE(moved.err.find("; gave back the leftover VF 0000:3b:02.0 it held on sriovnet VLAN 100"), std::string::npos)
        << "the operator is told: " << moved.err;
    auto held = host_.reservations();
    ASSERT_EQ(held.size(), 1u) << "the leftover is given back";
    EXPECT_EQ(held[0].network, "othernet");
    EXPECT_EQ(held[0].pf, "ens1f1");
    EXPECT_EQ(held[0].vlan, 200u);

    // Same network, the vlan property now set: the new VLAN.
    auto props = kPassthrough;
    props["vlan"] = "300";
    const auto retagged = hook("before_vm_start", domain("othernet", props), kVmId);
    ASSERT_EQ(retagged.status, 0) << retagged.err;
    EXPECT_NE(retagged.xml.find(R"(<tag id="300")"), std::string::npos) << retagged.xml;
    held = host_.reservations();
    ASSERT_EQ(held.size(), 1u);
    EXPECT_EQ(held[0].vlan, 300u);

    // Unchanged: the VF it holds, as it is.
    const auto same = hook("before_vm_start", domain("othernet", props), kVmId);
    ASSERT_EQ(same.status, 0) << same.err;
    EXPECT_EQ(same.xml, retagged.xml);
    EXPECT_EQ(host_.reservations(), held);
}

// --- Item 3: names a record must carry ------------------------------------------------

TEST_F(StoreHardening, OddBridgeNamesAreRecordedSoDestroyReleases) {
    // "&#10;" is a newline once parsed; "-" was version 1's "no network".
    for (const auto& [bridge, network] : std::vector<std::pair<std::string, std::string>>{
             {"sriov&#10;net", "sriov\nnet"}, {"-", "-"}, {"a b%", "a b%"}}) {
        SCOPED_TRACE(network);
        auto props = kPassthrough;
        props["sriov_pf"] = "ens1f0";
        const auto start = hook("before_vm_start", domain(bridge, props), kVmId);
        ASSERT_EQ(start.status, 0) << start.err;
        const auto records = host_.records();
        ASSERT_EQ(records.size(), 1u);
        ASSERT_TRUE(records[0].record) << "damaged: " << records[0].problem;
        EXPECT_EQ(records[0].record->network, network);
        const auto destroy = hook("after_vm_destroy", domain(bridge, props), kVmId);
        EXPECT_EQ(destroy.status, 0) << destroy.err;
        EXPECT_TRUE(host_.records().empty()) << "destroy gave the VF back";
    }
}

// The hook reserved, then could not write the XML back: the undo must find
// the record it made, whatever the bridge is called.
TEST_F(StoreHardening, TheUndoOfAFailedStartFindsTheRecordOfABridgeNamedDash) {
    const auto dir = host_.dir() + "/vdsm-tmp";
    fs::create_directories(dir);
    if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=64k,mode=0755") != 0)
        GTEST_SKIP() << "cannot mount a tmpfs (needs root): " << std::strerror(errno);
    auto props = kPassthrough;
    props["sriov_pf"] = "ens1f0";
    const auto xml = domain("-", props);
    write_text(dir + "/domxml", xml);
    {
        const int fd = ::open((dir + "/filler").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        const std::string block(4096, 'x');
        while (::write(fd, block.data(), block.size()) > 0) {
        }
        ::close(fd);
    }
    const auto run = run_command(bounded(As::root, {hook_path("before_vm_start")}),
                                 {{"_hook_domxml", dir + "/domxml"},
                                  {"vmId", kVmId},
                                  {"SRIOV_PASSTHROUGH_CONF", host_.conf_path()}});
    const auto after = read_text(dir + "/domxml");
    ::umount2(dir.c_str(), MNT_DETACH);
    EXPECT_EQ(run.status, 2) << run.output;
    EXPECT_NE(run.output.find("No space left on device"), std::string::npos) << run.output;
    EXPECT_EQ(after, xml);
    EXPECT_TRUE(host_.records().empty()) << "the VF reserved before the write must be given back";
}

// --- Item 4: what is not a regular file in state_dir ----------------------------------

TEST_F(StoreHardening, AFifoInTheStateDirHangsNothing) {
    fs::create_directories(host_.state_dir());
    const auto fifo = host_.state_dir() + "/vf-0000:3b:02.0";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0640), 0);
    const auto problem = "vf-0000:3b:02.0: is a FIFO, not a regular file (never opened)";

    const auto start = hook("before_vm_start", domain(), kVmId);
    EXPECT_NE(start.status, kKilled) << "before_vm_start hung on the FIFO";
    EXPECT_EQ(start.status, 0) << start.err;
    EXPECT_NE(start.xml.find(R"(bus="0x3b" slot="0x02" function="0x1")"), std::string::npos)
        << "the FIFO's VF is never given: " << start.xml;

    const auto status = cli({"status", "--no-libvirt"});
    EXPECT_EQ(status.status, 0) << status.output;
    EXPECT_NE(status.output.find("damaged: is a FIFO, not a regular file (never opened)"), std::string::npos)
        << status.output;
    const auto gc = cli({"gc"});
    EXPECT_EQ(gc.status, 0) << gc.output;
    EXPECT_NE(gc.output.find(problem), std::string::npos) << gc.output;
    const auto check = cli({"check"});
    EXPECT_EQ(check.status, 1) << check.output;
    EXPECT_NE(check.output.find("PROBLEM: record " + host_.state_dir() + "/" + problem), std::string::npos)
        << check.output;
    const auto migrate = hook("before_vm_migrate_source", start.xml, kVmId);
    EXPECT_NE(migrate.status, kKilled);
    EXPECT_EQ(migrate.status, 2) << "the VM holds a VF: " << migrate.err;
    const auto arrive = hook("after_vm_migrate_destination", domain(), kOtherVm);
    EXPECT_EQ(arrive.status, 0) << arrive.err;
    const auto destroy = hook("after_vm_destroy", domain(), kVmId);
    EXPECT_EQ(destroy.status, 0) << destroy.err;
    EXPECT_TRUE(fs::exists(fifo)) << "left for the operator";

    // The lock a FIFO: refused at once.
    ASSERT_EQ(::unlink((host_.state_dir() + "/lock").c_str()), 0);
    ASSERT_EQ(::mkfifo((host_.state_dir() + "/lock").c_str(), 0640), 0);
    const auto refused = hook("before_vm_start", domain(), kVmId);
    EXPECT_EQ(refused.status, 2);
    EXPECT_EQ(refused.err, "sriov-passthrough: before_vm_start: lock file " + host_.state_dir() +
                               "/lock is a FIFO, not a regular file (remove it; the hooks create a new one)\n");
    const auto not_released = hook("after_vm_destroy", domain(), kVmId);
    EXPECT_EQ(not_released.status, 1) << not_released.err;
    EXPECT_NE(cli({"check"}).output.find("PROBLEM: " + host_.state_dir() + "/lock is a FIFO, not a regular file: the "
                                         "hooks cannot take the lock (fix: remove it)"),
              std::string::npos);
}

// --- Item 7: sysfs values out of range, VFs missing from sysfs --------------------------

TEST_F(StoreHardening, SriovNumvfsOutOfRangeIsNamedNotSpunOn) {
    write_text(host_.sysfs().root() + "/devices/pci0000:00/0000:3b:00.0/sriov_numvfs", "-1\n");
    const auto start = hook("before_vm_start", domain(), kVmId);
    EXPECT_NE(start.status, kKilled) << "the hook spun over 4294967295 VF indexes";
    EXPECT_EQ(start.status, 2);
    EXPECT_EQ(start.err, "sriov-passthrough: before_vm_start: reserving a VF for vNIC " + kMac +
                             " on network sriovnet: no free VF (ens1f0 cannot be used: sriov_numvfs is '-1', not a "
                             "number from 0 to 8 (sriov_totalvfs))\n");
    const auto status = cli({"status", "--json", "--no-libvirt"});
    EXPECT_EQ(status.status, 0) << status.output;
    EXPECT_NE(status.output.find(R"x("problem": "sriov_numvfs is '-1', not a number from 0 to 8 (sriov_totalvfs)")x"),
              std::string::npos)
        << status.output;
    const auto check = cli({"check"});
    EXPECT_EQ(check.status, 1);
    EXPECT_NE(check.output.find("PROBLEM: [network.sriovnet] PF ens1f0: cannot be used: sriov_numvfs is '-1', not a "
                                "number from 0 to 8 (sriov_totalvfs)"),
              std::string::npos)
        << check.output;

    write_text(host_.sysfs().root() + "/devices/pci0000:00/0000:3b:00.0/sriov_numvfs", "abc\n");
    EXPECT_NE(hook("before_vm_start", domain(), kVmId).err.find("sriov_numvfs is 'abc', not a number"),
              std::string::npos)
        << "not read as 0";
}

TEST_F(StoreHardening, VfsMissingFromSysfsAreReported) {
    fs::remove_all(host_.sysfs().root() + "/devices/pci0000:00/0000:3b:02.1");
    const auto status = cli({"status", "--no-libvirt"});
    EXPECT_EQ(status.status, 0) << status.output;
    EXPECT_NE(status.output.find("note: PF ens1f0: virtfn1 -> '../0000:3b:02.1', which does not exist: that VF is "
                                 "missing from sysfs and is never given\n"),
              std::string::npos)
        << status.output;
    const auto check = cli({"check"});
    EXPECT_NE(check.output.find("warning: [network.sriovnet] PF ens1f0: virtfn1 -> '../0000:3b:02.1', which does not "
                                "exist: that VF is missing from sysfs and is never given\n"),
              std::string::npos)
        << check.output;
}

}  // namespace
}  // namespace sriovpt::test
