// Probe identity: every probe of a run carries its index in several header fields, keyed by a
// per-run secret, so that a reply, an ICMP error quoting the probe, or the probe itself seen in the
// far-end capture maps back to exactly one probe — and a reply to somebody else's probe does not.
//
// Carriers (see docs/probes.md "Probe identity"):
//   TCP  sequence number   = permute32(key, index)        (a SYN-ACK/RST acks seq+1)
//   IPv4 identification     = low 16 bits of permute32(key ^ kIpIdSalt, index)
//   IPv6 flow label         = low 20 bits of the same
//   source port             = chosen by the SportPolicy: a keyed shuffle of the range when random
//   UDP / ICMP payload      = "TNDM" + key + index (12 bytes)
//   ICMP echo identifier    = low 16 bits of key; echo sequence = low 16 bits of index
// Several carriers are kept on purpose: NAT rewrites addresses and ports, some middleboxes rewrite
// TCP sequence numbers or IP IDs; correlation checks which carriers survived and reports the rest.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>

namespace tandem::probe {

// A bijection on 32-bit values (4-round Feistel network over 16-bit halves), keyed by `key`.
std::uint32_t permute32(std::uint32_t key, std::uint32_t value);
std::uint32_t unpermute32(std::uint32_t key, std::uint32_t value);

// A bijection on [0, n) for 1 <= n <= 2^32 (a balanced Feistel network on the smallest even
// number of bits covering n, with cycle walking): distinct inputs below n give distinct outputs
// below n. Used for source ports, so that a run's probes never share one by chance.
std::uint32_t permute_below(std::uint32_t key, std::uint32_t value, std::uint64_t n);

inline constexpr std::uint32_t kIpIdSalt = 0x5bd1e995;
inline constexpr std::uint32_t kSportSalt = 0x27d4eb2f;
inline constexpr std::size_t kPayloadTagSize = 12;

struct RunKey {
  std::uint32_t key = 0;

  std::uint32_t tcp_seq(std::uint32_t index) const { return permute32(key, index); }
  // Index carried by a TCP sequence number; the caller checks it is below the run's probe count.
  std::uint32_t index_from_seq(std::uint32_t seq) const { return unpermute32(key, seq); }
  std::uint16_t ip_id(std::uint32_t index) const {
    return static_cast<std::uint16_t>(permute32(key ^ kIpIdSalt, index));
  }
  std::uint32_t flow_label(std::uint32_t index) const {
    return permute32(key ^ kIpIdSalt, index) & 0xfffffu;
  }
  std::uint16_t icmp_ident() const { return static_cast<std::uint16_t>(key); }
  // Position of probe `index` in a keyed shuffle of [0, n): source ports drawn from a range of n
  // ports without repetition until all n are used.
  std::uint32_t sport_slot(std::uint32_t index, std::uint32_t n) const {
    return permute_below(key ^ kSportSalt, index % n, n);
  }

  std::array<std::uint8_t, kPayloadTagSize> payload_tag(std::uint32_t index) const;
  // The index carried by a payload that starts with this run's tag; nullopt for anything else.
  std::optional<std::uint32_t> index_from_payload(std::span<const std::uint8_t> payload) const;
};

// A fresh random key from the kernel's CSPRNG (getrandom).
RunKey random_run_key();

}  // namespace tandem::probe
