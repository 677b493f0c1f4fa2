// C entry points over libtorch's c10d (torch.distributed's C++ core):
// TCPStore, PrefixStore, ProcessGroupGloo (and ProcessGroupNCCL when built
// with -tags nccl), collectives, and the Reducer that
// DistributedDataParallel uses to all-reduce gradients in buckets while the
// backward pass runs.
//
// Every function catches every C++ exception and returns its message as a
// malloc'd string (NULL on success) that the Go side frees: no c10d error
// (an unreachable master, a timeout, a peer that closed its connection)
// ever unwinds into Go or aborts the process.
#define USE_C10D_GLOO 1

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>

#ifdef FER_WITH_NCCL
#define USE_C10D_NCCL 1
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "shim.h"

namespace {

using ms = std::chrono::milliseconds;

char* dup(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p != nullptr) {
    std::memcpy(p, s.c_str(), s.size() + 1);
  }
  return p;
}

// guard runs f and turns any exception into an error string.
template <typename F>
char* guard(F&& f) {
  try {
    f();
    return nullptr;
  } catch (const c10::Error& e) {
    return dup(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return dup(e.what());
  } catch (...) {
    return dup("unknown C++ exception");
  }
}

struct PG {
  c10::intrusive_ptr<c10d::Store> store;  // the store the group was built on
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  ms timeout;
  // dev is where the helpers below put the tensors they create: the CPU
  // for Gloo, the rank's GPU for NCCL (which reduces CUDA tensors only).
  at::Device dev;
};

struct Reducer {
  std::shared_ptr<c10d::Reducer> r;
};

std::vector<at::Tensor> tensors(void** ts, int n) {
  std::vector<at::Tensor> v;
  v.reserve(n);
  for (int i = 0; i < n; i++) {
    v.push_back(*static_cast<at::Tensor*>(ts[i]));
  }
  return v;
}

void wait(const c10::intrusive_ptr<c10d::Work>& w, ms timeout, const char* what) {
  if (!w->wait(timeout)) {
    throw std::runtime_error(std::string(what) + " was aborted");
  }
}

// splitComma splits GLOO_SOCKET_IFNAME's "eth0,eth1".
std::vector<std::string> splitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

extern "C" {

void fer_c10d_free(void* p) { std::free(p); }

// fer_c10d_init_process_group does what torch.distributed's
// init_process_group(backend, init_method="env://") does on this rank:
//   store = TCPStore(addr, port, world_size, is_server=(rank == 0 and not
//           agent_store), timeout, multi_tenant=True), or under torchrun's
//           agent a client wrapped in PrefixStore("/worker/attempt_<n>");
//   store = PrefixStore("default_pg", store)
//   pg    = ProcessGroup<Backend>(PrefixStore("0", store), rank, size, timeout)
//   store-based barrier on key "store_based_barrier_key:1"
//   pg._set_sequence_number_for_group()
// so fer processes and PyTorch processes can join the same group.
// backend: 0 gloo, 1 nccl. gloo_ifname / gloo_host choose the Gloo device
// (interfaces, comma-separated, as GLOO_SOCKET_IFNAME; else a hostname or
// address; else the default device, the address this host's name resolves
// to), as the Python binding does.
char* fer_c10d_init_process_group(const char* addr, int port, int rank, int world_size,
                                  int agent_store, int restart_count, int backend,
                                  int64_t timeout_ms, const char* gloo_ifname,
                                  const char* gloo_host, int cuda_device, void** out) {
  return guard([&] {
    ms timeout(timeout_ms);
    c10::intrusive_ptr<c10d::Store> store;
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.numWorkers = static_cast<std::size_t>(world_size);
    opts.timeout = timeout;
    if (agent_store) {
      opts.isServer = false;
      auto tcp = c10::make_intrusive<c10d::TCPStore>(addr, opts);
      store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(restart_count), tcp);
    } else {
      opts.isServer = rank == 0;
      opts.multiTenant = true;
      store = c10::make_intrusive<c10d::TCPStore>(addr, opts);
    }
    store->setTimeout(timeout);
    auto defaultPG = c10::make_intrusive<c10d::PrefixStore>("default_pg", store);
    auto groupStore = c10::make_intrusive<c10d::PrefixStore>("0", defaultPG);

    c10::intrusive_ptr<c10d::ProcessGroup> pg;
    if (backend == 0) {
      auto o = c10d::ProcessGroupGloo::Options::create(timeout);
      std::string ifn = gloo_ifname ? gloo_ifname : "";
      std::string host = gloo_host ? gloo_host : "";
      if (!ifn.empty()) {
        for (const auto& i : splitComma(ifn)) {
          o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(i));
        }
      } else if (!host.empty()) {
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(host));
      } else {
        o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      o->threads = static_cast<int>(o->devices.size()) * 2;
      pg = c10::make_intrusive<c10d::ProcessGroupGloo>(groupStore, rank, world_size, o);
    } else if (backend == 1) {
#ifdef FER_WITH_NCCL
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = timeout;
      pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(groupStore, rank, world_size, o);
#else
      throw std::runtime_error("this fer was built without NCCL (build it with -tags nccl against a CUDA libtorch), use --dist-backend gloo");
#endif
    } else {
      throw std::runtime_error("unknown backend " + std::to_string(backend));
    }

    // distributed_c10d._store_based_barrier
    const std::string key = "store_based_barrier_key:1";
    defaultPG->add(key, 1);
    auto start = std::chrono::steady_clock::now();
    for (;;) {
      int64_t n = defaultPG->add(key, 0);
      if (n == world_size) break;
      if (std::chrono::steady_clock::now() - start > timeout) {
        throw std::runtime_error("timed out after " + std::to_string(timeout_ms / 1000) +
                                 " s initializing the process group in the store-based barrier (" +
                                 std::to_string(n) + " of " + std::to_string(world_size) + " ranks arrived)");
      }
      std::this_thread::sleep_for(ms(10));
    }
    pg->setSequenceNumberForGroup();
    at::Device dev = cuda_device >= 0 ? at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(cuda_device)) : at::Device(at::kCPU);
    *out = new PG{store, pg, timeout, dev};
  });
}

void fer_c10d_pg_free(void* pg) { delete static_cast<PG*>(pg); }

// op: 0 sum, 3 min, 4 max (c10d::ReduceOp codes).
char* fer_c10d_allreduce(void* pgp, void** ts, int n, int op) {
  return guard([&] {
    auto* p = static_cast<PG*>(pgp);
    auto v = tensors(ts, n);
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp(static_cast<c10d::ReduceOp::RedOpType>(op));
    for (auto& t : v) {
      std::vector<at::Tensor> one{t};
      wait(p->pg->allreduce(one, o), p->timeout, "allreduce");
    }
  });
}

char* fer_c10d_broadcast(void* pgp, void** ts, int n, int root) {
  return guard([&] {
    auto* p = static_cast<PG*>(pgp);
    auto v = tensors(ts, n);
    c10d::BroadcastOptions o;
    o.rootRank = root;
    for (auto& t : v) {
      std::vector<at::Tensor> one{t};
      wait(p->pg->broadcast(one, o), p->timeout, "broadcast");
    }
  });
}

// fer_c10d_broadcast_coalesced broadcasts tensors from root the way DDP's
// _sync_params_and_buffers / _sync_buffers do: flattened into buckets of
// at most bucket_bytes per dtype, one broadcast per bucket.
char* fer_c10d_broadcast_coalesced(void* pgp, void** ts, int n, int root, int64_t bucket_bytes) {
  return guard([&] {
    auto* p = static_cast<PG*>(pgp);
    auto v = tensors(ts, n);
    c10d::BroadcastOptions o;
    o.rootRank = root;
    size_t i = 0;
    while (i < v.size()) {
      std::vector<at::Tensor> bucket{v[i]};
      int64_t bytes = v[i].numel() * v[i].element_size();
      size_t j = i + 1;
      while (j < v.size() && v[j].scalar_type() == v[i].scalar_type() && v[j].device() == v[i].device() &&
             bytes + v[j].numel() * v[j].element_size() <= bucket_bytes) {
        bytes += v[j].numel() * v[j].element_size();
        bucket.push_back(v[j]);
        j++;
      }
      std::vector<at::Tensor> flat;
      for (auto& t : bucket) flat.push_back(t.detach().reshape({-1}));
      std::vector<at::Tensor> buf{at::cat(flat)};
      wait(p->pg->broadcast(buf, o), p->timeout, "broadcast");
      if (p->pg->getRank() != root) {
        at::NoGradGuard ng;
        int64_t off = 0;
        for (auto& t : bucket) {
          t.copy_(buf[0].narrow(0, off, t.numel()).view(t.sizes()));
          off += t.numel();
        }
      }
      i = j;
    }
  });
}

char* fer_c10d_barrier(void* pgp) {
  return guard([&] {
    auto* p = static_cast<PG*>(pgp);
    wait(p->pg->barrier(), p->timeout, "barrier");
  });
}

// fer_c10d_allreduce_f64 reduces n doubles in place (op as above).
char* fer_c10d_allreduce_f64(void* pgp, double* vals, int n, int op) {
  return guard([&] {
    auto* p = static_cast<PG*>(pgp);
    auto t = at::from_blob(vals, {n}, at::kDouble).to(p->dev, /*non_blocking=*/false, /*copy=*/true);
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp(static_cast<c10d::ReduceOp::RedOpType>(op));
    std::vector<at::Tensor> one{t};
    wait(p->pg->allreduce(one, o), p->timeout, "allreduce");
    auto h = t.cpu();
    std::memcpy(vals, h.data_ptr<double>(), n * sizeof(double));
  });
}

// fer_c10d_broadcast_bytes sends root's len bytes to every rank; *out
// (malloc'd, *out_len bytes) is the root's data on every rank.
char* fer_c10d_broadcast_bytes(void* pgp, int root, const uint8_t* data, int64_t len, uint8_t** out,
                               int64_t* out_len) {
  return guard([&] {
    auto* p = static_cast<PG*>(pgp);
    c10d::BroadcastOptions o;
    o.rootRank = root;
    auto n = at::full({1}, len, at::kLong).to(p->dev);
    std::vector<at::Tensor> one{n};
    wait(p->pg->broadcast(one, o), p->timeout, "broadcast");
    int64_t size = n.item<int64_t>();
    auto buf = at::empty({size}, at::kByte);
    if (p->pg->getRank() == root && size > 0) std::memcpy(buf.data_ptr<uint8_t>(), data, size);
    std::vector<at::Tensor> b{buf.to(p->dev)};
    if (size > 0) wait(p->pg->broadcast(b, o), p->timeout, "broadcast");
    buf = b[0].cpu();
    *out = static_cast<uint8_t*>(std::malloc(size > 0 ? size : 1));
    if (size > 0) std::memcpy(*out, buf.data_ptr<uint8_t>(), size);
    *out_len = size;
  });
}

// fer_c10d_allgather_bytes gathers every rank's bytes: *out holds them
// concatenated in rank order, lens[r] (world_size entries, caller's
// array) their lengths.
char* fer_c10d_allgather_bytes(void* pgp, const uint8_t* data, int64_t len, uint8_t** out, int64_t* lens) {
  return guard([&] {
    auto* p = static_cast<PG*>(pgp);
    int w = p->pg->getSize();
    std::vector<std::vector<at::Tensor>> outs(1);
    auto dl = at::TensorOptions().dtype(at::kLong).device(p->dev);
    for (int r = 0; r < w; r++) outs[0].push_back(at::empty({1}, dl));
    std::vector<at::Tensor> in{at::full({1}, len, dl)};
    wait(p->pg->allgather(outs, in), p->timeout, "allgather");
    int64_t maxLen = 0, total = 0;
    for (int r = 0; r < w; r++) {
      lens[r] = outs[0][r].item<int64_t>();
      maxLen = std::max(maxLen, lens[r]);
      total += lens[r];
    }
    auto mine = at::zeros({std::max<int64_t>(maxLen, 1)}, at::kByte);
    if (len > 0) std::memcpy(mine.data_ptr<uint8_t>(), data, len);
    std::vector<std::vector<at::Tensor>> bufs(1);
    auto db = at::TensorOptions().dtype(at::kByte).device(p->dev);
    for (int r = 0; r < w; r++) bufs[0].push_back(at::empty({std::max<int64_t>(maxLen, 1)}, db));
    std::vector<at::Tensor> in2{mine.to(p->dev)};
    wait(p->pg->allgather(bufs, in2), p->timeout, "allgather");
    for (auto& b : bufs[0]) b = b.cpu();
    *out = static_cast<uint8_t*>(std::malloc(total > 0 ? total : 1));
    int64_t off = 0;
    for (int r = 0; r < w; r++) {
      if (lens[r] > 0) std::memcpy(*out + off, bufs[0][r].data_ptr<uint8_t>(), lens[r]);
      off += lens[r];
    }
  });
}

// fer_c10d_allreduce_grads averages the gradients of the n parameters
// after the backward pass: the gradients are flattened in order into
// buckets of at most bucket_bytes (one dtype and device per bucket), every
// bucket's allreduce is started, then each is waited for, divided by the
// world size and copied back. A parameter without a gradient contributes
// zeros (and gets the average of the others').
char* fer_c10d_allreduce_grads(void* pgp, void** params, int n, int64_t bucket_bytes) {
  return guard([&] {
    auto* p = static_cast<PG*>(pgp);
    at::NoGradGuard ng;
    auto ps = tensors(params, n);
    std::vector<at::Tensor> grads;
    for (auto& t : ps) {
      auto& g = t.mutable_grad();
      if (!g.defined()) g = at::zeros_like(t);
      grads.push_back(g);
    }
    struct B {
      std::vector<size_t> idx;
      at::Tensor flat;
      c10::intrusive_ptr<c10d::Work> work;
    };
    std::vector<B> buckets;
    size_t i = 0;
    while (i < grads.size()) {
      B b;
      b.idx.push_back(i);
      int64_t bytes = grads[i].numel() * grads[i].element_size();
      size_t j = i + 1;
      while (j < grads.size() && grads[j].scalar_type() == grads[i].scalar_type() &&
             grads[j].device() == grads[i].device() &&
             bytes + grads[j].numel() * grads[j].element_size() <= bucket_bytes) {
        bytes += grads[j].numel() * grads[j].element_size();
        b.idx.push_back(j);
        j++;
      }
      std::vector<at::Tensor> flat;
      for (auto k : b.idx) flat.push_back(grads[k].reshape({-1}));
      b.flat = at::cat(flat);
      std::vector<at::Tensor> one{b.flat};
      b.work = p->pg->allreduce(one);
      buckets.push_back(std::move(b));
      i = j;
    }
    double w = p->pg->getSize();
    for (auto& b : buckets) {
      wait(b.work, p->timeout, "gradient allreduce");
      b.flat.div_(w);
      int64_t off = 0;
      for (auto k : b.idx) {
        grads[k].copy_(b.flat.narrow(0, off, grads[k].numel()).view(grads[k].sizes()));
        off += grads[k].numel();
      }
    }
  });
}

// fer_c10d_verify_params checks that every rank has as many parameters
// as rank 0, with the same shapes, dtypes and layouts (DDP's
// _verify_param_shape_across_processes).
char* fer_c10d_verify_params(void* pgp, void** params, int n) {
  return guard([&] {
    auto* p = static_cast<PG*>(pgp);
    c10d::verify_params_across_processes(p->pg, tensors(params, n), c10::nullopt);
  });
}

// fer_c10d_reducer_new builds DistributedDataParallel's Reducer over the
// n parameters (given in model order), as DDP's _ddp_init_helper does:
// the parameters are broadcast-checked against rank 0
// (verify_params_across_processes), the first iteration all-reduces in
// one bucket and rebuild_buckets then re-buckets them in the order their
// gradients became ready (first bucket first_bucket_bytes, the others
// bucket_bytes).
char* fer_c10d_reducer_new(void* pgp, void** params, const char** names, int n, int64_t bucket_bytes,
                           int64_t first_bucket_bytes, int find_unused, void** out) {
  return guard([&] {
    auto* p = static_cast<PG*>(pgp);
    auto ps = tensors(params, n);
    c10d::verify_params_across_processes(p->pg, ps, c10::nullopt);
    std::vector<bool> sparse(ps.size(), false);
    std::vector<size_t> limits{find_unused ? static_cast<size_t>(first_bucket_bytes) : SIZE_MAX};
    if (find_unused) limits.push_back(static_cast<size_t>(bucket_bytes));
    auto assignment = c10d::compute_bucket_assignment_by_size(ps, limits, sparse);
    auto indices = std::get<0>(assignment);
    auto sizes = std::get<1>(assignment);
    std::reverse(indices.begin(), indices.end());
    std::reverse(sizes.begin(), sizes.end());
    std::unordered_map<size_t, std::string> pn;
    for (int i = 0; i < n; i++) pn[i] = names[i];
    auto r = std::make_shared<c10d::Reducer>(ps, indices, sizes, p->pg, sparse, bucket_bytes, find_unused != 0,
                                             /*gradient_as_bucket_view=*/false, pn, first_bucket_bytes);
    *out = new Reducer{r};
  });
}

void fer_c10d_reducer_free(void* r) { delete static_cast<Reducer*>(r); }

// fer_c10d_reducer_prepare_forward is DDP.forward's prologue.
char* fer_c10d_reducer_prepare_forward(void* rp) {
  return guard([&] { static_cast<Reducer*>(rp)->r->prepare_for_forward(); });
}

// fer_c10d_reducer_rebuild_buckets re-buckets the parameters in the order
// their gradients became ready in the first backward pass (a collective:
// rank 0's order is broadcast); a no-op after the first call.
char* fer_c10d_reducer_rebuild_buckets(void* rp) {
  return guard([&] { static_cast<Reducer*>(rp)->r->rebuild_buckets(); });
}

// fer_c10d_reducer_prepare_backward arms the autograd hooks for the next
// backward pass; with find_unused_parameters, outputs are the tensors the
// graph is searched from for parameters that get no gradient.
char* fer_c10d_reducer_prepare_backward(void* rp, void** outputs, int n) {
  return guard([&] {
    auto* r = static_cast<Reducer*>(rp);
    r->r->prepare_for_backward(tensors(outputs, n));
  });
}

}  // extern "C"
