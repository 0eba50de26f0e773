#include "harness.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <pugixml.hpp>
#include <sstream>
#include <stdexcept>

#include "domain_xml.hpp"

namespace fs = std::filesystem;

namespace sriovpt::test {

TempDir::TempDir() {
    std::string templ = (fs::temp_directory_path() / "sriovpt-test-XXXXXX").string();
    if (!::mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
}

TempDir::~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
}

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

void write_text(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + path);
}

std::string test_data(const std::string& name) {
    return read_text(std::string(SRIOVPT_TEST_DATA_DIR) + "/" + name);
}

std::string hook_path(const std::string& hook_point) {
    return std::string(SRIOVPT_HOOKS_DIR) + "/" + hook_point + "/50_sriov_passthrough";
}

TestHost::TestHost(const std::string& extra) : sysfs_(dir_.path() + "/sys") { write_config(extra); }

void TestHost::write_config(const std::string& extra) {
    write_text(conf_path(), "sysfs_root = " + dir() + "/sys\nstate_dir = " + state_dir() +
                                "\nlibvirt_uri = none\nlock_timeout = 10\n" + extra + "\n");
}

namespace {

// fork+exec with a fresh environment; stdout and stderr go to `out_path`.
int spawn_and_wait(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                   const std::string& out_path, bool stdout_too) {
    std::vector<std::string> env_strings;
    for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = argv;
    std::vector<char*> argp;
    for (auto& s : args) argp.push_back(s.data());
    argp.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        const int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            ::dup2(fd, 2);
            if (stdout_too) ::dup2(fd, 1);
        }
        const int devnull = ::open("/dev/null", O_RDWR);
        ::dup2(devnull, 0);
        if (!stdout_too) ::dup2(devnull, 1);
        ::execvpe(argp[0], argp.data(), envp.data());
        ::_exit(127);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::map<std::string, std::string> base_env() {
    const char* path = std::getenv("PATH");
    return {{"PATH", path ? path : "/usr/bin:/bin"}};
}

}  // namespace

HookRun TestHost::run(const std::string& hook_point, const std::string& xml, const std::optional<std::string>& vm_id,
                      const std::map<std::string, std::string>& props) const {
    TempDir work;
    const auto xml_path = work.path() + "/domxml";
    const auto err_path = work.path() + "/stderr";
    write_text(xml_path, xml);
    auto env = base_env();
    env["_hook_domxml"] = xml_path;
    env["SRIOV_PASSTHROUGH_CONF"] = conf_path();
    if (vm_id) env["vmId"] = *vm_id;
    for (const auto& [k, v] : props) env[k] = v;
    HookRun run;
    run.status = spawn_and_wait({hook_path(hook_point)}, env, err_path, false);
    run.err = read_text(err_path);
    run.xml = read_text(xml_path);
    return run;
}

std::vector<RecordEntry> TestHost::records() const {
    return ReservationStore(state_dir(), std::chrono::seconds(1)).load();
}

std::vector<Reservation> TestHost::reservations() const {
    std::vector<Reservation> out;
    for (const auto& e : records()) {
        if (e.record) out.push_back(*e.record);
    }
    return out;
}

SilentSocket::SilentSocket(std::string path) : path_(std::move(path)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path_.size() >= sizeof addr.sun_path) return;
    std::strcpy(addr.sun_path, path_.c_str());
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 16) != 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

SilentSocket::~SilentSocket() {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
}

CommandResult run_command(const std::vector<std::string>& argv, const std::map<std::string, std::string>& extra) {
    TempDir work;
    auto env = base_env();
    for (const auto& [k, v] : extra) env[k] = v;
    if (const char* home = std::getenv("HOME")) env.emplace("HOME", home);
    CommandResult result;
    result.status = spawn_and_wait(argv, env, work.path() + "/out", true);
    result.output = read_text(work.path() + "/out");
    return result;
}

namespace {

// libvirt's embedded QEMU driver probes QEMU's capabilities on the first use
// of a root and caches them there, but run as root it probes afresh every
// time (about a minute here; docs/design.md, "Checking against libvirt").
// So as root the check runs as `nobody` in a root that user owns, and every
// test of every run shares that root: the probe happens once, later checks
// take tens of milliseconds.
// libvirt notices a changed QEMU or libvirt itself and probes again.
constexpr uid_t kQemuCheckUid = 65534;
constexpr int kQemuCheckSeconds = 120;  // one virsh run, the probe included
// Two processes cannot use one root at once (ctest -j): they take turns, and
// a turn lasts at most one virsh run.
constexpr auto kQemuTurnWait = std::chrono::seconds(2 * kQemuCheckSeconds);

// An exclusive flock on `path`, waited for at most `limit`; -1 when not had.
int lock_within(const std::string& path, std::chrono::seconds limit) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK || std::chrono::steady_clock::now() >= deadline) {
            ::close(fd);
            return -1;
        }
        ::usleep(20 * 1000);
    }
    return fd;
}

// Makes `root` a directory owned by `uid` with a cache directory, and empty
// of domain definitions (a check killed between define and undefine would
// leave one, and a later define of that name with another UUID would fail).
void prepare_qemu_root(const std::string& root, uid_t uid) {
    struct stat st{};
    if (::stat(root.c_str(), &st) != 0 || st.st_uid != uid) {
        fs::remove_all(root);
        fs::create_directories(root + "/cache");
        if (::chown(root.c_str(), uid, uid) != 0 || ::chown((root + "/cache").c_str(), uid, uid) != 0)
            throw std::runtime_error("cannot give " + root + " to uid " + std::to_string(uid));
    }
    fs::remove_all(root + "/etc");
}

std::string qemu_driver_rejects(const std::string& domain_xml, const std::string& name) {
    const std::string root = std::string(SRIOVPT_TEST_WORK_DIR) + "/qemu-embed";
    fs::create_directories(SRIOVPT_TEST_WORK_DIR);
    const int lock = lock_within(root + ".lock", kQemuTurnWait);
    if (lock < 0) {
        return "libvirt QEMU driver: not checked: " + root + ".lock still held by another test after " +
               std::to_string(kQemuTurnWait.count()) + " s";
    }
    const bool as_root = ::geteuid() == 0;
    const uid_t uid = as_root ? kQemuCheckUid : ::geteuid();
    prepare_qemu_root(root, uid);
    // The document goes inside the root: the test's own temporary
    // directory is private to the test's user.
    const auto path = root + "/domain.xml";
    write_text(path, domain_xml);
    fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                              fs::perms::others_read);
    std::vector<std::string> argv = {"timeout", std::to_string(kQemuCheckSeconds)};
    if (as_root) {
        const auto id = std::to_string(kQemuCheckUid);
        argv.insert(argv.end(), {"setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups"});
    }
    argv.insert(argv.end(), {"virsh", "-q", "-c", "qemu:///embed?root=" + root,
                             "define --validate " + path + " ; undefine " + name});
    auto qemu = run_command(argv, {{"XDG_CACHE_HOME", root + "/cache"}, {"HOME", root}});
    ::close(lock);
    if (qemu.status == 124) return "libvirt QEMU driver: no verdict within " + std::to_string(kQemuCheckSeconds) + " s";
    if (qemu.status != 0 || qemu.output.find("error") != std::string::npos) return "libvirt QEMU driver: " + qemu.output;
    return {};
}

}  // namespace

std::string libvirt_rejects(const std::string& domain_xml) {
    pugi::xml_document doc;
    if (!parse_xml(doc, domain_xml)) return "not well-formed XML";
    auto domain = doc.child("domain");
    if (!domain) return "no <domain>";
    // What this machine can define: no /dev/kvm, no RHEL machine types.
    domain.attribute("type").set_value("qemu");
    if (auto type = domain.child("os").child("type"); type.attribute("machine")) type.attribute("machine").set_value("q35");
    // The engine fixture's disk carries <seclabel type="none"> inside
    // <source>, which libvirt's schema does not allow there; not ours to judge.
    for (auto disk : domain.child("devices").children("disk")) {
        if (auto label = disk.child("source").child("seclabel")) label.remove_attribute("type");
    }
    const std::string name = domain.child("name").text().as_string();

    TempDir work;
    const auto path = work.path() + "/domain.xml";
    const auto adapted = serialize_xml(doc);
    write_text(path, adapted);
    auto schema = run_command({"virt-xml-validate", path, "domain"});
    if (schema.status != 0) return "virt-xml-validate: " + schema.output;
    auto test_driver = run_command({"virsh", "-q", "-c", "test:///default", "define", path});
    if (test_driver.status != 0) return "libvirt test driver: " + test_driver.output;

    return qemu_driver_rejects(adapted, name);
}

Reservation sample_reservation() {
    Reservation r;
    r.pci = *PciAddress::parse("0000:3b:02.1");
    r.pf = "ens1f0";
    r.vf_index = 1;
    r.vm_id = kVmId;
    r.mac = "00:1a:4a:16:01:51";
    r.network = "sriovnet";
    r.vlan = 100;
    r.boot_id = "06903289-b3ab-4a3c-810c-fab67696ebbb";
    r.created = 1763890000;
    r.origin = "before_vm_start";
    return r;
}

}  // namespace sriovpt::test
