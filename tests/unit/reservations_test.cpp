// The record format and the store: exclusive creation, damaged and unknown
// records, temporaries left by a killed writer, the bounded lock.
#include <gtest/gtest.h>
#include <grp.h>
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

Reservation sample() { return test::sample_reservation(); }

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

// Becomes uid:gid for good (in a child).
void become(uid_t uid, gid_t gid) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 || ::setresuid(uid, uid, uid) != 0)
        throw std::runtime_error("cannot become " + std::to_string(uid));
}

struct stat stat_of(const std::string& path) {
    struct stat st{};
    ::lstat(path.c_str(), &st);
    return st;
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
    auto v4 = text;
    v4.replace(v4.find(" 1\n"), 3, " 4\n");
    EXPECT_EQ(problem_of(v4), "unknown record version 4 (this version reads versions 1 to 3)");
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
    auto v4 = text;
    v4.replace(v4.find(" 2\n"), 3, " 4\n");
    EXPECT_EQ(problem_of(v4), "unknown record version 4 (this version reads versions 1 to 3)");
    EXPECT_EQ(problem_of("sriov-passthrough-reservation 99999999999999999999999999\nend\n"),
              "unknown record version 9999999999999999... (this version reads versions 1 to 3)");
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

// A temporary's name is ".tmp-<pid>-<n>": one of that name can only be what a
// dead writer with the same pid left (pids are reused), a file or an index
// directory it did not get to name. It is removed when met, not beforehand.
TEST(Store, ATemporaryLeftUnderThisPidIsReplacedWhenMet) {
    TempDir dir;
    ReservationStore store(dir.path(), std::chrono::seconds(1));
    // The counter is the process's (ctest runs each test in a process of its
    // own): the next names are among these.
    const auto pid = std::to_string(::getpid());
    constexpr int kPlanted = 1024;
    for (int n = 0; n < kPlanted; ++n) {
        const auto name = dir.path() + "/.tmp-" + pid + "-" + std::to_string(n);
        if (n % 2) {
            std::filesystem::create_directory(name);
        } else {
            write_text(name, "left by a writer that died");
        }
    }
    const auto lock = store.lock();
    auto r = sample();
    for (unsigned i = 0; i < 3; ++i) {
        r.vf_index = i;
        r.pci = *PciAddress::parse("0000:3b:02." + std::to_string(i));
        r.vm_id = "11111111-2222-3333-4444-55555555555" + std::to_string(i);
        ASSERT_TRUE(store.create(r)) << i;
    }
    int left = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
        left += e.path().filename().string().rfind(".tmp-", 0) == 0;
    EXPECT_LT(left, kPlanted) << "the test must have met some of them";
    EXPECT_EQ(store.load().size(), 3u);
    EXPECT_TRUE(store.check_index().empty());
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

// The command run as root in a state directory the hooks (another uid) own.
TEST(Store, FilesMadeByAnotherUserBelongToTheStateDirectorysOwner) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: chown, and a child that becomes another uid";
    constexpr uid_t kHooks = 65534;
    TempDir top;
    ::chmod(top.path().c_str(), 0755);
    const auto dir = top.path() + "/state";
    std::filesystem::create_directory(dir);
    ASSERT_EQ(::chown(dir.c_str(), kHooks, kHooks), 0);
    ::chmod(dir.c_str(), 0750);

    // A lock and a record as an earlier release, run as root, left them.
    write_text(dir + "/lock", "");
    ::chmod((dir + "/lock").c_str(), 0640);
    auto old = sample();
    old.pci = *PciAddress::parse("0000:3b:02.5");
    write_text(dir + "/vf-0000:3b:02.5", format_record(old));
    ::chmod((dir + "/vf-0000:3b:02.5").c_str(), 0640);

    ReservationStore store(dir, std::chrono::seconds(1));
    EXPECT_EQ(store.owner_uid(), kHooks);
    const auto who = [&] {
        const auto owner_line = [](const std::string& path) {
            const auto st = stat_of(path);
            return std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid) + " " +
                   std::to_string(st.st_mode & 0777);
        };
        return owner_line(dir + "/lock");
    };
    const auto unusable = store.unusable_by_owner();
    ASSERT_EQ(unusable.size(), 2u);
    EXPECT_EQ(unusable[0], dir + "/lock belongs to root:root (0:0) with mode 0640: the hooks, which run as the state "
                                 "directory's owner nobody:nogroup (65534:65534), cannot open it for reading and "
                                 "writing, so every change fails (fix: chown 65534:65534 " + dir + "/lock; chmod u+rw " +
                                 dir + "/lock)");
    EXPECT_EQ(unusable[1], dir + "/vf-0000:3b:02.5 belongs to root:root (0:0) with mode 0640: the hooks, which run as "
                                 "the state directory's owner nobody:nogroup (65534:65534), cannot read it, so they "
                                 "never give that VF nor release it (fix: chown 65534:65534 " + dir +
                                 "/vf-0000:3b:02.5; chmod u+rw " + dir + "/vf-0000:3b:02.5)");
    EXPECT_EQ(bounded_in_child([&] {
                  become(kHooks, kHooks);
                  return describe(ReservationStore(dir, std::chrono::seconds(1)).load());
              }),
              "vf-0000:3b:02.5: cannot be read: Permission denied (it belongs to root:root (0:0), mode 0640; the hooks "
              "must be able to read it)\n");

    // Root takes the lock (which gives it to the hooks) and writes a record.
    { const auto lock = store.lock(); }
    EXPECT_EQ(who(), "65534:65534 416");  // 0640
    ASSERT_TRUE(store.create(sample()));
    const auto record = stat_of(dir + "/vf-0000:3b:02.1");
    EXPECT_EQ(record.st_uid, kHooks);
    EXPECT_EQ(record.st_gid, kHooks);
    EXPECT_EQ(record.st_mode & 0777, 0640u);
    // The index root made: its directories and the PF's count file too.
    for (const auto& made : {dir + "/" + vm_index_dir(sample().vm_id), dir + "/pf-ens1f0", dir + "/pf-ens1f0/count",
                             dir + "/layout"}) {
        const auto st = stat_of(made);
        EXPECT_EQ(st.st_uid, kHooks) << made;
        EXPECT_EQ(st.st_gid, kHooks) << made;
    }
    ASSERT_TRUE(store.remove(old.pci));
    EXPECT_TRUE(store.unusable_by_owner().empty());

    // A lock root creates is never seen with root as its owner.
    std::filesystem::remove(dir + "/lock");
    { const auto lock = store.lock(); }
    EXPECT_EQ(who(), "65534:65534 416");

    // The hooks' user reads, locks, writes and removes all of it.
    EXPECT_EQ(bounded_in_child([&] {
                  become(kHooks, kHooks);
                  ReservationStore hooks(dir, std::chrono::seconds(1));
                  const auto lock = hooks.lock();
                  auto next = sample();
                  next.pci = *PciAddress::parse("0000:3b:02.6");
                  std::string out = describe(hooks.load());
                  out += hooks.create(next) ? "created\n" : "not created\n";
                  out += hooks.remove(sample().pci) ? "removed\n" : "not removed\n";
                  return out;
              }),
              "vf-0000:3b:02.1: ok\ncreated\nremoved\n");

    // A third user, neither root nor the owner, cannot give its files away:
    // it says so rather than leave a record the hooks cannot read.
    ::chmod(dir.c_str(), 0777);
    EXPECT_EQ(bounded_in_child([&] {
                  become(65533, 65533);
                  ReservationStore other(dir, std::chrono::seconds(1));
                  auto r = sample();
                  r.pci = *PciAddress::parse("0000:3b:02.7");
                  other.create(r);
                  return std::string("created");
              }),
              "threw: a record in " + dir + " would belong to uid 65533, not to the state directory's owner "
              "nobody:nogroup (65534:65534), whom the hooks run as, and cannot be given to it: Operation not "
              "permitted (run this as that user, or as root)");
    EXPECT_FALSE(std::filesystem::exists(dir + "/vf-0000:3b:02.7"));
    for (const auto& e : std::filesystem::directory_iterator(dir))
        EXPECT_NE(e.path().filename().string().rfind(".tmp-", 0), 0u) << e.path() << " left behind";
}


// --- Layout 2: the index (issue 11, item 2) ------------------------------------

std::string vm_dir_of(const std::string& state, const Reservation& r) { return state + "/" + vm_index_dir(r.vm_id); }
std::string vm_entry_of(const std::string& state, const Reservation& r) {
    return vm_dir_of(state, r) + "/" + r.pci.to_string();
}
std::string pf_entry_of(const std::string& state, const Reservation& r) {
    return state + "/" + pf_index_dir(r.pf) + "/" + std::to_string(r.vf_index) + "-" + r.pci.to_string();
}
std::string count_of(const std::string& state, const Reservation& r) {
    return state + "/" + pf_index_dir(r.pf) + "/count";
}
std::string record_of(const std::string& state, const Reservation& r) {
    return state + "/" + ReservationStore::file_name(r.pci);
}
bool exists(const std::string& path) {
    struct stat st{};
    return ::lstat(path.c_str(), &st) == 0;
}
bool same_file(const std::string& a, const std::string& b) {
    struct stat sa{}, sb{};
    return ::lstat(a.c_str(), &sa) == 0 && ::lstat(b.c_str(), &sb) == 0 && sa.st_ino == sb.st_ino &&
           sa.st_dev == sb.st_dev;
}
std::vector<std::string> temporaries(const std::string& state) {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(state)) {
        const auto name = e.path().filename().string();
        if (name.rfind(".tmp-", 0) == 0) out.push_back(name);
    }
    return out;
}
Reservation another(const std::string& pci, unsigned index, const std::string& vm = test::kVmId) {
    auto r = sample();
    r.pci = *PciAddress::parse(pci);
    r.vf_index = index;
    r.vm_id = vm;
    return r;
}

// replace() writes a new file: its VM entry follows it, or the VM's release
// would no longer find the record (found by merging the VF settings work).
TEST(StoreIndex, AReplacedRecordKeepsItsIndexEntries) {
    TempDir dir;
    ReservationStore store(dir.path(), std::chrono::seconds(1));
    const auto lock = store.lock();
    const auto r = sample();
    ASSERT_TRUE(store.create(r));
    auto changed = r;
    changed.reset_pending = true;
    changed.vf_settings.trust = true;
    store.replace(changed);
    EXPECT_TRUE(same_file(record_of(dir.path(), r), vm_entry_of(dir.path(), r)));
    EXPECT_EQ(store.records_of_vm(r.vm_id), std::vector<Reservation>{changed});
    EXPECT_EQ(store.held_on_pf("ens1f0"), 1u);
    EXPECT_TRUE(store.check_index().empty());
    EXPECT_TRUE(temporaries(dir.path()).empty());
    ASSERT_TRUE(store.remove(changed));
    EXPECT_TRUE(store.records_of_vm(r.vm_id).empty());
    EXPECT_EQ(store.held_on_pf("ens1f0"), 0u);
}

TEST(StoreIndex, ARecordIsIndexedByVmAndPfAsHardLinksAndRemovedWithThem) {
    TempDir dir;
    ReservationStore store(dir.path(), std::chrono::seconds(1));
    const auto lock = store.lock();
    EXPECT_EQ(read_text(dir.path() + "/layout"), "sriov-passthrough-store 2\n");
    const auto r = sample();
    ASSERT_TRUE(store.create(r));
    EXPECT_TRUE(same_file(record_of(dir.path(), r), vm_entry_of(dir.path(), r)));
    EXPECT_TRUE(same_file(count_of(dir.path(), r), pf_entry_of(dir.path(), r)));
    EXPECT_EQ(stat_of(record_of(dir.path(), r)).st_nlink, 2u) << "the record and its VM's entry, no temporary";
    EXPECT_EQ(store.held_on_pf("ens1f0"), 1u) << "the count file's links but itself";
    EXPECT_TRUE(temporaries(dir.path()).empty());
    EXPECT_EQ(store.records_of_vm(r.vm_id), std::vector<Reservation>{r});
    EXPECT_EQ(store.records_of_vm(std::string(test::kVmId).substr(0, 8) + "-0000-0000-0000-000000000000").size(), 0u);
    EXPECT_EQ(store.indexed_on_pf("ens1f0"), std::vector<unsigned>{1});
    EXPECT_TRUE(store.indexed_on_pf("ens1f1").empty());
    EXPECT_TRUE(store.check_index().empty());

    auto second = another("0000:3b:02.4", 4);
    ASSERT_TRUE(store.create(second));
    EXPECT_EQ(store.records_of_vm(r.vm_id), (std::vector<Reservation>{r, second}));
    EXPECT_EQ(store.indexed_on_pf("ens1f0"), (std::vector<unsigned>{1, 4}));
    EXPECT_EQ(store.held_on_pf("ens1f0"), 2u);
    EXPECT_EQ(store.held_on_pf("ens1f1"), 0u);

    EXPECT_TRUE(store.remove(r.pci));
    EXPECT_FALSE(exists(vm_entry_of(dir.path(), r)));
    EXPECT_FALSE(exists(pf_entry_of(dir.path(), r)));
    EXPECT_TRUE(store.remove(second));
    EXPECT_FALSE(exists(vm_dir_of(dir.path(), r))) << "a VM's directory goes with its last record";
    EXPECT_TRUE(store.indexed_on_pf("ens1f0").empty());
    EXPECT_EQ(store.held_on_pf("ens1f0"), 0u);
    EXPECT_TRUE(store.check_index().empty());
}

TEST(StoreIndex, PfNamesAreEncodedIntoOneFileName) {
    TempDir dir;
    ReservationStore store(dir.path(), std::chrono::seconds(1));
    const auto lock = store.lock();
    auto r = sample();
    r.pf = "../a/b\n";
    ASSERT_TRUE(store.create(r));
    EXPECT_EQ(pf_index_dir(r.pf), "pf-..%2Fa%2Fb%0A");
    EXPECT_TRUE(exists(dir.path() + "/pf-..%2Fa%2Fb%0A/1-0000:3b:02.1"));
    EXPECT_EQ(store.indexed_on_pf(r.pf), std::vector<unsigned>{1});
    EXPECT_TRUE(store.remove(r.pci));
    EXPECT_TRUE(store.check_index().empty());
}

// A writer killed after each step of create, and of remove: what it leaves
// is never taken for a record, never blocks the VF, and is cleaned.
TEST(StoreIndex, ACrashBetweenAnyTwoStepsLeavesNothingTakenForARecord) {
    TempDir dir;
    const auto state = dir.path();
    ReservationStore store(state, std::chrono::seconds(1));
    const auto r = sample();
    const auto temp = state + "/.tmp-4194303-0";
    const auto make_index_dirs = [&] {
        std::filesystem::create_directories(vm_dir_of(state, r));
        std::filesystem::create_directories(state + "/" + pf_index_dir(r.pf));
    };
    {
        const auto lock = store.lock();  // indexes the (empty) store
    }

    // 1. Written, not linked anywhere.
    write_text(temp, format_record(r));
    // 2. Linked into the index, not yet named vf-<pci>.
    make_index_dirs();
    std::filesystem::create_hard_link(temp, vm_entry_of(state, r));
    write_text(count_of(state, r), "");
    std::filesystem::create_hard_link(count_of(state, r), pf_entry_of(state, r));
    EXPECT_TRUE(store.load().empty());
    EXPECT_FALSE(store.has_record(r.pci));
    EXPECT_TRUE(store.records_of_vm(r.vm_id).empty()) << "an entry that is not vf-<pci> is no record";
    EXPECT_EQ(store.check_index().stale.size(), 2u);
    {
        // The next writer of that VF replaces the stale entries.
        const auto lock = store.lock();
        ASSERT_TRUE(store.create(r));
    }
    EXPECT_TRUE(same_file(record_of(state, r), vm_entry_of(state, r)));
    EXPECT_TRUE(same_file(count_of(state, r), pf_entry_of(state, r)));
    EXPECT_EQ(store.records_of_vm(r.vm_id), std::vector<Reservation>{r});
    EXPECT_TRUE(store.check_index().empty());
    EXPECT_EQ(store.remove_temporaries(), std::vector<std::string>{".tmp-4194303-0"});

    // 3. Named, the temporary not yet removed: a good record.
    std::filesystem::create_hard_link(record_of(state, r), temp);
    EXPECT_EQ(store.records_of_vm(r.vm_id), std::vector<Reservation>{r});
    EXPECT_EQ(store.remove_temporaries(), std::vector<std::string>{".tmp-4194303-0"});
    EXPECT_EQ(store.records_of_vm(r.vm_id), std::vector<Reservation>{r}) << "gc removes the temporary, not the record";
    EXPECT_EQ(stat_of(record_of(state, r)).st_nlink, 2u);
    EXPECT_EQ(store.held_on_pf(r.pf), 1u) << "the stale entry was taken over, not doubled";

    // 4. Removed by name, the index not yet: stale, cleaned when met under the lock.
    ASSERT_EQ(::unlink(record_of(state, r).c_str()), 0);
    EXPECT_FALSE(store.has_record(r.pci));
    EXPECT_TRUE(store.records_of_vm(r.vm_id).empty());
    EXPECT_TRUE(exists(vm_entry_of(state, r))) << "not cleaned without the lock";
    EXPECT_EQ(store.check_index().stale,
              (std::vector<std::string>{pf_index_dir(r.pf) + "/1-0000:3b:02.1", vm_index_dir(r.vm_id) + "/0000:3b:02.1"}));
    {
        const auto lock = store.lock();
        EXPECT_TRUE(store.records_of_vm(r.vm_id).empty());
        EXPECT_FALSE(exists(vm_entry_of(state, r))) << "cleaned when met under the lock";
        const auto repaired = store.repair_index();
        EXPECT_EQ(repaired.stale, std::vector<std::string>{pf_index_dir(r.pf) + "/1-0000:3b:02.1"});
    }
    EXPECT_TRUE(store.check_index().empty());
    EXPECT_FALSE(exists(vm_dir_of(state, r)));
    EXPECT_TRUE(store.indexed_on_pf(r.pf).empty());
}

TEST(StoreIndex, CreateStaysExclusiveAndLeavesNoEntryWhenTheVfIsHeld) {
    TempDir dir;
    ReservationStore store(dir.path(), std::chrono::seconds(1));
    const auto lock = store.lock();
    // A record by a writer that did not take the lock, not indexed.
    auto other = sample();
    other.vm_id = "11111111-2222-3333-4444-555555555555";
    write_text(record_of(dir.path(), other), format_record(other));
    EXPECT_FALSE(store.create(sample()));
    EXPECT_FALSE(exists(vm_dir_of(dir.path(), sample())));
    EXPECT_FALSE(exists(dir.path() + "/" + pf_index_dir("ens1f0") + "/1-0000:3b:02.1"));
    EXPECT_TRUE(temporaries(dir.path()).empty());
    EXPECT_EQ(store.read(sample().pci)->record, other) << "the first holder stays";
    EXPECT_EQ(store.check_index().missing.size(), 2u);
    EXPECT_EQ(store.repair_index().missing.size(), 2u);
    EXPECT_EQ(store.records_of_vm(other.vm_id), std::vector<Reservation>{other});
    EXPECT_TRUE(store.check_index().empty());
}

TEST(StoreIndex, AnIndexDirectoryThatIsALinkIsNeverFollowed) {
    TempDir dir;
    const auto state = dir.path() + "/state";
    ReservationStore store(state, std::chrono::seconds(1));
    const auto lock = store.lock();
    std::filesystem::create_directory(dir.path() + "/elsewhere");
    std::filesystem::create_directory_symlink(dir.path() + "/elsewhere", vm_dir_of(state, sample()));
    EXPECT_THROW(store.create(sample()), Error);
    EXPECT_TRUE(std::filesystem::is_empty(dir.path() + "/elsewhere"));
    EXPECT_FALSE(store.has_record(sample().pci)) << "a record that cannot be indexed is not made";
    EXPECT_TRUE(temporaries(state).empty());
    // gc's repair removes what is not a directory; then all is well.
    EXPECT_EQ(store.repair_index().stale, std::vector<std::string>{vm_index_dir(sample().vm_id) + " is not a directory"});
    EXPECT_TRUE(store.create(sample()));
    EXPECT_TRUE(std::filesystem::is_empty(dir.path() + "/elsewhere"));
}

// A store as releases before the index wrote it: records of both versions
// (version 2 for a name version 1 cannot hold), a damaged one, no marker.
TEST(StoreIndex, AStoreOfTheEarlierLayoutIsIndexedOnceAtItsFirstLock) {
    TempDir dir;
    const auto state = dir.path();
    const auto v1 = sample();
    auto v2 = another("0000:3b:02.2", 2, "22222222-0000-4000-8000-000000000002");
    v2.network = "sriov\nnet";
    auto third = another("0000:3b:02.3", 3);
    ASSERT_EQ(format_record(v1).rfind("sriov-passthrough-reservation 1\n", 0), 0u);
    ASSERT_EQ(format_record(v2).rfind("sriov-passthrough-reservation 2\n", 0), 0u);
    for (const auto& r : {v1, v2, third}) {
        write_text(record_of(state, r), format_record(r));
        ::chmod(record_of(state, r).c_str(), 0640);
    }
    write_text(state + "/vf-0000:3b:02.5", "half a rec");
    write_text(state + "/lock", "");

    ReservationStore store(state, std::chrono::seconds(1));
    EXPECT_FALSE(store.indexed());
    // Read without the lock (before_vm_migrate_source): the whole store.
    EXPECT_EQ(store.records_of_vm(v1.vm_id), (std::vector<Reservation>{v1, third}));
    EXPECT_FALSE(exists(state + "/layout")) << "nothing changes without the lock";
    EXPECT_FALSE(exists(vm_dir_of(state, v1)));
    {
        const auto lock = store.lock();
    }
    EXPECT_EQ(read_text(state + "/layout"), "sriov-passthrough-store 2\n");
    EXPECT_TRUE(store.indexed());
    for (const auto& r : {v1, v2, third}) {
        EXPECT_TRUE(same_file(record_of(state, r), vm_entry_of(state, r))) << r.pci.to_string();
        EXPECT_TRUE(same_file(count_of(state, r), pf_entry_of(state, r))) << r.pci.to_string();
        EXPECT_EQ(read_text(record_of(state, r)), format_record(r)) << "records are not rewritten";
    }
    EXPECT_EQ(read_text(state + "/vf-0000:3b:02.5"), "half a rec") << "a damaged record stays as it is";
    EXPECT_TRUE(store.check_index().empty());
    EXPECT_EQ(store.records_of_vm(v2.vm_id), std::vector<Reservation>{v2});
    EXPECT_EQ(store.indexed_on_pf("ens1f0"), (std::vector<unsigned>{1, 2, 3}));

    // Once: a later lock reads the marker only.
    const auto marker = stat_of(state + "/layout");
    ReservationStore later(state, std::chrono::seconds(1));
    { const auto lock = later.lock(); }
    EXPECT_EQ(stat_of(state + "/layout").st_ino, marker.st_ino);
    EXPECT_EQ(stat_of(state + "/layout").st_mtim.tv_nsec, marker.st_mtim.tv_nsec);
    // And every record is released through the index.
    {
        const auto lock = later.lock();
        for (const auto& r : later.records_of_vm(v1.vm_id)) EXPECT_TRUE(later.remove(r));
    }
    EXPECT_FALSE(exists(vm_dir_of(state, v1)));
    EXPECT_EQ(later.indexed_on_pf("ens1f0"), std::vector<unsigned>{2});
}

// An earlier release run again after this one indexed the store (a
// downgrade): its records are missing from the index, the records it
// removed leave stale entries. check says so, repair_index (gc) mends it.
TEST(StoreIndex, WhatAnEarlierReleaseDidToAnIndexedStoreIsFoundAndRepaired) {
    TempDir dir;
    const auto state = dir.path();
    ReservationStore store(state, std::chrono::seconds(1));
    const auto kept = another("0000:3b:02.2", 2);
    {
        const auto lock = store.lock();
        ASSERT_TRUE(store.create(sample()));
        ASSERT_TRUE(store.create(kept));
    }
    // The earlier release: one record released (by name only), one made.
    ASSERT_EQ(::unlink(record_of(state, sample()).c_str()), 0);
    const auto made = another("0000:3b:02.6", 6);
    write_text(record_of(state, made), format_record(made));

    const auto found = store.check_index();
    EXPECT_EQ(found.missing, (std::vector<std::string>{"vf-0000:3b:02.6 (pf-ens1f0/6-0000:3b:02.6)",
                                                       "vf-0000:3b:02.6 (" + vm_index_dir(made.vm_id) + "/0000:3b:02.6)"}));
    EXPECT_EQ(found.stale.size(), 2u);
    EXPECT_EQ(store.records_of_vm(made.vm_id), std::vector<Reservation>{kept}) << "missed until repaired";
    {
        const auto lock = store.lock();
        const auto repaired = store.repair_index();
        EXPECT_EQ(repaired.missing, found.missing);
        EXPECT_EQ(repaired.stale, found.stale);
    }
    EXPECT_TRUE(store.check_index().empty());
    EXPECT_EQ(store.records_of_vm(made.vm_id), (std::vector<Reservation>{kept, made}));
    EXPECT_EQ(store.indexed_on_pf("ens1f0"), (std::vector<unsigned>{2, 6}));
}

TEST(StoreIndex, AStoreOfANewerLayoutIsNotChanged) {
    TempDir dir;
    write_text(dir.path() + "/layout", "sriov-passthrough-store 3\n");
    ReservationStore store(dir.path(), std::chrono::seconds(1));
    try {
        store.lock();
        FAIL() << "locked a store of layout 3";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()),
                  "state directory " + dir.path() + " has layout version 3 (" + dir.path() +
                      "/layout), written by a newer release; this release keeps layout 2 and does not change a store "
                      "it does not know (remove that file to have this release index the records again)");
    }
    // The lock was given back.
    ReservationStore other(dir.path(), std::chrono::milliseconds(100));
    write_text(dir.path() + "/layout", "garbage");
    EXPECT_NO_THROW(other.lock()) << "a damaged marker is rewritten: indexing again is always safe";
    EXPECT_EQ(read_text(dir.path() + "/layout"), "sriov-passthrough-store 2\n");
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
