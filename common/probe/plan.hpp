// Probe plans: which variant each probe of a run carries. The sending agent and the controller
// (which must label every probe of the report with its variant) compute the same mapping from the
// plan's seed, so the assignment is never sent on the wire.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tandem::probe {

// splitmix64 (Steele, Lea, Flood 2014): the generator behind variant_schedule(). Exposed so the
// definition is pinned by tests; state advances by 0x9e3779b97f4a7c15 per call.
std::uint64_t splitmix64_next(std::uint64_t& state);

// The variant index (0 .. variants-1) of probes 0 .. count-1, as permuted blocks: probes are taken
// in consecutive blocks of `variants`; each block holds every variant exactly once, in an order
// shuffled by Fisher-Yates driven by splitmix64 seeded with `seed`:
//
//     state = seed
//     for each block: p = [0, 1, ..., variants-1]
//                     for i = variants-1 down to 1: j = splitmix64_next(state) % (i + 1); swap(p[i], p[j])
//                     append p (the last block only its first count % variants entries)
//
// So variants are interleaved in random order, and within any stretch of time each variant is sent
// equally often (counts differ by at most 1 overall): slow path noise hits all variants alike
// (DESIGN.md §6). variants 0 or 1: every probe gets variant 0.
std::vector<std::uint16_t> variant_schedule(std::uint64_t seed, std::uint32_t count, std::size_t variants);

// The interleaving of a plan's streams (vantage x target, proto::ProbeStream): slot k of the plan
// sends the next probe of stream schedule[k]. Permuted blocks again: each block holds every stream
// that still has probes left exactly once, shuffled as in variant_schedule (splitmix64 from `seed`):
//
//     state = seed
//     while probes are left: p = [streams with probes left, ascending]
//                            for i = |p|-1 down to 1: j = splitmix64_next(state) % (i + 1); swap(p[i], p[j])
//                            append p
//
// With equal counts this equals variant_schedule(seed, total, streams): every vantage sends at the
// plan's rate / streams with at most one block of jitter, and path noise hits every vantage alike.
// One stream: all zeros.
std::vector<std::uint16_t> stream_schedule(std::uint64_t seed, const std::vector<std::uint32_t>& counts);

}  // namespace tandem::probe
