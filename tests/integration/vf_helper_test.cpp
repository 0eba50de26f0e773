// The VF helper against the real kernel, without SR-IOV: in a private
// network namespace (unshare -n) holding a veth pair named like a PF of a
// fake sysfs tree, the helper's RTM_SETLINK messages reach the kernel's
// parser (net/core/rtnetlink.c, do_setlink → do_setvfinfo) and come back
// EOPNOTSUPP, since a veth has no VF operations: the attributes were well
// formed, or the parser would have said ERANGE or EINVAL first, as the
// malformed messages here show. Then the privilege: as an unprivileged user
// the plain binary gets the kernel's EPERM, a copy with the file capability
// cap_net_admin=ep passes the permission check, and under no_new_privs the
// helper says so itself.
//
// Root only (unshare, setcap, chown); skipped with the reason otherwise.
#include <gtest/gtest.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "harness.hpp"
#include "host.hpp"
#include "reservations.hpp"
#include "text.hpp"
#include "vf_link.hpp"

namespace sriovpt::test {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPf = "sriovpt0";
constexpr const char* kMac = "00:1a:4a:16:01:51";
constexpr uid_t kNobody = 65534;
// Bounds every command: the helper's own netlink waits are 5 s.
constexpr const char* kCommandSeconds = "30";

// The program's path when it is in PATH or in an sbin directory (setcap is
// in /usr/sbin, which an unprivileged PATH may lack).
std::string find_program(const std::string& name) {
    std::string dirs = std::getenv("PATH") ? std::getenv("PATH") : "";
    dirs += ":/usr/sbin:/sbin:/usr/bin:/bin";
    size_t start = 0;
    while (start <= dirs.size()) {
        const auto end = std::min(dirs.find(':', start), dirs.size());
        const auto path = dirs.substr(start, end - start) + "/" + name;
        if (end > start && ::access(path.c_str(), X_OK) == 0) return path;
        start = end + 1;
    }
    return {};
}

class VfHelperKernel : public testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "needs root: unshare -n, setcap and root-owned policies";
        for (const auto* tool : {"unshare", "ip", "setpriv", "timeout"}) {
            if (find_program(tool).empty()) GTEST_SKIP() << tool << " is not installed";
        }
        const auto probe = run_command({"timeout", kCommandSeconds, "unshare", "-n", "--", "ip", "link", "add", "probe0",
                                        "type", "veth", "peer", "name", "probe1"});
        if (probe.status != 0) GTEST_SKIP() << "cannot make a veth pair in a new network namespace: " << probe.output;

        // Everything the helper reads must be readable by nobody too.
        ::chmod(dir_.path().c_str(), 0755);
        sysfs_ = std::make_unique<sim::FakeSysfs>(dir_.path() + "/sys");
        sysfs_->add_pf({.name = kPf, .pci = "0000:3b:00.0", .num_vfs = 4});
        vf_ = sysfs_->vf_pci(kPf, 1).to_string();
        fs::create_directories(state_dir());
        ::chmod(state_dir().c_str(), 0755);
        Reservation r;
        r.pci = sysfs_->vf_pci(kPf, 1);
        r.pf = kPf;
        r.vf_index = 1;
        r.vm_id = kVmId;
        r.mac = kMac;
        r.network = "sriovnet";
        r.boot_id = current_boot_id();
        r.created = 1763890000;
        r.origin = "before_vm_start";
        write_text(record_path(), format_record(r));
        ::chmod(record_path().c_str(), 0644);
        write_policy(kNobody);
    }

    std::string state_dir() const { return dir_.path() + "/state"; }
    std::string record_path() const { return state_dir() + "/" + ReservationStore::file_name(sysfs_->vf_pci(kPf, 1)); }
    std::string policy_path() const { return dir_.path() + "/policy.conf"; }

    void write_policy(uid_t user) {
        write_text(policy_path(), "user = " + std::to_string(user) + "\npfs = " + kPf +
                                      "\nallow = trust, spoofchk, rate, link_state\nrate_ceiling = 10000\n"
                                      "sysfs_root = " + dir_.path() + "/sys\nstate_dir = " + state_dir() + "\n");
        ::chmod(policy_path().c_str(), 0644);
    }

    // A copy of the helper's test build in the test's directory, so that
    // setcap changes only the copy.
    std::string copy_helper(const std::string& name) {
        const auto path = dir_.path() + "/" + name;
        fs::copy_file(SRIOVPT_VF_HELPER_TEST, path, fs::copy_options::overwrite_existing);
        ::chmod(path.c_str(), 0755);
        return path;
    }

    // Runs `helper --policy P args...` in a new network namespace holding
    // the veth pair kPf/sriovpt1, after `as` (e.g. setpriv ...).
    CommandResult run_helper(const std::string& helper, const std::vector<std::string>& args,
                             const std::vector<std::string>& as = {}) {
        std::vector<std::string> argv = {"timeout", kCommandSeconds, "unshare", "-n", "--", "sh", "-c",
                                         std::string("ip link add ") + kPf + " type veth peer name sriovpt1 && exec \"$@\"",
                                         "sh"};
        argv.insert(argv.end(), as.begin(), as.end());
        argv.insert(argv.end(), {helper, "--policy", policy_path()});
        argv.insert(argv.end(), args.begin(), args.end());
        return run_command(argv);
    }

    std::vector<std::string> apply_all() const {
        return {"apply",      vf_,        "trust=on", "spoofchk=off", "max_tx_rate=1000", "min_tx_rate=0",
                "link_state=enable", "--vm-id", kVmId, "--mac", kMac};
    }

    static std::vector<std::string> as_user(uid_t uid, bool no_new_privs = false) {
        const auto id = std::to_string(uid);
        std::vector<std::string> argv = {"setpriv", "--reuid=" + id, "--regid=" + std::to_string(kNobody), "--clear-groups"};
        // no_new_privs only stops an exec from gaining capabilities: one in
        // the caller's permitted set survives it. setpriv keeps root's
        // permitted set across the uid change (it keeps capabilities to
        // apply its other options), so a second setpriv, started as the
        // user with nothing, sets no_new_privs: VDSM's user has nothing
        // either.
        if (no_new_privs) argv.insert(argv.end(), {"setpriv", "--no-new-privs"});
        return argv;
    }

    std::string line(const std::string& rest) const {
        return "sriov-passthrough-vf-helper: VF " + vf_ + " (" + kPf + " VF 1): " + rest + "\n";
    }

    TempDir dir_;
    std::unique_ptr<sim::FakeSysfs> sysfs_;
    std::string vf_;
};

TEST_F(VfHelperKernel, EveryMessageIsWellFormedAndTheVethHasNoVfs) {
    const auto run = run_helper(SRIOVPT_VF_HELPER_TEST, apply_all());
    EXPECT_EQ(run.status, 1);
    EXPECT_EQ(run.output, line("trust=on: Operation not supported by the driver; "
                               "spoofchk=off: Operation not supported by the driver; "
                               "max_tx_rate=1000 min_tx_rate=0: Operation not supported by the driver; "
                               "link_state=enable: Operation not supported by the driver"));
}

TEST_F(VfHelperKernel, ResetCountsWhatTheDriverCannotDoAsNeverDone) {
    const auto run = run_helper(SRIOVPT_VF_HELPER_TEST, {"reset", vf_});
    EXPECT_EQ(run.status, 0) << run.output;
    EXPECT_EQ(run.output, "");
}

TEST_F(VfHelperKernel, PfMissingFromTheNamespace) {
    // The sysfs tree names a PF this namespace does not have.
    const auto run = run_command({"timeout", kCommandSeconds, "unshare", "-n", "--", SRIOVPT_VF_HELPER_TEST, "--policy",
                                  policy_path(), "reset", vf_});
    EXPECT_EQ(run.status, 6);
    EXPECT_EQ(run.output, line("reading PF sriovpt0 from the kernel: No such device"));
}

TEST_F(VfHelperKernel, RootKeepsOnlyNetAdmin) {
    // A record root could read with CAP_DAC_OVERRIDE but not without: the
    // helper run by root has dropped it.
    ASSERT_EQ(::chown(record_path().c_str(), kNobody, kNobody), 0);
    ::chmod(record_path().c_str(), 0600);
    const auto run = run_helper(SRIOVPT_VF_HELPER_TEST, apply_all());
    EXPECT_EQ(run.status, 3);
    EXPECT_EQ(run.output, line("its record " + record_path() + " cannot be read: Permission denied"));
}

TEST_F(VfHelperKernel, UnprivilegedPlainBinaryGetsEperm) {
    const auto helper = copy_helper("sriov-passthrough-vf-helper");
    const auto run = run_helper(helper, apply_all(), as_user(kNobody));
    EXPECT_EQ(run.status, 4);
    EXPECT_EQ(run.output, line("trust=on: Operation not permitted: the helper has no CAP_NET_ADMIN: " + helper +
                               " lacks its file capability (getcap shows it; the package sets cap_net_admin=ep), "
                               "or its file system is mounted nosuid"));
}

class VfHelperFileCapability : public VfHelperKernel {
protected:
    void SetUp() override {
        VfHelperKernel::SetUp();
        if (IsSkipped()) return;
        const auto setcap = find_program("setcap");
        if (setcap.empty()) GTEST_SKIP() << "setcap is not installed (package libcap2-bin)";
        helper_ = copy_helper("sriov-passthrough-vf-helper");
        const auto set = run_command({setcap, "cap_net_admin=ep", helper_});
        if (set.status != 0) GTEST_SKIP() << "setcap cap_net_admin=ep " << helper_ << " failed: " << set.output;
    }
    std::string helper_;
};

TEST_F(VfHelperFileCapability, PassesThePermissionCheck) {
    const auto run = run_helper(helper_, apply_all(), as_user(kNobody));
    EXPECT_EQ(run.status, 1);
    EXPECT_EQ(run.output, line("trust=on: Operation not supported by the driver; "
                               "spoofchk=off: Operation not supported by the driver; "
                               "max_tx_rate=1000 min_tx_rate=0: Operation not supported by the driver; "
                               "link_state=enable: Operation not supported by the driver"));
    const auto check = run_helper(helper_, {"check"}, as_user(kNobody));
    EXPECT_EQ(check.status, 0);
    EXPECT_NE(check.output.find("CAP_NET_ADMIN held"), std::string::npos) << check.output;
}

TEST_F(VfHelperFileCapability, NoNewPrivilegesGetsTheHelpersOwnMessage) {
    const auto expected = "sriov-passthrough-vf-helper: the helper has no CAP_NET_ADMIN: its caller runs with "
                          "NoNewPrivileges (no_new_privs), under which the kernel does not grant the file capability "
                          "cap_net_admin=ep of " + helper_ + "; run the hooks without NoNewPrivileges\n";
    const auto run = run_helper(helper_, apply_all(), as_user(kNobody, true));
    EXPECT_EQ(run.status, 4);
    EXPECT_EQ(run.output, expected);
    const auto check = run_helper(helper_, {"check"}, as_user(kNobody, true));
    EXPECT_EQ(check.status, 4);
    EXPECT_EQ(check.output, expected);
}

TEST_F(VfHelperFileCapability, OtherUsersAreRefused) {
    const auto run = run_helper(helper_, apply_all(), as_user(12345));
    EXPECT_EQ(run.status, 3);
    EXPECT_EQ(run.output, "sriov-passthrough-vf-helper: uid 12345 may not use this helper: the policy " +
                              policy_path() + " allows '65534' (uid 65534) and root\n");
}

TEST_F(VfHelperFileCapability, OnlyForTheVmThatHoldsTheVf) {
    auto args = apply_all();
    args[8] = "11111111-2222-3333-4444-555555555555";
    const auto run = run_helper(helper_, args, as_user(kNobody));
    EXPECT_EQ(run.status, 3);
    EXPECT_EQ(run.output, line(std::string("reserved for VM '") + kVmId +
                               "' vNIC '00:1a:4a:16:01:51', not for VM 11111111-2222-3333-4444-555555555555 vNIC " +
                               kMac));
}

TEST_F(VfHelperFileCapability, PolicyWritableByTheCallerIsRefused) {
    ASSERT_EQ(::chown(policy_path().c_str(), kNobody, kNobody), 0);
    const auto run = run_helper(helper_, apply_all(), as_user(kNobody));
    EXPECT_EQ(run.status, 6);
    EXPECT_EQ(run.output, "sriov-passthrough-vf-helper: policy " + policy_path() + ": owned by uid 65534, not root: refused\n");
}

// --- Malformed messages, straight from a child in its own namespace -------------

// What the kernel answers each message, sent from a child process in a new
// network namespace holding the veth pair; the errno values in order, or the
// child's complaint.
std::vector<int> kernel_answers(const std::vector<Bytes>& messages, std::string& complaint) {
    int fds[2];
    if (::pipe(fds) != 0) {
        complaint = "pipe failed";
        return {};
    }
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(fds[0]);
        auto say = [&](const std::string& text) {
            const std::string out = "!" + text;
            (void)!::write(fds[1], out.data(), out.size());
            ::_exit(1);
        };
        if (::unshare(CLONE_NEWNET) != 0) say(std::string("unshare: ") + std::strerror(errno));
        if (std::system((std::string("ip link add ") + kPf + " type veth peer name sriovpt1").c_str()) != 0)
            say("ip link add failed");
        const int index = static_cast<int>(::if_nametoindex(kPf));
        if (index == 0) say("no ifindex");
        try {
            RouteSocket socket;
            std::string out;
            for (auto m : messages) {
                const std::int32_t i = index;
                std::memcpy(m.data() + 20, &i, sizeof i);  // ifinfomsg.ifi_index
                out += std::to_string(socket.request_ack(m).error) + " ";
            }
            (void)!::write(fds[1], out.data(), out.size());
        } catch (const std::exception& e) {
            say(e.what());
        }
        ::_exit(0);
    }
    ::close(fds[1]);
    std::string text;
    char buf[256];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!text.empty() && text[0] == '!') {
        complaint = text.substr(1);
        return {};
    }
    std::vector<int> out;
    for (const auto& word : split(trim(text), ' ')) out.push_back(std::stoi(word));
    return out;
}

void put16(Bytes& b, size_t at, std::uint16_t v) { std::memcpy(b.data() + at, &v, 2); }

TEST_F(VfHelperKernel, MalformedMessagesAreRefusedByTheParser) {
    // The helper's trust message: 16 header, 16 ifinfomsg, IFLA_VFINFO_LIST
    // at 32, IFLA_VF_INFO at 36, IFLA_VF_TRUST at 40 with 8 bytes.
    const auto good = set_vf_message(0, 0, 1, VfSetting::trust(true));
    ASSERT_EQ(good.size(), 52u);

    // IFLA_VF_TRUST with 4 bytes, fewer than struct ifla_vf_trust: the
    // attribute policy's minimum length (lib/nlattr.c, validate_nla) → ERANGE.
    Bytes short_trust(good.begin(), good.end() - 4);
    const std::uint32_t len = 48;
    std::memcpy(short_trust.data(), &len, 4);
    put16(short_trust, 32, 16);
    put16(short_trust, 36, 12);
    put16(short_trust, 40, 8);

    // An IFLA_VFINFO_LIST entry that is not IFLA_VF_INFO: do_setlink → EINVAL.
    Bytes not_vf_info = good;
    put16(not_vf_info, 38, 2 | NLA_F_NESTED);

    std::string complaint;
    const auto answers = kernel_answers({good, short_trust, not_vf_info}, complaint);
    ASSERT_EQ(complaint, "");
    EXPECT_EQ(answers, (std::vector<int>{EOPNOTSUPP, ERANGE, EINVAL}));
}

// The hooks and the real helper together (docs/design.md, "VF settings in
// the hooks"): before_vm_start run as the hooks' user (nobody here) in the
// namespace with the veth "PF", vf_helper pointing at the helper with its
// file capability. The helper finds the record the hook wrote (version 3),
// sends trust=on, and the kernel's EOPNOTSUPP comes back through the hook.
class HooksWithTheRealHelper : public VfHelperFileCapability {
protected:
    void SetUp() override {
        VfHelperFileCapability::SetUp();
        if (IsSkipped()) return;
        fs::create_directories(hooks_state());
        ASSERT_EQ(::chown(hooks_state().c_str(), kNobody, kNobody), 0);
        ::chmod(hooks_state().c_str(), 0750);
        write_text(policy_path(), "user = " + std::to_string(kNobody) + "\npfs = " + kPf +
                                      "\nallow = trust, spoofchk, rate, link_state\nrate_ceiling = 10000\n"
                                      "sysfs_root = " + dir_.path() + "/sys\nstate_dir = " + hooks_state() + "\n");
        ::chmod(policy_path().c_str(), 0644);
        // vf_helper is one path; the tests' build of the helper takes its
        // policy first. A script passes on no capability of its own: the
        // exec of the helper is what grants it.
        write_text(wrapper(), "#!/bin/sh\nexec " + helper_ + " --policy " + policy_path() + " \"$@\"\n");
        ::chmod(wrapper().c_str(), 0755);
    }
    std::string hooks_state() const { return dir_.path() + "/hooks-state"; }
    std::string wrapper() const { return dir_.path() + "/vf-helper"; }
    std::string conf() const { return dir_.path() + "/hooks.conf"; }

    void configure(const std::string& on_error, const std::string& extra = "") {
        write_text(conf(), "sysfs_root = " + dir_.path() + "/sys\nstate_dir = " + hooks_state() +
                               "\nlibvirt_uri = none\nvf_helper = " + wrapper() + "\n[network.sriovnet]\npfs = " + kPf +
                               "\non_error = " + on_error + "\n" + extra);
        ::chmod(conf().c_str(), 0644);
    }

    // before_vm_start over `xml` as the hooks' user, in the namespace.
    HookRun start(const std::string& xml) {
        // VDSM's temporary directory is its own: the runner writes beside the file.
        const auto vdsm_tmp = dir_.path() + "/vdsm-tmp";
        fs::create_directories(vdsm_tmp);
        EXPECT_EQ(::chown(vdsm_tmp.c_str(), kNobody, kNobody), 0);
        const auto path = vdsm_tmp + "/domxml";
        write_text(path, xml);
        EXPECT_EQ(::chown(path.c_str(), kNobody, kNobody), 0);
        std::vector<std::string> argv = {"timeout", kCommandSeconds, "unshare", "-n", "--", "sh", "-c",
                                         std::string("ip link add ") + kPf + " type veth peer name sriovpt1 && exec \"$@\"",
                                         "sh"};
        const auto as = as_user(kNobody);
        argv.insert(argv.end(), as.begin(), as.end());
        argv.push_back(hook_path("before_vm_start"));
        const auto r = run_command(argv, {{"_hook_domxml", path}, {"SRIOV_PASSTHROUGH_CONF", conf()}});
        return HookRun{r.status, r.output, read_text(path)};
    }

    std::vector<RecordEntry> records() const {
        return ReservationStore(hooks_state(), std::chrono::seconds(1)).load();
    }
};

TEST_F(HooksWithTheRealHelper, OnErrorFailRefusesWithTheKernelsAnswer) {
    configure("fail");
    const auto xml = make_domain({{kMac, "sriovnet", {{"passthrough", "true"}, {"vf_trust", "on"}}}});
    const auto run = start(xml);
    EXPECT_EQ(run.status, 2) << run.err;
    EXPECT_EQ(run.xml, xml);
    const auto vf0 = sysfs_->vf_pci(kPf, 0).to_string();
    EXPECT_EQ(run.err, "sriov-passthrough: before_vm_start: VF settings trust=on for vNIC " + std::string(kMac) +
                           " on VF " + vf0 + " (" + kPf + " VF 0) could not be made (on_error = fail; nothing is held): "
                           "VF helper " + wrapper() + ": sriov-passthrough-vf-helper: VF " + vf0 + " (" + kPf +
                           " VF 0): trust=on: Operation not supported by the driver\n");
    EXPECT_TRUE(records().empty());
}

TEST_F(HooksWithTheRealHelper, OnErrorWarnStartsWithoutThem) {
    configure("warn");
    // Each is tried alone too; the veth has neither.
    const auto run = start(make_domain(
        {{kMac, "sriovnet", {{"passthrough", "true"}, {"vf_trust", "on"}, {"vf_link_state", "enable"}}}}));
    EXPECT_EQ(run.status, 0) << run.err;
    EXPECT_NE(run.err.find("VF settings trust=on link_state=enable for vNIC " + std::string(kMac) + " on VF " +
                           sysfs_->vf_pci(kPf, 0).to_string() + " (" + kPf +
                           " VF 0) not made; starting without them (on_error = warn)"),
              std::string::npos)
        << run.err;
    EXPECT_NE(run.err.find("trust=on: Operation not supported by the driver"), std::string::npos) << run.err;
    const auto held = records();
    ASSERT_EQ(held.size(), 1u);
    ASSERT_TRUE(held[0].record) << held[0].problem;
    EXPECT_TRUE(held[0].record->vf_settings.empty());
}

TEST_F(HooksWithTheRealHelper, CheckSaysWhatTheHooksUserGets) {
    configure("fail", "vf_trust = on\n");  // the network needs the helper: a problem, not a warning
    const auto check = [&](bool no_new_privs) {
        auto argv = as_user(kNobody, no_new_privs);
        argv.insert(argv.begin(), {"timeout", kCommandSeconds});
        argv.insert(argv.end(), {SRIOVPT_CLI, "--config", conf(), "check"});
        return run_command(argv).output;
    };
    const auto plain = check(false);
    EXPECT_NE(plain.find("ok: VF helper " + wrapper() + " run as this user: sriov-passthrough-vf-helper: ok:"),
              std::string::npos)
        << plain;
    // Root's check asks as the hooks would: as the state directory's owner.
    const auto as_root = run_command({"timeout", kCommandSeconds, SRIOVPT_CLI, "--config", conf(), "check"}).output;
    EXPECT_NE(as_root.find("ok: VF helper " + wrapper() + " run as the hooks' user (uid 65534, the state directory's "
                           "owner): sriov-passthrough-vf-helper: ok:"),
              std::string::npos)
        << as_root;
    const auto nnp = check(true);
    EXPECT_NE(nnp.find("PROBLEM: VF helper " + wrapper() + " run as this user: sriov-passthrough-vf-helper: the helper "
                       "has no CAP_NET_ADMIN: its caller runs with NoNewPrivileges"),
              std::string::npos)
        << nnp;
    EXPECT_NE(nnp.find("this process runs with no_new_privs (NoNewPrivileges=yes)"), std::string::npos) << nnp;
}

}  // namespace
}  // namespace sriovpt::test
