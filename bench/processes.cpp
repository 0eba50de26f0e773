// Whole-process timings of the real hook executables (BENCHMARKS.md).
//
// A hook is a process started by VDSM for every VM start, so what matters is
// the cost of the whole process: exec, dynamic loading, start-up, work, exit.
// The machine these run on is shared and noisy, so every figure is a ratio
// against the cheapest process there is (bench_trivial, `int main(void){return
// 0;}`), spawned the same way and interleaved with the hook (trivial, hook,
// trivial, hook, ...), and reported as medians.
//
// Honesty: before_vm_start reserves VFs. Every timed run starts from the
// same state (an empty store): after each timed run, after_vm_destroy gives
// the VFs back outside the timed part, and the result is checked (exit 0,
// the expected number of hostdev vNICs, no record left).
//
//   bench_processes [--runs N] [--rounds N] [--quick]
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <ctime>

#include "harness.hpp"
#include "host.hpp"
#include "reservations.hpp"

extern char** environ;

namespace sriovpt::bench {
namespace {

using test::TestHost;
using test::TestVnic;

double now_us() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

// An environment as VDSM gives a hook (only what the hook reads, plus PATH).
class Env {
public:
    explicit Env(const std::map<std::string, std::string>& vars) {
        for (const auto& [k, v] : vars) strings_.push_back(k + "=" + v);
        for (auto& s : strings_) pointers_.push_back(s.data());
        pointers_.push_back(nullptr);
    }
    char* const* envp() const { return pointers_.data(); }

private:
    std::vector<std::string> strings_;
    std::vector<char*> pointers_;
};

// Starts `exe` with stdin/stdout from /dev/null and stderr to `err_path`
// (or /dev/null). posix_spawn (vfork+exec in glibc): the spawning cost does
// not depend on the size of this process.
pid_t start(const std::string& exe, const Env& env, const std::string& err_path = "/dev/null",
            const std::vector<std::string>& args = {}) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<char*> argv{const_cast<char*>(exe.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), env.envp());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start " + exe + ": " + std::strerror(rc));
    return pid;
}

int wait_for(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) throw std::runtime_error("waitpid failed");
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Microseconds from spawn to reaped exit; the exit status in `status`.
double timed_run(const std::string& exe, const Env& env, int& status, const std::string& err_path = "/dev/null",
                 const std::vector<std::string>& args = {}) {
    const double t0 = now_us();
    const pid_t pid = start(exe, env, err_path, args);
    status = wait_for(pid);
    return now_us() - t0;
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    const double pos = p / 100.0 * static_cast<double>(v.size() - 1);
    const auto lo = static_cast<size_t>(std::floor(pos));
    const auto hi = static_cast<size_t>(std::ceil(pos));
    return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}
double median(const std::vector<double>& v) { return percentile(v, 50); }

size_t count(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
    return n;
}

std::string mac_of(unsigned vm, unsigned nic) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "00:1a:4a:%02x:%02x:%02x", (vm >> 8) & 0xff, vm & 0xff, nic & 0xff);
    return buf;
}

std::string vm_id_of(unsigned vm) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "9c1f3d7e-2b44-4a51-8e0c-%012x", vm);
    return buf;
}

// A domain of `nics` bridge vNICs on sriovnet, the first `passthrough` of
// them marked passthrough=true, in the shape the engine sends.
std::string domain(unsigned vm, unsigned nics, unsigned passthrough) {
    std::vector<TestVnic> vnics;
    for (unsigned i = 0; i < nics; ++i) {
        TestVnic v{mac_of(vm, i)};
        if (i < passthrough) v.props = {{"passthrough", "true"}};
        vnics.push_back(v);
    }
    return test::make_domain(vnics, vm_id_of(vm), "vm" + std::to_string(vm));
}

std::string pf_name(unsigned i) { return "ens" + std::to_string(i + 1) + "f0"; }

// `pf_count` PFs (8 unless said) of `vfs_per_pf` VFs each, all serving sriovnet.
std::unique_ptr<TestHost> make_host(unsigned vfs_per_pf, unsigned pf_count = 8) {
    std::string pfs;
    for (unsigned i = 0; i < pf_count; ++i) pfs += (i ? ", " : "") + pf_name(i);
    auto host = std::make_unique<TestHost>("[network.sriovnet]\npfs = " + pfs + "\nvlan = 100\n");
    for (unsigned i = 0; i < pf_count; ++i) {
        char pci[16];
        std::snprintf(pci, sizeof pci, "0000:%02x:00.0", 0x10 + 4 * i);
        host->sysfs().add_pf({pf_name(i), pci, vfs_per_pf, vfs_per_pf});
    }
    return host;
}

// `count` VFs held by other VMs (two each), spread over the PFs as the
// choice spreads them (round robin, lowest index first), written as the
// hooks write them (lock, index).
void hold(TestHost& host, unsigned count, unsigned pf_count) {
    ReservationStore store(host.state_dir(), std::chrono::seconds(10));
    const auto lock = store.lock();
    for (unsigned k = 0; k < count; ++k) {
        Reservation r;
        r.pf = pf_name(k % pf_count);
        r.vf_index = k / pf_count;
        r.pci = host.sysfs().vf_pci(r.pf, r.vf_index);
        r.vm_id = vm_id_of(5000 + k / 2);
        r.mac = mac_of(5000 + k / 2, k % 2);
        r.network = "sriovnet";
        r.vlan = 100;
        r.boot_id = current_boot_id();
        r.created = static_cast<std::int64_t>(std::time(nullptr));
        r.origin = "before_vm_start";
        if (!store.create(r)) throw std::runtime_error("hold: VF " + r.pci.to_string() + " held twice");
    }
}

struct Row {
    std::string name;
    double trivial_us = NAN;
    double hook_us = NAN;
    double ratio = NAN;
    std::string target;   // "≤ 3×", or empty
    bool ok = true;
    std::string note;
};

// One before_vm_start case: `runs` interleaved pairs (trivial, hook); the
// hook's result is checked and its VFs released outside the timing.
Row vm_start_case(const std::string& name, TestHost& host, unsigned nics, unsigned passthrough, unsigned runs,
                  double target) {
    const std::string xml = domain(1, nics, passthrough);
    const auto xml_path = host.dir() + "/domxml";
    const auto err_path = host.dir() + "/stderr";
    const Env env({{"PATH", "/usr/bin:/bin"},
                   {"_hook_domxml", xml_path},
                   {"vmId", vm_id_of(1)},
                   {"SRIOV_PASSTHROUGH_CONF", host.conf_path()}});
    const std::string hook = test::hook_path("before_vm_start");
    const std::string destroy = test::hook_path("after_vm_destroy");
    std::vector<double> trivial, hooked;
    // Warm-up (page cache, dentries), not counted.
    for (unsigned i = 0; i < 3 + runs; ++i) {
        test::write_text(xml_path, xml);
        int status = 0;
        const double t = timed_run(SRIOVPT_BENCH_TRIVIAL, env, status);
        const double h = timed_run(hook, env, status, err_path);
        if (status != 0) throw std::runtime_error(name + ": before_vm_start failed: " + test::read_text(err_path));
        const auto out = test::read_text(xml_path);
        if (count(out, "<interface type=\"hostdev\"") != passthrough)
            throw std::runtime_error(name + ": expected " + std::to_string(passthrough) + " hostdev vNICs");
        if (passthrough) {
            timed_run(destroy, env, status, err_path);
            if (status != 0)
                throw std::runtime_error(name + ": after_vm_destroy failed: " + test::read_text(err_path));
            if (!ReservationStore(host.state_dir(), std::chrono::seconds(1)).records_of_vm(vm_id_of(1)).empty())
                throw std::runtime_error(name + ": records left after after_vm_destroy");
        }
        if (i >= 3) {
            trivial.push_back(t);
            hooked.push_back(h);
        }
    }
    Row row;
    row.name = name;
    row.trivial_us = median(trivial);
    row.hook_us = median(hooked);
    row.ratio = row.hook_us / row.trivial_us;
    if (target > 0) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "≤ %.1f×", target);
        row.target = buf;
        row.ok = row.ratio <= target;
    }
    return row;
}

// NUMA choice (issue 11): the same start on a 2-node host (PFs 1-4 on node
// 0, 5-8 on node 1) with the VM placed on node 1 by `placement`, under the
// default policy (preferred) and under `numa = ignore`: the two hooks are
// interleaved (ignore, numa, ignore, numa, ...) and the ratio is numa's
// median over ignore's. Each result is checked: under `preferred` both VFs
// come from node 1's PFs (bus 0x20 and up), under `ignore` from ens1f0 and
// ens2f0 (the balancing alone).
Row numa_case(const std::string& name, const std::string& placement, unsigned runs, double target) {
    std::string pfs;
    for (unsigned i = 0; i < 8; ++i) pfs += (i ? ", ens" : "ens") + std::to_string(i + 1) + "f0";
    const std::string pool = "[network.sriovnet]\npfs = " + pfs + "\nvlan = 100\n";
    TestHost host(pool);
    for (unsigned i = 0; i < 8; ++i) {
        char pci[16];
        std::snprintf(pci, sizeof pci, "0000:%02x:00.0", 0x10 + 4 * i);
        host.sysfs().add_pf({"ens" + std::to_string(i + 1) + "f0", pci, 64, 64, i < 4 ? 0 : 1});
    }
    host.sysfs().add_numa_node(0, "0-15");
    host.sysfs().add_numa_node(1, "16-31");
    const auto ignore_conf = host.dir() + "/ignore.conf";
    // A key outside any section must come before the first one.
    test::write_text(ignore_conf, "numa = ignore\n" + test::read_text(host.conf_path()));
    std::string xml = domain(1, 4, 2);
    xml.insert(xml.find("  <devices>"), placement);
    const auto xml_path = host.dir() + "/domxml";
    const auto err_path = host.dir() + "/stderr";
    const auto env_for = [&](const std::string& conf) {
        return std::make_unique<Env>(std::map<std::string, std::string>{{"PATH", "/usr/bin:/bin"},
                                                                        {"_hook_domxml", xml_path},
                                                                        {"vmId", vm_id_of(1)},
                                                                        {"SRIOV_PASSTHROUGH_CONF", conf}});
    };
    const auto numa_env = env_for(host.conf_path());
    const auto ignore_env = env_for(ignore_conf);
    const std::string hook = test::hook_path("before_vm_start");
    const std::string destroy = test::hook_path("after_vm_destroy");
    const auto run_checked = [&](const Env& env, bool numa) {
        test::write_text(xml_path, xml);
        int status = 0;
        const double t = timed_run(hook, env, status, err_path);
        if (status != 0) throw std::runtime_error(name + ": before_vm_start failed: " + test::read_text(err_path));
        const auto out = test::read_text(xml_path);
        const bool on_node1 = count(out, "bus=\"0x2") + count(out, "bus=\"0x3") == 2;
        const bool balanced = count(out, "bus=\"0x10\"") + count(out, "bus=\"0x14\"") == 2;
        if (numa ? !on_node1 : !balanced)
            throw std::runtime_error(name + ": the VFs are not where " + (numa ? "numa" : "ignore") + " puts them");
        timed_run(destroy, env, status, err_path);
        if (status != 0 || !host.records().empty())
            throw std::runtime_error(name + ": after_vm_destroy failed: " + test::read_text(err_path));
        return t;
    };
    std::vector<double> ignored, placed;
    for (unsigned i = 0; i < 3 + runs; ++i) {
        const double a = run_checked(*ignore_env, false);
        const double b = run_checked(*numa_env, true);
        if (i >= 3) {
            ignored.push_back(a);
            placed.push_back(b);
        }
    }
    Row row;
    row.name = name;
    row.trivial_us = median(ignored);   // the yardstick of this row: the same start with numa = ignore
    row.hook_us = median(placed);
    row.ratio = row.hook_us / row.trivial_us;
    char buf[32];
    std::snprintf(buf, sizeof buf, "≤ %.1f×", target);
    row.target = buf;
    row.ok = row.ratio <= target;
    return row;
}

// `sriov-passthrough status` (the table, libvirt not asked) against the
// trivial program, interleaved; its output checked once.
Row status_case(const std::string& name, TestHost& host, unsigned vfs, unsigned runs) {
    const Env env(std::map<std::string, std::string>{{"PATH", "/usr/bin:/bin"}});
    const auto out_path = host.dir() + "/status";
    const std::vector<std::string> args{"--config", host.conf_path(), "status", "--no-libvirt"};
    std::vector<double> trivial, timed;
    for (unsigned i = 0; i < 3 + runs; ++i) {
        int status = 0;
        const double t = timed_run(SRIOVPT_BENCH_TRIVIAL, env, status);
        const double h = timed_run(SRIOVPT_CLI, env, status, out_path, args);
        if (status != 0) throw std::runtime_error(name + ": status failed: " + test::read_text(out_path));
        if (i >= 3) {
            trivial.push_back(t);
            timed.push_back(h);
        }
    }
    // Timed with stdout on /dev/null; what it prints is checked once.
    const auto check = test::run_command({SRIOVPT_CLI, "--config", host.conf_path(), "status", "--no-libvirt"});
    if (check.status != 0 || count(check.output, "\nens") != vfs)
        throw std::runtime_error(name + ": status did not list " + std::to_string(vfs) + " VFs");
    Row row;
    row.name = name;
    row.trivial_us = median(trivial);
    row.hook_us = median(timed);
    row.ratio = row.hook_us / row.trivial_us;
    char note[64];
    std::snprintf(note, sizeof note, "%.1f ms", row.hook_us / 1e3);
    row.note = note;
    return row;
}

// `vms` before_vm_start processes started at once, each a different VM with
// 4 vNICs of which 2 pass through, over 8×64 VFs. Repeated `rounds` times
// (VFs released between rounds, untimed).
struct BulkResult {
    std::vector<double> latency_us;   // spawn to exit, every start of every round
    std::vector<double> throughput;   // starts per second, one per round
    unsigned failures = 0;
};

BulkResult bulk_case(TestHost& host_ref, unsigned vms, unsigned rounds, size_t held_before = 0) {
    auto* host = &host_ref;
    std::vector<std::string> xmls;
    for (unsigned vm = 0; vm < vms; ++vm) xmls.push_back(domain(100 + vm, 4, 2));
    BulkResult result;
    const std::string hook = test::hook_path("before_vm_start");
    const std::string destroy = test::hook_path("after_vm_destroy");
    for (unsigned round = 0; round < rounds; ++round) {
        std::vector<std::unique_ptr<Env>> envs;
        for (unsigned vm = 0; vm < vms; ++vm) {
            const auto path = host->dir() + "/domxml-" + std::to_string(vm);
            test::write_text(path, xmls[vm]);
            envs.push_back(std::make_unique<Env>(std::map<std::string, std::string>{
                {"PATH", "/usr/bin:/bin"},
                {"_hook_domxml", path},
                {"vmId", vm_id_of(100 + vm)},
                {"SRIOV_PASSTHROUGH_CONF", host->conf_path()}}));
        }
        std::map<pid_t, double> started;
        const double t0 = now_us();
        for (unsigned vm = 0; vm < vms; ++vm)
            started[start(hook, *envs[vm], host->dir() + "/stderr-" + std::to_string(vm))] = now_us();
        double last = t0;
        while (!started.empty()) {
            int status = 0;
            const pid_t pid = ::waitpid(-1, &status, 0);
            if (pid < 0) {
                if (errno == EINTR) continue;
                throw std::runtime_error("waitpid failed");
            }
            const double t = now_us();
            last = t;
            const auto it = started.find(pid);
            if (it == started.end()) continue;
            result.latency_us.push_back(t - it->second);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++result.failures;
            started.erase(it);
        }
        result.throughput.push_back(vms / ((last - t0) / 1e6));
        // Every VM must hold 2 VFs, all distinct.
        std::set<std::string> vfs;
        const auto held = host->reservations();
        for (const auto& r : held) vfs.insert(r.pci.to_string());
        if (held.size() != held_before + 2 * vms || vfs.size() != held.size()) {
            std::fprintf(stderr, "bulk: %zu records (%zu distinct VFs) for %u VMs\n", held.size(), vfs.size(), vms);
            ++result.failures;
        }
        for (unsigned vm = 0; vm < vms; ++vm) {
            int status = 0;
            timed_run(destroy, *envs[vm], status);
            if (status != 0) ++result.failures;
        }
        if (host->records().size() != held_before) ++result.failures;
    }
    return result;
}

void print_rows(const std::vector<Row>& rows) {
    std::printf("| case | trivial median (µs) | hook median (µs) | ratio | target | |\n");
    std::printf("|---|---:|---:|---:|---|---|\n");
    for (const auto& r : rows) {
        std::printf("| %s | %.0f | %.0f | %.2f× | %s | %s |\n", r.name.c_str(), r.trivial_us, r.hook_us, r.ratio,
                    r.target.c_str(), r.target.empty() ? r.note.c_str() : (r.ok ? "ok" : "MISSED"));
    }
}

int main_(int argc, char** argv) {
    unsigned runs = 201;
    unsigned rounds = 5;
    bool starts_only = false;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--runs" && i + 1 < argc) {
            runs = static_cast<unsigned>(std::atoi(argv[++i]));
        } else if (arg == "--rounds" && i + 1 < argc) {
            rounds = static_cast<unsigned>(std::atoi(argv[++i]));
        } else if (arg == "--quick") {
            runs = 21;
            rounds = 1;
        } else if (arg == "--starts") {
            starts_only = true;
        } else {
            std::fprintf(stderr, "usage: bench_processes [--runs N] [--rounds N] [--quick] [--starts]\n");
            return 2;
        }
    }
    bool all_ok = true;
    std::vector<Row> rows;

    std::fprintf(stderr, "building fake hosts...\n");
    std::map<unsigned, std::unique_ptr<TestHost>> hosts;   // by VFs per PF
    if (starts_only) {
        // The two targets of every start, and status at 2048 VFs: for a
        // quick look while working on them.
        hosts[64] = make_host(64);
        hosts[256] = make_host(256);
        rows.push_back(vm_start_case("4 vNICs, 2 passthrough, 8×64 VFs", *hosts[64], 4, 2, runs, 2.0));
        rows.push_back(vm_start_case("4 vNICs, no passthrough, 8×64 VFs", *hosts[64], 4, 0, runs, 1.2));
        rows.push_back(status_case("status, 8×256 VFs, none held", *hosts[256], 2048, std::min(runs, 51u)));
        auto many = make_host(64, 32);
        hold(*many, 2000, 32);
        rows.push_back(status_case("status, 32×64 VFs, 2000 held", *many, 2048, std::min(runs, 51u)));
        print_rows(rows);
        for (const auto& r : rows) all_ok = all_ok && r.ok;
        return all_ok ? 0 : 1;
    }
    for (unsigned per_pf : {1u, 16u, 64u, 128u, 256u}) hosts[per_pf] = make_host(per_pf);

    std::fprintf(stderr, "before_vm_start, %u interleaved runs per case...\n", runs);
    rows.push_back(vm_start_case("4 vNICs, 2 passthrough, 8×64 VFs", *hosts[64], 4, 2, runs, 2.0));
    rows.push_back(vm_start_case("4 vNICs, no passthrough, 8×64 VFs", *hosts[64], 4, 0, runs, 1.2));
    rows.push_back(vm_start_case("1 vNIC, passthrough, 8×64 VFs", *hosts[64], 1, 1, runs, 0));
    rows.push_back(vm_start_case("16 vNICs, 8 passthrough, 8×64 VFs", *hosts[64], 16, 8, runs, 0));
    rows.push_back(vm_start_case("32 vNICs, 16 passthrough, 8×64 VFs", *hosts[64], 32, 16, runs, 0));
    const size_t first_scale = rows.size();
    for (unsigned per_pf : {1u, 16u, 128u, 256u})
        rows.push_back(vm_start_case("4 vNICs, 2 passthrough, " + std::to_string(8 * per_pf) + " VFs (8×" +
                                         std::to_string(per_pf) + ")",
                                     *hosts[per_pf], 4, 2, runs, 0));
    const double growth = rows.back().ratio / rows[first_scale].ratio;
    char note[64];
    std::snprintf(note, sizeof note, "%.2f× the 8-VF ratio", growth);
    rows.back().note = note;
    const bool growth_ok = growth <= 1.5;
    for (const auto& r : rows) all_ok = all_ok && r.ok;
    all_ok = all_ok && growth_ok;
    print_rows(rows);
    std::printf("\nGrowth from 8 to 2048 VFs per host: %.2f× (target ≤ 1.5×): %s\n", growth,
                growth_ok ? "ok" : "MISSED");

    std::fprintf(stderr, "NUMA choice on a 2-node host, %u interleaved runs per case...\n", runs);
    std::vector<Row> numa_rows;
    numa_rows.push_back(numa_case("<numatune> on node 1", "  <numatune>\n    <memory mode=\"strict\" nodeset=\"1\"/>\n  </numatune>\n",
                                  runs, 1.1));
    numa_rows.push_back(numa_case("vCPUs pinned to node 1's CPUs",
                                  "  <cputune>\n    <vcpupin vcpu=\"0\" cpuset=\"16\"/>\n    <vcpupin vcpu=\"1\" "
                                  "cpuset=\"17\"/>\n    <emulatorpin cpuset=\"16-17\"/>\n  </cputune>\n",
                                  runs, 1.1));
    std::printf("\nNUMA choice: before_vm_start (4 vNICs, 2 passthrough, 8×64 VFs, PFs on 2 nodes), the default "
                "policy (preferred) against numa = ignore (medians, interleaved):\n");
    std::printf("| VM placement | numa = ignore (µs) | preferred (µs) | ratio | target | |\n");
    std::printf("|---|---:|---:|---:|---|---|\n");
    for (const auto& r : numa_rows) {
        std::printf("| %s | %.0f | %.0f | %.2f× | %s | %s |\n", r.name.c_str(), r.trivial_us, r.hook_us, r.ratio,
                    r.target.c_str(), r.ok ? "ok" : "MISSED");
        all_ok = all_ok && r.ok;
    }

    // The store's size (issue 11): a 32×64 host, 8 VFs held by others, then 2000.
    std::fprintf(stderr, "held reservations: building 32×64 hosts...\n");
    auto few = make_host(64, 32);
    hold(*few, 8, 32);
    auto many = make_host(64, 32);
    hold(*many, 2000, 32);
    std::vector<Row> held_rows;
    held_rows.push_back(vm_start_case("1 vNIC, passthrough, 32×64 VFs, 8 held", *few, 1, 1, runs, 0));
    held_rows.push_back(vm_start_case("1 vNIC, passthrough, 32×64 VFs, 2000 held", *many, 1, 1, runs, 0));
    held_rows.push_back(vm_start_case("4 vNICs, 2 passthrough, 32×64 VFs, 2000 held", *many, 4, 2, runs, 0));
    const double held_growth = held_rows[1].ratio / held_rows[0].ratio;
    char held_note[64];
    std::snprintf(held_note, sizeof held_note, "%.2f× the 8-held ratio", held_growth);
    held_rows[1].note = held_note;
    const bool held_ok = held_growth <= 1.5;
    all_ok = all_ok && held_ok;
    held_rows.push_back(status_case("status, 32×64 VFs, 2000 held", *many, 2048, runs));
    held_rows.push_back(status_case("status, 8×256 VFs, none held", *hosts[256], 2048, runs));
    std::printf("\n");
    print_rows(held_rows);
    std::printf("\nFrom 8 to 2000 reservations held: %.2f× (target ≤ 1.5×): %s\n", held_growth,
                held_ok ? "ok" : "MISSED");

    std::fprintf(stderr, "64 VM starts at once, %u rounds...\n", rounds);
    auto bulk_host = make_host(64);
    const auto bulk = bulk_case(*bulk_host, 64, rounds);
    // 2000 held and 128 more wanted: 32×68 VFs.
    auto crowded = make_host(68, 32);
    hold(*crowded, 2000, 32);
    const auto crowded_bulk = bulk_case(*crowded, 64, rounds, 2000);
    std::printf("\n64 VM starts at once (separate processes; 4 vNICs, 2 passthrough each), %u rounds:\n", rounds);
    std::printf("| host | starts | failed | p50 per start (ms) | p99 per start (ms) | throughput (starts/s, median) |\n");
    std::printf("|---|---:|---:|---:|---:|---:|\n");
    for (const auto& [label, b] : {std::pair<const char*, const BulkResult*>{"8×64 VFs, none held", &bulk},
                                   {"32×68 VFs, 2000 held", &crowded_bulk}}) {
        std::printf("| %s | %zu | %u | %.1f | %.1f | %.0f |\n", label, b->latency_us.size(), b->failures,
                    percentile(b->latency_us, 50) / 1e3, percentile(b->latency_us, 99) / 1e3,
                    median(b->throughput));
        all_ok = all_ok && b->failures == 0;
    }
    std::printf("\n%s\n", all_ok ? "all targets met" : "SOME TARGETS MISSED");
    return all_ok ? 0 : 1;
}

}  // namespace
}  // namespace sriovpt::bench

int main(int argc, char** argv) {
    try {
        return sriovpt::bench::main_(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_processes: %s\n", e.what());
        return 2;
    }
}
