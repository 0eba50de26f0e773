#include "fast_path.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace sriovpt {

namespace {

// The whole file, in a buffer from malloc (the caller frees it); null when it
// cannot be read.
char* read_all(const char* path, size_t& size) noexcept {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return nullptr;
    struct stat st{};
    char* buf = nullptr;
    size = 0;
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        const size_t capacity = static_cast<size_t>(st.st_size);
        buf = static_cast<char*>(std::malloc(capacity + 1));
        while (buf && size < capacity) {
            const ssize_t n = ::read(fd, buf + size, capacity - size);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            size += static_cast<size_t>(n);
        }
        if (buf && size != capacity) {  // changed under us: let the full hook read it
            std::free(buf);
            buf = nullptr;
        }
    }
    ::close(fd);
    return buf;
}

}  // namespace

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
    size_t size = 0;
    char* text = read_all(path, size);
    if (!text) return false;
    const bool ours = names_our_properties(std::string_view(text, size));
    std::free(text);
    return !ours;
}

}  // namespace sriovpt
