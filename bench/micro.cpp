// In-process figures with Google Benchmark (BENCHMARKS.md): the XML rewrite
// per domain size, the sysfs inventory scan per VF count, and one
// reserve/release pair against the real state directory.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <memory>

#include "allocator.hpp"
#include "domain_xml.hpp"
#include "harness.hpp"
#include "rewrite.hpp"

namespace sriovpt::bench {
namespace {

std::string mac_of(unsigned nic) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "00:1a:4a:16:%02x:%02x", (nic >> 8) & 0xff, nic & 0xff);
    return buf;
}

// 8 PFs of `vfs_per_pf` VFs each, all serving sriovnet; built once per size.
test::TestHost& host_with(unsigned vfs_per_pf) {
    static std::map<unsigned, std::unique_ptr<test::TestHost>> hosts;
    auto& host = hosts[vfs_per_pf];
    if (!host) {
        std::string pfs;
        for (unsigned i = 0; i < 8; ++i) pfs += (i ? ", ens" : "ens") + std::to_string(i + 1) + "f0";
        host = std::make_unique<test::TestHost>("[network.sriovnet]\npfs = " + pfs + "\n");
        for (unsigned i = 0; i < 8; ++i) {
            char pci[16];
            std::snprintf(pci, sizeof pci, "0000:%02x:00.0", 0x10 + 4 * i);
            host->sysfs().add_pf({"ens" + std::to_string(i + 1) + "f0", pci, vfs_per_pf, vfs_per_pf});
        }
    }
    return *host;
}

Host host_of(const test::TestHost& t) {
    return Host([path = t.conf_path()] { return load_config(path); },
                [](const Config&) { return open_libvirt("none", std::chrono::seconds(1)); });
}

// Parse, rewrite every other vNIC to a VF, serialise: what before_vm_start
// does to the document, without the reservation.
void BM_Rewrite(benchmark::State& state) {
    const auto nics = static_cast<unsigned>(state.range(0));
    std::vector<test::TestVnic> vnics;
    for (unsigned i = 0; i < nics; ++i) vnics.push_back({mac_of(i)});
    const auto xml = test::make_domain(vnics);
    for (auto _ : state) {
        pugi::xml_document doc;
        parse_xml(doc, xml);
        unsigned i = 0;
        for (const auto& v : find_vnics(doc.document_element())) {
            if (i++ % 2 == 0)
                rewrite_to_hostdev(v.node, VfBinding{PciAddress{0, 0x3b, 2, i & 7}, 100u});
        }
        auto out = serialize_xml(doc);
        benchmark::DoNotOptimize(out);
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * xml.size()));
}
BENCHMARK(BM_Rewrite)->ArgName("vnics")->Arg(1)->Arg(4)->Arg(16)->Arg(32)->Unit(benchmark::kMicrosecond);

// Every VF of every PF read from sysfs as 'sriov-passthrough status' reads them
// (Inventory::scan, several threads: wall time).
void BM_InventoryScan(benchmark::State& state) {
    auto& t = host_with(static_cast<unsigned>(state.range(0)) / 8);
    const Sysfs sysfs(t.dir() + "/sys");
    const Inventory inventory(sysfs);
    for (auto _ : state) {
        size_t n = 0;
        for (const auto& pf : inventory.scan()) n += pf.vfs.size();
        if (n != static_cast<size_t>(state.range(0))) state.SkipWithError("wrong VF count");
    }
    state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_InventoryScan)
    ->ArgName("vfs")
    ->Arg(8)
    ->Arg(128)
    ->Arg(1024)
    ->Arg(2048)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// One free VF chosen, recorded and given back, on a host of 8×64 VFs: the
// lock, the store read, the choice, the record written (temp file + link)
// and removed. A fresh Host each time, as each hook process has.
void BM_ReserveRelease(benchmark::State& state) {
    auto& t = host_with(64);
    VnicRequest req;
    req.vm_id = test::kVmId;
    req.mac = "00:1a:4a:16:01:51";
    req.network = "sriovnet";
    req.pfs = {"ens1f0", "ens2f0", "ens3f0", "ens4f0", "ens5f0", "ens6f0", "ens7f0", "ens8f0"};
    req.origin = "bench";
    for (auto _ : state) {
        auto host = host_of(t);
        Allocator allocator(host);
        const auto grants = allocator.reserve({req});
        const auto released = allocator.release(req.vm_id);
        if (grants.size() != 1 || released.size() != 1) state.SkipWithError("reserve/release did not pair");
    }
}
BENCHMARK(BM_ReserveRelease)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace sriovpt::bench

BENCHMARK_MAIN();
