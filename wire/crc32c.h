#pragma once
// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum of RecordBatch v2, over
// bytes 21..end of a batch.
//
// Every batch is checksummed once on produce and once per batch during crash recovery, so this is
// on the hot path. On x86-64 CPUs with SSE4.2 the hardware CRC32 instruction is used, three
// independent streams at a time to hide its three-cycle latency; elsewhere a portable
// slicing-by-8 table version. The choice is made once, at first use, from the running CPU.
//
// Threading: pure functions; the tables are immutable after (thread-safe) static initialisation.

#include <cstdint>
#include <span>

namespace sluice::wire {

// Extends the CRC-32C `crc` of some preceding bytes over `data`; pass 0 to start. The usual pre-
// and post-inversion is done inside, so crc32c(crc32c(0, a), b) == crc32c(0, a || b) and
// crc32c(0, "123456789") == 0xE3069283.
uint32_t crc32c(uint32_t crc, std::span<const uint8_t> data);

// The two implementations behind crc32c(), same contract; exposed so tests can compare them.
uint32_t crc32c_portable(uint32_t crc, std::span<const uint8_t> data);
// True when crc32c_hardware() may be called on this CPU.
bool crc32c_hardware_available();
// Precondition: crc32c_hardware_available().
uint32_t crc32c_hardware(uint32_t crc, std::span<const uint8_t> data);

}  // namespace sluice::wire
