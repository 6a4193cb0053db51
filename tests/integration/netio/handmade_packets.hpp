// Hand-built probe packets for the netio tests: written byte by byte here so that the sender is
// checked against bytes that do not come from the code under test (or from common/packet).
// IPv4 packets carry a non-zero IP id and correct checksums, so the kernel changes nothing and the
// bytes on the wire must equal the bytes given to send().
#pragma once

#include <cstdint>
#include <vector>

#include "common/packet/addr.hpp"

namespace tandem::netio::test {

inline void put16(std::vector<std::uint8_t>& b, std::size_t at, std::uint16_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 8);
  b[at + 1] = static_cast<std::uint8_t>(v);
}

inline std::uint32_t sum16(const std::uint8_t* p, std::size_t n, std::uint32_t s = 0) {
  for (std::size_t i = 0; i + 1 < n; i += 2) s += static_cast<std::uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) s += static_cast<std::uint32_t>(p[n - 1] << 8);
  return s;
}

inline std::uint16_t fold(std::uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<std::uint16_t>(~s);
}

// L4 segment (TCP or UDP) for `proto` from src to dst, wrapped in an IPv4 or IPv6 header.
inline std::vector<std::uint8_t> wrap_ip(const packet::IpAddr& src, const packet::IpAddr& dst, std::uint8_t proto,
                                         std::vector<std::uint8_t> l4, std::size_t csum_at, std::uint16_t ip_id) {
  const bool v4 = src.is_v4();
  const std::size_t hl = v4 ? 20 : 40;
  const std::size_t alen = v4 ? 4 : 16;
  std::vector<std::uint8_t> p(hl + l4.size(), 0);
  if (v4) {
    p[0] = 0x45;
    put16(p, 2, static_cast<std::uint16_t>(p.size()));
    put16(p, 4, ip_id);
    p[6] = 0x40;  // DF
    p[8] = 64;
    p[9] = proto;
    std::copy_n(src.bytes.begin(), 4, p.begin() + 12);
    std::copy_n(dst.bytes.begin(), 4, p.begin() + 16);
    put16(p, 10, fold(sum16(p.data(), 20)));
  } else {
    p[0] = 0x60;
    put16(p, 4, static_cast<std::uint16_t>(l4.size()));
    p[6] = proto;
    p[7] = 64;
    std::copy_n(src.bytes.begin(), 16, p.begin() + 8);
    std::copy_n(dst.bytes.begin(), 16, p.begin() + 24);
  }
  std::uint32_t s = sum16(src.bytes.data(), alen);
  s = sum16(dst.bytes.data(), alen, s);
  s += proto;
  s += static_cast<std::uint32_t>(l4.size());
  s = sum16(l4.data(), l4.size(), s);
  const std::uint16_t c = fold(s);
  put16(l4, csum_at, c == 0 && proto == 17 ? 0xffff : c);
  std::copy(l4.begin(), l4.end(), p.begin() + static_cast<std::ptrdiff_t>(hl));
  return p;
}

// SYN with MSS 1460, SACK-permitted, Timestamps(tsval), NOP, WS 7: the Linux option order.
inline std::vector<std::uint8_t> syn(const packet::IpAddr& src, const packet::IpAddr& dst, std::uint16_t sport,
                                     std::uint16_t dport, std::uint32_t seq, std::uint16_t ip_id = 1) {
  std::vector<std::uint8_t> t(40, 0);
  put16(t, 0, sport);
  put16(t, 2, dport);
  put16(t, 4, static_cast<std::uint16_t>(seq >> 16));
  put16(t, 6, static_cast<std::uint16_t>(seq));
  t[12] = 10 << 4;
  t[13] = 0x02;
  put16(t, 14, 64240);
  const std::uint8_t opts[20] = {2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 3, 7};
  std::copy(std::begin(opts), std::end(opts), t.begin() + 20);
  put16(t, 28, static_cast<std::uint16_t>(seq >> 16));  // tsval = seq: varies per packet
  put16(t, 30, static_cast<std::uint16_t>(seq));
  return wrap_ip(src, dst, 6, std::move(t), 16, ip_id);
}

inline std::vector<std::uint8_t> udp(const packet::IpAddr& src, const packet::IpAddr& dst, std::uint16_t sport,
                                     std::uint16_t dport, std::size_t payload_len, std::uint16_t ip_id = 1) {
  std::vector<std::uint8_t> u(8 + payload_len, 0);
  put16(u, 0, sport);
  put16(u, 2, dport);
  put16(u, 4, static_cast<std::uint16_t>(u.size()));
  for (std::size_t i = 0; i < payload_len; ++i) u[8 + i] = static_cast<std::uint8_t>(i * 7 + sport);
  return wrap_ip(src, dst, 17, std::move(u), 6, ip_id);
}

}  // namespace tandem::netio::test
