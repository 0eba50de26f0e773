// Subcommands of sriov-passthrough that are more than a few lines.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "host.hpp"

namespace sriovpt::cli {

struct RunOptions {
    std::string hook_point;
    std::string domxml;                       // input file, never modified
    std::optional<std::string> vm_id;
    std::vector<std::pair<std::string, std::string>> props;
    std::optional<std::string> output;        // where to write the resulting XML (default stdout)
    std::optional<std::string> hooks_dir;     // default: next to this executable
};

// Runs the installed hook executable as VDSM would (its own temp copy of the
// XML in $_hook_domxml, $vmId, properties as variables) and prints what it
// did. Returns the hook's exit status.
int run_hook_command(const RunOptions& options);

// Checks the configuration against the host; prints one line per finding.
// Returns 0 when nothing is wrong, 1 otherwise.
int check_command(Host& host);

}  // namespace sriovpt::cli
