#include "cluster/cluster_node.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "base/logging.h"
#include "cluster/auth.h"
#include "cluster/credentials.h"
#include "proto/admin.grpc.pb.h"
#include "proto/cluster.grpc.pb.h"

namespace gannet::cluster {
namespace {

constexpr size_t kNonceBytes = 16;
constexpr int64_t kMaxBackoffMs = 2000;

spdlog::logger& log() { return base::logger("cluster"); }

int64_t wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

PeerReport reportOf(const clusterpb::Heartbeat& hb) {
  PeerReport r{hb.incarnation(), hb.connections(), hb.routes(), hb.mqtt_address(), hb.draining(),
               hb.sessions(), {}};
  for (const clusterpb::ReplicaState& s : hb.replicas()) {
    r.replicas.push_back({s.owner(), s.epoch(), s.promoted()});
  }
  return r;
}

// The WireMessage fields of proto RetainedEntry.
template <typename Proto>
void wireToProto(WireMessage&& w, Proto* out) {
  out->set_topic(std::move(w.topic));
  out->set_payload(std::move(w.payload));
  out->set_qos(w.qos);
  if (!w.properties.empty()) out->set_properties(std::move(w.properties));
  if (w.expiry_in_ms != 0) out->set_expiry_in_ms(w.expiry_in_ms);
}

template <typename Proto>
void wireFromProto(Proto& in, WireMessage* w) {
  w->topic = std::move(*in.mutable_topic());
  w->payload = std::move(*in.mutable_payload());
  w->qos = static_cast<uint8_t>(std::min<uint32_t>(in.qos(), 2));
  w->properties = std::move(*in.mutable_properties());
  w->expiry_in_ms = in.expiry_in_ms();
}

void toProto(RetainedEntry e, clusterpb::RetainedEntry* out) {
  out->set_cleared(e.cleared);
  out->set_hlc(e.hlc);
  out->set_origin_node(e.origin_node);
  if (e.cleared) {
    out->set_topic(std::move(e.topic));
  } else {
    wireToProto(std::move(e), out);
  }
}

}  // namespace

// --- inbound links: peers that dialled us ---

class ClusterNode::LinkService final : public clusterpb::Cluster::Service {
 public:
  explicit LinkService(ClusterNode& node) : node_(node) {}

  grpc::Status Link(grpc::ServerContext* ctx,
                    grpc::ServerReaderWriter<clusterpb::LinkMessage, clusterpb::LinkMessage>* stream)
      override {
    const ClusterOptions& o = node_.options_;
    clusterpb::LinkMessage in;
    if (!stream->Read(&in) || !in.has_hello()) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "expected Hello"};
    }
    const clusterpb::Hello hello = in.hello();
    const uint32_t peer = hello.node_id();
    auto refuse = [&](const std::string& reason) {
      log().warn("refused a link from {} (says node {}): {}", ctx->peer(), peer, reason);
      clusterpb::LinkMessage out;
      out.mutable_refused()->set_reason(reason);
      stream->Write(out);
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, reason);
    };
    if (peer == o.node_id) {
      return refuse(absl::StrCat("node id ", peer, " is this node's own: two nodes have --node_id=",
                                 peer));
    }
    if (!node_.membership_.isPeer(peer)) {
      return refuse(absl::StrCat("node ", peer, " is not in this node's --peers"));
    }
    if (hello.expected_node_id() != o.node_id) {
      return refuse(absl::StrCat("dialled as node ", hello.expected_node_id(), ", but this is node ",
                                 o.node_id, ": check --peers"));
    }
    const std::string nonce = randomBytes(kNonceBytes);
    clusterpb::LinkMessage welcome;
    auto* w = welcome.mutable_welcome();
    w->set_node_id(o.node_id);
    w->set_incarnation(node_.incarnation_);
    w->set_nonce(nonce);
    w->set_proof(linkProof(o.secret, "acceptor", hello.nonce(), peer, o.node_id));
    if (!stream->Write(welcome)) return grpc::Status::OK;
    if (!stream->Read(&in)) {
      // The dialer hung up instead of proving itself: it did not accept our
      // proof, so it has another secret (it logs that too).
      log().warn("link from node {} ({}) ended in the handshake: does it have another cluster "
                 "secret?", peer, ctx->peer());
      return grpc::Status::OK;
    }
    if (!in.has_auth() ||
        !proofsEqual(in.auth().proof(), linkProof(o.secret, "dialer", nonce, peer, o.node_id))) {
      return refuse("wrong cluster secret");
    }
    node_.membership_.heardIncarnation(peer, hello.incarnation(), base::monotonicMs());
    log().debug("inbound link from node {} ({}) up", peer, ctx->peer());
    // Its counters are kept with the dialer of the way back.
    Dialer* from = node_.dialers_ready_.load(std::memory_order_acquire) ? node_.dialerFor(peer)
                                                                         : nullptr;
    if (Dialer* d = node_.dialerFor(peer)) {  // it is up: dial it back now, not after a backoff
      std::lock_guard lock(d->mu);
      d->retry_now = true;
      d->cv.notify_all();
    }
    while (stream->Read(&in)) {
      if (in.has_heartbeat()) {
        PeerReport report = reportOf(in.heartbeat());
        std::vector<ReplicaState> replicas = report.replicas;
        node_.membership_.heard(peer, std::move(report), base::monotonicMs());
        node_.host_.onPeerReplicas(peer, std::move(replicas));
        clusterpb::LinkMessage out;
        *out.mutable_heartbeat() = node_.heartbeat();  // no route count: see Membership::heard
        if (!stream->Write(out)) break;
      } else if (in.has_routes()) {
        node_.applyRoutes(peer, in.routes());
      } else if (in.has_forward_ack()) {
        node_.applyForwardAck(peer, in.forward_ack());
      } else if (in.has_retained()) {
        std::vector<RetainedEntry> entries;
        for (auto& e : *in.mutable_retained()->mutable_entries()) {
          RetainedEntry r;
          wireFromProto(e, &r);
          r.retain = true;
          r.cleared = e.cleared();
          r.hlc = e.hlc();
          r.origin_node = e.origin_node();
          entries.push_back(std::move(r));
        }
        node_.host_.onRetained(std::move(entries));
      } else if (in.has_forward()) {
        if (from == nullptr && node_.dialers_ready_.load(std::memory_order_acquire)) {
          from = node_.dialerFor(peer);  // the link came up while start() ran
        }
        if (from != nullptr) from->received.fetch_add(in.forward().count(), std::memory_order_relaxed);
        node_.host_.onForward(peer, std::move(*in.mutable_forward()->mutable_packed()),
                              in.forward().on_behalf_of());
      } else if (in.has_claim()) {
        clusterpb::SessionClaim& c = *in.mutable_claim();
        node_.host_.onSessionClaim(peer, c.request_id(), std::move(*c.mutable_client_id()),
                                   c.stamp(), c.pull());
      } else if (in.has_handover()) {
        node_.applyHandover(peer, *in.mutable_handover());
      } else if (in.has_handover_done()) {
        clusterpb::HandoverDone& d = *in.mutable_handover_done();
        node_.host_.onHandoverDone(std::move(*d.mutable_client_id()), d.handover_id());
      } else if (in.has_pull()) {
        node_.host_.onSessionPull(peer, std::move(*in.mutable_pull()->mutable_client_id()));
      } else if (in.has_append()) {
        clusterpb::SessionAppend& a = *in.mutable_append();
        node_.host_.onSessionAppend(peer, std::move(*a.mutable_client_id()), a.handover_id(),
                                    std::move(*a.mutable_session()));
      } else if (in.has_replica()) {
        // Answered on this stream, from this thread: no hand-off to the link
        // the other way (the dialer's reader delivers it to the replicating node).
        clusterpb::ReplicaBatch& r = *in.mutable_replica();
        const bool stored = node_.host_.onReplicaBatch(peer, r.epoch(), r.worker(), r.sequence(),
                                                       r.snapshot(),
                                                       std::move(*r.mutable_operations()));
        clusterpb::LinkMessage out;
        auto* a = out.mutable_replica_ack();
        a->set_epoch(r.epoch());
        a->set_worker(r.worker());
        a->set_sequence(r.sequence());
        a->set_ok(stored);
        if (!stream->Write(out)) break;
      } else if (in.has_prepare()) {
        if (node_.acceptor_) node_.answerPrepare(peer, in);
      } else if (in.has_accept()) {
        if (node_.acceptor_) node_.answerAccept(peer, in);
      } else if (in.has_promise()) {
        node_.roundAnswered(peer, in.promise().request_id(), in);
      } else if (in.has_accepted()) {
        node_.roundAnswered(peer, in.accepted().request_id(), in);
      }
    }
    log().debug("inbound link from node {} closed", peer);
    return grpc::Status::OK;
  }

 private:
  ClusterNode& node_;
};

// --- admin API (gannetctl) ---

// Every method starts with authenticate(): the admin token (cluster/auth.h)
// is checked before anything else, for each call (a new method must do the
// same; tests/cluster/test_admin_kick.py calls each one with a wrong secret).
class ClusterNode::AdminService final : public adminpb::Admin::Service {
 public:
  explicit AdminService(ClusterNode& node) : node_(node) {}

  grpc::Status Drain(grpc::ServerContext* ctx, const adminpb::DrainRequest*,
                     adminpb::DrainReply* reply) override {
    if (grpc::Status s = authenticate(ctx); !s.ok()) return s;
    uint64_t sessions = 0;
    reply->set_already_draining(!node_.host_.startDrain(&sessions));
    reply->set_sessions(sessions);
    return grpc::Status::OK;
  }

  grpc::Status Kick(grpc::ServerContext* ctx, const adminpb::KickRequest* request,
                    adminpb::KickReply* reply) override {
    if (grpc::Status s = authenticate(ctx); !s.ok()) return s;
    if (request->client_id().empty()) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "kick: the client id is empty"};
    }
    absl::StatusOr<KickOutcome> done =
        node_.host_.kick(request->client_id(), request->end_session());
    if (!done.ok()) {
      // Not UNAVAILABLE: the node answered (gannetctl says "no answer" for that).
      return {grpc::StatusCode::ABORTED, std::string(done.status().message())};
    }
    log().info("admin: kick '{}'{}: {}", request->client_id(),
               request->end_session() ? " (end session)" : "",
               done->connected ? "disconnected" : "not connected here");
    reply->set_connected(done->connected);
    reply->set_session_found(done->session_found);
    reply->set_session_ended(done->session_ended);
    return grpc::Status::OK;
  }

  grpc::Status Status(grpc::ServerContext* ctx, const adminpb::StatusRequest*,
                      adminpb::StatusReply* reply) override {
    if (grpc::Status s = authenticate(ctx); !s.ok()) return s;
    const ClusterOptions& o = node_.options_;
    auto* self = reply->add_members();
    self->set_node_id(o.node_id);
    self->set_cluster_address(o.listen);
    self->set_state(node_.host_.draining() ? "draining" : "self");
    self->set_sessions(node_.host_.sessions());
    self->set_incarnation(node_.incarnation_);
    self->set_last_heard_ms_ago(0);
    self->set_connections(node_.host_.connections());
    self->set_routes(node_.routeCount());
    self->set_mqtt_address(node_.mqtt_address_);
    const int64_t now = base::monotonicMs();
    for (const MemberView& v : node_.membership_.snapshot()) {
      auto* m = reply->add_members();
      m->set_node_id(v.peer.id);
      m->set_cluster_address(v.peer.address);
      m->set_state(v.state == MemberState::kAlive && v.report.draining
                       ? "draining"
                       : std::string(memberStateName(v.state)));
      m->set_sessions(v.report.sessions);
      m->set_incarnation(v.report.incarnation);
      m->set_last_heard_ms_ago(v.last_heard_ms == 0 ? -1 : now - v.last_heard_ms);
      m->set_connections(v.report.connections);
      m->set_routes(v.report.routes);
      m->set_mqtt_address(v.report.mqtt_address);
    }
    return grpc::Status::OK;
  }

 private:
  grpc::Status authenticate(grpc::ServerContext* ctx) {
    const auto& md = ctx->client_metadata();
    auto it = md.find("x-gannet-admin");
    if (it == md.end() ||
        !adminTokenValid(node_.options_.secret, std::string(it->second.data(), it->second.size()),
                         wallMs())) {
      return {grpc::StatusCode::UNAUTHENTICATED,
              "not authenticated: give gannetctl the cluster secret (--cluster_secret_file), and "
              "check that both clocks agree within 5 minutes"};
    }
    return grpc::Status::OK;
  }

  ClusterNode& node_;
};

// --- ClusterNode ---

ClusterNode::ClusterNode(ClusterOptions options, ClusterHost& host)
    : options_(std::move(options)),
      host_(host),
      mqtt_address_(options_.mqtt_address),
      incarnation_(static_cast<uint64_t>(wallMs())),
      membership_(options_.peers, options_.timeouts) {}

ClusterNode::~ClusterNode() { stop(); }

clusterpb::Heartbeat ClusterNode::heartbeat() {
  clusterpb::Heartbeat hb;
  hb.set_incarnation(incarnation_);
  hb.set_connections(host_.connections());
  hb.set_mqtt_address(mqtt_address_);
  hb.set_draining(host_.draining());
  hb.set_sessions(host_.sessions());
  for (const ReplicaState& r : host_.replicaStates()) {
    auto* s = hb.add_replicas();
    s->set_owner(r.owner);
    s->set_epoch(r.epoch);
    s->set_promoted(r.promoted);
  }
  return hb;
}

absl::StatusOr<uint16_t> ClusterNode::start() {
  if (options_.secret.empty()) {
    return absl::InvalidArgumentError(
        "a cluster needs a shared secret: --cluster_secret_file=FILE (or --cluster_secret)");
  }
  link_service_ = std::make_unique<LinkService>(*this);
  admin_service_ = std::make_unique<AdminService>(*this);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options_.listen, serverCredentials(options_.tls), &port);
  builder.RegisterService(link_service_.get());
  builder.RegisterService(admin_service_.get());
  builder.SetMaxReceiveMessageSize(64 << 20);
  // gRPC binds with SO_REUSEPORT by default: a second process (or this node's
  // own MQTT listener, which also uses it) could then share the port and get
  // half the peers' links. A port in use must fail the start instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on --cluster_listen=", options_.listen,
                                               " (address in use, or not an address of this host)"));
  }
  for (const PeerAddress& p : options_.peers) {
    auto d = std::make_unique<Dialer>();
    d->peer = p;
    dialers_.push_back(std::move(d));
  }
  dialers_ready_.store(true, std::memory_order_release);
  for (auto& d : dialers_) {
    Dialer* raw = d.get();
    raw->thread = std::thread([this, raw] { dial(*raw); });
  }
  monitor_ = std::thread([this] { monitor(); });
  const size_t colon = options_.listen.rfind(':');
  log().info("cluster listener on {}:{} (node {}, incarnation {}, {} peers)",
             options_.listen.substr(0, colon), port, options_.node_id, incarnation_,
             options_.peers.size());
  return static_cast<uint16_t>(port);
}

void ClusterNode::stop() {
  if (stopping_.exchange(true)) return;
  {
    std::lock_guard lock(stop_mu_);
  }
  stop_cv_.notify_all();
  for (auto& d : dialers_) {
    std::lock_guard lock(d->mu);
    cancel(*d);
    d->cv.notify_all();
  }
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  for (auto& d : dialers_) {
    if (d->thread.joinable()) d->thread.join();
  }
  if (monitor_.joinable()) monitor_.join();
  if (server_) server_->Wait();
}

void ClusterNode::cancel(Dialer& d) {
  if (d.context != nullptr) d.context->TryCancel();
}

void ClusterNode::dial(Dialer& d) {
  int64_t backoff_ms = 100;
  auto sleep_for = [&](int64_t ms) {
    std::unique_lock lock(d.mu);
    d.cv.wait_for(lock, std::chrono::milliseconds(ms),
                  [&] { return stopping_.load() || d.retry_now; });
    d.retry_now = false;
  };
  auto failed = [&](const std::string& why) {
    std::lock_guard lock(d.mu);
    if (why != d.last_error) {
      log().warn("link to node {} at {}: {}", d.peer.id, d.peer.address, why);
      d.last_error = why;
    }
  };
  while (!stopping_) {
    // A new channel per attempt: the peer's name is resolved again (a restarted
    // Kubernetes pod comes back with another IP).
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(kMaxBackoffMs));
    args.SetMaxReceiveMessageSize(64 << 20);
    auto channel = grpc::CreateCustomChannel(d.peer.address, channelCredentials(options_.tls), args);
    auto stub = clusterpb::Cluster::NewStub(channel);
    grpc::ClientContext ctx;
    {
      std::lock_guard lock(d.mu);
      if (stopping_) break;
      d.context = &ctx;
      d.attempt_started_ms = base::monotonicMs();
    }
    auto stream = stub->Link(&ctx);
    const std::string nonce = randomBytes(kNonceBytes);
    clusterpb::LinkMessage out;
    auto* hello = out.mutable_hello();
    hello->set_node_id(options_.node_id);
    hello->set_incarnation(incarnation_);
    hello->set_nonce(nonce);
    hello->set_expected_node_id(d.peer.id);
    clusterpb::LinkMessage in;
    bool up = false;
    if (!stream->Write(out) || !stream->Read(&in)) {
      failed("unreachable");
    } else if (in.has_refused()) {
      failed(absl::StrCat("refused: ", in.refused().reason()));
    } else if (!in.has_welcome() || in.welcome().node_id() != d.peer.id) {
      failed(absl::StrCat("answered as node ", in.welcome().node_id(), ", not ", d.peer.id,
                          ": check --peers"));
    } else if (!proofsEqual(in.welcome().proof(), linkProof(options_.secret, "acceptor", nonce,
                                                            options_.node_id, d.peer.id))) {
      failed("the peer does not know the cluster secret (wrong --cluster_secret)");
    } else {
      clusterpb::LinkMessage auth;
      auth.mutable_auth()->set_proof(
          linkProof(options_.secret, "dialer", in.welcome().nonce(), options_.node_id, d.peer.id));
      up = stream->Write(auth);
      if (!up) failed("unreachable");
    }
    if (up) {
      membership_.heardIncarnation(d.peer.id, in.welcome().incarnation(), base::monotonicMs());
      {
        std::lock_guard lock(d.mu);
        d.attempt_started_ms = 0;
        if (!d.last_error.empty()) {
          log().info("link to node {} at {} up", d.peer.id, d.peer.address);
          d.last_error.clear();
        }
      }
      backoff_ms = 100;
      // The route table as of now, then (in order) every change after it.
      clusterpb::LinkMessage snapshot;
      {
        std::lock_guard routes(routes_mu_);
        auto* r = snapshot.mutable_routes();
        r->set_epoch((incarnation_ << 20) | (++links_opened_ & 0xFFFFF));
        r->set_snapshot(true);
        for (const auto& [filter, count] : local_routes_) r->add_add(filter);
        std::lock_guard lock(d.mu);
        d.live = true;
        d.epoch = r->epoch();
        // Forwards kept while the link was down go after the snapshot.
        std::erase_if(d.outbox, [](const clusterpb::LinkMessage& m) {
          return m.has_routes() || m.has_retained();
        });
      }
      {
        // Every retained message this node has, after the link went live: a
        // change made meanwhile may arrive twice, which last-writer-wins absorbs.
        std::vector<RetainedEntry> all = host_.retainedSnapshot();
        std::lock_guard lock(d.mu);
        for (size_t i = 0; i < all.size(); i += 1000) {
          auto* u = d.outbox.emplace_back().mutable_retained();
          for (size_t k = i; k < std::min(all.size(), i + 1000); ++k) toProto(std::move(all[k]), u->add_entries());
        }
      }
      host_.onLinkChanged(d.peer.id, true);
      std::atomic<bool> reader_done{false};
      std::thread reader([&] {
        clusterpb::LinkMessage m;
        while (stream->Read(&m)) {
          if (m.has_replica_ack()) {
            const clusterpb::ReplicaAck& a = m.replica_ack();
            {
              std::lock_guard lock(d.mu);
              replicaAnswered(d, a.epoch(), a.worker(), a.sequence());
            }
            host_.onReplicaAck(d.peer.id, a.epoch(), a.worker(), a.sequence(), a.ok());
          } else if (m.has_heartbeat()) {
            // An answer on our stream: its route count may be ahead of the route
            // updates the peer sends on its own stream.
            membership_.heard(d.peer.id, reportOf(m.heartbeat()), base::monotonicMs(),
                              /*routes=*/false);
          }
        }
        reader_done = true;
        std::lock_guard lock(d.mu);
        d.cv.notify_all();
      });
      bool ok = stream->Write(snapshot);
      int64_t next_heartbeat = 0;
      std::vector<clusterpb::LinkMessage> batch;
      while (ok && !stopping_ && !reader_done) {
        {
          std::unique_lock lock(d.mu);
          const int64_t wait = std::max<int64_t>(0, next_heartbeat - base::monotonicMs());
          d.cv.wait_for(lock, std::chrono::milliseconds(wait),
                        [&] { return stopping_.load() || reader_done.load() || !d.outbox.empty(); });
        }
        clusterpb::LinkMessage hb;
        const bool heartbeat_due = base::monotonicMs() >= next_heartbeat;
        {
          // The heartbeat's route count and the deltas taken with it agree: the
          // peer applies those deltas before it reads that count.
          std::lock_guard routes(routes_mu_);
          std::lock_guard lock(d.mu);
          batch.swap(d.outbox);
          d.forwarded += d.pending_forwards;
          d.pending_forwards = 0;
          if (!d.outbox_acks.empty()) {
            const int64_t written = base::monotonicNs();
            for (const auto& token : d.outbox_acks) d.unacked.emplace(token, written);
            d.outbox_acks.clear();
          }
          if (heartbeat_due) {
            *hb.mutable_heartbeat() = heartbeat();
            hb.mutable_heartbeat()->set_routes(local_routes_.size());
          }
        }
        for (const clusterpb::LinkMessage& m : batch) {
          if (!stream->Write(m)) {
            ok = false;
            break;
          }
        }
        batch.clear();
        if (ok && heartbeat_due) {
          ok = stream->Write(hb);
          next_heartbeat = base::monotonicMs() + options_.timeouts.heartbeat_ms;
        }
      }
      {
        std::lock_guard routes(routes_mu_);
        std::lock_guard lock(d.mu);
        d.live = false;
        // Route and retained updates go (the next link starts with snapshots of
        // both), and session claims (given up on below); forwards, their acks
        // and handover messages wait.
        // Replica batches too: their epoch ends with the link (the next one
        // starts with snapshots).
        std::erase_if(d.outbox, [](const clusterpb::LinkMessage& m) {
          return m.has_routes() || m.has_retained() || m.has_claim() || m.has_replica();
        });
        d.replica_flows.clear();
        ctx.TryCancel();
      }
      host_.onLinkChanged(d.peer.id, false);
      giveUpClaims(d.peer.id, 0);
      giveUpRounds(d.peer.id, 0);
      {
        // Written on the lost link and not acknowledged: the peer may or may not
        // have them; their publishers get a failure and send them again.
        std::vector<std::pair<uint32_t, uint64_t>> lost;
        {
          std::lock_guard lock(d.mu);
          for (const auto& [token, written] : d.unacked) lost.push_back(token);
          d.unacked.clear();
        }
        if (!lost.empty()) failTokens(lost);
      }
      reader.join();
      if (!stopping_) failed("link lost");
    }
    {
      std::lock_guard lock(d.mu);
      ctx.TryCancel();
      d.context = nullptr;
    }
    stream->Finish();
    if (stopping_) break;
    sleep_for(backoff_ms);
    backoff_ms = std::min(backoff_ms * 2, kMaxBackoffMs);
  }
}

bool ClusterNode::linkLive(uint32_t node) {
  Dialer* d = dialerFor(node);
  if (d == nullptr) return false;
  std::lock_guard lock(d->mu);
  return d->live;
}

LinkStats ClusterNode::linkStats() {
  LinkStats out;
  if (dialers_ready_.load(std::memory_order_acquire)) {
    for (auto& d : dialers_) {
      PeerLinkStats p;
      p.peer = d->peer.id;
      p.received = d->received.load(std::memory_order_relaxed);
      std::lock_guard lock(d->mu);
      p.forwarded = d->forwarded;
      out.peers.push_back(p);
    }
  } else {
    for (const PeerAddress& a : options_.peers) out.peers.push_back({a.id, 0, 0});
  }
  out.forward_duration = forward_duration_.snapshot();
  return out;
}

uint64_t ClusterNode::routeCount() {
  std::lock_guard lock(routes_mu_);
  return local_routes_.size();
}

ClusterNode::Dialer* ClusterNode::dialerFor(uint32_t node) {
  for (auto& d : dialers_) {
    if (d->peer.id == node) return d.get();
  }
  return nullptr;
}

void ClusterNode::enqueueRouteChange(const std::string& filter, bool added) {
  // Under routes_mu_: in the order of the counts, after each link's snapshot.
  for (auto& d : dialers_) {
    std::lock_guard lock(d->mu);
    if (!d->live) continue;
    clusterpb::RouteUpdate* r = nullptr;
    if (!d->outbox.empty() && d->outbox.back().has_routes()) {
      r = d->outbox.back().mutable_routes();
    } else {
      r = d->outbox.emplace_back().mutable_routes();
      // Deltas carry the epoch of the link's snapshot (the newest the peer has).
      r->set_epoch(d->epoch);
    }
    (added ? r->add_add() : r->add_remove())->assign(filter);
    d->cv.notify_all();
  }
}

void ClusterNode::localRouteAdded(std::string_view filter) {
  std::lock_guard lock(routes_mu_);
  auto [it, inserted] = local_routes_.try_emplace(std::string(filter), 0);
  if (++it->second == 1) enqueueRouteChange(it->first, true);
}

void ClusterNode::localRouteRemoved(std::string_view filter) {
  std::lock_guard lock(routes_mu_);
  auto it = local_routes_.find(std::string(filter));
  if (it == local_routes_.end()) return;
  if (--it->second == 0) {
    const std::string f = it->first;
    local_routes_.erase(it);
    enqueueRouteChange(f, false);
  }
}

bool ClusterNode::forward(uint32_t node, PackedForwards batch, uint32_t on_behalf_of) {
  Dialer* d = dialerFor(node);
  if (d == nullptr) return false;
  std::lock_guard lock(d->mu);
  // Bounded whether the link is up (the peer reads slower than we forward) or
  // being re-established.
  if (d->pending_forwards + batch.count > kMaxPendingForwards) return false;
  if (!d->live) {
    // Reconnecting: keep them for the next link, unless the node is dead.
    for (const MemberView& v : membership_.snapshot()) {
      if (v.peer.id == node && v.state == MemberState::kDead) return false;
    }
  }
  d->pending_forwards += batch.count;
  d->outbox_acks.insert(d->outbox_acks.end(), batch.acks.begin(), batch.acks.end());
  clusterpb::ForwardBatch* out = nullptr;
  if (!d->outbox.empty() && d->outbox.back().has_forward() &&
      d->outbox.back().forward().on_behalf_of() == on_behalf_of) {
    // Not written yet: the batches of several iterations go out as one.
    out = d->outbox.back().mutable_forward();
    out->mutable_packed()->append(batch.bytes);
    out->set_count(out->count() + static_cast<uint32_t>(batch.count));
  } else {
    out = d->outbox.emplace_back().mutable_forward();
    out->set_on_behalf_of(on_behalf_of);
    out->set_packed(std::move(batch.bytes));
    out->set_count(static_cast<uint32_t>(batch.count));
  }
  d->cv.notify_all();
  return true;
}

void ClusterNode::ackForwards(uint32_t node, uint32_t worker, std::vector<uint64_t> tokens,
                              ForwardStatus status) {
  Dialer* d = dialerFor(node);
  if (d == nullptr || tokens.empty()) return;
  std::lock_guard lock(d->mu);
  // Kept while the link is re-established: the sender's publishers wait for it.
  auto* ack = d->outbox.emplace_back().mutable_forward_ack();
  ack->set_worker(worker);
  ack->set_status(static_cast<uint32_t>(status));
  for (uint64_t t : tokens) ack->add_tokens(t);
  d->cv.notify_all();
}


void ClusterNode::replicateRetained(const RetainedEntry& entry) {
  for (auto& d : dialers_) {
    std::lock_guard lock(d->mu);
    if (!d->live) continue;
    toProto(entry, d->outbox.emplace_back().mutable_retained()->add_entries());
    d->cv.notify_all();
  }
}

void ClusterNode::applyForwardAck(uint32_t node, const clusterpb::ForwardAck& ack) {
  Dialer* d = dialerFor(node);
  if (d == nullptr) return;
  std::vector<uint64_t> tokens;
  int64_t oldest = 0;
  {
    std::lock_guard lock(d->mu);
    for (uint64_t t : ack.tokens()) {
      // Only what is still outstanding: a token already failed (link lost) was
      // answered to its publisher.
      auto it = d->unacked.find({ack.worker(), t});
      if (it == d->unacked.end()) continue;
      if (tokens.empty() || it->second < oldest) oldest = it->second;
      tokens.push_back(t);
      d->unacked.erase(it);
    }
  }
  if (tokens.empty()) return;
  forward_duration_.recordShared(base::monotonicNs() - oldest);
  const auto status = ack.status() <= 2 ? static_cast<ForwardStatus>(ack.status())
                                        : ForwardStatus::kError;
  host_.onForwardAck(ack.worker(), std::move(tokens), status);
}

void ClusterNode::failTokens(const std::vector<std::pair<uint32_t, uint64_t>>& tokens) {
  absl::flat_hash_map<uint32_t, std::vector<uint64_t>> by_worker;
  for (const auto& [worker, token] : tokens) by_worker[worker].push_back(token);
  for (auto& [worker, list] : by_worker) {
    host_.onForwardAck(worker, std::move(list), ForwardStatus::kError);
  }
}

void ClusterNode::applyRoutes(uint32_t node, const clusterpb::RouteUpdate& update) {
  std::lock_guard lock(routes_in_mu_);
  uint64_t& newest = route_epochs_[node];
  if (update.epoch() < newest || (!update.snapshot() && update.epoch() != newest)) {
    return;  // from an older link of that node: its newer snapshot already counts
  }
  newest = update.epoch();
  host_.onRoutes(node, update.snapshot(), {update.add().begin(), update.add().end()},
                 {update.remove().begin(), update.remove().end()});
}

void ClusterNode::monitor() {
  while (!stopping_) {
    {
      std::unique_lock lock(stop_mu_);
      stop_cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return stopping_.load(); });
    }
    if (stopping_) break;
    const int64_t now = base::monotonicMs();
    for (const Transition& t : membership_.tick(now)) {
      if (t.restarted) {
        log().info("node {} restarted (incarnation {})", t.id, t.incarnation);
      }
      if (t.from != t.to) {
        log().info("node {} is {} (was {})", t.id, memberStateName(t.to), memberStateName(t.from));
        if (t.to == MemberState::kDead) {
          {
            // Whatever it sends next starts with a snapshot of a newer link.
            std::lock_guard lock(routes_in_mu_);
            host_.onPeerDead(t.id);
          }
          log().info("routes of node {} dropped", t.id);
          giveUpClaims(t.id, 0);
          if (Dialer* d = dialerFor(t.id)) {
            std::vector<std::pair<uint32_t, uint64_t>> failed;
            {
              std::lock_guard lock(d->mu);
              if (d->pending_forwards > 0) {
                log().warn("{} messages waiting for node {} dropped: it is dead",
                           d->pending_forwards, t.id);
              }
              failed = std::move(d->outbox_acks);
              d->outbox_acks.clear();
              std::erase_if(d->outbox, [](const clusterpb::LinkMessage& m) {
                return m.has_forward() || m.has_forward_ack() || m.has_claim() ||
                       m.has_handover();
              });
              d->pending_forwards = 0;
              for (const auto& [token, written] : d->unacked) failed.push_back(token);
              d->unacked.clear();
            }
            if (!failed.empty()) failTokens(failed);
          }
        }
      }
    }
    giveUpClaims(0, now - options_.timeouts.dead_ms);
    giveUpRounds(0, now - options_.timeouts.dead_ms);
    // A dial attempt stuck in its handshake (packets dropped, no RST), or a link
    // that went silent: cancel it, so the dialer starts over.
    const std::vector<MemberView> views = membership_.snapshot();
    for (auto& d : dialers_) {
      std::lock_guard lock(d->mu);
      if (d->context == nullptr) continue;
      int64_t last = 0;
      for (const MemberView& v : views) {
        if (v.peer.id == d->peer.id) last = v.last_heard_ms;
      }
      const bool stuck = d->attempt_started_ms != 0 &&
                         now - d->attempt_started_ms > options_.timeouts.suspect_ms;
      const bool silent = d->attempt_started_ms == 0 && last != 0 &&
                          now - last > options_.timeouts.suspect_ms;
      if (stuck || silent) cancel(*d);
    }
  }
}

}  // namespace gannet::cluster
