#include "vf_policy.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <map>
#include <memory>

#include "error.hpp"
#include "fd_io.hpp"
#include "properties.hpp"
#include "text.hpp"

namespace sriovpt {

namespace {

constexpr size_t kMaxPolicyBytes = 64 * 1024;

bool on_off(std::string_view value, const std::string& where) {
    if (value == "on") return true;
    if (value == "off") return false;
    fail(where, ": ", quoted(value), " is not on or off");
}

std::uint32_t mbps(std::string_view value, const std::string& where) {
    const auto n = parse_decimal(value);
    if (!n || *n > UINT32_MAX) fail(where, ": ", quoted(value), " is not a rate in Mbps (0..", UINT32_MAX, ")");
    return static_cast<std::uint32_t>(*n);
}

std::optional<VfSetting::Kind> kind_named(std::string_view name) {
    for (const auto kind : {VfSetting::Kind::trust, VfSetting::Kind::spoofchk, VfSetting::Kind::rate,
                            VfSetting::Kind::link_state}) {
        if (kind_name(kind) == name) return kind;
    }
    return std::nullopt;
}

std::string absolute_path(std::string_view value, const std::string& where) {
    if (value.empty() || value.front() != '/') fail(where, ": ", quoted(value), " is not an absolute path");
    return std::string(value);
}

std::string octal(mode_t mode) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
    return buf;
}

// Every directory from `dir` up to '/' must be one only root can change.
void check_directories(const std::string& dir, const std::string& path) {
    std::string d = dir;
    for (;;) {
        struct stat st {};
        if (::stat(d.c_str(), &st) != 0) fail("policy ", path, ": cannot examine ", d, ": ", std::strerror(errno));
        const bool others_write = (st.st_mode & S_IWOTH) || ((st.st_mode & S_IWGRP) && st.st_gid != 0);
        if (st.st_uid != 0 || (others_write && !(st.st_mode & S_ISVTX)))
            fail("policy ", path, ": its directory ", d, " can be changed by others than root (owner uid ", st.st_uid,
                 ", mode ", octal(st.st_mode), "): refused");
        if (d == "/") return;
        const auto slash = d.rfind('/');
        d = slash == 0 ? "/" : d.substr(0, slash);
    }
}

}  // namespace

bool VfPolicy::allows_pf(std::string_view pf) const {
    for (const auto& p : pfs) {
        if (p == pf) return true;
    }
    return false;
}

VfSetting VfPolicy::baseline(VfSetting::Kind kind) const {
    switch (kind) {
    case VfSetting::Kind::trust: return VfSetting::trust(baseline_trust);
    case VfSetting::Kind::spoofchk: return VfSetting::spoofchk(baseline_spoofchk);
    case VfSetting::Kind::rate: return VfSetting::rate(baseline_min_tx_rate, baseline_max_tx_rate);
    case VfSetting::Kind::link_state: return VfSetting::link(baseline_link_state);
    }
    return {};
}

std::string VfPolicy::refusal(const VfSetting& s) const {
    if (!allows(s.kind)) {
        std::vector<std::string> names;
        for (const auto k : allowed) names.emplace_back(kind_name(k));
        return cat("the policy does not allow ", kind_name(s.kind), " (allow = ",
                   names.empty() ? "nothing" : join(names), ")");
    }
    if (s.kind == VfSetting::Kind::rate && rate_ceiling) {
        if (s.max_tx_rate == 0)
            return cat("max_tx_rate 0 is no limit, above the policy's rate_ceiling of ", *rate_ceiling, " Mbps");
        if (s.max_tx_rate > *rate_ceiling || s.min_tx_rate > *rate_ceiling)
            return cat("above the policy's rate_ceiling of ", *rate_ceiling, " Mbps");
    }
    return {};
}

std::optional<uid_t> system_user(const std::string& name) {
    errno = 0;
    const passwd* pw = ::getpwnam(name.c_str());
    if (!pw) return std::nullopt;
    return pw->pw_uid;
}

VfPolicy parse_policy(std::string_view text, std::string_view file, const UserLookup& lookup) {
    VfPolicy policy;
    std::map<std::string, size_t> seen;
    size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        const auto nl = text.find('\n');
        const auto raw = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        const auto line = trim(raw);
        if (line.empty() || line.front() == '#') continue;
        const auto eq = line.find('=');
        if (eq == std::string_view::npos) fail(file, " line ", line_no, ": ", quoted(line), " is not key = value");
        const std::string key(trim(line.substr(0, eq)));
        const auto value = trim(line.substr(eq + 1));
        const auto where = cat(file, " line ", line_no, ": ", key);
        if (const auto [it, fresh] = seen.emplace(key, line_no); !fresh)
            fail(where, ": given twice (first on line ", it->second, ")");

        if (key == "user") {
            if (value.empty()) fail(where, ": empty");
            policy.user = value;
            if (const auto n = parse_decimal(value); n && *n < static_cast<unsigned long>(static_cast<uid_t>(-1))) {
                policy.uid = static_cast<uid_t>(*n);
            } else if (const auto uid = lookup(policy.user)) {
                policy.uid = *uid;
            } else {
                fail(where, ": no user ", quoted(value), " on this host");
            }
        } else if (key == "pfs") {
            policy.pfs.clear();
            if (!value.empty()) {
                for (const auto& pf : split(value, ',')) {
                    if (!is_valid_ifname(pf)) fail(where, ": ", quoted(pf), " is not a network interface name");
                    policy.pfs.push_back(pf);
                }
            }
        } else if (key == "allow") {
            if (!value.empty()) {
                for (const auto& name : split(value, ',')) {
                    const auto kind = kind_named(name);
                    if (!kind) fail(where, ": ", quoted(name), " is not one of trust, spoofchk, rate, link_state");
                    policy.allowed.insert(*kind);
                }
            }
        } else if (key == "rate_ceiling") {
            const auto n = mbps(value, where);
            if (n == 0) fail(where, ": 0 would allow no rate; leave rate out of allow instead");
            policy.rate_ceiling = n;
        } else if (key == "baseline_trust") {
            policy.baseline_trust = on_off(value, where);
        } else if (key == "baseline_spoofchk") {
            policy.baseline_spoofchk = on_off(value, where);
        } else if (key == "baseline_min_tx_rate") {
            policy.baseline_min_tx_rate = mbps(value, where);
        } else if (key == "baseline_max_tx_rate") {
            policy.baseline_max_tx_rate = mbps(value, where);
        } else if (key == "baseline_link_state") {
            const auto state = parse_link_state(value);
            if (!state) fail(where, ": ", quoted(value), " is not auto, enable or disable");
            policy.baseline_link_state = *state;
        } else if (key == "sysfs_root") {
            policy.sysfs_root = absolute_path(value, where);
        } else if (key == "state_dir") {
            policy.state_dir = absolute_path(value, where);
        } else {
            fail(file, " line ", line_no, ": unknown key ", quoted(key));
        }
    }
    if (!seen.count("user")) fail(file, ": no user: say who may run the helper (user = vdsm)");
    if (policy.allows(VfSetting::Kind::rate) && !policy.rate_ceiling)
        fail(file, ": allow has rate but there is no rate_ceiling: say the highest rate in Mbps a VF may get");
    if (policy.baseline_max_tx_rate != 0 && policy.baseline_min_tx_rate > policy.baseline_max_tx_rate)
        fail(file, ": baseline_min_tx_rate ", policy.baseline_min_tx_rate, " is above baseline_max_tx_rate ",
             policy.baseline_max_tx_rate);
    return policy;
}

VfPolicy load_policy(const std::string& path, const UserLookup& lookup) {
    if (path.empty() || path.front() != '/') fail("policy ", quoted(path), ": not an absolute path");
    const auto slash = path.rfind('/');
    const std::string dir = slash == 0 ? "/" : path.substr(0, slash);
    char real[PATH_MAX];
    if (!::realpath(dir.c_str(), real)) fail("policy ", path, ": ", std::strerror(errno));
    check_directories(real, path);

    const std::string file = cat(real == std::string("/") ? "" : real, path.substr(slash));
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        const int e = errno;
        if (e == ELOOP) fail("policy ", path, ": a symbolic link: refused");
        fail("policy ", path, ": ", std::strerror(e), e == ENOENT ? " (without a policy the helper does nothing)" : "");
    }
    const std::unique_ptr<int, void (*)(int*)> closer(new int(fd), [](int* f) {
        ::close(*f);
        delete f;
    });
    struct stat st {};
    if (::fstat(fd, &st) != 0) fail("policy ", path, ": ", std::strerror(errno));
    if (!S_ISREG(st.st_mode)) fail("policy ", path, ": not a regular file: refused");
    if (st.st_uid != 0) fail("policy ", path, ": owned by uid ", st.st_uid, ", not root: refused");
    if ((st.st_mode & S_IWOTH) || ((st.st_mode & S_IWGRP) && st.st_gid != 0))
        fail("policy ", path, ": writable by others than root (mode ", octal(st.st_mode), "): refused");
    const auto r = read_fd(fd, kMaxPolicyBytes, &st);
    if (r.error) fail("policy ", path, ": cannot read it: ", std::strerror(r.error));
    if (r.too_long) fail("policy ", path, ": larger than ", kMaxPolicyBytes, " bytes");
    return parse_policy(r.text, path, lookup);
}

}  // namespace sriovpt
