#include "fd_io.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace sriovpt {

ReadResult read_fd(int fd, std::size_t limit, const struct stat* known) {
    ReadResult out;
    struct stat st{};
    if (!known && ::fstat(fd, &st) == 0) known = &st;
    // A regular file's size says how much to read: all of it in one read,
    // straight into the string, and no read to meet the end. (A file that
    // grows meanwhile is read as it was when asked.)
    if (known && S_ISREG(known->st_mode) && known->st_size > 0 && static_cast<std::size_t>(known->st_size) <= limit) {
        const auto size = static_cast<std::size_t>(known->st_size);
        out.text.resize(size);
        std::size_t got = 0;
        while (got < size) {
            const ssize_t n = ::read(fd, out.text.data() + got, size - got);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) out.error = errno;
            if (n <= 0) break;
            got += static_cast<std::size_t>(n);
        }
        out.text.resize(got);
        return out;
    }
    // The size is unknown (/proc says 0) or over the limit: to the end, or to
    // one byte past the limit, which tells a file of exactly `limit` bytes
    // from a longer one.
    for (;;) {
        const std::size_t had = out.text.size();
        const std::size_t want = std::min<std::size_t>(65536, limit + 1 - had);
        out.text.resize(had + want);
        const ssize_t n = ::read(fd, out.text.data() + had, want);
        out.text.resize(had + static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            out.error = errno;
            return out;
        }
        if (n == 0) return out;
        if (out.text.size() > limit) {
            out.text.resize(limit);
            out.too_long = true;
            return out;
        }
    }
}

RegularFileRead read_if_regular(int fd, std::size_t limit) {
    RegularFileRead out;
    if (::fstat(fd, &out.st) != 0) out.stat_error = errno;
    if (out.regular()) out.read = read_fd(fd, limit, &out.st);
    return out;
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
