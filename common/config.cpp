#include "config.hpp"

#include <algorithm>

#include <sys/stat.h>

#include <boost/program_options/errors.hpp>
#include <boost/program_options/options_description.hpp>
#include <boost/program_options/parsers.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "error.hpp"
#include "properties.hpp"
#include "text.hpp"

namespace po = boost::program_options;

namespace sriovpt {

const NetworkPool* Config::network(const std::string& name) const {
    const auto it = networks.find(name);
    return it == networks.end() ? nullptr : &it->second;
}

const NetworkPool* Config::network_of_pf(const std::string& pf) const {
    for (const auto& [name, pool] : networks) {
        if (std::find(pool.pfs.begin(), pool.pfs.end(), pf) != pool.pfs.end()) return &pool;
    }
    return nullptr;
}

std::string config_path_from_env() {
    const char* env = std::getenv(kConfigEnvVar);
    return env && *env ? env : kDefaultConfigPath;
}

namespace {

unsigned parse_seconds(const std::string& key, const std::string& value, unsigned min, unsigned max) {
    const auto n = parse_decimal(value);
    if (!n || *n < min || *n > max)
        fail(key, " = ", quoted(value), " is not a whole number of seconds from ", min, " to ", max);
    return static_cast<unsigned>(*n);
}

bool parse_bool(const std::string& key, const std::string& value) {
    const auto v = to_lower(value);
    if (v == "yes" || v == "true" || v == "1") return true;
    if (v == "no" || v == "false" || v == "0") return false;
    fail(key, " = ", quoted(value), " is not a boolean (yes/no, true/false, 1/0)");
}

std::string parse_absolute_path(const std::string& key, const std::string& value) {
    if (value.empty() || value.front() != '/') fail(key, " = ", quoted(value), " is not an absolute path");
    return value;
}

// Network names become bridge names: letters, digits, '-', '_' (and no dots,
// which would be ambiguous in "network.<name>.<key>").
bool is_valid_network_name(std::string_view name) {
    if (name.empty() || name.size() > 255) return false;
    for (char c : name) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
    }
    return true;
}

void apply_network_key(Config& config, const std::string& network, const std::string& key,
                       const std::string& value) {
    if (!is_valid_network_name(network))
        fail("network name ", quoted(network), " is not allowed (only letters, digits, '-' and '_')");
    auto& pool = config.networks[network];
    pool.name = network;
    const auto where = cat("[network.", network, "] ", key);
    if (key == "pfs") {
        pool.pfs = with_context(where, [&] { return parse_pf_list(value); });
    } else if (key == "vlan") {
        pool.vlan = with_context(where, [&] { return parse_vlan(value); });
    } else if (is_vf_setting_key(key)) {
        try {
            set_vf_setting(pool.vf, key, value);
        } catch (const Error& e) {
            fail("[network.", network, "] ", e.what());
        }
    } else if (key == "on_error") {
        pool.on_error = with_context(where, [&] { return parse_on_error(value); });
    } else {
        fail("unknown key ", quoted(key), " in [network.", network,
             "] (allowed: pfs, vlan, vf_trust, vf_spoofchk, vf_max_tx_rate, vf_min_tx_rate, vf_link_state, on_error)");
    }
}

void apply_key(Config& config, const std::string& key, const std::string& value) {
    if (key == "sysfs_root") {
        config.sysfs_root = parse_absolute_path(key, value);
    } else if (key == "state_dir") {
        config.state_dir = parse_absolute_path(key, value);
    } else if (key == "libvirt_uri") {
        if (value.empty()) fail("libvirt_uri is empty (use \"none\" to disable libvirt look-ups)");
        config.libvirt_uri = value;
    } else if (key == "lock_timeout") {
        config.lock_timeout = parse_seconds(key, value, 1, 600);
    } else if (key == "reclaim_grace") {
        config.reclaim_grace = parse_seconds(key, value, 0, 86400);
    } else if (key == "check_domains") {
        config.check_domains = parse_bool(key, value);
    } else if (key == "vf_helper") {
        config.vf_helper = parse_absolute_path(key, value);
    } else if (key.rfind("network.", 0) == 0) {
        const auto rest = key.substr(std::strlen("network."));
        const auto dot = rest.rfind('.');
        if (dot == std::string::npos) fail("unknown key ", quoted(key));
        apply_network_key(config, rest.substr(0, dot), rest.substr(dot + 1), value);
    } else {
        fail("unknown key ", quoted(key),
             " (allowed: sysfs_root, state_dir, libvirt_uri, lock_timeout, reclaim_grace, "
             "check_domains, vf_helper, and [network.NAME] sections)");
    }
}

}  // namespace

Config parse_config(std::istream& in, const std::string& name) {
    return with_context(cat("configuration ", name), [&] {
        Config config;
        config.path = name;
        po::parsed_options parsed(nullptr);
        try {
            // Every key is "unregistered": Boost parses the INI syntax (sections,
            // '#' comments, trimming) and we validate keys and values ourselves,
            // so an unknown key is an error that names it.
            parsed = po::parse_config_file(in, po::options_description(), /*allow_unregistered=*/true);
        } catch (const po::invalid_config_file_syntax& e) {
            // Not e.what(): Boost substitutes the line into its message in a
            // loop that never ends when the line itself contains
            // "%invalid_line%" (found by fuzz_config), and a hook must not hang.
            fail("line ", quoted(e.tokens()), " is not 'key = value', a [section] or a comment");
        } catch (const po::error&) {
            fail("cannot be parsed as INI");
        }
        std::set<std::string> seen;
        for (const auto& option : parsed.options) {
            const auto& key = option.string_key;
            if (!seen.insert(key).second) fail(quoted(key), " is set more than once");
            const std::string value = option.value.empty() ? std::string() : option.value.front();
            apply_key(config, key, std::string(trim(value)));
        }
        for (const auto& [network, pool] : config.networks) {
            if (pool.pfs.empty()) fail("[network.", network, "] has no 'pfs' list");
            with_context(cat("[network.", network, "]"), [&] { effective_vf_settings({}, pool.vf); });
        }
        return config;
    });
}

Config load_config(const std::string& path) {
    // Anything but a regular file or a directory (a FIFO) could block the
    // read for ever; a directory gets its own message below.
    if (struct stat st{}; ::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        fail("configuration ", path, ": cannot be read: not a regular file");
    std::ifstream in(path);
    if (!in) {
        // The standard file may be missing, which means all defaults
        // (docs/design.md, "Configuration"). Another file is named on purpose
        // ($SRIOV_PASSTHROUGH_CONF, 'sriov-passthrough --config'); when it is
        // missing, that is a typo, and the defaults would point the hooks at
        // the real /sys and state directory instead of the ones the named
        // file meant.
        if (errno == ENOENT && path == kDefaultConfigPath) return Config{};
        if (errno == ENOENT)
            fail("configuration ", path, " does not exist (named by $", kConfigEnvVar, " or --config; only ",
                 kDefaultConfigPath, " may be missing)");
        fail("configuration ", path, ": cannot be read: ", std::strerror(errno));
    }
    auto config = parse_config(in, path);
    // An ifstream opens a directory (or a file it then fails to read) and
    // reads nothing: without this check that would mean all defaults.
    if (in.bad()) {
        struct stat st{};
        const int err = ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) ? EISDIR : EIO;
        fail("configuration ", path, ": cannot be read: ", std::strerror(err));
    }
    return config;
}

}  // namespace sriovpt
