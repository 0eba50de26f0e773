// Reading a file descriptor to its end and writing a buffer in full: the
// loops every file of ours needs (EINTR retried, short reads and writes
// continued), in one place.
#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace sriovpt {

// No limit but memory (the domain XML VDSM hands us).
inline constexpr std::size_t kNoReadLimit = static_cast<std::size_t>(-1) / 2;

struct ReadResult {
    std::string text;
    int error = 0;           // errno of a failed read, else 0
    bool too_long = false;   // the file has more than `limit` bytes; `text` holds the first `limit`
};

// Reads `fd` to its end, at most `limit` bytes; `known` is the caller's
// fstat of it, when it has one. The caller decides what a non-regular file
// may be (a FIFO must not be read at all: it may block).
ReadResult read_fd(int fd, std::size_t limit, const struct stat* known = nullptr);

// `fd` read to its end (at most `limit` bytes) when fstat says it is a regular
// file; anything else (a FIFO, which could block) is left unread. The caller
// says what else is wrong, in its own words.
struct RegularFileRead {
    struct stat st {};
    int stat_error = 0;  // errno of a failed fstat, else 0
    ReadResult read;     // empty unless regular()
    bool regular() const { return stat_error == 0 && S_ISREG(st.st_mode); }
};
RegularFileRead read_if_regular(int fd, std::size_t limit);

// Writes all of `data` to `fd`. Returns 0, or the errno of the failure (EIO
// when the file takes no more bytes without saying why).
int write_fd(int fd, std::string_view data);

}  // namespace sriovpt
