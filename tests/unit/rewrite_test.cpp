// The rewrite, as golden files: tests/golden/<case>.in.xml is what the engine
// sends, <case>.out.xml what libvirt must get. Set SRIOVPT_UPDATE_GOLDEN=1 to
// write the .out files from the current code (then read them before committing).
#include <gtest/gtest.h>

#include <cstdlib>

#include "domain_xml.hpp"
#include "harness.hpp"
#include "rewrite.hpp"

namespace sriovpt {
namespace {

struct GoldenCase {
    const char* name;
    const char* vf;
    std::optional<unsigned> vlan;
    std::vector<std::string> dropped;
};

class Golden : public testing::TestWithParam<GoldenCase> {};

TEST_P(Golden, RewritesAsTheGoldenFileSays) {
    const auto& c = GetParam();
    const std::string base = std::string(SRIOVPT_GOLDEN_DIR) + "/" + c.name;
    pugi::xml_document doc;
    ASSERT_TRUE(parse_xml(doc, test::read_text(base + ".in.xml")));
    const auto result = rewrite_to_hostdev(doc.document_element(), VfBinding{*PciAddress::parse(c.vf), c.vlan});
    EXPECT_EQ(result.node, doc.document_element());
    EXPECT_EQ(result.dropped, c.dropped);
    const auto out = serialize_xml(doc);
    if (std::getenv("SRIOVPT_UPDATE_GOLDEN")) test::write_text(base + ".out.xml", out);
    EXPECT_EQ(out, test::read_text(base + ".out.xml"));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, Golden,
    testing::Values(
        GoldenCase{"bridge-engine", "0000:3b:02.1", 100,
                   {"model", "mtu (the VF uses the PF's MTU)", "filterref (no MAC anti-spoofing)", "bandwidth (no QoS)"}},
        GoldenCase{"guest-address-boot-rom", "0001:af:1f.7", std::nullopt,
                   {"model", "mtu (the VF uses the PF's MTU)", "filterref (no MAC anti-spoofing)",
                    "bandwidth (no QoS)"}},
        GoldenCase{"virtio-tuning-and-unknown", "0000:3b:02.0", 4094,
                   {"model", "driver", "coalesce", "target", "tune", "virtualport (no port profile or mirroring)",
                    "backend", "port"}}),
    [](const testing::TestParamInfo<GoldenCase>& info) {
        std::string name = info.param.name;
        for (auto& ch : name) if (ch == '-') ch = '_';
        return name;
    });

TEST(Rewrite, InterfaceInsideADomainKeepsItsPlaceAndNeighbours) {
    pugi::xml_document doc;
    ASSERT_TRUE(parse_xml(doc, test::make_domain({{"00:1a:4a:16:01:10", "ovirtmgmt"}, {"00:1a:4a:16:01:51"}})));
    const auto before = serialize_xml(doc);
    auto vnics = find_vnics(doc.child("domain"));
    ASSERT_EQ(vnics.size(), 2u);
    rewrite_to_hostdev(vnics[1].node, VfBinding{*PciAddress::parse("0000:3b:02.1"), std::nullopt});
    vnics = find_vnics(doc.child("domain"));
    ASSERT_EQ(vnics.size(), 2u);
    EXPECT_EQ(vnics[0].type, "bridge");
    EXPECT_EQ(vnics[1].type, "hostdev");
    EXPECT_EQ(vnics[1].mac, "00:1a:4a:16:01:51");
    EXPECT_FALSE(vnics[1].node.child("vlan")) << "no VLAN property, no network default: no <vlan>";
    // Everything before the rewritten vNIC is as it was.
    const auto after = serialize_xml(doc);
    const auto cut = before.find("<interface type=\"bridge\">", before.find("01:10"));
    EXPECT_EQ(after.substr(0, cut), before.substr(0, cut));
    EXPECT_NE(after.find("<ovirt-vm:device mac_address=\"00:1a:4a:16:01:51\">"), std::string::npos);
}

TEST(Metadata, PropertiesByMacWhateverThePrefix) {
    pugi::xml_document doc;
    ASSERT_TRUE(parse_xml(doc, R"(<domain>
  <metadata>
    <vm xmlns="http://ovirt.org/vm/1.0">
      <device mac_address="00:1A:4A:16:01:51"><custom><passthrough>true</passthrough><vlan>100</vlan></custom></device>
    </vm>
    <o:vm xmlns:o="http://example.org/not-ovirt">
      <o:device mac_address="00:1a:4a:16:01:52"><o:custom><o:passthrough>true</o:passthrough></o:custom></o:device>
    </o:vm>
    <x:vm xmlns:x="http://ovirt.org/vm/1.0">
      <x:device mac_address="00:1a:4a:16:01:53"><x:custom><x:sriov_pf>ens1f1</x:sriov_pf></x:custom></x:device>
    </x:vm>
  </metadata>
</domain>)"));
    const auto props = metadata_properties(doc.child("domain"));
    ASSERT_EQ(props.size(), 2u);
    EXPECT_EQ(props.at("00:1a:4a:16:01:51").at("passthrough"), "true");
    EXPECT_EQ(props.at("00:1a:4a:16:01:51").at("vlan"), "100");
    EXPECT_EQ(props.count("00:1a:4a:16:01:52"), 0u) << "another namespace is not oVirt's";
    EXPECT_EQ(props.at("00:1a:4a:16:01:53").at("sriov_pf"), "ens1f1");
}

}  // namespace
}  // namespace sriovpt
