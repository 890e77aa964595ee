#include "base/logging.h"

#include <mutex>
#include <string>

#include <spdlog/sinks/stdout_sinks.h>

#include "absl/container/flat_hash_map.h"

namespace gannet::base {
namespace {

struct Registry {
  std::mutex mu;
  spdlog::sink_ptr sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  spdlog::level::level_enum level = spdlog::level::info;
  absl::flat_hash_map<std::string, std::shared_ptr<spdlog::logger>> loggers;
};

Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: loggers outlive static teardown
  return *r;
}

}  // namespace

spdlog::logger& logger(std::string_view module) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  auto it = r.loggers.find(std::string(module));
  if (it != r.loggers.end()) return *it->second;
  auto l = std::make_shared<spdlog::logger>(std::string(module), r.sink);
  l->set_pattern("%Y-%m-%dT%H:%M:%S.%e %L %n: %v");
  l->set_level(r.level);
  l->flush_on(spdlog::level::warn);
  auto& ref = *l;
  r.loggers.emplace(std::string(module), std::move(l));
  return ref;
}

absl::Status setLogLevel(std::string_view level) {
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(
        "log level must be one of trace, debug, info, warn, error, critical, off");
  }
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  r.level = lvl;
  for (auto& [name, l] : r.loggers) l->set_level(lvl);
  return absl::OkStatus();
}

}  // namespace gannet::base
