#include "cmd/gannetctl/passwd.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/strings.h"
#include "broker/auth/password_file.h"

namespace gannet::ctl {

absl::StatusOr<std::string> setUserLine(std::string_view text, std::string_view name,
                                        std::string_view user, std::string_view hash) {
  // The parser decides what a valid file is (one set of rules for gannet and
  // gannetctl); its error names the line.
  if (auto parsed = auth::PasswordFile::parse(text, name); !parsed.ok()) return parsed.status();
  const std::string line = absl::StrCat(base::toAbsl(user), ":", base::toAbsl(hash));
  std::vector<std::string> lines = absl::StrSplit(base::toAbsl(text), '\n');
  // "a\nb\n" splits into "a", "b", "": the last piece is what follows the final newline.
  const std::string prefix = absl::StrCat(base::toAbsl(user), ":");
  for (std::string& l : lines) {
    if (l.rfind(prefix, 0) == 0) {  // the parser allows the user once, so this is the one
      const bool crlf = !l.empty() && l.back() == '\r';
      l = crlf ? line + "\r" : line;
      return absl::StrJoin(lines, "\n");
    }
  }
  std::string out(text);
  if (!out.empty() && out.back() != '\n') out += '\n';
  return absl::StrCat(out, line, "\n");
}

namespace {

struct termios g_saved_termios;
volatile sig_atomic_t g_echo_off = 0;

// Ctrl-C at the prompt must not leave the terminal without echo.
void restoreEchoAndDie(int sig) {
  if (g_echo_off) tcsetattr(STDIN_FILENO, TCSANOW, &g_saved_termios);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

// One line from the terminal without echo; nullopt at end of input.
std::optional<std::string> promptNoEcho(const char* prompt) {
  struct termios t;
  const bool have_termios = tcgetattr(STDIN_FILENO, &t) == 0;
  if (have_termios) {
    g_saved_termios = t;
    std::signal(SIGINT, restoreEchoAndDie);
    std::signal(SIGTERM, restoreEchoAndDie);
    std::signal(SIGHUP, restoreEchoAndDie);
    t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    t.c_lflag |= ECHONL;
    g_echo_off = 1;
    tcsetattr(STDIN_FILENO, TCSANOW, &t);
  }
  // Echo is off before the prompt shows, so nothing typed after it is echoed.
  std::fputs(prompt, stderr);
  std::fflush(stderr);
  std::string line;
  const bool got = static_cast<bool>(std::getline(std::cin, line));
  if (have_termios) {
    tcsetattr(STDIN_FILENO, TCSANOW, &g_saved_termios);
    g_echo_off = 0;
  }
  if (!got) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

int fail(const std::string& message, int status = 1) {
  std::fprintf(stderr, "gannetctl passwd: %s\n", message.c_str());
  return status;
}

std::string errnoText(const std::string& what, const std::string& path) {
  return absl::StrCat(what, " ", path, ": ", std::strerror(errno));
}

// Writes `text` to `path` so that a crash leaves either the old or the new file,
// never a mix: a temp file in the same directory, fsync, rename over, fsync the
// directory. Keeps the mode (and, as root, the owner) of an existing file; a new
// file gets 0600, since it holds password hashes.
absl::Status writeAtomically(const std::string& path, const std::string& text,
                             const struct stat* existing) {
  const size_t slash = path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string tmp = absl::StrCat(dir, "/.", base, ".gannetctl-XXXXXX");
  const int fd = mkstemp(tmp.data());
  if (fd < 0) return absl::InternalError(errnoText("cannot create a temp file in", dir));
  auto cleanup = [&](const std::string& why) {
    const std::string message = errnoText(why, tmp);
    close(fd);
    unlink(tmp.c_str());
    return absl::InternalError(message);
  };
  const mode_t mode = existing != nullptr ? (existing->st_mode & 07777) : 0600;
  if (fchmod(fd, mode) != 0) return cleanup("cannot chmod");
  if (existing != nullptr && geteuid() == 0) {
    (void)!fchown(fd, existing->st_uid, existing->st_gid);  // best effort
  }
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return cleanup("cannot write");
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) return cleanup("cannot fsync");
  if (close(fd) != 0) {
    const std::string message = errnoText("cannot close", tmp);
    unlink(tmp.c_str());
    return absl::InternalError(message);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string message = errnoText(absl::StrCat("cannot rename ", tmp, " to"), path);
    unlink(tmp.c_str());
    return absl::InternalError(message);
  }
  // The rename is durable once the directory is.
  if (const int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY); dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return absl::OkStatus();
}

}  // namespace

int runPasswd(const std::string& file_arg, const std::string& user,
              std::optional<std::string> password) {
  if (const std::string why = auth::invalidUserName(user); !why.empty()) {
    return fail(absl::StrCat("cannot use user name '", user, "': ", why), 2);
  }
  // Edit the file a symlink points to, not the link.
  std::string file = file_arg;
  if (char resolved[PATH_MAX]; realpath(file_arg.c_str(), resolved) != nullptr) file = resolved;

  std::string text;
  struct stat st;
  const bool exists = stat(file.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) return fail(errnoText("cannot read", file_arg));
  if (exists) {
    if (!S_ISREG(st.st_mode)) return fail(absl::StrCat(file_arg, " is not a regular file"));
    FILE* in = std::fopen(file.c_str(), "rb");
    if (in == nullptr) return fail(errnoText("cannot read", file_arg));
    char buf[8192];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, in)) > 0;) text.append(buf, n);
    const bool bad = std::ferror(in) != 0;
    std::fclose(in);
    if (bad) return fail(errnoText("cannot read", file_arg));
  }
  // Check the file before asking for a password: a damaged one is refused either way.
  if (auto check = setUserLine(text, file_arg, user, "$7$1$AA==$AA=="); !check.ok()) {
    return fail(absl::StrCat(check.status().message(),
                             "; fix or remove that line first (the file is left as it is)"));
  }

  if (!password.has_value()) {
    if (isatty(STDIN_FILENO)) {
      auto first = promptNoEcho("Password: ");
      if (!first) return fail("no password given");
      auto second = promptNoEcho("Reenter password: ");
      if (!second) return fail("no password given");
      if (*first != *second) return fail("the passwords do not match; nothing was changed");
      password = std::move(*first);
    } else {
      std::string line;
      if (!std::getline(std::cin, line)) return fail("no password on stdin (expected one line)");
      if (!line.empty() && line.back() == '\r') line.pop_back();
      password = std::move(line);
    }
  }
  if (password->empty()) return fail("the password is empty", 2);

  auto hash = auth::hashPassword(*password);
  if (!hash.ok()) return fail(std::string(hash.status().message()));
  auto updated = setUserLine(text, file_arg, user, *hash);
  if (!updated.ok()) return fail(std::string(updated.status().message()));
  if (auto written = writeAtomically(file, *updated, exists ? &st : nullptr); !written.ok()) {
    return fail(std::string(written.message()));
  }
  // Replacing a line keeps the number of line breaks; appending one adds to it.
  const bool added = std::count(updated->begin(), updated->end(), '\n') !=
                     std::count(text.begin(), text.end(), '\n');
  std::printf("%s: %s user '%s'\n", file_arg.c_str(), added ? "added" : "updated", user.c_str());
  return 0;
}

}  // namespace gannet::ctl
