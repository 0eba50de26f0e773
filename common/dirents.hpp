// Reading the names of a directory with getdents64(2) straight into a
// buffer: a start lists index directories, a status scan a net/ directory of
// each of thousands of VFs, and readdir's DIR (an fcntl, an allocation) and
// a string for each name would cost more than the listing.
#pragma once

#include <dirent.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <string_view>

namespace sriovpt {

// Calls `each` with every name in the directory open at `fd` (freshly
// opened: at its start), but "." and "..". False when it cannot be read.
template <typename F>
bool for_each_name(int fd, F each) {
    // The kernel fills the buffer until the next entry does not fit or the
    // directory ends: a call that left room for the longest entry there can
    // be (a 255-byte name) reached the end, and the call that would return 0
    // is saved.
    constexpr long kLongestEntry = static_cast<long>((offsetof(dirent64, d_name) + 256 + 7) / 8 * 8);
    alignas(8) char buf[16384];
    long n;
    while ((n = ::syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long pos = 0; pos < n;) {
            const auto* entry = reinterpret_cast<const dirent64*>(buf + pos);
            const std::string_view name = entry->d_name;
            if (name != "." && name != "..") each(name);
            pos += entry->d_reclen;
        }
        if (n + kLongestEntry <= static_cast<long>(sizeof buf)) return true;
    }
    return n == 0;
}

}  // namespace sriovpt
