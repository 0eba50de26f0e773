#include "reservations.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <thread>

#include "error.hpp"
#include "text.hpp"

namespace sriovpt {

namespace {

constexpr std::string_view kMagic = "sriov-passthrough-reservation";
constexpr std::string_view kRecordPrefix = "vf-";
constexpr std::string_view kTempPrefix = ".tmp-";
// Records and the lock: the owner (vdsm) reads and writes, the group (kvm) reads.
constexpr mode_t kFileMode = 0640;
constexpr mode_t kDirMode = 0750;
// No record is this large; a runaway file is not read further.
constexpr size_t kMaxRecordBytes = 65536;
// Opening never blocks (a FIFO would, until a writer came), never follows a
// symlink, never makes a terminal ours.
constexpr int kOpenFlags = O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;

std::string errno_text() { return std::strerror(errno); }

std::string file_kind(mode_t mode) {
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISLNK(mode)) return "a symbolic link";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    return "not a regular file";
}

std::string mode_text(mode_t mode) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
    return buf;
}

// "vdsm:kvm (36:36)", or "36:36" when the names are unknown.
std::string owner_text(uid_t uid, gid_t gid) {
    const passwd* pw = ::getpwuid(uid);
    std::string user = pw ? pw->pw_name : "";
    const group* gr = ::getgrgid(gid);
    std::string grp = gr ? gr->gr_name : "";
    const auto ids = cat(uid, ':', gid);
    if (user.empty() && grp.empty()) return ids;
    return cat(user.empty() ? std::to_string(uid) : user, ':', grp.empty() ? std::to_string(gid) : grp, " (", ids, ")");
}

// A record file's content, or why it cannot be had. `vanished`: it was
// removed while we looked (released under the lock of another process).
struct RecordFile {
    std::optional<std::string> text;
    std::string problem;
    bool vanished = false;
};

RecordFile read_record_file(int dir_fd, const std::string& name) {
    RecordFile out;
    struct stat st{};
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        out.vanished = errno == ENOENT;
        out.problem = cat("cannot be read: ", errno_text());
        return out;
    }
    if (!S_ISREG(st.st_mode)) {
        out.problem = cat("is ", file_kind(st.st_mode), ", not a regular file (never opened)");
        return out;
    }
    const int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | kOpenFlags);
    if (fd < 0) {
        out.vanished = errno == ENOENT;
        out.problem = cat("cannot be read: ", errno_text());
        if (errno == EACCES)
            out.problem += cat(" (it belongs to ", owner_text(st.st_uid, st.st_gid), ", mode ", mode_text(st.st_mode),
                               "; the hooks must be able to read it)");
        return out;
    }
    // The name may have been replaced since fstatat.
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        out.problem = cat("is ", file_kind(st.st_mode), ", not a regular file (never read)");
        return out;
    }
    std::string text;
    char buf[1024];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) != 0) {
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        text.append(buf, static_cast<size_t>(n));
        if (text.size() > kMaxRecordBytes) break;
    }
    const int read_errno = errno;
    ::close(fd);
    if (n < 0) {
        errno = read_errno;
        out.problem = cat("cannot be read: ", errno_text());
        return out;
    }
    out.text = std::move(text);
    return out;
}

bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

// --- Values of version 2 -------------------------------------------------------

bool is_hex_digit(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f'); }
unsigned hex_value(char c) {
    if (c >= '0' && c <= '9') return static_cast<unsigned>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<unsigned>(c - 'a' + 10);
    return static_cast<unsigned>(c - 'A' + 10);
}

std::string encode_v2(std::string_view value) {
    if (value.empty()) return "-";
    if (value == "-") return "%2D";
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (const char c : value) {
        const auto b = static_cast<unsigned char>(c);
        if (b > 0x20 && b < 0x7f && c != '%') {
            out += c;
        } else {
            out += '%';
            out += kHex[b >> 4];
            out += kHex[b & 0xf];
        }
    }
    return out;
}

std::string decode_v2(std::string_view key, std::string_view text) {
    if (text == "-") return {};
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        const auto b = static_cast<unsigned char>(c);
        if (c == '%') {
            if (i + 2 >= text.size() || !is_hex_digit(text[i + 1]) || !is_hex_digit(text[i + 2]))
                fail("'", std::string(key), "' has a '%' not followed by two hex digits");
            out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
            i += 2;
        } else if (b <= 0x20 || b >= 0x7f) {
            fail("'", std::string(key), "' has a byte 0x", std::string{"0123456789abcdef"[b >> 4], "0123456789abcdef"[b & 0xf]},
                 " that version 2 writes as %XX");
        } else {
            out += c;
        }
    }
    return out;
}

// Whether version 1 writes `value` so that it reads back the same: one line,
// and, where "-" means empty, not "-" itself; where it does not, not empty.
bool fits_v1(std::string_view value, bool dash_is_empty) {
    if (value.find('\n') != std::string_view::npos) return false;
    return dash_is_empty ? value != "-" : !value.empty();
}

}  // namespace

std::string format_record(const Reservation& r) {
    const bool v1 = fits_v1(r.pf, false) && fits_v1(r.vm_id, false) && fits_v1(r.mac, false) &&
                    fits_v1(r.network, true) && fits_v1(r.boot_id, true) && fits_v1(r.origin, true);
    const bool v3 = !r.vf_settings.empty() || r.reset_pending;
    if (v3) {
        return cat(kMagic, " 3\n",
                   "pci ", r.pci.to_string(), '\n',
                   "pf ", encode_v2(r.pf), '\n',
                   "vf_index ", r.vf_index, '\n',
                   "vm_id ", encode_v2(r.vm_id), '\n',
                   "mac ", encode_v2(r.mac), '\n',
                   "network ", encode_v2(r.network), '\n',
                   "vlan ", r.vlan ? std::to_string(*r.vlan) : "-", '\n',
                   "boot_id ", encode_v2(r.boot_id), '\n',
                   "created ", std::to_string(r.created), '\n',
                   "origin ", encode_v2(r.origin), '\n',
                   "vf_settings ", format_vf_settings(r.vf_settings), '\n',
                   "vf_reset ", r.reset_pending ? "pending" : "-", '\n',
                   "end\n");
    }
    const auto text = [v1](const std::string& value) {
        if (!v1) return encode_v2(value);
        return value.empty() ? std::string("-") : value;
    };
    return cat(kMagic, ' ', v1 ? 1 : 2, '\n',
               "pci ", r.pci.to_string(), '\n',
               "pf ", v1 ? r.pf : encode_v2(r.pf), '\n',
               "vf_index ", r.vf_index, '\n',
               "vm_id ", v1 ? r.vm_id : encode_v2(r.vm_id), '\n',
               "mac ", v1 ? r.mac : encode_v2(r.mac), '\n',
               "network ", text(r.network), '\n',
               "vlan ", r.vlan ? std::to_string(*r.vlan) : "-", '\n',
               "boot_id ", text(r.boot_id), '\n',
               "created ", std::to_string(r.created), '\n',
               "origin ", text(r.origin), '\n',
               "end\n");
}

Reservation parse_record(std::string_view text) {
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        const auto nl = text.find('\n');
        if (nl == std::string_view::npos) fail("truncated: the last line has no newline");
        lines.push_back(text.substr(0, nl));
        text.remove_prefix(nl + 1);
    }
    if (lines.empty()) fail("empty record");
    const auto header = lines.front();
    if (header.substr(0, kMagic.size()) != kMagic || header.size() <= kMagic.size() + 1 ||
        header[kMagic.size()] != ' ')
        fail("not a reservation record (first line is not '", kMagic, " <version>')");
    const auto version_text = header.substr(kMagic.size() + 1);
    int version = 0;
    if (version_text == "1") version = 1;
    if (version_text == "2") version = 2;
    if (version_text == "3") version = 3;
    if (!version) {
        // Shown bounded: the line can be anything.
        const bool long_text = version_text.size() > 16;
        std::string shown;
        for (const char c : version_text.substr(0, 16)) shown += (c > 0x20 && c < 0x7f) ? c : '?';
        fail("unknown record version ", shown, long_text ? "..." : "", " (this version reads versions 1 to 3)");
    }
    if (lines.back() != "end") fail("truncated: no 'end' line");

    std::map<std::string, std::string, std::less<>> fields;
    for (size_t i = 1; i + 1 < lines.size(); ++i) {
        const auto line = lines[i];
        const auto space = line.find(' ');
        if (space == std::string_view::npos || space == 0 || space + 1 >= line.size())
            fail("line ", i + 1, " is not 'key value'");
        const std::string key(line.substr(0, space));
        if (!fields.emplace(key, std::string(line.substr(space + 1))).second)
            fail("line ", i + 1, ": '", key, "' appears twice");
    }
    const auto take = [&](std::string_view key) -> std::string {
        const auto it = fields.find(key);
        if (it == fields.end()) fail("'", std::string(key), "' is missing");
        std::string value = it->second;
        fields.erase(it);
        return value;
    };
    // A name, a VM id, a MAC: raw in version 1 ("-" for empty where allowed),
    // encoded in version 2.
    const auto text_field = [&](std::string_view key, bool dash_is_empty) {
        auto value = take(key);
        if (version >= 2) return decode_v2(key, value);
        return dash_is_empty && value == "-" ? std::string() : value;
    };

    Reservation r;
    const auto pci_text = take("pci");
    const auto pci = PciAddress::parse(pci_text);
    if (!pci) fail("pci '", pci_text, "' is not a PCI address");
    r.pci = *pci;
    r.pf = text_field("pf", false);
    const auto index = parse_decimal(take("vf_index"));
    if (!index || *index > 65535) fail("vf_index is not a number");
    r.vf_index = static_cast<unsigned>(*index);
    const auto vm = normalize_uuid(text_field("vm_id", false));
    if (!vm) fail("vm_id is not a UUID");
    r.vm_id = *vm;
    const auto mac = normalize_mac(text_field("mac", false));
    if (!mac) fail("mac is not a MAC address");
    r.mac = *mac;
    r.network = text_field("network", true);
    const auto vlan = take("vlan");
    if (vlan != "-") {
        const auto n = parse_decimal(vlan);
        if (!n || *n < 1 || *n > 4094) fail("vlan '", vlan, "' is not 1..4094");
        r.vlan = static_cast<unsigned>(*n);
    }
    r.boot_id = text_field("boot_id", true);
    const auto created = parse_decimal(take("created"));
    if (!created) fail("created is not a number");
    r.created = static_cast<std::int64_t>(*created);
    r.origin = text_field("origin", true);
    if (version == 3) {
        r.vf_settings = with_context("vf_settings", [&] { return parse_vf_settings(take("vf_settings")); });
        const auto reset = take("vf_reset");
        if (reset != "-" && reset != "pending") fail("vf_reset '", printable(reset), "' is not '-' or 'pending'");
        r.reset_pending = reset == "pending";
    }
    if (!fields.empty()) fail("unknown key '", fields.begin()->first, "'");
    return r;
}

std::string released_line(const Reservation& r) {
    return cat("released VF ", r.pci.to_string(), " (", r.pf, " VF ", r.vf_index, ") of vNIC ", r.mac, " of VM ",
               r.vm_id);
}

std::string ReservationStore::file_name(const PciAddress& pci) {
    return cat(kRecordPrefix, pci.to_string());
}

ReservationStore::ReservationStore(std::string state_dir, std::chrono::milliseconds lock_timeout)
    : dir_(std::move(state_dir)), lock_timeout_(lock_timeout) {
    if (::mkdir(dir_.c_str(), kDirMode) != 0 && errno != EEXIST)
        fail("state directory ", dir_, " cannot be created: ", errno_text());
    // O_NOFOLLOW: a state_dir that is a symlink is refused, so records can
    // only ever be created where the configuration says.
    dir_fd_ = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dir_fd_ < 0) fail("state directory ", dir_, " cannot be opened: ", errno_text());
    struct stat st{};
    if (::fstat(dir_fd_, &st) != 0) {
        const auto why = errno_text();
        ::close(dir_fd_);
        dir_fd_ = -1;
        fail("state directory ", dir_, " cannot be examined: ", why);
    }
    owner_uid_ = st.st_uid;
    owner_gid_ = st.st_gid;
}

ReservationStore::~ReservationStore() {
    if (dir_fd_ >= 0) ::close(dir_fd_);
}

ReservationStore::Lock::~Lock() {
    if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

void ReservationStore::give_to_owner(int fd, std::string_view what) const {
    if (::geteuid() == owner_uid_) return;
    if (::fchown(fd, owner_uid_, owner_gid_) == 0) return;
    fail(what, " in ", dir_, " would belong to uid ", ::geteuid(), ", not to the state directory's owner ",
         owner_text(owner_uid_, owner_gid_), ", whom the hooks run as, and cannot be given to it: ", errno_text(),
         " (run this as that user, or as root)");
}

int ReservationStore::open_lock() {
    constexpr int kFlags = O_RDWR | kOpenFlags;
    int fd = ::openat(dir_fd_, "lock", kFlags);
    if (fd < 0 && errno == ENOENT) {
        if (::geteuid() != owner_uid_) {
            // Root (say) creates it for the hooks: an unnamed file, given to
            // the owner, then linked, so that no hook ever meets a lock it
            // cannot open. linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH;
            // without it, or without O_TMPFILE, the lock is created by name
            // and given away just after.
            const int tmp = ::openat(dir_fd_, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, kFileMode);
            if (tmp >= 0) {
                try {
                    give_to_owner(tmp, "the lock file");
                } catch (...) {
                    ::close(tmp);
                    throw;
                }
                ::linkat(tmp, "", dir_fd_, "lock", AT_EMPTY_PATH);  // EEXIST: someone was quicker, as good
                ::close(tmp);
                fd = ::openat(dir_fd_, "lock", kFlags);
            }
        }
        if (fd < 0) fd = ::openat(dir_fd_, "lock", kFlags | O_CREAT, kFileMode);
    }
    if (fd < 0) fail("lock file ", dir_, "/lock cannot be opened: ", errno_text());
    struct stat st{};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        fail("lock file ", dir_, "/lock is ", file_kind(st.st_mode), ", not a regular file (remove it; the hooks "
             "create a new one)");
    }
    if (st.st_uid != owner_uid_) {
        // Created just now by name, or by an earlier release run as root:
        // give it to the hooks.
        try {
            give_to_owner(fd, "the lock file");
        } catch (...) {
            ::close(fd);
            throw;
        }
    }
    return fd;
}

ReservationStore::Lock ReservationStore::lock() {
    const int fd = open_lock();
    Lock held(fd);
    const auto deadline = std::chrono::steady_clock::now() + lock_timeout_;
    // Poll with a short, growing, jittered sleep: flock(2) has no timeout, and
    // an alarm signal would be process-global state inside a library.
    std::minstd_rand jitter(static_cast<unsigned>(::getpid()));
    auto pause = std::chrono::microseconds(200);
    for (;;) {
        if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return held;
        if (errno != EWOULDBLOCK && errno != EINTR) fail("locking ", dir_, "/lock: ", errno_text());
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline)
            throw LockTimeout(cat("the reservation lock ", dir_, "/lock was held by another process for more than ",
                                  seconds_text(lock_timeout_.count()), " (lock_timeout)"));
        const auto sleep = pause + std::chrono::microseconds(jitter() % (pause.count() + 1));
        std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(sleep, deadline - now));
        pause = std::min(pause * 2, std::chrono::microseconds(20000));
    }
}

std::vector<std::string> ReservationStore::list() const {
    std::vector<std::string> names;
    // A duplicate descriptor: closedir() closes the one it is given.
    const int fd = ::dup(dir_fd_);
    DIR* dir = fd >= 0 ? ::fdopendir(fd) : nullptr;
    if (!dir) {
        if (fd >= 0) ::close(fd);
        fail("reading ", dir_, ": ", errno_text());
    }
    ::rewinddir(dir);
    while (const dirent* entry = ::readdir(dir)) {
        const std::string_view name = entry->d_name;
        if (name != "." && name != "..") names.emplace_back(name);
    }
    ::closedir(dir);
    return names;
}

std::vector<std::string> ReservationStore::unusable_by_owner() const {
    // Whether the owner, with the directory's group, has `need` (a mask of
    // 4 read, 2 write, 1 search) on a file of `st`. Supplementary groups are
    // not known here; the hooks' group is the directory's (vdsm:kvm).
    const auto owner_may = [this](const struct stat& st, unsigned need) {
        unsigned bits = st.st_mode & 07;
        if (st.st_uid == owner_uid_)
            bits = (st.st_mode >> 6) & 07;
        else if (st.st_gid == owner_gid_)
            bits = (st.st_mode >> 3) & 07;
        return (bits & need) == need;
    };
    const auto owner = owner_text(owner_uid_, owner_gid_);
    std::vector<std::string> out;
    struct stat st{};
    if (::fstat(dir_fd_, &st) == 0 && (st.st_mode & S_IRWXU) != S_IRWXU)
        out.push_back(cat("state directory ", dir_, " has mode ", mode_text(st.st_mode), ": its owner ", owner,
                          ", whom the hooks run as, cannot create records in it (fix: chmod u+rwx ", dir_, ")"));
    const auto fix = cat("chown ", owner_uid_, ':', owner_gid_);
    for (const auto& name : list()) {
        const bool is_lock = name == "lock";
        if (!is_lock && std::string_view(name).substr(0, kRecordPrefix.size()) != kRecordPrefix) continue;
        if (::fstatat(dir_fd_, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone meanwhile
        const auto path = cat(dir_, "/", name);
        if (!S_ISREG(st.st_mode)) {
            // A record file of that kind is a damaged record, which load() reports.
            if (is_lock)
                out.push_back(cat(path, " is ", file_kind(st.st_mode),
                                  ", not a regular file: the hooks cannot take the lock (fix: remove it)"));
            continue;
        }
        const unsigned need = is_lock ? 6 : 4;
        if (owner_may(st, need)) continue;
        out.push_back(cat(path, " belongs to ", owner_text(st.st_uid, st.st_gid), " with mode ", mode_text(st.st_mode),
                          ": the hooks, which run as the state directory's owner ", owner, ", cannot ",
                          is_lock ? "open it for reading and writing, so every change fails"
                                  : "read it, so they never give that VF nor release it",
                          " (fix: ", fix, " ", path, "; chmod u+rw ", path, ")"));
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<std::string> ReservationStore::names_starting_with(std::string_view prefix) const {
    auto names = list();
    std::erase_if(names, [prefix](const std::string& n) { return std::string_view(n).substr(0, prefix.size()) != prefix; });
    return names;
}

std::vector<RecordEntry> ReservationStore::load() const {
    std::vector<RecordEntry> out;
    for (const auto& name : names_starting_with(kRecordPrefix)) {
        RecordEntry e;
        e.file = name;
        e.pci = PciAddress::parse(std::string_view(name).substr(kRecordPrefix.size()));
        auto file = read_record_file(dir_fd_, name);
        if (file.vanished) continue;  // released while we listed
        if (!file.text) {
            e.problem = std::move(file.problem);
        } else {
            try {
                e.record = parse_record(*file.text);
                if (!e.pci || e.record->pci != *e.pci) {
                    e.problem = "its file name does not match the PCI address inside";
                    e.record.reset();
                }
            } catch (const Error& err) {
                e.problem = err.what();
            }
        }
        out.push_back(std::move(e));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.file < b.file; });
    return out;
}

bool ReservationStore::create(const Reservation& r) {
    static std::atomic<unsigned> counter{0};
    const auto temp = cat(kTempPrefix, ::getpid(), '-', counter++);
    const auto final_name = file_name(r.pci);
    // A temporary by this name can only be the leftover of a writer that
    // died (we hold the lock) and had our pid before: pids are reused.
    ::unlinkat(dir_fd_, temp.c_str(), 0);
    const int fd = ::openat(dir_fd_, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | kOpenFlags, kFileMode);
    if (fd < 0) fail("creating a record in ", dir_, ": ", errno_text());
    try {
        give_to_owner(fd, "a record");
    } catch (...) {
        ::close(fd);
        ::unlinkat(dir_fd_, temp.c_str(), 0);
        throw;
    }
    const auto text = format_record(r);
    // fdatasync: a state_dir on disk keeps complete records across a host
    // crash too; on tmpfs (the default) it costs nothing.
    const bool written = write_all(fd, text) && ::fdatasync(fd) == 0;
    const int write_errno = errno;
    ::close(fd);
    if (!written) {
        ::unlinkat(dir_fd_, temp.c_str(), 0);
        errno = write_errno;
        fail("writing a record in ", dir_, ": ", errno_text());
    }
    const bool linked = ::linkat(dir_fd_, temp.c_str(), dir_fd_, final_name.c_str(), 0) == 0;
    const int link_errno = errno;
    ::unlinkat(dir_fd_, temp.c_str(), 0);
    if (linked) return true;
    if (link_errno == EEXIST) return false;
    errno = link_errno;
    fail("creating ", dir_, "/", final_name, ": ", errno_text());
}

void ReservationStore::replace(const Reservation& r) {
    static std::atomic<unsigned> counter{0};
    const auto temp = cat(kTempPrefix, ::getpid(), "-r", counter++);
    const auto final_name = file_name(r.pci);
    ::unlinkat(dir_fd_, temp.c_str(), 0);
    const int fd = ::openat(dir_fd_, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | kOpenFlags, kFileMode);
    if (fd < 0) fail("rewriting ", dir_, "/", final_name, ": ", errno_text());
    try {
        give_to_owner(fd, "a record");
    } catch (...) {
        ::close(fd);
        ::unlinkat(dir_fd_, temp.c_str(), 0);
        throw;
    }
    const bool written = write_all(fd, format_record(r)) && ::fdatasync(fd) == 0;
    const int write_errno = errno;
    ::close(fd);
    // rename(2), not link: the record exists and is replaced as a whole.
    if (!written || ::renameat(dir_fd_, temp.c_str(), dir_fd_, final_name.c_str()) != 0) {
        const int e = written ? errno : write_errno;
        ::unlinkat(dir_fd_, temp.c_str(), 0);
        errno = e;
        fail("rewriting ", dir_, "/", final_name, ": ", errno_text());
    }
}

bool ReservationStore::remove(const PciAddress& pci) {
    const auto name = file_name(pci);
    if (::unlinkat(dir_fd_, name.c_str(), 0) == 0) return true;
    if (errno == ENOENT) return false;
    fail("removing ", dir_, "/", name, ": ", errno_text());
}

std::vector<std::string> ReservationStore::remove_temporaries() {
    std::vector<std::string> removed;
    for (const auto& name : names_starting_with(kTempPrefix)) {
        if (::unlinkat(dir_fd_, name.c_str(), 0) == 0) removed.push_back(name);
    }
    return removed;
}

}  // namespace sriovpt
