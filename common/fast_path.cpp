#include "fast_path.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <utility>

#include "fd_io.hpp"

namespace sriovpt {

bool asks_for_passthrough_value(const char* value) noexcept {
    return value && *value && std::strcmp(value, "false") != 0;
}

bool names_our_properties(std::string_view xml) noexcept {
    return xml.find(kPropPassthrough) != std::string_view::npos || xml.find(kPropFailover) != std::string_view::npos;
}

namespace {
// What plainly_not_ours() read of a file it could not wave through: a
// pointer, set before any C++ static initialisation, that none undoes.
EarlyDomainXml* early_xml = nullptr;
}  // namespace

bool plainly_not_ours(HookPoint hp) noexcept {
    if (!is_before_hook(hp)) return false;
    if (hp == HookPoint::before_nic_hotplug)
        return !asks_for_passthrough_value(std::getenv(kPropPassthrough)) &&
               !asks_for_passthrough_value(std::getenv(kPropFailover));
    const char* path = std::getenv("_hook_domxml");
    if (!path || !*path) return false;
    // Whenever the file cannot be read here, the full hook reads it and says why.
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return false;
    bool not_ours = false;
    try {
        auto file = read_if_regular(fd, kNoReadLimit);
        auto& r = file.read;
        if (file.regular() && !r.error) {
            not_ours = !names_our_properties(r.text);
            if (!not_ours) early_xml = new EarlyDomainXml{path, std::move(r.text), file.st.st_mode};
        }
    } catch (const std::bad_alloc&) {
    }
    ::close(fd);
    return not_ours;
}

std::optional<EarlyDomainXml> take_early_domain_xml(const std::string& path) {
    std::unique_ptr<EarlyDomainXml> early(std::exchange(early_xml, nullptr));
    if (!early || early->path != path) return std::nullopt;
    return std::move(*early);
}

}  // namespace sriovpt
