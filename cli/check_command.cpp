#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <map>

#include "commands.hpp"
#include "error.hpp"
#include "placement.hpp"
#include "text.hpp"
#include "vf_settings.hpp"

namespace sriovpt::cli {

namespace {

// What one check found: every check adds findings, and only check_command
// prints them.
struct Findings {
    enum class Level { ok, warning, problem };
    std::vector<std::pair<Level, std::string>> lines;

    void ok(std::string line) { lines.emplace_back(Level::ok, std::move(line)); }
    void warning(std::string line) { lines.emplace_back(Level::warning, std::move(line)); }
    void problem(std::string line) { lines.emplace_back(Level::problem, std::move(line)); }
};

// Each PF of each network: present, SR-IOV, VFs enabled, link up; and the
// PFs that serve several networks.
void check_pools(Host& host, const Config& config, Findings& out) {
    if (!host.sysfs().exists("class/net"))
        out.problem(cat("sysfs_root ", config.sysfs_root, " has no class/net directory"));
    if (config.networks.empty())
        out.warning("no [network.NAME] section: every passthrough vNIC needs the sriov_pf property");
    std::map<std::string, std::vector<std::string>> networks_of_pf;
    for (const auto& [name, pool] : config.networks) {
        for (const auto& pf_name : pool.pfs) {
            networks_of_pf[pf_name].push_back(name);
            const auto pf = host.inventory().pf(pf_name);
            const auto where = cat("[network.", name, "] PF ", pf_name);
            if (!host.sysfs().exists("class/net/" + pf_name)) {
                out.problem(cat(where, ": no such network device on this host"));
            } else if (!pf) {
                out.problem(cat(where, ": not an SR-IOV PF (no device/sriov_totalvfs)"));
            } else if (!pf->problem.empty()) {
                out.problem(cat(where, ": cannot be used: ", pf->problem));
            } else if (pf->num_vfs == 0) {
                out.problem(cat(where, ": SR-IOV is not enabled (sriov_numvfs is 0 of ", pf->total_vfs,
                                "); enable VFs in the engine's host network setup"));
            } else {
                out.ok(cat(where, ": ", pf->num_vfs, " of ", pf->total_vfs, " VFs enabled, link ", pf->operstate));
                if (pf->operstate != "up")
                    out.warning(cat(where, ": link is ", pf->operstate, ", guests will have no carrier"));
                std::vector<std::string> missing;
                host.inventory().vfs(*pf, &missing);
                for (const auto& m : missing)
                    out.warning(cat(where, ": ", m, ": that VF is missing from sysfs and is never given"));
                // NUMA (placement.hpp): a PF on no node is never local to a VM.
                if (const auto policy = config.numa_policy(name);
                    policy != NumaPolicy::ignore && pf_numa_node(host.sysfs(), pf_name) < 0)
                    out.warning(cat(where, ": its NUMA node is unknown (device/numa_node is -1), so it counts as on no node: ",
                                    policy == NumaPolicy::required
                                        ? "with numa=required it serves only VMs without a NUMA placement"
                                        : "with numa=preferred it comes after the PFs on a VM's nodes"));
            }
        }
    }
    for (const auto& [pf, networks] : networks_of_pf) {
        if (networks.size() > 1)
            out.warning(cat("PF ", pf, " serves several networks (", join(networks),
                            "): make sure they share its physical network"));
    }
}

// The state directory: writable by us, usable by the hooks' user, every
// record readable.
void check_store(Host& host, Findings& out) {
    try {
        auto& store = host.store();
        const auto probe = store.dir() + "/.check-" + std::to_string(::getpid());
        const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            out.problem(cat("state_dir ", store.dir(), " is not writable: ", std::strerror(errno)));
        } else {
            ::close(fd);
            ::unlink(probe.c_str());
            out.ok(cat("state_dir ", store.dir(), " is writable"));
        }
        // Writable for us (root, say) is not writable for the hooks: what
        // they, as the directory's owner, cannot use.
        const auto unusable = store.unusable_by_owner();
        for (const auto& line : unusable) out.problem(line);
        if (unusable.empty())
            out.ok(cat("state_dir ", store.dir(), ": the lock and every record are usable by its owner (uid ",
                       store.owner_uid(), "), whom the hooks run as"));
        for (const auto& e : store.load()) {
            if (!e.record) out.problem(cat("record ", store.dir(), "/", e.file, ": ", e.problem));
        }
        // An earlier release run after this one indexed the store (a
        // downgrade, then an upgrade) writes records the index misses: the
        // hooks would not find them by VM. Stale entries only skew the choice.
        if (store.indexed()) {
            const auto index = store.check_index();
            for (const auto& m : index.missing)
                out.problem(cat("record ", store.dir(), "/", m, " is missing from the index, so the hooks do not find it "
                                "by its VM (run sriov-passthrough gc to repair the index)"));
            for (const auto& e : index.stale)
                out.warning(cat("index entry ", store.dir(), "/", e, " is no record's (sriov-passthrough gc removes it)"));
        }
    } catch (const Error& e) {
        out.problem(e.what());
    }
}

// The privileged helper for VF settings (vf_settings.hpp says what it checks).
void check_vf_helper(Host& host, Findings& out) {
    for (const auto& line : sriovpt::check_vf_helper(host)) {
        if (line.rfind("ok: ", 0) == 0)
            out.ok(line.substr(4));
        else if (line.rfind("warning: ", 0) == 0)
            out.warning(line.substr(9));
        else
            out.problem(line.substr(line.find(": ") + 2));
    }
}

void check_libvirt(Host& host, const Config& config, Findings& out) {
    if (!config.libvirt_enabled()) {
        out.warning("libvirt_uri = none: only reservations from an earlier boot can be reclaimed");
        return;
    }
    try {
        const auto ids = host.domains().running_vm_ids();
        out.ok(cat("libvirt at ", config.libvirt_uri, " answers (", ids.size(), " running domains)"));
    } catch (const Error& e) {
        out.problem(cat(e.what(), " (stale reservations cannot be reclaimed)"));
    }
}

Findings check_host(Host& host) {
    Findings out;
    const Config* config = nullptr;
    try {
        config = &host.config();
    } catch (const Error& e) {
        out.problem(e.what());
        return out;  // nothing else can be checked without it
    }
    out.ok(config->path.empty() ? "no configuration file; all defaults" : cat("configuration ", config->path, " parses"));
    check_pools(host, *config, out);
    check_store(host, out);
    check_vf_helper(host, out);
    check_libvirt(host, *config, out);
    return out;
}

}  // namespace

int check_command(Host& host) {
    int problems = 0;
    for (const auto& [level, line] : check_host(host).lines) {
        switch (level) {
            case Findings::Level::ok: std::cout << "ok: "; break;
            case Findings::Level::warning: std::cout << "warning: "; break;
            case Findings::Level::problem:
                std::cout << "PROBLEM: ";
                ++problems;
                break;
        }
        std::cout << line << "\n";
    }
    std::cout << (problems ? cat(problems, " problem(s) found\n") : std::string("no problems found\n"));
    return problems ? 1 : 0;
}

}  // namespace sriovpt::cli
