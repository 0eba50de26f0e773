// VDSM hook point before_nic_hotplug: see HookPoint::before_nic_hotplug in common/hooks.cpp.
#include "runner.hpp"

int main() { return sriovpt::run_hook_main(sriovpt::HookPoint::before_nic_hotplug); }
