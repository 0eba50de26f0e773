// Fuzz target: the reservation record parser (sriovpt::parse_record). Any
// input must give a Reservation or an sriovpt::Error; a record that parses
// must come back the same through format_record and parse_record.
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "error.hpp"
#include "reservations.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    std::optional<sriovpt::Reservation> r;
    try {
        r = sriovpt::parse_record(text);
    } catch (const sriovpt::Error&) {
        return 0;
    }
    // Outside the try: a record we wrote ourselves must always read back.
    if (sriovpt::parse_record(sriovpt::format_record(*r)) != *r) std::abort();
    return 0;
}
