// VDSM hook point after_nic_hotunplug: see HookPoint::after_nic_hotunplug in common/hooks.cpp.
#include "runner.hpp"

int main() { return sriovpt::run_hook_main(sriovpt::HookPoint::after_nic_hotunplug); }
