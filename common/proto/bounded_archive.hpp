// PRIVATE to common/proto (included only by proto's .cpp files; Cereal never leaks into a public
// header). A Cereal input archive that reads the portable-binary format from a bounded in-memory
// buffer and refuses every declared size that exceeds the bytes left, before anything is resized.
//
// Why our own archive: Cereal's PortableBinaryInputArchive reads a size tag and resizes the
// container before reading any payload, so 9 bytes can claim 800 MiB (reliability anchors §2.2, T7).
// Cereal lets an archive supply its own SizeTag loader; ours checks it. Per-field maxima are checked
// by the field wrappers in wire.cpp, which load the size themselves and check it before resizing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>

#include <cereal/cereal.hpp>

#include "common/proto/wire.hpp"

namespace tandem::proto::detail {

// Thrown inside the codec only; decode() catches it and returns it as a WireError. Never escapes.
struct WireFailure {
  WireErrc code;
  std::string detail;
};

class BoundedInputArchive : public cereal::InputArchive<BoundedInputArchive, cereal::AllowEmptyClassElision> {
 public:
  // Reads the endianness byte Cereal's PortableBinaryOutputArchive writes first.
  explicit BoundedInputArchive(std::span<const std::uint8_t> in)
      : cereal::InputArchive<BoundedInputArchive, cereal::AllowEmptyClassElision>(this), in_(in) {
    std::uint8_t little = 0;
    read_raw(&little, 1);
    if (little > 1) throw WireFailure{WireErrc::bad_endianness, "endianness byte " + std::to_string(little)};
    swap_ = (little == 1) != host_is_little();
  }

  std::size_t remaining() const { return in_.size() - pos_; }

  void read_raw(void* out, std::size_t n) {
    if (n > remaining())
      throw WireFailure{WireErrc::truncated, "need " + std::to_string(n) + " bytes, " +
                                                 std::to_string(remaining()) + " left"};
    if (n == 0) return;  // an empty field's buffer may be nullptr: memcpy(nullptr, _, 0) is UB (found by fuzz_wire)
    std::memcpy(out, in_.data() + pos_, n);
    pos_ += n;
  }

  template <class T>
  void read_value(T& t) {
    static_assert(std::is_integral_v<T>, "the wire carries integers only (no floating point)");
    std::uint8_t buf[sizeof(T)];
    read_raw(buf, sizeof(T));
    if (swap_) {
      for (std::size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(buf[i], buf[sizeof(T) - 1 - i]);
    }
    std::memcpy(&t, buf, sizeof(T));
  }

  // A declared element count: every element costs at least one byte, so a count above the bytes
  // left is a lie whatever the element type. Checked before the caller allocates.
  std::uint64_t read_size() {
    std::uint64_t n = 0;
    read_value(n);
    if (n > remaining())
      throw WireFailure{WireErrc::length_exceeds_input,
                        "declared length " + std::to_string(n) + " > " + std::to_string(remaining()) + " bytes left"};
    return n;
  }

 private:
  static bool host_is_little() {
    const std::uint16_t probe = 1;
    std::uint8_t first = 0;
    std::memcpy(&first, &probe, 1);
    return first == 1;
  }

  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
  bool swap_ = false;
};

// Integers only: bool is not arithmetic-loaded raw (a byte of 2 in a bool is UB); wire.cpp wraps bools.
template <class T>
std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>
CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, T& t) {
  ar.read_value(t);
}

template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(BoundedInputArchive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}

// Any Cereal container loader that reaches us goes through the checked size.
template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(BoundedInputArchive& ar, cereal::SizeTag<T>& t) {
  t.size = static_cast<std::remove_reference_t<decltype(t.size)>>(ar.read_size());
}

}  // namespace tandem::proto::detail
