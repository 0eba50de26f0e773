#include "hooks.hpp"

#include <algorithm>
#include <iterator>
#include <map>
#include <set>

#include "domain_xml.hpp"
#include "error.hpp"
#include "fast_path.hpp"
#include "placement.hpp"
#include "rewrite.hpp"
#include "text.hpp"
#include "vf_settings.hpp"

namespace sriovpt {

namespace {

struct HookPointInfo {
    HookPoint point;
    std::string_view name;
    int failure_status;
};
constexpr HookPointInfo kHookPoints[] = {
#define HOOK_POINT(name, failure_status) {HookPoint::name, #name, failure_status},
#include "hook_points.def"
#undef HOOK_POINT
};

// VDSM refuses an operation when a before_* hook fails, and only logs an
// after_* hook's failure (lib/vdsm/common/hooks.py): the table must agree.
constexpr bool table_is_consistent() {
    for (size_t i = 0; i < std::size(kHookPoints); ++i) {
        const auto& h = kHookPoints[i];
        if (static_cast<size_t>(h.point) != i) return false;
        const bool before = h.name.substr(0, 7) == "before_";
        if (!before && h.name.substr(0, 6) != "after_") return false;
        if (h.failure_status != (before ? 2 : 1)) return false;
    }
    return true;
}
static_assert(table_is_consistent(), "common/hook_points.def: a before_* point fails with 2, an after_* with 1");

// A vNIC whose properties ask for passthrough, before a VF is chosen.
struct PassthroughVnic {
    Vnic vnic;
    VnicProperties props;
};

std::string vnic_label(const Vnic& v) {
    return cat("vNIC ", v.mac.empty() ? (v.raw_mac.empty() ? std::string("without a MAC") : quoted(v.raw_mac)) : v.mac);
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
    if (!id) fail(source, " ", quoted(raw), " is not a UUID");
    return *id;
}

// Checks what a passthrough vNIC must have before a VF can be given to it.
void check_passthrough_vnic(const Vnic& v) {
    with_context(vnic_label(v), [&] {
        if (v.raw_mac.empty()) fail("has passthrough=true but no <mac address>");
        if (v.mac.empty()) fail("has passthrough=true but its MAC ", quoted(v.raw_mac), " is not a MAC address");
        if (v.type != "bridge")
            fail("has passthrough=true but is of type ", quoted(v.type), "; only bridge vNICs can be passed through");
        if (v.network.empty()) fail("has passthrough=true but no <source bridge>");
    });
}

// The VF pool and VLAN for a vNIC: its network's section, narrowed by
// sriov_pf; the vlan property overrides the network's default.
VnicRequest plan_request(const Config& config, const PassthroughVnic& p, const std::string& vm_id, HookPoint hp) {
    const auto& v = p.vnic;
    return with_context(cat(vnic_label(v), " on network ", printable(v.network)), [&] {
        VnicRequest req;
        req.vm_id = vm_id;
        req.mac = v.mac;
        req.network = v.network;
        req.origin = std::string(hook_point_name(hp));
        req.numa = p.props.numa.value_or(config.numa_policy(v.network));
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
            fail("no PF pool configured for network ", printable(v.network), " (add a [network.", printable(v.network),
                 "] section to ",
                 config.path.empty() ? std::string(kDefaultConfigPath) : config.path,
                 " or set the sriov_pf property)");
        }
        req.vf_settings = effective_vf_settings(p.props.vf, pool ? pool->vf : VfSettings{});
        return req;
    });
}

std::string describe_grant(const Grant& g, const std::vector<std::string>& dropped) {
    const auto& r = g.reservation;
    auto line = cat("vNIC ", r.mac, " of VM ", r.vm_id, " on ", printable(r.network), " -> VF ", r.pci.to_string(), " (", r.pf,
                    " VF ", r.vf_index, r.vlan ? cat(", VLAN ", *r.vlan) : std::string(", no VLAN"),
                    g.created ? "" : ", already held", ")");
    if (g.replaced)
        line += cat("; gave back the leftover VF ", g.replaced->pci.to_string(), " it held on ",
                    printable(g.replaced->network), g.replaced->vlan ? cat(" VLAN ", *g.replaced->vlan) : std::string());
    if (!dropped.empty()) line += cat("; dropped for passthrough: ", join(dropped));
    return line;
}

// --- NUMA placement of the requests (placement.hpp) ---

// Where a hook finds the VM's NUMA nodes: the domain it was given (cheap), or
// libvirt's live XML of the VM (`costly`: asked only when the answer can
// change the choice). `get` throws Error when the placement cannot be known.
struct PlacementSource {
    std::function<VmPlacement()> get;
    bool costly = false;
};

PlacementSource placement_of_domain(Host& host, pugi::xml_node domain) {
    return {[&host, domain] { return vm_placement(domain, host.sysfs()); }, false};
}

// Fills each request's VM nodes from `source`, asked at most once. When the
// placement cannot be known, `required` refuses (nothing is reserved yet)
// and `preferred` goes on without it, saying so in `notes`.
void place_requests(Host& host, const std::vector<PassthroughVnic>& vnics, std::vector<VnicRequest>& requests,
                    const PlacementSource& source, std::vector<std::string>& notes) {
    std::optional<VmPlacement> placement;
    std::string unknown;  // why there is no placement, once asked
    // Each pool's PF nodes, read once per hook (outside the store's lock)
    // rather than at each choice.
    std::map<std::vector<std::string>, std::vector<int>> nodes_of_pool;
    const auto pool_nodes = [&](const std::vector<std::string>& pfs) -> const std::vector<int>& {
        auto it = nodes_of_pool.find(pfs);
        if (it == nodes_of_pool.end()) it = nodes_of_pool.emplace(pfs, pf_numa_nodes(host.sysfs(), pfs)).first;
        return it->second;
    };
    for (size_t i = 0; i < requests.size(); ++i) {
        auto& req = requests[i];
        if (req.numa == NumaPolicy::ignore) continue;
        if (!placement && unknown.empty()) {
            if (!source.costly) {
                // The domain in hand: a placement that does not parse is
                // bad input (libvirt would refuse it too).
                placement = with_context("reading the VM's NUMA placement", source.get);
            } else {
                if (!placement_matters(req.numa, pool_nodes(req.pfs))) continue;
                try {
                    placement = source.get();
                } catch (const Error& e) {
                    unknown = e.what();
                }
            }
        }
        const auto label = cat(vnic_label(vnics[i].vnic), " on network ", printable(req.network));
        if (placement) {
            req.vm_nodes = placement->nodes;
            if (!req.vm_nodes.empty()) req.pf_nodes = pool_nodes(req.pfs);
        } else if (req.numa == NumaPolicy::required) {
            fail(label, ": numa=required, but the VM's NUMA nodes cannot be known: ", unknown);
        } else {
            notes.push_back(cat(label, ": the VM's NUMA nodes cannot be known, so its VF is chosen as with "
                                       "numa=ignore: ", unknown));
        }
    }
}

// "; numa=preferred: ens1f0 is on NUMA node 0, no VF was free on the VM's
// NUMA node 1" when a preferred choice had to leave the VM's nodes, else "".
std::string numa_fallback_text(Host& host, const VnicRequest& req, const Reservation& r) {
    if (req.numa != NumaPolicy::preferred || req.vm_nodes.empty()) return "";
    const auto at = std::find(req.pfs.begin(), req.pfs.end(), r.pf) - req.pfs.begin();
    const int node = static_cast<size_t>(at) < req.pf_nodes.size() ? req.pf_nodes[static_cast<size_t>(at)]
                                                                   : pf_numa_node(host.sysfs(), r.pf);
    if (req.vm_nodes.count(node)) return "";
    return cat("; numa=preferred: ", r.pf, node < 0 ? std::string(" is on no known NUMA node") : cat(" is on NUMA node ", node),
               ", no VF was free on the VM's NUMA ", req.vm_nodes.size() == 1 ? "node " : "nodes ",
               node_list(req.vm_nodes));
}

// --- end NUMA placement ---

// What the helper is to make on the VF of `req`, and what a refusal does.
VfPlan vf_plan(const Config& config, const VnicRequest& req) {
    const auto* pool = config.network(req.network);
    return {req.vf_settings, pool ? pool->on_error : OnError::fail};
}

void add_reset_notes(const ResetReport& report, std::vector<std::string>& notes) {
    notes.insert(notes.end(), report.done.begin(), report.done.end());
    notes.insert(notes.end(), report.failed.begin(), report.failed.end());
}

// Allocator::reserve, then the resets of every VF whose record waits for
// one (a release that could not reset it; a leftover or a stale record
// given back just now): they never delay the reservation, which they do not
// touch, and cost nothing when there are none. When the reservation fails,
// such VFs may be why no VF is free: they are reset first, and the
// reservation tried once more.
std::vector<Grant> reserve_resetting(Host& host, const std::vector<VnicRequest>& requests,
                                     std::vector<std::string>& notes) {
    Allocator allocator(host);
    std::vector<Grant> grants;
    try {
        grants = allocator.reserve(requests);
    } catch (const Error&) {
        const auto first = std::current_exception();
        ResetReport report;
        try {
            report = retry_pending_resets(host);
        } catch (const Error&) {
            std::rethrow_exception(first);
        }
        if (report.done.empty()) std::rethrow_exception(first);
        add_reset_notes(report, notes);
        grants = allocator.reserve(requests);
    }
    add_reset_notes(finish_resets(host, allocator.pending_resets()), notes);
    return grants;
}

// Reserves a VF for each vNIC and rewrites it; all or nothing.
HookOutcome pass_through(HookPoint hp, Host& host, const std::vector<PassthroughVnic>& vnics,
                         const std::string& vm_id, const PlacementSource& placement) {
    HookOutcome outcome;
    if (vnics.empty()) return outcome;
    std::set<std::string> macs;
    std::vector<VnicRequest> requests;
    std::vector<VfPlan> plans;
    bool settings = false;
    for (const auto& p : vnics) {
        check_passthrough_vnic(p.vnic);
        if (p.props.failover) with_context(vnic_label(p.vnic), [&] { check_failover_member(p.vnic.node); });
        if (!macs.insert(p.vnic.mac).second) fail("two vNICs have the MAC ", p.vnic.mac);
        requests.push_back(plan_request(host.config(), p, vm_id, hp));
        plans.push_back(vf_plan(host.config(), requests.back()));
        settings = settings || !plans.back().settings.empty();
    }
    std::vector<std::string> numa_notes;
    place_requests(host, vnics, requests, placement, numa_notes);
    std::vector<std::string> setting_notes;
    outcome.grants = reserve_resetting(host, requests, setting_notes);
    // Before the guest runs: a refusal (on_error = fail) gives everything back.
    if (settings) {
        const auto made = apply_vf_settings(host, outcome.grants, plans);
        setting_notes.insert(setting_notes.end(), made.begin(), made.end());
    }
    for (size_t i = 0; i < vnics.size(); ++i) {
        const auto& r = outcome.grants[i].reservation;
        const VfBinding vf{r.pci, r.vlan};
        if (vnics[i].props.failover) {
            // Checked above, before anything was reserved: cannot throw here.
            const auto pair = rewrite_to_failover(vnics[i].vnic.node, vf);
            record_failover_metadata(pair.persistent.parent().parent(), pair.persistent, r.network);  // <domain>
            outcome.notes.push_back(cat(describe_grant(outcome.grants[i], {}),
                                        "; failover: teamed with the virtio vNIC ", printable(vnics[i].vnic.alias),
                                        ", which stays", numa_fallback_text(host, requests[i], r)));
        } else {
            const auto result = rewrite_to_hostdev(vnics[i].vnic.node, vf);
            outcome.notes.push_back(
                cat(describe_grant(outcome.grants[i], result.dropped), numa_fallback_text(host, requests[i], r)));
        }
    }
    outcome.notes.insert(outcome.notes.end(), numa_notes.begin(), numa_notes.end());
    outcome.notes.insert(outcome.notes.end(), setting_notes.begin(), setting_notes.end());
    outcome.xml_changed = true;
    return outcome;
}

// Resets the VFs of `released` that have settings; their lines go to
// `outcome`. A reset that fails is this after_* hook's failure, in one line
// with what was done.
void finish_release(Host& host, const std::vector<Reservation>& released, HookOutcome& outcome) {
    const auto report = finish_resets(host, released);
    outcome.notes.insert(outcome.notes.end(), report.done.begin(), report.done.end());
    if (!report.failed.empty()) {
        auto problems = report.failed;
        if (!outcome.notes.empty()) problems.push_back(cat("done: ", join(outcome.notes, "; ")));
        fail(join(problems, "; "));
    }
}

// Whether a vNIC's properties ask for anything of ours: passthrough or
// failover set to anything but "false". Any other vNIC is not ours, whatever
// else its properties say (another hook may use a property named vlan).
bool asks_for_passthrough(const PropertyLookup& lookup) {
    for (const auto* name : {kPropPassthrough, kPropFailover}) {
        const auto value = lookup(name);
        if (value && asks_for_passthrough_value(value->c_str())) return true;
    }
    return false;
}

PropertyLookup lookup_in(const PropertyValues& values) {
    return [&values](std::string_view name) -> std::optional<std::string> {
        const auto found = values.find(name);
        if (found == values.end()) return std::nullopt;
        return found->second;
    };
}

// The custom properties VDSM's rule gives `v` from <metadata>, merged when
// several entries match.
PropertyValues metadata_values(const std::vector<DeviceMetadata>& metadata, const Vnic& v) {
    PropertyValues values;
    for (const auto* entry : metadata_for(metadata, v)) values.insert(entry->custom.begin(), entry->custom.end());
    return values;
}

// Validated properties of a vNIC that asks for passthrough; nullopt for any
// other vNIC. Throws Error naming the vNIC for a bad value.
std::optional<VnicProperties> passthrough_props(const Vnic& v, const PropertyLookup& lookup) {
    if (!asks_for_passthrough(lookup)) return std::nullopt;
    auto props = with_context(vnic_label(v), [&] { return parse_properties(lookup); });
    if (props.failover && !props.passthrough)
        fail(vnic_label(v), ": property failover=true needs passthrough=true (failover teams a passed-through VF "
                            "with the virtio vNIC)");
    return props;
}

std::optional<VnicProperties> metadata_props_of(const std::vector<DeviceMetadata>& metadata, const Vnic& v) {
    const auto values = metadata_values(metadata, v);
    return passthrough_props(v, lookup_in(values));
}

pugi::xml_node require_root(const pugi::xml_document& doc, std::string_view name) {
    const auto root = doc.document_element();
    if (!root) fail("the XML has no root element");
    if (std::string_view(root.name()) != name)
        fail("expected a <", name, "> element, got <", root.name(), ">");
    return root;
}

// Whether the domain's <metadata> asks for passthrough on any vNIC (without
// validating anything): the domain is then ours to care about.
bool domain_asks_for_passthrough(pugi::xml_node domain) {
    for (const auto& entry : device_metadata(domain)) {
        if (asks_for_passthrough(lookup_in(entry.custom))) return true;
    }
    return false;
}

// Every vNIC of the domain that needs a VF from before_vm_start: a bridge
// vNIC whose metadata asks for passthrough, except the virtio member of a
// failover pair already made.
std::vector<PassthroughVnic> vnics_to_pass_through(pugi::xml_node root) {
    std::vector<PassthroughVnic> wanted;
    const auto vnics = find_vnics(root);
    if (vnics.empty()) return wanted;
    const auto metadata = device_metadata(root);
    std::optional<std::set<std::string>> teamed;
    for (const auto& v : vnics) {
        if (v.type == "hostdev") continue;  // native SR-IOV, or our own earlier output
        const auto props = metadata_props_of(metadata, v);
        if (!props) continue;
        if (props->failover) {
            // Our own earlier output: the virtio vNIC stays, already teamed.
            if (!teamed) teamed = teamed_aliases(root);
            if (!v.alias.empty() && teamed->count(v.alias)) continue;
        }
        wanted.push_back({v, *props});
    }
    return wanted;
}

// The whole VM: every passthrough vNIC and failover pair, all or nothing.
// VDSM runs before_device_create for each vNIC first, but that hook point is
// not ours (docs/design.md, "Hook points"): only here are all vNICs seen at
// once.
HookOutcome before_vm_start(Host& host, pugi::xml_document& doc, const HookEnv& env) {
    const auto root = require_root(doc, "domain");
    const auto wanted = vnics_to_pass_through(root);
    if (wanted.empty()) return {};
    return pass_through(HookPoint::before_vm_start, host, wanted, require_vm_id(env, root),
                        placement_of_domain(host, root));
}

// before_nic_hotplug: one <interface>, properties in the environment.
HookOutcome before_nic_hotplug(Host& host, pugi::xml_document& doc, const HookEnv& env) {
    const auto root = require_root(doc, "interface");
    const auto v = find_vnics(root).front();
    if (v.type == "hostdev") return {};
    const auto props = passthrough_props(v, env.properties);
    if (!props) return {};
    if (props->failover) {
        // A failover pair is two devices; this hook can hand VDSM only one.
        fail(vnic_label(v), ": property failover=true is honoured only when the VM starts (the virtio vNIC and "
                            "its VF are two devices, and a hot-plugged vNIC can become only one): plug it without "
                            "failover, or set it and restart the VM");
    }
    if (!env.vm_id || env.vm_id->empty()) fail("no VM id: $vmId is not set");
    const auto vm_id = require_vm_id(env, root);
    // VDSM hands this hook only the vNIC: the VM's placement is in libvirt's
    // live XML, asked for only when it can change the choice.
    const PlacementSource from_libvirt{[&host, vm_id] {
                                           const auto xml = host.domains().domain_xml(vm_id);
                                           pugi::xml_document domain;
                                           if (!domain.load_string(xml.c_str()))
                                               fail("libvirt's XML of domain ", vm_id, " does not parse");
                                           return vm_placement(domain.child("domain"), host.sysfs());
                                       },
                                       true};
    return pass_through(HookPoint::before_nic_hotplug, host, {{v, *props}}, vm_id, from_libvirt);
}

// Hotunplug and failed hotplug: give back the VF of this vNIC.
HookOutcome release_vnic(Host& host, pugi::xml_document& doc, const HookEnv& env) {
    const auto root = require_root(doc, "interface");
    const auto vnics = find_vnics(root);
    const auto& v = vnics.front();
    if (v.mac.empty()) fail("the <interface> has no valid <mac address> (", quoted(v.raw_mac), ")");
    const auto vm_id = require_vm_id(env, root);
    HookOutcome outcome;
    const auto released = Allocator(host).release(vm_id, v.mac);
    for (const auto& r : released) outcome.notes.push_back(released_line(r));
    finish_release(host, released, outcome);
    return outcome;
}

// Destroy and migration away: give back every VF of the VM.
HookOutcome release_vm(Host& host, pugi::xml_document& doc, const HookEnv& env) {
    const auto vm_id = require_vm_id(env, doc.child("domain"));
    HookOutcome outcome;
    const auto released = Allocator(host).release(vm_id);
    for (const auto& r : released) outcome.notes.push_back(released_line(r));
    finish_release(host, released, outcome);
    return outcome;
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
    const auto live = host_pci_devices(root);
    if (have_live && live.empty()) return {};  // no host device: nothing of ours can stop libvirt
    HookOutcome outcome;
    std::vector<std::string> held;
    for (const auto& r : Allocator(host).held_by(vm_id)) {
        if (have_live) {
            const auto it = live.find(r.pci);
            if (it == live.end()) continue;  // reserved, but not in the running VM
            if (it->second) {
                outcome.notes.push_back(cat("vNIC ", r.mac, ": VF ", r.pci.to_string(),
                                            " is a failover member; QEMU unplugs it for the migration"));
                continue;
            }
        }
        held.push_back(cat(r.mac, " on ", r.network.empty() ? "?" : printable(r.network), " (VF ", r.pci.to_string(), ")"));
    }
    if (!held.empty())
        throw Refusal(cat("VM ", vm_id, " cannot be migrated while it holds SR-IOV VFs passed through: hot-unplug vNIC",
             held.size() > 1 ? "s " : " ", join(held),
             " first and plug ", held.size() > 1 ? "them" : "it",
             " back after the migration, or set failover=true on the vNIC profile and restart the VM (a failover VF "
             "is unplugged for the migration by QEMU, the virtio vNIC carries the traffic)"));
    return outcome;
}

// Which PF and VF index `r.pci` is on this host, and the network whose pool
// has that PF; "-" and "" when unknown.
void locate_vf(Host& host, Reservation& r) {
    if (const auto where = host.inventory().locate_vf(r.pci)) {
        r.pf = where->pf.name;
        r.vf_index = where->index;
    } else {
        r.pf.assign(1, '-');  // not = "-": GCC 12 -O3 warns wrongly (-Wrestrict)
    }
    if (const auto* pool = host.config().network_of_pf(r.pf)) r.network = pool->name;
}

// The record of a VF that an arriving VM already uses on this host: the
// VF's PCI address and VLAN as the domain has them, its PF found here.
Reservation arriving_reservation(Host& host, const Vnic& v, const PciAddress& pci, const std::string& vm_id,
                                 HookPoint hp) {
    Reservation r;
    r.pci = pci;
    r.vm_id = vm_id;
    r.mac = v.mac;
    if (const auto tag = v.node.child("vlan").child("tag")) {
        if (const auto n = parse_decimal(tag.attribute("id").as_string()); n && *n >= 1 && *n <= 4094)
            r.vlan = static_cast<unsigned>(*n);
    }
    stamp_new_record(host, r, hook_point_name(hp));
    locate_vf(host, r);
    return r;
}

// A failover VF of ours in an arriving domain: the transient member, and
// the virtio partner whose metadata asks for passthrough and failover.
struct ArrivingFailoverVf {
    Vnic vf;
    PciAddress pci;
    PassthroughVnic partner;
};

std::vector<ArrivingFailoverVf> arriving_failover_vfs(pugi::xml_node root) {
    std::vector<ArrivingFailoverVf> out;
    const auto vnics = find_vnics(root);
    const auto metadata = device_metadata(root);
    for (const auto& vf : vnics) {
        const auto* partner = failover_partner(vnics, vf);
        if (!partner) continue;
        const auto pci = source_pci(vf.node);
        const auto props = metadata_props_of(metadata, *partner);
        if (pci && props && props->failover) out.push_back({vf, *pci, {*partner, *props}});
    }
    return out;
}

// Before an arriving VM's failover VFs are handed to libvirt here, at the
// PCI addresses they had on the source (VDSM sends the source's live XML,
// and hooks cannot change it): each must be a VF of this host, on a PF that
// serves the vNIC's network here, with the same VLAN, and not held by
// another VM. Then it is recorded for the arriving VM, all or nothing, so no
// start on this host can take it meanwhile. Refusing fails the incoming
// migration, and the VM stays on the source with its VF.
HookOutcome before_migrate_destination(Host& host, pugi::xml_document& doc, const HookEnv& env) {
    const auto root = require_root(doc, "domain");
    const auto arriving = arriving_failover_vfs(root);
    if (arriving.empty()) return {};
    const auto vm_id = require_vm_id(env, root);
    std::vector<Reservation> records;
    std::vector<VfPlan> plans;
    for (const auto& a : arriving) {
        const auto req = plan_request(host.config(), a.partner, vm_id, HookPoint::before_vm_migrate_destination);
        auto r = arriving_reservation(host, a.vf, a.pci, vm_id, HookPoint::before_vm_migrate_destination);
        with_context(cat("failover ", vnic_label(a.vf), " needs VF ", a.pci.to_string(),
                         " here, the PCI address it has on the source"),
                     [&] {
                         if (r.pf == "-") fail("there is no such VF on this host");
                         if (std::find(req.pfs.begin(), req.pfs.end(), r.pf) == req.pfs.end())
                             fail("it is a VF of ", r.pf, ", which does not serve network ", printable(req.network),
                                  " here (its PFs: ", join(req.pfs), ")");
                         if (r.vlan != req.vlan)
                             fail("the VF has ", r.vlan ? cat("VLAN ", *r.vlan) : std::string("no VLAN"),
                                  " from the source, but network ", printable(req.network), " here gives ",
                                  req.vlan ? cat("VLAN ", *req.vlan) : std::string("none"),
                                  "; make the [network.", printable(req.network), "] sections of both hosts agree");
                     });
        r.network = req.network;
        r.vf_settings = req.vf_settings;
        plans.push_back(vf_plan(host.config(), req));
        records.push_back(std::move(r));
    }
    Allocator allocator(host);
    HookOutcome outcome;
    std::vector<Grant> adopted;
    for (const auto& r : records) {
        const auto holder = allocator.adopt(r);
        if (holder) {
            // No setting made yet: given back without a reset.
            std::set<PciAddress> untouched;
            for (const auto& g : adopted) untouched.insert(g.reservation.pci);
            undo_grants(host, adopted, untouched);
            fail("VM ", vm_id, " cannot arrive here: failover vNIC ", r.mac, " needs VF ", r.pci.to_string(),
                 " (the PCI address it has on the source), which is held here by vNIC ", holder->mac, " of VM ",
                 holder->vm_id);
        }
        adopted.push_back(Grant{r, true});
        outcome.notes.push_back(cat("recorded VF ", r.pci.to_string(), " (", r.pf, " VF ", r.vf_index,
                                    ") for arriving failover vNIC ", r.mac, " of VM ", vm_id));
    }
    // Before libvirt hands the VF to the arriving guest; a refusal (on_error
    // = fail) fails the migration with every VF given back and reset.
    const auto made = apply_vf_settings(host, adopted, plans);
    outcome.notes.insert(outcome.notes.end(), made.begin(), made.end());
    return outcome;
}

// A failover vNIC that arrived without its VF gets one of this host's:
// reserved from the pool of its network, then hot-plugged as the transient
// member. Returns a note, or throws Error; a reservation is kept only when
// the VF is, or may be, attached.
std::string replug_failover_vf(Host& host, DeviceAttacher& attacher, const PassthroughVnic& p,
                               const std::string& vm_id) {
    check_passthrough_vnic(p.vnic);
    auto req = plan_request(host.config(), p, vm_id, HookPoint::after_vm_migrate_destination);
    // The live XML here is the VM's placement on this host.
    if (req.numa != NumaPolicy::ignore)
        req.vm_nodes = vm_placement(p.vnic.node.parent().parent(), host.sysfs()).nodes;  // <domain>
    Allocator allocator(host);
    auto grants = allocator.reserve({req});
    // Before the VF reaches the guest.
    const auto made = apply_vf_settings(host, grants, {vf_plan(host.config(), req)});
    const auto& r = grants.front().reservation;
    pugi::xml_document device;
    append_failover_vf(device, p.vnic.node, VfBinding{r.pci, r.vlan});
    try {
        attacher.attach_live(vm_id, serialize_xml(device));
    } catch (const AttachTimeout& e) {
        fail("hot-plugging VF ", r.pci.to_string(), ": ", e.what(),
             "; the VF stays reserved for the vNIC, as it may still be attached");
    } catch (const Error& e) {
        const auto problems = undo_grants(host, grants);
        fail("hot-plugging VF ", r.pci.to_string(), ": ", e.what(),
             problems.empty() ? std::string() : cat("; ", join(problems, "; ")));
    }
    return cat("hot-plugged ", describe_grant(grants.front(), {}), " as the failover partner of the virtio vNIC ",
               printable(p.vnic.alias), made.empty() ? std::string() : cat("; ", join(made, "; ")));
}

// Whether the hostdev vNIC `v` of a domain is a VF of ours: its own
// metadata asks for passthrough, or it is the transient member of a pair
// whose virtio partner's metadata does. The engine's native SR-IOV vNICs are
// not ours.
bool is_our_vf(const std::vector<Vnic>& vnics, const std::vector<DeviceMetadata>& metadata, const Vnic& v) {
    if (asks_for_passthrough(lookup_in(metadata_values(metadata, v)))) return true;
    const auto* partner = failover_partner(vnics, v);
    return partner && asks_for_passthrough(lookup_in(metadata_values(metadata, *partner)));
}

// Records the VFs of ours an arrived VM uses here, so destroy gives them
// back. Returns the MACs of the vNICs that have one; problems go to
// `problems`.
std::set<std::string> record_arrived_vfs(Host& host, pugi::xml_node root, const std::string& vm_id,
                                         HookOutcome& outcome, std::vector<std::string>& problems) {
    std::set<std::string> macs_with_vf;
    std::vector<std::string> conflicts;
    Allocator allocator(host);
    const auto vnics = find_vnics(root);
    const auto metadata = device_metadata(root);
    for (const auto& v : vnics) {
        if (v.type != "hostdev" || v.mac.empty() || !is_our_vf(vnics, metadata, v)) continue;
        const auto pci = source_pci(v.node);
        if (!pci) continue;
        macs_with_vf.insert(v.mac);
        const auto r = arriving_reservation(host, v, *pci, vm_id, HookPoint::after_vm_migrate_destination);
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
    return macs_with_vf;
}

// Gives each failover vNIC that arrived without its VF one of this host's.
void replug_missing_failover_vfs(Host& host, pugi::xml_node root, const HookEnv& env, const std::string& vm_id,
                                 const std::set<std::string>& macs_with_vf, HookOutcome& outcome,
                                 std::vector<std::string>& problems) {
    const auto metadata = device_metadata(root);
    const auto teamed = teamed_aliases(root);
    std::unique_ptr<DeviceAttacher> attacher;
    for (const auto& v : find_vnics(root)) {
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
    const auto macs_with_vf = record_arrived_vfs(host, root, vm_id, outcome, problems);
    replug_missing_failover_vfs(host, root, env, vm_id, macs_with_vf, outcome, problems);
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

std::string_view hook_point_name(HookPoint hp) { return kHookPoints[static_cast<size_t>(hp)].name; }

std::optional<HookPoint> hook_point_from_name(std::string_view name) {
    for (const auto& h : kHookPoints) {
        if (h.name == name) return h.point;
    }
    return std::nullopt;
}

int failure_status(HookPoint hp) { return kHookPoints[static_cast<size_t>(hp)].failure_status; }

bool concerns_us(HookPoint hp, const pugi::xml_document& doc, const HookEnv& env) {
    const auto root = doc.document_element();
    // No XML (VDSM hands some hooks none): nothing of ours to see. XML that
    // is not what VDSM sends at this point: bad input, reported as such.
    if (!root) return false;
    switch (hp) {
        case HookPoint::before_nic_hotplug:
        case HookPoint::after_nic_hotplug_fail:
        case HookPoint::after_nic_hotunplug:
            // VDSM passes the vNIC's custom properties with each of these.
            return std::string_view(root.name()) != "interface" || asks_for_passthrough(env.properties);
        case HookPoint::before_vm_start:
        case HookPoint::after_vm_destroy:
        case HookPoint::before_vm_migrate_source:
        case HookPoint::after_vm_migrate_source:
        case HookPoint::before_vm_migrate_destination:
        case HookPoint::after_vm_migrate_destination:
            return std::string_view(root.name()) != "domain" || domain_asks_for_passthrough(root);
    }
    return true;
}

HookOutcome run_hook_point(HookPoint hp, Host& host, pugi::xml_document& doc, const HookEnv& env) {
    switch (hp) {
        case HookPoint::before_vm_start:
            return before_vm_start(host, doc, env);
        case HookPoint::before_nic_hotplug:
            return before_nic_hotplug(host, doc, env);
        case HookPoint::after_nic_hotplug_fail:
        case HookPoint::after_nic_hotunplug:
            return release_vnic(host, doc, env);
        case HookPoint::after_vm_destroy:
        case HookPoint::after_vm_migrate_source:
            return release_vm(host, doc, env);
        case HookPoint::before_vm_migrate_source:
            return before_migrate_source(host, doc, env);
        case HookPoint::before_vm_migrate_destination:
            return before_migrate_destination(host, doc, env);
        case HookPoint::after_vm_migrate_destination:
            return after_migrate_destination(host, doc, env);
    }
    fail("unknown hook point");
}

}  // namespace sriovpt
