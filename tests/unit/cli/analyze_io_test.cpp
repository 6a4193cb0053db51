// `tandem analyze` at the edges of its input and output (DESIGN.md §8 "Bounded input",
// docs/analyze.md "Bounds", docs/report-format.md): manifests whose numbers the captures cannot
// back, capture files cut short, --json-only's summary, and a disk that fills while the bundle is
// written. The real binary on the golden "clean" pair; the oracles are the documented limits,
// Wireshark's capinfos (packets in a cut file), getrusage (the child's peak memory) and what is
// left on the disk.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kClean = fs::path(TANDEM_SOURCE_DIR) / "tests" / "scenarios" / "clean";
const std::string kTandem = std::string(TANDEM_BINARY_DIR) + "/bin/tandem";
constexpr std::uint64_t kCleanClientPackets = 60;  // capinfos -c tests/scenarios/clean/client.pcap
constexpr std::uint64_t kLimit = 2 * kCleanClientPackets + 65536;  // docs/analyze.md "Bounds"

struct Out {
  int code = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::size_t lines(const std::string& s) { return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n')); }

class AnalyzeIo : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tandem-analyze-io-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs a shell command line; stdout and stderr are kept apart.
  Out sh(const std::string& cmd) {
    Out o;
    const fs::path err = dir_ / "stderr";
    FILE* p = ::popen((cmd + " 2>'" + err.string() + "'").c_str(), "r");
    if (p == nullptr) return o;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) o.out.append(buf, n);
    int st = ::pclose(p);
    o.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    o.err = slurp(err);
    return o;
  }
  Out analyze(const std::string& client, const std::string& extra) {
    return sh(kTandem + " analyze --client-pcap '" + client + "' --server-pcap '" + (kClean / "server.pcap").string() +
              "' " + extra);
  }
  std::string manifest(const json& j) {
    const fs::path p = dir_ / "m.json";
    std::ofstream(p) << j.dump();
    return p.string();
  }
  json clean_manifest() { return json::parse(slurp(kClean / "manifest.json")); }

  fs::path dir_;
};

// The two manifests of the bug report (the first grew to 23 GB, the second died of bad_alloc),
// the next values above each limit: exit 1, one line naming the key and the limit, and the
// process stays small (its peak RSS, from getrusage of the waited-for children).
TEST_F(AnalyzeIo, ManifestCountsTheCapturesCannotBackAreRefused) {
  // Without the bound the first case allocates for 10^8 probes: cap the address space so that a
  // regression fails here instead of taking the machine (not under ASan, which reserves terabytes).
#if defined(__SANITIZE_ADDRESS__)
  const std::string cap;
#else
  const std::string cap = "ulimit -v 2000000; ";
#endif
  struct Case {
    std::uint64_t count;
    std::string says;
  };
  for (const Case& c : {Case{100000000, "above the limit 16777216"}, Case{4294967295, "above the limit 16777216"},
                        Case{16777217, "above the limit 16777216"},
                        Case{10000000, "at most 65656 (2 x its 60 packets + 65536)"},
                        Case{kLimit + 1, "at most 65656 (2 x its 60 packets + 65536)"}}) {
    auto m = clean_manifest();
    m["count"] = c.count;
    Out o = sh(cap + kTandem + " analyze --client-pcap " + (kClean / "client.pcap").string() + " --server-pcap " +
               (kClean / "server.pcap").string() + " --manifest " + manifest(m) + " --out " + (dir_ / "b").string());
    EXPECT_EQ(o.code, 1) << c.count << ": " << o.err;
    EXPECT_EQ(lines(o.err), 1u) << o.err;
    EXPECT_NE(o.err.find("\"count\" " + std::to_string(c.count)), std::string::npos) << o.err;
    EXPECT_NE(o.err.find(c.says), std::string::npos) << o.err;
    EXPECT_NE(o.err.find("m.json"), std::string::npos) << o.err;
    EXPECT_FALSE(fs::exists(dir_ / "b" / "report.json"));
  }
  rusage ru{};
  ASSERT_EQ(::getrusage(RUSAGE_CHILDREN, &ru), 0);
  EXPECT_LT(ru.ru_maxrss, 300 * 1024) << "peak RSS of a child in KiB";
}

// The limit is inclusive: exactly 2 x packets + 65536 planned probes are analysed (all but the 20
// captured ones not_sent), one more is refused (above).
TEST_F(AnalyzeIo, CountAtTheLimitIsAnalysed) {
  auto m = clean_manifest();
  m["count"] = kLimit;
  Out o = analyze((kClean / "client.pcap").string(), "--manifest " + manifest(m) + " --json-only -q --out " +
                                                          (dir_ / "b").string());
  EXPECT_EQ(o.code, 4) << o.err;
  auto r = json::parse(slurp(dir_ / "b" / "report.json"));
  EXPECT_EQ(r["summary"]["probes"], kLimit);
  EXPECT_EQ(r["summary"]["fates"]["not_sent"], kLimit - 20);
}

TEST_F(AnalyzeIo, ProbeVariantAndVariantsAreBounded) {
  auto m = clean_manifest();
  m.erase("count");
  m["probe_variant"] = json::array();
  for (std::uint64_t i = 0; i <= kLimit; ++i) m["probe_variant"].push_back(0);
  Out o = analyze((kClean / "client.pcap").string(), "--manifest " + manifest(m) + " --out " + (dir_ / "b").string());
  EXPECT_EQ(o.code, 1) << o.err;
  EXPECT_EQ(lines(o.err), 1u) << o.err;
  EXPECT_NE(o.err.find("\"probe_variant\" " + std::to_string(kLimit + 1)), std::string::npos) << o.err;

  auto v = clean_manifest();
  v["variants"] = json::array();
  for (int i = 0; i < 257; ++i) v["variants"].push_back({{"name", "v" + std::to_string(i)}});
  Out p = analyze((kClean / "client.pcap").string(), "--manifest " + manifest(v) + " --out " + (dir_ / "b").string());
  EXPECT_EQ(p.code, 1) << p.err;
  EXPECT_EQ(lines(p.err), 1u) << p.err;
  EXPECT_NE(p.err.find("\"variants\" has 257 entries, above the limit 256"), std::string::npos) << p.err;
}

// A client capture copied while tcpdump still wrote it: analysed up to its last complete packet
// (as many as capinfos reads), the warning on stderr, in report.json and in report.md.
TEST_F(AnalyzeIo, CutCaptureIsAnalysedUpToItsLastCompletePacket) {
  if (std::system("command -v capinfos >/dev/null 2>&1") != 0) GTEST_SKIP() << "capinfos not installed";
  std::string bytes = slurp(kClean / "client.pcap");
  const fs::path cut = dir_ / "client-cut.pcap";
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2 + 11);
  Out ci = sh("capinfos -c -M '" + cut.string() + "'");
  std::smatch mm;
  ASSERT_TRUE(std::regex_search(ci.out, mm, std::regex("Number of packets:\\s+(\\d+)"))) << ci.out;
  const std::uint64_t complete = std::stoull(mm[1]);
  ASSERT_NE(ci.err.find("cut short"), std::string::npos) << "the cut must fall inside a record: " << ci.err;
  ASSERT_GT(complete, 0u);

  Out o = analyze(cut.string(), "--manifest " + (kClean / "manifest.json").string() + " --out " + (dir_ / "b").string());
  EXPECT_EQ(o.code, 4) << o.err;  // the probes after the cut are missing from the client capture
  const std::string sentence = "file ends mid-packet after " + std::to_string(complete) + " complete packets";
  EXPECT_EQ(lines(o.err), 1u) << o.err;
  EXPECT_NE(o.err.find("tandem: warning: " + cut.string() + ": " + sentence), std::string::npos) << o.err;
  auto r = json::parse(slurp(dir_ / "b" / "report.json"));
  EXPECT_EQ(r["capture"]["client"]["received"], complete);
  ASSERT_TRUE(r["capture"]["client"]["warnings"].is_array()) << r["capture"].dump();
  EXPECT_NE(r["capture"]["client"]["warnings"][0].get<std::string>().find(sentence), std::string::npos);
  EXPECT_FALSE(r["capture"]["server"].contains("warnings"));
  EXPECT_NE(slurp(dir_ / "b" / "report.md").find("Client capture: **warning**: " + sentence), std::string::npos);

  // -q: nothing on stderr, the report still says it.
  Out q = analyze(cut.string(), "-q --json-only --out " + (dir_ / "q").string());
  EXPECT_EQ(q.err, "");
  EXPECT_NE(slurp(dir_ / "q" / "report.json").find(sentence), std::string::npos);

  // Cut inside the 24-byte file header: no packet, a refusal in one line.
  const fs::path hdr = dir_ / "client-hdr.pcap";
  std::ofstream(hdr, std::ios::binary) << bytes.substr(0, 20);
  Out h = analyze(hdr.string(), "--out " + (dir_ / "h").string());
  EXPECT_EQ(h.code, 1) << h.err;
  EXPECT_EQ(lines(h.err), 1u) << h.err;
  EXPECT_NE(h.err.find(hdr.string()), std::string::npos) << h.err;
}

TEST_F(AnalyzeIo, JsonOnlySummaryListsWhatWasWritten) {
  Out full = analyze((kClean / "client.pcap").string(), "--manifest " + (kClean / "manifest.json").string() +
                                                            " --out " + (dir_ / "b").string());
  EXPECT_EQ(full.code, 0) << full.err;
  EXPECT_NE(full.out.find("bundle:  " + (dir_ / "b").string() +
                          " (client.pcapng, server.pcapng, merged.pcapng, report.md, report.html, report.json)\n"),
            std::string::npos)
      << full.out;
  Out o = analyze((kClean / "client.pcap").string(), "--json-only --out " + (dir_ / "b").string());
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("bundle:  " + (dir_ / "b").string() + " (report.json)\n"), std::string::npos) << o.out;
  std::vector<std::string> present;
  for (const auto& e : fs::directory_iterator(dir_ / "b")) present.push_back(e.path().filename());
  EXPECT_EQ(present, std::vector<std::string>{"report.json"});
}

// The runs of a shell script that prints, after each `tandem analyze`, "rc=<exit> files=<ls -A>";
// each run's output lines (its stderr) come before its rc line.
struct ScriptRun {
  std::vector<std::string> said;
  int rc = -1;
  std::string files;
};
std::vector<ScriptRun> parse_runs(const std::string& out) {
  std::vector<ScriptRun> runs(1);
  std::istringstream in(out);
  for (std::string s; std::getline(in, s);) {
    std::smatch m;
    if (std::regex_match(s, m, std::regex("rc=(\\d+) files=(.*)"))) {
      runs.back().rc = std::stoi(m[1]);
      runs.back().files = m[2];
      runs.emplace_back();
    } else {
      runs.back().said.push_back(s);
    }
  }
  return runs;
}

// After a failed write: exit 2, one line naming a temporary and the cause, no report.json (a
// previous one is gone, not stale) and no temporary left; every file present is complete.
void expect_failed_cleanly(const ScriptRun& r, const std::string& cause) {
  EXPECT_EQ(r.rc, 2);
  ASSERT_EQ(r.said.size(), 1u);
  EXPECT_NE(r.said[0].find(".tmp: " + cause), std::string::npos) << r.said[0];
  EXPECT_EQ(r.said[0].rfind("tandem: ", 0), 0u) << r.said[0];
  EXPECT_EQ(r.files.find("report.json"), std::string::npos) << r.files;
  EXPECT_EQ(r.files.find(".tmp"), std::string::npos) << r.files;
}

// A disk that fills: a 256 KiB tmpfs in a private mount namespace, filled up after a good bundle.
// Rewriting that bundle, and writing a new one, fail cleanly; the pcapng files left are complete
// (capinfos reads each to its end).
TEST_F(AnalyzeIo, FullDiskLeavesNoReportJsonAndNoPartialFile) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for a private mount namespace";
  const std::string mnt = (dir_ / "mnt").string();
  fs::create_directories(mnt);
  const std::string inputs = "--client-pcap " + (kClean / "client.pcap").string() + " --server-pcap " +
                             (kClean / "server.pcap").string() + " --manifest " + (kClean / "manifest.json").string();
  const std::string script =
      "mount -t tmpfs -o size=256k tandem-test " + mnt + " || exit 99\n"
      "run() { " + kTandem + " analyze " + inputs + " -q --out " + mnt + "/$1 2>&1; "
      "echo \"rc=$? files=$(ls -A " + mnt + "/$1 2>/dev/null | tr '\\n' ' ')\"; }\n"
      "run b\n"
      "dd if=/dev/zero of=" + mnt + "/fill bs=1k count=1000 2>/dev/null\n"
      "run b\n"
      "run c\n"
      "for f in " + mnt + "/b/*.pcapng; do [ -e \"$f\" ] || continue; "
      "capinfos -c \"$f\" >/dev/null 2>&1 && echo \"complete $f\" || echo \"broken $f\"; done\n";
  std::ofstream(dir_ / "full.sh") << script;
  Out o = sh("unshare -m sh " + (dir_ / "full.sh").string());
  if (o.code == 99) GTEST_SKIP() << "cannot mount a tmpfs here: " << o.err;
  auto runs = parse_runs(o.out);
  ASSERT_EQ(runs.size(), 4u) << o.out << o.err;
  EXPECT_EQ(runs[0].rc, 0) << o.out;
  EXPECT_EQ(runs[0].files, "client.pcapng merged.pcapng report.html report.json report.md server.pcapng ") << o.out;
  expect_failed_cleanly(runs[1], "No space left on device");
  expect_failed_cleanly(runs[2], "No space left on device");
  for (const auto& line : runs[3].said) EXPECT_EQ(line.rfind("complete ", 0), 0u) << line;
}

// report.json itself cannot be written (a file size limit, EFBIG: no root needed) under --json-only
// over a previous full bundle: the old report.json and captures are gone, nothing partial is left.
// Then the same limit with SIGXFSZ not ignored: the kernel kills tandem in the middle of writing
// report.json, as a crash or a kill -9 would — the partial bytes are in report.json.tmp, never
// under the name report.json; the next run replaces the leftover.
TEST_F(AnalyzeIo, ReportJsonWriteFailureLeavesNoReportJson) {
  const std::string inputs = "--client-pcap " + (kClean / "client.pcap").string() + " --server-pcap " +
                             (kClean / "server.pcap").string() + " --manifest " + (kClean / "manifest.json").string();
  const std::string b = (dir_ / "b").string();
  const std::string script =
      "run() { " + kTandem + " analyze " + inputs + " -q --out " + b + " \"$@\" 2>&1; "
      "echo \"rc=$? files=$(ls -A " + b + " | tr '\\n' ' ')\"; }\n"
      "run\n"
      // 4 KiB: below report.json (about 6 KiB); SIGXFSZ ignored so that write() fails with EFBIG.
      "(trap '' XFSZ; ulimit -f 4; run --json-only)\n"
      "(ulimit -f 4; run --json-only)\n"
      "run --json-only\n";
  std::ofstream(dir_ / "fsize.sh") << script;
  Out o = sh("sh " + (dir_ / "fsize.sh").string());
  auto runs = parse_runs(o.out);
  ASSERT_EQ(runs.size(), 5u) << o.out << o.err;
  EXPECT_EQ(runs[0].rc, 0) << o.out;
  ASSERT_GT(fs::file_size(kClean / "expected" / "report.json"), 4096u);
  expect_failed_cleanly(runs[1], "File too large");
  EXPECT_NE(runs[1].said.at(0).find(b + "/report.json.tmp"), std::string::npos);
  EXPECT_EQ(runs[1].files, "") << "--json-only removes the previous run's files first";
  EXPECT_EQ(runs[2].rc, 128 + SIGXFSZ) << o.out;
  EXPECT_EQ(runs[2].files, "report.json.tmp ") << o.out;
  EXPECT_EQ(runs[3].rc, 0) << o.out;
  EXPECT_EQ(runs[3].files, "report.json ") << o.out;
}

}  // namespace
