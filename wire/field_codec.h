#pragma once
// Field-level building blocks for the generated codec (wire/generated/*.cc); handlers never call
// them. One overload set per operation, selected by the member's C++ type:
//
//   read_field(reader&, version, compact, T&)        write_field(writer&, version, compact, const
//   T&) field_size(version, compact, const T&)
//
// so each generated field is a single line and the per-type logic lives here once instead of
// being inlined into ~80 generated files. `compact` says whether the field uses the flexible
// (unsigned-varint length) form. Generated code adds overloads for its own structs (static, in
// this namespace); the array templates below reach them through argument-dependent lookup, which
// is why everything here lives in sluice::wire and not in a detail namespace.
//
// Nullable fields are std::optional and go through the read_nullable* / write_nullable* family,
// which also take whether null is legal at the version: reading null where it is not is a decode
// failure; writing null where it is not writes the empty value, because the writer has no error
// channel and an empty string or array is what a client would get from Kafka's default.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "wire/codec.h"

namespace sluice::wire {

// ---- decode ------------------------------------------------------------------------------------

inline void read_field(reader& r, int16_t, bool, bool& x) {
  x = r.boolean();
}
inline void read_field(reader& r, int16_t, bool, int8_t& x) {
  x = r.i8();
}
inline void read_field(reader& r, int16_t, bool, int16_t& x) {
  x = r.i16();
}
inline void read_field(reader& r, int16_t, bool, uint16_t& x) {
  x = r.u16();
}
inline void read_field(reader& r, int16_t, bool, int32_t& x) {
  x = r.i32();
}
inline void read_field(reader& r, int16_t, bool, uint32_t& x) {
  x = r.u32();
}
inline void read_field(reader& r, int16_t, bool, int64_t& x) {
  x = r.i64();
}
inline void read_field(reader& r, int16_t, bool, double& x) {
  x = r.f64();
}
inline void read_field(reader& r, int16_t, bool, uuid& x) {
  x = r.uuid();
}
inline void read_field(reader& r, int16_t, bool compact, std::string& x) {
  x = r.string(compact);
}
inline void read_field(reader& r, int16_t, bool compact, std::vector<uint8_t>& x) {
  x = r.bytes(compact);
}
inline void read_field(reader& r, int16_t, bool compact, records& x) {
  x = r.records(compact);
}

inline void read_nullable(reader& r, bool compact, bool nullable, std::optional<std::string>& x) {
  if (nullable) {
    x = r.nullable_string(compact);
  } else {
    x = r.string(compact);
  }
}

inline void read_nullable(reader& r, bool compact, bool nullable,
                          std::optional<std::vector<uint8_t>>& x) {
  if (nullable) {
    x = r.nullable_bytes(compact);
  } else {
    x = r.bytes(compact);
  }
}

// Reads `n` elements. Elements are appended one by one rather than resized up front: n is already
// bounded by the remaining bytes, and garbage input then stops at the first bad element.
template <class T>
void read_elements(reader& r, int16_t v, bool compact, int32_t n, std::vector<T>& x) {
  x.clear();
  x.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n && r.ok(); ++i)
    read_field(r, v, compact, x.emplace_back());
}

template <class T>
void read_array(reader& r, int16_t v, bool compact, size_t min_element_size, std::vector<T>& x) {
  int32_t n = r.array_length(compact, min_element_size);
  if (n < 0) {
    r.fail();  // null where the schema does not allow it
    x.clear();
    return;
  }
  read_elements(r, v, compact, n, x);
}

template <class T>
void read_nullable_array(reader& r, int16_t v, bool compact, bool nullable, size_t min_element_size,
                         std::optional<std::vector<T>>& x) {
  int32_t n = r.array_length(compact, min_element_size);
  if (n < 0) {
    if (!nullable) r.fail();
    x.reset();
    return;
  }
  read_elements(r, v, compact, n, x.emplace());
}

// A nullable struct is preceded by an int8 marker: -1 null, 1 present (Kafka's generator, KIP-893).
template <class T>
void read_nullable_struct(reader& r, int16_t v, bool nullable, std::optional<T>& x) {
  if (nullable && r.i8() < 0) {
    x.reset();
    return;
  }
  // Assigned rather than emplace()d: clang 14 caches is_constructible<T>() as false for a struct
  // nested in the message struct when the message declares std::optional<T> before it is
  // complete (a struct with default member initializers), and emplace() then fails to compile.
  x = T{};
  read_field(r, v, false, *x);
}

// In a tag section the marker is an unsigned varint instead: 0 null, 1 present.
template <class T>
void read_nullable_tagged_struct(reader& r, int16_t v, bool nullable, std::optional<T>& x) {
  if (nullable && r.uvarint() == 0) {
    x.reset();
    return;
  }
  x = T{};  // see read_nullable_struct
  read_field(r, v, true, *x);
}

// Tag-section callback for structs without known tagged fields: every entry is kept as unknown.
inline bool no_known_tags(uint32_t, reader&) {
  return false;
}

// ---- encode ------------------------------------------------------------------------------------

inline void write_field(writer& w, int16_t, bool, bool x) {
  w.boolean(x);
}
inline void write_field(writer& w, int16_t, bool, int8_t x) {
  w.i8(x);
}
inline void write_field(writer& w, int16_t, bool, int16_t x) {
  w.i16(x);
}
inline void write_field(writer& w, int16_t, bool, uint16_t x) {
  w.u16(x);
}
inline void write_field(writer& w, int16_t, bool, int32_t x) {
  w.i32(x);
}
inline void write_field(writer& w, int16_t, bool, uint32_t x) {
  w.u32(x);
}
inline void write_field(writer& w, int16_t, bool, int64_t x) {
  w.i64(x);
}
inline void write_field(writer& w, int16_t, bool, double x) {
  w.f64(x);
}
inline void write_field(writer& w, int16_t, bool, const uuid& x) {
  w.uuid(x);
}
inline void write_field(writer& w, int16_t, bool compact, const std::string& x) {
  w.string(x, compact);
}
inline void write_field(writer& w, int16_t, bool compact, const std::vector<uint8_t>& x) {
  w.bytes(x, compact);
}
inline void write_field(writer& w, int16_t, bool compact, const records& x) {
  w.records(x, compact);
}

inline void write_nullable(writer& w, bool compact, bool nullable,
                           const std::optional<std::string>& x) {
  if (x || nullable) return w.nullable_string(x, compact);
  w.string({}, compact);
}

inline void write_nullable(writer& w, bool compact, bool nullable,
                           const std::optional<std::vector<uint8_t>>& x) {
  if (x || nullable) return w.nullable_bytes(x, compact);
  w.bytes({}, compact);
}

template <class T>
void write_elements(writer& w, int16_t v, bool compact, const std::vector<T>& x) {
  for (const T& e : x)
    write_field(w, v, compact, e);
}

template <class T>
void write_array(writer& w, int16_t v, bool compact, const std::vector<T>& x) {
  w.array_length(static_cast<int32_t>(x.size()), compact);
  write_elements(w, v, compact, x);
}

template <class T>
void write_nullable_array(writer& w, int16_t v, bool compact, bool nullable,
                          const std::optional<std::vector<T>>& x) {
  if (!x && nullable) return w.array_length(-1, compact);
  if (!x) return w.array_length(0, compact);
  write_array(w, v, compact, *x);
}

template <class T>
void write_nullable_struct(writer& w, int16_t v, bool nullable, const std::optional<T>& x) {
  if (nullable) w.i8(x ? 1 : -1);
  if (x) {
    write_field(w, v, false, *x);
  } else if (!nullable) {
    write_field(w, v, false, T{});
  }
}

template <class T>
void write_nullable_tagged_struct(writer& w, int16_t v, bool nullable, const std::optional<T>& x) {
  if (nullable) w.uvarint(x ? 1 : 0);
  if (x) {
    write_field(w, v, true, *x);
  } else if (!nullable) {
    write_field(w, v, true, T{});
  }
}

// Writes a tag section whose known entries the generated code writes in place: the caller
// passes the number of known entries it will write, then for each one, in ascending tag order,
// calls known(tag, body_size) and writes the body with the writer. Unknown entries are merged in
// so that the whole section is in ascending tag order. Body sizes come from the exact size
// functions, so no entry is encoded twice and no temporary buffer is needed.
class tag_writer {
 public:
  tag_writer(writer& w, const std::vector<raw_tagged_field>& unknown, uint32_t known_count)
      : w_(w) {
    w_.uvarint(known_count + static_cast<uint32_t>(unknown.size()));
    if (unknown.empty()) return;
    unknown_.reserve(unknown.size());
    for (const raw_tagged_field& f : unknown)
      unknown_.push_back(&f);
    auto by_tag = [](const raw_tagged_field* a, const raw_tagged_field* b) {
      return a->tag < b->tag;
    };
    // Decoded entries are already in order; stable so that repeated tags keep theirs.
    if (!std::is_sorted(unknown_.begin(), unknown_.end(), by_tag)) {
      std::stable_sort(unknown_.begin(), unknown_.end(), by_tag);
    }
  }
  tag_writer(const tag_writer&) = delete;
  tag_writer& operator=(const tag_writer&) = delete;

  void known(uint32_t tag, int64_t body_size) {
    flush_below(tag);
    w_.uvarint(tag);
    w_.uvarint(static_cast<uint32_t>(body_size));
  }
  // One past the largest tag: an unknown entry may carry tag UINT32_MAX, and the count written
  // up front includes it.
  void finish() { flush_below(uint64_t{UINT32_MAX} + 1); }

 private:
  void flush_below(uint64_t tag) {
    for (; next_ < unknown_.size() && unknown_[next_]->tag < tag; ++next_) {
      w_.uvarint(unknown_[next_]->tag);
      w_.uvarint(static_cast<uint32_t>(unknown_[next_]->data.size()));
      w_.raw(unknown_[next_]->data);
    }
  }

  writer& w_;
  std::vector<const raw_tagged_field*> unknown_;
  size_t next_ = 0;
};

// The tag section of a struct without known tagged fields.
inline void write_unknown_tags(writer& w, const std::vector<raw_tagged_field>& unknown) {
  tag_writer(w, unknown, 0).finish();
}

// ---- size --------------------------------------------------------------------------------------

inline int64_t field_size(int16_t, bool, bool) {
  return 1;
}
inline int64_t field_size(int16_t, bool, int8_t) {
  return 1;
}
inline int64_t field_size(int16_t, bool, int16_t) {
  return 2;
}
inline int64_t field_size(int16_t, bool, uint16_t) {
  return 2;
}
inline int64_t field_size(int16_t, bool, int32_t) {
  return 4;
}
inline int64_t field_size(int16_t, bool, uint32_t) {
  return 4;
}
inline int64_t field_size(int16_t, bool, int64_t) {
  return 8;
}
inline int64_t field_size(int16_t, bool, double) {
  return 8;
}
inline int64_t field_size(int16_t, bool, const uuid&) {
  return 16;
}
inline int64_t field_size(int16_t, bool compact, const std::string& x) {
  auto n = static_cast<int64_t>(x.size());
  return length_prefix_size(n, compact, false) + n;
}
inline int64_t field_size(int16_t, bool compact, const std::vector<uint8_t>& x) {
  auto n = static_cast<int64_t>(x.size());
  return length_prefix_size(n, compact, true) + n;
}
inline int64_t field_size(int16_t, bool compact, const records& x) {
  if (x.null) return length_prefix_size(-1, compact, true);
  return length_prefix_size(x.size(), compact, true) + x.size();
}

inline int64_t nullable_size(bool compact, bool nullable, const std::optional<std::string>& x) {
  if (x) return field_size(0, compact, *x);
  return length_prefix_size(nullable ? -1 : 0, compact, false);
}

inline int64_t nullable_size(bool compact, bool nullable,
                             const std::optional<std::vector<uint8_t>>& x) {
  if (x) return field_size(0, compact, *x);
  return length_prefix_size(nullable ? -1 : 0, compact, true);
}

template <class T>
int64_t array_size(int16_t v, bool compact, const std::vector<T>& x) {
  int64_t n = length_prefix_size(static_cast<int64_t>(x.size()), compact, true);
  for (const T& e : x)
    n += field_size(v, compact, e);
  return n;
}

template <class T>
int64_t nullable_array_size(int16_t v, bool compact, bool nullable,
                            const std::optional<std::vector<T>>& x) {
  if (x) return array_size(v, compact, *x);
  return length_prefix_size(nullable ? -1 : 0, compact, true);
}

template <class T>
int64_t nullable_struct_size(int16_t v, bool nullable, const std::optional<T>& x) {
  int64_t marker = nullable ? 1 : 0;
  if (x) return marker + field_size(v, false, *x);
  return nullable ? marker : field_size(v, false, T{});
}

template <class T>
int64_t nullable_tagged_struct_size(int16_t v, bool nullable, const std::optional<T>& x) {
  int64_t marker = nullable ? 1 : 0;
  if (x) return marker + field_size(v, true, *x);
  return nullable ? marker : field_size(v, true, T{});
}

// One tag-section entry: tag, body length, body.
constexpr int64_t tag_entry_size(uint32_t tag, int64_t body_size) {
  return uvarint_size(tag) + uvarint_size(static_cast<uint64_t>(body_size)) + body_size;
}

// A whole tag section: the count, the known entries (already summed by the caller) and the
// unknown ones.
inline int64_t tag_section_size(const std::vector<raw_tagged_field>& unknown, int64_t known_count,
                                int64_t known_bytes) {
  int64_t n = known_bytes;
  for (const raw_tagged_field& f : unknown) {
    n += tag_entry_size(f.tag, static_cast<int64_t>(f.data.size()));
  }
  return n + uvarint_size(static_cast<uint64_t>(known_count) + unknown.size());
}

}  // namespace sluice::wire
