// Read-only access to a sysfs tree under a configurable root
// (docs/design.md, "sysfs").
//
// The kernel's symlinks are relative ("../../devices/..."); they are resolved
// component by component inside the root, so a fake tree in a test directory
// behaves like /sys and no path can climb out of the root.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pci.hpp"

namespace sriovpt {

class Sysfs {
public:
    // How symlinks are resolved inside the root. `kernel`: by openat2(2)
    // with RESOLVE_IN_ROOT, one system call per path, which has the same
    // rules as ours (".." stops at the root, an absolute target starts from
    // it, at most 40 links); where the kernel lacks it (before Linux 5.6:
    // EL8's 4.18) or cannot say, component by component as `by_component`
    // always does.
    enum class Resolution { kernel, by_component };

    explicit Sysfs(std::string root, Resolution how = Resolution::kernel);
    ~Sysfs();
    Sysfs(const Sysfs&) = delete;
    Sysfs& operator=(const Sysfs&) = delete;

    const std::string& root() const { return root_; }

    // `rel` (relative to the root) with every symlink resolved inside the root:
    // a path relative to the root without "." or ".." or links. nullopt when a
    // component does not exist or the links loop.
    std::optional<std::string> resolve(std::string_view rel) const;

    // Contents of a file (at most 64 KiB), trimmed; nullopt if it cannot be
    // opened or read (a directory), or reads as empty and is no regular file
    // (a FIFO: never opened blocking).
    std::optional<std::string> read(std::string_view rel) const;

    // Last component of a symlink's target ("driver" -> "iavf"); nullopt if
    // `rel` is not a symlink.
    std::optional<std::string> link_basename(std::string_view rel) const;

    // Names in a directory (without "." and ".."), sorted; empty if missing.
    std::vector<std::string> list(std::string_view rel) const;

    bool exists(std::string_view rel) const;

    // A directory resolved as resolve() does and held open, so that what is
    // under it is read with a short walk (a full scan reads five things of
    // each of thousands of VFs). fd is -1 when only the path is known.
    struct Dir {
        std::string path;
        int fd = -1;
        Dir(std::string p, int f) : path(std::move(p)), fd(f) {}
        Dir(Dir&& other) noexcept : path(std::move(other.path)), fd(other.fd) { other.fd = -1; }
        Dir& operator=(Dir&&) = delete;
        ~Dir();
    };
    std::optional<Dir> open_dir(std::string_view rel) const;

    // What read(), list() and link_basename() say of dir.path + "/" + rel:
    // through dir.fd when no component of `rel` is a symlink, else by the
    // whole path from the root.
    std::optional<std::string> read_at(const Dir& dir, std::string_view rel) const;
    std::vector<std::string> list_at(const Dir& dir, std::string_view rel) const;
    std::optional<std::string> link_basename_at(const Dir& dir, std::string_view rel) const;
    // The target of the symlink `name` (one component) in `dir`, as written.
    std::optional<std::string> link_target_at(const Dir& dir, std::string_view name) const;

    // The directory the symlink `name` in `dir` leads to, held open, as
    // open_dir(dir.path + "/" + name) would give it. The kernel's virtfnN
    // links read "../<VF address>": the VF's directory is then the
    // sibling's, opened in one call with no symlink on the way, and no
    // question to /proc for its name.
    std::optional<Dir> open_link_at(const Dir& dir, std::string_view name) const;
    // The same for a link whose `target` was read already.
    std::optional<Dir> open_link_target(const Dir& dir, std::string_view name, std::string_view target) const;

private:
    std::string absolute(std::string_view rel) const;
    std::optional<std::string> resolve_by_component(std::string_view rel) const;
    // `rel` opened by the kernel inside the root with `flags`; -1 (errno
    // set) when it does not exist, -2 when the kernel cannot resolve it this
    // way (then resolve by component).
    int open_in_root(std::string_view rel, int flags) const;
    // `rel` under `dir` opened with `flags` by a walk that meets no symlink;
    // -1 when it does not exist, -2 when that walk cannot say.
    int open_beneath(const Dir& dir, std::string_view rel, int flags) const;
    // The path of `fd` relative to the root, when the kernel can say.
    std::optional<std::string> relative_path_of(int fd) const;

    std::string root_;
    int root_fd_ = -1;          // O_PATH, for openat2; -1: resolve by component
    std::string root_real_;     // the root as the kernel names it (/proc/self/fd)
};

// One VF as the hooks see it.
struct VfInfo {
    PciAddress pci;
    std::string pf;
    unsigned index = 0;           // N of the PF's virtfnN
    std::string device_dir;       // relative to the sysfs root, resolved
    std::string driver;           // empty when no driver is bound
    std::string netdev;           // host net device while bound to a network driver
    std::string netdev_state;     // its operstate ("up", "down", ...)
    int numa_node = -1;           // -1 = unknown
    std::optional<unsigned> iommu_group;
};

// The most VFs a PF can have: TotalVFs is a 16-bit field of the SR-IOV
// capability (PCIe Base Specification, SR-IOV Extended Capability).
inline constexpr unsigned kMaxVfsPerPf = 65535;

// A PF as found from class/net/<name>.
struct PfInfo {
    std::string name;
    std::string device_dir;       // relative to the sysfs root, resolved
    std::shared_ptr<const Sysfs::Dir> dir;  // device_dir held open, when the kernel resolves
    std::optional<PciAddress> pci;
    unsigned total_vfs = 0;
    unsigned num_vfs = 0;
    std::string operstate;        // empty unless read (Inventory::Detail::full)
    // Why the PF cannot be used, naming the file and its value, when
    // sriov_totalvfs or sriov_numvfs is not a number in range (then
    // num_vfs is 0); empty otherwise.
    std::string problem;
};

// Drivers that mean "assigned to a guest": a free VF is never bound to one.
bool is_assignment_driver(std::string_view driver);

// The SR-IOV view of a sysfs tree. Cheap queries first: finding a free VF
// reads only the VFs it considers, not the whole host.
class Inventory {
public:
    explicit Inventory(const Sysfs& sysfs) : sysfs_(sysfs) {}

    // How much a query reads. `usage`: what choosing a VF needs (a PF's VF
    // counts; a VF's driver, net device and its state), for the hooks;
    // `full`: also what status and check show (the PF's link state, a VF's
    // NUMA node and IOMMU group).
    enum class Detail { usage, full };

    // The PF behind class/net/<name>; nullopt if there is no such net device
    // or it is not an SR-IOV PF (no sriov_totalvfs).
    std::optional<PfInfo> pf(const std::string& name, Detail detail = Detail::full) const;

    // PCI address of the PF's VF number `index` (virtfn<index>), nullopt if absent.
    std::optional<PciAddress> vf_address(const PfInfo& pf, unsigned index) const;

    // VF `index` of `pf`, as much as `detail` says; nullopt if absent.
    std::optional<VfInfo> vf(const PfInfo& pf, unsigned index, Detail detail = Detail::full) const;

    // Every SR-IOV PF of the host, sorted by name.
    std::vector<PfInfo> all_pfs() const;

    // Every VF of a PF, by index. A VF whose virtfn link is missing or
    // dangling is left out and, when `missing` is given, described there
    // ("virtfn3 -> ../0000:3b:02.3, which does not exist").
    std::vector<VfInfo> vfs(const PfInfo& pf, std::vector<std::string>* missing = nullptr) const;

    // The PF and VF index of the VF at `pci`, looked for among every PF's
    // virtfn links; nullopt when it is no VF of this host. Reads every PF:
    // for the arrival of a migrating VM, never for a start.
    struct VfLocation {
        PfInfo pf;
        unsigned index = 0;
    };
    std::optional<VfLocation> locate_vf(const PciAddress& pci) const;

    // Every SR-IOV PF of the host with all its VFs (Detail::full), and the
    // VFs sysfs lacks described as vfs() describes them: what status shows.
    // Made for thousands of VFs: one pass over class/net's links learns
    // each device's net device and which net devices belong to VFs (never
    // asked whether they are PFs), and the VFs are read by several threads.
    struct PfScan {
        PfInfo pf;
        std::vector<VfInfo> vfs;
        std::vector<std::string> missing;
    };
    std::vector<PfScan> scan() const;

private:
    struct Discovery;
    Discovery discover() const;
    // VF `index` of `pf`, whose directory is `dir`; `netdev`, when known,
    // is its net device (else net/ is listed).
    std::optional<VfInfo> read_vf(const PfInfo& pf, unsigned index, const Sysfs::Dir& dir, Detail detail,
                                  const std::string* netdev) const;

    const Sysfs& sysfs_;
};

}  // namespace sriovpt
