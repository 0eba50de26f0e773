#include "text.hpp"

#include <algorithm>
#include <cctype>
#include <limits>

namespace sriovpt {

std::string_view trim(std::string_view s) {
    const auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

std::string to_lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::vector<std::string> split(std::string_view s, char sep) {
    std::vector<std::string> out;
    for (;;) {
        const auto pos = s.find(sep);
        out.emplace_back(trim(s.substr(0, pos)));
        if (pos == std::string_view::npos) return out;
        s.remove_prefix(pos + 1);
    }
}

std::optional<unsigned long> parse_decimal(std::string_view s) {
    if (s.empty() || s.size() > 18) return std::nullopt;
    if (s.size() > 1 && s.front() == '0') return std::nullopt;
    unsigned long value = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<unsigned long>(c - '0');
    }
    return value;
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) out += sep;
        out += item;
    }
    return out;
}

std::string seconds_text(long long milliseconds) {
    std::string out = std::to_string(milliseconds / 1000);
    if (const auto rest = milliseconds % 1000) {
        auto frac = std::to_string(1000 + rest).substr(1);  // three digits
        while (frac.back() == '0') frac.pop_back();
        out += "." + frac;
    }
    return out + " s";
}

namespace {
bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

// True if `s` matches the pattern, where 'x' stands for a hex digit and any
// other character must match itself.
bool matches_hex_pattern(std::string_view s, std::string_view pattern) {
    if (s.size() != pattern.size()) return false;
    for (size_t i = 0; i < s.size(); ++i) {
        if (pattern[i] == 'x' ? !is_hex(s[i]) : s[i] != pattern[i]) return false;
    }
    return true;
}
}  // namespace

std::optional<std::string> normalize_mac(std::string_view mac) {
    mac = trim(mac);
    if (!matches_hex_pattern(mac, "xx:xx:xx:xx:xx:xx")) return std::nullopt;
    return to_lower(mac);
}

std::optional<std::string> normalize_uuid(std::string_view uuid) {
    uuid = trim(uuid);
    if (!matches_hex_pattern(uuid, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")) return std::nullopt;
    return to_lower(uuid);
}

}  // namespace sriovpt
