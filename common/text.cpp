#include "text.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
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

namespace {

// The length of the well-formed UTF-8 sequence that starts at s[i]
// (RFC 3629, table 3-7 of the Unicode standard), or 0 when s[i] starts none.
size_t utf8_length_at(std::string_view s, size_t i) {
    const auto byte = [&s](size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = byte(i);
    if (c < 0x80) return 1;
    size_t n = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // the range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0;  // overlong
        if (c == 0xed) hi = 0x9f;  // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;  // overlong
        if (c == 0xf4) hi = 0x8f;  // past U+10FFFF
    } else {
        return 0;
    }
    if (i + n > s.size() || byte(i + 1) < lo || byte(i + 1) > hi) return 0;
    for (size_t k = 2; k < n; ++k) {
        if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
    }
    return n;
}

std::string hex_escape(const char* format, unsigned value) {
    char buf[8];
    std::snprintf(buf, sizeof buf, format, value);
    return buf;
}

// printable() and quoted(): the escaped text of s, cut after `max` bytes.
std::string escape(std::string_view s, size_t max, bool quoting) {
    std::string out;
    const bool cut = s.size() > max;
    const size_t end = cut ? max : s.size();
    out.reserve(end + 3);
    // Printable ASCII, the usual whole message, is copied a run at a time.
    const auto plain = [quoting](unsigned char c) {
        return c >= 0x20 && c < 0x7f && !(quoting && (c == '\\' || c == '\''));
    };
    size_t i = 0;
    while (i < s.size()) {
        size_t run = i;
        while (run < end && plain(static_cast<unsigned char>(s[run]))) ++run;
        if (run > i) {
            out.append(s.substr(i, run - i));
            i = run;
            continue;
        }
        const size_t n = utf8_length_at(s, i);
        if (cut && i + std::max<size_t>(n, 1) > max) break;
        const auto c = static_cast<unsigned char>(s[i]);
        if (n == 0) {
            out += hex_escape("\\x%02x", c);
        } else if (n == 2 && c == 0xc2 && static_cast<unsigned char>(s[i + 1]) < 0xa0) {
            // C1 controls (U+0080..U+009F): a terminal may act on them.
            out += hex_escape("\\u%04x", static_cast<unsigned char>(s[i + 1]));
        } else if (n > 1) {
            out.append(s.substr(i, n));
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            out += hex_escape("\\x%02x", c);
        } else if (quoting && (c == '\\' || c == '\'')) {
            out += '\\';
            out += static_cast<char>(c);
        } else {
            out += static_cast<char>(c);
        }
        i += std::max<size_t>(n, 1);
    }
    if (cut) out += "...";
    return out;
}

std::string size_note(std::string_view s, size_t max) {
    return s.size() > max ? " (" + std::to_string(s.size()) + " bytes)" : std::string();
}

}  // namespace

std::string valid_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        if (const size_t n = utf8_length_at(s, i)) {
            out.append(s.substr(i, n));
            i += n;
        } else {
            out += "\xef\xbf\xbd";  // U+FFFD REPLACEMENT CHARACTER
            ++i;
        }
    }
    return out;
}

std::string printable(std::string_view s, size_t max) { return escape(s, max, false) + size_note(s, max); }

std::string quoted(std::string_view s, size_t max) { return "'" + escape(s, max, true) + "'" + size_note(s, max); }

}  // namespace sriovpt
