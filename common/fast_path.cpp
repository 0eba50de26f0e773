#include "fast_path.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "fd_io.hpp"

namespace sriovpt {

bool asks_for_passthrough_value(const char* value) noexcept {
    return value && *value && std::strcmp(value, "false") != 0;
}

bool names_our_properties(std::string_view xml) noexcept {
    return xml.find(kPropPassthrough) != std::string_view::npos || xml.find(kPropFailover) != std::string_view::npos;
}

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
    struct stat st{};
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        try {
            const auto r = read_fd(fd, static_cast<size_t>(st.st_size));
            not_ours = !r.error && !r.too_long && !names_our_properties(r.text);
        } catch (const std::bad_alloc&) {
        }
    }
    ::close(fd);
    return not_ours;
}

}  // namespace sriovpt
