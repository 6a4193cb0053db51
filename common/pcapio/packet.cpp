#include "common/pcapio/packet.hpp"

#include <cstring>

#include <pcap/pcap.h>

namespace tandem::pcapio {

namespace {
// LINKTYPE_ATM_RFC1483 and LINKTYPE_RAW were renumbered in the registry because DLT_ values for
// them differ between platforms; on Linux DLT_ATM_RFC1483 is 11 and DLT_RAW is 12.
constexpr int kLinktypeAtmRfc1483 = 100;
}  // namespace

int linktype_from_dlt(int dlt) {
  switch (dlt) {
    case DLT_ATM_RFC1483: return kLinktypeAtmRfc1483;
    case DLT_RAW: return linktype::kRaw;
    default: return dlt;
  }
}

int dlt_from_linktype(int lt) {
  switch (lt) {
    case kLinktypeAtmRfc1483: return DLT_ATM_RFC1483;
    case linktype::kRaw: return DLT_RAW;
    default: return lt;
  }
}

std::string linktype_name(int lt) {
  const char* name = pcap_datalink_val_to_name(dlt_from_linktype(lt));
  if (name == nullptr) return "LINKTYPE_" + std::to_string(lt);
  return name;
}

void PacketBuffer::reserve(std::size_t packets, std::size_t bytes) {
  index_.reserve(packets);
  arena_.reserve(bytes);
}

void PacketBuffer::append(const PacketView& p) {
  const std::uint64_t offset = arena_.size();
  arena_.insert(arena_.end(), p.data.begin(), p.data.end());
  index_.push_back(Entry{p.ts_ns, p.caplen(), p.origlen, offset});
}

void PacketBuffer::clear() {
  arena_.clear();
  index_.clear();
}

PacketView PacketBuffer::operator[](std::size_t i) const {
  const Entry& e = index_[i];
  return PacketView{e.ts_ns, e.origlen,
                    std::span<const std::uint8_t>(arena_.data() + e.offset, e.caplen)};
}

}  // namespace tandem::pcapio
