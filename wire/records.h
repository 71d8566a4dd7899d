#pragma once
// The `records` field of Produce and Fetch.
//
// Decoded, it is a mutable view into the request buffer: the broker validates the batch there and
// stamps BaseOffset and PartitionLeaderEpoch in place before writing it to the log, so produce
// never copies record data in user space. Encoded, it is inline bytes followed by file slices,
// which the writer turns into frame parts without touching their contents.

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "wire/frame.h"

namespace sluice::wire {

struct records {
  bool null = false;
  std::span<uint8_t> bytes;
  std::vector<file_slice> slices;

  int64_t size() const {
    int64_t n = static_cast<int64_t>(bytes.size());
    for (const file_slice& s : slices)
      n += s.length;
    return n;
  }
  bool operator==(const records& o) const {
    if (null != o.null || slices.size() != o.slices.size()) return false;
    if (!std::equal(bytes.begin(), bytes.end(), o.bytes.begin(), o.bytes.end())) return false;
    for (size_t i = 0; i < slices.size(); ++i) {
      if (slices[i].fd != o.slices[i].fd || slices[i].position != o.slices[i].position ||
          slices[i].length != o.slices[i].length)
        return false;
    }
    return true;
  }
};

}  // namespace sluice::wire
