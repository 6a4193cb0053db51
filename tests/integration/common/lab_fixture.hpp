// LabFixture: a namespace lab (DESIGN.md §4) for integration tests, from an inline scenario.
// Link `tandem_lab_fixture`. Usage:
//
//   TEST(Ping, OpenPort) {
//     TANDEM_REQUIRE_LAB();                       // skips loudly when not root
//     tandem::testing::LabFixture lab(R"(name = "t"
//       [server]
//       listen = [21])");
//     ASSERT_TRUE(lab.ok()) << lab.error();
//     auto r = lab.run_tandem_in_client({"ping", "10.77.2.2", "-p", "21", "-c", "3"});
//     EXPECT_EQ(r.exit_code, 0) << r.err;
//   }
//
// The lab is torn down in the destructor, and by the lab's signal handler if the test binary is
// interrupted. Every call has a timeout so that a hung child cannot hang the suite.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "controller/lab/lab.hpp"

namespace tandem::testing {

// Why lab tests cannot run here (not root / no CAP_SYS_ADMIN+CAP_NET_ADMIN), or nullopt.
std::optional<std::string> lab_skip_reason();

#define TANDEM_REQUIRE_LAB()                                                      \
  do {                                                                            \
    if (auto tandem_skip_reason_ = ::tandem::testing::lab_skip_reason())          \
      GTEST_SKIP() << "lab tests need root: " << *tandem_skip_reason_;            \
  } while (0)

struct ProcOutput {
  int exit_code = -1;      // exit status, 128+signal if killed, -1 if it could not be started
  bool timed_out = false;
  std::string out;
  std::string err;         // captured stderr, or why it could not be started
};

class LabFixture {
 public:
  // Brings the lab up (a random tdmXXXXXX prefix unless `name`); on failure records a gtest
  // failure with the reason, and ok() is false.
  explicit LabFixture(std::string_view scenario_toml, std::string name = {});
  ~LabFixture() = default;  // the Lab's destructor tears everything down
  LabFixture(const LabFixture&) = delete;
  LabFixture& operator=(const LabFixture&) = delete;

  bool ok() const { return lab_.has_value(); }
  const std::string& error() const { return error_; }
  lab::Lab& lab() { return *lab_; }
  const std::string& client_ns() const { return lab_->client_ns(); }
  const std::string& middlebox_ns() const { return lab_->middlebox_ns(); }
  const std::string& server_ns() const { return lab_->server_ns(); }

  // Runs ${TANDEM_BINARY_DIR}/bin/tandem with args inside the client (or given) namespace.
  ProcOutput run_tandem_in_client(const std::vector<std::string>& args,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(120));
  ProcOutput run_tandem_in(lab::Node node, const std::vector<std::string>& args,
                           std::chrono::milliseconds timeout = std::chrono::seconds(120));
  // Runs any program (argv[0] looked up in PATH) inside a namespace of the lab.
  ProcOutput run_in(lab::Node node, const std::vector<std::string>& argv,
                    std::chrono::milliseconds timeout = std::chrono::seconds(60));

  // Tears the lab down now (also done by the destructor).
  Status down();

  static std::string tandem_binary();  // ${TANDEM_BINARY_DIR}/bin/tandem

 private:
  std::optional<lab::Lab> lab_;
  std::string error_;
};

}  // namespace tandem::testing
