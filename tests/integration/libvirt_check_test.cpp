// The libvirt checks used on every rewritten domain must themselves catch
// what each level is there to catch (docs/design.md, "Checking against
// libvirt").
#include <gtest/gtest.h>

#include "harness.hpp"

namespace sriovpt::test {
namespace {

std::string with_hostdev_interface(const std::string& extra) {
    auto xml = make_domain({});
    const std::string iface = R"(    <interface type="hostdev" managed="yes">
      <mac address="00:1a:4a:16:01:51"/>
      <source><address type="pci" domain="0x0000" bus="0x3b" slot="0x02" function="0x1"/></source>
      )" + extra + R"(
    </interface>
)";
    xml.insert(xml.find("  </devices>"), iface);
    return xml;
}

TEST(LibvirtCheck, AcceptsAPlainHostdevInterface) { EXPECT_EQ(libvirt_rejects(with_hostdev_interface("")), ""); }

TEST(LibvirtCheck, SchemaLevelCatchesUnknownElements) {
    EXPECT_NE(libvirt_rejects(with_hostdev_interface("<nonsense/>")).find("virt-xml-validate"), std::string::npos);
}

TEST(LibvirtCheck, TestDriverCatchesOneVfGivenTwice) {
    auto xml = with_hostdev_interface("");
    const auto start = xml.find("    <interface");
    const auto end = xml.find("</interface>\n", start) + 13;
    auto twin = xml.substr(start, end - start);
    twin.replace(twin.find("00:1a:4a:16:01:51"), 17, "00:1a:4a:16:01:52");
    xml.insert(end, twin);
    const auto why = libvirt_rejects(xml);
    EXPECT_NE(why.find("test driver"), std::string::npos) << why;
}

TEST(LibvirtCheck, QemuDriverCatchesMtuOnHostdev) {
    const auto why = libvirt_rejects(with_hostdev_interface(R"(<mtu size="9000"/>)"));
    EXPECT_NE(why.find("QEMU driver"), std::string::npos) << why;
    EXPECT_NE(why.find("MTU"), std::string::npos) << why;
}

}  // namespace
}  // namespace sriovpt::test
