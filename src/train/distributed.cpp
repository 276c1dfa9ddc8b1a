// Data-parallel training over c10d: TCPStore rendezvous, Gloo/NCCL process group, bucketed
// gradient all-reduce (optionally overlapped with backward), and the fork/exec launcher.
#include "train/distributed.h"

#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <torch/version.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "util/error.h"

// LibTorch 1.13: Gloo and NCCL derive from c10d::ProcessGroup. 2.x: from c10d::Backend, which a
// ProcessGroup wraps; we drive the backend directly, as PyTorch's own C++ tests do.
#if TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif

// Gloo: compiled into libtorch_cpu when its CMake exports USE_C10D_GLOO; the headers come from
// libgloo-dev (Debian) or the wheel's include/.
#if defined(USE_C10D_GLOO) && __has_include(<gloo/config.h>)
#define C3_DIST_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif

// NCCL: only with CUDA LibTorch and nccl.h on the include path (pip wheels keep it in
// site-packages/nvidia/nccl/include; scripts/device/nccl_env.sh adds that).
#if (defined(USE_C10D_NCCL) || defined(C3_HAVE_CUDA)) && __has_include(<nccl.h>)
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#define C3_DIST_NCCL 1
#include <c10/cuda/CUDAFunctions.h>

#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

extern char** environ;

namespace c3::train {

namespace {

#if TORCH_VERSION_MAJOR >= 2
using CommBackend = c10d::Backend;
#else
using CommBackend = c10d::ProcessGroup;
#endif
using WorkPtr = c10::intrusive_ptr<c10d::Work>;

// ---- DistEnv parsing -------------------------------------------------------------------------

const char* kEnvHint =
    "torchrun and `c3 train --nproc N` set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and "
    "MASTER_PORT for you (docs/distributed.md)";

// Strict integer parse of an env var: the whole value, in [lo, hi].
int env_int(const char* name, const std::string& v, long lo, long hi, const std::string& range) {
  C3_CHECK(!v.empty(), "{} is set but empty: unset it or set it to an integer in {}. {}", name,
           range, kEnvHint);
  long x = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  C3_CHECK(ec == std::errc() && end == v.data() + v.size(),
           "{}='{}' is not an integer: expected an integer in {}. {}", name, v, range, kEnvHint);
  C3_CHECK(x >= lo && x <= hi, "{}={} is out of range: expected {}. {}", name, x, range, kEnvHint);
  return static_cast<int>(x);
}

const char* env_or_null(const char* name) { return std::getenv(name); }

// ---- buckets ---------------------------------------------------------------------------------

// A flat 1-D buffer holding several same-dtype, same-device tensors back to back, so one
// collective moves them all.
struct Bucket {
  std::vector<int> members;      // indices into the tensor list
  std::vector<int64_t> offsets;  // element offset of each member in `flat`
  at::Tensor flat;   // undefined until first use when planned without allocating
  int64_t numel = 0;
  int pending = 0;  // overlap: members whose grad hasn't arrived in this backward
};

// Groups tensors by (dtype, device) in the given order, starting a new bucket of a group once
// adding the next tensor would pass cap_bytes. Deterministic, so every rank gets the same plan.
// Without `allocate`, the buffers are left for the caller to allocate when needed.
std::vector<Bucket> plan_buckets(const std::vector<at::Tensor>& ts, const std::vector<int>& order,
                                 int64_t cap_bytes, bool allocate = true) {
  struct Open {
    at::ScalarType dtype;
    at::Device device;
    int bucket;
    int64_t bytes;
  };
  std::vector<Open> open;
  std::vector<Bucket> buckets;
  std::vector<int64_t> numel;
  for (int i : order) {
    const at::Tensor& t = ts[i];
    TORCH_CHECK(t.defined() && t.layout() == at::kStrided, "DataParallel: tensor #", i,
                " is undefined or sparse; only dense tensors are synced");
    const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    Open* g = nullptr;
    for (auto& o : open)
      if (o.dtype == t.scalar_type() && o.device == t.device()) g = &o;
    if (g == nullptr || (g->bytes > 0 && g->bytes + bytes > cap_bytes)) {
      if (g == nullptr) {
        open.push_back({t.scalar_type(), t.device(), 0, 0});
        g = &open.back();
      }
      g->bucket = static_cast<int>(buckets.size());
      g->bytes = 0;
      buckets.emplace_back();
      numel.push_back(0);
    }
    Bucket& b = buckets[g->bucket];
    b.members.push_back(i);
    b.offsets.push_back(numel[g->bucket]);
    numel[g->bucket] += t.numel();
    g->bytes += bytes;
  }
  for (size_t k = 0; k < buckets.size(); ++k) {
    const at::Tensor& first = ts[buckets[k].members[0]];
    buckets[k].numel = numel[k];
    if (allocate) buckets[k].flat = at::empty({numel[k]}, first.options());
    buckets[k].pending = static_cast<int>(buckets[k].members.size());
  }
  return buckets;
}

at::Tensor& ensure_flat(Bucket& b, const at::Tensor& like) {
  if (!b.flat.defined()) b.flat = at::empty({b.numel}, like.options());
  return b.flat;
}

at::Tensor slot(const Bucket& b, size_t k, const at::Tensor& like) {
  return b.flat.narrow(0, b.offsets[k], like.numel()).view(like.sizes());
}

// Params that take part in gradient sync, in reverse registration order: backward produces the
// last layers' grads first, so reverse order lets the first buckets fill (and launch) earliest.
std::vector<at::Tensor> grad_params(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> out;
  for (auto it = params.rbegin(); it != params.rend(); ++it)
    if (it->requires_grad()) {
      TORCH_CHECK(it->is_floating_point(),
                  "DataParallel: a parameter that requires grad has "
                  "non-floating dtype ",
                  it->scalar_type());
      out.push_back(*it);
    }
  return out;
}

std::vector<int> iota(size_t n) {
  std::vector<int> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<int>(i);
  return v;
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

}  // namespace

// ---- DistEnv ---------------------------------------------------------------------------------

DistEnv DistEnv::from_env() {
  DistEnv e;
  const char* ws = env_or_null("WORLD_SIZE");
  const char* rank = env_or_null("RANK");
  const char* local = env_or_null("LOCAL_RANK");
  const char* addr = env_or_null("MASTER_ADDR");
  const char* port = env_or_null("MASTER_PORT");
  if (ws) e.world_size = env_int("WORLD_SIZE", ws, 1, 1 << 20, "1 or more");
  const std::string rank_range = fmt::format("0..{} (0..WORLD_SIZE-1)", e.world_size - 1);
  if (rank) {
    e.rank = env_int("RANK", rank, 0, e.world_size - 1, rank_range);
  } else {
    C3_CHECK(e.world_size == 1,
             "WORLD_SIZE={} but RANK is unset: set RANK to {} in each process. "
             "{}",
             e.world_size, rank_range, kEnvHint);
  }
  // Without LOCAL_RANK, assume one host (rank == local rank), as a hand-launched job would be.
  e.local_rank = local ? env_int("LOCAL_RANK", local, 0, e.world_size - 1, rank_range) : e.rank;
  if (addr) {
    C3_CHECK(*addr != '\0', "MASTER_ADDR is set but empty: set it to rank 0's host name or IP. {}",
             kEnvHint);
    e.master_addr = addr;
  }
  if (port) e.master_port = env_int("MASTER_PORT", port, 1, 65535, "1..65535");
  return e;
}

// ---- DataParallel ----------------------------------------------------------------------------

struct DataParallel::Impl {
  DistEnv env;
  at::Device device;
  DataParallelOptions opt;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<CommBackend> pg;
  // set_flag / wait_flags: a second client connection, made on first use.
  std::mutex side_mu;
  c10::intrusive_ptr<c10d::Store> side_store;
#ifdef C3_DIST_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif

  // allreduce_gradients' plan, kept while the params (identity, size, dtype, device) stay the
  // same: saves re-allocating model-size buffers every step.
  std::vector<int64_t> plan_key;
  std::vector<Bucket> plan;

  // Overlap state; hooks hold a weak_ptr so a hook firing after we're gone does nothing.
  struct Overlap {
    std::mutex mu;
    Impl* owner = nullptr;
    std::vector<at::Tensor> params;  // grad_params() order
    std::vector<unsigned> hook_ids;
    std::vector<Bucket> buckets;
    std::vector<int> bucket_of, slot_of;
    std::vector<char> ready;
    size_t next_launch = 0;
    bool armed = false;
    std::vector<WorkPtr> works;
    std::vector<int> to_free;  // ZeRO-2: params whose grad is copied, to free at the next hook
  };
  std::shared_ptr<Overlap> overlap;

  // ZeRO-2 (reduce_to_shards): each bucket goes to the ranks owning its flat range.
  struct Shards {
    explicit Shards(const ShardLayout& l) : layout(l) {}
    ShardLayout layout;
    at::Tensor grad;              // [my_end - my_begin]: this rank's part of the mean gradients
    std::vector<char> had_grad;   // per parameter: this rank had a grad since the last zero
    struct InFlight {
      Bucket* bucket;
      std::vector<WorkPtr> works;
    };
    std::deque<InFlight> in_flight;  // launched, not yet added to `grad`
  };
  std::unique_ptr<Shards> shards;
  // Buckets in flight at once: a bound on the gradient buffers alive during a backward.
  static constexpr size_t kMaxInFlight = 4;

  Impl(const DistEnv& e, at::Device d, DataParallelOptions o) : env(e), device(d), opt(o) {}

  WorkPtr allreduce(const at::Tensor& t) {
    std::vector<at::Tensor> v{t};
    return pg->allreduce(v);  // ReduceOp::SUM; NCCL's AVG doesn't exist in Gloo
  }
  WorkPtr broadcast(const at::Tensor& t) {
    std::vector<at::Tensor> v{t};
    c10d::BroadcastOptions bo;
    bo.rootRank = 0;
    return pg->broadcast(v, bo);
  }

  // Launches bucket `b` (divided by the world size first) as one reduction per rank owning part
  // of its flat range; completed ones are landed, and at most kMaxInFlight stay in flight.
  void launch_to_owners(Bucket& b) {
    Shards& sh = *shards;
    const ShardLayout& l = sh.layout;
    b.flat.div_(env.world_size);
    const int64_t lo = l.offset(b.members.front()), hi = lo + b.numel;
    Shards::InFlight f{&b, {}};
    for (int r = 0; r < env.world_size; ++r) {
      const int64_t a = std::max(lo, l.begin(r)), z = std::min(hi, l.end(r));
      if (a >= z) continue;
      std::vector<at::Tensor> seg{b.flat.narrow(0, a - lo, z - a)};
      c10d::ReduceOptions ro;
      ro.rootRank = r;
      f.works.push_back(pg->reduce(seg, ro));
    }
    sh.in_flight.push_back(std::move(f));
    while (!sh.in_flight.empty() &&
           (sh.in_flight.size() > kMaxInFlight || all_completed(sh.in_flight.front().works)))
      land_oldest();
  }

  static bool all_completed(const std::vector<WorkPtr>& works) {
    for (const auto& w : works)
      if (!w->isCompleted()) return false;
    return true;
  }

  // Waits for the oldest bucket in flight, adds this rank's part to the shard gradient and frees
  // the bucket's buffer.
  void land_oldest() {
    Shards& sh = *shards;
    Shards::InFlight f = std::move(sh.in_flight.front());
    sh.in_flight.pop_front();
    for (auto& w : f.works) w->wait();
    Bucket& b = *f.bucket;
    const ShardLayout& l = sh.layout;
    const int64_t lo = l.offset(b.members.front()), hi = lo + b.numel;
    const int64_t a = std::max(lo, l.my_begin()), z = std::min(hi, l.my_end());
    if (a < z) sh.grad.narrow(0, a - l.my_begin(), z - a).add_(b.flat.narrow(0, a - lo, z - a));
    b.flat = at::Tensor();
  }

  void land_all() {
    while (shards && !shards->in_flight.empty()) land_oldest();
  }

  void check_shard_order(const std::vector<at::Tensor>& ps) const {
    const auto& lp = shards->layout.params();
    TORCH_CHECK(ps.size() == lp.size(), "DataParallel::reduce_to_shards: the layout has ",
                lp.size(), " parameters but ", ps.size(), " are synced");
    for (size_t i = 0; i < ps.size(); ++i)
      TORCH_CHECK(ps[i].unsafeGetTensorImpl() == lp[i].unsafeGetTensorImpl(),
                  "DataParallel::reduce_to_shards: parameter #", i,
                  " of the layout is not the one synced there; build the layout from "
                  "gradient_order(params)");
  }

  void remove_hooks() {
    if (!overlap) return;
    for (size_t i = 0; i < overlap->params.size(); ++i)
      overlap->params[i].remove_hook(overlap->hook_ids[i]);
    overlap.reset();
  }

  // Sums flags ("this rank has a grad for param i") alongside the buckets, then writes each
  // bucket's mean back into .grad(). A grad undefined here but defined on another rank is
  // created; one undefined everywhere stays undefined, as in a 1-process run.
  void launch_and_write_back(std::vector<Bucket>& buckets, const std::vector<at::Tensor>& params,
                             const std::vector<char>& has_grad, size_t first_unlaunched,
                             std::vector<WorkPtr>& works) {
    const int ws = env.world_size;
    // Dividing before the sum (as DDP does) keeps fp16/bf16 sums from overflowing.
    for (size_t k = first_unlaunched; k < buckets.size(); ++k) {
      buckets[k].flat.div_(ws);
      works.push_back(allreduce(buckets[k].flat));
    }
    std::vector<float> local(has_grad.begin(), has_grad.end());
    at::Tensor flags = at::tensor(c10::ArrayRef<float>(local), at::kFloat).to(device);
    works.push_back(allreduce(flags));
    for (auto& w : works) w->wait();
    works.clear();

    bool any_missing = false;
    for (char h : has_grad) any_missing |= !h;
    // Only read the flags back (a host sync on CUDA) when some local grad is missing.
    std::vector<float> global;
    if (any_missing) {
      at::Tensor f = flags.cpu();
      global.assign(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
    }
    for (const Bucket& b : buckets)
      for (size_t k = 0; k < b.members.size(); ++k) {
        const int i = b.members[k];
        const at::Tensor& p = params[i];
        at::Tensor mean = slot(b, k, p);
        if (p.grad().defined()) {
          p.grad().copy_(mean);
        } else if (any_missing && global[i] > 0) {
          p.mutable_grad() = mean.clone();
        }
      }
  }

  void on_grad(Overlap& s, int i, const at::Tensor& g) {
    std::lock_guard<std::mutex> lock(s.mu);
    if (!s.armed || !g.defined()) return;
    Bucket& b = s.buckets[s.bucket_of[i]];
    const at::Tensor& p = s.params[i];
    TORCH_CHECK(!s.ready[i] || s.bucket_of[i] >= static_cast<int>(s.next_launch),
                "DataParallel overlap: a parameter's gradient arrived twice in one backward after "
                "its bucket was sent (e.g. reentrant activation checkpointing that reuses it). "
                "Use allreduce_gradients() instead of register_overlap() for this model.");
    at::NoGradGuard no_grad;
    if (shards) {
      // AccumulateGrad has stored the earlier params' grads by now: their copies are in the
      // buckets, so they go (this one is freed at the next hook or in finish_gradients()).
      for (int j : s.to_free) s.params[j].mutable_grad() = at::Tensor();
      s.to_free.clear();
      s.to_free.push_back(i);
      ensure_flat(b, p);
    }
    at::Tensor dst = slot(b, s.slot_of[i], p);
    if (s.ready[i]) {
      dst.add_(g);  // second contribution before the bucket left: just accumulate
      return;
    }
    // The hook sees this backward's contribution before AccumulateGrad adds it to .grad(), so
    // the bucket gets the sum over all micro-batches: .grad() so far + this one.
    dst.copy_(g);
    if (p.grad().defined()) dst.add_(p.grad());
    s.ready[i] = 1;
    --b.pending;
    // Launch strictly in bucket order so every rank issues the same collectives in the same
    // order, whatever order autograd produces grads in.
    while (s.next_launch < s.buckets.size() && s.buckets[s.next_launch].pending == 0) {
      Bucket& nb = s.buckets[s.next_launch++];
      if (shards) {
        launch_to_owners(nb);
        continue;
      }
      nb.flat.div_(env.world_size);
      s.works.push_back(allreduce(nb.flat));
    }
  }
};

// The job's TCPStore. Under torchrun (2.x) its agent already serves MASTER_PORT, so every rank
// is a client there, under a per-restart prefix, as torch.distributed does; else rank 0's first
// connection serves it and waits for the others.
static c10::intrusive_ptr<c10d::Store> connect_store(const DistEnv& env, std::chrono::milliseconds timeout,
                                                     bool first) {
  const char* agent_store = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  const bool use_agent = agent_store && std::string(agent_store) == "True";
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(env.master_port);
  so.isServer = first && env.rank == 0 && !use_agent;
  if (first) so.numWorkers = static_cast<std::size_t>(env.world_size);
  so.waitWorkers = first && !use_agent;
  so.timeout = timeout;
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
  if (use_agent) {
    const char* restart = std::getenv("TORCHELASTIC_RESTART_COUNT");
    store = c10::make_intrusive<c10d::PrefixStore>(
        fmt::format("/worker/attempt_{}", restart ? restart : "0"), store);
  }
  return store;
}

DataParallel::DataParallel(const DistEnv& env, at::Device device, DataParallelOptions options)
    : impl_(std::make_unique<Impl>(env, device, options)) {
  C3_CHECK(env.world_size >= 1 && env.rank >= 0 && env.rank < env.world_size,
           "DataParallel: rank {} / world size {} is inconsistent", env.rank, env.world_size);
  C3_CHECK(options.bucket_bytes > 0, "DataParallel: bucket_bytes must be positive");
  if (device.is_cuda() && !device.has_index())
    impl_->device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
  if (!env.is_distributed()) return;  // one process: no store, no backend

  const bool cuda = impl_->device.is_cuda();
  C3_CHECK(cuda || impl_->device.is_cpu(),
           "DataParallel: device {} is not supported; use cpu "
           "(Gloo) or cuda (NCCL)",
           impl_->device.str());
#ifndef C3_DIST_NCCL
  C3_CHECK(!cuda,
           "DataParallel: this build has no NCCL support, so multi-process training on "
           "{} is unavailable. HINT: build against CUDA LibTorch with nccl.h on the include path "
           "(scripts/device/nccl_env.sh shows how), or train on --device cpu (Gloo)",
           impl_->device.str());
#endif
#ifndef C3_DIST_GLOO
  C3_CHECK(cuda,
           "DataParallel: this build has no Gloo support, so multi-process CPU training is "
           "unavailable. HINT: install libgloo-dev (or use a LibTorch with Gloo headers) and "
           "rebuild, or train on CUDA (NCCL)");
#endif

  // Rendezvous: rank 0 serves the store; the constructor returns once all ranks have joined.
  try {
    impl_->store = connect_store(env, options.timeout, /*first=*/true);
  } catch (const std::exception& e) {
    fail(
        "rank {}: rendezvous at MASTER_ADDR={} MASTER_PORT={} failed: {}. HINT: start every rank "
        "within the timeout, check that rank 0's port is free and reachable from this host, "
        "or let `c3 train --nproc N` pick a port",
        env.rank, env.master_addr, env.master_port, e.what());
  }

  if (cuda) {
#ifdef C3_DIST_NCCL
    // NVLink SHARP (multicast) stays off: it needs fabric-manager support the machines lack.
    setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/0);
    c10::cuda::set_device(impl_->device.index());
    auto no = c10d::ProcessGroupNCCL::Options::create();
    no->timeout = options.timeout;
    impl_->nccl =
        c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, env.rank, env.world_size, no);
    impl_->pg = impl_->nccl;
#endif
  } else {
#ifdef C3_DIST_GLOO
    auto go = c10d::ProcessGroupGloo::Options::create(options.timeout);
    // GLOO_SOCKET_IFNAME picks the NIC on multi-homed hosts, as in PyTorch.
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname && *ifname) {
      std::string first(ifname);
      first = first.substr(0, first.find(','));
      go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(first));
    } else if (is_loopback(env.master_addr)) {
      // One host: loopback avoids depending on the host name resolving.
      go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      go->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    impl_->pg =
        c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, env.rank, env.world_size, go);
#endif
  }
}

DataParallel::~DataParallel() {
  impl_->remove_hooks();
#if defined(C3_DIST_NCCL) && \
    (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4))
  // Without an explicit shutdown, 2.x's ProcessGroupNCCL destructor warns and shuts down itself.
  if (impl_->nccl) {
    try {
      impl_->nccl->shutdown();
    } catch (const std::exception&) {
    }
  }
#endif
}

bool DataParallel::available(at::DeviceType type) {
#ifdef C3_DIST_GLOO
  if (type == at::kCPU) return true;
#endif
#ifdef C3_DIST_NCCL
  if (type == at::kCUDA) return true;
#endif
  return false;
}

int DataParallel::rank() const { return impl_->env.rank; }
int DataParallel::world_size() const { return impl_->env.world_size; }
at::Device DataParallel::device() const { return impl_->device; }
std::string DataParallel::backend_name() const {
  return impl_->pg ? impl_->pg->getBackendName() : "none";
}

void DataParallel::broadcast_parameters(torch::nn::Module& module) {
  std::vector<at::Tensor> ts = module.parameters(/*recurse=*/true);
  for (auto& b : module.buffers(/*recurse=*/true)) ts.push_back(b);
  broadcast_tensors(ts);
}

void DataParallel::broadcast_tensors(const std::vector<at::Tensor>& tensors) {
  if (!impl_->pg || tensors.empty()) return;
  at::NoGradGuard no_grad;
  std::vector<Bucket> buckets =
      plan_buckets(tensors, iota(tensors.size()), impl_->opt.bucket_bytes);
  std::vector<WorkPtr> works;
  for (Bucket& b : buckets) {
    if (rank() == 0)
      for (size_t k = 0; k < b.members.size(); ++k)
        slot(b, k, tensors[b.members[k]]).copy_(tensors[b.members[k]]);
    works.push_back(impl_->broadcast(b.flat));
  }
  for (auto& w : works) w->wait();
  if (rank() == 0) return;
  for (const Bucket& b : buckets)
    for (size_t k = 0; k < b.members.size(); ++k) {
      at::Tensor t = tensors[b.members[k]];
      t.copy_(slot(b, k, t));
    }
}

void DataParallel::allreduce_gradients(const std::vector<at::Tensor>& params) {
  if (!impl_->pg) return;
  at::NoGradGuard no_grad;
  const std::vector<at::Tensor> ps = grad_params(params);
  std::vector<int64_t> key;
  for (const auto& p : ps) {
    key.push_back(reinterpret_cast<intptr_t>(p.unsafeGetTensorImpl()));
    key.push_back(p.numel());
    key.push_back(static_cast<int64_t>(p.scalar_type()) << 16 |
                  (static_cast<int64_t>(p.device().index()) + 1) << 8 |
                  static_cast<int64_t>(p.device().type()));
  }
  if (key != impl_->plan_key) {
    impl_->plan = plan_buckets(ps, iota(ps.size()), impl_->opt.bucket_bytes, !impl_->shards);
    impl_->plan_key = key;
  }
  if (impl_->shards) {
    // ZeRO-2: bucket by bucket, each grad copied and freed, the bucket sent to its owners.
    impl_->check_shard_order(ps);
    auto& had = impl_->shards->had_grad;
    for (Bucket& b : impl_->plan) {
      ensure_flat(b, ps[b.members[0]]);
      for (size_t k = 0; k < b.members.size(); ++k) {
        const at::Tensor& p = ps[b.members[k]];
        at::Tensor dst = slot(b, k, p);
        if (p.grad().defined()) {
          dst.copy_(p.grad());
          had[b.members[k]] = 1;
          p.mutable_grad() = at::Tensor();
        } else {
          dst.zero_();
        }
      }
      impl_->launch_to_owners(b);
    }
    impl_->land_all();
    return;
  }
  std::vector<char> has_grad(ps.size(), 0);
  for (Bucket& b : impl_->plan)
    for (size_t k = 0; k < b.members.size(); ++k) {
      const at::Tensor& p = ps[b.members[k]];
      at::Tensor dst = slot(b, k, p);
      if (p.grad().defined()) {
        dst.copy_(p.grad());
        has_grad[b.members[k]] = 1;
      } else {
        dst.zero_();
      }
    }
  std::vector<WorkPtr> works;
  impl_->launch_and_write_back(impl_->plan, ps, has_grad, 0, works);
}

double DataParallel::allreduce_mean(double v) {
  if (!impl_->pg) return v;
  at::Tensor t = at::full({1}, v, at::TensorOptions().dtype(at::kDouble).device(impl_->device));
  impl_->allreduce(t)->wait();
  return t.item<double>() / world_size();
}

void DataParallel::allreduce_sum(const at::Tensor& t) {
  if (!impl_->pg) return;
  TORCH_CHECK(t.device() == impl_->device && t.is_contiguous(),
              "DataParallel::allreduce_sum: "
              "expected a contiguous tensor on ",
              impl_->device, ", got ", t.device());
  impl_->allreduce(t)->wait();
}

void DataParallel::barrier() {
  // An all-reduce whose result we read: on CUDA that also waits for the GPU, unlike NCCL's
  // barrier, which in 2.x must guess the device.
  allreduce_mean(0.0);
}

void DataParallel::register_overlap(const std::vector<at::Tensor>& params) {
  impl_->remove_hooks();
  if (!impl_->pg) return;
  auto s = std::make_shared<Impl::Overlap>();
  s->owner = impl_.get();
  s->params = grad_params(params);
  const size_t n = s->params.size();
  if (impl_->shards) impl_->check_shard_order(s->params);
  s->buckets = plan_buckets(s->params, iota(n), impl_->opt.bucket_bytes, !impl_->shards);
  s->bucket_of.assign(n, 0);
  s->slot_of.assign(n, 0);
  s->ready.assign(n, 0);
  for (size_t b = 0; b < s->buckets.size(); ++b)
    for (size_t k = 0; k < s->buckets[b].members.size(); ++k) {
      s->bucket_of[s->buckets[b].members[k]] = static_cast<int>(b);
      s->slot_of[s->buckets[b].members[k]] = static_cast<int>(k);
    }
  std::weak_ptr<Impl::Overlap> weak = s;
  for (size_t i = 0; i < n; ++i) {
    const int idx = static_cast<int>(i);
    s->hook_ids.push_back(s->params[i].register_hook([weak, idx](const at::Tensor& g) {
      if (auto st = weak.lock()) st->owner->on_grad(*st, idx, g);
    }));
  }
  impl_->overlap = std::move(s);
}

void DataParallel::arm_overlap() {
  if (!impl_->pg) return;
  TORCH_CHECK(impl_->overlap, "DataParallel::arm_overlap: call register_overlap(params) first");
  std::lock_guard<std::mutex> lock(impl_->overlap->mu);
  impl_->overlap->armed = true;
}

void DataParallel::finish_gradients() {
  if (!impl_->pg) return;
  TORCH_CHECK(impl_->overlap,
              "DataParallel::finish_gradients: call register_overlap(params) "
              "first");
  Impl::Overlap& s = *impl_->overlap;
  std::lock_guard<std::mutex> lock(s.mu);
  TORCH_CHECK(s.armed,
              "DataParallel::finish_gradients: no armed backward; call arm_overlap() "
              "before the backward whose gradients should be synced");
  at::NoGradGuard no_grad;
  // Buckets still waiting hold params that got no grad on this rank: they count as zeros.
  for (size_t b = s.next_launch; b < s.buckets.size(); ++b) {
    Bucket& bk = s.buckets[b];
    if (impl_->shards) ensure_flat(bk, s.params[bk.members[0]]);
    for (size_t k = 0; k < bk.members.size(); ++k)
      if (!s.ready[bk.members[k]]) slot(bk, k, s.params[bk.members[k]]).zero_();
  }
  if (impl_->shards) {
    while (s.next_launch < s.buckets.size()) impl_->launch_to_owners(s.buckets[s.next_launch++]);
    impl_->land_all();
    auto& had = impl_->shards->had_grad;
    for (size_t i = 0; i < s.params.size(); ++i) {
      if (s.ready[i]) had[i] = 1;
      s.params[i].mutable_grad() = at::Tensor();
    }
    s.to_free.clear();
  } else {
    impl_->launch_and_write_back(s.buckets, s.params, s.ready, s.next_launch, s.works);
  }
  for (Bucket& bk : s.buckets) bk.pending = static_cast<int>(bk.members.size());
  std::fill(s.ready.begin(), s.ready.end(), 0);
  s.next_launch = 0;
  s.armed = false;
}

// ---- flags for background threads --------------------------------------------------------

void DataParallel::set_flag(const std::string& key) {
  if (!impl_->pg) return;
  std::lock_guard<std::mutex> lock(impl_->side_mu);
  if (!impl_->side_store) impl_->side_store = connect_store(impl_->env, impl_->opt.timeout, false);
  impl_->side_store->set("c3/flag/" + key, std::vector<uint8_t>{1});
}

void DataParallel::wait_flags(const std::vector<std::string>& keys) {
  if (!impl_->pg || keys.empty()) return;
  std::lock_guard<std::mutex> lock(impl_->side_mu);
  if (!impl_->side_store) impl_->side_store = connect_store(impl_->env, impl_->opt.timeout, false);
  std::vector<std::string> full;
  for (const auto& k : keys) full.push_back("c3/flag/" + k);
  try {
    impl_->side_store->wait(full, impl_->opt.timeout);
  } catch (const std::exception& e) {
    fail("rank {}: waited {} min for the other ranks ({} ...): {}. HINT: another rank failed; "
         "its output says why", rank(), impl_->opt.timeout.count() / 60000, keys.front(), e.what());
  }
}

// ---- ZeRO ------------------------------------------------------------------------------------

void DataParallel::reduce_to_shards(const ShardLayout& layout) {
  TORCH_CHECK(layout.world_size() == world_size() && layout.rank() == rank(),
              "DataParallel::reduce_to_shards: the layout is for rank ", layout.rank(), " of ",
              layout.world_size(), ", this is rank ", rank(), " of ", world_size());
  impl_->shards = std::make_unique<Impl::Shards>(layout);
  Impl::Shards& sh = *impl_->shards;
  const auto& ps = layout.params();
  const at::TensorOptions o = ps.empty() ? at::TensorOptions().device(impl_->device)
                                         : ps[0].options().requires_grad(false);
  sh.grad = at::zeros({layout.my_end() - layout.my_begin()}, o);
  sh.had_grad.assign(ps.size(), 0);
  impl_->plan_key.clear();  // re-plan without persistent buffers
  impl_->plan.clear();
  if (impl_->overlap) {
    impl_->check_shard_order(impl_->overlap->params);
    for (Bucket& b : impl_->overlap->buckets) b.flat = at::Tensor();  // allocated on use
  }
}

const at::Tensor& DataParallel::shard_gradient() const {
  TORCH_CHECK(impl_->shards, "DataParallel::shard_gradient: call reduce_to_shards() first");
  return impl_->shards->grad;
}

void DataParallel::zero_shard_gradient() {
  TORCH_CHECK(impl_->shards, "DataParallel::zero_shard_gradient: call reduce_to_shards() first");
  impl_->shards->grad.zero_();
  std::fill(impl_->shards->had_grad.begin(), impl_->shards->had_grad.end(), 0);
}

std::vector<char> DataParallel::shard_gradient_flags() {
  TORCH_CHECK(impl_->shards, "DataParallel::shard_gradient_flags: call reduce_to_shards() first");
  const auto& had = impl_->shards->had_grad;
  std::vector<float> f(had.begin(), had.end());
  at::Tensor t = at::tensor(c10::ArrayRef<float>(f), at::kFloat).to(impl_->device);
  if (!t.numel()) return {};
  impl_->allreduce(t)->wait();
  t = t.cpu();
  std::vector<char> out(had.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = t.data_ptr<float>()[i] > 0;
  return out;
}

void DataParallel::allgather_shards(const ShardLayout& layout) {
  if (!impl_->pg || layout.params().empty()) return;
  at::NoGradGuard no_grad;
  const at::Tensor& like = layout.params()[0];
  const int64_t S = layout.shard_numel();
  const int64_t round = std::max<int64_t>(1, std::min<int64_t>(S, impl_->opt.bucket_bytes / like.element_size()));
  const int me = rank(), n = world_size();
  at::Tensor send = at::empty({round}, like.options().requires_grad(false));
  std::vector<std::vector<at::Tensor>> recv(1);
  for (int r = 0; r < n; ++r) recv[0].push_back(at::empty({round}, send.options()));
  for (int64_t off = 0; off < S; off += round) {
    const int64_t len = std::min(round, S - off);
    auto range = [&](int r) {
      const int64_t a = std::min(layout.end(r), layout.begin(r) + off);
      return std::make_pair(a, std::min(layout.end(r), a + len));
    };
    at::Tensor mine = send.narrow(0, 0, len);
    const auto [a, z] = range(me);
    mine.narrow(0, z - a, len - (z - a)).zero_();  // past the end of the space: padding
    for (const auto& piece : layout.pieces(a, z))
      mine.narrow(0, piece.flat - a, piece.numel).copy_(layout.view(piece));
    std::vector<at::Tensor> in{mine};
    std::vector<std::vector<at::Tensor>> out(1);
    for (int r = 0; r < n; ++r) out[0].push_back(recv[0][r].narrow(0, 0, len));
    impl_->pg->allgather(out, in)->wait();
    for (int r = 0; r < n; ++r) {
      if (r == me) continue;
      const auto [ra, rz] = range(r);
      for (const auto& piece : layout.pieces(ra, rz))
        layout.view(piece).copy_(out[0][r].narrow(0, piece.flat - ra, piece.numel));
    }
  }
}

std::vector<at::Tensor> gradient_order(const std::vector<at::Tensor>& params) {
  return grad_params(params);
}

// ---- launcher --------------------------------------------------------------------------------

int find_free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  C3_CHECK(fd >= 0, "find_free_port: socket() failed: {}", std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  const int err = errno;
  ::close(fd);
  C3_CHECK(ok, "find_free_port: bind to port 0 failed: {}", std::strerror(err));
  return ntohs(a.sin_port);
}

int launch_local(int nproc, int argc, char** argv) {
  return launch_local(nproc, std::vector<std::string>(argv, argv + argc));
}

int launch_local(int nproc, const std::vector<std::string>& argv) {
  C3_CHECK(nproc >= 1, "--nproc {}: expected 1 or more processes", nproc);
  C3_CHECK(!argv.empty(), "launch_local: argv must include argv[0]");
  const int port = find_free_port();

  // Everything the children need is built before fork(): after fork() in a threaded process
  // (LibTorch's pools) only async-signal-safe calls are allowed, so no setenv/malloc there.
  const char* kOurs[] = {"RANK",        "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE",
                         "MASTER_ADDR", "MASTER_PORT"};
  std::vector<std::string> base;
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    const std::string k = kv.substr(0, kv.find('='));
    bool ours = false;
    for (const char* o : kOurs) ours |= k == o;
    if (!ours) base.push_back(kv);
  }
  // torchrun's default: N processes x all cores would oversubscribe the CPU.
  if (!std::getenv("OMP_NUM_THREADS")) base.push_back("OMP_NUM_THREADS=1");
  if (!std::getenv("NCCL_NVLS_ENABLE")) base.push_back("NCCL_NVLS_ENABLE=0");
  std::vector<std::vector<std::string>> envs(nproc, base);
  for (int r = 0; r < nproc; ++r) {
    envs[r].push_back(fmt::format("RANK={}", r));
    envs[r].push_back(fmt::format("LOCAL_RANK={}", r));
    envs[r].push_back(fmt::format("WORLD_SIZE={}", nproc));
    envs[r].push_back(fmt::format("LOCAL_WORLD_SIZE={}", nproc));
    envs[r].push_back("MASTER_ADDR=127.0.0.1");
    envs[r].push_back(fmt::format("MASTER_PORT={}", port));
  }
  auto cstrs = [](std::vector<std::string>& v) {
    std::vector<char*> p;
    for (auto& s : v) p.push_back(s.data());
    p.push_back(nullptr);
    return p;
  };
  std::vector<std::string> args = argv;
  std::vector<char*> argp = cstrs(args);
  std::vector<std::vector<char*>> envp;
  for (auto& e : envs) envp.push_back(cstrs(e));

  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t parent = ::getpid();
  std::vector<pid_t> pids(nproc, -1);
  std::vector<bool> done(nproc, false);
  int first_failure = 0;
  for (int r = 0; r < nproc; ++r) {
    pid_t pid = ::fork();
    if (pid == 0) {
      // Die with the launcher, so a killed `c3 train --nproc` leaves no orphans.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(1);
      ::execve("/proc/self/exe", argp.data(), envp[r].data());
      ::_exit(127);
    }
    if (pid < 0) {
      first_failure = 1;
      fmt::print(stderr, "c3: fork() for rank {} failed: {}\n", r, std::strerror(errno));
      break;
    }
    pids[r] = pid;
  }

  auto stop_others = [&]() {
    for (int r = 0; r < nproc; ++r)
      if (pids[r] > 0 && !done[r]) ::kill(pids[r], SIGTERM);
  };
  if (first_failure) stop_others();
  auto kill_deadline = std::chrono::steady_clock::time_point::max();
  if (first_failure) kill_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    int alive = 0;
    for (int r = 0; r < nproc; ++r) {
      if (pids[r] <= 0 || done[r]) continue;
      int st = 0;
      const pid_t w = ::waitpid(pids[r], &st, WNOHANG);
      if (w == 0 || (w < 0 && errno == EINTR)) {
        ++alive;
        continue;
      }
      done[r] = true;
      const int code = w < 0 ? 1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      if (code != 0 && first_failure == 0) {
        first_failure = code;
        fmt::print(stderr, "c3: rank {} (pid {}) exited with status {}; stopping the other ranks\n",
                   r, pids[r], code);
        stop_others();
        kill_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      }
    }
    if (alive == 0) break;
    // A rank that blocks or handles SIGTERM gets SIGKILL 10 s later.
    if (std::chrono::steady_clock::now() > kill_deadline) {
      for (int r = 0; r < nproc; ++r)
        if (pids[r] > 0 && !done[r]) ::kill(pids[r], SIGKILL);
      kill_deadline = std::chrono::steady_clock::time_point::max();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return first_failure;
}

}  // namespace c3::train
