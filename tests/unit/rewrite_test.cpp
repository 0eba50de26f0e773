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
    <o:vm xmlns:o="http://example.org/not-ovirt">
      <o:device mac_address="00:1a:4a:16:01:52"><o:custom><o:passthrough>true</o:passthrough></o:custom></o:device>
    </o:vm>
    <vm xmlns="http://ovirt.org/vm/1.0">
      <device mac_address="00:1A:4A:16:01:51"><custom><passthrough>true</passthrough><vlan>100</vlan></custom></device>
      <device mac_address="not a mac"><custom><passthrough>true</passthrough></custom></device>
    </vm>
    <x:vm xmlns:x="http://ovirt.org/vm/1.0">
      <x:device mac_address="00:1a:4a:16:01:53"><x:custom><x:sriov_pf>ens1f1</x:sriov_pf></x:custom></x:device>
    </x:vm>
  </metadata>
</domain>)"));
    const auto entries = device_metadata(doc.child("domain"));
    ASSERT_EQ(entries.size(), 1u) << "another namespace is not oVirt's; VDSM reads the first oVirt <vm> only";
    EXPECT_EQ(entries[0].mac, "00:1a:4a:16:01:51");
    EXPECT_EQ(entries[0].custom.at("passthrough"), "true");
    EXPECT_EQ(entries[0].custom.at("vlan"), "100");
    EXPECT_FALSE(entries[0].alias);

    pugi::xml_document prefixed;
    ASSERT_TRUE(parse_xml(prefixed, R"(<domain><metadata><x:vm xmlns:x="http://ovirt.org/vm/1.0">
      <x:device mac_address="00:1a:4a:16:01:53" alias="ua-1"><x:custom><x:sriov_pf>ens1f1</x:sriov_pf></x:custom></x:device>
    </x:vm></metadata></domain>)"));
    const auto more = device_metadata(prefixed.child("domain"));
    ASSERT_EQ(more.size(), 1u);
    EXPECT_EQ(more[0].custom.at("sriov_pf"), "ens1f1");
    EXPECT_EQ(more[0].alias, "ua-1");
}

// VDSM's rule (lib/vdsm/virt/vmdevices/network.py, get_identifying_attrs;
// lib/vdsm/virt/metadata.py, _match_args): MAC alone for a plain vNIC, MAC
// and alias for a teamed one; an entry matches when it has every one of
// those attributes with the same value.
TEST(Metadata, MatchedAsVdsmMatchesThem) {
    pugi::xml_document doc;
    ASSERT_TRUE(parse_xml(doc, R"(<domain>
  <devices>
    <interface type="bridge"><mac address="00:1a:4a:16:01:51"/><alias name="ua-a"/></interface>
    <interface type="bridge"><mac address="00:1a:4a:16:01:52"/><alias name="ua-b"/><teaming type="persistent"/></interface>
    <interface type="hostdev"><mac address="00:1a:4a:16:01:52"/><alias name="ua-b-vf"/><teaming type="transient" persistent="ua-b"/></interface>
  </devices>
  <metadata><ovirt-vm:vm xmlns:ovirt-vm="http://ovirt.org/vm/1.0">
    <ovirt-vm:device mac_address="00:1a:4a:16:01:51" alias="ua-other"/>
    <ovirt-vm:device mac_address="00:1a:4a:16:01:52"/>
    <ovirt-vm:device mac_address="00:1a:4a:16:01:52" alias="ua-b-vf"/>
  </ovirt-vm:vm></metadata>
</domain>)"));
    const auto entries = device_metadata(doc.child("domain"));
    ASSERT_EQ(entries.size(), 3u);
    const auto vnics = find_vnics(doc.child("domain"));
    ASSERT_EQ(vnics.size(), 3u);
    EXPECT_FALSE(vnics[0].teamed);
    EXPECT_TRUE(vnics[1].teamed);

    const auto plain = metadata_for(entries, vnics[0]);
    ASSERT_EQ(plain.size(), 1u) << "a plain vNIC is matched by MAC; the entry's alias does not matter";
    EXPECT_EQ(plain[0], &entries[0]);
    EXPECT_TRUE(metadata_for(entries, vnics[1]).empty()) << "a teamed vNIC needs an entry with its alias too";
    const auto vf = metadata_for(entries, vnics[2]);
    ASSERT_EQ(vf.size(), 1u);
    EXPECT_EQ(vf[0], &entries[2]);
}

}  // namespace
}  // namespace sriovpt
