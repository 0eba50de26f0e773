// Properties, configuration, PCI addresses and the small text helpers.
#include <gtest/gtest.h>

#include <unistd.h>

#include <sstream>

#include "config.hpp"
#include "domain_xml.hpp"
#include "error.hpp"
#include "pci.hpp"
#include "properties.hpp"
#include "text.hpp"

namespace sriovpt {
namespace {

PropertyLookup props(std::map<std::string, std::string> values) {
    return [values](std::string_view name) -> std::optional<std::string> {
        const auto it = values.find(std::string(name));
        if (it == values.end()) return std::nullopt;
        return it->second;
    };
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(Properties, NothingSetMeansNoPassthrough) {
    const auto p = parse_properties(props({}));
    EXPECT_FALSE(p.passthrough);
    EXPECT_FALSE(p.vlan);
    EXPECT_TRUE(p.sriov_pf.empty());
}

TEST(Properties, ValidValues) {
    const auto p = parse_properties(props({{"passthrough", "true"}, {"vlan", "4094"}, {"sriov_pf", "ens1f0, ens1f1"}}));
    EXPECT_TRUE(p.passthrough);
    EXPECT_EQ(p.vlan, 4094u);
    EXPECT_EQ(p.sriov_pf, (std::vector<std::string>{"ens1f0", "ens1f1"}));
    EXPECT_FALSE(parse_properties(props({{"passthrough", "false"}})).passthrough);
    EXPECT_EQ(parse_properties(props({{"vlan", "1"}})).vlan, 1u);
}

TEST(Properties, EmptyValueIsUnset) {
    EXPECT_FALSE(parse_properties(props({{"vlan", ""}, {"passthrough", ""}})).vlan);
    EXPECT_THROW(parse_properties(props({{"passthrough", " true"}})), Error) << "the engine's regex refuses it too";
}

TEST(Properties, OutOfRangeNamesPropertyValueAndRange) {
    for (const auto* bad : {"0", "4095", "-1", "01", "1e3", "ten", "100 200"}) {
        const auto msg = error_of([&] { parse_properties(props({{"vlan", bad}})); });
        EXPECT_NE(msg.find("property vlan"), std::string::npos) << msg;
        EXPECT_NE(msg.find(std::string("'") + bad + "'"), std::string::npos) << msg;
        EXPECT_NE(msg.find("1 to 4094"), std::string::npos) << msg;
    }
    const auto msg = error_of([] { parse_properties(props({{"passthrough", "yes"}})); });
    EXPECT_EQ(msg, "property passthrough='yes' is not allowed (allowed: true or false)");
}

// A property value is echoed quoted, with control characters escaped and
// a long one cut: never a line split by a newline, never 100 000 digits.
TEST(Properties, OddValuesAreQuotedInMessages) {
    EXPECT_EQ(error_of([] { parse_properties(props({{"vlan", std::string(100000, '9')}})); }),
              "property vlan: '" + std::string(64, '9') +
                  "...' (100000 bytes) is not a VLAN tag (allowed: a whole number from 1 to 4094)");
    EXPECT_EQ(error_of([] { parse_properties(props({{"passthrough", "true\nfake: line"}})); }),
              "property passthrough='true\\nfake: line' is not allowed (allowed: true or false)");
    const auto pf = error_of([] { parse_properties(props({{"sriov_pf", "ens1f0,\xc3(\t"}})); });
    EXPECT_EQ(pf.rfind("property sriov_pf: 'ens1f0,\\xc3(\\t' is not a list of PF names", 0), 0u) << pf;
}

TEST(Properties, PfNamesCannotEscapeSysfs) {
    for (const auto* bad : {"../etc", "/etc/passwd", "ens1f0,..", ".", "a/b", "ens1f0,,ens1f1", "averyverylongname0"}) {
        const auto msg = error_of([&] { parse_properties(props({{"sriov_pf", bad}})); });
        EXPECT_NE(msg.find("property sriov_pf"), std::string::npos) << bad << ": " << msg;
    }
    EXPECT_TRUE(is_valid_ifname("enp59s0f1"));
    EXPECT_TRUE(is_valid_ifname("eth0.100"));
}

TEST(Config, MissingDefaultFileMeansDefaults) {
    if (::access(kDefaultConfigPath, F_OK) == 0) GTEST_SKIP() << kDefaultConfigPath << " exists on this machine";
    const auto c = load_config(kDefaultConfigPath);
    EXPECT_EQ(c.sysfs_root, "/sys");
    EXPECT_EQ(c.state_dir, "/run/vdsm/hooks/sriov_passthrough");
    EXPECT_EQ(c.libvirt_uri, "qemu:///system");
    EXPECT_EQ(c.lock_timeout, 10u);
    EXPECT_TRUE(c.networks.empty());
}

// A file named on purpose ($SRIOV_PASSTHROUGH_CONF, --config) that is not
// there is a typo; it used to mean all defaults, the real /sys and state
// directory included.
TEST(Config, MissingNamedFileIsAnError) {
    EXPECT_EQ(error_of([] { load_config("/nonexistent/sriov_passthrough.conf"); }),
              "configuration /nonexistent/sriov_passthrough.conf does not exist (named by $SRIOV_PASSTHROUGH_CONF or "
              "--config; only /etc/vdsm/hooks/sriov_passthrough.conf may be missing)");
}

// Values from the file are quoted, escaped and cut in messages.
TEST(Config, OddValuesAreQuotedInMessages) {
    const auto error_for = [](const std::string& text) {
        return error_of([&] { parse_config(text, "my.conf"); });
    };
    EXPECT_EQ(error_for("[network.x]\npfs = ens1f0\nvlan = " + std::string(100000, '7') + "\n"),
              "configuration my.conf: [network.x] vlan: '" + std::string(64, '7') +
                  "...' (100000 bytes) is not a VLAN tag (allowed: a whole number from 1 to 4094)");
    EXPECT_EQ(error_for("lock_timeout = 1\x1b[2J\n"),
              "configuration my.conf: lock_timeout = '1\\x1b[2J' is not a whole number of seconds from 1 to 600");
    EXPECT_EQ(error_for("state_dir = it's\xff\n"), "configuration my.conf: state_dir = 'it\\'s\\xff' is not an absolute path");
    EXPECT_EQ(error_for("[network.a b]\npfs = ens1f0\n"),
              "configuration my.conf: network name 'a b' is not allowed (only letters, digits, '-' and '_')");
}

TEST(Config, DesignExampleParses) {
    const std::string text(R"(sysfs_root = /tmp/sys                              # tests point this at a fake tree
state_dir = /tmp/state  # reservation records
libvirt_uri = none
lock_timeout = 3
reclaim_grace = 0
check_domains = yes

[network.sriovnet]       # oVirt logical network
pfs = ens1f0, ens1f1     # PF net devices
vlan = 100
[network.other-net_2]
pfs = ens2f0
)");
    const auto c = parse_config(text, "test.conf");
    EXPECT_EQ(c.sysfs_root, "/tmp/sys");
    EXPECT_EQ(c.state_dir, "/tmp/state");
    EXPECT_FALSE(c.libvirt_enabled());
    EXPECT_EQ(c.lock_timeout, 3u);
    EXPECT_EQ(c.reclaim_grace, 0u);
    EXPECT_TRUE(c.check_domains);
    ASSERT_NE(c.network("sriovnet"), nullptr);
    EXPECT_EQ(c.network("sriovnet")->pfs, (std::vector<std::string>{"ens1f0", "ens1f1"}));
    EXPECT_EQ(c.network("sriovnet")->vlan, 100u);
    ASSERT_NE(c.network("other-net_2"), nullptr);
    EXPECT_FALSE(c.network("other-net_2")->vlan);
    EXPECT_EQ(c.network("ovirtmgmt"), nullptr);
}

TEST(Config, ErrorsNameFileKeyAndValue) {
    const auto error_for = [](const std::string& text) {
        return error_of([&] { parse_config(text, "my.conf"); });
    };
    EXPECT_EQ(error_for("lock_timout = 5\n").rfind("configuration my.conf: unknown key 'lock_timout'", 0), 0u);
    EXPECT_NE(error_for("lock_timeout = 0\n").find("lock_timeout = '0' is not a whole number of seconds from 1"),
              std::string::npos);
    EXPECT_NE(error_for("[network.x]\npfs = ens1f0\nvlan = 5000\n").find("[network.x] vlan: '5000' is not a VLAN tag"),
              std::string::npos);
    EXPECT_NE(error_for("[network.x]\npfs = ../../etc\n").find("[network.x] pfs"), std::string::npos);
    EXPECT_NE(error_for("[network.x]\nvlan = 5\n").find("[network.x] has no 'pfs' list"), std::string::npos);
    EXPECT_NE(error_for("[network.x]\npfs = a\nmtu = 9000\n").find("unknown key 'mtu' in [network.x]"),
              std::string::npos);
    EXPECT_NE(error_for("state_dir = relative/path\n").find("is not an absolute path"), std::string::npos);
    EXPECT_NE(error_for("this line has no equals sign\n").find("configuration my.conf: "), std::string::npos);
    EXPECT_NE(error_for("lock_timeout = 5\nlock_timeout = 6\n").find("set more than once"), std::string::npos);
    EXPECT_NE(error_for("check_domains = maybe\n").find("not a boolean"), std::string::npos);
}

TEST(Pci, ParsesAndFormatsBothSyntaxes) {
    const auto a = PciAddress::parse("0000:3b:02.1");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->to_string(), "0000:3b:02.1");
    EXPECT_EQ(a->bus_attr(), "0x3b");
    EXPECT_EQ(a->slot_attr(), "0x02");
    EXPECT_EQ(a->function_attr(), "0x1");
    EXPECT_EQ(a->domain_attr(), "0x0000");
    EXPECT_EQ(PciAddress::from_libvirt("0x0000", "0x3b", "0x02", "0x1"), a);
    EXPECT_EQ(PciAddress::from_libvirt("0", "59", "2", "1"), a);
    for (const auto* bad : {"0000:3b:02", "0000:3b:20.1", "0000:3b:02.8", "000g:3b:02.1", "0000:3b:02.1 "})
        EXPECT_FALSE(PciAddress::parse(bad)) << bad;
    EXPECT_FALSE(PciAddress::from_libvirt("0", "0x3b", "0x20", "0"));
}

TEST(Text, ValidUtf8ReplacesWhatIsNotUtf8) {
    EXPECT_EQ(valid_utf8("plain ascii"), "plain ascii");
    EXPECT_EQ(valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    const std::string fffd = "\xef\xbf\xbd";
    EXPECT_EQ(valid_utf8("a\xff" "b"), "a" + fffd + "b");
    EXPECT_EQ(valid_utf8("\xc0\xaf"), fffd + fffd) << "overlong '/'";
    EXPECT_EQ(valid_utf8("\xed\xa0\x80"), fffd + fffd + fffd) << "a surrogate";
    EXPECT_EQ(valid_utf8("\xf4\x90\x80\x80"), fffd + fffd + fffd + fffd) << "past U+10FFFF";
    EXPECT_EQ(valid_utf8("\xe2\x82"), fffd + fffd) << "cut short";
    EXPECT_EQ(valid_utf8(std::string("a\0b", 3)), std::string("a\0b", 3)) << "NUL is UTF-8; JSON escapes it";
}

TEST(Text, PrintableAndQuotedKeepOneLine) {
    EXPECT_EQ(printable("a\nb\r\tc\x01\x7f"), "a\\nb\\r\\tc\\x01\\x7f");
    EXPECT_EQ(printable("\xff\xc2\x9b[31m caf\xc3\xa9"), "\\xff\\u009b[31m caf\xc3\xa9") << "C1 CSI escaped";
    EXPECT_EQ(printable("back\\slash 'q'"), "back\\slash 'q'");
    EXPECT_EQ(quoted("back\\slash 'q'"), "'back\\\\slash \\'q\\''");
    EXPECT_EQ(quoted(""), "''");
    EXPECT_EQ(printable("abcdef", 4), "abcd... (6 bytes)");
    EXPECT_EQ(quoted("abcdef", 4), "'abcd...' (6 bytes)");
    EXPECT_EQ(quoted("abcd", 4), "'abcd'");
    // Cut at a character boundary, never inside one.
    EXPECT_EQ(printable("ab\xc3\xa9\xc3\xa9", 3), "ab... (6 bytes)");
    EXPECT_EQ(printable("ab\xc3\xa9\xc3\xa9", 4), "ab\xc3\xa9... (6 bytes)");
}

std::string nested(size_t levels) {
    std::string out;
    for (size_t i = 0; i < levels; ++i) out += "<a>";
    for (size_t i = 0; i < levels; ++i) out += "</a>";
    return out;
}

TEST(DomainXml, DepthIsBoundedAsLibvirtBoundsIt) {
    pugi::xml_document doc;
    EXPECT_TRUE(parse_xml(doc, nested(kMaxXmlDepth)));
    const auto deep = parse_xml(doc, nested(kMaxXmlDepth + 1));
    EXPECT_FALSE(deep);
    EXPECT_EQ(deep.error, "is nested more than 256 elements deep (at byte 769); libvirt reads no document deeper than that");
    EXPECT_FALSE(doc.first_child()) << "a refused document is not handed on";
    // Text, comments and attributes at the deepest level are not elements.
    EXPECT_TRUE(parse_xml(doc, "<r>" + nested(kMaxXmlDepth - 2).insert((kMaxXmlDepth - 2) * 3, "<b x='1'>t<!--c--></b>") + "</r>"));
    EXPECT_EQ(parse_xml(doc, "<r><unclosed></r>").error, "is malformed at byte 15: Start-end tags mismatch");
}

TEST(DomainXml, EntityDeclarationsAreNoticed) {
    pugi::xml_document doc;
    const auto with = parse_xml(doc, "<!DOCTYPE domain [<!ENTITY n \"x\">]><domain>&n;</domain>");
    EXPECT_TRUE(with);
    EXPECT_TRUE(with.declares_entities);
    EXPECT_FALSE(parse_xml(doc, "<!DOCTYPE domain><domain>&amp;</domain>").declares_entities);
    EXPECT_FALSE(parse_xml(doc, "<domain>&lt;!ENTITY</domain>").declares_entities);
}

// Indentation grows with depth; past the first levels it stops, so the
// output stays within a few times the input, and the document is the same.
TEST(DomainXml, SerialisationIndentsOnlyTheFirstLevels) {
    pugi::xml_document doc;
    const auto in = "<r>" + nested(250) + "</r>";
    ASSERT_TRUE(parse_xml(doc, in));
    const auto out = serialize_xml(doc);
    EXPECT_LE(out.size(), 2 * in.size()) << out.substr(0, 2000);
    EXPECT_EQ(serialize_xml(doc), out) << "the document is left as it was";
    pugi::xml_document again;
    ASSERT_TRUE(parse_xml(again, out));
    EXPECT_EQ(serialize_xml(again), out);
    // The first levels as before.
    ASSERT_TRUE(parse_xml(doc, "<domain><devices><interface type='bridge'><mac address='m'/></interface></devices></domain>"));
    EXPECT_EQ(serialize_xml(doc), "<domain>\n  <devices>\n    <interface type=\"bridge\">\n      <mac address=\"m\" />\n"
                                  "    </interface>\n  </devices>\n</domain>\n");
}

TEST(Text, MacAndUuidNormalisation) {
    EXPECT_EQ(normalize_mac("00:1A:4a:16:01:51"), "00:1a:4a:16:01:51");
    EXPECT_FALSE(normalize_mac("00:1a:4a:16:01"));
    EXPECT_FALSE(normalize_mac("00-1a-4a-16-01-51"));
    EXPECT_EQ(normalize_uuid("9C1F3D7E-2B44-4A51-8E0C-5D6A7B8C9D01"), "9c1f3d7e-2b44-4a51-8e0c-5d6a7b8c9d01");
    EXPECT_FALSE(normalize_uuid("9c1f3d7e2b444a518e0c5d6a7b8c9d01"));
    EXPECT_EQ(parse_decimal("4094"), 4094ul);
    EXPECT_FALSE(parse_decimal("+1"));
    EXPECT_FALSE(parse_decimal(""));
}

}  // namespace
}  // namespace sriovpt
