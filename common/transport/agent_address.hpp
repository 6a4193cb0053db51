// AGENT: how a controller names an agent. One line a remote admin can send (docs/wire-protocol.md §7):
//
//     tcp://HOST:PORT#<40-character Z85 public key of the agent>
//     tcp://[2001:db8::5]:7070#<key>
//
// The key follows the first '#' (an endpoint never contains '#'; the Z85 alphabet does, which is
// fine because everything after the first '#' is the key). Z85 contains shell metacharacters
// (& < > ( ) $ ! * ?) but never a single quote, so the line is always safe inside '...'.
// Alternative: `tcp://HOST:PORT` plus a key file (`--client-key FILE` / `--server-key FILE`).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/base/result.hpp"

namespace tandem::transport {

struct AgentAddress {
  std::string endpoint;    // "tcp://HOST:PORT", as given to zmq_connect
  std::string host;        // without brackets
  std::uint16_t port = 0;
  std::string server_key;  // Z85, 40 characters

  std::string to_string() const { return endpoint + "#" + server_key; }
};

// Parses "tcp://HOST:PORT#KEY". Errc::usage with a message that shows the expected form.
Result<AgentAddress> parse_agent_address(std::string_view text);

// Parses "tcp://HOST:PORT" (no key) and takes the key from a public key file (Errc::config on a bad
// file). If `text` already carries a key, the two must agree.
Result<AgentAddress> parse_agent_address(std::string_view text, const std::string& key_file);

}  // namespace tandem::transport
