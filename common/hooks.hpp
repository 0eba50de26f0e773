// What each hook point does (DESIGN §3), as functions over a parsed document
// and the host; the runner (runner.hpp) owns files, environment and exit codes.
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
#include "host.hpp"
#include "properties.hpp"

namespace sriovpt {

enum class HookPoint {
    before_vm_start,
    before_device_create,
    before_nic_hotplug,
    after_nic_hotplug_fail,
    after_nic_hotunplug,
    after_vm_destroy,
    before_vm_migrate_source,
    after_vm_migrate_source,
    after_vm_migrate_destination,
};

// Every hook point we install, in the order of the table in DESIGN §3.
const std::vector<HookPoint>& all_hook_points();
std::string_view hook_point_name(HookPoint hp);
std::optional<HookPoint> hook_point_from_name(std::string_view name);
// before_* hooks can stop the operation: they fail with exit status 2 and
// must leave the XML and the reservations as they found them.
bool is_before_hook(HookPoint hp);

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

// Runs `hp` over `doc` (which it may modify). Throws Error with a message
// for the operator; a before_* hook that throws has reserved nothing.
HookOutcome run_hook_point(HookPoint hp, Host& host, pugi::xml_document& doc, const HookEnv& env);

}  // namespace sriovpt
