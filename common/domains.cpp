#include "domains.hpp"

#include <pugixml.hpp>

#include "domain_xml.hpp"
#include "error.hpp"
#include "libvirt_api.hpp"
#include "text.hpp"

namespace sriovpt {

std::set<PciAddress> host_devices_of_domain_xml(const std::string& xml) {
    std::set<PciAddress> out;
    pugi::xml_document doc;
    if (!doc.load_string(xml.c_str())) return out;
    for (const auto& [pci, transient] : host_pci_devices(doc.child("domain"))) out.insert(pci);
    return out;
}

namespace {

class DisabledInventory final : public DomainInventory {
public:
    std::set<std::string> running_vm_ids() override { refuse(); }
    std::map<PciAddress, std::string> host_devices_in_use() override { refuse(); }
    std::string domain_xml(const std::string&) override { refuse(); }

private:
    [[noreturn]] static void refuse() { fail("libvirt look-ups are disabled (libvirt_uri = none)"); }
};

struct DomainFacts {
    std::string uuid;
    std::string xml;
};

// Asks libvirt for every active domain with its XML. Blocking; run it through
// `bounded` below.
std::vector<DomainFacts> query_active_domains(const std::string& uri, bool with_xml) {
    const auto& api = libvirt_api();
    const LibvirtConnection conn(uri, false);
    virDomainPtr* domains = nullptr;
    const int n = api.list_all_domains(conn.get(), &domains, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    if (n < 0) fail("listing the domains of ", uri, ": ", api.last_error());
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
    return out;
}

// Asks libvirt for one domain's live XML. Blocking, as above.
std::string query_domain_xml(const std::string& uri, const std::string& vm_id) {
    const auto& api = libvirt_api();
    const LibvirtConnection conn(uri, false);
    const auto domain = conn.domain(vm_id);
    char* xml = api.get_xml_desc(domain.get(), 0);
    if (!xml) fail("reading the XML of domain ", vm_id, " from libvirt at ", uri, ": ", api.last_error());
    std::string out = xml;
    std::free(xml);
    if (out.empty()) fail("reading the XML of domain ", vm_id, " from libvirt at ", uri, ": it is empty");
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

    std::string domain_xml(const std::string& vm_id) override {
        return run_bounded([uri = uri_, vm_id] { return query_domain_xml(uri, vm_id); }, timeout_,
                           cat("libvirt at ", uri_));
    }

private:
    std::vector<DomainFacts> bounded(bool with_xml) {
        return run_bounded([uri = uri_, with_xml] { return query_active_domains(uri, with_xml); }, timeout_,
                           cat("libvirt at ", uri_));
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
