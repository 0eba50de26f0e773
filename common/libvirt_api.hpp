// libvirt, loaded with dlopen() on first use. The hooks do not link it: a
// program linked against libvirt starts many times slower than one that is
// not, and most hook runs never need it (see domains.hpp, attacher.hpp).
#pragma once

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>

#include "error.hpp"
#include "text.hpp"

namespace sriovpt {

// The libvirt functions we use. The types come from libvirt's own headers,
// so a mismatch fails to compile.
struct LibvirtApi {
    decltype(&virConnectOpen) open = nullptr;
    decltype(&virConnectOpenReadOnly) open_read_only = nullptr;
    decltype(&virConnectClose) close = nullptr;
    decltype(&virConnectListAllDomains) list_all_domains = nullptr;
    decltype(&virDomainLookupByUUIDString) lookup_by_uuid = nullptr;
    decltype(&virDomainGetUUIDString) get_uuid_string = nullptr;
    decltype(&virDomainGetXMLDesc) get_xml_desc = nullptr;
    decltype(&virDomainAttachDeviceFlags) attach_device_flags = nullptr;
    decltype(&virDomainFree) free_domain = nullptr;
    decltype(&virGetLastErrorMessage) last_error = nullptr;
};

// Loads libvirt.so.0 once per process (and silences libvirt's own printing
// of errors to stderr: ours carry them). Throws Error if it cannot.
const LibvirtApi& libvirt_api();

// A connection to libvirt at `uri`, read-only unless `writable`, closed with
// the object. Throws Error ("cannot connect to libvirt at <uri>: <why>").
class LibvirtConnection {
public:
    LibvirtConnection(const std::string& uri, bool writable);
    ~LibvirtConnection();
    LibvirtConnection(const LibvirtConnection&) = delete;
    LibvirtConnection& operator=(const LibvirtConnection&) = delete;

    virConnectPtr get() const { return conn_; }

    struct DomainFree {
        void operator()(virDomainPtr domain) const { libvirt_api().free_domain(domain); }
    };
    using Domain = std::unique_ptr<virDomain, DomainFree>;
    // The domain of UUID `vm_id`; throws Error ("libvirt at <uri> has no
    // domain <vm_id>: <why>").
    Domain domain(const std::string& vm_id) const;

private:
    std::string uri_;
    virConnectPtr conn_ = nullptr;
};

// Runs `work` and waits for it at most `timeout`; past that, throws
// Timeout("<what> did not answer within N s"). libvirt calls can block on a
// daemon that does not answer, and VDSM puts no timeout on hooks: the work
// runs on a detached thread that is abandoned on time-out (the hook exits
// soon after).
template <typename Timeout = Error, typename F>
auto run_bounded(F work, std::chrono::milliseconds timeout, const std::string& what) -> decltype(work()) {
    using Result = decltype(work());
    auto promise = std::make_shared<std::promise<Result>>();
    auto future = promise->get_future();
    std::thread worker([promise, work = std::move(work)]() mutable {
        try {
            if constexpr (std::is_void_v<Result>) {
                work();
                promise->set_value();
            } else {
                promise->set_value(work());
            }
        } catch (...) {
            promise->set_exception(std::current_exception());
        }
    });
    if (future.wait_for(timeout) != std::future_status::ready) {
        worker.detach();
        throw Timeout(cat(what, " did not answer within ", seconds_text(timeout.count())));
    }
    // It answered: let the thread end before going on, so that what libvirt
    // and the TLS libraries under it keep per thread is freed, not found
    // still allocated at exit (LeakSanitizer did, under load).
    worker.join();
    return future.get();
}

}  // namespace sriovpt
