// common/fd_io: reading to the end within a limit, writing in full.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include <gtest/gtest.h>

#include "fd_io.hpp"

namespace sriovpt {
namespace {

// An open, unlinked file holding `text`, positioned at its start.
int file_with(const std::string& text) {
    char path[] = "/tmp/fd_io_test.XXXXXX";
    const int fd = ::mkstemp(path);
    EXPECT_GE(fd, 0);
    ::unlink(path);
    EXPECT_EQ(write_fd(fd, text), 0);
    EXPECT_EQ(::lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

TEST(FdIo, ReadsToTheEndWithinTheLimit) {
    for (const size_t size : {0u, 1u, 4095u, 4096u, 65535u, 65536u, 65537u}) {
        const std::string text(size, 'x');
        const int fd = file_with(text);
        const auto r = read_fd(fd, 65537);
        ::close(fd);
        EXPECT_EQ(r.error, 0);
        EXPECT_FALSE(r.too_long) << size;
        EXPECT_EQ(r.text, text);
    }
}

TEST(FdIo, SaysWhenTheFileIsLongerThanTheLimit) {
    const int exact = file_with("12345");
    const auto at_limit = read_fd(exact, 5);
    ::close(exact);
    EXPECT_FALSE(at_limit.too_long);
    EXPECT_EQ(at_limit.text, "12345");

    const int longer = file_with("123456");
    const auto over = read_fd(longer, 5);
    ::close(longer);
    EXPECT_TRUE(over.too_long);
    EXPECT_EQ(over.text, "12345");
}

TEST(FdIo, ReportsTheErrnoOfAFailedReadOrWrite) {
    const int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(read_fd(fd, 10).error, EBADF);   // not open for reading
    ::close(fd);
    const int ro = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(ro, 0);
    EXPECT_EQ(write_fd(ro, "x"), EBADF);
    ::close(ro);
}

TEST(FdIo, WritesLargeBuffersInFull) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    ::fcntl(fds[1], F_SETPIPE_SZ, 4096);
    // More than the pipe holds: write_fd must continue after short writes
    // while a reader drains the other end.
    const std::string text(1 << 20, 'y');
    std::string got;
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::close(fds[0]);
        ::_exit(write_fd(fds[1], text) == 0 ? 0 : 1);
    }
    ::close(fds[1]);
    const auto r = read_fd(fds[0], text.size());
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT_EQ(r.text.size(), text.size());
    EXPECT_FALSE(r.too_long);
}

// Only a regular file is read: a pipe (a FIFO's kind) is left unread, and
// never blocks the reader; a failed fstat is said.
TEST(FdIo, ReadsOnlyARegularFile) {
    const int fd = file_with("content");
    const auto file = read_if_regular(fd, 64);
    ::close(fd);
    EXPECT_TRUE(file.regular());
    EXPECT_EQ(file.read.text, "content");
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const auto pipe = read_if_regular(fds[0], 64);  // no writer wrote: a read would block
    ::close(fds[0]);
    ::close(fds[1]);
    EXPECT_FALSE(pipe.regular());
    EXPECT_EQ(pipe.stat_error, 0);
    EXPECT_TRUE(pipe.read.text.empty());
    const auto closed = read_if_regular(-1, 64);
    EXPECT_EQ(closed.stat_error, EBADF);
    EXPECT_FALSE(closed.regular());
}

}  // namespace
}  // namespace sriovpt
