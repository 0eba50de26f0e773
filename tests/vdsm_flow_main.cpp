// vdsm-flow: the model of VDSM's hook flows (support/vdsm_flow.hpp) as a
// program, to drive installed hooks by hand the way VDSM would:
//
//   vdsm-flow [--hooks-dir DIR] start DOMXML [--vm-id UUID] [--vm-prop N=V]...
//   vdsm-flow [--hooks-dir DIR] hotplug NICXML --vm-id UUID [--prop N=V]... [--attach-fails]
//   vdsm-flow [--hooks-dir DIR] hotunplug NICXML --vm-id UUID [--prop N=V]...
//   vdsm-flow [--hooks-dir DIR] destroy DOMXML --vm-id UUID
//
// The hooks see $SRIOV_PASSTHROUGH_CONF as this program does. Each hook run
// is printed on stderr; the XML VDSM would hand libvirt (start, hotplug) on
// stdout. Exit status: 0 when VDSM would carry on, 1 when it would refuse.
#include <cstdlib>
#include <iostream>
#include <pugixml.hpp>
#include <string>
#include <vector>

#include "harness.hpp"
#include "vdsm_flow.hpp"

using namespace sriovpt::test;

namespace {

[[noreturn]] void usage() {
    std::cerr << "usage: vdsm-flow [--hooks-dir DIR] start|hotplug|hotunplug|destroy XML [--vm-id UUID] "
                 "[--prop N=V]... [--vm-prop N=V]... [--attach-fails]\n";
    std::exit(2);
}

void add_prop(Props& props, const std::string& arg) {
    const auto eq = arg.find('=');
    if (eq == std::string::npos || eq == 0) usage();
    props[arg.substr(0, eq)] = arg.substr(eq + 1);
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    std::string hooks_dir = SRIOVPT_HOOKS_DIR, verb, xml_path, vm_id;
    Props props, vm_props;
    bool attach_fails = false;
    for (size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        const auto value = [&]() -> const std::string& {
            if (i + 1 >= args.size()) usage();
            return args[++i];
        };
        if (a == "--hooks-dir") hooks_dir = value();
        else if (a == "--vm-id") vm_id = value();
        else if (a == "--prop") add_prop(props, value());
        else if (a == "--vm-prop") add_prop(vm_props, value());
        else if (a == "--attach-fails") attach_fails = true;
        else if (a.rfind("--", 0) == 0) usage();
        else if (verb.empty()) verb = a;
        else if (xml_path.empty()) xml_path = a;
        else usage();
    }
    if (verb.empty() || xml_path.empty()) usage();
    const auto xml = read_text(xml_path);
    if (vm_id.empty()) {
        pugi::xml_document doc;
        doc.load_string(xml.c_str());
        vm_id = doc.child("domain").child("uuid").text().as_string();
    }
    if (vm_id.empty()) usage();
    const char* conf = std::getenv("SRIOV_PASSTHROUGH_CONF");
    VdsmFlow vdsm(FlowHost{conf ? conf : "/etc/vdsm/hooks/sriov_passthrough.conf", "/sys"}, hooks_dir);

    FlowResult r;
    if (verb == "start") r = vdsm.start_vm(xml, vm_id, vm_props);
    else if (verb == "hotplug") r = vdsm.hotplug_nic(xml, vm_id, props, attach_fails, vm_props);
    else if (verb == "hotunplug") r = vdsm.hotunplug_nic(xml, vm_id, props);
    else if (verb == "destroy") r = vdsm.destroy(xml, vm_id);
    else usage();

    for (const auto& c : r.calls) std::cerr << c.hook_point << ": " << c.executable << ": exit " << c.status << "\n" << c.err;
    if (!r.ok) {
        std::cerr << "VDSM would fail the operation at " << r.failed_at << "\n";
        return 1;
    }
    std::cout << r.xml;
    return 0;
}
