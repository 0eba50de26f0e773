#include "runner.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

#include "domain_xml.hpp"
#include "error.hpp"
#include "fast_path.hpp"
#include "fd_io.hpp"
#include "log.hpp"
#include "text.hpp"
#include "vf_settings.hpp"

namespace sriovpt {

std::string read_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open ", path, ": ", std::strerror(errno));
    auto r = read_fd(fd, kNoReadLimit);
    ::close(fd);
    if (r.error) fail("cannot read ", path, ": ", std::strerror(r.error));
    return std::move(r.text);
}

DomainFile read_domain_file(const std::string& path) {
    if (auto early = take_early_domain_xml(path)) return {std::move(early->text), early->mode};
    // O_NONBLOCK: VDSM's file is a regular one; anything else (a FIFO) could
    // block the read for ever, or here the open.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) fail("cannot open ", path, ": ", std::strerror(errno));
    auto file = read_if_regular(fd, kNoReadLimit);
    ::close(fd);
    if (file.stat_error) fail("cannot read ", path, ": ", std::strerror(file.stat_error));
    if (!file.regular()) fail("the XML file ", printable(path), " is not a regular file");
    if (file.read.error) fail("cannot read ", path, ": ", std::strerror(file.read.error));
    return {std::move(file.read.text), file.st.st_mode};
}

void replace_file(const std::string& path, const std::string& text, mode_t mode) {
    // Beside the file, so the rename below stays within one file system. An
    // unpredictable name, created exclusively (mkostemp): VDSM's file is
    // usually in /tmp, where anyone could create a predictable name first
    // and make the hook fail.
    std::string temp = path + ".sriov-passthrough.XXXXXX";
    const int fd = ::mkostemp(temp.data(), O_CLOEXEC);
    if (fd < 0) fail("cannot write next to ", path, ": ", std::strerror(errno));
    // mkostemp makes it 0600; the next hook and VDSM read the file as it was.
    int err = ::fchmod(fd, mode & 07777) == 0 ? write_fd(fd, text) : errno;
    bool ok = err == 0;
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

// What an exception says to an operator. std::bad_alloc's own what() is
// "std::bad_alloc".
std::string message_of(const std::exception& e, const std::string& doing) {
    if (dynamic_cast<const std::bad_alloc*>(&e)) return cat("out of memory while ", doing);
    return e.what();
}

int run(HookPoint hp) {
    const auto name = std::string(hook_point_name(hp));
    const bool before = is_before_hook(hp);
    const int failed = failure_status(hp);
    Host host;
    HookOutcome outcome;
    std::string doing = "starting";  // for an out-of-memory message
    // Until the XML says otherwise, a failure is reported: without the XML
    // there is no telling whether the call concerns us.
    bool ours = true;
    try {
        const auto path = env_value("_hook_domxml");
        if (!path || path->empty()) fail("$_hook_domxml is not set: run by VDSM, or by 'sriov-passthrough run'");
        doing = cat("reading ", *path);
        const auto file = read_domain_file(*path);
        const auto& text = file.text;
        pugi::xml_document doc;
        XmlParse parsed;
        const bool empty = text.find_first_not_of(" \t\r\n") == std::string::npos;
        doing = cat("parsing the XML in ", *path, " (", text.size(), " bytes)");
        if (empty) {
            // VDSM hands some hooks no XML; those that need one say so.
            if (before) fail("the XML file ", *path, " is empty");
        } else if (parsed = parse_xml(doc, text); !parsed) {
            fail("the XML in ", *path, " ", parsed.error);
        }
        doing = cat("working on the XML in ", *path, " (", text.size(), " bytes)");
        const HookEnv env{env_value("vmId"), env_value, {}};
        ours = concerns_us(hp, doc, env);
        outcome = run_hook_point(hp, host, doc, env);
        if (outcome.xml_changed) {
            doing = cat("writing the XML back to ", *path);
            try {
                // libvirt (libxml2) and VDSM (Python's ElementTree) both read
                // entities declared in a DOCTYPE and expand them; pugixml keeps
                // a reference as its literal text, which would come out as
                // "&amp;name;". VDSM never writes a DOCTYPE, so refuse the
                // rewrite rather than change the document's meaning; a file
                // that is not rewritten keeps its entities.
                if (parsed.declares_entities)
                    fail("the XML in ", *path, " declares entities in its DOCTYPE (<!ENTITY>), which a rewrite would "
                         "turn into literal text; expand them first (xmllint --noent)");
                replace_file(*path, serialize_xml(doc), file.mode);
            } catch (...) {
                // Whatever failed (a full disk, std::bad_alloc from the
                // serialisation), the VFs just reserved go back.
                try {
                    // Resetting what the helper made on them.
                    for (const auto& line : undo_grants(host, outcome.grants))
                        report(Severity::error, name, line);
                } catch (const std::exception& undo_error) {
                    report(Severity::error, name,
                           cat("could not give back the VFs just reserved: ", message_of(undo_error, doing)));
                }
                throw;
            }
        }
    } catch (const Refusal& e) {
        report(Severity::error, name, e.what());
        return failed;
    } catch (const std::exception& e) {
        if (!ours) {
            // A VM with nothing of ours: whatever is wrong with our
            // configuration or state must not fail VDSM's operation on it.
            journal(Severity::warning, name,
                    cat("ignored for a VM without passthrough vNICs: ", message_of(e, doing)));
            return 0;
        }
        report(Severity::error, name, message_of(e, doing));
        return failed;
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
        return failure_status(hp);
    }
}

}  // namespace sriovpt
