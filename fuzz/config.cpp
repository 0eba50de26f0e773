// Fuzz target: the configuration parser (sriovpt::parse_config). Any input
// must give a Config or an sriovpt::Error; any other exception, crash, leak
// or sanitizer report is a finding.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "config.hpp"
#include "error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        const auto config = sriovpt::parse_config(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.conf");
        // What the parser promises about a Config it returns.
        if (config.sysfs_root.empty() || config.state_dir.empty()) std::abort();
        for (const auto& [name, pool] : config.networks) {
            if (pool.pfs.empty() || name != pool.name) std::abort();
            if (pool.vlan && (*pool.vlan < 1 || *pool.vlan > 4094)) std::abort();
        }
    } catch (const sriovpt::Error&) {
    }
    return 0;
}
