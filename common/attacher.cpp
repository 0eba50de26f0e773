#include "attacher.hpp"

#include <dlfcn.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <future>
#include <thread>

#include "text.hpp"

namespace sriovpt {

namespace {

class DisabledAttacher final : public DeviceAttacher {
public:
    void attach_live(const std::string&, const std::string&) override {
        fail("libvirt is disabled (libvirt_uri = none)");
    }
};

// The few libvirt functions an attach needs, resolved from libvirt.so.0 at
// run time (see domains.cpp for why it is not linked).
struct AttachApi {
    decltype(&virConnectOpen) open = nullptr;
    decltype(&virConnectClose) close = nullptr;
    decltype(&virDomainLookupByUUIDString) lookup_by_uuid = nullptr;
    decltype(&virDomainAttachDeviceFlags) attach_device_flags = nullptr;
    decltype(&virDomainFree) free_domain = nullptr;
    decltype(&virGetLastErrorMessage) last_error = nullptr;
    decltype(&virSetErrorFunc) set_error_func = nullptr;

    static const AttachApi& load() {
        static const AttachApi api = [] {
            void* lib = ::dlopen("libvirt.so.0", RTLD_NOW | RTLD_LOCAL);
            if (!lib) fail("cannot load libvirt: ", ::dlerror());
            AttachApi a;
            const auto sym = [lib](auto& fn, const char* name) {
                fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(lib, name));
                if (!fn) fail("libvirt has no ", name);
            };
            sym(a.open, "virConnectOpen");
            sym(a.close, "virConnectClose");
            sym(a.lookup_by_uuid, "virDomainLookupByUUIDString");
            sym(a.attach_device_flags, "virDomainAttachDeviceFlags");
            sym(a.free_domain, "virDomainFree");
            sym(a.last_error, "virGetLastErrorMessage");
            sym(a.set_error_func, "virSetErrorFunc");
            a.set_error_func(nullptr, [](void*, virErrorPtr) {});
            return a;
        }();
        return api;
    }
};

void attach_now(const std::string& uri, const std::string& vm_id, const std::string& xml) {
    const auto& api = AttachApi::load();
    virConnectPtr conn = api.open(uri.c_str());
    if (!conn) fail("cannot open a read-write connection to libvirt at ", uri, ": ", api.last_error());
    virDomainPtr dom = api.lookup_by_uuid(conn, vm_id.c_str());
    if (!dom) {
        const std::string why = api.last_error();
        api.close(conn);
        fail("no running domain ", vm_id, " at ", uri, ": ", why);
    }
    const int rc = api.attach_device_flags(dom, xml.c_str(), VIR_DOMAIN_AFFECT_LIVE);
    const std::string why = rc < 0 ? api.last_error() : "";
    api.free_domain(dom);
    api.close(conn);
    if (rc < 0) fail("libvirt at ", uri, " refused to attach the device: ", why);
}

class LibvirtAttacher final : public DeviceAttacher {
public:
    LibvirtAttacher(std::string uri, std::chrono::milliseconds timeout) : uri_(std::move(uri)), timeout_(timeout) {}

    // Bounded as in domains.cpp: VDSM puts no timeout on hooks, so the call
    // runs in a detached thread that is abandoned when it takes too long.
    void attach_live(const std::string& vm_id, const std::string& device_xml) override {
        auto promise = std::make_shared<std::promise<void>>();
        auto future = promise->get_future();
        std::thread([promise, uri = uri_, vm_id, device_xml] {
            try {
                attach_now(uri, vm_id, device_xml);
                promise->set_value();
            } catch (...) {
                promise->set_exception(std::current_exception());
            }
        }).detach();
        if (future.wait_for(timeout_) != std::future_status::ready)
            throw AttachTimeout(cat("libvirt at ", uri_, " did not answer within ", seconds_text(timeout_.count())));
        future.get();
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
