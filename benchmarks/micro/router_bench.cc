// TopicRouter micro-benchmarks: match() and subscribe() with 1,000,000 subscriptions
// installed, in the shape of an industrial telemetry fleet:
//   997,000 per-device filters, site/S/dev/D/temp (S < 997, D < 1000), of which 1% each
//           site/S/dev/D/+, site/S/+/D/temp and site/S/dev/D/# instead of exact;
//     1,000 site/S/#, 1,000 site/S/dev/+/temp, 1,000 site/+/dev/D/temp.
// A topic site/S/dev/D/temp then matches 4 filters of 4 different destinations.
// main() comes from benchmark::benchmark_main.
// The counters report memory per subscription (malloc'd bytes and RSS growth while
// filling) and the time taken to fill the router.

#include <benchmark/benchmark.h>
#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "broker/router/topic_router.h"

namespace gannet::router {
namespace {

constexpr int kSites = 1000;
constexpr int kDevices = 1000;
constexpr int kDeviceFilters = 997'000;

double rssBytes() {
  long pages = 0;
  long resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

double heapBytes() { return static_cast<double>(mallinfo2().uordblks); }

std::string deviceTopic(int site, int device) {
  return "site/" + std::to_string(site) + "/dev/" + std::to_string(device) + "/temp";
}

struct Fleet {
  std::unique_ptr<TopicRouter> router = std::make_unique<TopicRouter>();
  size_t subscriptions = 0;
  double rss_per_subscription = 0;
  double heap_per_subscription = 0;
  double fill_seconds = 0;

  explicit Fleet(int device_filters) {
    // Generate the strings first, so that their memory is not counted.
    std::vector<std::string> filters;
    filters.reserve(device_filters + 3 * kSites);
    for (int i = 0; i < device_filters; ++i) {
      const std::string site = std::to_string(i / kDevices);
      const std::string device = std::to_string(i % kDevices);
      switch (i % 100) {
        case 97: filters.push_back("site/" + site + "/dev/" + device + "/+"); break;
        case 98: filters.push_back("site/" + site + "/+/" + device + "/temp"); break;
        case 99: filters.push_back("site/" + site + "/dev/" + device + "/#"); break;
        default: filters.push_back("site/" + site + "/dev/" + device + "/temp"); break;
      }
    }
    for (int i = 0; i < kSites; ++i) {
      filters.push_back("site/" + std::to_string(i) + "/#");
      filters.push_back("site/" + std::to_string(i) + "/dev/+/temp");
      filters.push_back("site/+/dev/" + std::to_string(i) + "/temp");
    }
    const double rss_before = rssBytes();
    const double heap_before = heapBytes();
    const auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < filters.size(); ++i) {
      SubscriptionOptions options;
      options.qos = static_cast<uint8_t>(i % 3);
      router->subscribe(filters[i], Destination{i + 1, static_cast<uint32_t>(i % 8)}, options);
    }
    fill_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    subscriptions = router->subscriptionCount();
    heap_per_subscription = (heapBytes() - heap_before) / static_cast<double>(subscriptions);
    rss_per_subscription = (rssBytes() - rss_before) / static_cast<double>(subscriptions);
  }
};

// Built once, on first use, shared by every benchmark (and thread) below.
Fleet& bigFleet() {
  static Fleet* fleet = new Fleet(kDeviceFilters);
  return *fleet;
}
Fleet& smallFleet() {  // 1,000 device filters + 3,000 site/device wildcards
  static Fleet* fleet = new Fleet(1000);
  return *fleet;
}

void reportFleet(benchmark::State& state, const Fleet& fleet) {
  state.counters["subscriptions"] = static_cast<double>(fleet.subscriptions);
  state.counters["heap_B_per_sub"] = fleet.heap_per_subscription;
  // RSS only grows for a fresh heap: the 1M fleet is built first.
  if (fleet.subscriptions >= 100'000) state.counters["rss_B_per_sub"] = fleet.rss_per_subscription;
  state.counters["fill_s"] = fleet.fill_seconds;
}

// Uniformly random devices among sites x devices: the worst case for caches.
std::vector<std::string> randomDeviceTopics(int sites, int devices, size_t count) {
  std::mt19937 rng(7);
  std::vector<std::string> topics;
  for (size_t i = 0; i < count; ++i) {
    topics.push_back(
        deviceTopic(static_cast<int>(rng() % sites), static_cast<int>(rng() % devices)));
  }
  return topics;
}

void runMatch(benchmark::State& state, const Fleet& fleet, const std::vector<std::string>& topics) {
  std::vector<Delivery> out;
  size_t deliveries = 0;
  size_t i = state.thread_index() * 7919;
  for (auto _ : state) {
    out.clear();
    fleet.router->match(topics[i++ % topics.size()], /*publisher_session_id=*/0, out);
    deliveries += out.size();
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["deliveries_per_match"] = benchmark::Counter(
      static_cast<double>(deliveries) / static_cast<double>(state.iterations()),
      benchmark::Counter::kAvgThreads);
  if (state.thread_index() == 0) reportFleet(state, fleet);
}

// A device topic: matches 4 filters (4 destinations) among 1M; devices uniformly
// random over all 997k, so most trie nodes visited are cache misses.
void BM_MatchDeviceTopic_1M(benchmark::State& state) {
  Fleet& fleet = bigFleet();
  static const std::vector<std::string> topics =
      randomDeviceTopics(kDeviceFilters / kDevices, kDevices, 1 << 16);
  runMatch(state, fleet, topics);
}
BENCHMARK(BM_MatchDeviceTopic_1M)->Threads(1)->Threads(2)->UseRealTime();

// The same with a hot set of 10k devices (100 sites x 100 devices) publishing.
void BM_MatchDeviceTopicHotSet_1M(benchmark::State& state) {
  Fleet& fleet = bigFleet();
  static const std::vector<std::string> topics = randomDeviceTopics(100, 100, 1 << 16);
  runMatch(state, fleet, topics);
}
BENCHMARK(BM_MatchDeviceTopicHotSet_1M);

// The same shape with 4,000 subscriptions: the cost should not depend on the count.
void BM_MatchDeviceTopic_4k(benchmark::State& state) {
  Fleet& fleet = smallFleet();
  static const std::vector<std::string> topics = randomDeviceTopics(1, kDevices, 1 << 16);
  runMatch(state, fleet, topics);
}
BENCHMARK(BM_MatchDeviceTopic_4k);

// A topic only "site/S/#" matches (1 delivery).
void BM_MatchSiteWildcardOnly_1M(benchmark::State& state) {
  Fleet& fleet = bigFleet();
  static const std::vector<std::string> topics = [] {
    std::vector<std::string> t;
    for (int i = 0; i < 4096; ++i) t.push_back("site/" + std::to_string(i % kSites) + "/status");
    return t;
  }();
  runMatch(state, fleet, topics);
}
BENCHMARK(BM_MatchSiteWildcardOnly_1M);

// A topic no filter matches.
void BM_MatchNothing_1M(benchmark::State& state) {
  Fleet& fleet = bigFleet();
  static const std::vector<std::string> topics = {"factory/line/7/motor/rpm"};
  runMatch(state, fleet, topics);
}
BENCHMARK(BM_MatchNothing_1M);

// Subscribe then unsubscribe (node creation, then pruning) per iteration.
void BM_SubscribeUnsubscribe_1M(benchmark::State& state) {
  TopicRouter& router = *bigFleet().router;
  std::vector<std::string> filters;
  for (int i = 0; i < 4096; ++i) {
    filters.push_back("bench/" + std::to_string(i) + "/dev/" + std::to_string(i % 100) + "/temp");
  }
  size_t i = 0;
  for (auto _ : state) {
    const std::string& f = filters[i++ % filters.size()];
    router.subscribe(f, Destination{3'000'000, 1}, SubscriptionOptions{});
    router.unsubscribe(f, Destination{3'000'000, 1});
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SubscribeUnsubscribe_1M);

// New subscriptions into the 1M router, each a new 5-level path: a timed batch of
// 100k subscribes, then an untimed batch of unsubscribes that prunes them again.
// (PauseTiming around each subscribe would cost more than the subscribe.)
void BM_SubscribeBatch_1M(benchmark::State& state) {
  TopicRouter& router = *bigFleet().router;
  constexpr int kBatch = 100'000;
  std::vector<std::string> filters;
  for (int i = 0; i < kBatch; ++i) {
    filters.push_back("bench/" + std::to_string(i / 1000) + "/dev/" + std::to_string(i % 1000) +
                      "/temp");
  }
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) {
      router.subscribe(filters[i], Destination{4'000'000u + i, 0}, SubscriptionOptions{});
    }
    state.PauseTiming();
    for (int i = 0; i < kBatch; ++i) router.unsubscribe(filters[i], Destination{4'000'000u + i, 0});
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_SubscribeBatch_1M)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace gannet::router
