#include "cluster/admin_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "cluster/auth.h"
#include "cluster/credentials.h"
#include "proto/admin.grpc.pb.h"
#include "proto/cluster.grpc.pb.h"

namespace gannet::cluster {

namespace {

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The client context of one admin call: deadline and token.
void prepare(grpc::ClientContext& ctx, const std::string& secret, int64_t timeout_ms) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  ctx.AddMetadata("x-gannet-admin", adminToken(secret, nowMs()));
}

absl::Status failure(const std::string& server, const grpc::Status& s) {
  const std::string what = absl::StrCat(server, ": ", s.error_message());
  switch (s.error_code()) {
    case grpc::StatusCode::UNAUTHENTICATED:
      return absl::UnauthenticatedError(
          absl::StrCat(server, " refused the call: ", s.error_message()));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::UNAVAILABLE:
      return absl::UnavailableError(
          absl::StrCat(server, ": no answer (is a gannet node's --cluster_listen there?): ",
                       s.error_message()));
    default: return absl::UnknownError(what);
  }
}

}  // namespace

absl::StatusOr<uint64_t> startDrain(const std::string& server, const std::string& secret,
                                    int64_t timeout_ms, const std::optional<TlsMaterial>& tls) {
  auto stub = adminpb::Admin::NewStub(grpc::CreateChannel(server, channelCredentials(tls)));
  grpc::ClientContext ctx;
  prepare(ctx, secret, timeout_ms);
  adminpb::DrainRequest request;
  adminpb::DrainReply reply;
  if (grpc::Status s = stub->Drain(&ctx, request, &reply); !s.ok()) return failure(server, s);
  if (reply.already_draining()) {
    return absl::AlreadyExistsError(absl::StrCat(server, " is draining already (",
                                                 reply.sessions(), " sessions when it started)"));
  }
  return reply.sessions();
}

absl::StatusOr<KickReplyView> kickClient(const std::string& server, const std::string& secret,
                                         const std::string& client_id, bool end_session,
                                         int64_t timeout_ms,
                                         const std::optional<TlsMaterial>& tls) {
  auto stub = adminpb::Admin::NewStub(grpc::CreateChannel(server, channelCredentials(tls)));
  grpc::ClientContext ctx;
  prepare(ctx, secret, timeout_ms);
  adminpb::KickRequest request;
  request.set_client_id(client_id);
  request.set_end_session(end_session);
  adminpb::KickReply reply;
  if (grpc::Status s = stub->Kick(&ctx, request, &reply); !s.ok()) return failure(server, s);
  return KickReplyView{reply.connected(), reply.session_found(), reply.session_ended()};
}

absl::StatusOr<std::vector<MemberStatusView>> fetchStatus(const std::string& server,
                                                          const std::string& secret,
                                                          int64_t timeout_ms,
                                                          const std::optional<TlsMaterial>& tls) {
  auto stub = adminpb::Admin::NewStub(grpc::CreateChannel(server, channelCredentials(tls)));
  grpc::ClientContext ctx;
  prepare(ctx, secret, timeout_ms);
  adminpb::StatusRequest request;
  adminpb::StatusReply reply;
  if (grpc::Status s = stub->Status(&ctx, request, &reply); !s.ok()) return failure(server, s);
  std::vector<MemberStatusView> out;
  for (const auto& m : reply.members()) {
    out.push_back({m.node_id(), m.cluster_address(), m.state(), m.incarnation(),
                   m.last_heard_ms_ago(), m.connections(), m.routes(), m.mqtt_address(),
                   m.sessions()});
  }
  return out;
}

}  // namespace gannet::cluster
