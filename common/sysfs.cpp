#include "sysfs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstddef>
#include <exception>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>

#include "dirents.hpp"
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

// Where the symlink text `target` leads from the directory `dir`, by its
// spelling alone ("a/b" and "../c" make "a/c"); nullopt when it is absolute
// or climbs above the root. A key to match paths by, never a path to read:
// what is read is resolved.
std::optional<std::string> follow_lexically(std::string_view dir, std::string_view target) {
    if (!target.empty() && target.front() == '/') return std::nullopt;
    auto parts = components(dir);
    for (const auto part : components(target)) {
        if (part == ".") continue;
        if (part != "..") {
            parts.push_back(part);
        } else if (parts.empty()) {
            return std::nullopt;
        } else {
            parts.pop_back();
        }
    }
    std::string out;
    for (const auto part : parts) {
        if (!out.empty()) out += '/';
        out += part;
    }
    return out;
}

// Why VF `index` of a PF is missing: its virtfn link's `target` does not
// exist, or there is no such link.
std::string describe_missing(unsigned index, const std::optional<std::string>& target) {
    const auto link = cat("virtfn", index);
    return target ? cat(link, " -> ", shown(*target), ", which does not exist") : cat(link, " is missing");
}

std::string basename_of(std::string_view path) {
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    const auto slash = path.rfind('/');
    return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

}  // namespace

namespace {

std::optional<std::string> read_attribute(int fd);
std::vector<std::string> list_fd(int fd);

// Where /proc/self/fd/<fd> points: the file's path as the kernel names it.
std::optional<std::string> path_of_fd(int fd) {
    return read_link("/proc/self/fd/" + std::to_string(fd));
}

}  // namespace

Sysfs::Sysfs(std::string root, Resolution how) : root_(std::move(root)) {
    while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
    if (how != Resolution::kernel) return;
    root_fd_ = ::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd_ < 0) return;
    // Resolved paths come back from the kernel as absolute names; the root's
    // own name (its symlinks resolved) is cut off them. Without /proc there
    // is no name to cut: resolve by component.
    const auto real = path_of_fd(root_fd_);
    if (!real || real->empty() || real->front() != '/') {
        ::close(root_fd_);
        root_fd_ = -1;
        return;
    }
    root_real_ = *real == "/" ? std::string() : *real;
}

Sysfs::~Sysfs() {
    if (root_fd_ >= 0) ::close(root_fd_);
}

int Sysfs::open_in_root(std::string_view rel, int flags) const {
    if (root_fd_ < 0) return -2;
    // Leading slashes would mean the root anyway; "" is the root itself.
    while (!rel.empty() && rel.front() == '/') rel.remove_prefix(1);
    const std::string path = rel.empty() ? std::string(".") : std::string(rel);
    open_how how{};
    how.flags = static_cast<__u64>(flags | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    // EAGAIN: a rename somewhere raced a ".." walk; the kernel asks to retry.
    for (int attempt = 0; attempt < 3; ++attempt) {
        const long fd = ::syscall(SYS_openat2, root_fd_, path.c_str(), &how, sizeof how);
        if (fd >= 0) return static_cast<int>(fd);
        if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP || errno == EACCES || errno == ENAMETOOLONG)
            return -1;
        if (errno != EAGAIN) break;  // ENOSYS, EINVAL (no such flag), E2BIG, ...
    }
    return -2;
}

std::string Sysfs::absolute(std::string_view rel) const {
    std::string out = root_ == "/" ? std::string() : root_;
    out += '/';
    out += rel;
    return out;
}

std::optional<std::string> Sysfs::relative_path_of(int fd) const {
    const auto path = path_of_fd(fd);
    if (path && *path == (root_real_.empty() ? "/" : root_real_)) return std::string();
    if (path && path->size() > root_real_.size() + 1 && path->compare(0, root_real_.size(), root_real_) == 0 &&
        (*path)[root_real_.size()] == '/')
        return path->substr(root_real_.size() + 1);
    return std::nullopt;  // a name outside the root's (a bind mount seen elsewhere)
}

std::optional<std::string> Sysfs::resolve(std::string_view rel) const {
    const int fd = open_in_root(rel, O_PATH);
    if (fd == -1) return std::nullopt;
    if (fd >= 0) {
        auto path = relative_path_of(fd);
        ::close(fd);
        if (path) return path;
    }
    return resolve_by_component(rel);
}

Sysfs::Dir::~Dir() {
    if (fd >= 0) ::close(fd);
}

std::optional<Sysfs::Dir> Sysfs::open_dir(std::string_view rel) const {
    const int fd = open_in_root(rel, O_PATH);
    if (fd == -1) return std::nullopt;
    if (fd >= 0) {
        if (auto path = relative_path_of(fd)) return Dir(std::move(*path), fd);
        ::close(fd);
    }
    auto path = resolve_by_component(rel);
    if (!path) return std::nullopt;
    return Dir(std::move(*path), -1);
}

int Sysfs::open_beneath(const Dir& dir, std::string_view rel, int flags) const {
    if (dir.fd < 0) return -2;
    const std::string path(rel);
    open_how how{};
    how.flags = static_cast<__u64>(flags | O_CLOEXEC);
    // No symlink on the way: then the walk from `dir` is the walk from the
    // root (dir is resolved), only shorter. A symlink: the root's rules.
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    const long fd = ::syscall(SYS_openat2, dir.fd, path.c_str(), &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    if (errno == ENOENT || errno == ENOTDIR) return -1;
    return -2;
}

std::optional<std::string> Sysfs::read_at(const Dir& dir, std::string_view rel) const {
    const int fd = open_beneath(dir, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (fd == -1) return std::nullopt;
    if (fd == -2) return read(dir.path + "/" + std::string(rel));
    return read_attribute(fd);
}

std::vector<std::string> Sysfs::list_at(const Dir& dir, std::string_view rel) const {
    const int fd = open_beneath(dir, rel, O_RDONLY | O_DIRECTORY);
    if (fd == -1) return {};
    if (fd == -2) return list(dir.path + "/" + std::string(rel));
    return list_fd(fd);
}

std::optional<std::string> Sysfs::link_basename_at(const Dir& dir, std::string_view rel) const {
    if (dir.fd < 0 || rel.find('/') != std::string_view::npos) return link_basename(dir.path + "/" + std::string(rel));
    const auto target = link_target_at(dir, rel);
    if (!target) return std::nullopt;
    return basename_of(*target);
}

std::optional<std::string> Sysfs::link_target_at(const Dir& dir, std::string_view name) const {
    if (dir.fd < 0 || name.find('/') != std::string_view::npos)
        return read_link(absolute(dir.path + "/" + std::string(name)));
    char buf[4096];
    const ssize_t n = ::readlinkat(dir.fd, std::string(name).c_str(), buf, sizeof buf);
    if (n < 0 || n == static_cast<ssize_t>(sizeof buf)) return std::nullopt;
    return std::string(buf, static_cast<size_t>(n));
}

std::optional<Sysfs::Dir> Sysfs::open_link_at(const Dir& dir, std::string_view name) const {
    if (dir.fd < 0 || root_fd_ < 0 || name.find('/') != std::string_view::npos)
        return open_dir(dir.path + "/" + std::string(name));
    const auto target = link_target_at(dir, name);
    if (!target) return errno == ENOENT ? std::nullopt : open_dir(dir.path + "/" + std::string(name));
    return open_link_target(dir, name, *target);
}

std::optional<Sysfs::Dir> Sysfs::open_link_target(const Dir& dir, std::string_view name, std::string_view t) const {
    const auto whole = [&] { return open_dir(dir.path + "/" + std::string(name)); };
    if (dir.fd < 0 || root_fd_ < 0) return whole();
    // "../X": dir.path has no symlink, ".." or "." in it (it is resolved),
    // so its parent is what the path says, and X is the rest when it is no
    // symlink either, which RESOLVE_NO_SYMLINKS makes the kernel check.
    const auto sibling = t.substr(std::min<size_t>(3, t.size()));
    if (t.substr(0, 3) != "../" || sibling.empty() || sibling == "." || sibling == ".." ||
        sibling.find('/') != std::string_view::npos)
        return whole();
    const auto slash = dir.path.rfind('/');
    std::string path = slash == std::string::npos ? std::string() : dir.path.substr(0, slash + 1);
    path += sibling;
    open_how how{};
    how.flags = static_cast<__u64>(O_PATH | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    const long fd = ::syscall(SYS_openat2, root_fd_, path.c_str(), &how, sizeof how);
    if (fd >= 0) return Dir(std::move(path), static_cast<int>(fd));
    return whole();  // a symlink on the way (ELOOP), a dangling link (ENOENT): the general rules say
}

std::optional<std::string> Sysfs::resolve_by_component(std::string_view rel) const {
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
    // O_NONBLOCK and the type check: a FIFO in a (fake) tree must not hang
    // a hook. A sysfs attribute is at most a page; a runaway file is cut.
    constexpr int kFlags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
    int fd = open_in_root(rel, kFlags);
    if (fd == -1) return std::nullopt;
    if (fd == -2) {
        const auto resolved = resolve_by_component(rel);
        if (!resolved) return std::nullopt;
        fd = ::open(absolute(*resolved).c_str(), kFlags | O_NOFOLLOW);
    }
    if (fd < 0) return std::nullopt;
    return read_attribute(fd);
}

namespace {
// The content of the attribute open (O_NONBLOCK) at `fd`, trimmed; closes
// `fd`. A scan reads thousands, so each costs one read: sysfs hands over an
// attribute's value (at most a page) in one read, and a regular file gives
// what it has, so a read that does not fill the buffer met the end. The
// type is asked only of a file that reads as empty: a directory fails the
// read (EISDIR), and a FIFO, opened without blocking, reads as empty, which
// is not its content. (common/fd_io reads other files.)
std::optional<std::string> read_attribute(int fd) {
    constexpr size_t kMaxAttributeBytes = 65536;
    std::string out;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            ::close(fd);
            return std::nullopt;
        }
        if (n == 0 && out.empty()) {
            struct stat st{};
            if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
                ::close(fd);
                return std::nullopt;
            }
        }
        out.append(buf, static_cast<size_t>(n));
        if (n < static_cast<ssize_t>(sizeof buf) || out.size() >= kMaxAttributeBytes) break;
    }
    ::close(fd);
    return std::string(trim(out));
}
}  // namespace

std::optional<std::string> Sysfs::link_basename(std::string_view rel) const {
    const auto target = read_link(absolute(rel));
    if (!target) return std::nullopt;
    return basename_of(*target);
}

std::vector<std::string> Sysfs::list(std::string_view rel) const {
    std::vector<std::string> names;
    int fd = open_in_root(rel, O_RDONLY | O_DIRECTORY);
    if (fd == -1) return names;
    if (fd == -2) {
        const auto resolved = resolve_by_component(rel);
        if (!resolved) return names;
        fd = ::open(absolute(*resolved).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) return names;
    }
    return list_fd(fd);
}

namespace {
// The names in the directory open at `fd`, sorted; closes `fd`.
std::vector<std::string> list_fd(int fd) {
    std::vector<std::string> names;
    // getdents64 directly: readdir's DIR costs an fcntl and an allocation,
    // once per VF in a full scan.
    for_each_name(fd, [&names](std::string_view name) { names.emplace_back(name); });
    ::close(fd);
    std::sort(names.begin(), names.end());
    return names;
}
}  // namespace

bool Sysfs::exists(std::string_view rel) const {
    const int fd = open_in_root(rel, O_PATH);
    if (fd >= 0) ::close(fd);
    if (fd != -2) return fd >= 0;
    return resolve_by_component(rel).has_value();
}

namespace {
// The target of virtfn<index> of `pf`, read by its path (where the PF's
// directory is not held open, or to describe a VF that is missing).
std::optional<std::string> virtfn_target_by_path(const Sysfs& sysfs, const PfInfo& pf, unsigned index) {
    return read_link(cat(sysfs.root(), "/", pf.device_dir, "/virtfn", index));
}
}  // namespace

bool is_assignment_driver(std::string_view driver) {
    return driver == "vfio-pci" || driver == "pci-stub";
}

std::optional<PfInfo> Inventory::pf(const std::string& name, Detail detail) const {
    // `name` was validated as an interface name by the caller's parser, but a
    // slash here would let a path escape class/net: refuse it outright.
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") return std::nullopt;
    // sriov_totalvfs first: of a host's net devices (with every VF bound to
    // a network driver, thousands) only PFs have it, and one read says so.
    const auto total = sysfs_.read("class/net/" + name + "/device/sriov_totalvfs");
    if (!total) return std::nullopt;
    auto dir = sysfs_.open_dir("class/net/" + name + "/device");
    if (!dir) return std::nullopt;
    PfInfo info;
    info.name = name;
    info.device_dir = dir->path;
    info.pci = PciAddress::parse(basename_of(dir->path));
    info.dir = std::make_shared<const Sysfs::Dir>(std::move(*dir));
    if (detail == Detail::full) info.operstate = sysfs_.read("class/net/" + name + "/operstate").value_or("unknown");
    // The kernel writes both as unsigned decimals; anything else (a "-1"
    // that would make billions of VF indexes, a word that would read as 0)
    // makes the PF unusable, said with the value, rather than guessed at.
    const auto total_vfs = parse_count(*total);
    if (!total_vfs) {
        info.problem = cat("sriov_totalvfs is ", shown(*total), ", not a number from 0 to ", kMaxVfsPerPf);
        return info;
    }
    info.total_vfs = *total_vfs;
    const auto num = sysfs_.read_at(*info.dir, "sriov_numvfs");
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
    const auto link = cat("virtfn", index);
    const auto name = pf.dir ? sysfs_.link_basename_at(*pf.dir, link) : sysfs_.link_basename(pf.device_dir + "/" + link);
    if (!name) return std::nullopt;
    return PciAddress::parse(*name);
}

std::optional<VfInfo> Inventory::vf(const PfInfo& pf, unsigned index, Detail detail) const {
    const auto link = cat("virtfn", index);
    const auto dir = pf.dir ? sysfs_.open_link_at(*pf.dir, link) : sysfs_.open_dir(pf.device_dir + "/" + link);
    if (!dir) return std::nullopt;
    return read_vf(pf, index, *dir, detail, nullptr);
}

std::optional<VfInfo> Inventory::read_vf(const PfInfo& pf, unsigned index, const Sysfs::Dir& dir, Detail detail,
                                         const std::string* netdev) const {
    const auto pci = PciAddress::parse(basename_of(dir.path));
    if (!pci) return std::nullopt;
    VfInfo vf;
    vf.pci = *pci;
    vf.pf = pf.name;
    vf.index = index;
    vf.device_dir = dir.path;
    vf.driver = sysfs_.link_basename_at(dir, "driver").value_or("");
    // A VF given to a guest's driver has no net device: nothing more for a choice.
    if (detail == Detail::full || !is_assignment_driver(vf.driver)) {
        if (netdev) {
            vf.netdev = *netdev;
        } else if (const auto netdevs = sysfs_.list_at(dir, "net"); !netdevs.empty()) {
            vf.netdev = netdevs.front();
        }
        if (!vf.netdev.empty())
            vf.netdev_state = sysfs_.read_at(dir, "net/" + vf.netdev + "/operstate").value_or("unknown");
    }
    if (detail == Detail::usage) return vf;
    vf.numa_node = parse_int(sysfs_.read_at(dir, "numa_node").value_or("-1")).value_or(-1);
    if (const auto group = sysfs_.link_basename_at(dir, "iommu_group")) {
        if (const auto n = parse_int(*group); n && *n >= 0) vf.iommu_group = static_cast<unsigned>(*n);
    }
    return vf;
}

std::vector<VfInfo> Inventory::vfs(const PfInfo& pf, std::vector<std::string>* missing) const {
    std::vector<VfInfo> out;
    for (unsigned i = 0; i < pf.num_vfs; ++i) {
        if (auto info = vf(pf, i)) {
            out.push_back(std::move(*info));
        } else if (missing) {
            missing->push_back(describe_missing(i, virtfn_target_by_path(sysfs_, pf, i)));
        }
    }
    return out;
}

struct Inventory::Discovery {
    std::vector<PfInfo> pfs;
    // For each PF, the target of each of its virtfnN links (nullopt: none).
    std::vector<std::vector<std::optional<std::string>>> virtfns;
    // The net device of each device directory, as class/net's links spell it.
    std::map<std::string, std::string> netdev_of;
};

Inventory::Discovery Inventory::discover() const {
    Discovery out;
    const auto net = sysfs_.open_dir("class/net");
    // Devices that are VFs of the PFs found so far: their net devices (in
    // class/net's order, after the PF's, as the kernel names them) are not
    // asked for sriov_totalvfs, which costs a failed lookup through two
    // symlinks each, thousands of times on a host whose VFs all have one.
    std::set<std::string> vf_dirs;
    for (const auto& name : sysfs_.list("class/net")) {
        std::optional<std::string> device;
        if (net && net->fd >= 0) {
            // "../../devices/<...>/<device>/net/<name>"
            const auto target = sysfs_.link_target_at(*net, name);
            const auto netdev_dir = target ? follow_lexically(net->path, *target) : std::nullopt;
            const auto suffix = "/net/" + name;
            if (netdev_dir && netdev_dir->size() > suffix.size() &&
                netdev_dir->compare(netdev_dir->size() - suffix.size(), suffix.size(), suffix) == 0)
                device = netdev_dir->substr(0, netdev_dir->size() - suffix.size());
        }
        if (device) out.netdev_of.emplace(*device, name);
        if (device && vf_dirs.count(*device)) continue;
        auto info = pf(name);
        if (!info) continue;
        std::vector<std::optional<std::string>> targets;
        for (unsigned i = 0; info->dir && i < info->num_vfs; ++i) {
            auto target = sysfs_.link_target_at(*info->dir, cat("virtfn", i));
            if (target) {
                if (auto dir = follow_lexically(info->device_dir, *target)) vf_dirs.insert(std::move(*dir));
            }
            targets.push_back(std::move(target));
        }
        out.pfs.push_back(std::move(*info));
        out.virtfns.push_back(std::move(targets));
    }
    return out;
}

std::vector<PfInfo> Inventory::all_pfs() const { return discover().pfs; }

std::vector<Inventory::PfScan> Inventory::scan() const {
    const auto found = discover();
    std::vector<PfScan> out(found.pfs.size());
    // Work in pieces of at most 64 VFs, so that one PF of thousands of VFs
    // is shared out too; each piece's VFs and notes are kept apart and
    // joined in order afterwards.
    struct Piece {
        size_t pf;
        unsigned begin, end;
        std::vector<VfInfo> vfs;
        std::vector<std::string> missing;
    };
    std::vector<Piece> pieces;
    for (size_t p = 0; p < found.pfs.size(); ++p) {
        out[p].pf = found.pfs[p];
        for (unsigned i = 0; i < found.pfs[p].num_vfs; i += 64)
            pieces.push_back(Piece{p, i, std::min(found.pfs[p].num_vfs, i + 64), {}, {}});
    }
    const auto read_piece = [&](Piece& piece) {
        const auto& pf = found.pfs[piece.pf];
        const auto& targets = found.virtfns[piece.pf];
        for (unsigned i = piece.begin; i < piece.end; ++i) {
            const auto link = cat("virtfn", i);
            const bool known = pf.dir && i < targets.size();
            const auto dir = [&]() -> std::optional<Sysfs::Dir> {
                if (!known) return sysfs_.open_dir(pf.device_dir + "/" + link);
                if (!targets[i]) return std::nullopt;
                return sysfs_.open_link_target(*pf.dir, link, *targets[i]);
            }();
            std::optional<VfInfo> vf;
            if (dir) {
                const auto netdev = found.netdev_of.find(dir->path);
                vf = read_vf(pf, i, *dir, Detail::full, netdev == found.netdev_of.end() ? nullptr : &netdev->second);
            }
            if (vf) {
                piece.vfs.push_back(std::move(*vf));
            } else {
                piece.missing.push_back(describe_missing(i, known ? targets[i] : virtfn_target_by_path(sysfs_, pf, i)));
            }
        }
    };
    // Each VF costs a dozen system calls that mostly wait on nothing but
    // the kernel: a few threads (the CPUs, at most 8) share the pieces.
    std::atomic<size_t> next{0};
    std::exception_ptr failure;
    std::mutex failure_lock;
    const auto work = [&] {
        try {
            for (size_t k; (k = next++) < pieces.size();) read_piece(pieces[k]);
        } catch (...) {
            const std::lock_guard guard(failure_lock);
            if (!failure) failure = std::current_exception();
            next = pieces.size();
        }
    };
    const size_t workers =
        std::min<size_t>({static_cast<size_t>(std::max(1u, std::thread::hardware_concurrency())), pieces.size(), 8});
    std::vector<std::thread> threads;
    try {
        for (size_t w = 1; w < workers; ++w) threads.emplace_back(work);
    } catch (const std::system_error&) {
        // No more threads to be had: those there are share the work.
    }
    work();
    for (auto& t : threads) t.join();
    if (failure) std::rethrow_exception(failure);
    for (auto& piece : pieces) {
        auto& s = out[piece.pf];
        std::move(piece.vfs.begin(), piece.vfs.end(), std::back_inserter(s.vfs));
        std::move(piece.missing.begin(), piece.missing.end(), std::back_inserter(s.missing));
    }
    return out;
}

std::optional<Inventory::VfLocation> Inventory::locate_vf(const PciAddress& pci) const {
    // discover() has read the virtfn links already, where it could.
    auto found = discover();
    for (size_t p = 0; p < found.pfs.size(); ++p) {
        auto& pf = found.pfs[p];
        const auto& targets = found.virtfns[p];
        for (unsigned i = 0; i < pf.num_vfs; ++i) {
            const auto address = i < targets.size()
                                     ? (targets[i] ? PciAddress::parse(basename_of(*targets[i])) : std::nullopt)
                                     : vf_address(pf, i);
            if (address == pci) return VfLocation{std::move(pf), i};
        }
    }
    return std::nullopt;
}

}  // namespace sriovpt
