// The cheapest answer a hook can give: "this call plainly does not concern
// us", found before the C++ run time is set up. Most VM starts on a host have
// no passthrough vNIC, and for them the hook should cost little more than
// starting a process (BENCHMARKS.md).
//
// hooks/main.cpp.in calls plainly_not_ours() from a constructor that runs
// before any C++ static initialisation; when it returns true the hook exits 0
// at once, leaving the XML file as it was. So it uses only system calls, the
// C library and operator new (a std::bad_alloc is caught: then the full hook
// decides), and never throws. What it read is kept for main
// (take_early_domain_xml).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "hooks.hpp"

namespace sriovpt {

// A property value that asks for passthrough: set, not empty, not "false".
// The one rule for the properties passthrough and failover (hooks.cpp reads
// them with it too).
bool asks_for_passthrough_value(const char* value) noexcept;

// Whether `xml` contains the name of either property that makes a vNIC ours
// (passthrough, failover). XML cannot escape characters in element names, so
// a document without these bytes has no such property in its <metadata>.
bool names_our_properties(std::string_view xml) noexcept;

// True when the call plainly does not concern us (docs/design.md,
// "Bystanders"): for before_nic_hotplug, the environment does not ask for
// passthrough or failover; for the other before_* hook points, the file
// named by $_hook_domxml does not name either property. False whenever in
// doubt (no such variable, a file that cannot be read) and for the after_*
// hook points, which may still find a VF of the VM to give back: the hook
// then runs in full.
bool plainly_not_ours(HookPoint hp) noexcept;

// The domain XML file as plainly_not_ours() read it when it did not wave the
// call through, so that a hook reads VDSM's file once.
struct EarlyDomainXml {
    std::string path;
    std::string text;
    mode_t mode = 0;  // the file's (a regular file), kept by a rewrite
};

// What plainly_not_ours() read, if it read `path`; once (the text moves out).
std::optional<EarlyDomainXml> take_early_domain_xml(const std::string& path);

}  // namespace sriovpt
