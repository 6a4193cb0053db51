// Global operator new/delete replacement for the proto test binary (see alloc_probe.hpp).
#include "tests/unit/proto/alloc_probe.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<bool> g_tracking{false};
std::atomic<std::size_t> g_largest{0};

void note(std::size_t n) {
  if (!g_tracking.load(std::memory_order_relaxed)) return;
  std::size_t cur = g_largest.load(std::memory_order_relaxed);
  while (n > cur && !g_largest.compare_exchange_weak(cur, n)) {
  }
}
}  // namespace

namespace tandem::proto::testing {
void alloc_probe_start() {
  g_largest = 0;
  g_tracking = true;
}
std::size_t alloc_probe_stop() {
  g_tracking = false;
  return g_largest.load();
}
std::size_t AllocScope::largest() const { return g_largest.load(); }
}  // namespace tandem::proto::testing

// malloc/free underneath so that the sanitizers still see every allocation.
void* operator new(std::size_t n) {
  note(n);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  note(n);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
