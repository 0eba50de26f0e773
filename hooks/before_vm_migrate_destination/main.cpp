// VDSM hook point before_vm_migrate_destination: see HookPoint::before_vm_migrate_destination in common/hooks.cpp.
#include "runner.hpp"

int main() { return sriovpt::run_hook_main(sriovpt::HookPoint::before_vm_migrate_destination); }
