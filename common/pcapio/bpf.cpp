#include "common/pcapio/bpf.hpp"

#include <pcap/pcap.h>

#include "common/pcapio/packet.hpp"

namespace tandem::pcapio {

Status check_filter(int lt, const std::string& filter, int snaplen) {
  pcap_t* dead = pcap_open_dead(dlt_from_linktype(lt), snaplen);
  if (dead == nullptr) {
    return make_error(Errc::internal, "bpf", "pcap_open_dead " + linktype_name(lt) + " failed");
  }
  bpf_program prog{};
  // Same flags as LiveCapture: optimise, netmask unknown (only matters for "ip broadcast").
  const int rc = pcap_compile(dead, &prog, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN);
  Status result = ok_status();
  if (rc != 0) {
    result = make_error(Errc::usage, "bpf",
                        "compile filter \"" + filter + "\" for " + linktype_name(lt) + ": " +
                            pcap_geterr(dead));
  } else {
    pcap_freecode(&prog);
  }
  pcap_close(dead);
  return result;
}

}  // namespace tandem::pcapio
