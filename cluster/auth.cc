#include "cluster/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <stdexcept>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace gannet::cluster {
namespace {

std::string hmac(std::string_view secret, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t len = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret.data(), secret.size(),
                reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, sizeof out,
                &len) == nullptr) {
    return {};  // never equal to a real proof (32 bytes)
  }
  return std::string(reinterpret_cast<char*>(out), len);
}

void appendU32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

}  // namespace

std::string randomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    std::abort();  // no randomness: nothing safe to do
  }
  return out;
}

std::string linkProof(std::string_view secret, std::string_view label, std::string_view nonce,
                      uint32_t dialer_id, uint32_t acceptor_id) {
  std::string data(label);
  data.push_back('\0');
  data.append(nonce);
  appendU32(data, dialer_id);
  appendU32(data, acceptor_id);
  return hmac(secret, data);
}

bool proofsEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && !a.empty() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string adminToken(std::string_view secret, int64_t unix_ms) {
  const std::string ms = absl::StrCat(unix_ms);
  return absl::StrCat(ms, ":", absl::BytesToHexString(hmac(secret, absl::StrCat("admin:", ms))));
}

bool adminTokenValid(std::string_view secret, std::string_view token, int64_t now_unix_ms) {
  const size_t colon = token.find(':');
  if (colon == std::string_view::npos) return false;
  int64_t ms = 0;
  if (!absl::SimpleAtoi(std::string(token.substr(0, colon)), &ms)) return false;
  if (std::llabs(now_unix_ms - ms) > kAdminTokenWindowMs) return false;
  return proofsEqual(adminToken(secret, ms), token);
}

}  // namespace gannet::cluster
