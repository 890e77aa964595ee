#pragma once
// gRPC credentials from the cluster's TLS material (internal to cluster/).

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <optional>

#include "cluster/tls.h"

namespace gannet::cluster {

// Mutual TLS when `tls` is set (client certificates required and verified
// against its CA), else plaintext.
inline std::shared_ptr<grpc::ServerCredentials> serverCredentials(
    const std::optional<TlsMaterial>& tls) {
  if (!tls) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions o(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  o.pem_root_certs = tls->ca;
  o.pem_key_cert_pairs.push_back({tls->key, tls->cert});
  return grpc::SslServerCredentials(o);
}

inline std::shared_ptr<grpc::ChannelCredentials> channelCredentials(
    const std::optional<TlsMaterial>& tls) {
  if (!tls) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = tls->ca;
  o.pem_private_key = tls->key;
  o.pem_cert_chain = tls->cert;
  return grpc::SslCredentials(o);
}

}  // namespace gannet::cluster
