#pragma once
// MQTT control packets as typed structs, for 3.1 (protocol level 3), 3.1.1 (4) and
// 5.0 (5) side by side. A struct holds everything any version can carry; fields a
// version lacks stay empty. The codec turns bytes into these and back; it does no I/O.

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace gannet::codec {

enum class ProtocolVersion : uint8_t { kV31 = 3, kV311 = 4, kV5 = 5 };

enum class PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
  kAuth = 15,
};

// MQTT 5 §2.4 reason codes. 3.1.1 CONNACK return codes are mapped in one place
// (connackReturnCodeV3 in errors.h).
enum class ReasonCode : uint8_t {
  kSuccess = 0x00,  // also Normal disconnection, Granted QoS 0
  kGrantedQos1 = 0x01,
  kGrantedQos2 = 0x02,
  kDisconnectWithWill = 0x04,
  kNoMatchingSubscribers = 0x10,
  kNoSubscriptionExisted = 0x11,
  kContinueAuthentication = 0x18,
  kReAuthenticate = 0x19,
  kUnspecifiedError = 0x80,
  kMalformedPacket = 0x81,
  kProtocolError = 0x82,
  kImplementationSpecificError = 0x83,
  kUnsupportedProtocolVersion = 0x84,
  kClientIdentifierNotValid = 0x85,
  kBadUserNameOrPassword = 0x86,
  kNotAuthorized = 0x87,
  kServerUnavailable = 0x88,
  kServerBusy = 0x89,
  kBanned = 0x8A,
  kServerShuttingDown = 0x8B,
  kBadAuthenticationMethod = 0x8C,
  kKeepAliveTimeout = 0x8D,
  kSessionTakenOver = 0x8E,
  kTopicFilterInvalid = 0x8F,
  kTopicNameInvalid = 0x90,
  kPacketIdentifierInUse = 0x91,
  kPacketIdentifierNotFound = 0x92,
  kReceiveMaximumExceeded = 0x93,
  kTopicAliasInvalid = 0x94,
  kPacketTooLarge = 0x95,
  kMessageRateTooHigh = 0x96,
  kQuotaExceeded = 0x97,
  kAdministrativeAction = 0x98,
  kPayloadFormatInvalid = 0x99,
  kRetainNotSupported = 0x9A,
  kQosNotSupported = 0x9B,
  kUseAnotherServer = 0x9C,
  kServerMoved = 0x9D,
  kSharedSubscriptionsNotSupported = 0x9E,
  kConnectionRateExceeded = 0x9F,
  kMaximumConnectTime = 0xA0,
  kSubscriptionIdentifiersNotSupported = 0xA1,
  kWildcardSubscriptionsNotSupported = 0xA2,
};

struct UserProperty {
  std::string key;
  std::string value;
  bool operator==(const UserProperty&) const = default;
};

// MQTT 5 §2.2.2 properties. Empty in 3.1/3.1.1 packets. The decoder rejects a
// property that the packet type does not allow (§2.2.2.2) and a duplicate of a
// property that may appear once.
struct Properties {
  std::optional<uint8_t> payload_format_indicator;        // 0x01
  std::optional<uint32_t> message_expiry_interval;        // 0x02
  std::optional<std::string> content_type;                // 0x03
  std::optional<std::string> response_topic;              // 0x08
  std::optional<std::string> correlation_data;            // 0x09 (binary)
  std::vector<uint32_t> subscription_identifiers;         // 0x0B (PUBLISH may carry several)
  std::optional<uint32_t> session_expiry_interval;        // 0x11
  std::optional<std::string> assigned_client_identifier;  // 0x12
  std::optional<uint16_t> server_keep_alive;              // 0x13
  std::optional<std::string> authentication_method;       // 0x15
  std::optional<std::string> authentication_data;         // 0x16 (binary)
  std::optional<uint8_t> request_problem_information;     // 0x17
  std::optional<uint32_t> will_delay_interval;            // 0x18
  std::optional<uint8_t> request_response_information;    // 0x19
  std::optional<std::string> response_information;        // 0x1A
  std::optional<std::string> server_reference;            // 0x1C
  std::optional<std::string> reason_string;               // 0x1F
  std::optional<uint16_t> receive_maximum;                // 0x21
  std::optional<uint16_t> topic_alias_maximum;            // 0x22
  std::optional<uint16_t> topic_alias;                    // 0x23
  std::optional<uint8_t> maximum_qos;                     // 0x24
  std::optional<uint8_t> retain_available;                // 0x25
  std::vector<UserProperty> user_properties;              // 0x26 (any number, order kept)
  std::optional<uint32_t> maximum_packet_size;            // 0x27
  std::optional<uint8_t> wildcard_subscription_available;       // 0x28
  std::optional<uint8_t> subscription_identifier_available;     // 0x29
  std::optional<uint8_t> shared_subscription_available;         // 0x2A

  bool operator==(const Properties&) const = default;
};

struct Will {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  Properties properties;  // MQTT 5 will properties (will delay, expiry, ...)
  bool operator==(const Will&) const = default;
};

struct ConnectPacket {
  ProtocolVersion version = ProtocolVersion::kV311;
  bool clean_start = true;  // "clean session" in 3.1/3.1.1
  uint16_t keep_alive = 0;  // seconds
  std::string client_id;
  std::optional<Will> will;
  std::optional<std::string> username;
  std::optional<std::string> password;  // binary
  Properties properties;
  bool operator==(const ConnectPacket&) const = default;
};

struct ConnackPacket {
  bool session_present = false;
  // MQTT 5: a ReasonCode value. 3.1/3.1.1: the return code 0..5.
  uint8_t reason_code = 0;
  Properties properties;
  bool operator==(const ConnackPacket&) const = default;
};

struct PublishPacket {
  bool dup = false;
  uint8_t qos = 0;
  bool retain = false;
  std::string topic;       // may be empty in MQTT 5 when a topic alias is used
  uint16_t packet_id = 0;  // only for QoS 1 and 2
  Properties properties;
  std::string payload;
  bool operator==(const PublishPacket&) const = default;
};

// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape (§3.4–§3.7).
struct PubAckPacket {
  PacketType type = PacketType::kPuback;  // kPuback, kPubrec, kPubrel or kPubcomp
  uint16_t packet_id = 0;
  ReasonCode reason_code = ReasonCode::kSuccess;
  Properties properties;
  bool operator==(const PubAckPacket&) const = default;
};

struct SubscriptionRequest {
  std::string filter;
  uint8_t qos = 0;
  bool no_local = false;             // MQTT 5
  bool retain_as_published = false;  // MQTT 5
  uint8_t retain_handling = 0;       // MQTT 5: 0 send, 1 send if new, 2 do not send
  bool operator==(const SubscriptionRequest&) const = default;
};

struct SubscribePacket {
  uint16_t packet_id = 0;
  Properties properties;  // subscription identifier, user properties
  std::vector<SubscriptionRequest> subscriptions;
  bool operator==(const SubscribePacket&) const = default;
};

struct SubackPacket {
  uint16_t packet_id = 0;
  Properties properties;
  std::vector<uint8_t> reason_codes;  // 3.1.1: 0, 1, 2 or 0x80
  bool operator==(const SubackPacket&) const = default;
};

struct UnsubscribePacket {
  uint16_t packet_id = 0;
  Properties properties;
  std::vector<std::string> filters;
  bool operator==(const UnsubscribePacket&) const = default;
};

struct UnsubackPacket {
  uint16_t packet_id = 0;
  Properties properties;
  std::vector<uint8_t> reason_codes;  // MQTT 5 only; 3.1.1 UNSUBACK has none
  bool operator==(const UnsubackPacket&) const = default;
};

struct PingreqPacket {
  bool operator==(const PingreqPacket&) const = default;
};
struct PingrespPacket {
  bool operator==(const PingrespPacket&) const = default;
};

struct DisconnectPacket {
  ReasonCode reason_code = ReasonCode::kSuccess;  // MQTT 5 only
  Properties properties;
  bool operator==(const DisconnectPacket&) const = default;
};

struct AuthPacket {
  ReasonCode reason_code = ReasonCode::kSuccess;
  Properties properties;
  bool operator==(const AuthPacket&) const = default;
};

using Packet = std::variant<ConnectPacket, ConnackPacket, PublishPacket, PubAckPacket,
                            SubscribePacket, SubackPacket, UnsubscribePacket, UnsubackPacket,
                            PingreqPacket, PingrespPacket, DisconnectPacket, AuthPacket>;

}  // namespace gannet::codec
