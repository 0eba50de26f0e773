// PCI addresses as sysfs names them ("0000:3b:02.1") and libvirt writes them
// (<address type="pci" domain="0x0000" bus="0x3b" slot="0x02" function="0x1"/>).
#pragma once

#include <compare>
#include <optional>
#include <string>
#include <string_view>

namespace sriovpt {

struct PciAddress {
    unsigned domain = 0;    // 16 bits
    unsigned bus = 0;       // 8 bits
    unsigned slot = 0;      // 5 bits
    unsigned function = 0;  // 3 bits

    // "dddd:bb:ss.f", hex, as the kernel names PCI devices; nullopt otherwise.
    static std::optional<PciAddress> parse(std::string_view text);

    // From the four attributes of a libvirt <address type="pci"> (each "0x.." or
    // decimal, as libvirt accepts); nullopt if one is missing or out of range.
    static std::optional<PciAddress> from_libvirt(std::string_view domain, std::string_view bus,
                                                  std::string_view slot, std::string_view function);

    std::string to_string() const;  // "0000:3b:02.1"

    // The attribute values libvirt writes: "0x0000", "0x3b", "0x02", "0x1".
    std::string domain_attr() const;
    std::string bus_attr() const;
    std::string slot_attr() const;
    std::string function_attr() const;

    auto operator<=>(const PciAddress&) const = default;
};

}  // namespace sriovpt
