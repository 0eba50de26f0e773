// VDSM hook point after_vm_migrate_destination: see HookPoint::after_vm_migrate_destination in common/hooks.cpp.
#include "runner.hpp"

int main() { return sriovpt::run_hook_main(sriovpt::HookPoint::after_vm_migrate_destination); }
