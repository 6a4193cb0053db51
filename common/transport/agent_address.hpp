// AGENT: how a controller names an agent. One line a remote admin can send (docs/agent.md,
// docs/wire-protocol.md §7), in either of two forms:
//
//     tcp://HOST:PORT/<43-character base64url public key>   (needs no shell quoting)
//     tcp://HOST:PORT#<40-character Z85 public key>          (the older form; quote it in '...')
//     tcp://[2001:db8::5]:7070/<key>
//
// base64url (RFC 4648 §5, no padding) uses only A-Z a-z 0-9 - _, none of which a shell treats
// specially, so the line can be pasted bare. Z85 contains shell metacharacters (# & < > ( ) $ ! * ?)
// but never a single quote. In the '#' form the key follows the first '#' (an endpoint never
// contains '#'). Alternative: `tcp://HOST:PORT` plus a key file (`--client-key FILE`).
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
  // The quote-free form: endpoint + "/" + the key in base64url.
  std::string to_url() const;
};

// 40 Z85 characters <-> 43 base64url characters (the same 32 bytes); "" on a malformed key.
std::string z85_key_to_base64url(std::string_view z85);
std::string base64url_key_to_z85(std::string_view b64);

// Parses "tcp://HOST:PORT/KEY" or "tcp://HOST:PORT#KEY". Errc::usage with a message that shows the
// expected form.
Result<AgentAddress> parse_agent_address(std::string_view text);

// Parses "tcp://HOST:PORT" (no key) and takes the key from a public key file (Errc::config on a bad
// file). If `text` already carries a key, the two must agree.
Result<AgentAddress> parse_agent_address(std::string_view text, const std::string& key_file);

}  // namespace tandem::transport
