// Every hook logs what it did to syslog (the journal), tagged
// "sriov-passthrough", besides stderr; failures of after_* hooks too. glibc's
// syslog writes to /dev/log, so the hook runs in a mount namespace whose
// /dev/log is a socket of this test (root only).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.hpp"

namespace sriovpt::test {
namespace {

class Journal : public testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "a mount namespace needs root";
        host_.sysfs().add_pf({"ens1f0", "0000:3b:00.0", 2});
        socket_path_ = dir_.path() + "/log";
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path_.c_str());
        ASSERT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    }
    void TearDown() override {
        if (fd_ >= 0) ::close(fd_);
    }

    // Runs the hook as VDSM would, with /dev/log bound to our socket; returns
    // its exit status.
    int run_logged(const std::string& hook_point, const std::string& xml, const std::string& props = "") {
        const auto xml_path = dir_.path() + "/domxml";
        write_text(xml_path, xml);
        std::map<std::string, std::string> env{{"_hook_domxml", xml_path},
                                               {"vmId", kVmId},
                                               {"SRIOV_PASSTHROUGH_CONF", host_.conf_path()},
                                               {"LOG_SOCKET", socket_path_},
                                               {"HOOK", hook_path(hook_point)}};
        if (!props.empty()) env["passthrough"] = props;
        return run_command({"unshare", "-m", "sh", "-c",
                            "mount -t tmpfs tmpfs /dev && touch /dev/log && mount --bind \"$LOG_SOCKET\" /dev/log "
                            "&& exec \"$HOOK\""},
                           env)
            .status;
    }

    std::vector<std::string> messages() {
        std::vector<std::string> out;
        char buf[4096];
        ssize_t n;
        while ((n = ::recv(fd_, buf, sizeof buf, 0)) > 0) out.emplace_back(buf, static_cast<size_t>(n));
        return out;
    }

    TestHost host_{"[network.sriovnet]\npfs = ens1f0\nvlan = 12\n"};
    TempDir dir_;
    std::string socket_path_;
    int fd_ = -1;
};

bool has(const std::vector<std::string>& messages, const std::string& text) {
    for (const auto& m : messages) {
        if (m.find(text) != std::string::npos) return true;
    }
    return false;
}

TEST_F(Journal, ReservationReleaseAndAfterHookFailureAreLogged) {
    ASSERT_EQ(run_logged("before_nic_hotplug", make_interface("00:1a:4a:16:01:62"), "true"), 0);
    auto logged = messages();
    ASSERT_EQ(logged.size(), 1u);
    // <30> = daemon.info; the tag with the pid, then VM, MAC, VF, PF and VLAN.
    EXPECT_EQ(logged[0].rfind("<30>", 0), 0u) << logged[0];
    EXPECT_TRUE(has(logged, "sriov-passthrough[")) << logged[0];
    EXPECT_TRUE(has(logged, std::string("before_nic_hotplug: vNIC 00:1a:4a:16:01:62 of VM ") + kVmId +
                                " on sriovnet -> VF 0000:3b:02.0 (ens1f0 VF 0, VLAN 12)"))
        << logged[0];

    ASSERT_EQ(run_logged("after_nic_hotunplug", make_interface("00:1a:4a:16:01:62"), "true"), 0);
    EXPECT_TRUE(has(messages(), "after_nic_hotunplug: released VF 0000:3b:02.0 (ens1f0 VF 0) of vNIC 00:1a:4a:16:01:62"));

    ASSERT_EQ(run_logged("after_nic_hotunplug", "<interface type='bridge'/>", "true"), 1);
    logged = messages();
    ASSERT_EQ(logged.size(), 1u);
    EXPECT_EQ(logged[0].rfind("<27>", 0), 0u) << "daemon.err: " << logged[0];
    EXPECT_TRUE(has(logged, "after_nic_hotunplug: the <interface> has no valid <mac address>")) << logged[0];
}

}  // namespace
}  // namespace sriovpt::test
