// The compact per-packet record correlate() works on: every packet of both captures is decoded
// once into a 36-byte Rec (no per-packet allocation), with addresses interned per capture. Internal
// to controller/correlate (detail namespace); docs/correlation.md describes the fields' use.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/base/clock.hpp"
#include "common/packet/addr.hpp"
#include "controller/correlate/model.hpp"

namespace tandem::packet {
struct Decoded;
}

namespace tandem::correlate::detail {

using packet::IpAddr;

// Packet shapes, independent of direction.
enum Role : std::uint8_t {
  kRoleNone = 0,
  kRoleSyn,        // TCP SYN without ACK/RST: a TCP probe
  kRoleTcpReply,   // TCP with ACK or RST: a SYN-ACK, RST or anything else answering
  kRoleDatagram,   // UDP either way
  kRoleEchoReq,    // ICMP/ICMPv6 echo request: an ICMP probe
  kRoleEchoReply,  // ICMP/ICMPv6 echo reply
  kRoleIcmpError,  // ICMP error quoting a packet
};

enum Bits : std::uint8_t {
  kHasTs = 1,        // TCP timestamp option present (tsval valid)
  kHasPrimary = 2,   // `primary` is valid: TCP seq, payload tag index, or ICMP echo id/seq
  kHasTag = 4,       // `primary` came from the run's payload tag
  kOutgoing = 8,     // SLL/SLL2 said this host sent it
  kQuotedTcp = 16,   // ICMP error quoting TCP
  kQuotedUdp = 32,   // ICMP error quoting UDP
  kQuotedIcmp = 64,  // ICMP error quoting ICMP
  kDuplicate = 128,  // a second sighting of an earlier packet of this capture (see Side::dup_of)
};

// What correlation needs of one packet. For ICMP errors the L4 fields describe the quoted packet
// (primary = quoted seq/tag/echo id+seq, sport/dport = quoted ports, ipid = quoted IP ID / flow
// label) and type/code live in flags/code. Fields needed only to diff a matched pair (TOS, DF,
// window, option bytes) are folded into `fp`; a pair whose fingerprints differ is decoded again.
struct Rec {
  std::uint32_t primary = 0;
  std::uint32_t ack = 0;
  std::uint32_t ipid = 0;  // IPv4 ID or IPv6 flow label
  std::uint32_t tsval = 0;
  std::uint32_t fp = 0;
  std::uint16_t sport = 0, dport = 0;
  std::uint16_t src = 0, dst = 0;  // AddrTable ids
  std::uint8_t role = kRoleNone;
  std::uint8_t flags = 0;  // TCP flags, or ICMP type
  std::uint8_t code = 0;   // ICMP code
  std::uint8_t ttl = 0;
  std::uint8_t bits = 0;
};
static_assert(sizeof(Rec) <= 36);

// Interns addresses: captures of one run hold a handful of them, so a short linear scan in front of
// a hash map keeps the per-packet cost at a few compares.
class AddrTable {
 public:
  static constexpr std::uint16_t kOverflow = 0xffff;

  std::uint16_t intern(const IpAddr& a) {
    if (last_ < addrs_.size() && same(addrs_[last_], a)) return last_;
    for (std::uint16_t i = 0; i < std::min<std::size_t>(addrs_.size(), 8); ++i) {
      if (same(addrs_[i], a)) return last_ = i;
    }
    std::string key(reinterpret_cast<const char*>(a.bytes.data()), a.size());
    auto it = map_.find(key);
    if (it != map_.end()) return last_ = it->second;
    if (addrs_.size() >= kOverflow) return kOverflow;
    auto id = static_cast<std::uint16_t>(addrs_.size());
    addrs_.push_back(a);
    map_.emplace(std::move(key), id);
    return last_ = id;
  }
  // intern() of an IPv4 address given as its 4 bytes (the decode fast path): two remembered
  // addresses (a flow's two ends alternate as source and destination) answer most packets with
  // one integer compare.
  std::uint16_t intern_v4(const std::uint8_t* four) {
    std::uint32_t v;
    std::memcpy(&v, four, 4);
    for (auto& c : v4_cache_) {
      if (c.valid && c.value == v) return last_ = c.id;
    }
    IpAddr a;
    std::memcpy(a.bytes.data(), four, 4);
    const std::uint16_t id = intern(a);
    if (id != kOverflow) {
      v4_cache_[v4_next_] = {v, id, true};
      v4_next_ ^= 1;
    }
    return id;
  }
  std::optional<std::uint16_t> find(const IpAddr& a) const {
    for (std::size_t i = 0; i < addrs_.size(); ++i) {
      if (addrs_[i] == a) return static_cast<std::uint16_t>(i);
    }
    return std::nullopt;
  }
  const IpAddr* get(std::uint16_t id) const { return id < addrs_.size() ? &addrs_[id] : nullptr; }
  std::size_t size() const { return addrs_.size(); }

 private:
  // operator== without the out-of-line memcmp it compiles to: this runs twice per packet.
  static bool same(const IpAddr& x, const IpAddr& y) {
    std::uint64_t a[2], b[2];
    std::memcpy(a, x.bytes.data(), 16);
    std::memcpy(b, y.bytes.data(), 16);
    return x.version == y.version && a[0] == b[0] && a[1] == b[1];
  }

  struct V4Cached {
    std::uint32_t value = 0;  // the 4 address bytes as loaded, not byte-swapped
    std::uint16_t id = 0;
    bool valid = false;
  };

  std::vector<IpAddr> addrs_;
  std::unordered_map<std::string, std::uint16_t> map_;
  std::uint16_t last_ = 0;
  V4Cached v4_cache_[2];
  unsigned v4_next_ = 0;
};

// Cache-line aligned: the client and server Side sit next to each other in the Correlator and are
// decoded on two threads.
struct alignas(64) Side {
  const CaptureSide* cap = nullptr;
  std::vector<Rec> recs;
  AddrTable addrs;
  std::uint64_t drops = 0;  // kernel + interface drops when the capture reported them
  // One sighting per packet (DESIGN.md §8): a record identical to one of the few before it and
  // captured within kDuplicateWindowNs of it is the same packet seen twice (tcpdump -i any on a
  // bridge, VLAN, bond or container host). Such a record gets kDuplicate and role kRoleNone, and
  // dup_of[i] names the first sighting; dup_of is empty when the capture has no duplicate.
  std::vector<std::uint32_t> dup_of;
  std::uint64_t duplicates = 0;
  // Summaries taken while decoding, so that later stages need no pass of their own over every
  // packet: the capture's time span (0, 0 when empty), and per Role the records with it and those
  // of them marked kOutgoing (duplicates excluded: their role is kRoleNone).
  Nanos first_ts = 0, last_ts = 0;
  std::array<std::uint64_t, 8> role_n{}, role_out{};
  std::uint64_t bare_rsts = 0;  // TCP RSTs without ACK or SYN (duplicates included): see find_follow_ups()

  Nanos ts(std::uint32_t i) const { return cap->packets.index()[i].ts_ns; }
  // Asks the processor for packet i's record and timestamp ahead of their use. The per-probe
  // passes reach packets through the probes' indexes, a pattern the hardware prefetcher cannot
  // follow: without this each such load waits for memory (docs/benchmarks.md, issue 9).
  void prefetch(std::uint32_t i) const {
    if (i >= cap->packets.size()) return;
    __builtin_prefetch(&cap->packets.index()[i].ts_ns);
    if (i >= recs.size()) return;  // released (the output stage reads timestamps only)
    const char* r = reinterpret_cast<const char*>(&recs[i]);
    __builtin_prefetch(r);
    __builtin_prefetch(r + sizeof(Rec) - 1);
  }
};

// The decode fast path. Fills r straight from the frame, without packet::Decoded, for the shapes
// almost every packet of a TCP run has: Ethernet (at most two VLAN tags), Linux SLL/SLL2 or raw IP
// (LINKTYPE_RAW, DLT_RAW, IPV4, IPV6); IPv4 with or without IP options, not a later fragment, or
// IPv6 without extension headers; TCP whose header and option list are well-formed and lie wholly
// within the captured bytes. Returns true then, with r and the interned addresses exactly what
// fill_rec_full() would have produced. Returns false for anything else — other link types or L4
// protocols, and every packet the full decoder would report an anomaly for or find cut by the
// snaplen — leaving r and addrs untouched; the caller then decodes it with fill_rec_full().
bool fill_rec_fast(std::uint32_t linktype, std::span<const std::uint8_t> frame, AddrTable& addrs, Rec& r);

// The general path: packet::decode_into() into `scratch` (reused across packets by the caller),
// then the record from the decoded views. wire_len is pcap's original length (0 = not cut).
void fill_rec_full(std::uint32_t linktype, std::span<const std::uint8_t> frame, std::size_t wire_len,
                   const std::optional<std::uint32_t>& key, AddrTable& addrs, packet::Decoded& scratch, Rec& r);

// Faults in a large fresh allocation's pages with one call instead of one trap per 4 KiB page as
// it is first written (the kernel still zeroes and charges each page): the decoder's records.
// Best effort: without MADV_POPULATE_WRITE (Linux < 5.14), or below 1 MiB, the
// pages fault in as they are written.
void populate(void* p, std::size_t bytes);

// Identical copies of one packet within this time are one sighting.
inline constexpr Nanos kDuplicateWindowNs = 1'000'000;

// Marks the duplicates of s (see Side::dup_of). Compares each record with the last few kept ones
// only: the copies `-i any` makes sit next to each other in the capture.
void mark_duplicates(Side& s);

// Whether packet::decode() knows this link type.
bool linktype_supported(int lt);

// Decodes every packet of s.cap into s.recs (one Rec per packet, same index; fill_rec_fast() first,
// fill_rec_full() where it declines) and takes the capture's drop counters. `key` is the run key
// when known (probe ids from TCP seq / payload tags).
void decode_side(Side& s, const std::optional<std::uint32_t>& key);

// decode_side() on both sides; when both hold packets, the server side is decoded on a second
// thread (the sides share nothing: each has its own records and address table).
void decode_sides(Side& client, Side& server, const std::optional<std::uint32_t>& key);

}  // namespace tandem::correlate::detail
