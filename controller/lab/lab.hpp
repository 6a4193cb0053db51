// Lab: network namespaces joined by veth pairs, addressed as in DESIGN.md §4
// (controller/lab/topology.hpp), with the scenario's nftables rulesets and real kernel listeners in
// the server:
//
//   client   eth0     10.77.1.2/24 fd77:1::2/64  (+ [client] addresses)   default via the middlebox
//   client2  eth0     10.77.3.2/24 fd77:3::2/64  (+ [client2] addresses)  only with [client2]
//   mbx      eth-cli  10.77.1.1/24 fd77:1::1/64 | eth-srv 10.77.2.1/24 fd77:2::1/64
//            eth-cl2  10.77.3.1/24 fd77:3::1/64 (with client2)           forwarding on
//   server   eth0     10.77.2.2/24 fd77:2::2/64  default via the middlebox (so it routes back to
//                                                every client site)
//
// Namespaces are <prefix>-cli/-mbx/-srv (and -cl2); addresses are the same in every lab, so any
// number of labs can run at once. Ownership: a Lab object tears its lab down when destroyed (and the
// process tears it down on SIGINT/SIGTERM/SIGHUP), unless release()d, after which only
// `tandem lab down PREFIX` (reading the state file) removes it. Needs root (CAP_SYS_ADMIN +
// CAP_NET_ADMIN) and the `ip` and `nft` programs.
//
// Design notes.
// - Listeners are a forked child that setns()es into the server namespace (spawn_listener), not an
//   exec of a hidden `tandem lab _listen`: the library then works from any binary (LabFixture runs
//   labs inside gtest executables, which have no such subcommand), the child makes only
//   async-signal-safe calls, and it reports "listening" (or the failing bind) before up() returns.
// - Namespaces are created with `ip netns add` (O_EXCL on /run/netns/NAME: a foreign namespace is
//   never adopted) and deleted as `ip netns del` does (umount2 MNT_DETACH + unlink), which is
//   async-signal-safe, so the SIGINT/SIGTERM/SIGHUP handler can do the same teardown and re-raise.
// - Each namespace gets accept_dad=0 before its interfaces exist, so v6 works the moment up()
//   returns (otherwise neighbour discovery stalls ~1.5 s on tentative link-local addresses).
// - Extra IPv6 addresses are added with preferred_lft 0 (deprecated): RFC 6724 source selection
//   then never picks them by itself, so a socket or agent that names no source still sends from the
//   site's primary ::2, as extra IPv4 addresses (kernel "secondary") leave .2 the default. Binding
//   to a deprecated address explicitly works as for any other.
// - With detach = false the listener dies with the thread that called up() (PR_SET_PDEATHSIG):
//   call up() from a thread that outlives the Lab (the main thread, a gtest body).
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "controller/lab/process.hpp"
#include "controller/lab/scenario.hpp"
#include "controller/lab/state.hpp"
#include "controller/lab/topology.hpp"

namespace tandem::lab {

std::string_view node_name(Node n);  // "client", "middlebox", "server", "client2"

struct LabOptions {
  std::string name;      // lab prefix; empty = "tdm" + 6 random hex digits. See valid_prefix().
  bool detach = false;   // listeners outlive this process (`tandem lab up`); see spawn_listener()
};

class Lab {
 public:
  // Builds the whole lab or nothing: on any failure what was already created is torn down and
  // the error names the step (and carries nft's/ip's stderr). Errc::permission without root,
  // Errc::environment for missing `ip`/`nft` or a name already in use, Errc::config for a
  // ruleset nft rejects.
  static Result<Lab> up(const Scenario& scenario, const LabOptions& options = {});

  Lab(Lab&& other) noexcept;
  Lab& operator=(Lab&& other) noexcept;
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;
  ~Lab();  // down(), errors logged

  // Kills the listeners, deletes the namespaces and the state. Idempotent.
  Status down();
  // Gives up ownership: the lab stays up after this object and process are gone.
  void release();

  const std::string& prefix() const { return state_.prefix; }
  const std::string& client_ns() const { return ns_[0]; }
  const std::string& middlebox_ns() const { return ns_[1]; }
  const std::string& server_ns() const { return ns_[2]; }
  const std::string& client2_ns() const { return ns_[3]; }  // empty without [client2]
  // A node's namespace name; empty for client2 when the scenario has no [client2].
  const std::string& ns(Node n) const { return ns_[static_cast<int>(n)]; }
  bool has(Node n) const { return !ns(n).empty(); }
  // Every client site, "client" first then "client2" if present, each with all of its addresses
  // (primary v4, primary v6, then the scenario's extra ones). The same list is in the state file.
  const std::vector<ClientSite>& client_sites() const { return state_.clients; }
  const std::vector<ProcessId>& listeners() const { return state_.processes; }
  std::filesystem::path state_file() const { return state_dir(state_.prefix) / "state.json"; }

  // Runs argv inside a namespace of this lab (see exec_in_netns). While it runs, its pid is
  // registered so that a signal tearing the lab down kills it too. Errc::usage for a node this lab
  // does not have (client2 without [client2]): never falls back to our own namespace.
  Result<ExecResult> exec_in(Node n, const std::vector<std::string>& argv, ExecOptions options = {}) const;

 private:
  Lab() = default;
  Status build(const Scenario& scenario, const LabOptions& options);
  Status add_netns(const std::string& name);
  Status add_client_site(const ClientSiteTopology& site, const ClientSpec& spec);
  Status run_checked(const std::string& netns, const std::vector<std::string>& argv, const std::string& stdin_data,
                     const std::string& what) const;

  LabState state_;
  std::string ns_[kNodeCount];  // indexed by Node; empty = not created
  int slot_ = -1;      // teardown registry slot; -1 when not registered
  bool owned_ = false; // false after release() / move / down()
};

// One line per client site for `tandem lab up` (the column layout of its other lines): name,
// namespace, interface, every address, and the middlebox interface and addresses it routes via:
//   "  client2    tdm1a2b3c-cl2    eth0     10.77.3.2  fd77:3::2  10.77.3.3   via eth-cl2 10.77.3.1 …\n"
std::string client_sites_text(const Lab& lab);

}  // namespace tandem::lab
