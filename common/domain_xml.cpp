#include "domain_xml.hpp"

#include <string_view>
#include <vector>

#include "error.hpp"
#include "text.hpp"

namespace sriovpt {

std::string_view local_name(pugi::xml_node node) {
    const std::string_view name = node.name();
    const auto colon = name.find(':');
    return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

std::string_view namespace_uri(pugi::xml_node node) {
    // The nearest xmlns (no prefix) or xmlns:<prefix> attribute, compared in
    // place: the hooks ask this of every node of <metadata>, several times a
    // start.
    const std::string_view name = node.name();
    const auto colon = name.find(':');
    const std::string_view prefix = colon == std::string_view::npos ? std::string_view() : name.substr(0, colon);
    constexpr std::string_view kXmlns = "xmlns";
    for (auto n = node; n && n.type() == pugi::node_element; n = n.parent()) {
        for (auto a = n.first_attribute(); a; a = a.next_attribute()) {
            const std::string_view attr = a.name();
            if (attr.substr(0, kXmlns.size()) != kXmlns) continue;
            const auto rest = attr.substr(kXmlns.size());
            const bool binds = prefix.empty() ? rest.empty()
                                              : rest.size() == prefix.size() + 1 && rest[0] == ':' && rest.substr(1) == prefix;
            if (binds) return a.value();
        }
    }
    return {};
}

std::optional<PciAddress> source_pci(pugi::xml_node device) {
    const auto a = device.child("source").child("address");
    if (!a || std::string_view(a.attribute("type").as_string("pci")) != "pci") return std::nullopt;
    return PciAddress::from_libvirt(a.attribute("domain").as_string("0"), a.attribute("bus").as_string(),
                                    a.attribute("slot").as_string(), a.attribute("function").as_string());
}

bool is_failover_vf(pugi::xml_node iface) {
    const auto teaming = iface.child("teaming");
    return std::string_view(iface.attribute("type").as_string()) == "hostdev" &&
           std::string_view(teaming.attribute("type").as_string()) == "transient" &&
           !std::string_view(teaming.attribute("persistent").as_string()).empty();
}

const Vnic* failover_partner(const std::vector<Vnic>& vnics, const Vnic& vf) {
    if (!is_failover_vf(vf.node)) return nullptr;
    const std::string_view alias = vf.node.child("teaming").attribute("persistent").as_string();
    for (const auto& p : vnics) {
        if (p.type != "hostdev" && p.alias == alias) return &p;
    }
    return nullptr;
}

std::set<std::string> teamed_aliases(pugi::xml_node domain) {
    std::set<std::string> out;
    for (const auto iface : domain.child("devices").children("interface")) {
        if (is_failover_vf(iface)) out.insert(iface.child("teaming").attribute("persistent").as_string());
    }
    return out;
}

std::map<PciAddress, bool> host_pci_devices(pugi::xml_node domain) {
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
        v.teamed = static_cast<bool>(iface.child("teaming"));
        out.push_back(std::move(v));
    };
    if (std::string_view(root.name()) == "interface") {
        add(root);
    } else {
        for (const auto iface : root.child("devices").children("interface")) add(iface);
    }
    return out;
}

namespace {

bool in_ovirt_ns(pugi::xml_node n, std::string_view local) {
    return n.type() == pugi::node_element && local_name(n) == local && namespace_uri(n) == kOvirtVmNamespace;
}

}  // namespace

pugi::xml_node ovirt_vm_metadata(pugi::xml_node domain) {
    for (const auto vm : domain.child("metadata").children()) {
        if (in_ovirt_ns(vm, "vm")) return vm;
    }
    return {};
}

std::vector<DeviceMetadata> device_metadata(pugi::xml_node domain) {
    std::vector<DeviceMetadata> out;
    for (const auto device : ovirt_vm_metadata(domain).children()) {
        if (!in_ovirt_ns(device, "device")) continue;
        const auto mac = normalize_mac(device.attribute("mac_address").as_string());
        if (!mac) continue;
        DeviceMetadata entry{device, *mac, std::nullopt, {}};
        if (const auto alias = device.attribute("alias")) entry.alias = alias.value();
        for (const auto custom : device.children()) {
            if (!in_ovirt_ns(custom, "custom")) continue;
            for (const auto prop : custom.children()) {
                if (prop.type() == pugi::node_element && namespace_uri(prop) == kOvirtVmNamespace)
                    entry.custom[std::string(local_name(prop))] = prop.text().as_string();
            }
        }
        out.push_back(std::move(entry));
    }
    return out;
}

std::vector<const DeviceMetadata*> metadata_for(const std::vector<DeviceMetadata>& entries, const Vnic& vnic) {
    std::vector<const DeviceMetadata*> out;
    if (vnic.mac.empty()) return out;
    for (const auto& e : entries) {
        if (e.mac != vnic.mac) continue;
        if (vnic.teamed && e.alias != vnic.alias) continue;
        out.push_back(&e);
    }
    return out;
}

namespace {

// Levels of the document that serialize_xml indents; the children of an
// element at this level go on its line. More than a domain from VDSM needs
// (a vNIC's custom property in <metadata> is at level 6), few enough to
// bound the indentation at 22 spaces.
constexpr unsigned kIndentedLevels = 12;

bool is_text(pugi::xml_node n) { return n.type() == pugi::node_pcdata || n.type() == pugi::node_cdata; }

// The node after `n` in document order, or null at the end; `depth` (the
// elements above `n`) follows. Iterative: a recursion would be as deep as
// the document.
pugi::xml_node next_node(pugi::xml_node n, unsigned& depth) {
    if (n.type() == pugi::node_element && n.first_child()) {
        ++depth;
        return n.first_child();
    }
    while (!n.next_sibling()) {
        n = n.parent();
        if (n.type() != pugi::node_element) return {};
        --depth;
    }
    return n.next_sibling();
}

// Collects pugixml's output; a failed allocation reaches the caller as
// std::bad_alloc.
class StringWriter : public pugi::xml_writer {
public:
    void write(const void* data, size_t size) override { text.append(static_cast<const char*>(data), size); }
    std::string text;
};

}  // namespace

XmlParse parse_xml(pugi::xml_document& doc, const std::string& text) {
    XmlParse out;
    const auto result = doc.load_buffer(text.data(), text.size(), pugi::parse_full, pugi::encoding_utf8);
    if (result.status == pugi::status_out_of_memory) {
        out.error = cat("could not be parsed: out of memory (", text.size(), " bytes)");
        return out;
    }
    if (!result) {
        out.error = cat("is malformed at byte ", result.offset, ": ", result.description());
        return out;
    }
    // Refused here, before any hook point looks at the document: the code
    // after this never meets more than kMaxXmlDepth levels.
    unsigned depth = 0;
    for (auto n = doc.first_child(); n; n = next_node(n, depth)) {
        if (n.type() == pugi::node_doctype && std::string_view(n.value()).find("<!ENTITY") != std::string_view::npos)
            out.declares_entities = true;
        if (n.type() == pugi::node_element && depth + 1 > kMaxXmlDepth) {
            out.error = cat("is nested more than ", kMaxXmlDepth, " elements deep (at byte ", n.offset_debug(),
                            "); libvirt reads no document deeper than that");
            doc.reset();
            return out;
        }
    }
    return out;
}

std::string serialize_xml(const pugi::xml_document& doc) {
    // pugixml puts no line break or indentation next to text, so an empty
    // text node before each child (and after the last) of a deep element keeps
    // the children on its line. Taken out again before returning.
    std::vector<pugi::xml_node> spacers;
    struct Restore {
        std::vector<pugi::xml_node>& spacers;
        ~Restore() {
            for (auto n : spacers) n.parent().remove_child(n);
        }
    } restore{spacers};
    unsigned depth = 0;
    for (auto n = doc.first_child(); n; n = next_node(n, depth)) {
        if (n.type() != pugi::node_element || depth + 1 < kIndentedLevels) continue;
        for (auto child = n.first_child(); child; child = child.next_sibling()) {
            if (is_text(child)) continue;
            if (const auto spacer = n.insert_child_before(pugi::node_pcdata, child)) spacers.push_back(spacer);
        }
        if (n.last_child() && !is_text(n.last_child())) {
            if (const auto spacer = n.append_child(pugi::node_pcdata)) spacers.push_back(spacer);
        }
    }
    // Not an ostringstream: its buffer takes a failed allocation for the end
    // of the stream, and the caller would get a short text and no error.
    StringWriter out;
    doc.save(out, "  ", pugi::format_indent | pugi::format_no_declaration, pugi::encoding_utf8);
    return std::move(out.text);
}

}  // namespace sriovpt
