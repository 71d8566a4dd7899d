#pragma once
// Outgoing bytes as a list of parts: runs of bytes the encoder wrote, and file slices that the
// network layer sends with sendfile(2). This is the zero-copy contract between the codec and the
// socket: record data served from segment files is never copied into `bytes`.

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace sluice::wire {

// A byte range of an open file. `keep_alive` pins whatever owns `fd` (a segment) until the slice
// has been sent, so retention or truncation cannot close the descriptor under a pending sendfile.
struct file_slice {
  int fd = -1;
  int64_t position = 0;
  int64_t length = 0;
  std::shared_ptr<const void> keep_alive;
};

// An encoded message. Parts are in wire order; a byte part refers to [offset, offset+length) of
// `bytes` (offsets, not pointers, because `bytes` grows while encoding).
struct frame {
  struct part {
    bool is_slice;
    size_t index;  // byte offset into `bytes`, or index into `slices`
    size_t length;
  };
  std::vector<uint8_t> bytes;
  std::vector<file_slice> slices;
  std::vector<part> parts;

  int64_t total_size() const {
    int64_t n = 0;
    for (const part& p : parts)
      n += static_cast<int64_t>(p.length);
    return n;
  }
  void clear() {
    bytes.clear();
    slices.clear();
    parts.clear();
  }
};

}  // namespace sluice::wire
