#pragma once
// Authentication of cluster traffic with the shared --cluster_secret: HMAC-SHA256
// proofs over random challenges (the secret never crosses the wire), and
// time-stamped tokens for the admin API. OpenSSL underneath.

#include <cstdint>
#include <string>
#include <string_view>

namespace gannet::cluster {

// `n` cryptographically random bytes.
std::string randomBytes(size_t n);

// HMAC-SHA256(secret, label | 0 | nonce | dialer id | acceptor id), 32 bytes.
// `label` tells the two directions apart ("acceptor", "dialer").
std::string linkProof(std::string_view secret, std::string_view label, std::string_view nonce,
                      uint32_t dialer_id, uint32_t acceptor_id);

// Constant-time comparison of two proofs.
bool proofsEqual(std::string_view a, std::string_view b);

// Admin API token "<unix ms>:<hex HMAC(secret, "admin" | ms)>", valid for
// kAdminTokenWindowMs either side of the server's clock.
inline constexpr int64_t kAdminTokenWindowMs = 5 * 60 * 1000;
std::string adminToken(std::string_view secret, int64_t unix_ms);
bool adminTokenValid(std::string_view secret, std::string_view token, int64_t now_unix_ms);

}  // namespace gannet::cluster
