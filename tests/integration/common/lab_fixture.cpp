#include "tests/integration/common/lab_fixture.hpp"

#include <fstream>

namespace tandem::testing {

std::optional<std::string> lab_skip_reason() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    const auto mask = std::stoull(line.substr(7), nullptr, 16);
    constexpr int kCapNetAdmin = 12;
    constexpr int kCapSysAdmin = 21;
    if (((mask >> kCapNetAdmin) & 1U) != 0 && ((mask >> kCapSysAdmin) & 1U) != 0) return std::nullopt;
    return "this process lacks CAP_SYS_ADMIN/CAP_NET_ADMIN (run the integration tests as root)";
  }
  return "cannot read /proc/self/status";
}

LabFixture::LabFixture(std::string_view scenario_toml, std::string name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string source = info != nullptr ? std::string(info->test_suite_name()) + "." + info->name() : "<inline>";
  auto scenario = lab::parse_scenario(scenario_toml, source);
  if (!scenario) {
    error_ = scenario.error().text();
    ADD_FAILURE() << "LabFixture: " << error_;
    return;
  }
  auto l = lab::Lab::up(*scenario, lab::LabOptions{std::move(name), false});
  if (!l) {
    error_ = l.error().text();
    ADD_FAILURE() << "LabFixture: " << error_;
    return;
  }
  lab_.emplace(std::move(l).value());
}

std::string LabFixture::tandem_binary() { return std::string(TANDEM_BINARY_DIR) + "/bin/tandem"; }

ProcOutput LabFixture::run_in(lab::Node node, const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  ProcOutput p;
  if (!lab_) {
    p.err = "lab is not up: " + error_;
    return p;
  }
  lab::ExecOptions opts;
  opts.timeout = timeout;
  auto r = lab_->exec_in(node, argv, opts);
  if (!r) {
    p.err = r.error().text();
    return p;
  }
  p.exit_code = r->exit_code;
  p.timed_out = r->timed_out;
  p.out = std::move(r->out);
  p.err = std::move(r->err);
  return p;
}

ProcOutput LabFixture::run_tandem_in(lab::Node node, const std::vector<std::string>& args,
                                     std::chrono::milliseconds timeout) {
  std::vector<std::string> argv{tandem_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_in(node, argv, timeout);
}

ProcOutput LabFixture::run_tandem_in_client(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  return run_tandem_in(lab::Node::client, args, timeout);
}

Status LabFixture::down() {
  if (!lab_) return ok_status();
  auto st = lab_->down();
  lab_.reset();
  return st;
}

}  // namespace tandem::testing
