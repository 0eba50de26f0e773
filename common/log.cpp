#include "log.hpp"

#include <syslog.h>

#include <cstdio>

namespace sriovpt {

void report(Severity severity, const std::string& context, const std::string& message) {
    const auto line = context.empty() ? message : context + ": " + message;
    std::fprintf(stderr, "%s: %s\n", kLogTag, line.c_str());
    static bool opened = false;
    if (!opened) {
        ::openlog(kLogTag, LOG_PID, LOG_DAEMON);
        opened = true;
    }
    const int priority = severity == Severity::error ? LOG_ERR : severity == Severity::warning ? LOG_WARNING : LOG_INFO;
    ::syslog(priority, "%s", line.c_str());
}

}  // namespace sriovpt
