// sriov-passthrough: the operator's command (docs/design.md, "The command").
#include <sys/stat.h>

#include <boost/program_options.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <new>

#include "allocator.hpp"
#include "commands.hpp"
#include "error.hpp"
#include "log.hpp"
#include "status_format.hpp"
#include "text.hpp"
#include "vf_readback.hpp"
#include "vf_settings.hpp"

namespace po = boost::program_options;
using namespace sriovpt;

namespace {

constexpr const char* kUsage = R"(usage: sriov-passthrough [--config FILE] COMMAND [OPTIONS]

Passes oVirt vNICs through to SR-IOV VFs; this command shows and manages
what the VDSM hooks reserved.

commands:
  status [--json]          every PF and VF of the host, and who holds each VF
  run HOOK_POINT --domxml FILE [--vm-id UUID] [--prop NAME=VALUE]...
                           run one of the hooks by hand, as VDSM would
  release --vm-id UUID [--mac MAC] | --vf PCI
                           give back VFs
  gc [--dry-run]           reclaim reservations of VMs that no longer run
  check                    check the configuration against this host

global options:
  --config FILE            configuration file, which must exist (default
                           $SRIOV_PASSTHROUGH_CONF, which must name a file too,
                           else /etc/vdsm/hooks/sriov_passthrough.conf, which
                           may be missing: all defaults)
  --help                   this text; 'COMMAND --help' for a command's options
  --version                the version

)";

struct Usage : Error {
    using Error::Error;
};

// Parses a subcommand's arguments; prints help and returns nullopt on --help.
std::optional<po::variables_map> parse(const std::vector<std::string>& args, po::options_description desc,
                                       const std::string& synopsis, const po::positional_options_description* pos = nullptr) {
    desc.add_options()("help,h", "show this help");
    po::variables_map vm;
    try {
        po::command_line_parser parser(args);
        parser.options(desc);
        if (pos) parser.positional(*pos);
        po::store(parser.run(), vm);
        if (vm.count("help")) {
            std::cout << "usage: sriov-passthrough " << synopsis << "\n\n" << desc;
            return std::nullopt;
        }
        po::notify(vm);
    } catch (const po::error& e) {
        throw Usage(cat(e.what(), " (usage: sriov-passthrough ", synopsis, ")"));
    }
    return vm;
}

// --config FILE: the file must exist. Only the default file may be missing
// (all defaults, docs/design.md, "Configuration"); a typo here must not
// quietly mean the real /sys and state directory.
void use_config(const std::string& path) {
    if (path.empty()) throw Usage("--config needs a FILE");
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) throw Usage(cat("--config ", path, ": ", std::strerror(errno)));
    // Through the environment, so hooks started by 'run' read it too.
    ::setenv(kConfigEnvVar, path.c_str(), 1);
}

// Each held VF's settings as the kernel reports them, where it knows the PF
// (one question per PF); otherwise what the record asked stands.
void read_back_vf_settings(HostStatus& status) {
    std::map<std::string, std::map<unsigned, VfSettings>> by_pf;
    for (auto& s : status.vfs) {
        if (!s.holder) continue;
        auto it = by_pf.find(s.vf.pf);
        if (it == by_pf.end()) it = by_pf.emplace(s.vf.pf, cli::kernel_vf_settings(s.vf.pf)).first;
        if (const auto vf = it->second.find(s.vf.index); vf != it->second.end()) {
            s.settings = vf->second;
            s.settings_from = "kernel";
        }
    }
}

int status_command(const std::vector<std::string>& args) {
    po::options_description desc("status options");
    desc.add_options()("json", "print JSON instead of a table")(
        "no-libvirt", "do not ask libvirt (stale and domain-used VFs are not told apart)");
    const auto vm = parse(args, desc, "status [--json] [--no-libvirt]");
    if (!vm) return 0;
    Host host;
    auto status = collect_status(host, !vm->count("no-libvirt"));
    read_back_vf_settings(status);
    std::cout << (vm->count("json") ? cli::format_status_json(status) : cli::format_status_table(status));
    return 0;
}

int run_command(const std::vector<std::string>& args) {
    po::options_description desc("run options");
    cli::RunOptions o;
    std::vector<std::string> props;
    std::string vm_id, output, hooks_dir;
    desc.add_options()("hook-point", po::value(&o.hook_point)->required(), "the hook point, e.g. before_vm_start")(
        "domxml", po::value(&o.domxml)->required(), "the XML VDSM would hand the hook (the file is not modified)")(
        "vm-id", po::value(&vm_id), "the VM's UUID ($vmId); default: the domain's <uuid>")(
        "prop", po::value(&props), "a custom property NAME=VALUE in the environment (repeatable)")(
        "output,o", po::value(&output), "write the resulting XML here instead of standard output")(
        "hooks-dir", po::value(&hooks_dir), "where the hooks are installed (default: next to this command)");
    po::positional_options_description pos;
    pos.add("hook-point", 1);
    const auto vm = parse(args, desc, "run HOOK_POINT --domxml FILE [--vm-id UUID] [--prop NAME=VALUE]...", &pos);
    if (!vm) return 0;
    if (vm->count("vm-id")) o.vm_id = vm_id;
    if (vm->count("output")) o.output = output;
    if (vm->count("hooks-dir")) o.hooks_dir = hooks_dir;
    for (const auto& p : props) {
        const auto eq = p.find('=');
        if (eq == std::string::npos || eq == 0) throw Usage(cat("--prop ", quoted(p), " is not NAME=VALUE"));
        o.props.emplace_back(p.substr(0, eq), p.substr(eq + 1));
    }
    return cli::run_hook_command(o);
}

// Prints what finish_resets did; 1 when a VF could not be reset.
int report_resets(const ResetReport& report) {
    for (const auto& line : report.done) std::cout << line << "\n";
    for (const auto& line : report.failed) std::cerr << "sriov-passthrough: " << printable(line, kMaxLineBytes) << "\n";
    return report.failed.empty() ? 0 : 1;
}

int release_command(const std::vector<std::string>& args) {
    po::options_description desc("release options");
    std::string vm_id, mac, vf;
    desc.add_options()("vm-id", po::value(&vm_id), "the VM whose VFs to give back")(
        "mac", po::value(&mac), "only the VF of this vNIC")(
        "vf", po::value(&vf), "give back this VF (PCI address) whatever holds it, even a damaged record");
    const auto vm = parse(args, desc, "release --vm-id UUID [--mac MAC] | --vf PCI");
    if (!vm) return 0;
    Host host;
    Allocator allocator(host);
    if (vm->count("vf")) {
        if (vm->count("vm-id") || vm->count("mac")) throw Usage("--vf goes alone, without --vm-id or --mac");
        const auto pci = PciAddress::parse(vf);
        if (!pci) throw Usage(cat("--vf ", quoted(vf), " is not a PCI address like 0000:3b:02.1"));
        std::cout << (allocator.release_vf(*pci) ? "released VF " : "no reservation for VF ") << pci->to_string() << "\n";
        return report_resets(retry_pending_resets(host));
    }
    const auto id = normalize_uuid(vm_id);
    if (!id) throw Usage(vm->count("vm-id") ? cat("--vm-id ", quoted(vm_id), " is not a UUID") : "--vm-id or --vf is required");
    std::optional<std::string> only;
    if (vm->count("mac")) {
        only = normalize_mac(mac);
        if (!only) throw Usage(cat("--mac ", quoted(mac), " is not a MAC address"));
    }
    const auto released = allocator.release(*id, only);
    for (const auto& r : released)
        std::cout << released_line(r) << "\n";
    if (released.empty()) std::cout << "VM " << *id << (only ? " vNIC " + *only : "") << " holds no VF\n";
    return report_resets(finish_resets(host, released));
}

int gc_command(const std::vector<std::string>& args) {
    po::options_description desc("gc options");
    desc.add_options()("dry-run,n", "say what would be reclaimed, change nothing");
    const auto vm = parse(args, desc, "gc [--dry-run]");
    if (!vm) return 0;
    Host host;
    const bool dry = vm->count("dry-run") != 0;
    const auto report = Allocator(host).collect_garbage(dry);
    for (const auto& [r, why] : report.reclaimed)
        std::cout << (dry ? "would reclaim VF " : "reclaimed VF ") << r.pci.to_string() << " of vNIC " << r.mac
                  << " of VM " << r.vm_id << ": " << why << "\n";
    for (const auto& t : report.temporaries) std::cout << "removed leftover " << t << "\n";
    for (const auto& m : report.index.missing)
        std::cout << (dry ? "would index " : "indexed ") << m << " (missing from the index)\n";
    for (const auto& e : report.index.stale) std::cout << (dry ? "would remove" : "removed") << " stale index entry " << e << "\n";
    for (const auto& n : report.notes) std::cout << "note: " << n << "\n";
    if (report.reclaimed.empty()) std::cout << "nothing to reclaim\n";
    if (dry) {
        for (const auto& e : host.store().load()) {
            if (e.record && awaits_reset(*e.record))
                std::cout << "would reset VF " << e.record->pci.to_string() << " ("
                          << describe_vf_settings(e.record->vf_settings) << ")\n";
        }
        return 0;
    }
    // Records reclaimed just now with settings, and those whose reset failed
    // before: their VFs are reset, then given back.
    return report_resets(retry_pending_resets(host));
}

int check(const std::vector<std::string>& args) {
    const auto vm = parse(args, po::options_description("check options"), "check");
    if (!vm) return 0;
    Host host;
    return cli::check_command(host);
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    try {
        // Global options come before the command.
        while (!args.empty() && args.front().rfind("--", 0) == 0) {
            const auto opt = args.front();
            if (opt == "--help" || opt == "-h") {
                std::cout << kUsage;
                return 0;
            }
            if (opt == "--version") {
                std::cout << "sriov-passthrough " << SRIOVPT_VERSION << "\n";
                return 0;
            }
            if (opt == "--config" || opt.rfind("--config=", 0) == 0) {
                const bool separate = opt == "--config";
                if (separate && args.size() < 2) throw Usage("--config needs a FILE");
                use_config(separate ? args[1] : opt.substr(9));
                args.erase(args.begin(), args.begin() + (separate ? 2 : 1));
                continue;
            }
            throw Usage(cat("unknown option ", quoted(opt)));
        }
        if (args.empty()) throw Usage("no command given");
        const auto command = args.front();
        args.erase(args.begin());
        if (command == "status") return status_command(args);
        if (command == "run") return run_command(args);
        if (command == "release") return release_command(args);
        if (command == "gc") return gc_command(args);
        if (command == "check") return check(args);
        if (command == "help") {
            std::cout << kUsage;
            return 0;
        }
        throw Usage(cat("unknown command ", quoted(command)));
    } catch (const Usage& e) {
        std::cerr << "sriov-passthrough: " << printable(e.what(), kMaxLineBytes) << "\n" << (args.empty() ? kUsage : "");
        return 2;
    } catch (const std::bad_alloc&) {
        std::cerr << "sriov-passthrough: out of memory\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "sriov-passthrough: " << printable(e.what(), kMaxLineBytes) << "\n";
        return 1;
    }
}
