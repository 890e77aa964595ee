#pragma once
// Early-return helpers for absl::Status / absl::StatusOr on the data path.

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define GANNET_CONCAT_INNER_(a, b) a##b
#define GANNET_CONCAT_(a, b) GANNET_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::absl::Status gannet_status_ = (expr);            \
    if (!gannet_status_.ok()) return gannet_status_;   \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, f());` assigns the value or returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(GANNET_CONCAT_(gannet_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()
