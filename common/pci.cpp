#include "pci.hpp"

#include <charconv>
#include <string>

namespace sriovpt {

namespace {

std::optional<unsigned> parse_hex_field(std::string_view s, size_t width) {
    if (s.size() != width) return std::nullopt;
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value, 16);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return value;
}

// libvirt accepts "0x1f" (hex) or "31" (decimal) for address attributes.
std::optional<unsigned> parse_libvirt_number(std::string_view s, unsigned max) {
    int base = 10;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s.remove_prefix(2);
        base = 16;
    }
    if (s.empty()) return std::nullopt;
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value, base);
    if (ec != std::errc() || end != s.data() + s.size() || value > max) return std::nullopt;
    return value;
}

// `value` in lowercase hex, zero-padded to `width` digits ("%0*x"), appended
// to `out`. Not snprintf: a start names PCI addresses dozens of times (record
// names, index entries, messages), and printf's machinery costs ten times more.
void append_hex(std::string& out, unsigned value, size_t width) {
    char buf[8];
    const auto end = std::to_chars(buf, buf + sizeof buf, value, 16).ptr;
    const auto n = static_cast<size_t>(end - buf);
    if (n < width) out.append(width - n, '0');
    out.append(buf, n);
}

std::string hex(unsigned value, size_t digits) {
    std::string out = "0x";
    append_hex(out, value, digits);
    return out;
}

}  // namespace

std::optional<PciAddress> PciAddress::parse(std::string_view text) {
    // dddd:bb:ss.f
    if (text.size() != 12 || text[4] != ':' || text[7] != ':' || text[10] != '.') return std::nullopt;
    const auto domain = parse_hex_field(text.substr(0, 4), 4);
    const auto bus = parse_hex_field(text.substr(5, 2), 2);
    const auto slot = parse_hex_field(text.substr(8, 2), 2);
    const auto function = parse_hex_field(text.substr(11, 1), 1);
    if (!domain || !bus || !slot || !function || *slot > 0x1f || *function > 7) return std::nullopt;
    return PciAddress{*domain, *bus, *slot, *function};
}

std::optional<PciAddress> PciAddress::from_libvirt(std::string_view domain, std::string_view bus,
                                                   std::string_view slot, std::string_view function) {
    const auto d = parse_libvirt_number(domain, 0xffff);
    const auto b = parse_libvirt_number(bus, 0xff);
    const auto s = parse_libvirt_number(slot, 0x1f);
    const auto f = parse_libvirt_number(function, 7);
    if (!d || !b || !s || !f) return std::nullopt;
    return PciAddress{*d, *b, *s, *f};
}

std::string PciAddress::to_string() const {
    std::string out;
    out.reserve(12);
    append_hex(out, domain, 4);
    out += ':';
    append_hex(out, bus, 2);
    out += ':';
    append_hex(out, slot, 2);
    out += '.';
    append_hex(out, function, 1);
    return out;
}

std::string PciAddress::domain_attr() const { return hex(domain, 4); }
std::string PciAddress::bus_attr() const { return hex(bus, 2); }
std::string PciAddress::slot_attr() const { return hex(slot, 2); }
std::string PciAddress::function_attr() const { return hex(function, 1); }

}  // namespace sriovpt
