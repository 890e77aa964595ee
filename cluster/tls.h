#pragma once
// TLS for the cluster port (mutual: each side presents a certificate signed by
// the cluster's CA and checks the other's). Optional: without certificate
// files the links rely on the shared secret alone (cluster/auth.h), which
// authenticates but does not encrypt.

#include <string>

#include "absl/status/statusor.h"

namespace gannet::cluster {

// --cluster_tls_cert_file / _key_file / _ca_file (gannet), --tls_*_file (gannetctl).
struct TlsFiles {
  std::string cert_file;  // PEM certificate chain of this node (or of gannetctl)
  std::string key_file;   // PEM private key
  std::string ca_file;    // PEM CA certificates that sign the other side's
  bool enabled() const { return !cert_file.empty() || !key_file.empty() || !ca_file.empty(); }
};

// The PEM contents.
struct TlsMaterial {
  std::string cert;
  std::string key;
  std::string ca;
};

// Reads the three files (all three are needed, or none). InvalidArgument naming
// the flag when one is missing, unreadable, or not PEM.
absl::StatusOr<TlsMaterial> loadTls(const TlsFiles& files, const std::string& flag_prefix);

}  // namespace gannet::cluster
