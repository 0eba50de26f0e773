// The allocator in-process: choice of VF, all-or-nothing, idempotency, undo,
// reclaim of stale records, and when libvirt is (not) asked. libvirt is a
// hand-written fake that records every call.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "allocator.hpp"
#include "error.hpp"
#include "harness.hpp"
#include "text.hpp"

namespace sriovpt {

// For readable failures (ADL finds it; internal linkage, so no clash).
[[maybe_unused]] static void PrintTo(const PciAddress& pci, std::ostream* out) { *out << pci.to_string(); }

namespace {

using test::TempDir;

constexpr const char* kVmA = "aaaaaaaa-0000-4000-8000-000000000001";
constexpr const char* kVmB = "bbbbbbbb-0000-4000-8000-000000000002";
constexpr const char* kVmC = "cccccccc-0000-4000-8000-000000000003";
constexpr const char* kBoot = "06903289-b3ab-4a3c-810c-fab67696ebbb";
constexpr std::int64_t kNow = 1763890000;

// What the fake libvirt answers, and every call it got.
struct FakeLibvirt {
    std::set<std::string> running;
    std::map<PciAddress, std::string> devices;
    bool unreachable = false;
    int constructed = 0;
    std::vector<std::string> calls;
    // The state directory whose lock each call probes, and the calls made
    // while the lock was held (by anyone: the tests run one Host at a time).
    std::string state_dir;
    std::vector<std::string> calls_under_lock;
};

class FakeDomains final : public DomainInventory {
public:
    explicit FakeDomains(FakeLibvirt& world) : world_(world) { ++world_.constructed; }

    std::set<std::string> running_vm_ids() override {
        note("running_vm_ids");
        if (world_.unreachable) fail("cannot connect to libvirt at fake:///: no daemon");
        return world_.running;
    }
    std::map<PciAddress, std::string> host_devices_in_use() override {
        note("host_devices_in_use");
        if (world_.unreachable) fail("cannot connect to libvirt at fake:///: no daemon");
        return world_.devices;
    }
    std::string domain_xml(const std::string& vm_id) override {
        note("domain_xml");
        fail("the fake libvirt has no domain ", vm_id);
    }

private:
    void note(const std::string& call) {
        world_.calls.push_back(call);
        // flock is per open file: a store of our own contends like another
        // process would.
        if (world_.state_dir.empty()) return;
        try {
            ReservationStore probe(world_.state_dir, std::chrono::milliseconds(1));
            probe.lock();
        } catch (const LockTimeout&) {
            world_.calls_under_lock.push_back(call);
        }
    }

    FakeLibvirt& world_;
};

// Two PFs with four VFs each serving sriovnet; the clock and boot id fixed.
class AllocatorTest : public testing::Test {
protected:
    AllocatorTest() : sysfs_(dir_.path() + "/sys") {
        sysfs_.add_pf({"ens1f0", "0000:3b:00.0", 4});
        sysfs_.add_pf({"ens1f1", "0000:5e:00.0", 4});
        config_.sysfs_root = dir_.path() + "/sys";
        config_.state_dir = dir_.path() + "/state";
        config_.libvirt_uri = "fake:///";
        config_.lock_timeout = 5;
        config_.reclaim_grace = 300;
        config_.networks["sriovnet"] = NetworkPool{"sriovnet", {"ens1f0", "ens1f1"}, std::nullopt};
        libvirt_.state_dir = config_.state_dir;
        reset_host();
    }

    // A fresh Host (as a new hook process would have) over the same tree,
    // state directory and fake libvirt.
    void reset_host() {
        host_ = std::make_unique<Host>([this] { return config_; },
                                       [this](const Config&) { return std::make_unique<FakeDomains>(libvirt_); });
        host_->boot_id = kBoot;
        host_->now = [this] { return now_; };
    }

    VnicRequest vnic(const std::string& vm, const std::string& mac, std::vector<std::string> pfs = {"ens1f0", "ens1f1"}) {
        return VnicRequest{vm, mac, "sriovnet", std::move(pfs), std::nullopt, "before_vm_start"};
    }

    std::vector<Grant> reserve(const std::vector<VnicRequest>& requests) { return Allocator(*host_).reserve(requests); }

    PciAddress vf(const std::string& pf, unsigned index) const { return sysfs_.vf_pci(pf, index); }

    // Good records by VF.
    std::map<PciAddress, Reservation> held() {
        std::map<PciAddress, Reservation> out;
        for (const auto& e : ReservationStore(config_.state_dir, std::chrono::seconds(1)).load()) {
            EXPECT_TRUE(e.record) << e.file << ": " << e.problem;
            if (e.record) out.emplace(e.record->pci, *e.record);
        }
        return out;
    }

    // Writes a record as an earlier hook would have.
    void put_record(const std::string& vm, const std::string& mac, const std::string& pf, unsigned index,
                    std::int64_t created, const std::string& boot = kBoot, const std::string& network = "sriovnet",
                    std::optional<unsigned> vlan = std::nullopt) {
        Reservation r;
        r.pci = vf(pf, index);
        r.pf = pf;
        r.vf_index = index;
        r.vm_id = vm;
        r.mac = mac;
        r.network = network;
        r.vlan = vlan;
        r.boot_id = boot;
        r.created = created;
        r.origin = "before_vm_start";
        ReservationStore store(config_.state_dir, std::chrono::seconds(1));
        ASSERT_TRUE(store.create(r));
    }

    // The device directory of a PF or VF in the fake tree.
    std::string device_dir(const std::string& pci) const { return dir_.path() + "/sys/devices/pci0000:00/" + pci; }

    std::string reserve_error(const std::vector<VnicRequest>& requests) {
        try {
            reserve(requests);
        } catch (const Error& e) {
            return e.what();
        }
        return "(reserved)";
    }

    TempDir dir_;
    sim::FakeSysfs sysfs_;
    Config config_;
    FakeLibvirt libvirt_;
    std::int64_t now_ = kNow;
    std::unique_ptr<Host> host_;
};

TEST_F(AllocatorTest, FastPathNeverLoadsLibvirt) {
    const auto grants = reserve({vnic(kVmA, "00:1a:4a:16:01:51")});
    ASSERT_EQ(grants.size(), 1u);
    EXPECT_TRUE(grants[0].created);
    EXPECT_EQ(grants[0].reservation.pci, vf("ens1f0", 0));
    EXPECT_EQ(grants[0].reservation.boot_id, kBoot);
    EXPECT_EQ(grants[0].reservation.created, kNow);
    EXPECT_EQ(libvirt_.constructed, 0) << "a free VF needs no libvirt";
    EXPECT_TRUE(libvirt_.calls.empty());

    // Even a dry pool whose records are all within the grace period does
    // not need libvirt: none of them could be reclaimed.
    config_.networks["sriovnet"].pfs = {"ens1f0"};
    reset_host();
    for (int i = 2; i <= 4; ++i) reserve({vnic(kVmA, "00:1a:4a:16:01:5" + std::to_string(i), {"ens1f0"})});
    EXPECT_NE(reserve_error({vnic(kVmB, "00:1a:4a:16:02:01", {"ens1f0"})}).find("all 4 VFs of ens1f0 are held"),
              std::string::npos);
    EXPECT_EQ(libvirt_.constructed, 0);
}

TEST_F(AllocatorTest, FewestHeldPfFirstThenPoolOrderThenLowestIndex) {
    // One request at a time, as separate hook runs.
    std::vector<PciAddress> got;
    for (int i = 0; i < 5; ++i) {
        reset_host();
        got.push_back(reserve({vnic(kVmA, "00:1a:4a:16:01:6" + std::to_string(i))}).at(0).reservation.pci);
    }
    EXPECT_EQ(got, (std::vector<PciAddress>{vf("ens1f0", 0), vf("ens1f1", 0), vf("ens1f0", 1), vf("ens1f1", 1),
                                            vf("ens1f0", 2)}));

    // ens1f0 now holds 3, ens1f1 2: the next goes to ens1f1 whatever the pool order.
    reset_host();
    EXPECT_EQ(reserve({vnic(kVmB, "00:1a:4a:16:02:01", {"ens1f0", "ens1f1"})}).at(0).reservation.pci, vf("ens1f1", 2));

    // A hole at a low index is filled first on the PF that has it.
    ASSERT_EQ(Allocator(*host_).release(kVmA, "00:1a:4a:16:01:60").size(), 1u);  // ens1f0 VF 0
    reset_host();
    EXPECT_EQ(reserve({vnic(kVmB, "00:1a:4a:16:02:02")}).at(0).reservation.pci, vf("ens1f0", 0));

    // Ties are broken by the operator's order, not by name.
    ASSERT_EQ(Allocator(*host_).release(kVmB).size(), 2u);
    ASSERT_EQ(Allocator(*host_).release(kVmA).size(), 4u);
    reset_host();
    EXPECT_EQ(reserve({vnic(kVmC, "00:1a:4a:16:03:01", {"ens1f1", "ens1f0"})}).at(0).reservation.pci, vf("ens1f1", 0));
}

TEST_F(AllocatorTest, SeveralVnicsOfOneVmSpreadOverPfs) {
    const auto grants = reserve({vnic(kVmA, "00:1a:4a:16:01:51"), vnic(kVmA, "00:1a:4a:16:01:52"),
                                 vnic(kVmA, "00:1a:4a:16:01:53")});
    ASSERT_EQ(grants.size(), 3u);
    EXPECT_EQ(grants[0].reservation.pci, vf("ens1f0", 0));
    EXPECT_EQ(grants[1].reservation.pci, vf("ens1f1", 0));
    EXPECT_EQ(grants[2].reservation.pci, vf("ens1f0", 1));
    EXPECT_EQ(held().size(), 3u);
}

TEST_F(AllocatorTest, SkipsVfsThatAreNotOursToGive) {
    sysfs_.set_vf_driver("ens1f0", 0, "vfio-pci");
    sysfs_.set_vf_driver("ens1f0", 1, "pci-stub");
    sysfs_.set_vf_netdev_state("ens1f0", 2, "up");
    sysfs_.set_vf_driver("ens1f0", 3, "");  // no driver: free
    const auto grants = reserve({vnic(kVmA, "00:1a:4a:16:01:51", {"ens1f0"})});
    EXPECT_EQ(grants.at(0).reservation.pci, vf("ens1f0", 3));
    const auto why = reserve_error({vnic(kVmB, "00:1a:4a:16:02:01", {"ens1f0"})});
    EXPECT_NE(why.find("ens1f0 has 4 VFs: 1 held, 2 bound to vfio-pci without a reservation, 1 in use by the host"),
              std::string::npos)
        << why;
}

TEST_F(AllocatorTest, AllOrNothing) {
    config_.networks["sriovnet"].pfs = {"ens1f0"};
    reserve({vnic(kVmB, "00:1a:4a:16:02:01", {"ens1f0"})});
    reset_host();
    const auto why = reserve_error({vnic(kVmA, "00:1a:4a:16:01:51", {"ens1f0"}), vnic(kVmA, "00:1a:4a:16:01:52", {"ens1f0"}),
                                    vnic(kVmA, "00:1a:4a:16:01:53", {"ens1f0"}), vnic(kVmA, "00:1a:4a:16:01:54", {"ens1f0"})});
    EXPECT_EQ(why.rfind("reserving a VF for vNIC 00:1a:4a:16:01:54 on network sriovnet: no free VF (all 4 VFs of "
                        "ens1f0 are held",
                        0),
              0u)
        << why;
    const auto left = held();
    ASSERT_EQ(left.size(), 1u) << "the three VFs reserved before the failure are given back";
    EXPECT_EQ(left.begin()->second.vm_id, kVmB);

    // A failure on a missing PF undoes too.
    reset_host();
    EXPECT_NE(reserve_error({vnic(kVmA, "00:1a:4a:16:01:51"), vnic(kVmA, "00:1a:4a:16:01:52", {"ens9f9"})})
                  .find("ens9f9 is not an SR-IOV PF on this host"),
              std::string::npos);
    EXPECT_EQ(held().size(), 1u);
}

TEST_F(AllocatorTest, SameVnicGetsTheVfItHolds) {
    const auto first = reserve({vnic(kVmA, "00:1a:4a:16:01:51"), vnic(kVmA, "00:1a:4a:16:01:52")});
    reset_host();
    now_ += 1000;
    const auto again = reserve({vnic(kVmA, "00:1a:4a:16:01:52"), vnic(kVmA, "00:1a:4a:16:01:51"),
                                vnic(kVmA, "00:1a:4a:16:01:53")});
    ASSERT_EQ(again.size(), 3u);
    EXPECT_FALSE(again[0].created);
    EXPECT_EQ(again[0].reservation, first[1].reservation) << "the record is returned as it is, not rewritten";
    EXPECT_FALSE(again[1].created);
    EXPECT_EQ(again[1].reservation, first[0].reservation);
    EXPECT_TRUE(again[2].created);
    EXPECT_EQ(held().size(), 3u);

    // Undoing the second call removes only what it created.
    Allocator(*host_).undo(again);
    const auto left = held();
    EXPECT_EQ(left.size(), 2u);
    EXPECT_TRUE(left.count(first[0].reservation.pci));
    EXPECT_TRUE(left.count(first[1].reservation.pci));
}

TEST_F(AllocatorTest, UndoNeverRemovesAnotherHoldersRecord) {
    // A's grant is taken away (released or reclaimed) and its VF given to B;
    // A's vNIC meanwhile holds another VF. Undoing A's old grant must not
    // take B's VF.
    const auto old_grant = reserve({vnic(kVmA, "00:1a:4a:16:01:51", {"ens1f0"})});
    ASSERT_EQ(old_grant.at(0).reservation.pci, vf("ens1f0", 0));
    Allocator(*host_).release(kVmA);
    reset_host();
    ASSERT_EQ(reserve({vnic(kVmB, "00:1a:4a:16:02:01", {"ens1f0"})}).at(0).reservation.pci, vf("ens1f0", 0));
    reset_host();
    ASSERT_EQ(reserve({vnic(kVmA, "00:1a:4a:16:01:51", {"ens1f0"})}).at(0).reservation.pci, vf("ens1f0", 1));

    Allocator(*host_).undo(old_grant);
    const auto left = held();
    ASSERT_TRUE(left.count(vf("ens1f0", 0))) << "B's record was removed by A's undo";
    EXPECT_EQ(left.at(vf("ens1f0", 0)).vm_id, kVmB);
}

TEST_F(AllocatorTest, ReleaseIsIdempotentAndScopedToTheVnic) {
    reserve({vnic(kVmA, "00:1a:4a:16:01:51"), vnic(kVmA, "00:1a:4a:16:01:52")});
    reserve({vnic(kVmB, "00:1a:4a:16:02:01")});
    Allocator allocator(*host_);
    EXPECT_EQ(allocator.release(kVmA, std::string("00:1a:4a:16:01:52")).size(), 1u);
    EXPECT_TRUE(allocator.release(kVmA, std::string("00:1a:4a:16:01:52")).empty());
    EXPECT_TRUE(allocator.release(kVmC).empty());
    EXPECT_EQ(allocator.release(kVmA).size(), 1u);
    EXPECT_TRUE(allocator.release(kVmA).empty());
    const auto left = held();
    ASSERT_EQ(left.size(), 1u);
    EXPECT_EQ(left.begin()->second.vm_id, kVmB);
}

TEST_F(AllocatorTest, DryPoolReclaimsRecordsOfVmsThatDoNotRun) {
    config_.networks["sriovnet"].pfs = {"ens1f0"};
    put_record(kVmA, "00:1a:4a:16:01:51", "ens1f0", 0, kNow - 1000);
    put_record(kVmB, "00:1a:4a:16:02:01", "ens1f0", 1, kNow - 1000);
    put_record(kVmB, "00:1a:4a:16:02:02", "ens1f0", 2, kNow - 1000);
    put_record(kVmC, "00:1a:4a:16:03:01", "ens1f0", 3, kNow - 1000);
    libvirt_.running = {kVmB, kVmC};
    reset_host();
    const auto grants = reserve({vnic("dddddddd-0000-4000-8000-000000000004", "00:1a:4a:16:04:01", {"ens1f0"})});
    EXPECT_EQ(grants.at(0).reservation.pci, vf("ens1f0", 0)) << "A's VF, reclaimed";
    EXPECT_EQ(libvirt_.constructed, 1);
    EXPECT_EQ(libvirt_.calls, std::vector<std::string>{"running_vm_ids"}) << "asked once, only which VMs run";
    const auto left = held();
    EXPECT_EQ(left.size(), 4u);
    EXPECT_EQ(left.at(vf("ens1f0", 1)).vm_id, kVmB) << "running VMs keep their VFs";
    EXPECT_EQ(left.at(vf("ens1f0", 3)).vm_id, kVmC);

    // Nothing left to reclaim: a clean refusal, libvirt asked once more.
    reset_host();
    const auto why = reserve_error({vnic("eeeeeeee-0000-4000-8000-000000000005", "00:1a:4a:16:05:01", {"ens1f0"})});
    EXPECT_NE(why.find("no free VF (all 4 VFs of ens1f0 are held)"), std::string::npos) << why;
    EXPECT_EQ(libvirt_.calls.size(), 2u);
}

TEST_F(AllocatorTest, RecordsWithinTheGracePeriodAreNeverReclaimed) {
    config_.networks["sriovnet"].pfs = {"ens1f0"};
    config_.reclaim_grace = 300;
    for (unsigned i = 0; i < 4; ++i) put_record(kVmA, "00:1a:4a:16:01:5" + std::to_string(i), "ens1f0", i, kNow - 299);
    reset_host();  // libvirt_.running is empty: no VM runs
    EXPECT_NE(reserve_error({vnic(kVmB, "00:1a:4a:16:02:01", {"ens1f0"})}).find("no free VF"), std::string::npos);
    EXPECT_EQ(held().size(), 4u);
    EXPECT_EQ(Allocator(*host_).collect_garbage(false).reclaimed.size(), 0u);

    now_ = kNow + 1;  // now exactly 300 s old
    reset_host();
    EXPECT_EQ(reserve({vnic(kVmB, "00:1a:4a:16:02:01", {"ens1f0"})}).at(0).reservation.pci, vf("ens1f0", 0));
}

TEST_F(AllocatorTest, AReserveNeverReclaimsTheRecordsOfTheVmItServes) {
    // reclaim_grace = 0 and a VM that libvirt does not know yet (VDSM runs
    // before_vm_start before it defines the domain): neither the records
    // this very call made nor those the VM held before are stale to it.
    config_.networks["sriovnet"].pfs = {"ens1f0"};
    config_.reclaim_grace = 0;
    put_record(kVmA, "00:1a:4a:16:01:53", "ens1f0", 0, kNow - 1000);
    put_record(kVmB, "00:1a:4a:16:02:01", "ens1f0", 1, kNow);
    reset_host();
    const auto grants = reserve({vnic(kVmA, "00:1a:4a:16:01:51", {"ens1f0"}), vnic(kVmA, "00:1a:4a:16:01:52", {"ens1f0"}),
                                 vnic(kVmA, "00:1a:4a:16:01:53", {"ens1f0"}), vnic(kVmA, "00:1a:4a:16:01:54", {"ens1f0"})});
    ASSERT_EQ(grants.size(), 4u);
    EXPECT_EQ(grants[0].reservation.pci, vf("ens1f0", 2));
    EXPECT_EQ(grants[1].reservation.pci, vf("ens1f0", 3));
    EXPECT_EQ(grants[2].reservation.pci, vf("ens1f0", 0)) << "the VF it held";
    EXPECT_FALSE(grants[2].created);
    EXPECT_EQ(grants[3].reservation.pci, vf("ens1f0", 1)) << "B's, reclaimed: B does not run";
    const auto left = held();
    ASSERT_EQ(left.size(), 4u);
    for (const auto& g : grants) {
        ASSERT_TRUE(left.count(g.reservation.pci)) << g.reservation.pci.to_string() << " granted without a record";
        EXPECT_EQ(left.at(g.reservation.pci), g.reservation);
    }

    // Two vNICs, one VF: the second must fail, not get the first one's VF.
    Allocator(*host_).release(kVmA);
    config_.networks["sriovnet"].pfs = {"ens1f1"};
    for (unsigned i = 1; i < 4; ++i) put_record(kVmB, "00:1a:4a:16:02:0" + std::to_string(i), "ens1f1", i, kNow + 10);
    reset_host();
    const auto why = reserve_error({vnic(kVmC, "00:1a:4a:16:03:01", {"ens1f1"}), vnic(kVmC, "00:1a:4a:16:03:02", {"ens1f1"})});
    EXPECT_NE(why.find("reserving a VF for vNIC 00:1a:4a:16:03:02 on network sriovnet: no free VF"), std::string::npos)
        << why;
    for (const auto& [pci, r] : held()) EXPECT_NE(r.vm_id, kVmC) << "all or nothing";
}

TEST_F(AllocatorTest, RecordsOfAnotherBootAreStaleWithoutLibvirt) {
    config_.networks["sriovnet"].pfs = {"ens1f0"};
    libvirt_.unreachable = true;
    put_record(kVmA, "00:1a:4a:16:01:51", "ens1f0", 0, kNow - 10, "11111111-2222-3333-4444-555555555555");
    for (unsigned i = 1; i < 4; ++i) put_record(kVmB, "00:1a:4a:16:02:0" + std::to_string(i), "ens1f0", i, kNow - 10);
    reset_host();
    EXPECT_EQ(reserve({vnic(kVmC, "00:1a:4a:16:03:01", {"ens1f0"})}).at(0).reservation.pci, vf("ens1f0", 0));
    EXPECT_EQ(libvirt_.constructed, 0) << "fresh records of this boot need no question to libvirt";
}

TEST_F(AllocatorTest, UnreachableLibvirtFailsCleanly) {
    config_.networks["sriovnet"].pfs = {"ens1f0"};
    libvirt_.unreachable = true;
    for (unsigned i = 0; i < 4; ++i) put_record(kVmA, "00:1a:4a:16:01:5" + std::to_string(i), "ens1f0", i, kNow - 1000);
    reset_host();
    const auto why = reserve_error({vnic(kVmB, "00:1a:4a:16:02:01", {"ens1f0"})});
    EXPECT_NE(why.find("all 4 VFs of ens1f0 are held"), std::string::npos) << why;
    EXPECT_NE(why.find("could not ask libvirt which VMs run, so no reservation of this boot was reclaimed: cannot "
                       "connect to libvirt"),
              std::string::npos)
        << why;
    EXPECT_EQ(held().size(), 4u);
}

TEST_F(AllocatorTest, CheckDomainsSkipsVfsUsedByRunningDomains) {
    libvirt_.devices = {{vf("ens1f0", 0), kVmC}, {vf("ens1f1", 0), kVmC}};
    reserve({vnic(kVmA, "00:1a:4a:16:01:51")});
    EXPECT_EQ(held().begin()->first, vf("ens1f0", 0)) << "check_domains = no: libvirt not asked";
    EXPECT_EQ(libvirt_.constructed, 0);
    Allocator(*host_).release(kVmA);

    config_.check_domains = true;
    reset_host();
    const auto grants = reserve({vnic(kVmA, "00:1a:4a:16:01:51"), vnic(kVmA, "00:1a:4a:16:01:52")});
    EXPECT_EQ(grants.at(0).reservation.pci, vf("ens1f0", 1));
    EXPECT_EQ(grants.at(1).reservation.pci, vf("ens1f1", 1));
    EXPECT_EQ(libvirt_.calls, std::vector<std::string>{"host_devices_in_use"}) << "asked once per call";

    libvirt_.unreachable = true;
    reset_host();
    const auto why = reserve_error({vnic(kVmB, "00:1a:4a:16:02:01")});
    EXPECT_NE(why.find("checking the VF against running libvirt domains (check_domains = yes)"), std::string::npos)
        << why;
    EXPECT_EQ(held().size(), 2u);
}

TEST_F(AllocatorTest, LeftoverTemporaryOfAnEarlierProcessWithOurPidDoesNotBlock) {
    // A writer killed between creating its temporary and linking it leaves
    // .tmp-<pid>-<n>; pids are reused, and a later hook with that pid must
    // still be able to reserve.
    std::filesystem::create_directories(config_.state_dir);
    for (int n = 0; n < 64; ++n)
        test::write_text(config_.state_dir + "/.tmp-" + std::to_string(::getpid()) + "-" + std::to_string(n), "sriov");
    for (int i = 0; i < 8; ++i) {
        reset_host();
        EXPECT_EQ(reserve_error({vnic(kVmA, "00:1a:4a:16:01:5" + std::to_string(i))}), "(reserved)");
    }
    EXPECT_EQ(held().size(), 8u);
}

TEST_F(AllocatorTest, GarbageCollectionDryRunChangesNothing) {
    put_record(kVmA, "00:1a:4a:16:01:51", "ens1f0", 0, kNow - 1000);
    put_record(kVmB, "00:1a:4a:16:02:01", "ens1f0", 1, kNow - 1000);
    put_record(kVmC, "00:1a:4a:16:03:01", "ens1f0", 2, kNow - 10);  // within the grace period
    test::write_text(config_.state_dir + "/.tmp-999999-0", "half a rec");
    libvirt_.running = {kVmB};
    reset_host();
    const auto dry = Allocator(*host_).collect_garbage(true);
    ASSERT_EQ(dry.reclaimed.size(), 1u);
    EXPECT_EQ(dry.reclaimed[0].first.vm_id, kVmA);
    EXPECT_EQ(dry.reclaimed[0].second, cat("VM ", kVmA, " is not running"));
    EXPECT_TRUE(dry.temporaries.empty());
    EXPECT_EQ(held().size(), 3u);
    EXPECT_TRUE(std::filesystem::exists(config_.state_dir + "/.tmp-999999-0"));

    const auto real = Allocator(*host_).collect_garbage(false);
    ASSERT_EQ(real.reclaimed.size(), 1u);
    EXPECT_EQ(real.temporaries, std::vector<std::string>{".tmp-999999-0"});
    const auto left = held();
    EXPECT_EQ(left.size(), 2u);
    EXPECT_FALSE(left.count(vf("ens1f0", 0)));
}

// A start and a release read the records of their own VM, no other
// (issue 11: the cost of a start must not grow with the records held).
// Seen by the access times of the record files.
TEST_F(AllocatorTest, AStartAndAReleaseReadOnlyTheirOwnVmsRecords) {
    for (unsigned i = 0; i < 3; ++i) put_record(kVmB, "00:1a:4a:16:02:0" + std::to_string(i), "ens1f0", i, kNow);
    for (unsigned i = 0; i < 3; ++i) put_record(kVmC, "00:1a:4a:16:03:0" + std::to_string(i), "ens1f1", i, kNow);
    put_record(kVmA, "00:1a:4a:16:01:51", "ens1f1", 3, kNow);
    const auto state = config_.state_dir;
    const auto age_all = [&] {
        for (const auto& e : std::filesystem::directory_iterator(state)) {
            if (e.path().filename().string().rfind("vf-", 0) != 0) continue;
            const timespec times[2] = {{1, 0}, {UTIME_OMIT, UTIME_OMIT}};
            ASSERT_EQ(::utimensat(AT_FDCWD, e.path().c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
        }
    };
    const auto read_since_aged = [&] {
        std::set<std::string> out;
        for (const auto& e : std::filesystem::directory_iterator(state)) {
            struct stat st{};
            if (e.path().filename().string().rfind("vf-", 0) == 0 && ::lstat(e.path().c_str(), &st) == 0 &&
                st.st_atim.tv_sec != 1)
                out.insert(e.path().filename().string());
        }
        return out;
    };
    age_all();
    (void)test::read_text(state + "/" + ReservationStore::file_name(vf("ens1f0", 0)));
    if (read_since_aged().empty()) GTEST_SKIP() << "the file system does not record access times";

    age_all();
    reset_host();
    const auto grants = reserve({vnic(kVmA, "00:1a:4a:16:01:51"), vnic(kVmA, "00:1a:4a:16:01:52")});
    ASSERT_EQ(grants.size(), 2u);
    EXPECT_FALSE(grants[0].created) << "its own record was found through the index";
    EXPECT_EQ(grants[1].reservation.pci, vf("ens1f0", 3)) << "ens1f0 holds 3, ens1f1 4";
    // Its own record, read; the one it made, new.
    EXPECT_EQ(read_since_aged(), (std::set<std::string>{ReservationStore::file_name(vf("ens1f1", 3)),
                                                        ReservationStore::file_name(vf("ens1f0", 3))}))
        << "read another VM's record";

    age_all();
    reset_host();
    EXPECT_EQ(Allocator(*host_).release(kVmA).size(), 2u);
    const auto read = read_since_aged();
    EXPECT_TRUE(read.empty()) << "read another VM's record: " << join(std::vector<std::string>(read.begin(), read.end()));
    EXPECT_EQ(held().size(), 6u);
}

// --- A leftover reservation of the same vNIC (issue 10, item 2) ---------------
//
// An after_* hook that was killed or timed out leaves the vNIC's record; the
// vNIC then starts again, maybe on another network, pool or VLAN.

TEST_F(AllocatorTest, ALeftoverForAnotherNetworkIsGivenBackAndTheVnicPlannedAfresh) {
    config_.networks["othernet"] = NetworkPool{"othernet", {"ens1f1"}, 200};
    put_record(kVmA, "00:1a:4a:16:01:51", "ens1f0", 0, kNow - 1000, kBoot, "sriovnet", 100);
    reset_host();
    const auto grants = reserve({VnicRequest{kVmA, "00:1a:4a:16:01:51", "othernet", {"ens1f1"}, 200, "before_vm_start"}});
    ASSERT_EQ(grants.size(), 1u);
    EXPECT_TRUE(grants[0].created);
    EXPECT_EQ(grants[0].reservation.pci, vf("ens1f1", 0)) << "a VF of the new network's pool";
    EXPECT_EQ(grants[0].reservation.network, "othernet");
    EXPECT_EQ(grants[0].reservation.vlan, 200u);
    ASSERT_TRUE(grants[0].replaced);
    EXPECT_EQ(grants[0].replaced->pci, vf("ens1f0", 0));
    const auto left = held();
    ASSERT_EQ(left.size(), 1u) << "the leftover is given back";
    EXPECT_EQ(left.begin()->second, grants[0].reservation);
}

TEST_F(AllocatorTest, ALeftoverWithAnotherVlanOrOutsideThePoolIsNotReused) {
    // Another VLAN, same network and pool: planned afresh, which may well
    // give the same VF, now with the new VLAN.
    put_record(kVmA, "00:1a:4a:16:01:51", "ens1f0", 0, kNow - 1000, kBoot, "sriovnet", 100);
    reset_host();
    auto req = vnic(kVmA, "00:1a:4a:16:01:51");
    req.vlan = 300;
    auto grants = reserve({req});
    EXPECT_TRUE(grants.at(0).created);
    EXPECT_EQ(grants[0].reservation.pci, vf("ens1f0", 0));
    EXPECT_EQ(held().at(vf("ens1f0", 0)).vlan, 300u) << "the record says the VLAN the VF gets";

    // No VLAN now: the tagged leftover does not serve.
    reset_host();
    grants = reserve({vnic(kVmA, "00:1a:4a:16:01:51")});
    EXPECT_TRUE(grants.at(0).created);
    EXPECT_FALSE(held().at(grants[0].reservation.pci).vlan);

    // sriov_pf narrows the pool to a PF the leftover is not on.
    reset_host();
    grants = reserve({vnic(kVmA, "00:1a:4a:16:01:51", {"ens1f1"})});
    EXPECT_TRUE(grants.at(0).created);
    EXPECT_EQ(grants[0].reservation.pci, vf("ens1f1", 0));
    EXPECT_EQ(held().size(), 1u);

    // What matches is reused as it is.
    reset_host();
    now_ += 50;
    const auto again = reserve({vnic(kVmA, "00:1a:4a:16:01:51", {"ens1f1", "ens1f0"})});
    EXPECT_FALSE(again.at(0).created);
    EXPECT_FALSE(again[0].replaced);
    EXPECT_EQ(again[0].reservation, grants[0].reservation);
}

TEST_F(AllocatorTest, ALeftoverIsGivenBackEvenWhenTheNewPlanFailsAndNothingNewIsHeld) {
    // othernet's only PF is full; the vNIC's leftover on sriovnet goes all
    // the same: it belongs to an earlier life of a vNIC that is being
    // started anew, and nothing uses it.
    config_.networks["othernet"] = NetworkPool{"othernet", {"ens1f1"}, std::nullopt};
    put_record(kVmA, "00:1a:4a:16:01:51", "ens1f0", 2, kNow - 10);
    for (unsigned i = 0; i < 4; ++i) put_record(kVmB, "00:1a:4a:16:02:0" + std::to_string(i), "ens1f1", i, kNow - 10);
    reset_host();
    const auto why = reserve_error({vnic(kVmA, "00:1a:4a:16:01:52"),
                                    VnicRequest{kVmA, "00:1a:4a:16:01:51", "othernet", {"ens1f1"}, std::nullopt,
                                                "before_vm_start"}});
    EXPECT_EQ(why.rfind("reserving a VF for vNIC 00:1a:4a:16:01:51 on network othernet: no free VF (all 4 VFs of ens1f1 "
                        "are held)",
                        0),
              0u)
        << why;
    const auto left = held();
    EXPECT_EQ(left.size(), 4u) << "neither the leftover nor the first vNIC's new VF is held";
    for (const auto& [pci, r] : left) EXPECT_EQ(r.vm_id, kVmB);
}

// --- libvirt is never asked under the lock (issue 10, item 6) ------------------

TEST_F(AllocatorTest, LibvirtIsAskedWithTheLockReleased) {
    // A dry pool: which VMs run decides what is reclaimed.
    config_.networks["sriovnet"].pfs = {"ens1f0"};
    for (unsigned i = 0; i < 4; ++i) put_record(kVmB, "00:1a:4a:16:02:0" + std::to_string(i), "ens1f0", i, kNow - 1000);
    libvirt_.running = {kVmB};
    libvirt_.devices = {{vf("ens1f1", 0), kVmC}};
    reset_host();
    EXPECT_NE(reserve_error({vnic(kVmA, "00:1a:4a:16:01:51", {"ens1f0"})}).find("no free VF"), std::string::npos);
    EXPECT_EQ(libvirt_.calls, std::vector<std::string>{"running_vm_ids"});

    // check_domains: every choice needs libvirt.
    config_.check_domains = true;
    config_.networks["sriovnet"].pfs = {"ens1f1"};
    reset_host();
    EXPECT_EQ(reserve({vnic(kVmA, "00:1a:4a:16:01:51", {"ens1f1"})}).at(0).reservation.pci, vf("ens1f1", 1));

    // gc.
    libvirt_.running.clear();
    reset_host();
    EXPECT_EQ(Allocator(*host_).collect_garbage(false).reclaimed.size(), 4u);

    EXPECT_EQ(libvirt_.calls, (std::vector<std::string>{"running_vm_ids", "host_devices_in_use", "running_vm_ids"}));
    EXPECT_TRUE(libvirt_.calls_under_lock.empty())
        << "asked with the lock held: " << join(libvirt_.calls_under_lock) << "; a libvirt that hangs then keeps "
        << "every other hook (a VM destroy) from the lock";
}

// --- sysfs values out of range, VFs missing from sysfs (issue 10, item 7) -------

TEST_F(AllocatorTest, APfWhoseSriovFilesAreNotNumbersInRangeIsNamedAndSkipped) {
    for (const auto& [value, shown] : std::vector<std::pair<std::string, std::string>>{
             {"-1", "'-1'"}, {"abc", "'abc'"}, {"9", "'9'"}, {"", "''"}, {"4294967297", "'4294967297'"}}) {
        SCOPED_TRACE(value);
        test::write_text(device_dir("0000:3b:00.0") + "/sriov_numvfs", value + "\n");
        reset_host();
        EXPECT_EQ(reserve({vnic(kVmA, "00:1a:4a:16:01:51")}).at(0).reservation.pci, vf("ens1f1", 0))
            << "the other PF serves";
        Allocator(*host_).release(kVmA);
        reset_host();
        EXPECT_EQ(reserve_error({vnic(kVmA, "00:1a:4a:16:01:51", {"ens1f0"})}),
                  "reserving a VF for vNIC 00:1a:4a:16:01:51 on network sriovnet: no free VF (ens1f0 cannot be used: "
                  "sriov_numvfs is " + shown + ", not a number from 0 to 8 (sriov_totalvfs))");
    }
    test::write_text(device_dir("0000:3b:00.0") + "/sriov_numvfs", "4\n");
    test::write_text(device_dir("0000:3b:00.0") + "/sriov_totalvfs", "-1\n");
    reset_host();
    EXPECT_EQ(reserve_error({vnic(kVmA, "00:1a:4a:16:01:51", {"ens1f0"})}),
              "reserving a VF for vNIC 00:1a:4a:16:01:51 on network sriovnet: no free VF (ens1f0 cannot be used: "
              "sriov_totalvfs is '-1', not a number from 0 to 65535)");
}

TEST_F(AllocatorTest, VfsMissingFromSysfsAreCountedNotGiven) {
    // virtfn0 dangles (the VF's device went away), virtfn1 is gone.
    std::filesystem::remove_all(device_dir(vf("ens1f0", 0).to_string()));
    std::filesystem::remove(device_dir("0000:3b:00.0") + "/virtfn1");
    for (unsigned i = 2; i < 4; ++i) put_record(kVmB, "00:1a:4a:16:02:0" + std::to_string(i), "ens1f0", i, kNow);
    reset_host();
    EXPECT_EQ(reserve_error({vnic(kVmA, "00:1a:4a:16:01:51", {"ens1f0"})}),
              "reserving a VF for vNIC 00:1a:4a:16:01:51 on network sriovnet: no free VF (ens1f0 has 4 VFs: 2 held, 2 "
              "missing from sysfs (virtfn link absent or dangling))");
}

}  // namespace
}  // namespace sriovpt

namespace sriovpt {
namespace {

// VF settings (docs/design.md, "VF settings in the hooks"): a record that
// says its VF has settings is never simply removed.
class AllocatorVfSettings : public AllocatorTest {
protected:
    VnicRequest trusted(const std::string& vm, const std::string& mac, std::vector<std::string> pfs = {"ens1f0", "ens1f1"}) {
        auto req = vnic(vm, mac, std::move(pfs));
        req.vf_settings.trust = true;
        return req;
    }
};

TEST_F(AllocatorVfSettings, TheRecordSaysTheSettingsFromTheStart) {
    const auto grants = reserve({trusted(kVmA, "00:1a:4a:16:01:51")});
    EXPECT_EQ(held().at(vf("ens1f0", 0)).vf_settings.trust, true);
    EXPECT_EQ(grants[0].reservation.vf_settings.trust, true);
}

TEST_F(AllocatorVfSettings, ReleaseMarksInsteadOfRemovingAndNobodyGetsTheVf) {
    reserve({trusted(kVmA, "00:1a:4a:16:01:51", {"ens1f0"})});
    const auto released = Allocator(*host_).release(kVmA);
    ASSERT_EQ(released.size(), 1u);
    EXPECT_TRUE(released[0].reset_pending);
    EXPECT_TRUE(held().at(vf("ens1f0", 0)).reset_pending) << "kept, marked";

    // Neither the same vNIC nor another gets it while it waits.
    Allocator allocator(*host_);
    const auto again = allocator.reserve({vnic(kVmA, "00:1a:4a:16:01:51", {"ens1f0"})});
    EXPECT_EQ(again[0].reservation.pci, vf("ens1f0", 1));
    EXPECT_TRUE(again[0].created);
    ASSERT_EQ(allocator.pending_resets().size(), 1u) << "reported for the caller to reset";
    EXPECT_EQ(allocator.pending_resets()[0], held().at(vf("ens1f0", 0)));

    // Giving it back again changes nothing; release_vf keeps it marked too.
    EXPECT_EQ(Allocator(*host_).release(kVmA, std::string("00:1a:4a:16:01:51")).size(), 2u);
    EXPECT_TRUE(Allocator(*host_).release_vf(vf("ens1f0", 0)));
    EXPECT_TRUE(held().at(vf("ens1f0", 0)).reset_pending);
}

TEST_F(AllocatorVfSettings, UndoMarksTooButARecordWithoutSettingsGoes) {
    const auto grants = reserve({trusted(kVmA, "00:1a:4a:16:01:51"), vnic(kVmA, "00:1a:4a:16:01:52")});
    Allocator(*host_).undo(grants);
    const auto left = held();
    ASSERT_EQ(left.size(), 1u);
    EXPECT_TRUE(left.begin()->second.reset_pending);
    EXPECT_EQ(left.begin()->second.mac, "00:1a:4a:16:01:51");
}

TEST_F(AllocatorVfSettings, AStaleRecordWithSettingsIsMarkedNotReclaimedAndAnEarlierBootsGoes) {
    config_.networks["sriovnet"].pfs = {"ens1f0"};
    reset_host();
    for (int i = 1; i <= 4; ++i) reserve({trusted(kVmA, "00:1a:4a:16:01:5" + std::to_string(i), {"ens1f0"})});
    now_ += 1000;
    libvirt_.running = {};
    reset_host();
    const auto why = reserve_error({vnic(kVmB, "00:1a:4a:16:02:01", {"ens1f0"})});
    EXPECT_NE(why.find("no free VF (all 4 VFs of ens1f0 are held)"), std::string::npos)
        << "stale, but waiting for a reset: " << why;
    for (const auto& [pci, r] : held()) EXPECT_TRUE(r.reset_pending) << pci.to_string();

    // gc finds nothing more to reclaim from them.
    EXPECT_TRUE(Allocator(*host_).collect_garbage(false).reclaimed.empty());

    // After a reboot the kernel made the VFs afresh: nothing to reset.
    host_->boot_id = "another-boot";
    const auto report = Allocator(*host_).collect_garbage(false);
    EXPECT_EQ(report.reclaimed.size(), 4u);
    EXPECT_TRUE(held().empty());
}

}  // namespace
}  // namespace sriovpt
