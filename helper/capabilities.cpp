#include "capabilities.hpp"

#include <cap-ng.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <climits>

#include "error.hpp"

namespace sriovpt {

Capabilities keep_only_net_admin() {
    Capabilities caps;
    caps.no_new_privs = ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1;
    if (capng_get_caps_process() != 0) fail("cannot read this process's capabilities");
    const bool permitted = capng_have_capability(CAPNG_PERMITTED, CAP_NET_ADMIN) != 0;
    capng_clear(CAPNG_SELECT_CAPS);
    if (permitted && capng_update(CAPNG_ADD, static_cast<capng_type_t>(CAPNG_EFFECTIVE | CAPNG_PERMITTED), CAP_NET_ADMIN) != 0)
        fail("cannot keep CAP_NET_ADMIN");
    if (capng_apply(CAPNG_SELECT_CAPS) != 0) fail("cannot drop the capabilities other than CAP_NET_ADMIN");
    // Read back what the kernel now holds, rather than trusting the request.
    if (capng_get_caps_process() != 0) fail("cannot read this process's capabilities");
    caps.net_admin = capng_have_capability(CAPNG_EFFECTIVE, CAP_NET_ADMIN) != 0;
    return caps;
}

std::string missing_net_admin_reason(const Capabilities& caps, const std::string& program) {
    if (caps.no_new_privs)
        return cat("the helper has no CAP_NET_ADMIN: its caller runs with NoNewPrivileges (no_new_privs), under which "
                   "the kernel does not grant the file capability cap_net_admin=ep of ", program,
                   "; run the hooks without NoNewPrivileges");
    return cat("the helper has no CAP_NET_ADMIN: ", program,
               " lacks its file capability (getcap shows it; the package sets cap_net_admin=ep), or its file system is "
               "mounted nosuid");
}

std::string own_path() {
    char buf[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return "sriov-passthrough-vf-helper";
    return std::string(buf, static_cast<size_t>(n));
}

}  // namespace sriovpt
