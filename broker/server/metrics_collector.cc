#include "broker/server/metrics_collector.h"

#include <unistd.h>

#include <fstream>
#include <string>

#include "base/clock.h"
#include "broker/server/node.h"

namespace gannet::server {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

void addValue(MetricFamily& f, double v, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f.type == MetricType::Counter) {
    m.counter.value = v;
  } else {
    m.gauge.value = v;
  }
  f.metric.push_back(std::move(m));
}

// Resident memory in bytes, from /proc/self/statm.
double residentBytes() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

}  // namespace

std::vector<MetricFamily> MetricsCollector::Collect() const {
  NodeTotals t = node_.totals();
  std::vector<MetricFamily> out;

  auto conns = family("gannet_connections", "MQTT connections currently open (after CONNACK)",
                      MetricType::Gauge);
  addValue(conns, static_cast<double>(t.connections_current));
  out.push_back(std::move(conns));

  auto accepted = family("gannet_connections_accepted_total", "TCP connections accepted",
                         MetricType::Counter);
  addValue(accepted, static_cast<double>(t.connections_accepted));
  out.push_back(std::move(accepted));

  auto sessions = family("gannet_sessions", "Sessions held (connected and offline)",
                         MetricType::Gauge);
  addValue(sessions, static_cast<double>(t.sessions));
  out.push_back(std::move(sessions));

  auto received = family("gannet_messages_received_total",
                         "PUBLISH packets received from clients, by QoS", MetricType::Counter);
  auto sent = family("gannet_messages_sent_total", "PUBLISH packets sent to clients, by QoS",
                     MetricType::Counter);
  for (int q = 0; q < 3; ++q) {
    addValue(received, static_cast<double>(t.messages_received[q]), {{"qos", std::to_string(q)}});
    addValue(sent, static_cast<double>(t.messages_sent[q]), {{"qos", std::to_string(q)}});
  }
  out.push_back(std::move(received));
  out.push_back(std::move(sent));

  auto bytes_in = family("gannet_received_bytes_total", "Bytes of MQTT packets received",
                         MetricType::Counter);
  addValue(bytes_in, static_cast<double>(t.bytes_received));
  out.push_back(std::move(bytes_in));
  auto bytes_out = family("gannet_sent_bytes_total", "Bytes of MQTT packets sent",
                          MetricType::Counter);
  addValue(bytes_out, static_cast<double>(t.bytes_sent));
  out.push_back(std::move(bytes_out));

  auto dropped = family("gannet_messages_dropped_total", "Messages not delivered, by reason",
                        MetricType::Counter);
  for (int r = 0; r < static_cast<int>(handlers::DropReason::kCount); ++r) {
    addValue(dropped, static_cast<double>(t.dropped[r]),
             {{"reason", handlers::dropReasonName(static_cast<handlers::DropReason>(r))}});
  }
  out.push_back(std::move(dropped));

  auto errors = family("gannet_protocol_errors_total",
                       "Connections closed for malformed packets or protocol errors",
                       MetricType::Counter);
  addValue(errors, static_cast<double>(t.protocol_errors));
  out.push_back(std::move(errors));

  auto subs = family("gannet_subscriptions", "Subscriptions in the router (shared included)",
                     MetricType::Gauge);
  addValue(subs, static_cast<double>(node_.router().subscriptionCount()));
  out.push_back(std::move(subs));

  auto retained = family("gannet_retained_messages", "Retained messages held", MetricType::Gauge);
  addValue(retained, static_cast<double>(node_.retained().size()));
  out.push_back(std::move(retained));

  auto uptime = family("gannet_uptime_seconds", "Seconds since the node started",
                       MetricType::Gauge);
  addValue(uptime, static_cast<double>(base::monotonicMs() - node_.startedAtMs()) / 1000.0);
  out.push_back(std::move(uptime));

  auto rss = family("gannet_process_resident_memory_bytes", "Resident memory of the process",
                    MetricType::Gauge);
  addValue(rss, residentBytes());
  out.push_back(std::move(rss));
  return out;
}

}  // namespace gannet::server
