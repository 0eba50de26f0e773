#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>

#include "commands.hpp"
#include "domain_xml.hpp"
#include "error.hpp"
#include "fd_io.hpp"
#include "hooks.hpp"
#include "log.hpp"
#include "runner.hpp"
#include "text.hpp"

extern char** environ;

namespace sriovpt::cli {

namespace {

// <prefix>/libexec/vdsm/hooks, found from <prefix>/bin/sriov-passthrough.
// The build tree has the same layout.
std::string default_hooks_dir() {
    char self[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) fail("cannot find this program's location: ", std::strerror(errno));
    std::string path(self, static_cast<size_t>(n));
    path = path.substr(0, path.rfind('/'));        // .../bin
    path = path.substr(0, path.rfind('/'));        // ...
    return path + "/" + SRIOVPT_HOOKS_SUBDIR;
}

std::string vm_id_from_xml(const std::string& text) {
    pugi::xml_document doc;
    if (!parse_xml(doc, text)) return {};
    return doc.child("domain").child("uuid").text().as_string();
}

// Where -o goes, opened before the hook runs: a hook that reserves VFs and
// then has nowhere to put its XML would leave them held for a VM that never
// gets them.
class OutputFile {
public:
    explicit OutputFile(const std::string& path) : path_(path) {
        fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        created_ = fd_ >= 0;
        if (fd_ < 0 && errno == EEXIST) fd_ = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd_ < 0) fail("cannot write ", path, ": ", std::strerror(errno));
    }
    // A file made for this run and never written to is removed again.
    ~OutputFile() {
        if (fd_ >= 0) ::close(fd_);
        if (created_ && !written_) ::unlink(path_.c_str());
    }
    OutputFile(const OutputFile&) = delete;
    OutputFile& operator=(const OutputFile&) = delete;

    // Replaces the content (of a regular file; a device such as /dev/stdout
    // is written to). Returns 0 or the errno of the failure.
    int write(const std::string& text) {
        written_ = true;
        struct stat st{};
        if (::fstat(fd_, &st) != 0) return errno;
        if (S_ISREG(st.st_mode) && ::ftruncate(fd_, 0) != 0) return errno;
        if (const int err = write_fd(fd_, text)) return err;
        const int fd = fd_;
        fd_ = -1;
        return ::close(fd) == 0 ? 0 : errno;
    }

private:
    std::string path_;
    int fd_ = -1;
    bool created_ = false;
    bool written_ = false;
};

}  // namespace

int run_hook_command(const RunOptions& o) {
    const auto hp = hook_point_from_name(o.hook_point);
    if (o.hook_point == "before_device_create")
        fail("no hook of ours runs at before_device_create: VDSM hands each device back unchanged, and "
             "before_vm_start passes the whole VM's vNICs through");
    if (!hp) fail("unknown hook point ", quoted(o.hook_point));
    const auto hook = (o.hooks_dir ? *o.hooks_dir : default_hooks_dir()) + "/" + o.hook_point + "/50_sriov_passthrough";
    if (::access(hook.c_str(), X_OK) != 0) fail("hook ", hook, " is not installed: ", std::strerror(errno));
    const auto input = o.domxml.empty() ? std::string() : read_file(o.domxml);
    std::optional<OutputFile> output;
    if (o.output) output.emplace(*o.output);

    // VDSM's way: a temporary file the hook rewrites by name.
    char temp[] = "/tmp/sriov-passthrough-run-XXXXXX";
    const int fd = ::mkstemp(temp);
    if (fd < 0) fail("cannot create a temporary file: ", std::strerror(errno));
    const int write_error = write_fd(fd, input);
    ::close(fd);
    struct Cleanup {
        const char* path;
        ~Cleanup() { ::unlink(path); }
    } cleanup{temp};
    if (write_error) fail("cannot write ", temp, ": ", std::strerror(write_error));

    const std::string vm_id = o.vm_id ? *o.vm_id : vm_id_from_xml(input);
    std::cerr << "running " << hook << "\n  _hook_domxml=" << temp << " (a copy of " << printable(o.domxml, kMaxLineBytes)
              << ")\n";
    if (!vm_id.empty()) std::cerr << "  vmId=" << printable(vm_id) << (o.vm_id ? "" : " (from <uuid>)") << "\n";
    for (const auto& [name, value] : o.props) std::cerr << "  " << printable(name) << "=" << printable(value) << "\n";

    const pid_t pid = ::fork();
    if (pid < 0) fail("fork: ", std::strerror(errno));
    if (pid == 0) {
        ::setenv("_hook_domxml", temp, 1);
        if (!vm_id.empty()) ::setenv("vmId", vm_id.c_str(), 1);
        for (const auto& [name, value] : o.props) ::setenv(name.c_str(), value.c_str(), 1);
        ::execl(hook.c_str(), hook.c_str(), static_cast<char*>(nullptr));
        std::fprintf(stderr, "sriov-passthrough: cannot run %s: %s\n", hook.c_str(), std::strerror(errno));
        ::_exit(127);
    }
    int wstatus = 0;
    while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    const int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    const auto result = read_file(temp);
    std::cerr << "exit status " << code
              << (code == 0 ? " (success)" : code == 1 ? " (failed; VDSM logs it and goes on)"
                                                       : " (failed; VDSM refuses the operation)")
              << "\n"
              << (result == input ? "the XML is unchanged" : "the XML was rewritten") << "\n";
    if (output) {
        if (const int err = output->write(result)) {
            // The hook may hold VFs for this XML: it must not be lost.
            std::cout << result << std::flush;
            std::cerr << "sriov-passthrough: cannot write " << printable(*o.output, kMaxLineBytes) << ": "
                      << std::strerror(err) << "; the resulting XML is on standard output instead\n";
            return code == 0 ? 1 : code;
        }
    } else if (result != input) {
        std::cout << result;
    }
    return code;
}

}  // namespace sriovpt::cli
