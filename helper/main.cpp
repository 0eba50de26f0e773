// sriov-passthrough-vf-helper: see vf_helper.hpp.
#include <string>
#include <vector>

#include "vf_helper.hpp"

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    // The policy's path is fixed at build time: a caller must never choose
    // the file that decides what it may do. Only the tests' build of the
    // helper, which is never installed, takes --policy.
    std::string policy = SRIOVPT_VF_HELPER_POLICY;
#ifdef SRIOVPT_VF_HELPER_POLICY_OPTION
    if (args.size() >= 2 && args[0] == "--policy") {
        policy = args[1];
        args.erase(args.begin(), args.begin() + 2);
    }
#endif
    return sriovpt::run_vf_helper(args, policy);
}
