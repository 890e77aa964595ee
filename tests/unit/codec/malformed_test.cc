// Every way a packet can be rejected, and the reason code each failure carries.

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/codec/codec_test_util.h"

namespace gannet::codec {
namespace {

using testing::B;
using testing::kV31;
using testing::kV311;
using testing::kV5;

constexpr ReasonCode kMalformed = ReasonCode::kMalformedPacket;
constexpr ReasonCode kProtocol = ReasonCode::kProtocolError;

struct Case {
  const char* name;
  ProtocolVersion version;
  const char* bytes;
  ReasonCode reason;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class Rejected : public ::testing::TestWithParam<Case> {};

TEST_P(Rejected, WithReason) {
  const Case& c = GetParam();
  testing::expectRejected(B(c.bytes), c.version, c.reason);
}

// --- Fixed header: packet types and reserved flag bits (§2.1.2, §2.1.3). ---------
INSTANTIATE_TEST_SUITE_P(
    FixedHeader, Rejected,
    ::testing::Values(
        Case{"ReservedType0", kV311, "00 00", kMalformed},
        Case{"ReservedType0V5", kV5, "00 00", kMalformed},
        Case{"AuthIn311", kV311, "F0 00", kMalformed}, Case{"AuthIn31", kV31, "F0 00", kMalformed},
        Case{"ConnectFlags", kV311, "1F 0D 00 04 'MQTT' 04 02 00 0A 00 01 'p'", kMalformed},
        Case{"ConnectFlagsV5", kV5, "12 0E 00 04 'MQTT' 05 02 00 0A 00 00 01 'p'", kMalformed},
        Case{"ConnackFlags", kV311, "21 02 00 00", kMalformed},
        Case{"PubackFlags", kV311, "41 02 00 01", kMalformed},
        Case{"PubrecFlags", kV5, "52 02 00 01", kMalformed},
        Case{"PubrelFlags0", kV311, "60 02 00 01", kMalformed},
        Case{"PubrelFlags3", kV311, "63 02 00 01", kMalformed},
        Case{"PubrelFlags0V5", kV5, "60 02 00 01", kMalformed},
        Case{"PubcompFlags", kV5, "78 02 00 01", kMalformed},
        Case{"SubscribeFlags0", kV311, "80 06 00 01 00 01 'p' 00", kMalformed},
        Case{"SubscribeFlags3", kV311, "83 06 00 01 00 01 'p' 00", kMalformed},
        Case{"SubscribeFlagsA", kV5, "8A 07 00 01 00 00 01 'p' 00", kMalformed},
        Case{"SubackFlags", kV311, "91 03 00 01 00", kMalformed},
        Case{"UnsubscribeFlags0", kV311, "A0 05 00 01 00 01 'p'", kMalformed},
        Case{"UnsubscribeFlags4", kV5, "A4 06 00 01 00 00 01 'p'", kMalformed},
        Case{"UnsubackFlags", kV311, "B2 02 00 01", kMalformed},
        Case{"PingreqFlags", kV311, "C1 00", kMalformed},
        Case{"PingrespFlags", kV5, "D8 00", kMalformed},
        Case{"DisconnectFlags", kV311, "E2 00", kMalformed},
        Case{"DisconnectFlagsV5", kV5, "E1 00", kMalformed},
        Case{"AuthFlags", kV5, "F1 00", kMalformed}),
    [](const auto& info) { return std::string(info.param.name); });

// --- Remaining length inconsistent with the fields. ------------------------------
INSTANTIATE_TEST_SUITE_P(
    Lengths, Rejected,
    ::testing::Values(
        Case{"PingreqTrailing", kV311, "C0 01 00", kMalformed},
        Case{"PingrespTrailing", kV5, "D0 01 00", kMalformed},
        Case{"DisconnectTrailing311", kV311, "E0 01 00", kMalformed},
        Case{"DisconnectTrailingV5", kV5, "E0 03 00 00 00", kMalformed},
        Case{"PubackTrailing311", kV311, "40 03 00 01 00", kMalformed},
        Case{"PubackShort311", kV311, "40 01 00", kMalformed},
        Case{"PubackEmpty", kV5, "40 00", kMalformed},
        Case{"PubrelTrailingV5", kV5, "62 05 00 01 00 00 00", kMalformed},
        Case{"UnsubackTrailing311", kV311, "B0 03 00 01 00", kMalformed},
        Case{"ConnackTrailing", kV311, "20 03 00 00 00", kMalformed},
        Case{"ConnackShort", kV311, "20 01 00", kMalformed},
        Case{"ConnackNoPropertiesV5", kV5, "20 02 00 00", kMalformed},
        Case{"ConnackTrailingV5", kV5, "20 04 00 00 00 00", kMalformed},
        Case{"ConnectTrailing", kV311, "10 0E 00 04 'MQTT' 04 02 00 0A 00 01 'p' 00", kMalformed},
        Case{"ConnectEmpty", kV311, "10 00", kMalformed},
        Case{"ConnectNoLevel", kV311, "10 06 00 04 'MQTT'", kMalformed},
        Case{"ConnectNoKeepAlive", kV5, "10 08 00 04 'MQTT' 05 02", kMalformed},
        Case{"ConnectNoClientId", kV311, "10 0A 00 04 'MQTT' 04 02 00 0A", kMalformed},
        Case{"ConnectWillWithoutTopic", kV311, "10 0D 00 04 'MQTT' 04 06 00 0A 00 01 'p'",
             kMalformed},
        Case{"ConnectWillWithoutPayload", kV311,
             "10 10 00 04 'MQTT' 04 06 00 0A 00 01 'p' 00 01 't'", kMalformed},
        Case{"ConnectUserNameMissing", kV311, "10 0D 00 04 'MQTT' 04 82 00 0A 00 01 'p'",
             kMalformed},
        Case{"ConnectPasswordMissing", kV311, "10 10 00 04 'MQTT' 04 C2 00 0A 00 01 'p' 00 01 'u'",
             kMalformed},
        Case{"ConnectStringPastEnd", kV311, "10 0D 00 04 'MQTT' 04 02 00 0A 00 05 'p'", kMalformed},
        Case{"PublishTopicPastEnd", kV311, "30 04 00 05 'to'", kMalformed},
        Case{"PublishNoTopicLength", kV311, "30 01 00", kMalformed},
        Case{"PublishEmpty", kV311, "30 00", kMalformed},
        Case{"PublishNoPacketId", kV311, "32 07 00 05 'topic'", kMalformed},
        Case{"PublishNoPropertyLength", kV5, "30 07 00 05 'topic'", kMalformed},
        Case{"SubscribeNoOptions", kV311, "82 05 00 01 00 01 'p'", kMalformed},
        Case{"SubscribeFilterPastEnd", kV311, "82 06 00 01 00 05 'p' 00", kMalformed},
        Case{"SubscribeNoPacketId", kV311, "82 01 00", kMalformed},
        Case{"UnsubscribeFilterPastEnd", kV5, "A2 06 00 01 00 00 02 'p'", kMalformed},
        Case{"AuthReasonWithoutPropertyLength", kV5, "F0 01 18", kMalformed},
        Case{"AuthTrailing", kV5, "F0 03 18 00 00", kMalformed}),
    [](const auto& info) { return std::string(info.param.name); });

// --- PUBLISH (§3.3). ---------------------------------------------------------------
INSTANTIATE_TEST_SUITE_P(
    Publish, Rejected,
    ::testing::Values(
        Case{"Qos3", kV311, "36 0A 00 05 'topic' 00 01 'x'", kMalformed},
        Case{"Qos3V5", kV5, "36 0B 00 05 'topic' 00 01 00 'x'", kMalformed},
        Case{"Qos3V31", kV31, "36 0A 00 05 'topic' 00 01 'x'", kMalformed},
        Case{"DupOnQos0", kV311, "38 08 00 05 'topic' 'x'", kMalformed},
        Case{"Qos1PacketId0", kV311, "32 09 00 05 'topic' 00 00", kProtocol},
        Case{"Qos2PacketId0V5", kV5, "34 0A 00 05 'topic' 00 00 00", kProtocol},
        Case{"WildcardPlus", kV311, "30 07 00 05 'to+ic'", kProtocol},
        Case{"WildcardHash", kV311, "30 07 00 05 'topi#'", kProtocol},
        Case{"WildcardV5", kV5, "30 08 00 05 'a/+/b' 00", kProtocol},
        Case{"EmptyTopic", kV311, "30 03 00 00 'x'", kProtocol},
        Case{"EmptyTopicNoAliasV5", kV5, "30 04 00 00 00 'x'", kProtocol},
        Case{"InvalidUtf8Topic", kV311, "30 06 00 04 'to' FF 'c'", kMalformed},
        Case{"NulInTopic", kV311, "30 07 00 05 'to' 00 'ic'", kMalformed},
        Case{"NulInTopicV5", kV5, "30 08 00 05 'to' 00 'ic' 00", kMalformed},
        Case{"SurrogateInTopic", kV311, "30 07 00 05 't' ED A0 80 'c'", kMalformed},
        Case{"OverlongNulInTopic", kV311, "30 06 00 04 't' C0 80 'c'", kMalformed},
        Case{"TruncatedUtf8InTopic", kV311, "30 05 00 03 't' E2 82", kMalformed},
        Case{"AboveU10FFFFInTopic", kV311, "30 06 00 04 F4 90 80 80", kMalformed},
        Case{"TopicAlias0", kV5, "30 0B 00 05 'topic' 03 23 00 00", ReasonCode::kTopicAliasInvalid},
        Case{"DuplicateTopicAlias", kV5, "30 0E 00 05 'topic' 06 23 00 01 23 00 02", kProtocol},
        Case{"PropertyNotAllowed", kV5, "30 0D 00 05 'topic' 05 11 00 00 00 0A", kMalformed},
        Case{"DuplicatePayloadFormat", kV5, "30 0C 00 05 'topic' 04 01 01 01 01", kProtocol},
        Case{"PayloadFormat2", kV5, "30 0A 00 05 'topic' 02 01 02", kProtocol},
        Case{"PropertyLengthPastPacket", kV5, "30 09 00 05 'topic' 05 01", kMalformed},
        Case{"PropertyValuePastBlock", kV5, "30 0D 00 05 'topic' 02 02 00 00 00 00", kMalformed},
        Case{"PropertyLength5Bytes", kV5, "30 0C 00 05 'topic' 80 80 80 80 00", kMalformed},
        Case{"PropertyLengthNotMinimal", kV5, "30 09 00 05 'topic' 80 00", kMalformed},
        Case{"SubscriptionId0", kV5, "30 0A 00 05 'topic' 02 0B 00", kProtocol},
        Case{"SubscriptionIdNotMinimal", kV5, "30 0B 00 05 'topic' 03 0B 80 00", kMalformed},
        Case{"SubscriptionId5Bytes", kV5, "30 0E 00 05 'topic' 06 0B 80 80 80 80 01", kMalformed},
        Case{"ResponseTopicWildcard", kV5, "30 0D 00 05 'topic' 05 08 00 02 'a#'", kProtocol},
        Case{"ResponseTopicEmpty", kV5, "30 0B 00 05 'topic' 03 08 00 00", kProtocol},
        Case{"ContentTypeInvalidUtf8", kV5, "30 0C 00 05 'topic' 04 03 00 01 FE", kMalformed},
        Case{"UserPropertyMissingValue", kV5, "30 0D 00 05 'topic' 05 26 00 02 'ab'", kMalformed},
        Case{"UnknownProperty05", kV5, "30 0A 00 05 'topic' 02 05 01", kMalformed},
        Case{"PropertyId0", kV5, "30 0A 00 05 'topic' 02 00 01", kMalformed},
        Case{"PropertyIdTwoBytes", kV5, "30 0B 00 05 'topic' 03 81 00 01", kMalformed},
        Case{"PropertyIdMultiByte", kV5, "30 0B 00 05 'topic' 03 81 01 01", kMalformed}),
    [](const auto& info) { return std::string(info.param.name); });

// --- PUBACK, PUBREC, PUBREL, PUBCOMP (§3.4-§3.7). -----------------------------------
INSTANTIATE_TEST_SUITE_P(
    PubAcks, Rejected,
    ::testing::Values(
        Case{"PubackPacketId0", kV311, "40 02 00 00", kProtocol},
        Case{"PubrelPacketId0V5", kV5, "62 03 00 00 00", kProtocol},
        Case{"PubackUnknownReason", kV5, "40 03 00 01 FF", kProtocol},
        Case{"PubackPubrelReason", kV5, "40 03 00 01 92", kProtocol},
        Case{"PubrelPubackReason", kV5, "62 03 00 01 10", kProtocol},
        Case{"PubcompReason80", kV5, "70 03 00 01 80", kProtocol},
        Case{"PubackTopicAliasProperty", kV5, "40 07 00 01 00 03 23 00 01", kMalformed},
        Case{"PubrecDuplicateReasonString", kV5, "50 0C 00 01 00 08 1F 00 01 'a' 1F 00 01 'b'",
             kProtocol},
        Case{"PubcompPropertyLengthPastPacket", kV5, "70 05 00 01 00 05 1F", kMalformed},
        Case{"PubrelReasonStringNul", kV5, "62 08 00 01 00 04 1F 00 01 00", kMalformed}),
    [](const auto& info) { return std::string(info.param.name); });

// --- SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK (§3.8-§3.11). -------------------------
INSTANTIATE_TEST_SUITE_P(
    Subscriptions, Rejected,
    ::testing::Values(
        Case{"SubscribeNoFilters", kV311, "82 02 00 01", kProtocol},
        Case{"SubscribeNoFiltersV5", kV5, "82 03 00 01 00", kProtocol},
        Case{"SubscribePacketId0", kV311, "82 06 00 00 00 01 'p' 00", kProtocol},
        Case{"SubscribeReservedBits311", kV311, "82 06 00 01 00 01 'p' 04", kMalformed},
        Case{"SubscribeReservedBitsHigh311", kV311, "82 06 00 01 00 01 'p' 80", kMalformed},
        Case{"SubscribeQos3_311", kV311, "82 06 00 01 00 01 'p' 03", kMalformed},
        Case{"SubscribeReservedBit6V5", kV5, "82 07 00 01 00 00 01 'p' 40", kMalformed},
        Case{"SubscribeReservedBit7V5", kV5, "82 07 00 01 00 00 01 'p' 80", kMalformed},
        Case{"SubscribeQos3V5", kV5, "82 07 00 01 00 00 01 'p' 03", kProtocol},
        Case{"SubscribeRetainHandling3", kV5, "82 07 00 01 00 00 01 'p' 30", kProtocol},
        Case{"SubscribeEmptyFilter", kV311, "82 05 00 01 00 00 00", kProtocol},
        Case{"SubscribeHashNotLast", kV311, "82 0A 00 01 00 05 'a/#/b' 00", kProtocol},
        Case{"SubscribeHashInLevel", kV311, "82 09 00 01 00 04 'a/b#' 00", kProtocol},
        Case{"SubscribePlusInLevel", kV311, "82 0A 00 01 00 05 'ab/+e' 00", kProtocol},
        Case{"SubscribePlusFirst", kV5, "82 09 00 01 00 00 03 '+a/' 00", kProtocol},
        Case{"SubscribeSecondFilterInvalid", kV311, "82 0B 00 01 00 01 'a' 00 00 02 '#/' 00",
             kProtocol},
        Case{"SubscribeInvalidUtf8", kV311, "82 07 00 01 00 02 C3 28 00", kMalformed},
        Case{"SubscribeNulFilter", kV5, "82 08 00 01 00 00 02 'a' 00 00", kMalformed},
        Case{"SubscribeShareNoFilter", kV5, "82 0E 00 01 00 00 08 '$share/g' 00", kProtocol},
        Case{"SubscribeShareEmptyFilter", kV5, "82 0F 00 01 00 00 09 '$share/g/' 00", kProtocol},
        Case{"SubscribeShareEmptyName", kV5, "82 0F 00 01 00 00 09 '$share//a' 00", kProtocol},
        Case{"SubscribeShareNameWildcard", kV5, "82 11 00 01 00 00 0B '$share/g+/a' 00", kProtocol},
        Case{"SubscribeShareNoLocal", kV5, "82 10 00 01 00 00 0A '$share/g/a' 04", kProtocol},
        Case{"SubscribeSubscriptionId0", kV5, "82 09 00 01 02 0B 00 00 01 'p' 00", kProtocol},
        Case{"SubscribeDuplicateSubscriptionId", kV5, "82 0B 00 01 04 0B 01 0B 02 00 01 'p' 00",
             kProtocol},
        Case{"SubscribeTopicAliasProperty", kV5, "82 0A 00 01 03 23 00 01 00 01 'p' 00",
             kMalformed},
        Case{"SubackNoCodes", kV311, "90 02 00 01", kProtocol},
        Case{"SubackCode3", kV311, "90 03 00 01 03", kProtocol},
        Case{"SubackCode87_311", kV311, "90 03 00 01 87", kProtocol},
        Case{"SubackCode11V5", kV5, "90 04 00 01 00 11", kProtocol},
        Case{"SubackNoCodesV5", kV5, "90 03 00 01 00", kProtocol},
        Case{"SubackPacketId0", kV5, "90 04 00 00 00 00", kProtocol},
        Case{"UnsubscribeNoFilters", kV311, "A2 02 00 01", kProtocol},
        Case{"UnsubscribeNoFiltersV5", kV5, "A2 03 00 01 00", kProtocol},
        Case{"UnsubscribePacketId0", kV311, "A2 05 00 00 00 01 'p'", kProtocol},
        Case{"UnsubscribeEmptyFilter", kV311, "A2 04 00 01 00 00", kProtocol},
        Case{"UnsubscribeInvalidFilter", kV5, "A2 0A 00 01 00 00 05 'ab/+e'", kProtocol},
        Case{"UnsubscribeSurrogate", kV311, "A2 07 00 01 00 03 ED BF BF", kMalformed},
        Case{"UnsubscribeSubscriptionIdProperty", kV5, "A2 08 00 01 02 0B 01 00 01 'p'",
             kMalformed},
        Case{"UnsubackNoCodesV5", kV5, "B0 03 00 01 00", kProtocol},
        Case{"UnsubackCode01V5", kV5, "B0 04 00 01 00 01", kProtocol},
        Case{"UnsubackPacketId0", kV311, "B0 02 00 00", kProtocol}),
    [](const auto& info) { return std::string(info.param.name); });

// --- CONNECT (§3.1) and CONNACK (§3.2). ---------------------------------------------
// A wrong protocol name is not MQTT: malformed, closed without CONNACK
// [MQTT-3.1.2-1]; a known name with an unknown level gets 0x84.
constexpr ReasonCode kUnsupported = ReasonCode::kUnsupportedProtocolVersion;

INSTANTIATE_TEST_SUITE_P(
    Connect, Rejected,
    ::testing::Values(
        Case{"UnknownProtocolName", kV311, "10 0D 00 04 'MQTX' 04 02 00 0A 00 01 'p'",
             kMalformed},
        Case{"ShortProtocolName", kV311, "10 0C 00 03 'MQT' 04 02 00 0A 00 01 'p'", kMalformed},
        Case{"EmptyProtocolName", kV311, "10 09 00 00 04 02 00 0A 00 01 'p'", kMalformed},
        Case{"LowercaseProtocolName", kV311, "10 0D 00 04 'mqtt' 04 02 00 0A 00 01 'p'",
             kMalformed},
        Case{"MqttLevel3", kV311, "10 0D 00 04 'MQTT' 03 02 00 0A 00 01 'p'", kUnsupported},
        Case{"MqttLevel6", kV5, "10 0D 00 04 'MQTT' 06 02 00 0A 00 01 'p'", kUnsupported},
        Case{"MqttLevel2", kV311, "10 0D 00 04 'MQTT' 02 02 00 0A 00 01 'p'", kUnsupported},
        Case{"MqisdpLevel4", kV311, "10 0F 00 06 'MQIsdp' 04 02 00 0A 00 01 'p'", kUnsupported},
        Case{"ReservedConnectFlag", kV311, "10 0D 00 04 'MQTT' 04 03 00 0A 00 01 'p'", kMalformed},
        Case{"ReservedConnectFlagV5", kV5, "10 0E 00 04 'MQTT' 05 01 00 0A 00 00 01 'p'",
             kMalformed},
        Case{"WillQosWithoutWill", kV311, "10 0D 00 04 'MQTT' 04 0A 00 0A 00 01 'p'", kMalformed},
        Case{"WillQos2WithoutWill", kV5, "10 0E 00 04 'MQTT' 05 12 00 0A 00 00 01 'p'", kMalformed},
        Case{"WillRetainWithoutWill", kV311, "10 0D 00 04 'MQTT' 04 22 00 0A 00 01 'p'",
             kMalformed},
        Case{"WillQos3", kV311, "10 13 00 04 'MQTT' 04 1E 00 0A 00 01 'p' 00 01 't' 00 01 'x'",
             kMalformed},
        Case{"PasswordWithoutUserName311", kV311,
             "10 10 00 04 'MQTT' 04 42 00 0A 00 01 'p' 00 01 'x'", kProtocol},
        Case{"PasswordWithoutUserName31", kV31,
             "10 12 00 06 'MQIsdp' 03 42 00 0A 00 01 'p' 00 01 'x'", kProtocol},
        Case{"ClientIdInvalidUtf8", kV311, "10 0D 00 04 'MQTT' 04 02 00 0A 00 01 80", kMalformed},
        Case{"ClientIdNul", kV5, "10 10 00 04 'MQTT' 05 02 00 0A 00 00 03 'a' 00 'b'", kMalformed},
        Case{"UserNameSurrogate", kV311, "10 12 00 04 'MQTT' 04 82 00 0A 00 01 'p' 00 03 ED A0 80",
             kMalformed},
        Case{"WillTopicWildcard", kV311,
             "10 13 00 04 'MQTT' 04 06 00 0A 00 01 'p' 00 01 '#' 00 01 'x'", kProtocol},
        Case{"WillTopicEmpty", kV5,
             "10 14 00 04 'MQTT' 05 06 00 0A 00 00 01 'p' 00 00 00 00 01 'x'", kProtocol},
        Case{"WillTopicNul", kV311,
             "10 14 00 04 'MQTT' 04 06 00 0A 00 01 'p' 00 02 't' 00 00 01 'x'", kMalformed},
        Case{"ReceiveMaximum0", kV5, "10 11 00 04 'MQTT' 05 02 00 0A 03 21 00 00 00 01 'p'",
             kProtocol},
        Case{"MaximumPacketSize0", kV5,
             "10 13 00 04 'MQTT' 05 02 00 0A 05 27 00 00 00 00 00 01 'p'", kProtocol},
        Case{"DuplicateSessionExpiry", kV5,
             "10 18 00 04 'MQTT' 05 02 00 0A 0A 11 00 00 00 01 11 00 00 00 01 00 01 'p'",
             kProtocol},
        Case{"DuplicateAuthMethod", kV5,
             "10 16 00 04 'MQTT' 05 02 00 0A 08 15 00 01 'a' 15 00 01 'a' 00 01 'p'", kProtocol},
        Case{"RequestProblemInformation2", kV5, "10 10 00 04 'MQTT' 05 02 00 0A 02 17 02 00 01 'p'",
             kProtocol},
        Case{"RequestResponseInformation2", kV5,
             "10 10 00 04 'MQTT' 05 02 00 0A 02 19 02 00 01 'p'", kProtocol},
        Case{"AuthDataWithoutMethod", kV5,
             "10 12 00 04 'MQTT' 05 02 00 0A 04 16 00 01 'x' 00 01 'p'", kProtocol},
        Case{"TopicAliasInConnect", kV5, "10 11 00 04 'MQTT' 05 02 00 0A 03 23 00 01 00 01 'p'",
             kMalformed},
        Case{"WillDelayInConnectProperties", kV5,
             "10 13 00 04 'MQTT' 05 02 00 0A 05 18 00 00 00 01 00 01 'p'", kMalformed},
        Case{"SessionExpiryInWillProperties", kV5,
             "10 1A 00 04 'MQTT' 05 06 00 0A 00 00 01 'p' 05 11 00 00 00 01 00 01 't' 00 01 "
             "'x'",
             kMalformed},
        Case{"DuplicateWillDelay", kV5,
             "10 1F 00 04 'MQTT' 05 06 00 0A 00 00 01 'p' 0A 18 00 00 00 01 18 00 00 00 01 00 "
             "01 't' 00 01 'x'",
             kProtocol},
        Case{"ConnectPropertyLengthPastPacket", kV5, "10 0E 00 04 'MQTT' 05 02 00 0A 24 00 01 'p'",
             kMalformed},
        Case{"ConnackReservedFlags", kV311, "20 02 02 00", kMalformed},
        Case{"ConnackReservedFlagsV5", kV5, "20 03 80 00 00", kMalformed},
        Case{"ConnackReturnCode6", kV311, "20 02 00 06", kProtocol},
        Case{"ConnackSessionPresentOnRefusal", kV311, "20 02 01 05", kProtocol},
        Case{"ConnackSessionPresentOnRefusalV5", kV5, "20 03 01 87 00", kProtocol},
        Case{"ConnackReason01V5", kV5, "20 03 00 01 00", kProtocol},
        Case{"ConnackReasonFFV5", kV5, "20 03 00 FF 00", kProtocol},
        Case{"ConnackTopicAliasProperty", kV5, "20 06 00 00 03 23 00 01", kMalformed},
        Case{"ConnackMaximumQos2", kV5, "20 05 00 00 02 24 02", kProtocol},
        Case{"ConnackRetainAvailable2", kV5, "20 05 00 00 02 25 02", kProtocol},
        Case{"ConnackWildcardAvailable2", kV5, "20 05 00 00 02 28 02", kProtocol},
        Case{"ConnackSubscriptionIdAvailable2", kV5, "20 05 00 00 02 29 02", kProtocol},
        Case{"ConnackSharedAvailable2", kV5, "20 05 00 00 02 2A 02", kProtocol},
        Case{"ConnackReceiveMaximum0", kV5, "20 06 00 00 03 21 00 00", kProtocol},
        Case{"ConnackMaximumPacketSize0", kV5, "20 08 00 00 05 27 00 00 00 00", kProtocol}),
    [](const auto& info) { return std::string(info.param.name); });

// --- DISCONNECT (§3.14) and AUTH (§3.15). ------------------------------------------
INSTANTIATE_TEST_SUITE_P(
    DisconnectAuth, Rejected,
    ::testing::Values(
        Case{"DisconnectReason01", kV5, "E0 01 01", kProtocol},
        Case{"DisconnectReason05", kV5, "E0 01 05", kProtocol},
        Case{"DisconnectReason8A", kV5, "E0 01 8A", kProtocol},
        Case{"DisconnectPayloadFormatProperty", kV5, "E0 04 00 02 01 00", kMalformed},
        Case{"DisconnectPropertyId0", kV5, "E0 03 00 01 00", kMalformed},
        Case{"DisconnectDuplicateReasonString", kV5, "E0 0A 00 08 1F 00 01 'p' 1F 00 01 'q'",
             kProtocol},
        Case{"DisconnectPropertyPastBlock", kV5, "E0 03 00 01 11", kMalformed},
        Case{"DisconnectSessionExpiryShort", kV5, "E0 06 00 04 11 00 00 00", kMalformed},
        Case{"AuthReason01", kV5, "F0 02 01 00", kProtocol},
        Case{"AuthDataWithoutMethod", kV5, "F0 07 18 05 16 00 02 'ab'", kProtocol},
        Case{"AuthReasonStringDuplicate", kV5, "F0 0A 18 08 1F 00 01 'a' 1F 00 01 'b'", kProtocol},
        Case{"AuthUserPropertyMissing", kV5, "F0 03 18 01 26", kMalformed},
        Case{"AuthSubscriptionIdProperty", kV5, "F0 04 18 02 0B 01", kMalformed}),
    [](const auto& info) { return std::string(info.param.name); });

// --- Frame headers: the remaining length itself (§1.5.5, §2.1.4). --------------------
TEST(FrameRejected, RemainingLengthOfFiveBytes) {
  for (const char* spec : {"30 FF FF FF FF 7F", "30 80 80 80 80 01", "C0 80 80 80 80"}) {
    auto peek = peekFrame(B(spec));
    ASSERT_FALSE(peek.ok()) << spec;
    EXPECT_EQ(reasonCodeOf(peek.status()), ReasonCode::kMalformedPacket) << spec;
  }
}

TEST(FrameRejected, RemainingLengthNotInShortestForm) {
  for (const char* spec : {"C0 80 00", "30 81 80 00", "30 FF 80 80 00"}) {
    auto peek = peekFrame(B(spec));
    ASSERT_FALSE(peek.ok()) << spec;
    EXPECT_EQ(reasonCodeOf(peek.status()), ReasonCode::kMalformedPacket) << spec;
  }
}

TEST(FrameRejected, PacketBytesNotMatchingHeader) {
  const std::string bytes = B("C0 00");
  auto peek = peekFrame(bytes);
  ASSERT_TRUE(peek.ok() && peek->has_value());
  auto decoded = decodePacket(**peek, bytes + std::string(1, '\0'), kV311);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(reasonCodeOf(decoded.status()), ReasonCode::kMalformedPacket);
  decoded = decodePacket(**peek, bytes.substr(0, 1), kV311);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(reasonCodeOf(decoded.status()), ReasonCode::kMalformedPacket);
}

// Every proper prefix of a valid packet, framed as a whole packet, is either
// rejected as malformed / protocol error or is itself a valid packet that encodes
// back to exactly those bytes (a SUBSCRIBE cut after a complete filter): truncation
// never decodes into something else.
TEST(FrameRejected, TruncatedBodies) {
  const std::vector<std::pair<ProtocolVersion, std::string>> packets = {
      {kV311, B("10 27 00 04 'MQTT' 04 EC 00 3C 00 07 'client1' 00 03 'w/t' 00 03 'bye'"
                " 00 04 'user' 00 02 00 FF")},
      {kV5, B("32 35 00 03 'a/b' 00 07 28 01 01 02 00 00 00 1E 03 00 04 'json' 08 00 03 'res'"
              " 09 00 02 00 01 0B 01 0B C8 01 23 00 03 26 00 01 'k' 00 01 'v' 'hello'")},
      {kV5, B("82 20 00 0A 0A 0B AC 02 26 00 01 'k' 00 01 'v' 00 03 'a/+' 2D 00 0A"
              " '$share/g/x' 10")},
      {kV5, B("20 40 01 00 3D 12 00 03 'id1' 13 00 1E 15 00 01 'm' 16 00 01 'd'"
              " 1A 00 02 'ri' 1C 00 03 'srv' 1F 00 02 'ok' 21 00 0A 22 00 05 24 01 25 00"
              " 26 00 01 'x' 00 01 'y' 27 00 01 00 00 28 01 29 00 2A 01")},
  };
  for (const auto& [version, bytes] : packets) {
    // Keep the first byte and re-frame every shorter body. A PUBLISH may end
    // anywhere in its payload, so it is only cut inside its fields.
    const std::string body = bytes.substr(2);
    const bool publish = (static_cast<uint8_t>(bytes[0]) >> 4) == 3;
    const size_t fields_end = publish ? body.size() - 5 : body.size();
    for (size_t cut = 0; cut < fields_end; ++cut) {
      const std::string framed =
          testing::frame(static_cast<uint8_t>(bytes[0]), body.substr(0, cut));
      auto decoded = testing::decodeFrame(framed, version);
      if (decoded.ok()) {
        EXPECT_EQ(testing::hex(testing::encodeToBytes(*decoded, version)), testing::hex(framed))
            << "a " << cut << "-byte prefix decoded into something else";
        continue;
      }
      const ReasonCode rc = reasonCodeOf(decoded.status());
      EXPECT_TRUE(rc == ReasonCode::kMalformedPacket || rc == ReasonCode::kProtocolError)
          << testing::hex(framed) << ": " << decoded.status();
    }
  }
}

}  // namespace
}  // namespace gannet::codec
