#include "common/pcapio/pcapng_writer.hpp"

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sys/resource.h>

#include "common/pcapio/pcap_reader.hpp"
#include "common/pcapio/pcap_writer.hpp"
#include "tests/unit/pcapio/test_files.hpp"

namespace tandem::pcapio {
namespace {

using testing::ScratchFile;
using testing::read_bytes;

constexpr Nanos kTs1 = 1'700'000'000'123'456'789;  // 0x17979cfe3d85cd15
constexpr Nanos kTs2 = 1'700'000'001'000'000'001;

const std::vector<std::uint8_t> kData1 = {0xde, 0xad, 0xbe, 0xef, 0x01};
const std::vector<std::uint8_t> kData2 = {0x01, 0x02, 0x03, 0x04};

// SHB(user_appl) + IDB(EN10MB, snaplen 256, "lo", tsresol 9) + EPB(5 bytes, origlen 60,
// comment) + EPB(4 bytes, no options), block by block as laid out in the pcapng spec.
const std::vector<std::uint8_t> kGolden = {
    // SHB: type, total length 48, byte-order magic, version 1.0, section length -1
    0x0a, 0x0d, 0x0d, 0x0a, 0x30, 0x00, 0x00, 0x00, 0x4d, 0x3c, 0x2b, 0x1a, 0x01, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    // shb_userappl (4), length 11, "tandem test" + 1 pad byte
    0x04, 0x00, 0x0b, 0x00, 't', 'a', 'n', 'd', 'e', 'm', ' ', 't', 'e', 's', 't', 0x00,
    // opt_endofopt, trailing total length
    0x00, 0x00, 0x00, 0x00, 0x30, 0x00, 0x00, 0x00,
    // IDB: type 1, total length 40, linktype 1, reserved, snaplen 256
    0x01, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
    // if_name (2), length 2, "lo" + 2 pad; if_tsresol (9), length 1, 9 + 3 pad
    0x02, 0x00, 0x02, 0x00, 'l', 'o', 0x00, 0x00, 0x09, 0x00, 0x01, 0x00, 0x09, 0x00, 0x00, 0x00,
    // opt_endofopt, trailing total length
    0x00, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00,
    // EPB: type 6, total length 64, interface 0, ts high, ts low, caplen 5, origlen 60
    0x06, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xfe, 0x9c, 0x97, 0x17,
    0x15, 0xcd, 0x85, 0x3d, 0x05, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x00,
    // data + 3 pad
    0xde, 0xad, 0xbe, 0xef, 0x01, 0x00, 0x00, 0x00,
    // opt_comment (1), length 16, "probe 1 answered"
    0x01, 0x00, 0x10, 0x00, 'p', 'r', 'o', 'b', 'e', ' ', '1', ' ', 'a', 'n', 's', 'w', 'e', 'r',
    'e', 'd',
    // opt_endofopt, trailing total length
    0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00,
    // EPB: total length 36, interface 0, ts 1700000001000000001 = 0x17979cfe71c4ca01
    0x06, 0x00, 0x00, 0x00, 0x24, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xfe, 0x9c, 0x97, 0x17,
    0x01, 0xca, 0xc4, 0x71, 0x04, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
    // data (already aligned), no options, trailing total length
    0x01, 0x02, 0x03, 0x04, 0x24, 0x00, 0x00, 0x00};

void write_golden(const std::string& path) {
  PcapngOptions opts;
  opts.user_appl = "tandem test";
  auto w = PcapngWriter::create(path, opts);
  ASSERT_TRUE(w) << w.error().text();
  auto id = w->add_interface({linktype::kEthernet, 256, "lo", ""});
  ASSERT_TRUE(id) << id.error().text();
  EXPECT_EQ(*id, 0u);
  ASSERT_TRUE(w->write(0, {kTs1, 60, kData1}, "probe 1 answered"));
  ASSERT_TRUE(w->write(0, {kTs2, 0, kData2}));
  EXPECT_EQ(w->packets_written(), 2u);
  auto closed = w->close();
  ASSERT_TRUE(closed) << closed.error().text();
}

TEST(PcapngWriter, GoldenBytes) {
  ScratchFile f("golden.pcapng");
  write_golden(f.str());
  EXPECT_EQ(read_bytes(f.str()), kGolden);
}

TEST(PcapngWriter, ReadBackWithOurReader) {
  ScratchFile f("readback.pcapng");
  write_golden(f.str());
  auto r = PcapReader::open(f.str());
  ASSERT_TRUE(r) << r.error().text();
  EXPECT_EQ(r->linktype(), linktype::kEthernet);
  EXPECT_EQ(r->snaplen(), 256);
  auto p1 = r->next();
  ASSERT_TRUE(p1 && p1->has_value());
  EXPECT_EQ((*p1)->ts_ns, kTs1);
  EXPECT_EQ((*p1)->origlen, 60u);
  EXPECT_EQ(std::vector<std::uint8_t>((*p1)->data.begin(), (*p1)->data.end()), kData1);
  auto p2 = r->next();
  ASSERT_TRUE(p2 && p2->has_value());
  EXPECT_EQ((*p2)->ts_ns, kTs2);
  EXPECT_EQ((*p2)->origlen, 4u);
  auto end = r->next();
  ASSERT_TRUE(end);
  EXPECT_FALSE(end->has_value());
}

// Runs a command, returns its stdout (empty string if it could not run).
std::string run(const std::string& cmd) {
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) return out;
  char buf[512];
  while (fgets(buf, sizeof buf, pipe.get()) != nullptr) out += buf;
  return out;
}

TEST(PcapngWriter, StatisticsBlockReadByTshark) {
  if (run("command -v tshark").empty()) GTEST_SKIP() << "tshark not installed: SKIPPING tshark check";
  ScratchFile f("tshark-isb.pcapng");
  {
    auto w = PcapngWriter::create(f.str());
    ASSERT_TRUE(w);
    ASSERT_TRUE(w->add_interface({linktype::kEthernet, 256, "lo", ""}));
    ASSERT_TRUE(w->write(0, {kTs1, 60, kData1}));
    PcapngInterfaceStats st;
    st.ts_ns = kTs1;
    st.filter_accept = 1;
    st.os_drop = 3;
    st.user_delivered = 1;
    st.comment = "tandem: 3 dropped";
    ASSERT_TRUE(w->write_statistics(0, st));
    ASSERT_TRUE(w->close());
  }
  // tshark reads the file cleanly (no "cut short" / "appears to be damaged") and sees one frame.
  EXPECT_EQ(run("tshark -r " + f.str() + " -T fields -e frame.number 2>&1 | grep -v '^Running as user'"), "1\n");
}

TEST(PcapngWriter, ReadBackWithTshark) {
  if (run("command -v tshark").empty()) GTEST_SKIP() << "tshark not installed: SKIPPING tshark check";
  ScratchFile f("tshark.pcapng");
  write_golden(f.str());
  const std::string out = run("tshark -r " + f.str() +
                              " -T fields -e frame.comment -e frame.time_epoch 2>/dev/null");
  EXPECT_EQ(out,
            "probe 1 answered\t1700000000.123456789\n"
            "\t1700000001.000000001\n");
}

// Interface Statistics Block: counters known are written (u64 options), unknown ones omitted, and
// every reader still sees just the packets.
TEST(PcapngWriter, StatisticsBlockGoldenAndReadable) {
  ScratchFile f("isb.pcapng");
  {
    PcapngOptions opts;
    opts.user_appl = "tandem test";
    auto w = PcapngWriter::create(f.str(), opts);
    ASSERT_TRUE(w) << w.error().text();
    ASSERT_TRUE(w->add_interface({linktype::kEthernet, 256, "lo", ""}));
    ASSERT_TRUE(w->write(0, {kTs1, 60, kData1}, "probe 1 answered"));
    ASSERT_TRUE(w->write(0, {kTs2, 0, kData2}));
    PcapngInterfaceStats st;
    st.ts_ns = kTs2;
    st.filter_accept = 7;
    st.os_drop = 2;
    st.user_delivered = 2;  // if_drop unknown: omitted, not 0
    ASSERT_TRUE(w->write_statistics(0, st));
    ASSERT_TRUE(w->write_statistics(0, PcapngInterfaceStats{kTs2, {}, {}, {}, {}, ""}));  // nothing known
    ASSERT_TRUE(w->close());
  }
  std::vector<std::uint8_t> want = kGolden;
  const std::vector<std::uint8_t> isb = {
      // ISB: type 5, total length 64, interface 0, ts high, ts low (kTs2)
      0x05, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xfe, 0x9c, 0x97, 0x17,
      0x01, 0xca, 0xc4, 0x71,
      // isb_filteraccept (6) = 7, isb_osdrop (7) = 2, isb_usrdeliv (8) = 2, each 8 bytes
      0x06, 0x00, 0x08, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x07, 0x00, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x08, 0x00, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      // opt_endofopt, trailing total length
      0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00,
      // ISB without options: total length 24
      0x05, 0x00, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xfe, 0x9c, 0x97, 0x17,
      0x01, 0xca, 0xc4, 0x71, 0x18, 0x00, 0x00, 0x00};
  want.insert(want.end(), isb.begin(), isb.end());
  EXPECT_EQ(read_bytes(f.str()), want);

  auto r = PcapReader::open(f.str());
  ASSERT_TRUE(r) << r.error().text();
  int packets = 0;
  for (;;) {
    auto p = r->next();
    ASSERT_TRUE(p) << p.error().text();
    if (!p->has_value()) break;
    ++packets;
  }
  EXPECT_EQ(packets, 2);
}

TEST(PcapngWriter, StatisticsBlockRejectsBadInput) {
  ScratchFile f("isb-bad.pcapng");
  auto w = PcapngWriter::create(f.str());
  ASSERT_TRUE(w);
  auto none = w->write_statistics(0, {});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::usage);  // no interface yet
  ASSERT_TRUE(w->add_interface({linktype::kEthernet, 0, "", ""}));
  PcapngInterfaceStats neg;
  neg.ts_ns = -1;
  auto n = w->write_statistics(0, neg);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, Errc::usage);
  EXPECT_TRUE(w->write_statistics(0, {}));  // usage errors do not end the writer
  EXPECT_TRUE(w->close());
}

TEST(PcapngWriter, TwoInterfacesSameLinktypeReadable) {
  ScratchFile f("two-if.pcapng");
  {
    auto w = PcapngWriter::create(f.str());
    ASSERT_TRUE(w);
    ASSERT_EQ(*w->add_interface({linktype::kLinuxSll, 256, "client", "client capture"}), 0u);
    ASSERT_EQ(*w->add_interface({linktype::kLinuxSll, 256, "server", "server capture"}), 1u);
    std::vector<std::uint8_t> frame(16, 0);
    ASSERT_TRUE(w->write(0, {kTs1, 0, frame}, "probe 7 answered"));
    ASSERT_TRUE(w->write(1, {kTs2, 0, frame}, "probe 7 answered"));
    ASSERT_TRUE(w->close());
  }
  auto r = PcapReader::open(f.str());
  ASSERT_TRUE(r) << r.error().text();
  EXPECT_EQ(r->linktype(), linktype::kLinuxSll);
  auto n = r->for_each([](const PacketView&) {});
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 2u);
}

TEST(PcapngWriter, DefaultUserApplNamesTandem) {
  EXPECT_EQ(default_user_appl().rfind("tandem ", 0), 0u);
  EXPECT_GT(default_user_appl().size(), 7u);
}

TEST(PcapngWriter, SnaplenCutsDataKeepsOrigLen) {
  ScratchFile f("snap.pcapng");
  {
    auto w = PcapngWriter::create(f.str());
    ASSERT_TRUE(w);
    ASSERT_TRUE(w->add_interface({linktype::kEthernet, 8, "", ""}));
    std::vector<std::uint8_t> frame(100, 0xab);
    ASSERT_TRUE(w->write(0, {kTs1, 0, frame}));
    ASSERT_TRUE(w->close());
  }
  auto r = PcapReader::open(f.str());
  ASSERT_TRUE(r);
  auto p = r->next();
  ASSERT_TRUE(p && p->has_value());
  EXPECT_EQ((*p)->caplen(), 8u);
  EXPECT_EQ((*p)->origlen, 100u);
}

TEST(PcapngWriter, RejectsBadPackets) {
  ScratchFile f("bad.pcapng");
  auto w = PcapngWriter::create(f.str());
  ASSERT_TRUE(w);
  std::vector<std::uint8_t> frame(10, 0);
  auto no_if = w->write(0, {kTs1, 0, frame});
  ASSERT_FALSE(no_if);
  EXPECT_EQ(no_if.error().code, Errc::usage);
  ASSERT_TRUE(w->add_interface({}));
  auto neg = w->write(0, {-1, 0, frame});
  ASSERT_FALSE(neg);
  EXPECT_EQ(neg.error().code, Errc::usage);
  auto short_orig = w->write(0, {kTs1, 5, frame});
  ASSERT_FALSE(short_orig);
  EXPECT_EQ(short_orig.error().code, Errc::usage);
  auto long_comment = w->write(0, {kTs1, 0, frame}, std::string(70000, 'x'));
  ASSERT_FALSE(long_comment);
  // A rejected packet does not poison the writer.
  EXPECT_TRUE(w->write(0, {kTs1, 0, frame}));
  EXPECT_TRUE(w->close());
}

TEST(PcapngWriter, DiskFullIsAnEnvironmentError) {
  // /dev/full fails every write with ENOSPC, like a full disk.
  auto w = PcapngWriter::create("/dev/full");
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, Errc::environment);
  EXPECT_NE(w.error().text().find("No space left on device"), std::string::npos) << w.error().text();
}

TEST(PcapngWriter, WriteErrorMidFileIsStickyAndReported) {
  // A file-size limit makes write(2) fail with EFBIG part-way, like a disk filling up under us.
  ScratchFile f("efbig.pcapng");
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = 64 * 1024;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  {
    PcapngOptions opts;
    opts.buffer_bytes = 4096;
    auto w = PcapngWriter::create(f.str(), opts);
    ASSERT_TRUE(w);
    ASSERT_TRUE(w->add_interface({}));
    std::vector<std::uint8_t> frame(200, 0x55);
    Status last = ok_status();
    int written = 0;
    for (; written < 10'000 && last.ok(); ++written) last = w->write(0, {kTs1, 0, frame});
    ASSERT_FALSE(last) << "wrote " << written << " packets past a 64 KiB limit";
    EXPECT_EQ(last.error().code, Errc::environment);
    EXPECT_NE(last.error().text().find("File too large"), std::string::npos) << last.error().text();
    auto again = w->write(0, {kTs1, 0, frame});
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().text(), last.error().text());
    EXPECT_FALSE(w->close());
  }
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
}

TEST(PcapngWriter, UncreatableFileIsAnEnvironmentError) {
  auto w = PcapngWriter::create("/nonexistent-dir-tandem/x.pcapng");
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, Errc::environment);
  EXPECT_NE(w.error().text().find("x.pcapng"), std::string::npos);
}

TEST(PcapWriter, NanosecondMagicGoldenAndReadBack) {
  ScratchFile f("classic.pcap");
  {
    auto w = PcapWriter::create(f.str(), linktype::kRaw, 256);
    ASSERT_TRUE(w) << w.error().text();
    ASSERT_TRUE(w->write({kTs1, 60, kData1}));
    ASSERT_TRUE(w->close());
  }
  const std::vector<std::uint8_t> golden = {
      0x4d, 0x3c, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,  // magic, 2.4, zone
      0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x65, 0x00, 0x00, 0x00,  // sigfigs, 256, RAW
      0x00, 0xf1, 0x53, 0x65,  // 1700000000 s
      0x15, 0xcd, 0x5b, 0x07,  // 123456789 ns
      0x05, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x01};
  EXPECT_EQ(read_bytes(f.str()), golden);
  auto r = PcapReader::open(f.str());
  ASSERT_TRUE(r) << r.error().text();
  EXPECT_EQ(r->linktype(), linktype::kRaw);  // DLT_RAW on Linux is 12: the mapping must hold
  auto p = r->next();
  ASSERT_TRUE(p && p->has_value());
  EXPECT_EQ((*p)->ts_ns, kTs1);
  EXPECT_EQ((*p)->origlen, 60u);
}

}  // namespace
}  // namespace tandem::pcapio
