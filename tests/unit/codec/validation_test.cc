// isValidUtf8, isValidTopicName, isValidTopicFilter (decoder.h).

#include <string>

#include "gtest/gtest.h"
#include "tests/unit/codec/codec_test_util.h"

namespace gannet::codec {
namespace {

using testing::B;

TEST(Utf8, AcceptsWellFormedText) {
  EXPECT_TRUE(isValidUtf8(""));
  EXPECT_TRUE(isValidUtf8("plain ascii, longer than eight bytes"));
  EXPECT_TRUE(isValidUtf8(B("C2 A0")));            // U+00A0, the first after the C1 controls
  EXPECT_TRUE(isValidUtf8(B("DF BF")));            // U+07FF
  EXPECT_TRUE(isValidUtf8(B("E0 A0 80")));         // U+0800
  EXPECT_TRUE(isValidUtf8(B("ED 9F BF")));         // U+D7FF, just below the surrogates
  EXPECT_TRUE(isValidUtf8(B("EE 80 80")));         // U+E000, just above them
  EXPECT_TRUE(isValidUtf8(B("EF BF BF")));         // U+FFFF (a non-character: allowed)
  EXPECT_TRUE(isValidUtf8(B("F0 90 80 80")));      // U+10000
  EXPECT_TRUE(isValidUtf8(B("F4 8F BF BF")));      // U+10FFFF
  EXPECT_TRUE(isValidUtf8(B("'A' F0 AA 9B 94")));  // U+2A6D4 (§1.5.4.1 example)
  // Control characters: the spec lets a receiver refuse them (§1.5.4); we do.
  EXPECT_FALSE(isValidUtf8(B("01")));
  EXPECT_FALSE(isValidUtf8(B("1F")));
  EXPECT_FALSE(isValidUtf8(B("7F")));
  EXPECT_FALSE(isValidUtf8(B("C2 9F")));
  EXPECT_FALSE(isValidUtf8(B("61 62 63 64 65 66 67 1F")));  // in the 8-byte fast path
  EXPECT_FALSE(isValidUtf8(B("61 62 63 64 65 66 67 7F")));
  EXPECT_TRUE(isValidUtf8(B("20 7E C2 A0")));                // space, tilde, NBSP
  EXPECT_TRUE(isValidUtf8(B("'12345678' C3 A9 '12345678' C3 A9")));
}

TEST(Utf8, RejectsNulSurrogatesAndMalformedSequences) {
  EXPECT_FALSE(isValidUtf8(std::string(1, '\0')));
  EXPECT_FALSE(isValidUtf8(B("'abcdefg' 00 'hijklmno'")));  // NUL inside the fast path
  EXPECT_FALSE(isValidUtf8(B("'abcdefghijklmn' 00")));      // NUL in the tail
  EXPECT_FALSE(isValidUtf8(B("C0 80")));                    // overlong U+0000
  EXPECT_FALSE(isValidUtf8(B("C1 BF")));                    // overlong
  EXPECT_FALSE(isValidUtf8(B("E0 9F BF")));                 // overlong three-byte
  EXPECT_FALSE(isValidUtf8(B("F0 8F BF BF")));              // overlong four-byte
  EXPECT_FALSE(isValidUtf8(B("ED A0 80")));                 // U+D800
  EXPECT_FALSE(isValidUtf8(B("ED BF BF")));                 // U+DFFF
  EXPECT_FALSE(isValidUtf8(B("F4 90 80 80")));              // U+110000
  EXPECT_FALSE(isValidUtf8(B("F5 80 80 80")));
  EXPECT_FALSE(isValidUtf8(B("FF")));
  EXPECT_FALSE(isValidUtf8(B("80")));        // lone continuation byte
  EXPECT_FALSE(isValidUtf8(B("C3")));        // truncated
  EXPECT_FALSE(isValidUtf8(B("E2 82")));     // truncated
  EXPECT_FALSE(isValidUtf8(B("F0 9F 90")));  // truncated
  EXPECT_FALSE(isValidUtf8(B("C3 28")));     // bad continuation
  EXPECT_FALSE(isValidUtf8(B("E2 28 A1")));
  EXPECT_FALSE(isValidUtf8(B("F0 9F 28 A6")));
  EXPECT_FALSE(isValidUtf8(B("'abcdefgh' ED A0 80 'abcdefgh'")));
}

TEST(TopicName, Rules) {
  EXPECT_TRUE(isValidTopicName("a"));
  EXPECT_TRUE(isValidTopicName("a/b/c"));
  EXPECT_TRUE(isValidTopicName("/"));
  EXPECT_TRUE(isValidTopicName("a//b/"));
  EXPECT_TRUE(isValidTopicName("$SYS/broker"));
  EXPECT_TRUE(isValidTopicName("caf\xC3\xA9"));
  EXPECT_FALSE(isValidTopicName(""));
  EXPECT_FALSE(isValidTopicName("+"));
  EXPECT_FALSE(isValidTopicName("#"));
  EXPECT_FALSE(isValidTopicName("a/+/b"));
  EXPECT_FALSE(isValidTopicName("a/b#"));
}

TEST(TopicFilter, Rules) {
  for (const char* ok : {"a", "#", "+", "/", "a/#", "a/+", "+/+", "+/#", "a/+/b/#", "/#", "//",
                         "$SYS/#", "$share/g/a/#", "a//+", "+/"}) {
    EXPECT_TRUE(isValidTopicFilter(ok)) << ok;
  }
  for (const char* bad :
       {"", "a#", "#a", "a/#/b", "#/", "##", "a+", "+a", "a/b+/c", "++", "a/++", "a/#/#"}) {
    EXPECT_FALSE(isValidTopicFilter(bad)) << bad;
  }
}

}  // namespace
}  // namespace gannet::codec
