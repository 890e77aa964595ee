#pragma once
// PasswordFile: the users allowed to connect, read from a file in Mosquitto's
// format (docs/security.md), so that a Mosquitto user's existing file works
// unchanged:
//
//   USER:$7$ITERATIONS$SALT$HASH   PBKDF2-HMAC-SHA512 (mosquitto_passwd's default)
//   USER:$6$SALT$HASH              SHA-512 of password + salt (mosquitto_passwd -H sha512)
//
// SALT and HASH in base64. Blank lines and lines starting with '#' are skipped.
// Anything else is an error naming the line (never a crash, never a silently
// skipped user).
//
// Immutable once loaded: shared by every worker thread (a reload builds a new one).

#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace gannet::auth {

class PasswordFile {
 public:
  static absl::StatusOr<std::shared_ptr<const PasswordFile>> load(const std::string& path);
  // Parses the text of a password file; `name` is used in errors.
  static absl::StatusOr<std::shared_ptr<const PasswordFile>> parse(std::string_view text,
                                                                   std::string_view name);

  // True when `user` is in the file and `password` is its password.
  bool check(std::string_view user, std::string_view password) const;
  size_t size() const { return users_.size(); }

 private:
  struct Entry {
    enum class Kind { kSha512, kPbkdf2Sha512 } kind;
    int iterations = 0;
    std::string salt;
    std::string hash;
  };
  absl::flat_hash_map<std::string, Entry> users_;
};

// mosquitto_passwd 2.0's defaults for new "$7$" lines (src/password_mosq.c:
// PW_DEFAULT_ITERATIONS 101, SALT_LEN 12).
inline constexpr int kPbkdf2Iterations = 101;
inline constexpr size_t kSaltLength = 12;

// The "$7$ITERATIONS$SALT$HASH" text of `password` (what follows "USER:" on a
// line), with a fresh random salt from RAND_bytes. Fails only when OpenSSL does.
absl::StatusOr<std::string> hashPassword(std::string_view password);
// The same with the salt and iteration count given (tests: known answers).
absl::StatusOr<std::string> hashPasswordWithSalt(std::string_view password, std::string_view salt,
                                                 int iterations = kPbkdf2Iterations);

// Why `user` cannot be written to a password file ("" when it can): empty, or
// holding ':' (the separator), a line break, or a leading '#' (a comment).
std::string invalidUserName(std::string_view user);

}  // namespace gannet::auth
