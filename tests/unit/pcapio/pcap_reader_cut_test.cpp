// Captures cut short — copied while tcpdump still wrote them — read with CutShort::stop, against
// Wireshark's reader (wiretap, through capinfos and tshark) as the oracle. The inputs are real
// tcpdump and dumpcap files (data/README.md), cut at every offset.
#include <sys/wait.h>

#include <cstdio>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/pcapio/pcap_reader.hpp"
#include "tests/unit/pcapio/test_files.hpp"

namespace tandem::pcapio {
namespace {

using testing::ScratchFile;
using testing::read_bytes;
using testing::write_bytes;

const std::string kData = std::string(TANDEM_SOURCE_DIR) + "/tests/unit/pcapio/data/";

struct Ours {
  bool opened = false;
  std::string error;
  std::uint64_t packets = 0;
  bool cut = false;
};

Ours read_ours(const std::string& path) {
  Ours o;
  auto r = PcapReader::open(path, CutShort::stop);
  if (!r) {
    o.error = r.error().text();
    return o;
  }
  o.opened = true;
  auto n = r->for_each([](const PacketView&) {});
  if (!n) {
    o.error = n.error().text();
    return o;
  }
  o.packets = *n;
  o.cut = r->cut_short().has_value();
  return o;
}

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

bool have(const char* tool) { return std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) == 0; }

struct Theirs {
  std::uint64_t packets = 0;
  bool cut = false;
};

// capinfos (wiretap, fast): packet count, and whether it says the file was cut short. A file
// wiretap cannot open counts 0 packets.
Theirs capinfos(const std::string& path) {
  std::string out = run("capinfos -c -M '" + path + "' 2>&1");
  Theirs t;
  std::smatch m;
  if (std::regex_search(out, m, std::regex("Number of packets:\\s+(\\d+)"))) t.packets = std::stoull(m[1]);
  t.cut = out.find("cut short") != std::string::npos;
  return t;
}

// tshark -r: one line per packet it dissects.
Theirs tshark(const std::string& path) {
  ScratchFile err("tshark.err");
  std::string out = run("tshark -r '" + path + "' -T fields -e frame.number 2>'" + err.str() + "'");
  Theirs t;
  for (char c : out) t.packets += c == '\n';
  auto e = read_bytes(err.str());
  t.cut = std::string(e.begin(), e.end()).find("cut short") != std::string::npos;
  return t;
}

class CutCapture : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (!have("capinfos") || !have("tshark")) GTEST_SKIP() << "capinfos/tshark not installed (deploy/install-deps.sh)";
    whole_ = read_bytes(kData + GetParam());
    ASSERT_GT(whole_.size(), 100u);
  }
  // The first n bytes of the file, in a scratch file.
  std::string prefix(std::size_t n) {
    write_bytes(scratch_.str(), std::vector<std::uint8_t>(whole_.begin(), whole_.begin() + static_cast<std::ptrdiff_t>(n)));
    return scratch_.str();
  }
  bool is_pcapng() const { return whole_[0] == 0x0a && whole_[1] == 0x0d; }
  // Where the file header ends: pcap's 24-byte global header; pcapng's Section Header Block plus
  // the first Interface Description Block (libpcap needs the link type before any packet).
  std::size_t header_end() const {
    if (!is_pcapng()) return 24;
    auto len_at = [&](std::size_t off) {
      return static_cast<std::size_t>(whole_[off + 4]) | static_cast<std::size_t>(whole_[off + 5]) << 8 |
             static_cast<std::size_t>(whole_[off + 6]) << 16 | static_cast<std::size_t>(whole_[off + 7]) << 24;
    };
    std::size_t shb = len_at(0);
    return shb + len_at(shb);
  }

  std::vector<std::uint8_t> whole_;
  ScratchFile scratch_{"cut.pcap"};
};

// Every truncation offset: never a crash, refused only inside the file header, otherwise the
// complete packets before the cut with cut_short() set exactly when the cut is inside a record —
// and the same count and the same "cut short" as wiretap. wiretap is asked where our count steps
// (offset o_k where packet k becomes complete, and o_k - 1); both counts only grow with the
// offset, so agreeing at every step is agreeing at every offset.
TEST_P(CutCapture, EveryOffsetReadsTheCompletePacketsWiresharkReads) {
  const auto full = capinfos(kData + GetParam());
  ASSERT_EQ(full.packets, 20u);
  ASSERT_FALSE(full.cut);
  const std::size_t hdr = header_end();
  std::vector<std::size_t> step;  // step[k-1] = o_k
  std::uint64_t last = 0;
  for (std::size_t n = 0; n <= whole_.size(); ++n) {
    Ours o = read_ours(prefix(n));
    if (n < hdr) {
      ASSERT_FALSE(o.opened) << n;
      EXPECT_NE(o.error.find("not a readable pcap/pcapng file"), std::string::npos) << n << ": " << o.error;
      EXPECT_NE(o.error.find(scratch_.str()), std::string::npos) << o.error;
      continue;
    }
    ASSERT_TRUE(o.opened && o.error.empty()) << n << ": " << o.error;
    ASSERT_GE(o.packets, last) << n;
    ASSERT_LE(o.packets, full.packets) << n;
    if (o.packets > last) {
      ASSERT_EQ(o.packets, last + 1) << n;  // one byte completes at most one packet
      step.push_back(n);
      EXPECT_FALSE(o.cut) << "a file ending right after a packet is not cut, offset " << n;
    }
    last = o.packets;
  }
  ASSERT_EQ(last, full.packets);
  ASSERT_EQ(step.size(), full.packets);
  for (std::size_t k = 1; k <= step.size(); ++k) {
    const std::size_t at = step[k - 1];
    Theirs t = capinfos(prefix(at));
    EXPECT_EQ(t.packets, k) << "offset " << at;
    EXPECT_EQ(read_ours(prefix(at)).cut, t.cut) << "offset " << at;
    if (at - 1 < hdr) continue;
    Theirs before = capinfos(prefix(at - 1));
    Ours ob = read_ours(prefix(at - 1));
    EXPECT_EQ(before.packets, k - 1) << "offset " << at - 1;
    EXPECT_TRUE(before.cut) << "offset " << at - 1;
    EXPECT_TRUE(ob.cut) << "offset " << at - 1;
  }
  // After the last packet: pcapng files end with statistics blocks; a cut inside one is cut short
  // with every packet read.
  if (step.back() < whole_.size()) {
    Theirs t = capinfos(prefix(whole_.size() - 1));
    Ours o = read_ours(prefix(whole_.size() - 1));
    EXPECT_EQ(o.packets, t.packets);
    EXPECT_EQ(o.cut, t.cut);
    EXPECT_TRUE(o.cut);
  }
}

// The named oracle, at the cuts a copied capture has: inside a record header, inside a record's
// packet bytes, inside the last block — tshark -r dissects exactly the packets we read.
TEST_P(CutCapture, TsharkReadsTheSamePacketsAtTypicalCuts) {
  // The offsets come from the file format, not from our reader: record 1 starts at header_end()
  // with a 16-byte record header (pcap) or a 28-byte EPB head (pcapng) before its 74-byte frame.
  const std::size_t hdr = header_end();
  struct Cut {
    std::size_t at;
    bool inside_record;
  };
  const std::vector<Cut> cuts = {{hdr + 5, true},                // inside record 1's header / block head
                                 {hdr + 40, true},               // inside record 1's packet bytes
                                 {whole_.size() / 2, false},     // wherever the middle falls
                                 {whole_.size() - 3, true}};     // inside the last record / block
  for (const Cut& c : cuts) {
    Ours o = read_ours(prefix(c.at));
    Theirs t = tshark(prefix(c.at));
    ASSERT_TRUE(o.opened) << c.at << ": " << o.error;
    EXPECT_EQ(o.packets, t.packets) << GetParam() << " cut at " << c.at;
    EXPECT_EQ(o.cut, t.cut) << c.at;
    if (c.inside_record) {
      EXPECT_TRUE(o.cut) << c.at;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(RealCaptures, CutCapture,
                         ::testing::Values("lo_tcpdump.pcap", "lo_tcpdump_nano.pcap", "lo_dumpcap.pcapng"),
                         [](const ::testing::TestParamInfo<const char*>& p) {
                           std::string s = p.param;
                           for (char& c : s) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return s;
                         });

// Without CutShort::stop a cut file stays an error (callers that did not ask must not lose data),
// and with it a corrupt record in the middle of a file is still an error, not an end.
TEST(PcapReaderCut, DefaultIsAnErrorAndCorruptionIsNotACut) {
  auto whole = read_bytes(kData + "lo_tcpdump.pcap");
  ScratchFile f("corrupt.pcap");
  write_bytes(f.str(), std::vector<std::uint8_t>(whole.begin(), whole.end() - 7));
  auto r = PcapReader::open(f.str());
  ASSERT_TRUE(r) << r.error().text();
  auto n = r->for_each([](const PacketView&) {});
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, Errc::usage);
  EXPECT_FALSE(r->cut_short());

  // Record 2's caplen (after the 24-byte header and record 1: 16 + its caplen) set to 0xffffffff.
  auto bad = whole;
  std::size_t rec1_len = bad[24 + 8] | bad[24 + 9] << 8;
  std::size_t rec2 = 24 + 16 + rec1_len;
  for (int i = 8; i < 12; ++i) bad[rec2 + static_cast<std::size_t>(i)] = 0xff;
  write_bytes(f.str(), bad);
  auto c = PcapReader::open(f.str(), CutShort::stop);
  ASSERT_TRUE(c) << c.error().text();
  auto m = c->for_each([](const PacketView&) {});
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().text().find("packet 2"), std::string::npos) << m.error().text();
  EXPECT_FALSE(c->cut_short());
}

}  // namespace
}  // namespace tandem::pcapio
