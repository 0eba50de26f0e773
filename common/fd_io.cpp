#include "fd_io.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace sriovpt {

ReadResult read_fd(int fd, std::size_t limit) {
    ReadResult out;
    // One allocation of the right size for a regular file: growing by
    // doubling would, for a large file, hold up to twice its size.
    if (struct stat st{}; ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        out.text.reserve(std::min(static_cast<std::size_t>(st.st_size), limit));
    char buf[65536];
    for (;;) {
        // One byte past the limit tells a file of exactly `limit` bytes from a longer one.
        const std::size_t want = std::min(sizeof buf, limit + 1 - out.text.size());
        const ssize_t n = ::read(fd, buf, want);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            out.error = errno;
            return out;
        }
        if (n == 0) return out;
        out.text.append(buf, static_cast<std::size_t>(n));
        if (out.text.size() > limit) {
            out.text.resize(limit);
            out.too_long = true;
            return out;
        }
    }
}

int write_fd(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno;
        if (n == 0) return EIO;
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return 0;
}

}  // namespace sriovpt
