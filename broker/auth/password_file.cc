#include "broker/auth/password_file.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/strings.h"

namespace gannet::auth {

namespace {

absl::Status lineError(std::string_view name, int line, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(base::toAbsl(name), " line ", line, ": ", base::toAbsl(why)));
}

}  // namespace

absl::StatusOr<std::shared_ptr<const PasswordFile>> PasswordFile::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read password file ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

absl::StatusOr<std::shared_ptr<const PasswordFile>> PasswordFile::parse(std::string_view text,
                                                                        std::string_view name) {
  auto file = std::make_shared<PasswordFile>();
  int number = 0;
  for (absl::string_view raw : absl::StrSplit(base::toAbsl(text), '\n')) {
    ++number;
    std::string line(raw);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos || colon == 0) {
      return lineError(name, number, "expected USER:$7$... or USER:$6$... (mosquitto_passwd)");
    }
    const std::string user = line.substr(0, colon);
    std::vector<std::string> parts = absl::StrSplit(line.substr(colon + 1), '$');
    // "$7$iter$salt$hash" splits into "", "7", iter, salt, hash.
    Entry e;
    size_t salt_at = 0;
    if (parts.size() == 5 && parts[0].empty() && parts[1] == "7") {
      e.kind = Entry::Kind::kPbkdf2Sha512;
      if (!absl::SimpleAtoi(parts[2], &e.iterations) || e.iterations < 1) {
        return lineError(name, number, "bad iteration count");
      }
      salt_at = 3;
    } else if (parts.size() == 4 && parts[0].empty() && parts[1] == "6") {
      e.kind = Entry::Kind::kSha512;
      salt_at = 2;
    } else {
      return lineError(name, number,
                       absl::StrCat("user '", user, "': the password is not a $7$ (PBKDF2-SHA512) "
                                    "or $6$ (SHA-512) hash; plain text passwords must be hashed "
                                    "first (mosquitto_passwd -U FILE, or gannetctl passwd)"));
    }
    if (!absl::Base64Unescape(parts[salt_at], &e.salt) || e.salt.empty() ||
        !absl::Base64Unescape(parts[salt_at + 1], &e.hash) || e.hash.size() != 64) {
      return lineError(name, number, absl::StrCat("user '", user, "': bad salt or hash"));
    }
    if (!file->users_.emplace(user, std::move(e)).second) {
      return lineError(name, number, absl::StrCat("user '", user, "' appears twice"));
    }
  }
  return std::shared_ptr<const PasswordFile>(std::move(file));
}

bool PasswordFile::check(std::string_view user, std::string_view password) const {
  auto it = users_.find(base::toAbsl(user));
  if (it == users_.end()) return false;
  const Entry& e = it->second;
  unsigned char out[64];
  if (e.kind == Entry::Kind::kPbkdf2Sha512) {
    if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                          reinterpret_cast<const unsigned char*>(e.salt.data()),
                          static_cast<int>(e.salt.size()), e.iterations, EVP_sha512(),
                          sizeof out, out) != 1) {
      return false;
    }
  } else {
    // Mosquitto's "$6$": SHA-512 over the password, then the salt.
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    unsigned int len = 0;
    const bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha512(), nullptr) == 1 &&
                    EVP_DigestUpdate(ctx, password.data(), password.size()) == 1 &&
                    EVP_DigestUpdate(ctx, e.salt.data(), e.salt.size()) == 1 &&
                    EVP_DigestFinal_ex(ctx, out, &len) == 1 && len == sizeof out;
    EVP_MD_CTX_free(ctx);
    if (!ok) return false;
  }
  return CRYPTO_memcmp(out, e.hash.data(), sizeof out) == 0;
}

absl::StatusOr<std::string> hashPasswordWithSalt(std::string_view password, std::string_view salt,
                                                 int iterations) {
  unsigned char out[64];
  if (salt.empty() || iterations < 1 ||
      PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), iterations, EVP_sha512(), sizeof out,
                        out) != 1) {
    return absl::InternalError("PBKDF2-HMAC-SHA512 failed");
  }
  // Standard base64 with padding and no line breaks, as mosquitto_passwd writes.
  return absl::StrCat(
      "$7$", iterations, "$", absl::Base64Escape(base::toAbsl(salt)), "$",
      absl::Base64Escape(absl::string_view(reinterpret_cast<char*>(out), sizeof out)));
}

absl::StatusOr<std::string> hashPassword(std::string_view password) {
  unsigned char salt[kSaltLength];
  if (RAND_bytes(salt, sizeof salt) != 1) {
    return absl::InternalError("no random bytes for the salt (RAND_bytes failed)");
  }
  return hashPasswordWithSalt(password,
                              std::string_view(reinterpret_cast<char*>(salt), sizeof salt));
}

std::string invalidUserName(std::string_view user) {
  if (user.empty()) return "the user name is empty";
  if (user.find(':') != std::string_view::npos) {
    return "the user name contains ':', which separates the user from the hash in the file";
  }
  if (user.find_first_of("\r\n") != std::string_view::npos) {
    return "the user name contains a line break";
  }
  if (user[0] == '#') return "a user name starting with '#' would be read as a comment";
  return "";
}

}  // namespace gannet::auth
