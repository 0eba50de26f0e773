// Reservation records (docs/design.md, "The store"): which (vmId, MAC) holds
// which VF.
//
// On disk, in state_dir (layout version 2):
//   lock                 flock(2) taken for every change (bounded by lock_timeout)
//   layout               "sriov-passthrough-store 2": the index below is kept
//   vf-<pci>             one record per held VF, e.g. vf-0000:3b:02.1: the truth
//   vm-<vm_id>/<pci>     the index by VM: a hard link of the record
//   pf-<pf>/count        one per PF: every entry below is a hard link of it, so
//                        its link count, less one, is the PF's held VFs
//   pf-<pf>/<N>-<pci>    the index by PF (<pf> encoded, N the VF index)
//   .tmp-<pid>-<n>       a record or index directory being made (only while
//                        its writer holds the lock)
//
// A record is written in full to a temporary file, linked into the index,
// and then link(2)ed to its final name: link fails if the name exists, so
// creation is exclusive, and a reader (or a crash) never sees half a record.
// It is removed name first, index after. A VM's entry counts only while it
// is the same file (inode) as vf-<pci>, a PF's only while vf-<pci> is a
// record of that PF and VF index: what a crash between two steps leaves is
// skipped by readers (a PF's count can be one too high: only the balance
// between PFs suffers) and cleaned under the lock. The index is what lets a
// start read only what it needs (the vNIC's own records, the held count of
// each PF of its pool) however many records the host holds.
//
// A store of layout 1 (records only, written by earlier releases) is indexed
// the first time this code takes its lock, and the marker written then.
//
// Ownership: the hooks run as the state directory's owner (vdsm:kvm). A
// process of another user (root running the command) gives every file it
// creates here to the directory's owner and group before the file gets its
// name, so what root creates the hooks can use.
//
// Anything in state_dir that is not a regular file (a FIFO, a socket, a
// directory, a symlink) is never opened blocking: a record file of that kind
// is reported as damaged, a lock of that kind is an error.
//
// Record format, version 1:
//
//   sriov-passthrough-reservation 1
//   pci 0000:3b:02.1
//   pf ens1f0
//   vf_index 1
//   vm_id 9c1f3d7e-2b44-4a51-8e0c-5d6a7b8c9d01
//   mac 00:1a:4a:16:01:51
//   network sriovnet
//   vlan 100              ("-" when none)
//   boot_id 1b3c...       (the host boot the reservation was made in)
//   created 1763890000    (seconds since the epoch)
//   origin before_vm_start
//   end
//
// Each value is the rest of its line as it is; "-" stands for an empty
// network, boot_id or origin. So version 1 cannot hold a value with a
// newline, nor tell a network named "-" from none.
//
// Version 2 has the same lines, with the text values (pf, network, boot_id,
// origin) encoded: "-" is the empty value; otherwise every byte outside
// '!'..'~', and '%', is written %XX (two upper-case hex digits), and a value
// of exactly "-" is written %2D. Any byte string round-trips.
//
// Version 3 has version 2's lines and encoding, then two more before `end`
// (vf_settings.hpp):
//
//   vf_settings trust=on,max_tx_rate=1000,min_tx_rate=0   (the VF settings asked
//                         for the holder, written before the helper makes them;
//                         the helper's words joined by commas)
//   vf_reset pending      ("-" while the holder has the VF; "pending" once it
//                         was given back and its settings wait to be reset)
//
// A record is written in the oldest version that holds it exactly, so the
// records of ordinary names stay readable by earlier releases (a downgrade
// with VMs running): version 1, else version 2 for the names version 1
// cannot hold, and version 3 only for a VF with settings. An earlier release
// reads a version 3 record as damaged, which keeps that VF from being
// handed out with settings it cannot reset. All three versions are read.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pci.hpp"
#include "vf_settings.hpp"

namespace sriovpt {

// The newest record version this code reads and writes.
inline constexpr int kRecordVersion = 3;

// The layout of state_dir this code keeps (the marker file `layout`): 1 is
// records only, 2 adds the index.
inline constexpr int kLayoutVersion = 2;

struct Reservation {
    PciAddress pci;
    std::string pf;
    unsigned vf_index = 0;
    std::string vm_id;
    std::string mac;
    std::string network;
    std::optional<unsigned> vlan;
    std::string boot_id;
    std::int64_t created = 0;
    std::string origin;   // the hook point (or command) that made it
    VfSettings vf_settings;       // asked for the holder (version 3)
    bool reset_pending = false;   // given back, its settings not reset yet (version 3)

    bool operator==(const Reservation&) const = default;
};

// The record of `r`: version 1 when it holds `r` exactly, else version 2;
// version 3 when `r` has VF settings or a pending reset.
std::string format_record(const Reservation& r);

// The line that says a reservation was given back, for the hooks' stderr and
// the command alike: "released VF 0000:3b:02.1 (ens1f0 VF 1) of vNIC ... of VM ...".
std::string released_line(const Reservation& r);

// Parses a record of version 1, 2 or 3; throws Error saying what is wrong
// ("unknown record version 7 ...", "line 3: ...", "truncated: no 'end' line").
Reservation parse_record(std::string_view text);

// One file of the store: a good record, or the reason it could not be read.
struct RecordEntry {
    std::string file;                     // name in state_dir
    std::optional<PciAddress> pci;        // from the file name
    std::optional<Reservation> record;    // set when the record is good
    std::string problem;                  // why it is not, otherwise
};

// What a full look at the index found (or, from repair_index, fixed): one
// line each, naming the files.
struct IndexReport {
    std::vector<std::string> missing;     // good records not (rightly) in the index
    std::vector<std::string> stale;       // index entries that are no record's
    bool empty() const { return missing.empty() && stale.empty(); }
};

class ReservationStore {
public:
    // Creates state_dir (mode 0750) if it does not exist. Throws Error when
    // it cannot be created or opened, or is a symlink.
    ReservationStore(std::string state_dir, std::chrono::milliseconds lock_timeout);
    ~ReservationStore();
    ReservationStore(const ReservationStore&) = delete;
    ReservationStore& operator=(const ReservationStore&) = delete;

    const std::string& dir() const { return dir_; }

    // The state directory's owner and group: whom the hooks run as, and whom
    // every file created here belongs to.
    uid_t owner_uid() const { return owner_uid_; }
    gid_t owner_gid() const { return owner_gid_; }

    // Exclusive lock on the store, held while alive. Waits at most lock_timeout,
    // then throws LockTimeout. Creates state_dir/lock if missing; throws Error
    // when it is not a regular file.
    // The first lock taken on a store of layout 1 indexes its records
    // (throws Error naming what failed); a store of a newer layout than
    // kLayoutVersion is refused.
    class Lock {
    public:
        explicit Lock(int fd, ReservationStore* store = nullptr) : fd_(fd), store_(store) {}
        Lock(Lock&& other) noexcept : fd_(other.fd_), store_(other.store_) {
            other.fd_ = -1;
            other.store_ = nullptr;
        }
        Lock& operator=(Lock&&) = delete;
        ~Lock();
    private:
        int fd_;
        ReservationStore* store_;
    };
    Lock lock();

    // Every record file, good or not, sorted by file name. A record file that
    // is not a regular file is listed with its problem, never opened.
    std::vector<RecordEntry> load() const;

    // Writes `r` as the record of its VF, indexed. Returns false (and
    // leaves nothing) if the VF already has a record. Call with the lock held.
    bool create(const Reservation& r);

    // Rewrites the existing record of r.pci as `r`, whole (a temporary file
    // renamed over it): a reader, or a crash, sees the old record or the new
    // one. Call with the lock held.
    void replace(const Reservation& r);

    // Removes the record of `pci` and its index entries; true if there was
    // one. A damaged record's index entries (if any) are left to gc.
    bool remove(const PciAddress& pci);
    // The same, for a record just read (saves reading it again).
    bool remove(const Reservation& r);

    // Whether `pci` has a record file, good or not (one fstatat).
    bool has_record(const PciAddress& pci) const;

    // The record file of `pci`, nullopt when there is none.
    std::optional<RecordEntry> read(const PciAddress& pci) const;

    // The good records of `vm_id`, by pci, read through the index (only that
    // VM's records are read). Index entries that are no longer the record
    // are skipped, and removed when this store holds the lock. A store not
    // indexed yet (read without the lock) is read in full instead.
    std::vector<Reservation> records_of_vm(const std::string& vm_id);

    // How many VFs of `pf` are held, by the index: one fstatat (the link
    // count of its count file). Entries are not checked against the records
    // (a crash can leave one too many until gc or a dry pool cleans it).
    unsigned held_on_pf(const std::string& pf) const;

    // The VF indexes listed in the index of `pf`, sorted: its held VFs, by
    // one directory listing; unchecked as held_on_pf.
    std::vector<unsigned> indexed_on_pf(const std::string& pf) const;

    // Whether the layout marker says this store is indexed.
    bool indexed() const;

    // The whole index against every record (a full scan, as check does).
    IndexReport check_index() const;

    // Makes the index match the records: links what is missing, removes
    // stale entries and empty VM directories, and writes the layout marker.
    // Returns what it changed. Call with the lock held.
    IndexReport repair_index();

    // Removes leftovers of writers that died between writing and linking.
    // Call with the lock held (writers hold it while a temporary exists).
    std::vector<std::string> remove_temporaries();

    static std::string file_name(const PciAddress& pci);

    // Names of every entry of state_dir (but "." and ".."), unsorted.
    std::vector<std::string> list() const;

    // What in the store the hooks, running as the state directory's owner
    // and group, cannot use: the directory itself (they need to create and
    // remove files), the lock (read and write), records (read). One line
    // each, naming the file, its owner and mode, and the fix. Opens nothing.
    std::vector<std::string> unusable_by_owner() const;

private:
    std::vector<std::string> names_starting_with(std::string_view prefix) const;
    int open_lock();
    // Indexes a store of layout 1 (under the lock), refuses a newer one.
    void upgrade_layout();
    // The index directory `name` (vm-..., pf-...), opened; created for the
    // owner when `create` and missing. -1 when missing and not created.
    int open_index_dir(const std::string& name, bool create) const;
    // Links `file` (a name in state_dir) into the index as `r`'s entries;
    // an entry of that name that is not the record is replaced.
    void link_index(const std::string& file, const Reservation& r) const;
    // Removes `r`'s index entries: the VM's when it is the file `ino`, the
    // PF's when it is a link of the PF's count file.
    void unlink_index(const Reservation& r, ino_t ino) const;
    // The inode of the count file of the PF directory `dfd`, created when
    // `create`; 0 when it has none.
    ino_t pf_count_file(int dfd, bool create) const;
    IndexReport audit_index(bool repair) const;
    // The marker's layout version; 0 when missing or unreadable.
    int layout_version() const;
    void write_layout_marker() const;
    void write_layout_marker_if_possible() const;
    // A name for a temporary: ".tmp-<pid>-<n>".
    std::string temp_name() const;
    // Removes what has the name `temp`: only ever the leftover of a writer
    // that died (temporaries are made under the lock) and had this pid
    // before, since pids are reused.
    void remove_leftover(const std::string& temp) const;
    // The file `temp` created (exclusively) and given to the owner, open for
    // writing; throws Error naming `what`.
    int create_temporary(const std::string& temp, std::string_view what) const;
    // Gives the file behind `fd` to the state directory's owner when this
    // process is someone else; throws Error naming `what` if it cannot.
    void give_to_owner(int fd, std::string_view what) const;

    std::string dir_;
    int dir_fd_ = -1;
    uid_t owner_uid_ = 0;
    gid_t owner_gid_ = 0;
    std::chrono::milliseconds lock_timeout_;
    uid_t euid_;                     // this process's
    bool locked_ = false;            // this store holds the lock now
    mutable bool indexed_ = false;   // the marker was seen
};

// Index directory names: "vm-<vm_id>" (the UUID as records hold it),
// "pf-<name>" with bytes outside [A-Za-z0-9._:-] written %XX.
std::string vm_index_dir(std::string_view vm_id);
std::string pf_index_dir(std::string_view pf);

}  // namespace sriovpt
