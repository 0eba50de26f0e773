// Messages: to stderr (VDSM logs it, and shows a before_* hook's stderr as
// the error) and to syslog/the journal under the tag "sriov-passthrough".
#pragma once

#include <cstddef>
#include <string>

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

}  // namespace sriovpt
