#include "config.hpp"

#include <algorithm>

#include <sys/stat.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>

#include "error.hpp"
#include "fd_io.hpp"
#include "properties.hpp"
#include "text.hpp"

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

NumaPolicy Config::numa_policy(const std::string& name) const {
    const auto* pool = network(name);
    return pool && pool->numa ? *pool->numa : numa;
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

NumaPolicy parse_numa(const std::string& key, const std::string& value) {
    const auto policy = numa_policy_from_name(value);
    if (!policy) fail(key, " = ", quoted(value), " is not a NUMA policy (allowed: required, preferred, ignore)");
    return *policy;
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
    } else if (key == "numa") {
        pool.numa = parse_numa(where, value);
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
             "] (allowed: pfs, vlan, numa, vf_trust, vf_spoofchk, vf_max_tx_rate, vf_min_tx_rate, vf_link_state, "
             "on_error)");
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
    } else if (key == "numa") {
        config.numa = parse_numa(key, value);
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
             "check_domains, numa, vf_helper, and [network.NAME] sections)");
    }
}

}  // namespace

// A configuration file larger than this is not one (the whole file is read
// into memory by every hook).
constexpr std::size_t kMaxConfigBytes = 1 << 20;

namespace {

// One "key = value" line; the key of a line inside "[name]" is "name.key".
struct IniEntry {
    std::string key;
    std::string value;
};

std::string_view trim_ini(std::string_view s) {
    const auto first = s.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) return {};
    return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

// The INI syntax of docs/design.md, "Configuration": '#' starts a comment
// anywhere on a line, blank lines are skipped, "[name]" starts a section,
// every other line is "key = value", both sides trimmed. Read here rather
// than with Boost.Program_options' config-file parser, which the command
// still uses for its arguments: linking that parser into the hooks gave
// every hook process its static initialisation (iostreams and locales),
// about a tenth of a passthrough start's instructions (BENCHMARKS.md).
std::vector<IniEntry> read_ini(std::string_view text) {
    std::vector<IniEntry> out;
    std::string section;
    std::size_t number = 0;
    while (!text.empty()) {
        ++number;
        const auto end = text.find('\n');
        auto line = text.substr(0, end);
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
        line = trim_ini(line.substr(0, line.find('#')));
        if (line.empty()) continue;
        if (line.front() == '[' && line.back() == ']') {
            section = std::string(trim_ini(line.substr(1, line.size() - 2)));
            if (section.empty()) fail("line ", number, ": ", quoted(line), " names no section");
            section += '.';
            continue;
        }
        const auto equals = line.find('=');
        if (equals == std::string_view::npos)
            fail("line ", number, ": ", quoted(line), " is not 'key = value', a [section] or a comment");
        out.push_back({section + std::string(trim_ini(line.substr(0, equals))),
                       std::string(trim_ini(line.substr(equals + 1)))});
    }
    return out;
}

}  // namespace

Config parse_config(std::string_view text, const std::string& name) {
    return with_context(cat("configuration ", name), [&] {
        Config config;
        config.path = name;
        std::set<std::string> seen;
        for (const auto& [key, value] : read_ini(text)) {
            if (!seen.insert(key).second) fail(quoted(key), " is set more than once");
            apply_key(config, key, value);
        }
        for (const auto& [network, pool] : config.networks) {
            if (pool.pfs.empty()) fail("[network.", network, "] has no 'pfs' list");
            const auto& defaults = pool.vf;  // a structured binding: clang 14 cannot capture it
            with_context(cat("[network.", network, "]"), [&] { effective_vf_settings({}, defaults); });
        }
        return config;
    });
}

Config load_config(const std::string& path) {
    // O_NONBLOCK: a FIFO in its place must not block the hook; it is
    // refused below, unread.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
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
    const auto file = read_if_regular(fd, kMaxConfigBytes);
    ::close(fd);
    const auto& r = file.read;
    if (file.stat_error) fail("configuration ", path, ": cannot be read: ", std::strerror(file.stat_error));
    if (S_ISDIR(file.st.st_mode)) fail("configuration ", path, ": cannot be read: ", std::strerror(EISDIR));
    if (!file.regular()) fail("configuration ", path, ": cannot be read: not a regular file");
    if (r.error) fail("configuration ", path, ": cannot be read: ", std::strerror(r.error));
    if (r.too_long) fail("configuration ", path, ": larger than ", kMaxConfigBytes, " bytes; not a configuration");
    return parse_config(r.text, path);
}

}  // namespace sriovpt
