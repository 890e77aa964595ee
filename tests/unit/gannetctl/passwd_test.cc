// cmd/gannetctl/passwd.h: setUserLine keeps every other byte of the file,
// replaces the user's line in place, and refuses a file gannet would refuse.

#include "cmd/gannetctl/passwd.h"

#include <gtest/gtest.h>

namespace gannet::ctl {
namespace {

constexpr const char* kHash =
    "$7$101$Zf8MEldqJJHw53mC$MpLAehrIB+vLMbHr3ZTJaD9MejipEEMpy0Mr3XDFwosi9WLSLlS8LeiMJYKv99"
    "S/GPy3bxf7UdNK4BmrOFJ64A==";

TEST(SetUserLineTest, AppendsToAnEmptyOrUnterminatedFile) {
  EXPECT_EQ(*setUserLine("", "pw", "alice", kHash), std::string("alice:") + kHash + "\n");
  const std::string one = std::string("# users\nalice:") + kHash;  // no final newline
  EXPECT_EQ(*setUserLine(one, "pw", "bob", kHash), one + "\nbob:" + kHash + "\n");
}

TEST(SetUserLineTest, ReplacesInPlaceAndKeepsTheRest) {
  const std::string before =
      std::string("# header\r\n\r\nalice:") + kHash + "\r\nbob:" + kHash + "\n# trailer\n";
  auto after = setUserLine(before, "pw", "alice", "$7$101$AAAA$NEW");
  // The new hash does not parse as a file line (too short); setUserLine only checks
  // the file it is given, the hash comes from hashPassword().
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(*after,
            std::string("# header\r\n\r\nalice:$7$101$AAAA$NEW\r\nbob:") + kHash + "\n# trailer\n");
  // A user whose name is a prefix of another's is not confused with it.
  auto more = setUserLine(before, "pw", "ali", kHash);
  ASSERT_TRUE(more.ok());
  EXPECT_EQ(*more, before + "ali:" + kHash + "\n");
}

TEST(SetUserLineTest, ADamagedFileIsRefusedWithItsLine) {
  auto r = setUserLine("# ok\nalice:plain\n", "/etc/gannet/passwd", "bob", kHash);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/etc/gannet/passwd line 2"), std::string::npos)
      << r.status();
}

}  // namespace
}  // namespace gannet::ctl
