// The VF netlink messages byte for byte, and the decoding of canned kernel
// answers: acknowledgements, errors with the kernel's text, a PF's VF list
// with attributes missing, short, inconsistent or cut anywhere.
//
// The canned answers are built here by hand in the layout the kernel writes
// (net/core/rtnetlink.c, rtnl_fill_vfinfo: nests without NLA_F_NESTED, the
// per-VF attributes in its order), not with libmnl, so a framing mistake in
// the library cannot hide behind the same mistake in its test.
#include <gtest/gtest.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <bit>
#include <cstring>
#include <string>

#include "error.hpp"
#include "vf_link.hpp"

namespace sriovpt {
namespace {

// Netlink is host byte order; the golden bytes are little-endian.
bool little_endian() { return std::endian::native == std::endian::little; }

std::string hex(const Bytes& b) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (const auto byte : b) {
        out += digits[byte >> 4];
        out += digits[byte & 15];
    }
    return out;
}

// A golden message written with spaces between fields, for the reader.
std::string golden(std::string spaced) {
    std::erase(spaced, ' ');
    return spaced;
}

// --- A hand-made builder for canned answers ---------------------------------

void put16(Bytes& b, std::uint16_t v) { b.insert(b.end(), {std::uint8_t(v), std::uint8_t(v >> 8)}); }
void put32(Bytes& b, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(std::uint8_t(v >> (8 * i)));
}
void pad(Bytes& b) {
    while (b.size() % 4) b.push_back(0);
}

Bytes attr(std::uint16_t type, const Bytes& payload) {
    Bytes b;
    put16(b, std::uint16_t(4 + payload.size()));
    put16(b, type);
    b.insert(b.end(), payload.begin(), payload.end());
    pad(b);
    return b;
}

Bytes words(std::initializer_list<std::uint32_t> values) {
    Bytes b;
    for (const auto v : values) put32(b, v);
    return b;
}

Bytes join(std::initializer_list<Bytes> parts) {
    Bytes b;
    for (const auto& p : parts) b.insert(b.end(), p.begin(), p.end());
    return b;
}

Bytes message(std::uint16_t type, std::uint16_t flags, std::uint32_t seq, std::uint32_t pid, const Bytes& payload) {
    Bytes b;
    put32(b, std::uint32_t(16 + payload.size()));
    put16(b, type);
    put16(b, flags);
    put32(b, seq);
    put32(b, pid);
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
}

Bytes ifinfo(std::int32_t index) { return words({0, std::uint32_t(index), 0x1003, 0}); }

// One IFLA_VF_INFO as rtnl_fill_vfinfo writes it.
Bytes vf_info(std::uint32_t vf, std::uint32_t trust, std::uint32_t spoofchk, std::uint32_t min_rate,
              std::uint32_t max_rate, std::uint32_t link_state) {
    Bytes mac = words({vf});
    mac.insert(mac.end(), {0x02, 0x00, 0x00, 0x00, 0x00, std::uint8_t(vf)});
    mac.resize(4 + 32);
    Bytes broadcast(32, 0xff);
    const Bytes vlan_list = attr(IFLA_VF_VLAN_INFO, words({vf, 100, 0, 0x0081}));
    return attr(IFLA_VF_INFO, join({
                                  attr(IFLA_VF_MAC, mac),
                                  attr(IFLA_VF_BROADCAST, broadcast),
                                  attr(IFLA_VF_VLAN, words({vf, 100, 0})),
                                  attr(IFLA_VF_RATE, words({vf, min_rate, max_rate})),
                                  attr(IFLA_VF_TX_RATE, words({vf, max_rate})),
                                  attr(IFLA_VF_SPOOFCHK, words({vf, spoofchk})),
                                  attr(IFLA_VF_LINK_STATE, words({vf, link_state})),
                                  attr(IFLA_VF_RSS_QUERY_EN, words({vf, 0xffffffff})),
                                  attr(IFLA_VF_TRUST, words({vf, trust})),
                                  attr(IFLA_VF_VLAN_LIST, vlan_list),
                              }));
}

// A string attribute's payload: the text and its NUL.
Bytes nul_string(const std::string& text) {
    Bytes b(text.begin(), text.end());
    b.push_back(0);
    return b;
}

Bytes ifname(const std::string& name) { return attr(IFLA_IFNAME, nul_string(name)); }

constexpr std::uint32_t kSeq = 7;
constexpr std::uint32_t kPort = 4242;

// The answer of a PF ens1f0 (ifindex 4) with two VFs: VF 0 trusted, spoof
// checking off, 100..1000 Mbps, link enabled; VF 1 as a fresh VF is.
Bytes two_vf_reply() {
    return message(RTM_NEWLINK, 0, kSeq, kPort,
                   join({ifinfo(4), ifname("ens1f0"), attr(IFLA_MTU, words({1500})), attr(IFLA_NUM_VF, words({2})),
                         attr(IFLA_VFINFO_LIST, join({vf_info(0, 1, 0, 100, 1000, IFLA_VF_LINK_STATE_ENABLE),
                                                      vf_info(1, 0, 1, 0, 0, IFLA_VF_LINK_STATE_AUTO)}))}));
}

// --- Messages ---------------------------------------------------------------

TEST(VfLinkMessage, TrustGoldenBytes) {
    if (!little_endian()) GTEST_SKIP() << "golden bytes are little-endian";
    EXPECT_EQ(hex(set_vf_message(1, 7, 1, VfSetting::trust(true))),
              golden("34000000 1300 0500 01000000 00000000"     // nlmsghdr: 52 bytes, RTM_SETLINK, REQUEST|ACK, seq 1, port 0
                     "00 00 0000 07000000 00000000 00000000"    // ifinfomsg: AF_UNSPEC, ifindex 7
                     "1400 1680"                                // IFLA_VFINFO_LIST (22), nested
                     "1000 0180"                                // IFLA_VF_INFO (1), nested
                     "0c00 0900 01000000 01000000"));           // IFLA_VF_TRUST (9): vf 1, setting 1
    EXPECT_EQ(hex(set_vf_message(1, 7, 1, VfSetting::trust(false))),
              golden("34000000 1300 0500 01000000 00000000 00 00 0000 07000000 00000000 00000000"
                     "1400 1680 1000 0180 0c00 0900 01000000 00000000"));
}

TEST(VfLinkMessage, SpoofchkGoldenBytes) {
    if (!little_endian()) GTEST_SKIP() << "golden bytes are little-endian";
    EXPECT_EQ(hex(set_vf_message(2, 4, 0, VfSetting::spoofchk(false))),
              golden("34000000 1300 0500 02000000 00000000 00 00 0000 04000000 00000000 00000000"
                     "1400 1680 1000 0180"
                     "0c00 0400 00000000 00000000"));           // IFLA_VF_SPOOFCHK (4): vf 0, setting 0
}

TEST(VfLinkMessage, RateCarriesMinimumAndMaximumTogether) {
    if (!little_endian()) GTEST_SKIP() << "golden bytes are little-endian";
    EXPECT_EQ(hex(set_vf_message(3, 4, 63, VfSetting::rate(100, 1000))),
              golden("38000000 1300 0500 03000000 00000000 00 00 0000 04000000 00000000 00000000"
                     "1800 1680 1400 0180"
                     "1000 0600 3f000000 64000000 e8030000"));  // IFLA_VF_RATE (6): vf 63, min 100, max 1000
}

TEST(VfLinkMessage, LinkStateGoldenBytes) {
    if (!little_endian()) GTEST_SKIP() << "golden bytes are little-endian";
    const char* head = "34000000 1300 0500 04000000 00000000 00 00 0000 04000000 00000000 00000000 1400 1680 1000 0180";
    EXPECT_EQ(hex(set_vf_message(4, 4, 2, VfSetting::link(VfLinkState::automatic))),
              golden(std::string(head) + "0c00 0500 02000000 00000000"));  // IFLA_VF_LINK_STATE (5): auto
    EXPECT_EQ(hex(set_vf_message(4, 4, 2, VfSetting::link(VfLinkState::enable))),
              golden(std::string(head) + "0c00 0500 02000000 01000000"));
    EXPECT_EQ(hex(set_vf_message(4, 4, 2, VfSetting::link(VfLinkState::disable))),
              golden(std::string(head) + "0c00 0500 02000000 02000000"));
}

TEST(VfLinkMessage, GetLinkByNameAsksForVfsWithoutStatistics) {
    if (!little_endian()) GTEST_SKIP() << "golden bytes are little-endian";
    EXPECT_EQ(hex(get_link_message(9, "ens1f0")),
              golden("34000000 1200 0100 09000000 00000000"     // 52 bytes, RTM_GETLINK, REQUEST only
                     "00 00 0000 00000000 00000000 00000000"    // ifindex 0: by name
                     "0b00 0300 656e73316630 00 00"             // IFLA_IFNAME "ens1f0\0", padded
                     "0800 1d00 09000000"));                    // IFLA_EXT_MASK (29): RTEXT_FILTER_VF | SKIP_STATS
}

TEST(VfLinkMessage, GetLinkRefusesImpossibleNames) {
    EXPECT_THROW(get_link_message(1, ""), Error);
    EXPECT_THROW(get_link_message(1, "a-name-of-16-chr"), Error);
    EXPECT_THROW(get_link_message(1, "ens1/f0"), Error);
    EXPECT_THROW(get_link_message(1, std::string_view("ens1\0f0", 7)), Error);
    EXPECT_NO_THROW(get_link_message(1, "a-name-of-15-ch"));
}

TEST(VfLinkMessage, DescribedAsTheCommandLineWritesThem) {
    EXPECT_EQ(describe(VfSetting::trust(true)), "trust=on");
    EXPECT_EQ(describe(VfSetting::spoofchk(false)), "spoofchk=off");
    EXPECT_EQ(describe(VfSetting::rate(0, 1000)), "max_tx_rate=1000 min_tx_rate=0");
    EXPECT_EQ(describe(VfSetting::link(VfLinkState::automatic)), "link_state=auto");
    EXPECT_EQ(parse_link_state("disable"), VfLinkState::disable);
    EXPECT_EQ(parse_link_state("Auto"), std::nullopt);
    EXPECT_EQ(kind_name(VfSetting::Kind::rate), "rate");
}

// --- Acknowledgements ---------------------------------------------------------

// The header of the request an error message echoes (NETLINK_CAP_ACK: the
// header only).
Bytes echoed_header(std::uint32_t seq) {
    Bytes b;
    put32(b, 52);
    put16(b, RTM_SETLINK);
    put16(b, NLM_F_REQUEST | NLM_F_ACK);
    put32(b, seq);
    put32(b, kPort);
    return b;
}

TEST(VfLinkAck, Success) {
    const auto reply = message(NLMSG_ERROR, NLM_F_CAPPED, kSeq, kPort, join({words({0}), echoed_header(kSeq)}));
    EXPECT_EQ(parse_ack(reply, kSeq), (NetlinkAck{0, ""}));
}

TEST(VfLinkAck, ErrorWithTheKernelsText) {
    const Bytes text = nul_string("VF trust is not supported");
    const auto reply = message(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, kSeq, kPort,
                               join({words({std::uint32_t(-EOPNOTSUPP)}), echoed_header(kSeq),
                                     attr(NLMSGERR_ATTR_OFFS, words({40})), attr(NLMSGERR_ATTR_MSG, text)}));
    EXPECT_EQ(parse_ack(reply, kSeq), (NetlinkAck{EOPNOTSUPP, "VF trust is not supported"}));
}

TEST(VfLinkAck, TextAfterAWholeEchoedRequest) {
    // Without NETLINK_CAP_ACK the kernel echoes the whole request before the TLVs.
    const auto request = set_vf_message(kSeq, 4, 1, VfSetting::trust(true));
    const Bytes text = nul_string("out of range");
    const auto reply = message(NLMSG_ERROR, NLM_F_ACK_TLVS, kSeq, kPort,
                               join({words({std::uint32_t(-ERANGE)}), request, attr(NLMSGERR_ATTR_MSG, text)}));
    EXPECT_EQ(parse_ack(reply, kSeq), (NetlinkAck{ERANGE, "out of range"}));
}

TEST(VfLinkAck, AnswerToAnotherRequestIsNotOurs) {
    const auto reply = message(NLMSG_ERROR, NLM_F_CAPPED, kSeq + 1, kPort, join({words({0}), echoed_header(kSeq + 1)}));
    EXPECT_EQ(parse_ack(reply, kSeq), std::nullopt);
    // The second message of a datagram counts too.
    const auto both = join({two_vf_reply(), message(NLMSG_ERROR, NLM_F_CAPPED, kSeq, kPort,
                                                    join({words({std::uint32_t(-EPERM)}), echoed_header(kSeq)}))});
    EXPECT_EQ(parse_ack(both, kSeq), (NetlinkAck{EPERM, ""}));
}

TEST(VfLinkAck, MalformedAnswersThrow) {
    const auto good = message(NLMSG_ERROR, NLM_F_CAPPED, kSeq, kPort, join({words({0}), echoed_header(kSeq)}));
    // Shorter than a header; a header claiming less than itself; an error
    // message without room for its code; a positive error code.
    EXPECT_THROW(parse_ack(Bytes(good.begin(), good.begin() + 10), kSeq), Error);
    Bytes small = good;
    small[0] = 8;
    EXPECT_THROW(parse_ack(small, kSeq), Error);
    EXPECT_THROW(parse_ack(message(NLMSG_ERROR, 0, kSeq, kPort, words({0})), kSeq), Error);
    EXPECT_THROW(parse_ack(message(NLMSG_ERROR, NLM_F_CAPPED, kSeq, kPort, join({words({5}), echoed_header(kSeq)})), kSeq),
                 Error);
    // A cut text attribute is no text, not a crash.
    const auto cut = message(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, kSeq, kPort,
                             join({words({std::uint32_t(-EINVAL)}), echoed_header(kSeq), words({0x00010040})}));
    EXPECT_EQ(parse_ack(cut, kSeq), (NetlinkAck{EINVAL, ""}));
}

TEST(VfLinkAck, UnalignedInput) {
    const auto reply = message(NLMSG_ERROR, NLM_F_CAPPED, kSeq, kPort, join({words({std::uint32_t(-EPERM)}), echoed_header(kSeq)}));
    Bytes shifted(1, 0);
    shifted.insert(shifted.end(), reply.begin(), reply.end());
    EXPECT_EQ(parse_ack(std::span(shifted).subspan(1), kSeq), (NetlinkAck{EPERM, ""}));
}

// --- The VF list ------------------------------------------------------------

TEST(VfLinkDecode, TwoVfs) {
    const auto reply = parse_link_reply(two_vf_reply(), kSeq);
    ASSERT_FALSE(reply.error);
    const auto& link = reply.link;
    EXPECT_EQ(link.ifindex, 4);
    EXPECT_EQ(link.ifname, "ens1f0");
    EXPECT_EQ(link.num_vfs, 2u);
    EXPECT_TRUE(link.problems.empty()) << link.problems.front();
    ASSERT_EQ(link.vfs.size(), 2u);
    EXPECT_EQ(link.vfs[0], (VfKernelState{0, true, false, 100u, 1000u, VfLinkState::enable}));
    EXPECT_EQ(link.vfs[1], (VfKernelState{1, false, true, 0u, 0u, VfLinkState::automatic}));
    ASSERT_NE(link.vf(1), nullptr);
    EXPECT_EQ(link.vf(1)->current(VfSetting::Kind::rate), VfSetting::rate(0, 0));
    EXPECT_EQ(link.vf(0)->current(VfSetting::Kind::trust), VfSetting::trust(true));
    EXPECT_EQ(link.vf(2), nullptr);
}

TEST(VfLinkDecode, DeviceWithoutVfs) {
    // What a veth answers: no IFLA_NUM_VF, no IFLA_VFINFO_LIST.
    const auto reply = parse_link_reply(message(RTM_NEWLINK, 0, kSeq, kPort, join({ifinfo(3), ifname("veth0")})), kSeq);
    ASSERT_FALSE(reply.error);
    EXPECT_EQ(reply.link.ifindex, 3);
    EXPECT_EQ(reply.link.num_vfs, std::nullopt);
    EXPECT_TRUE(reply.link.vfs.empty());
    EXPECT_TRUE(reply.link.problems.empty());
}

TEST(VfLinkDecode, KernelError) {
    const auto reply = parse_link_reply(
        message(NLMSG_ERROR, NLM_F_CAPPED, kSeq, kPort, join({words({std::uint32_t(-ENODEV)}), echoed_header(kSeq)})), kSeq);
    ASSERT_TRUE(reply.error);
    EXPECT_EQ(reply.error->error, ENODEV);
}

TEST(VfLinkDecode, NoAnswerToTheRequestThrows) {
    EXPECT_THROW(parse_link_reply(two_vf_reply(), kSeq + 1), Error);
    EXPECT_THROW(parse_link_reply(Bytes{}, kSeq), Error);
}

TEST(VfLinkDecode, MissingAndUnreportedSettings) {
    // A driver that fills in neither trust nor spoof checking (the kernel
    // sends all ones), and an entry the kernel of an older release wrote
    // without IFLA_VF_TRUST and IFLA_VF_RATE.
    const Bytes sparse = attr(IFLA_VF_INFO, join({attr(IFLA_VF_SPOOFCHK, words({3, 0})),
                                                  attr(IFLA_VF_LINK_STATE, words({3, IFLA_VF_LINK_STATE_DISABLE}))}));
    const auto reply = parse_link_reply(
        message(RTM_NEWLINK, 0, kSeq, kPort,
                join({ifinfo(4), attr(IFLA_VFINFO_LIST,
                                      join({vf_info(2, 0xffffffff, 0xffffffff, 0, 0, IFLA_VF_LINK_STATE_AUTO), sparse}))})),
        kSeq);
    const auto& link = reply.link;
    EXPECT_TRUE(link.problems.empty());
    ASSERT_EQ(link.vfs.size(), 2u);
    EXPECT_EQ(link.vfs[0], (VfKernelState{2, std::nullopt, std::nullopt, 0u, 0u, VfLinkState::automatic}));
    EXPECT_EQ(link.vfs[1], (VfKernelState{3, std::nullopt, false, std::nullopt, std::nullopt, VfLinkState::disable}));
    EXPECT_EQ(link.vfs[0].current(VfSetting::Kind::trust), std::nullopt);
    EXPECT_EQ(link.vfs[1].current(VfSetting::Kind::rate), std::nullopt);
}

TEST(VfLinkDecode, ShortAttributeIsAProblemNotAValue) {
    const Bytes entry = attr(IFLA_VF_INFO, join({attr(IFLA_VF_TRUST, words({5})), attr(IFLA_VF_SPOOFCHK, words({5, 1}))}));
    const auto reply =
        parse_link_reply(message(RTM_NEWLINK, 0, kSeq, kPort, join({ifinfo(4), attr(IFLA_VFINFO_LIST, entry)})), kSeq);
    ASSERT_EQ(reply.link.vfs.size(), 1u);
    EXPECT_EQ(reply.link.vfs[0], (VfKernelState{5, std::nullopt, true, std::nullopt, std::nullopt, std::nullopt}));
    ASSERT_EQ(reply.link.problems.size(), 1u);
    EXPECT_EQ(reply.link.problems[0], "VF entry 0: IFLA_VF_TRUST has 4 bytes, needs 8");
}

TEST(VfLinkDecode, EntriesThatCannotNameTheirVfAreLeftOut) {
    const Bytes mixed = attr(IFLA_VF_INFO, join({attr(IFLA_VF_TRUST, words({1, 1})), attr(IFLA_VF_SPOOFCHK, words({2, 0}))}));
    const Bytes nameless = attr(IFLA_VF_INFO, attr(IFLA_VF_VLAN_LIST, Bytes{}));
    const Bytes stranger = attr(IFLA_VF_INFO + 1, words({0}));
    const auto reply = parse_link_reply(
        message(RTM_NEWLINK, 0, kSeq, kPort,
                join({ifinfo(4), attr(IFLA_VFINFO_LIST, join({mixed, nameless, stranger, vf_info(3, 1, 1, 0, 0, 0)}))})),
        kSeq);
    ASSERT_EQ(reply.link.vfs.size(), 1u);
    EXPECT_EQ(reply.link.vfs[0].vf, 3u);
    ASSERT_EQ(reply.link.problems.size(), 3u);
    EXPECT_EQ(reply.link.problems[0], "VF entry 0: its attributes name different VFs; left out");
    EXPECT_EQ(reply.link.problems[1], "VF entry 1: no attribute names its VF; left out");
    EXPECT_EQ(reply.link.problems[2], "IFLA_VFINFO_LIST holds attribute 2, not IFLA_VF_INFO");
}

TEST(VfLinkDecode, UnknownLinkState) {
    const Bytes entry = attr(IFLA_VF_INFO, attr(IFLA_VF_LINK_STATE, words({0, 7})));
    const auto reply =
        parse_link_reply(message(RTM_NEWLINK, 0, kSeq, kPort, join({ifinfo(4), attr(IFLA_VFINFO_LIST, entry)})), kSeq);
    ASSERT_EQ(reply.link.vfs.size(), 1u);
    EXPECT_EQ(reply.link.vfs[0].link_state, std::nullopt);
    ASSERT_EQ(reply.link.problems.size(), 1u);
    EXPECT_EQ(reply.link.problems[0], "VF entry 0: unknown link state 7");
}

// Each field a decoded VF has must be the field of the whole answer: a cut
// never invents a value.
void expect_subset(const VfKernelState& part, const VfKernelState& whole) {
    EXPECT_EQ(part.vf, whole.vf);
    if (part.trust) {
        EXPECT_EQ(part.trust, whole.trust);
    }
    if (part.spoofchk) {
        EXPECT_EQ(part.spoofchk, whole.spoofchk);
    }
    if (part.min_tx_rate) {
        EXPECT_EQ(part.min_tx_rate, whole.min_tx_rate);
    }
    if (part.max_tx_rate) {
        EXPECT_EQ(part.max_tx_rate, whole.max_tx_rate);
    }
    if (part.link_state) {
        EXPECT_EQ(part.link_state, whole.link_state);
    }
}

TEST(VfLinkDecode, CutAnywhere) {
    // The datagram cut at every length: the message header then claims more
    // than there is. Decoding keeps what is whole, says it is truncated, and
    // never reads past the end (the sanitizer build checks that).
    const auto full = two_vf_reply();
    const auto whole = parse_link_reply(full, kSeq).link;
    for (size_t cut = 0; cut < full.size(); ++cut) {
        SCOPED_TRACE("cut at " + std::to_string(cut));
        const Bytes part(full.begin(), full.begin() + static_cast<long>(cut));
        if (cut < 16) {
            EXPECT_THROW(parse_link_reply(part, kSeq), Error);
            continue;
        }
        const auto reply = parse_link_reply(part, kSeq);
        ASSERT_FALSE(reply.error);
        ASSERT_FALSE(reply.link.problems.empty());
        const auto said = "truncated: the message says " + std::to_string(full.size()) + " bytes";
        EXPECT_EQ(reply.link.problems[0].rfind(said, 0), 0u) << reply.link.problems[0];
        ASSERT_LE(reply.link.vfs.size(), 2u);
        for (size_t i = 0; i < reply.link.vfs.size(); ++i) expect_subset(reply.link.vfs[i], whole.vfs[i]);
    }
}

TEST(VfLinkDecode, AttributeClaimingMoreThanItsMessageHolds) {
    // The message is whole but the VF list's own length runs past it.
    Bytes list = attr(IFLA_VFINFO_LIST, vf_info(0, 1, 1, 0, 0, 0));
    const auto claimed = std::uint16_t(list.size() + 8);
    std::memcpy(list.data(), &claimed, 2);
    const auto reply =
        parse_link_reply(message(RTM_NEWLINK, 0, kSeq, kPort, join({ifinfo(4), ifname("ens1f0"), list})), kSeq);
    EXPECT_EQ(reply.link.ifname, "ens1f0");
    EXPECT_TRUE(reply.link.vfs.empty());
    ASSERT_EQ(reply.link.problems.size(), 1u);
    EXPECT_EQ(reply.link.problems[0], "truncated: the last attribute is incomplete");
}

}  // namespace
}  // namespace sriovpt
