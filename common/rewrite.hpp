// The XML rewrite: a bridge <interface> becomes an SR-IOV VF passed through
// (DESIGN §1). Pure: document in, document out; the VF was chosen elsewhere.
#pragma once

#include <optional>
#include <pugixml.hpp>
#include <string>
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

}  // namespace sriovpt
