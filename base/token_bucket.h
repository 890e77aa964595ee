#pragma once
// A token bucket for rate limits (docs/security.md, "Limits"): `rate` tokens
// per second, holding at most `rate` of them (the burst equals the rate), full
// at first. Integer arithmetic in thousandths of a token, no allocation.
//
// Not thread-safe: owned by one thread (a client's bucket by its worker) or
// guarded by its owner's lock (the per-address buckets of server::Admission).

#include <algorithm>
#include <cstdint>

namespace gannet::base {

class TokenBucket {
 public:
  // Takes one token at `now_ms` (a monotonic clock). False: none left, the
  // caller is over `rate` per second. `rate` must not be 0.
  bool take(int64_t now_ms, uint32_t rate) {
    refill(now_ms, rate);
    if (milli_ < 1000) return false;
    milli_ -= 1000;
    return true;
  }
  // True when the bucket is full again at `now_ms` (forgetting it loses nothing).
  bool full(int64_t now_ms, uint32_t rate) {
    refill(now_ms, rate);
    return milli_ >= int64_t{rate} * 1000;
  }

 private:
  void refill(int64_t now_ms, uint32_t rate) {
    const int64_t cap = int64_t{rate} * 1000;
    if (milli_ < 0) {
      milli_ = cap;  // first use: full
    } else if (now_ms > last_ms_) {
      // rate tokens per 1000 ms = rate milli-tokens per ms.
      milli_ = std::min(cap, milli_ + (now_ms - last_ms_) * int64_t{rate});
    }
    last_ms_ = std::max(last_ms_, now_ms);
  }

  int64_t milli_ = -1;  // thousandths of a token; -1: never used (full)
  int64_t last_ms_ = 0;
};

}  // namespace gannet::base
