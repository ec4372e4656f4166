#include "exec/executor.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include <fmt/core.h>

#include "core/cancel.h"
#include "core/error.h"
#include "io/mlx_quant.h"
#include "merge/kernels/kernels.h"
#include "merge/random.h"
#include "output/layout.h"

namespace llmerge {

namespace {

std::size_t item_bytes(DType t) {
  return static_cast<std::size_t>(dtype_bits(t) / 8);
}

// Rounds f32 values to the precision of `t` (bf16 or f16), in place.
void round_f32_to(DType t, float* values, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    values[i] =
        t == DType::BF16 ? bf16_to_f32(f32_to_bf16(values[i])) : f16_to_f32(f32_to_f16(values[i]));
  }
}

// Buffers owned by one worker, sized once for the largest tensor's input count.
struct Worker {
  std::vector<std::vector<float>> inputs;  // [0] base (if any), then models
  std::vector<const float*> model_ptrs;
  std::vector<float> out;
  std::vector<unsigned char> raw;
  // MLX-quantized tensors: packed codes and one scale and bias per group.
  std::vector<std::uint32_t> words;
  std::vector<unsigned char> scales;
  std::vector<unsigned char> biases;
};

class Executor {
 public:
  Executor(const Plan& plan, ModelWriter& writer, const ExecuteOptions& options)
      : plan_(plan), writer_(writer), options_(options) {
    chunk_ = std::max<std::int64_t>(options.chunk_elements, 1);
    chunk_ = (chunk_ + k_reduce_block - 1) / k_reduce_block * k_reduce_block;
    for (const auto& t : plan.tensors) {
      inputs_max_ = std::max(inputs_max_, t.inputs.size() + 1);
      bytes_total_ += t.nbytes();
    }
  }

  void run() {
    const int threads =
        std::max(1, options_.threads > 0 ? options_.threads : default_thread_count());
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    try {
      pool.reserve(static_cast<std::size_t>(threads));
      for (int i = 0; i < threads; ++i)
        pool.emplace_back([this] { work(); });
    } catch (const std::exception& e) {
      // Out of threads (EAGAIN) or memory: stop the workers already started
      // and join them; destroying a joinable std::thread would abort.
      failed_.store(true);
      for (auto& t : pool)
        t.join();
      throw Error(ErrorKind::io,
                  fmt::format("cannot start {} worker threads ({} started): {}; use fewer "
                              "--threads",
                              threads, pool.size(), e.what()));
    }

    auto report = [&] {
      if (!options_.progress) return;
      ExecuteProgress p;
      p.tensors_done = tensors_done_.load();
      p.tensors_total = plan_.tensors.size();
      p.bytes_done = bytes_done_.load();
      p.bytes_total = bytes_total_;
      p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      // Progress is best effort: a failing callback (stderr on a full disk)
      // must not stop the merge, nor leave the workers joinable.
      try {
        options_.progress(p);
      } catch (...) {
      }
    };
    {
      std::unique_lock lock(mutex_);
      const auto interval = std::chrono::duration<double>(options_.progress_interval_s);
      while (running_ > 0 || !started_all(threads)) {
        done_cv_.wait_for(lock, std::chrono::duration_cast<std::chrono::milliseconds>(interval));
        if (running_ == 0 && started_all(threads)) break;
        lock.unlock();
        report();
        lock.lock();
      }
    }
    for (auto& t : pool)
      t.join();
    if (error_) std::rethrow_exception(error_);
    report();
  }

 private:
  bool started_all(int threads) const { return started_ == threads; }

  void work() {
    {
      std::lock_guard lock(mutex_);
      ++started_;
      ++running_;
    }
    Worker w;
    try {
      try {
        w.inputs.resize(inputs_max_);
        for (auto& buf : w.inputs)
          buf.resize(static_cast<std::size_t>(chunk_));
        w.out.resize(static_cast<std::size_t>(chunk_));
        w.raw.resize(static_cast<std::size_t>(chunk_) * 8);
        // Group sizes are at least 32 and codes at most 8 bits wide.
        w.words.resize(static_cast<std::size_t>(chunk_) / 4);
        w.scales.resize(static_cast<std::size_t>(chunk_) / 32 * 4);
        w.biases.resize(static_cast<std::size_t>(chunk_) / 32 * 4);
      } catch (const std::bad_alloc&) {
        throw Error(ErrorKind::io,
                    fmt::format("out of memory allocating a worker's chunk buffers ({} elements "
                                "x {} inputs); use a smaller --chunk-elements or fewer --threads",
                                chunk_, inputs_max_));
      }
      for (;;) {
        if (failed_.load()) break;
        const std::size_t i = next_.fetch_add(1);
        if (i >= plan_.tensors.size()) break;
        run_tensor(i, w);
        tensors_done_.fetch_add(1);
      }
    } catch (const std::bad_alloc&) {
      record(std::make_exception_ptr(
          Error(ErrorKind::io, "out of memory during the merge; use fewer --threads")));
    } catch (...) {
      record(std::current_exception());
    }
    std::lock_guard lock(mutex_);
    --running_;
    done_cv_.notify_all();
  }

  void record(std::exception_ptr e) {
    std::lock_guard lock(mutex_);
    if (!error_) error_ = std::move(e);
    failed_.store(true);
  }

  // Reads elements [begin, begin + n) of the input's logical (possibly cut) view as raw bytes.
  void read_raw(const PlannedInput& in, std::int64_t begin, std::int64_t n,
                unsigned char* dst) const {
    const TensorInfo& info = *in.ref.info;
    const std::size_t item = item_bytes(info.dtype);
    const bool cut = in.shape.size() == 2 && info.shape.size() == 2 && in.shape[1] != info.shape[1];
    if (!cut) {
      in.ref.file->read(info, static_cast<std::uint64_t>(begin) * item, dst,
                        static_cast<std::uint64_t>(n) * item);
      return;
    }
    // A leading sub-matrix with fewer columns: read row segments.
    const std::int64_t cols = in.shape[1];
    const std::int64_t stored_cols = info.shape[1];
    std::int64_t pos = begin;
    while (pos < begin + n) {
      const std::int64_t row = pos / cols;
      const std::int64_t col = pos % cols;
      const std::int64_t take = std::min(cols - col, begin + n - pos);
      in.ref.file->read(info, static_cast<std::uint64_t>(row * stored_cols + col) * item,
                        dst + static_cast<std::size_t>(pos - begin) * item,
                        static_cast<std::uint64_t>(take) * item);
      pos += take;
    }
  }

  // Dequantizes elements [begin, begin + n) of an MLX-quantized weight. Chunks
  // are multiples of 65536 elements and rows of the group size, so a chunk is
  // always whole groups, and each group can be dequantized as a row of its own.
  void load_quantized(const PlannedInput& in, std::int64_t begin, std::int64_t n, float* dst,
                      Worker& w) const {
    const QuantizedWeight& q = *in.ref.quant;
    const std::int64_t gs = q.params.group_size;
    const std::int64_t groups = n / gs;
    const auto words_per_group = static_cast<std::uint64_t>(gs * q.params.bits / 32);
    in.ref.file->read(*in.ref.info, static_cast<std::uint64_t>(begin / gs) * words_per_group * 4,
                      w.words.data(), static_cast<std::uint64_t>(groups) * words_per_group * 4);
    const auto scale_bytes = static_cast<std::uint64_t>(dtype_bits(q.scales->dtype) / 8);
    q.scales_file->read(*q.scales, static_cast<std::uint64_t>(begin / gs) * scale_bytes,
                        w.scales.data(), static_cast<std::uint64_t>(groups) * scale_bytes);
    if (q.biases) {
      q.biases_file->read(*q.biases, static_cast<std::uint64_t>(begin / gs) * scale_bytes,
                          w.biases.data(), static_cast<std::uint64_t>(groups) * scale_bytes);
    }
    dequantize_rows(q.params, w.words.data(), w.scales.data(), q.biases ? w.biases.data() : nullptr,
                    q.scales->dtype, groups, gs, dst);
  }

  void load(const PlannedInput& in, std::int64_t begin, std::int64_t n, float* dst,
            Worker& w) const {
    const DType dtype = in.ref.dtype();
    if (in.ref.quant) {
      load_quantized(in, begin, n, dst, w);
    } else {
      read_raw(in, begin, n, w.raw.data());
      kernels::load_f32(dtype, w.raw.data(), dst, static_cast<std::size_t>(n));
    }
    // mergekit casts every input to the config `dtype` before any math: f32
    // inputs, and the other 16-bit format too (f16 -> bf16 loses mantissa,
    // bf16 -> f16 loses range).
    if (plan_.round_inputs && dtype != plan_.compute_dtype_round) {
      round_f32_to(plan_.compute_dtype_round, dst, static_cast<std::size_t>(n));
    }
  }

  Chunk load_chunk(const PlannedTensor& t, std::int64_t begin, std::int64_t n, Worker& w) const {
    Chunk c;
    c.begin = begin;
    c.size = n;
    std::size_t slot = 0;
    if (t.base) {
      load(*t.base, begin, n, w.inputs[slot].data(), w);
      c.base = w.inputs[slot].data();
      ++slot;
    }
    w.model_ptrs.clear();
    for (const auto& in : t.inputs) {
      load(in, begin, n, w.inputs[slot].data(), w);
      w.model_ptrs.push_back(w.inputs[slot].data());
      ++slot;
    }
    c.models = w.model_ptrs;
    return c;
  }

  void copy_tensor(std::size_t index, const PlannedTensor& t, Worker& w) {
    const PlannedInput& in = t.inputs.front();
    const std::uint64_t total = in.ref.info->nbytes();
    const std::uint64_t step = w.raw.size();
    for (std::uint64_t off = 0; off < total; off += step) {
      throw_if_cancelled();
      const std::uint64_t len = std::min(step, total - off);
      in.ref.file->read(*in.ref.info, off, w.raw.data(), len);
      writer_.write(writer_index_[index], off, w.raw.data(), len);
      bytes_done_.fetch_add(len);
    }
  }

  void run_tensor(std::size_t index, Worker& w) {
    const PlannedTensor& t = plan_.tensors[index];
    if (!t.method) {
      copy_tensor(index, t, w);
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

    const std::int64_t numel = ctx.numel;
    for (int pass = 0; pass < merge->passes(); ++pass) {
      for (std::int64_t begin = 0; begin < numel; begin += chunk_) {
        throw_if_cancelled();
        const std::int64_t n = std::min(chunk_, numel - begin);
        merge->observe(pass, load_chunk(t, begin, n, w));
      }
      merge->end_pass(pass);
    }
    const std::size_t out_item = item_bytes(t.dtype);
    for (std::int64_t begin = 0; begin < numel; begin += chunk_) {
      throw_if_cancelled();
      const std::int64_t n = std::min(chunk_, numel - begin);
      merge->compute(load_chunk(t, begin, n, w), w.out.data());
      kernels::store_from_f32(t.dtype, w.out.data(), w.raw.data(), static_cast<std::size_t>(n));
      if (t.quantize) {
        write_quantized(index, t, begin, n, w);
        continue;
      }
      writer_.write(writer_index_[index], static_cast<std::uint64_t>(begin) * out_item,
                    w.raw.data(), static_cast<std::uint64_t>(n) * out_item);
      bytes_done_.fetch_add(static_cast<std::uint64_t>(n) * out_item);
    }
  }

  // Quantizes the chunk already rounded to the output dtype in w.raw (so the
  // result equals mx.quantize of the dense output) and writes the packed
  // codes, scales and biases: three consecutive writer tensors.
  void write_quantized(std::size_t index, const PlannedTensor& t, std::int64_t begin,
                       std::int64_t n, Worker& w) {
    const QuantParams& q = *t.quantize;
    const std::int64_t gs = q.group_size;
    const std::int64_t groups = n / gs;
    quantize_rows(q, w.raw.data(), t.dtype, groups, gs, w.words.data(), w.scales.data(),
                  w.biases.data());
    const auto words_per_group = static_cast<std::uint64_t>(gs * q.bits / 32);
    const auto item = static_cast<std::uint64_t>(item_bytes(t.dtype));
    const auto first_group = static_cast<std::uint64_t>(begin / gs);
    const auto g = static_cast<std::uint64_t>(groups);
    const std::size_t wi = writer_index_[index];
    writer_.write(wi, first_group * words_per_group * 4, w.words.data(), g * words_per_group * 4);
    writer_.write(wi + 1, first_group * item, w.scales.data(), g * item);
    writer_.write(wi + 2, first_group * item, w.biases.data(), g * item);
    bytes_done_.fetch_add(g * (words_per_group * 4 + 2 * item));
  }

  const Plan& plan_;
  ModelWriter& writer_;
  std::vector<std::size_t> writer_index_ = plan_writer_indices(plan_);
  const ExecuteOptions& options_;
  std::int64_t chunk_ = 0;
  std::size_t inputs_max_ = 1;
  std::uint64_t bytes_total_ = 0;

  std::atomic<std::size_t> next_{0};
  std::atomic<std::size_t> tensors_done_{0};
  std::atomic<std::uint64_t> bytes_done_{0};
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::condition_variable done_cv_;
  int started_ = 0;
  int running_ = 0;
  std::exception_ptr error_;
};

}  // namespace

int default_thread_count() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

void execute_plan(const Plan& plan, ModelWriter& writer, const ExecuteOptions& options) {
  Executor(plan, writer, options).run();
}

}  // namespace llmerge
