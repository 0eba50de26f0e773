// Bad input the hooks meet, through the real executables: the exact line
// each prints and its exit status. Each test backs a row of
// docs/bad-input.md; keep the two in step.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>

#include "harness.hpp"

namespace sriovpt::test {
namespace {

const std::map<std::string, std::string> kPassthrough{{"passthrough", "true"}};
const std::string kMac = "00:1a:4a:16:01:51";

// One PF of four VFs serving sriovnet.
class BadInput : public testing::Test {
protected:
    BadInput() : host_("[network.sriovnet]\npfs = ens1f0\n") { host_.sysfs().add_pf({"ens1f0", "0000:3b:00.0", 4}); }

    std::string domain() const { return make_domain({{kMac, "sriovnet", kPassthrough}}); }

    // Runs before_vm_start on a one-vNIC passthrough domain and expects it
    // refused: exit 2, exactly `line` on stderr, the file untouched, no record.
    void expect_refused(const std::string& line, const std::string& xml = "") {
        const auto in = xml.empty() ? domain() : xml;
        const auto run = host_.run("before_vm_start", in, kVmId);
        EXPECT_EQ(run.status, 2);
        EXPECT_EQ(run.err, "sriov-passthrough: before_vm_start: " + line + "\n");
        EXPECT_EQ(run.xml, in) << "the XML file must be left byte for byte";
        EXPECT_TRUE(host_.reservations().empty()) << "no reservation may be left behind";
    }

    // A configuration file of exactly `text` (write_config always sets lock_timeout).
    void write_whole_config(const std::string& text) const { write_text(host_.conf_path(), text); }

    std::string reserving() const { return "reserving a VF for vNIC " + kMac + " on network sriovnet: "; }

    TestHost host_;
};

// --- XML -------------------------------------------------------------------

TEST_F(BadInput, XmlFileMissing) {
    const auto run = run_command({hook_path("before_vm_start")},
                                 {{"_hook_domxml", host_.dir() + "/nonexistent.xml"}, {"vmId", kVmId}});
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.output, "sriov-passthrough: before_vm_start: cannot open " + host_.dir() +
                              "/nonexistent.xml: No such file or directory\n");
}

TEST_F(BadInput, AfterHookWithoutHookDomxmlFailsWithStatus1) {
    const auto run = run_command({hook_path("after_vm_destroy")}, {{"vmId", kVmId}});
    EXPECT_EQ(run.status, 1);
    EXPECT_EQ(run.output, "sriov-passthrough: after_vm_destroy: $_hook_domxml is not set: run by VDSM, or by "
                          "'sriov-passthrough run'\n");
}

// A FIFO where a file is expected must not block a hook for ever.
TEST_F(BadInput, FifosForTheXmlOrTheConfigurationAreRefusedAtOnce) {
    const auto fifo = host_.dir() + "/fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    auto run = run_command({"timeout", "10", hook_path("before_vm_start")},
                           {{"_hook_domxml", fifo}, {"vmId", kVmId}, {"SRIOV_PASSTHROUGH_CONF", host_.conf_path()}});
    EXPECT_EQ(run.status, 2) << run.output;
    EXPECT_EQ(run.output, "sriov-passthrough: before_vm_start: the XML file " + fifo + " is not a regular file\n");

    const auto xml = host_.dir() + "/vm.xml";
    write_text(xml, make_domain({{kMac, "sriovnet", {{"passthrough", "true"}}}}));
    run = run_command({"timeout", "10", hook_path("before_vm_start")},
                      {{"_hook_domxml", xml}, {"vmId", kVmId}, {"SRIOV_PASSTHROUGH_CONF", fifo}});
    EXPECT_EQ(run.status, 2) << run.output;
    EXPECT_EQ(run.output, "sriov-passthrough: before_vm_start: configuration " + fifo +
                              ": cannot be read: not a regular file\n");
    EXPECT_TRUE(host_.records().empty());
}

TEST_F(BadInput, MalformedXmlNamesTheByte) {
    // A document that names passthrough may be ours: refused, naming the byte.
    const std::string ours = "<domain><devices><interface passthrough";
    const auto run = host_.run("before_vm_start", ours, kVmId);
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.err.rfind("sriov-passthrough: before_vm_start: the XML in ", 0), 0u) << run.err;
    EXPECT_NE(run.err.find(" is malformed at byte 40: Error parsing element attribute\n"), std::string::npos) << run.err;
    EXPECT_EQ(run.xml, ours);
    // One that names neither property is plainly not ours (common/fast_path.hpp):
    // libvirt will say what is wrong with it.
    const auto other = host_.run("before_vm_start", "<domain><devices><interface", kVmId);
    EXPECT_EQ(other.status, 0);
    EXPECT_EQ(other.err, "");
    EXPECT_EQ(other.xml, "<domain><devices><interface");
}

// --- properties --------------------------------------------------------------

TEST_F(BadInput, HotplugPropertyOutOfRange) {
    const auto xml = make_interface(kMac);
    const auto run = host_.run("before_nic_hotplug", xml, kVmId, {{"passthrough", "true"}, {"vlan", "4095"}});
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.err, "sriov-passthrough: before_nic_hotplug: vNIC " + kMac +
                           ": property vlan: '4095' is not a VLAN tag (allowed: a whole number from 1 to 4094)\n");
    EXPECT_EQ(run.xml, xml);
    EXPECT_TRUE(host_.reservations().empty());
}

TEST_F(BadInput, HotplugPassthroughNotABoolean) {
    const auto xml = make_interface(kMac);
    const auto run = host_.run("before_nic_hotplug", xml, kVmId, {{"passthrough", "1"}});
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.err, "sriov-passthrough: before_nic_hotplug: vNIC " + kMac +
                           ": property passthrough='1' is not allowed (allowed: true or false)\n");
    EXPECT_EQ(run.xml, xml);
}

// Values are echoed quoted, escaped and cut: a newline never splits the line
// VDSM logs, and a 100 000-digit VLAN is not printed whole.
TEST_F(BadInput, HotplugOddValuesAreQuotedAndCut) {
    const auto xml = make_interface(kMac);
    const auto run = host_.run("before_nic_hotplug", xml, kVmId, {{"passthrough", "true"}, {"vlan", std::string(100000, '4')}});
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.err, "sriov-passthrough: before_nic_hotplug: vNIC " + kMac + ": property vlan: '" + std::string(64, '4') +
                           "...' (100000 bytes) is not a VLAN tag (allowed: a whole number from 1 to 4094)\n");
    const auto split = host_.run("before_nic_hotplug", xml, kVmId, {{"passthrough", "true\nsriov-passthrough: fake"}});
    EXPECT_EQ(split.status, 2);
    EXPECT_EQ(split.err, "sriov-passthrough: before_nic_hotplug: vNIC " + kMac +
                             ": property passthrough='true\\nsriov-passthrough: fake' is not allowed (allowed: true or false)\n");
    EXPECT_EQ(split.xml, xml);
    EXPECT_TRUE(host_.reservations().empty());
}

// Whatever a message holds, it is one line: here a bridge name with a
// newline (a character reference: the parser turns a raw one into a space)
// and an escape sequence, echoed by messages that do not quote it.
TEST_F(BadInput, EveryMessageIsOneLine) {
    const auto xml = make_domain({{kMac, "other&#10;net\x1b[2J", kPassthrough}});
    const auto run = host_.run("before_vm_start", xml, kVmId);
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
    EXPECT_EQ(run.err.find('\x1b'), std::string::npos) << run.err;
    EXPECT_EQ(run.xml, xml);
    EXPECT_TRUE(host_.reservations().empty());
}

// --- configuration -----------------------------------------------------------

// $SRIOV_PASSTHROUGH_CONF naming a file that does not exist is a typo, not
// "all defaults" (that is only for the standard file, docs/design.md,
// "Configuration").
TEST_F(BadInput, ConfigNamedButMissing) {
    std::filesystem::remove(host_.conf_path());
    expect_refused("configuration " + host_.conf_path() +
                   " does not exist (named by $SRIOV_PASSTHROUGH_CONF or --config; only "
                   "/etc/vdsm/hooks/sriov_passthrough.conf may be missing)");
    // A VM without passthrough vNICs never reads it.
    const auto plain = make_domain({{kMac, "sriovnet"}});
    const auto run = host_.run("before_vm_start", plain, kVmId);
    EXPECT_EQ(run.status, 0) << run.err;
    EXPECT_EQ(run.xml, plain);
}

TEST_F(BadInput, ConfigUnknownKey) {
    host_.write_config("[network.sriovnet]\npfs = ens1f0\nmtu = 9000\n");
    expect_refused("configuration " + host_.conf_path() + ": unknown key 'mtu' in [network.sriovnet] (allowed: pfs, vlan, "
                   "numa, vf_trust, vf_spoofchk, vf_max_tx_rate, vf_min_tx_rate, vf_link_state, on_error)");
    host_.write_config("lock_timout = 5\n[network.sriovnet]\npfs = ens1f0\n");
    expect_refused("configuration " + host_.conf_path() +
                   ": unknown key 'lock_timout' (allowed: sysfs_root, state_dir, libvirt_uri, lock_timeout, "
                   "reclaim_grace, check_domains, numa, vf_helper, and [network.NAME] sections)");
}

TEST_F(BadInput, ConfigBadValue) {
    host_.write_config("reclaim_grace = soon\n[network.sriovnet]\npfs = ens1f0\n");
    expect_refused("configuration " + host_.conf_path() +
                   ": reclaim_grace = 'soon' is not a whole number of seconds from 0 to 86400");
    host_.write_config("[network.sriovnet]\npfs = ens1f0, ../x\n");
    expect_refused("configuration " + host_.conf_path() +
                   ": [network.sriovnet] pfs: 'ens1f0, ../x' is not a list of PF names (allowed: interface names of up "
                   "to 15 letters, digits, '_', '.', '-', separated by commas)");
}

TEST_F(BadInput, ConfigDuplicateKey) {
    host_.write_config("[network.sriovnet]\npfs = ens1f0\npfs = ens1f1\n");
    expect_refused("configuration " + host_.conf_path() + ": 'network.sriovnet.pfs' is set more than once");
}

TEST_F(BadInput, ConfigNetworkWithoutPfs) {
    host_.write_config("[network.sriovnet]\nvlan = 100\n");
    expect_refused("configuration " + host_.conf_path() + ": [network.sriovnet] has no 'pfs' list");
}

TEST_F(BadInput, ConfigSyntaxError) {
    host_.write_config("[network.sriovnet\npfs = ens1f0\n");
    expect_refused("configuration " + host_.conf_path() +
                   ": line 5: '[network.sriovnet' is not 'key = value', a [section] or a comment");
    // A line that once made Boost's parser loop for ever (fuzz/corpus/config/boost-placeholder-loop).
    host_.write_config("x%invalid_line%\n");
    expect_refused("configuration " + host_.conf_path() +
                   ": line 5: 'x%invalid_line%' is not 'key = value', a [section] or a comment");
}

TEST_F(BadInput, ConfigUnreadable) {
    std::filesystem::remove(host_.conf_path());
    std::filesystem::create_directory(host_.conf_path());
    expect_refused("configuration " + host_.conf_path() + ": cannot be read: Is a directory");
}

// --- sysfs -------------------------------------------------------------------

TEST_F(BadInput, PfMissing) {
    host_.write_config("[network.sriovnet]\npfs = ens9f9\n");
    expect_refused(reserving() +
                   "no free VF (ens9f9 is not an SR-IOV PF on this host (no class/net/ens9f9/device/sriov_totalvfs))");
}

TEST_F(BadInput, PfIsNotSriov) {
    host_.sysfs().add_plain_netdev("eno1", "0000:01:00.0");
    host_.write_config("[network.sriovnet]\npfs = eno1\n");
    expect_refused(reserving() +
                   "no free VF (eno1 is not an SR-IOV PF on this host (no class/net/eno1/device/sriov_totalvfs))");
}

TEST_F(BadInput, PfWithZeroVfs) {
    host_.sysfs().add_pf({"ens2f0", "0000:5e:00.0", 0});
    host_.write_config("[network.sriovnet]\npfs = ens2f0\n");
    expect_refused(reserving() + "no free VF (ens2f0 has no VFs enabled (sriov_numvfs is 0))");
}

TEST_F(BadInput, EveryVfBoundToVfioOrUpOnTheHost) {
    host_.sysfs().set_vf_driver("ens1f0", 0, "vfio-pci");
    host_.sysfs().set_vf_driver("ens1f0", 1, "vfio-pci");
    host_.sysfs().set_vf_driver("ens1f0", 2, "pci-stub");
    host_.sysfs().set_vf_netdev_state("ens1f0", 3, "up");
    expect_refused(reserving() + "no free VF (ens1f0 has 4 VFs: 0 held, 3 bound to vfio-pci without a reservation, "
                                 "1 in use by the host (netdev up))");
}

TEST_F(BadInput, PoolExhausted) {
    for (unsigned i = 0; i < 4; ++i) {
        const auto other = "11111111-2222-3333-4444-00000000000" + std::to_string(i);
        const auto run = host_.run("before_vm_start", make_domain({{"00:1a:4a:16:02:0" + std::to_string(i), "sriovnet",
                                                                    kPassthrough}}, other),
                                   other);
        ASSERT_EQ(run.status, 0) << run.err;
    }
    const auto before = host_.reservations();
    const auto run = host_.run("before_vm_start", domain(), kVmId);
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.err, "sriov-passthrough: before_vm_start: " + reserving() + "no free VF (all 4 VFs of ens1f0 are held)\n");
    EXPECT_EQ(host_.reservations(), before);
}

// --- the state directory: unwritable, full -----------------------------------

// A tmpfs mounted for the test's lifetime; mounting needs root
// (CAP_SYS_ADMIN), so tests using it skip elsewhere.
class Tmpfs {
public:
    Tmpfs(const std::string& dir, const std::string& options, unsigned long flags = 0) : dir_(dir) {
        std::filesystem::create_directories(dir);
        mounted_ = ::mount("tmpfs", dir.c_str(), "tmpfs", flags, options.c_str()) == 0;
        error_ = std::strerror(errno);
    }
    ~Tmpfs() {
        if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    }
    bool mounted() const { return mounted_; }
    const std::string& error() const { return error_; }

    // Writes to `name` until the file system is full.
    void fill(const std::string& name) const {
        const int fd = ::open((dir_ + "/" + name).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ASSERT_GE(fd, 0);
        const std::string block(4096, 'x');
        while (::write(fd, block.data(), block.size()) > 0) {
        }
        const int err = errno;
        ::close(fd);
        ASSERT_EQ(err, ENOSPC);
    }

private:
    std::string dir_;
    bool mounted_ = false;
    std::string error_;
};

TEST_F(BadInput, StateDirIsNotADirectory) {
    write_text(host_.state_dir(), "not a directory\n");
    const auto xml = domain();
    const auto run = host_.run("before_vm_start", xml, kVmId);
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.err, "sriov-passthrough: before_vm_start: state directory " + host_.state_dir() +
                           " cannot be opened: Not a directory\n");
    EXPECT_EQ(run.xml, xml);
    EXPECT_EQ(read_text(host_.state_dir()), "not a directory\n");
}

TEST_F(BadInput, StateDirUnwritable) {
    if (::geteuid() == 0) {
        // root ignores permission bits: a read-only mount is what stops it.
        Tmpfs ro(host_.state_dir(), "size=64k,mode=0755", MS_RDONLY);
        if (!ro.mounted()) GTEST_SKIP() << "cannot mount a tmpfs: " << ro.error();
        expect_refused("lock file " + host_.state_dir() + "/lock cannot be opened: Read-only file system");
    } else {
        std::filesystem::create_directory(host_.state_dir());
        ::chmod(host_.state_dir().c_str(), 0555);
        expect_refused("lock file " + host_.state_dir() + "/lock cannot be opened: Permission denied");
        ::chmod(host_.state_dir().c_str(), 0755);
    }
}

TEST_F(BadInput, StateDirFull) {
    Tmpfs fs(host_.state_dir(), "size=64k,mode=0755");
    if (!fs.mounted()) GTEST_SKIP() << "cannot mount a tmpfs (needs root): " << fs.error();
    write_text(host_.state_dir() + "/lock", "");
    fs.fill("filler");
    expect_refused(reserving() + "writing a record in " + host_.state_dir() + ": No space left on device");
    for (const auto& e : std::filesystem::directory_iterator(host_.state_dir())) {
        EXPECT_TRUE(e.path().filename() == "lock" || e.path().filename() == "filler") << e.path() << " left behind";
    }
}

// The hook reserved, then could not write the XML back: it gives the VF back.
TEST_F(BadInput, XmlDirectoryFull) {
    const auto dir = host_.dir() + "/vdsm-tmp";
    Tmpfs fs(dir, "size=64k,mode=0755");
    if (!fs.mounted()) GTEST_SKIP() << "cannot mount a tmpfs (needs root): " << fs.error();
    const auto xml = domain();
    write_text(dir + "/domxml", xml);
    fs.fill("filler");
    const auto run = run_command({hook_path("before_vm_start")}, {{"_hook_domxml", dir + "/domxml"},
                                                                  {"vmId", kVmId},
                                                                  {"SRIOV_PASSTHROUGH_CONF", host_.conf_path()}});
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.output, "sriov-passthrough: before_vm_start: cannot write " + dir +
                              "/domxml: No space left on device\n");
    EXPECT_EQ(read_text(dir + "/domxml"), xml);
    EXPECT_TRUE(host_.reservations().empty()) << "the VF reserved before the write must be given back";
}

// --- the lock ------------------------------------------------------------------

// Holds the store's lock as another hook would, until destroyed.
class HeldLock {
public:
    explicit HeldLock(const std::string& state_dir) {
        std::filesystem::create_directories(state_dir);
        fd_ = ::open((state_dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
        locked_ = fd_ >= 0 && ::flock(fd_, LOCK_EX | LOCK_NB) == 0;
    }
    ~HeldLock() {
        if (fd_ >= 0) ::close(fd_);
    }
    bool locked() const { return locked_; }

private:
    int fd_ = -1;
    bool locked_ = false;
};

TEST_F(BadInput, LockHeldTooLongBeforeVmStart) {
    write_whole_config("sysfs_root = " + host_.dir() + "/sys\nstate_dir = " + host_.state_dir() +
                       "\nlibvirt_uri = none\nlock_timeout = 1\n[network.sriovnet]\npfs = ens1f0\n");
    HeldLock held(host_.state_dir());
    ASSERT_TRUE(held.locked());
    const auto start = std::chrono::steady_clock::now();
    expect_refused("the reservation lock " + host_.state_dir() +
                   "/lock was held by another process for more than 1 s (lock_timeout)");
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_GE(took, std::chrono::milliseconds(900));
    EXPECT_LT(took, std::chrono::seconds(5)) << "every wait is bounded by lock_timeout";
}

TEST_F(BadInput, LockHeldTooLongAfterVmDestroy) {
    write_whole_config("sysfs_root = " + host_.dir() + "/sys\nstate_dir = " + host_.state_dir() +
                       "\nlibvirt_uri = none\nlock_timeout = 1\n[network.sriovnet]\npfs = ens1f0\n");
    HeldLock held(host_.state_dir());
    ASSERT_TRUE(held.locked());
    const auto run = host_.run("after_vm_destroy", domain(), kVmId);
    EXPECT_EQ(run.status, 1);
    EXPECT_EQ(run.err, "sriov-passthrough: after_vm_destroy: the reservation lock " + host_.state_dir() +
                           "/lock was held by another process for more than 1 s (lock_timeout)\n");
}

}  // namespace
}  // namespace sriovpt::test
