#include "exec/executor.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>

#include "exec/sources.h"
#include "exec/work_pool.h"
#include "merge/random.h"

namespace llmerge {

namespace {

// Rounds f32 values to the precision of `t` (bf16 or f16), in place.
void round_f32_to(DType t, float* values, std::size_t n) {
  for (std::size_t k = 0; k < n; ++k) {
    values[k] =
        t == DType::BF16 ? bf16_to_f32(f32_to_bf16(values[k])) : f16_to_f32(f32_to_f16(values[k]));
  }
}

// Buffers owned by one worker, sized once for the largest tensor's input count.
struct Worker {
  explicit Worker(std::int64_t chunk) : scratch(chunk) {}
  std::vector<std::vector<float>> inputs;  // [0] base (if any), then models
  std::vector<const float*> model_ptrs;
  std::vector<float> out;
  SourceScratch scratch;
};

class Executor {
 public:
  Executor(const MergePlan& plan, OutputSinks& sinks, const ExecuteOptions& options)
      : plan_(plan), sinks_(sinks), options_(options) {
    chunk_ = std::max<std::int64_t>(options.chunk_elements, 1);
    chunk_ = (chunk_ + k_reduce_block - 1) / k_reduce_block * k_reduce_block;
    for (const auto& t : plan.tensors) {
      inputs_max_ = std::max(inputs_max_, t.inputs.size() + 1);
      bytes_total_ += t.nbytes();
    }
  }

  void run() {
    const auto start = std::chrono::steady_clock::now();
    WorkPoolOptions pool_options;
    pool_options.threads = options_.threads;
    pool_options.cancel = options_.cancel;
    pool_options.progress_interval_s = options_.progress_interval_s;
    pool_options.activity = "the merge";
    if (options_.progress) {
      // A callback that throws aborts the run. Callers whose progress is best
      // effort (the CLI's stderr) must not throw.
      pool_options.progress = [&] {
        ExecuteProgress p;
        p.tensors_done = tensors_done_.load();
        p.tensors_total = plan_.tensors.size();
        p.bytes_done = bytes_done_.load();
        p.bytes_total = bytes_total_;
        p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        options_.progress(p);
      };
    }
    pool_.emplace(std::move(pool_options));
    pool_->run(plan_.tensors.size(), [this]() -> WorkPool::ItemFn {
      // This worker's buffers, sized once for the largest tensor's input count.
      auto w = std::make_shared<Worker>(chunk_);
      w->inputs.resize(inputs_max_);
      for (auto& buf : w->inputs)
        buf.resize(static_cast<std::size_t>(chunk_));
      w->out.resize(static_cast<std::size_t>(chunk_));
      return [this, w](std::size_t i) {
        run_tensor(i, *w);
        tensors_done_.fetch_add(1);
      };
    });
  }

 private:
  // Between chunks: this run's cancel token, or another worker's failure.
  void check_stop() const { pool_->check_stop(); }

  void load(const TensorSource& source, DType dtype, std::int64_t begin, std::int64_t n, float* dst,
            Worker& w) const {
    source.read(begin, n, dst, w.scratch);
    // mergekit casts every input to the config `dtype` before any math: f32
    // inputs, and the other 16-bit format too (f16 -> bf16 loses mantissa,
    // bf16 -> f16 loses range).
    if (plan_.round_inputs && dtype != plan_.compute_dtype_round) {
      round_f32_to(plan_.compute_dtype_round, dst, static_cast<std::size_t>(n));
    }
  }

  // The tensor's inputs opened as sources: [0] the base (if any), then the models.
  struct Inputs {
    std::vector<std::unique_ptr<TensorSource>> sources;
    std::vector<DType> dtypes;
  };

  static Inputs open_inputs(const PlannedTensor& t) {
    Inputs in;
    auto add = [&in](const PlannedInput& p) {
      in.sources.push_back(make_source(p));
      in.dtypes.push_back(p.ref.dtype());
    };
    if (t.base) add(*t.base);
    for (const auto& p : t.inputs)
      add(p);
    return in;
  }

  Chunk load_chunk(const PlannedTensor& t, const Inputs& in, std::int64_t begin, std::int64_t n,
                   Worker& w) const {
    Chunk c;
    c.begin = begin;
    c.size = n;
    for (std::size_t slot = 0; slot < in.sources.size(); ++slot) {
      load(*in.sources[slot], in.dtypes[slot], begin, n, w.inputs[slot].data(), w);
    }
    std::size_t slot = 0;
    if (t.base) c.base = w.inputs[slot++].data();
    w.model_ptrs.clear();
    for (; slot < in.sources.size(); ++slot)
      w.model_ptrs.push_back(w.inputs[slot].data());
    c.models = w.model_ptrs;
    return c;
  }

  void copy_tensor(const PlannedTensor& t, TensorSink& sink, Worker& w) {
    const PlannedInput& in = t.inputs.front();
    const std::uint64_t total = in.ref.info->nbytes();
    const std::uint64_t step = w.scratch.raw.size();
    for (std::uint64_t off = 0; off < total; off += step) {
      check_stop();
      const std::uint64_t len = std::min(step, total - off);
      in.ref.file->read(*in.ref.info, off, w.scratch.raw.data(), len);
      sink.write_bytes(off, w.scratch.raw.data(), len);
      bytes_done_.fetch_add(len);
    }
  }

  void run_tensor(std::size_t index, Worker& w) {
    const PlannedTensor& t = plan_.tensors[index];
    const auto sink = sinks_.open(index, chunk_);
    if (!t.method) {
      copy_tensor(t, *sink, w);
      return;
    }
    TensorContext ctx;
    ctx.name = t.name;
    ctx.shape = t.shape;
    ctx.numel = t.numel();
    ctx.model_count = t.inputs.size();
    ctx.has_base = t.base.has_value();
    ctx.params = &t.params;
    ctx.seed = options_.seed;
    ctx.tensor_key = hash_tensor_name(t.name);
    auto merge = t.method->make(ctx);
    const Inputs inputs = open_inputs(t);

    const std::int64_t numel = ctx.numel;
    for (int pass = 0; pass < merge->passes(); ++pass) {
      for (std::int64_t begin = 0; begin < numel; begin += chunk_) {
        check_stop();
        const std::int64_t n = std::min(chunk_, numel - begin);
        merge->observe(pass, load_chunk(t, inputs, begin, n, w));
      }
      merge->end_pass(pass);
    }
    for (std::int64_t begin = 0; begin < numel; begin += chunk_) {
      check_stop();
      const std::int64_t n = std::min(chunk_, numel - begin);
      merge->compute(load_chunk(t, inputs, begin, n, w), w.out.data());
      bytes_done_.fetch_add(sink->write_values(begin, n, w.out.data()));
    }
  }

  const MergePlan& plan_;
  OutputSinks& sinks_;
  const ExecuteOptions& options_;
  std::int64_t chunk_ = 0;
  std::size_t inputs_max_ = 1;
  std::uint64_t bytes_total_ = 0;

  std::optional<WorkPool> pool_;
  std::atomic<std::size_t> tensors_done_{0};
  std::atomic<std::uint64_t> bytes_done_{0};
};

}  // namespace

void execute_plan(const MergePlan& plan, OutputSinks& sinks, const ExecuteOptions& options) {
  Executor(plan, sinks, options).run();
}

}  // namespace llmerge
