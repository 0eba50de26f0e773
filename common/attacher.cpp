#include "attacher.hpp"

#include "libvirt_api.hpp"

namespace sriovpt {

namespace {

class DisabledAttacher final : public DeviceAttacher {
public:
    void attach_live(const std::string&, const std::string&) override {
        fail("libvirt is disabled (libvirt_uri = none)");
    }
};

void attach_now(const std::string& uri, const std::string& vm_id, const std::string& xml) {
    const LibvirtConnection conn(uri, true);
    const auto domain = conn.domain(vm_id);
    if (libvirt_api().attach_device_flags(domain.get(), xml.c_str(), VIR_DOMAIN_AFFECT_LIVE) < 0)
        fail("libvirt at ", uri, " refused to attach the device: ", libvirt_api().last_error());
}

class LibvirtAttacher final : public DeviceAttacher {
public:
    LibvirtAttacher(std::string uri, std::chrono::milliseconds timeout) : uri_(std::move(uri)), timeout_(timeout) {}

    void attach_live(const std::string& vm_id, const std::string& device_xml) override {
        run_bounded<AttachTimeout>([uri = uri_, vm_id, device_xml] { attach_now(uri, vm_id, device_xml); }, timeout_,
                                   cat("libvirt at ", uri_));
    }

private:
    std::string uri_;
    std::chrono::milliseconds timeout_;
};

}  // namespace

std::unique_ptr<DeviceAttacher> open_libvirt_attacher(const std::string& uri, std::chrono::milliseconds timeout) {
    if (uri == "none") return std::make_unique<DisabledAttacher>();
    return std::make_unique<LibvirtAttacher>(uri, timeout);
}

}  // namespace sriovpt
