#include "libvirt_api.hpp"

#include <dlfcn.h>

namespace sriovpt {

const LibvirtApi& libvirt_api() {
    static const LibvirtApi api = [] {
        void* lib = ::dlopen("libvirt.so.0", RTLD_NOW | RTLD_LOCAL);
        if (!lib) fail("cannot load libvirt: ", ::dlerror());
        const auto sym = [lib](auto& fn, const char* name) {
            fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(lib, name));
            if (!fn) fail("libvirt has no ", name);
        };
        LibvirtApi a;
        sym(a.open, "virConnectOpen");
        sym(a.open_read_only, "virConnectOpenReadOnly");
        sym(a.close, "virConnectClose");
        sym(a.list_all_domains, "virConnectListAllDomains");
        sym(a.lookup_by_uuid, "virDomainLookupByUUIDString");
        sym(a.get_uuid_string, "virDomainGetUUIDString");
        sym(a.get_xml_desc, "virDomainGetXMLDesc");
        sym(a.attach_device_flags, "virDomainAttachDeviceFlags");
        sym(a.free_domain, "virDomainFree");
        sym(a.last_error, "virGetLastErrorMessage");
        decltype(&virSetErrorFunc) set_error_func = nullptr;
        sym(set_error_func, "virSetErrorFunc");
        set_error_func(nullptr, [](void*, virErrorPtr) {});
        return a;
    }();
    return api;
}

LibvirtConnection::LibvirtConnection(const std::string& uri, bool writable) : uri_(uri) {
    const auto& api = libvirt_api();
    conn_ = writable ? api.open(uri.c_str()) : api.open_read_only(uri.c_str());
    if (!conn_) fail("cannot connect to libvirt at ", uri, writable ? " (read-write)" : "", ": ", api.last_error());
}

LibvirtConnection::~LibvirtConnection() { libvirt_api().close(conn_); }

LibvirtConnection::Domain LibvirtConnection::domain(const std::string& vm_id) const {
    Domain domain(libvirt_api().lookup_by_uuid(conn_, vm_id.c_str()));
    // libvirt's message is read before anything else calls it (each call
    // resets it).
    if (!domain) fail("libvirt at ", uri_, " has no domain ", vm_id, ": ", libvirt_api().last_error());
    return domain;
}

}  // namespace sriovpt
