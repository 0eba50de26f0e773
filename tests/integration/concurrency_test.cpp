// Many hooks at once (VMs are started in bulk) and hooks killed at any
// instant: the real executables, started with fork/exec as VDSM does, all
// running before any is waited for. docs/design.md, "The store" and "Stale
// records": a VF has one holder, records survive a crash at any instant,
// records of VMs that no longer run are reclaimed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include "harness.hpp"
#include "text.hpp"

namespace fs = std::filesystem;

namespace sriovpt::test {
namespace {

const std::map<std::string, std::string> kPassthrough{{"passthrough", "true"}};
constexpr unsigned kVfsPerPf = 8;
constexpr unsigned kPoolSize = 2 * kVfsPerPf;

// A child process started but not yet waited for.
struct Child {
    pid_t pid = -1;
    std::string xml_path;
    std::string err_path;
};

// fork+exec of `program` with exactly `env`; stderr to err_path, stdout and
// stdin to /dev/null. Returns at once.
Child spawn(const std::string& program, const std::map<std::string, std::string>& env, const std::string& xml_path,
            const std::string& err_path, const std::vector<std::string>& args = {}) {
    std::vector<std::string> env_strings;
    for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv{program};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> argp;
    for (auto& s : argv) argp.push_back(s.data());
    argp.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        const int null = ::open("/dev/null", O_RDWR);
        ::dup2(null, 0);
        ::dup2(null, 1);
        ::dup2(err >= 0 ? err : null, 2);
        ::execve(argp[0], argp.data(), envp.data());
        ::_exit(127);
    }
    return Child{pid, xml_path, err_path};
}

// Exit status, or 128 + signal.
int wait_for(const Child& c) {
    int status = 0;
    while (::waitpid(c.pid, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string vm_uuid(unsigned n) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "5c0e%04x-7a1b-4c2d-8e3f-%012x", n, n);
    return buf;
}

std::string vm_mac(unsigned n) {
    char buf[20];
    std::snprintf(buf, sizeof buf, "00:1a:4a:%02x:%02x:%02x", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
    return buf;
}

// Checks what every reader must see at every instant: each record file is a
// complete record named after its VF, no vNIC holds two VFs. Returns the
// records.
std::vector<Reservation> expect_sound_store(const TestHost& host) {
    std::vector<Reservation> out;
    std::map<std::pair<std::string, std::string>, std::string> holders;
    for (const auto& e : host.records()) {
        EXPECT_TRUE(e.record) << "damaged record " << e.file << ": " << e.problem;
        if (!e.record) continue;
        const auto key = std::make_pair(e.record->vm_id, e.record->mac);
        const auto [it, fresh] = holders.emplace(key, e.file);
        EXPECT_TRUE(fresh) << "vNIC " << key.second << " of VM " << key.first << " holds two VFs: " << it->second
                           << " and " << e.file;
        out.push_back(*e.record);
    }
    return out;
}

std::vector<std::string> temporaries_in(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& entry : fs::directory_iterator(dir)) {
        const auto name = entry.path().filename().string();
        if (name.rfind(".tmp-", 0) == 0) out.push_back(name);
    }
    return out;
}

class Concurrency : public testing::Test {
protected:
    // 2 PFs x 8 VFs for sriovnet. lock_timeout is generous: these tests
    // measure correctness, not speed, on a loaded 2-core machine.
    void configure(const std::string& libvirt_uri, const std::string& extra = "") {
        host_.sysfs().add_pf({"ens1f0", "0000:3b:00.0", kVfsPerPf});
        host_.sysfs().add_pf({"ens1f1", "0000:5e:00.0", kVfsPerPf});
        write_text(host_.conf_path(), "sysfs_root = " + host_.dir() + "/sys\nstate_dir = " + host_.state_dir() +
                                          "\nlibvirt_uri = " + libvirt_uri + "\nlock_timeout = 60\n" + extra +
                                          "[network.sriovnet]\npfs = ens1f0, ens1f1\n");
        fs::create_directories(work_);
    }

    std::map<std::string, std::string> env_for(const std::string& xml_path, const std::string& vm) const {
        const char* path = std::getenv("PATH");
        return {{"PATH", path ? path : "/usr/bin:/bin"},
                {"SRIOV_PASSTHROUGH_CONF", host_.conf_path()},
                {"_hook_domxml", xml_path},
                {"vmId", vm}};
    }

    // Starts `hook_point` for VM n over a fresh copy of `xml`.
    Child start_hook(const std::string& hook_point, unsigned n, const std::string& xml, const std::string& tag) {
        const auto base = work_ + "/" + tag + "-" + std::to_string(n);
        write_text(base + ".xml", xml);
        return spawn(hook_path(hook_point), env_for(base + ".xml", vm_uuid(n)), base + ".xml", base + ".err");
    }

    Child start_gc(const std::string& tag) {
        const auto base = work_ + "/" + tag;
        auto env = env_for("", "");
        env.erase("_hook_domxml");
        env.erase("vmId");
        return spawn(SRIOVPT_CLI, env, "", base + ".err", {"gc"});
    }

    std::string domain_of(unsigned n) const {
        return make_domain({{vm_mac(n), "sriovnet", kPassthrough}}, vm_uuid(n), "vm" + std::to_string(n));
    }

    TestHost host_;
    std::string work_ = host_.dir() + "/work";
};

TEST_F(Concurrency, BulkStartsNeverDoubleBookAndReleaseEverything) {
    configure("none");
    constexpr unsigned kVms = 64;
    constexpr int kRounds = 3;
    std::vector<std::string> domains;
    for (unsigned n = 0; n < kVms; ++n) domains.push_back(domain_of(n));

    for (int round = 0; round < kRounds; ++round) {
        SCOPED_TRACE("round " + std::to_string(round));
        // Each round another subset of the VMs wins, whatever the order.
        // The first kTwice VMs are started twice at once: both runs must
        // agree on one VF (or both be refused), never hold two.
        constexpr unsigned kTwice = 8;
        std::vector<Child> children, seconds;
        for (unsigned n = 0; n < kVms; ++n) {
            children.push_back(start_hook("before_vm_start", n, domains[n], "start"));
            if (n < kTwice) seconds.push_back(start_hook("before_vm_start", n, domains[n], "again"));
        }
        std::vector<int> status;
        for (const auto& c : children) status.push_back(wait_for(c));
        for (unsigned n = 0; n < kTwice; ++n) {
            const int again = wait_for(seconds[n]);
            EXPECT_EQ(again, status[n]) << read_text(seconds[n].err_path);
            if (again == 0) {
                EXPECT_EQ(read_text(seconds[n].xml_path), read_text(children[n].xml_path)) << "VM " << n;
            } else {
                EXPECT_EQ(read_text(seconds[n].xml_path), domains[n]);
            }
        }

        std::map<std::string, unsigned> winner_of_vf;  // VF address in the output XML -> VM
        unsigned started = 0;
        for (unsigned n = 0; n < kVms; ++n) {
            const auto xml = read_text(children[n].xml_path);
            const auto err = read_text(children[n].err_path);
            if (status[n] == 0) {
                ++started;
                const auto at = xml.find("<interface type=\"hostdev\" managed=\"yes\">");
                ASSERT_NE(at, std::string::npos) << xml;
                const auto src = xml.find("<address type=\"pci\"", xml.find("<source>", at));
                const auto address = xml.substr(src, xml.find("/>", src) - src);
                const auto [it, fresh] = winner_of_vf.emplace(address, n);
                EXPECT_TRUE(fresh) << "VMs " << it->second << " and " << n << " were both given " << address;
            } else {
                EXPECT_EQ(status[n], 2) << err;
                EXPECT_NE(err.find("sriov-passthrough: before_vm_start: reserving a VF for vNIC " + vm_mac(n) +
                                   " on network sriovnet: no free VF (all 8 VFs of ens1f0 are held; all 8 VFs of "
                                   "ens1f1 are held)"),
                          std::string::npos)
                    << err;
                EXPECT_EQ(xml, domains[n]) << "a refused start leaves the XML as it was";
            }
        }
        EXPECT_EQ(started, kPoolSize) << "every VF is given, and none twice";

        const auto held = expect_sound_store(host_);
        ASSERT_EQ(held.size(), kPoolSize);
        std::set<std::string> holders;
        for (const auto& r : held) holders.insert(r.vm_id);
        for (unsigned n = 0; n < kVms; ++n)
            EXPECT_EQ(holders.count(vm_uuid(n)), status[n] == 0 ? 1u : 0u) << "VM " << n << " exit " << status[n];
        EXPECT_TRUE(temporaries_in(host_.state_dir()).empty());

        // Every VM is destroyed at once, including those that never started
        // (release is idempotent).
        children.clear();
        for (unsigned n = 0; n < kVms; ++n) children.push_back(start_hook("after_vm_destroy", n, domains[n], "destroy"));
        for (unsigned n = 0; n < kVms; ++n) {
            EXPECT_EQ(wait_for(children[n]), 0) << read_text(children[n].err_path);
        }
        EXPECT_TRUE(host_.records().empty()) << "every VF is given back";
    }
}

// A world where none of our VMs runs, and no grace period: whatever a killed
// hook leaves behind is an orphan that gc must reclaim.
TEST_F(Concurrency, HooksKilledAtAnyInstantLeaveNothingDamagedAndGcMakesThePoolWhole) {
    configure("test://" + std::string(SRIOVPT_TEST_DATA_DIR) + "/worlds/running.xml", "reclaim_grace = 0\n");
    constexpr unsigned kVms = 24;
    // Batches until enough kills have landed (how many do depends on how
    // fast this machine runs a hook), within bounds.
    constexpr int kWantedKills = 250;
    constexpr int kMaxBatches = 60;
    constexpr auto kMaxTime = std::chrono::seconds(30);
    constexpr int kPerBatch = 12;
    std::mt19937 rng(20240611);
    std::uniform_int_distribution<unsigned> pick_vm(0, kVms - 1);
    std::uniform_int_distribution<int> pick_kind(0, 9);
    // Log-uniform from 20 us to 8 ms: early kills land in exec and start-up,
    // late ones in the lock, the record writes and libvirt.
    std::uniform_real_distribution<double> log_delay(std::log(20.0), std::log(8000.0));

    int killed = 0, finished = 0, seen_temporaries = 0;
    const auto started_at = std::chrono::steady_clock::now();
    for (int batch = 0; batch < kMaxBatches && killed < kWantedKills &&
                        std::chrono::steady_clock::now() - started_at < kMaxTime;
         ++batch) {
        struct Victim {
            Child child;
            std::chrono::steady_clock::time_point kill_at;
        };
        std::vector<Victim> victims;
        for (int i = 0; i < kPerBatch; ++i) {
            const auto kind = pick_kind(rng);
            const auto n = pick_vm(rng);
            const auto tag = "b" + std::to_string(batch) + "-" + std::to_string(i);
            Child c = kind < 6   ? start_hook("before_vm_start", n, domain_of(n), tag)
                      : kind < 9 ? start_hook("after_vm_destroy", n, domain_of(n), tag)
                                 : start_gc(tag);
            const auto delay = std::chrono::microseconds(static_cast<long>(std::exp(log_delay(rng))));
            victims.push_back({c, std::chrono::steady_clock::now() + delay});
        }
        std::sort(victims.begin(), victims.end(), [](const auto& a, const auto& b) { return a.kill_at < b.kill_at; });
        for (const auto& v : victims) {
            std::this_thread::sleep_until(v.kill_at);
            ::kill(v.child.pid, SIGKILL);
        }
        for (const auto& v : victims) {
            const int status = wait_for(v.child);
            if (status == 128 + SIGKILL) {
                ++killed;
            } else {
                ++finished;
                // A hook that finished did so cleanly: success, or a clean refusal.
                EXPECT_TRUE(status == 0 || status == 2) << status << ": " << read_text(v.child.err_path);
            }
        }
        seen_temporaries += static_cast<int>(temporaries_in(host_.state_dir()).size());
        expect_sound_store(host_);
        if (HasFailure()) break;
    }
    const auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at).count();
    std::printf("[          ] %d processes killed, %d finished, %d leftover temporaries seen, %zu records left, %.1f s\n",
                killed, finished, seen_temporaries, host_.records().size(), took);
    EXPECT_GE(killed, 200) << "the test must kill hooks, not watch them finish";

    // One gc removes the leftovers of killed writers and reclaims every orphan.
    if (fs::exists(host_.state_dir())) {
        const auto gc = run_command({SRIOVPT_CLI, "gc"}, {{"SRIOV_PASSTHROUGH_CONF", host_.conf_path()}});
        ASSERT_EQ(gc.status, 0) << gc.output;
        EXPECT_TRUE(temporaries_in(host_.state_dir()).empty());
        EXPECT_TRUE(host_.records().empty()) << gc.output;
        // What killed writers left of the index (entries of files that never
        // got their name, or whose name went first) is gone too.
        const auto index = ReservationStore(host_.state_dir(), std::chrono::seconds(1)).check_index();
        EXPECT_TRUE(index.empty()) << join(index.missing) << " / " << join(index.stale) << "\n" << gc.output;
    }

    // The pool is whole: sixteen new VMs get sixteen distinct VFs.
    std::vector<Child> children;
    for (unsigned n = 100; n < 100 + kPoolSize; ++n) children.push_back(start_hook("before_vm_start", n, domain_of(n), "after"));
    for (const auto& c : children) EXPECT_EQ(wait_for(c), 0) << read_text(c.err_path);
    const auto held = expect_sound_store(host_);
    std::set<PciAddress> vfs;
    for (const auto& r : held) vfs.insert(r.pci);
    EXPECT_EQ(vfs.size(), kPoolSize);
    EXPECT_TRUE(ReservationStore(host_.state_dir(), std::chrono::seconds(1)).check_index().empty());
}

// A libvirt that takes connections and never answers: a hook that needs it
// (here a start on a dry pool, to reclaim) waits up to lock_timeout for it,
// and must do so without the reservation lock, or a VM destroy that only
// gives VFs back waits as long and times out, keeping its VF.
TEST_F(Concurrency, AHungLibvirtNeverKeepsADestroyFromTheLock) {
    const auto socket_path = host_.dir() + "/hung-libvirt-sock";
    const SilentSocket hung(socket_path);
    ASSERT_TRUE(hung.ok());

    configure("qemu+unix:///system?socket=" + socket_path, "reclaim_grace = 0\n");
    // The start waits 6 s for libvirt; the destroy waits at most 2 s for the
    // lock (its own configuration: lock_timeout is per process).
    const auto config = [&](int lock_timeout) {
        return "sysfs_root = " + host_.dir() + "/sys\nstate_dir = " + host_.state_dir() +
               "\nlibvirt_uri = qemu+unix:///system?socket=" + socket_path + "\nlock_timeout = " +
               std::to_string(lock_timeout) + "\nreclaim_grace = 0\n[network.sriovnet]\npfs = ens1f0, ens1f1\n";
    };
    const auto destroy_conf = host_.dir() + "/destroy.conf";
    write_text(host_.conf_path(), config(6));
    write_text(destroy_conf, config(2));

    // A dry pool of records an hour old: the start must ask libvirt which VMs run.
    std::vector<Child> fill;
    for (unsigned n = 0; n < kPoolSize; ++n) fill.push_back(start_hook("before_vm_start", n, domain_of(n), "fill"));
    for (const auto& c : fill) ASSERT_EQ(wait_for(c), 0) << read_text(c.err_path);
    {
        ReservationStore store(host_.state_dir(), std::chrono::seconds(5));
        const auto lock = store.lock();
        for (auto r : host_.reservations()) {
            r.created -= 3600;
            store.remove(r.pci);
            ASSERT_TRUE(store.create(r));
        }
    }

    PciAddress released_vf;
    for (const auto& r : host_.reservations()) {
        if (r.vm_id == vm_uuid(3)) released_vf = r.pci;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const auto start = start_hook("before_vm_start", 100, domain_of(100), "hung");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const auto base = work_ + "/destroy-3";
    write_text(base + ".xml", domain_of(3));
    auto env = env_for(base + ".xml", vm_uuid(3));
    env["SRIOV_PASSTHROUGH_CONF"] = destroy_conf;
    const auto t1 = std::chrono::steady_clock::now();
    const auto destroy = spawn(hook_path("after_vm_destroy"), env, base + ".xml", base + ".err");
    const int destroyed = wait_for(destroy);
    const auto destroy_took = std::chrono::steady_clock::now() - t1;
    const int started = wait_for(start);
    const auto start_took = std::chrono::steady_clock::now() - t0;

    EXPECT_EQ(destroyed, 0) << read_text(destroy.err_path);
    EXPECT_NE(read_text(destroy.err_path).find("released VF"), std::string::npos) << read_text(destroy.err_path);
    EXPECT_LT(destroy_took, std::chrono::milliseconds(1500)) << "the destroy waited for the lock";
    for (const auto& r : host_.reservations()) EXPECT_NE(r.vm_id, vm_uuid(3)) << "the destroyed VM keeps its VF";

    // The start, once libvirt let it down (after 6 s), looked at the store
    // afresh and found the VF the destroy gave back meanwhile.
    EXPECT_EQ(started, 0) << read_text(start.err_path);
    EXPECT_NE(read_text(start.err_path).find("-> VF " + released_vf.to_string()), std::string::npos)
        << read_text(start.err_path);
    EXPECT_GE(start_took, std::chrono::seconds(6)) << "it did wait for libvirt";
    EXPECT_LT(start_took, std::chrono::seconds(12));
}

}  // namespace
}  // namespace sriovpt::test
