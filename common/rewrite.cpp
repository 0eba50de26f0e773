#include "rewrite.hpp"

#include <string_view>

#include "domain_xml.hpp"
#include "error.hpp"
#include "text.hpp"

namespace sriovpt {

namespace {

// Children of a bridge <interface> with no meaning on a VF, and what dropping
// them means to the operator. <mtu>, <coalesce> and a virtio <driver> are
// refused outright by libvirt's QEMU driver on a hostdev interface; <port
// isolated> too (checked with libvirt 9.0's qemu:///embed).
struct DropRule {
    std::string_view element;
    std::string_view note;  // shown after the name; empty for none
};
constexpr DropRule kDropped[] = {
    {"source", ""},                          // the bridge; replaced by the VF's address
    {"model", ""},                           // the VF's own device model is what the guest sees
    {"filterref", "no MAC anti-spoofing"},
    {"bandwidth", "no QoS"},
    {"target", ""},
    {"virtualport", "no port profile or mirroring"},
    {"tune", ""},
    {"mtu", "the VF uses the PF's MTU"},
    {"coalesce", ""},
    {"driver", ""},                          // virtio options; replaced by <driver name="vfio"/>
    {"backend", ""},
    {"script", ""},
    {"port", ""},
    {"vlan", ""},                            // replaced by the VLAN of the properties
};

const DropRule* drop_rule(std::string_view element) {
    for (const auto& rule : kDropped) {
        if (rule.element == element) return &rule;
    }
    return nullptr;
}

// What makes a hostdev interface this VF: <driver name="vfio"/>, the
// <source> address and, with a tag, <vlan>.
void append_vf(pugi::xml_node out, const VfBinding& vf) {
    out.append_child("driver").append_attribute("name") = "vfio";
    auto address = out.append_child("source").append_child("address");
    address.append_attribute("type") = "pci";
    address.append_attribute("domain") = vf.pci.domain_attr().c_str();
    address.append_attribute("bus") = vf.pci.bus_attr().c_str();
    address.append_attribute("slot") = vf.pci.slot_attr().c_str();
    address.append_attribute("function") = vf.pci.function_attr().c_str();
    if (vf.vlan) out.append_child("vlan").append_child("tag").append_attribute("id") = *vf.vlan;
}

}  // namespace

RewriteResult rewrite_to_hostdev(pugi::xml_node iface, const VfBinding& vf) {
    RewriteResult result;
    auto out = iface.parent().insert_child_before("interface", iface);
    out.append_attribute("type") = "hostdev";
    out.append_attribute("managed") = "yes";
    for (const auto attr : iface.attributes()) {
        const std::string_view name = attr.name();
        if (name != "type" && name != "managed") out.append_copy(attr);
    }

    if (const auto mac = iface.child("mac")) out.append_copy(mac);
    append_vf(out, vf);

    for (const auto child : iface.children()) {
        if (child.type() != pugi::node_element) {
            out.append_copy(child);  // comments stay where they were
            continue;
        }
        const std::string_view name = child.name();
        if (name == "mac") continue;
        if (const auto* rule = drop_rule(name)) {
            // The bridge <source> and a <vlan> our own tag replaces are
            // replaced, not lost; everything else is named.
            const bool silent = name == "source" || (name == "vlan" && vf.vlan);
            if (!silent) {
                result.dropped.push_back(rule->note.empty() ? std::string(name)
                                                             : std::string(name) + " (" + std::string(rule->note) + ")");
            }
            continue;
        }
        out.append_copy(child);
    }
    iface.parent().remove_child(iface);
    result.node = out;
    return result;
}

std::string failover_alias(pugi::xml_node persistent) {
    const std::string alias = persistent.child("alias").attribute("name").as_string();
    if (alias.empty()) fail("has failover=true but no <alias name>; the VF names its virtio partner by alias");
    // formatdomain, "Teaming a virtio/hostdev NIC pair", NB1; libvirt 9.0
    // drops any other alias at define and keeps the dangling persistent=.
    if (alias.rfind("ua-", 0) != 0)
        fail("has failover=true but its alias '", alias, "' does not start with 'ua-' (libvirt keeps only such "
             "user aliases, and the VF must name its virtio partner by one)");
    return alias;
}


pugi::xml_node append_failover_vf(pugi::xml_node parent, pugi::xml_node persistent, const VfBinding& vf) {
    const auto alias = failover_alias(persistent);
    auto out = parent.append_child("interface");
    out.append_attribute("type") = "hostdev";
    out.append_attribute("managed") = "yes";
    out.append_copy(persistent.child("mac"));
    append_vf(out, vf);
    if (const auto link = persistent.child("link")) out.append_copy(link);
    out.append_child("alias").append_attribute("name") = failover_vf_alias(alias).c_str();
    auto teaming = out.append_child("teaming");
    teaming.append_attribute("type") = "transient";
    teaming.append_attribute("persistent") = alias.c_str();
    return out;
}

std::string failover_vf_alias(std::string_view persistent_alias) { return cat(persistent_alias, "-vf"); }

void record_failover_metadata(pugi::xml_node domain, pugi::xml_node persistent, const std::string& network) {
    auto vm = ovirt_vm_metadata(domain);
    if (!vm) return;
    const std::string raw_mac = persistent.child("mac").attribute("address").as_string();
    const auto mac = normalize_mac(raw_mac);
    const std::string alias = persistent.child("alias").attribute("name").as_string();
    if (!mac || alias.empty()) return;
    const auto vf_alias = failover_vf_alias(alias);
    pugi::xml_node last;
    bool vf_known = false;
    for (const auto& e : device_metadata(domain)) {
        if (e.mac != *mac) continue;
        if (!e.alias) pugi::xml_node(e.node).append_attribute("alias") = alias.c_str();
        if (e.alias == vf_alias) vf_known = true;
        last = e.node;
    }
    if (vf_known) return;
    // The VF's entry uses the prefix the document binds to the namespace.
    const std::string_view vm_name = vm.name();
    const auto colon = vm_name.find(':');
    const std::string prefix = colon == std::string_view::npos ? "" : std::string(vm_name.substr(0, colon + 1));
    auto entry = last ? vm.insert_child_after((prefix + "device").c_str(), last)
                      : vm.append_child((prefix + "device").c_str());
    entry.append_attribute("alias") = vf_alias.c_str();
    entry.append_attribute("mac_address") = raw_mac.c_str();
    entry.append_child((prefix + "network").c_str()).text() = network.c_str();
}

void check_failover_member(pugi::xml_node iface) {
    if (!iface.child("mac")) fail("has failover=true but no <mac address>");
    // libvirt's QEMU driver: "virtio-net teaming persistent interface must be
    // <model type='virtio'/>" (qemu_validate.c).
    const std::string_view model = iface.child("model").attribute("type").as_string();
    if (model != "virtio")
        fail("has failover=true but its model is '", model.empty() ? "none" : model,
             "'; the persistent member of a failover pair must be virtio");
    failover_alias(iface);
}

FailoverResult rewrite_to_failover(pugi::xml_node iface, const VfBinding& vf) {
    check_failover_member(iface);
    while (const auto old = iface.child("teaming")) iface.remove_child(old);
    iface.append_child("teaming").append_attribute("type") = "persistent";
    // Built in a scratch document, then copied right after iface.
    pugi::xml_document scratch;
    const auto vf_node = append_failover_vf(scratch, iface, vf);
    return {iface, iface.parent().insert_copy_after(vf_node, iface)};
}

}  // namespace sriovpt
