#include "common/pcapio/bpf.hpp"

#include <gtest/gtest.h>

#include "common/pcapio/packet.hpp"

namespace tandem::pcapio {
namespace {

TEST(CheckFilter, AcceptsGeneratedStyleFilters) {
  for (int lt : {linktype::kEthernet, linktype::kLinuxSll, linktype::kLinuxSll2, linktype::kRaw}) {
    for (const char* f :
         {"", "udp and dst port 33434", "tcp[tcpflags] & (tcp-syn|tcp-rst) != 0 and port 21",
          "(host 192.0.2.1 and tcp port 21) or (icmp and icmp[icmptype] == icmp-unreach)",
          "ip6 and tcp and host 2001:db8::1", "icmp6"}) {
      auto s = check_filter(lt, f);
      EXPECT_TRUE(s) << linktype_name(lt) << " \"" << f << "\": " << s.error().text();
    }
  }
}

TEST(CheckFilter, RejectsSyntaxErrorWithFilterAndReason) {
  auto s = check_filter(linktype::kLinuxSll, "udp and port 53 and and");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::usage);
  EXPECT_NE(s.error().text().find("udp and port 53 and and"), std::string::npos);
  EXPECT_NE(s.error().text().find("syntax error"), std::string::npos) << s.error().text();
}

TEST(CheckFilter, DependsOnLinktype) {
  // Ethernet addresses exist on Ethernet but not on raw IP: the link type must reach libpcap as
  // the right DLT (LINKTYPE_RAW 101 is DLT_RAW 12 on Linux).
  EXPECT_TRUE(check_filter(linktype::kEthernet, "ether host 02:00:00:00:00:01"));
  auto raw = check_filter(linktype::kRaw, "ether host 02:00:00:00:00:01");
  ASSERT_FALSE(raw);
  EXPECT_EQ(raw.error().code, Errc::usage);
}

TEST(Linktype, DltMapping) {
  EXPECT_EQ(linktype_from_dlt(12), linktype::kRaw);  // DLT_RAW on Linux
  EXPECT_EQ(dlt_from_linktype(linktype::kRaw), 12);
  EXPECT_EQ(linktype_from_dlt(113), linktype::kLinuxSll);
  EXPECT_EQ(linktype_from_dlt(276), linktype::kLinuxSll2);
  EXPECT_EQ(linktype_name(linktype::kLinuxSll2), "LINUX_SLL2");
  EXPECT_EQ(linktype_name(linktype::kEthernet), "EN10MB");
  EXPECT_EQ(linktype_name(4000), "LINKTYPE_4000");
  EXPECT_TRUE(is_linux_cooked(linktype::kLinuxSll));
  EXPECT_FALSE(is_linux_cooked(linktype::kEthernet));
}

TEST(PacketBuffer, StoresCompactlyAndIterates) {
  PacketBuffer b;
  b.reserve(4, 64);
  const std::uint8_t a[] = {1, 2, 3};
  const std::uint8_t c[] = {9};
  b.append({10, 60, a});
  b.append({20, 0, {}});
  b.append({30, 1, c});
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b.bytes(), 4u);
  EXPECT_EQ(b[0].ts_ns, 10);
  EXPECT_EQ(b[0].origlen, 60u);
  EXPECT_EQ(b[0].data[2], 3);
  EXPECT_EQ(b[1].caplen(), 0u);
  EXPECT_EQ(b[2].data[0], 9);
  EXPECT_EQ(b.index()[2].offset, 3u);
  Nanos sum = 0;
  for (PacketView v : b) sum += v.ts_ns;
  EXPECT_EQ(sum, 60);
  b.clear();
  EXPECT_TRUE(b.empty());
}

}  // namespace
}  // namespace tandem::pcapio
