// The store at scale and across releases (issue 11, item 2), through the
// real hook executables and the real command: a start and a destroy among
// hundreds of held reservations touch only their own, a store as earlier
// releases left it is indexed by the first hook, and what an earlier release
// does to an indexed store (a downgrade) is found by check and mended by gc.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>

#include "harness.hpp"
#include "host.hpp"

namespace fs = std::filesystem;

namespace sriovpt::test {
namespace {

const std::map<std::string, std::string> kPassthrough{{"passthrough", "true"}};
constexpr unsigned kPfs = 8;
constexpr unsigned kVfsPerPf = 32;
// Held by other VMs, per PF: ens7f0 the least, then ens5f0.
constexpr unsigned kHeld[kPfs] = {31, 31, 30, 31, 29, 31, 28, 31};

std::string pf_name(unsigned i) { return "ens" + std::to_string(i + 1) + "f0"; }

std::string vm_of(unsigned n) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "0e000000-0000-4000-8000-%012x", n);
    return buf;
}

std::string mac_of(unsigned n) {
    char buf[20];
    std::snprintf(buf, sizeof buf, "00:1a:4a:%02x:%02x:01", (n >> 8) & 0xff, n & 0xff);
    return buf;
}

class StoreScale : public testing::Test {
protected:
    StoreScale() {
        std::string pfs;
        for (unsigned i = 0; i < kPfs; ++i) {
            char pci[16];
            std::snprintf(pci, sizeof pci, "0000:%02x:00.0", 0x10 + 4 * i);
            host_.sysfs().add_pf({pf_name(i), pci, kVfsPerPf});
            pfs += (i ? ", " : "") + pf_name(i);
        }
        host_.write_config("[network.sriovnet]\npfs = " + pfs + "\n");
    }

    Reservation record(unsigned pf, unsigned index, unsigned vm) {
        Reservation r;
        r.pf = pf_name(pf);
        r.vf_index = index;
        r.pci = host_.sysfs().vf_pci(r.pf, index);
        r.vm_id = vm_of(vm);
        r.mac = mac_of(vm);
        r.network = "sriovnet";
        r.boot_id = current_boot_id();
        r.created = static_cast<std::int64_t>(std::time(nullptr));
        r.origin = "before_vm_start";
        return r;
    }

    CommandResult cli(const std::string& command) const {
        return run_command({SRIOVPT_CLI, command}, {{"SRIOV_PASSTHROUGH_CONF", host_.conf_path()}});
    }

    // Every file of the state directory with its content ("" for others).
    std::map<std::string, std::string> records_as_files() const {
        std::map<std::string, std::string> out;
        for (const auto& e : fs::directory_iterator(host_.state_dir())) {
            const auto name = e.path().filename().string();
            if (name.rfind("vf-", 0) == 0) out[name] = read_text(e.path().string());
        }
        return out;
    }

    TestHost host_;
};

TEST_F(StoreScale, AStartAndADestroyAmongHundredsOfReservationsTouchOnlyTheirOwn) {
    {
        ReservationStore store(host_.state_dir(), std::chrono::seconds(5));
        const auto lock = store.lock();
        unsigned vm = 1;
        for (unsigned pf = 0; pf < kPfs; ++pf) {
            for (unsigned i = 0; i < kHeld[pf]; ++i) ASSERT_TRUE(store.create(record(pf, i, vm++)));
        }
    }
    const auto before = records_as_files();
    ASSERT_EQ(before.size(), 242u);

    const auto vm = vm_of(999);
    const auto xml = make_domain({{"00:1a:4a:16:09:01", "sriovnet", kPassthrough}, {"00:1a:4a:16:09:02", "sriovnet", kPassthrough}},
                                 vm);
    const auto start = host_.run("before_vm_start", xml, vm);
    ASSERT_EQ(start.status, 0) << start.err;
    // The fewest held first (ens7f0: 28), then a tie of 29 broken by the pool's order.
    EXPECT_NE(start.err.find("-> VF " + host_.sysfs().vf_pci("ens7f0", 28).to_string() + " (ens7f0 VF 28"),
              std::string::npos)
        << start.err;
    EXPECT_NE(start.err.find("-> VF " + host_.sysfs().vf_pci("ens5f0", 29).to_string() + " (ens5f0 VF 29"),
              std::string::npos)
        << start.err;
    auto during = records_as_files();
    EXPECT_EQ(during.size(), 244u);
    for (const auto& [name, text] : before) EXPECT_EQ(during[name], text) << name;

    const auto destroy = host_.run("after_vm_destroy", xml, vm);
    ASSERT_EQ(destroy.status, 0) << destroy.err;
    EXPECT_EQ(std::count(destroy.err.begin(), destroy.err.end(), '\n'), 2) << destroy.err;
    EXPECT_EQ(records_as_files(), before);
    const auto check = cli("check");
    EXPECT_EQ(check.output.find("PROBLEM"), std::string::npos) << check.output;
    EXPECT_EQ(check.output.find("index"), std::string::npos) << check.output;
}

// The store exactly as releases before the index wrote it: records of
// format versions 1 and 2, no layout marker, no index.
TEST_F(StoreScale, AStoreOfTheEarlierLayoutIsIndexedByTheFirstHookThatLocksIt) {
    fs::create_directories(host_.state_dir());
    auto a0 = record(0, 0, 1), a1 = record(1, 0, 1), b = record(2, 0, 2);
    b.network = "sriov\nnet";  // only version 2 holds it
    ASSERT_EQ(format_record(a0).rfind("sriov-passthrough-reservation 1\n", 0), 0u);
    ASSERT_EQ(format_record(b).rfind("sriov-passthrough-reservation 2\n", 0), 0u);
    for (const auto& r : {a0, a1, b}) {
        const auto path = host_.state_dir() + "/" + ReservationStore::file_name(r.pci);
        write_text(path, format_record(r));
        ::chmod(path.c_str(), 0640);
    }
    write_text(host_.state_dir() + "/lock", "");
    const auto status = cli("status");
    EXPECT_NE(status.output.find(vm_of(1)), std::string::npos) << status.output;
    EXPECT_FALSE(fs::exists(host_.state_dir() + "/layout")) << "status reads; it does not upgrade";

    const auto xml = make_domain({{mac_of(1), "sriovnet", kPassthrough}}, vm_of(1));

    const auto destroy = host_.run("after_vm_destroy", xml, vm_of(1));
    ASSERT_EQ(destroy.status, 0) << destroy.err;
    EXPECT_NE(destroy.err.find("released VF " + a0.pci.to_string()), std::string::npos) << destroy.err;
    EXPECT_NE(destroy.err.find("released VF " + a1.pci.to_string()), std::string::npos) << destroy.err;
    EXPECT_EQ(read_text(host_.state_dir() + "/layout"), "sriov-passthrough-store 2\n");
    const auto left = host_.reservations();
    ASSERT_EQ(left.size(), 1u);
    EXPECT_EQ(left[0], b) << "read as written";
    EXPECT_TRUE(fs::exists(host_.state_dir() + "/" + vm_index_dir(b.vm_id) + "/" + b.pci.to_string()));
    EXPECT_TRUE(ReservationStore(host_.state_dir(), std::chrono::seconds(1)).check_index().empty());
    const auto check = cli("check");
    EXPECT_EQ(check.output.find("index"), std::string::npos) << check.output;
}

// An earlier release run again on an indexed store (a downgrade, then this
// release again): the record it made is missing from the index, the one it
// released left its index entries behind.
TEST_F(StoreScale, CheckFindsWhatADowngradeDidToTheIndexAndGcMendsIt) {
    const auto vm = vm_of(7);
    const auto xml = make_domain({{mac_of(7), "sriovnet", kPassthrough}}, vm);
    ASSERT_EQ(host_.run("before_vm_start", xml, vm).status, 0);
    const auto started = host_.reservations().at(0);
    // The earlier release: releases by name only, creates by name only.
    ASSERT_EQ(::unlink((host_.state_dir() + "/" + ReservationStore::file_name(started.pci)).c_str()), 0);
    const auto made = record(3, 5, 8);
    write_text(host_.state_dir() + "/" + ReservationStore::file_name(made.pci), format_record(made));

    const auto check = cli("check");
    EXPECT_EQ(check.status, 1) << check.output;
    EXPECT_NE(check.output.find("PROBLEM: record " + host_.state_dir() + "/" + ReservationStore::file_name(made.pci) +
                                " (" + vm_index_dir(made.vm_id) + "/" + made.pci.to_string() +
                                ") is missing from the index, so the hooks do not find it by its VM (run "
                                "sriov-passthrough gc to repair the index)"),
              std::string::npos)
        << check.output;
    EXPECT_NE(check.output.find("warning: index entry " + host_.state_dir() + "/" + vm_index_dir(vm) + "/" +
                                started.pci.to_string() + " is no record's"),
              std::string::npos)
        << check.output;

    const auto gc = cli("gc");
    EXPECT_EQ(gc.status, 0) << gc.output;
    EXPECT_NE(gc.output.find("indexed " + ReservationStore::file_name(made.pci)), std::string::npos) << gc.output;
    EXPECT_NE(gc.output.find("removed stale index entry " + vm_index_dir(vm) + "/" + started.pci.to_string()),
              std::string::npos)
        << gc.output;
    const auto again = cli("check");
    EXPECT_EQ(again.output.find("PROBLEM"), std::string::npos) << again.output;
    EXPECT_EQ(again.output.find("index entry"), std::string::npos) << again.output;

    // Found by its VM now.
    const auto destroy = host_.run("after_vm_destroy", make_domain({{mac_of(8), "sriovnet", kPassthrough}}, vm_of(8)),
                                   vm_of(8));
    EXPECT_NE(destroy.err.find("released VF " + made.pci.to_string()), std::string::npos) << destroy.err;
    EXPECT_TRUE(host_.records().empty());
}

}  // namespace
}  // namespace sriovpt::test
