#include "broker/handlers/stats.h"

namespace gannet::handlers {

const char* dropReasonName(DropReason r) {
  switch (r) {
    case DropReason::kQueueFull: return "queue_full";
    case DropReason::kSlowConsumer: return "slow_consumer";
    case DropReason::kExpired: return "expired";
    case DropReason::kTooLarge: return "too_large";
    case DropReason::kNoSubscribers: return "no_subscribers";
    case DropReason::kOffline: return "offline_qos0";
    case DropReason::kStoreMissing: return "store_missing";
    case DropReason::kNodeDown: return "node_down";
    case DropReason::kStoreFull: return "store_full";
    case DropReason::kCount: break;
  }
  return "unknown";
}

}  // namespace gannet::handlers
