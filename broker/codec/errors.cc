#include "broker/codec/errors.h"

#include "absl/strings/cord.h"

namespace gannet::codec {
namespace {

// The payload that carries the reason code: one byte, the ReasonCode value.
// (Debian's Abseil has its own absl::string_view, distinct from std::string_view.)
constexpr absl::string_view kReasonPayloadUrl = "type.gannet.dev/gannet.codec.ReasonCode";

// A canonical code close in meaning, so that code which only looks at
// absl::StatusCode (logs, tests, generic retry logic) still sees something sensible.
absl::StatusCode canonicalCodeOf(ReasonCode code) {
  switch (code) {
    case ReasonCode::kMalformedPacket:
    case ReasonCode::kProtocolError:
    case ReasonCode::kClientIdentifierNotValid:
    case ReasonCode::kTopicFilterInvalid:
    case ReasonCode::kTopicNameInvalid:
    case ReasonCode::kTopicAliasInvalid:
    case ReasonCode::kPayloadFormatInvalid:
    case ReasonCode::kPacketIdentifierInUse:
      return absl::StatusCode::kInvalidArgument;
    case ReasonCode::kPacketIdentifierNotFound:
      return absl::StatusCode::kNotFound;
    case ReasonCode::kBadUserNameOrPassword:
    case ReasonCode::kBadAuthenticationMethod:
      return absl::StatusCode::kUnauthenticated;
    case ReasonCode::kNotAuthorized:
    case ReasonCode::kBanned:
      return absl::StatusCode::kPermissionDenied;
    case ReasonCode::kServerUnavailable:
    case ReasonCode::kServerBusy:
    case ReasonCode::kServerShuttingDown:
    case ReasonCode::kUseAnotherServer:
    case ReasonCode::kServerMoved:
      return absl::StatusCode::kUnavailable;
    case ReasonCode::kReceiveMaximumExceeded:
    case ReasonCode::kPacketTooLarge:
    case ReasonCode::kMessageRateTooHigh:
    case ReasonCode::kQuotaExceeded:
    case ReasonCode::kConnectionRateExceeded:
      return absl::StatusCode::kResourceExhausted;
    case ReasonCode::kUnsupportedProtocolVersion:
    case ReasonCode::kRetainNotSupported:
    case ReasonCode::kQosNotSupported:
    case ReasonCode::kSharedSubscriptionsNotSupported:
    case ReasonCode::kSubscriptionIdentifiersNotSupported:
    case ReasonCode::kWildcardSubscriptionsNotSupported:
      return absl::StatusCode::kUnimplemented;
    case ReasonCode::kKeepAliveTimeout:
    case ReasonCode::kMaximumConnectTime:
      return absl::StatusCode::kDeadlineExceeded;
    case ReasonCode::kSessionTakenOver:
    case ReasonCode::kAdministrativeAction:
      return absl::StatusCode::kAborted;
    case ReasonCode::kImplementationSpecificError:
      return absl::StatusCode::kInternal;
    default:
      // kUnspecifiedError, and codes below 0x80 that are not errors at all: a
      // failed status must still be failed.
      return absl::StatusCode::kUnknown;
  }
}

}  // namespace

absl::Status codecError(ReasonCode code, std::string_view message) {
  absl::Status status(canonicalCodeOf(code), absl::string_view(message.data(), message.size()));
  const char byte = static_cast<char>(code);
  status.SetPayload(kReasonPayloadUrl, absl::Cord(absl::string_view(&byte, 1)));
  return status;
}

ReasonCode reasonCodeOf(const absl::Status& status) {
  if (status.ok()) return ReasonCode::kSuccess;
  const auto payload = status.GetPayload(kReasonPayloadUrl);
  if (!payload.has_value() || payload->size() != 1) return ReasonCode::kUnspecifiedError;
  return static_cast<ReasonCode>(static_cast<uint8_t>((*payload)[0]));
}

uint8_t connackReturnCodeV3(ReasonCode code) {
  // MQTT 3.1.1 §3.2.2.3, Table 3.1. 3.1.1 has no code for a malformed packet or a
  // protocol error (the server just closes the connection, §4.8); everything
  // without a closer match reads as "Server unavailable".
  switch (code) {
    case ReasonCode::kSuccess:
      return 0;
    case ReasonCode::kUnsupportedProtocolVersion:
      return 1;
    case ReasonCode::kClientIdentifierNotValid:
      return 2;
    case ReasonCode::kBadUserNameOrPassword:
      return 4;
    case ReasonCode::kNotAuthorized:
    case ReasonCode::kBanned:
    case ReasonCode::kBadAuthenticationMethod:
      return 5;
    default:
      return 3;
  }
}

}  // namespace gannet::codec
