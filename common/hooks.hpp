// What each hook point does (docs/design.md, "Hook points"), as functions
// over a parsed document and the host; the runner (runner.hpp) owns files,
// environment and exit codes.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <pugixml.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "allocator.hpp"
#include "attacher.hpp"
#include "error.hpp"
#include "host.hpp"
#include "properties.hpp"

namespace sriovpt {

enum class HookPoint {
#define HOOK_POINT(name, failure_status) name,
#include "hook_points.def"
#undef HOOK_POINT
};

// Every hook point we install, in the order of common/hook_points.def.
const std::vector<HookPoint>& all_hook_points();
std::string_view hook_point_name(HookPoint hp);
std::optional<HookPoint> hook_point_from_name(std::string_view name);
// The exit status of a failure: 2 for a before_* hook, which refuses VDSM's
// operation and must leave the XML and the reservations as it found them;
// 1 for an after_* hook, whose failure VDSM only logs.
int failure_status(HookPoint hp);
inline bool is_before_hook(HookPoint hp) { return failure_status(hp) == 2; }

// What VDSM gives a hook besides the XML.
struct HookEnv {
    std::optional<std::string> vm_id;   // $vmId
    PropertyLookup properties;          // custom properties in the environment
    // How after_vm_migrate_destination hot-plugs a failover VF; unset: libvirt
    // at the configuration's libvirt_uri, bounded by lock_timeout.
    std::function<std::unique_ptr<DeviceAttacher>(Host&)> attacher;
};

struct HookOutcome {
    bool xml_changed = false;
    std::vector<std::string> notes;     // one line each, for stderr and the log
    std::vector<Grant> grants;          // reservations made, to undo if writing fails
};

// A before_* hook's deliberate "no" (e.g. a migration libvirt would refuse),
// as opposed to a failure to find out: reported even for a VM that does not
// otherwise concern us.
class Refusal : public Error {
public:
    using Error::Error;
};

// Whether the call concerns a vNIC of ours, judged from the XML and the
// environment alone (before the configuration or the state directory is
// read): a vNIC whose properties (in the environment for the device-level
// hooks, in <metadata> otherwise) ask for passthrough or failover. A call
// that does not concern us may still find work, such as a VF still recorded
// for the VM; but a failure of ours must then not fail VDSM's operation on a
// VM that has nothing of ours (the runner exits 0 and says nothing).
// Never throws for well-formed XML.
bool concerns_us(HookPoint hp, const pugi::xml_document& doc, const HookEnv& env);

// Runs `hp` over `doc` (which it may modify). Throws Error with a message
// for the operator; a before_* hook that throws has reserved nothing.
HookOutcome run_hook_point(HookPoint hp, Host& host, pugi::xml_document& doc, const HookEnv& env);

}  // namespace sriovpt
