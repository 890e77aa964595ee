// broker/auth/password_file.h: lines written by Debian's mosquitto_passwd (2.0)
// check as Mosquitto checks them; damaged files are refused naming the line.

#include "broker/auth/password_file.h"

#include <gtest/gtest.h>

#include "absl/strings/escaping.h"

namespace gannet::auth {
namespace {

// mosquitto_passwd -c -b pw alice s3cret; mosquitto_passwd -b -H sha512 pw bob hunter2
constexpr const char* kFile =
    "alice:$7$101$Zf8MEldqJJHw53mC$MpLAehrIB+vLMbHr3ZTJaD9MejipEEMpy0Mr3XDFwosi9WLSLlS8LeiMJYKv99"
    "S/GPy3bxf7UdNK4BmrOFJ64A==\n"
    "\n"
    "# a comment\n"
    "bob:$6$11WmO0hM/AN/sYvT$u9ztznOMxg3rV5SAGbqbaIovKXU/Cc+4X2MaFBVbahs0so+H98xEsKLvrxYGjqqoMPlMws"
    "qFxewXecwLh7J3fQ==\r\n";

TEST(PasswordFileTest, ChecksMosquittoHashes) {
  auto f = PasswordFile::parse(kFile, "pw");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->size(), 2u);
  EXPECT_TRUE((*f)->check("alice", "s3cret"));   // $7$ PBKDF2-SHA512, 101 iterations
  EXPECT_TRUE((*f)->check("bob", "hunter2"));    // $6$ SHA-512
  EXPECT_FALSE((*f)->check("alice", "hunter2"));
  EXPECT_FALSE((*f)->check("alice", ""));
  EXPECT_FALSE((*f)->check("bob", "hunter"));
  EXPECT_FALSE((*f)->check("carol", "s3cret"));
}

TEST(PasswordFileTest, DamagedLinesAreRefusedWithTheirNumber) {
  struct Case {
    const char* text;
    const char* expect;
  };
  for (const Case& c : {
           Case{"alice:plain\n", "line 1"},                     // not hashed
           Case{"\n\nnocolon\n", "line 3"},                     // no user:hash
           Case{":$6$c2FsdA==$aGFzaA==\n", "line 1"},            // no user
           Case{"a:$7$0$c2FsdA==$aGFzaA==\n", "iteration"},      // bad iterations
           Case{"a:$6$c2FsdA==$dG9vIHNob3J0\n", "bad salt or hash"},  // hash not 64 bytes
           Case{"a:$6$!!$aGFzaA==\n", "bad salt or hash"},       // not base64
       }) {
    auto f = PasswordFile::parse(c.text, "pw");
    ASSERT_FALSE(f.ok()) << c.text;
    EXPECT_NE(f.status().message().find(c.expect), std::string::npos) << f.status();
  }
  std::string twice = std::string(kFile) + "alice:$6$11WmO0hM/AN/sYvT$u9ztznOMxg3rV5SAGbqbaIovKXU/"
                                           "Cc+4X2MaFBVbahs0so+H98xEsKLvrxYGjqqoMPlMwsqFxewXecwLh7"
                                           "J3fQ==\n";
  auto f = PasswordFile::parse(twice, "pw");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("twice"), std::string::npos) << f.status();
}

TEST(HashPasswordTest, MatchesMosquittoPasswdForTheSameSalt) {
  // alice's line of kFile, made by mosquitto_passwd: same salt → the same bytes.
  std::string salt;
  ASSERT_TRUE(absl::Base64Unescape("Zf8MEldqJJHw53mC", &salt));
  auto line = hashPasswordWithSalt("s3cret", salt);
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(*line,
            "$7$101$Zf8MEldqJJHw53mC$MpLAehrIB+vLMbHr3ZTJaD9MejipEEMpy0Mr3XDFwosi9WLSLlS8LeiMJYKv99"
            "S/GPy3bxf7UdNK4BmrOFJ64A==");
}

TEST(HashPasswordTest, FreshSaltsAndTheParserAcceptsTheLine) {
  auto a = hashPassword("pa:ss$word");
  auto b = hashPassword("pa:ss$word");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);                       // a new random salt each time
  EXPECT_EQ(a->rfind("$7$101$", 0), 0u);
  EXPECT_EQ(a->substr(7, 17).back(), '$');  // 12 salt bytes → 16 base64 characters
  auto f = PasswordFile::parse("carol:" + *a + "\n", "pw");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE((*f)->check("carol", "pa:ss$word"));
  EXPECT_FALSE((*f)->check("carol", "pa:ss$wor"));
}

TEST(HashPasswordTest, UserNamesThatCannotBeWritten) {
  EXPECT_EQ(invalidUserName("alice"), "");
  EXPECT_EQ(invalidUserName("a b.c@d"), "");
  EXPECT_NE(invalidUserName(""), "");
  EXPECT_NE(invalidUserName("a:b"), "");
  EXPECT_NE(invalidUserName("a\nb"), "");
  EXPECT_NE(invalidUserName("#a"), "");
}

TEST(PasswordFileTest, AMissingFileIsNotFound) {
  auto f = PasswordFile::load("/nonexistent/gannet/passwd");
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace gannet::auth
