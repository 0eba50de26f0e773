#include "log.hpp"

#include <syslog.h>

#include <cstdio>

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
    static bool opened = false;
    if (!opened) {
        ::openlog(kLogTag, LOG_PID, LOG_DAEMON);
        opened = true;
    }
    const int priority = severity == Severity::error ? LOG_ERR : severity == Severity::warning ? LOG_WARNING : LOG_INFO;
    ::syslog(priority, "%s", line.c_str());
}

}  // namespace

void report(Severity severity, const std::string& context, const std::string& message) {
    const auto line = line_of(context, message);
    std::fprintf(stderr, "%s: %s\n", kLogTag, line.c_str());
    send_to_journal(severity, line);
}

void journal(Severity severity, const std::string& context, const std::string& message) {
    send_to_journal(severity, line_of(context, message));
}

}  // namespace sriovpt
