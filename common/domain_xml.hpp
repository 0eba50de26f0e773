// Reading what the engine sent: the vNICs of a domain (or the single
// <interface> of a device-level hook) and the custom properties that
// before_vm_start finds in the domain's <metadata>.
#pragma once

#include <map>
#include <optional>
#include <set>
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
    bool teamed = false;    // has a <teaming> child (one member of a failover pair)
};

// The <interface> elements of a domain's <devices>, or `root` itself when it
// is an <interface> (device-level hooks).
std::vector<Vnic> find_vnics(pugi::xml_node root);

using PropertyValues = std::map<std::string, std::string, std::less<>>;

// One <ovirt-vm:device> element of the domain's <metadata> that names a MAC
// (namespace http://ovirt.org/vm/1.0, whatever its prefix).
struct DeviceMetadata {
    pugi::xml_node node;
    std::string mac;                    // normalised mac_address
    std::optional<std::string> alias;   // the alias attribute, when present
    PropertyValues custom;              // <ovirt-vm:custom>: property name -> value
};

// The device entries of <metadata> that carry a valid mac_address, in
// document order. Empty when there is no ovirt-vm metadata.
std::vector<DeviceMetadata> device_metadata(pugi::xml_node domain);

// The entries VDSM would give `vnic`. VDSM identifies a vNIC's metadata by
// its MAC, plus its alias when the interface has a <teaming> child
// (Interface.get_identifying_attrs in lib/vdsm/virt/vmdevices/network.py),
// and an entry matches when it carries every identifying attribute with the
// same value (_match_args in lib/vdsm/virt/metadata.py); MACs are compared
// here without regard to case.
std::vector<const DeviceMetadata*> metadata_for(const std::vector<DeviceMetadata>& entries, const Vnic& vnic);

// The <ovirt-vm:vm> element of the domain's <metadata>, or null.
pugi::xml_node ovirt_vm_metadata(pugi::xml_node domain);

// The host PCI address in the <source> of a hostdev <interface> or a PCI
// <hostdev>; nullopt when there is none.
std::optional<PciAddress> source_pci(pugi::xml_node device);

// True when `iface` is the transient member of a failover pair: a hostdev
// <interface> with <teaming type="transient" persistent="..."/>.
bool is_failover_vf(pugi::xml_node iface);

// The virtio partner of `vf` among `vnics` when `vf` is the transient
// member of a failover pair: the vNIC, not a hostdev, whose alias its
// <teaming persistent=...> names. Null otherwise.
const Vnic* failover_partner(const std::vector<Vnic>& vnics, const Vnic& vf);

// The aliases that the transient members of `domain`'s failover pairs name:
// the virtio vNICs already teamed (by our own earlier run, or the engine).
std::set<std::string> teamed_aliases(pugi::xml_node domain);

// The host PCI devices a domain uses (PCI <hostdev>s and hostdev
// <interface>s), each with whether it is the transient member of a failover
// pair, which QEMU unplugs by itself for a migration.
std::map<PciAddress, bool> host_pci_devices(pugi::xml_node domain);

// Local name of an element ("ovirt-vm:device" -> "device") and the namespace
// URI its prefix is bound to at that point of the document (a view into the
// document).
std::string_view local_name(pugi::xml_node node);
std::string_view namespace_uri(pugi::xml_node node);

// libvirt reads XML through libxml2 without XML_PARSE_HUGE, which refuses a
// document nested deeper than 256 elements ("Excessive depth in document:
// 256"; libxml2 2.9 on Debian 12 takes 257 levels and refuses 258). The hooks
// refuse from 257 on, so what they let through libvirt reads.
inline constexpr unsigned kMaxXmlDepth = 256;

// What parse_xml made of a text.
struct XmlParse {
    // Empty when the document was read; else why not, worded to follow "the
    // XML in FILE ": "is malformed at byte 26: Error parsing start element
    // tag", "is nested more than 256 elements deep (at byte 2091) ...".
    std::string error;
    // The DOCTYPE declares entities (<!ENTITY ...>). The parser keeps their
    // references as literal text, so a rewritten document would lose them.
    bool declares_entities = false;
    explicit operator bool() const { return error.empty(); }
};

// Parse and serialise exactly as the hooks do: comments, processing
// instructions, the XML declaration and DOCTYPE are kept. Parsing refuses a
// document nested deeper than kMaxXmlDepth. Output is indented, the first
// levels only: deeper elements stay on their ancestor's line, so the output
// is never more than a few times the size of the input however deep it is.
// serialize_xml throws std::bad_alloc rather than return a short text.
XmlParse parse_xml(pugi::xml_document& doc, const std::string& text);
std::string serialize_xml(const pugi::xml_document& doc);

}  // namespace sriovpt
