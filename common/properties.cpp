#include "properties.hpp"

#include <cctype>

#include "error.hpp"
#include "text.hpp"

namespace sriovpt {

namespace {

bool parse_true_false(std::string_view name, std::string_view value) {
    if (value == "true") return true;
    if (value == "false") return false;
    fail("property ", name, "=", quoted(value), " is not allowed (allowed: true or false)");
}

}  // namespace

unsigned parse_vlan(std::string_view value) {
    const auto n = parse_decimal(value);
    if (!n || *n < 1 || *n > 4094)
        fail(quoted(value), " is not a VLAN tag (allowed: a whole number from 1 to 4094)");
    return static_cast<unsigned>(*n);
}

bool is_valid_ifname(std::string_view name) {
    if (name.empty() || name.size() > 15) return false;
    const auto ok_first = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
    if (!ok_first(name.front())) return false;
    for (char c : name) {
        if (!(ok_first(c) || c == '.' || c == '-')) return false;
    }
    return true;
}

std::vector<std::string> parse_pf_list(std::string_view value) {
    auto names = split(value, ',');
    for (const auto& name : names) {
        if (!is_valid_ifname(name))
            fail(quoted(value), " is not a list of PF names (allowed: interface names of up to 15 "
                 "letters, digits, '_', '.', '-', separated by commas)");
    }
    return names;
}

VnicProperties parse_properties(const PropertyLookup& lookup) {
    VnicProperties props;
    // Values are taken as they are, so that the engine's regular expressions
    // (README) and this parser accept exactly the same strings.
    const auto get = [&](const char* name) -> std::optional<std::string> {
        auto value = lookup(name);
        if (value && value->empty()) return std::nullopt;
        return value;
    };
    if (const auto v = get(kPropPassthrough)) props.passthrough = parse_true_false(kPropPassthrough, *v);
    if (const auto v = get(kPropFailover)) props.failover = parse_true_false(kPropFailover, *v);
    if (const auto v = get(kPropVlan))
        props.vlan = with_context(cat("property ", kPropVlan), [&] { return parse_vlan(*v); });
    if (const auto v = get(kPropSriovPf))
        props.sriov_pf = with_context(cat("property ", kPropSriovPf), [&] { return parse_pf_list(*v); });
    if (const auto v = get(kPropNuma)) {
        props.numa = numa_policy_from_name(*v);
        if (!props.numa)
            fail("property ", kPropNuma, "=", quoted(*v), " is not allowed (allowed: required, preferred or ignore)");
    }
    for (const auto* name : {kPropVfTrust, kPropVfSpoofchk, kPropVfMaxTxRate, kPropVfMinTxRate, kPropVfLinkState}) {
        if (const auto v = get(name)) {
            try {
                set_vf_setting(props.vf, name, *v);
            } catch (const Error& e) {
                fail("property ", e.what());  // "property vf_trust='x' is not allowed ...", as passthrough's
            }
        }
    }
    return props;
}

}  // namespace sriovpt
