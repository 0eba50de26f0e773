#include "domains.hpp"

#include <dlfcn.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <future>
#include <pugixml.hpp>
#include <thread>

#include "error.hpp"
#include "text.hpp"

namespace sriovpt {

std::set<PciAddress> host_devices_of_domain_xml(const std::string& xml) {
    std::set<PciAddress> out;
    pugi::xml_document doc;
    if (!doc.load_string(xml.c_str())) return out;
    const auto devices = doc.child("domain").child("devices");
    const auto add_source = [&out](pugi::xml_node source) {
        const auto a = source.child("address");
        if (std::string_view(a.attribute("type").as_string("pci")) != "pci") return;
        if (auto pci = PciAddress::from_libvirt(a.attribute("domain").as_string("0"), a.attribute("bus").as_string(),
                                                a.attribute("slot").as_string(), a.attribute("function").as_string()))
            out.insert(*pci);
    };
    for (const auto hostdev : devices.children("hostdev")) {
        if (std::string_view(hostdev.attribute("type").as_string()) == "pci") add_source(hostdev.child("source"));
    }
    for (const auto iface : devices.children("interface")) {
        if (std::string_view(iface.attribute("type").as_string()) == "hostdev") add_source(iface.child("source"));
    }
    return out;
}

namespace {

class DisabledInventory final : public DomainInventory {
public:
    std::set<std::string> running_vm_ids() override { refuse(); }
    std::map<PciAddress, std::string> host_devices_in_use() override { refuse(); }

private:
    [[noreturn]] static void refuse() { fail("libvirt look-ups are disabled (libvirt_uri = none)"); }
};

// The libvirt functions we use, resolved from libvirt.so.0 at run time. The
// types come from libvirt's own headers, so a mismatch fails to compile.
struct LibvirtApi {
    decltype(&virConnectOpenReadOnly) open_read_only = nullptr;
    decltype(&virConnectClose) close = nullptr;
    decltype(&virConnectListAllDomains) list_all_domains = nullptr;
    decltype(&virDomainGetUUIDString) get_uuid_string = nullptr;
    decltype(&virDomainGetXMLDesc) get_xml_desc = nullptr;
    decltype(&virDomainFree) free_domain = nullptr;
    decltype(&virGetLastErrorMessage) last_error = nullptr;
    decltype(&virSetErrorFunc) set_error_func = nullptr;

    static const LibvirtApi& load() {
        static const LibvirtApi api = [] {
            void* lib = ::dlopen("libvirt.so.0", RTLD_NOW | RTLD_LOCAL);
            if (!lib) fail("cannot load libvirt: ", ::dlerror());
            LibvirtApi a;
            const auto sym = [lib](auto& fn, const char* name) {
                fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(lib, name));
                if (!fn) fail("libvirt has no ", name);
            };
            sym(a.open_read_only, "virConnectOpenReadOnly");
            sym(a.close, "virConnectClose");
            sym(a.list_all_domains, "virConnectListAllDomains");
            sym(a.get_uuid_string, "virDomainGetUUIDString");
            sym(a.get_xml_desc, "virDomainGetXMLDesc");
            sym(a.free_domain, "virDomainFree");
            sym(a.last_error, "virGetLastErrorMessage");
            sym(a.set_error_func, "virSetErrorFunc");
            // libvirt prints every error to stderr by default; ours carry them.
            a.set_error_func(nullptr, [](void*, virErrorPtr) {});
            return a;
        }();
        return api;
    }
};

struct DomainFacts {
    std::string uuid;
    std::string xml;
};

// Asks libvirt for every active domain with its XML. Blocking; run it through
// `bounded` below.
std::vector<DomainFacts> query_active_domains(const std::string& uri, bool with_xml) {
    const auto& api = LibvirtApi::load();
    virConnectPtr conn = api.open_read_only(uri.c_str());
    if (!conn) fail("cannot connect to libvirt at ", uri, ": ", api.last_error());
    virDomainPtr* domains = nullptr;
    const int n = api.list_all_domains(conn, &domains, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    if (n < 0) {
        const std::string why = api.last_error();
        api.close(conn);
        fail("listing the domains of ", uri, ": ", why);
    }
    std::vector<DomainFacts> out;
    for (int i = 0; i < n; ++i) {
        DomainFacts facts;
        char uuid[VIR_UUID_STRING_BUFLEN] = {};
        if (api.get_uuid_string(domains[i], uuid) == 0) facts.uuid = to_lower(uuid);
        if (with_xml) {
            if (char* xml = api.get_xml_desc(domains[i], 0)) {
                facts.xml = xml;
                std::free(xml);
            }
        }
        api.free_domain(domains[i]);
        out.push_back(std::move(facts));
    }
    std::free(domains);
    api.close(conn);
    return out;
}

class LibvirtInventory final : public DomainInventory {
public:
    LibvirtInventory(std::string uri, std::chrono::milliseconds timeout) : uri_(std::move(uri)), timeout_(timeout) {}

    std::set<std::string> running_vm_ids() override {
        std::set<std::string> ids;
        for (const auto& d : bounded(false)) ids.insert(d.uuid);
        return ids;
    }

    std::map<PciAddress, std::string> host_devices_in_use() override {
        std::map<PciAddress, std::string> used;
        for (const auto& d : bounded(true)) {
            for (const auto& pci : host_devices_of_domain_xml(d.xml)) used.emplace(pci, d.uuid);
        }
        return used;
    }

private:
    // libvirt calls can block on a daemon that does not answer, and VDSM puts
    // no timeout on hooks: ask from a detached thread and stop waiting after
    // `timeout_`. The thread is abandoned; the hook exits soon after.
    std::vector<DomainFacts> bounded(bool with_xml) {
        auto promise = std::make_shared<std::promise<std::vector<DomainFacts>>>();
        auto future = promise->get_future();
        std::thread([promise, uri = uri_, with_xml] {
            try {
                promise->set_value(query_active_domains(uri, with_xml));
            } catch (...) {
                promise->set_exception(std::current_exception());
            }
        }).detach();
        if (future.wait_for(timeout_) != std::future_status::ready)
            fail("libvirt at ", uri_, " did not answer within ", seconds_text(timeout_.count()));
        return future.get();
    }

    std::string uri_;
    std::chrono::milliseconds timeout_;
};

}  // namespace

std::unique_ptr<DomainInventory> open_libvirt(const std::string& uri, std::chrono::milliseconds timeout) {
    if (uri == "none") return std::make_unique<DisabledInventory>();
    return std::make_unique<LibvirtInventory>(uri, timeout);
}

}  // namespace sriovpt
