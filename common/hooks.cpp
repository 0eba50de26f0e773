#include "hooks.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <set>

#include "domain_xml.hpp"
#include "error.hpp"
#include "rewrite.hpp"
#include "text.hpp"

namespace sriovpt {

namespace {

struct HookPointName {
    HookPoint point;
    std::string_view name;
};
constexpr std::array<HookPointName, 9> kHookPoints{{
    {HookPoint::before_vm_start, "before_vm_start"},
    {HookPoint::before_device_create, "before_device_create"},
    {HookPoint::before_nic_hotplug, "before_nic_hotplug"},
    {HookPoint::after_nic_hotplug_fail, "after_nic_hotplug_fail"},
    {HookPoint::after_nic_hotunplug, "after_nic_hotunplug"},
    {HookPoint::before_vm_migrate_source, "before_vm_migrate_source"},
    {HookPoint::after_vm_migrate_source, "after_vm_migrate_source"},
    {HookPoint::after_vm_migrate_destination, "after_vm_migrate_destination"},
    {HookPoint::after_vm_destroy, "after_vm_destroy"},
}};

// A vNIC whose properties ask for passthrough, before a VF is chosen.
struct PassthroughVnic {
    Vnic vnic;
    VnicProperties props;
};

std::string vnic_label(const Vnic& v) {
    return cat("vNIC ", v.mac.empty() ? (v.raw_mac.empty() ? std::string("without a MAC") : v.raw_mac) : v.mac);
}

// The VM id from $vmId, else the domain's <uuid>; validated.
std::string require_vm_id(const HookEnv& env, pugi::xml_node root) {
    std::string raw = env.vm_id.value_or("");
    const char* source = "$vmId";
    if (raw.empty()) {
        raw = root.child("uuid").text().as_string();
        source = "the domain's <uuid>";
    }
    if (raw.empty()) fail("no VM id: $vmId is not set and the XML has no <uuid>");
    const auto id = normalize_uuid(raw);
    if (!id) fail(source, " '", raw, "' is not a UUID");
    return *id;
}

// Checks what a passthrough vNIC must have before a VF can be given to it.
void check_passthrough_vnic(const Vnic& v) {
    with_context(vnic_label(v), [&] {
        if (v.raw_mac.empty()) fail("has passthrough=true but no <mac address>");
        if (v.mac.empty()) fail("has passthrough=true but its MAC '", v.raw_mac, "' is not a MAC address");
        if (v.type != "bridge")
            fail("has passthrough=true but is of type '", v.type, "'; only bridge vNICs can be passed through");
        if (v.network.empty()) fail("has passthrough=true but no <source bridge>");
    });
}

// The VF pool and VLAN for a vNIC: its network's section, narrowed by
// sriov_pf; the vlan property overrides the network's default.
VnicRequest plan_request(const Config& config, const PassthroughVnic& p, const std::string& vm_id, HookPoint hp) {
    const auto& v = p.vnic;
    return with_context(cat(vnic_label(v), " on network ", v.network), [&] {
        VnicRequest req;
        req.vm_id = vm_id;
        req.mac = v.mac;
        req.network = v.network;
        req.origin = std::string(hook_point_name(hp));
        const auto* pool = config.network(v.network);
        if (pool) req.vlan = pool->vlan;
        if (p.props.vlan) req.vlan = p.props.vlan;
        if (!p.props.sriov_pf.empty()) {
            if (pool) {
                for (const auto& pf : p.props.sriov_pf) {
                    if (std::find(pool->pfs.begin(), pool->pfs.end(), pf) == pool->pfs.end())
                        fail("property sriov_pf names ", pf, ", which does not serve this network (its PFs in ",
                             config.path.empty() ? std::string("the configuration") : config.path, ": ",
                             join(pool->pfs), ")");
                }
            }
            req.pfs = p.props.sriov_pf;
        } else if (pool) {
            req.pfs = pool->pfs;
        } else {
            fail("no PF pool configured for network ", v.network, " (add a [network.", v.network, "] section to ",
                 config.path.empty() ? std::string(kDefaultConfigPath) : config.path,
                 " or set the sriov_pf property)");
        }
        return req;
    });
}

std::string describe_grant(const Grant& g, const std::vector<std::string>& dropped) {
    const auto& r = g.reservation;
    auto line = cat("vNIC ", r.mac, " of VM ", r.vm_id, " on ", r.network, " -> VF ", r.pci.to_string(), " (", r.pf,
                    " VF ", r.vf_index, r.vlan ? cat(", VLAN ", *r.vlan) : std::string(", no VLAN"),
                    g.created ? "" : ", already held", ")");
    if (!dropped.empty()) line += cat("; dropped for passthrough: ", join(dropped));
    return line;
}

// Reserves a VF for each vNIC and rewrites it; all or nothing.
HookOutcome pass_through(HookPoint hp, Host& host, const std::vector<PassthroughVnic>& vnics,
                         const std::string& vm_id) {
    HookOutcome outcome;
    if (vnics.empty()) return outcome;
    std::set<std::string> macs;
    std::vector<VnicRequest> requests;
    for (const auto& p : vnics) {
        check_passthrough_vnic(p.vnic);
        if (p.props.failover) with_context(vnic_label(p.vnic), [&] { check_failover_member(p.vnic.node); });
        if (!macs.insert(p.vnic.mac).second) fail("two vNICs have the MAC ", p.vnic.mac);
        requests.push_back(plan_request(host.config(), p, vm_id, hp));
    }
    outcome.grants = Allocator(host).reserve(requests);
    for (size_t i = 0; i < vnics.size(); ++i) {
        const auto& r = outcome.grants[i].reservation;
        const VfBinding vf{r.pci, r.vlan};
        if (vnics[i].props.failover) {
            // Checked above, before anything was reserved: cannot throw here.
            rewrite_to_failover(vnics[i].vnic.node, vf);
            outcome.notes.push_back(cat(describe_grant(outcome.grants[i], {}),
                                        "; failover: teamed with the virtio vNIC ", vnics[i].vnic.alias,
                                        ", which stays"));
        } else {
            const auto result = rewrite_to_hostdev(vnics[i].vnic.node, vf);
            outcome.notes.push_back(describe_grant(outcome.grants[i], result.dropped));
        }
    }
    outcome.xml_changed = true;
    return outcome;
}

// The persistent aliases that transient VFs of `root` name: the failover
// pairs already made (by our own earlier run, or by the engine).
std::set<std::string> teamed_aliases(pugi::xml_node root) {
    std::set<std::string> out;
    for (const auto& v : find_vnics(root)) {
        if (is_failover_vf(v.node)) out.insert(v.node.child("teaming").attribute("persistent").as_string());
    }
    return out;
}

// The vNIC properties that <metadata> gives `v`, or nullopt when it has none.
std::optional<VnicProperties> metadata_props_of(const std::map<std::string, PropertyValues>& metadata,
                                                const Vnic& v) {
    const auto it = metadata.find(v.mac);
    if (it == metadata.end()) return std::nullopt;
    const auto& values = it->second;
    auto props = with_context(vnic_label(v), [&] {
        return parse_properties([&values](std::string_view name) -> std::optional<std::string> {
            const auto found = values.find(name);
            if (found == values.end()) return std::nullopt;
            return found->second;
        });
    });
    if (props.failover && !props.passthrough)
        fail(vnic_label(v), ": property failover=true needs passthrough=true (failover teams a passed-through VF "
                            "with the virtio vNIC)");
    return props;
}

pugi::xml_node require_root(const pugi::xml_document& doc, std::string_view name) {
    const auto root = doc.document_element();
    if (!root) fail("the XML has no root element");
    if (std::string_view(root.name()) != name)
        fail("expected a <", name, "> element, got <", root.name(), ">");
    return root;
}

HookOutcome before_vm_start(Host& host, pugi::xml_document& doc, const HookEnv& env) {
    const auto root = require_root(doc, "domain");
    std::vector<PassthroughVnic> wanted;
    const auto vnics = find_vnics(root);
    if (vnics.empty()) return {};
    const auto metadata = metadata_properties(root);
    std::optional<std::set<std::string>> teamed;
    for (const auto& v : vnics) {
        if (v.type == "hostdev") continue;  // native SR-IOV, or our own earlier output
        const auto props = metadata_props_of(metadata, v);
        if (!props || !props->passthrough) continue;
        if (props->failover) {
            // Our own earlier output: the virtio vNIC stays, already teamed.
            if (!teamed) teamed = teamed_aliases(root);
            if (!v.alias.empty() && teamed->count(v.alias)) continue;
        }
        wanted.push_back({v, *props});
    }
    if (wanted.empty()) return {};
    return pass_through(HookPoint::before_vm_start, host, wanted, require_vm_id(env, root));
}

// before_device_create and before_nic_hotplug: one <interface>, properties
// in the environment.
HookOutcome before_device(HookPoint hp, Host& host, pugi::xml_document& doc, const HookEnv& env) {
    const auto root = doc.document_element();
    // before_device_create runs for every kind of device; only vNICs are ours.
    if (!root || std::string_view(root.name()) != "interface") {
        if (hp == HookPoint::before_device_create && root) return {};
        require_root(doc, "interface");
    }
    const auto vnics = find_vnics(root);
    const auto& v = vnics.front();
    if (v.type == "hostdev") return {};
    const auto props = with_context(vnic_label(v), [&] { return parse_properties(env.properties); });
    if (props.failover) {
        // A failover pair is two devices; this hook can hand VDSM only one.
        fail(vnic_label(v), ": property failover=true is honoured only when the VM starts (the virtio vNIC and "
                            "its VF are two devices, and a hot-plugged vNIC can become only one): plug it without "
                            "failover, or set it and restart the VM",
             props.passthrough ? "" : " (failover=true also needs passthrough=true)");
    }
    if (!props.passthrough) return {};
    if (!env.vm_id || env.vm_id->empty()) fail("no VM id: $vmId is not set");
    return pass_through(hp, host, {{v, props}}, require_vm_id(env, root));
}

std::string released_note(const Reservation& r) {
    return cat("released VF ", r.pci.to_string(), " (", r.pf, " VF ", r.vf_index, ") of vNIC ", r.mac, " of VM ",
               r.vm_id);
}

// Hotunplug and failed hotplug: give back the VF of this vNIC.
HookOutcome release_vnic(Host& host, pugi::xml_document& doc, const HookEnv& env) {
    const auto root = require_root(doc, "interface");
    const auto vnics = find_vnics(root);
    const auto& v = vnics.front();
    if (v.mac.empty()) fail("the <interface> has no valid <mac address> ('", v.raw_mac, "')");
    const auto vm_id = require_vm_id(env, root);
    HookOutcome outcome;
    for (const auto& r : Allocator(host).release(vm_id, v.mac))
        outcome.notes.push_back(released_note(r));
    return outcome;
}

// Destroy and migration away: give back every VF of the VM.
HookOutcome release_vm(Host& host, pugi::xml_document& doc, const HookEnv& env) {
    const auto vm_id = require_vm_id(env, doc.child("domain"));
    HookOutcome outcome;
    for (const auto& r : Allocator(host).release(vm_id))
        outcome.notes.push_back(released_note(r));
    return outcome;
}

// The host PCI devices a live domain uses, each with whether it is the
// transient member of a failover pair (<teaming type="transient">), which
// QEMU unplugs by itself for a migration.
std::map<PciAddress, bool> live_host_devices(pugi::xml_node domain) {
    std::map<PciAddress, bool> out;
    const auto devices = domain.child("devices");
    for (const auto iface : devices.children("interface")) {
        if (std::string_view(iface.attribute("type").as_string()) != "hostdev") continue;
        if (const auto pci = source_pci(iface)) out[*pci] = is_failover_vf(iface);
    }
    for (const auto hostdev : devices.children("hostdev")) {
        if (std::string_view(hostdev.attribute("type").as_string()) != "pci") continue;
        const bool transient = std::string_view(hostdev.child("teaming").attribute("type").as_string()) == "transient";
        if (const auto pci = source_pci(hostdev)) out[*pci] = transient;
    }
    return out;
}

// libvirt refuses to migrate a VM with a PCI device assigned, unless it is
// the transient member of a failover pair ("the device will be auto-unplugged
// by QEMU during migration", qemuMigrationSrcIsAllowedHostdev): refuse first,
// with a message that says what to do.
HookOutcome before_migrate_source(Host& host, pugi::xml_document& doc, const HookEnv& env) {
    const auto root = doc.child("domain");
    const auto vm_id = require_vm_id(env, root);
    // Without the live domain (no XML) every VF we hold for the VM counts.
    const bool have_live = root && root.child("devices");
    const auto live = live_host_devices(root);
    HookOutcome outcome;
    std::vector<std::string> held;
    for (const auto& e : host.store().load()) {
        if (!e.record || e.record->vm_id != vm_id) continue;
        const auto& r = *e.record;
        if (have_live) {
            const auto it = live.find(r.pci);
            if (it == live.end()) continue;  // reserved, but not in the running VM
            if (it->second) {
                outcome.notes.push_back(cat("vNIC ", r.mac, ": VF ", r.pci.to_string(),
                                            " is a failover member; QEMU unplugs it for the migration"));
                continue;
            }
        }
        held.push_back(cat(r.mac, " on ", r.network.empty() ? "?" : r.network, " (VF ", r.pci.to_string(), ")"));
    }
    if (!held.empty())
        fail("VM ", vm_id, " cannot be migrated while it holds SR-IOV VFs passed through: hot-unplug vNIC",
             held.size() > 1 ? "s " : " ", join(held),
             " first and plug ", held.size() > 1 ? "them" : "it",
             " back after the migration, or set failover=true on the vNIC profile and restart the VM (a failover VF "
             "is unplugged for the migration by QEMU, the virtio vNIC carries the traffic)");
    return outcome;
}

// Which PF and VF index `pci` is on this host, and the network whose pool
// has that PF; "-" and "" when unknown.
void locate_vf(Host& host, Reservation& r) {
    for (const auto& pf : host.inventory().all_pfs()) {
        for (unsigned i = 0; i < pf.num_vfs; ++i) {
            if (host.inventory().vf_address(pf, i) == r.pci) {
                r.pf = pf.name;
                r.vf_index = i;
            }
        }
    }
    if (r.pf.empty()) r.pf = "-";
    for (const auto& [name, pool] : host.config().networks) {
        if (std::find(pool.pfs.begin(), pool.pfs.end(), r.pf) != pool.pfs.end()) r.network = name;
    }
}

// A failover vNIC that arrived without its VF gets one of this host's:
// reserved from the pool of its network, then hot-plugged as the transient
// member. Returns a note, or throws Error; a reservation is kept only when
// the VF is, or may be, attached.
std::string replug_failover_vf(Host& host, DeviceAttacher& attacher, const PassthroughVnic& p,
                               const std::string& vm_id) {
    check_passthrough_vnic(p.vnic);
    const auto req = plan_request(host.config(), p, vm_id, HookPoint::after_vm_migrate_destination);
    Allocator allocator(host);
    const auto grants = allocator.reserve({req});
    const auto& r = grants.front().reservation;
    pugi::xml_document device;
    append_failover_vf(device, p.vnic.node, VfBinding{r.pci, r.vlan});
    try {
        attacher.attach_live(vm_id, serialize_xml(device));
    } catch (const AttachTimeout& e) {
        fail("hot-plugging VF ", r.pci.to_string(), ": ", e.what(),
             "; the VF stays reserved for the vNIC, as it may still be attached");
    } catch (const Error& e) {
        allocator.undo(grants);
        fail("hot-plugging VF ", r.pci.to_string(), ": ", e.what());
    }
    return cat("hot-plugged ", describe_grant(grants.front(), {}), " as the failover partner of the virtio vNIC ",
               p.vnic.alias);
}

// A VM arrived: record the VFs it holds here, so destroy gives them back, and
// give each failover vNIC that arrived without its VF one of this host's.
//
// With libvirt, a failover VF normally arrives by itself: the migration XML
// keeps the transient hostdev, the destination libvirt assigns the VF at the
// same host PCI address, and QEMU plugs it into the guest when the migration
// completes (formatdomain, "Teaming a virtio/hostdev NIC pair"; QEMU,
// docs/system/virtio-net-failover.rst). Hook output cannot change that XML
// (VDSM throws it away), so a VF arrives missing only when it was unplugged
// before the migration.
HookOutcome after_migrate_destination(Host& host, pugi::xml_document& doc, const HookEnv& env) {
    const auto root = require_root(doc, "domain");
    const auto vm_id = require_vm_id(env, root);
    HookOutcome outcome;
    std::vector<std::string> problems;
    std::vector<std::string> conflicts;
    std::set<std::string> macs_with_vf;
    Allocator allocator(host);
    const auto vnics = find_vnics(root);
    for (const auto& v : vnics) {
        if (v.type != "hostdev" || v.mac.empty()) continue;
        const auto pci = source_pci(v.node);
        if (!pci) continue;
        macs_with_vf.insert(v.mac);
        Reservation r;
        r.pci = *pci;
        r.vm_id = vm_id;
        r.mac = v.mac;
        if (const auto tag = v.node.child("vlan").child("tag")) {
            if (const auto n = parse_decimal(tag.attribute("id").as_string()); n && *n >= 1 && *n <= 4094)
                r.vlan = static_cast<unsigned>(*n);
        }
        r.boot_id = host.boot_id;
        r.created = host.now();
        r.origin = std::string(hook_point_name(HookPoint::after_vm_migrate_destination));
        locate_vf(host, r);
        if (const auto holder = allocator.adopt(r)) {
            conflicts.push_back(cat("VF ", pci->to_string(), " of vNIC ", v.mac, " is already held by vNIC ",
                                    holder->mac, " of VM ", holder->vm_id));
        } else {
            outcome.notes.push_back(cat("recorded VF ", pci->to_string(), " of arriving vNIC ", v.mac, " of VM ", vm_id,
                                        is_failover_vf(v.node) ? " (failover member)" : ""));
        }
    }
    if (!conflicts.empty())
        problems.push_back(cat("VM ", vm_id, " arrived using VFs reserved here for others: ", join(conflicts, "; ")));

    // Failover vNICs without their VF.
    const auto metadata = metadata_properties(root);
    const auto teamed = teamed_aliases(root);
    std::unique_ptr<DeviceAttacher> attacher;
    for (const auto& v : vnics) {
        if (v.type == "hostdev" || v.mac.empty() || macs_with_vf.count(v.mac)) continue;
        if (!v.alias.empty() && teamed.count(v.alias)) continue;
        try {
            const auto props = metadata_props_of(metadata, v);
            if (!props || !props->passthrough || !props->failover) continue;
            if (std::string_view(v.node.child("teaming").attribute("type").as_string()) != "persistent") {
                outcome.notes.push_back(cat(vnic_label(v), " has failover=true but was not started as a failover "
                                                           "pair; it gets a VF when the VM is restarted"));
                continue;
            }
            if (!attacher) attacher = env.attacher ? env.attacher(host)
                                                   : open_libvirt_attacher(host.config().libvirt_uri,
                                                                           host.lock_timeout());
            outcome.notes.push_back(with_context(cat(vnic_label(v), " (failover) arrived without its VF"), [&] {
                return replug_failover_vf(host, *attacher, {v, *props}, vm_id);
            }));
        } catch (const Error& e) {
            problems.push_back(cat(e.what(), "; the guest keeps its network through the virtio vNIC"));
        }
    }
    if (!problems.empty()) {
        // after_* failures are only logged: put what did succeed in the same line.
        if (!outcome.notes.empty()) problems.push_back(cat("done: ", join(outcome.notes, "; ")));
        fail(join(problems, "; "));
    }
    return outcome;
}

}  // namespace

const std::vector<HookPoint>& all_hook_points() {
    static const std::vector<HookPoint> points = [] {
        std::vector<HookPoint> out;
        for (const auto& h : kHookPoints) out.push_back(h.point);
        return out;
    }();
    return points;
}

std::string_view hook_point_name(HookPoint hp) {
    for (const auto& h : kHookPoints) {
        if (h.point == hp) return h.name;
    }
    return "unknown";
}

std::optional<HookPoint> hook_point_from_name(std::string_view name) {
    for (const auto& h : kHookPoints) {
        if (h.name == name) return h.point;
    }
    return std::nullopt;
}

bool is_before_hook(HookPoint hp) { return hook_point_name(hp).substr(0, 7) == "before_"; }

HookOutcome run_hook_point(HookPoint hp, Host& host, pugi::xml_document& doc, const HookEnv& env) {
    switch (hp) {
        case HookPoint::before_vm_start:
            return before_vm_start(host, doc, env);
        case HookPoint::before_device_create:
        case HookPoint::before_nic_hotplug:
            return before_device(hp, host, doc, env);
        case HookPoint::after_nic_hotplug_fail:
        case HookPoint::after_nic_hotunplug:
            return release_vnic(host, doc, env);
        case HookPoint::after_vm_destroy:
        case HookPoint::after_vm_migrate_source:
            return release_vm(host, doc, env);
        case HookPoint::before_vm_migrate_source:
            return before_migrate_source(host, doc, env);
        case HookPoint::after_vm_migrate_destination:
            return after_migrate_destination(host, doc, env);
    }
    fail("unknown hook point");
}

}  // namespace sriovpt
