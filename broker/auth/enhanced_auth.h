#pragma once
// The MQTT 5 enhanced authentication hook (§4.12): where a method such as
// SCRAM or a token check plugs in. Gannet ships no method: without one
// (BrokerConfig::enhanced_auth null, the default) a CONNECT carrying an
// Authentication Method is refused with CONNACK 0x8C Bad authentication method,
// as Mosquitto does without a plugin.
//
// What is wired: single-round methods. The CONNECT's Authentication Method and
// Data go to start(); kSuccess accepts the CONNECT (its `data`, if any, goes
// back in the CONNACK's Authentication Data, and `username`, if set, is who the
// client is for the ACL), kFail refuses it with `reason` (0x87 Not authorized
// by default). The check runs before anything of the client is kept, in place
// of the password file for that CONNECT.
// Not wired yet: kContinue (an AUTH 0x18 exchange before the CONNACK) and
// re-authentication (AUTH 0x19 on a connected client); a method that answers
// kContinue is refused with 0x8C.
//
// Implementations are shared by every worker thread: start() must be
// thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gannet::auth {

struct AuthStep {
  enum class Kind : uint8_t { kSuccess, kContinue, kFail };
  Kind kind = Kind::kFail;
  std::string data;                 // Authentication Data for the client
  std::optional<std::string> username;  // kSuccess: the client's identity
  uint8_t reason = 0x87;            // kFail: CONNACK reason code
};

class EnhancedAuth {
 public:
  virtual ~EnhancedAuth() = default;
  // Whether `method` (the CONNECT's Authentication Method) is offered.
  virtual bool supports(std::string_view method) const = 0;
  // The first (and, for single-round methods, only) step of a CONNECT.
  virtual AuthStep start(std::string_view method, std::string_view data,
                         std::string_view client_id,
                         const std::optional<std::string>& username) const = 0;
};

}  // namespace gannet::auth
