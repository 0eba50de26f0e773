#include "domain_xml.hpp"

#include <sstream>

#include "text.hpp"

namespace sriovpt {

std::string_view local_name(pugi::xml_node node) {
    const std::string_view name = node.name();
    const auto colon = name.find(':');
    return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

std::string namespace_uri(pugi::xml_node node) {
    const std::string_view name = node.name();
    const auto colon = name.find(':');
    const std::string attr =
        colon == std::string_view::npos ? std::string("xmlns") : "xmlns:" + std::string(name.substr(0, colon));
    for (auto n = node; n && n.type() == pugi::node_element; n = n.parent()) {
        if (const auto a = n.attribute(attr.c_str())) return a.value();
    }
    return {};
}

std::optional<PciAddress> source_pci(pugi::xml_node device) {
    const auto a = device.child("source").child("address");
    if (!a || std::string_view(a.attribute("type").as_string("pci")) != "pci") return std::nullopt;
    return PciAddress::from_libvirt(a.attribute("domain").as_string("0"), a.attribute("bus").as_string(),
                                    a.attribute("slot").as_string(), a.attribute("function").as_string());
}

std::vector<Vnic> find_vnics(pugi::xml_node root) {
    std::vector<Vnic> out;
    const auto add = [&out](pugi::xml_node iface) {
        Vnic v;
        v.node = iface;
        v.type = iface.attribute("type").as_string();
        v.raw_mac = iface.child("mac").attribute("address").as_string();
        v.mac = normalize_mac(v.raw_mac).value_or("");
        v.network = iface.child("source").attribute("bridge").as_string();
        v.alias = iface.child("alias").attribute("name").as_string();
        out.push_back(std::move(v));
    };
    if (std::string_view(root.name()) == "interface") {
        add(root);
    } else {
        for (const auto iface : root.child("devices").children("interface")) add(iface);
    }
    return out;
}

std::map<std::string, PropertyValues> metadata_properties(pugi::xml_node domain) {
    std::map<std::string, PropertyValues> out;
    const auto in_ovirt_ns = [](pugi::xml_node n, std::string_view local) {
        return n.type() == pugi::node_element && local_name(n) == local && namespace_uri(n) == kOvirtVmNamespace;
    };
    for (const auto vm : domain.child("metadata").children()) {
        if (!in_ovirt_ns(vm, "vm")) continue;
        for (const auto device : vm.children()) {
            if (!in_ovirt_ns(device, "device")) continue;
            const auto mac = normalize_mac(device.attribute("mac_address").as_string());
            if (!mac) continue;
            auto& props = out[*mac];
            for (const auto custom : device.children()) {
                if (!in_ovirt_ns(custom, "custom")) continue;
                for (const auto prop : custom.children()) {
                    if (prop.type() == pugi::node_element && namespace_uri(prop) == kOvirtVmNamespace)
                        props[std::string(local_name(prop))] = prop.text().as_string();
                }
            }
        }
    }
    return out;
}

pugi::xml_parse_result parse_xml(pugi::xml_document& doc, const std::string& text) {
    return doc.load_buffer(text.data(), text.size(), pugi::parse_full, pugi::encoding_utf8);
}

std::string serialize_xml(const pugi::xml_document& doc) {
    std::ostringstream out;
    doc.save(out, "  ", pugi::format_indent | pugi::format_no_declaration, pugi::encoding_utf8);
    return out.str();
}

}  // namespace sriovpt
