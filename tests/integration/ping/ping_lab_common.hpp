// What the `tandem ping` lab tests share: the basic lab (port 21 and 80 listen, 23 is closed and
// answered RST by the server's kernel, the middlebox drops 25 and UDP 5353 and rejects 22 with
// admin-prohibited) and small file helpers.
#pragma once

#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/common/lab_fixture.hpp"

namespace tandem::testing {

inline constexpr const char* kPingBasicScenario = R"(
name = "ping-basic"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 25 drop
    udp dport 5353 drop
    tcp dport 22 reject with icmpx type admin-prohibited
  }
}
"""
[server]
listen = [21, 80]
listen_udp = [7]
)";

// A per-process file name under /tmp.
inline std::string temp_path(const std::string& name) {
  return "/tmp/tandem-pingtest-" + std::to_string(::getpid()) + "-" + name;
}

// The JSON in a file; discarded (not an exception) when it is missing or broken.
inline nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
}

// One basic lab per test suite, shared by its tests (building a lab takes about a second).
class PingLabSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (lab_skip_reason()) return;
    lab_ = std::make_unique<LabFixture>(kPingBasicScenario);
  }
  static void TearDownTestSuite() { lab_.reset(); }
  void SetUp() override {
    TANDEM_REQUIRE_LAB();
    ASSERT_TRUE(lab_ && lab_->ok()) << (lab_ ? lab_->error() : "no lab");
  }
  static inline std::unique_ptr<LabFixture> lab_;
};

}  // namespace tandem::testing
