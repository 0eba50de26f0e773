// Hot-plugging a device into a running domain: the one thing the hooks ask
// of libvirt that is not read-only (a VM that arrives by migration without
// its failover VF gets one of this host's). Behind an interface so that tests
// can use a fake; libvirt itself is loaded with dlopen, as in domains.hpp.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "error.hpp"

namespace sriovpt {

// libvirt did not answer within the time allowed: the device may or may not
// end up attached.
class AttachTimeout : public Error {
public:
    using Error::Error;
};

class DeviceAttacher {
public:
    virtual ~DeviceAttacher() = default;

    // Attaches `device_xml` (one <interface>, <hostdev>, ...) to the running
    // domain with UUID `vm_id`, live only (VIR_DOMAIN_AFFECT_LIVE: VDSM owns
    // the persistent definition). Throws Error when libvirt refuses, and
    // AttachTimeout when it does not answer in time.
    virtual void attach_live(const std::string& vm_id, const std::string& device_xml) = 0;
};

// A read-write connection to `uri`, opened for each call, every call bounded
// by `timeout`. `uri` "none" gives an attacher whose every call throws
// Error("libvirt is disabled ...").
std::unique_ptr<DeviceAttacher> open_libvirt_attacher(const std::string& uri, std::chrono::milliseconds timeout);

}  // namespace sriovpt
