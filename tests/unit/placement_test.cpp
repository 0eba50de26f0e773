// NUMA placement (common/placement.hpp): node and CPU sets, the VM's nodes
// from its domain XML, and how a policy ranks a pool's PFs.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <sstream>

#include "error.hpp"
#include "fake_sysfs.hpp"
#include "harness.hpp"
#include "placement.hpp"

namespace sriovpt {
namespace {

TEST(Placement, NumberSets) {
    EXPECT_EQ(parse_number_set("0"), (std::set<int>{0}));
    EXPECT_EQ(parse_number_set("0-3,8"), (std::set<int>{0, 1, 2, 3, 8}));
    EXPECT_EQ(parse_number_set("0-3,^2"), (std::set<int>{0, 1, 3}));
    EXPECT_EQ(parse_number_set(" 1 , 3-4 "), (std::set<int>{1, 3, 4}));
    EXPECT_EQ(parse_number_set("01"), (std::set<int>{1}));
    EXPECT_EQ(parse_number_set("4-6,0-2,1-5,^3"), (std::set<int>{0, 1, 2, 4, 5, 6}));
    EXPECT_EQ(parse_number_set("65535"), (std::set<int>{65535}));
    // Wide ranges many times over: merged, not listed once each.
    std::string wide = "0-65535";
    for (int i = 0; i < 20000; ++i) wide += ",0-65535";
    const auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(parse_number_set(wide + ",^7").size(), 65535u);
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
    for (const char* bad : {"", " ", "a", "1-", "-1", "3-1", "1,,2", "1;2", "^", "65536", "0-65536", "1.5"}) {
        EXPECT_THROW(parse_number_set(bad), Error) << bad;
    }
}

TEST(Placement, PolicyNames) {
    for (const auto p : {NumaPolicy::required, NumaPolicy::preferred, NumaPolicy::ignore})
        EXPECT_EQ(numa_policy_from_name(numa_policy_name(p)), p);
    EXPECT_EQ(numa_policy_from_name("Preferred"), std::nullopt);
    EXPECT_EQ(numa_policy_from_name(""), std::nullopt);
    EXPECT_EQ(kDefaultNumaPolicy, NumaPolicy::preferred);
}

TEST(Placement, Ranks) {
    const std::vector<int> pfs{0, 1, -1, 1};
    EXPECT_EQ(numa_ranks(NumaPolicy::preferred, {1}, pfs), (std::vector<int>{kNumaOther, kNumaLocal, kNumaOther, kNumaLocal}));
    EXPECT_EQ(numa_ranks(NumaPolicy::required, {1}, pfs),
              (std::vector<int>{kNumaExcluded, kNumaLocal, kNumaExcluded, kNumaLocal}));
    EXPECT_EQ(numa_ranks(NumaPolicy::required, {0, 1}, pfs),
              (std::vector<int>{kNumaLocal, kNumaLocal, kNumaExcluded, kNumaLocal}));
    EXPECT_EQ(numa_ranks(NumaPolicy::ignore, {1}, pfs), std::vector<int>(4, kNumaLocal));
    EXPECT_EQ(numa_ranks(NumaPolicy::required, {}, pfs), std::vector<int>(4, kNumaLocal)) << "no preference";
}

TEST(Placement, WhetherThePlacementCanMatter) {
    EXPECT_FALSE(placement_matters(NumaPolicy::ignore, {0, 1}));
    EXPECT_FALSE(placement_matters(NumaPolicy::preferred, {1, 1}));
    EXPECT_FALSE(placement_matters(NumaPolicy::preferred, {-1, -1}));
    EXPECT_TRUE(placement_matters(NumaPolicy::preferred, {0, 1}));
    EXPECT_TRUE(placement_matters(NumaPolicy::preferred, {0, -1}));
    EXPECT_TRUE(placement_matters(NumaPolicy::required, {0, 0}));
    EXPECT_FALSE(placement_matters(NumaPolicy::required, {}));
}

class VmPlacementTest : public testing::Test {
protected:
    VmPlacementTest() : fake_(dir_.path()), sysfs_(dir_.path()) {
        std::istringstream spec("node 0 0-3,8-11\nnode 1 4-7,12-15\npf ens1f0 0000:3b:00.0 1 numa=1\n"
                                "pf ens1f1 0000:5e:00.0 1 numa=-1\n");
        fake_.apply_spec(spec);
    }
    VmPlacement of(const std::string& inner) {
        doc_.load_string(("<domain>" + inner + "</domain>").c_str());
        return vm_placement(doc_.child("domain"), sysfs_);
    }
    test::TempDir dir_;
    sim::FakeSysfs fake_;
    Sysfs sysfs_;
    pugi::xml_document doc_;
};

TEST_F(VmPlacementTest, FromNumatuneThenPinning) {
    EXPECT_EQ(of("<numatune><memory mode='strict' nodeset='1'/></numatune>").nodes, (std::set<int>{1}));
    EXPECT_EQ(of("<numatune><memnode cellid='0' nodeset='0'/><memnode cellid='1' nodeset='3'/></numatune>").nodes,
              (std::set<int>{0, 3}));
    const auto pinned = of("<cputune><vcpupin vcpu='0' cpuset='9'/><emulatorpin cpuset='13'/></cputune>");
    EXPECT_EQ(pinned.nodes, (std::set<int>{0, 1}));
    EXPECT_EQ(pinned.source, "CPU pinning");
    EXPECT_EQ(of("<numatune><memory nodeset='1'/></numatune><cputune><vcpupin vcpu='0' cpuset='0'/></cputune>").source,
              "numatune");
    // numad's automatic placement, no pinning, CPUs of no node: no preference.
    EXPECT_TRUE(of("<numatune><memory placement='auto'/></numatune>").nodes.empty());
    EXPECT_TRUE(of("<cputune><shares>1024</shares></cputune>").nodes.empty());
    EXPECT_TRUE(of("<cputune><vcpupin vcpu='0' cpuset='64'/></cputune>").nodes.empty());
    EXPECT_TRUE(of("").nodes.empty());
    EXPECT_THROW(of("<numatune><memory nodeset='x'/></numatune>"), Error);
}

TEST_F(VmPlacementTest, PfNodes) {
    EXPECT_EQ(pf_numa_node(sysfs_, "ens1f0"), 1);
    EXPECT_EQ(pf_numa_node(sysfs_, "ens1f1"), -1);
    EXPECT_EQ(pf_numa_node(sysfs_, "nosuch"), -1);
    EXPECT_EQ(pf_numa_node(sysfs_, "../x"), -1);
}

// pf_numa_nodes lets the kernel follow the links: it must give what
// pf_numa_node gives, and never a file outside the root.
TEST(Placement, PfNodesReadTheFastWayAgreeAndStayInsideTheRoot) {
    test::TempDir dir;
    sim::FakeSysfs fake(dir.path() + "/sys");
    std::istringstream spec("pf ens1f0 0000:3b:00.0 1 numa=1\npf ens1f1 0000:5e:00.0 1 numa=-1\n"
                            "pf ens2f0 0000:af:00.0 1 numa=0\n");
    fake.apply_spec(spec);
    // A PF whose link climbs out of the root, where a numa_node waits.
    std::filesystem::create_directories(dir.path() + "/outside/device");
    test::write_text(dir.path() + "/outside/device/numa_node", "5\n");
    ASSERT_EQ(::symlink("../../../outside", (dir.path() + "/sys/class/net/escape").c_str()), 0);
    // An absolute link, which inside the root means from the root.
    ASSERT_EQ(::symlink("/devices/pci0000:00/0000:3b:00.0/net/ens1f0", (dir.path() + "/sys/class/net/abs").c_str()), 0);
    // A FIFO where a numa_node should be: never read blocking.
    ASSERT_EQ(::unlink((dir.path() + "/sys/devices/pci0000:00/0000:af:00.0/numa_node").c_str()), 0);
    ASSERT_EQ(::mkfifo((dir.path() + "/sys/devices/pci0000:00/0000:af:00.0/numa_node").c_str(), 0600), 0);
    const Sysfs sysfs(dir.path() + "/sys");
    const std::vector<std::string> pfs{"ens1f0", "ens1f1", "nosuch", "escape", "abs", "ens2f0", "../x", ""};
    const auto nodes = pf_numa_nodes(sysfs, pfs);
    EXPECT_EQ(nodes, (std::vector<int>{1, -1, -1, -1, 1, -1, -1, -1}));
    for (size_t i = 0; i < pfs.size(); ++i) EXPECT_EQ(nodes[i], pf_numa_node(sysfs, pfs[i])) << pfs[i];
    // The same through a root given with a trailing slash.
    EXPECT_EQ(pf_numa_nodes(Sysfs(dir.path() + "/sys/"), {"ens1f0"}), std::vector<int>{1});
}

}  // namespace
}  // namespace sriovpt
