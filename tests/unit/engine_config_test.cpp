// The engine-config line in the README defines the custom properties with
// regular expressions; the engine refuses values they do not match. They
// must accept exactly what the hooks accept: this test takes the line from
// the README itself and feeds the same values to both.
#include <gtest/gtest.h>

#include <regex>

#include "error.hpp"
#include "harness.hpp"
#include "properties.hpp"
#include "text.hpp"

namespace sriovpt {
namespace {

// name -> regular expression, from '{type=interface;prop={a=re;b=re}}'.
std::map<std::string, std::string> readme_properties() {
    const auto readme = test::read_text(SRIOVPT_README);
    const std::string key = "CustomDeviceProperties='{type=interface;prop={";
    const auto start = readme.find(key);
    if (start == std::string::npos) throw std::runtime_error("no engine-config line in the README");
    const auto end = readme.find("}}'", start);
    std::map<std::string, std::string> out;
    std::string body = readme.substr(start + key.size(), end - start - key.size());
    for (const auto& item : split(body, ';')) {
        const auto eq = item.find('=');
        out[item.substr(0, eq)] = item.substr(eq + 1);
    }
    return out;
}

bool hook_accepts(const std::string& name, const std::string& value) {
    try {
        parse_properties([&](std::string_view n) -> std::optional<std::string> {
            if (n == name) return value;
            return std::nullopt;
        });
        return true;
    } catch (const Error&) {
        return false;
    }
}

TEST(EngineConfig, RegexesAcceptExactlyWhatTheHooksAccept) {
    const auto props = readme_properties();
    const std::map<std::string, std::vector<std::string>> samples{
        {"passthrough", {"true", "false", "True", "yes", "1", " true", "true ", "truefalse"}},
        {"failover", {"true", "false", "FALSE", "no", "0"}},
        {"numa", {"required", "preferred", "ignore", "Required", "PREFERRED", "strict", "none", " ignore", "ignore ",
                  "requiredpreferred", "required,preferred", "prefer", "0"}},
        {"vlan", {"1", "9", "10", "99", "100", "999", "1000", "3999", "4000", "4089", "4090", "4094", "4095", "5000",
                  "0", "00", "01", "0100", "-1", "+1", "1.0", "12a", " 100", "40940", "10000"}},
        {"sriov_pf", {"ens1f0", "ens1f0,ens1f1", "ens1f0, ens1f1", " ens1f0 ,ens1f1 ", "enp59s0f0np0", "eth0.100",
                      "_x", "a", "abcdefghijklmno", "abcdefghijklmnop", ".", "..", "../etc", "/etc", "-x", ".x",
                      "a/b", "ens1f0,", ",ens1f0", "ens1f0,,ens1f1", "ens 1", "ens1f0;rm", "a,b,c,d"}},
        {"vf_trust", {"on", "off", "On", "true", "1", " on", "on ", "onoff"}},
        {"vf_spoofchk", {"on", "off", "OFF", "false", "0", "yes"}},
        {"vf_max_tx_rate", {"0", "1", "9", "10", "100", "999", "1000", "99999", "100000", "999999", "1000000", "1000001", "1999999",
          "9999999", "10000000", "00", "01", "-1", "+1", "1.5", " 100", "100 ", "1e3", "x"}},
        {"vf_min_tx_rate", {"0", "1", "9", "10", "100", "999", "1000", "99999", "100000", "999999", "1000000", "1000001", "1999999",
          "9999999", "10000000", "00", "01", "-1", "+1", "1.5", " 100", "100 ", "1e3", "x"}},
        {"vf_link_state", {"auto", "enable", "disable", "Auto", "up", "down", "enabled", " auto", "autoenable"}},
    };
    ASSERT_EQ(props.size(), samples.size()) << "every property has a regular expression in the README";
    for (const auto& [name, values] : samples) {
        ASSERT_TRUE(props.count(name)) << name;
        const std::regex re(props.at(name), std::regex::ECMAScript);
        int accepted = 0;
        for (const auto& v : values) {
            const bool by_engine = std::regex_search(v, re);
            EXPECT_EQ(by_engine, hook_accepts(name, v)) << name << "='" << v << "'";
            accepted += by_engine;
        }
        EXPECT_GT(accepted, 0) << name;
        EXPECT_LT(accepted, static_cast<int>(values.size())) << name;
    }
}

TEST(EngineConfig, EveryRateUpToTheMaximumAndNoOther) {
    for (const auto* name : {"vf_max_tx_rate", "vf_min_tx_rate"}) {
        const std::regex re(readme_properties().at(name));
        for (int n = -5; n <= 1000100; n += (n > 1100 && n < 999900) ? 997 : 1) {
            EXPECT_EQ(std::regex_search(std::to_string(n), re), n >= 0 && n <= 1000000) << name << " " << n;
        }
    }
}

TEST(EngineConfig, NoBraceOrSemicolonInARegex) {
    // Both belong to the value's own syntax ('{type=interface;prop={...}}').
    for (const auto& [name, re] : readme_properties()) {
        EXPECT_EQ(re.find_first_of("{};"), std::string::npos) << name << "=" << re;
    }
}

TEST(EngineConfig, EveryVlanTagAndNoOther) {
    const std::regex re(readme_properties().at("vlan"));
    for (int n = -5; n <= 5000; ++n) {
        EXPECT_EQ(std::regex_search(std::to_string(n), re), n >= 1 && n <= 4094) << n;
    }
}

}  // namespace
}  // namespace sriovpt
