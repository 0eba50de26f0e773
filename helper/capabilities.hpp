// The helper's privilege: CAP_NET_ADMIN and nothing else (docs/design.md,
// "VF settings and the privileged helper").
#pragma once

#include <string>

namespace sriovpt {

struct Capabilities {
    bool net_admin = false;      // CAP_NET_ADMIN is effective
    bool no_new_privs = false;   // the process runs with no_new_privs
};

// Keeps CAP_NET_ADMIN in the effective and permitted sets when the process
// has it, and drops every other capability from them and from the
// inheritable (and so the ambient) set: root running the helper keeps no
// more than the file capability gives the hooks' user. The bounding set is
// left alone (changing it needs CAP_SETPCAP; nothing is executed anyway).
// Throws Error when the capabilities cannot be read or changed.
Capabilities keep_only_net_admin();

// Why the process has no CAP_NET_ADMIN, for an operator: no_new_privs (under
// which exec does not grant file capabilities), or the file capability of
// `program` missing.
std::string missing_net_admin_reason(const Capabilities& caps, const std::string& program);

// This executable's path (/proc/self/exe), or "sriov-passthrough-vf-helper".
std::string own_path();

}  // namespace sriovpt
