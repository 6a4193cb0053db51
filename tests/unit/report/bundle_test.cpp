// write_bundle(): directory rules, files present, comments, and merged.pcapng read back (by our own
// PcapReader, and by tshark when installed: comments and time order).
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "common/pcapio/pcap_reader.hpp"
#include "controller/report/bundle.hpp"
#include "tests/unit/report/report_fixture.hpp"

namespace tandem::report {
namespace {

namespace fs = std::filesystem;
using test::Fixture;

class BundleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("tandem-bundle-" + std::to_string(getpid()) + "-" +
                                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  Result<std::vector<std::string>> write(const BundleOptions& o = {}) { return write_bundle(dir_.string(), fx_.c, fx_.verdict, fx_.ctx, fx_.client, fx_.server, o); }

  fs::path dir_;
  Fixture fx_;
};

std::vector<pcapio::PacketView> read_all(const fs::path& p, std::vector<std::vector<std::uint8_t>>& store) {
  auto r = pcapio::PcapReader::open(p.string());
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().text());
  std::vector<pcapio::PacketView> out;
  if (!r) return out;
  auto n = r->for_each([&](const pcapio::PacketView& v) {
    store.emplace_back(v.data.begin(), v.data.end());
    out.push_back({v.ts_ns, v.origlen, {}});
  });
  EXPECT_TRUE(n.ok()) << (n.ok() ? "" : n.error().text());
  for (std::size_t i = 0; i < out.size(); ++i) out[i].data = store[i];
  return out;
}

TEST_F(BundleTest, WritesAllFilesIntoANewDirectory) {
  ASSERT_TRUE(write().ok());
  for (const char* f : kBundleFiles) EXPECT_TRUE(fs::exists(dir_ / f)) << f;
  std::vector<std::vector<std::uint8_t>> store;
  EXPECT_EQ(read_all(dir_ / "client.pcapng", store).size(), fx_.client.packets.size());
  EXPECT_EQ(read_all(dir_ / "server.pcapng", store).size(), fx_.server.packets.size());
}

TEST_F(BundleTest, MergedIsTimeOrderedWithServerClockCorrected) {
  ASSERT_TRUE(write().ok());
  std::vector<std::vector<std::uint8_t>> store;
  auto merged = read_all(dir_ / "merged.pcapng", store);
  ASSERT_EQ(merged.size(), fx_.client.packets.size() + fx_.server.packets.size());
  for (std::size_t i = 1; i < merged.size(); ++i) EXPECT_LE(merged[i - 1].ts_ns, merged[i].ts_ns) << i;
  // The server saw probe 0 at client time + 3 ms on its clock, 2 ms ahead: 1 ms on the client's.
  bool found = false;
  for (const auto& p : merged) found |= p.ts_ns == test::kT0 + 1'000'000;
  EXPECT_TRUE(found);
}

TEST_F(BundleTest, RefusesForeignNonEmptyDirectoryUnlessForced) {
  fs::create_directories(dir_);
  std::ofstream(dir_ / "thesis.tex") << "precious\n";
  auto st = write();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::usage);
  EXPECT_NE(st.error().text().find("--force"), std::string::npos);
  EXPECT_NE(st.error().text().find("thesis.tex"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "report.json"));
  ASSERT_TRUE(write({.force = true}).ok());
  EXPECT_TRUE(fs::exists(dir_ / "thesis.tex"));
  EXPECT_TRUE(fs::exists(dir_ / "report.json"));
}

TEST_F(BundleTest, ReusesAPreviousBundleButNotAForeignReportJson) {
  ASSERT_TRUE(write().ok());
  ASSERT_TRUE(write().ok());
  std::ofstream(dir_ / "report.json") << "{\"tool\":\"other\"}";
  auto st = write();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::usage);
}

TEST_F(BundleTest, OutIsAFile) {
  std::ofstream(dir_) << "x";
  auto st = write();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().text().find("not a directory"), std::string::npos);
  fs::remove(dir_);
}

TEST_F(BundleTest, JsonOnlyRemovesStaleCaptures) {
  ASSERT_TRUE(write().ok());
  ASSERT_TRUE(write({.json_only = true}).ok());
  EXPECT_TRUE(fs::exists(dir_ / "report.json"));
  EXPECT_FALSE(fs::exists(dir_ / "merged.pcapng"));
  EXPECT_FALSE(fs::exists(dir_ / "report.md"));
}

// A run killed while writing leaves <name>.tmp: the next run into the directory treats it as its
// own, replaces it, and leaves no temporary; the result lists the files written, report.json last.
TEST_F(BundleTest, LeftoverTemporariesAreReplacedAndResultListsFiles) {
  fs::create_directories(dir_);
  std::ofstream(dir_ / "report.json.tmp") << "{\"tool\": \"tand";
  std::ofstream(dir_ / "merged.pcapng.tmp") << "partial";
  auto files = write();
  ASSERT_TRUE(files.ok()) << files.error().text();
  EXPECT_EQ(*files, (std::vector<std::string>{"client.pcapng", "server.pcapng", "merged.pcapng", "report.md",
                                              "report.html", "report.json"}));
  for (const auto& e : fs::directory_iterator(dir_)) EXPECT_NE(e.path().extension(), ".tmp") << e.path();
  EXPECT_TRUE(is_bundle_file("report.json.tmp"));
  EXPECT_FALSE(is_bundle_file("report.json.bak"));
  auto json_only = write({.json_only = true});
  ASSERT_TRUE(json_only.ok());
  EXPECT_EQ(*json_only, std::vector<std::string>{"report.json"});
}

TEST_F(BundleTest, PacketComments) {
  EXPECT_EQ(packet_comment(fx_.c, false, 0, fx_.client), "probe 0 answered probe");
  EXPECT_EQ(packet_comment(fx_.c, false, 1, fx_.client), "probe 0 answered reply");
  EXPECT_EQ(packet_comment(fx_.c, false, 2, fx_.client), "probe 1 lost_forward probe");
  EXPECT_EQ(packet_comment(fx_.c, false, 3, fx_.client), "unmatched");
  EXPECT_EQ(packet_comment(fx_.c, true, 0, fx_.server), "probe 0 answered probe");
  EXPECT_EQ(packet_comment(fx_.c, true, 1, fx_.server), "probe 0 answered reply");
}

TEST_F(BundleTest, MixedLinkTypesAreMergedAsEthernetWrappedIp) {
  // Client raw IP, server Ethernet (padded): merged rewraps both in synthetic Ethernet.
  correlate::CaptureSide eth;
  eth.present = true;
  eth.linktype = pcapio::linktype::kEthernet;
  for (const auto& p : fx_.server.packets) {
    std::vector<std::uint8_t> f(12, 0x02);
    f.push_back(0x08);
    f.push_back(0x00);
    f.insert(f.end(), p.data.begin(), p.data.end());
    while (f.size() < 60) f.push_back(0);  // padding must not end up in the IP packet
    test::add(eth, p.ts_ns, f);
  }
  auto m = write_merged((fs::path(::testing::TempDir()) / ("merged-" + std::to_string(getpid()) + ".pcapng")).string(),
                        fx_.c, fx_.client, eth);
  ASSERT_TRUE(m.ok()) << m.error().text();
  EXPECT_EQ(m->linktype, pcapio::linktype::kEthernet);
  EXPECT_EQ(m->written, fx_.client.packets.size() + eth.packets.size());
  std::vector<std::vector<std::uint8_t>> store;
  auto merged = read_all(fs::path(::testing::TempDir()) / ("merged-" + std::to_string(getpid()) + ".pcapng"), store);
  ASSERT_EQ(merged.size(), m->written);
  for (const auto& p : merged) {
    ASSERT_EQ(p.data.size(), 14u + 40u);  // Ethernet + IPv4 + TCP, the capture's padding gone
    EXPECT_EQ(p.data[12], 0x08);
    EXPECT_EQ(p.data[14] >> 4, 4);
  }
}

TEST_F(BundleTest, TsharkReadsMergedComments) {
  ASSERT_TRUE(write().ok());
  if (std::system("command -v tshark >/dev/null 2>&1") != 0) GTEST_SKIP() << "tshark not installed";
  std::string cmd = "tshark -r '" + (dir_ / "merged.pcapng").string() + "' -T fields -e frame.interface_name -e frame.comment 2>&1";
  std::FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << out;
  EXPECT_NE(out.find("client\tprobe 0 answered probe"), std::string::npos) << out;
  EXPECT_NE(out.find("server\tprobe 0 answered reply"), std::string::npos) << out;
  EXPECT_NE(out.find("client\tunmatched"), std::string::npos) << out;
}

}  // namespace
}  // namespace tandem::report
