#include "vf_settings.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <linux/capability.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "allocator.hpp"
#include "error.hpp"
#include "host.hpp"
#include "reservations.hpp"
#include "text.hpp"

namespace sriovpt {

namespace {

bool parse_on_off(std::string_view key, std::string_view value) {
    if (value == "on") return true;
    if (value == "off") return false;
    fail(key, "=", quoted(value), " is not allowed (allowed: on or off)");
}

std::uint32_t parse_rate(std::string_view key, std::string_view value) {
    const auto n = parse_decimal(value);
    if (!n || *n > kMaxTxRateMbps)
        fail(key, "=", quoted(value), " is not allowed (allowed: a whole number of Mbps from 0 to ", kMaxTxRateMbps,
             ", 0 = no limit)");
    return static_cast<std::uint32_t>(*n);
}

std::string vf_text(const Reservation& r) { return cat("VF ", r.pci.to_string(), " (", r.pf, " VF ", r.vf_index, ")"); }

std::string helper_path_text(Host& host) {
    return cat("VF helper ", host.config().vf_helper);
}

// Under the lock: replaces the record of `from` by `to` when it is still
// `from` (nobody released or reclaimed it meanwhile). True when replaced.
bool replace_if_same(Host& host, const Reservation& from, const Reservation& to) {
    auto& store = host.store();
    const auto lock = store.lock();
    for (const auto& e : store.load()) {
        if (e.record && *e.record == from) {
            store.replace(to);
            return true;
        }
    }
    return false;
}

// The helper's arguments for making `settings` on the VF of `r`.
std::vector<std::string> apply_args(const Reservation& r, const VfSettings& settings) {
    std::vector<std::string> args{"apply", r.pci.to_string()};
    for (auto& w : helper_words(settings)) args.push_back(std::move(w));
    args.insert(args.end(), {"--vm-id", r.vm_id, "--mac", r.mac});
    return args;
}

// Each setting of `s` alone (the rates as one: the kernel sets both).
std::vector<VfSettings> one_by_one(const VfSettings& s) {
    std::vector<VfSettings> out;
    if (s.trust) out.emplace_back().trust = s.trust;
    if (s.spoofchk) out.emplace_back().spoofchk = s.spoofchk;
    if (s.max_tx_rate || s.min_tx_rate) {
        auto& rate = out.emplace_back();
        rate.max_tx_rate = s.max_tx_rate;
        rate.min_tx_rate = s.min_tx_rate;
    }
    if (s.link_state) out.emplace_back().link_state = s.link_state;
    return out;
}

void add_settings(VfSettings& to, const VfSettings& from) {
    if (from.trust) to.trust = from.trust;
    if (from.spoofchk) to.spoofchk = from.spoofchk;
    if (from.max_tx_rate) to.max_tx_rate = from.max_tx_rate;
    if (from.min_tx_rate) to.min_tx_rate = from.min_tx_rate;
    if (from.link_state) to.link_state = from.link_state;
}

}  // namespace

bool is_vf_setting_key(std::string_view key) {
    return key == kPropVfTrust || key == kPropVfSpoofchk || key == kPropVfMaxTxRate || key == kPropVfMinTxRate ||
           key == kPropVfLinkState;
}

void set_vf_setting(VfSettings& s, std::string_view key, std::string_view value) {
    if (key == kPropVfTrust) {
        s.trust = parse_on_off(key, value);
    } else if (key == kPropVfSpoofchk) {
        s.spoofchk = parse_on_off(key, value);
    } else if (key == kPropVfMaxTxRate) {
        s.max_tx_rate = parse_rate(key, value);
    } else if (key == kPropVfMinTxRate) {
        s.min_tx_rate = parse_rate(key, value);
    } else if (key == kPropVfLinkState) {
        if (value != "auto" && value != "enable" && value != "disable")
            fail(key, "=", quoted(value), " is not allowed (allowed: auto, enable or disable)");
        s.link_state = std::string(value);
    } else {
        fail("unknown VF setting ", quoted(key));
    }
}

OnError parse_on_error(std::string_view value) {
    if (value == "fail") return OnError::fail;
    if (value == "warn") return OnError::warn;
    fail(quoted(value), " is not allowed (allowed: fail or warn)");
}

VfSettings effective_vf_settings(const VfSettings& vnic, const VfSettings& network) {
    VfSettings s = vnic;
    if (!s.trust) s.trust = network.trust;
    if (!s.spoofchk) s.spoofchk = network.spoofchk;
    if (!s.max_tx_rate) s.max_tx_rate = network.max_tx_rate;
    if (!s.min_tx_rate) s.min_tx_rate = network.min_tx_rate;
    if (!s.link_state) s.link_state = network.link_state;
    // IFLA_VF_RATE carries both: the one not asked for is 0 (no limit, no
    // minimum), which is also what the helper's baseline has by default.
    if (s.max_tx_rate || s.min_tx_rate) {
        if (!s.max_tx_rate) s.max_tx_rate = 0;
        if (!s.min_tx_rate) s.min_tx_rate = 0;
        if (*s.max_tx_rate != 0 && *s.min_tx_rate > *s.max_tx_rate) {
            const auto from = [](bool own) { return own ? "the vNIC's property" : "the network's default"; };
            fail(kPropVfMinTxRate, " ", *s.min_tx_rate, " (", from(vnic.min_tx_rate.has_value()), ") is above ",
                 kPropVfMaxTxRate, " ", *s.max_tx_rate, " (", from(vnic.max_tx_rate.has_value()),
                 "); the minimum must not exceed the maximum (0 = no limit)");
        }
    }
    return s;
}

std::vector<std::string> helper_words(const VfSettings& s) {
    std::vector<std::string> out;
    const auto on_off = [](bool on) { return on ? "on" : "off"; };
    if (s.trust) out.push_back(cat("trust=", on_off(*s.trust)));
    if (s.spoofchk) out.push_back(cat("spoofchk=", on_off(*s.spoofchk)));
    if (s.max_tx_rate || s.min_tx_rate) {
        out.push_back(cat("max_tx_rate=", s.max_tx_rate.value_or(0)));
        out.push_back(cat("min_tx_rate=", s.min_tx_rate.value_or(0)));
    }
    if (s.link_state) out.push_back(cat("link_state=", *s.link_state));
    return out;
}

std::string describe_vf_settings(const VfSettings& s) {
    return s.empty() ? std::string("none") : join(helper_words(s), " ");
}

std::string format_vf_settings(const VfSettings& s) { return s.empty() ? std::string("-") : join(helper_words(s), ","); }

VfSettings parse_vf_settings(std::string_view text) {
    VfSettings s;
    if (text == "-") return s;
    for (const auto& word : split(text, ',')) {
        const auto eq = word.find('=');
        if (eq == std::string::npos) fail("VF setting ", quoted(word), " is not NAME=VALUE");
        const auto key = cat("vf_", word.substr(0, eq));
        if (!is_vf_setting_key(key)) fail("unknown VF setting ", quoted(word));
        set_vf_setting(s, key, word.substr(eq + 1));
    }
    // Exactly as written, or the record is not one of ours.
    if (format_vf_settings(s) != text) fail("VF settings ", quoted(text), " are not in the written form");
    return s;
}

// --- Running the helper -------------------------------------------------------

bool HelperRun::changed_nothing() const {
    // The helper's statuses (helper/vf_helper.hpp): 1 all undone, 2 usage,
    // 3 refused, 4 no CAP_NET_ADMIN, 6 cannot run: nothing was left
    // changed. 0 made it; 5 left the VF changed. No status (timed out,
    // killed): unknown, so changed.
    if (status < 0) return !failure.empty() && failure.rfind("cannot be run", 0) == 0;
    return status != 0 && status != 5 && status <= 6;
}

std::string HelperRun::text() const {
    if (status < 0) return failure;
    if (line.empty()) return cat("it exited with status ", status, " and said nothing");
    if (status >= 1 && status <= 6) return line;
    return cat("it exited with status ", status, ": ", line);
}

HelperRun run_helper(const std::string& path, const std::vector<std::string>& args, std::chrono::milliseconds timeout,
                     std::optional<std::pair<uid_t, gid_t>> as) {
    HelperRun run;
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) {
        run.failure = cat("cannot be run: ", path, ": ", std::strerror(errno));
        return run;
    }
    if (!S_ISREG(st.st_mode)) {
        run.failure = cat("cannot be run: ", path, " is not a regular file");
        return run;
    }
    // Everything the child needs, made before fork: after it, only
    // async-signal-safe calls.
    std::vector<std::string> argv_strings{path};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_strings) argv.push_back(a.data());
    argv.push_back(nullptr);
    char* envp[] = {nullptr};
    int out[2], status_pipe[2];
    if (::pipe2(out, O_CLOEXEC) != 0) {
        run.failure = cat("cannot be run: pipe: ", std::strerror(errno));
        return run;
    }
    if (::pipe2(status_pipe, O_CLOEXEC) != 0) {
        ::close(out[0]);
        ::close(out[1]);
        run.failure = cat("cannot be run: pipe: ", std::strerror(errno));
        return run;
    }
    const pid_t pid = ::fork();
    if (pid < 0) {
        for (const int fd : {out[0], out[1], status_pipe[0], status_pipe[1]}) ::close(fd);
        run.failure = cat("cannot be run: fork: ", std::strerror(errno));
        return run;
    }
    if (pid == 0) {
        const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (devnull >= 0) ::dup2(devnull, 0);
        ::dup2(out[1], 1);
        ::dup2(out[1], 2);
        bool ok = true;
        if (as) ok = ::setgroups(0, nullptr) == 0 && ::setgid(as->second) == 0 && ::setuid(as->first) == 0;
        if (ok) ::execve(argv[0], argv.data(), envp);
        const int e = errno;
        (void)!::write(status_pipe[1], &e, sizeof e);
        ::_exit(127);
    }
    ::close(out[1]);
    ::close(status_pipe[1]);
    std::string output;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    bool timed_out = false;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        pollfd p{out[0], POLLIN, 0};
        const int n = ::poll(&p, 1, static_cast<int>(left.count()));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            timed_out = n == 0;
            break;
        }
        char buf[4096];
        const ssize_t got = ::read(out[0], buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        // A helper says one line; more is not kept.
        if (output.size() < 65536) output.append(buf, static_cast<size_t>(got));
    }
    ::close(out[0]);
    // The helper closes its output only by exiting; one that closed it and
    // went on is not waited for beyond the same deadline.
    if (timed_out) ::kill(pid, SIGKILL);
    int wstatus = 0;
    for (;;) {
        const pid_t w = ::waitpid(pid, &wstatus, timed_out ? 0 : WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) break;
        if (std::chrono::steady_clock::now() >= deadline) {
            timed_out = true;
            ::kill(pid, SIGKILL);
            continue;
        }
        ::usleep(1000);
    }
    int exec_errno = 0;
    const bool exec_failed = ::read(status_pipe[0], &exec_errno, sizeof exec_errno) == sizeof exec_errno;
    ::close(status_pipe[0]);
    while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
    if (const auto nl = output.rfind('\n'); nl != std::string::npos) output = output.substr(nl + 1);
    run.line = printable(output, 2048);
    if (exec_failed) {
        run.failure = cat("cannot be run: ", path, ": ",
                          as ? cat("as uid ", as->first, ": ") : std::string(), std::strerror(exec_errno));
    } else if (timed_out) {
        run.failure = cat(path, " did not finish within ", std::chrono::duration_cast<std::chrono::seconds>(timeout).count(), " s and was killed");
    } else if (WIFEXITED(wstatus)) {
        run.status = WEXITSTATUS(wstatus);
    } else if (WIFSIGNALED(wstatus)) {
        run.failure = cat(path, " was killed by signal ", WTERMSIG(wstatus));
    }
    return run;
}

// --- Records -------------------------------------------------------------------

bool awaits_reset(const Reservation& r) { return r.reset_pending; }

std::optional<Reservation> retire_record(ReservationStore& store, const Reservation& r, const std::string& boot_id) {
    const bool earlier_boot = !r.boot_id.empty() && !boot_id.empty() && r.boot_id != boot_id;
    if (r.vf_settings.empty() || earlier_boot) {
        if (!store.remove(r.pci)) return std::nullopt;
        return r;
    }
    if (r.reset_pending) return r;
    Reservation marked = r;
    marked.reset_pending = true;
    store.replace(marked);
    return marked;
}

ResetReport finish_resets(Host& host, const std::vector<Reservation>& records) {
    ResetReport report;
    for (const auto& r : records) {
        if (!r.reset_pending) continue;
        // With the lock released: the helper may take up to lock_timeout,
        // and the record keeps the VF from everyone meanwhile.
        const auto run = run_helper(host.config().vf_helper, {"reset", r.pci.to_string()}, host.lock_timeout());
        if (!run.ok()) {
            report.failed.push_back(cat("resetting the settings of ", vf_text(r), " (", describe_vf_settings(r.vf_settings),
                                        ", made for vNIC ", r.mac, " of VM ", r.vm_id, "): ", helper_path_text(host), ": ",
                                        run.text(), "; its record stays, marked, so the VF is not given out until a "
                                        "reset succeeds ('sriov-passthrough gc' retries)"));
            continue;
        }
        auto& store = host.store();
        const auto lock = store.lock();
        for (const auto& e : store.load()) {
            if (e.record && *e.record == r) {
                store.remove(r.pci);
                report.done.push_back(cat("reset ", vf_text(r), " to the helper's baseline (it had ",
                                          describe_vf_settings(r.vf_settings), ")"));
            }
        }
    }
    return report;
}

ResetReport retry_pending_resets(Host& host) {
    std::vector<Reservation> pending;
    for (const auto& e : host.store().load()) {
        if (e.record && awaits_reset(*e.record)) pending.push_back(*e.record);
    }
    if (pending.empty()) return {};
    return finish_resets(host, pending);
}

std::vector<std::string> undo_grants(Host& host, const std::vector<Grant>& grants, const std::set<PciAddress>& clean) {
    std::vector<Reservation> retired;
    {
        auto& store = host.store();
        const auto lock = store.lock();
        const auto entries = store.load();
        for (const auto& g : grants) {
            if (!g.created) continue;
            // Only a record that is still the one this grant wrote: since then
            // it may have been released and given to another vNIC.
            const auto same = std::any_of(entries.begin(), entries.end(),
                                          [&](const auto& e) { return e.record && *e.record == g.reservation; });
            if (!same) continue;
            if (clean.count(g.reservation.pci)) {
                store.remove(g.reservation.pci);
            } else if (const auto r = retire_record(store, g.reservation, host.boot_id); r && r->reset_pending) {
                retired.push_back(*r);
            }
        }
    }
    return finish_resets(host, retired).failed;
}

std::vector<std::string> apply_vf_settings(Host& host, std::vector<Grant>& grants, const std::vector<VfPlan>& plans) {
    std::vector<std::string> notes;
    std::set<PciAddress> clean;   // VFs known as they were before this call
    for (size_t i = 0; i < grants.size(); ++i) {
        if (i >= plans.size() || plans[i].settings.empty()) clean.insert(grants[i].reservation.pci);
    }
    for (size_t i = 0; i < grants.size() && i < plans.size(); ++i) {
        const auto& plan = plans[i];
        if (plan.settings.empty()) continue;
        auto& r = grants[i].reservation;
        // The record says what is asked before the helper makes it: if this
        // process dies in between, the VF is still known to need a reset.
        if (r.vf_settings != plan.settings || r.reset_pending) {
            Reservation wanted = r;
            wanted.vf_settings = plan.settings;
            wanted.reset_pending = false;
            if (!replace_if_same(host, r, wanted))
                fail("the record of ", vf_text(r), " changed while its settings were being made");
            r = wanted;
        }
        const auto run = run_helper(host.config().vf_helper, apply_args(r, plan.settings), host.lock_timeout());
        const auto what = cat("VF settings ", describe_vf_settings(plan.settings), " for vNIC ", r.mac, " on ",
                              vf_text(r));
        if (run.ok()) {
            notes.push_back(cat("vNIC ", r.mac, ": ", vf_text(r), " set to ", describe_vf_settings(plan.settings)));
            continue;
        }
        const auto answer = cat(helper_path_text(host), ": ", run.text());
        if (plan.on_error == OnError::fail) {
            if (run.changed_nothing()) clean.insert(r.pci);
            // Everything after this one was not tried: as it was.
            for (size_t k = i + 1; k < grants.size(); ++k) clean.insert(grants[k].reservation.pci);
            const auto problems = undo_grants(host, grants, clean);
            fail(what, " could not be made (on_error = fail; nothing is held): ", answer,
                 problems.empty() ? std::string() : cat("; ", join(problems, "; ")));
        }
        if (run.changed_nothing()) {
            // The driver (exit 1) or the policy (exit 3) refused some: the
            // others may still be made, one by one. Then the record says
            // what the VF has, so the release resets only what was made.
            VfSettings made;
            std::vector<std::string> missing;
            const auto groups = one_by_one(plan.settings);
            for (const auto& one : groups) {
                if (groups.size() == 1 || (run.status != 1 && run.status != 3)) {
                    missing.push_back(describe_vf_settings(one));
                    continue;
                }
                const auto alone = run_helper(host.config().vf_helper, apply_args(r, one), host.lock_timeout());
                // One that may be partly made stays in the record: reset later.
                if (alone.ok() || !alone.changed_nothing()) add_settings(made, one);
                if (!alone.ok()) missing.push_back(describe_vf_settings(one));
            }
            Reservation kept = r;
            kept.vf_settings = made;
            if (replace_if_same(host, r, kept)) r = kept;
            notes.push_back(cat("VF settings ", join(missing, " "), " for vNIC ", r.mac, " on ", vf_text(r),
                                " not made; starting without ", missing.size() > 1 ? "them" : "it",
                                made.empty() ? std::string() : cat(", with ", describe_vf_settings(made)),
                                " (on_error = warn): ", answer));
        } else {
            notes.push_back(cat(what, " may be partly made; starting anyway (on_error = warn), the VF is reset when "
                                      "given back: ", answer));
        }
    }
    return notes;
}

// --- check -----------------------------------------------------------------------

std::vector<std::string> check_vf_helper(Host& host) {
    std::vector<std::string> out;
    const auto& config = host.config();
    const auto& path = config.vf_helper;
    bool needed = false;
    for (const auto& [name, pool] : config.networks) needed = needed || !pool.vf.empty();
    const auto missing = [&](const std::string& line) {
        out.push_back(cat(needed ? "PROBLEM: " : "warning: ", line,
                          needed ? std::string() : std::string(" (needed only for vNICs with vf_* properties)")));
    };
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) {
        missing(cat("VF helper ", path, " (vf_helper): ", std::strerror(errno), "; vNICs with vf_* properties "
                    "cannot start (the RPM installs it)"));
        return out;
    }
    if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111)) {
        missing(cat("VF helper ", path, " (vf_helper) is not an executable file"));
        return out;
    }
    // What the hooks' user gets from an exec of it: the file capability, as
    // the kernel reads it (security.capability, struct vfs_cap_data).
    unsigned char cap[64] = {};  // room for a version 3 entry (with a root uid)
    const ssize_t n = ::getxattr(path.c_str(), "security.capability", cap, sizeof cap);
    if (n < 0 && errno == ENODATA) {
        missing(cat("VF helper ", path, " has no file capability: the hooks' user cannot change VF settings with it "
                    "(fix: setcap cap_net_admin=ep ", path, "; not on a nosuid or xattr-less file system)"));
    } else if (n >= static_cast<ssize_t>(2 * sizeof(std::uint32_t))) {
        vfs_cap_data data{};
        std::memcpy(&data, cap, std::min(sizeof data, static_cast<size_t>(n)));
        const bool effective = (data.magic_etc & VFS_CAP_FLAGS_EFFECTIVE) != 0;
        const bool net_admin = (data.data[0].permitted & (1u << CAP_NET_ADMIN)) != 0;
        if (!effective || !net_admin)
            missing(cat("VF helper ", path, "'s file capability is not cap_net_admin=ep (fix: setcap cap_net_admin=ep ",
                        path, ")"));
    }
    // Run as the hooks run: as the state directory's owner when we are root.
    std::optional<std::pair<uid_t, gid_t>> as;
    std::string who = "this user";
    try {
        auto& store = host.store();
        if (::geteuid() == 0 && store.owner_uid() != 0) {
            as = std::pair(store.owner_uid(), store.owner_gid());
            who = cat("the hooks' user (uid ", store.owner_uid(), ", the state directory's owner)");
        }
    } catch (const Error&) {
        // The state directory is checked, and reported, elsewhere.
    }
    const bool nnp = ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1;
    const auto run = run_helper(path, {"check"}, host.lock_timeout(), as);
    if (run.ok()) {
        out.push_back(cat("ok: VF helper ", path, " run as ", who, ": ", run.line));
    } else {
        missing(cat("VF helper ", path, " run as ", who, ": ", run.text(),
                    nnp ? "; this process runs with no_new_privs (NoNewPrivileges=yes), under which an exec grants "
                          "no file capability: hooks run so cannot change VF settings"
                        : ""));
    }
    return out;
}

}  // namespace sriovpt
