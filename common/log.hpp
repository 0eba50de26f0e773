// Messages: to stderr (VDSM logs it, and shows a before_* hook's stderr as
// the error) and to syslog/the journal under the tag "sriov-passthrough".
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sriovpt {

inline constexpr const char* kLogTag = "sriov-passthrough";
inline constexpr size_t kMaxLineBytes = 8192;

enum class Severity { info, warning, error };

// Writes "sriov-passthrough: <context>: <message>" to stderr and the same
// message to syslog, as one line: whatever the message holds, control
// characters and bytes that are not UTF-8 are escaped (printable() in
// text.hpp) and a line longer than kMaxLineBytes is cut.
void report(Severity severity, const std::string& context, const std::string& message);

// The same message to syslog only: for what VDSM must not see as an error.
void journal(Severity severity, const std::string& context, const std::string& message);

// A syslog socket (/dev/log for report() and journal()), written as
// syslog(3) writes it, "<priority>sriov-passthrough[pid]: line" with the
// daemon facility, but without its time stamp: journald and rsyslog stamp a
// message when they receive it (systemd's src/journal/journald-syslog.c,
// server_process_syslog_message, skips a date only when there is one), and
// syslog(3)'s local time costs each hook process a read of /etc/localtime
// (BENCHMARKS.md). A datagram socket, or a stream one as some syslog
// daemons have; connected at the first line; when nobody listens, the
// process stops trying.
class SyslogSocket {
public:
    explicit SyslogSocket(std::string path) : path_(std::move(path)) {}
    ~SyslogSocket();
    SyslogSocket(const SyslogSocket&) = delete;
    SyslogSocket& operator=(const SyslogSocket&) = delete;

    // Whether the line reached a listener.
    bool send(Severity severity, std::string_view line);

private:
    bool connect();

    std::string path_;
    int fd_ = -1;
    bool stream_ = false;  // a stream socket: each message ends with a NUL
    bool unavailable_ = false;
};

}  // namespace sriovpt
