#pragma once
// CRC-32C (Castagnoli), the checksum of journal frames. Uses the SSE 4.2 crc32
// instruction when the CPU has it (checked once at startup), a table otherwise.
// Debian's RocksDB is built for any x86-64 and checksums its WAL in software
// (~1 GB/s); this runs at memory speed, which matters on the QoS >= 1 path.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace gannet::storage {

// CRC-32C of `data`, continuing from `crc` (0 to start).
uint32_t crc32c(std::string_view data, uint32_t crc = 0);

// Whether crc32c() uses the CPU instruction (for the startup log).
bool crc32cHardware();

}  // namespace gannet::storage
