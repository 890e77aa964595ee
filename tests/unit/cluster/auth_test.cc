// cluster/auth.h: link proofs and admin tokens.

#include "cluster/auth.h"

#include <gtest/gtest.h>

namespace gannet::cluster {
namespace {

TEST(AuthTest, LinkProofsDependOnEverything) {
  const std::string nonce = randomBytes(16);
  EXPECT_EQ(nonce.size(), 16u);
  EXPECT_NE(nonce, randomBytes(16));
  const std::string p = linkProof("secret", "acceptor", nonce, 1, 2);
  EXPECT_EQ(p.size(), 32u);
  EXPECT_TRUE(proofsEqual(p, linkProof("secret", "acceptor", nonce, 1, 2)));
  EXPECT_FALSE(proofsEqual(p, linkProof("other", "acceptor", nonce, 1, 2)));
  EXPECT_FALSE(proofsEqual(p, linkProof("secret", "dialer", nonce, 1, 2)));
  EXPECT_FALSE(proofsEqual(p, linkProof("secret", "acceptor", randomBytes(16), 1, 2)));
  EXPECT_FALSE(proofsEqual(p, linkProof("secret", "acceptor", nonce, 2, 1)));
  EXPECT_FALSE(proofsEqual("", ""));
}

TEST(AuthTest, AdminTokensExpireAndNeedTheSecret) {
  const int64_t now = 1'800'000'000'000;
  const std::string token = adminToken("secret", now);
  EXPECT_TRUE(adminTokenValid("secret", token, now));
  EXPECT_TRUE(adminTokenValid("secret", token, now + kAdminTokenWindowMs));
  EXPECT_FALSE(adminTokenValid("secret", token, now + kAdminTokenWindowMs + 1));
  EXPECT_FALSE(adminTokenValid("other", token, now));
  EXPECT_FALSE(adminTokenValid("secret", "garbage", now));
  EXPECT_FALSE(adminTokenValid("secret", std::to_string(now) + ":00", now));
}

}  // namespace
}  // namespace gannet::cluster
