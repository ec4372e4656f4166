#include "exec/stage_source.h"

#include <algorithm>
#include <vector>

#include "core/dtype.h"
#include "merge/random.h"

namespace llmerge {

namespace {

// Rounds f32 values to what a tensor of `t` stores and gives back: the
// staged run writes the output in `t` and the next stage reads it as f32.
// BF16 and F16 round to nearest even (kernels::store_from_f32's rule); F32
// is itself and F64 holds every f32 exactly.
void round_to(DType t, float* values, std::size_t n) {
  if (t == DType::BF16) {
    for (std::size_t k = 0; k < n; ++k)
      values[k] = bf16_to_f32(f32_to_bf16(values[k]));
  } else if (t == DType::F16) {
    for (std::size_t k = 0; k < n; ++k)
      values[k] = f16_to_f32(f32_to_f16(values[k]));
  }
}

class StageSource final : public TensorSource {
 public:
  explicit StageSource(const PlannedInput& in)
      : in_(in), plan_(*in.stage->plan), t_(*in.stage_tensor) {
    ctx_.name = t_.name;
    ctx_.shape = t_.shape;
    ctx_.numel = t_.numel();
    ctx_.model_count = t_.inputs.size();
    ctx_.has_base = t_.base.has_value();
    ctx_.params = &t_.params;
    ctx_.seed = in.stage->seed;
    ctx_.tensor_key = hash_tensor_name(t_.name);
    merge_ = t_.method->make(ctx_);
    auto add = [this](const PlannedInput& p) {
      sources_.push_back(make_source(p));
      dtypes_.push_back(p.ref.dtype());
    };
    if (t_.base) add(*t_.base);
    for (const auto& p : t_.inputs)
      add(p);
    buffers_.resize(sources_.size());
    ptrs_.resize(t_.inputs.size());
  }

  void read(std::int64_t begin, std::int64_t n, float* dst, SourceScratch& s) const override {
    const std::int64_t cols = in_.shape.size() == 2 ? in_.shape[1] : 0;
    if (cols == 0 || cols == t_.shape[1]) {
      compute(begin, n, dst, s);
      return;
    }
    // A leading sub-matrix with fewer columns than the stage's tensor.
    const std::int64_t stored_cols = t_.shape[1];
    for (std::int64_t pos = begin; pos < begin + n;) {
      const std::int64_t row = pos / cols;
      const std::int64_t col = pos % cols;
      const std::int64_t take = std::min(cols - col, begin + n - pos);
      compute(row * stored_cols + col, take, dst + (pos - begin), s);
      pos += take;
    }
  }

 private:
  // Elements [begin, begin + n) of the stage's tensor into `out`.
  void compute(std::int64_t begin, std::int64_t n, float* out, SourceScratch& s) const {
    const auto count = static_cast<std::size_t>(n);
    for (std::size_t slot = 0; slot < sources_.size(); ++slot) {
      auto& buf = buffers_[slot];
      if (buf.size() < count) buf.resize(count);
      sources_[slot]->read(begin, n, buf.data(), s);
      // The stage executor's rule (exec/executor.cpp, load): inputs in
      // another format are rounded to the config `dtype` first.
      if (plan_.round_inputs && dtypes_[slot] != plan_.compute_dtype_round) {
        round_to(plan_.compute_dtype_round, buf.data(), count);
      }
    }
    Chunk c;
    c.begin = begin;
    c.size = n;
    std::size_t slot = 0;
    if (t_.base) c.base = buffers_[slot++].data();
    for (std::size_t i = 0; i < ptrs_.size(); ++i)
      ptrs_[i] = buffers_[slot + i].data();
    c.models = ptrs_;
    merge_->compute(c, out);
    round_to(t_.dtype, out, count);
  }

  const PlannedInput& in_;
  const MergePlan& plan_;
  const PlannedTensor& t_;
  TensorContext ctx_;
  std::unique_ptr<TensorMerge> merge_;
  std::vector<std::unique_ptr<TensorSource>> sources_;
  std::vector<DType> dtypes_;
  // Per source: one read's values. A source is read by one worker thread at
  // a time (the executor opens a tensor's sources on the thread that merges
  // it), so the buffers need no lock.
  mutable std::vector<std::vector<float>> buffers_;
  mutable std::vector<const float*> ptrs_;
};

}  // namespace

std::unique_ptr<TensorSource> make_stage_source(const PlannedInput& input) {
  return std::make_unique<StageSource>(input);
}

}  // namespace llmerge
