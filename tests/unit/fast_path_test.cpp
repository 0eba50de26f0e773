// The fast path (common/fast_path.hpp) may only skip what the full hook
// would not touch: checked on every domain the tests use.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include "domain_xml.hpp"
#include "fast_path.hpp"
#include "harness.hpp"
#include "hooks.hpp"

namespace sriovpt {
namespace {

TEST(FastPath, ThePropertyRuleIsTheHooksRule) {
    EXPECT_FALSE(asks_for_passthrough_value(nullptr));
    EXPECT_FALSE(asks_for_passthrough_value(""));
    EXPECT_FALSE(asks_for_passthrough_value("false"));
    EXPECT_TRUE(asks_for_passthrough_value("true"));
    EXPECT_TRUE(asks_for_passthrough_value("yes")) << "a bad value is ours to refuse, not to skip";
    EXPECT_TRUE(asks_for_passthrough_value("False")) << "values are case-sensitive, as the engine's regex is";
}

TEST(FastPath, NamesOurPropertiesOnlyWhenTheBytesAreThere) {
    EXPECT_FALSE(names_our_properties(""));
    EXPECT_FALSE(names_our_properties("<domain><devices/></domain>"));
    EXPECT_TRUE(names_our_properties("<ovirt-vm:passthrough>true</ovirt-vm:passthrough>"));
    EXPECT_TRUE(names_our_properties("<x:failover>true</x:failover>"));
}

// Every domain of the tests that concerns before_vm_start names a property,
// so the fast path never skips it.
TEST(FastPath, NeverSkipsADomainThatConcernsUs) {
    std::vector<std::string> domains{
        test::make_domain({{"00:1a:4a:16:01:51", "sriovnet", {{"passthrough", "true"}}}}),
        test::make_domain({{"00:1a:4a:16:01:51", "sriovnet", {{"failover", "true"}, {"passthrough", "true"}}}}),
        test::make_domain({{"00:1a:4a:16:01:51", "sriovnet", {{"passthrough", "yes"}}}}),
        test::make_domain({{"00:1a:4a:16:01:10", "ovirtmgmt"}}),
        test::make_domain({{"00:1a:4a:16:01:10", "ovirtmgmt", {{"vlan", "5"}}}}),
        test::test_data("fixtures/engine-domain.xml"),
    };
    for (const auto& e : std::filesystem::directory_iterator(SRIOVPT_GOLDEN_DIR)) domains.push_back(test::read_text(e.path()));
    int ours = 0;
    for (const auto& text : domains) {
        pugi::xml_document doc;
        ASSERT_TRUE(parse_xml(doc, text));
        // Only domains: other documents are bad input at these hook points,
        // which the fast path leaves to libvirt when they name nothing of ours.
        if (std::string_view(doc.document_element().name()) != "domain") continue;
        const HookEnv env{std::nullopt, [](std::string_view) { return std::nullopt; }, {}};
        for (const auto hp : {HookPoint::before_vm_start, HookPoint::before_vm_migrate_source,
                              HookPoint::before_vm_migrate_destination}) {
            if (!concerns_us(hp, doc, env)) continue;
            ++ours;
            EXPECT_TRUE(names_our_properties(text)) << hook_point_name(hp) << ":\n" << text;
        }
    }
    EXPECT_GE(ours, 9) << "the check above must have had something to check";
}

// A start reads VDSM's file once: what the early check read goes to main,
// for that file only, and once.
TEST(FastPath, KeepsWhatItReadForMain) {
    test::TempDir dir;
    const auto path = dir.path() + "/domxml";
    const auto text = test::make_domain({{"00:1a:4a:16:01:51", "sriovnet", {{"passthrough", "true"}}}});
    test::write_text(path, text);
    ASSERT_EQ(::chmod(path.c_str(), 0604), 0);
    ASSERT_EQ(::setenv("_hook_domxml", path.c_str(), 1), 0);
    EXPECT_FALSE(plainly_not_ours(HookPoint::before_vm_start));
    EXPECT_FALSE(take_early_domain_xml(path + ".other")) << "another file's name gets nothing";
    EXPECT_FALSE(take_early_domain_xml(path)) << "taken (and dropped) by the question above";
    EXPECT_FALSE(plainly_not_ours(HookPoint::before_vm_start));
    const auto early = take_early_domain_xml(path);
    ASSERT_TRUE(early);
    EXPECT_EQ(early->text, text);
    EXPECT_EQ(early->mode & 07777, 0604u);
    EXPECT_FALSE(take_early_domain_xml(path)) << "once";
    // A file the early check waves through is not kept.
    test::write_text(path, test::make_domain({{"00:1a:4a:16:01:10", "ovirtmgmt"}}));
    EXPECT_TRUE(plainly_not_ours(HookPoint::before_vm_start));
    EXPECT_FALSE(take_early_domain_xml(path));
    ::unsetenv("_hook_domxml");
}

}  // namespace
}  // namespace sriovpt
