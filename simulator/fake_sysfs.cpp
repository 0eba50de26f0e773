#include "fake_sysfs.hpp"

#include <filesystem>
#include <fstream>
#include <istream>
#include <sstream>

#include "error.hpp"
#include "text.hpp"

namespace fs = std::filesystem;

namespace sriovpt::sim {

namespace {

constexpr const char* kBusDir = "devices/pci0000:00";

void write_text(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::trunc);
    out << text << "\n";
    if (!out) fail("cannot write ", path.string());
}

void symlink_to(const fs::path& link, const std::string& target) {
    fs::create_directories(link.parent_path());
    std::error_code ec;
    fs::remove(link, ec);
    fs::create_directory_symlink(target, link);
}

bool is_network_driver(const std::string& driver) {
    return !driver.empty() && driver != "vfio-pci" && driver != "pci-stub";
}

// VF k of the PF at bus B, function F sits at routing id
// ((B + 2F) << 8) + 0x10 + k: 0000:3b:02.0, 0000:3b:02.1, ... for function 0,
// 0000:3d:02.0, ... for function 1. Invented, but unique for up to 496 VFs
// per PF when PFs are two buses apart, and shaped like real addresses.
PciAddress vf_address_of(const PciAddress& pf, unsigned index) {
    const unsigned rid = ((pf.bus + 2 * pf.function) << 8) + 0x10 + index;
    return PciAddress{pf.domain, (rid >> 8) & 0xff, (rid >> 3) & 0x1f, rid & 7};
}

}  // namespace

FakeSysfs::FakeSysfs(std::string root) : root_(std::move(root)) {
    fs::create_directories(root_ + "/class/net");
    fs::create_directories(root_ + "/bus/pci/drivers");
    fs::create_directories(root_ + "/kernel/iommu_groups");
}

std::string FakeSysfs::device_dir(const PciAddress& pci) const { return std::string(kBusDir) + "/" + pci.to_string(); }

const FakeSysfs::PfState& FakeSysfs::pf_state(const std::string& pf) const {
    const auto it = pfs_.find(pf);
    if (it == pfs_.end()) fail("no PF named ", pf, " in the fake host");
    return it->second;
}

std::string FakeSysfs::vf_ifname(const std::string& pf, unsigned index) const { return cat(pf, "v", index); }

PciAddress FakeSysfs::vf_pci(const std::string& pf, unsigned index) const {
    return vf_address_of(pf_state(pf).pci, index);
}

void FakeSysfs::add_plain_netdev(const std::string& name, const std::string& pci_text) {
    const auto pci = PciAddress::parse(pci_text);
    if (!pci) fail("'", pci_text, "' is not a PCI address");
    const fs::path root(root_);
    const auto dir = device_dir(*pci);
    write_text(root / dir / "net" / name / "operstate", "up");
    write_text(root / dir / "numa_node", "0");
    symlink_to(root / dir / "net" / name / "device", "../../../" + pci->to_string());
    symlink_to(root / "class/net" / name, "../../" + dir + "/net/" + name);
}

void FakeSysfs::add_pf(const FakePf& spec) {
    const auto pci = PciAddress::parse(spec.pci);
    if (!pci) fail("'", spec.pci, "' is not a PCI address");
    if (pfs_.count(spec.name)) fail("PF ", spec.name, " added twice");
    pfs_[spec.name] = PfState{spec, *pci};
    const fs::path root(root_);
    const auto dir = device_dir(*pci);
    write_text(root / dir / "net" / spec.name / "operstate", spec.operstate);
    symlink_to(root / dir / "net" / spec.name / "device", "../../../" + pci->to_string());
    symlink_to(root / "class/net" / spec.name, "../../" + dir + "/net/" + spec.name);
    const unsigned total = spec.total_vfs.value_or(std::max(spec.num_vfs, 8u));
    write_text(root / dir / "sriov_totalvfs", std::to_string(total));
    write_text(root / dir / "sriov_numvfs", std::to_string(spec.num_vfs));
    write_text(root / dir / "numa_node", std::to_string(spec.numa_node));
    for (unsigned i = 0; i < spec.num_vfs; ++i) {
        const auto vf = vf_address_of(*pci, i);
        const auto vf_dir = device_dir(vf);
        if (fs::exists(root / vf_dir)) fail("VF ", i, " of ", spec.name, " would be at ", vf.to_string(), ", which exists");
        symlink_to(root / dir / cat("virtfn", i), "../" + vf.to_string());
        symlink_to(root / vf_dir / "physfn", "../" + pci->to_string());
        write_text(root / vf_dir / "numa_node", std::to_string(spec.numa_node));
        const auto group = next_iommu_group_++;
        fs::create_directories(root / "kernel/iommu_groups" / std::to_string(group) / "devices");
        symlink_to(root / vf_dir / "iommu_group", cat("../../../kernel/iommu_groups/", group));
        set_vf_driver(spec.name, i, spec.vf_driver);
    }
}

void FakeSysfs::set_vf_driver(const std::string& pf, unsigned index, const std::string& driver) {
    const fs::path root(root_);
    const auto vf = vf_pci(pf, index);
    const auto vf_dir = root / device_dir(vf);
    std::error_code ec;
    fs::remove(vf_dir / "driver", ec);
    fs::remove_all(vf_dir / "net", ec);
    fs::remove(root / "class/net" / vf_ifname(pf, index), ec);
    if (driver.empty()) return;
    fs::create_directories(root / "bus/pci/drivers" / driver);
    symlink_to(vf_dir / "driver", "../../../bus/pci/drivers/" + driver);
    if (is_network_driver(driver)) {
        const auto ifname = vf_ifname(pf, index);
        write_text(vf_dir / "net" / ifname / "operstate", "down");
        symlink_to(vf_dir / "net" / ifname / "device", "../../../" + vf.to_string());
        symlink_to(root / "class/net" / ifname, "../../" + device_dir(vf) + "/net/" + ifname);
    }
}

void FakeSysfs::set_vf_netdev_state(const std::string& pf, unsigned index, const std::string& state) {
    const auto path = fs::path(root_) / device_dir(vf_pci(pf, index)) / "net" / vf_ifname(pf, index) / "operstate";
    if (!fs::exists(path)) fail("VF ", index, " of ", pf, " has no host netdev (driver not a network driver)");
    write_text(path, state);
}

void FakeSysfs::set_vf_numa_node(const std::string& pf, unsigned index, int node) {
    write_text(fs::path(root_) / device_dir(vf_pci(pf, index)) / "numa_node", std::to_string(node));
}

void FakeSysfs::add_numa_node(unsigned node, const std::string& cpulist) {
    write_text(fs::path(root_) / "devices/system/node" / cat("node", node) / "cpulist", cpulist);
}

void FakeSysfs::apply_spec(std::istream& in) {
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
        ++number;
        with_context(cat("line ", number), [&] {
            if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
            std::istringstream words(line);
            std::vector<std::string> w;
            for (std::string word; words >> word;) w.push_back(word);
            if (w.empty()) return;
            std::map<std::string, std::string> opts;
            size_t positional = w[0] == "pf" ? 4 : w[0] == "vf" ? 3 : w[0] == "netdev" ? 3 : w[0] == "node" ? 3 : 0;
            if (positional == 0) fail("unknown entry '", w[0], "' (pf, vf, netdev or node)");
            if (w.size() < positional) fail("'", w[0], "' needs ", positional - 1, " values");
            for (size_t i = positional; i < w.size(); ++i) {
                const auto eq = w[i].find('=');
                if (eq == std::string::npos) fail("'", w[i], "' is not key=value");
                opts[w[i].substr(0, eq)] = w[i].substr(eq + 1);
            }
            const auto number_of = [](const std::string& s) {
                const auto n = parse_decimal(s);
                if (!n) fail("'", s, "' is not a number");
                return static_cast<unsigned>(*n);
            };
            const auto driver = [&](const std::string& d) { return d == "none" ? std::string() : d; };
            if (w[0] == "netdev") {
                add_plain_netdev(w[1], w[2]);
            } else if (w[0] == "node") {
                add_numa_node(number_of(w[1]), w[2]);
            } else if (w[0] == "pf") {
                FakePf pf;
                pf.name = w[1];
                pf.pci = w[2];
                pf.num_vfs = number_of(w[3]);
                if (opts.count("total")) pf.total_vfs = number_of(opts["total"]);
                if (opts.count("numa")) pf.numa_node = std::stoi(opts["numa"]);
                if (opts.count("driver")) pf.vf_driver = driver(opts["driver"]);
                if (opts.count("link")) pf.operstate = opts["link"];
                add_pf(pf);
            } else {
                const auto index = number_of(w[2]);
                if (opts.count("driver")) set_vf_driver(w[1], index, driver(opts["driver"]));
                if (opts.count("netdev")) set_vf_netdev_state(w[1], index, opts["netdev"]);
                if (opts.count("numa")) set_vf_numa_node(w[1], index, std::stoi(opts["numa"]));
            }
        });
    }
}

}  // namespace sriovpt::sim
