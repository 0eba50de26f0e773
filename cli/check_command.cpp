#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <map>

#include "commands.hpp"
#include "error.hpp"
#include "text.hpp"

namespace sriovpt::cli {

int check_command(Host& host) {
    int problems = 0;
    const auto ok = [](const std::string& line) { std::cout << "ok: " << line << "\n"; };
    const auto problem = [&problems](const std::string& line) {
        ++problems;
        std::cout << "PROBLEM: " << line << "\n";
    };
    const auto warning = [](const std::string& line) { std::cout << "warning: " << line << "\n"; };

    const Config* config = nullptr;
    try {
        config = &host.config();
        ok(config->path.empty() ? "no configuration file; all defaults" : cat("configuration ", config->path, " parses"));
    } catch (const Error& e) {
        problem(e.what());
        return 1;
    }
    if (!host.sysfs().exists("class/net"))
        problem(cat("sysfs_root ", config->sysfs_root, " has no class/net directory"));
    if (config->networks.empty())
        warning("no [network.NAME] section: every passthrough vNIC needs the sriov_pf property");

    std::map<std::string, std::vector<std::string>> networks_of_pf;
    for (const auto& [name, pool] : config->networks) {
        for (const auto& pf_name : pool.pfs) {
            networks_of_pf[pf_name].push_back(name);
            const auto pf = host.inventory().pf(pf_name);
            const auto where = cat("[network.", name, "] PF ", pf_name);
            if (!host.sysfs().exists("class/net/" + pf_name)) {
                problem(cat(where, ": no such network device on this host"));
            } else if (!pf) {
                problem(cat(where, ": not an SR-IOV PF (no device/sriov_totalvfs)"));
            } else if (!pf->problem.empty()) {
                problem(cat(where, ": cannot be used: ", pf->problem));
            } else if (pf->num_vfs == 0) {
                problem(cat(where, ": SR-IOV is not enabled (sriov_numvfs is 0 of ", pf->total_vfs,
                            "); enable VFs in the engine's host network setup"));
            } else {
                ok(cat(where, ": ", pf->num_vfs, " of ", pf->total_vfs, " VFs enabled, link ", pf->operstate));
                if (pf->operstate != "up") warning(cat(where, ": link is ", pf->operstate, ", guests will have no carrier"));
                std::vector<std::string> missing;
                host.inventory().vfs(*pf, &missing);
                for (const auto& m : missing) warning(cat(where, ": ", m, ": that VF is missing from sysfs and is never given"));
            }
        }
    }
    for (const auto& [pf, networks] : networks_of_pf) {
        if (networks.size() > 1)
            warning(cat("PF ", pf, " serves several networks (", join(networks),
                        "): make sure they share its physical network"));
    }

    try {
        auto& store = host.store();
        const auto probe = store.dir() + "/.check-" + std::to_string(::getpid());
        const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            problem(cat("state_dir ", store.dir(), " is not writable: ", std::strerror(errno)));
        } else {
            ::close(fd);
            ::unlink(probe.c_str());
            ok(cat("state_dir ", store.dir(), " is writable"));
        }
        // Writable for us (root, say) is not writable for the hooks: what
        // they, as the directory's owner, cannot use.
        const auto unusable = store.unusable_by_owner();
        for (const auto& line : unusable) problem(line);
        if (unusable.empty())
            ok(cat("state_dir ", store.dir(), ": the lock and every record are usable by its owner (uid ",
                   store.owner_uid(), "), whom the hooks run as"));
        for (const auto& e : store.load()) {
            if (!e.record) problem(cat("record ", store.dir(), "/", e.file, ": ", e.problem));
        }
        // An earlier release run after this one indexed the store (a
        // downgrade, then an upgrade) writes records the index misses: the
        // hooks would not find them by VM. Stale entries only skew the choice.
        if (store.indexed()) {
            const auto index = store.check_index();
            for (const auto& m : index.missing)
                problem(cat("record ", store.dir(), "/", m, " is missing from the index, so the hooks do not find it "
                            "by its VM (run sriov-passthrough gc to repair the index)"));
            for (const auto& e : index.stale)
                warning(cat("index entry ", store.dir(), "/", e, " is no record's (sriov-passthrough gc removes it)"));
        }
    } catch (const Error& e) {
        problem(e.what());
    }

    if (config->libvirt_enabled()) {
        try {
            const auto ids = host.domains().running_vm_ids();
            ok(cat("libvirt at ", config->libvirt_uri, " answers (", ids.size(), " running domains)"));
        } catch (const Error& e) {
            problem(cat(e.what(), " (stale reservations cannot be reclaimed)"));
        }
    } else {
        warning("libvirt_uri = none: only reservations from an earlier boot can be reclaimed");
    }
    std::cout << (problems ? cat(problems, " problem(s) found\n") : std::string("no problems found\n"));
    return problems ? 1 : 0;
}

}  // namespace sriovpt::cli
