// sriov-fake-host SPEC ROOT: builds a simulated SR-IOV host's sysfs tree at
// ROOT from the table in SPEC (format: simulator/fake_sysfs.hpp).
#include <fstream>
#include <iostream>

#include "error.hpp"
#include "fake_sysfs.hpp"

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: sriov-fake-host SPEC ROOT\n";
        return 2;
    }
    try {
        std::ifstream spec(argv[1]);
        if (!spec) sriovpt::fail("cannot read ", argv[1]);
        sriovpt::sim::FakeSysfs host(argv[2]);
        sriovpt::with_context(argv[1], [&] { host.apply_spec(spec); });
    } catch (const std::exception& e) {
        std::cerr << "sriov-fake-host: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
