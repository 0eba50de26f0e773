// common/log: the syslog datagram the hooks send, as journald and rsyslog
// read it, and a host where nobody listens.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "log.hpp"

namespace sriovpt {
namespace {

// A datagram socket bound at `path`, as journald's /dev/log is.
class Listener {
public:
    explicit Listener(const std::string& path) : fd_(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        path.copy(address.sun_path, sizeof address.sun_path - 1);
        EXPECT_EQ(::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
    }
    ~Listener() { ::close(fd_); }
    std::string receive() const {
        char buf[16384];
        const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
        return n < 0 ? std::string("(nothing)") : std::string(buf, static_cast<size_t>(n));
    }

private:
    int fd_;
};

TEST(SyslogSocket, SendsWhatSyslogSendsWithoutTheTimeStamp) {
    test::TempDir dir;
    const auto path = dir.path() + "/log";
    Listener listener(path);
    SyslogSocket socket(path);
    const auto pid = std::to_string(::getpid());
    // <priority> is facility daemon (3) * 8 + the level.
    EXPECT_TRUE(socket.send(Severity::error, "before_vm_start: no VF is free"));
    EXPECT_EQ(listener.receive(), "<27>sriov-passthrough[" + pid + "]: before_vm_start: no VF is free");
    EXPECT_TRUE(socket.send(Severity::warning, "w"));
    EXPECT_EQ(listener.receive(), "<28>sriov-passthrough[" + pid + "]: w");
    EXPECT_TRUE(socket.send(Severity::info, "i"));
    EXPECT_EQ(listener.receive(), "<30>sriov-passthrough[" + pid + "]: i");
}

TEST(SyslogSocket, ReconnectsToAListenerThatRestarted) {
    test::TempDir dir;
    const auto path = dir.path() + "/log";
    SyslogSocket socket(path);
    {
        Listener first(path);
        EXPECT_TRUE(socket.send(Severity::info, "one"));
        EXPECT_NE(first.receive().find("one"), std::string::npos);
    }
    ::unlink(path.c_str());
    Listener second(path);
    EXPECT_TRUE(socket.send(Severity::info, "two"));
    EXPECT_NE(second.receive().find("two"), std::string::npos);
}

// Some syslog daemons listen on a stream socket: the message then ends with
// a NUL, as syslog(3) sends it.
TEST(SyslogSocket, WritesToAStreamSocketAsSyslogDoes) {
    test::TempDir dir;
    const auto path = dir.path() + "/log";
    const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path.copy(address.sun_path, sizeof address.sun_path - 1);
    ASSERT_EQ(::bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
    ASSERT_EQ(::listen(listener, 1), 0);
    SyslogSocket socket(path);
    EXPECT_TRUE(socket.send(Severity::info, "on a stream"));
    const int accepted = ::accept(listener, nullptr, nullptr);
    ASSERT_GE(accepted, 0);
    char buf[256];
    const ssize_t n = ::recv(accepted, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    EXPECT_EQ(std::string(buf, static_cast<size_t>(n)),
              "<30>sriov-passthrough[" + std::to_string(::getpid()) + "]: on a stream" + std::string(1, '\0'));
    ::close(accepted);
    ::close(listener);
}

TEST(SyslogSocket, StopsTryingWhenNobodyListens) {
    test::TempDir dir;
    const auto path = dir.path() + "/log";
    SyslogSocket socket(path);
    EXPECT_FALSE(socket.send(Severity::info, "lost"));
    // A listener that appears later is not looked for: a hook is a short
    // process, and each failed attempt costs it system calls.
    Listener late(path);
    EXPECT_FALSE(socket.send(Severity::info, "lost too"));
    EXPECT_EQ(late.receive(), "(nothing)");
}

}  // namespace
}  // namespace sriovpt
