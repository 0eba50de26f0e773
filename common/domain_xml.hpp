// Reading what the engine sent: the vNICs of a domain (or the single
// <interface> of a device-level hook) and the custom properties that
// before_vm_start finds in the domain's <metadata>.
#pragma once

#include <map>
#include <optional>
#include <pugixml.hpp>
#include <string>

#include "pci.hpp"
#include <vector>

namespace sriovpt {

inline constexpr const char* kOvirtVmNamespace = "http://ovirt.org/vm/1.0";

struct Vnic {
    pugi::xml_node node;
    std::string type;       // <interface type=...>
    std::string mac;        // normalised; empty when missing or malformed
    std::string raw_mac;    // as written, for messages
    std::string network;    // <source bridge=...>, empty if none
    std::string alias;      // <alias name=...>
};

// The <interface> elements of a domain's <devices>, or `root` itself when it
// is an <interface> (device-level hooks).
std::vector<Vnic> find_vnics(pugi::xml_node root);

// The vNIC custom properties in <metadata> (namespace http://ovirt.org/vm/1.0,
// whatever its prefix), keyed by lower-case MAC: property name -> value.
using PropertyValues = std::map<std::string, std::string, std::less<>>;
std::map<std::string, PropertyValues> metadata_properties(pugi::xml_node domain);

// The host PCI address in the <source> of a hostdev <interface> or a PCI
// <hostdev>; nullopt when there is none.
std::optional<PciAddress> source_pci(pugi::xml_node device);

// Local name of an element ("ovirt-vm:device" -> "device") and the namespace
// URI its prefix is bound to at that point of the document.
std::string_view local_name(pugi::xml_node node);
std::string namespace_uri(pugi::xml_node node);

// Parse and serialise exactly as the hooks do: comments, processing
// instructions, the XML declaration and DOCTYPE are kept; output is indented.
pugi::xml_parse_result parse_xml(pugi::xml_document& doc, const std::string& text);
std::string serialize_xml(const pugi::xml_document& doc);

}  // namespace sriovpt
