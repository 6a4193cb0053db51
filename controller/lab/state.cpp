#include "controller/lab/state.hpp"

#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace tandem::lab {
namespace {

Error lab_error(Errc code, std::string message) { return make_error(code, "lab", std::move(message)); }

bool belongs_to(const std::string& ns, const std::string& prefix) {
  return std::any_of(kNsSuffixes.begin(), kNsSuffixes.end(),
                     [&](std::string_view sfx) { return ns == prefix + std::string(sfx); });
}

const ClientSiteTopology* site_named(const std::string& name) {
  for (const auto& site : kClientSites)
    if (site.name == name) return &site;
  return nullptr;
}

}  // namespace

bool valid_prefix(const std::string& prefix) {
  if (prefix.empty() || prefix.size() > 12 || prefix.front() == '-') return false;
  return std::all_of(prefix.begin(), prefix.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

std::filesystem::path state_root() {
  const char* env = std::getenv("TANDEM_LAB_STATE_DIR");
  return (env != nullptr && *env != '\0') ? std::filesystem::path(env) : std::filesystem::path("/run/tandem/labs");
}

std::filesystem::path state_dir(const std::string& prefix) { return state_root() / prefix; }

Status write_state(const LabState& s) {
  nlohmann::json j;
  j["tool"] = "tandem";
  j["kind"] = "lab";
  j["prefix"] = s.prefix;
  j["scenario"] = s.scenario;
  j["created"] = s.created;
  j["created_unix"] = s.created_unix;
  j["detached"] = s.detached;
  j["owner"] = {{"pid", s.owner.pid}, {"start_time", s.owner.start_time}};
  j["namespaces"] = s.namespaces;
  j["processes"] = nlohmann::json::array();
  for (const auto& p : s.processes) j["processes"].push_back({{"pid", p.pid}, {"start_time", p.start_time}});
  j["clients"] = nlohmann::json::array();
  for (const auto& c : s.clients) j["clients"].push_back({{"name", c.name}, {"namespace", c.ns}, {"addresses", c.addresses}});
  const auto dir = state_dir(s.prefix);
  const auto tmp = dir / "state.json.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2) << "\n";
    if (!out) return lab_error(Errc::environment, "write " + tmp.string() + ": " + std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, dir / "state.json", ec);
  if (ec) return lab_error(Errc::environment, "rename " + tmp.string() + ": " + ec.message());
  return ok_status();
}

Result<LabState> read_state(const std::string& prefix) {
  if (!valid_prefix(prefix)) return lab_error(Errc::environment, "'" + prefix + "' is not the name of a lab created by tandem; refusing to touch it");
  const auto file = state_dir(prefix) / "state.json";
  std::ifstream in(file);
  if (!in) {
    return lab_error(Errc::environment, "no lab '" + prefix + "' was created by tandem (no " + file.string() +
                                            "); refusing to touch it");
  }
  LabState s;
  try {
    const auto j = nlohmann::json::parse(in);
    if (j.at("tool") != "tandem" || j.at("kind") != "lab") throw std::runtime_error("not a tandem lab state");
    s.prefix = j.at("prefix").get<std::string>();
    s.scenario = j.value("scenario", "");
    s.created = j.value("created", "");
    s.created_unix = j.value("created_unix", std::int64_t{0});
    s.detached = j.value("detached", false);
    s.owner = ProcessId{j.at("owner").at("pid").get<pid_t>(), j.at("owner").at("start_time").get<std::uint64_t>()};
    s.namespaces = j.at("namespaces").get<std::vector<std::string>>();
    for (const auto& p : j.at("processes"))
      s.processes.push_back(ProcessId{p.at("pid").get<pid_t>(), p.at("start_time").get<std::uint64_t>()});
    // Absent in state files written before client sites were recorded.
    for (const auto& c : j.value("clients", nlohmann::json::array())) {
      ClientSite site{c.at("name").get<std::string>(), Node::client, c.at("namespace").get<std::string>(),
                      c.at("addresses").get<std::vector<std::string>>()};
      const auto* topo = site_named(site.name);
      if (topo == nullptr) throw std::runtime_error("unknown client site '" + site.name + "'");
      site.node = topo->node;
      s.clients.push_back(std::move(site));
    }
  } catch (const std::exception& e) {
    return lab_error(Errc::config, file.string() + ": malformed state: " + e.what());
  }
  // A state file is trusted only for names of its own lab: a tampered file must not turn
  // `lab down` into a way of deleting arbitrary namespaces.
  if (s.prefix != prefix) return lab_error(Errc::config, file.string() + ": records prefix '" + s.prefix + "'");
  for (const auto& ns : s.namespaces) {
    if (!belongs_to(ns, prefix))
      return lab_error(Errc::config, file.string() + ": records foreign namespace '" + ns + "'; refusing");
  }
  for (const auto& c : s.clients) {
    if (!belongs_to(c.ns, prefix))
      return lab_error(Errc::config, file.string() + ": records foreign namespace '" + c.ns + "'; refusing");
  }
  return s;
}

std::vector<LabState> list_states() {
  std::vector<LabState> labs;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(state_root(), ec)) {
    if (!entry.is_directory()) continue;
    if (auto s = read_state(entry.path().filename().string()); s) labs.push_back(std::move(s.value()));
  }
  std::sort(labs.begin(), labs.end(), [](const auto& a, const auto& b) { return a.prefix < b.prefix; });
  return labs;
}

Status teardown_recorded(const LabState& s) {
  std::string first_failure;
  for (const auto& p : s.processes) kill_process(p);
  // Reverse creation order; a namespace already gone is fine (idempotent teardown).
  for (auto it = s.namespaces.rbegin(); it != s.namespaces.rend(); ++it) {
    const std::string path = "/run/netns/" + *it;
    ::umount2(path.c_str(), MNT_DETACH);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT && first_failure.empty())
      first_failure = "delete netns " + *it + ": " + std::strerror(errno);
  }
  const auto dir = state_dir(s.prefix);
  std::error_code ec;
  std::filesystem::remove(dir / "state.json.tmp", ec);
  std::filesystem::remove(dir / "state.json", ec);
  std::filesystem::remove(dir, ec);
  if (ec && first_failure.empty()) first_failure = "remove " + dir.string() + ": " + ec.message();
  if (!first_failure.empty()) return lab_error(Errc::environment, first_failure);
  return ok_status();
}

Status down_by_name(const std::string& name, bool force) {
  std::string prefix = name;
  for (const auto suffix : kNsSuffixes) {
    const std::string sfx(suffix);
    if (prefix.size() > sfx.size() && prefix.ends_with(sfx) &&
        std::filesystem::exists(state_dir(prefix.substr(0, prefix.size() - sfx.size())) / "state.json")) {
      prefix.resize(prefix.size() - sfx.size());
      break;
    }
  }
  auto s = read_state(prefix);
  if (!s) return s.error();
  if (!s->detached && !force && s->owner.pid != ::getpid() && process_alive(s->owner)) {
    return lab_error(Errc::environment, "lab '" + prefix + "' is owned by running process " +
                                            std::to_string(s->owner.pid) +
                                            ", which tears it down itself; use --force to take it down anyway");
  }
  return teardown_recorded(*s);
}

}  // namespace tandem::lab
