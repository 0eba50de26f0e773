// VDSM hook point after_vm_destroy: see HookPoint::after_vm_destroy in common/hooks.cpp.
#include "runner.hpp"

int main() { return sriovpt::run_hook_main(sriovpt::HookPoint::after_vm_destroy); }
