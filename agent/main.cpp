// tandem-agent: the daemon on each end of a path (docs/agent.md). Thin: parse flags, load key,
// policy and allow list, start the Daemon, serve until SIGINT/SIGTERM; SIGHUP re-reads the policy
// and the allow list (a bad file keeps the old policy, audited).
// Exit codes: 0 clean stop, 1 config (flags, policy, key files), 2 environment/permission.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>

#include "agent/daemon.hpp"
#include "common/base/log.hpp"
#include "common/base/version.hpp"
#include "common/netio/raw_sender.hpp"
#include "common/transport/agent_address.hpp"

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};
extern "C" void on_signal(int) { g_stop.store(true); }
extern "C" void on_hup(int) { g_reload.store(true); }

int fail(const tandem::Error& e) {
  std::cerr << "tandem-agent: " << e.text() << "\n";
  return (e.code == tandem::Errc::usage || e.code == tandem::Errc::config) ? 1 : 2;
}

// "tcp://HOST:PORT" -> the one-line AGENT address; a wildcard host needs --advertise.
tandem::Result<std::string> agent_line(const std::string& listen, const std::string& advertise, const std::string& key) {
  auto parsed = tandem::transport::parse_agent_address(listen + "#" + key);
  if (!parsed) return parsed.error();
  std::string host = parsed->host;
  if (!advertise.empty()) host = advertise;
  if (host == "0.0.0.0" || host == "::" || host == "*")
    return tandem::make_error(tandem::Errc::usage, "agent",
                              "--listen " + listen + " is a wildcard address; say which address controllers reach with --advertise HOST");
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  // The quote-free form (tcp://HOST:PORT/BASE64URL): a remote admin's line pastes into any shell.
  return "tcp://" + host + ":" + std::to_string(parsed->port) + "/" + tandem::transport::z85_key_to_base64url(key);
}

// The policy file plus the --allow-controller keys; at least one controller key.
tandem::Result<tandem::agent::Policy> load_effective_policy(const std::string& policy_file,
                                                           const std::vector<std::string>& allow_files) {
  auto policy = tandem::agent::load_policy(policy_file);
  if (!policy) return policy.error();
  for (const auto& f : allow_files) {
    auto k = tandem::transport::load_public_key_file(f);
    if (!k) return k.error();
    policy->controller_keys.push_back(*k);
  }
  if (policy->controller_keys.empty())
    return tandem::make_error(tandem::Errc::config, "agent",
                              "no controller key allowed: add [controllers] keys/key_files to " + policy_file +
                                  " or pass --allow-controller FILE.pub");
  return policy;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tandem-agent: probe sender and capture daemon for tandem (docs/agent.md)"};
  std::string listen, key_file, policy_file, audit_file, advertise;
  std::string data_dir = std::getenv("STATE_DIRECTORY") ? std::getenv("STATE_DIRECTORY") : "/var/lib/tandem-agent";
  std::vector<std::string> allow_files;
  bool print_address = false;
  int verbose = 0;
  app.add_option("--listen", listen, "endpoint to bind, tcp://ADDR:PORT")->required();
  app.add_option("--key", key_file, "the agent's secret key file (tandem keygen; mode 0600)")->required();
  app.add_option("--policy", policy_file, "operator policy (TOML)")->required();
  app.add_option("--allow-controller", allow_files, "controller public key file (.pub) to allow; repeatable");
  app.add_option("--audit-log", audit_file, "append audit lines to this file (also on stderr)");
  app.add_option("--data-dir", data_dir, "where run captures are kept until RUN_END")->capture_default_str();
  app.add_option("--advertise", advertise, "host controllers use to reach us (for --print-address with a wildcard --listen)");
  app.add_flag("--print-address", print_address, "print the one-line AGENT address (tcp://HOST:PORT/KEY, no shell quoting needed) to send to the controller's user, then exit");
  app.add_flag("-v,--verbose", verbose, "more logging (repeatable)");
  app.set_version_flag("--version", std::string("tandem-agent ") + tandem::kVersion);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;
  }
  tandem::log::set_verbosity(verbose);

  try {
    auto kp = tandem::transport::CurveKeypair::load_secret_file(key_file);
    if (!kp) return fail(kp.error());
    if (print_address) {
      auto line = agent_line(listen, advertise, kp->public_z85);
      if (!line) return fail(line.error());
      std::cout << *line << "\n";
      return 0;
    }
    auto policy = load_effective_policy(policy_file, allow_files);
    if (!policy) return fail(policy.error());
    // Without CAP_NET_RAW neither capture nor sending can work; say so now, not at the first run.
    if (auto raw = tandem::netio::RawSender::open(tandem::packet::IpVersion::v4); !raw) return fail(raw.error());

    auto audit = tandem::agent::Audit::open(audit_file);
    if (!audit) return fail(audit.error());
    tandem::agent::DaemonOptions opt;
    opt.listen = listen;
    opt.keypair = *kp;
    opt.policy = std::move(policy).value();
    opt.data_dir = data_dir;
    opt.audit = *audit;
    opt.reload_policy = [policy_file, allow_files] { return load_effective_policy(policy_file, allow_files); };

    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    struct sigaction hup {};
    hup.sa_handler = on_hup;
    sigemptyset(&hup.sa_mask);
    sigaction(SIGHUP, &hup, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    auto daemon = tandem::agent::Daemon::start(std::move(opt));
    if (!daemon) return fail(daemon.error());
    std::cerr << "tandem-agent " << tandem::kVersion << " listening on " << (*daemon)->endpoint() << "\n";
    if (auto st = (*daemon)->run(g_stop, &g_reload); !st) return fail(st.error());
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "tandem-agent: " << e.what() << "\n";
    return 2;
  }
}
