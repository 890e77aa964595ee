#pragma once
// Output of a run: the machine-readable RESULT line and latency percentiles.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gannet::loadgen {

// "RESULT scenario=NAME key=value ...": one line, no spaces inside values, so
// that scripts can pick fields with sed/awk.
class ResultLine {
 public:
  explicit ResultLine(std::string_view scenario);
  ResultLine& add(std::string_view key, double value, int decimals);
  ResultLine& add(std::string_view key, int64_t value);
  ResultLine& add(std::string_view key, std::string_view value);
  const std::string& str() const { return line_; }

 private:
  std::string line_;
};

struct LatencySummary {
  size_t count = 0;
  double p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0, mean_us = 0;
};

// Nearest-rank percentiles of nanosecond samples. Sorts `samples_ns`.
LatencySummary summarize(std::vector<int64_t>& samples_ns);

// 1234567.8 -> "1,234,568": figures people read.
std::string withCommas(double value);

}  // namespace gannet::loadgen
