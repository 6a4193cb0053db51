// Internal to tandem_lab: the process-wide list of labs this process owns, kept in fixed-size
// static storage so that a SIGINT/SIGTERM/SIGHUP handler can tear them down with async-signal-safe
// calls only (kill, umount2, unlink, rmdir — what `ip netns del` does), then re-raise the signal.
#pragma once

#include <sys/types.h>

#include <string>

namespace tandem::lab::registry {

// Installs the handlers (once per process) and reserves a slot; -1 if all slots are taken (the lab
// then still works, only without signal-time cleanup).
int add_lab(const std::string& state_dir);
// Records a namespace to unmount/unlink and a pid to SIGKILL at signal time.
void add_netns(int slot, const std::string& name);
void add_pid(int slot, pid_t pid);
void remove_pid(int slot, pid_t pid);
// Frees the slot (the lab was torn down normally or released to outlive us).
void remove_lab(int slot);

}  // namespace tandem::lab::registry
