#include "log.hpp"

#include <paths.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>

#include "error.hpp"
#include "fd_io.hpp"
#include "text.hpp"

namespace sriovpt {

namespace {

// One line for stderr and the journal: values from the input are quoted
// where they are put in a message; this is the backstop for those that are
// not, so one report stays one line.
std::string line_of(const std::string& context, const std::string& message) {
    return printable(context.empty() ? message : context + ": " + message, kMaxLineBytes);
}

void send_to_journal(Severity severity, const std::string& line) {
    static SyslogSocket socket(_PATH_LOG);
    socket.send(severity, line);
}

}  // namespace

void report(Severity severity, const std::string& context, const std::string& message) {
    const auto line = line_of(context, message);
    // One write(2) of the whole line (stderr is unbuffered; printf would
    // also bring its formatting code into a hook's few pages of libc).
    write_fd(STDERR_FILENO, cat(kLogTag, ": ", line, '\n'));
    send_to_journal(severity, line);
}

void journal(Severity severity, const std::string& context, const std::string& message) {
    send_to_journal(severity, line_of(context, message));
}

SyslogSocket::~SyslogSocket() {
    if (fd_ >= 0) ::close(fd_);
}

bool SyslogSocket::connect() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path_.size() >= sizeof address.sun_path) return false;
    path_.copy(address.sun_path, path_.size());
    // journald's and rsyslog's /dev/log take datagrams; some syslog daemons
    // listen on a stream socket (EPROTOTYPE), where each message ends with a
    // NUL, as syslog(3) does.
    for (const int type : {SOCK_DGRAM, SOCK_STREAM}) {
        fd_ = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
        if (fd_ < 0) return false;
        if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
            stream_ = type == SOCK_STREAM;
            return true;
        }
        const int error = errno;
        ::close(fd_);
        fd_ = -1;
        if (error != EPROTOTYPE) return false;
    }
    return false;
}

bool SyslogSocket::send(Severity severity, std::string_view line) {
    if (unavailable_) return false;
    const int level = severity == Severity::error ? LOG_ERR : severity == Severity::warning ? LOG_WARNING : LOG_INFO;
    const auto message = cat('<', LOG_DAEMON | level, '>', kLogTag, '[', ::getpid(), "]: ", line);
    // A listener that restarted since the last line (ECONNREFUSED): once more
    // on a new connection.
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (fd_ < 0 && !connect()) break;
        // With the NUL on a stream; a datagram is its own end.
        if (::send(fd_, message.c_str(), message.size() + (stream_ ? 1 : 0), MSG_NOSIGNAL) >= 0) return true;
        ::close(fd_);
        fd_ = -1;
    }
    unavailable_ = true;
    return false;
}

}  // namespace sriovpt
