#pragma once
// Records the largest single allocation made through operator new while an allocation_counter is
// alive, to prove that decoders reject absurd lengths before reserving memory for them. The
// replacement operator new lives in allocation_counter_test.cc, apart from its callers, so that
// the compiler does not pair inlined new/delete bodies across the malloc boundary.

#include <cstddef>

namespace sluice::wire::testing {

class allocation_counter {
 public:
  allocation_counter();
  ~allocation_counter();
  allocation_counter(const allocation_counter&) = delete;
  allocation_counter& operator=(const allocation_counter&) = delete;

  size_t largest() const;
};

}  // namespace sluice::wire::testing
