// The audit log's format and bounds (issue 10 item 5; attack-report rows M11, M9): JSON lines that
// a controller's text cannot break, a per-event rate limit that says how much it suppressed, and
// size rotation.
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/audit.hpp"

namespace tandem::agent {
namespace {

std::filesystem::path temp_file(const std::string& tag) {
  std::random_device rd;
  auto dir = std::filesystem::temp_directory_path() / ("tandem-audit-" + tag + "-" + std::to_string(rd()));
  std::filesystem::create_directories(dir);
  return dir / "audit.log";
}

std::vector<nlohmann::json> lines_of(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << line;
    out.push_back(j);
  }
  return out;
}

TEST(Audit, EveryFieldIsEscaped) {
  auto path = temp_file("esc");
  auto a = Audit::open(path.string(), false);
  ASSERT_TRUE(a) << a.error().text();
  const std::string evil = "x\"}\n{\"event\":\"agent_stopped\"}\r\t\\\x01\xff";
  a->record("hello", evil, "controller=\"" + evil + "\"");
  auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["event"], "hello");
  EXPECT_EQ(lines[0]["key"], "x\"}\n{\"event\":\"agent_stopped\"}\r\t\\\x01\u00ff");  // \xff -> U+00FF
  EXPECT_EQ(lines[0]["detail"].get<std::string>().substr(0, 12), "controller=\"");
  EXPECT_EQ(json_string("a\nb"), "\"a\\nb\"");
  EXPECT_EQ(json_string("\xff"), "\"\\u00ff\"");
  std::filesystem::remove_all(path.parent_path());
}

TEST(Audit, RateLimitedPerEventWithASuppressedLine) {
  auto path = temp_file("rate");
  AuditLimits lim;
  lim.burst = 5;
  lim.per_second = 1e-9;  // no refill within the test: deterministic
  auto a = Audit::open(path.string(), false, lim);
  ASSERT_TRUE(a);
  for (int i = 0; i < 1000; ++i) a->record("malformed", "k", "reason=x");
  a->record("run_accepted", "k", "run=r");  // another event is not starved, and flushes the count
  auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 7u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(lines[i]["event"], "malformed");
  EXPECT_EQ(lines[5]["event"], "suppressed");
  EXPECT_EQ(lines[5]["suppressed_event"], "malformed");
  EXPECT_EQ(lines[5]["count"], 995);
  EXPECT_EQ(lines[6]["event"], "run_accepted");
  std::filesystem::remove_all(path.parent_path());
}

TEST(Audit, RotatesBySizeAndIsOwnerOnly) {
  auto path = temp_file("rot");
  AuditLimits lim;
  lim.max_file_bytes = 4096;
  lim.max_files = 2;
  lim.burst = 1e6;
  auto a = Audit::open(path.string(), false, lim);
  ASSERT_TRUE(a);
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  for (int i = 0; i < 500; ++i) a->record("hello", "k", std::string(100, 'a'));
  std::uintmax_t total = 0;
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(path.parent_path())) {
    EXPECT_LE(e.file_size(), 4096u + 256u) << e.path();
    total += e.file_size();
    ++files;
  }
  EXPECT_EQ(files, 3);  // audit.log, audit.1.log, audit.2.log
  EXPECT_LT(total, 3u * (4096u + 256u));
  std::filesystem::remove_all(path.parent_path());
}

}  // namespace
}  // namespace tandem::agent
