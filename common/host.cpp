#include "host.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <ctime>

#include "text.hpp"

namespace sriovpt {

std::string current_boot_id() {
    // One read: the kernel hands over the 37 bytes of this /proc file at once.
    const int fd = ::open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return {};
    char buf[64];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    ::close(fd);
    if (n <= 0) return {};
    return std::string(trim(std::string_view(buf, static_cast<size_t>(n))));
}

Host::Host()
    : Host([] { return load_config(config_path_from_env()); },
           [](const Config& c) { return open_libvirt(c.libvirt_uri, std::chrono::seconds(c.lock_timeout)); }) {}

Host::Host(ConfigLoader load_config, DomainsFactory make_domains)
    : boot_id(current_boot_id()),
      now([] { return static_cast<std::int64_t>(std::time(nullptr)); }),
      load_config_(std::move(load_config)),
      make_domains_(std::move(make_domains)) {}

Host::~Host() = default;

const Config& Host::config() {
    if (!config_) config_ = load_config_();
    return *config_;
}

const Sysfs& Host::sysfs() {
    if (!sysfs_) sysfs_ = std::make_unique<Sysfs>(config().sysfs_root);
    return *sysfs_;
}

const Inventory& Host::inventory() {
    if (!inventory_) inventory_ = std::make_unique<Inventory>(sysfs());
    return *inventory_;
}

ReservationStore& Host::store() {
    if (!store_) store_ = std::make_unique<ReservationStore>(config().state_dir, lock_timeout());
    return *store_;
}

DomainInventory& Host::domains() {
    if (!domains_) domains_ = make_domains_(config());
    return *domains_;
}

}  // namespace sriovpt
