// Pathological XML through the real hook executables: documents nested too
// deep, deep-but-allowed ones whose output must stay proportional, a
// serialisation that runs out of memory, DOCTYPE entities, and the temporary
// file beside $_hook_domxml. Rows of docs/bad-input.md.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <pugixml.hpp>
#include <string>

#include "harness.hpp"
#include "hooks.hpp"

namespace sriovpt::test {
namespace {

const std::map<std::string, std::string> kPassthrough{{"passthrough", "true"}};
const std::string kMac = "00:1a:4a:16:01:51";

std::string nested(const std::string& name, size_t levels, const std::string& inside = "") {
    std::string out;
    for (size_t i = 0; i < levels; ++i) out += "<" + name + ">";
    out += inside;
    for (size_t i = 0; i < levels; ++i) out += "</" + name + ">";
    return out;
}

// `xml` with `what` inserted just before the first `before`.
std::string insert_before(std::string xml, const std::string& before, const std::string& what) {
    const auto at = xml.find(before);
    EXPECT_NE(at, std::string::npos) << before;
    return xml.insert(at, what);
}

// The element nesting depth of a document (the root is 1), by a parser that
// has no limit of its own.
size_t depth_of(const std::string& xml) {
    pugi::xml_document doc;
    EXPECT_TRUE(doc.load_string(xml.c_str()));
    size_t deepest = 0;
    struct Walker : pugi::xml_tree_walker {
        size_t& deepest;
        explicit Walker(size_t& d) : deepest(d) {}
        bool for_each(pugi::xml_node& n) override {
            if (n.type() == pugi::node_element) deepest = std::max(deepest, static_cast<size_t>(depth()) + 1);
            return true;
        }
    } walker(deepest);
    doc.traverse(walker);
    return deepest;
}

class XmlHardening : public testing::Test {
protected:
    XmlHardening() : host_("[network.sriovnet]\npfs = ens1f0\n") { host_.sysfs().add_pf({"ens1f0", "0000:3b:00.0", 4}); }

    std::string domain() const { return make_domain({{kMac, "sriovnet", kPassthrough}}); }

    // A passthrough domain whose deepest element is at `depth` (the root is
    // 1): elements nested inside its vNIC's <interface> (level 3).
    std::string deep_interface(size_t depth) const {
        return insert_before(domain(), "      <mac address", nested("x", depth - 3));
    }

    // The same, nested inside <metadata> (level 2), with `width` empty
    // elements side by side at the bottom.
    std::string deep_metadata(size_t depth, size_t width = 0) const {
        std::string bottom;
        for (size_t i = 0; i < width; ++i) bottom += "<b/>";
        return insert_before(domain(), "  </metadata>",
                             "<deep xmlns=\"urn:example:deep\">" + nested("d", depth - 3, bottom) + "</deep>");
    }

    // Runs `hook_point` as VDSM does over the file at `path`.
    CommandResult run_on(const std::string& path, const std::string& hook_point = "before_vm_start",
                         const std::vector<std::string>& prefix = {}) const {
        auto argv = prefix;
        argv.push_back(hook_path(hook_point));
        return run_command(argv, {{"_hook_domxml", path}, {"vmId", kVmId}, {"SRIOV_PASSTHROUGH_CONF", host_.conf_path()}});
    }

    TestHost host_;
};

// --- depth -------------------------------------------------------------------

TEST_F(XmlHardening, DeepNestingInAPassthroughInterfaceIsRefusedBeforeAnythingIsReserved) {
    const auto in = deep_interface(257);
    ASSERT_EQ(depth_of(in), 257u);
    const auto run = host_.run("before_vm_start", in, kVmId);
    EXPECT_EQ(run.status, 2);
    EXPECT_NE(run.err.find(" is nested more than 256 elements deep (at byte "), std::string::npos) << run.err;
    EXPECT_NE(run.err.find("); libvirt reads no document deeper than that\n"), std::string::npos) << run.err;
    EXPECT_EQ(run.xml, in);
    EXPECT_TRUE(host_.records().empty());

    // What crashed the hook (a recursion as deep as the document) after the
    // VF was reserved.
    const auto crash = deep_interface(200000);
    const auto again = host_.run("before_vm_start", crash, kVmId);
    EXPECT_EQ(again.status, 2) << again.err.substr(0, 300);
    EXPECT_NE(again.err.find(" is nested more than 256 elements deep"), std::string::npos) << again.err.substr(0, 300);
    EXPECT_EQ(again.xml, crash);
    EXPECT_TRUE(host_.records().empty()) << "no reservation may be left behind";
}

TEST_F(XmlHardening, EveryHookRefusesADocumentNestedTooDeep) {
    const auto domain_xml = deep_metadata(300);
    const auto iface = insert_before(make_interface(kMac), "      <mac address", nested("x", 298));
    for (const auto hp : all_hook_points()) {
        const std::string name(hook_point_name(hp));
        const bool device = name.find("nic") != std::string::npos || name == "before_device_create";
        const auto& in = device ? iface : domain_xml;
        const auto run = host_.run(name, in, kVmId, device ? kPassthrough : std::map<std::string, std::string>{});
        EXPECT_EQ(run.status, is_before_hook(hp) ? 2 : 1) << name << ": " << run.err;
        EXPECT_EQ(run.err.rfind("sriov-passthrough: " + name + ": the XML in ", 0), 0u) << run.err;
        EXPECT_NE(run.err.find(" is nested more than 256 elements deep (at byte "), std::string::npos) << run.err;
        EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
        EXPECT_EQ(run.xml, in) << name;
    }
    EXPECT_TRUE(host_.records().empty());
}

TEST_F(XmlHardening, TheDeepestDocumentLibvirtReadsIsTakenAndStaysIntact) {
    const auto in = deep_interface(256);
    ASSERT_EQ(depth_of(in), 256u);
    const auto run = host_.run("before_vm_start", in, kVmId);
    ASSERT_EQ(run.status, 0) << run.err;
    EXPECT_EQ(host_.reservations().size(), 1u);
    EXPECT_NE(run.xml.find("type=\"hostdev\""), std::string::npos);
    EXPECT_EQ(depth_of(run.xml), 256u);
    // The nested elements are all there, in one piece, whatever the line breaks.
    std::string compact;
    for (const char c : run.xml) {
        if (c != '\n' && c != ' ') compact += c;
    }
    EXPECT_NE(compact.find(nested("x", 252, "<x/>")), std::string::npos);
}

// --- output size ---------------------------------------------------------------

// Indentation grows with depth: written out in full, 250 levels came out
// dozens of times the size of the input (a few megabytes in, hundreds out).
TEST_F(XmlHardening, OutputStaysProportionalToTheInputForDeepButAllowedDocuments) {
    for (const size_t width : {0, 2000}) {
        SCOPED_TRACE("width " + std::to_string(width));
        host_.run("after_vm_destroy", domain(), kVmId);
        const auto in = deep_metadata(250, width);
        ASSERT_EQ(depth_of(in), width ? 251u : 250u);
        const auto run = host_.run("before_vm_start", in, kVmId);
        ASSERT_EQ(run.status, 0) << run.err;
        EXPECT_NE(run.xml.find("type=\"hostdev\""), std::string::npos);
        EXPECT_LE(run.xml.size(), 2 * in.size()) << "input " << in.size() << " bytes, output " << run.xml.size();
        EXPECT_EQ(depth_of(run.xml), depth_of(in));
    }
}

// --- a serialisation that fails ------------------------------------------------

// The hook runs with its address space limited so that reading and parsing a
// large document fit, and writing it out again does not. It used to write a
// truncated file and exit 0 (an ostringstream swallows std::bad_alloc).
TEST_F(XmlHardening, OutOfMemoryWhileSerialisingFailsAndGivesTheVfBack) {
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "AddressSanitizer reserves terabytes of address space: RLIMIT_AS cannot be used";
#else
    const size_t big = 64u << 20;
    const auto in = insert_before(domain(), "  </metadata>", "<!--" + std::string(big, 'x') + "-->\n");
    TempDir dir;
    const auto path = dir.path() + "/domxml";
    write_text(path, in);
    // The document is read once and copied once by the parser (2 x 64 MiB);
    // the text written out needs a third copy.
    const auto limit = std::to_string(2 * big + big / 2 + (24u << 20));
    const auto run = run_on(path, "before_vm_start", {"prlimit", "--as=" + limit});
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.output, "sriov-passthrough: before_vm_start: out of memory while writing the XML back to " + path + "\n");
    EXPECT_TRUE(read_text(path) == in) << "the XML file must be left byte for byte";
    EXPECT_TRUE(host_.records().empty()) << "the VF reserved before the write must be given back";
    // And with room enough, the same document goes through.
    const auto ok = run_on(path);
    EXPECT_EQ(ok.status, 0) << ok.output;
    EXPECT_EQ(host_.reservations().size(), 1u);
#endif
}

TEST_F(XmlHardening, OutOfMemoryIsSaidInWords) {
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "AddressSanitizer reserves terabytes of address space: RLIMIT_AS cannot be used";
#else
    TempDir dir;
    const auto path = dir.path() + "/domxml";
    {
        // 1 GiB of nothing: sparse, costs no disk.
        std::ofstream(path) << "<domain/>";
        std::filesystem::resize_file(path, 1u << 30);
    }
    const auto run = run_on(path, "before_vm_start", {"prlimit", "--as=" + std::to_string(256u << 20)});
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.output, "sriov-passthrough: before_vm_start: out of memory while reading " + path + "\n");
    const auto cli = run_command({"prlimit", "--as=" + std::to_string(256u << 20), SRIOVPT_CLI, "--config",
                                  host_.conf_path(), "run", "before_vm_start", "--domxml", path});
    EXPECT_EQ(cli.status, 1);
    EXPECT_EQ(cli.output, "sriov-passthrough: out of memory\n");
#endif
}

// --- DOCTYPE entities ------------------------------------------------------------

// libvirt and VDSM expand entities declared in a DOCTYPE; a rewrite would
// have turned "&desc;" into the literal text "&amp;desc;".
std::string with_entities(const std::string& domain_xml) {
    auto xml = insert_before(domain_xml, "<domain",
                             "<!DOCTYPE domain [\n<!ENTITY desc \"made &amp; kept\">\n]>\n");
    return insert_before(xml, "  <name>", "  <description>&desc;</description>\n");
}

TEST_F(XmlHardening, EntitiesAreNeverRewrittenIntoText) {
    TempDir dir;
    const auto path = dir.path() + "/domxml";
    const auto in = with_entities(domain());
    write_text(path, in);
    const auto run = run_on(path);
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.output, "sriov-passthrough: before_vm_start: the XML in " + path +
                              " declares entities in its DOCTYPE (<!ENTITY>), which a rewrite would turn into literal "
                              "text; expand them first (xmllint --noent)\n");
    EXPECT_EQ(read_text(path), in) << "the XML file must be left byte for byte";
    EXPECT_TRUE(host_.records().empty()) << "the VF reserved before the write must be given back";
}

TEST_F(XmlHardening, EntitiesInAVmWithoutPassthroughAreKept) {
    const auto in = with_entities(make_domain({{kMac, "ovirtmgmt"}}));
    const auto run = host_.run("before_vm_start", in, kVmId);
    EXPECT_EQ(run.status, 0) << run.err;
    EXPECT_EQ(run.xml, in) << "a file that is not rewritten keeps its entities";
}

// --- the temporary file beside $_hook_domxml ---------------------------------------

// VDSM's file is usually in /tmp, where any user can create files. The hook
// used to write "<file>.sriov-passthrough.<pid>", a name anyone could create
// first: here every name the next 2000 processes could get.
TEST_F(XmlHardening, PredictableTemporaryNamesDoNotStopTheHook) {
    TempDir dir;
    const auto path = dir.path() + "/domxml";
    const auto in = domain();
    write_text(path, in);
    long pid_max = 32768, last = 0;
    std::ifstream("/proc/sys/kernel/pid_max") >> pid_max;
    std::ifstream("/proc/sys/kernel/ns_last_pid") >> last;
    for (long i = 1; i <= 2000; ++i) {
        long pid = last + i;
        if (pid >= pid_max) pid = pid - pid_max + 300;  // the kernel wraps to 300
        write_text(path + ".sriov-passthrough." + std::to_string(pid), "not yours\n");
    }
    const auto run = run_on(path);
    EXPECT_EQ(run.status, 0) << run.output;
    EXPECT_NE(read_text(path).find("type=\"hostdev\""), std::string::npos);
    // Nothing of ours is left beside the file, and the mode is kept.
    size_t ours = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
        if (read_text(e.path()) != "not yours\n") ++ours;
    }
    EXPECT_EQ(ours, 1u) << "only the XML file itself";
}

TEST_F(XmlHardening, TheRewrittenFileKeepsItsMode) {
    TempDir dir;
    const auto path = dir.path() + "/domxml";
    write_text(path, domain());
    ASSERT_EQ(::chmod(path.c_str(), 0664), 0);
    const auto old_umask = ::umask(077);
    const auto run = run_on(path);
    ::umask(old_umask);
    ASSERT_EQ(run.status, 0) << run.output;
    EXPECT_EQ(std::filesystem::status(path).permissions(),
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                  std::filesystem::perms::group_read | std::filesystem::perms::group_write |
                  std::filesystem::perms::others_read);
}

}  // namespace
}  // namespace sriovpt::test
