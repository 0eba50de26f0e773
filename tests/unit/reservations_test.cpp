// The record format and the store: exclusive creation, damaged and unknown
// records, temporaries left by a killed writer, the bounded lock.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "error.hpp"
#include "harness.hpp"
#include "reservations.hpp"

namespace sriovpt {
namespace {

using test::read_text;
using test::TempDir;
using test::write_text;

Reservation sample() {
    Reservation r;
    r.pci = *PciAddress::parse("0000:3b:02.1");
    r.pf = "ens1f0";
    r.vf_index = 1;
    r.vm_id = test::kVmId;
    r.mac = "00:1a:4a:16:01:51";
    r.network = "sriovnet";
    r.vlan = 100;
    r.boot_id = "06903289-b3ab-4a3c-810c-fab67696ebbb";
    r.created = 1763890000;
    r.origin = "before_vm_start";
    return r;
}

std::string problem_of(std::string_view text) {
    try {
        parse_record(text);
    } catch (const Error& e) {
        return e.what();
    }
    return "(parsed)";
}

TEST(RecordFormat, RoundTripsAndIsVersioned) {
    const auto r = sample();
    const auto text = format_record(r);
    EXPECT_EQ(text.rfind("sriov-passthrough-reservation 1\n", 0), 0u);
    EXPECT_EQ(parse_record(text), r);
    auto no_vlan = r;
    no_vlan.vlan.reset();
    no_vlan.network.clear();
    EXPECT_EQ(parse_record(format_record(no_vlan)), no_vlan);
}

TEST(RecordFormat, EveryTruncationIsDetected) {
    const auto text = format_record(sample());
    for (size_t n = 0; n < text.size(); ++n) {
        EXPECT_NE(problem_of(text.substr(0, n)), "(parsed)") << "truncated at " << n;
    }
}

TEST(RecordFormat, UnknownVersionDuplicatesAndGarbageAreReported) {
    auto text = format_record(sample());
    auto v2 = text;
    v2.replace(v2.find(" 1\n"), 3, " 2\n");
    EXPECT_EQ(problem_of(v2), "unknown record version 2 (this version reads version 1)");
    auto dup = text;
    dup.insert(dup.find("end\n"), "mac 00:1a:4a:16:01:52\n");
    EXPECT_NE(problem_of(dup).find("'mac' appears twice"), std::string::npos);
    auto extra = text;
    extra.insert(extra.find("end\n"), "colour blue\n");
    EXPECT_EQ(problem_of(extra), "unknown key 'colour'");
    auto bad_mac = text;
    bad_mac.replace(bad_mac.find("00:1a:4a:16:01:51"), 17, "00:1a:4a:16:01:5g");
    EXPECT_EQ(problem_of(bad_mac), "mac is not a MAC address");
    EXPECT_EQ(problem_of("\x7f" "ELF garbage\n"),
              "not a reservation record (first line is not 'sriov-passthrough-reservation <version>')");
}

TEST(Store, CreateIsExclusiveAndRemoveIdempotent) {
    TempDir dir;
    ReservationStore store(dir.path() + "/state", std::chrono::seconds(1));
    const auto r = sample();
    EXPECT_TRUE(store.create(r));
    auto other = r;
    other.vm_id = "11111111-2222-3333-4444-555555555555";
    EXPECT_FALSE(store.create(other));
    const auto entries = store.load();
    ASSERT_EQ(entries.size(), 1u);
    ASSERT_TRUE(entries[0].record);
    EXPECT_EQ(*entries[0].record, r);  // the first holder stays
    struct stat st{};
    ASSERT_EQ(::stat((dir.path() + "/state/vf-0000:3b:02.1").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0022, 0u) << "records must not be writable by group or others";
    EXPECT_TRUE(store.remove(r.pci));
    EXPECT_FALSE(store.remove(r.pci));
    EXPECT_TRUE(store.load().empty());
}

TEST(Store, DamagedRecordsAreListedWithTheirProblem) {
    TempDir dir;
    ReservationStore store(dir.path(), std::chrono::seconds(1));
    write_text(dir.path() + "/vf-0000:3b:02.2", "half a rec");
    auto moved = sample();
    write_text(dir.path() + "/vf-0000:3b:02.3", format_record(moved));  // name and content disagree
    const auto entries = store.load();
    ASSERT_EQ(entries.size(), 2u);
    EXPECT_FALSE(entries[0].record);
    EXPECT_EQ(entries[0].problem, "truncated: the last line has no newline");
    EXPECT_FALSE(entries[1].record);
    EXPECT_EQ(entries[1].problem, "its file name does not match the PCI address inside");
}

TEST(Store, RefusesASymlinkedStateDirAndNeverFollowsRecordLinks) {
    TempDir dir;
    std::filesystem::create_directory(dir.path() + "/real");
    std::filesystem::create_directory_symlink(dir.path() + "/real", dir.path() + "/link");
    EXPECT_THROW(ReservationStore(dir.path() + "/link", std::chrono::seconds(1)), Error);

    ReservationStore store(dir.path() + "/real", std::chrono::seconds(1));
    // A planted link where a record would go: creation fails as "held" and
    // the link's target is not written.
    write_text(dir.path() + "/victim", "precious");
    std::filesystem::create_symlink(dir.path() + "/victim", dir.path() + "/real/vf-0000:3b:02.1");
    EXPECT_FALSE(store.create(sample()));
    EXPECT_EQ(read_text(dir.path() + "/victim"), "precious");
}

TEST(Store, LeftoverTemporariesAreRemoved) {
    TempDir dir;
    ReservationStore store(dir.path(), std::chrono::seconds(1));
    write_text(dir.path() + "/.tmp-12345-0", format_record(sample()).substr(0, 20));
    EXPECT_TRUE(store.load().empty());  // never mistaken for a record
    EXPECT_EQ(store.remove_temporaries(), std::vector<std::string>{".tmp-12345-0"});
    EXPECT_FALSE(std::filesystem::exists(dir.path() + "/.tmp-12345-0"));
}

TEST(Store, LockWaitIsBounded) {
    TempDir dir;
    ReservationStore holder(dir.path(), std::chrono::seconds(1));
    ReservationStore waiter(dir.path(), std::chrono::milliseconds(300));
    const auto held = holder.lock();
    // flock is per open file: another store in this process contends like
    // another process would.
    try {
        waiter.lock();
        FAIL() << "the lock was taken twice";
    } catch (const LockTimeout& e) {
        EXPECT_NE(std::string(e.what()).find("held by another process for more than 0.3 s (lock_timeout)"),
                  std::string::npos)
            << e.what();
    }
}

TEST(Store, LockIsReleasedWhenTheHolderDies) {
    TempDir dir;
    const pid_t child = ::fork();
    if (child == 0) {
        ReservationStore store(dir.path(), std::chrono::seconds(1));
        const auto lock = store.lock();
        ::pause();  // killed while holding the lock
        ::_exit(0);
    }
    ::usleep(200 * 1000);
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    ReservationStore store(dir.path(), std::chrono::seconds(2));
    EXPECT_NO_THROW(store.lock());
}

}  // namespace
}  // namespace sriovpt
