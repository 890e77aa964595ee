#pragma once
// Asserts for "cannot happen" only. Bad network input is handled, never asserted.

#include <cstdio>
#include <cstdlib>

#define GANNET_RELEASE_ASSERT(cond, msg)                                                    \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "assert failed at %s:%d: %s (%s)\n", __FILE__, __LINE__, #cond,  \
                   msg);                                                                    \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

#ifdef NDEBUG
#define GANNET_ASSERT(cond, msg) \
  do {                           \
  } while (0)
#else
#define GANNET_ASSERT(cond, msg) GANNET_RELEASE_ASSERT(cond, msg)
#endif
