// The netlink side of VF settings (docs/design.md, "VF settings and the
// privileged helper"): the RTM_SETLINK message that changes one setting of
// one VF through its PF, the RTM_GETLINK that reads every VF's settings back,
// and the kernel's answers to both.
//
// Building and decoding are pure functions, bytes in and bytes out, so the
// tests compare them with golden bytes and canned kernel replies; only
// RouteSocket talks to the kernel. Messages are in host byte order, as
// netlink is. Framing is libmnl's (Debian's libmnl).
//
// One message carries one setting: the kernel applies the attributes of an
// IFLA_VFINFO_LIST in order and stops at the first that fails, keeping the
// ones before (net/core/rtnetlink.c, do_setlink and do_setvfinfo), so a
// message with several settings could fail half applied with no way to tell
// which half.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct mnl_socket;

namespace sriovpt {

using Bytes = std::vector<std::uint8_t>;

// IFLA_VF_LINK_STATE_* of <linux/if_link.h>.
enum class VfLinkState : std::uint32_t { automatic = 0, enable = 1, disable = 2 };

// "auto", "enable", "disable" (the words of `ip link set ... vf N state`).
std::string_view link_state_name(VfLinkState state);
std::optional<VfLinkState> parse_link_state(std::string_view word);

// One setting of one VF: what one RTM_SETLINK message carries.
struct VfSetting {
    enum class Kind { trust, spoofchk, rate, link_state };

    Kind kind = Kind::trust;
    bool on = false;                 // trust, spoofchk
    std::uint32_t min_tx_rate = 0;   // rate, Mbps; 0 = nothing guaranteed
    std::uint32_t max_tx_rate = 0;   // rate, Mbps; 0 = no limit
    VfLinkState link_state = VfLinkState::automatic;

    static VfSetting trust(bool on);
    static VfSetting spoofchk(bool on);
    // Minimum and maximum always go together: IFLA_VF_RATE sets both.
    static VfSetting rate(std::uint32_t min_tx_rate, std::uint32_t max_tx_rate);
    static VfSetting link(VfLinkState state);

    bool operator==(const VfSetting&) const = default;
};

// "trust", "spoofchk", "rate", "link_state": the names a policy uses.
std::string_view kind_name(VfSetting::Kind kind);

// The setting as the helper's command line writes it: "trust=on",
// "max_tx_rate=1000 min_tx_rate=0", "link_state=auto".
std::string describe(const VfSetting& setting);

// RTM_SETLINK addressed to the PF `pf_ifindex` (flags NLM_F_REQUEST |
// NLM_F_ACK, port id 0) whose IFLA_VFINFO_LIST holds one IFLA_VF_INFO holding
// the one attribute of `setting` for VF `vf`: IFLA_VF_TRUST,
// IFLA_VF_SPOOFCHK, IFLA_VF_RATE or IFLA_VF_LINK_STATE.
Bytes set_vf_message(std::uint32_t seq, std::int32_t pf_ifindex, std::uint32_t vf, const VfSetting& setting);

// RTM_GETLINK for the net device named `ifname` (IFLA_IFNAME), asking for its
// VFs without their statistics (IFLA_EXT_MASK = RTEXT_FILTER_VF |
// RTEXT_FILTER_SKIP_STATS: statistics would make a PF with many VFs answer
// with a larger message for nothing). Throws Error when `ifname` is not a
// possible interface name (empty, longer than 15 bytes, or holding '/' or a
// NUL).
Bytes get_link_message(std::uint32_t seq, std::string_view ifname);

// The kernel's verdict on one request.
struct NetlinkAck {
    int error = 0;          // 0 when done, else a positive errno
    std::string message;    // the kernel's extended ack text, when it gave one

    bool operator==(const NetlinkAck&) const = default;
};

// The NLMSG_ERROR answering request `seq` in one datagram `reply`, nullopt
// when the datagram holds none (it answers something else). Throws Error
// when the datagram is malformed: a message header that does not fit, an
// error message shorter than its fixed part.
std::optional<NetlinkAck> parse_ack(std::span<const std::uint8_t> reply, std::uint32_t seq);

// One VF as its PF reports it. A value the reply does not carry is nullopt;
// so are trust and spoofchk when the driver did not fill them in (the kernel
// sends all ones then: net/core/rtnetlink.c, rtnl_fill_vfinfo).
struct VfKernelState {
    std::uint32_t vf = 0;
    std::optional<bool> trust;
    std::optional<bool> spoofchk;
    std::optional<std::uint32_t> min_tx_rate;
    std::optional<std::uint32_t> max_tx_rate;
    std::optional<VfLinkState> link_state;

    // The current value of `kind` as a setting, nullopt when not reported.
    std::optional<VfSetting> current(VfSetting::Kind kind) const;

    bool operator==(const VfKernelState&) const = default;
};

// What RTM_NEWLINK says about a PF's VFs.
struct LinkInfo {
    std::int32_t ifindex = 0;
    std::string ifname;                    // IFLA_IFNAME, empty if absent
    std::optional<std::uint32_t> num_vfs;  // IFLA_NUM_VF, absent for devices without a bus device
    std::vector<VfKernelState> vfs;              // IFLA_VFINFO_LIST, in the kernel's order
    // What could not be decoded, one phrase each ("truncated: ...", "VF
    // entry 3: IFLA_VF_TRUST has 4 bytes, needs 8"). Whatever was decoded
    // before is kept; a VF entry whose index cannot be told is left out.
    std::vector<std::string> problems;

    const VfKernelState* vf(std::uint32_t index) const;
};

// The answer to get_link_message: the kernel's error, or the link.
struct LinkReply {
    std::optional<NetlinkAck> error;   // set when the kernel answered with an error
    LinkInfo link;                     // otherwise
};

// Decodes the datagram answering RTM_GETLINK request `seq`. A message that
// claims more bytes than the datagram holds is decoded as far as it goes
// (with a problem saying so). Throws Error when the datagram holds no answer
// to `seq` at all.
LinkReply parse_link_reply(std::span<const std::uint8_t> reply, std::uint32_t seq);

// A NETLINK_ROUTE socket that asks the kernel one question at a time. Every
// wait for an answer is bounded by `timeout`.
class RouteSocket {
public:
    // Throws Error when the socket cannot be opened or bound.
    explicit RouteSocket(std::chrono::milliseconds timeout = std::chrono::seconds(5));
    ~RouteSocket();
    RouteSocket(const RouteSocket&) = delete;
    RouteSocket& operator=(const RouteSocket&) = delete;

    // Sends `request` (a whole netlink message; its sequence number is
    // replaced by the next of this socket's) and returns the datagram that
    // answers it. Throws Error when sending fails or no answer comes in time.
    Bytes exchange(Bytes request, std::uint32_t* seq_used = nullptr);

    // Sends `request`, which must ask for an ACK, and returns the verdict.
    NetlinkAck request_ack(Bytes request);

    // set_vf_message through this socket.
    NetlinkAck set_vf(std::int32_t pf_ifindex, std::uint32_t vf, const VfSetting& setting);

    // get_link_message through this socket.
    LinkReply get_link(std::string_view ifname);

private:
    mnl_socket* nl_ = nullptr;
    std::uint32_t seq_ = 0;
    unsigned portid_ = 0;
    std::chrono::milliseconds timeout_;
};

}  // namespace sriovpt
