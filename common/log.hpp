// Messages: to stderr (VDSM logs it, and shows a before_* hook's stderr as
// the error) and to syslog/the journal under the tag "sriov-passthrough".
#pragma once

#include <string>

namespace sriovpt {

inline constexpr const char* kLogTag = "sriov-passthrough";

enum class Severity { info, warning, error };

// Writes "sriov-passthrough: <context>: <message>" to stderr and the same
// message to syslog.
void report(Severity severity, const std::string& context, const std::string& message);

}  // namespace sriovpt
