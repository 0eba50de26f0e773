// NUMA-aware choice (docs/design.md, "The choice rule") on a fake host with
// two NUMA nodes, through the real hooks driven as VDSM drives them
// (vdsm_flow.hpp): start and hot-plug.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>

#include "harness.hpp"
#include "vdsm_flow.hpp"

namespace sriovpt::test {
namespace {

const Props kPassthrough{{"passthrough", "true"}};

// Node 0 has CPUs 0-3 and ens1f0; node 1 has CPUs 4-7 and ens1f1. The pool
// lists ens1f0 first, so without NUMA a fresh host always gives ens1f0.
constexpr const char* kHostSpec =
    "node 0 0-3\n"
    "node 1 4-7\n"
    "pf ens1f0 0000:3b:00.0 2 numa=0\n"
    "pf ens1f1 0000:5e:00.0 2 numa=1\n";
constexpr const char* kNode0Vf = "0000:3b:02.0";
constexpr const char* kNode1Vf = "0000:5e:02.0";

// <memnode> needs a guest NUMA cell (libvirt refuses it without one).
const std::string kGuestCell = "  <cpu>\n    <numa>\n      <cell id=\"0\" cpus=\"0-1\" memory=\"1048576\"/>\n"
                               "    </numa>\n  </cpu>\n";
const std::string kNumatuneNode1 = kGuestCell + "  <numatune>\n    <memory mode=\"strict\" nodeset=\"1\"/>\n"
                                   "    <memnode cellid=\"0\" mode=\"strict\" nodeset=\"1\"/>\n  </numatune>\n";
const std::string kPinnedToNode1 = "  <cputune>\n    <vcpupin vcpu=\"0\" cpuset=\"5\"/>\n"
                                   "    <vcpupin vcpu=\"1\" cpuset=\"6-7\"/>\n"
                                   "    <emulatorpin cpuset=\"4\"/>\n  </cputune>\n";

std::string uuid(int n) { return "9c1f3d7e-2b44-4a51-8e0c-5d6a7b8c9d" + std::string(n < 10 ? "0" : "") + std::to_string(n); }
std::string mac(int n) { return "00:1a:4a:16:02:" + std::string(n < 10 ? "0" : "") + std::to_string(n); }

// An engine domain with one passthrough vNIC and `placement` (numatune,
// cputune) where the engine puts it, before <devices>.
std::string domain_with(const std::string& placement, int n, const Props& props = kPassthrough) {
    auto xml = make_domain({{mac(n), "sriovnet", props}}, uuid(n), "vm" + std::to_string(n));
    xml.insert(xml.find("  <devices>"), placement);
    return xml;
}

// The PCI address a rewritten domain or interface hands libvirt.
std::string vf_of(const std::string& xml) {
    const auto hostdev = xml.find("<interface type=\"hostdev\"");
    if (hostdev == std::string::npos) return "";
    const auto at = xml.find("<source>", hostdev);
    const auto bus = xml.find("bus=\"0x", at);
    const auto slot = xml.find("slot=\"0x", at);
    const auto function = xml.find("function=\"0x", at);
    return "0000:" + xml.substr(bus + 7, 2) + ":" + xml.substr(slot + 8, 2) + "." + xml.substr(function + 12, 1);
}

class Numa : public testing::Test {
protected:
    explicit Numa(const std::string& extra = "") : host_(config(extra)), flow_(host_) {
        std::istringstream spec(kHostSpec);
        host_.sysfs().apply_spec(spec);
    }
    static std::string config(const std::string& extra) { return extra + "[network.sriovnet]\npfs = ens1f0, ens1f1\n"; }

    // A VM start as VDSM does it; expects success and returns the VF.
    std::string start(const std::string& xml, int n) {
        const auto result = flow_.start_vm(xml, uuid(n));
        EXPECT_TRUE(result.ok) << result.failed_at << ": " << result.why;
        return vf_of(result.xml);
    }

    // A start that must be refused: exit 2 at before_vm_start, one line
    // naming `what`, nothing reserved, the XML VDSM keeps unchanged.
    void expect_refused(const std::string& xml, int n, const std::string& what) {
        const auto before = host_.records().size();
        const auto run = host_.run("before_vm_start", xml, uuid(n));
        EXPECT_EQ(run.status, 2) << run.err;
        EXPECT_EQ(run.xml, xml) << "the XML file must be left byte for byte";
        EXPECT_NE(run.err.find(what), std::string::npos) << run.err;
        EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
        EXPECT_EQ(host_.records().size(), before) << "no reservation may be left behind";
        const auto flow = flow_.start_vm(xml, uuid(n));
        EXPECT_FALSE(flow.ok);
        EXPECT_EQ(flow.failed_at, "before_vm_start");
        EXPECT_EQ(host_.records().size(), before);
    }

    TestHost host_;
    VdsmFlow flow_;
};

TEST_F(Numa, NumatunePlacesTheVfOnTheVmsNode) {
    const auto result = flow_.start_vm(domain_with(kNumatuneNode1, 1), uuid(1));
    ASSERT_TRUE(result.ok) << result.why;
    EXPECT_EQ(vf_of(result.xml), kNode1Vf) << result.xml;
    EXPECT_EQ(libvirt_rejects(result.xml), "");
    // memnode alone places too; and a VM on node 0 stays on node 0 even
    // though ens1f0 now holds more than ens1f1 would after the next start.
    EXPECT_EQ(start(domain_with(kGuestCell + "  <numatune>\n    <memnode cellid=\"0\" mode=\"strict\" "
                                "nodeset=\"1\"/>\n  </numatune>\n", 2),
                    2),
              "0000:5e:02.1");
    EXPECT_EQ(start(domain_with("  <numatune>\n    <memory nodeset=\"0\"/>\n  </numatune>\n", 3), 3), kNode0Vf);
}

TEST_F(Numa, VcpuPinningPlacesTheVfOnTheNodeOfItsCpus) {
    const auto result = flow_.start_vm(domain_with(kPinnedToNode1, 1), uuid(1));
    ASSERT_TRUE(result.ok) << result.why;
    EXPECT_EQ(vf_of(result.xml), kNode1Vf) << result.xml;
    EXPECT_EQ(libvirt_rejects(result.xml), "");
    // <numatune> wins over the pinning when both are there.
    EXPECT_EQ(start(domain_with("  <numatune>\n    <memory nodeset=\"0\"/>\n  </numatune>\n" + kPinnedToNode1, 2), 2),
              kNode0Vf);
    // Pinning to CPUs of no node (a CPU the host does not list) is no
    // preference: the balancing decides (ens1f0 and ens1f1 hold one each).
    EXPECT_EQ(start(domain_with("  <cputune>\n    <vcpupin vcpu=\"0\" cpuset=\"12\"/>\n  </cputune>\n", 3), 3),
              "0000:3b:02.1");
}

TEST_F(Numa, WithoutPlacementTheBalancingDecides) {
    EXPECT_EQ(start(domain_with("", 1), 1), kNode0Vf);
    EXPECT_EQ(start(domain_with("", 2), 2), kNode1Vf) << "fewest held first";
    EXPECT_EQ(start(domain_with("", 3), 3), "0000:3b:02.1") << "pool order breaks ties";
    // numa=required with no placement is no limit either.
    EXPECT_EQ(start(domain_with("", 4, {{"passthrough", "true"}, {"numa", "required"}}), 4), "0000:5e:02.1");
}

TEST_F(Numa, IgnoreLeavesTheChoiceToTheBalancing) {
    EXPECT_EQ(start(domain_with(kNumatuneNode1, 1, {{"passthrough", "true"}, {"numa", "ignore"}}), 1), kNode0Vf);
}

TEST_F(Numa, PreferredFallsBackToTheOtherNodeAndSaysSo) {
    EXPECT_EQ(start(domain_with(kNumatuneNode1, 1), 1), kNode1Vf);
    EXPECT_EQ(start(domain_with(kPinnedToNode1, 2), 2), "0000:5e:02.1");
    // Node 1's PF is full: the third VM on node 1 gets node 0's, although
    // ens1f0 is the PF with fewer held only now.
    const auto result = flow_.start_vm(domain_with(kNumatuneNode1, 3), uuid(3));
    ASSERT_TRUE(result.ok) << result.why;
    EXPECT_EQ(vf_of(result.xml), kNode0Vf);
    EXPECT_NE(result.err().find("-> VF 0000:3b:02.0 (ens1f0 VF 0, no VLAN); dropped for passthrough: model, mtu (the "
                                "VF uses the PF's MTU), filterref (no MAC anti-spoofing), bandwidth (no QoS); "
                                "numa=preferred: ens1f0 is on NUMA node 0, no VF was free on the VM's NUMA node 1"),
              std::string::npos)
        << result.err();
}

TEST_F(Numa, RequiredRefusesByNameNamingTheNodes) {
    EXPECT_EQ(start(domain_with(kNumatuneNode1, 1), 1), kNode1Vf);
    EXPECT_EQ(start(domain_with(kNumatuneNode1, 2), 2), "0000:5e:02.1");
    expect_refused(domain_with(kNumatuneNode1, 3, {{"passthrough", "true"}, {"numa", "required"}}), 3,
                   "sriov-passthrough: before_vm_start: reserving a VF for vNIC 00:1a:4a:16:02:03 on network "
                   "sriovnet: no free VF on the VM's NUMA node 1 (numa=required) (ens1f0 is on NUMA node 0, not on "
                   "the VM's node 1 (numa=required); all 2 VFs of ens1f1 are held)");
    // The network's default does the same; the property can loosen it.
    host_.write_config("[network.sriovnet]\npfs = ens1f0, ens1f1\nnuma = required\n");
    expect_refused(domain_with(kPinnedToNode1, 4), 4, "no free VF on the VM's NUMA node 1 (numa=required)");
    EXPECT_EQ(start(domain_with(kPinnedToNode1, 5, {{"passthrough", "true"}, {"numa", "preferred"}}), 5), kNode0Vf);
}

// A leftover of the same vNIC (an after_* hook was killed) is the vNIC's VF
// again under `preferred`; under `required` only when on the VM's nodes.
TEST_F(Numa, ALeftoverOnAnotherNodeServesPreferredButNotRequired) {
    EXPECT_EQ(start(domain_with("", 1), 1), kNode0Vf);  // no placement: ens1f0; never destroyed
    EXPECT_EQ(start(domain_with(kNumatuneNode1, 1), 1), kNode0Vf) << "preferred: the same vNIC, the same VF";
    const auto result = flow_.start_vm(domain_with(kNumatuneNode1, 1, {{"passthrough", "true"}, {"numa", "required"}}),
                                       uuid(1));
    ASSERT_TRUE(result.ok) << result.why;
    EXPECT_EQ(vf_of(result.xml), kNode1Vf);
    EXPECT_NE(result.err().find("; gave back the leftover VF 0000:3b:02.0 it held on sriovnet"), std::string::npos)
        << result.err();
    ASSERT_EQ(host_.reservations().size(), 1u);
    EXPECT_EQ(host_.reservations()[0].pf, "ens1f1");
}

TEST_F(Numa, RequiredCountsAPfOfUnknownNodeAsOnNoNode) {
    host_.write_config("numa = required\n[network.sriovnet]\npfs = ens2f0\n");
    host_.sysfs().add_pf({"ens2f0", "0000:af:00.0", 2, std::nullopt, -1});
    expect_refused(domain_with("  <numatune>\n    <memory nodeset=\"0-1\"/>\n  </numatune>\n", 1), 1,
                   "no free VF on the VM's NUMA nodes 0,1 (numa=required) (ens2f0 is on no known NUMA node "
                   "(numa_node -1), not on the VM's nodes 0,1 (numa=required))");
}

TEST_F(Numa, BadValuesAreRefusedByName) {
    expect_refused(domain_with(kNumatuneNode1, 1, {{"passthrough", "true"}, {"numa", "strict"}}), 1,
                   "vNIC 00:1a:4a:16:02:01: property numa='strict' is not allowed (allowed: required, preferred or "
                   "ignore)");
    expect_refused(domain_with(kNumatuneNode1, 1, {{"passthrough", "true"}, {"numa", "Required"}}), 1,
                   "property numa='Required' is not allowed");
    expect_refused(domain_with("  <numatune>\n    <memory nodeset=\"1-x\"/>\n  </numatune>\n", 1), 1,
                   "<numatune><memory nodeset>: '1-x' is not a set of numbers");
    host_.write_config("[network.sriovnet]\npfs = ens1f0, ens1f1\nnuma = sometimes\n");
    expect_refused(domain_with(kNumatuneNode1, 1), 1,
                   "[network.sriovnet] numa = 'sometimes' is not a NUMA policy (allowed: required, preferred, ignore)");
    host_.write_config("numa = strict\n[network.sriovnet]\npfs = ens1f0, ens1f1\n");
    expect_refused(domain_with(kNumatuneNode1, 1), 1,
                   "numa = 'strict' is not a NUMA policy (allowed: required, preferred, ignore)");
}

// Hot-plug: VDSM hands before_nic_hotplug the vNIC alone, so the VM's
// placement comes from libvirt's live XML (here the test driver's world).
class NumaHotplug : public Numa {
protected:
    NumaHotplug() : Numa() {}

    void use_libvirt(const std::string& uri, const std::string& network_extra = "", const std::string& extra = "") {
        write_text(host_.conf_path(), "sysfs_root = " + host_.dir() + "/sys\nstate_dir = " + host_.state_dir() +
                                          "\nlibvirt_uri = " + uri + "\n" + extra +
                                          "[network.sriovnet]\npfs = ens1f0, ens1f1\n" + network_extra);
    }
    // A libvirt world (test driver) where VM 1 runs with `placement`.
    std::string world_uri(const std::string& placement) {
        const auto path = host_.dir() + "/world.xml";
        write_text(path, "<node>\n  <domain type=\"test\">\n    <name>vm1</name>\n    <uuid>" + uuid(1) +
                             "</uuid>\n    <memory>1048576</memory>\n    <vcpu>2</vcpu>\n" + placement +
                             "    <os><type arch=\"x86_64\">hvm</type></os>\n  </domain>\n</node>\n");
        return "test://" + path;
    }
};

TEST_F(NumaHotplug, TheVmsPlacementComesFromLibvirt) {
    use_libvirt(world_uri(kNumatuneNode1));
    const auto plugged = flow_.hotplug_nic(make_interface(mac(1)), uuid(1), kPassthrough);
    ASSERT_TRUE(plugged.ok) << plugged.why;
    EXPECT_EQ(vf_of(plugged.xml), kNode1Vf) << plugged.xml;
    auto domain = make_domain({});
    domain.insert(domain.find("  </devices>"), plugged.xml.substr(plugged.xml.find("<interface")));
    EXPECT_EQ(libvirt_rejects(domain), "");

    use_libvirt(world_uri(kPinnedToNode1));
    const auto pinned = flow_.hotplug_nic(make_interface(mac(2)), uuid(1), kPassthrough);
    ASSERT_TRUE(pinned.ok) << pinned.why;
    EXPECT_EQ(vf_of(pinned.xml), "0000:5e:02.1");
    // Node 1 full: required refuses, naming the node, nothing reserved.
    const auto nic = make_interface(mac(3));
    const auto refused = host_.run("before_nic_hotplug", nic, uuid(1), {{"passthrough", "true"}, {"numa", "required"}});
    EXPECT_EQ(refused.status, 2);
    EXPECT_EQ(refused.xml, nic);
    EXPECT_NE(refused.err.find("no free VF on the VM's NUMA node 1 (numa=required)"), std::string::npos) << refused.err;
    EXPECT_EQ(host_.records().size(), 2u);
}

TEST_F(NumaHotplug, WithoutAnAnswerFromLibvirtPreferredGoesOnAndRequiredRefuses) {
    use_libvirt("none");
    const auto plugged = host_.run("before_nic_hotplug", make_interface(mac(1)), uuid(1), kPassthrough);
    ASSERT_EQ(plugged.status, 0) << plugged.err;
    EXPECT_EQ(vf_of(plugged.xml), kNode0Vf);
    EXPECT_NE(plugged.err.find("vNIC 00:1a:4a:16:02:01 on network sriovnet: the VM's NUMA nodes cannot be known, so "
                               "its VF is chosen as with numa=ignore: libvirt look-ups are disabled (libvirt_uri = "
                               "none)"),
              std::string::npos)
        << plugged.err;

    // A VM libvirt does not know: the same.
    use_libvirt(world_uri(kNumatuneNode1), "numa = required\n");
    const auto nic = make_interface(mac(2));
    const auto refused = host_.run("before_nic_hotplug", nic, uuid(9), kPassthrough);
    EXPECT_EQ(refused.status, 2);
    EXPECT_EQ(refused.xml, nic);
    EXPECT_NE(refused.err.find("vNIC 00:1a:4a:16:02:02 on network sriovnet: numa=required, but the VM's NUMA nodes "
                               "cannot be known: libvirt at test://"),
              std::string::npos)
        << refused.err;
    EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;
    EXPECT_EQ(host_.records().size(), 1u);
}

// libvirt is asked only when its answer can change the choice: a hung
// libvirt (lock_timeout 2 s) would show as a slow hot-plug and a note.
TEST_F(NumaHotplug, LibvirtIsNotAskedWhenThePlacementCannotMatter) {
    const auto socket_path = host_.dir() + "/libvirt-sock";
    const SilentSocket hung(socket_path);
    ASSERT_TRUE(hung.ok());
    const auto hung_uri = "qemu+unix:///system?socket=" + socket_path;
    const auto plug = [&](int n, const Props& props) {
        const auto started = std::chrono::steady_clock::now();
        const auto run = host_.run("before_nic_hotplug", make_interface(mac(n)), uuid(1), props);
        return std::make_pair(run, std::chrono::steady_clock::now() - started);
    };
    // numa=ignore.
    use_libvirt(hung_uri, "", "lock_timeout = 2\n");
    auto [ignored, took] = plug(1, {{"passthrough", "true"}, {"numa", "ignore"}});
    EXPECT_EQ(ignored.status, 0) << ignored.err;
    EXPECT_EQ(ignored.err.find("NUMA"), std::string::npos) << ignored.err;
    EXPECT_LT(took, std::chrono::milliseconds(1500));
    // preferred, and the pool on one node: sriov_pf narrows it to ens1f1.
    auto [one_node, took2] = plug(2, {{"passthrough", "true"}, {"sriov_pf", "ens1f1"}});
    EXPECT_EQ(one_node.status, 0) << one_node.err;
    EXPECT_EQ(one_node.err.find("NUMA"), std::string::npos) << one_node.err;
    EXPECT_LT(took2, std::chrono::milliseconds(1500));
    // Both nodes in the pool: asked, bounded, and the plug goes on without it.
    auto [asked, took3] = plug(3, kPassthrough);
    EXPECT_EQ(asked.status, 0) << asked.err;
    EXPECT_NE(asked.err.find("the VM's NUMA nodes cannot be known, so its VF is chosen as with numa=ignore: libvirt "
                             "at qemu+unix:///system?socket="),
              std::string::npos)
        << asked.err;
    EXPECT_NE(asked.err.find("did not answer within 2 s"), std::string::npos) << asked.err;
    EXPECT_GE(took3, std::chrono::milliseconds(1900));
}

// The command: status shows each holder's nodes (the VF's node it showed
// already), check warns about PFs of unknown node.
using NumaCommand = NumaHotplug;

TEST_F(NumaCommand, StatusShowsTheNodesOfEachHolder) {
    EXPECT_EQ(start(domain_with(kNumatuneNode1, 1), 1), kNode1Vf);
    const auto cli = [&](const std::string& command) {
        return run_command({SRIOVPT_CLI, "--config", host_.conf_path(), command, "--json"});
    };
    const auto unknown = cli("status");
    ASSERT_EQ(unknown.status, 0) << unknown.output;
    EXPECT_NE(unknown.output.find(R"("origin": "before_vm_start", "numa_nodes": null})"), std::string::npos)
        << "libvirt_uri = none: not known\n" << unknown.output;

    use_libvirt(world_uri(kNumatuneNode1));
    const auto known = cli("status");
    ASSERT_EQ(known.status, 0) << known.output;
    EXPECT_NE(known.output.find(R"({"pci": "0000:5e:02.0", "pf": "ens1f1", "vf_index": 0, "numa_node": 1, )"),
              std::string::npos)
        << known.output;
    EXPECT_NE(known.output.find(R"("origin": "before_vm_start", "numa_nodes": [1]})"), std::string::npos)
        << known.output;
    const auto table = run_command({SRIOVPT_CLI, "--config", host_.conf_path(), "status"});
    EXPECT_NE(table.output.find("HOLDER NUMA"), std::string::npos) << table.output;
    EXPECT_NE(table.output.find("00:1a:4a:16:02:01  1\n"), std::string::npos) << table.output;
}

TEST_F(NumaCommand, CheckWarnsAboutPfsOfUnknownNode) {
    host_.sysfs().add_pf({"ens2f0", "0000:af:00.0", 2, std::nullopt, -1});
    const auto check = [&](const std::string& conf) {
        host_.write_config(conf);
        return run_command({SRIOVPT_CLI, "--config", host_.conf_path(), "check"});
    };
    const auto preferred = check("[network.sriovnet]\npfs = ens1f0, ens2f0\n");
    EXPECT_EQ(preferred.status, 0) << preferred.output;
    EXPECT_NE(preferred.output.find("warning: [network.sriovnet] PF ens2f0: its NUMA node is unknown (device/numa_node "
                                    "is -1), so it counts as on no node: with numa=preferred it comes after the PFs "
                                    "on a VM's nodes"),
              std::string::npos)
        << preferred.output;
    EXPECT_EQ(preferred.output.find("PF ens1f0: its NUMA node"), std::string::npos) << preferred.output;
    const auto required = check("[network.sriovnet]\npfs = ens2f0\nnuma = required\n");
    EXPECT_NE(required.output.find("PF ens2f0: its NUMA node is unknown (device/numa_node is -1), so it counts as on "
                                   "no node: with numa=required it serves only VMs without a NUMA placement"),
              std::string::npos)
        << required.output;
    const auto ignored = check("numa = ignore\n[network.sriovnet]\npfs = ens2f0\n");
    EXPECT_EQ(ignored.output.find("NUMA"), std::string::npos) << ignored.output;
}

}  // namespace
}  // namespace sriovpt::test
