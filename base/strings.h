#pragma once
// Debian's Abseil 20220623 is built with its own absl::string_view (not an alias
// of std::string_view). Gannet's APIs use std::string_view; these convert at the
// edges where Abseil functions are called.

#include <string_view>

#include "absl/strings/string_view.h"

namespace gannet::base {

inline absl::string_view toAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view toStd(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace gannet::base
