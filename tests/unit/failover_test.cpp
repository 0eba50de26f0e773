// Failover pairs: the rewrite as golden files (tests/golden/failover-*.xml;
// SRIOVPT_UPDATE_GOLDEN=1 rewrites the .out files), and the destination side
// of a migration in-process, with a fake libvirt attacher that records calls.
#include <gtest/gtest.h>

#include <cstdlib>

#include "domain_xml.hpp"
#include "harness.hpp"
#include "hooks.hpp"
#include "rewrite.hpp"

namespace sriovpt {
namespace {

struct FailoverCase {
    const char* name;
    const char* vf;
    std::optional<unsigned> vlan;
};

class FailoverGolden : public testing::TestWithParam<FailoverCase> {};

TEST_P(FailoverGolden, RewritesAsTheGoldenFileSays) {
    const auto& c = GetParam();
    const std::string base = std::string(SRIOVPT_GOLDEN_DIR) + "/" + c.name;
    pugi::xml_document doc;
    ASSERT_TRUE(parse_xml(doc, test::read_text(base + ".in.xml")));
    const auto first = doc.document_element().child("interface");
    const auto result = rewrite_to_failover(first, VfBinding{*PciAddress::parse(c.vf), c.vlan});
    EXPECT_EQ(result.persistent, first) << "the virtio vNIC stays the same node";
    EXPECT_EQ(result.transient, first.next_sibling("interface")) << "the VF comes right after it";
    EXPECT_TRUE(is_failover_vf(result.transient));
    EXPECT_FALSE(is_failover_vf(result.persistent));
    const auto out = serialize_xml(doc);
    if (std::getenv("SRIOVPT_UPDATE_GOLDEN")) test::write_text(base + ".out.xml", out);
    EXPECT_EQ(out, test::read_text(base + ".out.xml"));
}

INSTANTIATE_TEST_SUITE_P(Cases, FailoverGolden,
                         testing::Values(FailoverCase{"failover-engine", "0000:3b:02.1", 100},
                                         FailoverCase{"failover-link-down-old-teaming", "0000:5e:02.3", std::nullopt}),
                         [](const testing::TestParamInfo<FailoverCase>& info) {
                             std::string name = info.param.name;
                             for (auto& ch : name) if (ch == '-') ch = '_';
                             return name;
                         });

// The persistent member's checks, each leaving the document as it was.
TEST(Failover, RefusesWhatCannotBeAPersistentMember) {
    const auto check = [](const std::string& iface, const std::string& what) {
        pugi::xml_document doc;
        ASSERT_TRUE(parse_xml(doc, "<devices>" + iface + "</devices>"));
        const auto before = serialize_xml(doc);
        try {
            rewrite_to_failover(doc.child("devices").child("interface"),
                                VfBinding{*PciAddress::parse("0000:3b:02.1"), std::nullopt});
            ADD_FAILURE() << "accepted " << iface;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        }
        EXPECT_EQ(serialize_xml(doc), before);
    };
    check(R"(<interface type="bridge"><model type="e1000"/><alias name="ua-1"/><mac address="00:1a:4a:16:01:51"/></interface>)",
          "its model is 'e1000'; the persistent member of a failover pair must be virtio");
    check(R"(<interface type="bridge"><alias name="ua-1"/><mac address="00:1a:4a:16:01:51"/></interface>)",
          "its model is 'none'");
    check(R"(<interface type="bridge"><model type="virtio"/><alias name="net0"/><mac address="00:1a:4a:16:01:51"/></interface>)",
          "its alias 'net0' does not start with 'ua-'");
    check(R"(<interface type="bridge"><model type="virtio"/><mac address="00:1a:4a:16:01:51"/></interface>)",
          "has failover=true but no <alias name>");
    check(R"(<interface type="bridge"><model type="virtio"/><alias name="ua-1"/></interface>)",
          "has failover=true but no <mac address>");
}

TEST(Failover, TransientMemberIsRecognisedOnlyWithItsPartnerNamed) {
    pugi::xml_document doc;
    ASSERT_TRUE(parse_xml(doc, R"(<devices>
  <interface type="hostdev"><teaming type="transient" persistent="ua-1"/></interface>
  <interface type="hostdev"><teaming type="transient"/></interface>
  <interface type="hostdev"/>
  <interface type="bridge"><teaming type="persistent"/></interface>
</devices>)"));
    std::vector<bool> seen;
    for (const auto iface : doc.child("devices").children("interface")) seen.push_back(is_failover_vf(iface));
    EXPECT_EQ(seen, (std::vector<bool>{true, false, false, false}));
}

// A libvirt that records what it is asked to attach.
class FakeAttacher final : public DeviceAttacher {
public:
    struct Call {
        std::string vm_id;
        std::string xml;
    };
    std::vector<Call>* calls;
    enum class Answer { ok, refuse, hang } answer = Answer::ok;

    explicit FakeAttacher(std::vector<Call>* c, Answer a) : calls(c), answer(a) {}
    void attach_live(const std::string& vm_id, const std::string& device_xml) override {
        calls->push_back({vm_id, device_xml});
        if (answer == Answer::refuse) fail("Requested operation is not valid: domain is not running");
        if (answer == Answer::hang) throw AttachTimeout("libvirt at qemu:///system did not answer within 10 s");
    }
};

// The destination host of a migration, in-process: two PFs of four VFs
// serving sriovnet with VLAN 200.
class Destination : public testing::Test {
protected:
    Destination() : test_host_("[network.sriovnet]\npfs = ens1f0, ens1f1\nvlan = 200\n") {
        test_host_.sysfs().add_pf({"ens1f0", "0000:3b:00.0", 4});
        test_host_.sysfs().add_pf({"ens1f1", "0000:5e:00.0", 4});
    }

    // The live domain of a failover VM as it left the source (before_vm_start
    // output there), without its transient VF: unplugged before the migration.
    std::string arrived_without_vf() {
        test::TestHost source("[network.sriovnet]\npfs = ens1f0\n");
        source.sysfs().add_pf({"ens1f0", "0000:3b:00.0", 4});
        const auto started = source.run(
            "before_vm_start",
            test::make_domain({{"00:1a:4a:16:01:51", "sriovnet", {{"passthrough", "true"}, {"failover", "true"}}}}),
            test::kVmId);
        EXPECT_EQ(started.status, 0) << started.err;
        pugi::xml_document doc;
        EXPECT_TRUE(parse_xml(doc, started.xml));
        auto devices = doc.child("domain").child("devices");
        for (const auto iface : devices.children("interface")) {
            if (is_failover_vf(iface)) {
                devices.remove_child(iface);
                break;
            }
        }
        return serialize_xml(doc);
    }

    HookOutcome arrive(const std::string& xml, FakeAttacher::Answer answer) {
        Host host([this] { return load_config(test_host_.conf_path()); },
                  [](const Config& c) { return open_libvirt(c.libvirt_uri, std::chrono::seconds(1)); });
        pugi::xml_document doc;
        EXPECT_TRUE(parse_xml(doc, xml));
        HookEnv env{test::kVmId, [](std::string_view) { return std::nullopt; },
                    [this, answer](Host&) { return std::make_unique<FakeAttacher>(&calls_, answer); }};
        return run_hook_point(HookPoint::after_vm_migrate_destination, host, doc, env);
    }

    test::TestHost test_host_;
    std::vector<FakeAttacher::Call> calls_;
};

// The VF hot-plugged at the destination follows the NUMA rule too: the
// VM's placement is in the live XML the hook gets.
TEST_F(Destination, AReplacementVfIsChosenOnTheVmsNumaNode) {
    test::write_text(test_host_.dir() + "/sys/devices/pci0000:00/0000:5e:00.0/numa_node", "1");
    auto xml = arrived_without_vf();
    xml.insert(xml.find("<devices>"), "<numatune><memory mode=\"strict\" nodeset=\"1\" /></numatune>\n  ");
    const auto outcome = arrive(xml, FakeAttacher::Answer::ok);
    ASSERT_EQ(calls_.size(), 1u);
    EXPECT_NE(calls_[0].xml.find(R"(<address type="pci" domain="0x0000" bus="0x5e" slot="0x02" function="0x0" />)"),
              std::string::npos)
        << calls_[0].xml;
    ASSERT_EQ(test_host_.reservations().size(), 1u);
    EXPECT_EQ(test_host_.reservations()[0].pf, "ens1f1");
}

TEST_F(Destination, FailoverVnicArrivedWithoutItsVfGetsALocalOneHotPlugged) {
    const auto xml = arrived_without_vf();
    const auto outcome = arrive(xml, FakeAttacher::Answer::ok);
    EXPECT_FALSE(outcome.xml_changed) << "the XML of migration hooks is thrown away";
    ASSERT_EQ(calls_.size(), 1u);
    EXPECT_EQ(calls_[0].vm_id, test::kVmId);
    EXPECT_EQ(calls_[0].xml,
              "<interface type=\"hostdev\" managed=\"yes\">\n"
              "  <mac address=\"00:1a:4a:16:01:51\" />\n"
              "  <driver name=\"vfio\" />\n"
              "  <source>\n"
              "    <address type=\"pci\" domain=\"0x0000\" bus=\"0x3b\" slot=\"0x02\" function=\"0x0\" />\n"
              "  </source>\n"
              "  <vlan>\n"
              "    <tag id=\"200\" />\n"
              "  </vlan>\n"
              "  <link state=\"up\" />\n"
              "  <alias name=\"ua-00000001-4f3b-4e0e-9a43-2b8f0c9a1d11-vf\" />\n"
              "  <teaming type=\"transient\" persistent=\"ua-00000001-4f3b-4e0e-9a43-2b8f0c9a1d11\" />\n"
              "</interface>\n");
    ASSERT_EQ(outcome.notes.size(), 1u);
    EXPECT_EQ(outcome.notes[0],
              "hot-plugged vNIC 00:1a:4a:16:01:51 of VM " + std::string(test::kVmId) + " on sriovnet -> VF 0000:3b:02.0 (ens1f0 VF 0, VLAN 200) as the "
              "failover partner of the virtio vNIC ua-00000001-4f3b-4e0e-9a43-2b8f0c9a1d11");
    const auto held = test_host_.reservations();
    ASSERT_EQ(held.size(), 1u);
    EXPECT_EQ(held[0].vm_id, test::kVmId);
    EXPECT_EQ(held[0].mac, "00:1a:4a:16:01:51");
    EXPECT_EQ(held[0].origin, "after_vm_migrate_destination");

    // What was attached, put back into the domain, passes libvirt's checks.
    pugi::xml_document doc, device;
    ASSERT_TRUE(parse_xml(doc, xml));
    ASSERT_TRUE(parse_xml(device, calls_[0].xml));
    doc.child("domain").child("devices").append_copy(device.document_element());
    EXPECT_EQ(test::libvirt_rejects(serialize_xml(doc)), "");

    // The hook run again (or the VF arriving with the VM) attaches nothing more.
    calls_.clear();
    doc.reset();
    ASSERT_TRUE(parse_xml(doc, xml));
    doc.child("domain").child("devices").append_copy(device.document_element());
    const auto again = arrive(serialize_xml(doc), FakeAttacher::Answer::ok);
    EXPECT_TRUE(calls_.empty());
    EXPECT_EQ(test_host_.reservations().size(), 1u);
    ASSERT_EQ(again.notes.size(), 1u);
    EXPECT_EQ(again.notes[0], "recorded VF 0000:3b:02.0 of arriving vNIC 00:1a:4a:16:01:51 of VM " +
                                  std::string(test::kVmId) + " (failover member)");
}

TEST_F(Destination, RefusedHotPlugGivesTheVfBack) {
    try {
        arrive(arrived_without_vf(), FakeAttacher::Answer::refuse);
        ADD_FAILURE() << "a refused hot-plug must fail the hook";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()),
                  "vNIC 00:1a:4a:16:01:51 (failover) arrived without its VF: hot-plugging VF 0000:3b:02.0: "
                  "Requested operation is not valid: domain is not running; the guest keeps its network through "
                  "the virtio vNIC");
    }
    EXPECT_EQ(calls_.size(), 1u);
    EXPECT_TRUE(test_host_.records().empty()) << "the VF reserved for the hot-plug is given back";
}

TEST_F(Destination, HotPlugThatMayStillHappenKeepsTheVf) {
    EXPECT_THROW(arrive(arrived_without_vf(), FakeAttacher::Answer::hang), Error);
    ASSERT_EQ(test_host_.reservations().size(), 1u) << "libvirt may still attach it: keep it ours";
}

TEST_F(Destination, NoPoolForTheNetworkIsReportedAndNothingAttached) {
    test_host_.write_config("");
    try {
        arrive(arrived_without_vf(), FakeAttacher::Answer::ok);
        ADD_FAILURE() << "no pool must fail the hook";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("no PF pool configured for network sriovnet"), std::string::npos)
            << e.what();
    }
    EXPECT_TRUE(calls_.empty());
    EXPECT_TRUE(test_host_.records().empty());
}

// The real attacher, against libvirt's test driver: libvirt 9.0's test
// driver does not implement virDomainAttachDeviceFlags, so this shows the
// dlopen path reaches libvirt and carries its answer back, not an attach.
TEST(LibvirtAttacher, CarriesLibvirtsAnswer) {
    const auto attacher = open_libvirt_attacher("test:///default", std::chrono::seconds(10));
    const std::string device = R"(<interface type="hostdev" managed="yes"><mac address="00:1a:4a:16:01:51"/>
<source><address type="pci" domain="0x0000" bus="0x3b" slot="0x02" function="0x1"/></source></interface>)";
    try {
        attacher->attach_live("6695eb01-f6a4-8304-79aa-97f2502e193f", device);  // the test driver's "test"
        ADD_FAILURE() << "libvirt 9.0's test driver cannot attach devices; did it learn to?";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("refused to attach the device"), std::string::npos) << e.what();
    }
    try {
        attacher->attach_live("11111111-2222-3333-4444-555555555555", device);
        ADD_FAILURE() << "no such domain";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("has no domain 11111111-2222-3333-4444-555555555555"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_THROW(open_libvirt_attacher("none", std::chrono::seconds(1))->attach_live(test::kVmId, device), Error);
}

}  // namespace
}  // namespace sriovpt
