#include <sstream>

#include "harness.hpp"

namespace sriovpt::test {

namespace {

std::string interface_body(const TestVnic& v, size_t slot) {
    std::ostringstream out;
    out << "    <interface type=\"" << v.type << "\">\n"
        << "      <model type=\"virtio\"/>\n"
        << "      <link state=\"up\"/>\n"
        << "      <source bridge=\"" << v.network << "\"/>\n"
        << "      <alias name=\"ua-0000000" << slot << "-4f3b-4e0e-9a43-2b8f0c9a1d11\"/>\n"
        << "      <address bus=\"0x0" << slot << "\" domain=\"0x0000\" function=\"0x0\" slot=\"0x00\" type=\"pci\"/>\n"
        << "      <mac address=\"" << v.mac << "\"/>\n"
        << "      <mtu size=\"1500\"/>\n"
        << "      <filterref filter=\"vdsm-no-mac-spoofing\"/>\n"
        << "      <bandwidth/>\n"
        << "    </interface>\n";
    return out.str();
}

}  // namespace

std::string make_domain(const std::vector<TestVnic>& vnics, const std::string& uuid, const std::string& name) {
    std::ostringstream out;
    out << "<?xml version='1.0' encoding='utf-8'?>\n"
        << "<domain xmlns:ovirt-vm=\"http://ovirt.org/vm/1.0\" type=\"kvm\">\n"
        << "  <name>" << name << "</name>\n"
        << "  <uuid>" << uuid << "</uuid>\n"
        << "  <memory>1048576</memory>\n"
        << "  <vcpu>2</vcpu>\n"
        << "  <os>\n    <type arch=\"x86_64\" machine=\"pc-q35-rhel8.6.0\">hvm</type>\n  </os>\n"
        << "  <devices>\n";
    for (size_t i = 0; i < vnics.size(); ++i) out << interface_body(vnics[i], i + 1);
    out << "  </devices>\n  <metadata>\n    <ovirt-vm:vm>\n";
    for (const auto& v : vnics) {
        out << "      <ovirt-vm:device mac_address=\"" << v.mac << "\">\n        <ovirt-vm:custom>\n";
        for (const auto& [k, val] : v.props) out << "          <ovirt-vm:" << k << ">" << val << "</ovirt-vm:" << k << ">\n";
        out << "        </ovirt-vm:custom>\n      </ovirt-vm:device>\n";
    }
    out << "    </ovirt-vm:vm>\n  </metadata>\n</domain>\n";
    return out.str();
}

std::string make_interface(const std::string& mac, const std::string& network) {
    return "<?xml version='1.0' encoding='utf-8'?>\n" + interface_body(TestVnic{mac, network}, 7);
}

}  // namespace sriovpt::test
