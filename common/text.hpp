// Small string helpers shared by the parsers.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sriovpt {

std::string_view trim(std::string_view s);
std::string to_lower(std::string_view s);

// Splits on `sep`, trimming each piece; empty pieces are kept so callers can
// reject "a,,b".
std::vector<std::string> split(std::string_view s, char sep);

// Strict decimal: digits only, no sign, no leading zeros (except "0"), no
// overflow. Returns nullopt otherwise.
std::optional<unsigned long> parse_decimal(std::string_view s);

// "a, b, c" from a list.
std::string join(const std::vector<std::string>& items, std::string_view sep = ", ");

// A duration for messages: "10 s", "0.3 s".
std::string seconds_text(long long milliseconds);

// A MAC address in the form xx:xx:xx:xx:xx:xx (any case) -> lower case;
// nullopt if it is not one.
std::optional<std::string> normalize_mac(std::string_view mac);

// A VM id as VDSM and libvirt write it: 8-4-4-4-12 hex digits -> lower case.
std::optional<std::string> normalize_uuid(std::string_view uuid);

}  // namespace sriovpt
