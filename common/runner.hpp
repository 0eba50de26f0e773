// The skeleton every hook executable shares: VDSM's calling convention
// (docs/design.md, "The contract with VDSM") on one side, run_hook_point()
// on the other.
//
//   $_hook_domxml   the XML file to read and rewrite in place (by name)
//   $vmId           the VM's UUID
//   other variables the custom properties
//
// Exit status: 0 success; before_* failures 2 (the operation is refused and
// later hooks are skipped), after_* failures 1 (VDSM only logs them).
#pragma once

#include <sys/types.h>

#include <string>

#include "hooks.hpp"

namespace sriovpt {

// Runs `hp` as VDSM calls it, reading the process environment. Returns the
// exit status. On failure the XML file is untouched and a before_* hook
// leaves no reservation behind.
int run_hook_main(HookPoint hp);

// Replaces `path`'s content with `text` atomically (temporary file in the
// same directory, renamed over it), with the permission bits of `mode`.
void replace_file(const std::string& path, const std::string& text, mode_t mode);

// The domain XML file VDSM names: its text and mode. Read once per hook:
// what the fast path read before main (common/fast_path.hpp) when it did.
struct DomainFile {
    std::string text;
    mode_t mode = 0;
};
DomainFile read_domain_file(const std::string& path);

std::string read_file(const std::string& path);

}  // namespace sriovpt
