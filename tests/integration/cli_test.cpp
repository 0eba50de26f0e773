// The operator's command, run as a program.
#include <gtest/gtest.h>

#include <cctype>

#include <filesystem>
#include <string_view>

#include "harness.hpp"
#include "text.hpp"

namespace sriovpt::test {
namespace {

// A strict JSON (RFC 8259) checker: true when `s` is one JSON value and
// nothing else. Enough to tell valid output from invalid, not a parser.
class JsonChecker {
public:
    explicit JsonChecker(std::string_view s) : s_(s) {}
    bool valid() {
        ws();
        if (!value()) return false;
        ws();
        return i_ == s_.size();
    }

private:
    bool value() {
        if (i_ >= s_.size()) return false;
        switch (s_[i_]) {
            case '{': return members('}', true);
            case '[': return members(']', false);
            case '"': return string();
            case 't': return literal("true");
            case 'f': return literal("false");
            case 'n': return literal("null");
            default: return number();
        }
    }
    bool members(char close, bool object) {
        ++i_;
        ws();
        if (peek(close)) return ++i_, true;
        for (;;) {
            if (object) {
                if (!string()) return false;
                ws();
                if (!peek(':')) return false;
                ++i_;
                ws();
            }
            if (!value()) return false;
            ws();
            if (peek(close)) return ++i_, true;
            if (!peek(',')) return false;
            ++i_;
            ws();
        }
    }
    bool string() {
        if (!peek('"')) return false;
        for (++i_; i_ < s_.size(); ++i_) {
            const auto c = static_cast<unsigned char>(s_[i_]);
            if (c == '"') return ++i_, true;
            if (c < 0x20) return false;
            if (c == '\\') {
                if (++i_ >= s_.size()) return false;
                if (s_[i_] == 'u') {
                    for (int k = 0; k < 4; ++k) {
                        if (++i_ >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_]))) return false;
                    }
                } else if (std::string_view("\"\\/bfnrt").find(s_[i_]) == std::string_view::npos) {
                    return false;
                }
            }
        }
        return false;
    }
    bool literal(std::string_view word) {
        if (s_.substr(i_, word.size()) != word) return false;
        i_ += word.size();
        return true;
    }
    bool number() {
        const size_t start = i_;
        if (peek('-')) ++i_;
        size_t digits = 0;
        while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_, ++digits;
        return digits > 0 && i_ > start;
    }
    void ws() {
        while (i_ < s_.size() && std::string_view(" \t\r\n").find(s_[i_]) != std::string_view::npos) ++i_;
    }
    bool peek(char c) const { return i_ < s_.size() && s_[i_] == c; }

    std::string_view s_;
    size_t i_ = 0;
};

class Cli : public testing::Test {
protected:
    Cli() : host_("[network.sriovnet]\npfs = ens1f0\nvlan = 7\n") {
        host_.sysfs().add_pf({"ens1f0", "0000:3b:00.0", 3, 8, -1});
        host_.sysfs().add_pf({"ens2f0", "0000:af:00.0", 1});
        host_.sysfs().set_vf_driver("ens2f0", 0, "vfio-pci");
    }

    CommandResult cli(std::vector<std::string> args) {
        args.insert(args.begin(), {SRIOVPT_CLI, "--config", host_.conf_path()});
        return run_command(args);
    }

    TestHost host_;
};

TEST_F(Cli, RunStartsAVmAsVdsmWouldAndStatusShowsTheHolder) {
    TempDir dir;
    const auto domain = dir.path() + "/vm.xml";
    write_text(domain, make_domain({{"00:1a:4a:16:01:51", "sriovnet", {{"passthrough", "true"}}}}));
    const auto original = read_text(domain);
    const auto run = cli({"run", "before_vm_start", "--domxml", domain, "-o", dir.path() + "/out.xml"});
    EXPECT_EQ(run.status, 0) << run.output;
    EXPECT_NE(run.output.find("exit status 0"), std::string::npos) << run.output;
    EXPECT_NE(run.output.find("vNIC 00:1a:4a:16:01:51 of VM " + std::string(kVmId) + " on sriovnet -> VF 0000:3b:02.0"), std::string::npos) << run.output;
    EXPECT_EQ(read_text(domain), original) << "run never modifies its input";
    EXPECT_NE(read_text(dir.path() + "/out.xml").find("type=\"hostdev\""), std::string::npos);

    const auto json = cli({"status", "--json"});
    ASSERT_EQ(json.status, 0) << json.output;
    EXPECT_NE(json.output.find(R"({"pci": "0000:3b:02.0", "pf": "ens1f0", "vf_index": 0, "numa_node": -1, )"
                               R"("driver": "iavf", "network": "sriovnet", "holder": {"vm_id": ")" +
                               std::string(kVmId) + R"(", "mac": "00:1a:4a:16:01:51", "vlan": 7)"),
              std::string::npos) << json.output;
    EXPECT_NE(json.output.find(R"("pf": "ens2f0", "vf_index": 0, "numa_node": 0, "driver": "vfio-pci", )"
                               R"("network": null, "holder": null, "state": "foreign-assigned")"),
              std::string::npos) << json.output;
    const auto table = cli({"status"});
    EXPECT_NE(table.output.find("PF      VF  PCI"), std::string::npos) << table.output;

    const auto released = cli({"release", "--vm-id", kVmId, "--mac", "00:1A:4A:16:01:51"});
    EXPECT_EQ(released.status, 0);
    EXPECT_NE(released.output.find("released VF 0000:3b:02.0"), std::string::npos) << released.output;
    EXPECT_TRUE(host_.records().empty());
    const auto again = cli({"release", "--vm-id", kVmId});
    EXPECT_EQ(again.status, 0);
    EXPECT_NE(again.output.find("holds no VF"), std::string::npos);
}

TEST_F(Cli, RunPassesPropertiesForDeviceHooksAndReportsFailure) {
    TempDir dir;
    write_text(dir.path() + "/nic.xml", make_interface("00:1a:4a:16:01:62"));
    const auto bad = cli({"run", "before_nic_hotplug", "--domxml", dir.path() + "/nic.xml", "--vm-id", kVmId,
                          "--prop", "passthrough=true", "--prop", "vlan=9999"});
    EXPECT_EQ(bad.status, 2);
    EXPECT_NE(bad.output.find("property vlan: '9999' is not a VLAN tag"), std::string::npos) << bad.output;
    EXPECT_NE(bad.output.find("VDSM refuses the operation"), std::string::npos) << bad.output;
    const auto good = cli({"run", "before_nic_hotplug", "--domxml", dir.path() + "/nic.xml", "--vm-id", kVmId,
                           "--prop", "passthrough=true"});
    EXPECT_EQ(good.status, 0) << good.output;
    EXPECT_EQ(host_.reservations().size(), 1u);
}

TEST_F(Cli, UsageErrorsAndHelp) {
    EXPECT_EQ(cli({"frobnicate"}).status, 2);
    EXPECT_EQ(cli({"run", "before_vm_sart", "--domxml", "/dev/null"}).status, 1);
    EXPECT_EQ(cli({"release", "--vm-id", "nope"}).status, 2);
    for (const auto* command : {"status", "run", "release", "gc", "check"}) {
        const auto help = cli({command, "--help"});
        EXPECT_EQ(help.status, 0) << command;
        EXPECT_NE(help.output.find(std::string("usage: sriov-passthrough ") + command), std::string::npos) << help.output;
    }
    const auto version = run_command({SRIOVPT_CLI, "--version"});
    EXPECT_EQ(version.status, 0);
    EXPECT_EQ(version.output.rfind("sriov-passthrough ", 0), 0u);
}

// A file name in the state directory can hold any byte; JSON cannot.
TEST_F(Cli, StatusJsonIsValidJsonAndUtf8WhateverTheFileNames) {
    std::filesystem::create_directories(host_.state_dir());
    write_text(host_.state_dir() + "/vf-\xff\xfe\x01odd\nname\xc3", "not a record\n");
    write_text(host_.state_dir() + "/vf-0000:3b:02.0", "v1 \xff\n");
    const auto json = cli({"status", "--json", "--no-libvirt"});
    ASSERT_EQ(json.status, 0) << json.output;
    EXPECT_NE(json.output.find("vf-\xef\xbf\xbd\xef\xbf\xbd\\u0001odd\\nname\xef\xbf\xbd"), std::string::npos)
        << json.output;
    EXPECT_EQ(valid_utf8(json.output), json.output) << "not UTF-8: " << json.output;
    EXPECT_TRUE(JsonChecker(json.output).valid()) << json.output;
    EXPECT_TRUE(JsonChecker(R"({"a": [1, -2, "x\"\u00e9"], "b": null})").valid()) << "the checker itself";
    EXPECT_FALSE(JsonChecker("{\"a\": \"\x01\"}").valid()) << "the checker itself";
}

// An explicitly named configuration file that does not exist used to mean
// all defaults: the real /sys and state directory.
TEST_F(Cli, ConfigThatDoesNotExistIsAnError) {
    const auto typo = host_.dir() + "/typo.conf";
    const auto given = run_command({SRIOVPT_CLI, "--config", typo, "status"});
    EXPECT_EQ(given.status, 2);
    EXPECT_EQ(given.output, "sriov-passthrough: --config " + typo + ": No such file or directory\n");
    const auto equals = run_command({SRIOVPT_CLI, "--config=" + typo, "gc"});
    EXPECT_EQ(equals.status, 2);
    EXPECT_EQ(equals.output, "sriov-passthrough: --config " + typo + ": No such file or directory\n");
    const auto env = run_command({SRIOVPT_CLI, "status"}, {{"SRIOV_PASSTHROUGH_CONF", typo}});
    EXPECT_EQ(env.status, 1);
    EXPECT_EQ(env.output, "sriov-passthrough: configuration " + typo +
                              " does not exist (named by $SRIOV_PASSTHROUGH_CONF or --config; only "
                              "/etc/vdsm/hooks/sriov_passthrough.conf may be missing)\n");
}

// -o is checked before the hook runs: 'run' used to reserve the VF, then
// fail to write the XML and lose it.
TEST_F(Cli, RunReservesNothingWhenTheOutputCannotBeWritten) {
    TempDir dir;
    const auto domain = dir.path() + "/vm.xml";
    write_text(domain, make_domain({{"00:1a:4a:16:01:51", "sriovnet", {{"passthrough", "true"}}}}));
    const auto out = dir.path() + "/missing/out.xml";
    const auto run = cli({"run", "before_vm_start", "--domxml", domain, "-o", out});
    EXPECT_EQ(run.status, 1);
    EXPECT_EQ(run.output, "sriov-passthrough: cannot write " + out + ": No such file or directory\n");
    EXPECT_TRUE(host_.records().empty()) << "the hook must not have run";
}

// When writing fails after the hook ran, the XML goes to standard output.
TEST_F(Cli, RunKeepsTheXmlWhenWritingTheOutputFails) {
    TempDir dir;
    const auto domain = dir.path() + "/vm.xml";
    write_text(domain, make_domain({{"00:1a:4a:16:01:51", "sriovnet", {{"passthrough", "true"}}}}));
    const auto run = cli({"run", "before_vm_start", "--domxml", domain, "-o", "/dev/full"});
    EXPECT_EQ(run.status, 1);
    EXPECT_NE(run.output.find("<interface type=\"hostdev\" managed=\"yes\">"), std::string::npos) << run.output;
    EXPECT_NE(run.output.find("sriov-passthrough: cannot write /dev/full: No space left on device; the resulting XML "
                              "is on standard output instead\n"),
              std::string::npos)
        << run.output;
    EXPECT_EQ(host_.reservations().size(), 1u) << "the VF is held for the XML printed";
}

TEST_F(Cli, ValuesFromTheCommandLineAreQuoted) {
    const auto command = cli({"frob\nnicate\x1b[2J"});
    EXPECT_EQ(command.status, 2);
    EXPECT_EQ(command.output.rfind("sriov-passthrough: unknown command 'frob\\nnicate\\x1b[2J'\n", 0), 0u) << command.output;
    const auto vlan = cli({"release", "--vm-id", std::string(5000, '7')});
    EXPECT_EQ(vlan.status, 2);
    EXPECT_NE(vlan.output.find("--vm-id '" + std::string(64, '7') + "...' (5000 bytes) is not a UUID"), std::string::npos)
        << vlan.output;
}

TEST_F(Cli, CheckSaysWhatIsWrong) {
    host_.write_config("[network.sriovnet]\npfs = ens1f0, ens9f9\n[network.other]\npfs = ens1f0\n");
    const auto check = cli({"check"});
    EXPECT_EQ(check.status, 1) << check.output;
    EXPECT_NE(check.output.find("ok: [network.sriovnet] PF ens1f0: 3 of 8 VFs enabled"), std::string::npos) << check.output;
    EXPECT_NE(check.output.find("PROBLEM: [network.sriovnet] PF ens9f9: no such network device"), std::string::npos);
    EXPECT_NE(check.output.find("warning: PF ens1f0 serves several networks (other, sriovnet)"), std::string::npos);
    host_.write_config("[network.sriovnet]\npfs = ens1f0\n");
    EXPECT_EQ(cli({"check"}).status, 0);
}

}  // namespace
}  // namespace sriovpt::test
