// Fuzz target: the XML path of the rewriting hooks, in-process, as the
// runner drives it (common/runner.cpp): parse the document, run the hook
// point against a small simulated host, serialise the result.
//
// Input: one selector byte (before_vm_start, before_nic_hotplug or
// before_vm_migrate_destination, by value % 3), then "NAME=VALUE" lines that become
// the hook's environment (custom properties, vmId), then a NUL byte, then the
// XML. Without a NUL byte everything after the selector is the XML.
//
// Findings: any exception other than sriovpt::Error, a crash, a leak, a
// sanitizer report; a hook that throws but leaves a reservation behind; a
// result that does not parse back or is out of proportion to the input.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include "config.hpp"
#include "domain_xml.hpp"
#include "error.hpp"
#include "fake_sysfs.hpp"
#include "fast_path.hpp"
#include "hooks.hpp"
#include "host.hpp"

namespace {

using namespace sriovpt;

// Two PFs of four VFs serving sriovnet (VF 3 of ens1f0 bound to vfio-pci,
// VF 2's netdev up), a PF with no VFs, and a plain NIC.
struct Fixture {
    std::string dir;
    Config config;

    Fixture() {
        std::string templ = (std::filesystem::temp_directory_path() / "sriovpt-fuzz-XXXXXX").string();
        if (!::mkdtemp(templ.data())) std::abort();
        dir = templ;
        sim::FakeSysfs sysfs(dir + "/sys");
        sysfs.add_pf({"ens1f0", "0000:3b:00.0", 4});
        sysfs.add_pf({"ens1f1", "0000:5e:00.0", 4});
        sysfs.add_pf({"ens2f0", "0000:af:00.0", 0});
        sysfs.add_plain_netdev("eno1", "0000:01:00.0");
        sysfs.set_vf_driver("ens1f0", 3, "vfio-pci");
        sysfs.set_vf_netdev_state("ens1f0", 2, "up");
        const std::string text("sysfs_root = " + dir + "/sys\nstate_dir = " + dir +
                                "/state\nlibvirt_uri = none\nlock_timeout = 1\n"
                                "[network.sriovnet]\npfs = ens1f0, ens1f1\nvlan = 100\n"
                                "[network.empty]\npfs = ens2f0\n");
        config = parse_config(text, "fuzz.conf");
    }
    ~Fixture() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
};

Fixture& fixture() {
    static Fixture f;
    return f;
}

constexpr HookPoint kPoints[] = {HookPoint::before_vm_start, HookPoint::before_nic_hotplug,
                                 HookPoint::before_vm_migrate_destination};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const HookPoint hp = kPoints[data[0] % 3];
    std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
    std::map<std::string, std::string, std::less<>> env;
    if (const auto nul = rest.find('\0'); nul != std::string_view::npos) {
        std::string_view lines = rest.substr(0, nul);
        rest.remove_prefix(nul + 1);
        while (!lines.empty()) {
            const auto eol = lines.find('\n');
            const auto line = lines.substr(0, eol);
            if (const auto eq = line.find('='); eq != std::string_view::npos)
                env[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
            if (eol == std::string_view::npos) break;
            lines.remove_prefix(eol + 1);
        }
    }
    const std::string text(rest);

    auto& f = fixture();
    Host host([&f] { return f.config; },
              [](const Config& c) { return open_libvirt(c.libvirt_uri, std::chrono::seconds(1)); });
    pugi::xml_document doc;
    if (!parse_xml(doc, text)) return 0;  // the runner refuses it before any hook point runs
    HookEnv hook_env;
    if (const auto it = env.find("vmId"); it != env.end()) hook_env.vm_id = it->second;
    hook_env.properties = [&env](std::string_view name) -> std::optional<std::string> {
        const auto it = env.find(name);
        if (it == env.end()) return std::nullopt;
        return it->second;
    };
    // The hooks' fast path (common/fast_path.hpp) exits 0 at once for a call
    // that plainly does not concern us: the full hook point must have had
    // nothing to do for it (at most a complaint about bad input).
    const bool plainly_not_ours =
        hp == HookPoint::before_nic_hotplug
            ? !asks_for_passthrough_value(hook_env.properties(kPropPassthrough).value_or("").c_str()) &&
                  !asks_for_passthrough_value(hook_env.properties(kPropFailover).value_or("").c_str())
            : !names_our_properties(text);
    bool threw = false;
    try {
        const auto outcome = run_hook_point(hp, host, doc, hook_env);
        if (plainly_not_ours && (outcome.xml_changed || !outcome.grants.empty())) std::abort();
        pugi::xml_document again;
        if (outcome.xml_changed) {
            const auto out = serialize_xml(doc);
            // Proportional to the input: escaping ('"' -> "&quot;") and the
            // bounded indentation (common/domain_xml.cpp) stay within 8x.
            if (out.size() > 8 * text.size() + 4096 || !parse_xml(again, out)) std::abort();
        }
    } catch (const Error&) {
        threw = true;
    }
    // Back to an empty store for the next input; a before_* hook that threw
    // must have left nothing to remove.
    auto& store = host.store();
    for (const auto& e : store.load()) {
        if (threw) std::abort();
        if (e.pci) store.remove(*e.pci);
    }
    return 0;
}
