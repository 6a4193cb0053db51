// Scenario: the lab's TOML description (DESIGN.md §4) — the nftables rulesets of the namespaces,
// the client sites ([client], the optional [client2]) and their extra addresses, the server's
// listeners and the [run] settings that become command flags.
// Scenarios are user input: every defect is a Result error (Errc::config) that names the file, the
// line:column and the key, never an exception.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/base/result.hpp"

namespace tandem::lab {

// A [run] value as written in the file. Only scalars: every run setting maps to one flag.
using RunValue = std::variant<std::string, std::int64_t, double, bool>;

struct RunSetting {
  std::string key;  // as written, '_' for '-' (tcp_options)
  RunValue value;
};

// [client] or [client2]: one client site's namespace (controller/lab/topology.hpp).
struct ClientSpec {
  std::string nft;  // applied verbatim with `nft -f -` in that namespace; may be empty
  // `addresses`: extra addresses of the namespace, beside its primary .2 / ::2, in file order and
  // canonical text ("fd77:1::3"). The parser guarantees each lies inside the site's /24 or /64 and
  // is neither the network address, the broadcast, the middlebox's (.1, ::1), the primary nor a
  // duplicate.
  std::vector<std::string> addresses;
};

struct Scenario {
  std::string source;  // file path or the caller's label for inline text; used in messages
  std::string name;
  std::string description;
  std::string middlebox_nft;  // applied verbatim with `nft -f -` in the middlebox; may be empty
  std::string server_nft;
  ClientSpec client;                   // [client] (the client namespace always exists)
  std::optional<ClientSpec> client2;   // [client2]: present (even empty) = a second client site
  std::vector<std::uint16_t> listen_tcp;  // [server] listen
  std::vector<std::uint16_t> listen_udp;  // [server] listen_udp (UDP echo)
  std::vector<RunSetting> run;            // [run] in file order

  // Convenience lookups into `run`; nullptr/nullopt when absent.
  const RunValue* run_value(std::string_view key) const;
  std::optional<std::string> run_mode() const;    // "ping" | "trace" | "bisect"
  std::optional<std::string> run_target() const;  // "10.77.2.2:21", "[fd77:2::2]:21", "10.77.2.2"
};

// Parses a scenario file. Errors: Errc::config "scenario: FILE:LINE:COL: ..." (also for I/O).
Result<Scenario> load_scenario(const std::filesystem::path& file);
// Parses scenario text; `source` labels it in messages ("<inline>", a test name, ...).
Result<Scenario> parse_scenario(std::string_view toml_text, std::string_view source);

// The [run] table as command flags, in file order, without `mode` and `target` (which the caller
// places itself): tcp_options = "mss=1460" -> {"--tcp-options", "mss=1460"}; integers and floats
// become their text; `true` becomes the bare flag and `false` is omitted.
std::vector<std::string> run_flags(const Scenario& scenario);

// "10.77.2.2:21" -> {"10.77.2.2", 21}; "[fd77:2::2]:21" -> {"fd77:2::2", 21}; a bare address has
// no port. Errc::config on anything else.
struct RunTarget {
  std::string host;
  std::optional<std::uint16_t> port;
};
Result<RunTarget> parse_run_target(std::string_view text);

}  // namespace tandem::lab
