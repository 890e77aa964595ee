#include "cluster/tls.h"

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace gannet::cluster {
namespace {

absl::StatusOr<std::string> readPem(const std::string& path, const std::string& flag) {
  if (path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " is missing: TLS needs a certificate, its key and the CA"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--", flag, ": cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  std::string pem = text.str();
  if (!absl::StrContains(pem, "-----BEGIN ")) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", path, " is not a PEM file"));
  }
  return pem;
}

}  // namespace

absl::StatusOr<TlsMaterial> loadTls(const TlsFiles& files, const std::string& flag_prefix) {
  TlsMaterial m;
  auto cert = readPem(files.cert_file, flag_prefix + "cert_file");
  if (!cert.ok()) return cert.status();
  auto key = readPem(files.key_file, flag_prefix + "key_file");
  if (!key.ok()) return key.status();
  auto ca = readPem(files.ca_file, flag_prefix + "ca_file");
  if (!ca.ok()) return ca.status();
  m.cert = std::move(*cert);
  m.key = std::move(*key);
  m.ca = std::move(*ca);
  return m;
}

}  // namespace gannet::cluster
