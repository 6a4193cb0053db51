#include "controller/lab/lab.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/base/log.hpp"
#include "controller/lab/teardown_registry.hpp"

namespace tandem::lab {
namespace {

Error lab_error(Errc code, std::string message) { return make_error(code, "lab", std::move(message)); }

// Effective capabilities from /proc/self/status (CapEff is a hex bitmask).
bool has_capability(int bit) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    const auto mask = std::stoull(line.substr(7), nullptr, 16);
    return ((mask >> bit) & 1U) != 0;
  }
  return false;
}

Status check_environment(const Scenario& scenario) {
  constexpr int kCapNetAdmin = 12;
  constexpr int kCapSysAdmin = 21;
  if (!has_capability(kCapSysAdmin) || !has_capability(kCapNetAdmin)) {
    return lab_error(Errc::permission,
                     "creating network namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN); run with sudo");
  }
  if (!find_program("ip")) return lab_error(Errc::environment, "`ip` not found in PATH (install iproute2)");
  const bool needs_nft = !scenario.middlebox_nft.empty() || !scenario.server_nft.empty() || !scenario.client.nft.empty() ||
                         (scenario.client2 && !scenario.client2->nft.empty());
  if (needs_nft && !find_program("nft")) return lab_error(Errc::environment, "`nft` not found in PATH (install nftables)");
  return ok_status();
}

std::string random_prefix() {
  std::random_device rd;  // getrandom(2): unique enough across concurrent processes
  const unsigned v = rd() & 0xffffffU;
  char buf[16];
  std::snprintf(buf, sizeof buf, "tdm%06x", v);
  return buf;
}

std::string utc_now(std::int64_t& unix_seconds) {
  const std::time_t t = std::time(nullptr);
  unix_seconds = static_cast<std::int64_t>(t);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string first_line(const std::string& s) {
  std::string t = s;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t;
}

}  // namespace

std::string_view node_name(Node n) {
  switch (n) {
    case Node::client: return "client";
    case Node::middlebox: return "middlebox";
    case Node::server: return "server";
    case Node::client2: return "client2";
  }
  return "?";
}

std::string client_sites_text(const Lab& lab) {
  std::string text;
  for (const auto& site : lab.client_sites()) {
    const auto& topo = client_site_topology(site.node);
    text += fmt::format("  {:<10} {:<16} {:<8} {:<10} {}   via {} {} {}\n", site.name, site.ns, kClientIf,
                        site.addresses.at(0), fmt::join(site.addresses.begin() + 1, site.addresses.end(), "  "),
                        topo.middlebox_if, topo.gateway_v4, topo.gateway_v6);
  }
  return text;
}

Result<Lab> Lab::up(const Scenario& scenario, const LabOptions& options) {
  if (auto st = check_environment(scenario); !st) return st.error();
  const auto start = std::chrono::steady_clock::now();
  Lab lab;
  // On failure `lab` goes out of scope here and its destructor removes whatever was created.
  if (auto st = lab.build(scenario, options); !st) return st.error();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  log::get("lab")->info("lab {} up in {} ms", lab.prefix(), ms.count());
  return lab;
}

Status Lab::build(const Scenario& scenario, const LabOptions& options) {
  const std::string prefix = options.name.empty() ? random_prefix() : options.name;
  if (!valid_prefix(prefix)) {
    return lab_error(Errc::usage, "lab name '" + prefix + "': use 1-12 characters of a-z, 0-9 and '-'");
  }
  state_.prefix = prefix;
  state_.scenario = scenario.name;
  state_.created = utc_now(state_.created_unix);
  state_.detached = options.detach;
  state_.owner = ProcessId{::getpid(), process_start_time(::getpid()).value_or(0)};

  std::error_code ec;
  std::filesystem::create_directories(state_root(), ec);
  const auto dir = state_dir(prefix);
  // mkdir is the atomic claim on the name: two concurrent `lab up --name X` cannot both own X.
  if (::mkdir(dir.c_str(), 0755) != 0) {
    if (errno == EEXIST) return lab_error(Errc::environment, "lab name '" + prefix + "' is already in use (" + dir.string() + " exists)");
    return lab_error(Errc::environment, "create " + dir.string() + ": " + std::strerror(errno));
  }
  owned_ = true;
  slot_ = registry::add_lab(dir.string());
  if (auto st = write_state(state_); !st) return st;

  // Creation order: client, middlebox, server, then client2 (a scenario without [client2] gets
  // exactly the three namespaces it always had).
  const ClientSpec* client2 = scenario.client2 ? &*scenario.client2 : nullptr;
  for (int i = 0; i < kNodeCount; ++i) {
    if (static_cast<Node>(i) == Node::client2 && client2 == nullptr) continue;
    const std::string name = prefix + std::string(kNsSuffixes[static_cast<std::size_t>(i)]);
    if (auto st = add_netns(name); !st) return st;
    ns_[i] = name;
    // Before any interface exists, so that every interface inherits it: without DAD the
    // link-local addresses are usable at once too. Otherwise the middlebox cannot send a
    // neighbour solicitation for about 1.5 s after `up`, and early IPv6 probes vanish.
    // ICMP rate limits off as well: a kernel sends at most a burst of 6 errors per destination and
    // then one per second, which would turn a scenario's `reject with icmp` into mostly silent
    // drops after the first six probes. Scenarios state their impairments explicitly.
    if (auto st = run_checked(name, {"sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0",
                                     "net.ipv6.conf.default.accept_dad=0", "net.ipv4.icmp_ratelimit=0",
                                     "net.ipv6.icmp.ratelimit=0"}, "", "disable IPv6 DAD and ICMP rate limits");
        !st) {
      return st;
    }
  }

  // Each veth pair is created with both ends already in their namespaces: nothing ever appears in
  // the root namespace, where names would clash between concurrent labs.
  const std::string ms_if(kMiddleboxServerIf), srv_if(kServerIf);
  if (auto st = run_checked("", {"ip", "link", "add", "name", srv_if, "netns", ns_[2], "type", "veth", "peer", "name", ms_if, "netns", ns_[1]}, "", "create veth server-middlebox"); !st) return st;
  // nodad: the addresses are usable at once instead of "tentative" for ~1 s.
  std::ostringstream mbx, srv;
  mbx << "link set lo up\nlink set " << ms_if << " up\n"
      << "addr add " << kMiddleboxServerSideV4 << "/24 dev " << ms_if << "\n"
      << "addr add " << kMiddleboxServerSideV6 << "/64 dev " << ms_if << " nodad\n";
  // The default route covers the way back to every client site (10.77.1.0/24, 10.77.3.0/24, …).
  srv << "link set lo up\nlink set " << srv_if << " up\n"
      << "addr add " << kServerV4 << "/24 dev " << srv_if << "\n"
      << "addr add " << kServerV6 << "/64 dev " << srv_if << " nodad\n"
      << "route add default via " << kMiddleboxServerSideV4 << "\n"
      << "route add default via " << kMiddleboxServerSideV6 << "\n";
  if (auto st = run_checked(ns_[1], {"ip", "-batch", "-"}, mbx.str(), "configure middlebox"); !st) return st;
  if (auto st = run_checked(ns_[2], {"ip", "-batch", "-"}, srv.str(), "configure server"); !st) return st;
  if (auto st = add_client_site(kClientSites[0], scenario.client); !st) return st;
  if (client2 != nullptr) {
    if (auto st = add_client_site(kClientSites[1], *client2); !st) return st;
  }
  if (auto st = run_checked(ns_[1], {"sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"}, "",
                            "enable forwarding in middlebox"); !st) return st;

  const std::string no_ruleset;
  const std::pair<Node, const std::string*> rulesets[] = {
      {Node::middlebox, &scenario.middlebox_nft}, {Node::server, &scenario.server_nft},
      {Node::client, &scenario.client.nft}, {Node::client2, client2 != nullptr ? &client2->nft : &no_ruleset}};
  for (const auto& [node, text] : rulesets) {
    if (text->empty()) continue;
    auto r = exec_in_netns(ns(node), {"nft", "-f", "-"}, ExecOptions{*text, std::chrono::seconds(30), true, {}});
    if (!r) return r.error();
    if (r->exit_code != 0) {
      return lab_error(Errc::config, scenario.source + ": [" + std::string(node_name(node)) +
                                         "] nft ruleset rejected: " + first_line(r->err));
    }
  }

  if (!scenario.listen_tcp.empty() || !scenario.listen_udp.empty()) {
    auto listener = spawn_listener(ns_[2], scenario.listen_tcp, scenario.listen_udp, options.detach);
    if (!listener) return listener.error();
    state_.processes.push_back(*listener);
    registry::add_pid(slot_, listener->pid);
    if (auto st = write_state(state_); !st) return st;
  }
  return ok_status();
}

Status Lab::add_client_site(const ClientSiteTopology& site, const ClientSpec& spec) {
  const std::string& netns = ns(site.node);
  const std::string cli_if(kClientIf), mbx_if(site.middlebox_if);
  if (auto st = run_checked("", {"ip", "link", "add", "name", cli_if, "netns", netns, "type", "veth", "peer", "name",
                                 mbx_if, "netns", ns_[1]},
                            "", "create veth " + std::string(site.name) + "-middlebox");
      !st) {
    return st;
  }
  std::ostringstream mbx, cli;
  mbx << "link set " << mbx_if << " up\n"
      << "addr add " << site.gateway_v4 << "/24 dev " << mbx_if << "\n"
      << "addr add " << site.gateway_v6 << "/64 dev " << mbx_if << " nodad\n";
  cli << "link set lo up\nlink set " << cli_if << " up\n"
      << "addr add " << site.v4 << "/24 dev " << cli_if << "\n"
      << "addr add " << site.v6 << "/64 dev " << cli_if << " nodad\n";
  ClientSite record{std::string(site.name), site.node, netns, {std::string(site.v4), std::string(site.v6)}};
  // Added after the primary ones, so the kernel keeps .2 as the primary (default source) address;
  // v6 extras deprecated for the same reason (see the header).
  for (const auto& a : spec.addresses) {
    if (a.find(':') == std::string::npos) {
      cli << "addr add " << a << "/24 dev " << cli_if << "\n";
    } else {
      cli << "addr add " << a << "/64 dev " << cli_if << " nodad preferred_lft 0\n";
    }
    record.addresses.push_back(a);
  }
  cli << "route add default via " << site.gateway_v4 << "\n"
      << "route add default via " << site.gateway_v6 << "\n";
  if (auto st = run_checked(ns_[1], {"ip", "-batch", "-"}, mbx.str(), "configure middlebox for " + std::string(site.name));
      !st) {
    return st;
  }
  if (auto st = run_checked(netns, {"ip", "-batch", "-"}, cli.str(), "configure " + std::string(site.name)); !st) return st;
  state_.clients.push_back(std::move(record));
  return write_state(state_);
}

Status Lab::add_netns(const std::string& name) {
  // `ip netns add` creates /run/netns/NAME with O_EXCL: an existing (maybe foreign) namespace makes
  // it fail without being touched, and we record only what it created.
  auto r = exec_in_netns("", {"ip", "netns", "add", name}, ExecOptions{"", std::chrono::seconds(30), true, {}});
  if (!r) return r.error();
  if (r->exit_code != 0) return lab_error(Errc::environment, "create netns " + name + ": " + first_line(r->err));
  state_.namespaces.push_back(name);
  registry::add_netns(slot_, name);
  return write_state(state_);
}

Status Lab::run_checked(const std::string& netns, const std::vector<std::string>& argv, const std::string& stdin_data,
                        const std::string& what) const {
  auto r = exec_in_netns(netns, argv, ExecOptions{stdin_data, std::chrono::seconds(30), true, {}});
  if (!r) return r.error();
  if (r->exit_code != 0) {
    return lab_error(Errc::environment, what + (netns.empty() ? "" : " (netns " + netns + ")") + ": " +
                                            first_line(r->err.empty() ? r->out : r->err));
  }
  return ok_status();
}

Lab::Lab(Lab&& other) noexcept
    : state_(std::move(other.state_)), slot_(other.slot_), owned_(other.owned_) {
  for (int i = 0; i < kNodeCount; ++i) ns_[i] = std::move(other.ns_[i]);
  other.slot_ = -1;
  other.owned_ = false;
}

Lab& Lab::operator=(Lab&& other) noexcept {
  if (this != &other) {
    if (owned_) (void)down();
    state_ = std::move(other.state_);
    for (int i = 0; i < kNodeCount; ++i) ns_[i] = std::move(other.ns_[i]);
    slot_ = other.slot_;
    owned_ = other.owned_;
    other.slot_ = -1;
    other.owned_ = false;
  }
  return *this;
}

Lab::~Lab() {
  if (!owned_) return;
  if (auto st = down(); !st) log::get("lab")->error("teardown of lab {}: {}", state_.prefix, st.error().text());
}

Status Lab::down() {
  if (!owned_) return ok_status();
  owned_ = false;
  const auto start = std::chrono::steady_clock::now();
  auto st = teardown_recorded(state_);
  registry::remove_lab(slot_);
  slot_ = -1;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  log::get("lab")->info("lab {} down in {} ms", state_.prefix, ms.count());
  return st;
}

void Lab::release() {
  if (!owned_) return;
  owned_ = false;
  registry::remove_lab(slot_);
  slot_ = -1;
  state_.detached = true;
  if (auto st = write_state(state_); !st) log::get("lab")->error("{}", st.error().text());
}

Result<ExecResult> Lab::exec_in(Node n, const std::vector<std::string>& argv, ExecOptions options) const {
  // exec_in_netns("") means our own namespace: a missing node must not run there.
  if (!has(n)) {
    return lab_error(Errc::usage, "lab " + state_.prefix + " has no " + std::string(node_name(n)) +
                                      " namespace" + (n == Node::client2 ? " (the scenario has no [client2])" : ""));
  }
  const int slot = slot_;
  auto user_start = std::move(options.on_start);
  pid_t child = 0;
  options.on_start = [&](pid_t pid) {
    child = pid;
    registry::add_pid(slot, pid);
    if (user_start) user_start(pid);
  };
  auto r = exec_in_netns(ns(n), argv, options);
  if (child != 0) registry::remove_pid(slot, child);
  return r;
}

}  // namespace tandem::lab
