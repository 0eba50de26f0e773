// VF settings in the hooks (common/vf_settings.hpp): the values, the
// network defaults, the record's version 3, giving a record back, and
// running the helper with a bounded wait.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <chrono>
#include <sstream>

#include "config.hpp"
#include "error.hpp"
#include "harness.hpp"
#include "properties.hpp"
#include "reservations.hpp"
#include "vf_settings.hpp"

namespace sriovpt {
namespace {

using test::TempDir;
using test::write_text;

std::string problem_of(const std::function<void()>& f) {
    try {
        f();
        return "(no error)";
    } catch (const Error& e) {
        return e.what();
    }
}

Reservation sample() { return test::sample_reservation(); }

VfSettings all_settings() {
    VfSettings s;
    s.trust = true;
    s.spoofchk = false;
    s.max_tx_rate = 1000;
    s.min_tx_rate = 100;
    s.link_state = "enable";
    return s;
}

TEST(VfSettings, ValuesAreCheckedAndNamed) {
    VfSettings s;
    set_vf_setting(s, "vf_trust", "on");
    set_vf_setting(s, "vf_spoofchk", "off");
    set_vf_setting(s, "vf_max_tx_rate", "1000000");
    set_vf_setting(s, "vf_min_tx_rate", "0");
    set_vf_setting(s, "vf_link_state", "disable");
    EXPECT_EQ(s.trust, true);
    EXPECT_EQ(s.spoofchk, false);
    EXPECT_EQ(s.max_tx_rate, 1000000u);
    EXPECT_EQ(s.min_tx_rate, 0u);
    EXPECT_EQ(s.link_state, "disable");
    EXPECT_EQ(problem_of([&] { set_vf_setting(s, "vf_trust", "true"); }),
              "vf_trust='true' is not allowed (allowed: on or off)");
    EXPECT_EQ(problem_of([&] { set_vf_setting(s, "vf_max_tx_rate", "1000001"); }),
              "vf_max_tx_rate='1000001' is not allowed (allowed: a whole number of Mbps from 0 to 1000000, 0 = no "
              "limit)");
    EXPECT_EQ(problem_of([&] { set_vf_setting(s, "vf_min_tx_rate", "010"); }).substr(0, 31),
              "vf_min_tx_rate='010' is not all");
    EXPECT_EQ(problem_of([&] { set_vf_setting(s, "vf_link_state", "up"); }),
              "vf_link_state='up' is not allowed (allowed: auto, enable or disable)");
}

TEST(VfSettings, VnicOverridesTheNetworkAndRatesGoTogether) {
    VfSettings network;
    network.trust = false;
    network.max_tx_rate = 1000;
    VfSettings vnic;
    vnic.trust = true;
    vnic.min_tx_rate = 200;
    const auto s = effective_vf_settings(vnic, network);
    EXPECT_EQ(s.trust, true);
    EXPECT_EQ(s.max_tx_rate, 1000u);
    EXPECT_EQ(s.min_tx_rate, 200u);
    EXPECT_EQ(describe_vf_settings(s), "trust=on max_tx_rate=1000 min_tx_rate=200");

    VfSettings only_max;
    only_max.max_tx_rate = 500;
    EXPECT_EQ(helper_words(effective_vf_settings(only_max, {})),
              (std::vector<std::string>{"max_tx_rate=500", "min_tx_rate=0"}));
    VfSettings min_without_limit;
    min_without_limit.min_tx_rate = 300;
    EXPECT_EQ(effective_vf_settings(min_without_limit, {}).max_tx_rate, 0u) << "0 is no limit: any minimum fits";

    VfSettings too_high;
    too_high.min_tx_rate = 2000;
    EXPECT_EQ(problem_of([&] { effective_vf_settings(too_high, network); }),
              "vf_min_tx_rate 2000 (the vNIC's property) is above vf_max_tx_rate 1000 (the network's default); the "
              "minimum must not exceed the maximum (0 = no limit)");
    EXPECT_TRUE(effective_vf_settings({}, {}).empty());
}

TEST(VfSettings, PropertiesAreValidatedLikeTheOthers) {
    const auto props = [](std::map<std::string, std::string> values) {
        return parse_properties([values](std::string_view name) -> std::optional<std::string> {
            const auto it = values.find(std::string(name));
            if (it == values.end()) return std::nullopt;
            return it->second;
        });
    };
    EXPECT_TRUE(props({{"passthrough", "true"}}).vf.empty());
    EXPECT_TRUE(props({{"vf_trust", ""}}).vf.empty()) << "a blank property is unset";
    EXPECT_EQ(props({{"vf_trust", "on"}, {"vf_link_state", "auto"}}).vf.link_state, "auto");
    EXPECT_EQ(problem_of([&] { props({{"vf_spoofchk", "yes"}}); }),
              "property vf_spoofchk='yes' is not allowed (allowed: on or off)");
}

TEST(VfSettings, NetworkDefaultsAndOnErrorInTheConfiguration) {
    const std::string in(
        "vf_helper = /opt/helper\n[network.a]\npfs = ens1f0\nvf_trust = on\nvf_max_tx_rate = 100\non_error = warn\n"
        "[network.b]\npfs = ens2f0\n");
    const auto c = parse_config(in, "t.conf");
    EXPECT_EQ(c.vf_helper, "/opt/helper");
    EXPECT_EQ(c.network("a")->vf.trust, true);
    EXPECT_EQ(c.network("a")->on_error, OnError::warn);
    EXPECT_TRUE(c.network("b")->vf.empty());
    EXPECT_EQ(c.network("b")->on_error, OnError::fail) << "fail unless told otherwise";
    EXPECT_EQ(Config{}.vf_helper, "/usr/libexec/sriov-passthrough/sriov-passthrough-vf-helper");

    const auto bad = [](const std::string& text) {
        return problem_of([&] { parse_config(text, "t.conf"); });
    };
    EXPECT_EQ(bad("[network.a]\npfs = x\non_error = ignore\n"),
              "configuration t.conf: [network.a] on_error: 'ignore' is not allowed (allowed: fail or warn)");
    EXPECT_EQ(bad("[network.a]\npfs = x\nvf_min_tx_rate = 10\nvf_max_tx_rate = 5\n"),
              "configuration t.conf: [network.a]: vf_min_tx_rate 10 (the network's default) is above vf_max_tx_rate 5 "
              "(the network's default); the minimum must not exceed the maximum (0 = no limit)");
    EXPECT_EQ(bad("[network.a]\npfs = x\nvf_link_state = up\n"),
              "configuration t.conf: [network.a] vf_link_state='up' is not allowed (allowed: auto, enable or disable)");
    EXPECT_EQ(bad("vf_helper = helper\n"), "configuration t.conf: vf_helper = 'helper' is not an absolute path");
}

TEST(RecordVersion3, HoldsSettingsAndThePendingResetExactly) {
    auto r = sample();
    r.vf_settings = all_settings();
    EXPECT_EQ(format_record(r),
              "sriov-passthrough-reservation 3\n"
              "pci 0000:3b:02.1\npf ens1f0\nvf_index 1\nvm_id 9c1f3d7e-2b44-4a51-8e0c-5d6a7b8c9d01\n"
              "mac 00:1a:4a:16:01:51\nnetwork sriovnet\nvlan 100\nboot_id 06903289-b3ab-4a3c-810c-fab67696ebbb\n"
              "created 1763890000\norigin before_vm_start\n"
              "vf_settings trust=on,spoofchk=off,max_tx_rate=1000,min_tx_rate=100,link_state=enable\n"
              "vf_reset -\nend\n");
    EXPECT_EQ(parse_record(format_record(r)), r);
    r.reset_pending = true;
    r.network = "-";  // needs version 2's encoding, which version 3 has
    EXPECT_NE(format_record(r).find("network %2D\n"), std::string::npos);
    EXPECT_NE(format_record(r).find("vf_reset pending\n"), std::string::npos);
    EXPECT_EQ(parse_record(format_record(r)), r);
}

TEST(RecordVersion3, WrittenOnlyForAVfWithSettings) {
    EXPECT_EQ(format_record(sample()).substr(0, 32), "sriov-passthrough-reservation 1\n");
    auto named = sample();
    named.network = "a\nb";
    EXPECT_EQ(format_record(named).substr(0, 32), "sriov-passthrough-reservation 2\n");
}

TEST(RecordVersion3, TruncatedOrBadIsDamaged) {
    auto r = sample();
    r.vf_settings.trust = true;
    const auto text = format_record(r);
    for (size_t n = 0; n < text.size(); ++n) {
        EXPECT_NE(problem_of([&] { parse_record(text.substr(0, n)); }), "(no error)") << "truncated at " << n;
    }
    const auto with = [&](const std::string& from, const std::string& to) {
        auto t = text;
        t.replace(t.find(from), from.size(), to);
        return problem_of([&] { parse_record(t); });
    };
    EXPECT_EQ(with("vf_settings trust=on", "vf_settings trust=yes"),
              "vf_settings: vf_trust='yes' is not allowed (allowed: on or off)");
    EXPECT_EQ(with("vf_settings trust=on", "vf_settings colour=blue"), "vf_settings: unknown VF setting 'colour=blue'");
    EXPECT_EQ(with("vf_settings trust=on", "vf_settings link_state=auto,trust=on"),
              "vf_settings: VF settings 'link_state=auto,trust=on' are not in the written form");
    EXPECT_EQ(with("vf_reset -", "vf_reset soon"), "vf_reset 'soon' is not '-' or 'pending'");
    EXPECT_EQ(with("vf_reset -\n", ""), "'vf_reset' is missing");
    // Version 1 and 2 records do not have these lines.
    auto v1 = format_record(sample());
    v1.insert(v1.find("end\n"), "vf_settings trust=on\n");
    EXPECT_EQ(problem_of([&] { parse_record(v1); }), "unknown key 'vf_settings'");
}

class Retire : public testing::Test {
protected:
    Retire() : store_(dir_.path() + "/state", std::chrono::seconds(1)) {}
    TempDir dir_;
    ReservationStore store_;
};

TEST_F(Retire, ARecordWithoutSettingsGoes) {
    const auto r = sample();
    ASSERT_TRUE(store_.create(r));
    const auto lock = store_.lock();
    EXPECT_EQ(retire_record(store_, r, r.boot_id), r);
    EXPECT_TRUE(store_.load().empty());
    EXPECT_EQ(retire_record(store_, r, r.boot_id), std::nullopt) << "nothing to give back";
}

TEST_F(Retire, ARecordWithSettingsStaysMarkedUntilItsReset) {
    auto r = sample();
    r.vf_settings.trust = true;
    ASSERT_TRUE(store_.create(r));
    const auto lock = store_.lock();
    const auto kept = retire_record(store_, r, r.boot_id);
    ASSERT_TRUE(kept);
    EXPECT_TRUE(kept->reset_pending);
    const auto entries = store_.load();
    ASSERT_EQ(entries.size(), 1u);
    EXPECT_EQ(entries[0].record, kept);
    EXPECT_EQ(retire_record(store_, *kept, r.boot_id), kept) << "marked once; kept";
    for (const auto& name : store_.list()) EXPECT_NE(name.rfind(".tmp-", 0), 0u) << "a temporary left: " << name;
}

TEST_F(Retire, ARecordOfAnEarlierBootGoesWithItsSettings) {
    auto r = sample();
    r.vf_settings.trust = true;
    ASSERT_TRUE(store_.create(r));
    const auto lock = store_.lock();
    // The kernel made the VFs afresh at boot: nothing to reset.
    EXPECT_TRUE(retire_record(store_, r, "another-boot"));
    EXPECT_TRUE(store_.load().empty());
}

class Helper : public testing::Test {
protected:
    std::string script(const std::string& body) {
        const auto path = dir_.path() + "/helper";
        write_text(path, "#!/bin/sh\n" + body + "\n");
        ::chmod(path.c_str(), 0755);
        return path;
    }
    TempDir dir_;
};

TEST_F(Helper, ExitStatusAndItsLastLine) {
    const auto run = run_helper(script("echo first >&2; echo \"$1 $2\" >&2; exit 1"), {"apply", "0000:3b:02.1"},
                                std::chrono::seconds(5));
    EXPECT_EQ(run.status, 1);
    EXPECT_EQ(run.line, "apply 0000:3b:02.1");
    EXPECT_TRUE(run.changed_nothing()) << "1: every change undone";
    EXPECT_EQ(run.text(), "apply 0000:3b:02.1");
}

TEST_F(Helper, StatusesThatLeaveTheVfChanged) {
    for (const int status : {0, 5, 9}) {
        const auto run = run_helper(script("exit " + std::to_string(status)), {}, std::chrono::seconds(5));
        EXPECT_EQ(run.status, status);
        EXPECT_FALSE(run.changed_nothing()) << status;
    }
}

TEST_F(Helper, TheEnvironmentIsEmpty) {
    ::setenv("SRIOVPT_SECRET", "x", 1);
    const auto run = run_helper(script("echo \"[${SRIOVPT_SECRET:-}]\""), {}, std::chrono::seconds(5));
    ::unsetenv("SRIOVPT_SECRET");
    EXPECT_EQ(run.line, "[]");
}

TEST_F(Helper, AHelperThatHangsIsKilledAtTheDeadline) {
    const auto start = std::chrono::steady_clock::now();
    const auto run = run_helper(script("exec sleep 30"), {}, std::chrono::milliseconds(1000));
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_LT(took, std::chrono::seconds(5));
    EXPECT_EQ(run.status, -1);
    EXPECT_NE(run.failure.find("did not finish within 1 s and was killed"), std::string::npos) << run.failure;
    EXPECT_FALSE(run.changed_nothing()) << "it may have made anything";
}

TEST_F(Helper, OneThatClosesItsOutputAndStaysIsKilledToo) {
    const auto run = run_helper(script("exec >/dev/null 2>&1; sleep 30"), {}, std::chrono::milliseconds(1000));
    EXPECT_EQ(run.status, -1);
    EXPECT_NE(run.failure.find("did not finish"), std::string::npos) << run.failure;
}

TEST_F(Helper, MissingOrNotExecutableSaysSoAndChangedNothing) {
    const auto missing = run_helper(dir_.path() + "/nope", {}, std::chrono::seconds(5));
    EXPECT_EQ(missing.failure, "cannot be run: " + dir_.path() + "/nope: No such file or directory");
    EXPECT_TRUE(missing.changed_nothing());
    const auto path = dir_.path() + "/plain";
    write_text(path, "#!/bin/sh\n");
    const auto plain = run_helper(path, {}, std::chrono::seconds(5));
    EXPECT_EQ(plain.failure, "cannot be run: " + path + ": Permission denied");
    EXPECT_TRUE(plain.changed_nothing());
}

}  // namespace
}  // namespace sriovpt
