// Small string helpers shared by the parsers.
#pragma once

#include <cstddef>
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

// --- Values from the input, in messages -------------------------------------
//
// A message is one line on stderr (which the engine shows) and in the journal.
// Anything that came from the input (XML, properties, configuration, command
// line, file names) goes through quoted() or printable() before it is part of
// one, so a newline cannot split the line and a 100 000-digit "VLAN" is not
// printed whole.

// How many bytes of a value a message shows.
inline constexpr size_t kShownValueBytes = 64;

// `s` with every byte that is not part of a well-formed UTF-8 sequence
// (RFC 3629: no overlong forms, surrogates or code points past U+10FFFF)
// replaced by U+FFFD. Valid UTF-8 comes back unchanged.
std::string valid_utf8(std::string_view s);

// `s` made safe for one line: control characters as \n, \r, \t, \xNN or
// \u00NN (C1), bytes that are not UTF-8 as \xNN, everything else as it is.
// Longer than `max` bytes: cut at a character boundary, "..." and the whole
// size added: "123456... (100000 bytes)".
std::string printable(std::string_view s, size_t max = kShownValueBytes);

// printable(s) between single quotes, with '\' and '\'' inside escaped so the
// quotes cannot be faked: for a value in a message ("'4095' is not a VLAN
// tag"). A cut value reads '123456...' (100000 bytes).
std::string quoted(std::string_view s, size_t max = kShownValueBytes);

}  // namespace sriovpt
