// String and topic validation shared by the decoder and the broker (decoder.h).

#include <cstring>

#include "broker/codec/decoder.h"
#include "broker/codec/wire.h"

namespace gannet::codec {

namespace wire {

// §1.5.4: well-formed UTF-8 (RFC 3629: shortest form, at most U+10FFFF), no
// surrogates U+D800..U+DFFF [MQTT-1.5.4-1] and no U+0000 [MQTT-1.5.4-2]. Other
// control characters and non-characters are allowed: the specification only says a
// receiver MAY reject them.
bool isValidUtf8Impl(const uint8_t* p, size_t n) {
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  const uint8_t* const end = p + n;
  while (p < end) {
    // Topics and identifiers are mostly ASCII: take eight bytes at a time while
    // they are, stopping at a control character (below 0x20, or 0x7F).
    if (end - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, sizeof(w));
      if ((w & kHigh) == 0) {
        if (((w - kOnes * 0x20) & ~w & kHigh) != 0) return false;   // a byte < 0x20
        const uint64_t del = w ^ (kOnes * 0x7F);
        if (((del - kOnes) & ~del & kHigh) != 0) return false;     // a 0x7F byte
        p += 8;
        continue;
      }
    }
    const uint8_t b = *p;
    if (b < 0x80) {
      // §1.5.4: U+0000 MUST NOT appear; U+0001..U+001F and U+007F SHOULD NOT, and a
      // receiver MAY close on them: we do, as Mosquitto does.
      if (b < 0x20 || b == 0x7F) return false;
      ++p;
      continue;
    }
    // U+0080..U+009F (C1 controls), encoded C2 80..C2 9F: refused as above.
    if (b == 0xC2 && end - p >= 2 && p[1] <= 0x9F) return false;
    size_t follow = 0;
    uint8_t lo = 0x80;  // bounds of the first continuation byte
    uint8_t hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      follow = 1;
    } else if (b == 0xE0) {
      follow = 2;
      lo = 0xA0;  // no overlong three-byte forms
    } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
      follow = 2;
    } else if (b == 0xED) {
      follow = 2;
      hi = 0x9F;  // no surrogates
    } else if (b == 0xF0) {
      follow = 3;
      lo = 0x90;  // no overlong four-byte forms
    } else if (b >= 0xF1 && b <= 0xF3) {
      follow = 3;
    } else if (b == 0xF4) {
      follow = 3;
      hi = 0x8F;  // nothing above U+10FFFF
    } else {
      return false;  // a continuation byte, an overlong C0/C1 lead, or F5..FF
    }
    if (static_cast<size_t>(end - p) <= follow) return false;
    if (p[1] < lo || p[1] > hi) return false;
    for (size_t i = 2; i <= follow; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
    }
    p += follow + 1;
  }
  return true;
}

}  // namespace wire

bool isValidUtf8(std::string_view s) {
  return wire::isValidUtf8Impl(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// §4.7.3: at least one character [MQTT-4.7.3-1]; §3.3.2.1: no wildcard characters
// [MQTT-3.3.2-2].
bool isValidTopicName(std::string_view topic) {
  if (topic.empty()) return false;
  return topic.find_first_of("+#") == std::string_view::npos;
}

// §4.7.1: '#' must be the whole of the last level [MQTT-4.7.1-1]; '+' must be the
// whole of its level [MQTT-4.7.1-2]. §4.7.3: at least one character.
bool isValidTopicFilter(std::string_view filter) {
  const size_t n = filter.size();
  if (n == 0) return false;
  for (size_t i = 0; i < n; ++i) {
    const char c = filter[i];
    if (c != '+' && c != '#') continue;
    const bool level_start = i == 0 || filter[i - 1] == '/';
    const bool level_end = i + 1 == n || filter[i + 1] == '/';
    if (!level_start || !level_end) return false;
    if (c == '#' && i + 1 != n) return false;
  }
  return true;
}

}  // namespace gannet::codec
