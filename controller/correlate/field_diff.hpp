// Field-level changes in transit (DESIGN.md §5 "findings"): the diff of one packet as sent by one
// end against the same packet as received by the other, and the aggregation of per-probe changes
// into findings. The TTL/hop-limit decrement and checksum updates are never changes; a checksum
// that is wrong on arrival is (bad_checksum).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/packet/decode.hpp"
#include "controller/correlate/model.hpp"

namespace tandem::correlate {

// Appends to `out` every field of DESIGN.md §5 that differs between `sent` and `received`: ip.dscp,
// ip.ecn, ip.id, ip.df (v4) or ip.flow_label (v6), ip.src, ip.dst, tcp.sport/dport/seq/window,
// tcp.option.<name> (null on the side that lacks it), tcp.options.order (among options both carry),
// udp.sport/dport.
// The first checksum of `received` that is wrong: "ip.checksum" (IPv4 header), "tcp.checksum" or
// "udp.checksum"; nullopt when all are right or cannot be checked (cut by the snaplen, a fragment).
// A packet changed on the way without its checksum fixed is discarded by the receiving kernel
// after the capture saw it: a probe that looks `unanswered` was in fact corrupted in transit.
std::optional<std::string> bad_checksum(const packet::Decoded& received);

// Fields cut off by a capture's snap length are unknown (DESIGN.md §8): when either packet's TCP
// option list is incomplete in the captured bytes, no option and no option order is compared.
// Returns kSentCut / kReceivedCut for the packets that lacked bytes a comparison needed.
inline constexpr int kSentCut = 1, kReceivedCut = 2;
int diff_packets(Direction dir, const packet::Decoded& sent, const packet::Decoded& received,
                 std::vector<FieldChange>& out);

// Whether the TCP header's option list lies wholly within the captured bytes.
bool tcp_options_complete(const packet::TcpView& t);

}  // namespace tandem::correlate
