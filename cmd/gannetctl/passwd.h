#pragma once
// `gannetctl passwd FILE USER [PASSWORD]`: adds or updates USER in a
// Mosquitto-format password file (broker/auth/password_file.h) with a "$7$" line,
// the way `mosquitto_passwd FILE USER` does, so gannet and Mosquitto both accept
// the result.

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace gannet::ctl {

// The text of a password file with `user`'s line set to "USER:HASH": the line
// that names `user` is replaced in place, or a line is appended. Every other
// line (comments, blank lines, other users, '\r\n' endings) is kept byte for
// byte. Fails with the line named when `text` is not a file gannet's parser
// accepts, so that a damaged file is never silently rewritten.
absl::StatusOr<std::string> setUserLine(std::string_view text, std::string_view name,
                                        std::string_view user, std::string_view hash);

// Runs the command; returns the exit status (0 done, 1 error, 2 usage). Without
// `password`, prompts twice without echo on a terminal, or reads one line from
// stdin when it is not a terminal.
int runPasswd(const std::string& file, const std::string& user,
              std::optional<std::string> password);

}  // namespace gannet::ctl
