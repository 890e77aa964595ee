#include "benchmarks/loadgen/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace gannet::loadgen {

ResultLine::ResultLine(std::string_view scenario) {
  line_ = "RESULT scenario=";
  line_ += scenario;
}

ResultLine& ResultLine::add(std::string_view key, double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, value);
  return add(key, std::string_view(buf));
}

ResultLine& ResultLine::add(std::string_view key, int64_t value) {
  return add(key, std::string_view(std::to_string(value)));
}

ResultLine& ResultLine::add(std::string_view key, std::string_view value) {
  line_ += ' ';
  line_ += key;
  line_ += '=';
  line_ += value;
  return *this;
}

LatencySummary summarize(std::vector<int64_t>& samples_ns) {
  LatencySummary s;
  s.count = samples_ns.size();
  if (s.count == 0) return s;
  std::sort(samples_ns.begin(), samples_ns.end());
  auto rank = [&](double q) {
    size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(s.count)));
    i = std::clamp<size_t>(i, 1, s.count) - 1;
    return samples_ns[i] / 1e3;
  };
  s.p50_us = rank(0.50);
  s.p99_us = rank(0.99);
  s.p999_us = rank(0.999);
  s.max_us = samples_ns.back() / 1e3;
  double sum = 0;
  for (int64_t v : samples_ns) sum += static_cast<double>(v);
  s.mean_us = sum / static_cast<double>(s.count) / 1e3;
  return s;
}

std::string withCommas(double value) {
  std::string digits = std::to_string(static_cast<long long>(std::llround(value)));
  std::string out;
  size_t start = digits[0] == '-' ? 1 : 0;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > start && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace gannet::loadgen
