#include "wire/crc32c.h"

#include <array>
#include <cstddef>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace sluice::wire {

namespace {

constexpr uint32_t poly = 0x82F63B78;  // reflected Castagnoli polynomial

using byte_table = std::array<uint32_t, 256>;

// tables[0] is the classic byte-at-a-time table; tables[k][b] is the CRC contribution of byte b
// followed by k zero bytes, which lets eight bytes be folded with eight independent look-ups.
constexpr std::array<byte_table, 8> make_slicing_tables() {
  std::array<byte_table, 8> t{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t c = b;
    for (int bit = 0; bit < 8; ++bit)
      c = (c >> 1) ^ ((c & 1) ? poly : 0);
    t[0][b] = c;
  }
  for (size_t k = 1; k < 8; ++k) {
    for (uint32_t b = 0; b < 256; ++b)
      t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xff];
  }
  return t;
}

constexpr std::array<byte_table, 8> slicing = make_slicing_tables();

uint32_t load_le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

// Raw (no inversion) CRC register update, portable.
uint32_t portable_raw(uint32_t c, const uint8_t* p, size_t n) {
  while (n >= 8) {
    uint32_t lo = c ^ load_le32(p);
    c = slicing[7][lo & 0xff] ^ slicing[6][(lo >> 8) & 0xff] ^ slicing[5][(lo >> 16) & 0xff] ^
        slicing[4][lo >> 24] ^ slicing[3][p[4]] ^ slicing[2][p[5]] ^ slicing[1][p[6]] ^
        slicing[0][p[7]];
    p += 8;
    n -= 8;
  }
  while (n-- > 0)
    c = (c >> 8) ^ slicing[0][(c ^ *p++) & 0xff];
  return c;
}

#if defined(__x86_64__)

// The hardware path splits a long run into three adjacent blocks, runs the three CRCs in parallel
// and then merges them: crc(A || B) = shift_|B|(crc(A)) ^ crc(B) for the raw CRC register, where
// shift_n appends n zero bytes. shift_n is a linear map over GF(2), precomputed as four byte
// tables for the two block sizes used.
constexpr size_t long_block = 8192;
constexpr size_t short_block = 256;

using gf2_matrix = std::array<uint32_t, 32>;  // column i = image of bit i

uint32_t gf2_apply(const gf2_matrix& m, uint32_t v) {
  uint32_t r = 0;
  for (int i = 0; v != 0; ++i, v >>= 1) {
    if (v & 1) r ^= m[i];
  }
  return r;
}

gf2_matrix gf2_compose(const gf2_matrix& a, const gf2_matrix& b) {  // a after b
  gf2_matrix r{};
  for (int i = 0; i < 32; ++i)
    r[i] = gf2_apply(a, b[i]);
  return r;
}

struct shift_table {
  std::array<byte_table, 4> t{};

  explicit shift_table(size_t zero_bytes) {
    gf2_matrix one_bit{};  // the register update for one zero bit
    one_bit[0] = poly;
    for (int i = 1; i < 32; ++i)
      one_bit[i] = uint32_t{1} << (i - 1);
    gf2_matrix result{};
    for (int i = 0; i < 32; ++i)
      result[i] = uint32_t{1} << i;
    gf2_matrix power = one_bit;
    for (size_t bits = zero_bytes * 8; bits != 0; bits >>= 1) {
      if (bits & 1) result = gf2_compose(power, result);
      power = gf2_compose(power, power);
    }
    for (uint32_t b = 0; b < 256; ++b) {
      for (int k = 0; k < 4; ++k)
        t[k][b] = gf2_apply(result, b << (8 * k));
    }
  }

  uint32_t operator()(uint32_t c) const {
    return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
  }
};

uint64_t load_u64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Consumes whole groups of three `block`-byte blocks from the front of [p, p + n).
__attribute__((target("sse4.2"))) uint64_t three_way(uint64_t c0, const uint8_t*& p, size_t& n,
                                                     size_t block, const shift_table& shift) {
  while (n >= 3 * block) {
    uint64_t c1 = 0;
    uint64_t c2 = 0;
    const uint8_t* end = p + block;
    do {
      c0 = _mm_crc32_u64(c0, load_u64(p));
      c1 = _mm_crc32_u64(c1, load_u64(p + block));
      c2 = _mm_crc32_u64(c2, load_u64(p + 2 * block));
      p += 8;
    } while (p < end);
    c0 = shift(static_cast<uint32_t>(c0)) ^ c1;
    c0 = shift(static_cast<uint32_t>(c0)) ^ c2;
    p += 2 * block;
    n -= 3 * block;
  }
  return c0;
}

__attribute__((target("sse4.2"))) uint32_t hardware_raw(uint32_t crc, const uint8_t* p, size_t n) {
  static const shift_table shift_long(long_block);
  static const shift_table shift_short(short_block);

  uint64_t c0 = crc;
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    c0 = _mm_crc32_u8(static_cast<uint32_t>(c0), *p++);
    --n;
  }
  c0 = three_way(c0, p, n, long_block, shift_long);
  c0 = three_way(c0, p, n, short_block, shift_short);
  while (n >= 8) {
    c0 = _mm_crc32_u64(c0, load_u64(p));
    p += 8;
    n -= 8;
  }
  while (n-- > 0)
    c0 = _mm_crc32_u8(static_cast<uint32_t>(c0), *p++);
  return static_cast<uint32_t>(c0);
}

#endif

}  // namespace

uint32_t crc32c_portable(uint32_t crc, std::span<const uint8_t> data) {
  return ~portable_raw(~crc, data.data(), data.size());
}

bool crc32c_hardware_available() {
#if defined(__x86_64__)
  // __builtin_cpu_init makes the check valid even if the first CRC is computed during static
  // initialisation, before libgcc has probed the CPU.
  static const bool available = (__builtin_cpu_init(), __builtin_cpu_supports("sse4.2"));
  return available;
#else
  return false;
#endif
}

uint32_t crc32c_hardware(uint32_t crc, std::span<const uint8_t> data) {
#if defined(__x86_64__)
  return ~hardware_raw(~crc, data.data(), data.size());
#else
  return crc32c_portable(crc, data);
#endif
}

uint32_t crc32c(uint32_t crc, std::span<const uint8_t> data) {
  return crc32c_hardware_available() ? crc32c_hardware(crc, data) : crc32c_portable(crc, data);
}

}  // namespace sluice::wire
