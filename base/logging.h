#pragma once
// Logging to stderr, one line per event, with levels. Only base/ includes spdlog:
// every other module gets its logger through base::logger("module").
//
//   base::logger("broker").info("client {} connected from {}", id, peer);
//
// No log line per message at the default level (info).

#include <string_view>

#include <spdlog/spdlog.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

// Debian's absl::string_view is its own type (not std::string_view): let log
// lines format it, e.g. status.message().
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(std::string_view(s.data(), s.size()), ctx);
  }
};

namespace gannet::base {

// The logger of one module, created on first use. Thread-safe.
spdlog::logger& logger(std::string_view module);

// Sets the level of every logger: trace, debug, info, warn, error, critical, off.
absl::Status setLogLevel(std::string_view level);

}  // namespace gannet::base
