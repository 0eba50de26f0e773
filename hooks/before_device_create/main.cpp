// VDSM hook point before_device_create: see HookPoint::before_device_create in common/hooks.cpp.
#include "runner.hpp"

int main() { return sriovpt::run_hook_main(sriovpt::HookPoint::before_device_create); }
