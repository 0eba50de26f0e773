#include "runner.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "domain_xml.hpp"
#include "error.hpp"
#include "log.hpp"

namespace sriovpt {

std::string read_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open ", path, ": ", std::strerror(errno));
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    const int err = errno;
    ::close(fd);
    if (n < 0) fail("cannot read ", path, ": ", std::strerror(err));
    return out;
}

void replace_file(const std::string& path, const std::string& text) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) fail("cannot stat ", path, ": ", std::strerror(errno));
    const auto temp = path + ".sriov-passthrough." + std::to_string(::getpid());
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, st.st_mode & 07777);
    if (fd < 0) fail("cannot write next to ", path, ": ", std::strerror(errno));
    std::string_view rest = text;
    bool ok = true;
    while (ok && !rest.empty()) {
        const ssize_t n = ::write(fd, rest.data(), rest.size());
        if (n < 0 && errno == EINTR) continue;
        ok = n > 0;
        if (ok) rest.remove_prefix(static_cast<size_t>(n));
    }
    int err = errno;
    if (::close(fd) != 0 && ok) {
        ok = false;
        err = errno;
    }
    // rename(2): VDSM reads the file back by name, and sees either the old
    // XML or the new one, never a mix.
    if (ok && ::rename(temp.c_str(), path.c_str()) != 0) {
        ok = false;
        err = errno;
    }
    if (!ok) {
        ::unlink(temp.c_str());
        fail("cannot write ", path, ": ", std::strerror(err));
    }
}

namespace {

std::optional<std::string> env_value(std::string_view name) {
    const char* value = std::getenv(std::string(name).c_str());
    if (!value) return std::nullopt;
    return std::string(value);
}

int run(HookPoint hp) {
    const auto name = std::string(hook_point_name(hp));
    const bool before = is_before_hook(hp);
    Host host;
    HookOutcome outcome;
    try {
        const auto path = env_value("_hook_domxml");
        if (!path || path->empty()) fail("$_hook_domxml is not set: run by VDSM, or by 'sriov-passthrough run'");
        const auto text = read_file(*path);
        pugi::xml_document doc;
        const bool empty = text.find_first_not_of(" \t\r\n") == std::string::npos;
        if (empty) {
            // VDSM hands some hooks no XML; those that need one say so.
            if (before) fail("the XML file ", *path, " is empty");
        } else if (const auto parsed = parse_xml(doc, text); !parsed) {
            fail("the XML in ", *path, " is malformed at byte ", parsed.offset, ": ", parsed.description());
        }
        outcome = run_hook_point(hp, host, doc, HookEnv{env_value("vmId"), env_value, {}});
        if (outcome.xml_changed) {
            try {
                replace_file(*path, serialize_xml(doc));
            } catch (const Error&) {
                try {
                    Allocator(host).undo(outcome.grants);
                } catch (const Error& undo_error) {
                    report(Severity::error, name, cat("could not give back the VFs just reserved: ", undo_error.what()));
                }
                throw;
            }
        }
    } catch (const std::exception& e) {
        report(Severity::error, name, e.what());
        return before ? 2 : 1;
    }
    for (const auto& note : outcome.notes) report(Severity::info, name, note);
    return 0;
}

}  // namespace

int run_hook_main(HookPoint hp) {
    try {
        return run(hp);
    } catch (...) {
        // Reporting itself failed; still honour VDSM's exit codes.
        return is_before_hook(hp) ? 2 : 1;
    }
}

}  // namespace sriovpt
