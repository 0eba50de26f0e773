#include "vf_link.hpp"

#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "error.hpp"
#include "text.hpp"

namespace sriovpt {

namespace {

// The kernel sends all ones for a trust or spoofchk setting the driver did
// not fill in (rtnl_fill_vfinfo presets them to -1).
constexpr std::uint32_t kNotReported = 0xffffffffu;

// Room for any message built here: headers, two nests, one attribute.
constexpr size_t kRequestRoom = 256;

std::uint32_t u32_at(const void* payload, size_t offset) {
    std::uint32_t v;
    std::memcpy(&v, static_cast<const std::uint8_t*>(payload) + offset, sizeof v);
    return v;
}

Bytes finish(const std::vector<std::uint8_t>& buf, const nlmsghdr* nlh) {
    return Bytes(buf.begin(), buf.begin() + nlh->nlmsg_len);
}

// The datagram copied to 4-byte-aligned memory: netlink headers are read
// through their structs, and the caller's bytes may sit anywhere.
class Aligned {
public:
    explicit Aligned(std::span<const std::uint8_t> bytes) : words_((bytes.size() + 3) / 4), size_(bytes.size()) {
        if (!bytes.empty()) std::memcpy(words_.data(), bytes.data(), bytes.size());
    }
    const std::uint8_t* data() const { return reinterpret_cast<const std::uint8_t*>(words_.data()); }
    size_t size() const { return size_; }

private:
    std::vector<std::uint32_t> words_;
    size_t size_;
};

// Calls f(attr) for each well-formed attribute in [data, data + len).
// Returns false when bytes are left that do not make a whole attribute
// (the block is truncated, or an attribute claims more than there is).
template <typename F>
bool for_each_attr(const void* data, size_t len, F&& f) {
    auto remaining = static_cast<int>(len);
    auto attr = static_cast<const nlattr*>(data);
    while (mnl_attr_ok(attr, remaining)) {
        f(attr);
        remaining -= static_cast<int>(MNL_ALIGN(attr->nla_len));
        attr = mnl_attr_next(attr);
    }
    return remaining <= 0;
}

std::string attr_name(std::uint16_t type) {
    switch (type) {
    case IFLA_VF_MAC: return "IFLA_VF_MAC";
    case IFLA_VF_VLAN: return "IFLA_VF_VLAN";
    case IFLA_VF_TX_RATE: return "IFLA_VF_TX_RATE";
    case IFLA_VF_SPOOFCHK: return "IFLA_VF_SPOOFCHK";
    case IFLA_VF_LINK_STATE: return "IFLA_VF_LINK_STATE";
    case IFLA_VF_RATE: return "IFLA_VF_RATE";
    case IFLA_VF_RSS_QUERY_EN: return "IFLA_VF_RSS_QUERY_EN";
    case IFLA_VF_TRUST: return "IFLA_VF_TRUST";
    default: return cat("attribute ", type);
    }
}

// The size of the struct an IFLA_VF_* attribute carries when it starts with
// the VF's index (every one the kernel fills per VF but the nests); 0 for
// the others.
size_t vf_struct_size(std::uint16_t type) {
    switch (type) {
    case IFLA_VF_MAC: return sizeof(ifla_vf_mac);
    case IFLA_VF_VLAN: return sizeof(ifla_vf_vlan);
    case IFLA_VF_TX_RATE: return sizeof(ifla_vf_tx_rate);
    case IFLA_VF_SPOOFCHK: return sizeof(ifla_vf_spoofchk);
    case IFLA_VF_LINK_STATE: return sizeof(ifla_vf_link_state);
    case IFLA_VF_RATE: return sizeof(ifla_vf_rate);
    case IFLA_VF_RSS_QUERY_EN: return sizeof(ifla_vf_rss_query_en);
    case IFLA_VF_TRUST: return sizeof(ifla_vf_trust);
    default: return 0;
    }
}

std::optional<bool> flag(std::uint32_t setting) {
    if (setting == kNotReported) return std::nullopt;
    return setting != 0;
}

// One IFLA_VF_INFO entry (number `n` in the list); nullopt when the VF it
// describes cannot be told.
std::optional<VfKernelState> decode_vf_info(const nlattr* info, size_t n, std::vector<std::string>& problems) {
    const auto where = cat("VF entry ", n);
    VfKernelState state;
    std::optional<std::uint32_t> index;
    bool consistent = true;
    const bool whole = for_each_attr(mnl_attr_get_payload(info), mnl_attr_get_payload_len(info), [&](const nlattr* a) {
        const auto type = mnl_attr_get_type(a);
        const size_t need = vf_struct_size(type);
        if (need == 0) return;  // nests (VLAN list, statistics) and newer attributes
        const void* p = mnl_attr_get_payload(a);
        const size_t have = mnl_attr_get_payload_len(a);
        if (have < need) {
            problems.push_back(cat(where, ": ", attr_name(type), " has ", have, " bytes, needs ", need));
            return;
        }
        const auto vf = u32_at(p, 0);
        if (index && *index != vf) consistent = false;
        if (!index) index = vf;
        switch (type) {
        case IFLA_VF_TRUST: state.trust = flag(u32_at(p, 4)); break;
        case IFLA_VF_SPOOFCHK: state.spoofchk = flag(u32_at(p, 4)); break;
        case IFLA_VF_RATE:
            state.min_tx_rate = u32_at(p, offsetof(ifla_vf_rate, min_tx_rate));
            state.max_tx_rate = u32_at(p, offsetof(ifla_vf_rate, max_tx_rate));
            break;
        case IFLA_VF_LINK_STATE: {
            const auto v = u32_at(p, 4);
            if (v <= IFLA_VF_LINK_STATE_DISABLE)
                state.link_state = static_cast<VfLinkState>(v);
            else
                problems.push_back(cat(where, ": unknown link state ", v));
            break;
        }
        default: break;
        }
    });
    if (!whole) problems.push_back(cat(where, ": truncated"));
    if (!consistent) {
        problems.push_back(cat(where, ": its attributes name different VFs; left out"));
        return std::nullopt;
    }
    if (!index) {
        problems.push_back(cat(where, ": no attribute names its VF; left out"));
        return std::nullopt;
    }
    state.vf = *index;
    return state;
}

LinkInfo decode_newlink(const nlmsghdr* nlh, size_t len, std::vector<std::string> problems) {
    LinkInfo link;
    link.problems = std::move(problems);
    const size_t fixed = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(ifinfomsg));
    if (len < MNL_NLMSG_HDRLEN + sizeof(ifinfomsg)) {
        link.problems.push_back("truncated: no interface header");
        return link;
    }
    const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
    link.ifindex = ifi->ifi_index;
    if (len <= fixed) return link;
    const auto* base = reinterpret_cast<const std::uint8_t*>(nlh);
    const bool whole = for_each_attr(base + fixed, len - fixed, [&](const nlattr* a) {
        switch (mnl_attr_get_type(a)) {
        case IFLA_IFNAME:
            if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
                link.ifname = mnl_attr_get_str(a);
            else
                link.problems.push_back("IFLA_IFNAME is not a string");
            break;
        case IFLA_NUM_VF:
            if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
                link.num_vfs = mnl_attr_get_u32(a);
            else
                link.problems.push_back("IFLA_NUM_VF is not 4 bytes");
            break;
        case IFLA_VFINFO_LIST: {
            size_t n = 0;
            const bool list_whole =
                for_each_attr(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), [&](const nlattr* info) {
                    if (mnl_attr_get_type(info) != IFLA_VF_INFO) {
                        link.problems.push_back(
                            cat("IFLA_VFINFO_LIST holds attribute ", mnl_attr_get_type(info), ", not IFLA_VF_INFO"));
                        return;
                    }
                    if (auto vf = decode_vf_info(info, n, link.problems)) link.vfs.push_back(*vf);
                    ++n;
                });
            if (!list_whole) link.problems.push_back(cat("IFLA_VFINFO_LIST truncated after ", n, " VF entries"));
            break;
        }
        default: break;
        }
    });
    if (!whole) link.problems.push_back("truncated: the last attribute is incomplete");
    return link;
}

// Walks the messages of a datagram; f(nlh, len, claimed) for each, where len
// is what the datagram holds of it and claimed its nlmsg_len. Stops after
// a message that runs past the end. Throws Error on a header that does not
// fit or claims less than itself.
template <typename F>
void for_each_message(const Aligned& d, F&& f) {
    size_t off = 0;
    while (off < d.size()) {
        if (d.size() - off < sizeof(nlmsghdr))
            fail("malformed netlink answer: ", d.size() - off, " bytes left, too few for a message header");
        const auto* nlh = reinterpret_cast<const nlmsghdr*>(d.data() + off);
        if (nlh->nlmsg_len < sizeof(nlmsghdr))
            fail("malformed netlink answer: a message claims ", nlh->nlmsg_len, " bytes, less than its header");
        const size_t len = std::min<size_t>(nlh->nlmsg_len, d.size() - off);
        if (!f(nlh, len)) return;
        if (len < nlh->nlmsg_len) return;
        off += MNL_ALIGN(nlh->nlmsg_len);
    }
}

NetlinkAck decode_error(const nlmsghdr* nlh, size_t len) {
    if (len < MNL_NLMSG_HDRLEN + sizeof(nlmsgerr))
        fail("malformed netlink answer: an error message of ", len, " bytes, too short for its error code");
    const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
    if (err->error > 0) fail("malformed netlink answer: error code ", err->error, " is positive");
    NetlinkAck ack;
    ack.error = -err->error;
    if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS)) return ack;
    // The TLVs follow the request, or only its header when it was capped.
    size_t offset = sizeof(nlmsgerr);
    if (!(nlh->nlmsg_flags & NLM_F_CAPPED) && err->msg.nlmsg_len > sizeof(nlmsghdr))
        offset += err->msg.nlmsg_len - sizeof(nlmsghdr);
    const size_t start = MNL_NLMSG_HDRLEN + MNL_ALIGN(offset);
    if (start >= len) return ack;
    for_each_attr(reinterpret_cast<const std::uint8_t*>(nlh) + start, len - start, [&](const nlattr* a) {
        if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
            ack.message = mnl_attr_get_str(a);
    });
    return ack;
}

}  // namespace

std::string_view link_state_name(VfLinkState state) {
    switch (state) {
    case VfLinkState::automatic: return "auto";
    case VfLinkState::enable: return "enable";
    case VfLinkState::disable: return "disable";
    }
    return "?";
}

std::optional<VfLinkState> parse_link_state(std::string_view word) {
    if (word == "auto") return VfLinkState::automatic;
    if (word == "enable") return VfLinkState::enable;
    if (word == "disable") return VfLinkState::disable;
    return std::nullopt;
}

VfSetting VfSetting::trust(bool on) {
    VfSetting s;
    s.kind = Kind::trust;
    s.on = on;
    return s;
}

VfSetting VfSetting::spoofchk(bool on) {
    VfSetting s;
    s.kind = Kind::spoofchk;
    s.on = on;
    return s;
}

VfSetting VfSetting::rate(std::uint32_t min_tx_rate, std::uint32_t max_tx_rate) {
    VfSetting s;
    s.kind = Kind::rate;
    s.min_tx_rate = min_tx_rate;
    s.max_tx_rate = max_tx_rate;
    return s;
}

VfSetting VfSetting::link(VfLinkState state) {
    VfSetting s;
    s.kind = Kind::link_state;
    s.link_state = state;
    return s;
}

std::string_view kind_name(VfSetting::Kind kind) {
    switch (kind) {
    case VfSetting::Kind::trust: return "trust";
    case VfSetting::Kind::spoofchk: return "spoofchk";
    case VfSetting::Kind::rate: return "rate";
    case VfSetting::Kind::link_state: return "link_state";
    }
    return "?";
}

std::string describe(const VfSetting& s) {
    switch (s.kind) {
    case VfSetting::Kind::trust: return cat("trust=", s.on ? "on" : "off");
    case VfSetting::Kind::spoofchk: return cat("spoofchk=", s.on ? "on" : "off");
    case VfSetting::Kind::rate: return cat("max_tx_rate=", s.max_tx_rate, " min_tx_rate=", s.min_tx_rate);
    case VfSetting::Kind::link_state: return cat("link_state=", link_state_name(s.link_state));
    }
    return "?";
}

Bytes set_vf_message(std::uint32_t seq, std::int32_t pf_ifindex, std::uint32_t vf, const VfSetting& s) {
    std::vector<std::uint8_t> buf(kRequestRoom);
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = RTM_SETLINK;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    nlh->nlmsg_seq = seq;
    auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = pf_ifindex;
    nlattr* list = mnl_attr_nest_start(nlh, IFLA_VFINFO_LIST);
    nlattr* info = mnl_attr_nest_start(nlh, IFLA_VF_INFO);
    switch (s.kind) {
    case VfSetting::Kind::trust: {
        const ifla_vf_trust v{vf, s.on ? 1u : 0u};
        mnl_attr_put(nlh, IFLA_VF_TRUST, sizeof v, &v);
        break;
    }
    case VfSetting::Kind::spoofchk: {
        const ifla_vf_spoofchk v{vf, s.on ? 1u : 0u};
        mnl_attr_put(nlh, IFLA_VF_SPOOFCHK, sizeof v, &v);
        break;
    }
    case VfSetting::Kind::rate: {
        const ifla_vf_rate v{vf, s.min_tx_rate, s.max_tx_rate};
        mnl_attr_put(nlh, IFLA_VF_RATE, sizeof v, &v);
        break;
    }
    case VfSetting::Kind::link_state: {
        const ifla_vf_link_state v{vf, static_cast<std::uint32_t>(s.link_state)};
        mnl_attr_put(nlh, IFLA_VF_LINK_STATE, sizeof v, &v);
        break;
    }
    }
    mnl_attr_nest_end(nlh, info);
    mnl_attr_nest_end(nlh, list);
    return finish(buf, nlh);
}

Bytes get_link_message(std::uint32_t seq, std::string_view ifname) {
    if (ifname.empty() || ifname.size() >= IFNAMSIZ || ifname.find_first_of(std::string_view("/\0", 2)) != std::string_view::npos)
        fail(quoted(ifname), " is not a network interface name");
    std::vector<std::uint8_t> buf(kRequestRoom);
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = RTM_GETLINK;
    nlh->nlmsg_flags = NLM_F_REQUEST;
    nlh->nlmsg_seq = seq;
    auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
    ifi->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, std::string(ifname).c_str());
    mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_VF | RTEXT_FILTER_SKIP_STATS);
    return finish(buf, nlh);
}

std::optional<NetlinkAck> parse_ack(std::span<const std::uint8_t> reply, std::uint32_t seq) {
    const Aligned d(reply);
    std::optional<NetlinkAck> ack;
    for_each_message(d, [&](const nlmsghdr* nlh, size_t len) {
        if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_seq != seq) return true;
        ack = decode_error(nlh, len);
        return false;
    });
    return ack;
}

std::optional<VfSetting> VfKernelState::current(VfSetting::Kind kind) const {
    switch (kind) {
    case VfSetting::Kind::trust:
        if (trust) return VfSetting::trust(*trust);
        break;
    case VfSetting::Kind::spoofchk:
        if (spoofchk) return VfSetting::spoofchk(*spoofchk);
        break;
    case VfSetting::Kind::rate:
        if (min_tx_rate && max_tx_rate) return VfSetting::rate(*min_tx_rate, *max_tx_rate);
        break;
    case VfSetting::Kind::link_state:
        if (link_state) return VfSetting::link(*link_state);
        break;
    }
    return std::nullopt;
}

const VfKernelState* LinkInfo::vf(std::uint32_t index) const {
    for (const auto& v : vfs) {
        if (v.vf == index) return &v;
    }
    return nullptr;
}

LinkReply parse_link_reply(std::span<const std::uint8_t> reply, std::uint32_t seq) {
    const Aligned d(reply);
    std::optional<LinkReply> out;
    for_each_message(d, [&](const nlmsghdr* nlh, size_t len) {
        if (nlh->nlmsg_seq != seq) return true;
        if (nlh->nlmsg_type == NLMSG_ERROR) {
            auto ack = decode_error(nlh, len);
            if (ack.error == 0) fail("netlink: the kernel acknowledged the link request without describing the link");
            out = LinkReply{std::move(ack), {}};
            return false;
        }
        if (nlh->nlmsg_type != RTM_NEWLINK) return true;
        std::vector<std::string> problems;
        if (len < nlh->nlmsg_len)
            problems.push_back(cat("truncated: the message says ", nlh->nlmsg_len, " bytes, the answer holds ", len));
        out = LinkReply{std::nullopt, decode_newlink(nlh, len, std::move(problems))};
        return false;
    });
    if (!out) fail("netlink: the answer holds no link description for request ", seq);
    return std::move(*out);
}

RouteSocket::RouteSocket(std::chrono::milliseconds timeout) : timeout_(timeout) {
    nl_ = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (!nl_) fail("cannot open a NETLINK_ROUTE socket: ", std::strerror(errno));
    if (mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) < 0) {
        const int e = errno;
        mnl_socket_close(nl_);
        fail("cannot bind a NETLINK_ROUTE socket: ", std::strerror(e));
    }
    portid_ = mnl_socket_get_portid(nl_);
    // The kernel's own words on a refusal, and errors without a copy of the
    // request. Kernels before 4.12 lack the first: no text, same errors.
    int one = 1;
    mnl_socket_setsockopt(nl_, NETLINK_EXT_ACK, &one, sizeof one);
    mnl_socket_setsockopt(nl_, NETLINK_CAP_ACK, &one, sizeof one);
}

RouteSocket::~RouteSocket() {
    if (nl_) mnl_socket_close(nl_);
}

Bytes RouteSocket::exchange(Bytes request, std::uint32_t* seq_used) {
    if (request.size() < sizeof(nlmsghdr)) fail("netlink: a request of ", request.size(), " bytes");
    const std::uint32_t seq = ++seq_;
    std::memcpy(request.data() + offsetof(nlmsghdr, nlmsg_seq), &seq, sizeof seq);
    if (seq_used) *seq_used = seq;
    if (mnl_socket_sendto(nl_, request.data(), request.size()) < 0)
        fail("netlink: cannot send to the kernel: ", std::strerror(errno));

    const int fd = mnl_socket_get_fd(nl_);
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{fd, POLLIN, 0};
        const int ready = ::poll(&p, 1, static_cast<int>(std::max<long long>(left.count(), 0)));
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0) fail("netlink: waiting for the kernel's answer: ", std::strerror(errno));
        if (ready == 0) fail("netlink: no answer from the kernel within ", seconds_text(timeout_.count()));
        // The datagram's size first, so a large VF list is never cut.
        const ssize_t size = ::recv(fd, nullptr, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
        if (size < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (size < 0) fail("netlink: receiving the kernel's answer: ", std::strerror(errno));
        Bytes reply(static_cast<size_t>(size) + 1);
        const ssize_t n = mnl_socket_recvfrom(nl_, reply.data(), reply.size());
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n < 0) fail("netlink: receiving the kernel's answer: ", std::strerror(errno));
        reply.resize(static_cast<size_t>(n));
        // Answers to an earlier request that timed out are dropped.
        bool ours = false;
        const Aligned d(reply);
        for_each_message(d, [&](const nlmsghdr* nlh, size_t) {
            ours = nlh->nlmsg_seq == seq && nlh->nlmsg_pid == portid_;
            return !ours;
        });
        if (ours) return reply;
    }
}

NetlinkAck RouteSocket::request_ack(Bytes request) {
    std::uint32_t seq = 0;
    const auto reply = exchange(std::move(request), &seq);
    auto ack = parse_ack(reply, seq);
    if (!ack) fail("netlink: the kernel's answer to request ", seq, " is not an acknowledgement");
    return *ack;
}

NetlinkAck RouteSocket::set_vf(std::int32_t pf_ifindex, std::uint32_t vf, const VfSetting& setting) {
    return request_ack(set_vf_message(0, pf_ifindex, vf, setting));
}

LinkReply RouteSocket::get_link(std::string_view ifname) {
    std::uint32_t seq = 0;
    const auto reply = exchange(get_link_message(0, ifname), &seq);
    return parse_link_reply(reply, seq);
}

}  // namespace sriovpt
