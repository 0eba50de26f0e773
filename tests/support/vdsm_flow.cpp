#include "vdsm_flow.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <pugixml.hpp>
#include <sstream>
#include <string_view>

namespace fs = std::filesystem;

namespace sriovpt::test {

namespace {

constexpr std::string_view kOvirtVm = "http://ovirt.org/vm/1.0";

// This model's own XML reading, independent of the hooks' library, so that a
// mistake there cannot hide behind the same mistake here.
std::string_view local(pugi::xml_node n) {
    const std::string_view name = n.name();
    const auto colon = name.find(':');
    return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

bool in_ovirt_vm(pugi::xml_node n) {
    const std::string_view name = n.name();
    const auto colon = name.find(':');
    const std::string attr = colon == std::string_view::npos ? "xmlns" : "xmlns:" + std::string(name.substr(0, colon));
    for (auto p = n; p && p.type() == pugi::node_element; p = p.parent()) {
        if (const auto a = p.attribute(attr.c_str())) return a.value() == kOvirtVm;
    }
    return false;
}

// VDSM's Descriptor reads the first <vm> of the namespace under <metadata>.
pugi::xml_node vm_metadata(pugi::xml_node domain) {
    for (const auto n : domain.child("metadata").children()) {
        if (n.type() == pugi::node_element && local(n) == "vm" && in_ovirt_vm(n)) return n;
    }
    return {};
}

pugi::xml_node child_ns(pugi::xml_node parent, std::string_view name) {
    for (const auto n : parent.children()) {
        if (n.type() == pugi::node_element && local(n) == name && in_ovirt_vm(n)) return n;
    }
    return {};
}

// VDSM's identifying attributes of an <interface>: the MAC as written, and
// the alias when it has a <teaming> child.
std::map<std::string, std::string> identifying_attrs(pugi::xml_node iface) {
    std::map<std::string, std::string> attrs{{"mac_address", iface.child("mac").attribute("address").as_string()}};
    if (iface.child("teaming")) attrs["alias"] = iface.child("alias").attribute("name").as_string();
    return attrs;
}

// The <device> entries that carry every identifying attribute with the same
// value (VDSM compares the strings as they are).
std::vector<pugi::xml_node> matching_entries(pugi::xml_node vm, const std::map<std::string, std::string>& attrs) {
    std::vector<pugi::xml_node> out;
    for (const auto dev : vm.children()) {
        if (dev.type() != pugi::node_element || local(dev) != "device" || !in_ovirt_vm(dev)) continue;
        const bool all = std::all_of(attrs.begin(), attrs.end(), [&](const auto& kv) {
            const auto a = dev.attribute(kv.first.c_str());
            return a && kv.second == a.value();
        });
        if (all) out.push_back(dev);
    }
    return out;
}

Props custom_of(pugi::xml_node entry) {
    Props out;
    for (const auto p : child_ns(entry, "custom").children()) {
        if (p.type() == pugi::node_element) out[std::string(local(p))] = p.text().as_string();
    }
    return out;
}

std::string to_string(const pugi::xml_document& doc) {
    std::ostringstream out;
    doc.save(out, "  ", pugi::format_indent, pugi::encoding_utf8);
    return out.str();
}

std::string to_string(pugi::xml_node node) {
    std::ostringstream out;
    node.print(out, "  ", pugi::format_indent, pugi::encoding_utf8);
    return "<?xml version='1.0' encoding='utf-8'?>\n" + out.str();
}

bool before_hook(std::string_view hook_point) { return hook_point.substr(0, 7) == "before_"; }

void fail_flow(FlowResult& r, std::string at, std::string why) {
    if (!r.ok) return;  // the first failure is what VDSM reports
    r.ok = false;
    r.failed_at = std::move(at);
    r.why = std::move(why);
}

}  // namespace

std::string FlowResult::err() const {
    std::string out;
    for (const auto& c : calls) out += c.err;
    return out;
}

VdsmFlow::VdsmFlow(FlowHost host, std::string hooks_dir) : host_(std::move(host)), hooks_dir_(std::move(hooks_dir)) {}

VdsmFlow::VdsmFlow(const TestHost& host, std::string hooks_dir)
    : VdsmFlow(FlowHost{host.conf_path(), host.dir() + "/sys"}, std::move(hooks_dir)) {}

std::string VdsmFlow::run_hook_point(const std::string& hook_point, const std::string& xml, const std::string& vm_id,
                                     const Props& device_custom, const Props& vm_custom, FlowResult& result) const {
    std::vector<std::string> scripts;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(hooks_dir_ + "/" + hook_point, ec)) {
        if (e.is_regular_file() && ::access(e.path().c_str(), X_OK) == 0) scripts.push_back(e.path().string());
    }
    if (scripts.empty()) return xml;  // VDSM returns the data untouched
    std::sort(scripts.begin(), scripts.end());
    TempDir work;
    const auto path = work.path() + "/domxml";
    write_text(path, xml);
    // The device's properties, then the VM's over them, then vmId.
    std::map<std::string, std::string> env = device_custom;
    for (const auto& [k, v] : vm_custom) env[k] = v;
    env["vmId"] = vm_id;
    env["_hook_domxml"] = path;
    env["SRIOV_PASSTHROUGH_CONF"] = host_.conf_path;
    for (const auto& script : scripts) {
        const auto before = read_text(path);
        const auto run = run_command({script}, env);
        result.calls.push_back({hook_point, script, run.status, run.output, read_text(path) != before});
        if (run.status != 0 && before_hook(hook_point)) fail_flow(result, hook_point, run.output);
        if (run.status == 2) break;
    }
    return read_text(path);
}

FlowResult VdsmFlow::start_vm(const std::string& engine_xml, const std::string& vm_id, const Props& vm_custom) {
    FlowResult result;
    pugi::xml_document doc;
    if (!doc.load_string(engine_xml.c_str(), pugi::parse_default | pugi::parse_declaration)) {
        fail_flow(result, "vdsm", "the engine's XML does not parse");
        return result;
    }
    auto domain = doc.child("domain");
    auto devices = domain.child("devices");
    const auto vm = vm_metadata(domain);

    // replace_device_xml_with_hooks_xml: disks aside, every device whose
    // metadata has <custom> goes through before_device_create. Only vNICs
    // carry device metadata in what the engine sends, so only <interface>
    // is identified here.
    std::vector<pugi::xml_node> replaced;
    std::vector<std::string> outputs;
    for (const auto dev : devices.children()) {
        if (dev.type() != pugi::node_element || std::string_view(dev.name()) != "interface") continue;
        const auto entries = matching_entries(vm, identifying_attrs(dev));
        if (entries.size() > 1) {
            fail_flow(result, "vdsm", "more than one metadata entry matches the vNIC (MissingDevice)");
            return result;
        }
        if (entries.empty() || !child_ns(entries[0], "custom")) continue;
        outputs.push_back(
            run_hook_point("before_device_create", to_string(dev), vm_id, custom_of(entries[0]), vm_custom, result));
        replaced.push_back(dev);
        if (!result.ok) return result;
    }
    for (size_t i = 0; i < replaced.size(); ++i) {
        pugi::xml_document out;
        if (!out.load_string(outputs[i].c_str())) {
            fail_flow(result, "vdsm", "before_device_create's output does not parse");
            return result;
        }
        devices.remove_child(replaced[i]);
        devices.append_copy(out.document_element());
    }

    const auto before = to_string(doc);
    result.xml = run_hook_point("before_vm_start", before, vm_id, {}, vm_custom, result);
    if (!result.ok) {
        // The VM goes down; its destroy runs after_vm_destroy.
        run_hook_point("after_vm_destroy", before, vm_id, {}, vm_custom, result);
        return result;
    }
    pugi::xml_document check;
    if (!check.load_string(result.xml.c_str())) fail_flow(result, "vdsm", "before_vm_start's output does not parse");
    return result;
}

std::string VdsmFlow::live_xml(const std::string& engine_xml, const std::string& started_xml) const {
    pugi::xml_document engine, live;
    engine.load_string(engine_xml.c_str());
    live.load_string(started_xml.c_str(), pugi::parse_default | pugi::parse_declaration);
    auto domain = live.child("domain");
    const auto engine_vm = vm_metadata(engine.child("domain"));
    auto metadata = domain.child("metadata");
    if (auto old = vm_metadata(domain)) metadata.remove_child(old);
    if (!engine_vm) return to_string(live);
    auto vm = metadata.append_copy(engine_vm);

    // VDSM's vNIC objects come from the engine's interfaces; once the live
    // domain shows one teamed (same MAC and alias), its metadata is saved
    // under MAC and alias: the entry that has both is kept, else a new one
    // carries what the MAC-only entry had.
    for (const auto iface : engine.child("domain").child("devices").children("interface")) {
        const std::string mac = iface.child("mac").attribute("address").as_string();
        const std::string alias = iface.child("alias").attribute("name").as_string();
        bool teamed = false;
        for (const auto l : domain.child("devices").children("interface")) {
            teamed = teamed || (l.child("teaming") && mac == l.child("mac").attribute("address").as_string() &&
                                alias == l.child("alias").attribute("name").as_string());
        }
        if (!teamed || !matching_entries(vm, {{"mac_address", mac}, {"alias", alias}}).empty()) continue;
        const auto by_mac = matching_entries(vm, {{"mac_address", mac}});
        auto entry = by_mac.empty() ? vm.append_child("ovirt-vm:device") : vm.append_copy(by_mac.front());
        entry.remove_attribute("alias");
        entry.append_attribute("alias") = alias.c_str();
        if (!entry.attribute("mac_address")) entry.append_attribute("mac_address") = mac.c_str();
    }
    return to_string(live);
}

FlowResult VdsmFlow::hotplug_nic(const std::string& nic_xml, const std::string& vm_id, const Props& nic_custom,
                                 bool attach_fails, const Props& vm_custom) {
    FlowResult result;
    result.xml = run_hook_point("before_nic_hotplug", nic_xml, vm_id, nic_custom, vm_custom, result);
    if (!result.ok) return result;
    if (attach_fails) {
        fail_flow(result, "libvirt", "attach-device failed");
        run_hook_point("after_nic_hotplug_fail", result.xml, vm_id, nic_custom, vm_custom, result);
    }
    return result;
}

FlowResult VdsmFlow::hotunplug_nic(const std::string& engine_nic_xml, const std::string& vm_id,
                                   const Props& nic_custom) {
    FlowResult result;
    run_hook_point("before_nic_hotunplug", engine_nic_xml, vm_id, nic_custom, {}, result);
    if (!result.ok) return result;
    run_hook_point("after_nic_hotunplug", engine_nic_xml, vm_id, nic_custom, {}, result);
    return result;
}

FlowResult VdsmFlow::destroy(const std::string& xml, const std::string& vm_id) {
    FlowResult result;
    run_hook_point("after_vm_destroy", xml, vm_id, {}, {}, result);
    return result;
}

VdsmDeviceMetadata vdsm_metadata_of(const std::string& domain_xml, const std::string& alias) {
    pugi::xml_document doc;
    doc.load_string(domain_xml.c_str());
    const auto domain = doc.child("domain");
    VdsmDeviceMetadata out;
    for (const auto iface : domain.child("devices").children("interface")) {
        if (alias != iface.child("alias").attribute("name").as_string()) continue;
        const auto entries = matching_entries(vm_metadata(domain), identifying_attrs(iface));
        out.matches = entries.size();
        if (!entries.empty()) {
            out.custom = custom_of(entries[0]);
            out.network = child_ns(entries[0], "network").text().as_string();
        }
    }
    return out;
}

MigrationResult migrate(const VdsmFlow& source, const VdsmFlow& destination, const std::string& live_xml,
                        const std::string& vm_id) {
    MigrationResult m;
    const auto fail_migration = [&m](std::string at, std::string why) {
        m.ok = false;
        m.failed_at = std::move(at);
        m.why = std::move(why);
    };
    source.run_hook_point("before_vm_migrate_source", live_xml, vm_id, {}, {}, m.source);
    if (!m.source.ok) {
        fail_migration("before_vm_migrate_source", m.source.why);
        return m;
    }

    pugi::xml_document doc;
    doc.load_string(live_xml.c_str());
    const auto devices = doc.child("domain").child("devices");

    // The destination VDSM detaches every hostdev <interface>'s PCI device
    // before anything else; a device it cannot find fails the creation.
    const auto sys = destination.host().sysfs_root + "/devices";
    for (const auto iface : devices.children("interface")) {
        if (std::string_view(iface.attribute("type").as_string()) != "hostdev") continue;
        const auto a = iface.child("source").child("address");
        char name[32];
        std::snprintf(name, sizeof name, "%04lx:%02lx:%02lx.%lx", std::stoul(a.attribute("domain").as_string("0"), nullptr, 0),
                      std::stoul(a.attribute("bus").as_string("0"), nullptr, 0),
                      std::stoul(a.attribute("slot").as_string("0"), nullptr, 0),
                      std::stoul(a.attribute("function").as_string("0"), nullptr, 0));
        bool found = false;
        std::error_code ec;
        for (const auto& bus : fs::directory_iterator(sys, ec)) found = found || fs::exists(bus.path() / name);
        if (!found) {
            fail_migration("vdsm", std::string("the destination has no PCI device ") + name + " to detach");
            destination.run_hook_point("after_vm_destroy", live_xml, vm_id, {}, {}, m.destination);
            return m;
        }
    }
    destination.run_hook_point("before_vm_migrate_destination", live_xml, vm_id, {}, {}, m.destination);
    if (!m.destination.ok) {
        fail_migration("before_vm_migrate_destination", m.destination.why);
        destination.run_hook_point("after_vm_destroy", live_xml, vm_id, {}, {}, m.destination);
        return m;
    }

    // libvirt migrates a VM with a PCI host device only when it is the
    // transient member of a failover pair (qemuMigrationSrcIsAllowedHostdev).
    for (const auto dev : devices.children()) {
        const std::string_view name = dev.name();
        const bool pci = (name == "interface" && std::string_view(dev.attribute("type").as_string()) == "hostdev") ||
                         (name == "hostdev" && std::string_view(dev.attribute("type").as_string()) == "pci");
        if (pci && std::string_view(dev.child("teaming").attribute("type").as_string()) != "transient") {
            fail_migration("libvirt", "the domain has a PCI host device that is not a failover member");
            destination.run_hook_point("after_vm_destroy", live_xml, vm_id, {}, {}, m.destination);
            return m;
        }
    }
    destination.run_hook_point("after_vm_migrate_destination", live_xml, vm_id, {}, {}, m.destination);
    source.run_hook_point("after_vm_migrate_source", live_xml, vm_id, {}, {}, m.source);
    source.run_hook_point("after_vm_destroy", live_xml, vm_id, {}, {}, m.source);
    return m;
}

}  // namespace sriovpt::test
