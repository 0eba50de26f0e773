// The XML rewrite: a bridge <interface> becomes an SR-IOV VF passed through
// (docs/design.md, "The rewrite"). Pure: document in, document out; the VF
// was chosen elsewhere.
#pragma once

#include <optional>
#include <pugixml.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "pci.hpp"

namespace sriovpt {

struct VfBinding {
    PciAddress pci;
    std::optional<unsigned> vlan;
};

// Replaces `iface` (in its parent, at the same position) by
//   <interface type="hostdev" managed="yes">
//     <mac/> <driver name="vfio"/> <source><address type="pci" .../></source>
//     <vlan><tag id="N"/></vlan>   (only with a VLAN)
//     ...every kept child of the original, in its order...
//   </interface>
// Kept: <mac>, <alias>, the guest <address>, <boot>, <rom>, <link>, <acpi>,
// <teaming> and any element this function does not know. Dropped: what a VF
// cannot do or libvirt's QEMU driver refuses on a hostdev interface.
// Returns the new node and, for the operator, a description of each element
// dropped, in document order ("mtu", "filterref (no MAC anti-spoofing)").
struct RewriteResult {
    pugi::xml_node node;
    std::vector<std::string> dropped;
};
RewriteResult rewrite_to_hostdev(pugi::xml_node iface, const VfBinding& vf);

// The failover pair of libvirt's "Teaming a virtio/hostdev NIC pair"
// (formatdomain, since libvirt 6.1 and QEMU 4.2): `iface`, a virtio bridge
// vNIC, stays where it is with everything it had, plus <teaming
// type="persistent"/> (an existing <teaming> is replaced); right after it
// comes the VF (failover_vf_interface). The guest's net_failover driver pairs
// the two by MAC and prefers the VF; QEMU unplugs the VF for a migration.
// Throws Error when `iface` cannot be a persistent member: no <mac>, no
// virtio <model>, or an alias not starting with "ua-" (libvirt only keeps
// user aliases that start with "ua-"; any other is replaced at define, and
// the VF's persistent= would then name nothing).
struct FailoverResult {
    pugi::xml_node persistent;   // `iface`
    pugi::xml_node transient;    // the new hostdev <interface>
};
FailoverResult rewrite_to_failover(pugi::xml_node iface, const VfBinding& vf);

// Appends to `parent` the transient member for the persistent vNIC
// `persistent` (what rewrite_to_failover inserts, and what is hot-plugged
// when a VM arrives without its VF):
//   <interface type="hostdev" managed="yes">
//     <mac/> (the persistent member's) <driver name="vfio"/>
//     <source><address type="pci" .../></source> <vlan/> (with a VLAN)
//     <link/> (the persistent member's, if any)
//     <alias name="ALIAS-vf"/> (failover_vf_alias)
//     <teaming type="transient" persistent="ALIAS"/>
//   </interface>
// No guest <address>: libvirt places it on a free hot-pluggable port.
pugi::xml_node append_failover_vf(pugi::xml_node parent, pugi::xml_node persistent, const VfBinding& vf);

// The alias of the VF teamed with the persistent member whose alias is
// `persistent_alias` ("ua-..." + "-vf"). VDSM identifies the metadata of a
// teamed interface by MAC and alias, and the two members share the MAC, so
// the VF needs an alias of its own that is known before libvirt sees the
// domain; a "ua-" alias is one libvirt keeps.
std::string failover_vf_alias(std::string_view persistent_alias);

// Makes the domain's ovirt-vm <metadata> identify both members of the pair
// whose persistent member is `persistent`, by VDSM's rule for teamed
// interfaces (MAC and alias; domain_xml.hpp, metadata_for): the entries that
// named the vNIC by MAC alone get its alias, so they keep the vNIC's network
// and custom properties, and an entry for the VF follows them:
//   <ovirt-vm:device alias="ALIAS-vf" mac_address="MAC">
//     <ovirt-vm:network>NETWORK</ovirt-vm:network>
//   </ovirt-vm:device>
// Nothing is added twice. A domain without ovirt-vm metadata is left alone.
void record_failover_metadata(pugi::xml_node domain, pugi::xml_node persistent, const std::string& network);

// Whether `iface` can be the persistent member of a failover pair (the
// checks of rewrite_to_failover, without changing anything); throws Error.
void check_failover_member(pugi::xml_node iface);

// The alias of a failover persistent member, checked as above; throws Error.
std::string failover_alias(pugi::xml_node persistent);


}  // namespace sriovpt
