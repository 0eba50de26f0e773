// Errors: one exception type whose message is written for an operator.
//
// Each layer that catches an Error adds what it was doing (`with_context`), so
// the final line reads from the outside in: "reserving a VF for vNIC
// 00:1a:4a:16:01:51 on network sriovnet: all 8 VFs of ens1f0 are held".
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace sriovpt {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// A lock could not be taken within lock_timeout. Separate so callers and tests
// can tell "busy" from "wrong".
class LockTimeout : public Error {
public:
    using Error::Error;
};

// Concatenates its arguments (strings, string_views, numbers) into one string.
template <typename... Parts>
std::string cat(const Parts&... parts) {
    std::string out;
    auto append = [&out](const auto& part) {
        using T = std::decay_t<decltype(part)>;
        if constexpr (std::is_same_v<T, char>)
            out += part;
        else if constexpr (std::is_arithmetic_v<T>)
            out += std::to_string(part);
        else
            out += part;
    };
    (append(parts), ...);
    return out;
}

// Throws Error(cat(parts...)).
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
    throw Error(cat(parts...));
}

// Runs f(); if it throws an Error, rethrows it as "<context>: <message>",
// keeping the exception's type.
template <typename F>
auto with_context(std::string_view context, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const LockTimeout& e) {
        throw LockTimeout(cat(context, ": ", e.what()));
    } catch (const Error& e) {
        throw Error(cat(context, ": ", e.what()));
    }
}

}  // namespace sriovpt
