// Reading VF settings back from the kernel for `status` (docs/design.md, "VF
// settings and the privileged helper"). Apart from status.hpp, so that the
// command alone links the netlink library.
#pragma once

#include <map>
#include <string>

#include "vf_settings.hpp"

namespace sriovpt::cli {

// What the kernel reports of each VF of the PF `pf` (RTM_GETLINK, which
// needs no privilege; bounded wait), by VF index. Empty when the kernel does
// not know the PF (another network namespace, a test's fake tree) or cannot
// be asked.
std::map<unsigned, VfSettings> kernel_vf_settings(const std::string& pf);

}  // namespace sriovpt::cli
