// The host's effects, built lazily from the configuration: a hook that finds
// nothing to do never reads the configuration file, sysfs or the state
// directory, and none of them loads libvirt until a question needs it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "config.hpp"
#include "domains.hpp"
#include "reservations.hpp"
#include "sysfs.hpp"

namespace sriovpt {

// The current host boot (/proc/sys/kernel/random/boot_id); empty if unknown.
std::string current_boot_id();

class Host {
public:
    using ConfigLoader = std::function<Config()>;
    using DomainsFactory = std::function<std::unique_ptr<DomainInventory>(const Config&)>;

    // Defaults: the configuration from $SRIOV_PASSTHROUGH_CONF or the
    // standard path, and libvirt at the configured URI.
    Host();
    Host(ConfigLoader load_config, DomainsFactory make_domains);
    ~Host();

    const Config& config();
    const Sysfs& sysfs();
    const Inventory& inventory();
    ReservationStore& store();
    DomainInventory& domains();

    // This boot's id and the current time, as recorded in reservations.
    // Replaceable so tests can play an earlier boot or a later hour.
    std::string boot_id;
    std::function<std::int64_t()> now;

    std::chrono::milliseconds lock_timeout() { return std::chrono::seconds(config().lock_timeout); }

private:
    ConfigLoader load_config_;
    DomainsFactory make_domains_;
    std::optional<Config> config_;
    std::unique_ptr<Sysfs> sysfs_;
    std::unique_ptr<Inventory> inventory_;
    std::unique_ptr<ReservationStore> store_;
    std::unique_ptr<DomainInventory> domains_;
};

}  // namespace sriovpt
