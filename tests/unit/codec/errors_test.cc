// The error vocabulary (errors.h).

#include "gtest/gtest.h"
#include "tests/unit/codec/codec_test_util.h"

namespace gannet::codec {
namespace {

TEST(Errors, ReasonCodeTravelsWithTheStatus) {
  absl::Status s = codecError(ReasonCode::kTopicAliasInvalid, "alias 0");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(reasonCodeOf(s), ReasonCode::kTopicAliasInvalid);
  EXPECT_EQ(s.message(), "alias 0");
  EXPECT_EQ(reasonCodeOf(malformed("x")), ReasonCode::kMalformedPacket);
  EXPECT_EQ(reasonCodeOf(protocolError("x")), ReasonCode::kProtocolError);
  // Copies keep it.
  absl::Status copy = s;
  EXPECT_EQ(reasonCodeOf(copy), ReasonCode::kTopicAliasInvalid);
}

TEST(Errors, OkAndForeignStatuses) {
  EXPECT_EQ(reasonCodeOf(absl::OkStatus()), ReasonCode::kSuccess);
  EXPECT_EQ(reasonCodeOf(absl::InternalError("boom")), ReasonCode::kUnspecifiedError);
  EXPECT_EQ(reasonCodeOf(absl::UnavailableError("down")), ReasonCode::kUnspecifiedError);
}

TEST(Errors, CanonicalCodesAreSensible) {
  EXPECT_EQ(malformed("x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(codecError(ReasonCode::kNotAuthorized, "x").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(codecError(ReasonCode::kServerBusy, "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(codecError(ReasonCode::kQuotaExceeded, "x").code(),
            absl::StatusCode::kResourceExhausted);
  // Even a success-range code makes a failed status.
  EXPECT_FALSE(codecError(ReasonCode::kSuccess, "x").ok());
}

TEST(Errors, ConnackReturnCodeV3) {
  // 3.1.1 §3.2.2.3 Table 3.1.
  EXPECT_EQ(connackReturnCodeV3(ReasonCode::kSuccess), 0);
  EXPECT_EQ(connackReturnCodeV3(ReasonCode::kUnsupportedProtocolVersion), 1);
  EXPECT_EQ(connackReturnCodeV3(ReasonCode::kClientIdentifierNotValid), 2);
  EXPECT_EQ(connackReturnCodeV3(ReasonCode::kServerUnavailable), 3);
  EXPECT_EQ(connackReturnCodeV3(ReasonCode::kServerBusy), 3);
  EXPECT_EQ(connackReturnCodeV3(ReasonCode::kBadUserNameOrPassword), 4);
  EXPECT_EQ(connackReturnCodeV3(ReasonCode::kNotAuthorized), 5);
  EXPECT_EQ(connackReturnCodeV3(ReasonCode::kBanned), 5);
  EXPECT_EQ(connackReturnCodeV3(ReasonCode::kMalformedPacket), 3);
}

TEST(Errors, DecoderFailuresCarryTheirReason) {
  auto decoded =
      testing::decodeFrame(testing::B("10 0D 00 04 'MQTT' 09 02 00 0A 00 01 'p'"), testing::kV311);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(reasonCodeOf(decoded.status()), ReasonCode::kUnsupportedProtocolVersion);
  EXPECT_EQ(connackReturnCodeV3(reasonCodeOf(decoded.status())), 1);
}

}  // namespace
}  // namespace gannet::codec
