// Private to controller/correlate: a multimap from u32 keys to u32 values that is looked up in
// batches, and the key filter that keeps entries no query can find out of it.
// Both the entries and a batch of queries are sorted by key (a stable LSD radix sort, skipped when
// already in order) and merged, so a million lookups stream through memory instead of missing the
// cache once each as a hash table of millions of entries does. Callers that make the key follow
// time order (probe::RunKey::index_from_seq of a sequence number is the probe index) find both
// sides already sorted and pay one linear merge.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace tandem::correlate::detail {

// Sorts key << 32 | value words by key only, keeping the order of equal keys. `scratch` (optional)
// is the sort's second buffer, kept by the caller across sorts so that each sort does not fault in
// fresh pages of its own; on return it holds a buffer at least v's size.
inline void sort_by_key(std::vector<std::uint64_t>& v, std::vector<std::uint64_t>* scratch = nullptr) {
  auto key_less = [](std::uint64_t a, std::uint64_t b) { return (a >> 32) < (b >> 32); };
  if (std::is_sorted(v.begin(), v.end(), key_less)) return;
  if (v.size() < 256) {
    std::stable_sort(v.begin(), v.end(), key_less);
    return;
  }
  // LSD radix sort on the key's three digits (11, 11 and 10 bits). All three histograms come from
  // one pass, and a digit every key shares is skipped.
  constexpr std::array<unsigned, 3> kShift{32, 43, 54};
  constexpr std::array<unsigned, 3> kBits{11, 11, 10};
  std::array<std::array<std::uint32_t, 2048>, 3> count{};
  for (auto x : v) {
    ++count[0][(x >> 32) & 2047u];
    ++count[1][(x >> 43) & 2047u];
    ++count[2][(x >> 54) & 1023u];
  }
  std::vector<std::uint64_t> own;
  std::vector<std::uint64_t>& tmp = scratch ? *scratch : own;
  if (tmp.capacity() < v.size()) std::vector<std::uint64_t>().swap(tmp);
  tmp.resize(v.size());
  for (std::size_t pass = 0; pass < kShift.size(); ++pass) {
    auto& c = count[pass];
    const std::size_t digits = std::size_t{1} << kBits[pass];
    if (std::find(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(digits), static_cast<std::uint32_t>(v.size())) !=
        c.begin() + static_cast<std::ptrdiff_t>(digits)) {
      continue;
    }
    std::uint32_t sum = 0;
    for (std::size_t d = 0; d < digits; ++d) {
      const auto n = c[d];
      c[d] = sum;
      sum += n;
    }
    const unsigned shift = kShift[pass];
    const std::uint64_t mask = digits - 1;
    for (auto x : v) tmp[c[(x >> shift) & mask]++] = x;
    v.swap(tmp);
  }
}

// A set of u32 keys that may answer "maybe" for a key it does not hold, never "no" for one it
// holds (one hashed bit per key, about 16 bits per key): an index built only from the entries a
// filter of its queries passes holds every entry those queries can find, and sorts far fewer
// when most entries answer no probe (a connection's later ACKs and FINs, other flows).
class KeyFilter {
 public:
  KeyFilter() = default;
  explicit KeyFilter(std::size_t keys) {
    unsigned bits = 16;
    while (bits < 27 && (std::size_t{1} << bits) < keys * 16) ++bits;
    shift_ = 32 - bits;
    words_.assign((std::size_t{1} << bits) / 64, 0);
  }
  void add(std::uint32_t key) {  // only on a filter made with a size
    const auto h = slot(key);
    words_[h >> 6] |= std::uint64_t{1} << (h & 63);
  }
  bool maybe(std::uint32_t key) const {
    if (words_.empty()) return false;
    const auto h = slot(key);
    return (words_[h >> 6] >> (h & 63)) & 1;
  }

 private:
  std::uint32_t slot(std::uint32_t key) const { return (key * 0x9e3779b1u) >> shift_; }
  unsigned shift_ = 16;
  std::vector<std::uint64_t> words_;
};

class SortedMultimap {
 public:
  // The values with one key, in the order they were added.
  struct Range {
    std::uint32_t pos = 0, n = 0;
  };

  void clear() {
    std::vector<std::uint64_t>().swap(kv_);
    std::vector<std::uint32_t>().swap(fence_);
  }
  void reserve(std::size_t n) { kv_.reserve(n); }
  // Equal keys keep the order of add() calls.
  void add(std::uint32_t key, std::uint32_t value) { kv_.push_back(std::uint64_t{key} << 32 | value); }
  // add() of every key << 32 | value word of kv in order, then seal().
  void assign(std::vector<std::uint64_t>&& kv, std::vector<std::uint64_t>* scratch = nullptr) {
    kv_ = std::move(kv);
    seal(scratch);
  }
  void seal(std::vector<std::uint64_t>* scratch = nullptr) {
    sort_by_key(kv_, scratch);
    fence_.clear();
    for (std::size_t i = 0; i < kv_.size(); i += kFenceStride) fence_.push_back(static_cast<std::uint32_t>(kv_[i] >> 32));
  }
  bool empty() const { return kv_.empty(); }
  std::uint32_t value(std::uint32_t pos) const { return static_cast<std::uint32_t>(kv_[pos]); }

  // One key by binary search, for the occasional lookup that is not worth a batch. The search runs
  // in the fence first (every kFenceStride-th key: a few KB that stay in cache), then within one
  // stride of entries, so a lookup misses the cache a handful of times instead of ~log2(n).
  Range find(std::uint32_t key) const {
    // b fence keys are below `key`: the first entry >= key lies in ((b - 1) * stride, b * stride].
    const auto b = static_cast<std::size_t>(std::lower_bound(fence_.begin(), fence_.end(), key) - fence_.begin());
    const std::size_t first = b == 0 ? 0 : (b - 1) * kFenceStride + 1;
    const std::size_t last = std::min(b * kFenceStride, kv_.size());
    auto lo = std::lower_bound(kv_.begin() + static_cast<std::ptrdiff_t>(first),
                               kv_.begin() + static_cast<std::ptrdiff_t>(last), key,
                               [](std::uint64_t e, std::uint32_t k) { return static_cast<std::uint32_t>(e >> 32) < k; });
    auto hi = lo;
    while (hi != kv_.end() && static_cast<std::uint32_t>(*hi >> 32) == key) ++hi;
    return Range{static_cast<std::uint32_t>(lo - kv_.begin()), static_cast<std::uint32_t>(hi - lo)};
  }

  // What gather() returns: per query id, the values of its key in the order they were added,
  // stored by id (offsets + values), so that a pass over the ids in order reads them in order
  // instead of jumping across the key-sorted entries.
  struct Postings {
    std::vector<std::uint32_t> off;  // values of id are val[off[id], off[id + 1])
    std::vector<std::uint32_t> val;
    std::span<const std::uint32_t> of(std::size_t id) const {
      if (id + 1 >= off.size()) return {};
      return std::span<const std::uint32_t>(val).subspan(off[id], off[id + 1] - off[id]);
    }
    void clear() {
      std::vector<std::uint32_t>().swap(off);
      std::vector<std::uint32_t>().swap(val);
    }
  };

  // lookup() with the values copied out by query id (see Postings).
  Postings gather(std::vector<std::uint64_t>& queries, std::size_t n,
                  std::vector<std::uint64_t>* scratch = nullptr) const {
    Postings p;
    const auto ranges = lookup(queries, n, scratch);
    p.off.resize(n + 1);
    p.off[0] = 0;
    for (std::size_t id = 0; id < n; ++id) p.off[id + 1] = p.off[id] + ranges[id].n;
    p.val.resize(p.off[n]);
    // The loads of different ids are independent: the processor overlaps their cache misses.
    for (std::size_t id = 0; id < n; ++id) {
      for (std::uint32_t t = 0; t < ranges[id].n; ++t) p.val[p.off[id] + t] = value(ranges[id].pos + t);
    }
    return p;
  }

  // queries: key << 32 | query id, ids below n (consumed: sorted in place). Returns, per id, the
  // range of values with that key (n = 0 for none, and for ids that asked nothing).
  std::vector<Range> lookup(std::vector<std::uint64_t>& queries, std::size_t n,
                            std::vector<std::uint64_t>* scratch = nullptr) const {
    std::vector<Range> out(n);
    sort_by_key(queries, scratch);
    std::size_t i = 0;
    std::uint32_t group_key = 0, group_pos = 0, group_n = 0;
    bool have_group = false;
    for (auto q : queries) {
      auto key = static_cast<std::uint32_t>(q >> 32);
      if (!have_group || key != group_key) {
        while (i < kv_.size() && static_cast<std::uint32_t>(kv_[i] >> 32) < key) ++i;
        std::size_t j = i;
        while (j < kv_.size() && static_cast<std::uint32_t>(kv_[j] >> 32) == key) ++j;
        group_key = key;
        group_pos = static_cast<std::uint32_t>(i);
        group_n = static_cast<std::uint32_t>(j - i);
        have_group = true;
        i = j;
      }
      out[static_cast<std::uint32_t>(q)] = Range{group_pos, group_n};
    }
    return out;
  }

 private:
  static constexpr std::size_t kFenceStride = 64;  // 512 bytes of entries per fence key

  std::vector<std::uint64_t> kv_;
  std::vector<std::uint32_t> fence_;  // keys of kv_[0], kv_[stride], kv_[2 * stride], ... (after seal)
};

}  // namespace tandem::correlate::detail
