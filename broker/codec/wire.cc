#include "broker/codec/wire.h"

#include "absl/strings/str_cat.h"
#include "broker/codec/errors.h"

namespace gannet::codec::wire {

absl::Status truncated(const char* what) {
  return malformed(absl::StrCat(what, ": runs past the end of the packet"));
}

absl::Status varIntTooLong(const char* what) {
  return malformed(absl::StrCat(what, ": variable byte integer longer than 4 bytes"));
}

absl::Status varIntNotMinimal(const char* what) {
  return malformed(absl::StrCat(what, ": variable byte integer not in its shortest form"));
}

absl::Status invalidUtf8(const char* what) {
  return malformed(absl::StrCat(what, ": not well-formed UTF-8, or contains U+0000"));
}

}  // namespace gannet::codec::wire
