#include "wire/tests/allocation_counter.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <new>
#include <vector>

// Replacing the global operator new is the only portable hook into every allocation. It forwards
// to malloc, so ASan still sees and checks each one. Single-threaded use only, like the tests.
namespace {
bool counting = false;
size_t largest_seen = 0;
}  // namespace

namespace {
void* counted_malloc(size_t n) noexcept {
  if (counting && n > largest_seen) largest_seen = n;
  return std::malloc(n == 0 ? 1 : n);
}
void* counted_new(size_t n) {
  if (void* p = counted_malloc(n)) return p;
  throw std::bad_alloc();
}
}  // namespace

// Every non-aligned form is replaced, so that each new pairs with a delete of this file (ASan
// checks the pairing); the aligned forms keep the library's matching pair.
void* operator new(size_t n) {
  return counted_new(n);
}
void* operator new[](size_t n) {
  return counted_new(n);
}
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  return counted_malloc(n);
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  return counted_malloc(n);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}

namespace sluice::wire::testing {

allocation_counter::allocation_counter() {
  largest_seen = 0;
  counting = true;
}
allocation_counter::~allocation_counter() {
  counting = false;
}
size_t allocation_counter::largest() const {
  return largest_seen;
}

namespace {

TEST(allocation_counter, sees_vector_allocations) {
  allocation_counter counter;
  std::vector<char> v;
  v.reserve(5000);
  EXPECT_GE(counter.largest(), 5000u);
}

}  // namespace
}  // namespace sluice::wire::testing
