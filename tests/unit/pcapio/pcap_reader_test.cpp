#include "common/pcapio/pcap_reader.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/pcapio/pcap_writer.hpp"
#include "common/pcapio/pcapng_writer.hpp"
#include "tests/unit/pcapio/test_files.hpp"

namespace tandem::pcapio {
namespace {

using testing::ScratchFile;
using testing::read_bytes;
using testing::write_bytes;

// Classic microsecond pcap (magic a1b2c3d4), Ethernet, one 4-byte packet at 1700000000.654321 s.
const std::vector<std::uint8_t> kMicroPcap = {
    0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x00, 0xf1, 0x53, 0x65, 0xf1, 0xfb, 0x09, 0x00,  // 1700000000 s, 654321 µs
    0x04, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x0a, 0x0b, 0x0c, 0x0d};

TEST(PcapReader, MicrosecondPcapScaledToNanoseconds) {
  ScratchFile f("micro.pcap");
  write_bytes(f.str(), kMicroPcap);
  auto r = PcapReader::open(f.str());
  ASSERT_TRUE(r) << r.error().text();
  EXPECT_EQ(r->linktype(), linktype::kEthernet);
  EXPECT_EQ(r->snaplen(), 65535);
  auto p = r->next();
  ASSERT_TRUE(p && p->has_value());
  EXPECT_EQ((*p)->ts_ns, 1'700'000'000'654'321'000);
  EXPECT_EQ((*p)->origlen, 64u);
  EXPECT_EQ((*p)->caplen(), 4u);
  EXPECT_EQ((*p)->data[3], 0x0d);
  auto end = r->next();
  ASSERT_TRUE(end);
  EXPECT_FALSE(end->has_value());
  EXPECT_EQ(r->packets_read(), 1u);
}

TEST(PcapReader, StreamsPcapAndPcapngIdentically) {
  ScratchFile pcap("stream.pcap");
  ScratchFile pcapng("stream.pcapng");
  constexpr int kPackets = 5000;
  {
    auto w1 = PcapWriter::create(pcap.str(), linktype::kLinuxSll2);
    auto w2 = PcapngWriter::create(pcapng.str());
    ASSERT_TRUE(w1 && w2);
    ASSERT_TRUE(w2->add_interface({linktype::kLinuxSll2, 0, "any", ""}));
    std::vector<std::uint8_t> frame(64);
    for (int i = 0; i < kPackets; ++i) {
      frame[0] = static_cast<std::uint8_t>(i);
      frame.resize(static_cast<std::size_t>(20 + i % 50));
      const PacketView v{1'700'000'000'000'000'000 + i * 1001, 0, frame};
      ASSERT_TRUE(w1->write(v));
      ASSERT_TRUE(w2->write(0, v, i % 2 ? "odd" : ""));
    }
    ASSERT_TRUE(w1->close());
    ASSERT_TRUE(w2->close());
  }
  for (const auto* f : {&pcap, &pcapng}) {
    auto r = PcapReader::open(f->str());
    ASSERT_TRUE(r) << r.error().text();
    EXPECT_EQ(r->linktype(), linktype::kLinuxSll2);
    int i = 0;
    bool all_match = true;
    auto n = r->for_each([&](const PacketView& v) {
      all_match = all_match && v.ts_ns == 1'700'000'000'000'000'000 + i * 1001 &&
                  v.caplen() == static_cast<std::uint32_t>(20 + i % 50) &&
                  v.data[0] == static_cast<std::uint8_t>(i);
      ++i;
    });
    ASSERT_TRUE(n) << n.error().text();
    EXPECT_EQ(*n, static_cast<std::uint64_t>(kPackets));
    EXPECT_TRUE(all_match) << f->str();
  }
}

TEST(PcapReader, MissingFileIsEnvironmentError) {
  auto r = PcapReader::open("/nonexistent-tandem/none.pcap");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::environment);
  EXPECT_NE(r.error().text().find("No such file or directory"), std::string::npos)
      << r.error().text();
  EXPECT_NE(r.error().text().find("none.pcap"), std::string::npos);
}

TEST(PcapReader, GarbageFileIsUsageError) {
  ScratchFile f("garbage.pcap");
  write_bytes(f.str(), std::vector<std::uint8_t>(200, 0x42));
  auto r = PcapReader::open(f.str());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::usage);
  EXPECT_NE(r.error().text().find("not a readable pcap/pcapng file"), std::string::npos)
      << r.error().text();
}

TEST(PcapReader, EmptyFileIsUsageError) {
  ScratchFile f("empty.pcap");
  write_bytes(f.str(), {});
  auto r = PcapReader::open(f.str());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::usage);
}

TEST(PcapReader, TruncatedRecordIsErrorAfterGoodPackets) {
  ScratchFile f("truncated.pcap");
  auto bytes = kMicroPcap;
  const auto one = std::vector<std::uint8_t>(kMicroPcap.begin() + 24, kMicroPcap.end());
  bytes.insert(bytes.end(), one.begin(), one.end() - 2);  // second record loses 2 data bytes
  write_bytes(f.str(), bytes);
  auto r = PcapReader::open(f.str());
  ASSERT_TRUE(r) << r.error().text();
  auto p1 = r->next();
  ASSERT_TRUE(p1 && p1->has_value());
  auto p2 = r->next();
  ASSERT_FALSE(p2);
  EXPECT_EQ(p2.error().code, Errc::usage);
  EXPECT_NE(p2.error().text().find("packet 2"), std::string::npos) << p2.error().text();
  EXPECT_NE(p2.error().text().find("truncated"), std::string::npos) << p2.error().text();
}

TEST(PcapReader, TruncatedPcapngBlockIsError) {
  ScratchFile f("truncated.pcapng");
  {
    auto w = PcapngWriter::create(f.str());
    ASSERT_TRUE(w);
    ASSERT_TRUE(w->add_interface({}));
    std::vector<std::uint8_t> frame(60, 1);
    ASSERT_TRUE(w->write(0, {1, 0, frame}, "first"));
    ASSERT_TRUE(w->write(0, {2, 0, frame}, "second"));
    ASSERT_TRUE(w->close());
  }
  auto bytes = read_bytes(f.str());
  bytes.resize(bytes.size() - 10);
  write_bytes(f.str(), bytes);
  auto r = PcapReader::open(f.str());
  ASSERT_TRUE(r) << r.error().text();
  auto n = r->for_each([](const PacketView&) {});
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, Errc::usage);
  EXPECT_EQ(r->packets_read(), 1u);
}

TEST(PcapReader, MovedReaderKeepsStreaming) {
  ScratchFile f("moved.pcap");
  write_bytes(f.str(), kMicroPcap);
  auto r = PcapReader::open(f.str());
  ASSERT_TRUE(r);
  PcapReader moved = std::move(r).value();
  auto p = moved.next();
  ASSERT_TRUE(p && p->has_value());
}

}  // namespace
}  // namespace tandem::pcapio
