#include "vf_readback.hpp"

#include "error.hpp"
#include "vf_link.hpp"

namespace sriovpt::cli {

std::map<unsigned, VfSettings> kernel_vf_settings(const std::string& pf) {
    std::map<unsigned, VfSettings> out;
    LinkReply reply;
    try {
        RouteSocket socket(std::chrono::seconds(2));
        reply = socket.get_link(pf);
    } catch (const Error&) {
        return out;
    }
    if (reply.error) return out;
    for (const auto& vf : reply.link.vfs) {
        VfSettings read;
        read.trust = vf.trust;
        read.spoofchk = vf.spoofchk;
        read.max_tx_rate = vf.max_tx_rate;
        read.min_tx_rate = vf.min_tx_rate;
        if (vf.link_state) read.link_state = std::string(link_state_name(*vf.link_state));
        if (!read.empty()) out[vf.vf] = read;
    }
    return out;
}

}  // namespace sriovpt::cli
