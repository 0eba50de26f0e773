// Reading a sysfs tree: relative links resolved inside the root, the
// awkward cases (vfio-pci without net/, zero VFs, numa_node -1).
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "error.hpp"
#include "harness.hpp"
#include "sysfs.hpp"

namespace sriovpt {
namespace {

using sim::FakePf;

TEST(Sysfs, ResolvesRelativeLinksInsideTheRoot) {
    test::TempDir dir;
    sim::FakeSysfs fake(dir.path());
    fake.add_pf(FakePf{"ens1f0", "0000:3b:00.0", 2});
    Sysfs sysfs(dir.path());
    EXPECT_EQ(sysfs.resolve("class/net/ens1f0/device"), "devices/pci0000:00/0000:3b:00.0");
    EXPECT_EQ(sysfs.read("class/net/ens1f0/device/sriov_numvfs"), "2");
    // Links that point at / or climb above the root stay inside it.
    std::filesystem::create_directory_symlink("/etc", dir.path() + "/class/net/evil");
    EXPECT_FALSE(sysfs.read("class/net/evil/passwd"));
    std::filesystem::create_directory_symlink("../../../../../../../../etc", dir.path() + "/class/net/climb");
    EXPECT_FALSE(sysfs.read("class/net/climb/passwd"));
    EXPECT_FALSE(sysfs.resolve("class/net/nothing"));
}

// The kernel's resolution (openat2, RESOLVE_IN_ROOT) and ours, component
// by component, agree on every path, the hostile ones included.
void write_text_file(const std::string& path, const std::string& text) { test::write_text(path, text); }

TEST(Sysfs, KernelResolutionAgreesWithResolutionByComponent) {
    test::TempDir dir;
    sim::FakeSysfs fake(dir.path());
    fake.add_pf(FakePf{"ens1f0", "0000:3b:00.0", 2});
    fake.set_vf_driver("ens1f0", 1, "vfio-pci");
    const auto net = dir.path() + "/class/net/";
    std::filesystem::create_directory_symlink("/etc", net + "evil");
    std::filesystem::create_directory_symlink("../../../../../../../../etc", net + "climb");
    std::filesystem::create_directory_symlink("/devices/pci0000:00", net + "absolute");
    std::filesystem::create_symlink("loop2", net + "loop1");
    std::filesystem::create_symlink("loop1", net + "loop2");
    std::filesystem::create_symlink("nowhere", net + "dangling");
    std::filesystem::create_directory_symlink("../..", net + "up");
    const Sysfs kernel(dir.path());
    const Sysfs by_component(dir.path(), Sysfs::Resolution::by_component);
    const Sysfs trailing_slash(dir.path() + "/");
    for (const std::string path :
         {"class/net/ens1f0/device", "class/net/ens1f0/device/virtfn0", "class/net/ens1f0/device/virtfn1/driver",
          "class/net/ens1f0/device/sriov_numvfs", "class/net/ens1f0v0/device/physfn/sriov_totalvfs",
          "class/net/evil/passwd", "class/net/climb/passwd", "class/net/absolute/0000:3b:00.0/sriov_numvfs",
          "class/net/loop1", "class/net/loop1/x", "class/net/dangling", "class/net/up/class/net/ens1f0/operstate",
          "class/net/up/../../..", "..", "", "/", "//class//net/./ens1f0/device/", "class/net/nothing",
          "class/net/ens1f0/device/sriov_numvfs/x", "class/net/ens1f0/device/virtfn1/net"}) {
        SCOPED_TRACE(path);
        EXPECT_EQ(kernel.resolve(path), by_component.resolve(path));
        EXPECT_EQ(trailing_slash.resolve(path), by_component.resolve(path));
        EXPECT_EQ(kernel.read(path), by_component.read(path));
        EXPECT_EQ(kernel.exists(path), by_component.exists(path));
        EXPECT_EQ(kernel.list(path), by_component.list(path));
    }
    // A VF's attributes, read through its directory: the same, also where
    // one of them is a link (then read from the root).
    const auto vf0 = dir.path() + "/" + *by_component.resolve("class/net/ens1f0/device/virtfn0");
    std::filesystem::remove(vf0 + "/numa_node");
    write_text_file(dir.path() + "/numa-elsewhere", "1\n");
    std::filesystem::create_symlink("/numa-elsewhere", vf0 + "/numa_node");
    const auto describe = [](const Sysfs& sysfs) {
        const Inventory inventory(sysfs);
        std::string out;
        for (const auto& vf : inventory.vfs(*inventory.pf("ens1f0")))
            out += vf.pci.to_string() + " " + vf.device_dir + " " + vf.driver + " " + vf.netdev + " " +
                   vf.netdev_state + " " + std::to_string(vf.numa_node) + " " +
                   (vf.iommu_group ? std::to_string(*vf.iommu_group) : "-") + "\n";
        return out;
    };
    EXPECT_EQ(describe(kernel), describe(by_component));
    EXPECT_NE(describe(kernel).find(" 1 "), std::string::npos) << describe(kernel);
    EXPECT_EQ(kernel.resolve("class/net/up/class/net/ens1f0/operstate"),
              "devices/pci0000:00/0000:3b:00.0/net/ens1f0/operstate");
    EXPECT_EQ(kernel.resolve("class/net/up/../../.."), "") << "the root, however many '..'";
    EXPECT_FALSE(kernel.resolve("class/net/loop1"));
}

TEST(Inventory, DescribesPfsAndVfs) {
    test::TempDir dir;
    sim::FakeSysfs fake(dir.path());
    fake.add_pf(FakePf{"ens1f0", "0000:3b:00.0", 4, 64, 1, "iavf", "up"});
    fake.add_pf(FakePf{"ens2f0", "0000:af:00.0", 0, 64});
    fake.add_plain_netdev("eno1", "0000:01:00.0");
    fake.set_vf_driver("ens1f0", 1, "vfio-pci");
    fake.set_vf_driver("ens1f0", 2, "");
    fake.set_vf_netdev_state("ens1f0", 3, "up");
    fake.set_vf_numa_node("ens1f0", 3, -1);
    Sysfs sysfs(dir.path());
    Inventory inventory(sysfs);

    const auto pf = inventory.pf("ens1f0");
    ASSERT_TRUE(pf);
    EXPECT_EQ(pf->num_vfs, 4u);
    EXPECT_EQ(pf->total_vfs, 64u);
    EXPECT_EQ(pf->operstate, "up");
    EXPECT_EQ(pf->pci->to_string(), "0000:3b:00.0");
    EXPECT_FALSE(inventory.pf("eno1")) << "a NIC without SR-IOV is not a PF";
    EXPECT_FALSE(inventory.pf("nope"));
    EXPECT_FALSE(inventory.pf("../ens1f0"));
    EXPECT_EQ(inventory.pf("ens2f0")->num_vfs, 0u);
    EXPECT_TRUE(inventory.vfs(*inventory.pf("ens2f0")).empty());

    const auto vfs = inventory.vfs(*pf);
    ASSERT_EQ(vfs.size(), 4u);
    EXPECT_EQ(vfs[0].pci.to_string(), "0000:3b:02.0");
    EXPECT_EQ(vfs[0].driver, "iavf");
    EXPECT_EQ(vfs[0].netdev, "ens1f0v0");
    EXPECT_EQ(vfs[0].netdev_state, "down");
    EXPECT_EQ(vfs[0].numa_node, 1);
    EXPECT_TRUE(vfs[0].iommu_group);
    EXPECT_EQ(vfs[1].driver, "vfio-pci");
    EXPECT_EQ(vfs[1].netdev, "") << "vfio-pci has no net/";
    EXPECT_EQ(vfs[2].driver, "");
    EXPECT_EQ(vfs[3].netdev_state, "up");
    EXPECT_EQ(vfs[3].numa_node, -1);
    EXPECT_EQ(inventory.vf_address(*pf, 3), fake.vf_pci("ens1f0", 3));
    EXPECT_FALSE(inventory.vf_address(*pf, 4));
    EXPECT_EQ(inventory.all_pfs().size(), 2u);
}

// sriov_numvfs and sriov_totalvfs are unsigned decimals from the kernel;
// anything else makes the PF unusable, with the value named: never a guess
// (a "-1" read as 4294967295 VFs, a word read as 0).
TEST(Inventory, SriovCountsOutOfRangeMakeThePfUnusable) {
    test::TempDir dir;
    sim::FakeSysfs fake(dir.path());
    fake.add_pf(FakePf{"ens1f0", "0000:3b:00.0", 4});
    Sysfs sysfs(dir.path());
    Inventory inventory(sysfs);
    const auto pf_dir = dir.path() + "/devices/pci0000:00/0000:3b:00.0";
    const auto problem_with = [&](const std::string& numvfs, const std::string& totalvfs) {
        test::write_text(pf_dir + "/sriov_numvfs", numvfs);
        test::write_text(pf_dir + "/sriov_totalvfs", totalvfs);
        const auto pf = inventory.pf("ens1f0");
        if (!pf) return std::string("(no PF)");
        if (pf->problem.empty()) return "ok " + std::to_string(pf->num_vfs) + " of " + std::to_string(pf->total_vfs);
        EXPECT_EQ(pf->num_vfs, 0u) << "an unusable PF has no VF to look at";
        return pf->problem;
    };
    EXPECT_EQ(problem_with("4\n", "8\n"), "ok 4 of 8");
    EXPECT_EQ(problem_with("0\n", "8\n"), "ok 0 of 8");
    EXPECT_EQ(problem_with("8", "8"), "ok 8 of 8");
    EXPECT_EQ(problem_with("-1\n", "8\n"), "sriov_numvfs is '-1', not a number from 0 to 8 (sriov_totalvfs)");
    EXPECT_EQ(problem_with("abc\n", "8\n"), "sriov_numvfs is 'abc', not a number from 0 to 8 (sriov_totalvfs)");
    EXPECT_EQ(problem_with("9\n", "8\n"), "sriov_numvfs is '9', not a number from 0 to 8 (sriov_totalvfs)");
    EXPECT_EQ(problem_with("\n", "8\n"), "sriov_numvfs is '', not a number from 0 to 8 (sriov_totalvfs)");
    EXPECT_EQ(problem_with("04\n", "8\n"), "sriov_numvfs is '04', not a number from 0 to 8 (sriov_totalvfs)");
    EXPECT_EQ(problem_with("4\n", "-1\n"), "sriov_totalvfs is '-1', not a number from 0 to 65535");
    EXPECT_EQ(problem_with("4\n", "65536\n"), "sriov_totalvfs is '65536', not a number from 0 to 65535");
    EXPECT_EQ(problem_with("4\n", std::string(100, '9')),
              "sriov_totalvfs is '99999999999999999999999999999999...', not a number from 0 to 65535");
    EXPECT_EQ(problem_with("4\x01\n", "8"), "sriov_numvfs is '4?', not a number from 0 to 8 (sriov_totalvfs)");
    std::filesystem::remove(pf_dir + "/sriov_numvfs");
    EXPECT_EQ(inventory.pf("ens1f0")->problem, "sriov_numvfs cannot be read");
}

TEST(Inventory, VfsMissingFromSysfsAreDescribed) {
    test::TempDir dir;
    sim::FakeSysfs fake(dir.path());
    fake.add_pf(FakePf{"ens1f0", "0000:3b:00.0", 4});
    Sysfs sysfs(dir.path());
    Inventory inventory(sysfs);
    std::filesystem::remove_all(dir.path() + "/devices/pci0000:00/0000:3b:02.1");
    std::filesystem::remove(dir.path() + "/devices/pci0000:00/0000:3b:00.0/virtfn3");
    std::vector<std::string> missing;
    const auto vfs = inventory.vfs(*inventory.pf("ens1f0"), &missing);
    ASSERT_EQ(vfs.size(), 2u);
    EXPECT_EQ(vfs[0].index, 0u);
    EXPECT_EQ(vfs[1].index, 2u);
    EXPECT_EQ(missing, (std::vector<std::string>{"virtfn1 -> '../0000:3b:02.1', which does not exist",
                                                 "virtfn3 is missing"}));
}

// status reads the whole host with scan(): the same as asking PF by PF and
// VF by VF, whichever way paths are resolved, with missing VFs, VFs without
// a net device, and net devices whose names sort before their PF's.
TEST(Inventory, ScanReadsWhatVfByVfReads) {
    test::TempDir dir;
    sim::FakeSysfs fake(dir.path());
    fake.add_pf(FakePf{"ens1f0", "0000:3b:00.0", 70, 128, 1, "iavf", "up"});
    fake.add_pf(FakePf{"ens2f0", "0000:af:00.0", 3, 8});
    fake.add_pf(FakePf{"ens3f0", "0000:d8:00.0", 0, 8});
    fake.add_plain_netdev("eno1", "0000:01:00.0");
    fake.set_vf_driver("ens1f0", 1, "vfio-pci");
    fake.set_vf_driver("ens1f0", 2, "");
    fake.set_vf_netdev_state("ens1f0", 3, "up");
    fake.set_vf_numa_node("ens1f0", 65, -1);
    // A VF net device that class/net lists before its PF.
    const auto net = dir.path() + "/class/net/";
    const auto vf_net = dir.path() + "/devices/pci0000:00/0000:af:02.1/net/";
    std::filesystem::rename(vf_net + "ens2f0v1", vf_net + "aaa0");
    std::filesystem::remove(net + "ens2f0v1");
    std::filesystem::create_directory_symlink("../../devices/pci0000:00/0000:af:02.1/net/aaa0", net + "aaa0");
    std::filesystem::remove_all(dir.path() + "/devices/pci0000:00/0000:3b:02.5");
    std::filesystem::remove(dir.path() + "/devices/pci0000:00/0000:3b:00.0/virtfn69");
    const auto describe_vf = [](const VfInfo& vf) {
        return cat(vf.pf, " ", vf.index, " ", vf.pci.to_string(), " ", vf.device_dir, " ", vf.driver, " ", vf.netdev,
                   " ", vf.netdev_state, " ", vf.numa_node, " ", vf.iommu_group ? std::to_string(*vf.iommu_group) : "-",
                   "\n");
    };
    const auto describe_pf = [](const PfInfo& pf) {
        return cat("PF ", pf.name, " ", pf.device_dir, " ", pf.num_vfs, "/", pf.total_vfs, " ", pf.operstate, " ",
                   pf.problem, "\n");
    };
    for (const auto how : {Sysfs::Resolution::kernel, Sysfs::Resolution::by_component}) {
        const Sysfs sysfs(dir.path(), how);
        const Inventory inventory(sysfs);
        std::string one_by_one;
        for (const auto& pf : inventory.all_pfs()) {
            one_by_one += describe_pf(pf);
            std::vector<std::string> missing;
            for (const auto& vf : inventory.vfs(pf, &missing)) one_by_one += describe_vf(vf);
            for (const auto& m : missing) one_by_one += m + "\n";
        }
        std::string scanned;
        for (const auto& [pf, vfs, missing] : inventory.scan()) {
            scanned += describe_pf(pf);
            for (const auto& vf : vfs) scanned += describe_vf(vf);
            for (const auto& m : missing) scanned += m + "\n";
        }
        EXPECT_EQ(scanned, one_by_one);
        EXPECT_NE(scanned.find("PF ens1f0 devices/pci0000:00/0000:3b:00.0 70/128 up"), std::string::npos) << scanned;
        EXPECT_NE(scanned.find("ens2f0 1 0000:af:02.1 devices/pci0000:00/0000:af:02.1 iavf aaa0 down"),
                  std::string::npos)
            << scanned;
        EXPECT_NE(scanned.find("virtfn5 -> '../0000:3b:02.5', which does not exist\nvirtfn69 is missing"),
                  std::string::npos)
            << scanned;
        EXPECT_EQ(inventory.scan().size(), 3u) << "eno1 and the VF net devices are no PFs";
    }
}

// A FIFO where a sysfs attribute should be: never opened blocking (a fake
// tree or a bind mount can have one; the kernel's sysfs cannot).
TEST(Sysfs, NeverOpensAFifo) {
    test::TempDir dir;
    sim::FakeSysfs fake(dir.path());
    fake.add_pf(FakePf{"ens1f0", "0000:3b:00.0", 4});
    const auto numvfs = dir.path() + "/devices/pci0000:00/0000:3b:00.0/sriov_numvfs";
    std::filesystem::remove(numvfs);
    ASSERT_EQ(::mkfifo(numvfs.c_str(), 0644), 0);
    const pid_t child = ::fork();
    if (child == 0) {
        Sysfs sysfs(dir.path());
        Inventory inventory(sysfs);
        const auto pf = inventory.pf("ens1f0");
        ::_exit(pf && pf->problem == "sriov_numvfs cannot be read" && !sysfs.read("class/net/ens1f0/device/sriov_numvfs")
                    ? 0
                    : 1);
    }
    int status = -1;
    pid_t done = 0;
    for (int i = 0; i < 1000 && (done = ::waitpid(child, &status, WNOHANG)) == 0; ++i) ::usleep(10 * 1000);
    if (done == 0) {
        ::kill(child, SIGKILL);
        ::waitpid(child, &status, 0);
        FAIL() << "reading sysfs blocked on a FIFO";
    }
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace sriovpt
