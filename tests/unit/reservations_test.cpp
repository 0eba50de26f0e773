// The record format and the store: exclusive creation, damaged and unknown
// records, temporaries left by a killed writer, the bounded lock.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>

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

// Runs `body` in a child process, waiting at most `limit`: a call that
// blocks (a FIFO opened for reading waits for a writer) fails the test
// instead of hanging it. Returns what `body` returned, or "(timed out)".
std::string bounded_in_child(const std::function<std::string()>& body,
                             std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    int fds[2];
    if (::pipe(fds) != 0) return "(pipe failed)";
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(fds[0]);
        std::string out;
        try {
            out = body();
        } catch (const std::exception& e) {
            out = std::string("threw: ") + e.what();
        }
        (void)!::write(fds[1], out.data(), out.size());
        ::_exit(0);
    }
    ::close(fds[1]);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            ::close(fds[0]);
            return "(timed out)";
        }
        ::usleep(10 * 1000);
    }
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    ::close(fds[0]);
    return out;
}

// "file: ok" or "file: problem", one line per entry.
std::string describe(const std::vector<RecordEntry>& entries) {
    std::string out;
    for (const auto& e : entries) out += e.file + ": " + (e.record ? std::string("ok") : e.problem) + "\n";
    return out;
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
    auto v3 = text;
    v3.replace(v3.find(" 1\n"), 3, " 3\n");
    EXPECT_EQ(problem_of(v3), "unknown record version 3 (this version reads versions 1 and 2)");
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

// A record exactly as version 1 of this program wrote it: still read.
TEST(RecordFormat, ReadsVersion1AsEarlierReleasesWroteIt) {
    const std::string v1 =
        "sriov-passthrough-reservation 1\n"
        "pci 0000:3b:02.1\n"
        "pf ens1f0\n"
        "vf_index 1\n"
        "vm_id 9c1f3d7e-2b44-4a51-8e0c-5d6a7b8c9d01\n"
        "mac 00:1a:4a:16:01:51\n"
        "network sriovnet\n"
        "vlan 100\n"
        "boot_id 06903289-b3ab-4a3c-810c-fab67696ebbb\n"
        "created 1763890000\n"
        "origin before_vm_start\n"
        "end\n";
    EXPECT_EQ(parse_record(v1), sample());
    EXPECT_EQ(format_record(sample()), v1) << "plain names are still written as version 1, which earlier releases read";
}

// Names that version 1 cannot hold: a newline (allowed in an XML attribute,
// so in <source bridge>), "-" (version 1's empty), an empty network, odd bytes.
TEST(RecordFormat, AnyNameRoundTripsThroughVersion2) {
    const std::vector<std::string> names{"sriov\nnet", "-", "", " lead and trail ", "100%", "%2D", "\r", "--",
                                         std::string("nul\0byte", 8), "\xff\xfe", "r\xc3\xa9seau", "end", "a b",
                                         "\nend\n"};
    for (const auto& name : names) {
        for (const auto field : {&Reservation::network, &Reservation::pf, &Reservation::origin, &Reservation::boot_id}) {
            auto r = sample();
            r.*field = name;
            const auto text = format_record(r);
            SCOPED_TRACE(text);
            ASSERT_EQ(problem_of(text), "(parsed)");
            EXPECT_EQ(parse_record(text), r);
            EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 12) << "one line per field, whatever the name";
        }
    }
    auto r = sample();
    r.network = "sriov\nnet";
    EXPECT_EQ(format_record(r).rfind("sriov-passthrough-reservation 2\n", 0), 0u);
    EXPECT_NE(format_record(r).find("\nnetwork sriov%0Anet\n"), std::string::npos) << format_record(r);
    r.network = "-";
    EXPECT_NE(format_record(r).find("\nnetwork %2D\n"), std::string::npos) << format_record(r);
    r.network.clear();
    EXPECT_EQ(format_record(r).rfind("sriov-passthrough-reservation 1\n", 0), 0u) << "an empty network fits version 1";
}

TEST(RecordFormat, Version2TruncatedDuplicatedAndBadEscapesAreReported) {
    auto r = sample();
    r.network = "a\nb";
    const auto text = format_record(r);
    ASSERT_EQ(text.rfind("sriov-passthrough-reservation 2\n", 0), 0u);
    for (size_t n = 0; n < text.size(); ++n) {
        EXPECT_NE(problem_of(text.substr(0, n)), "(parsed)") << "truncated at " << n;
    }
    auto dup = text;
    dup.insert(dup.find("end\n"), "network other\n");
    EXPECT_NE(problem_of(dup).find("'network' appears twice"), std::string::npos);
    const auto with_network = [&](const std::string& value) {
        auto t = text;
        t.replace(t.find("network a%0Ab"), 13, "network " + value);
        return problem_of(t);
    };
    EXPECT_EQ(with_network("a%0"), "'network' has a '%' not followed by two hex digits");
    EXPECT_EQ(with_network("a%zz"), "'network' has a '%' not followed by two hex digits");
    EXPECT_EQ(with_network("%"), "'network' has a '%' not followed by two hex digits");
    EXPECT_EQ(with_network("a b"), "'network' has a byte 0x20 that version 2 writes as %XX");
    EXPECT_EQ(with_network("%41%62"), "(parsed)") << "escapes that did not need to be are still read";
    auto v3 = text;
    v3.replace(v3.find(" 2\n"), 3, " 3\n");
    EXPECT_EQ(problem_of(v3), "unknown record version 3 (this version reads versions 1 and 2)");
    EXPECT_EQ(problem_of("sriov-passthrough-reservation 99999999999999999999999999\nend\n"),
              "unknown record version 9999999999999999... (this version reads versions 1 and 2)");
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

TEST(Store, NothingButARegularFileIsEverOpened) {
    TempDir dir;
    ReservationStore store(dir.path(), std::chrono::seconds(1));
    ASSERT_TRUE(store.create(sample()));
    ASSERT_EQ(::mkfifo((dir.path() + "/vf-0000:3b:02.2").c_str(), 0640), 0);
    ASSERT_EQ(::mkfifo((dir.path() + "/.tmp-77-0").c_str(), 0640), 0);
    std::filesystem::create_directory(dir.path() + "/vf-0000:3b:02.3");
    EXPECT_EQ(bounded_in_child([&] { return describe(store.load()); }),
              "vf-0000:3b:02.1: ok\n"
              "vf-0000:3b:02.2: is a FIFO, not a regular file (never opened)\n"
              "vf-0000:3b:02.3: is a directory, not a regular file (never opened)\n");
    EXPECT_EQ(bounded_in_child([&] {
                  std::string out;
                  for (const auto& name : store.remove_temporaries()) out += name + "\n";
                  return out;
              }),
              ".tmp-77-0\n");

    // A lock that is a FIFO: an error, at once.
    ASSERT_EQ(::mkfifo((dir.path() + "/lock").c_str(), 0640), 0);
    EXPECT_EQ(bounded_in_child([&] {
                  store.lock();
                  return std::string("locked");
              }),
              "threw: lock file " + dir.path() + "/lock is a FIFO, not a regular file (remove it; the hooks create a "
              "new one)");
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
