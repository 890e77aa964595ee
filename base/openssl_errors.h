#pragma once
// OpenSSL's thread-local error queue as one line of text, for logs and error
// messages. Header-only: the code that includes it links OpenSSL's libcrypto.

#include <openssl/err.h>

#include <string>

namespace gannet::base {

// Every queued OpenSSL error, "; "-separated (and clears the queue).
inline std::string openSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown error" : out;
}

}  // namespace gannet::base
