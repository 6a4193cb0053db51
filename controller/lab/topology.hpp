// The lab's fixed topology (DESIGN.md §4), shared by the scenario parser (which checks a client
// site's extra addresses against its subnet), the Lab (which builds it) and the state file (which
// names its namespaces). Addresses are the same in every lab; only namespace names differ.
//
//   client   <prefix>-cli eth0     10.77.1.2/24 fd77:1::2/64  default via the middlebox
//   client2  <prefix>-cl2 eth0     10.77.3.2/24 fd77:3::2/64  default via the middlebox (optional)
//   mbx      <prefix>-mbx eth-cli  10.77.1.1/24 fd77:1::1/64 | eth-srv 10.77.2.1/24 fd77:2::1/64
//                         eth-cl2  10.77.3.1/24 fd77:3::1/64 (with client2)           forwarding on
//   server   <prefix>-srv eth0     10.77.2.2/24 fd77:2::2/64  default via the middlebox
#pragma once

#include <array>
#include <string_view>

namespace tandem::lab {

// A lab namespace. client2 exists only when the scenario has [client2].
enum class Node { client, middlebox, server, client2 };
inline constexpr int kNodeCount = 4;

inline constexpr std::string_view kClientV4 = "10.77.1.2";
inline constexpr std::string_view kClientV6 = "fd77:1::2";
inline constexpr std::string_view kClient2V4 = "10.77.3.2";
inline constexpr std::string_view kClient2V6 = "fd77:3::2";
inline constexpr std::string_view kMiddleboxClientSideV4 = "10.77.1.1";
inline constexpr std::string_view kMiddleboxClientSideV6 = "fd77:1::1";
inline constexpr std::string_view kMiddleboxClient2SideV4 = "10.77.3.1";
inline constexpr std::string_view kMiddleboxClient2SideV6 = "fd77:3::1";
inline constexpr std::string_view kMiddleboxServerSideV4 = "10.77.2.1";
inline constexpr std::string_view kMiddleboxServerSideV6 = "fd77:2::1";
inline constexpr std::string_view kServerV4 = "10.77.2.2";
inline constexpr std::string_view kServerV6 = "fd77:2::2";
inline constexpr std::string_view kClientIf = "eth0";
inline constexpr std::string_view kMiddleboxClientIf = "eth-cli";
inline constexpr std::string_view kMiddleboxClient2If = "eth-cl2";
inline constexpr std::string_view kMiddleboxServerIf = "eth-srv";
inline constexpr std::string_view kServerIf = "eth0";

// One client site: a client namespace behind its own middlebox interface. The site's subnets are
// <v4 prefix>.0/24 and <v6 prefix>/64; the middlebox is .1 / ::1 in them, the namespace .2 / ::2.
struct ClientSiteTopology {
  std::string_view name;          // "client", "client2": the scenario table and the site's name
  Node node;
  std::string_view ns_suffix;     // appended to the lab prefix
  std::string_view v4, v6;        // the namespace's primary addresses (on kClientIf)
  std::string_view gateway_v4, gateway_v6;  // the middlebox's addresses on this site's link
  std::string_view middlebox_if;  // the middlebox's end of this site's veth pair
  std::string_view v4_subnet;     // "10.77.1.0/24"
  std::string_view v6_subnet;     // "fd77:1::/64"
};

inline constexpr std::array<ClientSiteTopology, 2> kClientSites = {{
    {"client", Node::client, "-cli", kClientV4, kClientV6, kMiddleboxClientSideV4, kMiddleboxClientSideV6,
     kMiddleboxClientIf, "10.77.1.0/24", "fd77:1::/64"},
    {"client2", Node::client2, "-cl2", kClient2V4, kClient2V6, kMiddleboxClient2SideV4, kMiddleboxClient2SideV6,
     kMiddleboxClient2If, "10.77.3.0/24", "fd77:3::/64"},
}};

// The site of a client node: Node::client2's for client2, else the first site's.
constexpr const ClientSiteTopology& client_site_topology(Node n) { return kClientSites[n == Node::client2 ? 1 : 0]; }

// Namespace suffixes of every node, in Node order; the state file accepts exactly these.
inline constexpr std::array<std::string_view, kNodeCount> kNsSuffixes = {"-cli", "-mbx", "-srv", "-cl2"};

}  // namespace tandem::lab
