#include "reservations.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <thread>

#include "dirents.hpp"
#include "error.hpp"
#include "fd_io.hpp"
#include "sysfs.hpp"
#include "text.hpp"

namespace sriovpt {

namespace {

constexpr std::string_view kMagic = "sriov-passthrough-reservation";
constexpr std::string_view kRecordPrefix = "vf-";
constexpr std::string_view kTempPrefix = ".tmp-";
constexpr std::string_view kVmIndexPrefix = "vm-";
constexpr std::string_view kPfIndexPrefix = "pf-";
constexpr const char* kLayoutFile = "layout";
// In each PF's index directory: every entry there is a hard link of it.
constexpr const char* kCountFile = "count";
constexpr std::string_view kLayoutMagic = "sriov-passthrough-store";
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
    ino_t ino = 0;       // the file's inode, when it exists
};

RecordFile read_record_file(int dir_fd, const std::string& name) {
    RecordFile out;
    struct stat st{};
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        out.vanished = errno == ENOENT;
        out.problem = cat("cannot be read: ", errno_text());
        return out;
    }
    out.ino = st.st_ino;
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
    out.ino = st.st_ino;
    auto r = read_fd(fd, kMaxRecordBytes, &st);
    ::close(fd);
    if (r.error) {
        errno = r.error;
        out.problem = cat("cannot be read: ", errno_text());
        return out;
    }
    if (r.too_long) {
        out.problem = cat("is larger than ", kMaxRecordBytes, " bytes: not a record");
        return out;
    }
    out.text = std::move(r.text);
    return out;
}



// Names in the directory `fd` (but "." and ".."), unsorted; `fd` stays open.
std::optional<std::vector<std::string>> names_in(int fd) {
    // A duplicate descriptor: closedir() closes the one it is given.
    const int dup_fd = ::dup(fd);
    DIR* dir = dup_fd >= 0 ? ::fdopendir(dup_fd) : nullptr;
    if (!dir) {
        if (dup_fd >= 0) ::close(dup_fd);
        return std::nullopt;
    }
    ::rewinddir(dir);
    std::vector<std::string> names;
    while (const dirent* entry = ::readdir(dir)) {
        const std::string_view name = entry->d_name;
        if (name != "." && name != "..") names.emplace_back(name);
    }
    ::closedir(dir);
    return names;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }


// `value` with every byte that `keep` refuses written %XX (upper-case hex).
template <typename Keep>
std::string percent_encoded(std::string_view value, Keep keep) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (const char c : value) {
        const auto b = static_cast<unsigned char>(c);
        if (keep(c)) {
            out += c;
        } else {
            out += '%';
            out += kHex[b >> 4];
            out += kHex[b & 0xf];
        }
    }
    return out;
}

// A file name made of `value`: bytes outside [A-Za-z0-9._:-] written %XX,
// so no name can hold a '/' or be "." or "..".
std::string name_component(std::string_view value) {
    return percent_encoded(value, [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
               c == ':' || c == '-';
    });
}

// The entry of a record in its VM's and its PF's index directories.
std::string vm_entry(const Reservation& r) { return r.pci.to_string(); }
std::string pf_entry(const Reservation& r) { return cat(r.vf_index, '-', r.pci.to_string()); }

// The record of file `name` as load() reports it; nullopt when it vanished.
std::optional<RecordEntry> entry_of(int dir_fd, const std::string& name, ino_t* ino = nullptr) {
    RecordEntry e;
    e.file = name;
    e.pci = PciAddress::parse(std::string_view(name).substr(kRecordPrefix.size()));
    auto file = read_record_file(dir_fd, name);
    if (file.vanished) return std::nullopt;  // released while we looked
    if (ino) *ino = file.ino;
    if (!file.text) {
        e.problem = std::move(file.problem);
        return e;
    }
    try {
        e.record = parse_record(*file.text);
        if (!e.pci || e.record->pci != *e.pci) {
            e.problem = "its file name does not match the PCI address inside";
            e.record.reset();
        }
    } catch (const Error& err) {
        e.problem = err.what();
    }
    return e;
}

std::atomic<unsigned> temp_counter{0};

}  // namespace

std::string vm_index_dir(std::string_view vm_id) {
    return cat(kVmIndexPrefix, name_component(normalize_uuid(vm_id).value_or(std::string(vm_id))));
}

std::string pf_index_dir(std::string_view pf) { return cat(kPfIndexPrefix, name_component(pf)); }

namespace {

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
    return percent_encoded(value, [](char c) {
        const auto b = static_cast<unsigned char>(c);
        return b > 0x20 && b < 0x7f && c != '%';
    });
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
    : dir_(std::move(state_dir)), lock_timeout_(lock_timeout), euid_(::geteuid()) {
    // O_NOFOLLOW: a state_dir that is a symlink is refused, so records can
    // only ever be created where the configuration says.
    constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW;
    dir_fd_ = ::open(dir_.c_str(), kDirFlags);
    bool made = false;
    if (dir_fd_ < 0 && errno == ENOENT) {
        made = ::mkdir(dir_.c_str(), kDirMode) == 0;
        if (!made && errno != EEXIST) fail("state directory ", dir_, " cannot be created: ", errno_text());
        dir_fd_ = ::open(dir_.c_str(), kDirFlags);
    }
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
    // An empty store is indexed as it is.
    if (made) write_layout_marker_if_possible();
}

ReservationStore::~ReservationStore() {
    if (dir_fd_ >= 0) ::close(dir_fd_);
}

ReservationStore::Lock::~Lock() {
    if (store_) store_->locked_ = false;
    if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

void ReservationStore::give_to_owner(int fd, std::string_view what) const {
    if (euid_ == owner_uid_) return;
    if (::fchown(fd, owner_uid_, owner_gid_) == 0) return;
    fail(what, " in ", dir_, " would belong to uid ", euid_, ", not to the state directory's owner ",
         owner_text(owner_uid_, owner_gid_), ", whom the hooks run as, and cannot be given to it: ", errno_text(),
         " (run this as that user, or as root)");
}

int ReservationStore::open_lock() {
    constexpr int kFlags = O_RDWR | kOpenFlags;
    int fd = ::openat(dir_fd_, "lock", kFlags);
    if (fd < 0 && errno == ENOENT) {
        if (euid_ != owner_uid_) {
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
    Lock held(fd, this);
    const auto deadline = std::chrono::steady_clock::now() + lock_timeout_;
    // Poll with a short, growing, jittered sleep: flock(2) has no timeout, and
    // an alarm signal would be process-global state inside a library.
    std::optional<std::minstd_rand> jitter;
    auto pause = std::chrono::microseconds(200);
    for (;;) {
        if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
            locked_ = true;
            upgrade_layout();
            return held;
        }
        if (errno != EWOULDBLOCK && errno != EINTR) fail("locking ", dir_, "/lock: ", errno_text());
        if (!jitter) jitter.emplace(static_cast<unsigned>(::getpid()));
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline)
            throw LockTimeout(cat("the reservation lock ", dir_, "/lock was held by another process for more than ",
                                  seconds_text(lock_timeout_.count()), " (lock_timeout)"));
        const auto sleep = pause + std::chrono::microseconds((*jitter)() % (pause.count() + 1));
        std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(sleep, deadline - now));
        pause = std::min(pause * 2, std::chrono::microseconds(20000));
    }
}

std::vector<std::string> ReservationStore::list() const {
    auto names = names_in(dir_fd_);
    if (!names) fail("reading ", dir_, ": ", errno_text());
    return std::move(*names);
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
        const bool is_index = starts_with(name, kVmIndexPrefix) || starts_with(name, kPfIndexPrefix);
        if (!is_lock && !is_index && !starts_with(name, kRecordPrefix)) continue;
        if (::fstatat(dir_fd_, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone meanwhile
        const auto path = cat(dir_, "/", name);
        if (is_index) {
            // check_index reports one that is not a directory.
            if (S_ISDIR(st.st_mode) && !owner_may(st, 7))
                out.push_back(cat(path, " belongs to ", owner_text(st.st_uid, st.st_gid), " with mode ",
                                  mode_text(st.st_mode), ": the hooks, which run as the state directory's owner ",
                                  owner, ", cannot add to or remove from this index directory, so reserving and "
                                  "releasing fail (fix: ", fix, " ", path, "; chmod u+rwx ", path, ")"));
            continue;
        }
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
        if (auto e = entry_of(dir_fd_, name)) out.push_back(std::move(*e));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.file < b.file; });
    return out;
}

std::string ReservationStore::temp_name() const { return cat(kTempPrefix, ::getpid(), '-', temp_counter++); }

void ReservationStore::remove_leftover(const std::string& temp) const {
    if (::unlinkat(dir_fd_, temp.c_str(), 0) != 0 && errno == EISDIR) ::unlinkat(dir_fd_, temp.c_str(), AT_REMOVEDIR);
}

int ReservationStore::create_temporary(const std::string& temp, std::string_view what) const {
    constexpr int kFlags = O_WRONLY | O_CREAT | O_EXCL | kOpenFlags;
    int fd = ::openat(dir_fd_, temp.c_str(), kFlags, kFileMode);
    if (fd < 0 && errno == EEXIST) {
        remove_leftover(temp);
        fd = ::openat(dir_fd_, temp.c_str(), kFlags, kFileMode);
    }
    if (fd < 0) fail("creating ", what, " in ", dir_, ": ", errno_text());
    try {
        give_to_owner(fd, what);
    } catch (...) {
        ::close(fd);
        ::unlinkat(dir_fd_, temp.c_str(), 0);
        throw;
    }
    return fd;
}

bool ReservationStore::has_record(const PciAddress& pci) const {
    struct stat st{};
    // Anything by that name blocks the VF, whatever it is or however it fails.
    return ::fstatat(dir_fd_, file_name(pci).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT;
}

std::optional<RecordEntry> ReservationStore::read(const PciAddress& pci) const {
    return entry_of(dir_fd_, file_name(pci));
}

bool ReservationStore::create(const Reservation& r) {
    const auto final_name = file_name(r.pci);
    // Held already: nothing to write, nothing to undo.
    if (has_record(r.pci)) return false;
    const auto temp = temp_name();
    const int fd = create_temporary(temp, "a record");
    const auto text = format_record(r);
    // fdatasync: a state_dir on disk keeps complete records across a host
    // crash too; on tmpfs (the default) it costs nothing.
    struct stat st{};
    const bool written = write_fd(fd, text) == 0 && ::fdatasync(fd) == 0 && ::fstat(fd, &st) == 0;
    const int write_errno = errno;
    ::close(fd);
    if (!written) {
        ::unlinkat(dir_fd_, temp.c_str(), 0);
        errno = write_errno;
        fail("writing a record in ", dir_, ": ", errno_text());
    }
    // Indexed before it has its name: a record is never without its index
    // entries, and a crash leaves entries of a file that is no record
    // (stale, skipped) rather than a record the index misses.
    try {
        link_index(temp, r);
    } catch (...) {
        unlink_index(r, st.st_ino);
        ::unlinkat(dir_fd_, temp.c_str(), 0);
        throw;
    }
    const bool linked = ::linkat(dir_fd_, temp.c_str(), dir_fd_, final_name.c_str(), 0) == 0;
    const int link_errno = errno;
    if (!linked) unlink_index(r, st.st_ino);
    ::unlinkat(dir_fd_, temp.c_str(), 0);
    if (linked) return true;
    if (link_errno == EEXIST) return false;
    errno = link_errno;
    fail("creating ", dir_, "/", final_name, ": ", errno_text());
}

void ReservationStore::replace(const Reservation& r) {
    const auto final_name = file_name(r.pci);
    const auto temp = temp_name();
    const int fd = create_temporary(temp, "a record");
    const bool written = write_fd(fd, format_record(r)) == 0 && ::fdatasync(fd) == 0;
    const int write_errno = errno;
    ::close(fd);
    if (!written) {
        ::unlinkat(dir_fd_, temp.c_str(), 0);
        errno = write_errno;
        fail("rewriting ", dir_, "/", final_name, ": ", errno_text());
    }
    // The new file gets the record's index entries before its name, as in
    // create: the VM's entry is a link of the record's inode, which changes
    // here. A crash between the two steps leaves the old record with an
    // entry that is not its own: check reports it and gc repairs it.
    try {
        link_index(temp, r);
    } catch (...) {
        ::unlinkat(dir_fd_, temp.c_str(), 0);
        try {
            link_index(final_name, r);  // the entries back to the record as it stays
        } catch (const Error&) {
        }
        throw;
    }
    // rename(2), not link: the record exists and is replaced as a whole.
    if (::renameat(dir_fd_, temp.c_str(), dir_fd_, final_name.c_str()) != 0) {
        const int e = errno;
        ::unlinkat(dir_fd_, temp.c_str(), 0);
        errno = e;
        fail("rewriting ", dir_, "/", final_name, ": ", errno_text());
    }
}

bool ReservationStore::remove(const PciAddress& pci) {
    const auto name = file_name(pci);
    struct stat st{};
    if (::fstatat(dir_fd_, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) return false;
        fail("removing ", dir_, "/", name, ": ", errno_text());
    }
    // Its index entries are named after what it holds.
    std::optional<Reservation> record;
    if (S_ISREG(st.st_mode)) {
        if (auto e = entry_of(dir_fd_, name); e && e->record) record = e->record;
    }
    if (::unlinkat(dir_fd_, name.c_str(), 0) != 0) {
        if (errno == ENOENT) return false;
        fail("removing ", dir_, "/", name, ": ", errno_text());
    }
    if (record) unlink_index(*record, st.st_ino);
    return true;
}

bool ReservationStore::remove(const Reservation& r) {
    const auto name = file_name(r.pci);
    struct stat st{};
    const bool found = ::fstatat(dir_fd_, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (::unlinkat(dir_fd_, name.c_str(), 0) != 0) {
        if (errno == ENOENT) return false;
        fail("removing ", dir_, "/", name, ": ", errno_text());
    }
    if (found) unlink_index(r, st.st_ino);
    return true;
}

std::vector<std::string> ReservationStore::remove_temporaries() {
    std::vector<std::string> removed;
    for (const auto& name : names_starting_with(kTempPrefix)) {
        // A directory is an index directory that its maker did not get to name.
        if (::unlinkat(dir_fd_, name.c_str(), 0) == 0 ||
            (errno == EISDIR && ::unlinkat(dir_fd_, name.c_str(), AT_REMOVEDIR) == 0))
            removed.push_back(name);
    }
    return removed;
}

// --- The index -------------------------------------------------------------------

int ReservationStore::open_index_dir(const std::string& name, bool create) const {
    constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int fd = ::openat(dir_fd_, name.c_str(), kDirFlags);
    if (fd >= 0 || !create) return fd;
    if (errno != ENOENT) fail("opening the index directory ", dir_, "/", name, ": ", errno_text(),
                              " (sriov-passthrough gc replaces what is not a directory)");
    if (euid_ == owner_uid_) {
        if (::mkdirat(dir_fd_, name.c_str(), kDirMode) != 0 && errno != EEXIST)
            fail("creating the index directory ", dir_, "/", name, ": ", errno_text());
    } else {
        // Made under a temporary name and given to the owner before it gets
        // its own, so the hooks never meet a directory they cannot write.
        const auto temp = temp_name();
        bool made = ::mkdirat(dir_fd_, temp.c_str(), kDirMode) == 0;
        if (!made && errno == EEXIST) {
            remove_leftover(temp);
            made = ::mkdirat(dir_fd_, temp.c_str(), kDirMode) == 0;
        }
        if (!made) fail("creating the index directory ", dir_, "/", name, ": ", errno_text());
        const int tfd = ::openat(dir_fd_, temp.c_str(), kDirFlags);
        try {
            if (tfd < 0) fail("creating the index directory ", dir_, "/", name, ": ", errno_text());
            give_to_owner(tfd, "an index directory");
        } catch (...) {
            if (tfd >= 0) ::close(tfd);
            ::unlinkat(dir_fd_, temp.c_str(), AT_REMOVEDIR);
            throw;
        }
        ::close(tfd);
        int rc = ::renameat2(dir_fd_, temp.c_str(), dir_fd_, name.c_str(), RENAME_NOREPLACE);
        // A file system without RENAME_NOREPLACE: under the lock, nobody else
        // makes this directory.
        if (rc != 0 && errno == EINVAL) rc = ::renameat(dir_fd_, temp.c_str(), dir_fd_, name.c_str());
        const int rename_errno = errno;
        if (rc != 0) {
            ::unlinkat(dir_fd_, temp.c_str(), AT_REMOVEDIR);
            errno = rename_errno;
            if (errno != EEXIST) fail("creating the index directory ", dir_, "/", name, ": ", errno_text());
        }
    }
    fd = ::openat(dir_fd_, name.c_str(), kDirFlags);
    if (fd < 0) fail("opening the index directory ", dir_, "/", name, ": ", errno_text());
    return fd;
}

ino_t ReservationStore::pf_count_file(int dfd, bool create) const {
    struct stat st{};
    if (::fstatat(dfd, kCountFile, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (!S_ISREG(st.st_mode)) fail("the index file ", dir_, "/.../", kCountFile, " is ", file_kind(st.st_mode),
                                       " (sriov-passthrough gc replaces it)");
        return st.st_ino;
    }
    if (!create) return 0;
    // Made under a temporary name and given to the owner before it is
    // linked in: the hooks must be able to link it (fs.protected_hardlinks).
    const auto temp = temp_name();
    ::close(create_temporary(temp, "an index file"));
    const bool linked = ::linkat(dir_fd_, temp.c_str(), dfd, kCountFile, 0) == 0 || errno == EEXIST;
    const int link_errno = errno;
    ::unlinkat(dir_fd_, temp.c_str(), 0);
    if (!linked || ::fstatat(dfd, kCountFile, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        errno = link_errno;
        fail("creating an index file in ", dir_, ": ", errno_text());
    }
    return st.st_ino;
}

void ReservationStore::link_index(const std::string& file, const Reservation& r) const {
    // Links `from` (in the directory `from_fd`) as `entry` in `dfd`; an
    // entry of that name that is another file is stale (the record has no
    // name yet, or is being indexed because the entry is wrong): ours to
    // replace under the lock. 0, or the errno of the failure.
    const auto link_as = [](int from_fd, const char* from, int dfd, const std::string& entry) {
        if (::linkat(from_fd, from, dfd, entry.c_str(), 0) == 0) return 0;
        if (errno != EEXIST) return errno;
        struct stat have{};
        struct stat want{};
        if (::fstatat(dfd, entry.c_str(), &have, AT_SYMLINK_NOFOLLOW) == 0 &&
            ::fstatat(from_fd, from, &want, AT_SYMLINK_NOFOLLOW) == 0 && have.st_ino == want.st_ino)
            return 0;
        ::unlinkat(dfd, entry.c_str(), 0);
        return ::linkat(from_fd, from, dfd, entry.c_str(), 0) == 0 ? 0 : errno;
    };
    const auto failed = [this](int error, const std::string& what, const std::string& where, const std::string& entry) {
        errno = error;
        fail("indexing ", dir_, "/", what, " as ", where, "/", entry, ": ", errno_text());
    };
    const auto vm_dir = vm_index_dir(r.vm_id);
    const int vm_fd = open_index_dir(vm_dir, true);
    const int vm_error = link_as(dir_fd_, file.c_str(), vm_fd, vm_entry(r));
    ::close(vm_fd);
    if (vm_error) failed(vm_error, file, vm_dir, vm_entry(r));
    // The PF's entry is a link of its count file, not of the record: the
    // count file's link count is then the PF's held VFs, one fstatat for a
    // start instead of a listing per PF of its pool.
    const auto pf_dir = pf_index_dir(r.pf);
    const int pf_fd = open_index_dir(pf_dir, true);
    int pf_error = link_as(pf_fd, kCountFile, pf_fd, pf_entry(r));
    if (pf_error) {
        // No count file yet (the PF's first record), or something in its
        // place, which pf_count_file() names.
        try {
            pf_count_file(pf_fd, true);
        } catch (...) {
            ::close(pf_fd);
            throw;
        }
        pf_error = link_as(pf_fd, kCountFile, pf_fd, pf_entry(r));
    }
    ::close(pf_fd);
    if (pf_error) failed(pf_error, cat(pf_dir, "/", kCountFile), pf_dir, pf_entry(r));
}

void ReservationStore::unlink_index(const Reservation& r, ino_t ino) const {
    const auto vm_dir = vm_index_dir(r.vm_id);
    struct stat st{};
    if (const int dfd = open_index_dir(vm_dir, false); dfd >= 0) {
        const auto entry = vm_entry(r);
        if (::fstatat(dfd, entry.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == ino)
            ::unlinkat(dfd, entry.c_str(), 0);
        ::close(dfd);
    }
    // The VM's directory goes with its last entry (ENOTEMPTY otherwise).
    ::unlinkat(dir_fd_, vm_dir.c_str(), AT_REMOVEDIR);
    if (const int dfd = open_index_dir(pf_index_dir(r.pf), false); dfd >= 0) {
        const auto entry = pf_entry(r);
        const auto count = pf_count_file(dfd, false);
        if (count && ::fstatat(dfd, entry.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == count)
            ::unlinkat(dfd, entry.c_str(), 0);
        ::close(dfd);
    }
}

unsigned ReservationStore::held_on_pf(const std::string& pf) const {
    struct stat st{};
    const auto path = cat(pf_index_dir(pf), "/", kCountFile);
    if (::fstatat(dir_fd_, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) || st.st_nlink < 1)
        return 0;
    return static_cast<unsigned>(st.st_nlink - 1);
}

std::vector<Reservation> ReservationStore::records_of_vm(const std::string& vm_id) {
    const auto vm = normalize_uuid(vm_id).value_or(vm_id);
    std::vector<Reservation> out;
    if (!indexed()) {
        for (const auto& e : load()) {
            if (e.record && e.record->vm_id == vm) out.push_back(*e.record);
        }
        return out;
    }
    const int dfd = open_index_dir(vm_index_dir(vm), false);
    if (dfd < 0) return out;
    const auto names = names_in(dfd);
    for (const auto& name : names.value_or(std::vector<std::string>{})) {
        const auto pci = PciAddress::parse(name);
        struct stat st{};
        if (!pci || ::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        ino_t ino = 0;
        const auto e = entry_of(dir_fd_, file_name(*pci), &ino);
        if (!e || ino != st.st_ino) {
            // Not the record (any more): what a crash or an earlier release left.
            if (locked_) ::unlinkat(dfd, name.c_str(), 0);
            continue;
        }
        if (e->record && e->record->vm_id == vm) out.push_back(*e->record);
    }
    ::close(dfd);
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.pci < b.pci; });
    return out;
}

std::vector<unsigned> ReservationStore::indexed_on_pf(const std::string& pf) const {
    std::vector<unsigned> out;
    const int dfd = open_index_dir(pf_index_dir(pf), false);
    if (dfd < 0) return out;
    // Sorted through a bitmap: names come in no order, indexes are small.
    std::vector<bool> seen;
    for_each_name(dfd, [&seen](std::string_view name) {
        // "<index>-<pci>": the digits before the dash.
        unsigned index = 0;
        size_t i = 0;
        for (; i < name.size() && i < 6 && name[i] >= '0' && name[i] <= '9'; ++i)
            index = index * 10 + static_cast<unsigned>(name[i] - '0');
        if (i == 0 || i >= name.size() || name[i] != '-' || index > kMaxVfsPerPf) return;
        if (index >= seen.size()) seen.resize(index + 1);
        seen[index] = true;
    });
    ::close(dfd);
    for (unsigned i = 0; i < seen.size(); ++i) {
        if (seen[i]) out.push_back(i);
    }
    return out;
}

int ReservationStore::layout_version() const {
    // Not a regular file: a directory fails the read, a FIFO (never opened
    // blocking) reads nothing; either way, no marker.
    const int fd = ::openat(dir_fd_, kLayoutFile, O_RDONLY | kOpenFlags);
    if (fd < 0) return 0;
    char buf[64];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    ::close(fd);
    if (n <= 0) return 0;
    std::string_view text(buf, static_cast<size_t>(n));
    if (!starts_with(text, kLayoutMagic) || text.size() < kLayoutMagic.size() + 3 || text[kLayoutMagic.size()] != ' ' ||
        text.back() != '\n')
        return 0;
    text = text.substr(kLayoutMagic.size() + 1, text.size() - kLayoutMagic.size() - 2);
    const auto version = parse_decimal(text);
    return version && *version < 1000000 ? static_cast<int>(*version) : 0;
}

void ReservationStore::write_layout_marker() const {
    const auto temp = temp_name();
    const int fd = create_temporary(temp, "the layout marker");
    const bool written = write_fd(fd, cat(kLayoutMagic, ' ', kLayoutVersion, '\n')) == 0 && ::fdatasync(fd) == 0;
    const int write_errno = errno;
    ::close(fd);
    // rename: it replaces a damaged marker; the marker says nothing a reader
    // could see half of.
    if (!written || ::renameat(dir_fd_, temp.c_str(), dir_fd_, kLayoutFile) != 0) {
        const int e = written ? errno : write_errno;
        ::unlinkat(dir_fd_, temp.c_str(), 0);
        errno = e;
        fail("writing ", dir_, "/", kLayoutFile, ": ", errno_text());
    }
}

void ReservationStore::write_layout_marker_if_possible() const {
    // Without it (a full file system, say) the next lock indexes the store
    // again, which is always safe; the hook's own writes say what is wrong.
    try {
        write_layout_marker();
        indexed_ = true;
    } catch (const Error&) {
    }
}

bool ReservationStore::indexed() const {
    if (!indexed_) indexed_ = layout_version() == kLayoutVersion;
    return indexed_;
}

void ReservationStore::upgrade_layout() {
    if (indexed()) return;
    const int version = layout_version();
    if (version > kLayoutVersion)
        fail("state directory ", dir_, " has layout version ", version, " (", dir_, "/", kLayoutFile,
             "), written by a newer release; this release keeps layout ", kLayoutVersion,
             " and does not change a store it does not know (remove that file to have this release index the "
             "records again)");
    with_context(cat("indexing the reservations in ", dir_, " (its first use by this release)"),
                 [&] { audit_index(true); });
}

IndexReport ReservationStore::check_index() const { return audit_index(false); }

IndexReport ReservationStore::repair_index() { return audit_index(true); }

IndexReport ReservationStore::audit_index(bool repair) const {
    IndexReport out;
    // Every entry the index should have: (directory, name) -> the record's
    // file and inode; `seen` once it is found right.
    struct Wanted {
        std::string record;
        ino_t ino = 0;
        Reservation r;
        bool seen = false;
    };
    std::map<std::pair<std::string, std::string>, Wanted> wanted;
    std::vector<std::string> index_dirs;
    for (const auto& name : list()) {
        if (starts_with(name, kVmIndexPrefix) || starts_with(name, kPfIndexPrefix)) index_dirs.push_back(name);
        if (!starts_with(name, kRecordPrefix)) continue;
        ino_t ino = 0;
        const auto e = entry_of(dir_fd_, name, &ino);
        if (!e || !e->record || name != file_name(e->record->pci)) continue;  // damaged: shown as such elsewhere
        const auto& r = *e->record;
        wanted[{vm_index_dir(r.vm_id), vm_entry(r)}] = Wanted{name, ino, r};
        wanted[{pf_index_dir(r.pf), pf_entry(r)}] = Wanted{name, 0, r};  // the count file's
    }
    std::sort(index_dirs.begin(), index_dirs.end());
    for (const auto& dir : index_dirs) {
        const int dfd = open_index_dir(dir, false);
        if (dfd < 0) {
            out.stale.push_back(cat(dir, " is not a directory"));
            if (repair) ::unlinkat(dir_fd_, dir.c_str(), 0);
            continue;
        }
        auto names = names_in(dfd).value_or(std::vector<std::string>{});
        std::sort(names.begin(), names.end());
        size_t left = names.size();
        const bool pf_dir = starts_with(dir, kPfIndexPrefix);
        ino_t count = 0;
        if (pf_dir) {
            struct stat st{};
            if (::fstatat(dfd, kCountFile, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) count = st.st_ino;
        }
        for (const auto& name : names) {
            struct stat st{};
            if (pf_dir && name == kCountFile && count) continue;
            const auto it = wanted.find({dir, name});
            if (it != wanted.end() && ::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                st.st_ino == (pf_dir ? count : it->second.ino)) {
                it->second.seen = true;
                continue;
            }
            out.stale.push_back(cat(dir, "/", name));
            if (repair && ::unlinkat(dfd, name.c_str(), 0) == 0) --left;
        }
        ::close(dfd);
        if (repair && left == 0 && starts_with(dir, kVmIndexPrefix)) ::unlinkat(dir_fd_, dir.c_str(), AT_REMOVEDIR);
    }
    for (const auto& [where, w] : wanted) {
        if (w.seen) continue;
        auto line = cat(w.record, " (", where.first, "/", where.second, ")");
        if (repair) {
            // One record that cannot be indexed (say a file root left that
            // the hooks may not link) must not keep the rest from being
            // indexed: said, and left to check and gc.
            try {
                link_index(w.record, w.r);
            } catch (const Error& e) {
                line += cat(": ", e.what());
            }
        }
        out.missing.push_back(std::move(line));
    }
    if (repair) write_layout_marker_if_possible();
    return out;
}

}  // namespace sriovpt
