// The evidence of every bisect round in one bundle (DESIGN.md §5: "a bisect bundle keeps the evidence
// of every round, failing probes included"). Each round is a two-ended run with its own captures and
// its own probe ids 0..n-1 over the round's variants; BisectEvidence appends them into one
// correlation whose probe ids run on across rounds and whose variant indices are the experiment's,
// and into one client and one server capture holding every round's packets in round order.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "controller/correlate/model.hpp"

namespace tandem::cli {

class BisectEvidence {
 public:
  // The experiment's variants, indexed as the experiment (the bundle's variant table); set once the
  // last round is in, since later stages add variants.
  void set_variants(std::vector<correlate::Variant> variants) { corr_.variants = std::move(variants); }

  // Adds one round: its correlation (variants indexed within the round), the experiment index of each
  // round variant, and the captures its packet indices point into (run::Analysis::client/server;
  // a server side that is not present when the run had no server). Errors: a capture whose link
  // type differs from the earlier rounds' (the agents changed in between).
  Status add_round(const correlate::Correlation& round, std::span<const std::size_t> round_variants,
                   const correlate::CaptureSide& client, const correlate::CaptureSide& server);

  // The rounds so far. The clock is the first round's estimate with its error widened by how far
  // the later rounds' estimates moved (merged.pcapng shifts every server packet by one offset).
  const correlate::Correlation& correlation() const { return corr_; }
  const correlate::CaptureSide& client() const { return client_; }
  const correlate::CaptureSide& server() const { return server_; }
  std::size_t rounds() const { return rounds_; }

 private:
  correlate::Correlation corr_;
  correlate::CaptureSide client_, server_;
  std::size_t rounds_ = 0;
  std::uint32_t next_id_ = 0;
};

}  // namespace tandem::cli
