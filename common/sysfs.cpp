#include "sysfs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <memory>

#include "error.hpp"
#include "text.hpp"

namespace sriovpt {

namespace {

constexpr int kMaxSymlinkHops = 40;  // as the kernel's own limit

std::vector<std::string_view> components(std::string_view path) {
    std::vector<std::string_view> out;
    while (!path.empty()) {
        const auto slash = path.find('/');
        const auto part = path.substr(0, slash);
        if (!part.empty()) out.push_back(part);
        if (slash == std::string_view::npos) break;
        path.remove_prefix(slash + 1);
    }
    return out;
}

std::optional<std::string> read_link(const std::string& path) {
    char buf[4096];
    const ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
    if (n < 0 || n == static_cast<ssize_t>(sizeof buf)) return std::nullopt;
    return std::string(buf, static_cast<size_t>(n));
}

std::optional<int> parse_int(std::string_view s) {
    int value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return value;
}

// A strict count: digits only, at most kMaxVfsPerPf.
std::optional<unsigned> parse_count(std::string_view s) {
    const auto n = parse_decimal(s);
    if (!n || *n > kMaxVfsPerPf) return std::nullopt;
    return static_cast<unsigned>(*n);
}

// A sysfs value in a message: quoted, bounded, one line.
std::string shown(std::string_view value) {
    std::string out = "'";
    for (const char c : value.substr(0, 32)) {
        const auto b = static_cast<unsigned char>(c);
        out += (b >= 0x20 && b < 0x7f && c != '\'') ? c : '?';
    }
    return out + (value.size() > 32 ? "...'" : "'");
}

std::string basename_of(std::string_view path) {
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    const auto slash = path.rfind('/');
    return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

}  // namespace

Sysfs::Sysfs(std::string root) : root_(std::move(root)) {
    while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

std::string Sysfs::absolute(std::string_view rel) const {
    std::string out = root_ == "/" ? std::string() : root_;
    out += '/';
    out += rel;
    return out;
}

std::optional<std::string> Sysfs::resolve(std::string_view rel) const {
    // `done` holds resolved components; `todo` the ones still to walk, in
    // reverse so that a link's target can be pushed in front of the rest.
    std::vector<std::string> done;
    std::vector<std::string> todo;
    for (auto part : components(rel)) todo.emplace_back(part);
    std::reverse(todo.begin(), todo.end());
    int hops = 0;
    while (!todo.empty()) {
        std::string part = std::move(todo.back());
        todo.pop_back();
        if (part == ".") continue;
        if (part == "..") {
            if (!done.empty()) done.pop_back();  // ".." at the root stays at the root
            continue;
        }
        done.push_back(part);
        const auto path = absolute(join(done, "/"));
        struct stat st{};
        if (::lstat(path.c_str(), &st) != 0) return std::nullopt;
        if (!S_ISLNK(st.st_mode)) continue;
        if (++hops > kMaxSymlinkHops) return std::nullopt;
        const auto target = read_link(path);
        if (!target) return std::nullopt;
        done.pop_back();
        if (!target->empty() && target->front() == '/') done.clear();  // absolute: from the root
        const auto parts = components(*target);
        for (auto it = parts.rbegin(); it != parts.rend(); ++it) todo.emplace_back(*it);
    }
    return join(done, "/");
}

std::optional<std::string> Sysfs::read(std::string_view rel) const {
    const auto resolved = resolve(rel);
    if (!resolved) return std::nullopt;
    // O_NONBLOCK and the type check: a FIFO in a (fake) tree must not hang
    // a hook. A sysfs attribute is at most a page; a runaway file is cut.
    const int fd = ::open(absolute(*resolved).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return std::nullopt;
    struct stat st{};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        return std::nullopt;
    }
    std::string out;
    char buf[512];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) {
        out.append(buf, static_cast<size_t>(n));
        if (out.size() >= 65536) break;
    }
    ::close(fd);
    if (n < 0) return std::nullopt;
    return std::string(trim(out));
}

std::optional<std::string> Sysfs::link_basename(std::string_view rel) const {
    const auto target = read_link(absolute(rel));
    if (!target) return std::nullopt;
    return basename_of(*target);
}

std::vector<std::string> Sysfs::list(std::string_view rel) const {
    std::vector<std::string> names;
    const auto resolved = resolve(rel);
    if (!resolved) return names;
    const std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(absolute(*resolved).c_str()), ::closedir);
    if (!dir) return names;
    while (const dirent* entry = ::readdir(dir.get())) {
        const std::string_view name = entry->d_name;
        if (name != "." && name != "..") names.emplace_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
}

bool Sysfs::exists(std::string_view rel) const { return resolve(rel).has_value(); }

bool is_assignment_driver(std::string_view driver) {
    return driver == "vfio-pci" || driver == "pci-stub";
}

std::optional<PfInfo> Inventory::pf(const std::string& name) const {
    // `name` was validated as an interface name by the caller's parser, but a
    // slash here would let a path escape class/net: refuse it outright.
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") return std::nullopt;
    const auto dir = sysfs_.resolve("class/net/" + name + "/device");
    if (!dir) return std::nullopt;
    const auto total = sysfs_.read(*dir + "/sriov_totalvfs");
    if (!total) return std::nullopt;
    PfInfo info;
    info.name = name;
    info.device_dir = *dir;
    info.pci = PciAddress::parse(basename_of(*dir));
    info.operstate = sysfs_.read("class/net/" + name + "/operstate").value_or("unknown");
    // The kernel writes both as unsigned decimals; anything else (a "-1"
    // that would make billions of VF indexes, a word that would read as 0)
    // makes the PF unusable, said with the value, rather than guessed at.
    const auto total_vfs = parse_count(*total);
    if (!total_vfs) {
        info.problem = cat("sriov_totalvfs is ", shown(*total), ", not a number from 0 to ", kMaxVfsPerPf);
        return info;
    }
    info.total_vfs = *total_vfs;
    const auto num = sysfs_.read(*dir + "/sriov_numvfs");
    if (!num) {
        info.problem = "sriov_numvfs cannot be read";
        return info;
    }
    const auto num_vfs = parse_count(*num);
    if (!num_vfs || *num_vfs > info.total_vfs) {
        info.problem = cat("sriov_numvfs is ", shown(*num), ", not a number from 0 to ", info.total_vfs,
                           " (sriov_totalvfs)");
        return info;
    }
    info.num_vfs = *num_vfs;
    return info;
}

std::optional<PciAddress> Inventory::vf_address(const PfInfo& pf, unsigned index) const {
    const auto name = sysfs_.link_basename(pf.device_dir + "/virtfn" + std::to_string(index));
    if (!name) return std::nullopt;
    return PciAddress::parse(*name);
}

std::optional<VfInfo> Inventory::vf(const PfInfo& pf, unsigned index) const {
    const auto link = pf.device_dir + "/virtfn" + std::to_string(index);
    const auto dir = sysfs_.resolve(link);
    if (!dir) return std::nullopt;
    const auto pci = PciAddress::parse(basename_of(*dir));
    if (!pci) return std::nullopt;
    VfInfo vf;
    vf.pci = *pci;
    vf.pf = pf.name;
    vf.index = index;
    vf.device_dir = *dir;
    vf.driver = sysfs_.link_basename(*dir + "/driver").value_or("");
    const auto netdevs = sysfs_.list(*dir + "/net");
    if (!netdevs.empty()) {
        vf.netdev = netdevs.front();
        vf.netdev_state = sysfs_.read(*dir + "/net/" + vf.netdev + "/operstate").value_or("unknown");
    }
    vf.numa_node = parse_int(sysfs_.read(*dir + "/numa_node").value_or("-1")).value_or(-1);
    if (const auto group = sysfs_.link_basename(*dir + "/iommu_group")) {
        if (const auto n = parse_int(*group); n && *n >= 0) vf.iommu_group = static_cast<unsigned>(*n);
    }
    return vf;
}

std::vector<PfInfo> Inventory::all_pfs() const {
    std::vector<PfInfo> out;
    for (const auto& name : sysfs_.list("class/net")) {
        if (auto info = pf(name)) out.push_back(std::move(*info));
    }
    return out;
}

std::vector<VfInfo> Inventory::vfs(const PfInfo& pf, std::vector<std::string>* missing) const {
    std::vector<VfInfo> out;
    for (unsigned i = 0; i < pf.num_vfs; ++i) {
        if (auto info = vf(pf, i)) {
            out.push_back(std::move(*info));
        } else if (missing) {
            const auto link = cat("virtfn", i);
            const auto target = read_link(sysfs_.root() + "/" + pf.device_dir + "/" + link);
            missing->push_back(target ? cat(link, " -> ", shown(*target), ", which does not exist")
                                      : cat(link, " is missing"));
        }
    }
    return out;
}

std::optional<Inventory::VfLocation> Inventory::locate_vf(const PciAddress& pci) const {
    for (auto& pf : all_pfs()) {
        for (unsigned i = 0; i < pf.num_vfs; ++i) {
            if (vf_address(pf, i) == pci) return VfLocation{std::move(pf), i};
        }
    }
    return std::nullopt;
}

}  // namespace sriovpt
