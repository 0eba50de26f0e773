// What libvirt knows about running domains: which VMs run, and which host PCI
// devices they use. Behind an interface so that tests can use a fake and the
// hooks load libvirt only when an answer is needed.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "pci.hpp"

namespace sriovpt {

class DomainInventory {
public:
    virtual ~DomainInventory() = default;

    // UUIDs (lower case) of every active domain. Throws Error when libvirt
    // cannot be asked.
    virtual std::set<std::string> running_vm_ids() = 0;

    // Host PCI devices used by active domains (<hostdev> and hostdev
    // <interface>), each with the UUID of the domain using it.
    virtual std::map<PciAddress, std::string> host_devices_in_use() = 0;

    // The live XML of the domain whose UUID is `vm_id`. Throws Error when
    // libvirt cannot be asked or has no such domain.
    virtual std::string domain_xml(const std::string& vm_id) = 0;
};

// A read-only connection to `uri`, opened on first use. libvirt itself is
// loaded with dlopen at that moment: linking it would cost every hook start
// many times its own run time. `uri` "none" gives an inventory whose every
// question throws Error("libvirt look-ups are disabled ..."). Each call waits
// at most `timeout`.
std::unique_ptr<DomainInventory> open_libvirt(const std::string& uri, std::chrono::milliseconds timeout);

// The host devices a domain XML uses (pure; exposed for tests).
std::set<PciAddress> host_devices_of_domain_xml(const std::string& xml);

}  // namespace sriovpt
