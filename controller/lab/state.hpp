// The lab's state file, /run/tandem/labs/<prefix>/state.json: the only authority for what a lab
// owns. Teardown deletes exactly the namespaces and kills exactly the processes recorded there, and
// a name without a state file is refused, so tandem never touches a namespace it did not create.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "controller/lab/process.hpp"
#include "controller/lab/topology.hpp"

namespace tandem::lab {

// A client site of a lab (DESIGN.md §4): a client namespace and every address it has. Recorded in
// the state file so that `lab list`, scripts and a later `lab run` see the sites of a running lab.
struct ClientSite {
  std::string name;                    // "client", "client2" (kClientSites)
  Node node = Node::client;
  std::string ns;                      // namespace name, <prefix>-cli / <prefix>-cl2
  std::vector<std::string> addresses;  // primary v4, primary v6, then the scenario's extra ones
};

struct LabState {
  std::string prefix;
  std::string scenario;             // scenario name, for `lab list`
  std::string created;              // UTC, ISO 8601
  std::int64_t created_unix = 0;
  bool detached = false;            // true: `lab up` left it running; false: a process owns it
  ProcessId owner;                  // the process that brought it up
  std::vector<std::string> namespaces;  // only those actually created, in creation order
  std::vector<ProcessId> processes;     // listeners to kill on teardown
  std::vector<ClientSite> clients;      // client sites, "client" first; informational (teardown
                                        // uses `namespaces` only)
};

// Root of all state directories: $TANDEM_LAB_STATE_DIR if set (tests use a private root), else
// /run/tandem/labs.
std::filesystem::path state_root();
std::filesystem::path state_dir(const std::string& prefix);

// Atomically replaces <state_dir>/state.json (write to a temp file, rename).
Status write_state(const LabState& state);
// Errc::environment when there is no state file (the caller reports "not ours"), Errc::config when
// it is malformed or records names that do not belong to its prefix.
Result<LabState> read_state(const std::string& prefix);
// All labs with a readable state file, sorted by prefix. Malformed ones are skipped.
std::vector<LabState> list_states();

// Kills the recorded processes, deletes the recorded namespaces (umount + unlink, as
// `ip netns del`), removes the state directory. Idempotent; reports the first failure.
Status teardown_recorded(const LabState& state);

// `tandem lab down NAME`: NAME is a lab prefix or one of its namespace names. Refuses (Errc::
// environment) names with no state file of ours, and labs whose owning process still runs unless
// force (it tears its lab down itself; a test in progress must not lose its lab).
Status down_by_name(const std::string& name, bool force);

// Lab prefixes: 1-12 characters of [a-z0-9-], starting with a letter or digit.
bool valid_prefix(const std::string& prefix);

}  // namespace tandem::lab
