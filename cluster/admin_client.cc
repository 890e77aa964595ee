#include "cluster/admin_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "cluster/auth.h"
#include "cluster/credentials.h"
#include "proto/admin.grpc.pb.h"
#include "proto/cluster.grpc.pb.h"

namespace gannet::cluster {

absl::StatusOr<std::vector<MemberStatusView>> fetchStatus(const std::string& server,
                                                          const std::string& secret,
                                                          int64_t timeout_ms,
                                                          const std::optional<TlsMaterial>& tls) {
  auto channel = grpc::CreateChannel(server, channelCredentials(tls));
  auto stub = adminpb::Admin::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  ctx.AddMetadata("x-gannet-admin", adminToken(secret, now_ms));
  adminpb::StatusRequest request;
  adminpb::StatusReply reply;
  grpc::Status s = stub->Status(&ctx, request, &reply);
  if (!s.ok()) {
    const std::string what = absl::StrCat(server, ": ", s.error_message());
    switch (s.error_code()) {
      case grpc::StatusCode::UNAUTHENTICATED: return absl::UnauthenticatedError(what);
      case grpc::StatusCode::DEADLINE_EXCEEDED:
      case grpc::StatusCode::UNAVAILABLE:
        return absl::UnavailableError(
            absl::StrCat(server, ": no answer (is a gannet node's --cluster_listen there?): ",
                         s.error_message()));
      default: return absl::UnknownError(what);
    }
  }
  std::vector<MemberStatusView> out;
  for (const auto& m : reply.members()) {
    out.push_back({m.node_id(), m.cluster_address(), m.state(), m.incarnation(),
                   m.last_heard_ms_ago(), m.connections(), m.routes(), m.mqtt_address()});
  }
  return out;
}

}  // namespace gannet::cluster
