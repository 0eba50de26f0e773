#include "log.hpp"

#include <syslog.h>

#include <cstdio>

#include "text.hpp"

namespace sriovpt {

void report(Severity severity, const std::string& context, const std::string& message) {
    // Values from the input are quoted where they are put in a message; this
    // is the backstop for those that are not, so one report stays one line.
    const auto line = printable(context.empty() ? message : context + ": " + message, kMaxLineBytes);
    std::fprintf(stderr, "%s: %s\n", kLogTag, line.c_str());
    journal(severity, context, message);
}

void journal(Severity severity, const std::string& context, const std::string& message) {
    // The same backstop as report(): one message, one line in the journal.
    const auto line = printable(context.empty() ? message : context + ": " + message, kMaxLineBytes);
    static bool opened = false;
    if (!opened) {
        ::openlog(kLogTag, LOG_PID, LOG_DAEMON);
        opened = true;
    }
    const int priority = severity == Severity::error ? LOG_ERR : severity == Severity::warning ? LOG_WARNING : LOG_INFO;
    ::syslog(priority, "%s", line.c_str());
}

}  // namespace sriovpt
